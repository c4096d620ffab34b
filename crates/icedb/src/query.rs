//! Queries with DuckDB: the table appears to SQL as a view named after it
//! over its live files and Hive partition columns (built in `view.rs`),
//! after planning (`plan/`) pruned files by the query's own `WHERE`, by
//! partition and by per-file statistics. DuckDB's databases and their S3
//! credentials are `engine.rs`.

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use icedb_meta::{DataFile, PartitionFilter, PartitionStats, Snapshot, StatValue};

use crate::engine::{check_select, scrub_error};
use crate::error::{Result, TableError};
use crate::plan::{Filter, Plan, hive_types, timestamp_text};
use crate::table::Table;
use crate::view::{Answer, Known, metadata_answer, run_user_query, view_sql};
use tracing::Instrument;

/// An inclusive range a column's values must overlap for a file to be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnRange {
    pub column: String,
    pub min: Option<StatValue>,
    pub max: Option<StatValue>,
}

/// What the planner may skip before DuckDB sees the files. Pruning only
/// ever removes files that cannot hold matching rows, so a query's answer
/// does not depend on it as long as its `WHERE` implies these ranges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryOptions {
    pub partitions: PartitionFilter,
    pub ranges: Vec<ColumnRange>,
    /// Read the table as it was at this version (time travel), as long as
    /// vacuum has not deleted files it needs.
    pub version: Option<u64>,
    /// Stop the query (and fail it) after this long.
    pub timeout: Option<Duration>,
    /// Fail the query as soon as its result passes this many rows, instead
    /// of holding all of it.
    pub max_rows: Option<usize>,
    /// Likewise for the result's size in memory (Arrow buffers), in bytes.
    pub max_bytes: Option<usize>,
}

/// A query's answer and how it was reached.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// The table version the query read.
    pub version: u64,
    /// Files DuckDB read: 0 when the log answered (`count(*)`, `min`, `max`).
    pub files_scanned: usize,
    /// Files planning ruled out (by partition or statistics) unread.
    pub files_pruned: usize,
    pub elapsed: Duration,
}

impl QueryResult {
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// A run's (version read, files before pruning, answer), started at
    /// `started`.
    fn of((version, total, answer): (u64, usize, Answer), started: Instant) -> QueryResult {
        QueryResult {
            schema: answer.schema,
            batches: answer.batches,
            version,
            files_scanned: answer.files_scanned,
            files_pruned: total - answer.files_kept,
            elapsed: started.elapsed(),
        }
    }
}

impl Table {
    /// Starts the query engine ahead of the first query or merge (a server
    /// calls it at start; otherwise the first one does).
    pub async fn prepare_queries(&self) -> Result<()> {
        self.query_engine.open().await
    }

    /// Runs `sql` against the table's live files at the newest version. The
    /// table is a view named after it; Hive partition columns (`y`, `m`,
    /// ...) are columns too. Files the `WHERE` rules out are not read
    /// (see [`crate::plan`]), and `count(*)`, `min` and `max` without a
    /// filter (or with one on partition columns only) are answered from the
    /// log when its statistics are exact; `count(*)` alone from the
    /// partitions' totals, without listing a file.
    #[tracing::instrument(level = "debug", skip_all, name = "query")]
    pub async fn query(&self, sql: &str, options: &QueryOptions) -> Result<QueryResult> {
        let started = Instant::now();
        let (connection, credential) = self
            .query_engine
            .connection_of(&self.query_engine.user)
            .instrument(tracing::debug_span!("query.connection"))
            .await?;
        let interrupt = connection.interrupt_handle();
        let statement = Statement {
            name: self.name().to_owned(),
            sql: sql.to_owned(),
            options: options.clone(),
            integer_keys: self.integer_partition_keys(),
            files_at: self.query_engine.files.clone(),
        };
        // A statement at the head may be answered from the log alone; it
        // is, from the replica as last synced, while the sync is out, and
        // the answer is kept if the sync finds nothing newer (the common
        // case: a metadata answer then costs no more than the sync).
        let early = if options.version.is_none() && options.ranges.is_empty() {
            Some(self.meta().snapshot()?)
        } else {
            None
        };
        // DuckDB parses the statement while the replica catches up.
        let parsing = {
            let span = tracing::debug_span!("query.parse");
            tokio::task::spawn_blocking(move || {
                let _span = span.entered();
                let parsed = check_select(&connection, &statement.sql)?;
                let answered = early.and_then(|snapshot| {
                    let at = (snapshot.version(), head_commit(&snapshot)?);
                    run_statement(&connection, &parsed, snapshot, at.0, &statement, Reach::Log)
                        .ok()
                        .flatten()
                        .map(|answer| (at, answer))
                });
                Ok::<_, TableError>((connection, parsed, statement, answered))
            })
        };
        let head = self.meta().sync().await;
        let (connection, parsed, statement, answered) = parsing
            .await
            .expect("parsing does not panic")
            .map_err(|e| scrub_error(e, credential.as_deref()))?;
        let head = head?;
        let snapshot = self.meta().snapshot()?;
        if let Some(((at, id), answered)) = answered
            && at == head
            && head_commit(&snapshot).is_some_and(|now| now == id)
        {
            return Ok(QueryResult::of(answered, started));
        }
        let span = tracing::debug_span!("query.run");
        // Planning (the replica read included) and DuckDB run on the
        // blocking pool, as the parse did.
        let mut task = tokio::task::spawn_blocking(move || -> Result<(u64, usize, Answer)> {
            let _span = span.entered();
            Ok(run_statement(
                &connection,
                &parsed,
                snapshot,
                head,
                &statement,
                Reach::Files,
            )?
            .expect("a run over the files always answers"))
        });
        let finished = match options.timeout {
            None => (&mut task).await,
            Some(limit) => match tokio::time::timeout(limit, &mut task).await {
                Ok(finished) => finished,
                Err(_) => {
                    interrupt.interrupt();
                    // Wait for DuckDB to let go of the connection.
                    let _ = task.await;
                    return Err(TableError::QueryTimeout { limit });
                }
            },
        };
        let answered = finished
            .expect("queries do not panic")
            .map_err(|e| scrub_error(e, credential.as_deref()))?;
        Ok(QueryResult::of(answered, started))
    }
}

/// What a statement's run needs besides its connection and a snapshot.
struct Statement {
    name: String,
    sql: String,
    options: QueryOptions,
    integer_keys: &'static [&'static str],
    files_at: crate::engine::FileUrls,
}

/// How far a run may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Only an answer from the log (`None` when the statement needs files).
    Log,
    /// Whatever the statement needs: DuckDB over the files if it must.
    Files,
}

/// The id of the commit at the snapshot's head (`None` for an empty
/// table): with the version, what tells two states apart even across a
/// replica rebuilt for a re-created table.
fn head_commit(snapshot: &Snapshot) -> Option<String> {
    snapshot
        .commit(snapshot.version())
        .ok()
        .flatten()
        .map(|summary| summary.id)
}

/// Plans and answers `parsed` on `snapshot` (the table at `head`): from the
/// log when its statistics answer it, else (with [`Reach::Files`]) by
/// DuckDB over the files the plan keeps. Returns the version read, the
/// files before pruning and the answer.
fn run_statement(
    connection: &duckdb::Connection,
    parsed: &serde_json::Value,
    snapshot: Snapshot,
    head: u64,
    statement: &Statement,
    reach: Reach,
) -> Result<Option<(u64, usize, Answer)>> {
    let Statement {
        name,
        sql,
        options,
        integer_keys,
        files_at,
    } = statement;
    let plan = Plan::of(parsed, name);
    let limits = (options.max_rows, options.max_bytes);
    let schema = snapshot.schema()?;
    let at_head = options.version.is_none();
    let (version, partitions, history) = match options.version {
        None => (head, snapshot.partitions(&PartitionFilter::All)?, None),
        Some(version) => {
            let files = snapshot
                .files_at(version, &PartitionFilter::All)?
                .ok_or_else(|| TableError::VersionNotReadable {
                    version,
                    oldest: snapshot.oldest_readable_version().unwrap_or(1),
                    head,
                })?;
            (version, Vec::new(), Some(files))
        }
    };
    let names: Vec<&str> = match &history {
        None => partitions.iter().map(|p| p.partition.as_str()).collect(),
        Some(files) => {
            let mut names: Vec<&str> = files.iter().map(|f| f.partition.as_str()).collect();
            names.dedup();
            names
        }
    };
    let hive = hive_types(names, integer_keys);
    let filter = plan.filter(&schema, &hive, &mut |literal| {
        let (text, to) = timestamp_text(literal)?;
        connection
            .query_row(
                &format!("SELECT epoch_us(CAST(CAST(? AS {to}) AS TIMESTAMPTZ))"),
                [text],
                |row| row.get::<_, i64>(0),
            )
            .ok()
    });
    if reach == Reach::Log && (plan.aggregates().is_none() || !filter.exact()) {
        // Not a statement the log can answer: leave it to the run after
        // the sync, without listing files twice.
        return Ok(None);
    }
    let total = match &history {
        None => partitions.iter().map(|p| p.files as usize).sum(),
        Some(files) => files.len(),
    };
    let from_log = |known: Known<'_>| {
        metadata_answer(
            connection,
            name,
            sql,
            (&plan, &filter),
            (&schema, &hive),
            known,
            limits,
        )
    };
    // `count(*)` over whole partitions: their totals answer it without
    // listing a file.
    if at_head && options.ranges.is_empty() {
        let kept: Vec<PartitionStats> = partitions
            .into_iter()
            .filter(|p| {
                options.partitions.matches(&p.partition) && filter.may_match_partition(&p.partition)
            })
            .collect();
        if let Some(answer) = from_log(Known::Partitions(&kept))? {
            return Ok(Some((version, total, answer)));
        }
    }
    let files = match history {
        None => snapshot.files_without_bytes(&options.partitions)?,
        Some(files) => files
            .into_iter()
            .filter(|f| options.partitions.matches(&f.partition))
            .collect(),
    };
    let ranges = Filter::of_ranges(&options.ranges);
    let (mut files, urls): (Vec<DataFile>, Vec<String>) = files
        .into_iter()
        .filter(|file| ranges.may_match(file) && filter.may_match(file))
        .map(|file| {
            let url = files_at.url(&file.path);
            (file, url)
        })
        .unzip();
    if let Some(answer) = from_log(Known::Files(&files))? {
        return Ok(Some((version, total, answer)));
    }
    if reach == Reach::Log {
        return Ok(None);
    }
    // Only the inline parts DuckDB reads are copied out of the replica,
    // from the snapshot the plan was made on.
    snapshot.load_inline(&mut files)?;
    drop(snapshot);
    let view = view_sql(connection, &schema, Some(&hive), &files, &urls)?;
    let answer = run_user_query(connection, name, &view, sql, files.len(), limits)?;
    Ok(Some((version, total, answer)))
}

//! Queries with DuckDB: the table appears to SQL as a view named after it
//! over its live files and Hive partition columns (built in `view.rs`),
//! after planning (`plan/`) pruned files by the query's own `WHERE`, by
//! partition and by per-file statistics. DuckDB's databases and their S3
//! credentials are `engine.rs`.

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use icedb_meta::{DataFile, PartitionFilter, PartitionStats, StatValue};

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
        // DuckDB parses the statement while the replica catches up.
        let parsing = {
            let sql = sql.to_owned();
            let span = tracing::debug_span!("query.parse");
            tokio::task::spawn_blocking(move || {
                let _span = span.entered();
                check_select(&connection, &sql).map(|parsed| (connection, parsed))
            })
        };
        let head = self.meta().sync().await;
        let (connection, parsed) = parsing
            .await
            .expect("parsing does not panic")
            .map_err(|e| scrub_error(e, credential.as_deref()))?;
        let head = head?;
        let snapshot = self.meta().snapshot()?;
        let name = self.name().to_owned();
        let sql = sql.to_owned();
        let options = options.clone();
        let integer_keys = self.integer_partition_keys();
        let files_at = self.query_engine.files.clone();
        let span = tracing::debug_span!("query.run");
        // Planning (the replica read included) and DuckDB run on the
        // blocking pool, as the parse did.
        let mut task = tokio::task::spawn_blocking(move || -> Result<(u64, usize, Answer)> {
            let _span = span.entered();
            let plan = Plan::of(&parsed, &name);
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
            let total = match &history {
                None => partitions.iter().map(|p| p.files as usize).sum(),
                Some(files) => files.len(),
            };
            let from_log = |known: Known<'_>| {
                metadata_answer(
                    &connection,
                    &name,
                    &sql,
                    (&plan, &filter),
                    (&schema, &hive),
                    known,
                    limits,
                )
            };
            // `count(*)` over whole partitions: their totals answer it
            // without listing a file.
            if at_head && options.ranges.is_empty() {
                let kept: Vec<PartitionStats> = partitions
                    .into_iter()
                    .filter(|p| {
                        options.partitions.matches(&p.partition)
                            && filter.may_match_partition(&p.partition)
                    })
                    .collect();
                if let Some(answer) = from_log(Known::Partitions(&kept))? {
                    return Ok((version, total, answer));
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
                return Ok((version, total, answer));
            }
            // Only the inline parts DuckDB reads are copied out of the
            // replica, from the snapshot the plan was made on.
            snapshot.load_inline(&mut files)?;
            drop(snapshot);
            let view = view_sql(&connection, &schema, Some(&hive), &files, &urls)?;
            let answer = run_user_query(&connection, &name, &view, &sql, files.len(), limits)?;
            Ok((version, total, answer))
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
        let (version, total, answer) = finished
            .expect("queries do not panic")
            .map_err(|e| scrub_error(e, credential.as_deref()))?;
        Ok(QueryResult {
            schema: answer.schema,
            batches: answer.batches,
            version,
            files_scanned: answer.files_scanned,
            files_pruned: total - answer.files_kept,
            elapsed: started.elapsed(),
        })
    }
}

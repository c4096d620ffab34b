//! Queries with DuckDB: the table appears to SQL as a view named after it
//! over its live files (union by name, Hive partition columns), after the
//! planner pruned files by partition and by per-file min/max statistics.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use duckdb::Connection;
use icedb_meta::{DataFile, PartitionFilter, StatValue, TableLocation};

use crate::config::TableConfig;
use crate::error::{Result, TableError};
use crate::schema::sql_type;
use crate::table::Table;

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
}

/// A query's answer and how it was reached.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// The table version the query read.
    pub version: u64,
    pub files_scanned: usize,
    pub files_pruned: usize,
    pub elapsed: Duration,
}

impl QueryResult {
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

pub(crate) struct QueryEngine {
    /// The database every query connection is cloned from (httpfs loaded and
    /// the S3 secret created once).
    db: Mutex<Connection>,
    files: FileUrls,
}

enum FileUrls {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

fn duck(e: duckdb::Error) -> TableError {
    TableError::Query(e.to_string())
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn quote_ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

impl QueryEngine {
    pub(crate) fn new(config: &TableConfig, location: &TableLocation) -> Result<Self> {
        let mut duck_config = duckdb::Config::default()
            .with("autoinstall_known_extensions", "false")
            .map_err(duck)?
            .with("autoload_known_extensions", "false")
            .map_err(duck)?;
        if let Some(dir) = &config.duckdb_extension_dir {
            duck_config = duck_config
                .with("extension_directory", dir.display().to_string())
                .map_err(duck)?;
        }
        let db = Connection::open_in_memory_with_flags(duck_config).map_err(duck)?;
        let files = match location {
            TableLocation::Local(path) => FileUrls::Local(
                std::path::absolute(path).map_err(|e| TableError::Config(e.to_string()))?,
            ),
            TableLocation::S3 {
                bucket,
                prefix,
                options,
            } => {
                db.execute_batch("LOAD httpfs;").map_err(|e| {
                    TableError::Config(format!(
                        "DuckDB's httpfs extension is needed for S3 tables and could not be loaded from the extension directory ({}): {e}",
                        config.duckdb_extension_dir.as_ref().map_or("DuckDB's default".to_owned(), |d| d.display().to_string())
                    ))
                })?;
                let env = |name: &str| std::env::var(name).ok();
                let key = options
                    .access_key_id
                    .clone()
                    .or_else(|| env("AWS_ACCESS_KEY_ID"))
                    .unwrap_or_default();
                let secret = options
                    .secret_access_key
                    .clone()
                    .or_else(|| env("AWS_SECRET_ACCESS_KEY"))
                    .unwrap_or_default();
                let region = options
                    .region
                    .clone()
                    .or_else(|| env("AWS_REGION"))
                    .unwrap_or_else(|| "us-east-1".to_owned());
                let mut secret_sql = format!(
                    "CREATE OR REPLACE SECRET icedb_table (TYPE S3, KEY_ID {}, SECRET {}, REGION {}",
                    quote_literal(&key),
                    quote_literal(&secret),
                    quote_literal(&region)
                );
                if let Some(token) = env("AWS_SESSION_TOKEN") {
                    secret_sql.push_str(&format!(", SESSION_TOKEN {}", quote_literal(&token)));
                }
                if let Some(endpoint) = &options.endpoint {
                    let use_ssl = !endpoint.starts_with("http://");
                    let host = endpoint
                        .trim_start_matches("http://")
                        .trim_start_matches("https://")
                        .trim_end_matches('/');
                    secret_sql.push_str(&format!(
                        ", ENDPOINT {}, USE_SSL {use_ssl}",
                        quote_literal(host)
                    ));
                }
                if options.path_style {
                    secret_sql.push_str(", URL_STYLE 'path'");
                }
                secret_sql.push(')');
                db.execute_batch(&secret_sql).map_err(duck)?;
                FileUrls::S3 {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                }
            }
        };
        if config.sandbox_queries {
            // DuckDB itself refuses every file and URL outside the table (and
            // any later attempt to lift that), whatever SQL gets through.
            let root = match &files {
                FileUrls::Local(root) => format!("{}/", root.display()),
                FileUrls::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}/"),
                FileUrls::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/"),
            };
            db.execute_batch(&format!(
                "SET allowed_directories = [{}]; SET enable_external_access = false; SET lock_configuration = true;",
                quote_literal(&root)
            ))
            .map_err(duck)?;
        }
        Ok(QueryEngine {
            db: Mutex::new(db),
            files,
        })
    }

    /// A DuckDB `read_parquet` over `files` (union by name). With
    /// `partition_columns`, the Hive path segments become columns; merges and
    /// rewrites turn that off so partition values never become data.
    pub(crate) fn read_parquet(&self, files: &[DataFile], partition_columns: bool) -> String {
        let list: Vec<String> = files
            .iter()
            .map(|f| quote_literal(&self.url(&f.path)))
            .collect();
        format!(
            "read_parquet([{}], union_by_name = true, hive_partitioning = {partition_columns})",
            list.join(", ")
        )
    }

    pub(crate) fn url(&self, path: &str) -> String {
        match &self.files {
            FileUrls::Local(root) => root.join(path).display().to_string(),
            FileUrls::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}/{path}"),
            FileUrls::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/{path}"),
        }
    }

    fn connection(&self) -> Result<Connection> {
        self.db
            .lock()
            .expect("duckdb lock poisoned")
            .try_clone()
            .map_err(duck)
    }

    /// Runs SQL on a fresh connection (no table view) and collects the result.
    pub(crate) async fn run(&self, sql: String) -> Result<Vec<RecordBatch>> {
        let connection = self.connection()?;
        tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>> {
            let mut statement = connection.prepare(&sql).map_err(duck)?;
            Ok(statement.query_arrow([]).map_err(duck)?.collect())
        })
        .await
        .expect("queries do not panic")
    }
}

/// Whether a file's statistics allow a value within `range`.
fn may_match(file: &DataFile, range: &ColumnRange) -> bool {
    let Some(stats) = file.columns.get(&range.column) else {
        return true;
    };
    let below =
        |a: &StatValue, b: &StatValue| crate::write::compare(a, b).is_some_and(|o| o.is_lt());
    if let (Some(file_max), Some(min)) = (&stats.max, &range.min)
        && below(file_max, min)
    {
        return false;
    }
    if let (Some(file_min), Some(max)) = (&stats.min, &range.max)
        && below(max, file_min)
    {
        return false;
    }
    true
}

impl Table {
    /// Runs `sql` against the table's live files at the newest version. The
    /// table is a view named after it; Hive partition columns (`y`, `m`,
    /// ...) are columns too.
    pub async fn query(&self, sql: &str, options: &QueryOptions) -> Result<QueryResult> {
        let started = Instant::now();
        let head = self.meta().sync().await?;
        let snapshot = self.meta().snapshot()?;
        let (version, candidates, total) = match options.version {
            None => (
                head,
                snapshot.files(&options.partitions)?,
                snapshot.file_count()? as usize,
            ),
            Some(version) => {
                let files = snapshot.files_at(version, &options.partitions)?.ok_or_else(|| {
                    TableError::Query(format!(
                        "version {version} cannot be read: the table has versions {} to {head} whose files all still exist",
                        snapshot.oldest_readable_version().unwrap_or(1)
                    ))
                })?;
                let total = snapshot
                    .files_at(version, &PartitionFilter::All)?
                    .map_or(0, |f| f.len());
                (version, files, total)
            }
        };
        let files: Vec<DataFile> = candidates
            .into_iter()
            .filter(|file| options.ranges.iter().all(|range| may_match(file, range)))
            .collect();
        let schema = snapshot.schema()?;
        drop(snapshot);

        let view = if files.is_empty() {
            let columns: Vec<String> = if schema.is_empty() {
                vec!["NULL AS \"_empty\"".to_owned()]
            } else {
                schema
                    .iter()
                    .map(|c| {
                        format!(
                            "CAST(NULL AS {}) AS {}",
                            sql_type(c.column_type),
                            quote_ident(&c.name)
                        )
                    })
                    .collect()
            };
            format!("SELECT {} WHERE false", columns.join(", "))
        } else {
            format!(
                "SELECT * FROM {}",
                self.query_engine.read_parquet(&files, true)
            )
        };
        let connection = self.query_engine.connection()?;
        let name = quote_ident(self.name());
        let sql = sql.to_owned();
        let interrupt = connection.interrupt_handle();
        let max_rows = options.max_rows;
        let mut task =
            tokio::task::spawn_blocking(move || -> Result<(SchemaRef, Vec<RecordBatch>)> {
                connection
                    .execute_batch(&format!("CREATE OR REPLACE TEMP VIEW {name} AS {view}"))
                    .map_err(duck)?;
                let mut statement = connection.prepare(&sql).map_err(duck)?;
                let arrow = statement.query_arrow([]).map_err(duck)?;
                let schema = arrow.get_schema();
                let mut batches = Vec::new();
                let mut rows = 0;
                for batch in arrow {
                    rows += batch.num_rows();
                    if let Some(limit) = max_rows
                        && rows > limit
                    {
                        return Err(TableError::ResultTooLarge { limit });
                    }
                    batches.push(batch);
                }
                Ok((schema, batches))
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
        let (schema, batches) = finished.expect("queries do not panic")?;
        Ok(QueryResult {
            schema,
            batches,
            version,
            files_scanned: files.len(),
            files_pruned: total - files.len(),
            elapsed: started.elapsed(),
        })
    }
}

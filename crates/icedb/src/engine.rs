//! DuckDB's databases for a table: one for IceDB's own SQL (merges,
//! rewrites), one for user queries (sandboxed to the table's root, limits
//! applied, no credential readable from SQL), each rebuilt when the S3
//! credentials it holds change; the URLs DuckDB reads files by; the
//! scrubbing of credentials from DuckDB's messages; and DuckDB's parser as
//! the judge of whether SQL is one read-only SELECT.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use duckdb::Connection;
use icedb_meta::{ColumnDef, DataFile, S3Access, TableLocation};
use object_store::aws::AwsCredential;

use crate::config::TableConfig;
use crate::error::{Result, TableError};
use crate::view::view_sql;

pub(crate) struct QueryEngine {
    /// Merges, rewrites and merge queries: SQL IceDB writes, never a
    /// user's.
    pub(crate) internal: Database,
    /// User queries: a database of their own (nothing they could define is
    /// seen by a merge), sandboxed to the table's root, with no credential
    /// readable from SQL.
    pub(crate) user: Database,
    pub(crate) files: FileUrls,
    settings: EngineSettings,
}

#[derive(Clone)]
struct EngineSettings {
    extension_dir: Option<PathBuf>,
    s3: Option<S3Access>,
    /// The table root DuckDB may read (user queries only).
    sandbox_root: Option<String>,
    memory_limit: Option<String>,
    threads: Option<usize>,
}

/// A DuckDB database every connection is cloned from, rebuilt when the S3
/// credentials it holds change (a rotated session token).
pub(crate) struct Database {
    sandboxed: bool,
    current: tokio::sync::Mutex<Option<(Option<Arc<AwsCredential>>, Connection)>>,
}

#[derive(Clone)]
pub(crate) enum FileUrls {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl FileUrls {
    /// The URL DuckDB reads the object at `path` (relative to the table
    /// root) by.
    pub(crate) fn url(&self, path: &str) -> String {
        match self {
            FileUrls::Local(root) => root.join(path).display().to_string(),
            FileUrls::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}/{path}"),
            FileUrls::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/{path}"),
        }
    }
}

pub(crate) fn duck(e: duckdb::Error) -> TableError {
    TableError::DuckDb(e.to_string())
}

pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

pub(crate) fn quote_ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Where DuckDB's extensions (httpfs) are looked for when the table does not
/// say: `ICEDB_DUCKDB_EXTENSION_DIR`, else the directory `scripts/setup.sh`
/// installs them in (`$ICEDB_CACHE/duckdb/extensions`, by default under the
/// user's cache directory), else a `duckdb-extensions` directory beside the
/// running binary.
pub fn default_extension_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ICEDB_DUCKDB_EXTENSION_DIR") {
        return Some(PathBuf::from(dir));
    }
    let cache = std::env::var_os("ICEDB_CACHE")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("icedb")));
    let candidates = cache
        .map(|c| c.join("duckdb").join("extensions"))
        .into_iter()
        .chain(
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|d| d.join("duckdb-extensions"))),
        );
    candidates.into_iter().find(|dir| dir.is_dir())
}

impl EngineSettings {
    /// Opens a database: extensions offline from the extension directory,
    /// httpfs and the S3 secret for S3 tables, and for user queries the
    /// sandbox (DuckDB refuses every file and URL outside the table and any
    /// later attempt to lift that) and the resource limits.
    fn open(&self, sandboxed: bool, credential: Option<&AwsCredential>) -> Result<Connection> {
        let mut duck_config = duckdb::Config::default()
            .with("autoinstall_known_extensions", "false")
            .map_err(duck)?
            .with("autoload_known_extensions", "false")
            .map_err(duck)?;
        if let Some(dir) = &self.extension_dir {
            duck_config = duck_config
                .with("extension_directory", dir.display().to_string())
                .map_err(duck)?;
        }
        let db = Connection::open_in_memory_with_flags(duck_config).map_err(duck)?;
        if let Some(s3) = &self.s3 {
            db.execute_batch("LOAD httpfs;").map_err(|e| {
                TableError::Config(format!(
                    "DuckDB's httpfs extension is needed for S3 tables and could not be loaded from {}: {e}. \
                     Run scripts/setup.sh (it installs httpfs into ~/.cache/icedb/duckdb/extensions), \
                     or point ICEDB_DUCKDB_EXTENSION_DIR or [duckdb] extension_dir at a directory holding \
                     v1.4.4/linux_amd64/httpfs.duckdb_extension (PyPI: duckdb-ext-httpfs==1.4.4.*)",
                    self.extension_dir
                        .as_ref()
                        .map_or("DuckDB's default extension directory".to_owned(), |d| d.display().to_string())
                ))
            })?;
            // httpfs reads the AWS variables into settings anyone could
            // read with current_setting() from any connection (an empty
            // value falls back to the variable, and a plain SET only changes
            // this connection); the secret below is what requests use.
            db.execute_batch(
                "SET GLOBAL s3_access_key_id = 'redacted'; SET GLOBAL s3_secret_access_key = 'redacted'; \
                 SET GLOBAL s3_session_token = 'redacted';",
            )
            .map_err(duck)?;
            let mut secret_sql = format!(
                "CREATE OR REPLACE SECRET icedb_table (TYPE S3, REGION {}",
                quote_literal(&s3.region)
            );
            if let Some(credential) = credential {
                secret_sql.push_str(&format!(
                    ", KEY_ID {}, SECRET {}",
                    quote_literal(&credential.key_id),
                    quote_literal(&credential.secret_key)
                ));
                if let Some(token) = &credential.token {
                    secret_sql.push_str(&format!(", SESSION_TOKEN {}", quote_literal(token)));
                }
            }
            if let Some(endpoint) = &s3.endpoint {
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
            if s3.path_style {
                secret_sql.push_str(", URL_STYLE 'path'");
            }
            secret_sql.push(')');
            db.execute_batch(&secret_sql).map_err(|e| {
                TableError::Config(format!(
                    "creating DuckDB's S3 secret: {}",
                    scrub(&e.to_string(), credential)
                ))
            })?;
        }
        // Data files are immutable (a new name for every write), so what
        // DuckDB learns about one never goes stale: a long-running process
        // (the host) re-reads a file with no request at all (measured in
        // docs/ARCHITECTURE.md, "Requests per scanned file").
        db.execute_batch(if self.s3.is_some() {
            "SET GLOBAL parquet_metadata_cache = true; SET GLOBAL enable_http_metadata_cache = true;"
        } else {
            "SET GLOBAL parquet_metadata_cache = true;"
        })
        .map_err(duck)?;
        if sandboxed {
            let mut sql = String::new();
            if let Some(limit) = &self.memory_limit {
                sql.push_str(&format!("SET memory_limit = {};", quote_literal(limit)));
            }
            if let Some(threads) = self.threads {
                sql.push_str(&format!("SET threads = {threads};"));
            }
            if let Some(root) = &self.sandbox_root {
                sql.push_str(&format!(
                    "SET allowed_directories = [{}]; SET enable_external_access = false;",
                    quote_literal(root)
                ));
            }
            sql.push_str("SET lock_configuration = true;");
            db.execute_batch(&sql).map_err(duck)?;
        }
        Ok(db)
    }
}

/// Removes credentials from a message (DuckDB errors may echo them).
fn scrub(message: &str, credential: Option<&AwsCredential>) -> String {
    let Some(credential) = credential else {
        return message.to_owned();
    };
    let mut message = message.to_owned();
    for secret in [
        Some(credential.secret_key.as_str()),
        credential.token.as_deref(),
        Some(credential.key_id.as_str()),
    ]
    .into_iter()
    .flatten()
    .filter(|s| s.len() >= 4)
    {
        message = message.replace(secret, "***");
    }
    message
}

impl QueryEngine {
    pub(crate) fn new(config: &TableConfig, location: &TableLocation) -> Result<Self> {
        let files = match location {
            TableLocation::Local(path) => FileUrls::Local(
                std::path::absolute(path).map_err(|e| TableError::Config(e.to_string()))?,
            ),
            TableLocation::S3 { bucket, prefix, .. } => FileUrls::S3 {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
            },
        };
        let sandbox_root = config.sandbox_queries.then(|| match &files {
            FileUrls::Local(root) => format!("{}/", root.display()),
            FileUrls::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}/"),
            FileUrls::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/"),
        });
        let settings = EngineSettings {
            extension_dir: config
                .duckdb_extension_dir
                .clone()
                .or_else(default_extension_dir),
            s3: location.s3_access()?,
            sandbox_root,
            memory_limit: config.query_memory_limit.clone(),
            threads: config.query_threads,
        };
        Ok(QueryEngine {
            internal: Database {
                sandboxed: false,
                current: tokio::sync::Mutex::new(None),
            },
            user: Database {
                sandboxed: true,
                current: tokio::sync::Mutex::new(None),
            },
            files,
            settings,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        self.files.url(path)
    }

    /// The current S3 credential (the writes' chain; cached and refreshed
    /// before expiry by object_store).
    async fn credential(&self) -> Result<Option<Arc<AwsCredential>>> {
        let Some(s3) = &self.settings.s3 else {
            return Ok(None);
        };
        let credential = s3
            .credentials
            .get_credential()
            .await
            .map_err(|e| TableError::Config(format!("no S3 credentials for queries: {e}")))?;
        Ok(Some(credential))
    }

    /// Opens the databases of user queries and of merges (DuckDB loads its
    /// extensions once, here, instead of in the first query).
    pub(crate) async fn open(&self) -> Result<()> {
        let (connection, _) = self.connection_of(&self.user).await?;
        // The parser's first statement loads what it needs (a few ms).
        tokio::task::spawn_blocking(move || check_select(&connection, "SELECT 1").map(drop))
            .await
            .expect("parsing does not panic")?;
        self.connection_of(&self.internal).await?;
        Ok(())
    }

    /// A connection of `database`, rebuilt first if the credentials changed.
    pub(crate) async fn connection_of(
        &self,
        database: &Database,
    ) -> Result<(Connection, Option<Arc<AwsCredential>>)> {
        let credential = self.credential().await?;
        let mut current = database.current.lock().await;
        let stale = match current.as_ref() {
            Some((held, _)) => held.as_deref().map(key_of) != credential.as_deref().map(key_of),
            None => true,
        };
        if stale {
            let settings = self.settings.clone();
            let (sandboxed, for_open) = (database.sandboxed, credential.clone());
            let opened =
                tokio::task::spawn_blocking(move || settings.open(sandboxed, for_open.as_deref()))
                    .await
                    .expect("opening DuckDB does not panic")?;
            *current = Some((credential.clone(), opened));
        }
        let (_, connection) = current.as_ref().expect("opened above");
        Ok((connection.try_clone().map_err(duck)?, credential))
    }

    /// Runs IceDB's own SQL (merge queries, rewrites) over `files` (inline
    /// parts included, no partition columns) on a fresh connection of the
    /// internal database and collects the result. `sql` is given the
    /// relation holding the files' rows, with the columns of `schema`.
    pub(crate) async fn run_over(
        &self,
        files: Vec<DataFile>,
        schema: Vec<ColumnDef>,
        sql: impl FnOnce(&str) -> String + Send + 'static,
    ) -> Result<Vec<RecordBatch>> {
        let urls: Vec<String> = files.iter().map(|f| self.url(&f.path)).collect();
        let (connection, credential) = self.connection_of(&self.internal).await?;
        tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>> {
            let view = view_sql(&connection, &schema, None, &files, &urls)?;
            let sql = sql(&format!("({view})"));
            let mut statement = connection.prepare(&sql).map_err(duck)?;
            Ok(statement.query_arrow([]).map_err(duck)?.collect())
        })
        .await
        .expect("queries do not panic")
        .map_err(|e| scrub_error(e, credential.as_deref()))
    }
}

fn key_of(credential: &AwsCredential) -> (&str, &str, Option<&str>) {
    (
        credential.key_id.as_str(),
        credential.secret_key.as_str(),
        credential.token.as_deref(),
    )
}

pub(crate) fn scrub_error(error: TableError, credential: Option<&AwsCredential>) -> TableError {
    match error {
        TableError::DuckDb(message) => TableError::DuckDb(scrub(&message, credential)),
        other => other,
    }
}

/// Accepts `sql` only if DuckDB's own parser says it is exactly one
/// statement of the SELECT kind (`json_serialize_sql` serialises SELECT
/// statements only, and lists every statement it parsed).
pub(crate) fn check_select(connection: &Connection, sql: &str) -> Result<serde_json::Value> {
    let serialized: String = connection
        .query_row("SELECT json_serialize_sql(?::VARCHAR)", [sql], |row| {
            row.get(0)
        })
        .map_err(duck)?;
    let parsed: serde_json::Value = serde_json::from_str(&serialized)
        .map_err(|e| TableError::DuckDb(format!("reading DuckDB's parse of the query: {e}")))?;
    let quoted = {
        let text = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let head: String = text.chars().take(80).collect();
        if head.len() < text.len() {
            format!("`{head}…`")
        } else {
            format!("`{head}`")
        }
    };
    if parsed["error"].as_bool().unwrap_or(true) {
        let message = parsed["error_message"].as_str().unwrap_or("unknown error");
        return Err(TableError::NotReadOnly(
            if parsed["error_type"].as_str() == Some("parser") {
                format!("DuckDB cannot parse {quoted}: {message}")
            } else {
                format!("{quoted} is not a single read-only SELECT statement (DuckDB: {message})")
            },
        ));
    }
    let statements = parsed["statements"].as_array().map_or(0, Vec::len);
    if statements != 1 {
        return Err(TableError::NotReadOnly(format!(
            "{quoted} holds {statements} statements; exactly one SELECT is accepted"
        )));
    }
    Ok(parsed)
}

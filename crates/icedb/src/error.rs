use icedb_meta::{ColumnType, CommitError, MetaError};
use icedb_plugin::PluginError;

/// Everything that can go wrong with a table. Input errors (bad JSON, a
/// schema clash, a plugin refusing a row) are found before anything is
/// uploaded and name the row or line.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A commit that did not return a receipt; whether it may have landed
    /// is in the variant ([`CommitError::certainly_not_committed`]).
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("exporting the Delta log: {0}")]
    Delta(#[from] icedb_delta::DeltaError),
    /// A vacuum grace below the retention floor without `force`.
    #[error(
        "a vacuum grace of {} is below the retention floor of {}: files that young may belong to a commit still in flight (or a writer whose clock is behind); force it (`vacuum --force`, `VacuumOptions::force`) only when no writer runs",
        humantime::format_duration(*.grace), humantime::format_duration(*.floor)
    )]
    GraceBelowFloor {
        grace: std::time::Duration,
        floor: std::time::Duration,
    },
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Input that is not what the formatter accepts (malformed JSON, not an
    /// object, an unreadable timestamp). `line` is 1-based for NDJSON input.
    #[error("{}: {reason}", location(*.row, *.line))]
    BadInput {
        row: usize,
        line: Option<usize>,
        reason: String,
    },
    #[error("schema clash on column `{column}`: the table has {existing}, {} holds {found}", location(*.row, *.line))]
    SchemaClash {
        column: String,
        existing: ColumnType,
        found: ColumnType,
        row: usize,
        line: Option<usize>,
    },
    #[error("query stopped: it ran longer than its time limit of {}", humantime::format_duration(*.limit))]
    QueryTimeout { limit: std::time::Duration },
    #[error("the query's result has more than {limit} rows; add a LIMIT or aggregate")]
    ResultTooLarge { limit: usize },
    #[error(
        "the query's result is larger than {limit} bytes; add a LIMIT, select fewer columns or aggregate"
    )]
    ResultTooManyBytes { limit: usize },
    /// SQL that is not exactly one read-only statement.
    #[error("query refused: {0}")]
    NotReadOnly(String),
    #[error("partitioning {}: {reason}", location(*.row, *.line))]
    Partition {
        row: usize,
        line: Option<usize>,
        reason: String,
    },
    #[error("object store error at {location}: {source}")]
    Store {
        location: String,
        #[source]
        source: object_store::Error,
    },
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("building Arrow data: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// DuckDB refused or failed a statement (the query's SQL, a merge
    /// query, a rewrite's condition); the message is DuckDB's, with any
    /// credential scrubbed.
    #[error("query failed: {0}")]
    DuckDb(String),
    /// Time travel to a version whose files are gone.
    #[error(
        "version {version} cannot be read: the table has versions {oldest} to {head} whose files all still exist"
    )]
    VersionNotReadable {
        version: u64,
        oldest: u64,
        head: u64,
    },
    /// A result column of a type IceDB tables cannot store (a merge query's).
    #[error("column `{column}` has type {data_type}, which IceDB tables cannot store")]
    UnstorableType { column: String, data_type: String },
    /// A merge query whose result has no columns.
    #[error("the merge query returned no columns")]
    MergeQueryEmpty,
    /// An operation kept losing to concurrent commits.
    #[error("{operation} lost to concurrent commits {attempts} times; try again")]
    Contended {
        operation: &'static str,
        attempts: usize,
    },
    /// A plugin's component file could not be read (to hash or load it).
    #[error("reading plugin {path}: {source}")]
    PluginFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The log holds a definition this IceDB cannot read.
    #[error("the table's recorded definition is unreadable (written by a newer IceDB?): {0}")]
    DefinitionUnreadable(#[source] serde_json::Error),
    /// An alter of a table that has no definition yet (its first insert
    /// records one).
    #[error(
        "the table has no recorded definition yet: its first insert records the settings it is given, no alter needed"
    )]
    NotDefinedYet,
    /// An alter of the partitioning while files are laid out by it.
    #[error(
        "the table's partitioning is {recorded} and it has {live_files} live files laid out by it; partitioning can only be altered on a table without live files (drop its partitions first)"
    )]
    PartitioningInUse { recorded: String, live_files: u64 },
    /// Settings that cannot describe a table (a bad name, an unreadable
    /// extension directory, missing credentials for queries).
    #[error("invalid table configuration: {0}")]
    Config(String),
    /// A setting given to this process contradicts the table's recorded
    /// definition.
    #[error(
        "the table's {setting} is {table}, but this process was given {given}; omit the setting to follow the table"
    )]
    DefinitionMismatch {
        setting: String,
        table: String,
        given: String,
    },
    /// This process may read the table but not write it.
    #[error("cannot write: {0}")]
    WriteBlocked(String),
    /// An inline part's bytes in the log do not decode.
    #[error("an inline part in the log is unreadable: {0}")]
    InlinePart(String),
}

fn location(row: usize, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("line {line}"),
        None => format!("row {row}"),
    }
}

impl TableError {
    pub(crate) fn store(location: impl std::fmt::Display, source: object_store::Error) -> Self {
        TableError::Store {
            location: location.to_string(),
            source,
        }
    }

    /// Names the NDJSON line of a row-level error, given each row's line.
    pub(crate) fn with_lines(self, lines: Option<&[usize]>) -> Self {
        let Some(lines) = lines else { return self };
        match self {
            TableError::BadInput { row, reason, .. } => TableError::BadInput {
                row,
                line: lines.get(row).copied(),
                reason,
            },
            TableError::SchemaClash {
                column,
                existing,
                found,
                row,
                ..
            } => TableError::SchemaClash {
                column,
                existing,
                found,
                row,
                line: lines.get(row).copied(),
            },
            TableError::Partition { row, reason, .. } => TableError::Partition {
                row,
                line: lines.get(row).copied(),
                reason,
            },
            other => other,
        }
    }

    /// Whether the request was at fault: its rows, its SQL or its
    /// settings (sending the same again cannot help).
    pub fn is_request_error(&self) -> bool {
        self.is_input_error()
            || matches!(
                self,
                TableError::DuckDb(_)
                    | TableError::NotReadOnly(_)
                    | TableError::QueryTimeout { .. }
                    | TableError::ResultTooLarge { .. }
                    | TableError::ResultTooManyBytes { .. }
                    | TableError::VersionNotReadable { .. }
                    | TableError::UnstorableType { .. }
                    | TableError::MergeQueryEmpty
                    | TableError::GraceBelowFloor { .. }
            )
    }

    /// Whether nothing was written and the same request may simply be
    /// sent again later (a commit that certainly did not land, contention).
    pub fn is_retryable(&self) -> bool {
        match self {
            TableError::Commit(e) => e.certainly_not_committed(),
            TableError::Contended { .. } => true,
            _ => false,
        }
    }

    /// Whether the input was at fault (retrying the same rows cannot help).
    pub fn is_input_error(&self) -> bool {
        match self {
            TableError::BadInput { .. }
            | TableError::SchemaClash { .. }
            | TableError::Partition { .. } => true,
            TableError::Plugin(e) => e.is_input_error(),
            _ => false,
        }
    }
}

pub type Result<T, E = TableError> = std::result::Result<T, E>;

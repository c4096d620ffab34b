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
    #[error("query failed: {0}")]
    Query(String),
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

//! What exporting can fail with.

/// An export that failed; the Delta log is left at a whole version (every
/// Delta commit is one conditional PUT), and the next export resumes.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error(transparent)]
    Meta(#[from] icedb_meta::MetaError),
    #[error("delta log: {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error(
        "IceDB log entry {version} expired before it was exported to the Delta log; delete _delta_log to export the table anew from its current state"
    )]
    Expired { version: u64 },
    #[error(
        "partition {partition:?} has keys {found:?}, the Delta table's partition columns are {expected:?}: a Delta table has one set of partition columns"
    )]
    PartitionKeys {
        partition: String,
        expected: Vec<String>,
        found: Vec<String>,
    },
    #[error(
        "column {name:?} cannot be a Delta column (no spaces or any of ,;{{}}()=, tabs or newlines without column mapping)"
    )]
    ColumnName { name: String },
    #[error("delta log: {path} is not what IceDB writes: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("delta checkpoint: {0}")]
    Checkpoint(String),
}

impl DeltaError {
    pub(crate) fn store(path: &object_store::path::Path, source: object_store::Error) -> Self {
        DeltaError::Store {
            path: path.to_string(),
            source,
        }
    }
}

pub(crate) type Result<T, E = DeltaError> = std::result::Result<T, E>;

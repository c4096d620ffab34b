use crate::model::ColumnType;

/// Why a commit lost to a concurrent one. Nothing was committed; the caller
/// may plan again from the new state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("file {path} was already removed by version {by_version}")]
    FileAlreadyRemoved { path: String, by_version: u64 },
    #[error("file {path} is not live in partition {partition}")]
    FileNotLive { path: String, partition: String },
    #[error("column `{column}` is {existing} in the table but this commit writes {proposed}")]
    Schema {
        column: String,
        existing: ColumnType,
        proposed: ColumnType,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("commit conflict: {0}")]
    Conflict(#[from] Conflict),
    #[error("object store error at {location}: {source}")]
    Store {
        location: String,
        #[source]
        source: object_store::Error,
    },
    #[error("log entry {object} is damaged: {reason}")]
    CorruptLog { object: String, reason: String },
    #[error("the commit log has no version {missing} (it has {found}); {hint}")]
    MissingVersion {
        missing: u64,
        found: u64,
        hint: String,
    },
    #[error(
        "the store does not honour conditional creates, so concurrent writers would overwrite each other's commits: {0}"
    )]
    UnsafeStore(String),
    #[error("gave up committing after {attempts} attempts lost to concurrent writers")]
    TooManyRetries { attempts: u32 },
    #[error("invalid table location `{url}`: {reason}")]
    InvalidLocation { url: String, reason: String },
    #[error("local replica {path}: {reason}")]
    Replica { path: String, reason: String },
    #[error("invalid commit: {0}")]
    InvalidCommit(String),
}

impl MetaError {
    pub(crate) fn store(location: impl std::fmt::Display, source: object_store::Error) -> Self {
        MetaError::Store {
            location: location.to_string(),
            source,
        }
    }

    /// The conflict, if this error is one.
    pub fn as_conflict(&self) -> Option<&Conflict> {
        match self {
            MetaError::Conflict(conflict) => Some(conflict),
            _ => None,
        }
    }
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

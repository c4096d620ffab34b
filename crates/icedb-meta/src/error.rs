use crate::model::ColumnType;

/// Why a commit was refused against the table's current state. Nothing was
/// committed; the caller may plan again from the new state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("file {path} was already removed by version {by_version}")]
    FileAlreadyRemoved { path: String, by_version: u64 },
    #[error("file {path} is not live in partition {partition}")]
    FileNotLive { path: String, partition: String },
    /// A commit adding a path the log already holds (live, tombstoned or
    /// purged): committing it would make one file live twice, or resurrect
    /// a deleted one.
    #[error("file {path} was already added by version {by_version}; a path is committed once")]
    FileAlreadyAdded { path: String, by_version: u64 },
    /// A commit adding a file its writer named (UUIDv7, `minted_ms`)
    /// longer before the commit than a purged path stays retired: the
    /// writer stalled so long that its file may have been merged away,
    /// purged and forgotten since.
    #[error(
        "file {path} was named {age_hours} hours before this commit, longer than a commit may take to add it; write its rows again"
    )]
    FileTooOld {
        path: String,
        minted_ms: i64,
        age_hours: i64,
    },
    /// The table was defined (by another writer's first commit, or altered
    /// since this writer opened it) otherwise than this writer assumed.
    #[error(
        "the table is defined as {recorded}, but this writer assumed {assumed} (it was defined or altered by another process: reopen the table to follow it)"
    )]
    Definition { recorded: String, assumed: String },
    /// Inline parts would exceed the writer's bound on the inline bytes the
    /// table holds (live, and flushed but not yet purged): write the rows
    /// as files instead.
    #[error(
        "the table holds {held} bytes of inline rows; adding {adding} would pass the limit of {limit}"
    )]
    InlineFull { held: u64, adding: u64, limit: u64 },
    #[error("column `{column}` is {existing} in the table but this commit writes {proposed}")]
    Schema {
        column: String,
        existing: ColumnType,
        proposed: ColumnType,
    },
}

/// Errors of the meta store other than a commit's outcome (see
/// [`CommitError`] for those).
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
    /// The log holds another table than the replica describes (the table
    /// was deleted and re-created). The replica is discarded and rebuilt.
    #[error("the store holds table {found}, but the local replica describes table {expected}")]
    TableReplaced { expected: String, found: String },
    #[error(
        "the store does not honour conditional creates, so concurrent writers would overwrite each other's commits: {0}"
    )]
    UnsafeStore(String),
    #[error("invalid table location `{url}`: {reason}")]
    InvalidLocation { url: String, reason: String },
    #[error("local replica {path} is in use by another process")]
    ReplicaInUse { path: String },
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

    pub(crate) fn replica_io(path: &std::path::Path, error: impl std::fmt::Display) -> Self {
        MetaError::Replica {
            path: path.display().to_string(),
            reason: error.to_string(),
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

/// Why a commit did not return a receipt. The variant says whether the
/// commit may have landed: only a certainly-uncommitted commit lets the
/// caller delete the files it uploaded.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Certainly not committed: the table's state refuses the draft (a
    /// removed file is gone, a path reused, a column type clashes).
    #[error("commit conflict: {0}")]
    Conflict(Conflict),
    /// Certainly not committed: no request that could have created a log
    /// entry landed (the draft was invalid, the store failed before any
    /// attempt, every attempt lost its race, or the commit ran out of time
    /// before sending another attempt).
    #[error("not committed: {0}")]
    NotCommitted(#[source] NotCommitted),
    /// The outcome is unknown: an attempt may have landed and the store
    /// could not be read to find out within the outcome budget. Its files
    /// must be kept (vacuum collects them if the commit truly did not land).
    #[error(
        "the outcome of commit {id} is unknown (attempted version(s) {versions:?}; the store could not confirm either way): {last_error}"
    )]
    OutcomeUnknown {
        id: String,
        versions: Vec<u64>,
        #[source]
        last_error: Box<MetaError>,
    },
}

/// Why a commit certainly did not land.
#[derive(Debug, thiserror::Error)]
pub enum NotCommitted {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("gave up after {attempts} attempts lost to concurrent writers")]
    TooManyRetries { attempts: u32 },
    #[error("gave up after {elapsed:?} (the commit's time limit is {limit:?})")]
    TimeLimit {
        elapsed: std::time::Duration,
        limit: std::time::Duration,
    },
}

impl CommitError {
    /// Whether the commit certainly did not land (its files may be deleted).
    pub fn certainly_not_committed(&self) -> bool {
        !matches!(self, CommitError::OutcomeUnknown { .. })
    }

    /// The conflict, if this error is one.
    pub fn as_conflict(&self) -> Option<&Conflict> {
        match self {
            CommitError::Conflict(conflict) => Some(conflict),
            _ => None,
        }
    }

    pub(crate) fn not_committed(error: impl Into<NotCommitted>) -> Self {
        CommitError::NotCommitted(error.into())
    }
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

//! icedb-meta owns IceDB's meta store: the commit log in object storage
//! (`_icedb/log/<version:020>.json`, one conditional create per version, so
//! exactly one writer wins each version and no clock orders anything), the
//! local redb replica kept in sync with it, checkpoints
//! (`_icedb/checkpoints/<version:020>.redb`) for fast bootstrap, conflict
//! checks, and the store check that refuses stores without conditional
//! creates. It knows nothing of plugins or of what is inside data files.

mod error;
mod location;
mod log;
mod meta;
mod model;
mod replica;

pub use error::{Conflict, MetaError, Result};
pub use location::{S3Options, TableLocation};
pub use meta::{
    CommitReceipt, ExpirePolicy, ExpireReport, LogDiscovery, MetaOptions, MetaStore, StoreRace,
    race_conditional_creates,
};
pub use model::{
    COMMIT_FORMAT, ColumnDef, ColumnStats, ColumnType, Commit, CommitDraft, CommitSummary,
    DataFile, FileRef, Operation, PartitionStats, StatValue, Tombstone, Totals,
};
pub use replica::{PartitionFilter, Snapshot};

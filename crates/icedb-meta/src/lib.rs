//! icedb-meta owns IceDB's meta store: the commit log in object storage
//! (`_icedb/log/<version:020>.json`, one conditional create per version, so
//! exactly one writer wins each version and no clock orders anything), the
//! commit protocol whose errors say whether a commit may have landed, the
//! local redb replica kept in sync with the log (and discarded when the
//! store holds a re-created table), checkpoints
//! (`_icedb/checkpoints/<version:020>.redb`) for fast bootstrap, conflict
//! checks, durable (fsynced) local stores, the store check that refuses
//! stores without conditional creates, and inline parts (small data files
//! whose bytes the log itself carries, bounded per table). It knows nothing
//! of plugins or of what is inside data files.

mod checkpoint;
mod commit;
mod discovery;
mod durable;
mod error;
mod expire;
mod location;
mod log;
mod meta;
mod model;
mod prefixed;
mod replica;
mod store_check;

pub use commit::{CommitReceipt, PostCommit, PreparedCommit, ReadHead};
pub use error::{CommitError, Conflict, MetaError, NotCommitted, Result};
pub use expire::{ExpirePolicy, ExpireReport};
pub use location::{RetryOptions, S3Access, S3Options, TableLocation};
pub use meta::{LogDiscovery, MetaOptions, MetaStore, get_if_present};
pub use model::{
    COMMIT_FORMAT, ColumnDef, ColumnStats, ColumnType, Commit, CommitDraft, CommitSummary,
    DataFile, FileRef, INLINE_PREFIX, InlineData, InlineSegment, Operation, PartitionStats,
    SegmentRef, StatValue, Tombstone, Totals, is_inline_path,
};
pub use replica::{PartitionFilter, Snapshot};
pub use store_check::{StoreRace, race_conditional_creates};

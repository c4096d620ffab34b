//! The table's log as host and dashboard see it: syncing, snapshots,
//! history, checkpoints and the store check, through [`Table`] so callers
//! never reach into the meta store.

use std::sync::Arc;

use icedb_meta::{CommitSummary, Snapshot, StoreRace, TableLocation};
use object_store::ObjectStore;

use crate::config::TableConfig;
use crate::error::Result;
use crate::table::Table;

impl Table {
    /// Brings the replica up to the log's head; returns the head version.
    pub async fn sync(&self) -> Result<u64> {
        Ok(self.meta().sync().await?)
    }

    /// A consistent view of the table as of the replica's version (call
    /// [`Table::sync`] first for the newest).
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.meta().snapshot()?)
    }

    /// The replica's version, without asking the store.
    pub fn version(&self) -> Result<u64> {
        Ok(self.meta().local_version()?)
    }

    /// The newest `limit` commits, newest first (synced first).
    pub async fn history(&self, limit: usize) -> Result<Vec<CommitSummary>> {
        Ok(self.meta().history(limit).await?)
    }

    /// Writes a checkpoint of the current version; returns it.
    pub async fn checkpoint(&self) -> Result<u64> {
        Ok(self.meta().checkpoint().await?)
    }

    /// The version of the newest checkpoint, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<u64>> {
        Ok(self.meta().latest_checkpoint().await?)
    }

    /// Refuses a store that would let two writers both win one version
    /// (no conditional creates).
    pub async fn check_store(&self) -> Result<()> {
        Ok(self.meta().check_store().await?)
    }
}

/// Races `racers` conditional creates of one key in the store `config`
/// names and reports how many won (exactly one must), without opening the
/// table.
pub async fn race_conditional_creates(config: &TableConfig, racers: usize) -> Result<StoreRace> {
    let location = TableLocation::parse(&config.root, &config.s3)?;
    let store: Arc<dyn ObjectStore> = location.open_store()?;
    Ok(icedb_meta::race_conditional_creates(&store, racers).await?)
}

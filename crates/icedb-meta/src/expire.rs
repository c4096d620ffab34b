//! Expiry of old log entries and checkpoints.

use object_store::PutPayload;
use object_store::path::Path;

use crate::discovery::EXPIRED_MARKER;
use crate::error::{MetaError, Result};
use crate::log::{CHECKPOINT_DIR, LOG_DIR, checkpoint_path, log_path};
use crate::meta::MetaStore;

/// What [`MetaStore::expire`] keeps.
#[derive(Debug, Clone, Copy)]
pub struct ExpirePolicy {
    /// Newest checkpoints to keep (at least 1).
    pub keep_checkpoints: usize,
    /// Log entries of the newest this-many versions are always kept.
    pub keep_log_versions: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireReport {
    pub log_entries_deleted: u64,
    pub checkpoints_deleted: u64,
}

impl MetaStore {
    /// Deletes old checkpoints and log entries: keeps the newest
    /// `keep_checkpoints` checkpoints, and log entries newer than the oldest
    /// kept checkpoint or among the newest `keep_log_versions`. Without a
    /// checkpoint nothing in the log is deleted (a new process would have
    /// nothing to start from). Idempotent. The newest versions kept are
    /// counted from this replica's head, without a sync (vacuum has just
    /// synced): a replica behind the log only expires less.
    pub async fn expire(&self, policy: ExpirePolicy) -> Result<ExpireReport> {
        let head = self.local_version()?;
        let mut checkpoints = self.list_versions(CHECKPOINT_DIR, "redb").await?;
        checkpoints.sort_unstable_by(|a, b| b.cmp(a));
        let keep = policy.keep_checkpoints.max(1);
        let mut report = ExpireReport::default();
        let Some(&oldest_kept) = checkpoints.get(keep - 1).or(checkpoints.last()) else {
            return Ok(report);
        };
        report.checkpoints_deleted = self
            .delete_objects(
                checkpoints
                    .iter()
                    .skip(keep)
                    .map(|&v| checkpoint_path(v))
                    .collect(),
            )
            .await?;
        let log_bound = oldest_kept.min(head.saturating_sub(policy.keep_log_versions));
        if log_bound == 0 {
            // No log entry may go yet: nothing to list.
            return Ok(report);
        }
        if log_bound > self.expired_through().await? {
            let marker = Path::from(EXPIRED_MARKER);
            self.store
                .put(&marker, PutPayload::from(log_bound.to_string()))
                .await
                .map_err(|e| MetaError::store(&marker, e))?;
        }
        let expired: Vec<Path> = self
            .list_versions(LOG_DIR, "json")
            .await?
            .into_iter()
            .filter(|&version| version <= log_bound)
            .map(log_path)
            .collect();
        report.log_entries_deleted = self.delete_objects(expired).await?;
        Ok(report)
    }
}

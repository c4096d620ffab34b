//! The table's Delta Lake log (`<root>/_delta_log/`, kept by
//! `icedb-delta`): export on demand or after each commit, and its cleanup
//! at vacuum.

use crate::error::Result;
use crate::table::Table;

impl Table {
    /// Brings the table's Delta Lake log (`<root>/_delta_log/`) up to the
    /// head: one Delta commit per IceDB commit not yet exported (inline
    /// parts join the Delta table when a flush writes them to a file).
    pub async fn export_delta(&self) -> Result<icedb_delta::ExportReport> {
        Ok(self.delta.export(self.meta()).await?)
    }

    /// Deletes Delta log entries before its newest checkpoint that is at
    /// least `keep` old (vacuum runs it with its grace); returns how many.
    pub async fn expire_delta_log(&self, keep: std::time::Duration) -> Result<u64> {
        Ok(self.delta.expire(self.meta(), keep).await?)
    }

    /// After a commit: exports it to the Delta log when the table keeps
    /// one. Best effort — a failure is logged and the next commit, or the
    /// host's catch-up, exports what is missing; the commit stands.
    pub(crate) async fn after_commit(&self) {
        if self.config().delta.is_some()
            && let Err(error) = self.delta.export(self.meta()).await
        {
            tracing::warn!(table = %self.name(), %error, "Delta export failed; the next commit or catch-up retries");
        }
    }
}

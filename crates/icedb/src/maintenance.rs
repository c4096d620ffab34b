//! Vacuum, dropping partitions and rewriting a partition through a filter.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use icedb_meta::{
    CommitDraft, CommitError, DataFile, ExpirePolicy, FileRef, Operation, PartitionFilter,
    ReadHead, Snapshot, Tombstone, is_inline_path,
};
use object_store::path::Path;
use tracing::Instrument;

use crate::error::{Result, TableError};

/// How often a drop plans again after losing to a concurrent merge.
const DROP_ATTEMPTS: usize = 16;
use crate::schema::arrow_schema;
use crate::table::Table;

/// Data files younger than this are never deleted by vacuum unless forced:
/// an orphan that young may belong to a commit still in flight (a writer
/// retrying, a request held by the network), and writers' and the store's
/// clocks differ. Like delta-rs's retention check.
pub const RETENTION_FLOOR: Duration = Duration::from_secs(3600);

/// What vacuum may delete.
#[derive(Debug, Clone)]
pub struct VacuumOptions {
    /// Tombstoned files stay readable this long (queries planned earlier may
    /// still read them); orphan objects younger than this are left alone (an
    /// insert may be about to commit them). At least [`RETENTION_FLOOR`]
    /// unless `force`.
    pub grace: Duration,
    /// Allow a grace below [`RETENTION_FLOOR`]. Safe only when no writer
    /// is running and every clock agrees: otherwise vacuum can delete the
    /// files of a commit about to land, which then references missing files.
    pub force: bool,
    /// Old log entries and checkpoints to expire, if any.
    pub expire: Option<ExpirePolicy>,
    /// Look for orphans: a LIST of every object under `data/`, which grows
    /// with the table while orphans (the uploads of writers that died
    /// before committing) stay rare, so a host looks on a slower cadence of
    /// its own (`[tables.vacuum] orphans_every`). Purging tombstones and
    /// expiring the log need no listing of data.
    pub orphans: bool,
}

impl Default for VacuumOptions {
    fn default() -> Self {
        VacuumOptions {
            grace: RETENTION_FLOOR,
            force: false,
            expire: Some(ExpirePolicy {
                keep_checkpoints: 3,
                keep_log_versions: 1_000,
            }),
            orphans: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumReport {
    /// Tombstoned files deleted and recorded as purged.
    pub purged: usize,
    /// Objects under `data/` no commit references, deleted.
    pub orphans_deleted: usize,
    /// Whether this vacuum looked for orphans ([`VacuumOptions::orphans`]).
    pub orphans_checked: bool,
    pub bytes_freed: u64,
    /// The version recording the purge, if one was needed.
    pub version: Option<u64>,
    pub log_entries_deleted: u64,
    pub checkpoints_deleted: u64,
    /// Delta log entries (commits and checkpoints) before its newest
    /// checkpoint older than the grace, on tables keeping a Delta log.
    pub delta_log_entries_deleted: u64,
    pub elapsed: Duration,
}

/// What a drop or rewrite committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewriteReport {
    pub version: Option<u64>,
    pub files_removed: usize,
    pub files_added: usize,
    pub rows_before: u64,
    pub rows_after: u64,
}

impl Table {
    /// Deletes tombstoned files older than the grace period and records the
    /// purge, deletes orphans older than the grace period, and expires old
    /// log entries and checkpoints. Every step is idempotent.
    #[tracing::instrument(level = "debug", skip_all, name = "vacuum")]
    pub async fn vacuum(&self, options: &VacuumOptions) -> Result<VacuumReport> {
        if options.grace < RETENTION_FLOOR && !options.force {
            return Err(TableError::GraceBelowFloor {
                grace: options.grace,
                floor: RETENTION_FLOOR,
            });
        }
        if options.grace < RETENTION_FLOOR {
            tracing::warn!(grace = ?options.grace, "vacuum forced below the retention floor");
        }
        let started = Instant::now();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let grace_ms = options.grace.as_millis() as i64;
        // Orphans are judged against every path the log references: that
        // check starts from the head. Without it, the replica as last synced
        // will do when it has something to purge (a tombstone never becomes
        // live again, and the purge commit syncs before it lands; tombstones
        // newer than the replica wait for the next vacuum); when it has
        // nothing, the vacuum syncs and looks again, so a replica no other
        // work syncs still sees other writers' removals.
        let mut synced = options.orphans;
        if synced {
            self.meta().sync().await?;
        }
        // Without that sync, the purge commit's first read of the log (a
        // sync) runs beside the first scan, which then looks again only if
        // it found nothing and the read brought new commits.
        let mut read = None;
        let (expired, inline, referenced) = loop {
            let snapshot = self.meta().snapshot()?;
            let scanned_at = snapshot.version();
            let scan = referenced_paths(snapshot, options.orphans)
                .instrument(tracing::debug_span!("vacuum.scan"));
            let (tombstones, referenced) = if synced {
                scan.await?
            } else {
                let (scanned, head) = tokio::join!(scan, self.meta().read_head());
                read = head?;
                synced = self.meta().local_version()? == scanned_at;
                scanned?
            };
            let (flushed, files): (Vec<Tombstone>, Vec<Tombstone>) = tombstones
                .into_iter()
                .partition(|t| is_inline_path(&t.path));
            let expired: Vec<_> = files
                .into_iter()
                .filter(|t| t.removed_ms <= now_ms - grace_ms)
                .collect();
            let inline = inline_purge(flushed, |t| {
                t.removed_ms <= now_ms - grace_ms || self.inline_expired(t, now_ms)
            });
            if synced || !expired.is_empty() || inline.is_some() {
                break (expired, inline, referenced);
            }
            synced = true;
        };
        // The three steps touch disjoint things (tombstoned objects and the
        // purge entry; unreferenced objects; old log entries and
        // checkpoints), so their requests go out together. Each runs to its
        // end even if another fails (no purge commit is dropped midway);
        // the first error is then the answer.
        let (tombstoned, orphans, log) = tokio::join!(
            self.purge_tombstoned(expired, inline, read),
            async {
                if options.orphans {
                    self.delete_orphans(&referenced, now_ms - grace_ms)
                        .instrument(tracing::debug_span!("vacuum.orphans"))
                        .await
                } else {
                    Ok(Freed::default())
                }
            },
            async {
                match options.expire {
                    Some(policy) => self
                        .meta()
                        .expire(policy)
                        .instrument(tracing::debug_span!("vacuum.expire"))
                        .await
                        .map(Some)
                        .map_err(TableError::from),
                    None => Ok(None),
                }
            },
        );
        let (tombstoned, orphans, log) = (tombstoned?, orphans?, log?);
        let mut report = VacuumReport {
            version: tombstoned.version,
            purged: tombstoned.purged,
            bytes_freed: tombstoned.bytes_freed + orphans.bytes_freed,
            orphans_deleted: orphans.purged,
            orphans_checked: options.orphans,
            ..VacuumReport::default()
        };
        if let Some(log) = log {
            report.log_entries_deleted = log.log_entries_deleted;
            report.checkpoints_deleted = log.checkpoints_deleted;
        }
        self.after_commit().await;
        if self.config().delta.is_some() {
            report.delta_log_entries_deleted = self.expire_delta_log(options.grace).await?;
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Deletes the objects of `expired` tombstones, then records them all
    /// as purged in one commit, with the flushed inline parts of `inline`.
    /// Delete first, then record: a crash in between leaves tombstones
    /// whose objects are gone, and the next vacuum finishes the job. Inline
    /// parts have no object: purging them just drops their bytes from the
    /// log's state.
    async fn purge_tombstoned(
        &self,
        expired: Vec<Tombstone>,
        inline: Option<InlinePurge>,
        read: Option<ReadHead>,
    ) -> Result<Freed> {
        let objects: Vec<String> = expired.iter().map(|t| t.path.clone()).collect();
        self.delete_objects(objects)
            .instrument(tracing::debug_span!("vacuum.delete", files = expired.len()))
            .await?;
        if expired.is_empty() && inline.is_none() {
            return Ok(Freed::default());
        }
        let mut draft = CommitDraft::new(Operation::Vacuum);
        draft.purged = expired.iter().map(FileRef::from).collect();
        draft.purged_inline_through = inline.map(|i| i.through);
        let receipt = self
            .commit_after(draft, read)
            .instrument(tracing::debug_span!("vacuum.purge"))
            .await?;
        Ok(Freed {
            version: Some(receipt.version),
            purged: receipt.commit.purged.len()
                + receipt
                    .commit
                    .purged_inline_through
                    .and(inline)
                    .map_or(0, |i| i.parts),
            bytes_freed: expired.iter().map(|t| t.bytes).sum(),
        })
    }

    /// Deletes data objects no commit references (crash leftovers) last
    /// modified at or before `before_ms`.
    async fn delete_orphans(&self, referenced: &HashSet<String>, before_ms: i64) -> Result<Freed> {
        let orphans: Vec<(String, u64)> = self
            .list_data_objects()
            .await?
            .into_iter()
            .filter(|o| !referenced.contains(o.location.as_ref()))
            .filter(|o| o.last_modified.timestamp_millis() <= before_ms)
            .map(|o| (o.location.to_string(), o.size))
            .collect();
        if orphans.is_empty() {
            return Ok(Freed::default());
        }
        // A file committed since the snapshot is referenced now, not
        // orphaned.
        self.meta().sync().await?;
        let late = referenced_paths(self.meta().snapshot()?, true).await?.1;
        let mut freed = Freed::default();
        let mut unreferenced = Vec::new();
        for (path, size) in orphans {
            if !late.contains(&path) {
                freed.bytes_freed += size;
                unreferenced.push(path);
            }
        }
        freed.purged = self.delete_objects(unreferenced).await?;
        Ok(freed)
    }

    /// Whether a tombstone is a flushed inline part past the table's
    /// `keep_flushed`: no object to delete, and no query in flight needs it
    /// (a query holds the inline bytes it read), so no retention floor.
    fn inline_expired(&self, tombstone: &Tombstone, now_ms: i64) -> bool {
        let keep_ms = self.config().inline.keep_flushed.as_millis() as i64;
        is_inline_path(&tombstone.path) && tombstone.removed_ms <= now_ms - keep_ms
    }

    /// Records flushed inline parts as purged (one commit, no store request
    /// besides it); returns how many. Purged are those past `keep_flushed`,
    /// and, while the table holds more than half its inline bound, the
    /// oldest flushed ones until half is free: the bound is what keeps
    /// small inserts inlining, so it wins over time travel to before a
    /// flush. Merges call it after each round, so the held bytes stay
    /// within the bound without waiting for vacuum.
    #[tracing::instrument(level = "debug", skip_all, name = "merge.purge_inline")]
    pub(crate) async fn purge_flushed_inline(&self) -> Result<usize> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let snapshot = self.meta().snapshot()?;
        let half = self.config().inline.limit_bytes / 2;
        // A replica scan of every tombstone: on the blocking pool.
        let (mut over, flushed) = tokio::task::spawn_blocking(move || -> Result<_> {
            let over = snapshot.inline_held_bytes()?.saturating_sub(half);
            let flushed: Vec<Tombstone> = snapshot
                .tombstones()?
                .into_iter()
                .filter(|t| is_inline_path(&t.path))
                .collect();
            Ok((over, flushed))
        })
        .await
        .expect("reading the replica does not panic")?;
        let Some(inline) = inline_purge(flushed, |t| {
            let purge = over > 0 || self.inline_expired(t, now_ms);
            if purge {
                over = over.saturating_sub(t.bytes);
            }
            purge
        }) else {
            return Ok(0);
        };
        let mut draft = CommitDraft::new(Operation::Vacuum);
        draft.purged_inline_through = Some(inline.through);
        let receipt = self.meta().commit(draft).await?;
        Ok(receipt
            .commit
            .purged_inline_through
            .map_or(0, |_| inline.parts))
    }

    /// Deletes objects (already-missing ones count as deleted); returns how
    /// many.
    async fn delete_objects(&self, paths: Vec<String>) -> Result<usize> {
        let paths = paths.into_iter().map(Path::from).collect();
        Ok(self.meta().delete_objects(paths).await? as usize)
    }

    /// Tombstones every live file of the matching partitions in one commit
    /// (retention). Retries when a concurrent merge replaced some files.
    pub async fn drop_partitions(&self, filter: &PartitionFilter) -> Result<RewriteReport> {
        for _ in 0..DROP_ATTEMPTS {
            self.meta().sync().await?;
            let files = self.meta().snapshot()?.files_without_bytes(filter)?;
            if files.is_empty() {
                return Ok(RewriteReport::default());
            }
            let mut draft = CommitDraft::new(Operation::DropPartitions);
            draft.removed = files.iter().map(FileRef::from).collect();
            match self.meta().commit(draft).await {
                Ok(receipt) => {
                    self.after_commit().await;
                    return Ok(RewriteReport {
                        version: Some(receipt.version),
                        files_removed: files.len(),
                        rows_before: files.iter().map(|f| f.rows).sum(),
                        ..RewriteReport::default()
                    });
                }
                Err(CommitError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(TableError::Contended {
            operation: "drop",
            attempts: DROP_ATTEMPTS,
        })
    }

    /// Rewrites one partition keeping only the rows for which `keep` (a SQL
    /// boolean expression over the table's columns) is true — for example
    /// `user_id <> 'u42'` to delete a user's rows. One commit replaces the
    /// partition's files with one sorted file (or none). A concurrent merge
    /// of the same files makes it fail with a conflict and change nothing.
    pub async fn rewrite_partition(&self, partition: &str, keep: &str) -> Result<RewriteReport> {
        self.meta().sync().await?;
        let snapshot = self.meta().snapshot()?;
        let files: Vec<DataFile> = snapshot
            .files(&PartitionFilter::Prefix(partition.to_owned()))?
            .into_iter()
            .filter(|f| f.partition == partition)
            .collect();
        let table_schema = snapshot.schema()?;
        drop(snapshot);
        if files.is_empty() {
            return Ok(RewriteReport::default());
        }
        let present: Vec<_> = table_schema.clone();
        let schema = arrow_schema(&present);
        let filter = keep.to_owned();
        let batches = self
            .query_engine
            .run_over(files.clone(), table_schema.clone(), move |source| {
                format!("SELECT * FROM {source} WHERE ({filter}) IS TRUE")
            })
            .await?;
        let conformed: Vec<RecordBatch> = batches
            .iter()
            .map(|b| crate::kway::conform_to(b, &schema))
            .collect::<Result<_>>()?;
        let kept = concat_batches(&schema, &conformed)?;
        let rows_after = kept.num_rows() as u64;
        let mut draft = CommitDraft::new(Operation::Rewrite);
        draft.removed = files.iter().map(FileRef::from).collect();
        draft.details.insert("keep".to_owned(), keep.to_owned());
        let mut uploaded = None;
        if rows_after > 0 {
            let file = self.write_file(kept, partition).await?;
            draft.columns = present;
            draft.added = vec![file.clone()];
            uploaded = Some(file);
        }
        match self.meta().commit(draft).await {
            Ok(receipt) => {
                self.after_commit().await;
                Ok(RewriteReport {
                    version: Some(receipt.version),
                    files_removed: files.len(),
                    files_added: usize::from(uploaded.is_some()),
                    rows_before: files.iter().map(|f| f.rows).sum(),
                    rows_after,
                })
            }
            Err(error) => {
                self.discard_uncommitted(&error, uploaded.iter().map(|f| f.path.as_str()))
                    .await;
                Err(error.into())
            }
        }
    }
}

/// What one vacuum step removed: objects or inline parts, their bytes, and
/// the purge commit's version if it made one.
#[derive(Default)]
struct Freed {
    version: Option<u64>,
    purged: usize,
    bytes_freed: u64,
}

/// A purge of flushed inline parts by version: every part removed at or
/// before `through` (`parts` of them in the planning snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InlinePurge {
    through: u64,
    parts: usize,
}

/// How far flushed inline parts may be purged: walking them oldest
/// removal first, the newest removal version through which `purge` holds
/// for every part (the parts of one removal go together: they were
/// flushed by one commit at one time). A part `purge` refuses stops the
/// walk; those removed after it wait for a later purge.
fn inline_purge(
    mut flushed: Vec<Tombstone>,
    mut purge: impl FnMut(&Tombstone) -> bool,
) -> Option<InlinePurge> {
    flushed.sort_by_key(|t| t.removed_in);
    let mut reached: Option<InlinePurge> = None;
    for tombstone in &flushed {
        let same_removal = reached.is_some_and(|r| r.through == tombstone.removed_in);
        if !purge(tombstone) && !same_removal {
            break;
        }
        reached = Some(InlinePurge {
            through: tombstone.removed_in,
            parts: reached.map_or(0, |r| r.parts) + 1,
        });
    }
    reached
}

/// The snapshot's tombstones, and (if `live` is asked for, for the orphan
/// check) every path it references, tombstoned or live: read on the
/// blocking pool (a replica scan of every file).
async fn referenced_paths(
    snapshot: Snapshot,
    live: bool,
) -> Result<(Vec<Tombstone>, HashSet<String>)> {
    tokio::task::spawn_blocking(move || {
        let tombstones = snapshot.tombstones()?;
        let mut referenced = HashSet::new();
        if live {
            referenced.extend(tombstones.iter().map(|t| t.path.clone()));
            snapshot.for_each_file(&PartitionFilter::All, |file| {
                referenced.insert(file.path);
            })?;
        }
        Ok((tombstones, referenced))
    })
    .await
    .expect("reading the replica does not panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flushed(path: &str, removed_in: u64, removed_ms: i64) -> Tombstone {
        Tombstone {
            path: format!("inline/p=1/{path}"),
            partition: "p=1".to_owned(),
            bytes: 10,
            rows: 1,
            removed_ms,
            added_in: 1,
            removed_in,
        }
    }

    /// The purge reaches the newest removal before the first part refused,
    /// takes a removal's parts together, and counts them.
    #[test]
    fn inline_purges_stop_at_the_first_refused_removal() {
        let parts = vec![
            flushed("e", 5, 50),
            flushed("a", 2, 20),
            flushed("c", 3, 90),
            flushed("b", 2, 20),
            flushed("d", 4, 40),
        ];
        // Expired by age: removals 2 (two parts); 3 is too young, so 4 and
        // 5 wait although old enough.
        assert_eq!(
            inline_purge(parts.clone(), |t| t.removed_ms <= 60),
            Some(InlinePurge {
                through: 2,
                parts: 2
            })
        );
        assert_eq!(
            inline_purge(parts.clone(), |_| true),
            Some(InlinePurge {
                through: 5,
                parts: 5
            })
        );
        assert_eq!(inline_purge(parts.clone(), |t| t.removed_in > 2), None);
        // A byte budget spent on the first part of a removal still takes
        // the removal's other part.
        let mut budget = 10u64;
        let purge = inline_purge(parts, |t| {
            let take = budget > 0;
            budget = budget.saturating_sub(t.bytes);
            take
        });
        assert_eq!(
            purge,
            Some(InlinePurge {
                through: 2,
                parts: 2
            })
        );
        assert_eq!(inline_purge(Vec::new(), |_| true), None);
    }
}

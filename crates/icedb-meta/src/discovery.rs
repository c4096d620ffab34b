//! Finding the log entries newer than the replica: one listing after the
//! replica's key on S3, probing GETs on a local disk, and the expiry marker
//! that tells "nothing new" from "expired".

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;

use crate::error::{MetaError, Result};
use crate::log::{LOG_DIR, log_path, version_of};
use crate::meta::{LogDiscovery, MetaStore};
use crate::model::Commit;

/// Records the newest version `expire` may have deleted.
pub(crate) const EXPIRED_MARKER: &str = "_icedb/log-expired-through";

/// What a sync found after the replica's head.
pub(crate) struct Fetched {
    /// The commits after the head, consecutive and in order.
    pub commits: Vec<Commit>,
    /// The e-tag the listing showed for the entry at the head itself
    /// (`None` when the discovery does not list, or the entry is not
    /// there): the identity check's evidence, with no request of its own.
    pub head_tag: Option<String>,
}

impl MetaStore {
    /// Commits after `head`, consecutive and in order. A listing starts
    /// just before `head`'s own entry, so it also shows that entry's e-tag.
    pub(crate) async fn fetch_after(&self, head: u64) -> Result<Fetched> {
        let (versions, head_tag) = match self.discovery {
            LogDiscovery::List => {
                let prefix = Path::from(LOG_DIR);
                let offset = log_path(head.saturating_sub(1));
                let metas: Vec<_> = self
                    .store
                    .list_with_offset(Some(&prefix), &offset)
                    .try_collect()
                    .await
                    .map_err(|e| MetaError::store(&prefix, e))?;
                let head_tag = metas
                    .iter()
                    .find(|m| head > 0 && version_of(&m.location, "json") == Some(head))
                    .and_then(|m| m.e_tag.clone());
                let mut versions: Vec<u64> = metas
                    .iter()
                    .filter_map(|m| version_of(&m.location, "json"))
                    .filter(|v| *v > head)
                    .collect();
                versions.sort_unstable();
                for (i, version) in versions.iter().enumerate() {
                    let expected = head + 1 + i as u64;
                    if *version != expected {
                        return Err(MetaError::MissingVersion {
                            missing: expected,
                            found: *version,
                            hint: "it was expired, or the log is damaged; open from a checkpoint"
                                .to_owned(),
                        });
                    }
                }
                (versions, head_tag)
            }
            LogDiscovery::Probe => {
                return Ok(Fetched {
                    commits: self.probe_after(head).await?,
                    head_tag: None,
                });
            }
        };
        let entries: Vec<(Commit, Option<String>)> = futures::stream::iter(versions)
            .map(|version| async move {
                self.read_entry(version)
                    .await?
                    .ok_or_else(|| MetaError::MissingVersion {
                        missing: version,
                        found: version,
                        hint: "it was listed but is gone (expired meanwhile?)".to_owned(),
                    })
            })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(Fetched {
            commits: self.noting_newest_tag(entries),
            head_tag,
        })
    }

    /// The commits of `entries`, noting the newest one's e-tag (the sync
    /// applies them: see [`MetaStore::verify_identity`]).
    fn noting_newest_tag(&self, mut entries: Vec<(Commit, Option<String>)>) -> Vec<Commit> {
        if let Some((commit, tag)) = entries.last_mut() {
            self.note_entry_tag(commit.version, tag.take());
        }
        entries.into_iter().map(|(commit, _)| commit).collect()
    }

    /// Reads versions after `head` with GETs until one is missing: first
    /// one (the common case is "nothing new"), then windows of parallel
    /// GETs growing to 32.
    async fn probe_after(&self, head: u64) -> Result<Vec<Commit>> {
        let mut entries = Vec::new();
        let mut next = head + 1;
        let mut window = 1u64;
        loop {
            let found: Vec<Option<(Commit, Option<String>)>> =
                futures::stream::iter(next..next + window)
                    .map(|version| self.read_entry(version))
                    .buffered(window as usize)
                    .try_collect()
                    .await?;
            let present = found.iter().take_while(|c| c.is_some()).count();
            entries.extend(found.into_iter().take(present).flatten());
            if present < window as usize {
                if entries.is_empty() && self.expired_through().await? > head {
                    return Err(MetaError::MissingVersion {
                        missing: head + 1,
                        found: head + 1,
                        hint: "it was expired".to_owned(),
                    });
                }
                return Ok(self.noting_newest_tag(entries));
            }
            next += window;
            window = (window * 4).min(32);
        }
    }

    /// The newest version whose log entry `expire` may have deleted (0 if
    /// none): recorded before deleting, so probing readers can tell "no new
    /// commits" from "the entries I need are gone".
    pub(crate) async fn expired_through(&self) -> Result<u64> {
        let bytes = self.get_if_present(&Path::from(EXPIRED_MARKER)).await?;
        Ok(bytes
            .and_then(|b| {
                std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
            })
            .unwrap_or(0))
    }

    pub(crate) async fn list_versions(&self, dir: &str, extension: &str) -> Result<Vec<u64>> {
        let prefix = Path::from(dir);
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| MetaError::store(&prefix, e))?;
        Ok(metas
            .iter()
            .filter_map(|m| version_of(&m.location, extension))
            .collect())
    }
}

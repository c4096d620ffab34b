//! The meta store: the commit log in object storage, with a local replica.
//!
//! This file holds the store itself (opening, syncing, snapshots, identity).
//! The commit protocol is in `commit.rs`, finding new log entries in
//! `discovery.rs`, checkpoints in `checkpoint.rs`, expiry in `expire.rs` and
//! the conditional-create check in `store_check.rs`.

use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path;

use crate::error::{MetaError, Result};
use crate::location::TableLocation;
use crate::log::{log_path, parse_commit};
use crate::model::{Commit, CommitSummary};
use crate::replica::{Replica, Snapshot};

/// Where a sync pass left the replica.
struct Synced {
    head: u64,
    /// The version the pass started from.
    from: u64,
    /// The e-tag its listing showed for the entry at `from`.
    from_tag: Option<String>,
}

/// How sync finds commits newer than the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDiscovery {
    /// `list_with_offset` after the replica's version: one request on S3,
    /// whatever the history (S3 starts the listing server-side).
    List,
    /// GET the next versions until one is missing: for stores whose listing
    /// reads the whole directory (a local disk), so cost tracks new commits.
    Probe,
}

/// Settings of a [`MetaStore`].
#[derive(Debug, Clone)]
pub struct MetaOptions {
    /// Where the local replica lives; by default a directory per table under
    /// the user's cache directory.
    pub replica_dir: Option<PathBuf>,
    /// Recorded in every commit; a fresh UUIDv7 by default.
    pub writer_id: Option<String>,
    /// Upload a checkpoint every this many versions (0: never).
    pub checkpoint_interval: u64,
    /// Attempts before a commit that keeps losing races gives up.
    pub max_commit_attempts: u32,
    /// After an attempt whose outcome is unknown, how long the writer keeps
    /// trying to read the log to find out before it reports "outcome
    /// unknown" (never "failed": its files are kept).
    pub outcome_budget: Duration,
    /// No new attempt is sent once a commit has run this long (the ones in
    /// flight are still resolved). Keeps every log entry within a bounded
    /// time of its files' upload, far inside vacuum's retention floor.
    pub max_commit_duration: Duration,
    /// How sync discovers new commits; by default `List` for remote stores
    /// and `Probe` for local directories.
    pub discovery: Option<LogDiscovery>,
    /// Whether a log entry's e-tag identifies it, so the identity check
    /// before a commit may compare e-tags (a HEAD) instead of reading the
    /// entry: by default yes for remote stores (an S3 e-tag is the content's
    /// digest, or unique per write), no for local directories (an e-tag
    /// there is inode, mtime and size, which a re-created table could
    /// repeat on a file system with coarse timestamps; reading a local
    /// entry costs little anyway).
    pub etag_identity: Option<bool>,
    /// Local tables: fsync data files, log entries and checkpoints (file
    /// and directory) before a write returns. Off only for benchmarks of
    /// its cost.
    pub fsync: bool,
}

impl Default for MetaOptions {
    fn default() -> Self {
        MetaOptions {
            replica_dir: None,
            writer_id: None,
            checkpoint_interval: 100,
            max_commit_attempts: 64,
            outcome_budget: Duration::from_secs(120),
            max_commit_duration: Duration::from_secs(600),
            discovery: None,
            etag_identity: None,
            fsync: true,
        }
    }
}

pub struct MetaStore {
    pub(crate) store: Arc<dyn ObjectStore>,
    replica: RwLock<Arc<Replica>>,
    pub(crate) replica_dir: PathBuf,
    /// Serialises sync and replica writes within this process.
    pub(crate) sync_lock: tokio::sync::Mutex<()>,
    /// Serialises this process's commits: from the sync before an attempt
    /// to the replica applying the won version. Commits of one process then
    /// queue instead of racing each other for the log's next version (a
    /// lost race costs a back-off); other processes still race, settled by
    /// the conditional create.
    pub(crate) commit_lock: tokio::sync::Mutex<()>,
    pub(crate) writer: String,
    pub(crate) options: MetaOptions,
    pub(crate) discovery: LogDiscovery,
    pub(crate) store_checked: AtomicBool,
    /// The e-tag of the newest log entry this process wrote or applied from
    /// the log, by version: while it is the head, the identity check needs
    /// only the entry's metadata, not its body.
    pub(crate) head_tag: std::sync::Mutex<Option<(u64, String)>>,
}

impl MetaStore {
    /// Opens the meta store of the table at `location`.
    pub async fn open_location(
        location: &TableLocation,
        options: MetaOptions,
    ) -> Result<MetaStore> {
        let store = location.open_store_with(options.fsync)?;
        MetaStore::open_location_on(location, store, options).await
    }

    /// Opens the meta store of the table at `location` through `store`
    /// (rooted at the table): for wrappers that instrument the store or
    /// inject faults.
    pub async fn open_location_on(
        location: &TableLocation,
        store: Arc<dyn ObjectStore>,
        options: MetaOptions,
    ) -> Result<MetaStore> {
        let mut options = options;
        if options.discovery.is_none() {
            options.discovery = Some(match location {
                TableLocation::Local(_) => LogDiscovery::Probe,
                TableLocation::S3 { .. } => LogDiscovery::List,
            });
        }
        if options.etag_identity.is_none() {
            options.etag_identity = Some(matches!(location, TableLocation::S3 { .. }));
        }
        MetaStore::open(store, &location.canonical(), options).await
    }

    /// Opens the meta store of the table rooted at `store`. `table_key`
    /// names the table for the default replica directory. Bootstraps from
    /// the newest readable checkpoint when the local replica is missing or
    /// far behind, verifies that the replica describes the table the store
    /// holds (discarding it otherwise), then replays the log after it.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        table_key: &str,
        options: MetaOptions,
    ) -> Result<MetaStore> {
        let replica_dir = match &options.replica_dir {
            Some(dir) => dir.clone(),
            None => default_replica_dir(table_key),
        };
        std::fs::create_dir_all(&replica_dir).map_err(|e| MetaError::Replica {
            path: replica_dir.display().to_string(),
            reason: format!("cannot create the directory: {e}"),
        })?;
        let replica = open_replica(&replica_dir)?;
        let writer = options
            .writer_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let discovery = options.discovery.unwrap_or(LogDiscovery::List);
        let meta = MetaStore {
            store,
            replica: RwLock::new(Arc::new(replica)),
            replica_dir,
            sync_lock: tokio::sync::Mutex::new(()),
            commit_lock: tokio::sync::Mutex::new(()),
            writer,
            options,
            discovery,
            store_checked: AtomicBool::new(false),
            head_tag: std::sync::Mutex::new(None),
        };
        if !meta.verify_identity().await? {
            meta.reset_replica().await?;
        }
        meta.catch_up().await?;
        Ok(meta)
    }

    /// The object store the table lives in (keys relative to the root).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn writer_id(&self) -> &str {
        &self.writer
    }

    pub fn options(&self) -> &MetaOptions {
        &self.options
    }

    /// Where this process's replica file is.
    pub fn replica_path(&self) -> PathBuf {
        self.current_replica().path().to_owned()
    }

    pub(crate) fn current_replica(&self) -> Arc<Replica> {
        self.replica.read().expect("replica lock poisoned").clone()
    }

    /// A consistent view of the local replica (call [`sync`](Self::sync)
    /// first for the newest state).
    pub fn snapshot(&self) -> Result<Snapshot> {
        self.current_replica().snapshot()
    }

    /// The replica's version, without contacting the store.
    pub fn local_version(&self) -> Result<u64> {
        self.current_replica().version()
    }

    /// Brings the replica up to the newest commit; returns the head version.
    /// When the log entries it needs were expired, it starts over from the
    /// newest readable checkpoint; when the store holds another table than
    /// the replica describes, the replica is discarded and rebuilt.
    pub async fn sync(&self) -> Result<u64> {
        self.sync_seeing().await.map(|synced| synced.head)
    }

    /// [`sync`](Self::sync), saying what its last pass saw of the entry at
    /// the head it started from.
    async fn sync_seeing(&self) -> Result<Synced> {
        let mut pass = 0;
        loop {
            pass += 1;
            match self.sync_from_log().await {
                Err(MetaError::MissingVersion { missing, found, .. }) if pass < 3 => {
                    if !self.bootstrap_newer_checkpoint().await? {
                        return Err(MetaError::MissingVersion {
                            missing,
                            found,
                            hint: "the log was expired and no newer checkpoint is readable"
                                .to_owned(),
                        });
                    }
                }
                Err(MetaError::TableReplaced { expected, found }) if pass < 3 => {
                    tracing::warn!(%expected, %found, "the table was re-created; discarding the local replica");
                    self.reset_replica().await?;
                    self.load_checkpoint_if_behind().await?;
                }
                other => return other,
            }
        }
    }

    /// Syncs and checks that the replica describes the table the store
    /// holds ([`verify_identity`](Self::verify_identity)): the head version,
    /// or `None` when the store holds another table (rebuild the replica).
    /// When the sync's listing shows the replica's head entry with the
    /// e-tag this process wrote or applied it with, that listing is the
    /// check: one request instead of a sync and a HEAD side by side.
    pub(crate) async fn sync_verified(&self) -> Result<Option<u64>> {
        let head = self.local_version()?;
        if self.discovery == LogDiscovery::List
            && let Some(tag) = self.known_head_tag(head)
        {
            let synced = self.sync_seeing().await?;
            if synced.from == head && synced.from_tag == Some(tag) {
                return Ok(Some(synced.head));
            }
            return Ok(self.verify_identity().await?.then_some(synced.head));
        }
        let (head, verified) = tokio::join!(self.sync(), self.verify_identity());
        if !verified? {
            return Ok(None);
        }
        head.map(Some)
    }

    #[tracing::instrument(level = "debug", skip_all, name = "meta.sync")]
    async fn sync_from_log(&self) -> Result<Synced> {
        let _guard = self.sync_lock.lock().await;
        let replica = self.current_replica();
        let from = replica.version()?;
        let fetched = self.fetch_after(from).await?;
        let head = if fetched.commits.is_empty() {
            from
        } else {
            Self::apply_blocking(replica, fetched.commits).await?
        };
        Ok(Synced {
            head,
            from,
            from_tag: fetched.head_tag,
        })
    }

    /// Applies commits to the replica on the blocking pool (redb writes
    /// block). The caller holds the sync lock.
    pub(crate) async fn apply_blocking(replica: Arc<Replica>, commits: Vec<Commit>) -> Result<u64> {
        let path = replica.path().to_owned();
        tokio::task::spawn_blocking(move || replica.apply(&commits))
            .await
            .map_err(|e| MetaError::replica_io(&path, e))?
    }

    /// Checks that the replica describes the table the store holds: the log
    /// entry at the replica's head must exist and carry the id the replica
    /// recorded for it. An empty replica has nothing to check. `Ok(false)`
    /// means the replica is stale (the table was deleted and re-created,
    /// or the entry expired since): rebuild it.
    pub(crate) async fn verify_identity(&self) -> Result<bool> {
        let snapshot = self.snapshot()?;
        let head = snapshot.version();
        if head == 0 {
            return Ok(true);
        }
        let expected = snapshot.commit(head)?;
        let table_id = snapshot.table_id()?;
        drop(snapshot);
        let path = log_path(head);
        // The head entry as this process wrote or applied it, if it still
        // carries the same e-tag: its metadata is enough (the entry of a
        // merge can be hundreds of kilobytes). Anything else: the full
        // check below.
        if let Some(tag) = self.known_head_tag(head) {
            match self.store.head(&path).await {
                Ok(meta) if meta.e_tag.as_deref() == Some(tag.as_str()) => return Ok(true),
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(MetaError::store(&path, e)),
            }
        }
        // Only the identity is compared: a full parse would decode every
        // file entry and inline part of the head commit.
        let (found, tag) = match self.get_tagged(&path).await? {
            Some((bytes, tag)) => (
                Some(crate::log::parse_entry::<crate::log::CommitIdentity>(
                    &path, &bytes, head,
                )?),
                tag,
            ),
            None => (None, None),
        };
        let same = match (found, expected) {
            (Some(found), Some(expected)) => {
                found.id == expected.id
                    && match (&found.table_id, &table_id) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    }
            }
            // A replica without the summary of its own head cannot vouch
            // for anything; a missing entry is a different log (or an
            // expired one: rebuilding from a checkpoint is safe either way).
            _ => false,
        };
        if same {
            self.note_entry_tag(head, tag);
        }
        Ok(same)
    }

    /// Replaces the replica with an empty one (it is a cache: the log and
    /// checkpoints rebuild it).
    pub(crate) async fn reset_replica(&self) -> Result<()> {
        let _guard = self.sync_lock.lock().await;
        let empty = self.replica_dir.join(format!(
            "reset-{}-{}.redb",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        Replica::open(&empty, false).map(drop)?;
        self.swap_replica_file(&empty)
    }

    /// Puts the replica file at `from` in place of the current replica
    /// (closing it first, releasing its file lock). The caller holds the
    /// sync lock.
    pub(crate) fn swap_replica_file(&self, from: &FsPath) -> Result<()> {
        let mut slot = self.replica.write().expect("replica lock poisoned");
        let current = slot.clone();
        let target = current.path().to_owned();
        let temporary = target != self.replica_dir.join(SHARED_REPLICA);
        *slot = Arc::new(Replica::open(
            &self
                .replica_dir
                .join(format!("swap-{}.redb", std::process::id())),
            true,
        )?);
        drop(current);
        std::fs::rename(from, &target).map_err(|e| MetaError::replica_io(&target, e))?;
        *slot = Arc::new(Replica::open(&target, temporary)?);
        Ok(())
    }

    /// Summaries of the newest commits, newest first (syncs first).
    pub async fn history(&self, limit: usize) -> Result<Vec<CommitSummary>> {
        self.sync().await?;
        self.snapshot()?.history(limit)
    }

    /// Reads one commit from the log.
    pub async fn read_commit(&self, version: u64) -> Result<Option<Commit>> {
        Ok(self.read_entry(version).await?.map(|(commit, _)| commit))
    }

    /// Reads one commit from the log, with its entry's e-tag.
    pub(crate) async fn read_entry(
        &self,
        version: u64,
    ) -> Result<Option<(Commit, Option<String>)>> {
        let path = log_path(version);
        match self.get_tagged(&path).await? {
            Some((bytes, tag)) => Ok(Some((parse_commit(&path, &bytes, version)?, tag))),
            None => Ok(None),
        }
    }

    /// An object's bytes and e-tag, or `None` if it does not exist.
    pub(crate) async fn get_tagged(
        &self,
        path: &Path,
    ) -> Result<Option<(bytes::Bytes, Option<String>)>> {
        let result = match self.store.get(path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(MetaError::store(path, e)),
        };
        let tag = result.meta.e_tag.clone();
        let bytes = result
            .bytes()
            .await
            .map_err(|e| MetaError::store(path, e))?;
        Ok(Some((bytes, tag)))
    }

    /// Notes the e-tag of log entry `version`, which this process wrote or
    /// is applying (a newer version's replaces an older one's).
    /// The e-tag this process wrote or applied the entry at `head` with,
    /// if it knows it and e-tags may stand for identity here.
    fn known_head_tag(&self, head: u64) -> Option<String> {
        if self.options.etag_identity == Some(false) {
            return None;
        }
        let known = self.head_tag.lock().expect("head tag lock");
        known
            .as_ref()
            .filter(|(version, _)| *version == head)
            .map(|(_, tag)| tag.clone())
    }

    pub(crate) fn note_entry_tag(&self, version: u64, tag: Option<String>) {
        let Some(tag) = tag else { return };
        let mut known = self.head_tag.lock().expect("head tag lock");
        if known.as_ref().is_none_or(|(v, _)| *v <= version) {
            *known = Some((version, tag));
        }
    }

    /// An object's bytes, or `None` if it does not exist.
    pub(crate) async fn get_if_present(&self, path: &Path) -> Result<Option<bytes::Bytes>> {
        get_if_present(self.store.as_ref(), path)
            .await
            .map_err(|e| MetaError::store(path, e))
    }

    /// Deletes `paths` through the store's bulk delete (S3: 1 000 keys
    /// per request); keys already gone count as deleted. Returns how many.
    pub async fn delete_objects(&self, paths: Vec<Path>) -> Result<u64> {
        let mut results = self
            .store
            .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed());
        let mut deleted = 0;
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(MetaError::store("a bulk delete", e)),
            }
        }
        Ok(deleted)
    }
}

pub(crate) const SHARED_REPLICA: &str = "replica.redb";

/// Opens the shared replica of the directory, or a private one if another
/// process holds it (redb locks its file).
fn open_replica(dir: &FsPath) -> Result<Replica> {
    match Replica::open(&dir.join(SHARED_REPLICA), false) {
        Ok(replica) => Ok(replica),
        Err(MetaError::ReplicaInUse { .. }) => {
            let private = dir.join(format!(
                "replica-{}-{}.redb",
                std::process::id(),
                uuid::Uuid::now_v7().simple()
            ));
            tracing::debug!(path = %private.display(), "shared replica in use; using a private one");
            Replica::open(&private, true)
        }
        Err(error) => Err(error),
    }
}

fn default_replica_dir(table_key: &str) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(table_key.as_bytes());
    let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("icedb")
        .join("replicas")
        .join(name)
}

/// An object's bytes from `store`, or `None` if it does not exist (each
/// caller names the failure in its own error type).
pub async fn get_if_present(
    store: &dyn ObjectStore,
    path: &Path,
) -> object_store::Result<Option<bytes::Bytes>> {
    match store.get(path).await {
        Ok(result) => result.bytes().await.map(Some),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

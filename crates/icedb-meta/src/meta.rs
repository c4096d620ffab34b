//! The meta store: the commit log in object storage, with a local replica.
//!
//! Writer protocol (DESIGN §4): sync the replica to the head → check the
//! draft against it (removed files still live, column types compatible) →
//! create `_icedb/log/<head+1>.json` with a conditional create → on losing
//! the race, sync, check again and retry with jittered backoff → apply the
//! commit to the replica.

use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use rand::Rng;
use tokio::io::AsyncWriteExt;

use crate::error::{MetaError, Result};
use crate::location::TableLocation;
use crate::log::{
    CHECKPOINT_DIR, LOG_DIR, STORE_CHECK_DIR, checkpoint_path, log_path, parse_commit, version_of,
};
use crate::model::{COMMIT_FORMAT, Commit, CommitDraft, CommitSummary};
use crate::replica::{Replica, Snapshot};

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
    /// How sync discovers new commits; by default `List` for remote stores
    /// and `Probe` for local directories.
    pub discovery: Option<LogDiscovery>,
}

impl Default for MetaOptions {
    fn default() -> Self {
        MetaOptions {
            replica_dir: None,
            writer_id: None,
            checkpoint_interval: 100,
            max_commit_attempts: 64,
            discovery: None,
        }
    }
}

/// A successful commit.
#[derive(Debug, Clone)]
pub struct CommitReceipt {
    pub version: u64,
    /// 1 when the first try won; more when it lost races to other writers.
    pub attempts: u32,
    pub commit: Commit,
}

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

pub struct MetaStore {
    store: Arc<dyn ObjectStore>,
    replica: RwLock<Arc<Replica>>,
    replica_dir: PathBuf,
    /// Serialises sync and replica writes within this process.
    sync_lock: tokio::sync::Mutex<()>,
    writer: String,
    options: MetaOptions,
    discovery: LogDiscovery,
    store_checked: AtomicBool,
}

impl MetaStore {
    /// Opens the meta store of the table at `location`.
    pub async fn open_location(
        location: &TableLocation,
        options: MetaOptions,
    ) -> Result<MetaStore> {
        let store = location.open_store()?;
        let mut options = options;
        if options.discovery.is_none() {
            options.discovery = Some(match location {
                TableLocation::Local(_) => LogDiscovery::Probe,
                TableLocation::S3 { .. } => LogDiscovery::List,
            });
        }
        MetaStore::open(store, &location.canonical(), options).await
    }

    /// Opens the meta store of the table rooted at `store`. `table_key`
    /// names the table for the default replica directory. Bootstraps from
    /// the newest readable checkpoint when the local replica is missing or
    /// far behind, then replays the log after it.
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
            writer,
            options,
            discovery,
            store_checked: AtomicBool::new(false),
        };
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

    /// Where this process's replica file is.
    pub fn replica_path(&self) -> PathBuf {
        self.current_replica().path().to_owned()
    }

    fn current_replica(&self) -> Arc<Replica> {
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
    /// newest readable checkpoint.
    pub async fn sync(&self) -> Result<u64> {
        match self.sync_from_log().await {
            Err(MetaError::MissingVersion { missing, found, .. }) => {
                let local = self.local_version()?;
                let mut checkpoints = self.list_versions(CHECKPOINT_DIR, "redb").await?;
                checkpoints.retain(|&v| v > local);
                checkpoints.sort_unstable_by(|a, b| b.cmp(a));
                if !self.load_checkpoint(&checkpoints).await? {
                    return Err(MetaError::MissingVersion {
                        missing,
                        found,
                        hint: "the log was expired and no newer checkpoint is readable".to_owned(),
                    });
                }
                self.sync_from_log().await
            }
            other => other,
        }
    }

    async fn sync_from_log(&self) -> Result<u64> {
        let _guard = self.sync_lock.lock().await;
        let replica = self.current_replica();
        let head = replica.version()?;
        let commits = self.fetch_after(head).await?;
        if commits.is_empty() {
            return Ok(head);
        }
        replica.apply(&commits)
    }

    /// Summaries of the newest commits, newest first (syncs first).
    pub async fn history(&self, limit: usize) -> Result<Vec<CommitSummary>> {
        self.sync().await?;
        self.snapshot()?.history(limit)
    }

    /// Reads one commit from the log.
    pub async fn read_commit(&self, version: u64) -> Result<Option<Commit>> {
        let path = log_path(version);
        match self.get_if_present(&path).await? {
            Some(bytes) => parse_commit(&path, &bytes, version).map(Some),
            None => Ok(None),
        }
    }

    /// An object's bytes, or `None` if it does not exist.
    async fn get_if_present(&self, path: &Path) -> Result<Option<bytes::Bytes>> {
        match self.store.get(path).await {
            Ok(result) => Ok(Some(
                result
                    .bytes()
                    .await
                    .map_err(|e| MetaError::store(path, e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(MetaError::store(path, e)),
        }
    }

    /// Commits `draft` as the next version, retrying on lost races. A
    /// removed file that a commit this writer did not see already removed,
    /// or an incompatible column type, gives `MetaError::Conflict` and
    /// commits nothing.
    pub async fn commit(&self, draft: CommitDraft) -> Result<CommitReceipt> {
        let operation = draft
            .operation
            .ok_or_else(|| MetaError::InvalidCommit("no operation".to_owned()))?;
        validate_draft(&draft)?;
        if !self.store_checked.load(Ordering::Acquire) {
            self.check_store().await?;
            self.store_checked.store(true, Ordering::Release);
        }
        let id = uuid::Uuid::now_v7().to_string();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let head = self.sync().await?;
            let replica = self.current_replica();
            if let Some(mine) = self.find_own(&replica, &id, head)? {
                return self.finish(mine, attempts).await;
            }
            let plan = replica.plan(&draft)?;
            let commit = Commit {
                format: COMMIT_FORMAT,
                version: head + 1,
                id: id.clone(),
                timestamp_ms: chrono::Utc::now().timestamp_millis(),
                writer: self.writer.clone(),
                operation,
                added: draft.added.clone(),
                removed: draft.removed.clone(),
                purged: plan.purged,
                schema_changes: plan.schema_changes,
                details: draft.details.clone(),
            };
            let body =
                serde_json::to_vec(&commit).map_err(|e| MetaError::InvalidCommit(e.to_string()))?;
            let path = log_path(commit.version);
            let put = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match self
                .store
                .put_opts(&path, PutPayload::from(body), put)
                .await
            {
                Ok(_) => return self.finish(commit, attempts).await,
                Err(object_store::Error::AlreadyExists { .. }) => {
                    tracing::debug!(
                        version = commit.version,
                        attempts,
                        "lost the race for a version; rebasing"
                    );
                }
                Err(error) => {
                    // The outcome is unknown: the object may exist. The next
                    // round syncs and recognises our commit by its id.
                    tracing::warn!(version = commit.version, %error, "commit request failed; checking its outcome");
                }
            }
            if attempts >= self.options.max_commit_attempts {
                // One last look: the final request may have succeeded.
                let head = self.sync().await?;
                if let Some(mine) = self.find_own(&self.current_replica(), &id, head)? {
                    return self.finish(mine, attempts).await;
                }
                return Err(MetaError::TooManyRetries { attempts });
            }
            tokio::time::sleep(backoff(attempts)).await;
        }
    }

    /// Our own commit among those newer than the previous attempt, if the
    /// store accepted a request whose answer we did not get.
    fn find_own(&self, replica: &Replica, id: &str, head: u64) -> Result<Option<Commit>> {
        let snapshot = replica.snapshot()?;
        for summary in snapshot.history(8)? {
            if summary.version > head {
                continue;
            }
            if summary.id == id {
                // Rebuild the commit from the log later if needed; the
                // receipt only needs its version and content summary.
                return Ok(Some(Commit {
                    format: COMMIT_FORMAT,
                    version: summary.version,
                    id: summary.id,
                    timestamp_ms: summary.timestamp_ms,
                    writer: summary.writer,
                    operation: summary.operation,
                    added: Vec::new(),
                    removed: Vec::new(),
                    purged: Vec::new(),
                    schema_changes: Vec::new(),
                    details: Default::default(),
                }));
            }
        }
        Ok(None)
    }

    async fn finish(&self, commit: Commit, attempts: u32) -> Result<CommitReceipt> {
        {
            let _guard = self.sync_lock.lock().await;
            self.current_replica()
                .apply(std::slice::from_ref(&commit))?;
        }
        let interval = self.options.checkpoint_interval;
        if interval > 0
            && commit.version.is_multiple_of(interval)
            && let Err(error) = self.checkpoint().await
        {
            tracing::warn!(version = commit.version, %error, "could not upload a checkpoint");
        }
        Ok(CommitReceipt {
            version: commit.version,
            attempts,
            commit,
        })
    }

    /// Uploads a copy of the replica as `_icedb/checkpoints/<version>.redb`
    /// and returns its version. Racing another writer's checkpoint of the
    /// same version is harmless: both describe the same state.
    pub async fn checkpoint(&self) -> Result<u64> {
        let copy = tempfile::Builder::new()
            .prefix("checkpoint-")
            .suffix(".redb")
            .tempfile_in(&self.replica_dir)
            .map_err(|e| MetaError::Replica {
                path: self.replica_dir.display().to_string(),
                reason: e.to_string(),
            })?;
        let version = {
            let _guard = self.sync_lock.lock().await;
            let replica = self.current_replica();
            replica.copy_to(copy.path())?;
            replica.version()?
        };
        let copy_path = copy.path().to_owned();
        tokio::task::spawn_blocking(move || crate::replica::compact_file(&copy_path))
            .await
            .map_err(|e| MetaError::Replica {
                path: copy.path().display().to_string(),
                reason: e.to_string(),
            })??;
        let path = checkpoint_path(version);
        let mut file =
            tokio::fs::File::open(copy.path())
                .await
                .map_err(|e| MetaError::Replica {
                    path: copy.path().display().to_string(),
                    reason: e.to_string(),
                })?;
        let mut upload = object_store::buffered::BufWriter::new(self.store.clone(), path.clone());
        let io = |e: std::io::Error| MetaError::Store {
            location: path.to_string(),
            source: object_store::Error::Generic {
                store: "checkpoint upload",
                source: Box::new(e),
            },
        };
        tokio::io::copy(&mut file, &mut upload).await.map_err(io)?;
        upload.shutdown().await.map_err(io)?;
        tracing::info!(version, "checkpoint uploaded");
        Ok(version)
    }

    /// The version of the newest checkpoint on the store, if any (one LIST).
    pub async fn latest_checkpoint(&self) -> Result<Option<u64>> {
        Ok(self
            .list_versions(CHECKPOINT_DIR, "redb")
            .await?
            .into_iter()
            .max())
    }

    /// Verifies that the store refuses a second conditional create of the
    /// same key; without that, concurrent writers would overwrite each
    /// other's commits. Runs automatically before the first commit.
    pub async fn check_store(&self) -> Result<()> {
        let path = Path::from(format!("{STORE_CHECK_DIR}/{}", uuid::Uuid::now_v7()));
        let create = || PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let first = self
            .store
            .put_opts(&path, PutPayload::from_static(b"1"), create())
            .await;
        let verdict = match first {
            Err(object_store::Error::NotImplemented) => Err(MetaError::UnsafeStore(
                "it does not implement conditional creates".to_owned(),
            )),
            Err(e) => Err(MetaError::store(&path, e)),
            Ok(_) => match self
                .store
                .put_opts(&path, PutPayload::from_static(b"2"), create())
                .await
            {
                Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                Ok(_) => Err(MetaError::UnsafeStore(format!(
                    "a second create of {path} succeeded and overwrote the first"
                ))),
                Err(object_store::Error::NotImplemented) => Err(MetaError::UnsafeStore(
                    "it does not implement conditional creates".to_owned(),
                )),
                Err(e) => Err(MetaError::store(&path, e)),
            },
        };
        if let Err(error) = self.store.delete(&path).await {
            tracing::debug!(%error, "could not remove the store-check object");
        }
        verdict
    }

    /// Deletes old checkpoints and log entries: keeps the newest
    /// `keep_checkpoints` checkpoints, and log entries newer than the oldest
    /// kept checkpoint or among the newest `keep_log_versions`. Without a
    /// checkpoint nothing in the log is deleted (a new process would have
    /// nothing to start from). Idempotent.
    pub async fn expire(&self, policy: ExpirePolicy) -> Result<ExpireReport> {
        let head = self.sync().await?;
        let mut checkpoints = self.list_versions(CHECKPOINT_DIR, "redb").await?;
        checkpoints.sort_unstable_by(|a, b| b.cmp(a));
        let keep = policy.keep_checkpoints.max(1);
        let mut report = ExpireReport::default();
        let Some(&oldest_kept) = checkpoints.get(keep - 1).or(checkpoints.last()) else {
            return Ok(report);
        };
        for &version in checkpoints.iter().skip(keep) {
            self.delete_if_present(&checkpoint_path(version)).await?;
            report.checkpoints_deleted += 1;
        }
        let log_bound = oldest_kept.min(head.saturating_sub(policy.keep_log_versions));
        if log_bound > self.expired_through().await? {
            let marker = Path::from(EXPIRED_MARKER);
            self.store
                .put(&marker, PutPayload::from(log_bound.to_string()))
                .await
                .map_err(|e| MetaError::store(&marker, e))?;
        }
        for version in self.list_versions(LOG_DIR, "json").await? {
            if version <= log_bound {
                self.delete_if_present(&log_path(version)).await?;
                report.log_entries_deleted += 1;
            }
        }
        Ok(report)
    }

    /// The newest version whose log entry `expire` may have deleted (0 if
    /// none): recorded before deleting, so probing readers can tell "no new
    /// commits" from "the entries I need are gone".
    async fn expired_through(&self) -> Result<u64> {
        let bytes = self.get_if_present(&Path::from(EXPIRED_MARKER)).await?;
        Ok(bytes
            .and_then(|b| {
                std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
            })
            .unwrap_or(0))
    }

    async fn delete_if_present(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(MetaError::store(path, e)),
        }
    }

    async fn list_versions(&self, dir: &str, extension: &str) -> Result<Vec<u64>> {
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

    /// Commits after `head`, consecutive and in order.
    async fn fetch_after(&self, head: u64) -> Result<Vec<Commit>> {
        let versions = match self.discovery {
            LogDiscovery::List => {
                let prefix = Path::from(LOG_DIR);
                let offset = log_path(head);
                let metas: Vec<_> = self
                    .store
                    .list_with_offset(Some(&prefix), &offset)
                    .try_collect()
                    .await
                    .map_err(|e| MetaError::store(&prefix, e))?;
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
                versions
            }
            LogDiscovery::Probe => return self.probe_after(head).await,
        };
        futures::stream::iter(versions)
            .map(|version| async move {
                self.read_commit(version)
                    .await?
                    .ok_or_else(|| MetaError::MissingVersion {
                        missing: version,
                        found: version,
                        hint: "it was listed but is gone (expired meanwhile?)".to_owned(),
                    })
            })
            .buffered(16)
            .try_collect()
            .await
    }

    /// Reads versions after `head` with GETs until one is missing: first
    /// one (the common case is "nothing new"), then windows of parallel
    /// GETs growing to 32.
    async fn probe_after(&self, head: u64) -> Result<Vec<Commit>> {
        let mut commits = Vec::new();
        let mut next = head + 1;
        let mut window = 1u64;
        loop {
            let found: Vec<Option<Commit>> = futures::stream::iter(next..next + window)
                .map(|version| self.read_commit(version))
                .buffered(window as usize)
                .try_collect()
                .await?;
            let present = found.iter().take_while(|c| c.is_some()).count();
            commits.extend(found.into_iter().take(present).flatten());
            if present < window as usize {
                if commits.is_empty() && self.expired_through().await? > head {
                    return Err(MetaError::MissingVersion {
                        missing: head + 1,
                        found: head + 1,
                        hint: "it was expired".to_owned(),
                    });
                }
                return Ok(commits);
            }
            next += window;
            window = (window * 4).min(32);
        }
    }

    /// Brings a just-opened replica to the head, starting from the newest
    /// readable checkpoint when the replica is empty or far behind.
    async fn catch_up(&self) -> Result<()> {
        let local = self.local_version()?;
        let mut checkpoints = self.list_versions(CHECKPOINT_DIR, "redb").await?;
        checkpoints.retain(|&v| v > local);
        checkpoints.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&newest) = checkpoints.first()
            && (local == 0 || newest > local + self.options.checkpoint_interval.max(1))
        {
            self.load_checkpoint(&checkpoints).await?;
        }
        self.sync().await.map(|_| ())
    }

    /// Streams an object into a local file (checkpoints can be hundreds of
    /// MiB: never held in memory whole).
    async fn download(&self, path: &Path, to: &FsPath) -> Result<()> {
        let local = |e: std::io::Error| MetaError::Replica {
            path: to.display().to_string(),
            reason: e.to_string(),
        };
        let file = tokio::fs::File::create(to).await.map_err(local)?;
        // Store streams come in small chunks; write in large ones.
        let mut file = tokio::io::BufWriter::with_capacity(8 << 20, file);
        let mut chunks = self
            .store
            .get(path)
            .await
            .map_err(|e| MetaError::store(path, e))?
            .into_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| MetaError::store(path, e))?;
            file.write_all(&chunk).await.map_err(local)?;
        }
        file.flush().await.map_err(local)?;
        Ok(())
    }

    /// Replaces the replica with the newest readable checkpoint among
    /// `versions` (newest first). A damaged one is skipped with a warning.
    async fn load_checkpoint(&self, versions: &[u64]) -> Result<bool> {
        for &version in versions {
            let path = checkpoint_path(version);
            let download = self
                .replica_dir
                .join(format!("checkpoint-{version}.partial"));
            if let Err(error) = self.download(&path, &download).await {
                tracing::warn!(checkpoint = %path, %error, "cannot read checkpoint; trying an older one");
                let _ = std::fs::remove_file(&download);
                continue;
            }
            match Replica::open_checkpoint(&download, version) {
                Ok(checkpoint) => drop(checkpoint),
                Err(error) => {
                    tracing::warn!(checkpoint = %path, %error, "damaged checkpoint; trying an older one");
                    let _ = std::fs::remove_file(&download);
                    continue;
                }
            }
            let _guard = self.sync_lock.lock().await;
            let mut slot = self.replica.write().expect("replica lock poisoned");
            let current = slot.clone();
            let target = current.path().to_owned();
            let temporary = target != self.replica_dir.join(SHARED_REPLICA);
            // Close the current replica (releasing its file lock) before
            // putting the checkpoint in its place.
            *slot = Arc::new(Replica::open(
                &self
                    .replica_dir
                    .join(format!("swap-{}.redb", std::process::id())),
                true,
            )?);
            drop(current);
            std::fs::rename(&download, &target).map_err(|e| MetaError::Replica {
                path: target.display().to_string(),
                reason: e.to_string(),
            })?;
            *slot = Arc::new(Replica::open(&target, temporary)?);
            tracing::info!(version, "replica bootstrapped from checkpoint");
            return Ok(true);
        }
        Ok(false)
    }
}

/// What [`race_conditional_creates`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRace {
    pub racers: usize,
    /// Creates that reported success; a safe store has exactly one.
    pub winners: usize,
    /// Whether the object holds the winner's bytes afterwards.
    pub content_matches_winner: bool,
}

/// Races `racers` concurrent conditional creates of one fresh key (under
/// `_icedb/store-check/`) and reports how many won; cleans up after itself.
/// IceDB's commit protocol is safe only where exactly one wins.
pub async fn race_conditional_creates(
    store: &Arc<dyn ObjectStore>,
    racers: usize,
) -> Result<StoreRace> {
    let path = Path::from(format!("{STORE_CHECK_DIR}/race-{}", uuid::Uuid::now_v7()));
    let attempts: Vec<_> = (0..racers)
        .map(|racer| {
            let (store, path) = (store.clone(), path.clone());
            async move {
                let put = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                let outcome = store
                    .put_opts(&path, PutPayload::from(format!("racer-{racer}")), put)
                    .await;
                (racer, outcome)
            }
        })
        .collect();
    let outcomes = futures::future::join_all(attempts).await;
    let mut winners = Vec::new();
    for (racer, outcome) in outcomes {
        match outcome {
            Ok(_) => winners.push(racer),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(object_store::Error::NotImplemented) => {
                return Err(MetaError::UnsafeStore(
                    "it does not implement conditional creates".to_owned(),
                ));
            }
            Err(e) => return Err(MetaError::store(&path, e)),
        }
    }
    let stored = store
        .get(&path)
        .await
        .map_err(|e| MetaError::store(&path, e))?
        .bytes()
        .await
        .map_err(|e| MetaError::store(&path, e))?;
    let content_matches_winner =
        winners.len() == 1 && stored.as_ref() == format!("racer-{}", winners[0]).as_bytes();
    if let Err(error) = store.delete(&path).await {
        tracing::debug!(%error, "could not remove the race object");
    }
    Ok(StoreRace {
        racers,
        winners: winners.len(),
        content_matches_winner,
    })
}

const SHARED_REPLICA: &str = "replica.redb";
const EXPIRED_MARKER: &str = "_icedb/log-expired-through";

/// Opens the shared replica of the directory, or a private one if another
/// process holds it (redb locks its file).
fn open_replica(dir: &FsPath) -> Result<Replica> {
    match Replica::open(&dir.join(SHARED_REPLICA), false) {
        Ok(replica) => Ok(replica),
        Err(MetaError::Replica { reason, .. }) if reason == "in use by another process" => {
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

/// Jittered exponential backoff: 5 ms doubling to a 500 ms cap, a random
/// point in the upper half.
fn backoff(attempt: u32) -> Duration {
    let cap = (5u64 << attempt.min(7)).min(500);
    Duration::from_millis(rand::rng().random_range(cap / 2..=cap))
}

fn validate_draft(draft: &CommitDraft) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for file in &draft.added {
        if file.path.is_empty() || file.partition.is_empty() {
            return Err(MetaError::InvalidCommit(
                "an added file has an empty path or partition".to_owned(),
            ));
        }
        if !seen.insert(file.path.as_str()) {
            return Err(MetaError::InvalidCommit(format!(
                "file {} is added twice",
                file.path
            )));
        }
    }
    for file in &draft.removed {
        if seen.contains(file.path.as_str()) {
            return Err(MetaError::InvalidCommit(format!(
                "file {} is both added and removed",
                file.path
            )));
        }
    }
    Ok(())
}

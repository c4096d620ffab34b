//! Checkpoints: compacted copies of the replica uploaded as
//! `_icedb/checkpoints/<version:020>.redb`, and bootstrapping from them.

use std::path::Path as FsPath;

use futures::StreamExt;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

use crate::error::{MetaError, Result};
use crate::log::{CHECKPOINT_DIR, checkpoint_path};
use crate::meta::MetaStore;
use crate::replica::Replica;

impl MetaStore {
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
            let to = copy.path().to_owned();
            tokio::task::spawn_blocking(move || {
                replica.copy_to(&to)?;
                replica.version()
            })
            .await
            .map_err(|e| MetaError::replica_io(copy.path(), e))??
        };
        let copy_path = copy.path().to_owned();
        tokio::task::spawn_blocking(move || crate::replica::compact_file(&copy_path))
            .await
            .map_err(|e| MetaError::replica_io(copy.path(), e))??;
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

    /// Brings a just-opened replica to the head, starting from the newest
    /// readable checkpoint when the replica is empty or far behind.
    pub(crate) async fn catch_up(&self) -> Result<()> {
        self.load_checkpoint_if_behind().await?;
        self.sync().await.map(|_| ())
    }

    /// Loads the newest readable checkpoint if the replica is empty or more
    /// than one checkpoint interval behind it.
    pub(crate) async fn load_checkpoint_if_behind(&self) -> Result<()> {
        let local = self.local_version()?;
        let mut checkpoints = self.list_versions(CHECKPOINT_DIR, "redb").await?;
        checkpoints.retain(|&v| v > local);
        checkpoints.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&newest) = checkpoints.first()
            && (local == 0 || newest > local + self.options.checkpoint_interval.max(1))
        {
            self.load_checkpoint(&checkpoints).await?;
        }
        Ok(())
    }

    /// Replaces the replica with a checkpoint newer than it, if one is
    /// readable (the log entries after the replica were expired).
    pub(crate) async fn bootstrap_newer_checkpoint(&self) -> Result<bool> {
        let local = self.local_version()?;
        let mut checkpoints = self.list_versions(CHECKPOINT_DIR, "redb").await?;
        checkpoints.retain(|&v| v > local);
        checkpoints.sort_unstable_by(|a, b| b.cmp(a));
        self.load_checkpoint(&checkpoints).await
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
            let candidate = download.clone();
            let opened =
                tokio::task::spawn_blocking(move || Replica::open_checkpoint(&candidate, version))
                    .await
                    .map_err(|e| MetaError::replica_io(&download, e))?;
            match opened {
                Ok(checkpoint) => drop(checkpoint),
                Err(error) => {
                    tracing::warn!(checkpoint = %path, %error, "damaged checkpoint; trying an older one");
                    let _ = std::fs::remove_file(&download);
                    continue;
                }
            }
            let _guard = self.sync_lock.lock().await;
            self.swap_replica_file(&download)?;
            tracing::info!(version, "replica bootstrapped from checkpoint");
            return Ok(true);
        }
        Ok(false)
    }
}

//! A local directory store that makes every write durable before it
//! returns: `object_store`'s `LocalFileSystem` writes and renames but never
//! fsyncs, so an acknowledged insert could vanish on power loss. This
//! wrapper fsyncs each written file and the directory that gained its entry,
//! and every directory created on the way up to the table root (once per
//! process), before answering.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};

#[derive(Debug)]
pub(crate) struct DurableLocal {
    inner: Arc<LocalFileSystem>,
    syncer: Arc<Syncer>,
}

/// Fsyncs files and their directories; remembers which directories' own
/// entries are already durable.
#[derive(Debug)]
struct Syncer {
    root: PathBuf,
    durable_dirs: Mutex<HashSet<PathBuf>>,
}

impl Syncer {
    /// Makes `file` and its name durable (blocking).
    fn sync_file(&self, file: &FsPath) -> std::io::Result<()> {
        File::open(file)?.sync_all()?;
        let mut dir = file.parent().map(FsPath::to_path_buf);
        while let Some(current) = dir {
            // The directory gained an entry: persist it.
            File::open(&current)?.sync_all()?;
            if current == self.root || !current.starts_with(&self.root) {
                break;
            }
            // Its own entry in its parent is durable once synced after it
            // was created; do that once per directory.
            if !self
                .durable_dirs
                .lock()
                .expect("durable directory set poisoned")
                .insert(current.clone())
            {
                break;
            }
            dir = current.parent().map(FsPath::to_path_buf);
        }
        Ok(())
    }

    async fn sync(self: &Arc<Self>, file: PathBuf) -> object_store::Result<()> {
        let syncer = self.clone();
        tokio::task::spawn_blocking(move || syncer.sync_file(&file).map_err(|e| (file, e)))
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "DurableLocal",
                source: Box::new(e),
            })?
            .map_err(|(file, e)| object_store::Error::Generic {
                store: "DurableLocal",
                source: format!("fsync of {}: {e}", file.display()).into(),
            })
    }
}

impl DurableLocal {
    pub(crate) fn new(root: &FsPath) -> object_store::Result<DurableLocal> {
        let inner = LocalFileSystem::new_with_prefix(root)?;
        let root = std::fs::canonicalize(root).map_err(|e| object_store::Error::Generic {
            store: "DurableLocal",
            source: Box::new(e),
        })?;
        Ok(DurableLocal {
            inner: Arc::new(inner),
            syncer: Arc::new(Syncer {
                root,
                durable_dirs: Mutex::new(HashSet::new()),
            }),
        })
    }

    async fn sync(&self, location: &Path) -> object_store::Result<()> {
        let file = self.inner.path_to_filesystem(location)?;
        self.syncer.sync(file).await
    }
}

impl std::fmt::Display for DurableLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DurableLocal({})", self.syncer.root.display())
    }
}

/// A multipart upload that fsyncs the file once it is complete.
#[derive(Debug)]
struct DurableUpload {
    inner: Box<dyn MultipartUpload>,
    file: PathBuf,
    syncer: Arc<Syncer>,
}

#[async_trait]
impl MultipartUpload for DurableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let result = self.inner.complete().await?;
        self.syncer.sync(self.file.clone()).await?;
        Ok(result)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for DurableLocal {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await?;
        self.sync(location).await?;
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(DurableUpload {
            inner,
            file: self.inner.path_to_filesystem(location)?,
            syncer: self.syncer.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy(from, to).await?;
        self.sync(to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await?;
        self.sync(to).await
    }
}

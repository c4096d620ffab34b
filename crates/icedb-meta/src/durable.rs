//! A local directory store that makes every write durable before it
//! returns: `object_store`'s `LocalFileSystem` writes and renames but never
//! fsyncs, so an acknowledged insert could vanish on power loss. This
//! wrapper fsyncs each written file and the directory that gained its entry,
//! and every directory created on the way up to the table root (once per
//! process), before answering.

use std::collections::HashSet;
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};

/// A new staged file beside `file`, `{file}#{n}` (creating missing
/// directories).
fn new_staged(file: &FsPath) -> std::io::Result<(File, PathBuf)> {
    let mut n = 1u32;
    loop {
        let mut staged = file.as_os_str().to_owned();
        staged.push(format!("#{n}"));
        let staged = PathBuf::from(staged);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staged)
        {
            Ok(opened) => return Ok((opened, staged)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => n += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                std::fs::create_dir_all(file.parent().unwrap_or(FsPath::new("/")))?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `LocalFileSystem`'s e-tag of a file (inode, mtime, size), so a put's
/// e-tag matches what its reads report.
fn e_tag(metadata: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("{:x}-{mtime:x}-{:x}", metadata.ino(), metadata.len())
}

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
        self.sync_name(file)
    }

    /// Makes `file`'s name durable: its directory, and each directory
    /// created on the way up to the root (once per process).
    fn sync_name(&self, file: &FsPath) -> std::io::Result<()> {
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

    /// A whole put in one blocking call: the bytes go to a staged file
    /// beside `file` (named as `LocalFileSystem` names its staged uploads,
    /// which listings skip), which is fsynced *before* it takes the final
    /// name — a hard link for `Create`, so an existing object is an
    /// `AlreadyExists` error and never replaced; a rename for `Overwrite` —
    /// and then the directory is fsynced. A reader never sees a name whose
    /// bytes are not yet durable.
    fn put(
        &self,
        file: &FsPath,
        payload: &PutPayload,
        create: bool,
    ) -> object_store::Result<PutResult> {
        let generic = |what: &str, path: &FsPath, e: std::io::Error| object_store::Error::Generic {
            store: "DurableLocal",
            source: format!("{what} {}: {e}", path.display()).into(),
        };
        let (mut staged_file, staged) =
            new_staged(file).map_err(|e| generic("staging", file, e))?;
        let written = payload
            .iter()
            .try_for_each(|chunk| staged_file.write_all(chunk))
            .and_then(|()| staged_file.sync_all())
            .and_then(|()| staged_file.metadata());
        drop(staged_file);
        let placed = written.and_then(|metadata| {
            if create {
                std::fs::hard_link(&staged, file)?;
                let _ = std::fs::remove_file(&staged);
            } else {
                std::fs::rename(&staged, file)?;
            }
            Ok(metadata)
        });
        let metadata = match placed {
            Ok(metadata) => metadata,
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(if e.kind() == ErrorKind::AlreadyExists {
                    object_store::Error::AlreadyExists {
                        path: file.display().to_string(),
                        source: Box::new(e),
                    }
                } else {
                    generic("writing", file, e)
                });
            }
        };
        self.sync_name(file)
            .map_err(|e| generic("fsync of the directory of", file, e))?;
        Ok(PutResult {
            e_tag: Some(e_tag(&metadata)),
            version: None,
        })
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
        let create = match opts.mode {
            PutMode::Create => true,
            PutMode::Overwrite => false,
            PutMode::Update(_) => return Err(object_store::Error::NotImplemented),
        };
        if !opts.attributes.is_empty() {
            return Err(object_store::Error::NotImplemented);
        }
        let file = self.inner.path_to_filesystem(location)?;
        let syncer = self.syncer.clone();
        tokio::task::spawn_blocking(move || syncer.put(&file, &payload, create))
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "DurableLocal",
                source: Box::new(e),
            })?
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

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    fn put(mode: PutMode) -> PutOptions {
        PutOptions {
            mode,
            ..PutOptions::default()
        }
    }

    #[tokio::test]
    async fn create_never_replaces_and_leaves_no_staged_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = DurableLocal::new(dir.path()).unwrap();
        let path = Path::from("_log/a/b/00001.json");
        let first = store
            .put_opts(&path, PutPayload::from("first"), put(PutMode::Create))
            .await
            .unwrap();
        let again = store
            .put_opts(&path, PutPayload::from("second"), put(PutMode::Create))
            .await;
        assert!(
            matches!(again, Err(object_store::Error::AlreadyExists { .. })),
            "{again:?}"
        );
        let read = store.get(&path).await.unwrap();
        assert_eq!(
            read.meta.e_tag, first.e_tag,
            "the put's e-tag is the read's"
        );
        assert_eq!(read.bytes().await.unwrap().as_ref(), b"first");

        store
            .put_opts(&path, PutPayload::from("third"), put(PutMode::Overwrite))
            .await
            .unwrap();
        let read = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(read.as_ref(), b"third");

        let listed: Vec<ObjectMeta> = store.list(None).try_collect().await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|m| m.location.to_string())
                .collect::<Vec<_>>(),
            ["_log/a/b/00001.json"]
        );
        let on_disk: Vec<_> = std::fs::read_dir(dir.path().join("_log/a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(on_disk.len(), 1, "staged files are gone: {on_disk:?}");
    }
}

//! On-disk cache of compiled components, keyed by the component's content
//! hash and the engine's compatibility hash (which covers the wasmtime
//! version, target and compilation settings).
//!
//! Loading a cached artifact skips compilation (tens to hundreds of
//! milliseconds per component, seconds for large ones). Deserializing runs
//! native code from the cache, so the directory must be writable only by the
//! user running IceDB.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub(crate) struct ArtifactCache {
    dir: Option<PathBuf>,
    engine_tag: String,
}

/// The SHA-256 of a component's bytes, in hex.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl ArtifactCache {
    pub(crate) fn new(dir: Option<PathBuf>, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_tag = format!("engine{:016x}", hasher.finish());
        ArtifactCache { dir, engine_tag }
    }

    fn path_for(&self, hash: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{hash}-{}.cwasm", self.engine_tag)))
    }

    /// A previously compiled artifact, if the cache has a usable one.
    pub(crate) fn load(&self, engine: &Engine, hash: &str) -> Option<Component> {
        let path = self.path_for(hash)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: the artifact was written by `store` below from
        // `Component::serialize` by an engine with the same compatibility
        // hash (it is in the file name); wasmtime checks the header
        // again and refuses incompatible artifacts.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring unusable cached component");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Saves a compiled component. Failing to cache is not an error: it only
    /// costs a compile next time.
    pub(crate) fn store(&self, hash: &str, component: &Component) {
        let Some(path) = self.path_for(hash) else {
            return;
        };
        if let Err(error) = write_atomically(&path, component) {
            tracing::warn!(path = %path.display(), %error, "could not cache compiled component");
        }
    }
}

fn write_atomically(path: &Path, component: &Component) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let dir = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The default cache directory: `$XDG_CACHE_HOME/icedb/wasm` or the
/// platform's equivalent.
pub(crate) fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("icedb").join("wasm"))
}

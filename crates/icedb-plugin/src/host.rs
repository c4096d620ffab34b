//! The shared engine: one wasmtime `Engine`, one linker, the compile cache
//! and the epoch ticker that enforces time caps.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, OptLevel};

use crate::cache::{ArtifactCache, content_hash};
use crate::error::{PluginError, PluginErrorKind};
use crate::format::FormatPlugin;
use crate::partition::PartitionPlugin;
use crate::sandbox::Sandbox;

/// How often the epoch advances: the granularity of time caps.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings of a [`PluginHost`].
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// The most linear memory one plugin instance may grow to.
    pub memory_limit: usize,
    /// The longest one call (one batch) may run.
    pub call_timeout: Duration,
    /// Instances of one plugin alive at once (calls beyond wait for one):
    /// with `memory_limit`, bounds a plugin's memory to
    /// `max_instances × memory_limit`. Default: the number of cores.
    pub max_instances: usize,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            cache_dir: crate::cache::default_dir(),
            memory_limit: 256 << 20,
            call_timeout: Duration::from_secs(5),
            max_instances: std::thread::available_parallelism().map_or(4, |n| n.get()),
        }
    }
}

/// The plugin interfaces a component can export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interface {
    FormatRow,
    PartitionStrategy,
}

impl Interface {
    /// The interface's WIT name without version, e.g. `icedb:plugin/format-row`.
    pub fn wit_name(self) -> &'static str {
        match self {
            Interface::FormatRow => "icedb:plugin/format-row",
            Interface::PartitionStrategy => "icedb:plugin/partition-strategy",
        }
    }
}

/// What a component is and what it exports.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    /// The plugin's name: the file stem of its path.
    pub name: String,
    pub path: PathBuf,
    /// SHA-256 of the component's bytes.
    pub hash: String,
    /// The `icedb:plugin` interfaces it exports (at this host's contract version).
    pub exports: Vec<Interface>,
    /// Everything it imports (WASI interfaces, typically).
    pub imports: Vec<String>,
    /// Whether it came from the compile cache instead of being compiled now.
    pub from_cache: bool,
    pub load_time: Duration,
}

/// Loads and runs plugin components. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct PluginHost {
    pub(crate) inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<Sandbox>,
    pub(crate) options: HostOptions,
    cache: ArtifactCache,
    /// Components compiled in this process, by content hash.
    compiled: Mutex<HashMap<String, Component>>,
}

impl PluginHost {
    pub fn new(options: HostOptions) -> Result<Self, PluginError> {
        let load_error = |e: wasmtime::Error| {
            PluginError::new("<host>", "new", PluginErrorKind::Load, format!("{e:#}"))
        };
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .parallel_compilation(true);
        let engine = Engine::new(&config).map_err(load_error)?;
        let mut linker = Linker::new(&engine);
        // WASI is linked so that ordinary guests (Rust's std, for one) can
        // instantiate; the sandbox grants them nothing through it.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(load_error)?;
        spawn_epoch_ticker(&engine);
        let cache = ArtifactCache::new(options.cache_dir.clone(), &engine);
        Ok(PluginHost {
            inner: Arc::new(HostInner {
                engine,
                linker,
                options,
                cache,
                compiled: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn options(&self) -> &HostOptions {
        &self.inner.options
    }

    /// Reads and compiles (or fetches from cache) the component at `path`
    /// and says what it exports, without instantiating it.
    pub fn inspect(&self, path: &Path) -> Result<ComponentInfo, PluginError> {
        self.compile(path).map(|(info, _)| info)
    }

    /// Loads a format-row plugin and configures a first instance with
    /// `settings`.
    pub fn load_format(
        &self,
        path: &Path,
        settings: &[(String, String)],
    ) -> Result<FormatPlugin, PluginError> {
        let (info, component) = self.compile(path)?;
        require_export(&info, Interface::FormatRow)?;
        FormatPlugin::new(self.clone(), info, &component, settings.to_vec())
    }

    /// Loads a partition-strategy plugin, configures a first instance with
    /// `settings` and asks it which fields it reads.
    pub fn load_partition(
        &self,
        path: &Path,
        settings: &[(String, String)],
    ) -> Result<PartitionPlugin, PluginError> {
        let (info, component) = self.compile(path)?;
        require_export(&info, Interface::PartitionStrategy)?;
        PartitionPlugin::new(self.clone(), info, &component, settings.to_vec())
    }

    fn compile(&self, path: &Path) -> Result<(ComponentInfo, Component), PluginError> {
        let started = std::time::Instant::now();
        let name = plugin_name(path);
        let load_error =
            |message: String| PluginError::new(&name, "load", PluginErrorKind::Load, message);
        let bytes = std::fs::read(path)
            .map_err(|e| load_error(format!("cannot read {}: {e}", path.display())))?;
        check_is_component(&bytes).map_err(|m| load_error(format!("{}: {m}", path.display())))?;
        let hash = content_hash(&bytes);
        let engine = &self.inner.engine;

        let mut from_cache = true;
        let cached = self
            .inner
            .compiled
            .lock()
            .expect("compiled map poisoned")
            .get(&hash)
            .cloned();
        let component = match cached.or_else(|| self.inner.cache.load(engine, &hash)) {
            Some(component) => component,
            None => {
                from_cache = false;
                let component = Component::new(engine, &bytes)
                    .map_err(|e| load_error(format!("cannot compile {}: {e:#}", path.display())))?;
                self.inner.cache.store(&hash, &component);
                component
            }
        };
        self.inner
            .compiled
            .lock()
            .expect("compiled map poisoned")
            .insert(hash.clone(), component.clone());

        let ty = component.component_type();
        let mut exports = Vec::new();
        for (export, _) in ty.exports(engine) {
            for interface in [Interface::FormatRow, Interface::PartitionStrategy] {
                let Some(version) = export.strip_prefix(interface.wit_name()) else {
                    continue;
                };
                let version = version.trim_start_matches('@');
                if version != crate::CONTRACT_VERSION {
                    return Err(load_error(format!(
                        "exports {export}, but this host speaks icedb:plugin@{}; rebuild the plugin against this host's wit/icedb.wit",
                        crate::CONTRACT_VERSION
                    )));
                }
                exports.push(interface);
            }
        }
        let imports = ty
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let info = ComponentInfo {
            name,
            path: path.to_owned(),
            hash,
            exports,
            imports,
            from_cache,
            load_time: started.elapsed(),
        };
        Ok((info, component))
    }
}

fn require_export(info: &ComponentInfo, interface: Interface) -> Result<(), PluginError> {
    if info.exports.contains(&interface) {
        return Ok(());
    }
    let found = if info.exports.is_empty() {
        "no icedb:plugin interface".to_owned()
    } else {
        info.exports
            .iter()
            .map(|i| i.wit_name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(PluginError::new(
        &info.name,
        "load",
        PluginErrorKind::Load,
        format!(
            "{} does not export {}@{} (it exports {found})",
            info.path.display(),
            interface.wit_name(),
            crate::CONTRACT_VERSION
        ),
    ))
}

/// A plugin's display name: its file stem.
pub(crate) fn plugin_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Distinguishes a component from a core module or something else entirely,
/// to give a useful error instead of a parser's.
fn check_is_component(bytes: &[u8]) -> Result<(), String> {
    match bytes {
        [0x00, b'a', b's', b'm', _, _, 0x01, 0x00, ..] => Ok(()),
        [0x00, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00, ..] => Err(
            "this is a core WebAssembly module, not a component: build it for wasm32-wasip2 \
             (or wrap it with `wasm-tools component new`)"
                .to_owned(),
        ),
        _ => Err("not a WebAssembly component (bad magic number)".to_owned()),
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] for as long as the
/// engine lives, so that deadlines set in ticks interrupt running guests.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("icedb-plugin-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

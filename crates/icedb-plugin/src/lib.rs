//! icedb-plugin owns the WebAssembly side of IceDB: it loads plugin
//! components that implement the `icedb:plugin` WIT contract
//! (`wit/icedb.wit`), compiles each once (cached on disk by content hash and
//! engine), runs them sandboxed (no filesystem, network, environment or real
//! clock; memory and time caps per call) and checks what they return.
//!
//! It knows nothing of storage or tables: callers hand it JSON text and
//! formatted batches, and get back batches and partition paths.
//!
//! ```no_run
//! # async fn demo() -> Result<(), icedb_plugin::PluginError> {
//! use icedb_plugin::{PluginHost, HostOptions};
//! let host = PluginHost::new(HostOptions::default())?;
//! let day = host.load_partition("partition_by_day.wasm".as_ref(), &[("field".into(), "ts".into())])?;
//! let formatted = icedb_plugin::Batch { row_count: 0, columns: vec![] };
//! let paths = day.partition(day.project(&formatted)).await?;
//! # Ok(()) }
//! ```

mod bindings;
mod cache;
mod error;
mod format;
mod host;
mod partition;
mod pool;
mod sandbox;
mod stats;

pub use bindings::{Batch, Column, Value};
pub use error::{PluginError, PluginErrorKind};
pub use format::FormatPlugin;
pub use host::{ComponentInfo, HostOptions, Interface, PluginHost};
pub use partition::{PartitionPathError, PartitionPlugin, validate_partition_path};
pub use stats::PluginStats;

/// The version of the WIT contract (`icedb:plugin@…`) this host speaks.
pub const CONTRACT_VERSION: &str = "0.1.0";

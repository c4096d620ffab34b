//! icedb is IceDB's table engine as a library: it turns JSON events into
//! sorted Parquet files under Hive-style partitions in object storage, keeps
//! the meta store (icedb-meta) in step, merges and vacuums, and queries the
//! live files with DuckDB.
//!
//! It owns the pipeline (format → partition → group → Parquet → commit), the
//! built-in formatter and partitioners that make plugins optional, and the
//! standard event generator used by benchmarks and tests. Plugins run in
//! icedb-plugin; the commit log and replica live in icedb-meta.

pub mod builtin;
pub mod events;
pub mod rows;

pub use icedb_plugin::{Batch, Column, Value};

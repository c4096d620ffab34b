//! icedb is IceDB's table engine as a library: it turns JSON events into
//! sorted Parquet files under Hive-style partitions in object storage, keeps
//! the meta store (icedb-meta) in step, and queries the live files with
//! DuckDB.
//!
//! It owns the pipeline (format → partition → group → sorted Parquet →
//! parallel upload → one commit), schema inference and evolution, the
//! built-in formatter and partitioners that make plugins optional, the query
//! planner, and the standard event generator used by benchmarks and tests.
//! Plugins run in icedb-plugin; the commit log and replica live in
//! icedb-meta.

pub mod api;
pub mod builtin;
mod config;
mod cpu;
mod definition;
mod delta;
mod engine;
mod error;
pub mod events;
mod inline_part;
mod inputs;
mod insert;
mod kway;
mod log;
mod maintenance;
mod merge;
pub mod output;
mod partitioning;
mod plan;
mod prepared;
mod query;
pub mod rows;
mod schema;
mod table;
mod view;
mod write;

pub use config::{
    Compression, FormatSpec, Granularity, InlineSettings, PartitionSpec, TableConfig,
};
pub use cpu::on_cpu;
pub use definition::{
    AlterReport, Explicit, FormatDefinition, ParquetDefinition, PartitionDefinition,
    PluginReference, TableDefinition,
};
pub use engine::default_extension_dir;
pub use error::{Result, TableError};
pub use icedb_delta::{DeltaSettings, ExportReport as DeltaExportReport};
pub use icedb_meta::{
    ColumnDef, ColumnType, CommitError, CommitSummary, Conflict, DataFile, ExpirePolicy, MetaError,
    MetaOptions, Operation, PartitionFilter, PartitionStats, RetryOptions, S3Options, Snapshot,
    StatValue, StoreRace, Totals,
};
pub use icedb_plugin::PluginStats;
pub use icedb_plugin::{
    Batch, CONTRACT_VERSION, Column, HostOptions, Interface, PluginHost, Value,
};
pub use inline_part::inline_rows;
pub use insert::{DurableInsert, InsertReceipt};
pub use log::race_conditional_creates;
pub use maintenance::{RETENTION_FLOOR, RewriteReport, VacuumOptions, VacuumReport};
pub use merge::{MergePolicy, MergeReport, PartitionOrder};
pub use prepared::{JoinedRows, PreparedRows};
pub use query::{ColumnRange, QueryOptions, QueryResult};
pub use table::{LoadedPlugin, Table};
pub use write::encode_parquet;

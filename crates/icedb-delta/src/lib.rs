//! IceDB tables as Delta Lake tables: this crate owns the Delta log kept
//! beside IceDB's own (`<root>/_delta_log/`). IceDB's log stays the source
//! of truth; [`DeltaExporter`] turns each IceDB commit not yet exported
//! into one Delta commit (`add`/`remove` with statistics, `protocol` and
//! `metaData` at the first version and at each schema or definition
//! change, a `commitInfo` naming the IceDB version), written with Delta's
//! put-if-absent rule so two exporters never write one version twice, and
//! a Parquet checkpoint every N versions.
//!
//! The actions are written per the Delta protocol (PROTOCOL.md, reader 1 /
//! writer 2) with serde: the Delta project's Rust crates that share this
//! workspace's arrow 56 (`delta_kernel` ≤ 0.18) cannot commit metadata
//! changes or removes of chosen files, and arrow is pinned by DuckDB.
//! Real readers (DuckDB's delta extension, delta-rs) prove the output in
//! the end-to-end tests.
//!
//! Inline parts (rows kept in IceDB's log) are not in the Delta table until
//! a flush writes them to a file; the flush's commit then adds that file as
//! a data change.

mod actions;
mod checkpoint;
mod error;
mod export;

pub use error::DeltaError;
pub use export::{DeltaExporter, DeltaSettings, ExportReport, PartitionKey};

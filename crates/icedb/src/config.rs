//! How a table is set up: where it lives, how rows are formatted,
//! partitioned and sorted, and how Parquet is written.

use std::path::PathBuf;

use icedb_meta::{MetaOptions, S3Options};

use crate::builtin::JsonTextFormat;

/// How raw JSON rows become flat typed rows.
#[derive(Debug, Clone)]
pub enum FormatSpec {
    /// The built-in formatter: top-level fields as columns, nested values as
    /// JSON text, chosen fields as timestamps.
    JsonText(JsonTextFormat),
    /// A `format-row` WebAssembly component and its settings.
    Plugin {
        path: PathBuf,
        settings: Vec<(String, String)>,
    },
}

/// Time granularity of the built-in time partitioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// `y=YYYY/m=MM/d=DD/h=HH`
    Hour,
    /// `y=YYYY/m=MM/d=DD`
    Day,
    /// `y=YYYY/m=MM`
    Month,
}

impl Granularity {
    /// The name configs and messages use (`hour`, `day`, `month`).
    pub fn name(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
            Granularity::Month => "month",
        }
    }
}

/// Which partition each row lands in.
#[derive(Debug, Clone)]
pub enum PartitionSpec {
    /// UTC time partitions from a field holding a timestamp, epoch
    /// milliseconds (|n| ≥ 10^14: microseconds) or RFC 3339 text. Rows
    /// without the field use the time of the insert when
    /// `ingest_time_if_missing`, and fail otherwise.
    Time {
        field: String,
        granularity: Granularity,
        ingest_time_if_missing: bool,
    },
    /// The partition path is the text of a field of each row (`_partition`
    /// by default); the field itself is not stored.
    Field { field: String },
    /// A `partition-strategy` WebAssembly component and its settings.
    Plugin {
        path: PathBuf,
        settings: Vec<(String, String)>,
    },
}

impl Default for PartitionSpec {
    fn default() -> Self {
        PartitionSpec::Time {
            field: "ts".to_owned(),
            granularity: Granularity::Day,
            ingest_time_if_missing: true,
        }
    }
}

/// Parquet compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd { level: i32 },
    Snappy,
    Uncompressed,
}

/// Everything [`Table::open`](crate::Table::open) needs.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// The name SQL uses for the table.
    pub name: String,
    /// `s3://bucket/prefix`, `file:///abs/path` or a local path.
    pub root: String,
    pub s3: S3Options,
    /// Columns every file is sorted by (missing ones are skipped).
    pub sort_order: Vec<String>,
    pub format: FormatSpec,
    pub partitioning: PartitionSpec,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    pub compression: Compression,
    /// Merges aim for files of about this size (it caps every merge
    /// policy's `target_output_bytes`).
    pub target_file_bytes: u64,
    /// An insert splits a partition's rows into files of at most this many rows.
    pub max_rows_per_file: usize,
    /// When an insert keeps a partition's rows in its commit instead of a file.
    pub inline: InlineSettings,
    /// Keep a Delta Lake log beside IceDB's (`<root>/_delta_log/`): every
    /// commit of this process exports after it (best effort). `None`: only
    /// on demand (`Table::export_delta`).
    pub delta: Option<icedb_delta::DeltaSettings>,
    pub meta: MetaOptions,
    /// DuckDB's extension directory, holding httpfs for S3 tables.
    pub duckdb_extension_dir: Option<PathBuf>,
    /// Queries may read only the table's own files: DuckDB's external access
    /// is limited to the table root and locked (on by default; merges and
    /// rewrites run IceDB's own SQL in a separate database either way).
    pub sandbox_queries: bool,
    /// DuckDB's `memory_limit` for user queries (e.g. `2GB`; DuckDB's
    /// default: 80 % of RAM).
    pub query_memory_limit: Option<String>,
    /// DuckDB threads for user queries (DuckDB's default: every core).
    pub query_threads: Option<usize>,
    /// Which of sort order, format, partitioning and Parquet settings this
    /// process was given; the others follow the table's recorded
    /// definition (see [`TableDefinition`](crate::TableDefinition)).
    pub explicit: crate::definition::Explicit,
}

impl TableConfig {
    /// A table with the built-in formatter and daily partitioning on `ts`.
    pub fn new(name: impl Into<String>, root: impl Into<String>) -> Self {
        TableConfig {
            name: name.into(),
            root: root.into(),
            s3: S3Options::default(),
            sort_order: Vec::new(),
            format: FormatSpec::JsonText(JsonTextFormat::default()),
            partitioning: PartitionSpec::default(),
            row_group_rows: 122_880,
            compression: Compression::Zstd { level: 3 },
            target_file_bytes: 128 << 20,
            max_rows_per_file: 1_000_000,
            inline: InlineSettings::default(),
            delta: None,
            meta: MetaOptions::default(),
            duckdb_extension_dir: None,
            sandbox_queries: true,
            query_memory_limit: None,
            query_threads: None,
            explicit: crate::definition::Explicit::default(),
        }
    }
}

/// Inlined commits: an insert's rows for a partition, when few, go into the
/// commit itself (a small Parquet file, base64 in the log entry) instead of
/// a file on the store, until a merge flushes them into a file. A writer's
/// setting, not part of the table's definition: it changes where rows wait,
/// never what a query returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlineSettings {
    /// A partition's part of an insert is inlined when it has at most this
    /// many rows (0: never inline)...
    pub max_rows: usize,
    /// ...and its share of its segment's bytes (in proportion to its rows:
    /// an insert encodes its parts together) is at most this many.
    pub max_part_bytes: u64,
    /// The most bytes of inline rows the table's state holds (segments and
    /// parts with a live part or a flushed one kept for time travel: a
    /// segment counts whole until its last part is purged); a commit that would pass it
    /// writes files instead (checked against the log at commit time, so
    /// concurrent writers cannot pass it either). Replicas and checkpoints
    /// grow by at most this.
    pub limit_bytes: u64,
    /// Flushed inline parts stay readable (time travel to before the
    /// flush) up to this long, then merges purge them — sooner while the
    /// table holds over half of `limit_bytes`. No in-flight query needs
    /// them: a query holds the bytes it read in memory.
    pub keep_flushed: std::time::Duration,
}

impl Default for InlineSettings {
    /// Chosen by measurement: see docs/ARCHITECTURE.md, "Inlined commits".
    fn default() -> Self {
        InlineSettings {
            max_rows: 1_000,
            max_part_bytes: 256 << 10,
            limit_bytes: 16 << 20,
            keep_flushed: std::time::Duration::from_secs(60),
        }
    }
}

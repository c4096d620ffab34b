//! `icedb.toml`: what a host serves and how. Every key has a default, so an
//! empty file (or no file) is the embedded default; `ICEDB__SECTION__KEY`
//! environment variables override the file (`ICEDB__SERVER__LISTEN=...`).
//!
//! Longer than 600 lines on purpose: it is the whole config schema (every
//! section with its defaults) next to its one translation into library
//! types, so a key and what it does are read in one place. The sample is
//! `icedb.sample.toml`, the tests `config/tests.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use icedb::{
    Compression, FormatSpec, Granularity, MergePolicy, MetaOptions, PartitionOrder, PartitionSpec,
    S3Options, TableConfig, VacuumOptions,
};
use serde::Deserialize;

/// The whole configuration of a host.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    pub server: ServerConfig,
    pub ingest: IngestConfig,
    pub storage: StorageConfig,
    pub duckdb: DuckdbConfig,
    pub tables: Vec<TableSection>,
    /// Directory relative plugin paths and table roots are resolved against
    /// (the config file's directory); not a key of the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            server: ServerConfig::default(),
            ingest: IngestConfig::default(),
            storage: StorageConfig::default(),
            duckdb: DuckdbConfig::default(),
            tables: vec![TableSection::default()],
            base_dir: PathBuf::from("."),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Bearer tokens accepted by the API (any of them). Required when
    /// `listen` is not a loopback address.
    #[serde(deserialize_with = "one_or_many")]
    pub tokens: Vec<String>,
    /// Largest request body, after gzip decompression.
    pub max_body_bytes: usize,
    /// Queries running longer are stopped.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Queries returning more rows fail (add a LIMIT).
    pub max_result_rows: usize,
    /// Queries whose result takes more memory fail (add a LIMIT).
    pub max_result_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tokens: Vec::new(),
            max_body_bytes: 64 << 20,
            query_timeout: Duration::from_secs(30),
            max_result_rows: 1_000_000,
            max_result_bytes: 64 << 20,
        }
    }
}

/// Group commit and back-pressure, per table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Concurrent inserts within one flush window share files and a commit.
    pub group_commit: bool,
    /// How long the first insert of a group waits for others when a flush
    /// slot is free (while every slot is busy, a group keeps growing). A
    /// group closes earlier once it holds as many requests as the group
    /// before it and none is still being formatted.
    #[serde(with = "humantime_serde")]
    pub flush_window: Duration,
    /// A group is flushed early once it holds this many rows.
    pub max_group_rows: usize,
    /// Rows accepted but not yet committed; beyond this, inserts get 429.
    pub queue_rows: usize,
    /// Group commits in flight at once.
    pub concurrent_flushes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            group_commit: true,
            flush_window: Duration::from_millis(2),
            max_group_rows: 100_000,
            queue_rows: 1_000_000,
            concurrent_flushes: 1,
        }
    }
}

/// How to reach S3 for `s3://` roots. Credentials come from the standard
/// AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style URLs (unset: AWS_VIRTUAL_HOSTED_STYLE_REQUEST, else path-style).
    pub path_style: Option<bool>,
    /// Plain-HTTP endpoints (unset: AWS_ALLOW_HTTP, or implied by an http:// endpoint).
    pub allow_http: Option<bool>,
    /// Local directory for the meta-store replicas (one per table; a cache
    /// that can be deleted). Default: the user's cache directory.
    pub replica_dir: Option<PathBuf>,
    /// Retries of one S3 request after a 5xx (503 SlowDown), 429, a reset
    /// connection or a time-out.
    pub max_retries: usize,
    /// No retry of a request starts later than this after its first try.
    #[serde(with = "humantime_serde")]
    pub retry_timeout: Duration,
    /// One try's time limit.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// After a commit request whose outcome is unknown, how long to keep
    /// reading the log to find out before answering "outcome unknown".
    #[serde(with = "humantime_serde")]
    pub outcome_budget: Duration,
}

impl StorageConfig {
    pub fn retry(&self) -> icedb::RetryOptions {
        icedb::RetryOptions {
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
            request_timeout: self.request_timeout,
            connect_timeout: self.connect_timeout,
            ..icedb::RetryOptions::default()
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        let retry = icedb::RetryOptions::default();
        StorageConfig {
            endpoint: None,
            region: None,
            path_style: None,
            allow_http: None,
            replica_dir: None,
            max_retries: retry.max_retries,
            retry_timeout: retry.retry_timeout,
            request_timeout: retry.request_timeout,
            connect_timeout: retry.connect_timeout,
            outcome_budget: icedb::MetaOptions::default().outcome_budget,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DuckdbConfig {
    /// Holds the httpfs extension for S3 tables (default:
    /// `ICEDB_DUCKDB_EXTENSION_DIR`, then where scripts/setup.sh installs it,
    /// `~/.cache/icedb/duckdb/extensions`).
    pub extension_dir: Option<PathBuf>,
    /// DuckDB's memory limit for queries, e.g. "2GB" (default: DuckDB's,
    /// 80 % of RAM).
    pub memory_limit: Option<String>,
    /// DuckDB threads per table's queries (default: every core).
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableSection {
    pub name: String,
    /// `s3://bucket/prefix`, `file:///abs/path` or a path.
    pub root: String,
    /// Definition settings: `None` follows the table's recorded definition
    /// (IceDB's defaults for a new table); given ones must agree with it.
    pub sort_order: Option<Vec<String>>,
    pub format: Option<FormatSection>,
    pub partitioning: Option<PartitionSection>,
    pub parquet: Option<ParquetSection>,
    pub merge: MergeSection,
    pub vacuum: VacuumSection,
    pub checkpoint: CheckpointSection,
    pub inline: InlineSection,
    pub delta: DeltaSection,
}

impl Default for TableSection {
    fn default() -> Self {
        TableSection {
            name: "events".into(),
            root: "./icedb-data/events".into(),
            sort_order: None,
            format: None,
            partitioning: None,
            parquet: None,
            merge: MergeSection::default(),
            vacuum: VacuumSection::default(),
            checkpoint: CheckpointSection::default(),
            inline: InlineSection::default(),
            delta: DeltaSection::default(),
        }
    }
}

/// A plugin setting: TOML strings, numbers and booleans, passed as text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl std::fmt::Display for SettingValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingValue::Text(text) => f.write_str(text),
            SettingValue::Int(n) => write!(f, "{n}"),
            SettingValue::Float(x) => write!(f, "{x}"),
            SettingValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    S,
    Ms,
    Us,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FormatSection {
    /// A `format-row` component; the built-in formatter when absent.
    pub plugin: Option<PathBuf>,
    pub settings: BTreeMap<String, SettingValue>,
    /// Built-in formatter: fields read as timestamps.
    pub timestamp_fields: Vec<String>,
    /// Built-in formatter: the unit of numeric timestamps.
    pub timestamp_unit: TimeUnit,
}

impl Default for FormatSection {
    fn default() -> Self {
        FormatSection {
            plugin: None,
            settings: BTreeMap::new(),
            timestamp_fields: vec!["ts".into()],
            timestamp_unit: TimeUnit::Ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionBy {
    /// Hive time partitions from a timestamp field.
    Time,
    /// The partition path is a field's text.
    Field,
    /// A `partition-strategy` component.
    Plugin,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PartitionSection {
    pub by: PartitionBy,
    /// `by = "time"`: the timestamp field (default `ts`); `by = "field"`:
    /// the field holding the path (default `_partition`).
    pub field: Option<String>,
    pub granularity: Granularity,
    /// `by = "time"`: rows without the field go to the insert time's partition.
    pub ingest_time_if_missing: bool,
    pub plugin: Option<PathBuf>,
    pub settings: BTreeMap<String, SettingValue>,
}

impl Default for PartitionSection {
    fn default() -> Self {
        PartitionSection {
            by: PartitionBy::Time,
            field: None,
            granularity: Granularity::Day,
            ingest_time_if_missing: true,
            plugin: None,
            settings: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionName {
    Zstd,
    Snappy,
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParquetSection {
    pub compression: CompressionName,
    pub zstd_level: i32,
    pub row_group_rows: usize,
    pub target_file_bytes: u64,
    pub max_rows_per_file: usize,
}

impl Default for ParquetSection {
    fn default() -> Self {
        let table = TableConfig::new("t", ".");
        ParquetSection {
            compression: CompressionName::Zstd,
            zstd_level: 3,
            row_group_rows: table.row_group_rows,
            target_file_bytes: table.target_file_bytes,
            max_rows_per_file: table.max_rows_per_file,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MergeSection {
    pub hot: MergePolicySection,
    pub cold: MergePolicySection,
}

impl Default for MergeSection {
    fn default() -> Self {
        MergeSection {
            hot: MergePolicySection {
                every: Some(MergePolicy::HOT_EVERY),
                ..Default::default()
            },
            cold: MergePolicySection {
                every: Some(MergePolicy::COLD_EVERY),
                ..Default::default()
            },
        }
    }
}

/// A merge policy; keys left out take IceDB's recommended hot or cold value.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MergePolicySection {
    pub enabled: Option<bool>,
    #[serde(with = "humantime_serde")]
    pub every: Option<Duration>,
    pub order: Option<PartitionOrder>,
    pub partition_prefix: Option<String>,
    pub max_partitions: Option<usize>,
    pub max_input_bytes: Option<u64>,
    pub target_output_bytes: Option<u64>,
    pub max_files_per_merge: Option<usize>,
    pub concurrency: Option<usize>,
    /// SQL over `source` replacing each job's inputs (dedupe, aggregate).
    pub query: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VacuumSection {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// Allow a grace below the 1 h retention floor (see `vacuum --help`).
    pub force: bool,
    pub keep_log_versions: u64,
    pub keep_checkpoints: usize,
    /// How often a scheduled vacuum also looks for orphans (a LIST of every
    /// data object; see `VacuumOptions::orphans`); 0: every vacuum.
    #[serde(with = "humantime_serde")]
    pub orphans_every: Duration,
}

impl Default for VacuumSection {
    fn default() -> Self {
        VacuumSection {
            enabled: true,
            every: Duration::from_secs(600),
            grace: icedb::RETENTION_FLOOR,
            force: false,
            keep_log_versions: 1_000,
            keep_checkpoints: 3,
            orphans_every: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSection {
    /// Upload a checkpoint once the log has grown this many versions past
    /// the newest one (0: never).
    pub every_versions: u64,
    #[serde(with = "humantime_serde")]
    pub check_every: Duration,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        CheckpointSection {
            every_versions: 100,
            check_every: Duration::from_secs(60),
        }
    }
}

/// A Delta Lake log kept beside the table's (`<root>/_delta_log/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeltaSection {
    /// Export after every commit of this host, and catch up on a timer.
    pub enabled: bool,
    /// A Parquet checkpoint every this many Delta versions (0: never).
    pub checkpoint_every: u64,
    /// How often the catch-up runs (exports commits other processes made).
    #[serde(with = "humantime_serde")]
    pub every: Duration,
}

impl Default for DeltaSection {
    fn default() -> Self {
        DeltaSection {
            enabled: false,
            checkpoint_every: icedb::DeltaSettings::default().checkpoint_every,
            every: Duration::from_secs(60),
        }
    }
}

/// Inlined commits (see [`icedb::InlineSettings`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InlineSection {
    pub max_rows: usize,
    pub max_part_bytes: u64,
    pub limit_bytes: u64,
    #[serde(with = "humantime_serde")]
    pub keep_flushed: Duration,
}

impl Default for InlineSection {
    fn default() -> Self {
        let defaults = icedb::InlineSettings::default();
        InlineSection {
            max_rows: defaults.max_rows,
            max_part_bytes: defaults.max_part_bytes,
            limit_bytes: defaults.limit_bytes,
            keep_flushed: defaults.keep_flushed,
        }
    }
}

/// A scheduled merge policy.
#[derive(Debug, Clone)]
pub struct ScheduledMerge {
    pub policy: MergePolicy,
    pub every: Duration,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(list) => list,
    })
}

/// The environment prefix of overrides: `ICEDB__SERVER__LISTEN` sets
/// `server.listen`.
pub const ENV_PREFIX: &str = "ICEDB__";

impl HostConfig {
    /// Reads `path` (which must exist) or, without one, `./icedb.toml` if
    /// present, else the embedded default; then applies `ICEDB__*` overrides.
    pub fn load(path: Option<&Path>) -> Result<HostConfig> {
        let default_path = Path::new("icedb.toml");
        let (file, base_dir) = match path {
            Some(path) => {
                if !path.is_file() {
                    bail!(
                        "config file {} does not exist (`icedb-host init` writes a commented sample)",
                        path.display()
                    );
                }
                let base = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_owned();
                (Some(path.to_owned()), base)
            }
            None if default_path.is_file() => (Some(default_path.to_owned()), PathBuf::from(".")),
            None => (None, PathBuf::from(".")),
        };
        let mut figment = Figment::new();
        if let Some(file) = &file {
            tracing::info!(config = %file.display(), "reading configuration");
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        let mut config: HostConfig = figment.extract().map_err(|e| {
            // figment names the key and the file (or the variable).
            anyhow::anyhow!("invalid configuration: {e}")
        })?;
        config.base_dir = base_dir;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (no environment).
    #[cfg(test)]
    pub fn from_toml(text: &str) -> Result<HostConfig> {
        let mut config: HostConfig = Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.base_dir = PathBuf::from(".");
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.tables.is_empty() {
            bail!("invalid configuration: `tables` is empty; a host serves at least one table");
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, table) in self.tables.iter().enumerate() {
            let key = |field: &str| format!("tables[{index}].{field}");
            if !names.insert(table.name.as_str()) {
                bail!(
                    "invalid configuration: {} = {:?} is used by two tables",
                    key("name"),
                    table.name
                );
            }
            if table.root.is_empty() {
                bail!("invalid configuration: {} is empty", key("root"));
            }
            let partitioning = table.partitioning.clone().unwrap_or_default();
            match partitioning.by {
                PartitionBy::Plugin if partitioning.plugin.is_none() => bail!(
                    "invalid configuration: {} is required when {} = \"plugin\"",
                    key("partitioning.plugin"),
                    key("partitioning.by")
                ),
                PartitionBy::Time | PartitionBy::Field if partitioning.plugin.is_some() => bail!(
                    "invalid configuration: {} is set but {} is not \"plugin\"",
                    key("partitioning.plugin"),
                    key("partitioning.by")
                ),
                _ => {}
            }
            for (name, policy) in [("hot", &table.merge.hot), ("cold", &table.merge.cold)] {
                if policy.every.is_some_and(|every| every.is_zero()) {
                    bail!(
                        "invalid configuration: {} must be longer than 0s (set enabled = false to turn the policy off)",
                        key(&format!("merge.{name}.every"))
                    );
                }
            }
            if table.delta.enabled && table.delta.every.is_zero() {
                anyhow::bail!(
                    "invalid configuration: {} must be more than 0",
                    key("delta.every")
                );
            }
            if table.vacuum.every.is_zero() || table.checkpoint.check_every.is_zero() {
                bail!(
                    "invalid configuration: {} and {} must be longer than 0s",
                    key("vacuum.every"),
                    key("checkpoint.check_every")
                );
            }
        }
        if self.ingest.queue_rows == 0
            || self.ingest.max_group_rows == 0
            || self.ingest.concurrent_flushes == 0
        {
            bail!(
                "invalid configuration: ingest.queue_rows, ingest.max_group_rows and ingest.concurrent_flushes must be at least 1"
            );
        }
        Ok(())
    }

    /// The table named `name`, or the only table when `name` is `None`.
    pub fn table(&self, name: Option<&str>) -> Result<&TableSection> {
        match name {
            Some(name) => self
                .tables
                .iter()
                .find(|t| t.name == name)
                .with_context(|| {
                    let names: Vec<&str> = self.tables.iter().map(|t| t.name.as_str()).collect();
                    format!(
                        "no table `{name}` in the configuration (it has: {})",
                        names.join(", ")
                    )
                }),
            None if self.tables.len() == 1 => Ok(&self.tables[0]),
            None => bail!("the configuration has several tables; choose one with --table-name"),
        }
    }

    /// The S3 settings of the `[storage]` section.
    pub fn s3(&self) -> S3Options {
        S3Options {
            endpoint: self.storage.endpoint.clone(),
            region: self.storage.region.clone(),
            allow_http: self.storage.allow_http,
            path_style: self.storage.path_style,
            retry: self.storage.retry(),
            ..S3Options::default()
        }
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            return path.to_owned();
        }
        // Without `.` segments, so logs and the API show clean paths.
        let relative: PathBuf = path
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        if self.base_dir == Path::new(".") {
            Path::new(".").join(relative)
        } else {
            self.base_dir.join(relative)
        }
    }

    /// What `Table::open` needs for `section`.
    pub fn table_config(&self, section: &TableSection) -> TableConfig {
        let root = if section.root.contains("://") || Path::new(&section.root).is_absolute() {
            section.root.clone()
        } else {
            self.resolve(Path::new(&section.root)).display().to_string()
        };
        let mut config = TableConfig::new(section.name.clone(), root);
        config.s3 = self.s3();
        config.explicit = icedb::Explicit {
            sort_order: section.sort_order.is_some(),
            format: section.format.is_some(),
            partitioning: section.partitioning.is_some(),
            parquet: section.parquet.is_some(),
        };
        config.sort_order = section
            .sort_order
            .clone()
            .unwrap_or_else(|| vec!["event".into(), "ts".into()]);
        let format = section.format.clone().unwrap_or_default();
        let settings = |map: &BTreeMap<String, SettingValue>| -> Vec<(String, String)> {
            map.iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect()
        };
        config.format = match &format.plugin {
            Some(path) => FormatSpec::Plugin {
                path: self.resolve(path),
                settings: settings(&format.settings),
            },
            None => FormatSpec::JsonText(icedb::builtin::JsonTextFormat {
                timestamp_fields: format.timestamp_fields.clone(),
                timestamp_unit_micros: match format.timestamp_unit {
                    TimeUnit::S => 1_000_000,
                    TimeUnit::Ms => 1_000,
                    TimeUnit::Us => 1,
                },
            }),
        };
        let partitioning = section.partitioning.clone().unwrap_or_default();
        config.partitioning = match partitioning.by {
            PartitionBy::Time => PartitionSpec::Time {
                field: partitioning.field.clone().unwrap_or_else(|| "ts".into()),
                granularity: partitioning.granularity,
                ingest_time_if_missing: partitioning.ingest_time_if_missing,
            },
            PartitionBy::Field => PartitionSpec::Field {
                field: partitioning
                    .field
                    .clone()
                    .unwrap_or_else(|| "_partition".into()),
            },
            PartitionBy::Plugin => PartitionSpec::Plugin {
                path: self.resolve(partitioning.plugin.as_deref().unwrap_or(Path::new(""))),
                settings: settings(&partitioning.settings),
            },
        };
        let parquet = section.parquet.clone().unwrap_or_default();
        config.compression = match parquet.compression {
            CompressionName::Zstd => Compression::Zstd {
                level: parquet.zstd_level,
            },
            CompressionName::Snappy => Compression::Snappy,
            CompressionName::None => Compression::Uncompressed,
        };
        config.row_group_rows = parquet.row_group_rows;
        config.target_file_bytes = parquet.target_file_bytes;
        config.max_rows_per_file = parquet.max_rows_per_file;
        config.inline = icedb::InlineSettings {
            max_rows: section.inline.max_rows,
            max_part_bytes: section.inline.max_part_bytes,
            limit_bytes: section.inline.limit_bytes,
            keep_flushed: section.inline.keep_flushed,
        };
        config.delta = section.delta.enabled.then_some(icedb::DeltaSettings {
            checkpoint_every: section.delta.checkpoint_every,
        });
        config.meta = MetaOptions {
            replica_dir: self.storage.replica_dir.as_ref().map(|dir| {
                use std::hash::{Hash, Hasher};
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                config.root.hash(&mut hasher);
                self.resolve(dir)
                    .join(format!("{}-{:016x}", section.name, hasher.finish()))
            }),
            outcome_budget: self.storage.outcome_budget,
            ..MetaOptions::default()
        };
        config.query_memory_limit = self.duckdb.memory_limit.clone();
        config.query_threads = self.duckdb.threads;
        if let Some(dir) = &self.duckdb.extension_dir {
            config.duckdb_extension_dir = Some(self.resolve(dir));
        }
        config
    }

    /// The enabled merge policies of `section`, on top of IceDB's
    /// recommended hot and cold policies.
    pub fn merges(&self, section: &TableSection) -> Vec<ScheduledMerge> {
        let mut scheduled = Vec::new();
        for (base, default_every, overrides) in [
            (
                MergePolicy::hot(),
                MergePolicy::HOT_EVERY,
                &section.merge.hot,
            ),
            (
                MergePolicy::cold(),
                MergePolicy::COLD_EVERY,
                &section.merge.cold,
            ),
        ] {
            if overrides.enabled == Some(false) {
                continue;
            }
            let mut policy = base;
            if let Some(order) = overrides.order {
                policy.order = order;
            }
            policy.partition_prefix = overrides.partition_prefix.clone();
            macro_rules! set {
                ($($field:ident),*) => {$(
                    if let Some(value) = overrides.$field { policy.$field = value; }
                )*};
            }
            set!(
                max_partitions,
                max_input_bytes,
                target_output_bytes,
                max_files_per_merge,
                concurrency
            );
            policy.query = overrides.query.clone();
            scheduled.push(ScheduledMerge {
                policy,
                every: overrides.every.unwrap_or(default_every),
            });
        }
        scheduled
    }

    pub fn vacuum_options(section: &TableSection) -> VacuumOptions {
        VacuumOptions {
            grace: section.vacuum.grace,
            force: section.vacuum.force,
            expire: Some(icedb::ExpirePolicy {
                keep_checkpoints: section.vacuum.keep_checkpoints,
                keep_log_versions: section.vacuum.keep_log_versions,
            }),
            orphans: true,
        }
    }
}

/// What `icedb-host init` writes: every key with its default, commented.
pub const SAMPLE: &str = include_str!("icedb.sample.toml");

#[cfg(test)]
mod tests;

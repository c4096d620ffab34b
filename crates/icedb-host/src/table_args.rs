//! Opening a table from command-line flags: a bare root URL plus the
//! settings a config file would give (sort order, plugins, S3).

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::HostConfig;
use icedb::{
    FormatSpec, Granularity, MetaOptions, PartitionSpec, PluginHost, S3Options, Table, TableConfig,
};

#[derive(clap::Args, Debug, Clone)]
pub struct TableArgs {
    /// Take the table from this configuration file (see `icedb-host init`)
    /// instead of the flags below.
    #[arg(long, env = "ICEDB_CONFIG", conflicts_with = "table")]
    pub config: Option<PathBuf>,
    /// The table root: s3://bucket/prefix, file:///abs/path or a local path
    /// [default: ./icedb-data/events].
    #[arg(long, env = "ICEDB_TABLE")]
    pub table: Option<String>,
    /// The table's name in SQL; with --config, which configured table
    /// [default: events, or the config's only table].
    #[arg(long)]
    pub table_name: Option<String>,
    /// Columns every file is sorted by, comma-separated. Recorded by the
    /// table's first insert [default: event,ts]; later, omit it to follow
    /// the table (a different value is an error).
    #[arg(long, value_delimiter = ',')]
    pub sort_order: Option<Vec<String>>,
    /// A format-row component replacing the built-in JSON-text formatter.
    #[arg(long)]
    pub format_plugin: Option<PathBuf>,
    /// A partition-strategy component replacing the built-in daily partitioning on `ts`.
    #[arg(long)]
    pub partition_plugin: Option<PathBuf>,
    /// A plugin setting KEY=VALUE (repeatable), passed to both plugins.
    #[arg(long = "plugin-config", value_name = "KEY=VALUE", value_parser = crate::parse_setting)]
    pub plugin_config: Vec<(String, String)>,
    /// S3 endpoint for S3-compatible servers, e.g. http://127.0.0.1:9000.
    #[arg(long, env = "ICEDB_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: AWS_REGION, else us-east-1].
    #[arg(long)]
    pub s3_region: Option<String>,
    /// Use path-style S3 URLs (the default unless
    /// AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true).
    #[arg(long, env = "ICEDB_S3_PATH_STYLE")]
    pub s3_path_style: bool,
    /// Allow plain-HTTP S3 endpoints (implied by an http:// endpoint;
    /// default: AWS_ALLOW_HTTP).
    #[arg(long, env = "ICEDB_S3_ALLOW_HTTP")]
    pub s3_allow_http: bool,
    /// Retries of one S3 request after 5xx (503 SlowDown), 429, a reset
    /// connection or a time-out.
    #[arg(long, env = "ICEDB_S3_MAX_RETRIES", default_value_t = icedb::RetryOptions::default().max_retries)]
    pub s3_max_retries: usize,
    /// No retry of an S3 request starts later than this after its first try.
    #[arg(long, env = "ICEDB_S3_RETRY_TIMEOUT", default_value = "3m", value_parser = humantime::parse_duration)]
    pub s3_retry_timeout: std::time::Duration,
    /// One S3 request's time limit.
    #[arg(long, env = "ICEDB_S3_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub s3_request_timeout: std::time::Duration,
    /// DuckDB's extension directory (httpfs for S3 tables).
    #[arg(long, env = "ICEDB_DUCKDB_EXTENSION_DIR")]
    pub duckdb_extension_dir: Option<PathBuf>,
    /// Keep a partition's rows of an insert in the commit (until a merge
    /// writes them to a file) when at most this many; 0: always write
    /// files. Default: the config's `[tables.inline] max_rows`, else 1000.
    #[arg(long, env = "ICEDB_INLINE_MAX_ROWS")]
    pub inline_max_rows: Option<usize>,
}

impl TableArgs {
    pub fn config(&self) -> Result<TableConfig> {
        if let Some(path) = &self.config {
            let host = HostConfig::load(Some(path))?;
            let section = host.table(self.table_name.as_deref())?;
            let mut config = host.table_config(section);
            if self.duckdb_extension_dir.is_some() {
                config.duckdb_extension_dir = self.duckdb_extension_dir.clone();
            }
            if let Some(rows) = self.inline_max_rows {
                config.inline.max_rows = rows;
            }
            return Ok(config);
        }
        let root = self
            .table
            .clone()
            .unwrap_or_else(|| "./icedb-data/events".to_owned());
        let name = self
            .table_name
            .clone()
            .unwrap_or_else(|| "events".to_owned());
        let mut config = TableConfig::new(name, root);
        if let Some(sort_order) = &self.sort_order {
            config.sort_order = sort_order
                .iter()
                .filter(|c| !c.is_empty())
                .cloned()
                .collect();
        } else {
            config.sort_order = vec!["event".to_owned(), "ts".to_owned()];
        }
        // What the flags do not say follows the table's recorded definition.
        config.explicit = icedb::Explicit {
            sort_order: self.sort_order.is_some(),
            format: self.format_plugin.is_some(),
            partitioning: self.partition_plugin.is_some(),
            parquet: false,
        };
        config.s3 = S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            allow_http: self.s3_allow_http.then_some(true),
            path_style: self.s3_path_style.then_some(true),
            retry: icedb::RetryOptions {
                max_retries: self.s3_max_retries,
                retry_timeout: self.s3_retry_timeout,
                request_timeout: self.s3_request_timeout,
                ..icedb::RetryOptions::default()
            },
            ..S3Options::default()
        };
        if let Some(path) = &self.format_plugin {
            config.format = FormatSpec::Plugin {
                path: path.clone(),
                settings: self.plugin_config.clone(),
            };
        }
        config.partitioning = match &self.partition_plugin {
            Some(path) => PartitionSpec::Plugin {
                path: path.clone(),
                settings: self.plugin_config.clone(),
            },
            None => PartitionSpec::Time {
                field: "ts".into(),
                granularity: Granularity::Day,
                ingest_time_if_missing: true,
            },
        };
        config.meta = MetaOptions::default();
        if let Some(rows) = self.inline_max_rows {
            config.inline.max_rows = rows;
        }
        if self.duckdb_extension_dir.is_some() {
            config.duckdb_extension_dir = self.duckdb_extension_dir.clone();
        }
        Ok(config)
    }

    pub async fn open(&self) -> Result<Table> {
        self.open_config(self.config()?).await
    }

    /// Opens the table with `config` (this command's [`config`](Self::config), adjusted).
    pub async fn open_config(&self, config: TableConfig) -> Result<Table> {
        let root = config.root.clone();
        let plugins = PluginHost::new(Default::default())?;
        Table::open(config, &plugins)
            .await
            .with_context(|| format!("opening table {root}"))
    }
}

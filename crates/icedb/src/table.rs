//! A table: opening it (definition checks against the log), its settings,
//! plugins and store; the insert pipeline is `insert.rs`, queries
//! `query.rs`.

use std::sync::Arc;

use arrow::array::RecordBatch;
use futures::TryStreamExt;
use icedb_meta::{ColumnDef, DataFile, MetaStore, TableLocation};
use icedb_plugin::{FormatPlugin, PluginHost};
use object_store::ObjectStore;
use object_store::path::Path;

use crate::builtin::JsonTextFormat;
use crate::config::{FormatSpec, TableConfig};
use crate::definition::{self, TableDefinition, WriteBlock};
use crate::engine::QueryEngine;
use crate::error::{Result, TableError};
use crate::partitioning::Partitioner;
use crate::write::FileLayout;

/// How rows are formatted: built-in or plugin.
pub(crate) enum Formatter {
    JsonText(JsonTextFormat),
    Plugin(FormatPlugin),
}

/// A plugin a table runs, with its counters.
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    /// `format-row` or `partition-strategy`.
    pub role: &'static str,
    pub name: String,
    pub stats: icedb_plugin::PluginStats,
}

/// An open table. Cheap operations are `&self`; share it behind an `Arc`.
pub struct Table {
    pub(crate) config: TableConfig,
    /// The definition as recorded (or, for a new table, as its first
    /// commit will record it); every insert states it.
    pub(crate) definition: TableDefinition,
    /// The same, as every insert states it (serialised once).
    pub(crate) definition_json: serde_json::Value,
    /// Why this process may not write, if so.
    pub(crate) write_block: WriteBlock,
    pub(crate) location: TableLocation,
    pub(crate) meta: MetaStore,
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) formatter: Formatter,
    pub(crate) partitioner: Partitioner,
    pub(crate) query_engine: QueryEngine,
    /// Signalled when live inline parts pass a quarter of the bound.
    pub(crate) flush_wanted: tokio::sync::Notify,
    /// Keeps `_delta_log/` in step (after each commit when
    /// `config.delta` is set, else on demand).
    pub(crate) delta: icedb_delta::DeltaExporter,
}

impl Table {
    /// Opens (or creates) the table: connects to its store, brings the meta
    /// store up to date and loads its plugins. `plugins` is shared by every
    /// table of a process.
    pub async fn open(config: TableConfig, plugins: &PluginHost) -> Result<Table> {
        Table::open_with(config, None, plugins).await
    }

    /// Opens the table with its commits and file writes going through
    /// `store` (rooted at the table) instead of the store its root names:
    /// for wrappers that instrument the store or inject faults. Queries
    /// still read files from the root itself.
    pub async fn open_on(
        config: TableConfig,
        store: Arc<dyn ObjectStore>,
        plugins: &PluginHost,
    ) -> Result<Table> {
        Table::open_with(config, Some(store), plugins).await
    }

    async fn open_with(
        config: TableConfig,
        store: Option<Arc<dyn ObjectStore>>,
        plugins: &PluginHost,
    ) -> Result<Table> {
        if config.name.is_empty()
            || !config
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(TableError::Config(format!(
                "table name `{}` must be non-empty ASCII letters, digits and underscores",
                config.name
            )));
        }
        let mut config = config;
        let location = TableLocation::parse(&config.root, &config.s3)?;
        let meta = match store {
            Some(store) => {
                MetaStore::open_location_on(&location, store, config.meta.clone()).await?
            }
            None => MetaStore::open_location(&location, config.meta.clone()).await?,
        };
        let store = meta.object_store();
        let mine = TableDefinition::of(&config)?;
        let recorded = meta
            .snapshot()?
            .definition()?
            .map(TableDefinition::from_json)
            .transpose()?;
        let (definition, write_block) = match recorded {
            Some(recorded) => {
                let block = definition::follow(&mut config, &mine, &recorded)?;
                (recorded, block)
            }
            None => (mine, None),
        };
        let formatter = match &config.format {
            FormatSpec::JsonText(format) => Formatter::JsonText(format.clone()),
            FormatSpec::Plugin { path, settings } => {
                Formatter::Plugin(plugins.load_format(path, settings)?)
            }
        };
        let partitioner = Partitioner::from_spec(&config.partitioning, plugins)?;
        let query_engine = QueryEngine::new(&config, &location)?;
        let delta = icedb_delta::DeltaExporter::new(
            config.delta.unwrap_or_default(),
            integer_keys(&partitioner),
        );
        Ok(Table {
            config,
            definition_json: definition.to_json(),
            definition,
            write_block,
            location,
            meta,
            store,
            formatter,
            partitioner,
            query_engine,
            flush_wanted: tokio::sync::Notify::new(),
            delta,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Completes once inserts have piled up inline parts (a quarter of the
    /// table's inline bound live, checked after each inlining commit): a
    /// scheduler runs its hot merge then instead of at its next tick, so
    /// the bound keeps room and small inserts keep inlining.
    pub async fn flush_wanted(&self) {
        self.flush_wanted.notified().await
    }

    /// Signals [`flush_wanted`](Self::flush_wanted) if live inline parts
    /// hold a quarter of the bound or more.
    pub(crate) fn note_inline_pressure(&self) {
        let live = self.meta.snapshot().and_then(|s| s.inline_totals());
        if live.is_ok_and(|live| live.bytes >= self.config.inline.limit_bytes / 4) {
            self.flush_wanted.notify_one();
        }
    }

    /// Partition keys the definition makes integers: the built-in time
    /// partitioning's `y`, `m`, `d`, `h` (zero-padded in paths).
    pub(crate) fn integer_partition_keys(&self) -> &'static [&'static str] {
        integer_keys(&self.partitioner)
    }

    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    pub fn location(&self) -> &TableLocation {
        &self.location
    }

    /// The WebAssembly plugins this table runs and their counters (empty
    /// with the built-ins).
    pub fn plugins(&self) -> Vec<LoadedPlugin> {
        let mut loaded = Vec::new();
        if let Formatter::Plugin(plugin) = &self.formatter {
            loaded.push(LoadedPlugin {
                role: "format-row",
                name: plugin.name().to_owned(),
                stats: plugin.stats(),
            });
        }
        if let Partitioner::Plugin(plugin) = &self.partitioner {
            loaded.push(LoadedPlugin {
                role: "partition-strategy",
                name: plugin.name().to_owned(),
                stats: plugin.stats(),
            });
        }
        loaded
    }

    /// A URL other engines can read a data file at (`file:///...` for a
    /// local table, `s3://bucket/...`); `path` is relative to the root.
    pub fn file_url(&self, path: &str) -> String {
        let url = self.query_engine.url(path);
        if url.starts_with('/') {
            format!("file://{url}")
        } else {
            url
        }
    }

    /// The table's meta store (snapshots, history, checkpoints).
    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    /// The table's definition (as recorded, or as this process will
    /// record it with the table's first commit).
    pub fn definition(&self) -> &TableDefinition {
        &self.definition
    }

    /// After a commit failed: deletes the files it uploaded if it certainly
    /// did not land (all or nothing); keeps them if the outcome is unknown,
    /// since a landed commit references them (vacuum's orphan pass collects
    /// them past the retention floor if it did not land).
    pub(crate) async fn discard_uncommitted<'a>(
        &self,
        error: &icedb_meta::CommitError,
        paths: impl Iterator<Item = &'a str>,
    ) {
        if error.certainly_not_committed() {
            self.delete_files(paths).await;
        } else {
            let kept: Vec<&str> = paths.collect();
            tracing::warn!(files = ?kept, %error, "commit outcome unknown; keeping its files");
        }
    }

    /// Sorts and encodes `record` as a new file of `partition` and uploads it.
    pub(crate) async fn write_file(
        &self,
        record: RecordBatch,
        partition: &str,
    ) -> Result<DataFile> {
        let (file, bytes) = FileLayout::of(&self.config).encode(
            record,
            partition,
            chrono::Utc::now().timestamp_millis(),
        )?;
        self.put_object(&file.path, bytes).await?;
        Ok(file)
    }

    /// Writes one object of the table (a data file).
    pub(crate) async fn put_object(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        let location = Path::from(path);
        self.store
            .put(&location, bytes.into())
            .await
            .map_err(|e| TableError::store(&location, e))?;
        Ok(())
    }

    /// Best-effort deletion of files no commit references (vacuum's orphan
    /// collection catches any that remain).
    pub(crate) async fn delete_files<'a>(&self, paths: impl Iterator<Item = &'a str>) {
        let paths: Vec<Path> = paths.map(Path::from).collect();
        if let Err(error) = self.meta.delete_objects(paths).await {
            tracing::warn!(%error, "could not delete uncommitted files; vacuum will collect them");
        }
    }

    /// The table schema as of the last sync.
    pub fn schema(&self) -> Result<Vec<ColumnDef>> {
        Ok(self.meta.snapshot()?.schema()?)
    }

    /// Object keys under `data/` (committed or not), for vacuum and tests.
    pub async fn list_data_objects(&self) -> Result<Vec<object_store::ObjectMeta>> {
        let prefix = Path::from("data");
        self.store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| TableError::store(&prefix, e))
    }
}

/// Partition keys a partitioner makes integers: the built-in time
/// partitioning's `y`, `m`, `d`, `h` (zero-padded in paths).
fn integer_keys(partitioner: &Partitioner) -> &'static [&'static str] {
    match partitioner {
        Partitioner::Time { .. } => &["y", "m", "d", "h"],
        _ => &[],
    }
}

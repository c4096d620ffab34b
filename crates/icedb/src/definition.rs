//! A table's definition — sort order, partitioning, formatter and Parquet
//! settings — recorded in the log by the table's first commit (as Delta's
//! `metaData`, Iceberg's table metadata and DuckLake's catalog do), so every
//! process writes the table one way. A process's own settings either agree
//! with it or, when it was not given them, are taken from it; a
//! contradiction is an error naming both values. Plugins are recorded by
//! name, SHA-256 of their bytes and settings: a process whose component has
//! other bytes may read the table but not write it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::builtin::JsonTextFormat;
use crate::config::{Compression, FormatSpec, Granularity, PartitionSpec, TableConfig};
use crate::error::{Result, TableError};
use crate::table::Table;
use icedb_meta::{CommitDraft, Operation};
use icedb_plugin::PluginHost;

/// What the log records about a table beside its files and schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDefinition {
    pub sort_order: Vec<String>,
    pub format: FormatDefinition,
    pub partitioning: PartitionDefinition,
    pub parquet: ParquetDefinition,
}

/// How rows are formatted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FormatDefinition {
    BuiltIn {
        timestamp_fields: Vec<String>,
        timestamp_unit_micros: i64,
    },
    Plugin(PluginReference),
}

/// Which partition a row lands in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PartitionDefinition {
    Time {
        field: String,
        granularity: Granularity,
        ingest_time_if_missing: bool,
    },
    Field {
        field: String,
    },
    Plugin(PluginReference),
}

/// A WebAssembly component as the table knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginReference {
    /// The component's file name, for messages.
    pub name: String,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    pub settings: Vec<(String, String)>,
}

/// How files are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParquetDefinition {
    pub compression: Compression,
    pub row_group_rows: usize,
    pub target_file_bytes: u64,
    pub max_rows_per_file: usize,
}

/// Which definition settings a process was explicitly given (a flag, a
/// config key). Omitted ones follow the table; given ones must agree with
/// it. Library users state everything by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explicit {
    pub sort_order: bool,
    pub format: bool,
    pub partitioning: bool,
    pub parquet: bool,
}

impl Default for Explicit {
    fn default() -> Self {
        Explicit {
            sort_order: true,
            format: true,
            partitioning: true,
            parquet: true,
        }
    }
}

impl Explicit {
    /// Nothing given: everything as the table says (a dashboard, a reader).
    pub fn none() -> Self {
        Explicit {
            sort_order: false,
            format: false,
            partitioning: false,
            parquet: false,
        }
    }
}

fn plugin_reference(path: &Path, settings: &[(String, String)]) -> Result<PluginReference> {
    let bytes = std::fs::read(path).map_err(|source| TableError::PluginFile {
        path: path.display().to_string(),
        source,
    })?;
    let digest = sha2::Sha256::digest(&bytes);
    Ok(PluginReference {
        name: path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        settings: settings.to_vec(),
    })
}

impl TableDefinition {
    /// The definition a process's settings describe (plugins are read to
    /// hash their bytes).
    pub fn of(config: &TableConfig) -> Result<TableDefinition> {
        Ok(TableDefinition {
            sort_order: config.sort_order.clone(),
            format: match &config.format {
                FormatSpec::JsonText(format) => FormatDefinition::BuiltIn {
                    timestamp_fields: format.timestamp_fields.clone(),
                    timestamp_unit_micros: format.timestamp_unit_micros,
                },
                FormatSpec::Plugin { path, settings } => {
                    FormatDefinition::Plugin(plugin_reference(path, settings)?)
                }
            },
            partitioning: match &config.partitioning {
                PartitionSpec::Time {
                    field,
                    granularity,
                    ingest_time_if_missing,
                } => PartitionDefinition::Time {
                    field: field.clone(),
                    granularity: *granularity,
                    ingest_time_if_missing: *ingest_time_if_missing,
                },
                PartitionSpec::Field { field } => PartitionDefinition::Field {
                    field: field.clone(),
                },
                PartitionSpec::Plugin { path, settings } => {
                    PartitionDefinition::Plugin(plugin_reference(path, settings)?)
                }
            },
            parquet: ParquetDefinition {
                compression: config.compression,
                row_group_rows: config.row_group_rows,
                target_file_bytes: config.target_file_bytes,
                max_rows_per_file: config.max_rows_per_file,
            },
        })
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a definition always serializes")
    }

    pub(crate) fn from_json(value: serde_json::Value) -> Result<TableDefinition> {
        serde_json::from_value(value).map_err(TableError::DefinitionUnreadable)
    }
}

/// Why this process may read but not write the table.
pub(crate) type WriteBlock = Option<String>;

fn mismatch(
    setting: &str,
    recorded: impl std::fmt::Debug,
    given: impl std::fmt::Debug,
) -> TableError {
    TableError::DefinitionMismatch {
        setting: setting.to_owned(),
        table: format!("{recorded:?}"),
        given: format!("{given:?}"),
    }
}

/// Makes `config` follow `recorded`: omitted settings are taken from it,
/// given ones must agree. A plugin whose bytes differ from the recorded
/// hash (or that the process was not given) blocks writing only.
pub(crate) fn follow(
    config: &mut TableConfig,
    mine: &TableDefinition,
    recorded: &TableDefinition,
) -> Result<WriteBlock> {
    let explicit = config.explicit;
    let mut block = None;
    if mine.sort_order != recorded.sort_order {
        if explicit.sort_order {
            return Err(mismatch(
                "sort order",
                &recorded.sort_order,
                &mine.sort_order,
            ));
        }
        config.sort_order = recorded.sort_order.clone();
    }
    if mine.parquet != recorded.parquet {
        if explicit.parquet {
            return Err(mismatch(
                "parquet settings",
                &recorded.parquet,
                &mine.parquet,
            ));
        }
        config.compression = recorded.parquet.compression;
        config.row_group_rows = recorded.parquet.row_group_rows;
        config.target_file_bytes = recorded.parquet.target_file_bytes;
        config.max_rows_per_file = recorded.parquet.max_rows_per_file;
    }
    match (&recorded.format, &mine.format) {
        (theirs, ours) if theirs == ours => {}
        (FormatDefinition::Plugin(theirs), FormatDefinition::Plugin(ours))
            if explicit.format && theirs.settings == ours.settings =>
        {
            block = Some(plugin_block("format-row", theirs, Some(ours)));
        }
        (theirs, ours) if explicit.format => return Err(mismatch("format", theirs, ours)),
        (
            FormatDefinition::BuiltIn {
                timestamp_fields,
                timestamp_unit_micros,
            },
            _,
        ) => {
            config.format = FormatSpec::JsonText(JsonTextFormat {
                timestamp_fields: timestamp_fields.clone(),
                timestamp_unit_micros: *timestamp_unit_micros,
            });
        }
        (FormatDefinition::Plugin(theirs), _) => {
            block = Some(plugin_block("format-row", theirs, None));
        }
    }
    match (&recorded.partitioning, &mine.partitioning) {
        (theirs, ours) if theirs == ours => {}
        (PartitionDefinition::Plugin(theirs), PartitionDefinition::Plugin(ours))
            if explicit.partitioning && theirs.settings == ours.settings =>
        {
            block = block.or(Some(plugin_block("partition-strategy", theirs, Some(ours))));
        }
        (theirs, ours) if explicit.partitioning => {
            return Err(mismatch("partitioning", theirs, ours));
        }
        (
            PartitionDefinition::Time {
                field,
                granularity,
                ingest_time_if_missing,
            },
            _,
        ) => {
            config.partitioning = PartitionSpec::Time {
                field: field.clone(),
                granularity: *granularity,
                ingest_time_if_missing: *ingest_time_if_missing,
            };
        }
        (PartitionDefinition::Field { field }, _) => {
            config.partitioning = PartitionSpec::Field {
                field: field.clone(),
            };
        }
        (PartitionDefinition::Plugin(theirs), _) => {
            block = block.or(Some(plugin_block("partition-strategy", theirs, None)));
        }
    }
    Ok(block)
}

fn plugin_block(role: &str, recorded: &PluginReference, given: Option<&PluginReference>) -> String {
    match given {
        Some(given) => format!(
            "the table's {role} plugin is {} with SHA-256 {}, but this process has {} with SHA-256 {}: it may read the table but not write it",
            recorded.name, recorded.sha256, given.name, given.sha256
        ),
        None => format!(
            "the table's rows go through the {role} plugin {} (SHA-256 {}); give that component to write",
            recorded.name, recorded.sha256
        ),
    }
}

/// What an [`Table::alter`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlterReport {
    /// The version of the alter commit; `None` when nothing changed.
    pub version: Option<u64>,
    pub before: TableDefinition,
    pub after: TableDefinition,
}

impl Table {
    /// Changes the table's recorded definition to the settings `config` was
    /// explicitly given (the others stay as the table says), as one logged
    /// `alter` commit; returns the report and the table opened with the new
    /// definition. Files keep the order they were written in: merges re-sort
    /// inputs written under an older sort order. Partitioning decides the
    /// files' paths, so it may only change while the table has no live
    /// file. Processes that opened the table before the alter keep the old
    /// definition and their writes are refused (a definition conflict,
    /// nothing committed) until they reopen it.
    pub async fn alter(config: TableConfig, plugins: &PluginHost) -> Result<(AlterReport, Table)> {
        let wanted = TableDefinition::of(&config)?;
        let explicit = config.explicit;
        let current = Table::open(
            TableConfig {
                explicit: Explicit::none(),
                ..config.clone()
            },
            plugins,
        )
        .await?;
        let Some(recorded) = current
            .meta()
            .snapshot()?
            .definition()?
            .map(TableDefinition::from_json)
            .transpose()?
        else {
            return Err(TableError::NotDefinedYet);
        };
        let mut after = recorded.clone();
        if explicit.sort_order {
            after.sort_order = wanted.sort_order;
        }
        if explicit.format {
            after.format = wanted.format;
        }
        if explicit.parquet {
            after.parquet = wanted.parquet;
        }
        if explicit.partitioning && wanted.partitioning != recorded.partitioning {
            let live = current.meta().snapshot()?.file_count()?;
            if live > 0 {
                return Err(TableError::PartitioningInUse {
                    recorded: format!("{:?}", recorded.partitioning),
                    live_files: live as u64,
                });
            }
            after.partitioning = wanted.partitioning;
        }
        let version = if after == recorded {
            None
        } else {
            let mut draft = CommitDraft::new(Operation::Alter);
            draft.replaces = Some(recorded.to_json());
            draft.definition = Some(after.to_json());
            let receipt = current.meta().commit(draft).await?;
            Some(receipt.version)
        };
        drop(current);
        let table = Table::open(
            TableConfig {
                explicit: Explicit::none(),
                ..config
            },
            plugins,
        )
        .await?;
        table.after_commit().await;
        Ok((
            AlterReport {
                version,
                before: recorded,
                after,
            },
            table,
        ))
    }
}

//! The exporter: brings `_delta_log/` up to IceDB's head, one Delta commit
//! per IceDB commit, in order.
//!
//! Where the Delta log stands is read from the log itself (`_last_checkpoint`,
//! a listing from there, the newest commit's `commitInfo.icedbVersion` and
//! the newest `metaData`), then kept in memory while this process exports.
//! Every Delta commit is a conditional create of the next version's file:
//! when it already exists another exporter (or an earlier attempt of this
//! one whose answer was lost) wrote it, and the exporter re-reads where the
//! log stands and goes on from there — so versions are gapless and each
//! IceDB commit is exported once, whoever runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use icedb_meta::{ColumnDef, Commit, DataFile, MetaStore, Operation, PartitionFilter};
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions};

use crate::actions::{
    Action, Add, CommitInfo, Format, Metadata, Protocol, Remove, columns_of, commit_bytes,
    delta_path, hive_pairs, partition_values, read_commit, schema_string, stats,
};
use crate::checkpoint::checkpoint_bytes;
use crate::error::{DeltaError, Result};

const DELTA_LOG: &str = "_delta_log";

/// How the Delta log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaSettings {
    /// Write a Parquet checkpoint every this many Delta versions (0: never).
    pub checkpoint_every: u64,
}

impl Default for DeltaSettings {
    fn default() -> Self {
        // Delta's own default checkpoint interval.
        DeltaSettings {
            checkpoint_every: 10,
        }
    }
}

/// A Hive partition key as a Delta partition column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKey {
    pub name: String,
    /// `long` in the Delta schema (else `string`).
    pub integer: bool,
}

/// What one export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Delta commits this export wrote.
    pub exported: u64,
    /// IceDB commits found already exported by another exporter meanwhile.
    pub raced: u64,
    pub checkpoints: u64,
    /// The Delta log's newest version, and the IceDB version it says the
    /// same as (`None`: nothing exported yet, the table has no data).
    pub delta_version: Option<u64>,
    pub icedb_version: Option<u64>,
    pub elapsed: Duration,
}

/// Where the Delta log stands.
#[derive(Debug, Clone)]
struct Position {
    delta_version: u64,
    icedb_version: u64,
    /// The Delta version holding the `metaData` in force, and that
    /// action's `createdTime` (a checkpoint restates it).
    metadata_version: u64,
    metadata_created_ms: Option<i64>,
    table_id: String,
    columns: Vec<ColumnDef>,
    keys: Vec<PartitionKey>,
}

/// The next Delta commit, ready to write.
struct Prepared {
    actions: Vec<Action>,
    position: Position,
}

/// Keeps one table's Delta log in step with its IceDB log.
pub struct DeltaExporter {
    settings: DeltaSettings,
    integer_keys: Vec<String>,
    /// One export at a time per process; where the log stood after it.
    position: tokio::sync::Mutex<Option<Position>>,
}

impl DeltaExporter {
    /// `integer_keys`: Hive keys the table's definition makes integers.
    pub fn new(settings: DeltaSettings, integer_keys: &[&str]) -> Self {
        DeltaExporter {
            settings,
            integer_keys: integer_keys.iter().map(|k| (*k).to_owned()).collect(),
            position: tokio::sync::Mutex::new(None),
        }
    }

    /// Exports every IceDB commit up to the log's head not yet in the Delta
    /// log (syncs the meta store first).
    pub async fn export(&self, meta: &MetaStore) -> Result<ExportReport> {
        let started = Instant::now();
        let mut cached = self.position.lock().await;
        let store = meta.object_store();
        let head = meta.sync().await?;
        let mut report = ExportReport::default();
        let mut position = match cached.take() {
            Some(position) => Some(position),
            None => read_position(&store).await?,
        };
        loop {
            let prepared = match &position {
                Some(at) if at.icedb_version >= head => break,
                Some(at) => self.prepare_next(meta, at).await?,
                None => match self.prepare_first(meta).await? {
                    Some(prepared) => prepared,
                    None => break,
                },
            };
            let path = commit_path(prepared.position.delta_version);
            let put = store
                .put_opts(
                    &path,
                    commit_bytes(&prepared.actions).into(),
                    PutOptions {
                        mode: PutMode::Create,
                        ..PutOptions::default()
                    },
                )
                .await;
            match put {
                Ok(_) => {
                    report.exported += 1;
                    let at = prepared.position;
                    if self.checkpoint_due(at.delta_version) {
                        // Best effort: readers replay commits without it.
                        match write_checkpoint(meta, &store, &at).await {
                            Ok(()) => report.checkpoints += 1,
                            Err(error) => tracing::warn!(
                                %error, version = at.delta_version,
                                "delta checkpoint not written; readers replay the commits"
                            ),
                        }
                    }
                    position = Some(at);
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    // Written by another exporter, or by an attempt of ours
                    // whose answer was lost: go on from what the log says.
                    report.raced += 1;
                    position = read_position(&store).await?;
                }
                Err(error) => return Err(DeltaError::store(&path, error)),
            }
        }
        report.delta_version = position.as_ref().map(|p| p.delta_version);
        report.icedb_version = position.as_ref().map(|p| p.icedb_version);
        report.elapsed = started.elapsed();
        *cached = position;
        Ok(report)
    }

    /// Deletes the Delta log's entries older than its newest checkpoint
    /// that is itself at least `keep` old: JSON commits and checkpoints
    /// before it (what Delta's own log cleanup removes). Readers keep time
    /// travel to every version from that checkpoint on; older versions
    /// name files vacuum may already have deleted anyway when `keep` is
    /// its grace. Returns how many objects were deleted.
    pub async fn expire(&self, meta: &MetaStore, keep: Duration) -> Result<u64> {
        // Not while this process exports (its position stays valid anyway:
        // only entries before a checkpoint go).
        let _exporting = self.position.lock().await;
        let store = meta.object_store();
        let prefix = Path::from(DELTA_LOG);
        let listing: Vec<object_store::ObjectMeta> = store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| DeltaError::store(&prefix, e))?;
        let cutoff =
            chrono::Utc::now() - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        let commit_times: BTreeMap<u64, chrono::DateTime<chrono::Utc>> = listing
            .iter()
            .filter_map(|m| Some((commit_version(&m.location)?, m.last_modified)))
            .collect();
        let Some(floor) = listing
            .iter()
            .filter_map(|m| checkpoint_version(&m.location))
            .filter(|v| commit_times.get(v).is_some_and(|at| *at <= cutoff))
            .max()
        else {
            return Ok(0);
        };
        let doomed: Vec<Path> = listing
            .into_iter()
            .map(|m| m.location)
            .filter(|p| {
                commit_version(p)
                    .or_else(|| checkpoint_version(p))
                    .is_some_and(|v| v < floor)
            })
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        Ok(meta.delete_objects(doomed).await?)
    }

    fn checkpoint_due(&self, delta_version: u64) -> bool {
        let every = self.settings.checkpoint_every;
        every > 0 && delta_version > 0 && delta_version.is_multiple_of(every)
    }

    /// Partition keys of a partition path, typed by the definition.
    fn keys_of(&self, partition: &str) -> Vec<PartitionKey> {
        hive_pairs(partition)
            .into_iter()
            .map(|(name, _)| PartitionKey {
                integer: self.integer_keys.contains(&name),
                name,
            })
            .collect()
    }

    /// Delta version 0. From IceDB's first commit when the log still has
    /// it (then every later commit follows one to one); else the table's
    /// current state as one commit. `None` while the table has no
    /// partition yet (no partition columns to declare).
    async fn prepare_first(&self, meta: &MetaStore) -> Result<Option<Prepared>> {
        let snapshot = meta.snapshot()?;
        let Some(first_partition) = snapshot
            .partitions(&PartitionFilter::All)?
            .into_iter()
            .map(|p| p.partition)
            .next()
        else {
            return Ok(None);
        };
        let keys = self.keys_of(&first_partition);
        let table_id = snapshot.table_id()?.unwrap_or_default();
        let head = snapshot.version();
        let created = meta.read_commit(1).await?;
        let (commit_for_info, columns, files) = match created {
            Some(first) => {
                let columns = apply_schema(Vec::new(), &first);
                let files = first.added.clone();
                (first, columns, files)
            }
            None => {
                // The first commits were expired: start from the state now.
                let commit = meta
                    .read_commit(head)
                    .await?
                    .ok_or(DeltaError::Expired { version: head })?;
                let files = snapshot.files_without_bytes(&PartitionFilter::All)?;
                (commit, snapshot.schema()?, files)
            }
        };
        drop(snapshot);
        let position = Position {
            delta_version: 0,
            icedb_version: commit_for_info.version,
            metadata_version: 0,
            metadata_created_ms: Some(commit_for_info.timestamp_ms),
            table_id: if table_id.is_empty() {
                commit_for_info.id.clone()
            } else {
                table_id
            },
            columns,
            keys,
        };
        let mut actions = vec![
            Action::Protocol(Protocol::current()),
            Action::MetaData(metadata(&position)?),
        ];
        for file in files.iter().filter(|f| !f.is_inline()) {
            actions.push(Action::Add(add(file, &position, true)?));
        }
        actions.push(commit_info(&commit_for_info, &position));
        Ok(Some(Prepared { actions, position }))
    }

    /// The Delta commit of the IceDB commit after `at`.
    async fn prepare_next(&self, meta: &MetaStore, at: &Position) -> Result<Prepared> {
        let version = at.icedb_version + 1;
        let commit = meta
            .read_commit(version)
            .await?
            .ok_or(DeltaError::Expired { version })?;
        let mut position = Position {
            delta_version: at.delta_version + 1,
            icedb_version: version,
            metadata_version: at.metadata_version,
            metadata_created_ms: at.metadata_created_ms,
            table_id: at.table_id.clone(),
            columns: apply_schema(at.columns.clone(), &commit),
            keys: at.keys.clone(),
        };
        let mut actions = Vec::new();
        // Checkpointed versions restate the metadata: log cleanup removes
        // what is before a checkpoint, and the metaData in force must stay.
        // A restated one keeps the time its content was created.
        let changed = position.columns != at.columns || commit.definition.is_some();
        if changed || self.checkpoint_due(position.delta_version) {
            position.metadata_version = position.delta_version;
            if changed {
                position.metadata_created_ms = Some(commit.timestamp_ms);
            }
            actions.push(Action::MetaData(metadata(&position)?));
        }
        // A merge that only compacts files changes no data; one that
        // flushes inline parts brings rows new to the Delta table.
        let flushes = commit
            .removed
            .iter()
            .any(|f| f.path.starts_with(icedb_meta::INLINE_PREFIX));
        let data_change = commit.operation != Operation::Merge || flushes;
        for file in commit.added.iter().filter(|f| !f.is_inline()) {
            actions.push(Action::Add(add(file, &position, data_change)?));
        }
        for file in commit
            .removed
            .iter()
            .filter(|f| !f.path.starts_with(icedb_meta::INLINE_PREFIX))
        {
            actions.push(Action::Remove(Remove {
                path: delta_path(&file.path),
                deletion_timestamp: commit.timestamp_ms,
                data_change,
                extended_file_metadata: false,
                partition_values: partition_values(&file.partition, &position.keys)?,
            }));
        }
        actions.push(commit_info(&commit, &position));
        Ok(Prepared { actions, position })
    }
}

/// The schema after `commit`'s changes (added or widened columns).
fn apply_schema(mut columns: Vec<ColumnDef>, commit: &Commit) -> Vec<ColumnDef> {
    for change in &commit.schema_changes {
        match columns.iter_mut().find(|c| c.name == change.name) {
            Some(column) => column.column_type = change.column_type,
            None => columns.push(change.clone()),
        }
    }
    columns
}

fn metadata(position: &Position) -> Result<Metadata> {
    Ok(Metadata {
        id: position.table_id.clone(),
        name: None,
        format: Format {
            provider: "parquet".to_owned(),
            options: BTreeMap::new(),
        },
        schema_string: schema_string(&position.columns, &position.keys)?,
        partition_columns: position.keys.iter().map(|k| k.name.clone()).collect(),
        configuration: BTreeMap::new(),
        created_time: position.metadata_created_ms,
    })
}

fn add(file: &DataFile, position: &Position, data_change: bool) -> Result<Add> {
    Ok(Add {
        path: delta_path(&file.path),
        partition_values: partition_values(&file.partition, &position.keys)?,
        size: file.bytes as i64,
        modification_time: file.created_ms,
        data_change,
        stats: Some(stats(file, &position.columns)),
    })
}

fn commit_info(commit: &Commit, position: &Position) -> Action {
    Action::CommitInfo(CommitInfo {
        timestamp: commit.timestamp_ms,
        operation: commit.operation.name().to_owned(),
        engine_info: concat!("IceDB/", env!("CARGO_PKG_VERSION")).to_owned(),
        icedb_version: commit.version,
        icedb_commit_id: commit.id.clone(),
        icedb_metadata_version: position.metadata_version,
    })
}

fn commit_path(version: u64) -> Path {
    Path::from(format!("{DELTA_LOG}/{version:020}.json"))
}

fn checkpoint_path(version: u64) -> Path {
    Path::from(format!("{DELTA_LOG}/{version:020}.checkpoint.parquet"))
}

fn last_checkpoint_path() -> Path {
    Path::from(format!("{DELTA_LOG}/_last_checkpoint"))
}

/// The version of a `_delta_log/<20 digits>.json` key.
fn commit_version(path: &Path) -> Option<u64> {
    let name = path.filename()?;
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// The version of a `_delta_log/<20 digits>.checkpoint.parquet` key.
fn checkpoint_version(path: &Path) -> Option<u64> {
    let name = path.filename()?;
    let digits = name.strip_suffix(".checkpoint.parquet")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

async fn get_if_present(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<Option<bytes::Bytes>> {
    icedb_meta::get_if_present(store.as_ref(), path)
        .await
        .map_err(|e| DeltaError::store(path, e))
}

/// Where the Delta log stands, read from the log: the newest commit (found
/// by listing from the last checkpoint) and the `metaData` its
/// `commitInfo` names — a few requests however long the log.
async fn read_position(store: &Arc<dyn ObjectStore>) -> Result<Option<Position>> {
    let checkpoint = match get_if_present(store, &last_checkpoint_path()).await? {
        Some(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["version"].as_u64()),
        None => None,
    };
    let prefix = Path::from(DELTA_LOG);
    let listing: Vec<_> = match checkpoint {
        Some(version) => {
            let offset = Path::from(format!("{DELTA_LOG}/{version:020}"));
            store
                .list_with_offset(Some(&prefix), &offset)
                .try_collect()
                .await
        }
        None => store.list(Some(&prefix)).try_collect().await,
    }
    .map_err(|e| DeltaError::store(&prefix, e))?;
    let mut versions: Vec<u64> = listing
        .iter()
        .filter_map(|m| commit_version(&m.location))
        .collect();
    versions.sort_unstable();
    let Some(&newest) = versions.last() else {
        return Ok(None);
    };
    let (info, _) = read_version(store, newest).await?;
    let (_, metadata) = read_version(store, info.icedb_metadata_version).await?;
    let path = commit_path(info.icedb_metadata_version);
    let metadata = metadata.ok_or_else(|| DeltaError::Corrupt {
        path: path.to_string(),
        reason: "commitInfo names it as holding the metaData, it has none".to_owned(),
    })?;
    let (columns, keys) = columns_of(&metadata, path.as_ref())?;
    Ok(Some(Position {
        delta_version: newest,
        icedb_version: info.icedb_version,
        metadata_version: info.icedb_metadata_version,
        metadata_created_ms: metadata.created_time,
        table_id: metadata.id,
        columns,
        keys,
    }))
}

/// One Delta commit's `commitInfo` and `metaData`.
async fn read_version(
    store: &Arc<dyn ObjectStore>,
    version: u64,
) -> Result<(CommitInfo, Option<Metadata>)> {
    let path = commit_path(version);
    let bytes = get_if_present(store, &path)
        .await?
        .ok_or_else(|| DeltaError::Corrupt {
            path: path.to_string(),
            reason: "listed, or named by a newer commit, but missing".to_owned(),
        })?;
    read_commit(path.as_ref(), &bytes)
}

/// Writes the checkpoint of the Delta table at `at`, then points
/// `_last_checkpoint` at it.
async fn write_checkpoint(
    meta: &MetaStore,
    store: &Arc<dyn ObjectStore>,
    at: &Position,
) -> Result<()> {
    let snapshot = meta.snapshot()?;
    let files = if snapshot.version() == at.icedb_version {
        snapshot.files_without_bytes(&PartitionFilter::All)?
    } else {
        snapshot
            .files_at(at.icedb_version, &PartitionFilter::All)?
            .ok_or_else(|| {
                DeltaError::Checkpoint(format!(
                    "IceDB version {} is no longer readable",
                    at.icedb_version
                ))
            })?
    };
    drop(snapshot);
    let mut actions = vec![
        Action::Protocol(Protocol::current()),
        Action::MetaData(metadata(at)?),
    ];
    for file in files.iter().filter(|f| !f.is_inline()) {
        actions.push(Action::Add(add(file, at, false)?));
    }
    let count = actions.len();
    let bytes = tokio::task::spawn_blocking(move || checkpoint_bytes(&actions))
        .await
        .map_err(|e| DeltaError::Checkpoint(e.to_string()))??;
    let path = checkpoint_path(at.delta_version);
    store
        .put(&path, bytes.into())
        .await
        .map_err(|e| DeltaError::store(&path, e))?;
    let path = last_checkpoint_path();
    // Never point back (a slower exporter finishing an older checkpoint):
    // log cleanup may have removed what is before the newer one.
    let newer = get_if_present(store, &path)
        .await?
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| v["version"].as_u64())
        .is_some_and(|v| v > at.delta_version);
    if newer {
        return Ok(());
    }
    let pointer = serde_json::json!({"version": at.delta_version, "size": count});
    store
        .put(&path, pointer.to_string().into_bytes().into())
        .await
        .map_err(|e| DeltaError::store(&path, e))?;
    Ok(())
}

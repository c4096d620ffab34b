//! The local redb replica of the commit log: live files by partition,
//! tombstones, partition totals, schema, commit summaries and the head
//! version. It is a cache: deleting it is always safe, the log rebuilds it.
//!
//! Longer than 600 lines on purpose: every redb table's layout, the one
//! writer that applies commits, the commit planner that checks drafts
//! against it, and the read-only snapshot share private encodings and key
//! layouts; split apart, each would expose them to the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Conflict, MetaError, Result};
use crate::model::{
    ColumnDef, ColumnStats, Commit, CommitDraft, CommitSummary, DataFile, FileRef, INLINE_PREFIX,
    InlineData, Operation, PartitionStats, SegmentRef, Tombstone, Totals,
};

/// `version` → head version; `format` → replica format.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (partition, path) → [`StoredFile`]
const FILES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("files");
/// path → [`Tombstone`]
const TOMBSTONES: TableDefinition<&str, &[u8]> = TableDefinition::new("tombstones");
/// partition → [`PartitionStats`]
const PARTITIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("partitions");
/// position → [`ColumnDef`]
const SCHEMA: TableDefinition<u32, &[u8]> = TableDefinition::new("schema");
/// version → [`CommitSummary`]
const COMMITS: TableDefinition<u64, &[u8]> = TableDefinition::new("commits");
/// path → version that added it, for purged files (not inline parts,
/// whose names no writer can reuse): paths the log may not add again.
/// Files IceDB named (UUIDv7) are in [`RETIRED_NAMED`] instead; this
/// keeps other names, and every path retired by builds before it.
const RETIRED: TableDefinition<&str, u64> = TableDefinition::new("retired");
/// (when the file was named, path) → version that added it: purged files
/// named by IceDB, kept until [`RETIRED_AGE_MS`] after they were named.
const RETIRED_NAMED: TableDefinition<(i64, &str), u64> = TableDefinition::new("retired_named");
/// How long after its naming a file may still be added. A commit adding a
/// file (UUIDv7) named longer before its own timestamp is refused
/// ([`Conflict::FileTooOld`]), so a purged path named that long before
/// the commit being applied can be forgotten: the two rules go by the
/// same commit's timestamp, and together refuse every resurrection
/// without remembering every file ever merged away (which grew the
/// replica, and every checkpoint, by each file a merge removed).
pub(crate) const RETIRED_AGE_MS: i64 = 24 * 3_600_000;
/// The replica keeps the summaries of the newest [`HISTORY_VERSIONS`]
/// commits and of every commit within [`HISTORY_AGE_MS`] of the newest
/// one (by commit timestamps), whichever is more; older summaries are
/// forgotten as commits are applied (one per commit was kept forever). An
/// hour covers resolving any commit's outcome (`max_commit_duration`); a
/// version without its summary is read from the log when needed.
const HISTORY_VERSIONS: u64 = 10_000;
const HISTORY_AGE_MS: i64 = 3_600_000;
/// `table_id` → the table's identity (the id of its first commit).
const INFO: TableDefinition<&str, &str> = TableDefinition::new("info");
/// (partition, path) → Parquet bytes of an inline part, live or
/// tombstoned (until purged). Replicas and checkpoints written before
/// inline parts existed lack the table: read as empty.
const INLINE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("inline");
/// The inline parts as a snapshot reads them.
type InlineTable = redb::ReadOnlyTable<(&'static str, &'static str), &'static [u8]>;
/// segment name → its bytes ([`crate::InlineSegment`]), while a part
/// whose `INLINE` value refers to it ([`SEGMENT_REF`]) is held. Replicas
/// written before segments existed lack the table: read as empty.
const SEGMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("segments");
/// segment name → how many held parts (live or tombstoned) refer to it.
const SEGMENT_PARTS: TableDefinition<&str, u64> = TableDefinition::new("segment_parts");
/// An `INLINE` value starting with this is a [`SegmentRef`] (postcard)
/// rather than a part's own bytes (which start with `ICEIPCS1` or `PAR1`).
const SEGMENT_REF: &[u8; 8] = b"ICESEGR1";
/// META keys: totals of the live inline parts, and the bytes of every
/// inline part held (live or tombstoned, until purged).
const INLINE_FILES: &str = "inline_files";
const INLINE_ROWS: &str = "inline_rows";
const INLINE_BYTES: &str = "inline_bytes";
const INLINE_HELD: &str = "inline_held_bytes";
/// META key: the newest [`Commit::purged_inline_through`] applied.
const INLINE_PURGED_THROUGH: &str = "inline_purged_through";

/// Bumped when the replica's tables change shape; older replicas are
/// rebuilt. Format 3 keeps no `inline` row for a part named for its place
/// in a segment ([`SegmentRef::part_path`]): a build of format 2 would
/// find such a part without bytes, so it refuses these replicas and
/// checkpoints. Format 4 keeps purged files IceDB named in
/// [`RETIRED_NAMED`]: a build of format 3 would not see them there (nor
/// refuse files named too long ago) and could let a stalled writer add a
/// purged file again, so it refuses them too.
const REPLICA_FORMAT: u64 = 4;

/// Whether this build reads a replica or checkpoint of `format` (format 2
/// keeps an `inline` row for every part, format 3 its purged paths in
/// [`RETIRED`] alone; format 4 reads both as they are).
fn readable(format: u64) -> bool {
    (2..=REPLICA_FORMAT).contains(&format)
}

/// A live file as the replica stores it (postcard; the partition and path
/// are the key).
#[derive(Serialize, Deserialize)]
struct StoredFile {
    bytes: u64,
    rows: u64,
    created_ms: i64,
    added_in: u64,
    columns: Vec<(String, ColumnStats)>,
}

/// The leading fields of a [`StoredFile`] (postcard reads a prefix): for
/// scans that need no column statistics.
#[derive(Deserialize)]
struct StoredFileHead {
    bytes: u64,
    rows: u64,
    created_ms: i64,
    added_in: u64,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("replica values always serialize")
}

fn replica_error(path: &Path, error: impl Into<redb::Error>) -> MetaError {
    MetaError::Replica {
        path: path.display().to_string(),
        reason: error.into().to_string(),
    }
}

fn decode<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| MetaError::Replica {
        path: path.display().to_string(),
        reason: format!("undecodable entry: {e}"),
    })
}

/// Whether a commit timestamped `commit_ms` may not add `file`: a file
/// (not an inline part) named longer than [`RETIRED_AGE_MS`] before it.
pub(crate) fn too_old(file: &DataFile, commit_ms: i64) -> bool {
    !file.is_inline()
        && crate::model::minted_ms(&file.path)
            .is_some_and(|minted| minted < commit_ms.saturating_sub(RETIRED_AGE_MS))
}

/// Forgets the oldest summaries once `commit` is applied (see
/// [`HISTORY_VERSIONS`]). Trimmed per commit, so replicas applying the
/// same log in batches of any size keep the same summaries.
fn forget_history(
    summaries: &mut redb::Table<u64, &[u8]>,
    commit: &Commit,
    path: &Path,
) -> Result<()> {
    let Some(bound) = commit.version.checked_sub(HISTORY_VERSIONS) else {
        return Ok(());
    };
    loop {
        let oldest = match summaries.first().map_err(|e| replica_error(path, e))? {
            Some((version, value)) if version.value() <= bound => {
                let summary: CommitSummary = decode(path, value.value())?;
                (summary.timestamp_ms < commit.timestamp_ms.saturating_sub(HISTORY_AGE_MS))
                    .then_some(version.value())
            }
            _ => None,
        };
        let Some(version) = oldest else {
            return Ok(());
        };
        summaries
            .remove(version)
            .map_err(|e| replica_error(path, e))?;
    }
}

/// Forgets retired files named longer than [`RETIRED_AGE_MS`] before
/// `commit_ms` (a commit that late may not add them: [`too_old`]).
fn forget_retired(
    named: &mut redb::Table<(i64, &str), u64>,
    commit_ms: i64,
) -> std::result::Result<(), redb::StorageError> {
    let before = commit_ms.saturating_sub(RETIRED_AGE_MS);
    named
        .extract_from_if((i64::MIN, "")..(before, ""), |_, _| true)?
        .for_each(drop);
    Ok(())
}

/// The version that added `path`, if it is a retired (purged) path.
fn retired_by<R, N>(
    retired: &R,
    named: &N,
    path: &str,
) -> std::result::Result<Option<u64>, redb::StorageError>
where
    R: ReadableTable<&'static str, u64>,
    N: ReadableTable<(i64, &'static str), u64>,
{
    if let Some(minted) = crate::model::minted_ms(path)
        && let Some(added) = named.get((minted, path))?
    {
        return Ok(Some(added.value()));
    }
    Ok(retired.get(path)?.map(|v| v.value()))
}

/// Records `path` (added by `added_in`) as retired.
fn retire(
    retired: &mut redb::Table<&str, u64>,
    named: &mut redb::Table<(i64, &str), u64>,
    path: &str,
    added_in: u64,
) -> std::result::Result<(), redb::StorageError> {
    match crate::model::minted_ms(path) {
        Some(minted) => named.insert((minted, path), added_in).map(drop),
        None => retired.insert(path, added_in).map(drop),
    }
}

pub(crate) struct Replica {
    db: Database,
    path: PathBuf,
    /// Removed when dropped (a private replica next to a locked one).
    temporary: bool,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What a draft becomes against the current state.
pub(crate) struct Plan {
    pub schema_changes: Vec<ColumnDef>,
    pub purged: Vec<FileRef>,
    /// The draft's purge of inline parts by version, unless one as far
    /// reaching was applied already.
    pub purged_inline_through: Option<u64>,
    /// The definition to record (only when the table has none yet).
    pub definition: Option<serde_json::Value>,
}

impl Replica {
    /// Opens the replica at `path`, creating it if needed. A replica of an
    /// older format, or one redb cannot read, is replaced by an empty one.
    pub(crate) fn open(path: &Path, temporary: bool) -> Result<Replica> {
        let db = match Database::create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(MetaError::ReplicaInUse {
                    path: path.display().to_string(),
                });
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "replacing an unreadable replica");
                std::fs::remove_file(path).map_err(|e| MetaError::Replica {
                    path: path.display().to_string(),
                    reason: format!("cannot remove the unreadable replica: {e}"),
                })?;
                Database::create(path).map_err(|e| replica_error(path, e))?
            }
        };
        let replica = Replica {
            db,
            path: path.to_owned(),
            temporary,
        };
        replica.initialise()?;
        Ok(replica)
    }

    /// Opens a downloaded checkpoint and checks it describes `version`.
    pub(crate) fn open_checkpoint(path: &Path, version: u64) -> Result<Replica> {
        let db = Database::open(path).map_err(|e| replica_error(path, e))?;
        let replica = Replica {
            db,
            path: path.to_owned(),
            temporary: false,
        };
        let (found, format) = replica.header()?;
        if !readable(format) || found != version {
            return Err(MetaError::Replica {
                path: path.display().to_string(),
                reason: format!(
                    "checkpoint says version {found} format {format}, expected version {version} format {REPLICA_FORMAT}"
                ),
            });
        }
        // Touch every table once so that damage shows now, not mid-query.
        let txn = replica
            .db
            .begin_read()
            .map_err(|e| replica_error(path, e))?;
        txn.open_table(FILES)
            .map_err(|e| replica_error(path, e))?
            .len()
            .map_err(|e| replica_error(path, e))?;
        txn.open_table(PARTITIONS)
            .map_err(|e| replica_error(path, e))?
            .len()
            .map_err(|e| replica_error(path, e))?;
        Ok(replica)
    }

    fn initialise(&self) -> Result<()> {
        let err = |e: redb::Error| MetaError::Replica {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        };
        let (version, format) = self.header()?;
        let mut txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        txn.set_durability(Durability::None)
            .map_err(|e| err(e.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            if version != 0 && !readable(format) {
                return Err(MetaError::Replica {
                    path: self.path.display().to_string(),
                    reason: format!(
                        "replica format {format}, this build uses {REPLICA_FORMAT}; delete it to rebuild"
                    ),
                });
            }
            meta.insert("format", REPLICA_FORMAT)
                .map_err(|e| err(e.into()))?;
            txn.open_table(FILES).map_err(|e| err(e.into()))?;
            txn.open_table(TOMBSTONES).map_err(|e| err(e.into()))?;
            txn.open_table(PARTITIONS).map_err(|e| err(e.into()))?;
            txn.open_table(SCHEMA).map_err(|e| err(e.into()))?;
            txn.open_table(COMMITS).map_err(|e| err(e.into()))?;
            txn.open_table(RETIRED).map_err(|e| err(e.into()))?;
            txn.open_table(RETIRED_NAMED).map_err(|e| err(e.into()))?;
            txn.open_table(INFO).map_err(|e| err(e.into()))?;
            txn.open_table(INLINE).map_err(|e| err(e.into()))?;
            txn.open_table(SEGMENTS).map_err(|e| err(e.into()))?;
            txn.open_table(SEGMENT_PARTS).map_err(|e| err(e.into()))?;
        }
        txn.commit().map_err(|e| err(e.into()))?;
        Ok(())
    }

    /// (head version, replica format); (0, 0) for a new file.
    fn header(&self) -> Result<(u64, u64)> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| replica_error(&self.path, e))?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, 0)),
            Err(e) => return Err(replica_error(&self.path, e)),
        };
        let get = |key| -> Result<u64> {
            Ok(meta
                .get(key)
                .map_err(|e| replica_error(&self.path, e))?
                .map(|v| v.value())
                .unwrap_or(0))
        };
        Ok((get("version")?, get("format")?))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn version(&self) -> Result<u64> {
        Ok(self.header()?.0)
    }

    /// Applies consecutive commits in one transaction. Commits at or below
    /// the head are skipped (another task of this process applied them).
    pub(crate) fn apply(&self, commits: &[Commit]) -> Result<u64> {
        Ok(self
            .apply_if(commits, || true)?
            .expect("a transaction told to stay is committed"))
    }

    /// [`apply`](Self::apply), then asks `keep` whether the transaction
    /// stays (`Some(head)`) or is dropped (`None`, nothing changed): a
    /// writer prepares its commit's apply while the commit is in flight
    /// and keeps it once the version is won. Other writes of the replica
    /// wait meanwhile.
    pub(crate) fn apply_if(
        &self,
        commits: &[Commit],
        keep: impl FnOnce() -> bool,
    ) -> Result<Option<u64>> {
        let path = &self.path;
        let err = |e: redb::Error| MetaError::Replica {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        txn.set_durability(Durability::None)
            .map_err(|e| err(e.into()))?;
        let mut head;
        {
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            head = meta
                .get("version")
                .map_err(|e| err(e.into()))?
                .map(|v| v.value())
                .unwrap_or(0);
            let mut files = txn.open_table(FILES).map_err(|e| err(e.into()))?;
            let mut tombstones = txn.open_table(TOMBSTONES).map_err(|e| err(e.into()))?;
            let mut partitions = txn.open_table(PARTITIONS).map_err(|e| err(e.into()))?;
            let mut schema = txn.open_table(SCHEMA).map_err(|e| err(e.into()))?;
            let mut summaries = txn.open_table(COMMITS).map_err(|e| err(e.into()))?;
            let mut retired = txn.open_table(RETIRED).map_err(|e| err(e.into()))?;
            let mut retired_named = txn.open_table(RETIRED_NAMED).map_err(|e| err(e.into()))?;
            let mut info = txn.open_table(INFO).map_err(|e| err(e.into()))?;
            let mut inline = InlineTables {
                parts: txn.open_table(INLINE).map_err(|e| err(e.into()))?,
                segments: txn.open_table(SEGMENTS).map_err(|e| err(e.into()))?,
                segment_parts: txn.open_table(SEGMENT_PARTS).map_err(|e| err(e.into()))?,
            };
            let counter = |meta: &redb::Table<&str, u64>, key: &str| -> Result<u64> {
                Ok(meta
                    .get(key)
                    .map_err(|e| err(e.into()))?
                    .map_or(0, |v| v.value()))
            };
            // Totals of live inline parts: (files, rows, bytes).
            let mut inline_totals = (
                counter(&meta, INLINE_FILES)?,
                counter(&meta, INLINE_ROWS)?,
                counter(&meta, INLINE_BYTES)?,
            );
            let mut inline_held = counter(&meta, INLINE_HELD)?;
            let mut inline_purged_through = counter(&meta, INLINE_PURGED_THROUGH)?;
            let horizon_before = counter(&meta, "purged_horizon")?;
            let mut purged_horizon = horizon_before;
            let mut table_id = info
                .get("table_id")
                .map_err(|e| err(e.into()))?
                .map(|v| v.value().to_owned());
            // Partition totals touched by this batch, written once at the end.
            let mut totals: BTreeMap<String, PartitionStats> = BTreeMap::new();
            let load_totals = |partitions: &redb::Table<&str, &[u8]>,
                               partition: &str,
                               totals: &mut BTreeMap<String, PartitionStats>|
             -> Result<()> {
                if !totals.contains_key(partition) {
                    let stats = match partitions.get(partition).map_err(|e| err(e.into()))? {
                        Some(bytes) => decode(path, bytes.value())?,
                        None => PartitionStats {
                            partition: partition.to_owned(),
                            ..PartitionStats::default()
                        },
                    };
                    totals.insert(partition.to_owned(), stats);
                }
                Ok(())
            };

            for commit in commits {
                if commit.version <= head {
                    continue;
                }
                if commit.version != head + 1 {
                    return Err(MetaError::MissingVersion {
                        missing: head + 1,
                        found: commit.version,
                        hint: "the replica can only apply consecutive commits".to_owned(),
                    });
                }
                let identity = commit
                    .table_id
                    .clone()
                    .or_else(|| (commit.version == 1).then(|| commit.id.clone()));
                if let Some(definition) = &commit.definition {
                    info.insert("definition", definition.to_string().as_str())
                        .map_err(|e| err(e.into()))?;
                }
                match (&table_id, identity) {
                    (Some(expected), Some(found)) if *expected != found => {
                        return Err(MetaError::TableReplaced {
                            expected: expected.clone(),
                            found,
                        });
                    }
                    (None, Some(found)) => {
                        info.insert("table_id", found.as_str())
                            .map_err(|e| err(e.into()))?;
                        table_id = Some(found);
                    }
                    _ => {}
                }
                // Writers mint segment names (UUIDv7); a log that repeats
                // one must not make older parts read another's rows.
                let mut repeated: HashSet<&str> = HashSet::new();
                for segment in &commit.segments {
                    let name = segment.name.as_str();
                    if inline
                        .segments
                        .get(name)
                        .map_err(|e| err(e.into()))?
                        .is_some()
                    {
                        tracing::warn!(
                            version = commit.version,
                            segment = name,
                            "commit adds a segment the log already holds; it and its parts are ignored"
                        );
                        repeated.insert(name);
                    }
                }
                let mut segment_parts: HashMap<&str, u64> = HashMap::new();
                for file in &commit.added {
                    if let Some(at) = &file.segment
                        && repeated.contains(at.segment.as_str())
                    {
                        continue;
                    }
                    // Writers refuse to add a known path; a log written
                    // without that check must still not count a file twice.
                    let known = files
                        .get((file.partition.as_str(), file.path.as_str()))
                        .map_err(|e| err(e.into()))?
                        .is_some()
                        || tombstones
                            .get(file.path.as_str())
                            .map_err(|e| err(e.into()))?
                            .is_some()
                        || retired_by(&retired, &retired_named, &file.path)
                            .map_err(|e| err(e.into()))?
                            .is_some();
                    if known {
                        tracing::warn!(version = commit.version, path = %file.path, "commit adds a path the log already holds; ignored");
                        continue;
                    }
                    if too_old(file, commit.timestamp_ms) {
                        tracing::warn!(version = commit.version, path = %file.path, "commit adds a file named longer ago than a purged path stays retired; ignored");
                        continue;
                    }
                    let stored = StoredFile {
                        bytes: file.bytes,
                        rows: file.rows,
                        created_ms: file.created_ms,
                        added_in: commit.version,
                        columns: file
                            .columns
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    };
                    files
                        .insert(
                            (file.partition.as_str(), file.path.as_str()),
                            encode(&stored).as_slice(),
                        )
                        .map_err(|e| err(e.into()))?;
                    let key = (file.partition.as_str(), file.path.as_str());
                    let placed = file
                        .segment
                        .as_ref()
                        .filter(|at| at.part_path(&file.partition) == file.path);
                    if let Some(at) = placed {
                        // Its name says where its rows are: no row of its own.
                        *segment_parts.entry(at.segment.as_str()).or_default() += 1;
                    } else if let Some(data) = &file.inline {
                        inline
                            .parts
                            .insert(key, data.0.as_ref())
                            .map_err(|e| err(e.into()))?;
                        inline_held += data.0.len() as u64;
                    } else if let Some(at) = &file.segment {
                        let mut value = SEGMENT_REF.to_vec();
                        value.extend(encode(at));
                        inline
                            .parts
                            .insert(key, value.as_slice())
                            .map_err(|e| err(e.into()))?;
                        *segment_parts.entry(at.segment.as_str()).or_default() += 1;
                    }
                    if file.inline.is_some() || file.segment.is_some() {
                        inline_totals.0 += 1;
                        inline_totals.1 += file.rows;
                        inline_totals.2 += file.bytes;
                    }
                    load_totals(&partitions, &file.partition, &mut totals)?;
                    let stats = totals.get_mut(&file.partition).expect("loaded");
                    stats.files += 1;
                    stats.rows += file.rows;
                    stats.bytes += file.bytes;
                    stats.newest_write_ms = stats.newest_write_ms.max(file.created_ms);
                }
                // A segment is kept with the number of its parts kept: one
                // whose every part was ignored (paths the log already
                // held) has nothing referring to its rows.
                for segment in &commit.segments {
                    let name = segment.name.as_str();
                    if let (Some(&parts), false) =
                        (segment_parts.get(name), repeated.contains(name))
                    {
                        inline
                            .segments
                            .insert(name, segment.data.0.as_ref())
                            .map_err(|e| err(e.into()))?;
                        inline
                            .segment_parts
                            .insert(name, parts)
                            .map_err(|e| err(e.into()))?;
                        inline_held += segment.data.0.len() as u64;
                    }
                }
                let mut live = remove_live(&mut files, &commit.removed, path)?;
                for removed in &commit.removed {
                    let Some(stored) = live.remove(removed.path.as_str()) else {
                        // The writer protocol prevents this; a hand-edited log could not.
                        tracing::warn!(version = commit.version, path = %removed.path, "commit removes a file that is not live; ignored");
                        continue;
                    };
                    if crate::model::is_inline_path(&removed.path) {
                        inline_totals.0 = inline_totals.0.saturating_sub(1);
                        inline_totals.1 = inline_totals.1.saturating_sub(stored.rows);
                        inline_totals.2 = inline_totals.2.saturating_sub(stored.bytes);
                    }
                    load_totals(&partitions, &removed.partition, &mut totals)?;
                    let stats = totals.get_mut(&removed.partition).expect("loaded");
                    stats.files = stats.files.saturating_sub(1);
                    stats.rows = stats.rows.saturating_sub(stored.rows);
                    stats.bytes = stats.bytes.saturating_sub(stored.bytes);
                    let tombstone = Tombstone {
                        path: removed.path.clone(),
                        partition: removed.partition.clone(),
                        bytes: stored.bytes,
                        rows: stored.rows,
                        removed_ms: commit.timestamp_ms,
                        added_in: stored.added_in,
                        removed_in: commit.version,
                    };
                    tombstones
                        .insert(removed.path.as_str(), encode(&tombstone).as_slice())
                        .map_err(|e| err(e.into()))?;
                }
                if !commit.purged.is_empty() {
                    let removed =
                        purge_entries(&mut tombstones, &mut inline, &commit.purged, path)?;
                    inline_held = inline_held.saturating_sub(removed.inline_bytes);
                    for purged in &commit.purged {
                        let mut added_in = commit.version;
                        if let Some(&(added, removed_in)) =
                            removed.tombstones.get(purged.path.as_str())
                        {
                            added_in = added;
                            // Versions before this file's removal lost a file.
                            purged_horizon = purged_horizon.max(removed_in);
                        }
                        // An inline part's name is minted by the insert that
                        // wrote it and is never an object, so no writer can
                        // add it again: remembering it would grow the replica
                        // and every checkpoint by each small insert's parts
                        // forever.
                        if !crate::model::is_inline_path(&purged.path) {
                            retire(&mut retired, &mut retired_named, &purged.path, added_in)
                                .map_err(|e| err(e.into()))?;
                        }
                    }
                }
                let mut summary = CommitSummary::of(commit);
                if let Some(through) = commit.purged_inline_through
                    && through > inline_purged_through
                {
                    let removed =
                        purge_inline_through(&mut tombstones, &mut inline, through, path)?;
                    inline_held = inline_held.saturating_sub(removed.inline_bytes);
                    if let Some(&newest) = removed.tombstones.values().map(|(_, r)| r).max() {
                        purged_horizon = purged_horizon.max(newest);
                    }
                    summary.files_purged += removed.tombstones.len() as u64;
                    inline_purged_through = through;
                }
                if !commit.schema_changes.is_empty() {
                    let mut positions: BTreeMap<String, u32> = BTreeMap::new();
                    for entry in schema.iter().map_err(|e| err(e.into()))? {
                        let (position, column) = entry.map_err(|e| err(e.into()))?;
                        let column: ColumnDef = decode(path, column.value())?;
                        positions.insert(column.name, position.value());
                    }
                    for change in &commit.schema_changes {
                        let position = match positions.get(&change.name) {
                            Some(&position) => position,
                            None => {
                                let next = positions.len() as u32;
                                positions.insert(change.name.clone(), next);
                                next
                            }
                        };
                        schema
                            .insert(position, encode(change).as_slice())
                            .map_err(|e| err(e.into()))?;
                    }
                }
                summaries
                    .insert(commit.version, encode(&summary).as_slice())
                    .map_err(|e| err(e.into()))?;
                forget_history(&mut summaries, commit, path)?;
                forget_retired(&mut retired_named, commit.timestamp_ms)
                    .map_err(|e| err(e.into()))?;
                head = commit.version;
            }
            for (partition, stats) in totals {
                if stats.files == 0 {
                    partitions
                        .remove(partition.as_str())
                        .map_err(|e| err(e.into()))?;
                } else {
                    partitions
                        .insert(partition.as_str(), encode(&stats).as_slice())
                        .map_err(|e| err(e.into()))?;
                }
            }
            meta.insert("version", head).map_err(|e| err(e.into()))?;
            if purged_horizon > horizon_before {
                meta.insert("purged_horizon", purged_horizon)
                    .map_err(|e| err(e.into()))?;
            }
            meta.insert(INLINE_FILES, inline_totals.0)
                .map_err(|e| err(e.into()))?;
            meta.insert(INLINE_ROWS, inline_totals.1)
                .map_err(|e| err(e.into()))?;
            meta.insert(INLINE_BYTES, inline_totals.2)
                .map_err(|e| err(e.into()))?;
            meta.insert(INLINE_HELD, inline_held)
                .map_err(|e| err(e.into()))?;
            meta.insert(INLINE_PURGED_THROUGH, inline_purged_through)
                .map_err(|e| err(e.into()))?;
        }
        if !keep() {
            txn.abort().map_err(|e| err(e.into()))?;
            return Ok(None);
        }
        txn.commit().map_err(|e| err(e.into()))?;
        Ok(Some(head))
    }

    /// Checks a draft against the current state: every removed file must be
    /// live, every column type compatible. Returns the schema changes it
    /// implies and the purges still to record.
    pub(crate) fn plan(&self, draft: &CommitDraft) -> Result<Plan> {
        let snapshot = self.snapshot()?;
        let txn = &snapshot.txn;
        let path = &self.path;
        let files = txn.open_table(FILES).map_err(|e| replica_error(path, e))?;
        let tombstones = txn
            .open_table(TOMBSTONES)
            .map_err(|e| replica_error(path, e))?;
        for removed in &draft.removed {
            let live = files
                .get((removed.partition.as_str(), removed.path.as_str()))
                .map_err(|e| replica_error(path, e))?
                .is_some();
            if !live {
                let conflict = match tombstones
                    .get(removed.path.as_str())
                    .map_err(|e| replica_error(path, e))?
                {
                    Some(t) => {
                        let tombstone: Tombstone = decode(path, t.value())?;
                        Conflict::FileAlreadyRemoved {
                            path: removed.path.clone(),
                            by_version: tombstone.removed_in,
                        }
                    }
                    None => Conflict::FileNotLive {
                        path: removed.path.clone(),
                        partition: removed.partition.clone(),
                    },
                };
                return Err(conflict.into());
            }
        }
        if let Some(limit) = draft.inline_limit {
            let held = snapshot.inline_held_bytes()?;
            let adding: u64 = draft
                .added
                .iter()
                .filter_map(|f| f.inline.as_ref())
                .chain(draft.segments.iter().map(|s| &s.data))
                .map(|data| data.0.len() as u64)
                .sum();
            if adding > 0 && held + adding > limit {
                return Err(Conflict::InlineFull {
                    held,
                    adding,
                    limit,
                }
                .into());
            }
        }
        let retired = txn
            .open_table(RETIRED)
            .map_err(|e| replica_error(path, e))?;
        let retired_named = txn
            .open_table(RETIRED_NAMED)
            .map_err(|e| replica_error(path, e))?;
        for added in &draft.added {
            let by_version = if let Some(live) = files
                .get((added.partition.as_str(), added.path.as_str()))
                .map_err(|e| replica_error(path, e))?
            {
                Some(decode::<StoredFile>(path, live.value())?.added_in)
            } else if let Some(t) = tombstones
                .get(added.path.as_str())
                .map_err(|e| replica_error(path, e))?
            {
                Some(decode::<Tombstone>(path, t.value())?.added_in)
            } else {
                retired_by(&retired, &retired_named, &added.path)
                    .map_err(|e| replica_error(path, e))?
            };
            if let Some(by_version) = by_version {
                return Err(Conflict::FileAlreadyAdded {
                    path: added.path.clone(),
                    by_version,
                }
                .into());
            }
        }
        let mut purged = Vec::with_capacity(draft.purged.len());
        for file in &draft.purged {
            if tombstones
                .get(file.path.as_str())
                .map_err(|e| replica_error(path, e))?
                .is_some()
            {
                purged.push(file.clone());
            }
        }
        let purged_inline_through = match draft.purged_inline_through {
            Some(through) if through > snapshot.version() => {
                return Err(MetaError::InvalidCommit(format!(
                    "a purge of inline parts removed through version {through}, beyond the head {}",
                    snapshot.version()
                )));
            }
            // Already purged by a concurrent vacuum or merge: nothing to do.
            Some(through) if through <= snapshot.inline_purged_through()? => None,
            through => through,
        };
        let schema: BTreeMap<String, ColumnDef> = snapshot
            .schema()?
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        let mut schema_changes: Vec<ColumnDef> = Vec::new();
        for column in &draft.columns {
            match schema.get(&column.name) {
                None => {
                    if let Some(pending) = schema_changes.iter_mut().find(|c| c.name == column.name)
                    {
                        pending.column_type = pending
                            .column_type
                            .unify(column.column_type)
                            .ok_or_else(|| Conflict::Schema {
                                column: column.name.clone(),
                                existing: pending.column_type,
                                proposed: column.column_type,
                            })?;
                    } else {
                        schema_changes.push(column.clone());
                    }
                }
                Some(existing) => {
                    let unified =
                        existing
                            .column_type
                            .unify(column.column_type)
                            .ok_or_else(|| Conflict::Schema {
                                column: column.name.clone(),
                                existing: existing.column_type,
                                proposed: column.column_type,
                            })?;
                    if unified != existing.column_type
                        && !schema_changes.iter().any(|c| c.name == column.name)
                    {
                        schema_changes.push(ColumnDef {
                            name: column.name.clone(),
                            column_type: unified,
                        });
                    }
                }
            }
        }
        let recorded = snapshot.definition()?;
        if draft.operation == Some(Operation::Alter) {
            // An alter replaces the recorded definition it names.
            if draft.replaces != recorded {
                return Err(Conflict::Definition {
                    recorded: recorded.map_or_else(|| "none".to_owned(), |r| r.to_string()),
                    assumed: draft
                        .replaces
                        .as_ref()
                        .map_or_else(|| "none".to_owned(), |r| r.to_string()),
                }
                .into());
            }
            return Ok(Plan {
                schema_changes,
                purged,
                purged_inline_through,
                definition: draft.definition.clone(),
            });
        }
        let definition = match (&draft.definition, recorded) {
            (Some(assumed), Some(recorded)) if *assumed != recorded => {
                return Err(Conflict::Definition {
                    recorded: recorded.to_string(),
                    assumed: assumed.to_string(),
                }
                .into());
            }
            (Some(assumed), None) => Some(assumed.clone()),
            _ => None,
        };
        Ok(Plan {
            schema_changes,
            purged,
            purged_inline_through,
            definition,
        })
    }

    /// A consistent read-only view of the replica as of now.
    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| replica_error(&self.path, e))?;
        let version = {
            let meta = txn
                .open_table(META)
                .map_err(|e| replica_error(&self.path, e))?;
            meta.get("version")
                .map_err(|e| replica_error(&self.path, e))?
                .map(|v| v.value())
                .unwrap_or(0)
        };
        Ok(Snapshot {
            txn,
            version,
            path: Arc::new(self.path.clone()),
            segments_read: Default::default(),
        })
    }

    /// Makes the file on disk complete (an empty durable commit persists the
    /// non-durable ones before it) and copies it to `to`. The caller must
    /// keep other writers out meanwhile.
    pub(crate) fn copy_to(&self, to: &Path) -> Result<()> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| replica_error(&self.path, e))?;
        txn.commit().map_err(|e| replica_error(&self.path, e))?;
        std::fs::copy(&self.path, to).map_err(|e| MetaError::Replica {
            path: self.path.display().to_string(),
            reason: format!("copying to {}: {e}", to.display()),
        })?;
        Ok(())
    }
}

/// Removes `removed` from the live files; returns the entry (without
/// statistics) of each that was live, by path (a flush of thousands of
/// inline parts walks the table once: [`remove_pairs`]).
fn remove_live(
    files: &mut redb::Table<(&str, &str), &[u8]>,
    removed: &[FileRef],
    path: &Path,
) -> Result<HashMap<String, StoredFileHead>> {
    let mut live = HashMap::with_capacity(removed.len());
    let mut undecodable = None;
    remove_pairs(files, removed, path, |key, value| {
        match decode::<StoredFileHead>(path, value) {
            Ok(head) => {
                live.insert(key.to_owned(), head);
            }
            Err(e) => {
                undecodable.get_or_insert(e);
            }
        }
    })?;
    match undecodable {
        Some(e) => Err(e),
        None => Ok(live),
    }
}

/// Removes the (partition, path) of each of `files` from `table`, calling
/// `removed(path, value)` for each that was there. Removing a good share
/// of the table walks it once (`retain`); a few are looked up one by one.
fn remove_pairs<'a>(
    table: &mut redb::Table<(&str, &str), &[u8]>,
    files: impl IntoIterator<Item = &'a FileRef>,
    path: &Path,
    mut removed: impl FnMut(&str, &[u8]),
) -> Result<()> {
    let err = |e: redb::StorageError| replica_error(path, e);
    let keys: Vec<(&str, &str)> = files
        .into_iter()
        .map(|f| (f.partition.as_str(), f.path.as_str()))
        .collect();
    if bulk(keys.len(), table.len().map_err(err)?) {
        let wanted: HashSet<(&str, &str)> = keys.into_iter().collect();
        table
            .retain(|key, value| {
                let remove = wanted.contains(&key);
                if remove {
                    removed(key.1, value);
                }
                !remove
            })
            .map_err(err)?;
    } else {
        for key in keys {
            if let Some(value) = table.remove(key).map_err(err)? {
                removed(key.1, value.value());
            }
        }
    }
    Ok(())
}

/// The tables holding inline rows, in a write transaction: parts' own
/// bytes or references into segments, the segments, and how many held
/// parts refer to each segment.
struct InlineTables<'txn> {
    parts: redb::Table<'txn, (&'static str, &'static str), &'static [u8]>,
    segments: redb::Table<'txn, &'static str, &'static [u8]>,
    segment_parts: redb::Table<'txn, &'static str, u64>,
}

impl InlineTables<'_> {
    /// Removes the inline parts among `files` (held parts: the caller
    /// found their tombstones); returns the bytes this frees: the parts'
    /// own, and those of each segment whose last part goes.
    fn remove<'a>(
        &mut self,
        files: impl IntoIterator<Item = &'a FileRef> + Clone,
        path: &Path,
    ) -> Result<u64> {
        let err = |e: redb::StorageError| replica_error(path, e);
        let mut freed = 0;
        let mut released: HashMap<String, u64> = HashMap::new();
        let mut undecodable = None;
        let mut with_row: HashSet<String> = HashSet::new();
        remove_pairs(&mut self.parts, files.clone(), path, |part, value| {
            with_row.insert(part.to_owned());
            match value.strip_prefix(SEGMENT_REF.as_slice()) {
                Some(at) => match decode::<SegmentRef>(path, at) {
                    Ok(at) => *released.entry(at.segment).or_default() += 1,
                    Err(e) => {
                        undecodable.get_or_insert(e);
                    }
                },
                None => freed += value.len() as u64,
            }
        })?;
        if let Some(e) = undecodable {
            return Err(e);
        }
        // Parts named for their place in a segment have no row.
        for file in files {
            if !with_row.contains(file.path.as_str())
                && let Some(at) = SegmentRef::of_part_path(&file.partition, &file.path)
            {
                *released.entry(at.segment).or_default() += 1;
            }
        }
        for (name, parts) in released {
            let held = self
                .segment_parts
                .get(name.as_str())
                .map_err(err)?
                .map_or(0, |v| v.value());
            match held.saturating_sub(parts) {
                0 => freed += self.drop_segment(&name, path)?,
                left => {
                    self.segment_parts
                        .insert(name.as_str(), left)
                        .map_err(err)?;
                }
            }
        }
        Ok(freed)
    }

    /// Forgets a segment; returns its size.
    fn drop_segment(&mut self, name: &str, path: &Path) -> Result<u64> {
        let err = |e: redb::StorageError| replica_error(path, e);
        self.segment_parts.remove(name).map_err(err)?;
        Ok(self
            .segments
            .remove(name)
            .map_err(err)?
            .map_or(0, |bytes| bytes.value().len() as u64))
    }
}

/// What [`purge_entries`] removed.
struct Purged {
    /// Path → (added in, removed in) of each tombstone removed.
    tombstones: HashMap<String, (u64, u64)>,
    /// Bytes of the inline parts removed.
    inline_bytes: u64,
}

/// Removes the tombstones and inline bytes of `purged`. A purge naming a
/// good share of a table (a vacuum after a flush: thousands of parts)
/// walks it once with `retain`; a few paths are looked up one by one.
fn purge_entries(
    tombstones: &mut redb::Table<&str, &[u8]>,
    inline: &mut InlineTables<'_>,
    purged: &[FileRef],
    path: &Path,
) -> Result<Purged> {
    let err = |e: redb::StorageError| replica_error(path, e);
    let mut found = HashMap::with_capacity(purged.len());
    let mut undecodable = None;
    let mut keep = |key: &str, value: &[u8]| match decode::<Tombstone>(path, value) {
        Ok(tombstone) => {
            found.insert(key.to_owned(), (tombstone.added_in, tombstone.removed_in));
        }
        Err(e) => {
            undecodable.get_or_insert(e);
        }
    };
    if bulk(purged.len(), tombstones.len().map_err(err)?) {
        let wanted: HashSet<&str> = purged.iter().map(|f| f.path.as_str()).collect();
        tombstones
            .retain(|key, value| {
                let purge = wanted.contains(key);
                if purge {
                    keep(key, value);
                }
                !purge
            })
            .map_err(err)?;
    } else {
        for file in purged {
            if let Some(value) = tombstones.remove(file.path.as_str()).map_err(err)? {
                keep(&file.path, value.value());
            }
        }
    }
    if let Some(e) = undecodable {
        return Err(e);
    }
    // Only held parts give up their bytes (a purge naming a live part, or
    // one purged already, frees nothing).
    let freed = inline.remove(
        purged
            .iter()
            .filter(|f| crate::model::is_inline_path(&f.path) && found.contains_key(&f.path)),
        path,
    )?;
    Ok(Purged {
        tombstones: found,
        inline_bytes: freed,
    })
}

/// Removes the tombstones and inline bytes of every inline part removed
/// at or before version `through` (one walk of the tombstones' inline
/// range; inline paths sort together under [`INLINE_PREFIX`]).
fn purge_inline_through(
    tombstones: &mut redb::Table<&str, &[u8]>,
    inline: &mut InlineTables<'_>,
    through: u64,
    path: &Path,
) -> Result<Purged> {
    let err = |e: redb::StorageError| replica_error(path, e);
    let mut purged: Vec<FileRef> = Vec::new();
    let mut found = HashMap::new();
    let mut undecodable = None;
    let end = inline_prefix_end();
    tombstones
        .retain_in(INLINE_PREFIX..end.as_str(), |key, value| {
            match decode::<Tombstone>(path, value) {
                Ok(tombstone) if tombstone.removed_in <= through => {
                    found.insert(key.to_owned(), (tombstone.added_in, tombstone.removed_in));
                    purged.push(FileRef {
                        path: tombstone.path,
                        partition: tombstone.partition,
                    });
                    false
                }
                Ok(_) => true,
                Err(e) => {
                    undecodable.get_or_insert(e);
                    true
                }
            }
        })
        .map_err(err)?;
    if let Some(e) = undecodable {
        return Err(e);
    }
    let freed = inline.remove(&purged, path)?;
    Ok(Purged {
        tombstones: found,
        inline_bytes: freed,
    })
}

/// The first key after every path under [`INLINE_PREFIX`].
fn inline_prefix_end() -> String {
    let mut end = INLINE_PREFIX.to_owned();
    let last = end.pop().expect("the prefix is not empty");
    end.push(char::from_u32(last as u32 + 1).expect("the prefix ends in ASCII"));
    end
}

/// Whether removing `many` of a table's `len` entries is cheaper as one walk.
fn bulk(many: usize, len: u64) -> bool {
    many > 0 && many as u64 * 4 >= len
}

/// Compacts a replica file (a checkpoint copy), dropping the free pages it
/// inherited: checkpoints are downloaded by every new process.
pub(crate) fn compact_file(path: &Path) -> Result<()> {
    let mut db = Database::open(path).map_err(|e| replica_error(path, e))?;
    db.compact().map_err(|e| replica_error(path, e))?;
    Ok(())
}

/// Which partitions' files to list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PartitionFilter {
    #[default]
    All,
    /// Partitions equal to this path or below it (`y=2026/m=10` matches
    /// `y=2026/m=10/d=01`, not `y=2026/m=100`).
    Prefix(String),
    /// Partitions between two paths, compared as strings (Hive paths with
    /// zero-padded values sort in time order).
    Range {
        start: Bound<String>,
        end: Bound<String>,
    },
}

impl PartitionFilter {
    pub fn matches(&self, partition: &str) -> bool {
        match self {
            PartitionFilter::All => true,
            PartitionFilter::Prefix(prefix) => {
                partition == prefix
                    || (partition.starts_with(prefix.as_str())
                        && partition.as_bytes().get(prefix.len()) == Some(&b'/'))
            }
            PartitionFilter::Range { start, end } => {
                let after_start = match start {
                    Bound::Included(s) => partition >= s.as_str(),
                    Bound::Excluded(s) => partition > s.as_str(),
                    Bound::Unbounded => true,
                };
                let before_end = match end {
                    Bound::Included(e) => partition <= e.as_str(),
                    Bound::Excluded(e) => partition < e.as_str(),
                    Bound::Unbounded => true,
                };
                after_start && before_end
            }
        }
    }

    /// The first partition key worth scanning from.
    fn scan_start(&self) -> &str {
        match self {
            PartitionFilter::All => "",
            PartitionFilter::Prefix(prefix) => prefix,
            PartitionFilter::Range {
                start: Bound::Included(s) | Bound::Excluded(s),
                ..
            } => s,
            PartitionFilter::Range {
                start: Bound::Unbounded,
                ..
            } => "",
        }
    }

    /// Whether no partition at or after `partition` can match.
    fn exhausted_at(&self, partition: &str) -> bool {
        match self {
            PartitionFilter::All => false,
            PartitionFilter::Prefix(prefix) => !partition.starts_with(prefix.as_str()),
            PartitionFilter::Range {
                end: Bound::Included(e),
                ..
            } => partition > e.as_str(),
            PartitionFilter::Range {
                end: Bound::Excluded(e),
                ..
            } => partition >= e.as_str(),
            PartitionFilter::Range {
                end: Bound::Unbounded,
                ..
            } => false,
        }
    }
}

/// What a scan of the live files reads besides their entries.
#[derive(Clone, Copy)]
struct Scan {
    /// Inline parts' bytes.
    bytes: bool,
    /// Column statistics.
    stats: bool,
}

impl Scan {
    const WITH_BYTES: Scan = Scan {
        bytes: true,
        stats: true,
    };
    const WITH_STATS: Scan = Scan {
        bytes: false,
        stats: true,
    };
}

/// Reads inline parts in a snapshot (each segment's bytes once per
/// snapshot: [`Snapshot::segments_read`]).
struct InlineReader {
    parts: Option<InlineTable>,
    segments: Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>,
}

impl InlineReader {
    /// The bytes of the inline part (partition, path) and, for a part in a
    /// segment, where its rows are; `None` for a path that names no inline
    /// part.
    fn part(
        &self,
        snapshot: &Snapshot,
        partition: &str,
        path: &str,
    ) -> Result<Option<(InlineData, Option<SegmentRef>)>> {
        let (Some(table), true) = (&self.parts, crate::model::is_inline_path(path)) else {
            return Ok(None);
        };
        match table.get((partition, path)).map_err(|e| snapshot.err(e))? {
            Some(value) => self.resolve(snapshot, path, value.value()).map(Some),
            None => match SegmentRef::of_part_path(partition, path) {
                Some(at) => self.in_segment(snapshot, path, at).map(Some),
                None => Err(snapshot.missing_inline(path)),
            },
        }
    }

    /// What the `INLINE` value of part `path` stands for: the part's own
    /// bytes, or its segment's bytes and where in them its rows are.
    fn resolve(
        &self,
        snapshot: &Snapshot,
        path: &str,
        value: &[u8],
    ) -> Result<(InlineData, Option<SegmentRef>)> {
        let Some(at) = value.strip_prefix(SEGMENT_REF.as_slice()) else {
            return Ok((InlineData(bytes::Bytes::copy_from_slice(value)), None));
        };
        let at: SegmentRef = decode(&snapshot.path, at)?;
        self.in_segment(snapshot, path, at)
    }

    /// The bytes of segment `at.segment` (read once per snapshot), for part
    /// `path` at `at`.
    fn in_segment(
        &self,
        snapshot: &Snapshot,
        path: &str,
        at: SegmentRef,
    ) -> Result<(InlineData, Option<SegmentRef>)> {
        let mut read = snapshot.segments_read.lock().expect("not poisoned");
        if let Some(bytes) = read.get(&at.segment) {
            return Ok((InlineData(bytes.clone()), Some(at)));
        }
        let stored = match &self.segments {
            Some(table) => table
                .get(at.segment.as_str())
                .map_err(|e| snapshot.err(e))?,
            None => None,
        };
        let Some(stored) = stored else {
            return Err(snapshot.missing_inline(path));
        };
        let bytes = bytes::Bytes::copy_from_slice(stored.value());
        read.insert(at.segment.clone(), bytes.clone());
        Ok((InlineData(bytes), Some(at)))
    }
}

/// A consistent, read-only view of the table at one version. Cheap to make;
/// holds a redb read transaction, so later commits do not change it.
pub struct Snapshot {
    txn: ReadTransaction,
    version: u64,
    path: Arc<PathBuf>,
    /// Inline segments read so far, by name: a flush's jobs (one per
    /// partition, each loading its own parts) share one copy of each.
    segments_read: std::sync::Mutex<HashMap<String, bytes::Bytes>>,
}

impl Snapshot {
    pub fn version(&self) -> u64 {
        self.version
    }

    fn err(&self, e: impl Into<redb::Error>) -> MetaError {
        replica_error(&self.path, e)
    }

    /// The schema, in column order.
    pub fn schema(&self) -> Result<Vec<ColumnDef>> {
        let table = self.txn.open_table(SCHEMA).map_err(|e| self.err(e))?;
        let mut columns = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (_, column) = entry.map_err(|e| self.err(e))?;
            columns.push(decode(&self.path, column.value())?);
        }
        Ok(columns)
    }

    /// Totals per partition, in partition order.
    pub fn partitions(&self, filter: &PartitionFilter) -> Result<Vec<PartitionStats>> {
        let table = self.txn.open_table(PARTITIONS).map_err(|e| self.err(e))?;
        let mut partitions = Vec::new();
        for entry in table
            .range(filter.scan_start()..)
            .map_err(|e| self.err(e))?
        {
            let (key, stats) = entry.map_err(|e| self.err(e))?;
            if filter.exhausted_at(key.value()) {
                break;
            }
            if filter.matches(key.value()) {
                partitions.push(decode(&self.path, stats.value())?);
            }
        }
        Ok(partitions)
    }

    /// Live files of the matching partitions, in (partition, path) order,
    /// inline parts with their bytes.
    pub fn files(&self, filter: &PartitionFilter) -> Result<Vec<DataFile>> {
        let mut files = Vec::new();
        self.scan_files(filter, Scan::WITH_BYTES, |file, _| files.push(file))?;
        Ok(files)
    }

    /// [`Self::files`] without column statistics (`columns` empty) or the
    /// inline parts' bytes: for merge planning (a merge reads the rows and
    /// computes the output's own statistics; each job loads its parts'
    /// bytes with [`Self::load_inline`]).
    pub fn file_heads(&self, filter: &PartitionFilter) -> Result<Vec<DataFile>> {
        let mut files = Vec::new();
        let scan = Scan {
            bytes: false,
            stats: false,
        };
        self.scan_files(filter, scan, |file, _| files.push(file))?;
        Ok(files)
    }

    /// [`Self::files`] without the inline parts' bytes (`inline` is `None`
    /// everywhere): for planning, which needs only counts and statistics.
    /// [`Self::load_inline`] fills in the bytes of the parts kept.
    pub fn files_without_bytes(&self, filter: &PartitionFilter) -> Result<Vec<DataFile>> {
        let mut files = Vec::new();
        self.scan_files(filter, Scan::WITH_STATS, |file, _| files.push(file))?;
        Ok(files)
    }

    /// Fills in the bytes of the inline parts among `files` (as this
    /// snapshot holds them). A part in a segment gets the segment's bytes
    /// (shared by its parts, read once) and where its rows are
    /// ([`DataFile::segment`]).
    pub fn load_inline(&self, files: &mut [DataFile]) -> Result<()> {
        let reader = self.inline_reader()?;
        for file in files
            .iter_mut()
            .filter(|f| f.is_inline() && f.inline.is_none())
        {
            if let Some((data, segment)) = reader.part(self, &file.partition, &file.path)? {
                file.inline = Some(data);
                file.segment = segment;
            }
        }
        Ok(())
    }

    /// Visits live files without collecting them (inline parts without
    /// their bytes: see [`Self::files_without_bytes`]).
    pub fn for_each_file(
        &self,
        filter: &PartitionFilter,
        mut visit: impl FnMut(DataFile),
    ) -> Result<()> {
        self.scan_files(filter, Scan::WITH_STATS, |file, _| visit(file))
    }

    /// Visits live files with the version that added each. With
    /// `scan.bytes`, inline parts come with their bytes, read by walking
    /// the inline table alongside (both are in (partition, path) order)
    /// rather than by a lookup per part.
    fn scan_files(
        &self,
        filter: &PartitionFilter,
        scan: Scan,
        mut visit: impl FnMut(DataFile, u64),
    ) -> Result<()> {
        let table = self.txn.open_table(FILES).map_err(|e| self.err(e))?;
        let mut reader = if scan.bytes {
            Some(self.inline_reader()?)
        } else {
            None
        };
        let inline_table = reader.as_mut().and_then(|r| r.parts.take());
        let mut inline_parts = match &inline_table {
            Some(inline) => Some(
                inline
                    .range((filter.scan_start(), "")..)
                    .map_err(|e| self.err(e))?,
            ),
            None => None,
        };
        let mut inline_at = None;
        for entry in table
            .range((filter.scan_start(), "")..)
            .map_err(|e| self.err(e))?
        {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            let (partition, path) = key.value();
            if filter.exhausted_at(partition) {
                break;
            }
            if !filter.matches(partition) {
                continue;
            }
            let stored: StoredFile = if scan.stats {
                decode(&self.path, value.value())?
            } else {
                let head: StoredFileHead = decode(&self.path, value.value())?;
                StoredFile {
                    bytes: head.bytes,
                    rows: head.rows,
                    created_ms: head.created_ms,
                    added_in: head.added_in,
                    columns: Vec::new(),
                }
            };
            let mut inline = None;
            let mut segment = None;
            if let (Some(parts), true) = (&mut inline_parts, crate::model::is_inline_path(path)) {
                loop {
                    if inline_at.is_none() {
                        inline_at = parts.next().transpose().map_err(|e| self.err(e))?;
                    }
                    let Some((at, bytes)) = &inline_at else { break };
                    match at.value().cmp(&(partition, path)) {
                        std::cmp::Ordering::Less => inline_at = None,
                        std::cmp::Ordering::Equal => {
                            let reader = reader.as_ref().expect("made with the table");
                            let (data, at) = reader.resolve(self, path, bytes.value())?;
                            (inline, segment) = (Some(data), at);
                            inline_at = None;
                            break;
                        }
                        std::cmp::Ordering::Greater => break,
                    }
                }
                if inline.is_none() {
                    let Some(at) = SegmentRef::of_part_path(partition, path) else {
                        return Err(self.missing_inline(path));
                    };
                    let reader = reader.as_ref().expect("made with the table");
                    let (data, at) = reader.in_segment(self, path, at)?;
                    (inline, segment) = (Some(data), at);
                }
            }
            let file = DataFile {
                path: path.to_owned(),
                partition: partition.to_owned(),
                bytes: stored.bytes,
                rows: stored.rows,
                created_ms: stored.created_ms,
                columns: stored.columns.into_iter().collect(),
                inline,
                segment,
            };
            visit(file, stored.added_in);
        }
        Ok(())
    }

    /// The oldest version whose files all still exist (older ones lost
    /// files to vacuum).
    pub fn oldest_readable_version(&self) -> Result<u64> {
        Ok(self.meta_counter("purged_horizon")?.max(1))
    }

    /// The files that were live at `version` (≤ this snapshot's), if they
    /// all still exist. Files since removed carry no column statistics.
    pub fn files_at(
        &self,
        version: u64,
        filter: &PartitionFilter,
    ) -> Result<Option<Vec<DataFile>>> {
        if version > self.version || version < self.oldest_readable_version()? {
            return Ok(None);
        }
        let mut files = Vec::new();
        self.scan_files(filter, Scan::WITH_BYTES, |file, added_in| {
            if added_in <= version {
                files.push(file);
            }
        })?;
        let reader = self.inline_reader()?;
        for tombstone in self.tombstones()? {
            if filter.matches(&tombstone.partition)
                && tombstone.added_in <= version
                && version < tombstone.removed_in
            {
                let (inline, segment) = reader
                    .part(self, &tombstone.partition, &tombstone.path)?
                    .map_or((None, None), |(data, at)| (Some(data), at));
                files.push(DataFile {
                    path: tombstone.path,
                    partition: tombstone.partition,
                    bytes: tombstone.bytes,
                    rows: tombstone.rows,
                    created_ms: 0,
                    columns: Default::default(),
                    inline,
                    segment,
                });
            }
        }
        Ok(Some(files))
    }

    /// Reads inline parts' bytes (tables that older replicas and
    /// checkpoints lack are read as empty: they hold no such rows).
    fn inline_reader(&self) -> Result<InlineReader> {
        let parts = match self.txn.open_table(INLINE) {
            Ok(table) => Some(table),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(self.err(e)),
        };
        let segments = match self.txn.open_table(SEGMENTS) {
            Ok(table) => Some(table),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(self.err(e)),
        };
        Ok(InlineReader { parts, segments })
    }

    fn missing_inline(&self, path: &str) -> MetaError {
        MetaError::Replica {
            path: self.path.display().to_string(),
            reason: format!("inline part {path} has no data"),
        }
    }

    /// Totals of the live inline parts (rows kept in the log, not yet
    /// flushed to files by a merge).
    pub fn inline_totals(&self) -> Result<Totals> {
        let meta = self.txn.open_table(META).map_err(|e| self.err(e))?;
        let get = |key: &str| -> Result<u64> {
            Ok(meta
                .get(key)
                .map_err(|e| self.err(e))?
                .map_or(0, |v| v.value()))
        };
        Ok(Totals {
            files: get(INLINE_FILES)?,
            rows: get(INLINE_ROWS)?,
            bytes: get(INLINE_BYTES)?,
        })
    }

    /// Bytes of every inline part the state holds: live ones and flushed
    /// ones not yet purged (what a writer's inline bound counts).
    pub fn inline_held_bytes(&self) -> Result<u64> {
        self.meta_counter(INLINE_HELD)
    }

    /// The newest version through which removed inline parts were purged
    /// by version (0: never).
    pub fn inline_purged_through(&self) -> Result<u64> {
        self.meta_counter(INLINE_PURGED_THROUGH)
    }

    fn meta_counter(&self, key: &str) -> Result<u64> {
        let meta = self.txn.open_table(META).map_err(|e| self.err(e))?;
        Ok(meta
            .get(key)
            .map_err(|e| self.err(e))?
            .map_or(0, |v| v.value()))
    }

    /// Partitions holding live inline parts, in partition order: one seek
    /// per partition into the live files at the inline prefix, rather than
    /// a walk over every inline part's bytes (live and flushed).
    pub fn inline_partitions(&self) -> Result<Vec<String>> {
        let partitions = self.txn.open_table(PARTITIONS).map_err(|e| self.err(e))?;
        let files = self.txn.open_table(FILES).map_err(|e| self.err(e))?;
        let mut holding = Vec::new();
        for entry in partitions.iter().map_err(|e| self.err(e))? {
            let (key, _) = entry.map_err(|e| self.err(e))?;
            let partition = key.value();
            let first = files
                .range((partition, INLINE_PREFIX)..)
                .map_err(|e| self.err(e))?
                .next()
                .transpose()
                .map_err(|e| self.err(e))?;
            if first.is_some_and(|(key, _)| {
                let (at, path) = key.value();
                at == partition && crate::model::is_inline_path(path)
            }) {
                holding.push(partition.to_owned());
            }
        }
        Ok(holding)
    }

    /// Number of live files.
    pub fn file_count(&self) -> Result<u64> {
        let table = self.txn.open_table(FILES).map_err(|e| self.err(e))?;
        table.len().map_err(|e| self.err(e))
    }

    /// Tombstoned files not yet purged.
    pub fn tombstones(&self) -> Result<Vec<Tombstone>> {
        let table = self.txn.open_table(TOMBSTONES).map_err(|e| self.err(e))?;
        let mut tombstones = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (_, value) = entry.map_err(|e| self.err(e))?;
            tombstones.push(decode(&self.path, value.value())?);
        }
        Ok(tombstones)
    }

    /// Summaries of the newest `limit` commits the replica has seen, newest
    /// first (a replica bootstrapped from a checkpoint has the checkpoint's).
    pub fn history(&self, limit: usize) -> Result<Vec<CommitSummary>> {
        let table = self.txn.open_table(COMMITS).map_err(|e| self.err(e))?;
        let mut summaries = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))?.rev().take(limit) {
            let (_, value) = entry.map_err(|e| self.err(e))?;
            summaries.push(decode(&self.path, value.value())?);
        }
        Ok(summaries)
    }

    /// The table's identity (the id of its first commit), once known.
    pub fn table_id(&self) -> Result<Option<String>> {
        let table = self.txn.open_table(INFO).map_err(|e| self.err(e))?;
        Ok(table
            .get("table_id")
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_owned()))
    }

    /// The table's definition as its first commit recorded it, if any.
    pub fn definition(&self) -> Result<Option<serde_json::Value>> {
        let table = self.txn.open_table(INFO).map_err(|e| self.err(e))?;
        let Some(text) = table.get("definition").map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        serde_json::from_str(text.value())
            .map(Some)
            .map_err(|e| MetaError::Replica {
                path: self.path.display().to_string(),
                reason: format!("undecodable table definition: {e}"),
            })
    }

    /// The version in `versions` whose commit has id `id`, and the versions
    /// of the range the replica holds no summary for (a replica bootstrapped
    /// from a checkpoint lacks none of its own history, but an older one
    /// might).
    pub(crate) fn find_commit_id(
        &self,
        id: &str,
        versions: std::ops::RangeInclusive<u64>,
    ) -> Result<(Option<u64>, Vec<u64>)> {
        let table = self.txn.open_table(COMMITS).map_err(|e| self.err(e))?;
        let mut next = *versions.start();
        let mut missing = Vec::new();
        for entry in table.range(versions.clone()).map_err(|e| self.err(e))? {
            let (version, value) = entry.map_err(|e| self.err(e))?;
            let version = version.value();
            missing.extend(next..version);
            next = version + 1;
            let summary: CommitSummary = decode(&self.path, value.value())?;
            if summary.id == id {
                return Ok((Some(version), Vec::new()));
            }
        }
        missing.extend(next..=*versions.end());
        Ok((None, missing))
    }

    /// The summary of one version, if the replica has it.
    pub fn commit(&self, version: u64) -> Result<Option<CommitSummary>> {
        let table = self.txn.open_table(COMMITS).map_err(|e| self.err(e))?;
        match table.get(version).map_err(|e| self.err(e))? {
            Some(value) => Ok(Some(decode(&self.path, value.value())?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(version: u64, operation: Operation) -> Commit {
        Commit {
            format: crate::model::COMMIT_FORMAT,
            version,
            id: format!("c{version}"),
            table_id: Some("c1".to_owned()),
            timestamp_ms: 0,
            writer: "test".to_owned(),
            operation,
            added: Vec::new(),
            segments: Vec::new(),
            removed: Vec::new(),
            purged: Vec::new(),
            purged_inline_through: None,
            schema_changes: Vec::new(),
            details: BTreeMap::new(),
            definition: None,
        }
    }

    fn file(path: &str, inline: bool) -> DataFile {
        DataFile {
            path: path.to_owned(),
            partition: "p=1".to_owned(),
            bytes: 3,
            rows: 1,
            created_ms: 0,
            columns: BTreeMap::new(),
            inline: inline.then(|| InlineData(bytes::Bytes::from_static(b"abc"))),
            segment: None,
        }
    }

    fn retired(replica: &Replica) -> Vec<String> {
        let txn = replica.db.begin_read().unwrap();
        let table = txn.open_table(RETIRED).unwrap();
        let named = txn.open_table(RETIRED_NAMED).unwrap();
        table
            .iter()
            .unwrap()
            .map(|entry| entry.unwrap().0.value().to_owned())
            .chain(
                named
                    .iter()
                    .unwrap()
                    .map(|entry| entry.unwrap().0.value().1.to_owned()),
            )
            .collect()
    }

    /// A replica of format 2 or 3 opens and becomes format 4, its
    /// purged paths still refused; one of a newer format is refused.
    #[test]
    fn older_replica_formats_open_and_newer_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.redb");
        let set_format = |format: u64| {
            let db = Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("format", format)
                .unwrap();
            txn.commit().unwrap();
        };
        {
            let replica = Replica::open(&path, false).unwrap();
            let data = file("data/p=1/a.parquet", false);
            let mut add = commit(1, Operation::Insert);
            add.added = vec![data.clone()];
            let mut remove = commit(2, Operation::Merge);
            remove.removed = vec![FileRef::from(&data)];
            let mut purge = commit(3, Operation::Vacuum);
            purge.purged = remove.removed.clone();
            replica.apply(&[add, remove, purge]).unwrap();
        }
        for older in [2, 3] {
            set_format(older);
            let replica = Replica::open(&path, false).unwrap();
            assert_eq!(replica.header().unwrap(), (3, REPLICA_FORMAT));
            assert_eq!(retired(&replica), ["data/p=1/a.parquet"]);
        }
        set_format(REPLICA_FORMAT + 1);
        let refused = Replica::open(&path, false).err().unwrap().to_string();
        assert!(refused.contains("delete it to rebuild"), "{refused}");
    }

    fn history(replica: &Replica) -> Vec<u64> {
        let snapshot = replica.snapshot().unwrap();
        let mut versions: Vec<u64> = snapshot
            .history(usize::MAX)
            .unwrap()
            .iter()
            .map(|s| s.version)
            .collect();
        versions.reverse();
        versions
    }

    /// Summaries are kept for the newest 10 000 versions, or for the last
    /// hour of commits when that is more; the same whether the log is
    /// applied at once or a few commits at a time.
    #[test]
    fn history_keeps_ten_thousand_versions_or_the_last_hour() {
        let dir = tempfile::tempdir().unwrap();
        let commits = |second: i64| -> Vec<Commit> {
            (1..=10_010)
                .map(|v| {
                    let mut c = commit(v, Operation::Insert);
                    c.timestamp_ms = 1_780_000_000_000 + v as i64 * second;
                    c
                })
                .collect()
        };
        // One commit a second: the newest 10 000 versions stay.
        let once = Replica::open(&dir.path().join("once.redb"), false).unwrap();
        once.apply(&commits(1_000)).unwrap();
        let stepwise = Replica::open(&dir.path().join("steps.redb"), false).unwrap();
        for chunk in commits(1_000).chunks(7) {
            stepwise.apply(chunk).unwrap();
        }
        let kept = history(&once);
        assert_eq!(kept, (11..=10_010).collect::<Vec<_>>());
        assert_eq!(history(&stepwise), kept);
        let snapshot = once.snapshot().unwrap();
        assert!(snapshot.commit(10).unwrap().is_none());
        assert_eq!(snapshot.commit(11).unwrap().unwrap().id, "c11");
        // One commit a millisecond: all within the hour, so all stay.
        let burst = Replica::open(&dir.path().join("burst.redb"), false).unwrap();
        burst.apply(&commits(1)).unwrap();
        assert_eq!(history(&burst).len(), 10_010);
    }

    /// A purged file named by IceDB stays retired until a day after it
    /// was named (by the timestamps of the commits applied), then is
    /// forgotten; the log adding it after that is still ignored, as a
    /// commit that late may not add it. Other names stay retired.
    #[test]
    fn a_purged_file_is_retired_until_a_day_after_its_naming_then_refused_for_its_age() {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::open(&dir.path().join("r.redb"), false).unwrap();
        let (hour, t0) = (3_600_000_i64, 1_780_000_000_000_i64);
        let at = |version: u64, ms: i64| {
            let mut c = commit(version, Operation::Insert);
            c.timestamp_ms = ms;
            c
        };
        let name = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            (t0 / 1_000) as u64,
            0,
        ));
        let data = file(&format!("data/p=1/{name}.parquet"), false);
        assert_eq!(crate::model::minted_ms(&data.path), Some(t0));
        let other = file("data/p=1/by-hand.parquet", false);
        let mut add = at(1, t0);
        add.added = vec![data.clone(), other.clone()];
        let mut remove = at(2, t0 + hour);
        remove.removed = vec![FileRef::from(&data), FileRef::from(&other)];
        let mut purge = at(3, t0 + 2 * hour);
        purge.purged = remove.removed.clone();
        replica.apply(&[add, remove, purge]).unwrap();
        let day_after_naming = t0 + RETIRED_AGE_MS;
        replica.apply(&[at(4, day_after_naming)]).unwrap();
        assert_eq!(retired(&replica), [other.path.as_str(), data.path.as_str()]);
        let mut again = CommitDraft::new(Operation::Insert);
        again.added = vec![data.clone()];
        assert!(matches!(
            replica.plan(&again),
            Err(MetaError::Conflict(Conflict::FileAlreadyAdded {
                by_version: 1,
                ..
            }))
        ));

        replica.apply(&[at(5, day_after_naming + 1)]).unwrap();
        assert_eq!(retired(&replica), [other.path.as_str()]);
        let mut resurrect = at(6, day_after_naming + 2);
        resurrect.added = vec![data.clone(), other.clone()];
        assert!(too_old(&data, resurrect.timestamp_ms));
        replica.apply(&[resurrect]).unwrap();
        let snapshot = replica.snapshot().unwrap();
        assert_eq!(snapshot.version(), 6);
        assert!(snapshot.files(&PartitionFilter::All).unwrap().is_empty());
        // Inline parts and files not named by IceDB have no age.
        let inline = file(&format!("inline/p=1/{name}.0"), true);
        assert!(!too_old(&inline, day_after_naming + 2));
        assert!(!too_old(&other, i64::MAX));
    }

    /// A purged file's path is remembered so no commit can add it again; a
    /// purged inline part's is not (no writer can reuse its name), else
    /// every small insert would grow the replica and its checkpoints for
    /// good.
    #[test]
    fn an_apply_not_kept_changes_nothing_and_the_same_commit_applies_later() {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::open(&dir.path().join("r.redb"), false).unwrap();
        let mut add = commit(1, Operation::Insert);
        add.added = vec![file("data/p=1/a.parquet", false)];
        replica.apply(&[add]).unwrap();
        let mut next = commit(2, Operation::Insert);
        next.added = vec![file("inline/p=1/b", true)];
        let live = |replica: &Replica| {
            let snapshot = replica.snapshot().unwrap();
            let files = snapshot.files(&PartitionFilter::All).unwrap();
            (snapshot.version(), files.len())
        };
        assert_eq!(
            replica
                .apply_if(std::slice::from_ref(&next), || false)
                .unwrap(),
            None
        );
        assert_eq!(live(&replica), (1, 1));
        assert_eq!(
            replica
                .apply_if(std::slice::from_ref(&next), || true)
                .unwrap(),
            Some(2)
        );
        assert_eq!(live(&replica), (2, 2));
    }

    #[test]
    fn purged_inline_parts_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::open(&dir.path().join("r.redb"), false).unwrap();
        let part = file("inline/p=1/a.parquet", true);
        let data = file("data/p=1/b.parquet", false);
        let mut add = commit(1, Operation::Insert);
        add.added = vec![part.clone(), data.clone()];
        let mut remove = commit(2, Operation::Merge);
        remove.removed = vec![FileRef::from(&part), FileRef::from(&data)];
        let mut purge = commit(3, Operation::Vacuum);
        purge.purged = remove.removed.clone();
        replica.apply(&[add, remove, purge]).unwrap();

        assert_eq!(retired(&replica), ["data/p=1/b.parquet"]);
        let snapshot = replica.snapshot().unwrap();
        assert!(snapshot.tombstones().unwrap().is_empty());
        assert_eq!(snapshot.inline_held_bytes().unwrap(), 0);
        let mut again = CommitDraft::new(Operation::Insert);
        again.added = vec![data];
        assert!(matches!(
            replica.plan(&again),
            Err(MetaError::Conflict(Conflict::FileAlreadyAdded {
                by_version: 1,
                ..
            }))
        ));
    }

    /// A purge by version forgets exactly the inline parts removed at or
    /// before it (their tombstones, bytes and held count), leaves later
    /// flushes' parts, live parts and file tombstones alone, moves the
    /// time-travel horizon to the newest removal it purged, counts the
    /// parts in the commit's summary, and is planned away once a purge as
    /// far reaching was applied (a concurrent vacuum's).
    #[test]
    fn a_purge_by_version_forgets_exactly_the_parts_removed_by_then() {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::open(&dir.path().join("r.redb"), false).unwrap();
        let part = |name: &str| file(&format!("inline/p=1/{name}"), true);
        let (a, b, c, live) = (part("a"), part("b"), part("c"), part("d"));
        let data = file("data/p=1/x.parquet", false);
        let mut add = commit(1, Operation::Insert);
        add.added = vec![a.clone(), b.clone(), c.clone(), live.clone(), data.clone()];
        let mut flush = commit(2, Operation::Merge);
        flush.removed = vec![FileRef::from(&a), FileRef::from(&b), FileRef::from(&data)];
        let mut later = commit(3, Operation::Merge);
        later.removed = vec![FileRef::from(&c)];
        replica.apply(&[add, flush, later]).unwrap();
        assert_eq!(replica.snapshot().unwrap().inline_held_bytes().unwrap(), 12);

        let mut draft = CommitDraft::new(Operation::Vacuum);
        draft.purged_inline_through = Some(4);
        assert!(matches!(
            replica.plan(&draft),
            Err(MetaError::InvalidCommit(_))
        ));
        draft.purged_inline_through = Some(2);
        let plan = replica.plan(&draft).unwrap();
        assert_eq!(plan.purged_inline_through, Some(2));
        let mut purge = commit(4, Operation::Vacuum);
        purge.purged_inline_through = plan.purged_inline_through;
        replica.apply(&[purge]).unwrap();

        let snapshot = replica.snapshot().unwrap();
        assert_eq!(
            tombstone_paths(&snapshot),
            ["data/p=1/x.parquet", "inline/p=1/c"]
        );
        // c (flushed, not purged) and d (live) keep their bytes.
        assert_eq!(snapshot.inline_held_bytes().unwrap(), 6);
        let mut files = vec![live.clone()];
        files[0].inline = None;
        snapshot.load_inline(&mut files).unwrap();
        assert_eq!(files[0].inline, live.inline);
        assert_eq!(snapshot.oldest_readable_version().unwrap(), 2);
        assert_eq!(snapshot.inline_purged_through().unwrap(), 2);
        assert_eq!(snapshot.commit(4).unwrap().unwrap().files_purged, 2);
        assert!(retired(&replica).is_empty());
        drop(snapshot);
        let plan = replica.plan(&draft).unwrap();
        assert_eq!(plan.purged_inline_through, None);
    }

    /// Partitions are listed for flushing while they hold a live inline
    /// part, not once their parts are flushed (tombstoned, bytes still
    /// held), and every live part comes with its own bytes.
    #[test]
    fn inline_partitions_and_bytes_follow_the_live_parts() {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::open(&dir.path().join("r.redb"), false).unwrap();
        let part = |partition: &str, name: &str, bytes: &'static [u8]| DataFile {
            partition: partition.to_owned(),
            inline: Some(InlineData(bytes::Bytes::from_static(bytes))),
            ..file(&format!("inline/{partition}/{name}"), true)
        };
        let (a1, a2) = (part("p=1", "a", b"a1"), part("p=1", "b", b"a2"));
        let (b1, c1) = (part("p=2", "a", b"b1"), part("p=3", "a", b"c1"));
        let data = DataFile {
            partition: "p=3".to_owned(),
            columns: BTreeMap::from([(
                "n".to_owned(),
                ColumnStats {
                    min: None,
                    max: None,
                    null_count: 4,
                },
            )]),
            ..file("data/p=3/x.parquet", false)
        };
        let mut add = commit(1, Operation::Insert);
        add.added = vec![a1.clone(), a2.clone(), b1.clone(), c1.clone(), data];
        replica.apply(&[add]).unwrap();
        let snapshot = replica.snapshot().unwrap();
        assert_eq!(snapshot.inline_partitions().unwrap(), ["p=1", "p=2", "p=3"]);
        let held: Vec<_> = snapshot
            .files(&PartitionFilter::All)
            .unwrap()
            .into_iter()
            .map(|f| (f.path, f.inline.map(|d| d.0)))
            .collect();
        assert_eq!(
            held,
            [
                (a1.path.clone(), Some(bytes::Bytes::from_static(b"a1"))),
                (a2.path.clone(), Some(bytes::Bytes::from_static(b"a2"))),
                (b1.path.clone(), Some(bytes::Bytes::from_static(b"b1"))),
                ("data/p=3/x.parquet".to_owned(), None),
                (c1.path.clone(), Some(bytes::Bytes::from_static(b"c1"))),
            ]
        );
        // Heads: without statistics and bytes, everything else the same;
        // loading the bytes gives them back.
        let with = snapshot.files(&PartitionFilter::All).unwrap();
        let mut heads = snapshot.file_heads(&PartitionFilter::All).unwrap();
        assert_eq!(with[3].columns.len(), 1);
        assert!(
            heads
                .iter()
                .all(|f| f.columns.is_empty() && f.inline.is_none())
        );
        let strip = |files: Vec<DataFile>| -> Vec<DataFile> {
            files
                .into_iter()
                .map(|f| DataFile {
                    columns: BTreeMap::new(),
                    ..f
                })
                .collect()
        };
        snapshot.load_inline(&mut heads).unwrap();
        assert_eq!(strip(with), heads);
        drop(snapshot);

        // p=2 flushed and p=3's part flushed (its data file stays live).
        let mut flush = commit(2, Operation::Merge);
        flush.removed = vec![FileRef::from(&b1), FileRef::from(&c1)];
        replica.apply(&[flush]).unwrap();
        let snapshot = replica.snapshot().unwrap();
        assert_eq!(snapshot.inline_partitions().unwrap(), ["p=1"]);
        let live: Vec<_> = snapshot
            .files(&PartitionFilter::All)
            .unwrap()
            .into_iter()
            .map(|f| (f.path, f.inline.is_some()))
            .collect();
        assert_eq!(
            live,
            [
                (a1.path, true),
                (a2.path, true),
                ("data/p=3/x.parquet".to_owned(), false)
            ]
        );
    }

    /// A removal or purge of a few entries looks each up; one of most of
    /// them walks the tables once: both keep the state exact.
    #[test]
    fn small_and_large_removals_and_purges_keep_the_state_exact() {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::open(&dir.path().join("r.redb"), false).unwrap();
        let files: Vec<DataFile> = (0..12)
            .map(|n| {
                file(
                    &format!(
                        "{}/p=1/{n}.parquet",
                        if n % 2 == 0 { "inline" } else { "data" }
                    ),
                    n % 2 == 0,
                )
            })
            .collect();
        let mut add = commit(1, Operation::Insert);
        add.added = files.clone();
        // Removing a few files looks each up, most of them walks the table.
        let mut remove_few = commit(2, Operation::Merge);
        remove_few.removed = remove_refs(&files[..2]);
        replica.apply(&[add, remove_few]).unwrap();
        let snapshot = replica.snapshot().unwrap();
        let totals = &snapshot.partitions(&PartitionFilter::All).unwrap()[0];
        assert_eq!((totals.files, totals.rows, totals.bytes), (10, 10, 30));
        assert_eq!(snapshot.tombstones().unwrap().len(), 2);
        assert_eq!(snapshot.inline_totals().unwrap().files, 5);
        drop(snapshot);
        let mut remove = commit(2, Operation::Merge);
        remove.version = 3;
        remove.removed = remove_refs(&files[2..]);
        replica.apply(&[remove]).unwrap();
        let snapshot = replica.snapshot().unwrap();
        assert!(
            snapshot
                .partitions(&PartitionFilter::All)
                .unwrap()
                .is_empty()
        );
        assert!(snapshot.files(&PartitionFilter::All).unwrap().is_empty());
        assert_eq!(snapshot.tombstones().unwrap().len(), 12);
        assert_eq!(snapshot.inline_totals().unwrap().files, 0);
        assert_eq!(snapshot.inline_held_bytes().unwrap(), 18);
        drop(snapshot);

        let mut few = commit(4, Operation::Vacuum);
        few.purged = remove_refs(&files[..2]);
        replica.apply(&[few]).unwrap();
        let snapshot = replica.snapshot().unwrap();
        assert_eq!(snapshot.tombstones().unwrap().len(), 10);
        assert_eq!(snapshot.inline_held_bytes().unwrap(), 15);
        assert_eq!(snapshot.oldest_readable_version().unwrap(), 2);
        drop(snapshot);
        assert_eq!(retired(&replica), ["data/p=1/1.parquet"]);

        let mut many = commit(5, Operation::Vacuum);
        many.purged = remove_refs(&files[2..]);
        replica.apply(&[many]).unwrap();
        let snapshot = replica.snapshot().unwrap();
        assert!(snapshot.tombstones().unwrap().is_empty());
        assert_eq!(snapshot.inline_held_bytes().unwrap(), 0);
        drop(snapshot);
        assert_eq!(retired(&replica).len(), 6);
        let txn = replica.db.begin_read().unwrap();
        assert_eq!(txn.open_table(INLINE).unwrap().len().unwrap(), 0);
    }

    /// Parts in a segment: the segment is stored and counted once, each
    /// part reads it with where its rows are (live and in time travel),
    /// and it is forgotten with the purge of its last part, by either
    /// kind of purge. A segment no part ends up naming is not kept.
    #[test]
    fn a_segment_is_held_once_until_its_last_part_is_purged() {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::open(&dir.path().join("r.redb"), false).unwrap();
        let bytes = bytes::Bytes::from_static(b"ten bytes!");
        let part = |partition: &str, offset: u64| DataFile {
            partition: partition.to_owned(),
            bytes: 5,
            rows: 2,
            inline: None,
            segment: Some(SegmentRef {
                segment: "s1".to_owned(),
                offset,
            }),
            ..file(&format!("inline/{partition}/{offset}"), true)
        };
        let (a, b, c) = (part("p=1", 0), part("p=2", 2), part("p=3", 4));
        let own = file("inline/p=1/own", true);
        let mut add = commit(1, Operation::Insert);
        add.added = vec![a.clone(), b.clone(), c.clone(), own.clone()];
        add.segments = vec![crate::model::InlineSegment {
            name: "s1".to_owned(),
            data: InlineData(bytes.clone()),
        }];
        replica.apply(&[add]).unwrap();
        let snapshot = replica.snapshot().unwrap();
        assert_eq!(snapshot.inline_held_bytes().unwrap(), 10 + 3);
        let totals = snapshot.inline_totals().unwrap();
        assert_eq!((totals.files, totals.rows, totals.bytes), (4, 7, 18));
        let loaded: Vec<_> = snapshot
            .files(&PartitionFilter::All)
            .unwrap()
            .into_iter()
            .map(|f| (f.path, f.inline.map(|d| d.0), f.segment.map(|s| s.offset)))
            .collect();
        assert_eq!(
            loaded,
            [
                (a.path.clone(), Some(bytes.clone()), Some(0)),
                (
                    own.path.clone(),
                    Some(bytes::Bytes::from_static(b"abc")),
                    None
                ),
                (b.path.clone(), Some(bytes.clone()), Some(2)),
                (c.path.clone(), Some(bytes.clone()), Some(4)),
            ]
        );
        let mut heads = snapshot.file_heads(&PartitionFilter::All).unwrap();
        snapshot.load_inline(&mut heads).unwrap();
        assert!(heads.iter().all(|f| f.inline.is_some()));
        assert_eq!(heads[2].segment, b.segment);
        drop(snapshot);

        // Two parts flushed and purged by name: the third keeps the segment.
        let mut flush = commit(2, Operation::Merge);
        flush.removed = remove_refs(&[a.clone(), b.clone(), own.clone()]);
        let mut vacuum = commit(3, Operation::Vacuum);
        vacuum.purged = remove_refs(&[a.clone(), own.clone()]);
        replica.apply(&[flush, vacuum]).unwrap();
        let snapshot = replica.snapshot().unwrap();
        assert_eq!(snapshot.inline_held_bytes().unwrap(), 10);
        let at_one = snapshot.files_at(1, &PartitionFilter::All).unwrap();
        assert_eq!(at_one, None, "version 1 lost purged parts");
        let at_two = snapshot
            .files_at(2, &PartitionFilter::All)
            .unwrap()
            .unwrap();
        assert_eq!(at_two.len(), 1);
        assert_eq!(
            at_two[0].inline.as_ref().map(|d| d.0.clone()),
            Some(bytes.clone())
        );
        drop(snapshot);

        // The last live part flushed, then every flushed part purged by version.
        let mut flush = commit(4, Operation::Merge);
        flush.removed = remove_refs(std::slice::from_ref(&c));
        let mut purge = commit(5, Operation::Merge);
        purge.purged_inline_through = Some(4);
        replica.apply(&[flush, purge]).unwrap();
        let snapshot = replica.snapshot().unwrap();
        assert_eq!(snapshot.inline_held_bytes().unwrap(), 0);
        assert_eq!(snapshot.inline_totals().unwrap().files, 0);
        drop(snapshot);
        {
            let txn = replica.db.begin_read().unwrap();
            assert_eq!(txn.open_table(SEGMENTS).unwrap().len().unwrap(), 0);
            assert_eq!(txn.open_table(SEGMENT_PARTS).unwrap().len().unwrap(), 0);
            assert_eq!(txn.open_table(INLINE).unwrap().len().unwrap(), 0);
        }

        // A commit whose only part names a path the log holds already.
        let live = file("inline/p=9/live", true);
        let mut first = commit(6, Operation::Insert);
        first.added = vec![live.clone()];
        let mut again = commit(7, Operation::Insert);
        again.added = vec![DataFile {
            inline: None,
            segment: Some(SegmentRef {
                segment: "s2".to_owned(),
                offset: 0,
            }),
            ..live
        }];
        again.segments = vec![crate::model::InlineSegment {
            name: "s2".to_owned(),
            data: InlineData(bytes.clone()),
        }];
        replica.apply(&[first, again]).unwrap();
        assert_eq!(replica.snapshot().unwrap().inline_held_bytes().unwrap(), 3);
        {
            let txn = replica.db.begin_read().unwrap();
            assert_eq!(txn.open_table(SEGMENTS).unwrap().len().unwrap(), 0);
        }

        // A commit repeating a held segment's name: it and its parts are
        // ignored, the held segment's parts keep reading its own bytes.
        let in_segment = |path: &str, name: &str, data: &'static [u8], version: u64| {
            let mut c = commit(version, Operation::Insert);
            c.added = vec![DataFile {
                inline: None,
                segment: Some(SegmentRef {
                    segment: name.to_owned(),
                    offset: 0,
                }),
                ..file(path, true)
            }];
            c.segments = vec![crate::model::InlineSegment {
                name: name.to_owned(),
                data: InlineData(bytes::Bytes::from_static(data)),
            }];
            c
        };
        let held_first = in_segment("inline/p=1/first", "s3", b"first", 8);
        let repeats = in_segment("inline/p=1/second", "s3", b"second!", 9);
        replica.apply(&[held_first, repeats]).unwrap();
        let snapshot = replica.snapshot().unwrap();
        assert_eq!(snapshot.inline_held_bytes().unwrap(), 3 + 5);
        let parts: Vec<_> = snapshot
            .files(&PartitionFilter::All)
            .unwrap()
            .into_iter()
            .filter(|f| f.segment.is_some())
            .map(|f| (f.path, f.inline.unwrap().0))
            .collect();
        assert_eq!(
            parts,
            [(
                "inline/p=1/first".to_owned(),
                bytes::Bytes::from_static(b"first")
            )]
        );
    }

    fn remove_refs(files: &[DataFile]) -> Vec<FileRef> {
        files.iter().map(FileRef::from).collect()
    }

    /// The paths of the snapshot's tombstones, sorted.
    fn tombstone_paths(snapshot: &Snapshot) -> Vec<String> {
        let mut paths: Vec<String> = snapshot
            .tombstones()
            .unwrap()
            .into_iter()
            .map(|t| t.path)
            .collect();
        paths.sort();
        paths
    }

    /// Random histories of inline parts (own bytes and segments), flushes
    /// and both kinds of purge, applied one or two commits per
    /// transaction, against a model: after every apply the live parts read
    /// their own rows, totals and held bytes add up, each segment is
    /// stored and counted exactly while a held part names it, and every
    /// readable version lists what was live then.
    mod inline_history {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            /// Parts as (partition, rows); in one segment or each with
            /// its own bytes; a segment's parts named for their place
            /// ([`SegmentRef::part_path`]) or not (as format-5 writers
            /// before it named them).
            Insert {
                parts: Vec<(u8, u8)>,
                segmented: bool,
                placed: bool,
            },
            /// Removes the live parts whose position (in path order) has
            /// its bit set.
            Flush { mask: u16 },
            /// Purges the flushed parts whose position has its bit set.
            PurgeNames { mask: u16 },
            /// Purges by version: every part flushed at or before
            /// `head - back`.
            PurgeThrough { back: u8 },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (proptest::collection::vec((0u8..3, 1u8..4), 0..5), any::<bool>(), any::<bool>())
                    .prop_map(|(parts, segmented, placed)| Op::Insert { parts, segmented, placed }),
                2 => any::<u16>().prop_map(|mask| Op::Flush { mask }),
                1 => any::<u16>().prop_map(|mask| Op::PurgeNames { mask }),
                1 => (0u8..4).prop_map(|back| Op::PurgeThrough { back }),
            ]
        }

        #[derive(Debug, Clone)]
        struct Part {
            file: DataFile,
            /// What the part reads: its own bytes or its segment's.
            reads: bytes::Bytes,
            added_in: u64,
            removed_in: Option<u64>,
            purged: bool,
        }

        impl Part {
            fn live_at(&self, version: u64) -> bool {
                self.added_in <= version && self.removed_in.is_none_or(|r| version < r)
            }
            fn held(&self) -> bool {
                !self.purged
            }
        }

        #[derive(Default)]
        struct Model {
            parts: Vec<Part>,
            segments: BTreeMap<String, bytes::Bytes>,
            horizon: u64,
            purged_through: u64,
        }

        impl Model {
            fn by_path(&self, pick: impl Fn(&Part) -> bool) -> Vec<usize> {
                let mut at: Vec<usize> = (0..self.parts.len())
                    .filter(|&i| pick(&self.parts[i]))
                    .collect();
                at.sort_by(|&a, &b| self.parts[a].file.path.cmp(&self.parts[b].file.path));
                at
            }

            fn purge(&mut self, at: usize) {
                let part = &mut self.parts[at];
                part.purged = true;
                self.horizon = self.horizon.max(part.removed_in.expect("flushed"));
            }

            /// The commit `op` makes at `version`.
            fn commit(&mut self, op: &Op, version: u64) -> Commit {
                let mut c = commit(version, Operation::Insert);
                match op {
                    Op::Insert {
                        parts,
                        segmented,
                        placed,
                    } => {
                        let name = format!("s{version}");
                        let data = bytes::Bytes::from(format!("segment of version {version}"));
                        let mut offset = 0u64;
                        for (i, &(partition, rows)) in parts.iter().enumerate() {
                            let partition = format!("p={partition}");
                            let at = SegmentRef {
                                segment: name.clone(),
                                offset,
                            };
                            let path = if *segmented && *placed {
                                at.part_path(&partition)
                            } else {
                                format!("inline/{partition}/v{version}-{i}")
                            };
                            let own = bytes::Bytes::from(format!("own {path}"));
                            let file = DataFile {
                                path,
                                partition,
                                bytes: if *segmented {
                                    u64::from(rows)
                                } else {
                                    own.len() as u64
                                },
                                rows: u64::from(rows),
                                created_ms: 0,
                                columns: BTreeMap::new(),
                                inline: (!segmented).then(|| InlineData(own.clone())),
                                segment: segmented.then_some(at),
                            };
                            offset += u64::from(rows);
                            c.added.push(file.clone());
                            self.parts.push(Part {
                                file,
                                reads: if *segmented { data.clone() } else { own },
                                added_in: version,
                                removed_in: None,
                                purged: false,
                            });
                        }
                        if *segmented && !parts.is_empty() {
                            c.segments.push(crate::model::InlineSegment {
                                name: name.clone(),
                                data: InlineData(data.clone()),
                            });
                            self.segments.insert(name, data);
                        }
                    }
                    Op::Flush { mask } => {
                        c.operation = Operation::Merge;
                        let live = self.by_path(|p| p.removed_in.is_none());
                        for (bit, at) in live.into_iter().enumerate() {
                            if bit < 16 && mask & (1 << bit) != 0 {
                                self.parts[at].removed_in = Some(version);
                                c.removed.push(FileRef::from(&self.parts[at].file));
                            }
                        }
                    }
                    Op::PurgeNames { mask } => {
                        c.operation = Operation::Vacuum;
                        let flushed = self.by_path(|p| p.removed_in.is_some() && !p.purged);
                        for (bit, at) in flushed.into_iter().enumerate() {
                            if bit < 16 && mask & (1 << bit) != 0 {
                                self.purge(at);
                                c.purged.push(FileRef::from(&self.parts[at].file));
                            }
                        }
                    }
                    Op::PurgeThrough { back } => {
                        c.operation = Operation::Vacuum;
                        let through = version.saturating_sub(1 + u64::from(*back));
                        if through >= 1 {
                            c.purged_inline_through = Some(through);
                            if through > self.purged_through {
                                self.purged_through = through;
                                let due = self.by_path(|p| {
                                    !p.purged && p.removed_in.is_some_and(|r| r <= through)
                                });
                                for at in due {
                                    self.purge(at);
                                }
                            }
                        }
                    }
                }
                c
            }

            fn check(&self, replica: &Replica, head: u64) {
                let snapshot = replica.snapshot().unwrap();
                let read = |files: Vec<DataFile>| -> BTreeMap<String, (bytes::Bytes, Option<u64>)> {
                    files
                        .into_iter()
                        .map(|f| {
                            let data = f.inline.expect("an inline part reads its bytes").0;
                            (f.path, (data, f.segment.map(|s| s.offset)))
                        })
                        .collect()
                };
                let expect = |version: u64| -> BTreeMap<String, (bytes::Bytes, Option<u64>)> {
                    self.parts
                        .iter()
                        .filter(|p| p.live_at(version))
                        .map(|p| {
                            let offset = p.file.segment.as_ref().map(|s| s.offset);
                            (p.file.path.clone(), (p.reads.clone(), offset))
                        })
                        .collect()
                };
                assert_eq!(
                    read(snapshot.files(&PartitionFilter::All).unwrap()),
                    expect(head),
                    "live parts"
                );
                let live: Vec<&Part> = self
                    .parts
                    .iter()
                    .filter(|p| p.removed_in.is_none())
                    .collect();
                assert_eq!(snapshot.file_count().unwrap(), live.len() as u64);
                let one = PartitionFilter::Prefix("p=1".to_owned());
                let in_one: Vec<String> = snapshot
                    .file_heads(&one)
                    .unwrap()
                    .into_iter()
                    .map(|f| f.path)
                    .collect();
                let mut expected: Vec<String> = live
                    .iter()
                    .filter(|p| p.file.partition == "p=1")
                    .map(|p| p.file.path.clone())
                    .collect();
                expected.sort();
                assert_eq!(in_one, expected, "one partition's parts, in path order");
                let mut holding: Vec<String> =
                    live.iter().map(|p| p.file.partition.clone()).collect();
                holding.sort();
                holding.dedup();
                assert_eq!(snapshot.inline_partitions().unwrap(), holding);
                let totals = snapshot.inline_totals().unwrap();
                assert_eq!(
                    (totals.files, totals.rows, totals.bytes),
                    (
                        live.len() as u64,
                        live.iter().map(|p| p.file.rows).sum(),
                        live.iter().map(|p| p.file.bytes).sum()
                    ),
                    "inline totals"
                );
                // Each held segment once, with the count of held parts naming it.
                let mut counts: BTreeMap<String, u64> = BTreeMap::new();
                let mut held = 0u64;
                for part in self.parts.iter().filter(|p| p.held()) {
                    match &part.file.segment {
                        Some(at) => *counts.entry(at.segment.clone()).or_default() += 1,
                        None => held += part.reads.len() as u64,
                    }
                }
                held += counts
                    .keys()
                    .map(|name| self.segments[name].len() as u64)
                    .sum::<u64>();
                assert_eq!(snapshot.inline_held_bytes().unwrap(), held, "held bytes");
                let flushed: Vec<String> = self
                    .by_path(|p| p.removed_in.is_some() && !p.purged)
                    .into_iter()
                    .map(|at| self.parts[at].file.path.clone())
                    .collect();
                assert_eq!(tombstone_paths(&snapshot), flushed, "tombstones");
                assert_eq!(
                    snapshot.oldest_readable_version().unwrap(),
                    self.horizon.max(1),
                    "oldest readable version"
                );
                for version in 1..=head {
                    let at = snapshot.files_at(version, &PartitionFilter::All).unwrap();
                    if version < self.horizon {
                        assert!(at.is_none(), "version {version} lost purged parts");
                    } else {
                        assert_eq!(read(at.unwrap()), expect(version), "files at {version}");
                    }
                }
                drop(snapshot);
                let txn = replica.db.begin_read().unwrap();
                let stored: BTreeMap<String, u64> = txn
                    .open_table(SEGMENT_PARTS)
                    .unwrap()
                    .iter()
                    .unwrap()
                    .map(|e| {
                        let (k, v) = e.unwrap();
                        (k.value().to_owned(), v.value())
                    })
                    .collect();
                assert_eq!(stored, counts, "held parts per segment");
                let segments = txn.open_table(SEGMENTS).unwrap();
                assert_eq!(
                    segments.len().unwrap(),
                    counts.len() as u64,
                    "segments stored"
                );
                for name in counts.keys() {
                    assert_eq!(
                        segments.get(name.as_str()).unwrap().unwrap().value(),
                        self.segments[name].as_ref()
                    );
                }
                let named = |p: &Part| {
                    p.file
                        .segment
                        .as_ref()
                        .is_some_and(|at| at.part_path(&p.file.partition) == p.file.path)
                };
                assert_eq!(
                    txn.open_table(INLINE).unwrap().len().unwrap(),
                    self.parts.iter().filter(|p| p.held() && !named(p)).count() as u64,
                    "a row per held part not named for its place"
                );
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            #[test]
            fn inline_parts_and_segments_follow_a_model(
                ops in proptest::collection::vec((op(), any::<bool>()), 1..16)
            ) {
                let dir = tempfile::tempdir().unwrap();
                let replica = Replica::open(&dir.path().join("r.redb"), false).unwrap();
                let mut model = Model::default();
                let mut batch = Vec::new();
                for (version, (op, with_next)) in (1u64..).zip(&ops) {
                    batch.push(model.commit(op, version));
                    if !with_next || version as usize == ops.len() {
                        let head = replica.apply(&batch).unwrap();
                        prop_assert_eq!(head, version);
                        batch.clear();
                        model.check(&replica, head);
                    }
                }
            }
        }
    }
}

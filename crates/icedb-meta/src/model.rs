//! What the commit log records: commits, data files with their statistics,
//! and the table schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The newest commit format this build reads. A commit carrying inline
/// rows in segments ([`Commit::segments`]: one encoding shared by an
/// insert's parts, each part a row range of it) is written in format 5 (a
/// format-4 build would find parts without rows); one purging flushed
/// inline parts by version ([`Commit::purged_inline_through`]) in format 4
/// (a format-3 build would ignore the purge and keep state no other
/// replica has); one carrying inline rows part by part in format 3 (Arrow
/// IPC; format 2's were Parquet, and a build that reads only format 1
/// would take an inline part for a missing object); every other commit in
/// format 1, so older builds still read tables that never inline.
pub const COMMIT_FORMAT: u32 = 5;

/// The format of a commit purging inline parts by version.
pub(crate) const PURGE_COMMIT_FORMAT: u32 = 4;

/// The format of a commit carrying inline rows part by part.
pub(crate) const INLINE_COMMIT_FORMAT: u32 = 3;

/// The format of a commit without inline rows.
pub(crate) const PLAIN_COMMIT_FORMAT: u32 = 1;

/// Where inline parts are named (never an object on the store): a data
/// file whose path starts with this holds its rows in the log.
pub const INLINE_PREFIX: &str = "inline/";

/// A column type. Nested values never reach Parquet (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Boolean,
    Int64,
    Float64,
    String,
    /// Microseconds since the Unix epoch, UTC.
    Timestamp,
}

impl ColumnType {
    /// The type a column has when values of `self` and `other` meet, if
    /// they may: only int64 and float64 widen (to float64).
    pub fn unify(self, other: ColumnType) -> Option<ColumnType> {
        use ColumnType::*;
        match (self, other) {
            (a, b) if a == b => Some(a),
            (Int64, Float64) | (Float64, Int64) => Some(Float64),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Boolean => "boolean",
            ColumnType::Int64 => "int64",
            ColumnType::Float64 => "float64",
            ColumnType::String => "string",
            ColumnType::Timestamp => "timestamp",
        }
    }
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A column of the table schema. All columns are nullable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
}

/// A statistics value (min or max) of one column in one file. Timestamps
/// are `Int` microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatValue {
    Boolean(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// Per-column statistics of one data file, for pruning.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ColumnStats {
    pub min: Option<StatValue>,
    pub max: Option<StatValue>,
    pub null_count: u64,
}

/// One immutable data file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    /// Object key relative to the table root, e.g.
    /// `data/y=2026/m=11/d=24/0193….parquet`.
    pub path: String,
    /// The Hive partition path the file belongs to.
    pub partition: String,
    pub bytes: u64,
    pub rows: u64,
    /// When the file was written, in ms since the epoch.
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, ColumnStats>,
    /// For an inline part (path under [`INLINE_PREFIX`]): its rows (an
    /// Arrow IPC stream, Snappy-compressed; Parquet before commit format
    /// 3), kept in the commit (base64 in JSON) and the replica instead of
    /// on the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<InlineData>,
    /// For an inline part kept in a segment of its commit
    /// ([`Commit::segments`]): which segment, and where its rows start.
    /// [`crate::Snapshot::load_inline`] then sets `inline` to the whole
    /// segment's bytes; the part's rows are `rows` rows from `offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentRef>,
}

impl DataFile {
    /// Whether the file is an inline part (its bytes live in the log).
    pub fn is_inline(&self) -> bool {
        is_inline_path(&self.path)
    }
}

/// Whether `path` names an inline part.
pub fn is_inline_path(path: &str) -> bool {
    path.starts_with(INLINE_PREFIX)
}

/// When the writer that named the file at `path` named it (Unix ms), read
/// from the UUIDv7 IceDB names data files after; `None` for any other name
/// (a file named by hand or by another tool).
pub fn minted_ms(path: &str) -> Option<i64> {
    let name = path.rsplit('/').next()?;
    let stem = name.split_once('.').map_or(name, |(stem, _)| stem);
    let id = uuid::Uuid::try_parse(stem).ok()?;
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(secs as i64 * 1_000 + i64::from(nanos / 1_000_000))
}

/// Where an inline part's rows are in a segment: rows `offset..offset +
/// rows` of segment `segment` (the part's [`DataFile::rows`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    pub segment: String,
    pub offset: u64,
}

impl SegmentRef {
    /// The name a writer gives the part of `partition` at this place,
    /// `inline/{partition}/{segment}.{offset}`: it says where the part's
    /// rows are, so the replica stores nothing per part to find them.
    pub fn part_path(&self, partition: &str) -> String {
        format!(
            "{INLINE_PREFIX}{partition}/{}.{}",
            self.segment, self.offset
        )
    }

    /// The place a part of `partition` named by [`Self::part_path`] stands
    /// for (`None` for any other name).
    pub fn of_part_path(partition: &str, path: &str) -> Option<SegmentRef> {
        let name = path
            .strip_prefix(INLINE_PREFIX)?
            .strip_prefix(partition)?
            .strip_prefix('/')?;
        let (segment, offset) = name.rsplit_once('.')?;
        let at = SegmentRef {
            segment: segment.to_owned(),
            offset: offset.parse().ok()?,
        };
        (!segment.is_empty() && at.part_path(partition) == path).then_some(at)
    }
}

/// The rows of several inline parts of one commit, encoded once (one
/// Arrow IPC stream, Snappy-compressed): an insert spread over 30
/// partitions writes, compresses, logs and stores one value instead of
/// 30. Its name is minted by the writer and unique in the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InlineSegment {
    pub name: String,
    pub data: InlineData,
}

/// The bytes of an inline part or segment, base64 in the log's JSON.
#[derive(Clone, PartialEq, Eq)]
pub struct InlineData(pub bytes::Bytes);

impl std::fmt::Debug for InlineData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InlineData({} bytes)", self.0.len())
    }
}

impl Serialize for InlineData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for InlineData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(|bytes| InlineData(bytes.into()))
            .map_err(serde::de::Error::custom)
    }
}

/// A live file a commit tombstones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub path: String,
    pub partition: String,
}

impl From<&DataFile> for FileRef {
    fn from(file: &DataFile) -> Self {
        FileRef {
            path: file.path.clone(),
            partition: file.partition.clone(),
        }
    }
}

impl From<&Tombstone> for FileRef {
    fn from(tombstone: &Tombstone) -> Self {
        FileRef {
            path: tombstone.path.clone(),
            partition: tombstone.partition.clone(),
        }
    }
}

/// What kind of change a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Insert,
    Merge,
    Rewrite,
    DropPartitions,
    Vacuum,
    /// Changes the table's definition (sort order, partitioning, formatter,
    /// Parquet settings); adds and removes no file.
    Alter,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Merge => "merge",
            Operation::Rewrite => "rewrite",
            Operation::DropPartitions => "drop-partitions",
            Operation::Vacuum => "vacuum",
            Operation::Alter => "alter",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of the commit log: `_icedb/log/<version:020>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    pub format: u32,
    pub version: u64,
    /// Unique id of this commit (UUIDv7), so a writer whose request had an
    /// unknown outcome can tell whether the version it finds is its own.
    pub id: String,
    /// The table's identity: the id of the table's first commit, repeated in
    /// every commit. A replica or writer that meets another identity is
    /// looking at a different (deleted and re-created) table. `None` only in
    /// logs written before identities existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_id: Option<String>,
    /// When the commit was made, in ms since the epoch (informational: no
    /// clock orders anything).
    pub timestamp_ms: i64,
    pub writer: String,
    pub operation: Operation,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<DataFile>,
    /// The rows of the inline parts among `added` that name a segment
    /// ([`DataFile::segment`]). Format 5.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<InlineSegment>,
    /// Files tombstoned by this commit; they stay readable until purged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<FileRef>,
    /// Tombstoned files this commit records as physically deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purged: Vec<FileRef>,
    /// Every inline part removed at or before this version is purged (its
    /// bytes and tombstone forgotten): a flush removes thousands of parts,
    /// and naming each again here would make the entry as large as the
    /// flush's. Format 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged_inline_through: Option<u64>,
    /// Columns this commit adds to the schema or widens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_changes: Vec<ColumnDef>,
    /// Free-form details (the merge policy, the rewrite filter, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// The table's definition (sort order, partitioning, formatter, file
    /// settings: opaque to the meta store), recorded by the table's first
    /// commit and by nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<serde_json::Value>,
}

/// What a writer wants to commit; the version is chosen by the protocol.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CommitDraft {
    pub operation: Option<Operation>,
    pub added: Vec<DataFile>,
    /// The segments the added inline parts name ([`Commit::segments`]).
    pub segments: Vec<InlineSegment>,
    pub removed: Vec<FileRef>,
    pub purged: Vec<FileRef>,
    /// Purge every inline part removed at or before this version
    /// ([`Commit::purged_inline_through`]).
    pub purged_inline_through: Option<u64>,
    /// The columns of the added files (with their types); new ones are added
    /// to the schema, int64 meeting float64 widens, anything else conflicts.
    pub columns: Vec<ColumnDef>,
    pub details: BTreeMap<String, String>,
    /// The definition this writer assumes. Recorded if the table has none
    /// yet; a different recorded one is a conflict (nothing is committed).
    pub definition: Option<serde_json::Value>,
    /// For [`Operation::Alter`]: the definition being replaced, which must
    /// still be the recorded one (two racing alters: the second conflicts).
    pub replaces: Option<serde_json::Value>,
    /// The most bytes of inline parts the table may hold live after this
    /// commit; over it the commit conflicts ([`crate::Conflict::InlineFull`])
    /// and nothing is committed. `None`: no check.
    pub inline_limit: Option<u64>,
}

impl CommitDraft {
    pub fn new(operation: Operation) -> Self {
        CommitDraft {
            operation: Some(operation),
            ..CommitDraft::default()
        }
    }
}

/// A commit as history lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitSummary {
    pub version: u64,
    pub id: String,
    pub timestamp_ms: i64,
    pub writer: String,
    pub operation: Operation,
    pub files_added: u64,
    pub files_removed: u64,
    pub files_purged: u64,
    pub rows_added: u64,
    pub bytes_added: u64,
}

impl CommitSummary {
    pub fn of(commit: &Commit) -> Self {
        CommitSummary {
            version: commit.version,
            id: commit.id.clone(),
            timestamp_ms: commit.timestamp_ms,
            writer: commit.writer.clone(),
            operation: commit.operation,
            files_added: commit.added.len() as u64,
            files_removed: commit.removed.len() as u64,
            files_purged: commit.purged.len() as u64,
            rows_added: commit.added.iter().map(|f| f.rows).sum(),
            bytes_added: commit.added.iter().map(|f| f.bytes).sum(),
        }
    }
}

/// Totals of one partition's live files.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PartitionStats {
    pub partition: String,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    /// The newest `created_ms` of a file ever added to the partition.
    pub newest_write_ms: i64,
}

/// Files, rows and bytes summed over partitions (a table's totals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
}

impl Totals {
    pub fn of<'a>(partitions: impl IntoIterator<Item = &'a PartitionStats>) -> Totals {
        partitions
            .into_iter()
            .fold(Totals::default(), |t, p| Totals {
                files: t.files + p.files,
                rows: t.rows + p.rows,
                bytes: t.bytes + p.bytes,
            })
    }
}

/// A tombstoned file still on the store, waiting for vacuum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub path: String,
    pub partition: String,
    pub bytes: u64,
    pub rows: u64,
    pub removed_ms: i64,
    /// The version that added the file.
    pub added_in: u64,
    /// The version that removed it: it was live for `added_in..removed_in`.
    pub removed_in: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part's name gives back its place, and only a name written by
    /// [`SegmentRef::part_path`] for that partition does.
    #[test]
    fn a_part_name_gives_back_its_place_and_nothing_else_does() {
        let at = SegmentRef {
            segment: "01a2-seg".to_owned(),
            offset: 327,
        };
        let partition = "y=2026/m=10/d=02";
        let name = at.part_path(partition);
        assert_eq!(name, "inline/y=2026/m=10/d=02/01a2-seg.327");
        assert_eq!(SegmentRef::of_part_path(partition, &name), Some(at));
        for other in [
            "inline/y=2026/m=10/d=02/01a2-seg.0327",
            "inline/y=2026/m=10/d=02/01a2-seg.parquet",
            "inline/y=2026/m=10/d=02/.327",
            "inline/y=2026/m=10/d=02/01a2-seg",
            "inline/y=2026/m=10/d=03/01a2-seg.327",
            "data/y=2026/m=10/d=02/01a2-seg.327",
        ] {
            assert_eq!(SegmentRef::of_part_path(partition, other), None, "{other}");
        }
        assert_eq!(SegmentRef::of_part_path("y=2026/m=10/d=0", &name), None);
    }
}

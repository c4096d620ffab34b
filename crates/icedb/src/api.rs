//! The HTTP API's bodies as types: `icedb-host` writes them, `icedb-tui`
//! (and any Rust client) reads them, so both sides agree by construction.
//! Paths are in `docs/ARCHITECTURE.md`; every error body is [`ErrorAnswer`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Table;
use crate::definition::TableDefinition;
use crate::merge::MergeReport;
use icedb_meta::{ColumnDef, CommitSummary, PartitionFilter, PartitionStats, Snapshot, Totals};

/// Any 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    pub error: String,
}

/// `GET /v1/tables`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableList {
    pub tables: Vec<TableSummary>,
}

/// A table's totals over its live files.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TableSummary {
    pub name: String,
    pub root: String,
    pub version: u64,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    pub partitions: usize,
    pub newest_write_ms: Option<i64>,
    /// Of `files`, `rows` and `bytes`: the inline parts (rows the log holds
    /// until a merge flushes them into files).
    #[serde(default)]
    pub inline: Totals,
}

impl TableSummary {
    /// `table`'s totals in `snapshot`.
    pub fn of(table: &Table, snapshot: &Snapshot) -> crate::Result<TableSummary> {
        let partitions = snapshot.partitions(&PartitionFilter::All)?;
        let totals = Totals::of(&partitions);
        Ok(TableSummary {
            name: table.name().to_owned(),
            root: table.config().root.clone(),
            version: snapshot.version(),
            files: totals.files,
            rows: totals.rows,
            bytes: totals.bytes,
            partitions: partitions.len(),
            newest_write_ms: partitions.iter().map(|p| p.newest_write_ms).max(),
            inline: snapshot.inline_totals()?,
        })
    }
}

/// `GET /v1/tables/{table}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    #[serde(flatten)]
    pub summary: TableSummary,
    /// The table id (its first commit's id).
    pub table_id: Option<String>,
    /// Files each merge policy of the host would merge now.
    pub merge_backlog: BTreeMap<String, usize>,
    pub schema: Vec<ColumnDef>,
    pub sort_order: Vec<String>,
    pub definition: TableDefinition,
    pub tombstones: usize,
    pub plugins: Vec<PluginInfo>,
}

/// A WebAssembly plugin a table runs, with its counters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PluginInfo {
    /// `format-row` or `partition-strategy`.
    pub role: String,
    pub name: String,
    pub calls: u64,
    pub rows: u64,
    pub errors: u64,
    pub traps: u64,
    pub instances_created: u64,
    pub busy_ms: f64,
}

impl From<crate::table::LoadedPlugin> for PluginInfo {
    fn from(p: crate::table::LoadedPlugin) -> Self {
        PluginInfo {
            role: p.role.to_owned(),
            name: p.name,
            calls: p.stats.calls,
            rows: p.stats.rows,
            errors: p.stats.errors,
            traps: p.stats.traps,
            instances_created: p.stats.instances_created,
            busy_ms: p.stats.busy.as_secs_f64() * 1e3,
        }
    }
}

/// `GET /v1/tables/{table}/partitions`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionList {
    pub version: u64,
    pub partitions: Vec<PartitionInfo>,
}

/// One partition's totals.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub partition: String,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    pub newest_write_ms: i64,
    /// Files the cold merge policy would merge now.
    pub merge_backlog: usize,
}

impl PartitionInfo {
    pub fn new(stats: PartitionStats, merge_backlog: usize) -> Self {
        PartitionInfo {
            partition: stats.partition,
            files: stats.files,
            rows: stats.rows,
            bytes: stats.bytes,
            newest_write_ms: stats.newest_write_ms,
            merge_backlog,
        }
    }
}

/// `GET /v1/tables/{table}/files`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileList {
    pub version: u64,
    pub root: String,
    pub files: Vec<FileInfo>,
}

/// A live data file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FileInfo {
    /// Relative to the table root.
    pub path: String,
    /// Where other engines read it (`file:///…`, `s3://…`); empty for an
    /// inline part, which has no object until a merge flushes it.
    pub url: String,
    /// Whether the file is an inline part (its bytes are in the log).
    #[serde(default)]
    pub inline: bool,
    pub partition: String,
    pub bytes: u64,
    pub rows: u64,
    pub created_ms: i64,
}

impl FileInfo {
    /// A live file, with the URL `table` gives it.
    pub fn new(table: &crate::Table, file: icedb_meta::DataFile) -> Self {
        let inline = file.is_inline();
        FileInfo {
            url: if inline {
                String::new()
            } else {
                table.file_url(&file.path)
            },
            inline,
            path: file.path,
            partition: file.partition,
            bytes: file.bytes,
            rows: file.rows,
            created_ms: file.created_ms,
        }
    }
}

/// `GET /v1/tables/{table}/commits`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitList {
    pub commits: Vec<CommitSummary>,
}

/// `POST /v1/tables/{table}/merge`: one merge round's figures.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MergeAnswer {
    pub policy: String,
    #[serde(flatten)]
    pub report: MergeReport,
}

impl MergeAnswer {
    pub fn new(policy: &str, report: &MergeReport) -> Self {
        MergeAnswer {
            policy: policy.to_owned(),
            report: report.clone(),
        }
    }
}

/// `POST /v1/tables/{table}/rows`: the receipt, sent once the rows are
/// committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsertAnswer {
    /// The table version whose commit holds the rows.
    pub version: u64,
    /// Rows of this request.
    pub rows: usize,
    /// Files of the commit (shared with the other requests of its group).
    pub files: Vec<String>,
    /// Requests that shared the commit.
    pub requests_in_commit: usize,
}

/// `POST /v1/query` as JSON (SQL may also be sent as `text/plain`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    /// The table (default: the only one, or `events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Only read partitions at or below this path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Read the table as of this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// `POST /v1/query` answered as JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueryAnswer {
    pub columns: Vec<ResultColumn>,
    /// The rows: a JSON array of objects keyed by column name (timestamps
    /// as ISO-8601 text, decimals as exact strings); kept raw so the server
    /// writes it without re-encoding.
    pub rows: Box<RawValue>,
    pub row_count: usize,
    pub version: u64,
    pub files_scanned: usize,
    pub files_pruned: usize,
    pub elapsed_ms: f64,
}

/// A result column: its name and DuckDB/Arrow type as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

/// What a host entry of `/v1/activity` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityKind {
    Insert,
    Query,
    Merge,
    Vacuum,
    Checkpoint,
}

impl ActivityKind {
    pub const ALL: [ActivityKind; 5] = [
        ActivityKind::Insert,
        ActivityKind::Query,
        ActivityKind::Merge,
        ActivityKind::Vacuum,
        ActivityKind::Checkpoint,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ActivityKind::Insert => "insert",
            ActivityKind::Query => "query",
            ActivityKind::Merge => "merge",
            ActivityKind::Vacuum => "vacuum",
            ActivityKind::Checkpoint => "checkpoint",
        }
    }
}

/// How an activity entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityStatus {
    #[default]
    Running,
    Ok,
    /// Finished, but lost a race to a concurrent commit (nothing changed).
    Conflict,
    Error,
    /// Stopped by shutdown before it finished.
    Cancelled,
}

impl ActivityStatus {
    pub fn name(self) -> &'static str {
        match self {
            ActivityStatus::Running => "running",
            ActivityStatus::Ok => "ok",
            ActivityStatus::Conflict => "conflict",
            ActivityStatus::Error => "error",
            ActivityStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for ActivityStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of `/v1/activity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityEntry {
    pub id: u64,
    pub kind: ActivityKind,
    pub table: String,
    /// The SQL, the merge policy, ...
    pub label: String,
    pub started_ms: i64,
    pub duration_ms: Option<f64>,
    pub status: ActivityStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Figures of the finished work (rows, files, version, ...).
    #[serde(default)]
    pub detail: serde_json::Value,
}

impl ActivityEntry {
    /// A figure of the detail (0 when absent).
    pub fn figure(&self, key: &str) -> u64 {
        self.detail.get(key).and_then(|v| v.as_u64()).unwrap_or(0)
    }
}

/// `GET /v1/activity`: running entries (oldest first) and finished ones
/// (newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityList {
    pub running: Vec<ActivityEntry>,
    pub recent: Vec<ActivityEntry>,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    /// `/readyz`: each table's synced version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, u64>,
}

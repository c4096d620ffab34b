//! What the dashboard shows, independent of where it came from (a table
//! opened directly or a host's API).

use serde::Deserialize;

pub use icedb::CommitSummary;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overview {
    pub table: String,
    pub root: String,
    pub version: u64,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    pub partitions: usize,
    pub tombstones: usize,
    /// The table's recorded definition, summarised.
    pub sort_order: String,
    pub partitioning: String,
    pub format: String,
}

impl Overview {
    /// Fills the definition lines from a definition as JSON (the table's
    /// `TableDefinition`, directly or as the host's API answers it).
    pub fn with_definition(mut self, definition: &serde_json::Value) -> Self {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let plugin = |v: &serde_json::Value| {
            format!(
                "plugin {} (sha256 {}…)",
                text(&v["name"]),
                text(&v["sha256"]).chars().take(8).collect::<String>()
            )
        };
        self.sort_order = definition["sort_order"]
            .as_array()
            .map(|columns| columns.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        let partitioning = &definition["partitioning"];
        self.partitioning = match partitioning["kind"].as_str() {
            Some("time") => format!(
                "{} of {}",
                text(&partitioning["granularity"]),
                text(&partitioning["field"])
            ),
            Some("field") => format!("value of {}", text(&partitioning["field"])),
            Some("plugin") => plugin(partitioning),
            _ => String::new(),
        };
        let format = &definition["format"];
        self.format = match format["kind"].as_str() {
            Some("built-in") => "built-in JSON text".to_owned(),
            Some("plugin") => plugin(format),
            _ => String::new(),
        };
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PartitionRow {
    pub partition: String,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    pub newest_write_ms: i64,
    /// Files the cold merge policy would merge now.
    #[serde(default)]
    pub merge_backlog: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct FileRow {
    pub path: String,
    pub bytes: u64,
    pub rows: u64,
    pub created_ms: i64,
}

/// One entry of the activity log (a host's `/v1/activity`, or the merges
/// and queries this dashboard ran itself on a table).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ActivityRow {
    pub kind: String,
    #[serde(default)]
    pub table: String,
    pub label: String,
    pub started_ms: i64,
    pub duration_ms: Option<f64>,
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub detail: serde_json::Value,
}

impl ActivityRow {
    pub fn figure(&self, key: &str) -> u64 {
        self.detail.get(key).and_then(|v| v.as_u64()).unwrap_or(0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PluginRow {
    pub role: String,
    pub name: String,
    pub calls: u64,
    pub rows: u64,
    pub errors: u64,
    pub traps: u64,
    pub busy_ms: f64,
}

/// Everything one refresh brings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dashboard {
    pub overview: Overview,
    pub partitions: Vec<PartitionRow>,
    pub commits: Vec<CommitSummary>,
    /// Running first, then finished, newest first.
    pub activity: Vec<ActivityRow>,
    /// (policy, files it would merge now)
    pub backlog: Vec<(String, usize)>,
    pub plugins: Vec<PluginRow>,
}

/// A query's answer, as text cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryOutcome {
    pub sql: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub elapsed_ms: f64,
    pub version: u64,
    pub files_scanned: u64,
    pub files_pruned: u64,
}

//! What the dashboard shows, independent of where it came from (a table
//! opened directly or a host's API).

pub use icedb::CommitSummary;
use icedb::api::TableSummary;
use icedb::{FormatDefinition, PartitionDefinition, PluginReference, TableDefinition};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overview {
    /// Name, root, version and totals, as the host's API answers them.
    pub summary: TableSummary,
    pub tombstones: usize,
    /// The table's recorded definition, summarised.
    pub sort_order: String,
    pub partitioning: String,
    pub format: String,
}

impl Overview {
    /// Fills the definition lines from the table's recorded definition
    /// (read from the table, or from the host's `GET /v1/tables/{t}`).
    pub fn with_definition(mut self, definition: &TableDefinition) -> Self {
        let plugin = |p: &PluginReference| {
            format!(
                "plugin {} (sha256 {}…)",
                p.name,
                p.sha256.chars().take(8).collect::<String>()
            )
        };
        self.sort_order = definition.sort_order.join(", ");
        self.partitioning = match &definition.partitioning {
            PartitionDefinition::Time {
                field, granularity, ..
            } => format!("{} of {field}", granularity.name()),
            PartitionDefinition::Field { field } => format!("value of {field}"),
            PartitionDefinition::Plugin(p) => plugin(p),
        };
        self.format = match &definition.format {
            FormatDefinition::BuiltIn { .. } => "built-in JSON text".to_owned(),
            FormatDefinition::Plugin(p) => plugin(p),
        };
        self
    }
}

/// The host's answers are the dashboard's rows: one type on both sides.
pub use icedb::api::{
    ActivityEntry as ActivityRow, ActivityKind, ActivityStatus, FileInfo as FileRow,
    PartitionInfo as PartitionRow, PluginInfo as PluginRow,
};

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

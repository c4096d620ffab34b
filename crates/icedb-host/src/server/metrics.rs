//! Prometheus metrics of a host (`/metrics`, text exposition format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    pub table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub table: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub table: String,
    pub task: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub table: String,
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub table: String,
    pub role: String,
    pub plugin: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn group_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 12))
}

/// Every metric the host exports.
pub struct Metrics {
    registry: Registry,
    pub insert_requests: Family<OutcomeLabels, Counter>,
    pub rows_ingested: Family<TableLabel, Counter>,
    pub insert_commits: Family<TableLabel, Counter>,
    pub ack_seconds: Histograms<TableLabel>,
    pub requests_per_commit: Histograms<TableLabel>,
    pub queued_rows: Family<TableLabel, Gauge>,
    pub queries: Family<OutcomeLabels, Counter>,
    pub query_seconds: Histograms<TableLabel>,
    pub scheduler_runs: Family<TaskLabels, Counter>,
    pub merge_jobs: Family<PolicyLabels, Counter>,
    pub merge_conflicts: Family<PolicyLabels, Counter>,
    pub merge_files_in: Family<PolicyLabels, Counter>,
    pub merge_files_out: Family<PolicyLabels, Counter>,
    pub vacuum_files_deleted: Family<TableLabel, Counter>,
    pub vacuum_bytes_freed: Family<TableLabel, Counter>,
    pub checkpoints: Family<TableLabel, Counter>,
    pub table_version: Family<TableLabel, Gauge>,
    pub table_files: Family<TableLabel, Gauge>,
    pub table_rows: Family<TableLabel, Gauge>,
    pub table_bytes: Family<TableLabel, Gauge>,
    pub table_partitions: Family<TableLabel, Gauge>,
    pub plugin_calls: Family<PluginLabels, Counter>,
    pub plugin_rows: Family<PluginLabels, Counter>,
    pub plugin_errors: Family<PluginLabels, Counter>,
    pub plugin_traps: Family<PluginLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("icedb");
        macro_rules! metric {
            ($name:literal, $help:literal, $value:expr) => {{
                let value = $value;
                registry.register($name, $help, value.clone());
                value
            }};
        }
        let latency = || {
            Histograms::<TableLabel>::new_with_constructor(latency_histogram as fn() -> Histogram)
        };
        Metrics {
            insert_requests: metric!(
                "insert_requests",
                "Insert requests by outcome (ok, bad_input, busy, too_large, error)",
                Family::default()
            ),
            rows_ingested: metric!(
                "rows_ingested",
                "Rows committed by inserts of this host",
                Family::default()
            ),
            insert_commits: metric!(
                "insert_commits",
                "Insert commits (one per group commit)",
                Family::default()
            ),
            ack_seconds: metric!(
                "insert_ack_seconds",
                "Time from receiving an insert to acknowledging its commit",
                latency()
            ),
            requests_per_commit: metric!(
                "insert_requests_per_commit",
                "Insert requests sharing one commit (group commit)",
                Histograms::<TableLabel>::new_with_constructor(
                    group_histogram as fn() -> Histogram
                )
            ),
            queued_rows: metric!(
                "ingest_queued_rows",
                "Rows accepted and not yet committed",
                Family::default()
            ),
            queries: metric!("queries", "Queries by outcome", Family::default()),
            query_seconds: metric!("query_seconds", "Query latency", latency()),
            scheduler_runs: metric!(
                "scheduler_runs",
                "Scheduled maintenance runs by task and outcome",
                Family::default()
            ),
            merge_jobs: metric!("merge_jobs", "Merge jobs committed", Family::default()),
            merge_conflicts: metric!(
                "merge_conflicts",
                "Merge jobs aborted by a concurrent commit",
                Family::default()
            ),
            merge_files_in: metric!("merge_files_in", "Files merged away", Family::default()),
            merge_files_out: metric!(
                "merge_files_out",
                "Files written by merges",
                Family::default()
            ),
            vacuum_files_deleted: metric!(
                "vacuum_files_deleted",
                "Removed files and orphans deleted by vacuum",
                Family::default()
            ),
            vacuum_bytes_freed: metric!(
                "vacuum_bytes_freed",
                "Bytes deleted by vacuum",
                Family::default()
            ),
            checkpoints: metric!("checkpoints", "Checkpoints uploaded", Family::default()),
            table_version: metric!(
                "table_version",
                "Newest table version this host has seen",
                Family::default()
            ),
            table_files: metric!("table_files", "Live data files", Family::default()),
            table_rows: metric!("table_rows", "Rows in live data files", Family::default()),
            table_bytes: metric!("table_bytes", "Bytes of live data files", Family::default()),
            table_partitions: metric!(
                "table_partitions",
                "Partitions with live files",
                Family::default()
            ),
            plugin_calls: metric!(
                "plugin_calls",
                "Batches handed to a WebAssembly plugin",
                Family::default()
            ),
            plugin_rows: metric!(
                "plugin_rows",
                "Rows handed to a WebAssembly plugin",
                Family::default()
            ),
            plugin_errors: metric!(
                "plugin_errors",
                "Plugin calls that failed",
                Family::default()
            ),
            plugin_traps: metric!(
                "plugin_traps",
                "Plugin calls that trapped, timed out or ran out of memory",
                Family::default()
            ),
            registry,
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

pub fn table(name: &str) -> TableLabel {
    TableLabel {
        table: name.to_owned(),
    }
}

pub fn outcome(table: &str, outcome: &str) -> OutcomeLabels {
    OutcomeLabels {
        table: table.to_owned(),
        outcome: outcome.to_owned(),
    }
}

/// Raises a counter to `total` (plugins keep their own totals).
pub fn raise_to(counter: &Counter, total: u64) {
    let current = counter.get();
    if total > current {
        counter.inc_by(total - current);
    }
}

//! Snapshots of every view on ratatui's TestBackend.

use super::*;
use crate::app::Action;
use crate::model::{
    ActivityKind, ActivityRow, ActivityStatus, CommitSummary, Dashboard, FileRow, Overview,
    PartitionRow, PluginRow, QueryOutcome,
};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// 2026-11-29T12:00:00Z
const NOW: i64 = 1_795_953_600_000;

fn fixture() -> Dashboard {
    let partitions = (1..=5)
        .map(|d| PartitionRow {
            partition: format!("y=2026/m=11/d={d:02}"),
            files: 6 - d as u64,
            rows: 10_000 * d as u64,
            bytes: 300_000 * d as u64,
            newest_write_ms: NOW - (6 - d as i64) * 3_600_000,
            merge_backlog: if d % 2 == 0 { 6 - d as usize } else { 0 },
        })
        .collect::<Vec<_>>();
    let commits = (1..=4)
        .rev()
        .map(|v| CommitSummary {
            version: v,
            id: format!("id-{v}"),
            timestamp_ms: NOW - (5 - v as i64) * 60_000,
            writer: "0193a1b2-host-a".into(),
            operation: if v == 4 {
                icedb::Operation::Merge
            } else {
                icedb::Operation::Insert
            },
            files_added: if v == 4 { 1 } else { 5 },
            files_removed: if v == 4 { 3 } else { 0 },
            files_purged: 0,
            rows_added: if v == 4 { 30_000 } else { 50_000 },
            bytes_added: 1_500_000,
        })
        .collect();
    let entry = |kind, label: &str, started_ms, duration_ms, status| ActivityRow {
        id: 0,
        kind,
        table: "events".into(),
        label: label.into(),
        started_ms,
        duration_ms,
        status,
        error: None,
        detail: serde_json::Value::Null,
    };
    let activity = vec![
        entry(
            ActivityKind::Merge,
            "hot policy",
            NOW - 5_000,
            None,
            ActivityStatus::Running,
        ),
        ActivityRow {
            detail: serde_json::json!({"jobs": 2, "files_in": 3, "files_out": 1, "bytes_in": 900_000, "bytes_out": 850_000, "conflicts": 1}),
            ..entry(
                ActivityKind::Merge,
                "cold policy",
                NOW - 65_000,
                Some(812.0),
                ActivityStatus::Conflict,
            )
        },
        entry(
            ActivityKind::Query,
            "SELECT count(*) FROM events",
            NOW - 30_000,
            Some(12.0),
            ActivityStatus::Ok,
        ),
    ];
    let definition = icedb::TableDefinition {
        sort_order: vec!["event".into(), "ts".into()],
        partitioning: icedb::PartitionDefinition::Time {
            field: "ts".into(),
            granularity: icedb::Granularity::Day,
            ingest_time_if_missing: true,
        },
        format: icedb::FormatDefinition::Plugin(icedb::PluginReference {
            name: "flatten-json.wasm".into(),
            sha256: "3f1c9a0b7d2e4f6a8b0c".into(),
            settings: Vec::new(),
        }),
        parquet: icedb::ParquetDefinition {
            compression: icedb::Compression::Snappy,
            row_group_rows: 1 << 20,
            target_file_bytes: 128 << 20,
            max_rows_per_file: 1 << 20,
        },
    };
    Dashboard {
        overview: Overview {
            summary: icedb::api::TableSummary {
                name: "events".into(),
                root: "s3://lake/events".into(),
                version: 4,
                files: 15,
                rows: 150_000,
                bytes: 4_500_000,
                partitions: 5,
                newest_write_ms: None,
                inline: icedb::Totals {
                    files: 2,
                    rows: 40,
                    bytes: 6_000,
                },
            },
            tombstones: 3,
            ..Overview::default()
        }
        .with_definition(&definition),
        partitions,
        commits,
        activity,
        backlog: vec![("hot".into(), 4), ("cold".into(), 6)],
        plugins: vec![
            PluginRow {
                role: "format-row".into(),
                name: "flatten-json".into(),
                calls: 120,
                rows: 150_000,
                errors: 0,
                traps: 0,
                instances_created: 2,
                busy_ms: 250.0,
            },
            PluginRow {
                role: "partition-strategy".into(),
                name: "partition-by-day".into(),
                calls: 120,
                rows: 150_000,
                errors: 2,
                traps: 1,
                instances_created: 3,
                busy_ms: 60.0,
            },
        ],
    }
}

fn app() -> App {
    let mut app = App::new("host http://127.0.0.1:8080 · table events".into());
    let mut first = fixture();
    first.overview.summary.rows = 100_000;
    app.on_dashboard(Ok(first), NOW - 10_000);
    app.on_dashboard(Ok(fixture()), NOW);
    app
}

fn key(app: &mut App, code: KeyCode) -> Action {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, app)).unwrap();
    terminal.backend().to_string()
}

#[test]
fn overview() {
    let app = app();
    assert_eq!(app.ingest_rates.back(), Some(&5_000), "50 000 rows in 10 s");
    insta::assert_snapshot!(render(&app, 100, 30));
}

#[test]
fn partitions_sorted_and_filtered() {
    let mut app = app();
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('s')); // by files
    key(&mut app, KeyCode::Char('j'));
    insta::assert_snapshot!("partitions_by_files", render(&app, 100, 14));
    key(&mut app, KeyCode::Char('/'));
    for c in "d=0".chars().chain("4".chars()) {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.partitions().len(), 1);
    insta::assert_snapshot!("partitions_filtered", render(&app, 100, 10));
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        Action::LoadFiles("y=2026/m=11/d=04".into())
    );
    app.on_files(
        "y=2026/m=11/d=04".into(),
        Ok(vec![FileRow {
            path: "data/y=2026/m=11/d=04/0193-a.parquet".into(),
            bytes: 600_000,
            rows: 20_000,
            created_ms: NOW - 7_200_000,
            ..FileRow::default()
        }]),
    );
    insta::assert_snapshot!("partition_files", render(&app, 100, 12));
}

#[test]
fn merges_with_confirmation() {
    let mut app = app();
    key(&mut app, KeyCode::Char('3'));
    insta::assert_snapshot!("merges", render(&app, 120, 12));
    key(&mut app, KeyCode::Char('m'));
    insta::assert_snapshot!("merge_confirmation", render(&app, 120, 12));
}

#[test]
fn queries() {
    let mut app = app();
    key(&mut app, KeyCode::Char('4'));
    key(&mut app, KeyCode::Char('i'));
    for c in "SELECT d, count(*) AS n FROM events GROUP BY d".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    let action = key(&mut app, KeyCode::Enter);
    assert!(matches!(action, Action::RunQuery(_)));
    app.on_query(Ok(QueryOutcome {
        sql: "SELECT d, count(*) AS n FROM events GROUP BY d".into(),
        columns: vec!["d".into(), "n".into()],
        rows: vec![
            vec!["01".into(), "10000".into()],
            vec!["02".into(), "20000".into()],
        ],
        elapsed_ms: 12.5,
        version: 4,
        files_scanned: 15,
        files_pruned: 0,
    }));
    insta::assert_snapshot!(render(&app, 100, 20));
    key(&mut app, KeyCode::Char('l'));
    key(&mut app, KeyCode::Char('l'));
    assert_eq!(app.query.first_column, 1, "stops at the last column");
    insta::assert_snapshot!("queries_scrolled_right", render(&app, 100, 20));
}

/// The cells come from a real Arrow result as DuckDB returns it
/// (timestamps labelled `Etc/UTC`, nulls, lists), through the same
/// rendering as the CLI and the API.
#[test]
fn query_results_of_every_type() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, ListArray, RecordBatch, TimestampMicrosecondArray};
    use arrow::datatypes::Int64Type;

    let ts: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from(vec![Some(1_792_065_600_000_000), None])
            .with_timezone("Etc/UTC"),
    );
    let n: ArrayRef = Arc::new(Int64Array::from(vec![Some(42), None]));
    let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        None,
    ]));
    let batch = RecordBatch::try_from_iter([("ts", ts), ("n", n), ("list", list)]).unwrap();
    let mut app = app();
    key(&mut app, KeyCode::Char('4'));
    app.on_query(Ok(QueryOutcome {
        sql: "SELECT ts, n, list FROM events".into(),
        columns: vec!["ts".into(), "n".into(), "list".into()],
        rows: icedb::output::text_cells(&[batch], "NULL").unwrap(),
        elapsed_ms: 3.0,
        version: 2,
        files_scanned: 1,
        files_pruned: 0,
    }));
    let screen = render(&app, 100, 22);
    assert!(screen.contains("2026-10-15T12:00:00Z"), "{screen}");
    insta::assert_snapshot!("query_types", screen);
}

#[test]
fn commits_and_plugins() {
    let mut app = app();
    key(&mut app, KeyCode::Char('5'));
    insta::assert_snapshot!("commits", render(&app, 100, 10));
    key(&mut app, KeyCode::Char('6'));
    insta::assert_snapshot!("plugins", render(&app, 100, 8));
}

#[test]
fn help_tiny_terminal_and_errors() {
    let mut app = app();
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("help", render(&app, 100, 20));
    key(&mut app, KeyCode::Char('x'));
    assert!(!app.show_help);
    insta::assert_snapshot!("tiny", render(&app, 30, 5));
    app.on_dashboard(
        Err("reaching http://127.0.0.1:8080: connection refused".into()),
        NOW,
    );
    insta::assert_snapshot!("refresh_error", render(&app, 100, 8));
}

//! Planning from the SQL: the `WHERE` of a query prunes files, and never
//! wrongly — a property test compares every random predicate's answer with
//! the same query written so the planner cannot prune (the table inside a
//! subquery); `count(*)`, `min` and `max` answered from the log equal
//! DuckDB's answers over the files.

use std::sync::atomic::{AtomicUsize, Ordering};

use icedb::{QueryOptions, QueryResult, Table};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// 15 inserts of 12 rows, one day each (late September to early October,
/// so `m` and `d` have zero-padded values), with narrow ranges per insert;
/// later inserts add a column `extra`.
async fn table(dir: &std::path::Path) -> Table {
    let root = dir.join("table").display().to_string();
    let table = icedb_e2e::open_table(&root, dir.join("replica")).await;
    let day_ms = 86_400_000_i64;
    let start = 1_790_380_800_000_i64; // 2026-09-26T00:00:00Z
    for k in 0..15_i64 {
        let mut rows = String::new();
        for r in 0..12_i64 {
            let event = ["a", "b", "c", "d", "e", "f"][((k + r % 2) % 6) as usize];
            let mut row = serde_json::json!({
                "ts": start + (k % 10) * day_ms + r * 7_200_000,
                "event": event,
                "user_id": k * 20 + r,
                "amount": if k % 4 == 0 { serde_json::Value::Null } else { serde_json::json!(k as f64 * 1.5 + r as f64 * 0.25) },
                "ok": if k % 3 == 0 { true } else { r % 2 == 0 },
                "note": if k % 2 == 0 { serde_json::Value::Null } else { serde_json::json!(format!("n{k}")) },
            });
            if k >= 10 {
                row["extra"] = serde_json::json!(k * 100 + r);
            }
            rows.push_str(&row.to_string());
            rows.push('\n');
        }
        table.insert_ndjson(rows.as_bytes()).await.unwrap();
    }
    table
}

fn int() -> impl Strategy<Value = String> {
    (-5..320_i64).prop_flat_map(|n| {
        prop_oneof![
            Just(n.to_string()),
            Just(format!("{n}.5")),
            Just(format!("'{n}'")),
            Just(format!("{n}e0")),
            Just(format!("{n}::BIGINT")),
        ]
    })
}

fn timestamp() -> impl Strategy<Value = String> {
    (24..31_u32, 0..24_u32).prop_flat_map(|(day, hour)| {
        let (m, d) = if day > 30 { (10, day - 30) } else { (9, day) };
        let text = format!("2026-{m:02}-{d:02} {hour:02}:00:00");
        prop_oneof![
            Just(format!("'{text}'")),
            Just(format!("TIMESTAMP '{text}'")),
            Just(format!("DATE '2026-{m:02}-{d:02}'")),
            Just(format!("'{text}+02'::TIMESTAMPTZ")),
        ]
    })
}

fn op() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("="),
        Just("<"),
        Just("<="),
        Just(">"),
        Just(">="),
        Just("<>")
    ]
}

/// A column reference, sometimes qualified or in another case.
fn column(name: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(name.to_owned()),
        Just(name.to_uppercase()),
        Just(format!("t.{name}")),
    ]
}

fn atom() -> impl Strategy<Value = String> {
    let event = prop_oneof![
        Just("a"),
        Just("b"),
        Just("c"),
        Just("d"),
        Just("f"),
        Just("z")
    ];
    prop_oneof![
        (column("user_id"), op(), int()).prop_map(|(c, o, v)| format!("{c} {o} {v}")),
        (column("user_id"), 0..300_i64, 0..60_i64)
            .prop_map(|(c, a, w)| format!("{c} BETWEEN {a} AND {}", a + w)),
        (
            column("user_id"),
            proptest::collection::vec(0..300_i64, 1..4)
        )
            .prop_map(|(c, v)| {
                let list: Vec<String> = v.iter().map(i64::to_string).collect();
                format!("{c} IN ({})", list.join(", "))
            }),
        (column("ts"), op(), timestamp()).prop_map(|(c, o, v)| format!("{c} {o} {v}")),
        (column("event"), op(), event.clone()).prop_map(|(c, o, v)| format!("{c} {o} '{v}'")),
        (column("event"), event.clone(), event)
            .prop_map(|(c, a, b)| format!("{c} IN ('{a}', '{b}')")),
        (column("amount"), op(), 0..100_i64)
            .prop_map(|(c, o, v)| format!("{c} {o} {}", v as f64 / 4.0)),
        (column("ok"), any::<bool>()).prop_map(|(c, v)| format!("{c} = {v}")),
        column("note").prop_map(|c| format!("{c} IS NULL")),
        column("note").prop_map(|c| format!("{c} IS NOT NULL")),
        (column("note"), 0..15).prop_map(|(c, k)| format!("{c} = 'n{k}'")),
        (column("extra"), op(), 900..1_500_i64).prop_map(|(c, o, v)| format!("{c} {o} {v}")),
        column("extra").prop_map(|c| format!("{c} IS NULL")),
        (op(), 2025..2028_i64).prop_map(|(o, v)| format!("y {o} {v}")),
        (op(), 8..11_u32).prop_map(|(o, v)| format!("m {o} '{v:02}'")),
        (op(), 1..31_u32).prop_map(|(o, v)| format!("d {o} '{v:02}'")),
        Just("user_id = NULL".to_owned()),
        Just("user_id + 1 > 50".to_owned()),
    ]
}

fn predicate() -> impl Strategy<Value = String> {
    atom().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} AND {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} OR {b})")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

/// The answer as text, its schema first (timestamps as microseconds: the
/// time zone DuckDB names needs chrono-tz to print).
fn render(result: &QueryResult) -> String {
    use arrow::datatypes::{DataType, Field, Schema};
    let batches: Vec<arrow::array::RecordBatch> = result
        .batches
        .iter()
        .map(|batch| {
            let (fields, columns): (Vec<Field>, Vec<arrow::array::ArrayRef>) = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(field, column)| match field.data_type() {
                    DataType::Timestamp(..) => (
                        Field::new(field.name(), DataType::Int64, true),
                        arrow::compute::cast(column, &DataType::Int64).unwrap(),
                    ),
                    _ => (field.as_ref().clone(), column.clone()),
                })
                .unzip();
            arrow::array::RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
                .unwrap()
        })
        .collect();
    format!(
        "{:?}\n{}",
        result.schema,
        arrow::util::pretty::pretty_format_batches(&batches).unwrap()
    )
}

async fn run(table: &Table, sql: &str) -> Result<QueryResult, String> {
    table
        .query(sql, &QueryOptions::default())
        .await
        .map_err(|e| e.to_string())
}

#[test]
fn pruning_never_changes_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let table = runtime.block_on(table(dir.path()));
    let files = runtime
        .block_on(run(&table, "SELECT count(*) FROM (SELECT * FROM events)"))
        .unwrap();
    assert_eq!(icedb_e2e::scalar_of(&files), 180);
    assert_eq!(files.files_pruned, 0, "a subquery is never pruned");
    let total_files = files.files_scanned;
    assert!(total_files >= 15, "{total_files} files");
    // The time partitioning's keys are integers, zero-padded paths or not,
    // in every file list (`m=09` and `m=10` both present here).
    for sql in [
        "SELECT DISTINCT typeof(y), typeof(m), typeof(d) FROM events",
        "SELECT DISTINCT typeof(y), typeof(m), typeof(d) FROM events WHERE m = 10",
    ] {
        let types = runtime.block_on(run(&table, sql)).unwrap();
        assert_eq!(types.row_count(), 1, "{sql}");
        assert!(
            render(&types).matches("| BIGINT ").count() == 3,
            "{sql}: {}",
            render(&types)
        );
    }

    // A few predicates whose pruning is known.
    for (predicate, scanned) in [
        ("user_id = 5", 1),
        ("user_id BETWEEN 20 AND 39", 1),
        ("user_id IN (5, 25)", 2),
        ("user_id = 5.5", 0),
        ("user_id = NULL", 0),
        ("extra IS NOT NULL AND extra < 1100", 1),
        ("ts < '2026-09-27'", 2),
        ("ts < DATE '2026-09-27' OR user_id >= 280", 3),
        ("d = '26'", 2),
    ] {
        let sql = format!("SELECT * FROM events t WHERE {predicate} ORDER BY ALL");
        let pruned = runtime.block_on(run(&table, &sql)).unwrap();
        assert_eq!(
            (pruned.files_scanned, pruned.files_pruned),
            (scanned, total_files - scanned),
            "{predicate}"
        );
        let plain =
            format!("SELECT * FROM (SELECT * FROM events) t WHERE {predicate} ORDER BY ALL");
        let plain = runtime.block_on(run(&table, &plain)).unwrap();
        assert_eq!(render(&pruned), render(&plain), "{predicate}");
    }

    let pruned_files = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&predicate(), |predicate| {
            let sql = format!("SELECT * FROM events t WHERE {predicate} ORDER BY ALL");
            let plain =
                format!("SELECT * FROM (SELECT * FROM events) t WHERE {predicate} ORDER BY ALL");
            let (pruned, plain) =
                runtime.block_on(async { (run(&table, &sql).await, run(&table, &plain).await) });
            match (pruned, plain) {
                (Ok(pruned), Ok(plain)) => {
                    prop_assert_eq!(render(&pruned), render(&plain), "{}", predicate);
                    pruned_files.fetch_add(pruned.files_pruned, Ordering::Relaxed);
                }
                (Err(_), Err(_)) => {}
                (pruned, plain) => prop_assert!(
                    false,
                    "{predicate}: pruned {:?}, plain {:?}",
                    pruned.map(|r| r.row_count()),
                    plain.map(|r| r.row_count())
                ),
            }
            Ok(())
        })
        .unwrap();
    assert!(
        pruned_files.load(Ordering::Relaxed) > 0,
        "the random predicates pruned nothing"
    );
}

#[test]
fn count_min_and_max_come_from_the_log_and_equal_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let table = runtime.block_on(table(dir.path()));
    let check = |sql: &str, from_log: bool| {
        let answer = runtime.block_on(run(&table, sql)).unwrap();
        let plain = sql.replacen("FROM events", "FROM (SELECT * FROM events)", 1);
        let plain = runtime.block_on(run(&table, &plain)).unwrap();
        assert_eq!(render(&answer), render(&plain), "{sql}");
        assert_eq!(answer.schema, plain.schema, "{sql}");
        assert_eq!(
            answer.files_scanned == 0,
            from_log,
            "{sql}: {} files read",
            answer.files_scanned
        );
        answer
    };
    let count = check("SELECT count(*) FROM events", true);
    assert_eq!(icedb_e2e::scalar_of(&count), 180);
    check(
        "SELECT count(*) AS n, min(ts), max(ts), min(event), max(event), min(user_id) AS lo, \
         max(USER_ID), min(ok), max(extra), min(note) FROM events",
        true,
    );
    check("SELECT max(t.user_id) FROM events AS t", true);
    // A WHERE on partition columns only decides whole files.
    let day = check(
        "SELECT count(*), min(user_id), max(ts) FROM events WHERE d = '26' OR (m = '10' AND d <= '02')",
        true,
    );
    assert_eq!(icedb_e2e::first_row_of(&day)[0], 48.0);
    // count(*) alone is summed from the partitions' totals (no file
    // listed): the same count and the same files pruned.
    let only = check(
        "SELECT count(*) FROM events WHERE d = '26' OR (m = '10' AND d <= '02')",
        true,
    );
    assert_eq!(icedb_e2e::scalar_of(&only), 48);
    assert_eq!(only.files_pruned, day.files_pruned);
    assert!(only.files_pruned > 0);
    check("SELECT count(*) FROM events WHERE y = 2026.5", true);
    // Not from the log: a filter, a float (NaN and -0 order), an expression,
    // a grouping, a DISTINCT.
    check("SELECT count(*) FROM events WHERE user_id > 5", false);
    check(
        "SELECT count(*) FROM events WHERE d = '26' AND user_id > 5",
        false,
    );
    check("SELECT count(*) FROM events WHERE d <> '26'", false);
    check("SELECT min(amount) FROM events", false);
    check("SELECT max(user_id + 1) FROM events", false);
    check(
        "SELECT count(*) FROM events GROUP BY event ORDER BY ALL",
        false,
    );
    check("SELECT count(DISTINCT event) FROM events", false);

    // Time travel: the files of that version.
    let old = runtime
        .block_on(table.query(
            "SELECT count(*), max(user_id) FROM events",
            &QueryOptions {
                version: Some(3),
                ..QueryOptions::default()
            },
        ))
        .unwrap();
    assert_eq!((old.files_scanned, old.files_pruned), (0, 0));
    assert_eq!(icedb_e2e::first_row_of(&old), vec![36.0, 51.0]);

    // A merge leaves the answers (and their source) unchanged.
    runtime
        .block_on(table.merge_until_quiescent(&icedb::MergePolicy::hot()))
        .unwrap();
    let merged = check("SELECT count(*) FROM events", true);
    assert_eq!(icedb_e2e::scalar_of(&merged), 180);
}

//! The Delta log kept beside IceDB's, read by real Delta readers: DuckDB
//! 1.4.4's delta extension (`delta_scan`, PyPI `duckdb-ext-delta`, loaded
//! from the extension directory) and delta-rs (PyPI `deltalake`, through
//! tests/support/delta_read.py). They see what IceDB's own queries see after
//! inserts, a merge, a vacuum and a schema change, on a local table and on
//! S3; every Delta version equals the IceDB version it names; inline rows
//! join at their flush; racing, failing and interrupted exporters leave a
//! gapless log with each IceDB commit once; a long log exports
//! incrementally.
//!
//! Longer than 600 lines on purpose: every file under tests/ links into a
//! test executable of its own (~200 MB with DuckDB and wasmtime), so a
//! suite stays one file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use icedb::{DeltaSettings, MergePolicy, PluginHost, QueryOptions, Table, TableConfig};
use icedb_e2e::faults::{Fault, FaultyStore, Kind};
use icedb_e2e::{
    Backend, HostProcess, data_file, duckdb_delta_reader, first_row_of, gen_events, http,
    icedb_host, insert_draft, succeeded, table_config, vacuum_now,
};
use icedb_meta::TableLocation;
use object_store::ObjectStore;
use object_store::path::Path;

/// What a reader sees of one version.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    rows: i64,
    distinct: i64,
    /// (y, m, d, rows), sorted.
    partitions: Vec<(i64, i64, i64, i64)>,
}

fn config(
    backend: Backend,
    dir: &std::path::Path,
    label: &str,
    replica: &str,
) -> (String, TableConfig) {
    let root = backend.new_table(dir, label);
    let mut config = table_config(&root, dir.join(replica));
    config.delta = Some(DeltaSettings {
        checkpoint_every: 3,
    });
    // Every insert writes files, so each Delta version holds what the
    // IceDB version holds (inline rows join at their flush: tested apart).
    config.inline.max_rows = 0;
    (root, config)
}

async fn open(config: TableConfig) -> Table {
    Table::open(config, &PluginHost::new(Default::default()).unwrap())
        .await
        .unwrap()
}

/// IceDB's own answer at `version` (newest: `None`).
async fn icedb_seen(table: &Table, version: Option<u64>) -> Seen {
    let options = QueryOptions {
        version,
        ..QueryOptions::default()
    };
    let counts = table
        .query("SELECT count(id), count(DISTINCT id) FROM events", &options)
        .await
        .unwrap();
    let counts = first_row_of(&counts);
    let parts = table
        .query(
            "SELECT y::BIGINT, m::BIGINT, d::BIGINT, count(id) FROM events GROUP BY ALL ORDER BY ALL",
            &options,
        )
        .await
        .unwrap();
    let mut partitions = Vec::new();
    for batch in &parts.batches {
        use arrow::array::AsArray;
        let column = |i: usize| {
            arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Int64).unwrap()
        };
        let columns: Vec<_> = (0..4).map(column).collect();
        for row in 0..batch.num_rows() {
            let n = |i: usize| {
                columns[i]
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .value(row)
            };
            partitions.push((n(0), n(1), n(2), n(3)));
        }
    }
    Seen {
        rows: counts[0] as i64,
        distinct: counts[1] as i64,
        partitions,
    }
}

/// The table root as delta-rs and DuckDB name it.
fn reader_uri(root: &str) -> String {
    root.strip_prefix("file://").unwrap_or(root).to_owned()
}

/// delta-rs's view of `versions` (empty: the newest); returns the newest
/// version too, and each version's column names.
fn delta_rs(root: &str, versions: &[u64]) -> (u64, BTreeMap<u64, (Seen, Vec<String>)>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/support/delta_read.py");
    let mut command = std::process::Command::new(python());
    command.arg(script).arg(reader_uri(root));
    for v in versions {
        command.arg(v.to_string());
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "delta-rs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut seen = BTreeMap::new();
    for (version, v) in answer["versions"].as_object().unwrap() {
        let partitions = v["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let n = |i: usize| p[i].as_i64().unwrap();
                (n(0), n(1), n(2), n(3))
            })
            .collect();
        let columns = v["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        seen.insert(
            version.parse().unwrap(),
            (
                Seen {
                    rows: v["rows"].as_i64().unwrap(),
                    distinct: v["distinct"].as_i64().unwrap(),
                    partitions,
                },
                columns,
            ),
        );
    }
    (answer["latest"].as_u64().unwrap(), seen)
}

/// delta-rs's `metaData.createdTime` at `version`.
fn delta_created_time(root: &str, version: u64) -> Option<i64> {
    let output = std::process::Command::new(python())
        .args([
            "-c",
            "import sys,os;from deltalake import DeltaTable;\
             print(DeltaTable(sys.argv[1],version=int(sys.argv[2])).metadata().created_time);\
             sys.stdout.flush();os._exit(0)",
            &reader_uri(root),
            &version.to_string(),
        ])
        .output()
        .unwrap();
    succeeded(&output).trim().parse().ok()
}

/// The test venv's Python (with `deltalake`).
fn python() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("ICEDB_PYTHON_VENV").expect("ICEDB_PYTHON_VENV (scripts/setup.sh)"),
    )
    .join("bin/python")
}

/// DuckDB's delta extension's view of the newest version.
fn duckdb_delta(root: &str) -> Seen {
    let db = duckdb_delta_reader(root);
    let uri = reader_uri(root);
    let (rows, distinct): (i64, i64) = db
        .query_row(
            &format!("SELECT count(id), count(DISTINCT id) FROM delta_scan('{uri}')"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let mut statement = db
        .prepare(&format!(
            "SELECT y, m, d, count(id) FROM delta_scan('{uri}') GROUP BY ALL ORDER BY ALL"
        ))
        .unwrap();
    let partitions = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    Seen {
        rows,
        distinct,
        partitions,
    }
}

/// The `commitInfo.icedbVersion` of every Delta version, in order.
async fn icedb_versions(table: &Table) -> Vec<u64> {
    icedb_versions_from(table, 0).await
}

/// The `commitInfo.icedbVersion` of every Delta version from `first` on.
async fn icedb_versions_from(table: &Table, first: u64) -> Vec<u64> {
    let store = table.meta().object_store();
    let mut versions = Vec::new();
    for k in first.. {
        let path = Path::from(format!("_delta_log/{k:020}.json"));
        let bytes = match store.get(&path).await {
            Ok(result) => result.bytes().await.unwrap(),
            Err(object_store::Error::NotFound { .. }) => break,
            Err(e) => panic!("{e}"),
        };
        let info = String::from_utf8(bytes.to_vec())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find_map(|a| a.get("commitInfo").cloned())
            .expect("every Delta commit has a commitInfo");
        versions.push(info["icedbVersion"].as_u64().unwrap());
    }
    versions
}

/// Both readers see exactly what IceDB sees, and the Delta log is at the
/// table's version.
async fn assert_readers_agree(table: &Table, root: &str, step: &str) -> u64 {
    let icedb = icedb_seen(table, None).await;
    assert!(icedb.rows > 0);
    let (latest, seen) = delta_rs(root, &[]);
    assert_eq!(seen[&latest].0, icedb, "delta-rs after {step}");
    assert_eq!(duckdb_delta(root), icedb, "DuckDB delta_scan after {step}");
    // Vacuum may have cleaned the log up to a checkpoint.
    let store = table.meta().object_store();
    let mut first = 0;
    while let Err(object_store::Error::NotFound { .. }) = store
        .head(&Path::from(format!("_delta_log/{first:020}.json")))
        .await
    {
        first += 1;
        assert!(first <= latest, "no commit left in the Delta log");
    }
    let versions = icedb_versions_from(table, first).await;
    assert_eq!(versions.len() as u64, latest + 1 - first);
    assert_eq!(
        versions.last().copied(),
        Some(table.version().unwrap()),
        "the Delta log is kept in step after {step}"
    );
    latest
}

/// `rows` standard events whose lines also carry a `plan` field.
fn with_new_column(rows: usize, seed: u64) -> String {
    gen_events(rows, seed)
        .lines()
        .map(|line| {
            let object = line.trim_end().strip_suffix('}').expect("a JSON object");
            format!("{object},\"plan\":\"pro\"}}\n")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_readers_see_what_icedb_sees() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let (root, config) = config(backend, dir.path(), "delta", "replica");
        let table = open(config.clone()).await;
        for seed in 1..=3 {
            table
                .insert_ndjson(gen_events(1_000, seed).as_bytes())
                .await
                .unwrap();
        }
        assert_readers_agree(&table, &root, "inserts").await;

        table.merge_once(&MergePolicy::cold()).await.unwrap();
        let latest = assert_readers_agree(&table, &root, "a merge").await;

        // Time travel: Delta version k is IceDB at the version it names.
        let versions = icedb_versions(&table).await;
        let all: Vec<u64> = (0..=latest).collect();
        let (_, seen) = delta_rs(&root, &all);
        for (k, icedb_version) in versions.iter().enumerate() {
            let icedb = icedb_seen(&table, Some(*icedb_version)).await;
            assert_eq!(
                seen[&(k as u64)].0,
                icedb,
                "{backend:?}: Delta version {k} = IceDB version {icedb_version}"
            );
        }

        table.vacuum(&vacuum_now()).await.unwrap();
        assert_readers_agree(&table, &root, "a vacuum").await;

        // A new column: the Delta schema gains it.
        table
            .insert_ndjson(with_new_column(200, 9).as_bytes())
            .await
            .unwrap();
        let latest = assert_readers_agree(&table, &root, "a schema change").await;
        let (_, seen) = delta_rs(&root, &[latest]);
        assert!(
            seen[&latest].1.contains(&"plan".to_owned()),
            "{:?}",
            seen[&latest].1
        );

        // Inline rows join the Delta table at their flush.
        let mut inline_config = config.clone();
        inline_config.inline.max_rows = 1_000;
        inline_config.meta.replica_dir = Some(dir.path().join("replica-inline"));
        let inlining = open(inline_config).await;
        let before = icedb_seen(&inlining, None).await;
        let receipt = inlining
            .insert_ndjson(gen_events(60, 20).as_bytes())
            .await
            .unwrap();
        assert!(receipt.files.iter().all(|p| p.starts_with("inline/")));
        let (latest, seen) = delta_rs(&root, &[]);
        assert_eq!(
            seen[&latest].0, before,
            "inline rows are not in the Delta table yet"
        );
        inlining.flush_inline().await.unwrap();
        assert_readers_agree(&inlining, &root, "a flush").await;
    }
}

/// Opens a second handle on `root` whose requests go through a faulty store.
async fn faulty(root: &str, replica: std::path::PathBuf, seed: u64) -> (Table, Arc<FaultyStore>) {
    let mut config = table_config(root, replica);
    config.delta = Some(DeltaSettings {
        checkpoint_every: 4,
    });
    let location = TableLocation::parse(root, &config.s3).unwrap();
    let faults = FaultyStore::new(location.open_store().unwrap(), seed);
    let table = Table::open_on(
        config,
        faults.clone(),
        &PluginHost::new(Default::default()).unwrap(),
    )
    .await
    .unwrap();
    (table, faults)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_failing_and_interrupted_exporters_leave_a_gapless_log() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let root = backend.new_table(dir.path(), "race");
        // The writer keeps no Delta log: exporters below catch up.
        let mut writer_config = table_config(&root, dir.path().join("writer"));
        writer_config.inline.max_rows = 0;
        let writer = open(writer_config).await;
        for seed in 1..=12 {
            writer
                .insert_ndjson(gen_events(40, seed).as_bytes())
                .await
                .unwrap();
        }
        let head = writer.version().unwrap();

        // An exporter stops mid-way (its fourth Delta PUT fails): the log
        // holds whole versions, and the next run goes on from there.
        let (first, faults) = faulty(&root, dir.path().join("first"), 1).await;
        for _ in 0..3 {
            faults.script(Kind::DeltaPut, Fault::Delay(Duration::ZERO));
        }
        faults.script(Kind::DeltaPut, Fault::FailBefore);
        assert!(first.export_delta().await.is_err());
        assert_eq!(icedb_versions(&writer).await, vec![1, 2, 3]);

        // A Delta commit applied whose answer is lost: the exporter fails,
        // and its next run finds the version written and does not repeat it.
        faults.script(Kind::DeltaPut, Fault::ApplyThenFail);
        assert!(first.export_delta().await.is_err());
        assert_eq!(icedb_versions(&writer).await, vec![1, 2, 3, 4]);

        // Two exporters at once finish the job between them.
        let (second, _) = faulty(&root, dir.path().join("second"), 2).await;
        let (a, b) = tokio::join!(first.export_delta(), second.export_delta());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.icedb_version, Some(head));
        assert_eq!(b.icedb_version, Some(head));
        assert_eq!(a.exported + b.exported, head - 4, "{a:?} {b:?}");
        assert_eq!(
            icedb_versions(&writer).await,
            (1..=head).collect::<Vec<_>>(),
            "{backend:?}: gapless, each IceDB commit once"
        );
        // Idempotent: nothing more to do.
        let again = second.export_delta().await.unwrap();
        assert_eq!((again.exported, again.icedb_version), (0, Some(head)));
        assert_readers_agree(&writer, &root, "racing exporters").await;
    }
}

/// A log of 10 000 commits exports once; a second exporter, started cold,
/// then touches only the commits made since (its requests are counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_log_exports_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let root = Backend::Local.new_table(dir.path(), "long");
    let mut config = table_config(&root, dir.path().join("writer"));
    config.meta.fsync = false;
    config.delta = Some(DeltaSettings {
        checkpoint_every: 1_000,
    });
    let writer = open(config.clone()).await;
    let commits = 10_000u64;
    for i in 0..commits {
        let file = data_file("y=2026/m=10/d=01", &format!("f{i}"), 1);
        writer
            .meta()
            .commit(insert_draft(vec![file]))
            .await
            .unwrap();
    }
    let started = Instant::now();
    let first = writer.export_delta().await.unwrap();
    let full = started.elapsed();
    assert_eq!(first.exported, commits);
    assert_eq!(first.checkpoints, 9);

    for i in 0..10 {
        let file = data_file("y=2026/m=10/d=02", &format!("g{i}"), 1);
        writer
            .meta()
            .commit(insert_draft(vec![file]))
            .await
            .unwrap();
    }
    let location = TableLocation::parse(&root, &config.s3).unwrap();
    let faults = FaultyStore::new(location.open_store().unwrap(), 1);
    config.meta.replica_dir = Some(dir.path().join("cold"));
    let cold = Table::open_on(
        config,
        faults.clone(),
        &PluginHost::new(Default::default()).unwrap(),
    )
    .await
    .unwrap();
    let opened = faults.requests();
    let started = Instant::now();
    let second = cold.export_delta().await.unwrap();
    let incremental = started.elapsed();
    assert_eq!(second.exported, 10);
    assert_eq!(second.icedb_version, Some(commits + 10));
    let requests: u64 = faults
        .requests()
        .iter()
        .map(|(kind, n)| n - opened.get(kind).copied().unwrap_or(0))
        .sum();
    // Finding where the log stands (the pointer, one listing, the newest
    // commits back to a checkpointed one), then per new commit one GET of
    // IceDB's entry and one Delta PUT (+ a sync): tens, not thousands.
    assert!(requests < 60, "{requests} requests for 10 new commits");
    println!(
        "10 000 commits exported in {full:.2?}; a cold exporter then exported 10 new ones in {incremental:.2?} with {requests} requests"
    );
}

/// The real binaries: `icedb-host export delta` on a table the CLI wrote,
/// then `icedb-host run` with `[tables.delta] enabled` exporting each
/// HTTP insert as it commits.
#[test]
fn the_cli_exports_and_a_running_host_keeps_the_log_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t").display().to_string();
    std::fs::write(dir.path().join("a.ndjson"), gen_events(500, 1)).unwrap();
    succeeded(&icedb_host(
        dir.path(),
        &[
            "insert",
            "--table",
            &root,
            "--inline-max-rows",
            "0",
            "a.ndjson",
        ],
    ));
    let out = succeeded(&icedb_host(
        dir.path(),
        &["export", "delta", "--table", &root],
    ));
    assert!(out.contains("Delta version 0 = IceDB version 1"), "{out}");
    // Idempotent.
    let out = succeeded(&icedb_host(
        dir.path(),
        &["export", "delta", "--table", &root],
    ));
    assert!(out.contains("exported 0 commits"), "{out}");
    assert_eq!(delta_rs(&root, &[]).1[&0].0.rows, 500);

    let config = dir.path().join("icedb.toml");
    std::fs::write(
        &config,
        format!(
            "[[tables]]\nname = \"events\"\nroot = \"{root}\"\n[tables.inline]\nmax_rows = 0\n[tables.delta]\nenabled = true\n"
        ),
    )
    .unwrap();
    let host = HostProcess::start(
        dir.path(),
        &[
            "--config",
            &config.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[(
            "XDG_CACHE_HOME",
            dir.path().join("cache").display().to_string(),
        )],
    );
    let mut response = http()
        .post(&format!("{}/v1/tables/events/rows", host.url))
        .header("content-type", "application/x-ndjson")
        .send(gen_events(100, 2).as_bytes())
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "{}",
        response.body_mut().read_to_string().unwrap()
    );
    // Acknowledged after the commit and its export.
    let (latest, seen) = delta_rs(&root, &[]);
    assert_eq!((latest, seen[&latest].0.rows), (1, 600));
    host.signal("TERM");
    assert!(host.wait().success());
}

/// Vacuum on a table keeping a Delta log cleans the log up to its newest
/// checkpoint older than the grace: readers still read the table and time
/// travel from that checkpoint on, and exporting goes on (warm and cold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_cleans_the_delta_log_up_to_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (root, config) = config(Backend::Local, dir.path(), "clean", "replica");
    let table = open(config.clone()).await;
    for seed in 1..=8 {
        table
            .insert_ndjson(gen_events(50, seed).as_bytes())
            .await
            .unwrap();
    }
    let created = delta_created_time(&root, 7).expect("a createdTime");
    assert!(created > 0, "{created}");
    // Delta versions 0..=7, checkpoints at 3 and 6.
    let report = table.vacuum(&vacuum_now()).await.unwrap();
    assert_eq!(
        report.delta_log_entries_deleted,
        6 + 1,
        "commits 0..=5 and checkpoint 3"
    );
    let log = std::fs::read_dir(dir.path().join("clean/_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .count();
    assert_eq!(log, 2, "commits 6 and 7 remain");
    let (latest, seen) = delta_rs(&root, &[6, 7]);
    assert_eq!(latest, 7);
    assert_eq!(seen[&7].0, icedb_seen(&table, None).await);
    assert_eq!(duckdb_delta(&root), icedb_seen(&table, None).await);
    assert_eq!(seen[&6].0.rows, 7 * 50);
    // Read from checkpoint 6 now: its metaData keeps the time it was made.
    assert_eq!(delta_created_time(&root, 7), Some(created));

    // The same process exports on; so does one that starts cold.
    table
        .insert_ndjson(gen_events(50, 9).as_bytes())
        .await
        .unwrap();
    let mut cold_config = config.clone();
    cold_config.meta.replica_dir = Some(dir.path().join("cold"));
    let cold = open(cold_config).await;
    table.meta().sync().await.unwrap();
    let writer = open({
        let mut c = config.clone();
        c.delta = None;
        c.meta.replica_dir = Some(dir.path().join("plain"));
        c
    })
    .await;
    writer
        .insert_ndjson(gen_events(50, 10).as_bytes())
        .await
        .unwrap();
    let report = cold.export_delta().await.unwrap();
    assert_eq!(report.exported, 1);
    assert_readers_agree(&writer, &root, "cleanup and more commits").await;
}

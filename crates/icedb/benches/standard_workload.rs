//! The standard workload, end to end, in one run (figures side by side):
//! 1 000 000 generated events in inserts of 10 000 rows into a local-directory
//! table, partitioned y=/m=/d= on `ts` by the partition-by-day plugin, sorted
//! by [event, ts], formatted by the flatten-json plugin (max-depth 1, so
//! `properties` is stored as JSON text). Measures ingest rows/s against the
//! native limit (the same rows JSON → Arrow → sorted zstd Parquet in memory,
//! no plugin, no commit) and against the same ingest without fsync (local
//! writes are fsynced, file and directory, before a commit returns), merge
//! to quiescence, three queries before and after merging, and vacuum.
//!
//! Run: `scripts/bench.sh standard_workload` (builds the plugins first).
//! `ICEDB_BENCH_EVENTS` overrides the event count.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use icedb::builtin::JsonTextFormat;
use icedb::events::EventGenerator;
use icedb::{
    Compression, FormatSpec, MergePolicy, MetaOptions, PartitionFilter, PartitionSpec, PluginHost,
    QueryOptions, Table, TableConfig, VacuumOptions, encode_parquet,
};

const BATCH: usize = 10_000;

fn plugin(name: &str) -> PathBuf {
    let dir = std::env::var_os("ICEDB_PLUGIN_DIR")
        .expect("ICEDB_PLUGIN_DIR is not set: run scripts/bench.sh");
    PathBuf::from(dir).join(format!("{name}.wasm"))
}

fn rate(rows: usize, took: Duration) -> f64 {
    rows as f64 / took.as_secs_f64()
}

async fn timed_query(table: &Table, sql: &str) -> (i64, Duration, usize) {
    let started = Instant::now();
    let result = table
        .query(sql, &QueryOptions::default())
        .await
        .expect("query");
    let value = result
        .batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map_or(0, |b| b.column(0).as_primitive::<Int64Type>().value(0));
    (value, started.elapsed(), result.files_scanned)
}

async fn queries(table: &Table, label: &str) {
    for (name, sql) in [
        ("count(*)", "SELECT count(*) FROM events".to_owned()),
        (
            "count by event, one day",
            "SELECT count(*) FROM (SELECT event, count(*) FROM events WHERE y = '2026' AND m = '10' AND d = '15' GROUP BY event)".to_owned(),
        ),
        ("count(distinct user_id)", "SELECT count(DISTINCT user_id) FROM events".to_owned()),
    ] {
        // Warm once (file metadata caches), then time.
        timed_query(table, &sql).await;
        let (value, took, files) = timed_query(table, &sql).await;
        println!("query {label:<14} {name:<26} {took:>10.2?}   ({files} files, result {value})");
    }
}

fn main() {
    let events: usize = std::env::var("ICEDB_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let batches: Vec<Vec<String>> = {
        let mut generator = EventGenerator::new(2026);
        (0..events.div_ceil(BATCH))
            .map(|_| generator.batch(BATCH))
            .collect()
    };
    let bytes: usize = batches.iter().flatten().map(String::len).sum();
    println!(
        "standard workload: {events} events, {} inserts of {BATCH}, {:.0} B/event",
        batches.len(),
        bytes as f64 / events as f64
    );
    let sort_order = vec!["event".to_owned(), "ts".to_owned()];

    // The native limit: JSON → Arrow → sorted zstd Parquet, one thread.
    let native = JsonTextFormat::default();
    let started = Instant::now();
    let mut parquet_bytes = 0;
    for batch in &batches {
        let formatted = native.format(batch).expect("format");
        parquet_bytes += encode_parquet(
            &formatted,
            &sort_order,
            Compression::Zstd { level: 3 },
            122_880,
        )
        .expect("encode")
        .len();
    }
    let native_took = started.elapsed();
    println!(
        "native limit   {:>10.0} rows/s   ({native_took:.2?}, {} MiB of Parquet)",
        rate(events, native_took),
        parquet_bytes >> 20
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let scratch = tempfile::tempdir().unwrap();
        let open = |name: &str, fsync: bool| {
            let mut config = TableConfig::new("events", scratch.path().join(name).display().to_string());
            config.sort_order = sort_order.clone();
            config.format = FormatSpec::Plugin {
                path: plugin("flatten-json"),
                settings: vec![("max-depth".into(), "1".into()), ("timestamp-fields".into(), "ts".into())],
            };
            config.partitioning = PartitionSpec::Plugin { path: plugin("partition-by-day"), settings: vec![] };
            config.meta = MetaOptions {
                replica_dir: Some(scratch.path().join(format!("{name}-replica"))),
                fsync,
                ..MetaOptions::default()
            };
            async move { Table::open(config, &PluginHost::new(Default::default()).unwrap()).await.unwrap() }
        };

        // The same ingest without fsync, batch by batch alternating with the
        // fsynced table, so both see the same machine conditions.
        let unsynced = open("unsynced", false).await;
        let table = open("events", true).await;
        let (mut ingest_took, mut unsynced_took) = (Duration::ZERO, Duration::ZERO);
        for batch in batches {
            let started = Instant::now();
            unsynced.insert_rows(batch.clone()).await.expect("insert");
            unsynced_took += started.elapsed();
            let started = Instant::now();
            table.insert_rows(batch).await.expect("insert");
            ingest_took += started.elapsed();
        }
        drop(unsynced);
        let files_before = table.snapshot().unwrap().file_count().unwrap();
        println!(
            "ingest         {:>10.0} rows/s   ({ingest_took:.2?}; {:.0}% of the native limit; {files_before} files; fsynced)",
            rate(events, ingest_took),
            100.0 * rate(events, ingest_took) / rate(events, native_took)
        );
        println!(
            "ingest, no fsync {:>8.0} rows/s   ({unsynced_took:.2?}; fsync costs {:.1}%)",
            rate(events, unsynced_took),
            100.0 * (1.0 - unsynced_took.as_secs_f64() / ingest_took.as_secs_f64())
        );

        queries(&table, "before merge").await;

        let report = table.merge_until_quiescent(&MergePolicy::cold()).await.expect("merge");
        let snapshot = table.snapshot().unwrap();
        let files_after = snapshot.file_count().unwrap();
        let partitions = snapshot.partitions(&PartitionFilter::All).unwrap().len();
        drop(snapshot);
        println!(
            "merge          {:>10.2?}   to quiescence: {files_before} → {files_after} files ({partitions} partitions), {} jobs, {} MiB → {} MiB, {} conflicts",
            report.elapsed,
            report.jobs,
            report.bytes_in >> 20,
            report.bytes_out >> 20,
            report.conflicts
        );

        queries(&table, "after merge").await;

        let vacuum = table.vacuum(&VacuumOptions { grace: Duration::ZERO, force: true, expire: None, orphans: true }).await.expect("vacuum");
        println!(
            "vacuum         {:>10.2?}   ({} tombstoned files purged, {} MiB freed)",
            vacuum.elapsed,
            vacuum.purged,
            vacuum.bytes_freed >> 20
        );
    });
}

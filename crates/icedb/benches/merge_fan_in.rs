//! One merge job with a wide fan-in: 100 input files of 2 000 standard
//! events each, all in one partition, merged into one sorted file. Measures
//! the k-way merge's row selection (a heap since issue 12; a scan of every
//! input per row before), five times on fresh copies; prints the median.
//!
//! Run: `scripts/bench.sh merge_fan_in`. `ICEDB_BENCH_INPUTS` and
//! `ICEDB_BENCH_ROWS` override the fan-in and the rows per input;
//! `ICEDB_BENCH_PARTITIONS=30` spreads every insert over 30 partitions, so
//! one round merges 30 × inputs files into 30 (jobs run at once, one per
//! core), e.g. `ICEDB_BENCH_PARTITIONS=30 ICEDB_BENCH_ROWS=200` for
//! 3 000 → 30 files.

use std::time::{Duration, Instant};

use icedb::events::EventGenerator;
use icedb::{MergePolicy, MetaOptions, PartitionSpec, PluginHost, Table, TableConfig};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let inputs = env("ICEDB_BENCH_INPUTS", 100);
    let rows = env("ICEDB_BENCH_ROWS", 2_000);
    let partitions = env("ICEDB_BENCH_PARTITIONS", 1);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut times: Vec<Duration> = Vec::new();
    for run in 0..5 {
        let took = runtime.block_on(async {
            let scratch = tempfile::tempdir().unwrap();
            let mut config =
                TableConfig::new("events", scratch.path().join("t").display().to_string());
            config.sort_order = vec!["event".into(), "ts".into()];
            // One partition: every input lands in the same job.
            config.partitioning = PartitionSpec::Field {
                field: "_partition".into(),
            };
            config.meta = MetaOptions {
                replica_dir: Some(scratch.path().join("replica")),
                ..MetaOptions::default()
            };
            let table = Table::open(config, &PluginHost::new(Default::default()).unwrap())
                .await
                .unwrap();
            let mut generator = EventGenerator::new(run);
            for _ in 0..inputs {
                let batch: Vec<String> = generator
                    .batch(rows * partitions)
                    .into_iter()
                    .enumerate()
                    .map(|(i, row)| {
                        format!("{{\"_partition\":\"p={}\",{}", i % partitions, &row[1..])
                    })
                    .collect();
                table.insert_rows(batch).await.unwrap();
            }
            let policy = MergePolicy {
                max_files_per_merge: inputs,
                max_input_bytes: u64::MAX,
                target_output_bytes: u64::MAX,
                concurrency: if partitions > 1 { cores } else { 1 },
                max_partitions: partitions,
                ..MergePolicy::cold()
            };
            let started = Instant::now();
            let report = table.merge_once(&policy).await.unwrap();
            let took = started.elapsed();
            assert_eq!(
                (report.files_in, report.files_out),
                (inputs * partitions, partitions)
            );
            took
        });
        println!(
            "run {run}: {} files of {rows} rows merged into {partitions} in {took:.2?}",
            inputs * partitions
        );
        times.push(took);
    }
    times.sort();
    println!(
        "merge {} → {partitions} files (fan-in {inputs}): median {:.2?} ({:.0} rows/s)",
        inputs * partitions,
        times[2],
        (inputs * rows * partitions) as f64 / times[2].as_secs_f64()
    );
}

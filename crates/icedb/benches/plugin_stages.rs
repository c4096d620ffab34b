//! Rows/s through the plugin stages on the standard event shape, at batch
//! sizes 1, 100 and 10 000, on one thread (the calling one):
//! * format: raw JSON rows → flat typed batch (flatten-json, Rust; enrich-py,
//!   Python; and the native built-in formatter for reference);
//! * partition: `fields()` projection of a formatted batch → one path per row
//!   (partition-by-day, Rust; partition-by-hour-js, JavaScript).
//!
//! Run with `just bench plugin_stages` (or `scripts/bench.sh plugin_stages`),
//! which builds the components first; they are read from $ICEDB_PLUGIN_DIR.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use icedb::builtin::JsonTextFormat;
use icedb::events::EventGenerator;
use icedb::{Batch, Column};
use icedb_plugin::{HostOptions, PluginHost};

const BATCH_SIZES: [usize; 3] = [1, 100, 10_000];

fn plugin(name: &str) -> PathBuf {
    let dir = std::env::var_os("ICEDB_PLUGIN_DIR")
        .expect("ICEDB_PLUGIN_DIR is not set: run the benchmark through scripts/bench.sh");
    let path = PathBuf::from(dir).join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins.sh",
        path.display()
    );
    path
}

fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn head(batch: &Batch, rows: usize) -> Batch {
    Batch {
        row_count: rows as u32,
        columns: batch
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                values: c.values[..rows].to_vec(),
            })
            .collect(),
    }
}

fn stages(c: &mut Criterion) {
    let host = PluginHost::new(HostOptions::default()).expect("plugin host");
    let rows = EventGenerator::new(42).batch(10_000);

    let mut format = c.benchmark_group("format");
    let flatten = host
        .load_format(
            &plugin("flatten-json"),
            &settings(&[("timestamp-fields", "ts")]),
        )
        .expect("flatten-json");
    let enrich = host
        .load_format(&plugin("enrich-py"), &[])
        .expect("enrich-py");
    let builtin = JsonTextFormat::default();
    for size in BATCH_SIZES {
        let input = &rows[..size];
        format.throughput(Throughput::Elements(size as u64));
        format.bench_with_input(
            BenchmarkId::new("flatten-json (rust wasm)", size),
            input,
            |b, input| b.iter(|| flatten.format_blocking(input).expect("format")),
        );
        format.bench_with_input(
            BenchmarkId::new("built-in (native)", size),
            input,
            |b, input| b.iter(|| builtin.format(input).expect("format")),
        );
        if size <= 100 {
            // CPython inside WASM is two orders of magnitude slower; measured
            // at the small sizes only to keep the run short.
            format.bench_with_input(
                BenchmarkId::new("enrich-py (python wasm)", size),
                input,
                |b, input| b.iter(|| enrich.format_blocking(input).expect("format")),
            );
        }
    }
    format.finish();

    let formatted = flatten.format_blocking(&rows).expect("format");
    let mut partition = c.benchmark_group("partition");
    let by_day = host
        .load_partition(&plugin("partition-by-day"), &[])
        .expect("partition-by-day");
    let by_hour = host
        .load_partition(&plugin("partition-by-hour-js"), &[])
        .expect("partition-by-hour-js");
    for size in BATCH_SIZES {
        let batch = head(&formatted, size);
        partition.throughput(Throughput::Elements(size as u64));
        partition.bench_with_input(
            BenchmarkId::new("partition-by-day (rust wasm)", size),
            &batch,
            |b, batch| {
                b.iter(|| {
                    by_day
                        .partition_blocking(&by_day.project(batch))
                        .expect("partition")
                })
            },
        );
        partition.bench_with_input(
            BenchmarkId::new("partition-by-hour-js (js wasm)", size),
            &batch,
            |b, batch| {
                b.iter(|| {
                    by_hour
                        .partition_blocking(&by_hour.project(batch))
                        .expect("partition")
                })
            },
        );
    }
    partition.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = stages
}
criterion_main!(benches);

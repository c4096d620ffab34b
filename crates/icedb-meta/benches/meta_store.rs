//! Meta-store benchmarks (run: `scripts/bench.sh meta_store`):
//! * sync after 10 new commits, history of 100 vs 10 000 commits (local disk,
//!   and S3 when ICEDB_BENCH_S3_ENDPOINT points at a server): the two should
//!   take about the same time;
//! * open from a checkpoint describing 1 000 000 files on local disk;
//! * commit latency (one insert of one file) on local disk and S3.

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use icedb_meta::{
    COMMIT_FORMAT, ColumnStats, Commit, CommitDraft, DataFile, MetaOptions, MetaStore, Operation,
    S3Options, StatValue, TableLocation,
};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn data_file(version: u64, index: u64, with_stats: bool) -> DataFile {
    let partition = format!("y=2026/m=10/d={:02}", 1 + (version + index) % 30);
    let mut columns = BTreeMap::new();
    if with_stats {
        columns.insert(
            "ts".to_owned(),
            ColumnStats {
                min: Some(StatValue::Int(1_790_812_800_000_000)),
                max: Some(StatValue::Int(1_790_899_199_000_000)),
                null_count: 0,
            },
        );
        columns.insert(
            "event".to_owned(),
            ColumnStats {
                min: Some(StatValue::Text("click".into())),
                max: Some(StatValue::Text("video_play".into())),
                null_count: 0,
            },
        );
        columns.insert(
            "user_id".to_owned(),
            ColumnStats {
                min: Some(StatValue::Text("u1".into())),
                max: Some(StatValue::Text("u49999".into())),
                null_count: 0,
            },
        );
    }
    DataFile {
        path: format!("data/{partition}/{version:08}-{index:06}.parquet"),
        partition,
        bytes: 1 << 20,
        rows: 10_000,
        created_ms: 1_790_812_800_000 + version as i64,
        columns,
        inline: None,
        segment: None,
    }
}

/// Writes log entries `from..=to` straight to the store (set-up only: the
/// commit protocol is measured separately).
async fn write_history(
    store: &Arc<dyn ObjectStore>,
    from: u64,
    to: u64,
    files_per_commit: u64,
    with_stats: bool,
) {
    futures::stream::iter(from..=to)
        .map(|version| {
            let store = store.clone();
            async move {
                let commit = Commit {
                    format: COMMIT_FORMAT,
                    version,
                    id: format!("bench-{version}"),
                    table_id: Some("bench-1".into()),
                    timestamp_ms: 0,
                    writer: "bench".into(),
                    operation: Operation::Insert,
                    added: (0..files_per_commit)
                        .map(|i| data_file(version, i, with_stats))
                        .collect(),
                    segments: vec![],
                    removed: vec![],
                    purged: vec![],
                    purged_inline_through: None,
                    schema_changes: vec![],
                    details: BTreeMap::new(),
                    definition: None,
                };
                let path = Path::from(format!("_icedb/log/{version:020}.json"));
                store
                    .put(
                        &path,
                        PutPayload::from(serde_json::to_vec(&commit).unwrap()),
                    )
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<()>()
        .await;
}

fn options(replica_dir: &FsPath) -> MetaOptions {
    MetaOptions {
        replica_dir: Some(replica_dir.to_owned()),
        checkpoint_interval: 0,
        ..MetaOptions::default()
    }
}

struct Backend {
    name: &'static str,
    /// Makes a new empty table root.
    new_root: Box<dyn Fn(&str) -> TableLocation>,
}

fn backends(scratch: &FsPath) -> Vec<Backend> {
    let local_root = scratch.to_owned();
    let mut backends = vec![Backend {
        name: "local",
        new_root: Box::new(move |label| TableLocation::Local(local_root.join(label))),
    }];
    if let Ok(endpoint) = std::env::var("ICEDB_BENCH_S3_ENDPOINT") {
        let s3 = S3Options {
            endpoint: Some(endpoint.clone()),
            region: Some("us-east-1".into()),
            allow_http: Some(true),
            path_style: Some(true),
            access_key_id: Some("bench".into()),
            secret_access_key: Some("bench".into()),
            ..S3Options::default()
        };
        let bucket = format!("meta-bench-{}", std::process::id());
        ureq_put(&format!("{endpoint}/{bucket}"));
        backends.push(Backend {
            name: "s3",
            new_root: Box::new(move |label| TableLocation::S3 {
                bucket: bucket.clone(),
                prefix: label.to_owned(),
                options: Box::new(s3.clone()),
            }),
        });
    }
    backends
}

/// Creates a bucket on the S3 test server (plain HTTP PUT; moto accepts it).
fn ureq_put(url: &str) {
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            &format!("import urllib.request as u; u.urlopen(u.Request('{url}', method='PUT'))"),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "creating bucket {url}");
}

fn sync_after_new_commits(c: &mut Criterion) {
    let rt = runtime();
    let scratch = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("sync_after_10_commits");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    for backend in backends(scratch.path()) {
        for history in [100u64, 10_000] {
            let location = (backend.new_root)(&format!("sync-{history}"));
            let store = location.open_store().unwrap();
            rt.block_on(write_history(&store, 1, history, 1, true));
            let reader = rt
                .block_on(MetaStore::open_location(
                    &location,
                    options(&scratch.path().join(format!("r-{}-{history}", backend.name))),
                ))
                .unwrap();
            let writer = rt
                .block_on(MetaStore::open_location(
                    &location,
                    options(&scratch.path().join(format!("w-{}-{history}", backend.name))),
                ))
                .unwrap();
            group.bench_function(
                BenchmarkId::new(backend.name, format!("history={history}")),
                |b| {
                    b.iter_custom(|iterations| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iterations {
                            rt.block_on(async {
                                for _ in 0..10 {
                                    let mut draft = CommitDraft::new(Operation::Insert);
                                    let head = writer.local_version().unwrap();
                                    draft.added.push(data_file(head + 1_000_000, 0, true));
                                    writer.commit(draft).await.unwrap();
                                }
                                let started = Instant::now();
                                let head = reader.sync().await.unwrap();
                                total += started.elapsed();
                                assert_eq!(head, writer.local_version().unwrap());
                            });
                        }
                        total
                    })
                },
            );
        }
    }
    group.finish();
}

fn open_from_checkpoint(c: &mut Criterion) {
    const FILES: u64 = 1_000_000;
    const PER_COMMIT: u64 = 10_000;
    let rt = runtime();
    let scratch = tempfile::tempdir().unwrap();
    let location = TableLocation::Local(scratch.path().join("big"));
    let store = location.open_store().unwrap();
    let started = Instant::now();
    rt.block_on(write_history(
        &store,
        1,
        FILES / PER_COMMIT,
        PER_COMMIT,
        true,
    ));
    let writer = rt
        .block_on(MetaStore::open_location(
            &location,
            options(&scratch.path().join("writer")),
        ))
        .unwrap();
    assert_eq!(writer.snapshot().unwrap().file_count().unwrap(), FILES);
    let version = rt.block_on(writer.checkpoint()).unwrap();
    let checkpoint_bytes = std::fs::metadata(
        scratch
            .path()
            .join(format!("big/_icedb/checkpoints/{version:020}.redb")),
    )
    .unwrap()
    .len();
    eprintln!(
        "set-up: {FILES} files in {} commits, replayed and checkpointed in {:?}; checkpoint is {} MiB",
        FILES / PER_COMMIT,
        started.elapsed(),
        checkpoint_bytes >> 20
    );
    drop(writer);

    let mut group = c.benchmark_group("open_from_checkpoint");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function(BenchmarkId::new("local", "files=1000000"), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for i in 0..iterations {
                let replica_dir = scratch.path().join(format!("fresh-{i}-{}", rand_suffix()));
                let started = Instant::now();
                let meta = rt
                    .block_on(MetaStore::open_location(&location, options(&replica_dir)))
                    .unwrap();
                total += started.elapsed();
                assert_eq!(meta.local_version().unwrap(), version);
                drop(meta);
                std::fs::remove_dir_all(&replica_dir).unwrap();
            }
            total
        })
    });
    group.finish();
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn commit_latency(c: &mut Criterion) {
    let rt = runtime();
    let scratch = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("commit_latency");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(8));
    for backend in backends(scratch.path()) {
        let location = (backend.new_root)("latency");
        let meta = rt
            .block_on(MetaStore::open_location(
                &location,
                options(&scratch.path().join(format!("latency-{}", backend.name))),
            ))
            .unwrap();
        let mut next = 0u64;
        group.bench_function(BenchmarkId::new(backend.name, "insert 1 file"), |b| {
            b.iter(|| {
                next += 1;
                let mut draft = CommitDraft::new(Operation::Insert);
                draft.added.push(data_file(next, 0, true));
                rt.block_on(meta.commit(draft)).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    sync_after_new_commits,
    commit_latency,
    open_from_checkpoint
);
criterion_main!(benches);

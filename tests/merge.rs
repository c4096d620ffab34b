//! Merges end to end on a local directory and the S3 test server: merging
//! to quiescence keeps every row exactly once and every output sorted; hot
//! and cold merges racing each other and four writers lose and duplicate
//! nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arrow::array::AsArray;
use arrow::datatypes::TimestampMicrosecondType;
use icedb::events::EventGenerator;
use icedb::{MergePolicy, PartitionFilter, PartitionOrder, QueryOptions, StatValue, Table};
use icedb_e2e::{Backend, assert_no_partition_columns, first_row, open_table, scalar_of};

async fn open(root: &str, dir: &std::path::Path, who: &str) -> Table {
    open_table(root, dir.join(format!("replica-{who}"))).await
}

async fn counts(table: &Table) -> (i64, i64) {
    let row = first_row(table, "SELECT count(*), count(DISTINCT id) FROM events").await;
    (row[0] as i64, row[1] as i64)
}

/// Reads every live file back with the parquet crate (and every inline
/// part from the log): each is sorted by (event, ts) and its recorded
/// statistics match its contents.
async fn check_files(table: &Table) {
    for (file, batches) in icedb_e2e::live_file_rows(table).await {
        let mut previous: Option<(String, i64)> = None;
        let (mut rows, mut min_ts, mut max_ts) = (0u64, i64::MAX, i64::MIN);
        for batch in batches {
            let events = batch
                .column_by_name("event")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let ts = batch
                .column_by_name("ts")
                .unwrap()
                .as_primitive::<TimestampMicrosecondType>()
                .clone();
            for i in 0..batch.num_rows() {
                let key = (events.value(i).to_owned(), ts.value(i));
                assert!(
                    previous.as_ref().is_none_or(|p| *p <= key),
                    "{} is not sorted",
                    file.path
                );
                min_ts = min_ts.min(ts.value(i));
                max_ts = max_ts.max(ts.value(i));
                previous = Some(key);
            }
            rows += batch.num_rows() as u64;
        }
        assert_eq!(rows, file.rows, "{}: recorded row count", file.path);
        assert_eq!(
            file.columns["ts"].min,
            Some(StatValue::Int(min_ts)),
            "{}: recorded min",
            file.path
        );
        assert_eq!(
            file.columns["ts"].max,
            Some(StatValue::Int(max_ts)),
            "{}: recorded max",
            file.path
        );
    }
}

async fn merge_to_quiescence(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let root = backend.new_table(dir.path(), "quiescence");
    let table = open(&root, dir.path(), "main").await;
    let mut generator = EventGenerator::new(31);
    for _ in 0..8 {
        table.insert_rows(generator.batch(400)).await.unwrap();
    }
    let before = table.meta().snapshot().unwrap().file_count().unwrap();
    assert!(before > 200, "{before} small files");
    let policy = MergePolicy {
        max_files_per_merge: 5,
        ..MergePolicy::cold()
    };
    let report = table.merge_until_quiescent(&policy).await.unwrap();
    let snapshot = table.meta().snapshot().unwrap();
    let partitions = snapshot.partitions(&PartitionFilter::All).unwrap();
    assert_eq!(partitions.len(), 30);
    assert!(
        partitions.iter().all(|p| p.files == 1),
        "one file per partition at quiescence: {partitions:?}"
    );
    assert_eq!(
        report.files_in as u64 - report.files_out as u64,
        before - 30
    );
    assert_eq!(report.conflicts, 0);
    assert_eq!(
        counts(&table).await,
        (3_200, 3_200),
        "every row exactly once"
    );
    check_files(&table).await;
    assert_eq!(
        snapshot.tombstones().unwrap().len() as u64,
        report.files_in as u64,
        "inputs are tombstoned, not deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_to_quiescence_local() {
    merge_to_quiescence(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_to_quiescence_s3() {
    merge_to_quiescence(Backend::S3).await;
}

async fn hot_and_cold_merges_race_writers(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let root = backend.new_table(dir.path(), "race");
    let writing = Arc::new(AtomicBool::new(true));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let table = open(&root, dir.path(), &format!("writer-{w}")).await;
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            let mut generator = EventGenerator::new(100 + w);
            for _ in 0..12 {
                let receipt = table.insert_rows(generator.batch(150)).await.unwrap();
                acknowledged.fetch_add(receipt.rows, Ordering::SeqCst);
            }
        }));
    }
    let mut mergers = Vec::new();
    for (name, policy) in [
        (
            "hot",
            MergePolicy {
                max_partitions: 10,
                max_files_per_merge: 4,
                ..MergePolicy::hot()
            },
        ),
        (
            "cold",
            MergePolicy {
                max_files_per_merge: 50,
                ..MergePolicy::cold()
            },
        ),
    ] {
        let table = open(&root, dir.path(), name).await;
        let writing = writing.clone();
        assert_eq!(
            policy.order,
            if name == "hot" {
                PartitionOrder::Descending
            } else {
                PartitionOrder::Ascending
            }
        );
        mergers.push(tokio::spawn(async move {
            let mut total = icedb::MergeReport::default();
            while writing.load(Ordering::SeqCst) {
                let round = table.merge_once(&policy).await.unwrap();
                total.jobs += round.jobs;
                total.conflicts += round.conflicts;
            }
            total
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    writing.store(false, Ordering::SeqCst);
    let mut jobs = 0;
    for merger in mergers {
        jobs += merger.await.unwrap().jobs;
    }
    assert!(jobs > 0, "the mergers did work while writers wrote");
    let table = open(&root, dir.path(), "checker").await;
    let expected = acknowledged.load(Ordering::SeqCst) as i64;
    assert_eq!(expected, 4 * 12 * 150);
    assert_eq!(
        counts(&table).await,
        (expected, expected),
        "nothing lost, nothing duplicated"
    );
    check_files(&table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_and_cold_merges_race_four_writers_local() {
    hot_and_cold_merges_race_writers(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_and_cold_merges_race_four_writers_s3() {
    hot_and_cold_merges_race_writers(Backend::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_unifies_evolved_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let root = Backend::Local.new_table(dir.path(), "evolved");
    let table = open(&root, dir.path(), "main").await;
    table
        .insert_rows(vec![
            r#"{"ts": 1790812800000, "event": "a", "n": 1}"#.into(),
        ])
        .await
        .unwrap();
    table
        .insert_rows(vec![
            r#"{"ts": 1790812800001, "event": "a", "n": 2.5, "s": "x"}"#.into(),
        ])
        .await
        .unwrap();
    let report = table
        .merge_until_quiescent(&MergePolicy::cold())
        .await
        .unwrap();
    assert_eq!((report.files_in, report.files_out), (2, 1));
    assert_eq!(
        first_row(&table, "SELECT sum(n), count(s), count(*) FROM events").await,
        [3.5, 1.0, 2.0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_query_deduplicates() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let root = backend.new_table(dir.path(), "dedupe");
        let table = open(&root, dir.path(), "main").await;
        let events = EventGenerator::new(50).batch(600);
        // Every event delivered twice (an at-least-once producer).
        table.insert_rows(events.clone()).await.unwrap();
        table.insert_rows(events[..300].to_vec()).await.unwrap();
        table.insert_rows(events[300..].to_vec()).await.unwrap();
        assert_eq!(counts(&table).await, (1_200, 600));
        let policy = MergePolicy {
            query: Some("SELECT DISTINCT ON (id) * FROM source ORDER BY id".into()),
            ..MergePolicy::cold()
        };
        let report = table.merge_until_quiescent(&policy).await.unwrap();
        assert_eq!(
            (report.jobs, report.files_out, report.conflicts),
            (30, 30, 0),
            "{report:?}"
        );
        assert_no_partition_columns(&table);
        assert_eq!(
            counts(&table).await,
            (600, 600),
            "{backend:?}: duplicates removed on merge"
        );
        check_files(&table).await;
        let history = table.meta().history(1).await.unwrap();
        assert_eq!(history[0].operation, icedb_meta::Operation::Merge);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_read_older_versions_until_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let root = Backend::Local.new_table(dir.path(), "time-travel");
    let table = open(&root, dir.path(), "main").await;
    let mut generator = EventGenerator::new(60);
    let v1 = table
        .insert_rows(generator.batch(500))
        .await
        .unwrap()
        .version;
    let v2 = table
        .insert_rows(generator.batch(700))
        .await
        .unwrap()
        .version;
    table
        .merge_until_quiescent(&MergePolicy::cold())
        .await
        .unwrap();
    table.insert_rows(generator.batch(100)).await.unwrap();
    let at = |version| QueryOptions {
        version: Some(version),
        ..QueryOptions::default()
    };
    let count_at = |options: QueryOptions| {
        let table = &table;
        async move {
            let result = table.query("SELECT count(*) FROM events", &options).await?;
            Ok::<_, icedb::TableError>(scalar_of(&result))
        }
    };
    assert_eq!(count_at(at(v1)).await.unwrap(), 500);
    assert_eq!(count_at(at(v2)).await.unwrap(), 1_200);
    assert_eq!(count_at(QueryOptions::default()).await.unwrap(), 1_300);
    let vacuum = table
        .vacuum(&icedb::VacuumOptions {
            grace: std::time::Duration::ZERO,
            force: true,
            expire: None,
            orphans: true,
        })
        .await
        .unwrap();
    assert!(vacuum.purged > 0);
    let error = count_at(at(v1)).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&format!("version {v1} cannot be read")),
        "{error}"
    );
    assert_eq!(count_at(QueryOptions::default()).await.unwrap(), 1_300);
}

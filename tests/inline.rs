//! Inlined commits: a small insert's rows live in its commit (no data
//! object) until a merge flushes them into a file. Queries see them at once
//! and exactly once after the flush; checkpoints, time travel, rewrite,
//! drop and vacuum account for them; the table's inline bound holds; faults
//! on the log and during the flush lose and duplicate nothing.

use std::sync::Arc;
use std::time::Duration;

use icedb::{
    CommitError, Conflict, MergePolicy, PartitionFilter, PluginHost, QueryOptions, Table,
    TableConfig,
};
use icedb_e2e::faults::{Fault, FaultyStore, Kind};
use icedb_e2e::{Backend, data_objects, gen_events, live_paths, scalar, table_config};
use icedb_meta::TableLocation;

fn config(backend: Backend, dir: &std::path::Path, label: &str) -> (String, TableConfig) {
    let root = backend.new_table(dir, label);
    let config = table_config(&root, dir.join(format!("replica-{label}")));
    (root, config)
}

async fn open(config: TableConfig) -> Table {
    Table::open(config, &PluginHost::new(Default::default()).unwrap())
        .await
        .unwrap()
}

/// `(count(*), count(DISTINCT id))` through DuckDB, optionally at `version`.
async fn counts(table: &Table, version: Option<u64>) -> (i64, i64) {
    let options = QueryOptions {
        version,
        ..QueryOptions::default()
    };
    // `count(id)` keeps the planner from answering from the log: DuckDB
    // reads every row.
    let result = table
        .query(
            "SELECT count(id) AS n, count(DISTINCT id) AS d FROM events",
            &options,
        )
        .await
        .unwrap();
    let row = icedb_e2e::first_row_of(&result);
    (row[0] as i64, row[1] as i64)
}

/// The inline bytes the table's state holds (live and flushed).
fn held(table: &Table) -> u64 {
    table
        .meta()
        .snapshot()
        .unwrap()
        .inline_held_bytes()
        .unwrap()
}

/// The inline bytes the live parts hold: each segment a live part names,
/// whole and once, and the bytes of parts in no segment.
fn held_by_live(table: &Table) -> u64 {
    let files = table
        .meta()
        .snapshot()
        .unwrap()
        .files(&PartitionFilter::All)
        .unwrap();
    let mut segments = std::collections::HashSet::new();
    files
        .iter()
        .filter(|f| f.is_inline())
        .filter(|f| {
            f.segment
                .as_ref()
                .is_none_or(|s| segments.insert(&s.segment))
        })
        .map(|f| f.inline.as_ref().unwrap().0.len() as u64)
        .sum()
}

/// Inserts `batches` NDJSON bodies of `rows` events (distinct ids).
async fn insert_small(table: &Table, batches: u64, rows: usize) {
    for seed in 0..batches {
        let body = gen_events(rows, 1_000 + seed);
        let receipt = table.insert_ndjson(body.as_bytes()).await.unwrap();
        assert!(
            receipt.files.iter().all(|p| p.starts_with("inline/")),
            "a small insert writes no object: {:?}",
            receipt.files
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_rows_are_seen_at_once_and_exactly_once_after_the_flush() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let (root, config) = config(backend, dir.path(), "seen");
        let table = open(config.clone()).await;
        insert_small(&table, 5, 100).await;

        // Nothing on the store but the log; every row visible, once.
        assert!(data_objects(&table).await.is_empty(), "{backend:?}");
        let inline = table.meta().snapshot().unwrap().inline_totals().unwrap();
        assert_eq!(inline.rows, 500);
        assert!(inline.files >= 5 * 25, "one part per partition per insert");
        assert_eq!(counts(&table, None).await, (500, 500), "{backend:?}");
        assert_eq!(scalar(&table, "SELECT count(*) FROM events").await, 500);
        // Partition columns and pruning work over inline rows.
        let by_day = scalar(&table, "SELECT count(*) FROM events WHERE d <= 15").await;
        let by_day_scan = scalar(
            &table,
            "SELECT count(id) FROM events WHERE d <= 15 AND y > 2000",
        )
        .await;
        assert_eq!(by_day, by_day_scan);
        assert!(by_day > 0);
        let star = table
            .query(
                "SELECT * FROM events ORDER BY id LIMIT 3",
                &QueryOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(star.row_count(), 3);
        assert!(star.schema.field_with_name("y").is_ok());
        let before_flush = table.meta().sync().await.unwrap();

        // A checkpoint holds the inline rows: a new replica bootstrapped
        // from it sees them.
        table.meta().checkpoint().await.unwrap();
        let mut fresh = config.clone();
        fresh.meta.replica_dir = Some(dir.path().join("replica-fresh"));
        let reader = open(fresh).await;
        assert_eq!(counts(&reader, None).await, (500, 500), "{backend:?}");

        // The flush: one file per partition, exactly once.
        let report = table
            .merge_until_quiescent(&MergePolicy::hot())
            .await
            .unwrap();
        assert!(report.files_out > 0);
        let snapshot = table.meta().snapshot().unwrap();
        assert_eq!(snapshot.inline_totals().unwrap().files, 0);
        let partitions = snapshot.partitions(&PartitionFilter::All).unwrap();
        assert!(partitions.iter().all(|p| p.files == 1), "{partitions:?}");
        // One log entry for the whole flush, and every size the log
        // records is the object's.
        assert_eq!(snapshot.version(), before_flush + 1);
        let store = table.meta().object_store();
        for file in snapshot.files(&PartitionFilter::All).unwrap() {
            let path = object_store::path::Path::from(file.path.as_str());
            assert_eq!(store.head(&path).await.unwrap().size, file.bytes);
        }
        drop(snapshot);
        assert_eq!(data_objects(&table).await, live_paths(table.meta()));
        assert_eq!(counts(&table, None).await, (500, 500), "{backend:?}");
        assert_eq!(counts(&reader, None).await, (500, 500), "{backend:?}");

        // Time travel to before the flush reads the (tombstoned) inline
        // parts, still held for `keep_flushed`.
        assert_eq!(counts(&table, Some(before_flush)).await, (500, 500));
        assert_eq!(counts(&table, Some(1)).await, (100, 100));

        // Vacuum purges them by version: time travel to before the flush
        // is then refused, the present is whole, and a replica that
        // applies the purge from the log (the reader) or starts from a
        // checkpoint after it ends in the same state.
        let purge = table.vacuum(&icedb_e2e::vacuum_now()).await.unwrap();
        assert_eq!(purge.purged as u64, inline.files, "{backend:?}");
        let options = QueryOptions {
            version: Some(before_flush),
            ..QueryOptions::default()
        };
        let refused = table
            .query("SELECT count(id) FROM events", &options)
            .await
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains(&format!("version {before_flush} cannot be read")),
            "{refused}"
        );
        assert_eq!(counts(&table, None).await, (500, 500), "{backend:?}");
        table.meta().checkpoint().await.unwrap();
        let mut late = config.clone();
        late.meta.replica_dir = Some(dir.path().join("replica-late"));
        let late = open(late).await;
        reader.meta().sync().await.unwrap();
        for replica in [&table, &reader, &late] {
            let snapshot = replica.meta().snapshot().unwrap();
            assert!(snapshot.tombstones().unwrap().is_empty(), "{backend:?}");
            assert_eq!(snapshot.inline_held_bytes().unwrap(), 0);
            assert_eq!(
                snapshot.oldest_readable_version().unwrap(),
                before_flush + 1
            );
            drop(snapshot);
            assert_eq!(counts(replica, None).await, (500, 500), "{backend:?}");
        }
        drop(root);
    }
}

/// An insert's parts over ~30 partitions are one segment of its commit
/// (format 5): each part names a row range of it, the ranges tile it, and
/// each part reads back exactly the inserted rows of its own day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_keeps_its_parts_in_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (_, config) = config(Backend::Local, dir.path(), "segment");
    let table = open(config).await;
    let body = gen_events(100, 7);
    let receipt = table.insert_ndjson(body.as_bytes()).await.unwrap();
    let entry = table
        .meta()
        .read_commit(receipt.version)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.format, icedb_meta::COMMIT_FORMAT);
    assert_eq!(entry.segments.len(), 1, "100 rows are one encoding task");
    let segment = &entry.segments[0];
    assert!(entry.added.len() >= 25, "{} parts", entry.added.len());
    let mut ranges: Vec<(u64, u64)> = entry
        .added
        .iter()
        .map(|f| {
            assert!(f.is_inline() && f.inline.is_none(), "{}", f.path);
            let at = f.segment.as_ref().unwrap();
            assert_eq!(at.segment, segment.name);
            // Named for its place: the replica stores nothing per part to
            // find its rows.
            assert_eq!(f.path, at.part_path(&f.partition));
            (at.offset, f.rows)
        })
        .collect();
    ranges.sort();
    let mut next = 0;
    for (offset, rows) in ranges {
        assert_eq!(offset, next, "the parts tile the segment");
        next += rows;
    }
    assert_eq!(next, 100);
    let shares: u64 = entry.added.iter().map(|f| f.bytes).sum();
    assert_eq!(shares, segment.data.0.len() as u64);

    // Read back from the replica: every inserted row once, in its own day.
    let mut ids = Vec::new();
    for (part, batches) in icedb_e2e::live_file_rows(&table).await {
        assert!(part.is_inline());
        let day: u32 = part.partition.rsplit("d=").next().unwrap().parse().unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows as u64, part.rows);
        for batch in &batches {
            let id = batch.column_by_name("id").unwrap();
            let id = id
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap();
            let ts = batch.column_by_name("ts").unwrap();
            let ts = ts
                .as_any()
                .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
                .unwrap();
            for row in 0..batch.num_rows() {
                ids.push(id.value(row).to_owned());
                let at = chrono::DateTime::from_timestamp_micros(ts.value(row)).unwrap();
                assert_eq!(chrono::Datelike::day(&at), day, "{}", part.path);
            }
        }
    }
    ids.sort();
    let mut inserted: Vec<String> = body
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            row["id"].as_str().unwrap().to_owned()
        })
        .collect();
    inserted.sort();
    assert_eq!(ids, inserted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_drop_and_vacuum_account_for_inline_parts() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut config) = config(Backend::Local, dir.path(), "maint");
    config.inline.keep_flushed = Duration::ZERO;
    let table = open(config).await;
    insert_small(&table, 3, 100).await;
    let partition = table
        .meta()
        .snapshot()
        .unwrap()
        .partitions(&PartitionFilter::All)
        .unwrap()[3]
        .partition
        .clone();
    let in_partition = |table: &Table| {
        let files = table
            .meta()
            .snapshot()
            .unwrap()
            .files(&PartitionFilter::Prefix(partition.clone()))
            .unwrap();
        (
            files.iter().map(|f| f.rows).sum::<u64>(),
            files.iter().filter(|f| f.is_inline()).count(),
        )
    };
    let (rows, parts) = in_partition(&table);
    assert!(rows > 0 && parts > 0);

    // Rewrite reads the inline rows and keeps those matching.
    let report = table
        .rewrite_partition(&partition, "event <> 'page_view'")
        .await
        .unwrap();
    assert_eq!(report.rows_before, rows);
    let views = report.rows_before - report.rows_after;
    assert_eq!(
        scalar(&table, "SELECT count(*) FROM events").await,
        300 - views as i64
    );
    assert_eq!(in_partition(&table).1, 0, "rewritten into a file");

    // Drop tombstones inline parts like files.
    insert_small(&table, 1, 100).await;
    let total = scalar(&table, "SELECT count(*) FROM events").await;
    let dropped = table
        .drop_partitions(&PartitionFilter::Prefix(partition.clone()))
        .await
        .unwrap();
    assert_eq!(
        scalar(&table, "SELECT count(*) FROM events").await,
        total - dropped.rows_before as i64
    );

    // Vacuum purges flushed/dropped inline parts without touching the
    // store for them; the held inline bytes go down to what the live
    // parts hold (segments with a live part stay whole: the rewritten and
    // dropped partition's parts shared them with other partitions').
    let live = held_by_live(&table);
    assert!(held(&table) >= live);
    let tombstones = table.meta().snapshot().unwrap().tombstones().unwrap();
    let report = table.vacuum(&icedb_e2e::vacuum_now()).await.unwrap();
    assert_eq!(report.purged, tombstones.len());
    // The purge names the files it deleted and purges the flushed and
    // dropped parts by version: its entry does not grow with their count.
    let entry = table
        .meta()
        .read_commit(report.version.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(entry.purged.iter().all(|f| !f.path.starts_with("inline/")));
    assert_eq!(
        entry.purged_inline_through,
        tombstones
            .iter()
            .filter(|t| t.path.starts_with("inline/"))
            .map(|t| t.removed_in)
            .max()
    );
    let snapshot = table.meta().snapshot().unwrap();
    assert!(snapshot.tombstones().unwrap().is_empty());
    assert_eq!(snapshot.inline_held_bytes().unwrap(), live);
    assert_eq!(data_objects(&table).await, live_paths(table.meta()));
    drop(snapshot);
    assert_eq!(
        scalar(&table, "SELECT count(*) FROM events").await,
        total - dropped.rows_before as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inline_bound_holds_and_big_parts_become_files() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut config) = config(Backend::Local, dir.path(), "bound");
    config.inline.limit_bytes = 64 << 10;
    config.inline.max_rows = 50;
    let table = open(config.clone()).await;
    // 3 000 rows over ~30 days: ~100 per partition, over max_rows: files.
    let receipt = table
        .insert_ndjson(gen_events(3_000, 1).as_bytes())
        .await
        .unwrap();
    assert!(receipt.files.iter().all(|p| p.starts_with("data/")));
    // Small inserts inline until the bound, then write files.
    let mut inlined = 0;
    let mut as_files = 0;
    for seed in 0..40 {
        let receipt = table
            .insert_ndjson(gen_events(60, 100 + seed).as_bytes())
            .await
            .unwrap();
        if receipt.files.iter().all(|p| p.starts_with("inline/")) {
            inlined += 1;
        } else {
            as_files += 1;
        }
        let held = held(&table);
        assert!(held <= config.inline.limit_bytes, "{held}");
    }
    assert!(inlined > 0 && as_files > 0, "{inlined} {as_files}");
    assert_eq!(counts(&table, None).await, (5_400, 5_400));

    // The bound is checked at commit time too (a writer whose view of the
    // log is stale): the commit conflicts and nothing is committed.
    let file = {
        let snapshot = table.meta().snapshot().unwrap();
        let files = snapshot.files(&PartitionFilter::All).unwrap();
        files.into_iter().find(|f| f.is_inline()).unwrap()
    };
    // As a part with bytes of its own (its segment's).
    let mut twin = file.clone();
    twin.path = format!("inline/{}/twin.parquet", twin.partition);
    twin.segment = None;
    let mut draft = icedb_meta::CommitDraft::new(icedb::Operation::Insert);
    draft.added = vec![twin];
    draft.inline_limit = Some(held(&table));
    let before = table.meta().sync().await.unwrap();
    let error = table.meta().commit(draft).await.unwrap_err();
    assert!(
        matches!(error, CommitError::Conflict(Conflict::InlineFull { .. })),
        "{error}"
    );
    assert!(error.certainly_not_committed());
    assert_eq!(table.meta().sync().await.unwrap(), before);
}

/// Inserts 60 events of `seed` (ids distinct across seeds), inlined.
async fn insert_seeded(table: &Table, seed: u64) {
    let receipt = table
        .insert_ndjson(gen_events(60, seed).as_bytes())
        .await
        .unwrap();
    assert!(receipt.files.iter().all(|p| p.starts_with("inline/")));
}

/// Inserts 60-event batches (seeds from `seed` on) until a quarter of the
/// table's inline bound is live.
async fn insert_until_a_quarter_is_live(table: &Table, seed: &mut u64) {
    let quarter = table.config().inline.limit_bytes / 4;
    while table
        .meta()
        .snapshot()
        .unwrap()
        .inline_totals()
        .unwrap()
        .bytes
        < quarter
    {
        insert_seeded(table, *seed).await;
        *seed += 1;
    }
}

/// Inserts that pile up inline parts ask for a flush; the flush turns only
/// the inline parts into files (the files already there are not rewritten)
/// and, with the table over half its bound, purges the oldest flushed parts
/// even inside `keep_flushed`, so small inserts keep inlining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pressure_asks_for_a_flush_that_leaves_files_alone_and_frees_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut config) = config(Backend::Local, dir.path(), "pressure");
    config.inline.limit_bytes = 400 << 10;
    config.inline.keep_flushed = Duration::from_secs(3_600);
    config.inline.max_rows = 50;
    let table = Arc::new(open(config.clone()).await);
    // One file per partition first (3 000 rows: over max_rows).
    let receipt = table
        .insert_ndjson(gen_events(3_000, 1).as_bytes())
        .await
        .unwrap();
    assert!(receipt.files.iter().all(|p| p.starts_with("data/")));
    let files_before: std::collections::BTreeSet<String> =
        live_paths(table.meta()).into_iter().collect();

    // No pressure yet: nothing asks for a flush.
    let waiter = table.clone();
    let wanted = tokio::spawn(async move { waiter.flush_wanted().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!wanted.is_finished(), "no inline parts, no flush wanted");
    // Small inserts until a quarter of the bound is live: a flush is wanted.
    let mut seed = 100;
    insert_until_a_quarter_is_live(&table, &mut seed).await;
    tokio::time::timeout(Duration::from_secs(5), wanted)
        .await
        .expect("a flush is wanted once a quarter of the bound is live")
        .unwrap();
    let rows = 3_000 + (seed - 100) * 60;

    let report = table.flush_inline().await.unwrap();
    assert!(report.files_out > 0);
    let live = table.meta().snapshot().unwrap().inline_totals().unwrap();
    assert_eq!(live.files, 0, "every inline part flushed");
    let files_after: std::collections::BTreeSet<String> =
        live_paths(table.meta()).into_iter().collect();
    assert!(
        files_before.is_subset(&files_after),
        "the flush rewrote no file"
    );
    assert_eq!(files_after.len() - files_before.len(), report.files_out);
    assert_eq!(counts(&table, None).await, (rows as i64, rows as i64));

    // Keep pushing: flushed parts are purged (keep_flushed is an hour) as
    // soon as the table holds more than half its bound, so the held bytes
    // stay under it and every small insert inlines.
    for _ in 0..3 {
        insert_until_a_quarter_is_live(&table, &mut seed).await;
        table.flush_inline().await.unwrap();
        let held = held(&table);
        assert!(held <= config.inline.limit_bytes / 2, "{held}");
    }
    let rows = 3_000 + (seed - 100) * 60;
    assert_eq!(counts(&table, None).await, (rows as i64, rows as i64));
}

/// The faults harness: commits of inline inserts and of flushes whose
/// answers are lost (applied or not), and a flush whose output upload
/// fails: every acknowledged row once, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_inline_commits_and_flushes_lose_and_duplicate_nothing() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let (root, mut config) = config(backend, dir.path(), "faults");
        config.meta.outcome_budget = Duration::from_secs(30);
        let location = TableLocation::parse(&root, &config.s3).unwrap();
        let faults = FaultyStore::new(location.open_store().unwrap(), 17);
        let table = Table::open_on(
            config.clone(),
            faults.clone() as Arc<dyn object_store::ObjectStore>,
            &PluginHost::new(Default::default()).unwrap(),
        )
        .await
        .unwrap();
        let mut acknowledged = 0;
        for (seed, fault) in [
            (1, Some(Fault::ApplyThenFail)),
            (2, Some(Fault::FailBefore)),
            (3, None),
            (4, Some(Fault::ApplyThenFail)),
        ] {
            if let Some(fault) = fault {
                faults.script(Kind::LogPut, fault);
            }
            let body = gen_events(100, 500 + seed);
            // An insert either acknowledges or fails; a failed one is
            // retried whole, as a client would.
            loop {
                match table.insert_ndjson(body.as_bytes()).await {
                    Ok(_) => break,
                    Err(error) => eprintln!("retrying the insert: {error}"),
                }
            }
            acknowledged += 100;
        }
        assert_eq!(counts(&table, None).await, (acknowledged, acknowledged));

        // A flush whose first output upload fails, and one whose commit
        // answer is lost after it landed.
        faults.script(Kind::DataPut, Fault::ApplyThenFail);
        let _ = table.merge_once(&MergePolicy::hot()).await;
        assert_eq!(counts(&table, None).await, (acknowledged, acknowledged));
        faults.script(Kind::LogPut, Fault::ApplyThenFail);
        table
            .merge_until_quiescent(&MergePolicy::hot())
            .await
            .unwrap();
        faults.heal();
        assert_eq!(
            table
                .meta()
                .snapshot()
                .unwrap()
                .inline_totals()
                .unwrap()
                .files,
            0
        );
        assert_eq!(counts(&table, None).await, (acknowledged, acknowledged));
        // A reader that never saw this process's replica agrees.
        let mut fresh = config.clone();
        fresh.meta.replica_dir = Some(dir.path().join("replica-reader"));
        let reader = open(fresh).await;
        assert_eq!(counts(&reader, None).await, (acknowledged, acknowledged));
        assert!(faults.injected_total() >= 4, "{:?}", faults.injected());
    }
}

/// A writer whose replica is behind passes its own check of the bound and
/// meets `InlineFull` at commit time: its insert then lands as files, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_over_the_bound_commits_files_instead() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut config) = config(Backend::Local, dir.path(), "stale");
    config.inline.limit_bytes = 400 << 10;
    let a = open(config.clone()).await;
    let mut other = config.clone();
    other.meta.replica_dir = Some(dir.path().join("replica-other"));
    let b = open(other).await;
    let first = a.insert_ndjson(gen_events(60, 1).as_bytes()).await.unwrap();
    assert!(first.files.iter().all(|p| p.starts_with("inline/")));
    // B fills the bound; A does not sync meanwhile.
    for seed in 2.. {
        let receipt = b
            .insert_ndjson(gen_events(60, seed).as_bytes())
            .await
            .unwrap();
        if receipt.files.iter().any(|p| p.starts_with("data/")) {
            break;
        }
        assert!(seed < 100, "the bound never filled");
    }
    assert!(held(&a) < config.inline.limit_bytes / 2, "A is behind");
    // More rows per part than B's inserts: larger than the room B left.
    let late = a
        .insert_ndjson(gen_events(200, 1_000).as_bytes())
        .await
        .unwrap();
    assert!(
        late.files.iter().all(|p| p.starts_with("data/")),
        "{:?}",
        late.files
    );
    assert!(held(&a) <= config.inline.limit_bytes);
    let total = scalar(&b, "SELECT count(*) FROM events").await;
    assert_eq!(counts(&a, None).await, (total, total));
    assert_eq!(data_objects(&a).await, live_paths(a.meta()));
}

//! Exactly once under store faults, deterministically: a fault-injecting
//! `ObjectStore` (support/faults.rs) in front of a local directory or the
//! moto server makes commits land without an answer, land late, or be
//! followed by read outages, and each outcome is checked — a commit found by
//! its id however many commits landed meanwhile, a merge that landed keeps
//! its output, an unknown outcome never deletes committed files, a re-added
//! path is refused, vacuum respects the retention floor, and a replica of a
//! deleted and re-created table is discarded.
//!
//! Longer than 600 lines on purpose: every file under tests/ links into a
//! test executable of its own (~200 MB with DuckDB and wasmtime), so a
//! suite stays one file.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use icedb::{CommitError, MergePolicy, PartitionFilter, Table, TableError, VacuumOptions};
use icedb_e2e::faults::{Fault, FaultyStore, Kind};
use icedb_e2e::{
    Backend, data_file as file, data_objects, gen_events, insert_draft as insert, live_paths,
    s3_options, scalar, table_config,
};
use icedb_meta::{
    CommitDraft, Conflict, FileRef, MetaOptions, MetaStore, Operation, TableLocation,
};
use object_store::ObjectStore;
use object_store::path::Path;

fn location(url: &str) -> TableLocation {
    TableLocation::parse(url, &s3_options()).unwrap()
}

fn options(replica_dir: &FsPath) -> MetaOptions {
    MetaOptions {
        replica_dir: Some(replica_dir.to_owned()),
        max_commit_attempts: 1_000,
        outcome_budget: Duration::from_secs(30),
        ..MetaOptions::default()
    }
}

/// A meta store whose requests go through a fault injector.
async fn faulty_meta(url: &str, replica_dir: &FsPath, seed: u64) -> (MetaStore, Arc<FaultyStore>) {
    let location = location(url);
    let faults = FaultyStore::new(location.open_store().unwrap(), seed);
    let meta = MetaStore::open_location_on(&location, faults.clone(), options(replica_dir))
        .await
        .unwrap();
    (meta, faults)
}

async fn plain_meta(url: &str, replica_dir: &FsPath) -> MetaStore {
    MetaStore::open_location(&location(url), options(replica_dir))
        .await
        .unwrap()
}

/// How many log entries hold `path` among their added files.
async fn times_added(meta: &MetaStore, path: &str) -> usize {
    let head = meta.sync().await.unwrap();
    let mut count = 0;
    for version in 1..=head {
        let commit = meta.read_commit(version).await.unwrap().unwrap();
        count += commit.added.iter().filter(|f| f.path == path).count();
    }
    count
}

// ------------------------------------------------------------ finding one's own commit

async fn own_commit_found_after_many_landed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.new_table(dir.path(), "own-commit");
    let (a, faults) = faulty_meta(&url, &dir.path().join("a"), 1).await;
    let b = plain_meta(&url, &dir.path().join("b")).await;
    // A's log PUT lands, the answer is lost and A cannot read the store for
    // 3 s, while B commits 25 times.
    faults.script(Kind::LogPut, Fault::ApplyThenOutage(Duration::from_secs(3)));
    let mine = file("p=a", "mine", 7);
    let committing = tokio::spawn(async move {
        let receipt = a.commit(insert(vec![mine])).await;
        (a, receipt)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..25 {
        b.commit(insert(vec![file("p=b", &i.to_string(), 1)]))
            .await
            .unwrap();
    }
    let (a, receipt) = committing.await.unwrap();
    let receipt = receipt.unwrap_or_else(|e| panic!("{backend:?}: {e}"));
    assert_eq!(receipt.version, 1, "{backend:?}: A's commit landed first");
    assert_eq!(a.sync().await.unwrap(), 26);
    assert_eq!(times_added(&a, "data/p=a/mine.parquet").await, 1);
    let snapshot = a.snapshot().unwrap();
    assert_eq!(snapshot.files(&PartitionFilter::All).unwrap().len(), 26);
    assert!(faults.injected_total() >= 2, "{:?}", faults.injected());
}

#[tokio::test]
async fn own_commit_is_found_after_25_commits_landed_meanwhile() {
    for backend in Backend::ALL {
        own_commit_found_after_many_landed(backend).await;
    }
}

#[tokio::test]
async fn a_commit_landing_late_is_committed_once() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let url = backend.new_table(dir.path(), "late");
        let (a, faults) = faulty_meta(&url, &dir.path().join("a"), 2).await;
        let b = plain_meta(&url, &dir.path().join("b")).await;
        // The first attempt is held by the network for 1 s, then lands;
        // the client saw an error at once and retries meanwhile.
        faults.script(Kind::LogPut, Fault::LandLater(Duration::from_secs(1)));
        a.commit(insert(vec![file("p=a", "late", 3)]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for i in 0..3 {
            b.commit(insert(vec![file("p=b", &i.to_string(), 1)]))
                .await
                .unwrap();
        }
        assert_eq!(
            times_added(&b, "data/p=a/late.parquet").await,
            1,
            "{backend:?}"
        );
        let rows: u64 = b
            .snapshot()
            .unwrap()
            .files(&PartitionFilter::All)
            .unwrap()
            .iter()
            .map(|f| f.rows)
            .sum();
        assert_eq!(rows, 6, "{backend:?}");
    }
}

#[tokio::test]
async fn an_unreadable_store_gives_outcome_unknown_never_failed() {
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::Local.new_table(dir.path(), "unknown");
    let location = location(&url);
    let faults = FaultyStore::new(location.open_store().unwrap(), 3);
    let meta = MetaStore::open_location_on(
        &location,
        faults.clone(),
        MetaOptions {
            outcome_budget: Duration::from_millis(800),
            ..options(&dir.path().join("a"))
        },
    )
    .await
    .unwrap();
    faults.script(
        Kind::LogPut,
        Fault::ApplyThenOutage(Duration::from_secs(60)),
    );
    let error = meta
        .commit(insert(vec![file("p=a", "x", 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CommitError::OutcomeUnknown { ref versions, .. } if versions == &[1]),
        "{error}"
    );
    assert!(!error.certainly_not_committed());
    // It did land: a reader sees it once.
    faults.heal();
    let reader = plain_meta(&url, &dir.path().join("r")).await;
    assert_eq!(times_added(&reader, "data/p=a/x.parquet").await, 1);
}

#[tokio::test]
async fn a_store_failing_before_any_attempt_is_certainly_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::Local.new_table(dir.path(), "before");
    let (meta, faults) = faulty_meta(&url, &dir.path().join("a"), 4).await;
    faults.read_outage(Duration::from_secs(60));
    let error = meta
        .commit(insert(vec![file("p=a", "x", 1)]))
        .await
        .unwrap_err();
    assert!(error.certainly_not_committed(), "{error}");
    faults.heal();
    assert_eq!(meta.sync().await.unwrap(), 0);
}

// ------------------------------------------------------------ the log refuses what would corrupt it

#[tokio::test]
async fn a_path_already_in_the_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::Local.new_table(dir.path(), "readd");
    let meta = plain_meta(&url, &dir.path().join("a")).await;
    let a = file("p=1", "a", 1);
    meta.commit(insert(vec![a.clone()])).await.unwrap();
    let refused = |error: CommitError| match error {
        CommitError::Conflict(Conflict::FileAlreadyAdded { path, by_version }) => {
            assert_eq!(path, a.path);
            assert_eq!(by_version, 1);
        }
        other => panic!("expected FileAlreadyAdded, got {other}"),
    };
    // Live.
    refused(meta.commit(insert(vec![a.clone()])).await.unwrap_err());
    // Tombstoned.
    let mut merge = CommitDraft::new(Operation::Merge);
    merge.removed = vec![FileRef::from(&a)];
    merge.added = vec![file("p=1", "b", 1)];
    meta.commit(merge).await.unwrap();
    refused(meta.commit(insert(vec![a.clone()])).await.unwrap_err());
    // Purged.
    let mut vacuum = CommitDraft::new(Operation::Vacuum);
    vacuum.purged = vec![FileRef::from(&a)];
    meta.commit(vacuum).await.unwrap();
    refused(meta.commit(insert(vec![a.clone()])).await.unwrap_err());
    let snapshot = meta.snapshot().unwrap();
    assert_eq!(snapshot.version(), 3);
    let partitions = snapshot.partitions(&PartitionFilter::All).unwrap();
    assert_eq!((partitions[0].files, partitions[0].rows), (1, 1));
}

// ------------------------------------------------------------ table identity

async fn delete_everything(store: &Arc<dyn ObjectStore>) {
    let keys: Vec<Path> = store
        .list(None)
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    for key in keys {
        store.delete(&key).await.unwrap();
    }
}

/// Deletes the table at `url` and re-creates it with `commits` commits of
/// one file each (`p=new/0`, `p=new/1`, …) by another writer; returns the
/// new table's id.
async fn recreate(url: &str, dir: &FsPath, commits: usize) -> String {
    let store = location(url).open_store().unwrap();
    delete_everything(&store).await;
    let fresh = plain_meta(url, &dir.join("fresh")).await;
    for i in 0..commits {
        fresh
            .commit(insert(vec![file("p=new", &i.to_string(), 2)]))
            .await
            .unwrap();
    }
    fresh.snapshot().unwrap().table_id().unwrap().unwrap()
}

/// A writer whose table was re-created commits `p=new/after` at `version`
/// of the new log, and its replica then carries the new table's id.
async fn commits_into_new_table(old: &MetaStore, new_id: &str, version: u64, backend: Backend) {
    let receipt = old
        .commit(insert(vec![file("p=new", "after", 1)]))
        .await
        .unwrap();
    assert_eq!(
        receipt.version, version,
        "{backend:?}: committed after the new log's head"
    );
    assert_eq!(
        old.snapshot().unwrap().table_id().unwrap().as_deref(),
        Some(new_id)
    );
}

#[tokio::test]
async fn a_replica_of_a_recreated_table_is_discarded() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let url = backend.new_table(dir.path(), "recreated");
        let replica = dir.path().join("replica");
        let old = plain_meta(&url, &replica).await;
        for i in 0..3 {
            old.commit(insert(vec![file("p=old", &i.to_string(), 5)]))
                .await
                .unwrap();
        }
        let old_id = old.snapshot().unwrap().table_id().unwrap().unwrap();
        // A long-running writer keeps its replica (head 3) while the table
        // is deleted and re-created with one commit.
        let new_id = recreate(&url, dir.path(), 1).await;
        assert_ne!(old_id, new_id);

        commits_into_new_table(&old, &new_id, 2, backend).await;
        drop(old);
        // A process opening the old replica directory sees only the new table.
        let reopened = plain_meta(&url, &replica).await;
        let files = reopened
            .snapshot()
            .unwrap()
            .files(&PartitionFilter::All)
            .unwrap();
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["data/p=new/0.parquet", "data/p=new/after.parquet"],
            "{backend:?}"
        );
        assert_eq!(reopened.local_version().unwrap(), 2);
    }
}

/// A log PUT answered later than a staged apply waits for: the staged
/// apply is abandoned, so this process's sync, which meets the landed
/// entry meanwhile, applies it without waiting for the whole request; the
/// commit is won all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_commit_request_is_applied_after_the_fact() {
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::Local.new_table(dir.path(), "slow-put");
    let (meta, faults) = faulty_meta(&url, &dir.path().join("replica"), 3).await;
    meta.commit(insert(vec![file("p=1", "a", 5)]))
        .await
        .unwrap();
    faults.script(
        Kind::LogPut,
        Fault::AnswerLate(Duration::from_millis(1_500)),
    );
    let started = Instant::now();
    let (receipt, synced_after) =
        tokio::join!(meta.commit(insert(vec![file("p=1", "b", 5)])), async {
            // The entry has landed; its answer has not.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let head = meta.sync().await.unwrap();
            (head, started.elapsed())
        });
    assert_eq!(receipt.unwrap().version, 2);
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    let (head, synced_after) = synced_after;
    assert_eq!(head, 2);
    assert!(
        synced_after < Duration::from_millis(1_000),
        "{synced_after:?}"
    );
    assert_eq!(meta.local_version().unwrap(), 2);
    assert_eq!(
        live_paths(&meta),
        ["data/p=1/a.parquet", "data/p=1/b.parquet"]
    );
}

/// The store check a host runs at start counts for the first commit, which
/// does not repeat it (three requests); a process that did not run it
/// checks before its first commit.
#[tokio::test]
async fn a_store_checked_at_start_is_not_checked_again_by_the_first_commit() {
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::Local.new_table(dir.path(), "checked");
    let store_checks =
        |faults: &FaultyStore| faults.requests().get(&Kind::OtherPut).copied().unwrap_or(0);
    let (checked, faults) = faulty_meta(&url, &dir.path().join("a"), 1).await;
    checked.check_store().await.unwrap();
    let before = store_checks(&faults);
    checked
        .commit(insert(vec![file("p=1", "a", 1)]))
        .await
        .unwrap();
    assert_eq!(store_checks(&faults), before);
    let (unchecked, faults) = faulty_meta(&url, &dir.path().join("b"), 1).await;
    unchecked
        .commit(insert(vec![file("p=1", "b", 1)]))
        .await
        .unwrap();
    assert_eq!(
        store_checks(&faults),
        2,
        "two conditional creates of one key"
    );
}

/// A writer's identity check (is the log still the table my replica
/// describes?) reads only the metadata of a head entry it wrote itself on
/// S3 (a local directory's e-tags are not its content's: the entry is
/// read), and still tells a re-created table whose log reached the same
/// version.
#[tokio::test]
async fn the_identity_check_reads_no_entry_it_wrote_and_still_sees_a_recreated_table() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let url = backend.new_table(dir.path(), "identity");
        let (old, faults) = faulty_meta(&url, &dir.path().join("replica"), 5).await;
        for i in 0..3 {
            old.commit(insert(vec![file("p=old", &i.to_string(), 5)]))
                .await
                .unwrap();
        }
        let reads = |faults: &FaultyStore| faults.requests().get(&Kind::Read).copied().unwrap_or(0);
        let (before, reads_before) = (faults.log_entries_read(), reads(&faults));
        old.commit(insert(vec![file("p=old", "3", 5)]))
            .await
            .unwrap();
        // S3: the sync's listing starts at the head entry and shows its
        // e-tag, which is the identity check; a local directory probes the
        // next entry (and the expiry marker) and reads the head entry.
        let (entries, requests) = match backend {
            Backend::S3 => (0, 1),
            Backend::Local => (1, 3),
        };
        assert_eq!(
            faults.log_entries_read() - before,
            entries,
            "{backend:?}: log entries a commit on top of this process's own head read"
        );
        assert_eq!(
            reads(&faults) - reads_before,
            requests,
            "{backend:?}: reads of a commit on top of this process's own head"
        );
        let old_id = old.snapshot().unwrap().table_id().unwrap().unwrap();

        // The table is deleted and re-created up to the same version 4:
        // the entry at the old head exists again, with other content.
        let new_id = recreate(&url, dir.path(), 4).await;
        assert_ne!(old_id, new_id);
        commits_into_new_table(&old, &new_id, 5, backend).await;
        let snapshot = old.snapshot().unwrap();
        let partitions: Vec<String> = snapshot
            .files(&PartitionFilter::All)
            .unwrap()
            .into_iter()
            .map(|f| f.partition)
            .collect();
        assert!(
            partitions.iter().all(|p| p == "p=new"),
            "{backend:?}: the old table's files are gone from the replica: {partitions:?}"
        );
        assert_eq!(partitions.len(), 5);
    }
}

// ------------------------------------------------------------ the table engine under faults

fn faulty_table_config(root: &str, replica: std::path::PathBuf) -> icedb::TableConfig {
    let mut config = table_config(root, replica);
    config.meta.outcome_budget = Duration::from_secs(30);
    // These tests fault data-file uploads: every insert writes files.
    // Inlined commits under faults: tests/inline.rs.
    config.inline.max_rows = 0;
    config
}

async fn faulty_table(
    root: &str,
    replica: std::path::PathBuf,
    seed: u64,
) -> (Table, Arc<FaultyStore>) {
    let config = faulty_table_config(root, replica);
    let location = TableLocation::parse(root, &config.s3).unwrap();
    let faults = FaultyStore::new(location.open_store().unwrap(), seed);
    let table = Table::open_on(
        config,
        faults.clone(),
        &icedb::PluginHost::new(Default::default()).unwrap(),
    )
    .await
    .unwrap();
    (table, faults)
}

#[tokio::test]
async fn a_merge_that_landed_then_timed_out_succeeds_and_keeps_its_output() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let root = backend.new_table(dir.path(), "merge-landed");
        let (table, faults) = faulty_table(&root, dir.path().join("r"), 5).await;
        for seed in 0..4 {
            table
                .insert_ndjson(gen_events(200, seed).as_bytes())
                .await
                .unwrap();
        }
        let before = live_paths(table.meta()).len();
        faults.script(Kind::LogPut, Fault::ApplyThenOutage(Duration::from_secs(1)));
        let report = table
            .merge_once(&MergePolicy {
                concurrency: 1,
                ..MergePolicy::cold()
            })
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        assert_eq!(report.conflicts, 0, "{backend:?}: {report:?}");
        assert!(report.files_out >= 1, "{backend:?}: {report:?}");
        let after = live_paths(table.meta());
        assert!(after.len() < before, "{backend:?}");
        // Every live file exists, and the count is exact.
        let objects = data_objects(&table).await;
        for path in &after {
            assert!(
                objects.contains(path),
                "{backend:?}: live file {path} missing"
            );
        }
        assert_eq!(scalar(&table, "SELECT count(*) FROM events").await, 800);
        assert_eq!(
            scalar(&table, "SELECT count(DISTINCT id) FROM events").await,
            800
        );
    }
}

#[tokio::test]
async fn a_read_outage_after_a_landed_insert_never_deletes_its_files() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let root = backend.new_table(dir.path(), "insert-outage");
        let mut config = faulty_table_config(&root, dir.path().join("r"));
        config.meta.outcome_budget = Duration::from_millis(700);
        let location = TableLocation::parse(&root, &config.s3).unwrap();
        let faults = FaultyStore::new(location.open_store().unwrap(), 6);
        let plugins = icedb::PluginHost::new(Default::default()).unwrap();
        let table = Table::open_on(config, faults.clone(), &plugins)
            .await
            .unwrap();
        faults.script(
            Kind::LogPut,
            Fault::ApplyThenOutage(Duration::from_secs(30)),
        );
        let error = table
            .insert_ndjson(gen_events(300, 9).as_bytes())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                TableError::Commit(CommitError::OutcomeUnknown { .. })
            ),
            "{backend:?}: {error}"
        );
        faults.heal();
        drop(table);
        let reader = icedb_e2e::open_table(&root, dir.path().join("reader")).await;
        let live = live_paths(reader.meta());
        assert!(!live.is_empty());
        let objects = data_objects(&reader).await;
        for path in &live {
            assert!(
                objects.contains(path),
                "{backend:?}: live file {path} deleted"
            );
        }
        assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, 300);
    }
}

#[tokio::test]
async fn failed_data_uploads_leave_nothing_committed_and_retry_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let root = Backend::S3.new_table(dir.path(), "upload-fails");
    let (table, faults) = faulty_table(&root, dir.path().join("r"), 7).await;
    faults.script(Kind::DataPut, Fault::ApplyThenFail);
    let body = gen_events(300, 11);
    assert!(table.insert_ndjson(body.as_bytes()).await.is_err());
    assert_eq!(table.meta().sync().await.unwrap(), 0);
    // The whole insert again: exactly once.
    table.insert_ndjson(body.as_bytes()).await.unwrap();
    assert_eq!(scalar(&table, "SELECT count(*) FROM events").await, 300);
    assert_eq!(
        scalar(&table, "SELECT count(DISTINCT id) FROM events").await,
        300
    );
}

// ------------------------------------------------------------ vacuum and a slow commit

#[tokio::test]
async fn vacuum_racing_a_slow_commit_loses_nothing_with_the_floor() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let root = backend.new_table(dir.path(), "vacuum-race");
        let (table, faults) = faulty_table(&root, dir.path().join("w"), 8).await;
        let table = Arc::new(table);
        table
            .insert_ndjson(gen_events(100, 1).as_bytes())
            .await
            .unwrap();
        // The next commit's PUT takes 2 s; vacuum runs while it is held.
        faults.script(Kind::LogPut, Fault::Delay(Duration::from_secs(2)));
        let writer = {
            let table = table.clone();
            tokio::spawn(async move { table.insert_ndjson(gen_events(100, 2).as_bytes()).await })
        };
        tokio::time::sleep(Duration::from_millis(700)).await;
        let vacuum = icedb_e2e::open_table(&root, dir.path().join("v")).await;
        // A short grace is refused without force, naming the floor.
        let refused = vacuum
            .vacuum(&VacuumOptions {
                grace: Duration::ZERO,
                ..VacuumOptions::default()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(refused, TableError::GraceBelowFloor { .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("1h"), "{refused}");
        let report = vacuum.vacuum(&VacuumOptions::default()).await.unwrap();
        assert_eq!(report.orphans_deleted, 0, "{backend:?}");
        writer.await.unwrap().unwrap();
        let objects = data_objects(&table).await;
        for path in live_paths(table.meta()) {
            assert!(objects.contains(&path), "{backend:?}: {path} deleted");
        }
        assert_eq!(scalar(&table, "SELECT count(*) FROM events").await, 200);
    }
}

// ------------------------------------------------------------ bulk deletes

#[tokio::test]
async fn vacuum_deletes_in_bulk_and_a_lost_bulk_answer_loses_nothing() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let root = backend.new_table(dir.path(), "bulk-delete");
        let (table, faults) = faulty_table(&root, dir.path().join("r"), 11).await;
        for seed in 0..4 {
            table
                .insert_ndjson(gen_events(200, seed).as_bytes())
                .await
                .unwrap();
        }
        table
            .merge_until_quiescent(&MergePolicy::cold())
            .await
            .unwrap();
        let tombstones = table.snapshot().unwrap().tombstones().unwrap().len();
        assert!(
            tombstones > 30,
            "{backend:?}: {tombstones} merged-away files"
        );
        let force = VacuumOptions {
            grace: Duration::ZERO,
            force: true,
            ..VacuumOptions::default()
        };
        // (The store check of the table's first commit deletes its key.)
        let (single_before, bulk_before) = faults.deletes();
        // The bulk delete is applied, its answer lost: nothing is recorded.
        faults.script(Kind::Delete, Fault::ApplyThenFail);
        table
            .vacuum(&force)
            .await
            .expect_err("a lost bulk answer fails the vacuum");
        assert_eq!(
            table.snapshot().unwrap().tombstones().unwrap().len(),
            tombstones,
            "{backend:?}: no purge recorded"
        );
        // The next vacuum finishes the job, in bulk.
        let report = table.vacuum(&force).await.unwrap();
        assert_eq!(report.purged, tombstones, "{backend:?}: {report:?}");
        let (single, bulk) = faults.deletes();
        assert_eq!(
            single, single_before,
            "{backend:?}: no key deleted one by one"
        );
        assert!(bulk >= bulk_before + 2, "{backend:?}: {bulk} bulk deletes");
        let live = live_paths(table.meta());
        assert_eq!(data_objects(&table).await, live, "{backend:?}");
        assert_eq!(scalar(&table, "SELECT count(*) FROM events").await, 800);
    }
}

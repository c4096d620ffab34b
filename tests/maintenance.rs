//! Vacuum, drop and rewrite on a local directory and the S3 test server.

use std::time::Duration;

use arrow::array::AsArray;
use icedb::events::EventGenerator;
use icedb::{MergePolicy, PartitionFilter, PluginHost, QueryOptions, Table, VacuumOptions};
use icedb_e2e::{
    Backend, assert_no_partition_columns, data_objects, live_paths, scalar, table_config,
};
use object_store::PutPayload;
use object_store::path::Path;

/// A table whose inserts write files at once: these tests count objects
/// (inline parts under vacuum, drop and rewrite: tests/inline.rs).
async fn open(backend: Backend, dir: &std::path::Path, label: &str) -> Table {
    let mut config = table_config(
        &backend.new_table(dir, label),
        dir.join(format!("replica-{label}")),
    );
    config.inline.max_rows = 0;
    Table::open(config, &PluginHost::new(Default::default()).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_removes_dead_objects_and_nothing_live() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let table = open(backend, dir.path(), "vacuum").await;
        let mut generator = EventGenerator::new(40);
        for _ in 0..3 {
            table.insert_rows(generator.batch(300)).await.unwrap();
        }
        table
            .merge_until_quiescent(&MergePolicy::cold())
            .await
            .unwrap();
        let tombstones = tombstone_count(&table);
        assert!(tombstones > 30);
        // A crash leftover: uploaded, never committed.
        let orphan = Path::from("data/y=2026/m=10/d=01/orphan.parquet");
        table
            .meta()
            .object_store()
            .put(&orphan, PutPayload::from_static(b"PAR1"))
            .await
            .unwrap();

        // Within the grace period nothing goes.
        let early = table
            .vacuum(&VacuumOptions {
                grace: Duration::from_secs(3600),
                force: false,
                expire: None,
                orphans: true,
            })
            .await
            .unwrap();
        assert_eq!(
            (early.purged, early.orphans_deleted, early.version),
            (0, 0, None)
        );

        let now = icedb_e2e::vacuum_now();
        // Without the orphan check, the tombstoned files go and the orphan
        // stays (nothing under data/ is listed).
        let purge = table
            .vacuum(&VacuumOptions {
                orphans: false,
                ..now.clone()
            })
            .await
            .unwrap();
        assert_eq!(purge.purged, tombstones, "{backend:?}");
        assert!(purge.version.is_some());
        assert_eq!((purge.orphans_deleted, purge.orphans_checked), (0, false));
        assert!(data_objects(&table).await.contains(&orphan.to_string()));

        let report = table.vacuum(&now).await.unwrap();
        assert_eq!((report.purged, report.version), (0, None), "{backend:?}");
        assert_eq!((report.orphans_deleted, report.orphans_checked), (1, true));
        assert_eq!(
            data_objects(&table).await,
            live_paths(table.meta()),
            "exactly the live files remain"
        );
        assert_eq!(tombstone_count(&table), 0);
        assert_eq!(scalar(&table, "SELECT count(*) FROM events").await, 900);

        let again = table.vacuum(&now).await.unwrap();
        assert_eq!(
            (again.purged, again.orphans_deleted, again.version),
            (0, 0, None),
            "idempotent"
        );
        assert_eq!(data_objects(&table).await, live_paths(table.meta()));
    }
}

fn tombstone_count(table: &Table) -> usize {
    table.meta().snapshot().unwrap().tombstones().unwrap().len()
}

/// Merges `table` to quiescence; its tombstones after.
async fn merged_tombstones(table: &Table) -> usize {
    table
        .merge_until_quiescent(&MergePolicy::cold())
        .await
        .unwrap();
    tombstone_count(table)
}

/// A vacuum without the orphan check starts from the replica as last
/// synced; one that finds nothing there syncs and looks again, so a host
/// whose replica nothing else syncs still purges other writers' removals,
/// and one that finds something purges it and catches up through its commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vacuum_from_a_stale_replica_still_purges_other_writers_removals() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let root = backend.new_table(dir.path(), "stale");
        let open_at = |replica: &str| {
            let mut config = table_config(&root, dir.path().join(replica));
            config.inline.max_rows = 0;
            async move {
                Table::open(config, &PluginHost::new(Default::default()).unwrap())
                    .await
                    .unwrap()
            }
        };
        let writer = open_at("replica-writer").await;
        let mut generator = EventGenerator::new(41);
        for _ in 0..3 {
            writer.insert_rows(generator.batch(200)).await.unwrap();
        }
        // Opened (and synced) before the writer's merge: its replica knows
        // no tombstone.
        let janitor = open_at("replica-janitor").await;
        let before = janitor.meta().local_version().unwrap();
        let tombstones = merged_tombstones(&writer).await;
        assert!(tombstones > 0);
        assert_eq!(janitor.meta().local_version().unwrap(), before, "stale");

        let options = VacuumOptions {
            orphans: false,
            ..icedb_e2e::vacuum_now()
        };
        let report = janitor.vacuum(&options).await.unwrap();
        assert_eq!(report.purged, tombstones, "{backend:?}");
        assert_eq!(data_objects(&writer).await, live_paths(writer.meta()));
        writer.meta().sync().await.unwrap();
        assert_eq!(tombstone_count(&writer), 0);

        // The writer merges again; the janitor's replica (synced by its own
        // purge commit) knows none of the new removals: it syncs, sees
        // them and purges them too.
        for _ in 0..2 {
            writer.insert_rows(generator.batch(200)).await.unwrap();
        }
        let more = merged_tombstones(&writer).await;
        assert!(more > 0);
        let again = janitor.vacuum(&options).await.unwrap();
        assert_eq!(again.purged, more, "{backend:?}");
        assert_eq!(data_objects(&writer).await, live_paths(writer.meta()));
        assert_eq!(scalar(&writer, "SELECT count(*) FROM events").await, 1000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_partitions_then_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let table = open(Backend::Local, dir.path(), "drop").await;
    table
        .insert_rows(EventGenerator::new(41).batch(1_000))
        .await
        .unwrap();
    let day1 = scalar(&table, "SELECT count(*) FROM events WHERE d = '01'").await;
    assert!(day1 > 0);
    let report = table
        .drop_partitions(&PartitionFilter::Prefix("y=2026/m=10/d=01".into()))
        .await
        .unwrap();
    assert_eq!((report.files_removed, report.rows_before), (1, day1 as u64));
    assert_eq!(
        scalar(&table, "SELECT count(*) FROM events").await,
        1_000 - day1
    );
    assert_eq!(
        scalar(&table, "SELECT count(*) FROM events WHERE d = '01'").await,
        0
    );
    let vacuum = table.vacuum(&icedb_e2e::vacuum_now()).await.unwrap();
    assert_eq!(vacuum.purged, 1);
    assert_eq!(data_objects(&table).await, live_paths(table.meta()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_deletes_one_users_rows() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let table = open(backend, dir.path(), "rewrite").await;
        let mut generator = EventGenerator::new(42);
        table.insert_rows(generator.batch(2_000)).await.unwrap();
        table.insert_rows(generator.batch(2_000)).await.unwrap();
        let result = table
            .query("SELECT user_id, count(*) AS n FROM events WHERE d = '07' GROUP BY ALL ORDER BY n DESC, user_id LIMIT 1", &QueryOptions::default())
            .await
            .unwrap();
        let user = result.batches[0]
            .column(0)
            .as_string::<i32>()
            .value(0)
            .to_owned();
        let in_day = scalar(
            &table,
            &format!("SELECT count(*) FROM events WHERE d = '07' AND user_id = '{user}'"),
        )
        .await;
        let elsewhere = scalar(
            &table,
            &format!("SELECT count(*) FROM events WHERE d <> '07' AND user_id = '{user}'"),
        )
        .await;
        let day_total = scalar(&table, "SELECT count(*) FROM events WHERE d = '07'").await;

        let report = table
            .rewrite_partition("y=2026/m=10/d=07", &format!("user_id <> '{user}'"))
            .await
            .unwrap();
        assert_eq!(
            (report.files_removed, report.files_added),
            (2, 1),
            "{backend:?}"
        );
        assert_eq!(report.rows_before - report.rows_after, in_day as u64);
        assert_eq!(
            scalar(
                &table,
                &format!("SELECT count(*) FROM events WHERE d = '07' AND user_id = '{user}'")
            )
            .await,
            0
        );
        assert_eq!(
            scalar(
                &table,
                &format!("SELECT count(*) FROM events WHERE d <> '07' AND user_id = '{user}'")
            )
            .await,
            elsewhere
        );
        assert_eq!(
            scalar(&table, "SELECT count(*) FROM events WHERE d = '07'").await,
            day_total - in_day
        );
        assert_eq!(
            scalar(&table, "SELECT count(*) FROM events").await,
            4_000 - in_day
        );
        assert_no_partition_columns(&table);
    }
}

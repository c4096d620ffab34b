//! The meta store against a local directory and a real S3-compatible server
//! (moto): concurrent writers (tasks and OS processes, and tasks sharing
//! one meta store, which take turns), conflicting merges,
//! checkpoint bootstrap vs full replay (property test), damaged log entries
//! and checkpoints, expiry, and a store that ignores conditional creates.
//!
//! Longer than 600 lines on purpose: every file under tests/ links into a
//! test executable of its own (~200 MB with DuckDB and wasmtime), so a
//! suite stays one file.

use std::collections::{BTreeMap, HashSet};
use std::path::Path as FsPath;
use std::sync::Arc;

use icedb_e2e::{Backend, data_file as file, insert_draft as insert, live_paths, s3_options};
use icedb_meta::{
    ColumnDef, ColumnType, CommitDraft, CommitError, Conflict, DataFile, ExpirePolicy, FileRef,
    MetaError, MetaOptions, MetaStore, NotCommitted, Operation, PartitionFilter, Snapshot,
    TableLocation,
};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

fn location(url: &str) -> TableLocation {
    TableLocation::parse(url, &s3_options()).unwrap()
}

fn options(replica_dir: &FsPath, writer: &str) -> MetaOptions {
    MetaOptions {
        replica_dir: Some(replica_dir.to_owned()),
        writer_id: Some(writer.to_owned()),
        max_commit_attempts: 1_000,
        ..MetaOptions::default()
    }
}

async fn open(url: &str, replica_dir: &FsPath, writer: &str) -> MetaStore {
    MetaStore::open_location(&location(url), options(replica_dir, writer))
        .await
        .unwrap()
}

fn merge(remove: &[&DataFile], add: DataFile) -> CommitDraft {
    let mut draft = CommitDraft::new(Operation::Merge);
    draft.removed = remove.iter().map(|f| FileRef::from(*f)).collect();
    draft.added = vec![add];
    draft
}

/// Every log entry from 1 to `head` exists, and nothing after it.
async fn assert_gapless_log(meta: &MetaStore, head: u64) -> Vec<icedb_meta::Commit> {
    let mut commits = Vec::new();
    for version in 1..=head {
        let commit = meta
            .read_commit(version)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("version {version} missing"));
        assert_eq!(commit.version, version);
        commits.push(commit);
    }
    assert!(meta.read_commit(head + 1).await.unwrap().is_none());
    commits
}

// ------------------------------------------------------------ concurrent writers

async fn eight_writers_fifty_commits(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.new_table(dir.path(), "writers");
    let mut tasks = Vec::new();
    for w in 0..8 {
        let url = url.clone();
        let replica = dir.path().join(format!("replica-{w}"));
        tasks.push(tokio::spawn(async move {
            // Each writer has its own meta store and replica, as separate
            // hosts would.
            let meta = open(&url, &replica, &format!("writer-{w}")).await;
            let mut versions = Vec::new();
            for i in 0..50 {
                let receipt = meta
                    .commit(insert(vec![file(&format!("w={w}"), &i.to_string(), 1)]))
                    .await
                    .unwrap();
                versions.push(receipt.version);
            }
            versions
        }));
    }
    let mut all_versions = Vec::new();
    for task in tasks {
        let versions = task.await.unwrap();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "a writer's own commits are ordered"
        );
        all_versions.extend(versions);
    }
    all_versions.sort_unstable();
    assert_eq!(
        all_versions,
        (1..=400).collect::<Vec<u64>>(),
        "every version won exactly once"
    );

    let reader = open(&url, &dir.path().join("reader"), "reader").await;
    assert_eq!(reader.sync().await.unwrap(), 400);
    let commits = assert_gapless_log(&reader, 400).await;
    let ids: HashSet<_> = commits.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), 400, "each commit present exactly once");
    let mut per_writer: BTreeMap<String, usize> = BTreeMap::new();
    for commit in &commits {
        *per_writer.entry(commit.writer.clone()).or_default() += 1;
    }
    assert!(per_writer.values().all(|&n| n == 50), "{per_writer:?}");
    let snapshot = reader.snapshot().unwrap();
    assert_eq!(snapshot.file_count().unwrap(), 400);
    let partitions = snapshot.partitions(&PartitionFilter::All).unwrap();
    assert_eq!(partitions.len(), 8);
    assert!(partitions.iter().all(|p| p.files == 50 && p.rows == 50));
}

/// Tasks of one process sharing its meta store take turns instead of
/// racing each other for the log's next version: every commit wins at its
/// first attempt (without the turn, seven of eight lose each round and
/// back off), and the log holds each exactly once.
async fn one_process_commits_take_turns(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.new_table(dir.path(), "turns");
    let meta = Arc::new(open(&url, &dir.path().join("replica"), "host").await);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let meta = meta.clone();
        tasks.push(tokio::spawn(async move {
            let mut attempts = Vec::new();
            for i in 0..10 {
                let receipt = meta
                    .commit(insert(vec![file(&format!("w={w}"), &i.to_string(), 1)]))
                    .await
                    .unwrap();
                attempts.push(receipt.attempts);
            }
            attempts
        }));
    }
    for task in tasks {
        let attempts = task.await.unwrap();
        assert!(attempts.iter().all(|&a| a == 1), "{attempts:?}");
    }
    let reader = open(&url, &dir.path().join("reader"), "reader").await;
    assert_eq!(reader.sync().await.unwrap(), 80);
    let commits = assert_gapless_log(&reader, 80).await;
    let ids: HashSet<_> = commits.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_process_commits_take_turns_local() {
    one_process_commits_take_turns(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_process_commits_take_turns_s3() {
    one_process_commits_take_turns(Backend::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writer_tasks_local() {
    eight_writers_fifty_commits(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writer_tasks_s3() {
    eight_writers_fifty_commits(Backend::S3).await;
}

async fn writer_processes(backend: Backend, processes: usize, commits: usize) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.new_table(dir.path(), "processes");
    let children: Vec<_> = (0..processes)
        .map(|p| {
            std::process::Command::new(env!("CARGO_BIN_EXE_meta-writer"))
                .args([&url, &format!("proc-{p}"), &commits.to_string()])
                .arg(dir.path().join(format!("replica-{p}")))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let reader = open(&url, &dir.path().join("reader"), "reader").await;
    let head = (processes * commits) as u64;
    assert_eq!(reader.sync().await.unwrap(), head);
    let commits_seen = assert_gapless_log(&reader, head).await;
    let paths: HashSet<_> = commits_seen
        .iter()
        .flat_map(|c| c.added.iter().map(|f| f.path.clone()))
        .collect();
    assert_eq!(paths.len() as u64, head, "no commit lost or duplicated");
}

#[tokio::test]
async fn eight_writer_processes_local() {
    writer_processes(Backend::Local, 8, 50).await;
}

#[tokio::test]
async fn four_writer_processes_s3() {
    writer_processes(Backend::S3, 4, 25).await;
}

// ------------------------------------------------------------ conflicting merges

async fn two_merges_race(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.new_table(dir.path(), "merges");
    let a = open(&url, &dir.path().join("a"), "merger-a").await;
    let b = open(&url, &dir.path().join("b"), "merger-b").await;
    for round in 0..10 {
        let source = file("p=1", &format!("source-{round}"), 10);
        a.commit(insert(vec![source.clone()])).await.unwrap();
        b.sync().await.unwrap();
        let (ra, rb) = tokio::join!(
            a.commit(merge(&[&source], file("p=1", &format!("a-{round}"), 10))),
            b.commit(merge(&[&source], file("p=1", &format!("b-{round}"), 10))),
        );
        let (winner, loser) = match (&ra, &rb) {
            (Ok(_), Err(e)) => ("a", e),
            (Err(e), Ok(_)) => ("b", e),
            other => panic!("round {round}: exactly one merge must win, got {other:?}"),
        };
        assert!(
            matches!(e_conflict(loser), Some(Conflict::FileAlreadyRemoved { path, .. }) if *path == source.path),
            "{loser}"
        );
        a.sync().await.unwrap();
        let live = live_paths(&a);
        assert!(!live.contains(&source.path));
        assert!(live.contains(&format!("data/p=1/{winner}-{round}.parquet")));
        let loser_name = if winner == "a" { "b" } else { "a" };
        assert!(
            !live.contains(&format!("data/p=1/{loser_name}-{round}.parquet")),
            "the losing merge changed nothing"
        );
        let unique: HashSet<_> = live.iter().collect();
        assert_eq!(unique.len(), live.len(), "no file is live twice");
        assert_eq!(live.len(), round + 1);
    }
}

fn e_conflict(error: &CommitError) -> Option<&Conflict> {
    error.as_conflict()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_merges_removing_one_file_local() {
    two_merges_race(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_merges_removing_one_file_s3() {
    two_merges_race(Backend::S3).await;
}

/// A commit plans against the replica as last synced while its sync runs:
/// when the sync finds a newer entry that removed the same file, the plan
/// is redone and the merge is a conflict, never a second removal.
#[tokio::test]
async fn a_merge_planned_on_a_stale_replica_still_meets_the_conflict() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let url = backend.new_table(dir.path(), "stale-merge");
        let a = open(&url, &dir.path().join("a"), "merger-a").await;
        let b = open(&url, &dir.path().join("b"), "merger-b").await;
        let source = file("p=1", "source", 10);
        a.commit(insert(vec![source.clone()])).await.unwrap();
        b.sync().await.unwrap();
        a.commit(merge(&[&source], file("p=1", "a", 10)))
            .await
            .unwrap();
        // b's replica still shows the source live.
        assert!(live_paths(&b).contains(&source.path), "{backend:?}");
        let refused = b
            .commit(merge(&[&source], file("p=1", "b", 10)))
            .await
            .unwrap_err();
        assert!(
            matches!(e_conflict(&refused), Some(Conflict::FileAlreadyRemoved { path, by_version: 2 }) if *path == source.path),
            "{backend:?}: {refused}"
        );
        assert!(refused.certainly_not_committed());
        assert_eq!(b.local_version().unwrap(), 2, "{backend:?}");
        assert_eq!(live_paths(&b), ["data/p=1/a.parquet"], "{backend:?}");
    }
}

/// A commit may take a read of the log made while it was being prepared
/// (`read_head`, then `after_read`): a version another writer won after
/// that read is met by the attempt (taken; read again; the next version),
/// and a commit of this process since the read makes the commit read the
/// log itself.
#[tokio::test]
async fn a_commit_after_an_early_read_meets_what_landed_since() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let url = backend.new_table(dir.path(), "early-read");
        let a = open(&url, &dir.path().join("a"), "writer-a").await;
        let b = open(&url, &dir.path().join("b"), "writer-b").await;
        a.commit(insert(vec![file("p=1", "first", 1)]))
            .await
            .unwrap();
        let commit_after = |read, name: &'static str| {
            let a = &a;
            async move {
                a.prepare(insert(vec![file("p=1", name, 1)]))
                    .unwrap()
                    .after_read(read)
                    .win()
                    .await
                    .unwrap()
                    .finish()
                    .await
            }
        };
        let read = a.read_head().await.unwrap().expect("the same table");
        b.commit(insert(vec![file("p=1", "b", 1)])).await.unwrap();
        let receipt = commit_after(read, "a").await;
        assert_eq!((receipt.version, receipt.attempts), (3, 2), "{backend:?}");

        let read = a.read_head().await.unwrap().unwrap();
        a.commit(insert(vec![file("p=1", "a2", 1)])).await.unwrap();
        let receipt = commit_after(read, "a3").await;
        assert_eq!((receipt.version, receipt.attempts), (5, 1), "{backend:?}");
        assert_eq!(live_paths(&a).len(), 5, "{backend:?}");
        assert_gapless_log(&a, 5).await;
    }
}

/// A writer that stalled for over a day cannot add a file it named before
/// the stall: the file may have been merged away, deleted and forgotten
/// since (the replica retires purged names only until a day after their
/// naming). The commit is refused, surely not committed, naming the file;
/// a file named within the day commits.
#[tokio::test]
async fn a_file_named_over_a_day_ago_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::Local.new_table(dir.path(), "stale-name");
    let meta = open(&url, &dir.path().join("r"), "w").await;
    let named = |hours_ago: i64| {
        let ms = chrono::Utc::now().timestamp_millis() - hours_ago * 3_600_000;
        let secs = u64::try_from(ms / 1_000).unwrap();
        let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, 0));
        file("p=1", &id.to_string(), 10)
    };
    let fresh = named(20);
    meta.commit(insert(vec![fresh.clone()])).await.unwrap();
    let stale = named(26);
    let refused = meta.commit(insert(vec![stale.clone()])).await.unwrap_err();
    assert!(
        matches!(e_conflict(&refused), Some(Conflict::FileTooOld { path, age_hours, .. }) if *path == stale.path && (26..=27).contains(age_hours)),
        "{refused}"
    );
    assert!(refused.certainly_not_committed());
    assert_eq!(meta.local_version().unwrap(), 1);
    assert_eq!(live_paths(&meta), [fresh.path.as_str()]);
}

#[tokio::test]
async fn schema_evolves_and_clashes_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::Local.new_table(dir.path(), "schema");
    let meta = open(&url, &dir.path().join("r"), "w").await;
    let column = |name: &str, column_type| ColumnDef {
        name: name.to_owned(),
        column_type,
    };
    let mut draft = insert(vec![file("p=1", "a", 1)]);
    draft.columns = vec![
        column("n", ColumnType::Int64),
        column("s", ColumnType::String),
    ];
    assert_eq!(
        meta.commit(draft)
            .await
            .unwrap()
            .commit
            .schema_changes
            .len(),
        2
    );
    let mut draft = insert(vec![file("p=1", "b", 1)]);
    draft.columns = vec![
        column("n", ColumnType::Float64),
        column("t", ColumnType::Timestamp),
    ];
    let receipt = meta.commit(draft).await.unwrap();
    assert_eq!(
        receipt.commit.schema_changes,
        [
            column("n", ColumnType::Float64),
            column("t", ColumnType::Timestamp)
        ]
    );
    let mut draft = insert(vec![file("p=1", "c", 1)]);
    draft.columns = vec![column("s", ColumnType::Boolean)];
    let error = meta.commit(draft).await.unwrap_err();
    assert_eq!(
        error.as_conflict(),
        Some(&Conflict::Schema {
            column: "s".into(),
            existing: ColumnType::String,
            proposed: ColumnType::Boolean
        })
    );
    assert_eq!(meta.sync().await.unwrap(), 2, "the clash committed nothing");
    let schema = meta.snapshot().unwrap().schema().unwrap();
    assert_eq!(
        schema,
        [
            column("n", ColumnType::Float64),
            column("s", ColumnType::String),
            column("t", ColumnType::Timestamp)
        ]
    );
}

// ------------------------------------------------------------ checkpoints, damage, expiry

/// Everything a replica says, for comparing replicas.
fn state(snapshot: &Snapshot) -> String {
    format!(
        "version {}\nschema {:?}\npartitions {:?}\nfiles {:?}\ntombstones {:?}",
        snapshot.version(),
        snapshot.schema().unwrap(),
        snapshot.partitions(&PartitionFilter::All).unwrap(),
        snapshot.files(&PartitionFilter::All).unwrap(),
        {
            let mut t = snapshot.tombstones().unwrap();
            t.sort_by(|a, b| a.path.cmp(&b.path));
            t
        },
    )
}

#[tokio::test]
async fn damaged_log_entry_is_named() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let url = backend.new_table(dir.path(), "damaged-log");
        let meta = open(&url, &dir.path().join("w"), "w").await;
        meta.commit(insert(vec![file("p=1", "a", 1)]))
            .await
            .unwrap();
        let store = meta.object_store();
        // A truncated entry at version 2, as a crashed non-atomic writer
        // could leave on a store without atomic puts.
        store
            .put(
                &Path::from("_icedb/log/00000000000000000002.json"),
                PutPayload::from_static(b"{\"format\":1,\"vers"),
            )
            .await
            .unwrap();
        let error =
            MetaStore::open_location(&location(&url), options(&dir.path().join("fresh"), "r"))
                .await
                .err()
                .unwrap();
        match &error {
            MetaError::CorruptLog { object, .. } => assert!(
                object.ends_with("_icedb/log/00000000000000000002.json"),
                "{error}"
            ),
            other => panic!("{backend:?}: expected CorruptLog, got {other}"),
        }
        assert!(error.to_string().contains("00000000000000000002.json"));
    }
}

#[tokio::test]
async fn garbage_checkpoint_falls_back_to_an_older_one() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let url = backend.new_table(dir.path(), "garbage-checkpoint");
        let mut opts = options(&dir.path().join("w"), "w");
        opts.checkpoint_interval = 5;
        let meta = MetaStore::open_location(&location(&url), opts)
            .await
            .unwrap();
        for i in 0..12 {
            meta.commit(insert(vec![file("p=1", &i.to_string(), 1)]))
                .await
                .unwrap();
        }
        let store = meta.object_store();
        let checkpoints: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
            store.list(Some(&Path::from("_icedb/checkpoints"))),
        )
        .await
        .unwrap();
        assert_eq!(checkpoints.len(), 2, "checkpoints at 5 and 10");
        store
            .put(
                &Path::from("_icedb/checkpoints/00000000000000000010.redb"),
                PutPayload::from_static(b"garbage"),
            )
            .await
            .unwrap();
        let fresh = open(&url, &dir.path().join("fresh"), "r").await;
        assert_eq!(fresh.local_version().unwrap(), 12);
        assert_eq!(
            state(&fresh.snapshot().unwrap()),
            state(&meta.snapshot().unwrap())
        );
    }
}

#[tokio::test]
async fn expired_log_is_bridged_by_checkpoints() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let url = backend.new_table(dir.path(), "expiry");
        let mut opts = options(&dir.path().join("w"), "w");
        opts.checkpoint_interval = 10;
        let writer = MetaStore::open_location(&location(&url), opts)
            .await
            .unwrap();
        let lagging = open(&url, &dir.path().join("lagging"), "lagging").await;
        for i in 0..35 {
            writer
                .commit(insert(vec![file("p=1", &i.to_string(), 1)]))
                .await
                .unwrap();
        }
        let report = writer
            .expire(ExpirePolicy {
                keep_checkpoints: 1,
                keep_log_versions: 5,
            })
            .await
            .unwrap();
        assert_eq!(report.checkpoints_deleted, 2, "10 and 20 go, 30 stays");
        assert_eq!(report.log_entries_deleted, 30);
        let again = writer
            .expire(ExpirePolicy {
                keep_checkpoints: 1,
                keep_log_versions: 5,
            })
            .await
            .unwrap();
        assert_eq!(again, Default::default(), "idempotent");
        // A replica at version 0 and a brand-new one both reach the head.
        assert_eq!(lagging.sync().await.unwrap(), 35);
        let fresh = open(&url, &dir.path().join("fresh"), "r").await;
        assert_eq!(fresh.local_version().unwrap(), 35);
        assert_eq!(
            state(&fresh.snapshot().unwrap()),
            state(&writer.snapshot().unwrap())
        );
        assert_eq!(
            state(&lagging.snapshot().unwrap()),
            state(&writer.snapshot().unwrap())
        );
    }
}

#[tokio::test]
async fn deleting_the_replica_is_safe() {
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::Local.new_table(dir.path(), "delete-replica");
    let replica_dir = dir.path().join("r");
    let expected = {
        let meta = open(&url, &replica_dir, "w").await;
        let a = file("p=1", "a", 3);
        meta.commit(insert(vec![a.clone(), file("p=2", "b", 4)]))
            .await
            .unwrap();
        meta.commit(merge(&[&a], file("p=1", "c", 3)))
            .await
            .unwrap();
        state(&meta.snapshot().unwrap())
    };
    std::fs::remove_dir_all(&replica_dir).unwrap();
    let meta = open(&url, &replica_dir, "w").await;
    assert_eq!(state(&meta.snapshot().unwrap()), expected);
}

// ------------------------------------------------------------ a store that ignores conditional creates

/// Wraps a store and turns every conditional create into an overwrite, as
/// some S3-compatible servers silently do.
#[derive(Debug)]
struct IgnoresCreate(Arc<dyn ObjectStore>);

impl std::fmt::Display for IgnoresCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IgnoresCreate({})", self.0)
    }
}

#[async_trait::async_trait]
impl ObjectStore for IgnoresCreate {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        opts.mode = object_store::PutMode::Overwrite;
        self.0.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.0.get_opts(location, options).await
    }
    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.0.delete(location).await
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.0.copy(from, to).await
    }
    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.0.copy_if_not_exists(from, to).await
    }
}

#[tokio::test]
async fn a_store_ignoring_conditional_creates_is_refused() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let url = backend.new_table(dir.path(), "unsafe-store");
        let inner = location(&url).open_store().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(IgnoresCreate(inner.clone()));
        let meta = MetaStore::open(store, &url, options(&dir.path().join("r"), "w"))
            .await
            .unwrap();
        let error = meta
            .commit(insert(vec![file("p=1", "a", 1)]))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                CommitError::NotCommitted(NotCommitted::Meta(MetaError::UnsafeStore(_)))
            ),
            "{backend:?}: {error}"
        );
        assert!(
            error
                .to_string()
                .contains("does not honour conditional creates"),
            "{error}"
        );
        let log: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
            inner.list(Some(&Path::from("_icedb/log"))),
        )
        .await
        .unwrap();
        assert!(log.is_empty(), "nothing was committed");
    }
}

// ------------------------------------------------------------ property test

mod replay {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Insert `n` files into partition `p`.
        Insert {
            partition: u8,
            files: u8,
            column: Option<(u8, bool)>,
        },
        /// Merge the live files of partition `p` (if at least two) into one.
        Merge { partition: u8 },
        /// Drop partition `p` (tombstone all its files).
        Drop { partition: u8 },
        /// Purge every tombstone.
        Vacuum,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..4, 1u8..4, proptest::option::of((0u8..3, any::<bool>())))
                .prop_map(|(partition, files, column)| Op::Insert { partition, files, column }),
            2 => (0u8..4).prop_map(|partition| Op::Merge { partition }),
            1 => (0u8..4).prop_map(|partition| Op::Drop { partition }),
            1 => Just(Op::Vacuum),
        ]
    }

    async fn run(ops: Vec<Op>) {
        let dir = tempfile::tempdir().unwrap();
        let url = Backend::Local.new_table(dir.path(), "prop");
        let mut opts = options(&dir.path().join("writer"), "w");
        opts.checkpoint_interval = 3;
        let meta = MetaStore::open_location(&location(&url), opts)
            .await
            .unwrap();
        let mut next_file = 0u32;
        for op in ops {
            let snapshot = meta.snapshot().unwrap();
            let draft = match op {
                Op::Insert {
                    partition,
                    files,
                    column,
                } => {
                    let mut draft = insert(
                        (0..files)
                            .map(|_| {
                                next_file += 1;
                                file(
                                    &format!("p={partition}"),
                                    &next_file.to_string(),
                                    u64::from(files),
                                )
                            })
                            .collect(),
                    );
                    if let Some((name, float)) = column {
                        let column_type = if float {
                            ColumnType::Float64
                        } else {
                            ColumnType::Int64
                        };
                        draft.columns = vec![ColumnDef {
                            name: format!("c{name}"),
                            column_type,
                        }];
                    }
                    draft
                }
                Op::Merge { partition } => {
                    let live = snapshot
                        .files(&PartitionFilter::Prefix(format!("p={partition}")))
                        .unwrap();
                    if live.len() < 2 {
                        continue;
                    }
                    next_file += 1;
                    let mut merged = file(&format!("p={partition}"), &next_file.to_string(), 0);
                    merged.rows = live.iter().map(|f| f.rows).sum();
                    merge(&live.iter().collect::<Vec<_>>(), merged)
                }
                Op::Drop { partition } => {
                    let live = snapshot
                        .files(&PartitionFilter::Prefix(format!("p={partition}")))
                        .unwrap();
                    if live.is_empty() {
                        continue;
                    }
                    let mut draft = CommitDraft::new(Operation::DropPartitions);
                    draft.removed = live.iter().map(FileRef::from).collect();
                    draft
                }
                Op::Vacuum => {
                    let tombstones = snapshot.tombstones().unwrap();
                    if tombstones.is_empty() {
                        continue;
                    }
                    let mut draft = CommitDraft::new(Operation::Vacuum);
                    draft.purged = tombstones.iter().map(FileRef::from).collect();
                    draft
                }
            };
            meta.commit(draft).await.unwrap();
        }
        let expected = state(&meta.snapshot().unwrap());

        // From the newest checkpoint plus the log after it.
        let from_checkpoint = open(&url, &dir.path().join("from-checkpoint"), "r1").await;
        assert_eq!(
            state(&from_checkpoint.snapshot().unwrap()),
            expected,
            "checkpoint bootstrap"
        );

        // From nothing: every checkpoint deleted, the whole log replayed.
        let store = meta.object_store();
        let checkpoints: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
            store.list(Some(&Path::from("_icedb/checkpoints"))),
        )
        .await
        .unwrap();
        for checkpoint in checkpoints {
            store.delete(&checkpoint.location).await.unwrap();
        }
        let replayed = open(&url, &dir.path().join("replayed"), "r2").await;
        assert_eq!(
            state(&replayed.snapshot().unwrap()),
            expected,
            "full replay"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn checkpoint_bootstrap_equals_full_replay(ops in proptest::collection::vec(op(), 1..30)) {
            tokio::runtime::Runtime::new().unwrap().block_on(run(ops));
        }
    }
}

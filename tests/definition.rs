//! A table carries its own definition: created with a non-default sort
//! order and hourly partitions, later inserts and merges without flags
//! follow it (files checked); a contradicting flag fails naming both values;
//! a plugin with other bytes may not write; two hosts with different configs
//! on one table: the second refuses to start.

use std::path::{Path, PathBuf};
use std::process::Output;

use icedb_e2e::{HostProcess, gen_events, icedb_host, plugin, succeeded};

/// `count(*)` of the table, through the CLI.
fn count_rows(dir: &Path, root: &str) -> u64 {
    let csv = succeeded(&icedb_host(
        dir,
        &[
            "query",
            "--table",
            root,
            "--format",
            "csv",
            "SELECT count(*) AS n FROM events",
        ],
    ));
    csv.trim()
        .strip_prefix("n\n")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{csv}"))
}

/// These tests look at the files inserts write: rows go to files at once,
/// not into commits (inlined commits have their own tests, `inline.rs`).
const NO_INLINE: &str = "[tables.inline]\nmax_rows = 0\n";

/// `icedb-host insert ARGS` writing files at once (see [`NO_INLINE`]).
fn insert(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["insert", "--inline-max-rows", "0"];
    all.extend_from_slice(args);
    icedb_host(dir, &all)
}

/// Writes `dir/file`: a config with one table `events` at `root`, then
/// `rest` (more keys of that table, or sections).
fn events_config(dir: &Path, file: &str, root: &str, rest: &str) -> PathBuf {
    let config = dir.join(file);
    std::fs::write(
        &config,
        format!("[[tables]]\nname = \"events\"\nroot = \"{root}\"\n{rest}\n{NO_INLINE}"),
    )
    .unwrap();
    config
}

fn failed(output: Output) -> String {
    assert!(!output.status.success(), "expected a failure");
    String::from_utf8(output.stderr).unwrap()
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            found.push(path);
        }
    }
    found
}

/// The sort order a file says it has, and whether its rows really are in
/// that order (checked on the `user_id` and `ts` columns).
fn file_sort(path: &Path) -> (String, bool) {
    use arrow::array::{Array, AsArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let order = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == "icedb.sort_order"))
        .and_then(|k| k.value.clone())
        .unwrap_or_default();
    let mut keys = Vec::new();
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        let users = batch.column_by_name("user_id").unwrap().as_string::<i32>();
        let ts = arrow::compute::cast(
            batch.column_by_name("ts").unwrap(),
            &arrow::datatypes::DataType::Int64,
        )
        .unwrap();
        let ts = ts.as_primitive::<arrow::datatypes::Int64Type>();
        for row in 0..batch.num_rows() {
            keys.push((
                users.value(row).to_owned(),
                ts.is_valid(row).then(|| ts.value(row)),
            ));
        }
    }
    (order, keys.windows(2).all(|w| w[0] <= w[1]))
}

#[test]
fn later_inserts_and_merges_follow_the_recorded_definition() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("table");
    let root_arg = root.display().to_string();
    // Created from a config: sort by user_id, hourly partitions.
    let config = events_config(
        dir.path(),
        "create.toml",
        &root_arg,
        "sort_order = [\"user_id\", \"ts\"]\n[tables.partitioning]\ngranularity = \"hour\"\n",
    );
    let rows = dir.path().join("rows.ndjson");
    std::fs::write(&rows, gen_events(400, 1)).unwrap();
    let rows_arg = rows.display().to_string();
    succeeded(&icedb_host(
        dir.path(),
        &[
            "insert",
            "--config",
            &config.display().to_string(),
            &rows_arg,
        ],
    ));
    // Later: bare flags, nothing about the definition.
    std::fs::write(&rows, gen_events(400, 2)).unwrap();
    succeeded(&insert(dir.path(), &["--table", &root_arg, &rows_arg]));
    let status = succeeded(&icedb_host(dir.path(), &["status", "--table", &root_arg]));
    assert!(status.contains("sort order user_id, ts"), "{status}");
    assert!(status.contains("\"granularity\":\"hour\""), "{status}");
    let files = parquet_files(&root.join("data"));
    assert!(!files.is_empty());
    for file in &files {
        assert!(
            file.display().to_string().contains("/h="),
            "hourly partitions: {}",
            file.display()
        );
        let (order, sorted) = file_sort(file);
        assert_eq!(order, "user_id,ts", "{}", file.display());
        assert!(sorted, "{} is sorted by user_id, ts", file.display());
    }
    // A merge without flags keeps the recorded order.
    succeeded(&icedb_host(dir.path(), &["merge", "--table", &root_arg]));
    succeeded(&icedb_host(
        dir.path(),
        &["vacuum", "--table", &root_arg, "--grace", "0s", "--force"],
    ));
    let merged = parquet_files(&root.join("data"));
    assert!(merged.len() < files.len(), "the merge compacted");
    for file in &merged {
        let (order, sorted) = file_sort(file);
        assert_eq!(order, "user_id,ts");
        assert!(sorted, "merged {} is sorted by user_id, ts", file.display());
    }
    assert_eq!(count_rows(dir.path(), &root_arg), 800);

    // A contradicting flag fails, naming both values, and writes nothing.
    let error = failed(insert(
        dir.path(),
        &["--table", &root_arg, "--sort-order", "event,ts", &rows_arg],
    ));
    assert!(error.contains("sort order"), "{error}");
    assert!(
        error.contains("user_id") && error.contains("event"),
        "{error}"
    );
}

/// `component` with a custom section appended: the same plugin, other bytes.
fn with_other_bytes(component: &Path, to: &Path) {
    let mut bytes = std::fs::read(component).unwrap();
    bytes.extend_from_slice(&[0x00, 0x06, 0x04, b'n', b'o', b't', b'e', b'x']);
    std::fs::write(to, bytes).unwrap();
}

#[test]
fn a_plugin_with_other_bytes_may_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let root_arg = dir.path().join("table").display().to_string();
    let rows = dir.path().join("rows.ndjson");
    std::fs::write(&rows, gen_events(100, 3)).unwrap();
    let rows_arg = rows.display().to_string();
    let flatten = plugin("flatten-json");
    let flatten_arg = flatten.display().to_string();
    succeeded(&insert(
        dir.path(),
        &[
            "--table",
            &root_arg,
            "--format-plugin",
            &flatten_arg,
            &rows_arg,
        ],
    ));
    let other = dir.path().join("flatten-json.wasm");
    with_other_bytes(&flatten, &other);
    let error = failed(insert(
        dir.path(),
        &[
            "--table",
            &root_arg,
            "--format-plugin",
            &other.display().to_string(),
            &rows_arg,
        ],
    ));
    assert!(error.contains("SHA-256"), "{error}");
    let status = succeeded(&icedb_host(dir.path(), &["status", "--table", &root_arg]));
    let recorded = status
        .split("\"sha256\":\"")
        .nth(1)
        .map(|s| &s[..64])
        .unwrap_or_else(|| panic!("{status}"));
    assert!(error.contains(recorded), "names the recorded hash: {error}");
    // Without the plugin: may read, may not write.
    let error = failed(insert(dir.path(), &["--table", &root_arg, &rows_arg]));
    assert!(error.contains("flatten-json.wasm"), "{error}");
    assert_eq!(count_rows(dir.path(), &root_arg), 100);
}

#[test]
fn a_second_host_with_another_definition_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let root_arg = dir.path().join("table").display().to_string();
    let rows = dir.path().join("rows.ndjson");
    std::fs::write(&rows, gen_events(50, 4)).unwrap();
    succeeded(&insert(
        dir.path(),
        &["--table", &root_arg, &rows.display().to_string()],
    ));
    let config = events_config(
        dir.path(),
        "other.toml",
        &root_arg,
        "sort_order = [\"user_id\"]\n[server]\nlisten = \"127.0.0.1:0\"\n",
    );
    let refused = HostProcess::try_start(
        dir.path(),
        &["--config", &config.display().to_string()],
        &[(
            "XDG_CACHE_HOME",
            dir.path().join("host").display().to_string(),
        )],
    );
    let log = refused.err().expect("the host must refuse to start");
    assert!(log.contains("sort order"), "{log}");
    assert!(log.contains("user_id") && log.contains("event"), "{log}");
}

#[test]
fn alter_is_logged_and_merges_resort_files_of_the_older_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("table");
    let root_arg = root.display().to_string();
    let rows = dir.path().join("rows.ndjson");
    std::fs::write(&rows, gen_events(400, 1)).unwrap();
    let rows_arg = rows.display().to_string();
    // Created with the default order (event, ts).
    succeeded(&insert(dir.path(), &["--table", &root_arg, &rows_arg]));
    let before = parquet_files(&root.join("data"));
    assert!(before.iter().all(|f| file_sort(f).0 == "event,ts"));

    // A process that opened the table before the alter.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let plugins = icedb::PluginHost::new(Default::default()).unwrap();
    let mut stale_config = icedb::TableConfig::new("events", root_arg.clone());
    stale_config.explicit = icedb::Explicit::none();
    let stale = runtime
        .block_on(icedb::Table::open(stale_config, &plugins))
        .unwrap();

    let altered = succeeded(&icedb_host(
        dir.path(),
        &["alter", "--table", &root_arg, "--sort-order", "user_id,ts"],
    ));
    assert!(altered.contains("altered at version 2"), "{altered}");
    assert!(
        altered.contains("\"sort_order\":[\"user_id\",\"ts\"]"),
        "{altered}"
    );
    let again = succeeded(&icedb_host(
        dir.path(),
        &["alter", "--table", &root_arg, "--sort-order", "user_id,ts"],
    ));
    assert!(again.contains("unchanged"), "{again}");

    // The stale process may not write with the old definition.
    let refused = runtime
        .block_on(stale.insert_ndjson(gen_events(10, 9).as_bytes()))
        .expect_err("a write with the replaced definition is refused");
    assert!(
        matches!(
            refused,
            icedb::TableError::Commit(icedb::CommitError::Conflict(_))
        ),
        "{refused}"
    );
    drop(stale);

    // Later inserts follow the new order; the log records the alter.
    std::fs::write(&rows, gen_events(400, 2)).unwrap();
    succeeded(&insert(dir.path(), &["--table", &root_arg, &rows_arg]));
    let status = succeeded(&icedb_host(dir.path(), &["status", "--table", &root_arg]));
    assert!(status.contains("sort order user_id, ts"), "{status}");
    for file in parquet_files(&root.join("data")) {
        if !before.contains(&file) {
            assert_eq!(file_sort(&file).0, "user_id,ts");
        }
    }
    // A merge of files of both orders writes files sorted by the new one.
    succeeded(&icedb_host(dir.path(), &["merge", "--table", &root_arg]));
    succeeded(&icedb_host(
        dir.path(),
        &["vacuum", "--table", &root_arg, "--grace", "0s", "--force"],
    ));
    let merged = parquet_files(&root.join("data"));
    assert!(
        merged.iter().all(|f| !before.contains(f)),
        "every old file merged"
    );
    for file in &merged {
        let (order, sorted) = file_sort(file);
        assert_eq!(order, "user_id,ts", "{}", file.display());
        assert!(sorted, "merged {} is sorted by user_id, ts", file.display());
    }
    assert_eq!(count_rows(dir.path(), &root_arg), 800);

    // Partitioning lays out the files: not altered under live files.
    let config = events_config(
        dir.path(),
        "hourly.toml",
        &root_arg,
        "[tables.partitioning]\ngranularity = \"hour\"\n",
    );
    let error = failed(icedb_host(
        dir.path(),
        &["alter", "--config", &config.display().to_string()],
    ));
    assert!(
        error.contains("partitioning can only be altered"),
        "{error}"
    );
    assert_eq!(count_rows(dir.path(), &root_arg), 800);
}

//! Shared set-up for IceDB's end-to-end tests: where the built plugin
//! components and binaries are, and the S3-compatible server that
//! `scripts/test.sh` starts on 127.0.0.1 (moto).
//!
//! Nothing here is mocked: missing parts panic with the command that
//! provides them, so a test can never pass without its real dependencies.

pub mod faults;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test.sh, which builds and starts what they need")
    })
}

/// A plugin component built from `plugins/` by `scripts/build-plugins.sh`.
pub fn plugin(name: &str) -> PathBuf {
    let path = PathBuf::from(required_env("ICEDB_PLUGIN_DIR")).join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins.sh",
        path.display()
    );
    path
}

/// A binary of this workspace, built in the same profile as the test.
pub fn binary(name: &str) -> PathBuf {
    // Test executables live in <target>/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("current test executable");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile directory")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build --release --workspace --bins`; scripts/test.sh does)",
        path.display()
    );
    path
}

/// DuckDB's extension directory with httpfs pre-installed (scripts/setup.sh).
pub fn duckdb_extension_dir() -> PathBuf {
    PathBuf::from(required_env("ICEDB_DUCKDB_EXTENSION_DIR"))
}

/// An in-memory DuckDB that loads extensions only from the pre-installed
/// directory (no download, no autoload).
pub fn duckdb_offline() -> duckdb::Connection {
    let config = duckdb::Config::default()
        .with(
            "extension_directory",
            duckdb_extension_dir().to_str().unwrap(),
        )
        .unwrap()
        .with("autoinstall_known_extensions", "false")
        .unwrap()
        .with("autoload_known_extensions", "false")
        .unwrap();
    duckdb::Connection::open_in_memory_with_flags(config).unwrap()
}

/// [`duckdb_offline`] with the delta extension loaded and, for a table on
/// the test S3 server, httpfs and a secret reaching it.
pub fn duckdb_delta_reader(root: &str) -> duckdb::Connection {
    let db = duckdb_offline();
    db.execute_batch("LOAD delta;").unwrap();
    if root.starts_with("s3://") {
        db.execute_batch(&format!(
            "LOAD httpfs;
             CREATE SECRET moto (TYPE S3, KEY_ID '{S3_KEY_ID}', SECRET '{S3_SECRET}', REGION '{S3_REGION}',
                                 ENDPOINT '{}', URL_STYLE 'path', USE_SSL false);",
            S3::from_env().host_port()
        ))
        .unwrap();
    }
    db
}

/// The S3-compatible test server.
pub struct S3 {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

pub const S3_REGION: &str = "us-east-1";
pub const S3_KEY_ID: &str = "icedb-test";
pub const S3_SECRET: &str = "icedb-test-secret";

impl S3 {
    pub fn from_env() -> S3 {
        S3 {
            endpoint: required_env("ICEDB_TEST_S3_ENDPOINT"),
        }
    }

    /// `127.0.0.1:PORT`, the form DuckDB's `ENDPOINT` wants.
    pub fn host_port(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    /// Creates a bucket with a name unique to this test run and returns it.
    pub fn create_bucket(&self, label: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ureq::put(&format!("{}/{name}", self.endpoint))
            .send_empty()
            .unwrap_or_else(|e| panic!("creating bucket {name} on {}: {e}", self.endpoint));
        name
    }

    /// The size of an object as the server lists it (ListObjectsV2, not
    /// through IceDB or DuckDB).
    pub fn object_size(&self, bucket: &str, key: &str) -> Option<u64> {
        let listing = ureq::get(&format!(
            "{}/{bucket}?list-type=2&prefix={key}",
            self.endpoint
        ))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
        let entry = &listing[listing.find(&format!("<Key>{key}</Key>"))?..];
        let size = &entry[entry.find("<Size>")? + "<Size>".len()..];
        size[..size.find("</Size>")?].parse().ok()
    }
}

/// Where a test table lives: a local directory or a bucket on the test S3
/// server. Meta-store tests run against both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Local, Backend::S3];

    /// A new, empty table root for this backend (kept alive by `dir`).
    pub fn new_table(self, dir: &std::path::Path, label: &str) -> String {
        match self {
            Backend::Local => {
                let root = dir.join(label);
                std::fs::create_dir_all(&root).unwrap();
                format!("file://{}", root.display())
            }
            Backend::S3 => format!(
                "s3://{}/tables/{label}",
                S3::from_env().create_bucket(label)
            ),
        }
    }
}

/// S3 options that reach the test server (credentials from the AWS
/// variables scripts/test.sh exports).
pub fn s3_options() -> icedb_meta::S3Options {
    icedb_meta::S3Options {
        endpoint: Some(S3::from_env().endpoint),
        region: Some(S3_REGION.to_owned()),
        allow_http: Some(true),
        path_style: Some(true),
        access_key_id: Some(S3_KEY_ID.to_owned()),
        secret_access_key: Some(S3_SECRET.to_owned()),
        ..icedb_meta::S3Options::default()
    }
}

/// The table every engine test uses: named `events`, sorted by
/// [event, ts], reaching the test S3 server, with the pre-installed httpfs
/// and a private replica directory (as a separate process would have).
pub fn table_config(root: &str, replica_dir: PathBuf) -> icedb::TableConfig {
    let mut config = icedb::TableConfig::new("events", root);
    config.s3 = s3_options();
    config.sort_order = vec!["event".into(), "ts".into()];
    config.duckdb_extension_dir = Some(duckdb_extension_dir());
    config.meta = icedb_meta::MetaOptions {
        replica_dir: Some(replica_dir),
        max_commit_attempts: 1_000,
        ..icedb_meta::MetaOptions::default()
    };
    config
}

/// Opens a table with [`table_config`] and the default plugin host.
pub async fn open_table(root: &str, replica_dir: PathBuf) -> icedb::Table {
    icedb::Table::open(
        table_config(root, replica_dir),
        &icedb::PluginHost::new(Default::default()).unwrap(),
    )
    .await
    .unwrap()
}

/// The first row of a query's answer at the newest version, every column
/// cast to f64 (counts, sums, averages), for assertions.
pub async fn first_row(table: &icedb::Table, sql: &str) -> Vec<f64> {
    let result = table
        .query(sql, &icedb::QueryOptions::default())
        .await
        .unwrap();
    first_row_of(&result)
}

/// The first row of an answer, every column cast to f64.
pub fn first_row_of(result: &icedb::QueryResult) -> Vec<f64> {
    use arrow::array::AsArray;
    let batch = result
        .batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .expect("a row");
    batch
        .columns()
        .iter()
        .map(|column| {
            let column =
                arrow::compute::cast(column, &arrow::datatypes::DataType::Float64).unwrap();
            column
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(0)
        })
        .collect()
}

/// A query's single integer answer (a count, say).
pub async fn scalar(table: &icedb::Table, sql: &str) -> i64 {
    first_row(table, sql).await[0] as i64
}

/// An answer's single integer (a count, say).
pub fn scalar_of(result: &icedb::QueryResult) -> i64 {
    first_row_of(result)[0] as i64
}

/// The paths of the live files the meta store lists that are objects on the
/// store (inline parts are not), sorted.
pub fn live_paths(meta: &icedb_meta::MetaStore) -> Vec<String> {
    let mut paths: Vec<String> = meta
        .snapshot()
        .unwrap()
        .files(&icedb_meta::PartitionFilter::All)
        .unwrap()
        .into_iter()
        .filter(|f| !f.is_inline())
        .map(|f| f.path)
        .collect();
    paths.sort();
    paths
}

/// Hive partition values are paths, never data columns of the schema.
pub fn assert_no_partition_columns(table: &icedb::Table) {
    let columns: Vec<String> = table
        .schema()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert!(
        !columns.iter().any(|c| c == "y" || c == "m" || c == "d"),
        "partition columns are not data: {columns:?}"
    );
}

/// A running `icedb-host run` process. Its log (stderr) is collected for
/// assertions and failure messages; it is killed when dropped.
pub struct HostProcess {
    child: Option<std::process::Child>,
    /// `http://127.0.0.1:<port>`
    pub url: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl HostProcess {
    /// Starts `icedb-host run <args>` in `dir` with `env` added and waits
    /// until it listens. Panics with its log if it exits first.
    pub fn start(dir: &std::path::Path, args: &[&str], env: &[(&str, String)]) -> HostProcess {
        match Self::try_start(dir, args, env) {
            Ok(host) => host,
            Err(log) => panic!("icedb-host run {args:?} did not start:\n{log}"),
        }
    }

    /// Like [`start`](Self::start), but returns the log if the process
    /// exits before listening.
    pub fn try_start(
        dir: &std::path::Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Result<HostProcess, String> {
        Self::try_start_binary(&binary("icedb-host"), dir, args, env)
    }

    /// Like [`start`](Self::start), with another build of `icedb-host`
    /// (benchmarks comparing builds side by side).
    pub fn start_binary(
        binary: &std::path::Path,
        dir: &std::path::Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> HostProcess {
        match Self::try_start_binary(binary, dir, args, env) {
            Ok(host) => host,
            Err(log) => panic!("{} run {args:?} did not start:\n{log}", binary.display()),
        }
    }

    fn try_start_binary(
        binary: &std::path::Path,
        dir: &std::path::Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Result<HostProcess, String> {
        use std::io::BufRead;
        let mut command = std::process::Command::new(binary);
        command
            .arg("run")
            .args(args)
            .current_dir(dir)
            .env("ICEDB_DUCKDB_EXTENSION_DIR", duckdb_extension_dir())
            .env("ICEDB_LOG", "info,icedb_meta=warn")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawning icedb-host");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on http://") {
                    let _ = address_tx.send(line[at + "listening on ".len()..].trim().to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        match address_rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(url) => Ok(HostProcess {
                child: Some(child),
                url,
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(std::time::Duration::from_millis(100));
                Err(log.lock().unwrap().clone())
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal (`TERM`, `KILL`, ...).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits (up to two minutes) for the process to exit.
    pub fn wait(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("icedb-host did not exit:\n{}", self.log());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An HTTP client that returns 4xx/5xx answers instead of failing on them.
///
/// Each phase of a call has its timeout rather than the call as a whole:
/// with a deadline covering name resolution, ureq resolves on a thread of
/// its own, spawned for every request (pooled connections included), even
/// for `127.0.0.1` — a thread per request that the HTTP ingest benchmark's
/// clients paid on the host's cores.
pub fn http() -> ureq::Agent {
    let limit = Some(std::time::Duration::from_secs(300));
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(limit)
        .timeout_send_request(limit)
        .timeout_send_body(limit)
        .timeout_recv_response(limit)
        .timeout_recv_body(limit)
        .build()
        .into()
}

/// `gen-events` output: `rows` standard events as NDJSON.
pub fn gen_events(rows: usize, seed: u64) -> String {
    let output = std::process::Command::new(binary("icedb-host"))
        .args([
            "gen-events",
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

/// A live file of `table` (an object, not an inline part) with its Parquet
/// reader (read whole from the table's store, with the parquet crate
/// rather than DuckDB), in log order.
pub async fn live_file_readers(
    table: &icedb::Table,
) -> Vec<(
    icedb_meta::DataFile,
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder<bytes::Bytes>,
)> {
    let store = table.meta().object_store();
    let files = live_files(table);
    let mut readers = Vec::with_capacity(files.len());
    for file in files.into_iter().filter(|f| !f.is_inline()) {
        let bytes = store
            .get(&object_store::path::Path::from(file.path.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        readers.push((file, reader));
    }
    readers
}

/// Every live file and inline part of `table`, in log order.
fn live_files(table: &icedb::Table) -> Vec<icedb_meta::DataFile> {
    table
        .meta()
        .snapshot()
        .unwrap()
        .files(&icedb_meta::PartitionFilter::All)
        .unwrap()
}

/// Every live file and inline part of `table` with its rows (files read
/// with the parquet crate, parts decoded from the log), in log order.
pub async fn live_file_rows(
    table: &icedb::Table,
) -> Vec<(icedb_meta::DataFile, Vec<arrow::array::RecordBatch>)> {
    let mut rows: Vec<_> = live_file_readers(table)
        .await
        .into_iter()
        .map(|(file, reader)| {
            let batches = reader.build().unwrap().map(Result::unwrap).collect();
            (file, batches)
        })
        .collect();
    for part in live_files(table).into_iter().filter(|f| f.is_inline()) {
        let batches = icedb::inline_rows(&part).unwrap();
        rows.push((part, batches));
    }
    rows
}

/// Vacuum everything dead now (no grace, forced below the retention floor;
/// tests only: no writer is in flight).
pub fn vacuum_now() -> icedb::VacuumOptions {
    icedb::VacuumOptions {
        grace: std::time::Duration::ZERO,
        force: true,
        expire: None,
        orphans: true,
    }
}

/// Every object under the table's `data/`, sorted (committed or not).
pub async fn data_objects(table: &icedb::Table) -> Vec<String> {
    let mut paths: Vec<String> = table
        .list_data_objects()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.location.to_string())
        .collect();
    paths.sort();
    paths
}

/// A data file for meta-store tests: `data/<partition>/<name>.parquet`.
pub fn data_file(partition: &str, name: &str, rows: u64) -> icedb_meta::DataFile {
    icedb_meta::DataFile {
        path: format!("data/{partition}/{name}.parquet"),
        partition: partition.to_owned(),
        bytes: rows * 10,
        rows,
        created_ms: 1_000,
        columns: Default::default(),
        inline: None,
        segment: None,
    }
}

/// A draft inserting `files`.
pub fn insert_draft(files: Vec<icedb_meta::DataFile>) -> icedb_meta::CommitDraft {
    let mut draft = icedb_meta::CommitDraft::new(icedb_meta::Operation::Insert);
    draft.added = files;
    draft
}

/// `icedb-host <args>` run in `dir`, with a private cache directory (its
/// replicas) and the pre-installed DuckDB extensions.
pub fn icedb_host(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(binary("icedb-host"))
        .args(args)
        .current_dir(dir)
        .env("ICEDB_DUCKDB_EXTENSION_DIR", duckdb_extension_dir())
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("ICEDB_LOG", "warn")
        .output()
        .unwrap()
}

/// A command's standard output, asserting it succeeded (its standard error
/// in the message otherwise).
pub fn succeeded(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

//! Shared set-up for IceDB's end-to-end tests: where the built plugin
//! components and binaries are, and the S3-compatible server that
//! `scripts/test.sh` starts on 127.0.0.1 (moto).
//!
//! Nothing here is mocked: missing parts panic with the command that
//! provides them, so a test can never pass without its real dependencies.

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
        allow_http: true,
        path_style: true,
        access_key_id: Some(S3_KEY_ID.to_owned()),
        secret_access_key: Some(S3_SECRET.to_owned()),
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
    use arrow::array::AsArray;
    let result = table
        .query(sql, &icedb::QueryOptions::default())
        .await
        .unwrap();
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

//! The query surface, end to end with the real binary: every column type
//! renders (and renders the same) in the CLI's table, JSON and CSV and over
//! HTTP as JSON, CSV and Arrow; a security suite over HTTP on an S3 table
//! (credential leaks, statement smuggling, catalog changes, settings,
//! file and network escapes) after which a fresh reader and a merge see
//! exactly the rows inserted; a huge result is refused with the host's
//! memory bounded; S3 configured by the standard AWS variables alone; hostile
//! rows refused with errors naming the row and field.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use icedb_e2e::{HostProcess, S3, binary, http, icedb_host, succeeded};
use serde_json::Value;

const NDJSON: &str = "application/x-ndjson";
const SESSION_TOKEN: &str = "icedb-session-token-Zk4xYq";

fn post(url: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let response = http()
        .post(url)
        .header("content-type", content_type)
        .send(body);
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

fn post_accept(url: &str, accept: &str, sql: &str) -> (u16, Vec<u8>) {
    let mut response = http()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", accept)
        .send(serde_json::json!({ "sql": sql }).to_string().as_bytes())
        .unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_vec().unwrap())
}

/// `icedb-host run --config <config>` on a free port, with a private cache.
fn start_host(dir: &Path, config: &Path, env: &[(&str, String)]) -> HostProcess {
    let config_arg = config.display().to_string();
    let mut env = env.to_vec();
    env.push((
        "XDG_CACHE_HOME",
        dir.join("host-cache").display().to_string(),
    ));
    HostProcess::start(
        dir,
        &["--config", &config_arg, "--listen", "127.0.0.1:0"],
        &env,
    )
}

// ------------------------------------------------------------ every type, every output

/// Rows with every type IceDB writes (and nulls), on a local table.
const ROWS: &str = r#"{"ts": "2026-10-15T12:00:00Z", "flag": true, "n": 42, "x": 1.5, "s": "a,\"b\"", "nested": {"k": [1, 2]}}
{"ts": "2026-10-15T12:30:00.250Z", "flag": null, "n": null, "x": null, "s": null}"#;

/// The same query with DuckDB's other types.
const ALL_TYPES: &str = "SELECT ts, flag, n, x, s, nested, \
    DATE '2026-01-02' AS day, 12.34::DECIMAL(10, 2) AS price, [n, 7] AS list, \
    {'a': n, 'b': s} AS st, '\\xAA\\xBB'::BLOB AS blob, INTERVAL 3 DAY AS span, \
    TIMESTAMP '2026-01-02 03:04:05' AS naive, NULL AS nothing, \
    'x'::ENUM('x', 'y') AS kind, 12345678901234567890123456789012345::HUGEINT AS huge \
    FROM events ORDER BY ts";

#[test]
fn every_type_renders_the_same_in_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("table").display().to_string();
    let rows = dir.path().join("rows.ndjson");
    std::fs::write(&rows, ROWS).unwrap();
    let rows_arg = rows.display().to_string();
    succeeded(&icedb_host(
        dir.path(),
        &["insert", "--table", &root, &rows_arg],
    ));

    // CLI JSON: one object per row.
    let json = succeeded(&icedb_host(
        dir.path(),
        &["query", "--table", &root, "--format", "json", ALL_TYPES],
    ));
    let objects: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2, "{json}");
    let first = &objects[0];
    assert_eq!(first["ts"], "2026-10-15T12:00:00Z", "{first}");
    assert_eq!(objects[1]["ts"], "2026-10-15T12:30:00.250Z");
    assert_eq!(first["flag"], true);
    assert_eq!(first["n"], 42);
    assert_eq!(first["x"], 1.5);
    assert_eq!(first["s"], "a,\"b\"");
    assert_eq!(first["nested"], r#"{"k":[1,2]}"#);
    assert_eq!(first["day"], "2026-01-02");
    assert_eq!(first["price"].to_string().trim_matches('"'), "12.34");
    assert_eq!(first["list"], serde_json::json!([42, 7]));
    assert_eq!(first["st"], serde_json::json!({"a": 42, "b": "a,\"b\""}));
    assert_eq!(first["blob"], "aabb");
    assert_eq!(first["span"], "3 days");
    assert_eq!(first["naive"], "2026-01-02T03:04:05");
    assert_eq!(first["nothing"], Value::Null);
    assert_eq!(first["kind"], "x");
    assert_eq!(
        first["huge"].to_string().trim_matches('"'),
        "12345678901234567890123456789012345"
    );
    assert_eq!(objects[1]["n"], Value::Null);
    assert_eq!(objects[1]["list"], serde_json::json!([null, 7]));

    // CLI CSV: the same values as text, nested ones as JSON text.
    let csv = succeeded(&icedb_host(
        dir.path(),
        &["query", "--table", &root, "--format", "csv", ALL_TYPES],
    ));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let records: Vec<BTreeMap<String, String>> = reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect();
    assert_eq!(records.len(), 2, "{csv}");
    let row = &records[0];
    assert_eq!(row["ts"], "2026-10-15T12:00:00Z", "{csv}");
    assert_eq!(row["s"], "a,\"b\"");
    assert_eq!(row["list"], "[42,7]");
    assert_eq!(row["st"], r#"{"a":42,"b":"a,\"b\""}"#);
    assert_eq!(row["price"], "12.34");
    assert_eq!(row["span"], "3 days");
    assert_eq!(row["blob"], "aabb");
    assert_eq!(records[1]["n"], "");

    // CLI table: the same timestamp text.
    let table = succeeded(&icedb_host(
        dir.path(),
        &["query", "--table", &root, ALL_TYPES],
    ));
    assert!(table.contains("2026-10-15T12:00:00Z"), "{table}");
    assert!(
        table.contains("12.34") && table.contains("3 days"),
        "{table}"
    );

    // HTTP: JSON, CSV and Arrow from a host serving the same table.
    let config = dir.path().join("icedb.toml");
    std::fs::write(
        &config,
        format!("[[tables]]\nname = \"events\"\nroot = \"{root}\"\n"),
    )
    .unwrap();
    let host = start_host(dir.path(), &config, &[]);
    let url = format!("{}/v1/query", host.url);
    let (status, body) = post_accept(&url, "application/json", ALL_TYPES);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    let http_rows = body["rows"].as_array().unwrap();
    for (name, value) in first.as_object().unwrap() {
        assert_eq!(&http_rows[0][name], value, "HTTP JSON column {name}");
    }
    let (status, body) = post_accept(&url, "text/csv", ALL_TYPES);
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(body).unwrap(), csv, "HTTP CSV = CLI CSV");
    let (status, body) = post_accept(&url, "application/vnd.apache.arrow.stream", ALL_TYPES);
    assert_eq!(status, 200);
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None).unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let ts = batches[0].column_by_name("ts").unwrap();
    let ts = arrow::compute::cast(ts, &arrow::datatypes::DataType::Int64).unwrap();
    assert_eq!(
        ts.as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0),
        chrono::DateTime::parse_from_rfc3339("2026-10-15T12:00:00Z")
            .unwrap()
            .timestamp_micros()
    );
    host.signal("TERM");
    assert!(host.wait().success());
}

// ------------------------------------------------------------ hostile rows

#[test]
fn ambiguous_rows_are_refused_naming_the_row_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("table").display().to_string();
    let good = r#"{"ts": "2026-10-15T12:00:00Z", "n": 1}"#;
    for (rows, expected) in [
        (
            format!("{good}\n{{\"ts\": \"2026-10-15T13:00:00Z\", \"d\": \"x\"}}"),
            ["line 2", "`d`", "partition column"],
        ),
        (format!("{good}\n{{\"\": 5}}"), ["line 2", "empty name", ""]),
        (
            format!("{good}\n{{\"n\": 18446744073709551615}}"),
            ["line 2", "`n`", "int64"],
        ),
        (
            format!("{good}\n{{\"N\": 3}}"),
            ["line 2", "`N`", "letter case"],
        ),
    ] {
        let file = dir.path().join("rows.ndjson");
        std::fs::write(&file, &rows).unwrap();
        let output = icedb_host(
            dir.path(),
            &["insert", "--table", &root, &file.display().to_string()],
        );
        assert!(!output.status.success(), "{rows}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        for part in expected {
            assert!(stderr.contains(part), "{rows}: {stderr}");
        }
    }
    // Nothing was written.
    assert!(
        !Path::new(&root).join("_icedb/log").exists() || {
            let status = succeeded(&icedb_host(dir.path(), &["status", "--table", &root]));
            status.contains("version 0")
        }
    );
}

// ------------------------------------------------------------ the security suite

struct Suite {
    tried: usize,
    refused: usize,
    leaked: Vec<String>,
}

impl Suite {
    fn run(&mut self, url: &str, secrets: &[&str], sql: &str, must_refuse: bool) -> (u16, String) {
        self.tried += 1;
        let (status, body) = post(url, "text/plain", sql.as_bytes());
        if status != 200 {
            self.refused += 1;
        }
        for secret in secrets {
            if body.contains(secret) {
                self.leaked.push(format!("{sql} → {body}"));
            }
        }
        if must_refuse {
            assert!(
                (400..500).contains(&status),
                "{sql} was not refused: {status} {body}"
            );
        }
        (status, body)
    }
}

#[test]
fn security_suite_over_http_on_s3() {
    let s3 = S3::from_env();
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3.create_bucket("surface");
    let root = format!("s3://{bucket}/events");
    let config = dir.path().join("icedb.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nendpoint = \"{}\"\nregion = \"us-east-1\"\nreplica_dir = \"{}\"\n\n[[tables]]\nname = \"events\"\nroot = \"{root}\"\n",
            s3.endpoint,
            dir.path().join("replicas").display()
        ),
    )
    .unwrap();
    let key_id = std::env::var("AWS_ACCESS_KEY_ID").unwrap();
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
    let host = start_host(
        dir.path(),
        &config,
        &[("AWS_SESSION_TOKEN", SESSION_TOKEN.to_owned())],
    );
    let (status, text) = post(
        &format!("{}/v1/tables/events/rows", host.url),
        NDJSON,
        icedb_e2e::gen_events(500, 3).as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    let url = format!("{}/v1/query", host.url);
    // The access key id is an identifier (duckdb_secrets() shows it, as
    // AWS's own logs do); the secret key and session token are the secrets.
    let _ = key_id;
    let secrets = [secret.as_str(), SESSION_TOKEN];
    let mut suite = Suite {
        tried: 0,
        refused: 0,
        leaked: Vec::new(),
    };
    let outside = dir.path().join("outside.csv");
    std::fs::write(&outside, "a\n1\n").unwrap();
    // Credentials: none of these may show a key, secret or token.
    for sql in [
        "SELECT current_setting('s3_secret_access_key') AS v",
        "SELECT current_setting('s3_access_key_id') AS v",
        "SELECT current_setting('s3_session_token') AS v",
        "SELECT name, value FROM duckdb_settings()",
        "SELECT * FROM duckdb_secrets()",
        "SELECT * FROM duckdb_secrets(redact := false)",
        "SELECT which_secret('s3://x/y', 's3') AS v",
        "SELECT getenv('AWS_SECRET_ACCESS_KEY') AS v",
        "SELECT getenv('AWS_SESSION_TOKEN') AS v",
        "SELECT * FROM read_parquet('s3://no-such-bucket-icedb/x.parquet')",
        "SELECT * FROM read_csv('s3://no-such-bucket-icedb/x.csv')",
        "SELECT * FROM duckdb_extensions()",
        "SELECT * FROM duckdb_functions() WHERE function_name = 'getenv'",
    ] {
        suite.run(&url, &secrets, sql, false);
    }
    let root_path = format!("s3://{bucket}/events");
    // Statement smuggling, catalog changes, settings, escapes: all refused.
    let smuggled = [
        "SELECT 1 AS a$q$; CREATE TABLE main.x AS SELECT 42; SELECT 1 AS b$q$".to_owned(),
        "SELECT 1; CREATE OR REPLACE MACRO read_parquet(x) AS TABLE SELECT 1".to_owned(),
        "CREATE OR REPLACE MACRO read_parquet(a, union_by_name := true, hive_partitioning := true) AS TABLE SELECT 1 AS id".to_owned(),
        "CREATE VIEW v AS SELECT 1".to_owned(),
        "CREATE TEMP TABLE t AS SELECT 1".to_owned(),
        "/* comment */ DROP VIEW events".to_owned(),
        "SELECT 1 -- ;\n; DROP VIEW events".to_owned(),
        "SELECT 'it''s'; DROP VIEW events".to_owned(),
        "SELECT \"a;b\" FROM (SELECT 1 AS \"a;b\"); DELETE FROM events".to_owned(),
        "WITH x AS (SELECT 1) SELECT * FROM x; CREATE SCHEMA s".to_owned(),
        "WITH x AS (SELECT 1 AS a) INSERT INTO events SELECT * FROM x".to_owned(),
        "SET threads = 1".to_owned(),
        "RESET memory_limit".to_owned(),
        "SET enable_external_access = true".to_owned(),
        "PRAGMA enable_profiling".to_owned(),
        "ATTACH ':memory:' AS other".to_owned(),
        "DETACH memory".to_owned(),
        "USE memory".to_owned(),
        format!("COPY (SELECT 1) TO '{}/stolen.csv'", dir.path().display()),
        format!("EXPORT DATABASE '{}/exported'", dir.path().display()),
        "INSTALL httpfs".to_owned(),
        "LOAD httpfs".to_owned(),
        "CHECKPOINT".to_owned(),
        "CALL pragma_version()".to_owned(),
        "CREATE SECRET s (TYPE S3, KEY_ID 'a', SECRET 'b')".to_owned(),
        "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
        "SELECT * FROM read_text('/etc/hostname')".to_owned(),
        format!("SELECT * FROM '{}'", outside.display()),
        "SELECT * FROM glob('/*')".to_owned(),
        "SELECT * FROM read_csv('http://127.0.0.1:1/x.csv')".to_owned(),
        format!("SELECT * FROM read_parquet('{root_path}/../other/*.parquet')"),
        format!("SELECT * FROM read_parquet('s3://{bucket}/elsewhere/*.parquet')"),
    ];
    for sql in &smuggled {
        suite.run(&url, &secrets, sql, true);
    }
    println!(
        "security suite: tried={} refused={} leaked={}",
        suite.tried,
        suite.refused,
        suite.leaked.len()
    );
    assert!(suite.leaked.is_empty(), "leaks: {:#?}", suite.leaked);
    assert!(!dir.path().join("stolen.csv").exists());
    assert!(!dir.path().join("exported").exists());

    // The table is untouched: the view, a fresh reader and a merge agree.
    let (status, text) = post(&url, "text/plain", b"SELECT count(*) AS n FROM events");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"n\":500"), "{text}");
    host.signal("TERM");
    assert!(host.wait().success());
    let s3_args = ["--s3-endpoint", s3.endpoint.as_str()];
    let merged = icedb_host(
        dir.path(),
        &[&["merge", "--table", &root][..], &s3_args[..]].concat(),
    );
    succeeded(&merged);
    let csv = succeeded(&icedb_host(
        dir.path(),
        &[
            &["query", "--format", "csv", "--table", &root][..],
            &s3_args[..],
            &["SELECT count(*) AS n, count(DISTINCT id) AS ids FROM events"][..],
        ]
        .concat(),
    ));
    assert_eq!(csv.trim(), "n,ids\n500,500");
}

// ------------------------------------------------------------ a huge result

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_huge_result_is_refused_and_the_host_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("table").display().to_string();
    let config = dir.path().join("icedb.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nmax_result_bytes = 16777216\n\n[duckdb]\nmemory_limit = \"1GB\"\n\n[[tables]]\nname = \"events\"\nroot = \"{root}\"\n"
        ),
    )
    .unwrap();
    let host = start_host(dir.path(), &config, &[]);
    let url = format!("{}/v1/query", host.url);
    let (status, _) = post(&url, "text/plain", b"SELECT 1 AS one");
    assert_eq!(status, 200);
    let before = peak_rss_kib(host.pid());
    let (status, body) = post(
        &url,
        "text/plain",
        b"SELECT list(range) AS huge FROM range(20000000)",
    );
    let after = peak_rss_kib(host.pid());
    println!(
        "huge result: {status}; host peak memory {} MiB before, {} MiB after",
        before / 1024,
        after / 1024
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bytes"), "{body}");
    assert!(
        after < before + 1024 * 1024,
        "the host grew from {before} KiB to {after} KiB"
    );
    let (status, _) = post(&url, "text/plain", b"SELECT 1 AS one");
    assert_eq!(status, 200, "the host still answers");
    host.signal("TERM");
    assert!(host.wait().success());
}

// ------------------------------------------------------------ the standard AWS variables alone

#[test]
fn s3_from_the_standard_aws_variables_alone() {
    let s3 = S3::from_env();
    for token in [None, Some(SESSION_TOKEN)] {
        let dir = tempfile::tempdir().unwrap();
        let bucket = s3.create_bucket("awsenv");
        let root = format!("s3://{bucket}/events");
        let rows = dir.path().join("rows.ndjson");
        std::fs::write(&rows, icedb_e2e::gen_events(300, 5)).unwrap();
        // A plain shell: no --s3 flags, no IceDB variables; the extension
        // directory is found where the set-up installed it.
        let run = |args: &[&str]| {
            let mut command = Command::new(binary("icedb-host"));
            command
                .args(args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap())
                .env("HOME", std::env::var("HOME").unwrap())
                .env("AWS_ENDPOINT_URL", &s3.endpoint)
                .env("AWS_REGION", "us-east-1")
                .env(
                    "AWS_ACCESS_KEY_ID",
                    std::env::var("AWS_ACCESS_KEY_ID").unwrap(),
                )
                .env(
                    "AWS_SECRET_ACCESS_KEY",
                    std::env::var("AWS_SECRET_ACCESS_KEY").unwrap(),
                )
                .env("ICEDB_LOG", "warn");
            // Only a set-up run with a non-default cache needs to say where.
            let default_cache = format!("{}/.cache/icedb", std::env::var("HOME").unwrap());
            if let Ok(cache) = std::env::var("ICEDB_CACHE")
                && cache != default_cache
            {
                command.env("ICEDB_CACHE", cache);
            }
            if let Some(token) = token {
                command.env("AWS_SESSION_TOKEN", token);
            }
            command.output().unwrap()
        };
        succeeded(&run(&[
            "insert",
            "--table",
            &root,
            &rows.display().to_string(),
        ]));
        let csv = succeeded(&run(&[
            "query",
            "--format",
            "csv",
            "--table",
            &root,
            "SELECT count(*) AS n FROM events",
        ]));
        assert_eq!(csv.trim(), "n\n300", "token {token:?}");
    }
}

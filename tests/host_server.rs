//! The real `icedb-host run` over HTTP: the embedded default, bad requests,
//! authentication and read-only queries, several hosts on one S3 table with
//! their schedulers running, and SIGTERM / kill -9 under load.
//!
//! Longer than 600 lines on purpose: every file under tests/ links into a
//! test executable of its own (~200 MB with DuckDB and wasmtime), so a
//! suite stays one file.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use icedb_e2e::{HostProcess, S3, binary, duckdb_extension_dir, gen_events, http};
use serde_json::Value;

const NDJSON: &str = "application/x-ndjson";

fn replica_env(dir: &Path) -> (&'static str, String) {
    (
        "ICEDB__STORAGE__REPLICA_DIR",
        dir.join("replicas").display().to_string(),
    )
}

/// POST and return (status, body as text, headers we look at).
fn post(url: &str, content_type: &str, body: &[u8], token: Option<&str>) -> (u16, String) {
    let mut request = http().post(url).header("content-type", content_type);
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request.send(body).unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = http().get(url);
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

fn get_json(url: &str) -> Value {
    let (status, body) = get(url, None);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn query(host: &str, sql: &str) -> Value {
    let (status, body) = post(
        &format!("{host}/v1/query"),
        "application/json",
        serde_json::json!({ "sql": sql }).to_string().as_bytes(),
        None,
    );
    assert_eq!(status, 200, "{sql}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn count(host: &str, sql: &str) -> i64 {
    query(host, sql)["rows"][0]["n"].as_i64().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn embedded_default_serves_inserts_queries_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostProcess::start(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        &[replica_env(dir.path())],
    );
    let log = host.log();
    assert!(log.contains("table open"), "{log}");
    assert!(
        !dir.path().join("icedb.toml").exists(),
        "no config was written"
    );
    let url = &host.url;
    let rows_url = format!("{url}/v1/tables/events/rows");

    let (status, body) = post(&rows_url, NDJSON, gen_events(1_000, 7).as_bytes(), None);
    assert_eq!(status, 200, "{body}");
    let ack: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ack["rows"], 1_000);
    assert!(ack["version"].as_u64().unwrap() >= 1);
    assert!(!ack["files"].as_array().unwrap().is_empty());

    let array = r#"[{"id":"a-1","event":"test_signup","ts":"2026-11-01T10:00:00Z"},
                    {"id":"a-2","event":"test_signup","ts":1793527200000,"extra":{"k":[1,2]}}]"#;
    let (status, body) = post(&rows_url, "application/json", array.as_bytes(), None);
    assert_eq!(status, 200, "{body}");
    // Gzip-compressed NDJSON, and one row without `ts` (ingest time).
    let mut gzipped = gen_events(100, 8);
    gzipped.push_str("{\"id\":\"no-ts\",\"event\":\"late\"}\n");
    let mut request = http()
        .post(&rows_url)
        .header("content-type", NDJSON)
        .header("content-encoding", "gzip");
    request = request.header("x-test", "gzip");
    let mut response = request.send(&gzip(gzipped.as_bytes())[..]).unwrap();
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.body_mut().read_to_string().unwrap()
    );

    let total = 1_000 + 2 + 101;
    assert_eq!(count(url, "SELECT count(*) AS n FROM events"), total as i64);
    let answer = query(
        url,
        "SELECT count(DISTINCT id) AS n, count(extra) AS with_extra FROM events",
    );
    assert_eq!(answer["rows"][0]["n"], total);
    assert_eq!(answer["rows"][0]["with_extra"], 1);
    assert!(answer["files_scanned"].as_u64().unwrap() > 0);
    assert_eq!(answer["columns"][0]["name"], "n");

    // CSV and Arrow IPC by Accept, plain-text SQL.
    let mut response = http()
        .post(&format!("{url}/v1/query"))
        .header("content-type", "text/plain")
        .header("accept", "text/csv")
        .send("SELECT event, count(*) AS n FROM events WHERE event = 'test_signup' GROUP BY event")
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.body_mut().read_to_string().unwrap(),
        "event,n\ntest_signup,2\n"
    );
    let mut response = http()
        .post(&format!("{url}/v1/query"))
        .header("content-type", "text/plain")
        .header("accept", "application/vnd.apache.arrow.stream")
        .send("SELECT id FROM events ORDER BY id LIMIT 5")
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = response.body_mut().read_to_vec().unwrap();
    let reader = arrow::ipc::reader::StreamReader::try_new(&bytes[..], None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 5);

    // Status endpoints agree with the data.
    let tables = get_json(&format!("{url}/v1/tables"));
    assert_eq!(tables["tables"][0]["name"], "events");
    assert_eq!(tables["tables"][0]["rows"], total);
    let info = get_json(&format!("{url}/v1/tables/events"));
    let schema = info["schema"].as_array().unwrap();
    assert!(
        schema
            .iter()
            .any(|c| c["name"] == "ts" && c["type"] == "timestamp"),
        "{info}"
    );
    assert_eq!(info["sort_order"], serde_json::json!(["event", "ts"]));
    let partitions = get_json(&format!("{url}/v1/tables/events/partitions"));
    let partitions = partitions["partitions"].as_array().unwrap();
    assert!(partitions.len() >= 30, "30 days of events plus today");
    let summed: u64 = partitions.iter().map(|p| p["rows"].as_u64().unwrap()).sum();
    assert_eq!(summed, total as u64);
    let first = partitions[0]["partition"].as_str().unwrap().to_owned();
    let files = get_json(&format!("{url}/v1/tables/events/files?partition={first}"));
    let files = files["files"].as_array().unwrap();
    assert!(!files.is_empty());
    for file in files {
        assert_eq!(file["partition"], first.as_str());
        if file["inline"] == true {
            // Rows kept in the log until a merge: no object, no URL.
            assert_eq!(file["url"], "", "{file}");
            continue;
        }
        let path = file["url"]
            .as_str()
            .unwrap()
            .strip_prefix("file://")
            .unwrap();
        assert_eq!(
            std::fs::metadata(path).unwrap().len(),
            file["bytes"].as_u64().unwrap(),
            "the listed URL is the file"
        );
    }
    assert!(dir.path().join("icedb-data/events/_icedb/log").is_dir());

    let activity = get_json(&format!("{url}/v1/activity?kind=insert"));
    let inserted: u64 = activity["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == "ok")
        .map(|e| e["detail"]["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(inserted, total as u64);
    let (status, metrics) = get(&format!("{url}/metrics"), None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains(&format!(
            "icedb_rows_ingested_total{{table=\"events\"}} {total}"
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("icedb_table_rows{{table=\"events\"}} {total}")));

    // Maintenance on demand: cold rounds until quiescent flush the inline
    // parts into files (one round after it finds nothing to do); a vacuum
    // keeps the replaced parts within the default 1 h grace.
    let maintain = |path: &str| -> (u16, String) {
        post(&format!("{url}/v1/tables/events/{path}"), NDJSON, b"", None)
    };
    let answer = |path: &str| -> Value {
        let (status, body) = maintain(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let (status, body) = maintain("merge?policy=cold&until=settled");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`until=settled`"), "{body}");
    let merged = answer("merge?policy=cold&until=quiescent");
    assert_eq!(merged["policy"], "cold");
    assert!(merged["files_out"].as_u64().unwrap() >= 30, "{merged}");
    let again = answer("merge?policy=cold");
    assert_eq!(again["jobs"], 0, "nothing left after quiescence: {again}");
    let vacuumed = answer("vacuum");
    assert_eq!(vacuumed["purged"], 0, "within the grace: {vacuumed}");
    assert_eq!(vacuumed["orphans_checked"], true, "{vacuumed}");
    let vacuumed = answer("vacuum?orphans=false");
    assert_eq!(vacuumed["orphans_checked"], false, "{vacuumed}");
    assert_eq!(count(url, "SELECT count(*) AS n FROM events"), total as i64);
    let (status, _) = post(&format!("{url}/v1/tables/nope/vacuum"), NDJSON, b"", None);
    assert_eq!(status, 404);
    let activity = get_json(&format!("{url}/v1/activity?kind=vacuum"));
    assert_eq!(activity["recent"][0]["status"], "ok", "{activity}");
    assert_eq!(get(&format!("{url}/healthz"), None).0, 200);
    let ready = get_json(&format!("{url}/readyz"));
    assert_eq!(ready["status"], "ready");

    host.signal("TERM");
    let status = host.wait();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostProcess::start(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        &[
            replica_env(dir.path()),
            ("ICEDB__SERVER__MAX_BODY_BYTES", "20000".to_owned()),
            ("ICEDB__SERVER__MAX_RESULT_ROWS", "100".to_owned()),
        ],
    );
    let url = &host.url;
    let rows_url = format!("{url}/v1/tables/events/rows");
    let (status, body) = post(&rows_url, NDJSON, b"{\"n\":1,\"event\":\"x\"}\n", None);
    assert_eq!(status, 200, "{body}");
    let version = |url: &str| get_json(&format!("{url}/v1/tables/events"))["version"].clone();
    let before = version(url);
    let data_dir = dir.path().join("icedb-data/events/data");
    let objects = || {
        if data_dir.exists() {
            walk_parquet(&data_dir).len()
        } else {
            0
        }
    };
    let files_before = objects();

    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed line",
            NDJSON,
            b"{\"n\":2}\n{\"n\":\n".to_vec(),
            400,
            "line 2",
        ),
        (
            "schema clash",
            NDJSON,
            b"{\"n\":3}\n{\"n\":\"three\"}\n".to_vec(),
            400,
            "`n`",
        ),
        (
            "not an object",
            "application/json",
            b"42".to_vec(),
            400,
            "array of objects",
        ),
        ("empty", NDJSON, b"  \n".to_vec(), 400, "no rows"),
        (
            "form data",
            "application/x-www-form-urlencoded",
            b"n=1".to_vec(),
            415,
            "application/x-ndjson",
        ),
        (
            "oversized",
            NDJSON,
            "{\"n\":1}\n".repeat(5_000).into_bytes(),
            413,
            "max_body_bytes",
        ),
    ];
    for (label, content_type, body, expected, message) in cases {
        let (status, text) = post(&rows_url, content_type, &body, None);
        assert_eq!(status, expected, "{label}: {text}");
        let error: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{label}: {text}"));
        assert!(
            error["error"].as_str().unwrap().contains(message),
            "{label}: {text}"
        );
    }
    // A small gzip body that inflates past the limit, and one that is not gzip.
    let bomb = gzip(&vec![b' '; 1_000_000]);
    let mut response = http()
        .post(&rows_url)
        .header("content-type", NDJSON)
        .header("content-encoding", "gzip")
        .send(&bomb[..])
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(
        response
            .body_mut()
            .read_to_string()
            .unwrap()
            .contains("decompressed")
    );
    let response = http()
        .post(&rows_url)
        .header("content-type", NDJSON)
        .header("content-encoding", "gzip")
        .send("not gzip")
        .unwrap();
    assert_eq!(response.status(), 400);
    let (status, text) = post(&format!("{url}/v1/tables/nope/rows"), NDJSON, b"{}", None);
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("events"), "names the served tables: {text}");

    assert_eq!(version(url), before, "nothing was committed");
    assert_eq!(count(url, "SELECT count(*) AS n FROM events"), 1);
    assert_eq!(objects(), files_before, "no uploads left behind");

    // A failed query is an error answer, not a dead host.
    let (status, text) = post(
        &format!("{url}/v1/query"),
        "application/json",
        b"{\"sql\": \"SELECT nope FROM events\"}",
        None,
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("nope"), "{text}");
    let (status, text) = post(
        &format!("{url}/v1/query"),
        "text/plain",
        b"SELECT * FROM range(100000)",
        None,
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("more than 100 rows"), "{text}");
    assert_eq!(query(url, "SELECT * FROM range(100)")["row_count"], 100);
    host.signal("TERM");
    assert!(host.wait().success());
}

fn walk_parquet(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk_parquet(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            found.push(path);
        }
    }
    found
}

#[test]
fn tokens_and_read_only_queries() {
    let dir = tempfile::tempdir().unwrap();
    let refused = HostProcess::try_start(
        dir.path(),
        &["--listen", "0.0.0.0:0"],
        &[replica_env(dir.path())],
    );
    let log = refused
        .err()
        .expect("a public address without a token must not start");
    assert!(log.contains("without an API token"), "{log}");

    let token = "test-token-0123456789abcdef";
    let host = HostProcess::start(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        &[
            replica_env(dir.path()),
            ("ICEDB__SERVER__TOKENS", token.to_owned()),
            ("ICEDB__SERVER__QUERY_TIMEOUT", "300ms".to_owned()),
        ],
    );
    let url = &host.url;
    let rows_url = format!("{url}/v1/tables/events/rows");
    let events = gen_events(200, 1);
    assert_eq!(post(&rows_url, NDJSON, events.as_bytes(), None).0, 401);
    let (status, text) = post(
        &rows_url,
        NDJSON,
        events.as_bytes(),
        Some("wrong-token-0123456789abcdef"),
    );
    assert_eq!(status, 401, "{text}");
    assert_eq!(get(&format!("{url}/v1/tables"), None).0, 401);
    assert_eq!(get(&format!("{url}/metrics"), None).0, 401);
    assert_eq!(
        get(&format!("{url}/healthz"), None).0,
        200,
        "probes need no token"
    );
    let (status, text) = post(&rows_url, NDJSON, events.as_bytes(), Some(token));
    assert_eq!(status, 200, "{text}");

    let sql = |sql: &str| {
        post(
            &format!("{url}/v1/query"),
            "application/json",
            serde_json::json!({ "sql": sql }).to_string().as_bytes(),
            Some(token),
        )
    };
    let (status, text) = sql("SELECT count(*) AS n FROM events");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"n\":200"), "{text}");
    let outside = dir.path().join("outside.csv");
    std::fs::write(&outside, "secret\n42\n").unwrap();
    for (attempt, expected) in [
        (
            format!("COPY events TO '{}/stolen.csv'", dir.path().display()),
            "COPY",
        ),
        (
            format!("ATTACH '{}/other.duckdb'", dir.path().display()),
            "ATTACH",
        ),
        ("INSTALL httpfs".to_owned(), "INSTALL"),
        ("SELECT * FROM read_csv('/etc/passwd')".to_owned(), "passwd"),
        (
            format!("SELECT * FROM '{}'", outside.display()),
            "outside.csv",
        ),
        ("SELECT 1; DROP VIEW events".to_owned(), "DROP"),
        (
            "SELECT sum(hash(i)) FROM range(1000000000000) t(i)".to_owned(),
            "time limit",
        ),
    ] {
        let (status, text) = sql(&attempt);
        assert_eq!(status, 400, "{attempt}: {text}");
        assert!(text.contains(expected), "{attempt}: {text}");
        assert!(!text.contains("secret"), "{attempt}: {text}");
    }
    assert!(!dir.path().join("stolen.csv").exists());
    let (status, text) = sql("SELECT count(*) AS n FROM events");
    assert_eq!((status, text.contains("\"n\":200")), (200, true), "{text}");
    host.signal("INT");
    assert!(host.wait().success());
}

/// Clients that post 100-row batches of fresh events until told to stop,
/// keeping the ids of every acknowledged row.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(urls: &[String], clients_per_url: usize, max_requests: Option<usize>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for (u, url) in urls.iter().enumerate() {
            for c in 0..clients_per_url {
                let (stop, acked, url) = (stop.clone(), acked.clone(), url.clone());
                let seed = 1_000 + (u * 100 + c) as u64;
                threads.push(std::thread::spawn(move || {
                    let mut generator = icedb::events::EventGenerator::new(seed);
                    let agent = http();
                    let mut sent = 0;
                    while !stop.load(Ordering::Relaxed) && max_requests.is_none_or(|m| sent < m) {
                        let batch = generator.batch(100);
                        let body = batch.join("\n");
                        loop {
                            let response = agent
                                .post(&format!("{url}/v1/tables/events/rows"))
                                .header("content-type", NDJSON)
                                .send(body.as_bytes());
                            let Ok(mut response) = response else {
                                // The host is gone; nothing was acknowledged.
                                return;
                            };
                            match response.status().as_u16() {
                                200 => {
                                    let ids = batch.iter().map(|row| {
                                        let row: Value = serde_json::from_str(row).unwrap();
                                        row["id"].as_str().unwrap().to_owned()
                                    });
                                    acked.lock().unwrap().extend(ids);
                                    break;
                                }
                                429 => std::thread::sleep(Duration::from_millis(50)),
                                503 => return,
                                other => panic!(
                                    "insert answered {other}: {}",
                                    response.body_mut().read_to_string().unwrap_or_default()
                                ),
                            }
                        }
                        sent += 1;
                    }
                }));
            }
        }
        Load {
            stop,
            acked,
            threads,
        }
    }

    /// Stops the clients (or, with `stop` false, waits until they sent their
    /// requests) and returns the acknowledged ids.
    fn finish(self, stop: bool) -> Vec<String> {
        self.stop.store(stop, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap()
    }
}

/// Every id in the table, via the one-shot CLI (a separate reader).
fn ids_in_table(root: &str, extra: &[&str]) -> Vec<String> {
    let output = std::process::Command::new(binary("icedb-host"))
        .args(["query", "--format", "csv", "--table", root])
        .args(extra)
        .arg("SELECT id FROM events")
        .env("ICEDB_DUCKDB_EXTENSION_DIR", duckdb_extension_dir())
        .env("ICEDB_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

fn assert_acknowledged_rows_present(acked: &[String], in_table: &[String]) {
    let unique: HashSet<&String> = in_table.iter().collect();
    assert_eq!(unique.len(), in_table.len(), "no row is in the table twice");
    let missing = acked.iter().filter(|id| !unique.contains(id)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged rows are missing",
        acked.len()
    );
}

fn maintenance_config(dir: &Path, root: &str, s3: bool) -> std::path::PathBuf {
    let storage = if s3 {
        format!(
            "[storage]\nendpoint = \"{}\"\npath_style = true\nallow_http = true\nregion = \"us-east-1\"\n",
            S3::from_env().endpoint
        )
    } else {
        String::new()
    };
    let text = format!(
        r#"{storage}
[ingest]
flush_window = "10ms"

[[tables]]
name = "events"
root = "{root}"

# The standard events span October 2026: two partitions, so that the test
# is about many commits, not many partitions.
[tables.partitioning]
granularity = "month"

[tables.merge.hot]
every = "1s"
max_input_bytes = 1048576

[tables.merge.cold]
every = "3s"

[tables.vacuum]
every = "2s"
grace = "5s"
force = true

[tables.checkpoint]
every_versions = 10
check_every = "1s"

[tables.delta]
enabled = true
checkpoint_every = 10
every = "1s"
"#
    );
    let path = dir.join("icedb.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn three_hosts_share_one_s3_table_while_their_schedulers_run() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = S3::from_env().create_bucket("three-hosts");
    let root = format!("s3://{bucket}/events");
    let config = maintenance_config(dir.path(), &root, true);
    let config_arg = config.display().to_string();
    let hosts: Vec<HostProcess> = (0..3)
        .map(|i| {
            let replicas = dir.path().join(format!("replicas-{i}"));
            HostProcess::start(
                dir.path(),
                &["--config", &config_arg, "--listen", "127.0.0.1:0"],
                &[(
                    "ICEDB__STORAGE__REPLICA_DIR",
                    replicas.display().to_string(),
                )],
            )
        })
        .collect();
    let urls: Vec<String> = hosts.iter().map(|h| h.url.clone()).collect();
    let started = Instant::now();
    let load = Load::start(&urls, 3, Some(30));
    let acked = load.finish(false);
    let load_ended_ms = chrono::Utc::now().timestamp_millis();
    assert_eq!(
        acked.len(),
        3 * 3 * 30 * 100,
        "every request was acknowledged"
    );
    let ingest_time = started.elapsed();
    let files_after_ingest = get_json(&format!("{}/v1/tables/events", urls[0]))["files"]
        .as_u64()
        .unwrap();
    // Let the schedulers merge, vacuum and checkpoint.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let files = get_json(&format!("{}/v1/tables/events", urls[0]))["files"]
            .as_u64()
            .unwrap();
        let activity = get_json(&format!("{}/v1/activity?kind=vacuum", urls[0]));
        let vacuumed = !activity["recent"].as_array().unwrap().is_empty();
        if (files <= 4 && vacuumed) || Instant::now() > deadline {
            break;
        }
    }

    for url in &urls {
        let answer = query(
            url,
            "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM events",
        );
        assert_eq!(answer["rows"][0]["n"], acked.len(), "{url}");
        assert_eq!(answer["rows"][0]["ids"], acked.len(), "{url}");
    }
    assert_acknowledged_rows_present(
        &acked,
        &ids_in_table(
            &root,
            &[
                "--s3-endpoint",
                &S3::from_env().endpoint,
                "--s3-path-style",
                "--s3-allow-http",
            ],
        ),
    );
    let mut merged = 0;
    let mut merged_during_ingest = 0;
    let mut vacuums = 0;
    let mut checkpoints = 0;
    for url in &urls {
        let activity = get_json(&format!("{url}/v1/activity?limit=500"));
        for entry in activity["recent"].as_array().unwrap() {
            assert_ne!(entry["status"], "error", "{entry}");
            match entry["kind"].as_str().unwrap() {
                "merge" => {
                    let files_out = entry["detail"]["files_out"].as_u64().unwrap_or(0);
                    merged += files_out;
                    if entry["started_ms"].as_i64().unwrap() < load_ended_ms {
                        merged_during_ingest += files_out;
                    }
                }
                "vacuum" => vacuums += 1,
                "checkpoint" => checkpoints += 1,
                _ => {}
            }
        }
    }
    assert!(merged > 0, "the schedulers merged");
    assert!(
        merged_during_ingest > 0,
        "merges committed while the hosts were ingesting (ingest took {ingest_time:?})"
    );
    assert!(vacuums > 0, "the schedulers vacuumed");
    assert!(checkpoints > 0, "the schedulers checkpointed");
    let info = get_json(&format!("{}/v1/tables/events", urls[0]));
    assert!(
        info["files"].as_u64().unwrap() <= 4,
        "merges compacted the table from {files_after_ingest} files after ingest to a few per partition: {info} (ingest took {ingest_time:?})"
    );
    for host in hosts {
        host.signal("TERM");
        assert!(host.wait().success());
    }
    // Three hosts exported after their commits and caught up on each
    // other's: one gapless Delta log.
    assert_delta_log_in_step(
        &root,
        &[
            "--s3-endpoint",
            &S3::from_env().endpoint,
            "--s3-path-style",
            "--s3-allow-http",
        ],
        &acked,
    );
}

/// After the hosts stopped: flushes inline rows (`merge`), brings the Delta
/// log up (`export delta`) and checks it is gapless — its newest version
/// names IceDB version newest + 1, so each IceDB commit is one Delta
/// commit — and that DuckDB's `delta_scan` sees every acknowledged row once.
fn assert_delta_log_in_step(root: &str, extra: &[&str], acked: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let icedb = |command: &[&str]| {
        let args: Vec<&str> = command
            .iter()
            .chain(&["--table", root])
            .chain(extra)
            .copied()
            .collect();
        icedb_e2e::succeeded(&icedb_e2e::icedb_host(dir.path(), &args))
    };
    icedb(&["merge"]);
    let out = icedb(&["export", "delta"]);
    let number_after = |word: &str| -> u64 {
        let at = out.find(word).unwrap_or_else(|| panic!("{out}")) + word.len();
        out[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (delta, icedb_version) = (
        number_after("Delta version "),
        number_after("= IceDB version "),
    );
    assert_eq!(
        delta + 1,
        icedb_version,
        "gapless, one Delta commit per IceDB commit: {out}"
    );

    let db = icedb_e2e::duckdb_delta_reader(root);
    let mut statement = db
        .prepare(&format!("SELECT id FROM delta_scan('{root}')"))
        .unwrap();
    let ids: Vec<String> = statement
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_acknowledged_rows_present(acked, &ids);
}

fn load_then_stop(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("table").display().to_string();
    let config = maintenance_config(dir.path(), &root, false);
    let config_arg = config.display().to_string();
    let host = HostProcess::start(
        dir.path(),
        &["--config", &config_arg, "--listen", "127.0.0.1:0"],
        &[replica_env(dir.path())],
    );
    let load = Load::start(std::slice::from_ref(&host.url), 6, None);
    std::thread::sleep(Duration::from_millis(2_500));
    host.signal(signal);
    let status = host.wait();
    let acked = load.finish(true);
    assert!(
        acked.len() >= 1_000,
        "the load was running: {}",
        acked.len()
    );
    if signal == "TERM" {
        assert!(status.success(), "{status:?}");
    }
    assert_acknowledged_rows_present(&acked, &ids_in_table(&root, &[]));
    if signal == "KILL" {
        // Whatever a killed insert or merge uploaded without committing is
        // an orphan; vacuum removes it, and only it.
        let output = std::process::Command::new(binary("icedb-host"))
            .args(["vacuum", "--grace", "0s", "--force", "--table", &root])
            .env("ICEDB_LOG", "warn")
            .output()
            .unwrap();
        assert!(output.status.success());
        let on_disk = walk_parquet(&Path::new(&root).join("data")).len();
        let status = std::process::Command::new(binary("icedb-host"))
            .args(["status", "--table", &root])
            .output()
            .unwrap();
        let status = String::from_utf8(status.stdout).unwrap();
        assert!(
            status.contains(&format!(" {on_disk} files,")),
            "only live files remain on disk ({on_disk}): {status}"
        );
        assert_acknowledged_rows_present(&acked, &ids_in_table(&root, &[]));
        // The exporter was killed with the host: the Delta log catches up
        // gapless.
        assert_delta_log_in_step(&root, &[], &acked);
    }
}

#[test]
fn sigterm_under_load_keeps_every_acknowledged_row() {
    load_then_stop("TERM");
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_row() {
    load_then_stop("KILL");
}

#[test]
fn init_writes_a_config_that_serves_and_bad_configs_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("icedb.toml");
    let icedb = |args: &[&str]| {
        std::process::Command::new(binary("icedb-host"))
            .args(args)
            .current_dir(dir.path())
            .env("ICEDB_LOG", "warn")
            .env("ICEDB__STORAGE__REPLICA_DIR", dir.path().join("replicas"))
            .output()
            .unwrap()
    };
    let config_arg = config.display().to_string();
    assert!(icedb(&["init", &config_arg]).status.success());
    let again = icedb(&["init", &config_arg]);
    assert!(!again.status.success(), "init does not overwrite");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    // The sample's table root is relative to the config file.
    let status = icedb(&["status", "--config", &config_arg]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        stdout.contains(&format!("at {}/icedb-data/events", dir.path().display())),
        "{stdout}"
    );
    // `run` picks up ./icedb.toml by itself.
    let host = HostProcess::start(dir.path(), &["--listen", "127.0.0.1:0"], &[]);
    assert!(
        host.log().contains("reading configuration"),
        "{}",
        host.log()
    );
    host.signal("TERM");
    assert!(host.wait().success());

    std::fs::write(&config, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let bad = HostProcess::try_start(dir.path(), &["--config", &config_arg], &[]);
    let log = bad.err().expect("a bad config must not start");
    assert!(log.contains("server.listen"), "{log}");
    std::fs::write(
        &config,
        "[[tables]]\nname = \"t\"\nroot = \"x\"\nsort_ordr = []\n",
    )
    .unwrap();
    let bad = HostProcess::try_start(dir.path(), &["--config", &config_arg], &[]);
    let log = bad.err().expect("an unknown key must not start");
    assert!(log.contains("sort_ordr"), "{log}");
}

/// Posts `bodies` at once (one thread each) and returns (status, body) in order.
fn post_together(url: &str, bodies: Vec<String>) -> Vec<(u16, String)> {
    let barrier = Arc::new(std::sync::Barrier::new(bodies.len()));
    let threads: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (url, barrier) = (url.to_owned(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                post(&url, NDJSON, body.as_bytes(), None)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Clients that wait for their answers come back together: once a group
/// has been seen, a group as big as it closes as soon as its requests are
/// in, not at the end of the window. The first group has no predecessor and
/// waits the window out.
#[test]
fn a_group_as_big_as_the_last_one_closes_without_waiting_out_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let window = Duration::from_secs(3);
    let host = HostProcess::start(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        &[
            replica_env(dir.path()),
            ("ICEDB__INGEST__FLUSH_WINDOW", "3s".to_owned()),
        ],
    );
    let rows_url = format!("{}/v1/tables/events/rows", host.url);
    let bodies = |round: usize| -> Vec<String> {
        (0..3)
            .map(|client| format!("{{\"id\":\"{round}-{client}\",\"event\":\"e\"}}\n"))
            .collect()
    };
    let mut took = Vec::new();
    for round in 0..2 {
        let started = Instant::now();
        let answers = post_together(&rows_url, bodies(round));
        took.push(started.elapsed());
        for (status, body) in &answers {
            assert_eq!(*status, 200, "{body}");
            let ack: Value = serde_json::from_str(body).unwrap();
            assert_eq!(ack["requests_in_commit"], 3, "round {round}: {ack}");
        }
    }
    assert!(took[0] >= window - Duration::from_millis(500), "{took:?}");
    assert!(took[1] < window, "{took:?}");
    assert_eq!(
        get_json(&format!("{}/v1/tables/events", host.url))["rows"],
        6
    );
    host.signal("TERM");
    assert!(host.wait().success());
}

#[test]
fn group_commit_shares_commits_isolates_bad_requests_and_pushes_back() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostProcess::start(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        &[
            replica_env(dir.path()),
            // A long window so that concurrent requests surely meet.
            ("ICEDB__INGEST__FLUSH_WINDOW", "400ms".to_owned()),
            ("ICEDB__INGEST__QUEUE_ROWS", "250".to_owned()),
        ],
    );
    let rows_url = format!("{}/v1/tables/events/rows", host.url);
    let rows = |tag: &str, n: usize| -> String {
        (0..n)
            .map(|i| format!("{{\"id\":\"{tag}-{i}\",\"event\":\"e\",\"n\":{i}}}\n"))
            .collect()
    };

    // Three concurrent requests, one commit.
    let answers = post_together(&rows_url, vec![rows("a", 50), rows("b", 50), rows("c", 50)]);
    let acks: Vec<Value> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            serde_json::from_str(body).unwrap()
        })
        .collect();
    assert!(
        acks.iter().all(|a| a["version"] == acks[0]["version"]),
        "{acks:?}"
    );
    assert!(
        acks.iter().all(|a| a["requests_in_commit"] == 3),
        "{acks:?}"
    );
    assert!(acks.iter().all(|a| a["rows"] == 50));

    // A request whose rows clash with another request of its group fails
    // alone; the other is committed.
    let clash: String = (0..5)
        .map(|i| format!("{{\"id\":\"x-{i}\",\"event\":\"e\",\"n\":\"text\"}}\n"))
        .collect();
    let answers = post_together(&rows_url, vec![rows("d", 20), clash]);
    assert_eq!(answers[0].0, 200, "{}", answers[0].1);
    assert_eq!(answers[1].0, 400, "{}", answers[1].1);
    assert!(answers[1].1.contains("`n`"), "{}", answers[1].1);

    // Over the queue: 200 + 100 rows waiting > 250 → 429 with Retry-After;
    // a single request larger than the queue → 413.
    let barrier_url = rows_url.clone();
    let first =
        std::thread::spawn(move || post(&barrier_url, NDJSON, rows("f", 200).as_bytes(), None));
    std::thread::sleep(Duration::from_millis(100));
    let mut response = http()
        .post(&rows_url)
        .header("content-type", NDJSON)
        .send(rows("g", 100).as_bytes())
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(
        response
            .body_mut()
            .read_to_string()
            .unwrap()
            .contains("queue is full")
    );
    assert_eq!(first.join().unwrap().0, 200);
    let (status, text) = post(&rows_url, NDJSON, rows("h", 300).as_bytes(), None);
    assert_eq!(status, 413, "{text}");

    let answer = query(
        &host.url,
        "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM events",
    );
    assert_eq!(answer["rows"][0]["n"], 150 + 20 + 200);
    assert_eq!(answer["rows"][0]["ids"], 150 + 20 + 200);
    let (_, metrics) = get(&format!("{}/metrics", host.url), None);
    assert!(
        metrics.contains("icedb_insert_requests_total{table=\"events\",outcome=\"busy\"} 1"),
        "{metrics}"
    );
    host.signal("TERM");
    assert!(host.wait().success());
}

/// With group commit off every request is a commit of its own, answered
/// once durable (before the replica applies it): concurrent requests get
/// distinct versions, the rows are readable at once, a bad request fails
/// alone, and a stop after the answers loses nothing.
#[test]
fn without_group_commit_each_request_commits_alone() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        HostProcess::start(
            dir.path(),
            &["--listen", "127.0.0.1:0"],
            &[
                replica_env(dir.path()),
                ("ICEDB__INGEST__GROUP_COMMIT", "false".to_owned()),
            ],
        )
    };
    let host = start();
    let rows_url = format!("{}/v1/tables/events/rows", host.url);
    let rows = |tag: &str| -> String {
        (0..25)
            .map(|i| format!("{{\"id\":\"{tag}-{i}\",\"event\":\"e\",\"n\":{i}}}\n"))
            .collect()
    };
    let answers = post_together(&rows_url, vec![rows("a"), rows("b"), rows("c"), rows("d")]);
    let mut versions = std::collections::BTreeSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        let ack: Value = serde_json::from_str(body).unwrap();
        assert_eq!(ack["requests_in_commit"], 1, "{ack}");
        versions.insert(ack["version"].as_u64().unwrap());
    }
    assert_eq!(versions.len(), 4, "one commit per request: {versions:?}");
    let answer = query(&host.url, "SELECT count(DISTINCT id) AS ids FROM events");
    assert_eq!(answer["rows"][0]["ids"], 100);
    let (status, body) = post(&rows_url, NDJSON, br#"{"id":"x","n":"text"}"#, None);
    assert_eq!(status, 400, "{body}");
    host.signal("TERM");
    assert!(host.wait().success());

    let host = start();
    let answer = query(
        &host.url,
        "SELECT count(DISTINCT id) AS ids, count(*) AS n FROM events",
    );
    assert_eq!(answer["rows"][0]["ids"], 100);
    assert_eq!(answer["rows"][0]["n"], 100);
    host.signal("TERM");
    assert!(host.wait().success());
}

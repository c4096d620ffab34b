//! Exactly once, end to end, through a fault-injecting HTTP proxy
//! (tests/fault_proxy.py) in front of the moto S3 server: 30 % of commit-log
//! PUTs are held, forwarded and then cut off (landed, unanswered), 5 % of
//! all requests answer 503 SlowDown and 5 % of data-file PUTs are cut off
//! after landing. Several CLI writers and two merge loops run at once, then
//! `icedb-host run` under HTTP load is killed with -9 and restarted.
//! Afterwards the store is read directly (not through the proxy): every
//! acknowledged id is present exactly once, no id is present twice, every
//! live file exists, queries work, and after a vacuum the data objects are
//! exactly the live files. The summary line is the README's reliability
//! figure.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use icedb::PartitionFilter;
use icedb_e2e::{
    HostProcess, S3, binary, data_objects, duckdb_extension_dir, http, live_paths, open_table,
};
use serde_json::Value;

const COMMIT_DROP: f64 = 0.3;
const SLOWDOWN: f64 = 0.05;
const DATA_DROP: f64 = 0.05;
const HOLD_SECONDS: f64 = 1.5;

struct Proxy {
    child: Child,
    endpoint: String,
}

impl Proxy {
    fn start(upstream: &str, seed: u64) -> Proxy {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fault_proxy.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--upstream", upstream, "--seed", &seed.to_string()])
            .args(["--commit-drop", &COMMIT_DROP.to_string()])
            .args(["--hold", &HOLD_SECONDS.to_string()])
            .args(["--slowdown", &SLOWDOWN.to_string()])
            .args(["--data-drop", &DATA_DROP.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs tests/fault_proxy.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("fault proxy said {line:?}"));
        Proxy {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    fn counts(&self) -> HashMap<String, u64> {
        let mut response = http()
            .get(&format!("{}/__faults", self.endpoint))
            .call()
            .unwrap();
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `icedb-host <command> --table <root>` through the proxy.
fn cli(dir: &Path, proxy: &str, root: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary("icedb-host"));
    command
        .args(args)
        .args(["--table", root, "--s3-endpoint", proxy])
        .args([
            "--s3-path-style",
            "--s3-allow-http",
            "--s3-region",
            "us-east-1",
        ])
        .args(["--s3-request-timeout", "10s", "--s3-max-retries", "4"])
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("ICEDB_DUCKDB_EXTENSION_DIR", duckdb_extension_dir())
        .env("ICEDB_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn ids_of(batch: &[String]) -> Vec<String> {
    batch
        .iter()
        .map(|row| {
            let row: Value = serde_json::from_str(row).unwrap();
            row["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// CLI writers (one process per insert) and merge loops, all at once.
fn cli_phase(dir: &Path, proxy: &str, root: &str, acked: &Mutex<Vec<String>>) -> usize {
    const WRITERS: u64 = 4;
    const INSERTS: u64 = 6;
    let writers_done = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(0usize));
    std::thread::scope(|scope| {
        let mut merge_loops = Vec::new();
        for hot in [false, true] {
            let done = writers_done.clone();
            merge_loops.push(scope.spawn(move || {
                let mut runs = 0;
                while !done.load(Ordering::Relaxed) {
                    let mut args = vec!["merge", "--once"];
                    if hot {
                        args.push("--hot");
                    }
                    // A merge may fail under faults; it must never lose or
                    // duplicate anything, which the checks below verify.
                    let _ = cli(dir, proxy, root, &args).output();
                    runs += 1;
                }
                runs
            }));
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let failures = failures.clone();
                scope.spawn(move || {
                    for i in 0..INSERTS {
                        let batch =
                            icedb::events::EventGenerator::new(10_000 + w * 100 + i).batch(50);
                        let file = dir.join(format!("w{w}-{i}.ndjson"));
                        std::fs::write(&file, batch.join("\n")).unwrap();
                        let output = cli(dir, proxy, root, &["insert"])
                            .arg(&file)
                            .output()
                            .unwrap();
                        if output.status.success() {
                            acked.lock().unwrap().extend(ids_of(&batch));
                        } else {
                            *failures.lock().unwrap() += 1;
                            eprintln!(
                                "writer {w} insert {i} not acknowledged: {}",
                                String::from_utf8_lossy(&output.stderr).trim()
                            );
                        }
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        writers_done.store(true, Ordering::Relaxed);
        for merge_loop in merge_loops {
            assert!(merge_loop.join().unwrap() > 0, "the merge loops ran");
        }
    });
    Arc::try_unwrap(failures).unwrap().into_inner().unwrap()
}

fn host_config(dir: &Path, proxy: &str, root: &str) -> std::path::PathBuf {
    let text = format!(
        r#"[storage]
endpoint = "{proxy}"
path_style = true
allow_http = true
region = "us-east-1"
replica_dir = "{replicas}"
request_timeout = "10s"
max_retries = 4

[ingest]
flush_window = "10ms"

[[tables]]
name = "events"
root = "{root}"

[tables.merge.hot]
every = "1s"

[tables.merge.cold]
every = "2s"
"#,
        replicas = dir.join("host-replicas").display()
    );
    let path = dir.join("icedb.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// HTTP clients posting 50-row batches to whichever host is current; a
/// batch counts only when answered 200, and is never sent again otherwise
/// (except after 429, which admits nothing).
fn http_load(
    url: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    seed: u64,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut generator = icedb::events::EventGenerator::new(seed);
        let agent = http();
        let mut refused = 0;
        while !stop.load(Ordering::Relaxed) {
            let batch = generator.batch(50);
            let body = batch.join("\n");
            loop {
                let target = url.lock().unwrap().clone();
                let response = agent
                    .post(&format!("{target}/v1/tables/events/rows"))
                    .header("content-type", "application/x-ndjson")
                    .send(body.as_bytes());
                match response.map(|r| r.status().as_u16()) {
                    Ok(200) => acked.lock().unwrap().extend(ids_of(&batch)),
                    Ok(429) => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    Ok(_) => refused += 1,
                    Err(_) => {
                        refused += 1;
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
                break;
            }
        }
        refused
    })
}

#[test]
fn every_acknowledged_row_exactly_once_through_a_faulty_s3() {
    let s3 = S3::from_env();
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3.create_bucket("faults-e2e");
    let root = format!("s3://{bucket}/events");
    let proxy = Proxy::start(&s3.endpoint, 42);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();

    // 1. CLI writers and merge loops.
    let cli_failures = cli_phase(dir.path(), &proxy.endpoint, &root, &acked);
    let after_cli = acked.lock().unwrap().len();
    assert!(after_cli > 0, "some CLI inserts were acknowledged");

    // 2. icedb-host run under HTTP load, killed with -9 and restarted.
    let config = host_config(dir.path(), &proxy.endpoint, &root);
    let config_arg = config.display().to_string();
    let args = ["--config", config_arg.as_str(), "--listen", "127.0.0.1:0"];
    let host = HostProcess::start(dir.path(), &args, &[]);
    let url = Arc::new(Mutex::new(host.url.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| http_load(url.clone(), stop.clone(), acked.clone(), 20_000 + c))
        .collect();
    std::thread::sleep(Duration::from_secs(6));
    host.signal("KILL");
    host.wait();
    let host = HostProcess::start(dir.path(), &args, &[]);
    *url.lock().unwrap() = host.url.clone();
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::Relaxed);
    let http_refused: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    host.signal("TERM");
    assert!(host.wait().success(), "the restarted host stops cleanly");
    let faults = proxy.counts();
    drop(proxy);

    // 3. Read the store directly.
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > after_cli,
        "some HTTP inserts were acknowledged"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let table = open_table(&root, dir.path().join("reader")).await;
        let counts: HashMap<String, i64> = id_counts(&table).await;
        let lost = acked.iter().filter(|id| !counts.contains_key(*id)).count();
        let acked_set: HashSet<&String> = acked.iter().collect();
        let duplicated = counts.values().filter(|&&n| n > 1).count();
        let unacknowledged_present = counts.keys().filter(|id| !acked_set.contains(id)).count();
        println!(
            "fault run: acknowledged={} lost={lost} duplicated={duplicated} unacknowledged-present={unacknowledged_present} \
             faults injected: commit PUTs landed-then-dropped={} 503 SlowDown={} data PUTs landed-then-dropped={} of {} requests; \
             refused: CLI inserts={cli_failures} HTTP requests={http_refused}; {:.0?}",
            acked.len(),
            faults["commit_put_dropped"],
            faults["slowdown_503"],
            faults["data_put_dropped"],
            faults["requests"],
            started.elapsed(),
        );
        assert!(faults["commit_put_dropped"] > 5, "{faults:?}");
        assert!(faults["slowdown_503"] > 5, "{faults:?}");
        assert_eq!(lost, 0, "acknowledged rows lost");
        assert_eq!(duplicated, 0, "rows stored twice");
        assert_eq!(acked_set.len(), acked.len(), "the clients never reuse an id");

        // Every live file exists; totals match the data.
        let live = live_paths(table.meta());
        let objects = data_objects(&table).await;
        for path in &live {
            assert!(objects.contains(path), "live file {path} is missing");
        }
        let status_rows: u64 = table
            .meta()
            .snapshot()
            .unwrap()
            .partitions(&PartitionFilter::All)
            .unwrap()
            .iter()
            .map(|p| p.rows)
            .sum();
        assert_eq!(status_rows as usize, counts.values().sum::<i64>() as usize);

        // Every writer is stopped: a forced vacuum leaves exactly the live files.
        let output = Command::new(binary("icedb-host"))
            .args(["vacuum", "--grace", "0s", "--force", "--table", &root])
            .args(["--s3-endpoint", &S3::from_env().endpoint])
            .args(["--s3-path-style", "--s3-allow-http"])
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .env("ICEDB_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        table.meta().sync().await.unwrap();
        let live = live_paths(table.meta());
        let objects = data_objects(&table).await;
        assert_eq!(objects, live, "after vacuum the data objects are the live files");
        assert_eq!(id_counts(&table).await, counts, "vacuum changed no answer");
    });
}

async fn id_counts(table: &icedb::Table) -> HashMap<String, i64> {
    let result = table
        .query(
            "SELECT id, count(*) AS n FROM events GROUP BY id",
            &Default::default(),
        )
        .await
        .unwrap();
    let mut counts = HashMap::new();
    for batch in &result.batches {
        let ids = arrow::array::cast::as_string_array(batch.column(0));
        let n = batch
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        for row in 0..batch.num_rows() {
            counts.insert(ids.value(row).to_owned(), n.value(row));
        }
    }
    counts
}

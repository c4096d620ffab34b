//! HTTP ingest through the real `icedb-host run`: 8 concurrent clients post
//! the standard workload as 100-row NDJSON requests to a local-directory
//! table (the embedded table's settings), with group commit on and off and
//! with inlined commits on (the default) and off, and with a Delta log
//! kept in step (`[tables.delta] enabled`), side by side in one run.
//! Reports rows/s, commits, files and inline parts left, and p50/p99
//! acknowledgement latency (request sent → receipt received, which happens
//! only after the commit).
//!
//! Run: `scripts/bench.sh http_ingest`. `ICEDB_BENCH_EVENTS` sets the event
//! count per mode (default 200 000); `ICEDB_BENCH_MODES=1,3` runs only
//! those modes (1-based, in the order printed). To compare builds, set
//! `ICEDB_BENCH_HOSTS` to their `icedb-host` binaries (comma-separated):
//! each mode then runs with each build in turn, `ICEDB_BENCH_ROUNDS` times
//! (default 1) — alternated in one run, as this machine's speed drifts by
//! tens of percent within minutes. `ICEDB_BENCH_GRANULARITY=month` (or
//! `hour`) partitions the table by month instead of day: the standard
//! workload's 30 days fall in one month, so a group commit writes one part
//! instead of ~30, which shows what a part costs by itself; a list
//! (`day,month`) alternates them like builds.
//!
//! Every run's table directory is deleted only at the end: on an ext4
//! without a journal (this machine's), a file created within ~35 s of
//! thousands of deletions is slow (the inode allocator skips each recently
//! freed inode): a run started right after one spent 3.6–7.5 % of the
//! machine's CPU there.
//! Leave ~40 s between invocations for the same reason.

use std::path::PathBuf;

use std::time::{Duration, Instant};

use icedb_e2e::{HostProcess, binary, http};

const CLIENTS: usize = 8;
const ROWS_PER_REQUEST: usize = 100;

struct Outcome {
    rows: usize,
    took: Duration,
    latencies: Vec<Duration>,
    retries: usize,
    commits: u64,
    files: u64,
    inline_parts: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One run with `host` (an `icedb-host` binary); its directory is the
/// caller's to delete.
fn run(
    host: &std::path::Path,
    (group_commit, inline, delta): (bool, bool, bool),
    events: usize,
    granularity: Option<&str>,
) -> (Outcome, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("icedb.toml");
    let partitioning = granularity.map_or(String::new(), |g| {
        format!("[tables.partitioning]\nby = \"time\"\nfield = \"ts\"\ngranularity = \"{g}\"\n")
    });
    std::fs::write(
        &config,
        format!(
            "[[tables]]\nname = \"events\"\nroot = \"{}\"\n{partitioning}[tables.inline]\nmax_rows = {}\n[tables.delta]\nenabled = {delta}\n",
            dir.path().join("icedb-data/events").display(),
            if inline { 1_000 } else { 0 }
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    // `ICEDB_BENCH_HOST_LOG=FILE` keeps the host's debug log with span
    // timings (where an insert's time goes) in FILE.
    let host_log = std::env::var("ICEDB_BENCH_HOST_LOG").ok();
    let mut env = vec![
        ("ICEDB__INGEST__GROUP_COMMIT", group_commit.to_string()),
        (
            "ICEDB__STORAGE__REPLICA_DIR",
            dir.path().join("replicas").display().to_string(),
        ),
    ];
    if host_log.is_some() {
        env.push(("ICEDB_LOG", "info,icedb=debug,icedb_meta=debug".to_owned()));
        env.push(("ICEDB_LOG_SPANS", "1".to_owned()));
    }
    let host = HostProcess::start_binary(
        host,
        dir.path(),
        &["--config", &config, "--listen", "127.0.0.1:0"],
        &env,
    );
    // Bodies are made before the clock starts.
    let requests = events / ROWS_PER_REQUEST;
    let mut generator = icedb::events::EventGenerator::new(42);
    let bodies: Vec<String> = (0..requests)
        .map(|_| generator.ndjson(ROWS_PER_REQUEST))
        .collect();
    let per_client: Vec<Vec<String>> = (0..CLIENTS)
        .map(|c| bodies.iter().skip(c).step_by(CLIENTS).cloned().collect())
        .collect();
    let url = format!("{}/v1/tables/events/rows", host.url);
    let started = Instant::now();
    let threads: Vec<_> = per_client
        .into_iter()
        .map(|bodies| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent = http();
                let mut latencies = Vec::with_capacity(bodies.len());
                let mut retries = 0;
                for body in bodies {
                    let sent = Instant::now();
                    loop {
                        let mut response = agent
                            .post(&url)
                            .header("content-type", "application/x-ndjson")
                            .send(body.as_bytes())
                            .expect("the host answers");
                        // Reading the answer whole returns the connection
                        // to the agent's pool (kept alive, as clients do).
                        let answer = response.body_mut().read_to_string().unwrap_or_default();
                        match response.status().as_u16() {
                            200 => break,
                            429 => {
                                retries += 1;
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            other => panic!("insert answered {other}: {answer}"),
                        }
                    }
                    latencies.push(sent.elapsed());
                }
                (latencies, retries)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut retries = 0;
    for thread in threads {
        let (l, r) = thread.join().unwrap();
        latencies.extend(l);
        retries += r;
    }
    let took = started.elapsed();
    latencies.sort();
    let info: serde_json::Value = serde_json::from_str(
        &http()
            .get(&format!("{}/v1/tables/events", host.url))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        info["rows"].as_u64(),
        Some((requests * ROWS_PER_REQUEST) as u64)
    );
    let metrics = http()
        .get(&format!("{}/metrics", host.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let commits = metrics
        .lines()
        .find(|l| l.starts_with("icedb_insert_commits_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    host.signal("TERM");
    let log = host.log();
    assert!(host.wait().success());
    if let Some(file) = host_log {
        std::fs::write(file, log).unwrap();
    }
    let outcome = Outcome {
        rows: requests * ROWS_PER_REQUEST,
        took,
        latencies,
        retries,
        commits,
        files: info["files"].as_u64().unwrap_or(0) - info["inline"]["files"].as_u64().unwrap_or(0),
        inline_parts: info["inline"]["files"].as_u64().unwrap_or(0),
    };
    (outcome, dir)
}

fn main() {
    let events: usize = std::env::var("ICEDB_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let granularities: Vec<String> = std::env::var("ICEDB_BENCH_GRANULARITY")
        .unwrap_or_else(|_| "day".to_owned())
        .split(',')
        .map(|g| g.trim().to_owned())
        .collect();
    for granularity in &granularities {
        assert!(
            ["hour", "day", "month"].contains(&granularity.as_str()),
            "ICEDB_BENCH_GRANULARITY takes hour, day or month, not `{granularity}`"
        );
    }
    println!(
        "HTTP ingest: {events} standard events per mode, {CLIENTS} clients, {ROWS_PER_REQUEST}-row NDJSON requests, local directory, built-in formatter, partitions by {}",
        granularities.join(" / ")
    );
    println!(
        "{:<34} {:>11} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8}",
        "mode", "rows/s", "requests", "commits", "files", "inline", "p50 ms", "p99 ms", "429s"
    );
    // `ICEDB_BENCH_MODES=1,3` runs only those modes (1-based, in this order).
    let only: Option<Vec<usize>> = std::env::var("ICEDB_BENCH_MODES")
        .ok()
        .map(|v| v.split(',').filter_map(|m| m.trim().parse().ok()).collect());
    let modes = [
        (true, true, false),
        (true, true, true),
        (true, false, false),
        (false, true, false),
    ];
    let hosts: Vec<PathBuf> = match std::env::var("ICEDB_BENCH_HOSTS") {
        Ok(list) => list.split(',').map(PathBuf::from).collect(),
        Err(_) => vec![binary("icedb-host")],
    };
    if hosts.len() > 1 {
        for (index, host) in hosts.iter().enumerate() {
            println!("[{}] {}", index + 1, host.display());
        }
    }
    let rounds: usize = std::env::var("ICEDB_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // Run directories, deleted when this ends (see the top).
    let mut dirs = Vec::new();
    for (index, mode) in modes.into_iter().enumerate() {
        if only.as_ref().is_some_and(|o| !o.contains(&(index + 1))) {
            continue;
        }
        for _ in 0..rounds {
            for (build, host) in hosts.iter().enumerate() {
                for granularity in &granularities {
                    // The embedded default (by day) as it is, without a section.
                    let partitioning = (granularity != "day").then_some(granularity.as_str());
                    let (outcome, dir) = run(host, mode, events, partitioning);
                    dirs.push(dir);
                    let (group_commit, inline, delta) = mode;
                    println!(
                        "{:<30} {:>11.0} {:>9} {:>9} {:>8} {:>8} {:>9.1} {:>9.1} {:>8}",
                        format!(
                            "group commit {}, inline {}{}{}{}",
                            if group_commit { "on" } else { "off" },
                            if inline { "on" } else { "off" },
                            if delta { ", delta" } else { "" },
                            if hosts.len() > 1 {
                                format!(" [{}]", build + 1)
                            } else {
                                String::new()
                            },
                            if granularities.len() > 1 {
                                format!(" {granularity}")
                            } else {
                                String::new()
                            }
                        ),
                        outcome.rows as f64 / outcome.took.as_secs_f64(),
                        outcome.latencies.len(),
                        outcome.commits,
                        outcome.files,
                        outcome.inline_parts,
                        percentile(&outcome.latencies, 0.5).as_secs_f64() * 1e3,
                        percentile(&outcome.latencies, 0.99).as_secs_f64() * 1e3,
                        outcome.retries,
                    );
                }
            }
        }
    }
}

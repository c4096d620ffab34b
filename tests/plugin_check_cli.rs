//! The real `icedb-host` binary: `plugin check` on real components (`run`
//! is covered by host_server.rs).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use icedb::events::EventGenerator;
use icedb_e2e::{binary, plugin};

fn icedb_host() -> Command {
    let mut command = Command::new(binary("icedb-host"));
    command.env("ICEDB_LOG", "info");
    command
}

fn sample_rows(count: usize) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(EventGenerator::new(5).ndjson(count).as_bytes())
        .unwrap();
    file
}

#[test]
fn plugin_check_runs_a_partition_strategy() {
    let rows = sample_rows(200);
    let output = icedb_host()
        .args(["plugin", "check"])
        .arg(plugin("partition-by-day"))
        .args(["--config", "field=ts", "--input"])
        .arg(rows.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("exports     icedb:plugin/partition-strategy@0.1.0"),
        "{stdout}"
    );
    assert!(stdout.contains("reads fields: ts"), "{stdout}");
    assert!(stdout.contains("partition   200 rows in"), "{stdout}");
    assert!(stdout.contains("rows/s"), "{stdout}");
    let distinct: usize = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("partitions  ")?
                .strip_suffix(" distinct")?
                .parse()
                .ok()
        })
        .expect("a partitions line");
    assert!(
        (25..=30).contains(&distinct),
        "200 events over 30 days: {distinct} days"
    );
    assert!(stdout.contains("  row 0     y=2026/m="), "{stdout}");
}

#[test]
fn plugin_check_runs_a_formatter() {
    let rows = sample_rows(20);
    let output = icedb_host()
        .args(["plugin", "check"])
        .arg(plugin("flatten-json"))
        .args(["-c", "timestamp-fields=ts", "--limit", "3", "-i"])
        .arg(rows.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("exports     icedb:plugin/format-row@0.1.0"),
        "{stdout}"
    );
    assert!(stdout.contains("format      20 rows in"), "{stdout}");
    assert!(
        stdout.contains("ts: timestamp") && stdout.contains("properties.duration_ms: int64"),
        "{stdout}"
    );
    let printed: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| {
            l.strip_prefix("  {")
                .map(|rest| serde_json::from_str(&format!("{{{rest}")).unwrap())
        })
        .collect();
    assert_eq!(printed.len(), 3, "--limit 3");
    assert!(
        printed[0]["ts"].as_str().unwrap().starts_with("2026-1"),
        "timestamps print as RFC 3339: {}",
        printed[0]
    );
}

#[test]
fn plugin_check_reports_plugin_failures() {
    let mut rows = tempfile::NamedTempFile::new().unwrap();
    rows.write_all(b"{\"mode\":\"ok\"}\n{\"mode\":\"loop\"}\n")
        .unwrap();
    let started = Instant::now();
    let output = icedb_host()
        .args(["plugin", "check"])
        .arg(plugin("hostile"))
        .args(["--timeout-ms", "300", "--input"])
        .arg(rows.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(started.elapsed() < Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("plugin `hostile` timed out in `format`"),
        "{stderr}"
    );

    let output = icedb_host()
        .args(["plugin", "check", "/nonexistent.wasm"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read /nonexistent.wasm"));
}

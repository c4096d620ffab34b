//! The real `icedb-host` binary's one-shot commands on a local directory and
//! on the S3 test server: gen-events | insert, status, query (json, csv,
//! table), merge, vacuum, check-store, and bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use icedb_e2e::{Backend, S3, binary, duckdb_extension_dir};

struct Cli {
    table: String,
    s3: bool,
}

impl Cli {
    fn new(backend: Backend, dir: &std::path::Path, label: &str) -> Cli {
        Cli {
            table: backend.new_table(dir, label),
            s3: backend == Backend::S3,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary("icedb-host"));
        command.args(args).args(["--table", &self.table]);
        command
            .env("ICEDB_DUCKDB_EXTENSION_DIR", duckdb_extension_dir())
            .env("ICEDB_LOG", "warn");
        if self.s3 {
            command.args([
                "--s3-endpoint",
                &S3::from_env().endpoint,
                "--s3-path-style",
                "--s3-allow-http",
            ]);
        }
        command
    }

    fn run(&self, args: &[&str]) -> String {
        let output = self.command(args).output().unwrap();
        assert_success(&output, args);
        String::from_utf8(output.stdout).unwrap()
    }

    /// `SELECT count(*)` through `query --format json`.
    fn count(&self) -> i64 {
        let json = self.run(&[
            "query",
            "--format",
            "json",
            "SELECT count(*) AS n FROM events",
        ]);
        serde_json::from_str::<serde_json::Value>(json.trim()).unwrap()["n"]
            .as_i64()
            .unwrap()
    }

    fn insert(&self, ndjson: &[u8], extra: &[&str]) -> Output {
        let mut args = vec!["insert", "-"];
        args.extend_from_slice(extra);
        fed(self.command(&args), ndjson)
    }
}

/// Runs `command` with `input` on its standard input.
fn fed(mut command: Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn assert_success(output: &Output, args: &[&str]) {
    assert!(
        output.status.success(),
        "icedb-host {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
}

fn events(rows: usize, seed: u64) -> Vec<u8> {
    let events = icedb_e2e::gen_events(rows, seed);
    assert_eq!(events.lines().count(), rows);
    events.into_bytes()
}

fn one_shot_commands(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(backend, dir.path(), "cli");
    let output = cli.insert(&events(5_000, 3), &["--batch-rows", "1000"]);
    assert_success(&output, &["insert"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("inserted 5000 rows in 5 commits"),
        "{stdout}"
    );

    let status = cli.run(&["status"]);
    assert!(status.contains("version    5"), "{status}");
    // 1 000-row inserts over 30 days: ~33 rows per partition, kept in the
    // commits (inline) until a merge.
    assert!(status.contains("5000 rows, 0 files"), "{status}");
    assert!(
        status.contains("inline     5000 rows in 150 parts"),
        "{status}"
    );
    assert!(status.contains("ts timestamp"), "{status}");

    let json = cli.run(&[
        "query",
        "--format",
        "json",
        "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM events",
    ]);
    let row: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        (row["n"].as_i64(), row["ids"].as_i64()),
        (Some(5_000), Some(5_000))
    );
    let csv = cli.run(&[
        "query",
        "--format",
        "csv",
        "SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY n DESC LIMIT 2",
    ]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "event,n");
    assert!(
        lines[1].starts_with("page_view,"),
        "the most frequent event: {csv}"
    );
    let table = cli.run(&[
        "query",
        "--partition",
        "y=2026/m=10/d=01",
        "SELECT count(DISTINCT d) AS days FROM events",
    ]);
    assert!(table.contains("| 1    |"), "{table}");

    let merged = cli.run(&["merge"]);
    assert!(merged.contains("merged 150 files into 30"), "{merged}");
    assert!(cli.run(&["status"]).contains("5000 rows, 30 files"));
    let vacuumed = cli.run(&["vacuum", "--grace", "0s", "--force"]);
    assert!(
        vacuumed.starts_with("purged 150 removed files and 0 orphans"),
        "{vacuumed}"
    );
    assert_eq!(cli.count(), 5_000);

    let ok = cli.run(&["check-store"]);
    assert_eq!(
        ok.trim(),
        "ok: 8 racing conditional creates, exactly one won"
    );
}

#[test]
fn one_shot_commands_local() {
    one_shot_commands(Backend::Local);
}

#[test]
fn one_shot_commands_s3() {
    one_shot_commands(Backend::S3);
}

/// DuckDB (and its httpfs extension) is needed to read, not to write: an
/// S3 table without httpfs takes inserts and merges, and a query says how
/// to install it.
#[test]
fn an_s3_table_without_httpfs_writes_and_a_query_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(Backend::S3, dir.path(), "no-httpfs");
    let empty = dir.path().join("no-extensions");
    std::fs::create_dir_all(&empty).unwrap();
    let without = |args: &[&str]| {
        let mut command = cli.command(args);
        command.env("ICEDB_DUCKDB_EXTENSION_DIR", &empty);
        command
    };
    let output = fed(without(&["insert", "-"]), &events(500, 5));
    assert_success(&output, &["insert"]);
    let output = without(&["merge"]).output().unwrap();
    assert_success(&output, &["merge"]);

    let output = without(&["query", "SELECT count(*) FROM events"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("httpfs extension is needed for S3 tables")
            && stderr.contains("scripts/setup.sh"),
        "{stderr}"
    );
    // With the extension, the rows are all there.
    assert_eq!(cli.count(), 500);
}

#[test]
fn bad_input_fails_with_the_line_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(Backend::Local, dir.path(), "bad");
    let output = cli.insert(
        b"{\"ts\": 1790812800000, \"n\": 1}\n{\"n\": 2}\n{\"n\": \n",
        &[],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3: invalid JSON"), "{stderr}");
    assert!(
        cli.run(&["status"]).contains("version    0"),
        "nothing committed"
    );
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    // More output than a pipe holds: the writer meets the closed pipe.
    let mut child = Command::new(binary("icedb-host"))
        .args([
            "query",
            "--format",
            "csv",
            "SELECT i FROM range(300000) t(i)",
        ])
        .current_dir(dir.path())
        .env("ICEDB_DUCKDB_EXTENSION_DIR", duckdb_extension_dir())
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        output.status.signal(),
        Some(13), // SIGPIPE on Linux
        "ended by SIGPIPE like other tools: {:?} {stderr}",
        output.status
    );
}

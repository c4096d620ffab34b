//! The real `icedb-tui` in a real terminal (tmux): against a table the test
//! created, opened directly and through a running host. The partitions
//! inserted appear, a query typed in the Queries view shows the right count,
//! and `q` exits cleanly (status 0).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use icedb_e2e::{HostProcess, binary, duckdb_extension_dir, gen_events};

struct Tmux {
    socket: String,
    exit_file: std::path::PathBuf,
}

impl Tmux {
    /// Starts `command` in a detached 120x40 tmux session.
    fn start(dir: &Path, label: &str, command: &str) -> Tmux {
        let socket = format!("icedb-test-{}-{label}", std::process::id());
        let exit_file = dir.join(format!("{label}.exit"));
        let script = format!("{command}; echo $? > {}", exit_file.display());
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
                "-s",
                "tui",
            ])
            .arg(script)
            .env("ICEDB_DUCKDB_EXTENSION_DIR", duckdb_extension_dir())
            // CI may run without a terminal type; tmux wants one.
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux is installed (scripts/setup.sh)");
        assert!(status.success());
        Tmux { socket, exit_file }
    }

    fn screen(&self) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "tui"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "tui"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn text(&self, text: &str) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "tui", "-l", text])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the screen shows every one of `needles`.
    fn wait_for(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if needles.iter().all(|n| screen.contains(n)) {
                return screen;
            }
            if let Ok(code) = std::fs::read_to_string(&self.exit_file) {
                panic!(
                    "icedb-tui exited ({}) while waiting for {needles:?}:\n{screen}",
                    code.trim()
                );
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {needles:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn exit_status(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(code) = std::fs::read_to_string(&self.exit_file) {
                return code.trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "icedb-tui did not exit:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn insert_events(root: &str, rows: usize) {
    let mut child = Command::new(binary("icedb-host"))
        .args(["insert", "-", "--table", root])
        .env("ICEDB_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(gen_events(rows, 5).as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Partitions, a typed query, and `q`.
fn drive(tmux: &Tmux) {
    tmux.wait_for(&["1 Overview", "version 1", "2 000"]);
    tmux.keys(&["2"]);
    let screen = tmux.wait_for(&["Partitions (30)", "y=2026/m=10/d=01"]);
    assert!(screen.contains("y=2026/m=10/d="), "{screen}");
    tmux.keys(&["4", "i"]);
    tmux.text("SELECT count(*) * 3 AS tripled FROM events WHERE d = '05'");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for(&["tripled", "1 rows in"]);
    let shown: i64 = screen
        .lines()
        .skip_while(|l| l.trim_matches(|c: char| c == '│' || c.is_whitespace()) != "tripled")
        .nth(1)
        .and_then(|l| l.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .unwrap_or_else(|| panic!("no result row:\n{screen}"));
    let day_five = gen_events(2_000, 5)
        .lines()
        .filter(|l| {
            let ts = serde_json::from_str::<serde_json::Value>(l).unwrap()["ts"]
                .as_i64()
                .unwrap();
            chrono::DateTime::from_timestamp_millis(ts)
                .unwrap()
                .format("%d")
                .to_string()
                == "05"
        })
        .count() as i64;
    assert_eq!(shown, 3 * day_five, "{screen}");
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(), "0", "q exits cleanly");
}

#[test]
fn dashboard_on_a_table_opened_directly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("events").display().to_string();
    insert_events(&root, 2_000);
    let tmux = Tmux::start(
        dir.path(),
        "table",
        &format!(
            "{} --table {root} --refresh 500ms",
            binary("icedb-tui").display()
        ),
    );
    drive(&tmux);
}

#[test]
fn dashboard_watching_a_host() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("events").display().to_string();
    insert_events(&root, 2_000);
    let config = dir.path().join("icedb.toml");
    std::fs::write(
        &config,
        format!("[[tables]]\nname = \"events\"\nroot = \"{root}\"\n"),
    )
    .unwrap();
    let host = HostProcess::start(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        &[(
            "ICEDB__STORAGE__REPLICA_DIR",
            dir.path().join("replicas").display().to_string(),
        )],
    );
    let tmux = Tmux::start(
        dir.path(),
        "host",
        &format!(
            "{} --host {} --refresh 500ms",
            binary("icedb-tui").display(),
            host.url
        ),
    );
    drive(&tmux);
    // The host saw the query the dashboard sent.
    let activity = icedb_e2e::http()
        .get(&format!("{}/v1/activity?kind=query", host.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(activity.contains("tripled"), "{activity}");
}

//! What the host is doing and did lately: inserts (one entry per commit),
//! queries, merges, vacuums and checkpoints, for `/v1/activity`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How many finished entries are kept.
const RECENT: usize = 500;

pub use icedb::api::{ActivityEntry as Entry, ActivityKind as Kind, ActivityStatus as Status};

#[derive(Default)]
struct Log {
    next_id: u64,
    running: BTreeMap<u64, Entry>,
    recent: VecDeque<Entry>,
}

#[derive(Clone, Default)]
pub struct Activity {
    log: Arc<Mutex<Log>>,
}

impl Activity {
    /// Records the start of some work; finish it through the returned guard
    /// (dropping it unfinished records a cancellation).
    pub fn start(&self, kind: Kind, table: &str, label: impl Into<String>) -> Running {
        let mut log = self.log.lock().expect("activity lock");
        log.next_id += 1;
        let id = log.next_id;
        log.running.insert(
            id,
            Entry {
                id,
                kind,
                table: table.to_owned(),
                label: label.into(),
                started_ms: chrono_now_ms(),
                duration_ms: None,
                status: Status::Running,
                error: None,
                detail: serde_json::Value::Null,
            },
        );
        Running {
            activity: self.clone(),
            id,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Running entries (oldest first) and up to `limit` finished ones
    /// (newest first), optionally of one kind.
    pub fn list(&self, kind: Option<Kind>, limit: usize) -> (Vec<Entry>, Vec<Entry>) {
        let log = self.log.lock().expect("activity lock");
        let wanted = |e: &&Entry| kind.is_none_or(|k| e.kind == k);
        let running = log.running.values().filter(wanted).cloned().collect();
        let recent = log
            .recent
            .iter()
            .rev()
            .filter(wanted)
            .take(limit)
            .cloned()
            .collect();
        (running, recent)
    }

    fn finish(
        &self,
        id: u64,
        took: f64,
        status: Status,
        error: Option<String>,
        detail: serde_json::Value,
    ) {
        let mut log = self.log.lock().expect("activity lock");
        if let Some(mut entry) = log.running.remove(&id) {
            entry.duration_ms = Some(took);
            entry.status = status;
            entry.error = error;
            entry.detail = detail;
            if log.recent.len() == RECENT {
                log.recent.pop_front();
            }
            log.recent.push_back(entry);
        }
    }
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Work in progress; see [`Activity::start`].
pub struct Running {
    activity: Activity,
    id: u64,
    started: Instant,
    finished: bool,
}

impl Running {
    pub fn finish(mut self, status: Status, detail: serde_json::Value) {
        self.close(status, None, detail);
    }

    pub fn fail(mut self, error: impl std::fmt::Display) {
        self.close(
            Status::Error,
            Some(error.to_string()),
            serde_json::Value::Null,
        );
    }

    fn close(&mut self, status: Status, error: Option<String>, detail: serde_json::Value) {
        self.finished = true;
        let took = self.started.elapsed().as_secs_f64() * 1e3;
        self.activity.finish(self.id, took, status, error, detail);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            self.close(Status::Cancelled, None, serde_json::Value::Null);
        }
    }
}

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters a plugin keeps about its calls, for dashboards and metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    calls: AtomicU64,
    rows: AtomicU64,
    errors: AtomicU64,
    traps: AtomicU64,
    instances_created: AtomicU64,
    busy_nanos: AtomicU64,
}

/// A snapshot of a plugin's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginStats {
    /// Batches handed to the plugin.
    pub calls: u64,
    /// Rows handed to the plugin.
    pub rows: u64,
    /// Calls that failed, for any reason.
    pub errors: u64,
    /// Calls that trapped, timed out or hit the memory cap (the instance was
    /// replaced).
    pub traps: u64,
    /// Instances created (the first, and one per replaced or extra one).
    pub instances_created: u64,
    /// Time spent inside the plugin.
    pub busy: Duration,
}

impl Counters {
    pub(crate) fn record_call(&self, rows: usize, took: Duration, outcome: Outcome) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.busy_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        match outcome {
            Outcome::Ok => {}
            Outcome::Error => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Trap => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.traps.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn record_instance(&self) {
        self.instances_created.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> PluginStats {
        PluginStats {
            calls: self.calls.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            traps: self.traps.load(Ordering::Relaxed),
            instances_created: self.instances_created.load(Ordering::Relaxed),
            busy: Duration::from_nanos(self.busy_nanos.load(Ordering::Relaxed)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Trap,
}

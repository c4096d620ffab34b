//! Maintenance on a timer, per table: the hot and cold merge policies,
//! vacuum and checkpoints. Each task starts at a random point of its first
//! interval and jitters every wait by ±10 %, so hosts sharing a table spread
//! their work instead of racing in step. Every run shows in the activity log
//! and in metrics; a failed run is logged and retried at the next tick.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use icedb::{MergePolicy, Table, VacuumOptions};
use rand::Rng;
use tokio::task::JoinSet;

use crate::config::ScheduledMerge;
use crate::server::activity::{Activity, Kind, Status};
use crate::server::metrics::{self, Metrics, PolicyLabels, TaskLabels};

/// The maintenance a table gets.
#[derive(Clone)]
pub struct Schedule {
    pub merges: Vec<ScheduledMerge>,
    pub vacuum: Option<ScheduledVacuum>,
    /// (check every, versions between checkpoints)
    pub checkpoint: Option<(Duration, u64)>,
    /// How often the Delta log catches up, if the table keeps one.
    pub delta: Option<Duration>,
}

/// A table's scheduled vacuum.
#[derive(Clone)]
pub struct ScheduledVacuum {
    pub every: Duration,
    pub options: VacuumOptions,
    /// Every this often (and at the first run) it also looks for orphans.
    pub orphans_every: Duration,
}

impl ScheduledVacuum {
    /// Whether a vacuum now should look for orphans, the last look having
    /// completed at `last` (never: `None`).
    fn orphans_due(&self, last: Option<Instant>, now: Instant) -> bool {
        last.is_none_or(|last| now.duration_since(last) >= self.orphans_every)
    }
}

#[derive(Clone)]
pub struct Context {
    pub table: Arc<Table>,
    pub metrics: Arc<Metrics>,
    pub activity: Activity,
}

/// Starts every task of `schedule` on `tasks`.
pub fn spawn(
    tasks: &mut JoinSet<()>,
    table: Arc<Table>,
    schedule: Schedule,
    metrics: Arc<Metrics>,
    activity: Activity,
) {
    let context = Context {
        table,
        metrics,
        activity,
    };
    // Inserts that pile up inline parts ask for a flush between ticks: it
    // keeps the table's inline bound free, so small inserts keep inlining.
    {
        let context = context.clone();
        tasks.spawn(async move {
            loop {
                context.table.flush_wanted().await;
                let _ = flush_now(&context).await;
                // A flush that keeps failing must not spin.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    for merge in schedule.merges {
        let context = context.clone();
        tasks.spawn(every(merge.every, move || {
            let context = context.clone();
            let policy = merge.policy.clone();
            async move { run_merge(&context, &policy).await }
        }));
    }
    if let Some(vacuum) = schedule.vacuum {
        let context = context.clone();
        let orphans_checked = Arc::new(Mutex::new(None));
        tasks.spawn(every(vacuum.every, move || {
            let context = context.clone();
            let orphans_checked = orphans_checked.clone();
            let last = *orphans_checked.lock().expect("never poisoned");
            let options = VacuumOptions {
                orphans: vacuum.orphans_due(last, Instant::now()),
                ..vacuum.options.clone()
            };
            async move {
                if vacuum_now(&context, &options).await.is_ok() && options.orphans {
                    *orphans_checked.lock().expect("never poisoned") = Some(Instant::now());
                }
            }
        }));
    }
    if let Some(interval) = schedule.delta {
        let context = context.clone();
        tasks.spawn(every(interval, move || {
            let context = context.clone();
            async move { run_delta_export(&context).await }
        }));
    }
    if let Some((interval, versions)) = schedule.checkpoint {
        tasks.spawn(every(interval, move || {
            let context = context.clone();
            async move { run_checkpoint(&context, versions).await }
        }));
    }
}

fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.9..1.1))
}

async fn every<F, Fut>(interval: Duration, mut run: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let first = interval.mul_f64(rand::rng().random_range(0.0..1.0));
    tokio::time::sleep(first).await;
    loop {
        run().await;
        tokio::time::sleep(jittered(interval)).await;
    }
}

fn record_run(context: &Context, task: &str, outcome: &str) {
    context
        .metrics
        .scheduler_runs
        .get_or_create(&TaskLabels {
            table: context.table.name().to_owned(),
            task: task.to_owned(),
            outcome: outcome.to_owned(),
        })
        .inc();
}

async fn run_merge(context: &Context, policy: &MergePolicy) {
    let _ = merge_now(context, policy, Rounds::One).await;
}

/// How many rounds a merge runs.
#[derive(Clone, Copy, Debug)]
pub enum Rounds {
    /// One round (the scheduler's tick; `POST .../merge` by default).
    One,
    /// Rounds until one plans nothing (what the CLI's `merge` does).
    UntilQuiescent,
}

/// A merge of `policy`, recorded in activity and metrics as one run; the
/// scheduler's tick and `POST /v1/tables/{t}/merge` both run this.
pub async fn merge_now(
    context: &Context,
    policy: &MergePolicy,
    rounds: Rounds,
) -> Result<icedb::api::MergeAnswer, icedb::TableError> {
    match rounds {
        Rounds::One => {
            recorded_merge(context, &policy.name, context.table.merge_once(policy)).await
        }
        Rounds::UntilQuiescent => {
            recorded_merge(
                context,
                &policy.name,
                context.table.merge_until_quiescent(policy),
            )
            .await
        }
    }
}

/// A flush of the table's inline parts (policy name `flush`), recorded
/// like a merge round.
async fn flush_now(context: &Context) -> Result<icedb::api::MergeAnswer, icedb::TableError> {
    recorded_merge(context, "flush", context.table.flush_inline()).await
}

async fn recorded_merge(
    context: &Context,
    policy: &str,
    round: impl Future<Output = Result<icedb::MergeReport, icedb::TableError>>,
) -> Result<icedb::api::MergeAnswer, icedb::TableError> {
    let table = context.table.name();
    let running = context
        .activity
        .start(Kind::Merge, table, format!("{policy} policy"));
    match round.await {
        Ok(report) => {
            let labels = PolicyLabels {
                table: table.to_owned(),
                policy: policy.to_owned(),
            };
            let m = &context.metrics;
            m.merge_jobs
                .get_or_create(&labels)
                .inc_by((report.jobs - report.conflicts.min(report.jobs)) as u64);
            m.merge_conflicts
                .get_or_create(&labels)
                .inc_by(report.conflicts as u64);
            m.merge_files_in
                .get_or_create(&labels)
                .inc_by(report.files_in as u64);
            m.merge_files_out
                .get_or_create(&labels)
                .inc_by(report.files_out as u64);
            let status = if report.conflicts > 0 {
                Status::Conflict
            } else {
                Status::Ok
            };
            if report.jobs > 0 {
                tracing::info!(
                    table,
                    policy,
                    jobs = report.jobs,
                    files_in = report.files_in,
                    files_out = report.files_out,
                    conflicts = report.conflicts,
                    "merged"
                );
            }
            record_run(context, &format!("merge_{policy}"), "ok");
            let answer = icedb::api::MergeAnswer::new(policy, &report);
            running.finish(
                status,
                serde_json::to_value(&answer).expect("a merge answer serializes"),
            );
            Ok(answer)
        }
        Err(e) => {
            tracing::warn!(table, policy, error = %e, "merge failed; retrying at the next tick");
            record_run(context, &format!("merge_{policy}"), "error");
            running.fail(&e);
            Err(e)
        }
    }
}

/// One vacuum with `options`, recorded in activity and metrics; the
/// scheduler's tick and `POST /v1/tables/{t}/vacuum` both run this. The
/// answer is what the activity records.
pub async fn vacuum_now(
    context: &Context,
    options: &VacuumOptions,
) -> Result<serde_json::Value, icedb::TableError> {
    let table = context.table.name();
    let running = context.activity.start(
        Kind::Vacuum,
        table,
        format!("grace {}", humantime::format_duration(options.grace)),
    );
    match context.table.vacuum(options).await {
        Ok(report) => {
            let label = metrics::table(table);
            context
                .metrics
                .vacuum_files_deleted
                .get_or_create(&label)
                .inc_by((report.purged + report.orphans_deleted) as u64);
            context
                .metrics
                .vacuum_bytes_freed
                .get_or_create(&label)
                .inc_by(report.bytes_freed);
            record_run(context, "vacuum", "ok");
            let answer = serde_json::json!({
                "purged": report.purged,
                "orphans_deleted": report.orphans_deleted,
                "orphans_checked": report.orphans_checked,
                "bytes_freed": report.bytes_freed,
                "version": report.version,
                "log_entries_deleted": report.log_entries_deleted,
                "delta_log_entries_deleted": report.delta_log_entries_deleted,
                "checkpoints_deleted": report.checkpoints_deleted,
            });
            running.finish(Status::Ok, answer.clone());
            Ok(answer)
        }
        Err(e) => {
            tracing::warn!(table, error = %e, "vacuum failed; retrying at the next tick");
            record_run(context, "vacuum", "error");
            running.fail(&e);
            Err(e)
        }
    }
}

/// Exports to the Delta log what other processes committed (this host's
/// own commits export as they land). Counted in metrics
/// (`task="delta_export"`); failures are logged and retried.
async fn run_delta_export(context: &Context) {
    match context.table.export_delta().await {
        Ok(_) => record_run(context, "delta_export", "ok"),
        Err(e) => {
            tracing::warn!(table = context.table.name(), error = %e, "Delta export failed; retrying at the next tick");
            record_run(context, "delta_export", "error");
        }
    }
}

async fn run_checkpoint(context: &Context, versions: u64) {
    let table = context.table.name();
    let due = async {
        let head = context.table.sync().await?;
        let latest = context.table.latest_checkpoint().await?.unwrap_or(0);
        Ok::<_, icedb::TableError>((head >= latest + versions).then_some(head))
    };
    let head = match due.await {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(table, error = %e, "checkpoint check failed");
            record_run(context, "checkpoint", "error");
            return;
        }
    };
    let running = context
        .activity
        .start(Kind::Checkpoint, table, format!("at version {head}"));
    match context.table.checkpoint().await {
        Ok(version) => {
            context
                .metrics
                .checkpoints
                .get_or_create(&metrics::table(table))
                .inc();
            record_run(context, "checkpoint", "ok");
            running.finish(Status::Ok, serde_json::json!({ "version": version }));
        }
        Err(e) => {
            tracing::warn!(table, error = %e, "checkpoint failed");
            record_run(context, "checkpoint", "error");
            running.fail(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first scheduled vacuum looks for orphans, then one per
    /// `orphans_every`; 0 looks every time.
    #[test]
    fn orphans_are_looked_for_first_then_once_per_interval() {
        let mut vacuum = ScheduledVacuum {
            every: Duration::from_secs(600),
            options: VacuumOptions::default(),
            orphans_every: Duration::from_secs(3600),
        };
        let now = Instant::now();
        assert!(vacuum.orphans_due(None, now));
        assert!(!vacuum.orphans_due(Some(now), now + Duration::from_secs(600)));
        assert!(vacuum.orphans_due(Some(now), now + Duration::from_secs(3600)));
        vacuum.orphans_every = Duration::ZERO;
        assert!(vacuum.orphans_due(Some(now), now));
    }
}

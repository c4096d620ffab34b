//! CPU-heavy work (Parquet encoding, the k-way merge, result encoding,
//! gzip) runs on tokio's blocking pool, at most one task per core at a
//! time, so the async workers keep serving requests and I/O; background
//! work (flushes) computes on a pool of its own at a lower OS priority.

use std::future::Future;
use std::sync::OnceLock;

use tokio::sync::Semaphore;

fn cores() -> &'static Semaphore {
    static CPU: OnceLock<Semaphore> = OnceLock::new();
    CPU.get_or_init(|| Semaphore::new(core_count()))
}

/// The cores CPU-heavy work is spread over, found once per process:
/// `available_parallelism` reads the affinity mask and the cgroup's quota
/// files on every call (~1 % of the host's CPU in HTTP ingest, once per
/// insert).
pub(crate) fn core_count() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Runs `work` on the blocking pool once a core is free.
///
/// # Panics
/// If `work` panics (the panic is carried over to the caller).
pub async fn on_cpu<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    let _permit = tracing::Instrument::instrument(
        cores().acquire(),
        tracing::debug_span!("cpu.permit", free = cores().available_permits()),
    )
    .await
    .expect("never closed");
    let running = tracing::debug_span!("cpu.run");
    match tokio::task::spawn_blocking(move || running.in_scope(work)).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Drives `work`, a future that mostly computes and sometimes waits on I/O
/// (a merge job's k-way merge and encoding), on a blocking-pool thread.
/// It takes no core permit: it would hold it across its I/O waits and
/// starve inserts' encoding for a whole merge job; merges are bounded by
/// their round's job concurrency instead (the policy's, or more for a
/// round of inline parts only, which read nothing from the store).
pub(crate) async fn on_blocking_thread<F>(work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || handle.block_on(work)).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The threads background work computes on: one per core, each at a
/// lower OS priority (nice 10 on Linux), kept for the process's life.
fn background() -> &'static rayon_core::ThreadPool {
    static POOL: OnceLock<rayon_core::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon_core::ThreadPoolBuilder::new()
            .num_threads(core_count())
            .thread_name(|i| format!("icedb-background-{i}"))
            .start_handler(|_| lower_priority())
            .build()
            .expect("the OS starts the background threads")
    })
}

/// Drives `work`, a future that computes (decoding inline parts, sorting
/// and encoding a flush's file), on the background threads: at most one
/// such task per core at once, queued beyond that, at a lower OS priority.
/// It takes every idle core but yields them to inserts and queries
/// whenever they want one (capping it at fewer cores made a flush slower
/// when nothing else runs). Its uploads belong outside `work`, so they
/// overlap without holding a background thread.
///
/// The threads are long-lived and one per core: a thread of its own per
/// task (as before) let a flush's eight jobs compute at once, which held
/// inserts up whatever the priority (HTTP ingest 107–111 k rows/s against
/// 116–137 k now, p99 28–35 ms against 14–16 ms; see ARCHITECTURE).
///
/// # Panics
/// If `work` panics (carried over).
pub(crate) async fn in_background<F>(work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let (done, result) = tokio::sync::oneshot::channel();
    background().spawn(move || {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle.block_on(work)));
        let _ = done.send(outcome);
    });
    match result.await {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => unreachable!("the task answers or panics"),
    }
}

/// Lowers the calling thread's scheduling priority (Linux keeps a nice
/// value per thread; `who = 0` is the caller). Best effort: raising the
/// nice value needs no privilege, and the thread ends with its work.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority only reads its integer arguments.
    let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) } != 0;
    if failed {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower a background thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_work_takes_at_most_a_core_each_on_long_lived_low_priority_threads() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks = (0..core_count() * 4).map(|_| {
            let (running, peak) = (running.clone(), peak.clone());
            in_background(async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
                #[cfg(target_os = "linux")]
                // SAFETY: getpriority only reads its integer arguments.
                let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
                #[cfg(not(target_os = "linux"))]
                let nice = 10;
                (std::thread::current().name().map(str::to_owned), nice)
            })
        });
        let ran = futures::future::join_all(tasks).await;
        assert!(peak.load(Ordering::SeqCst) <= core_count());
        let threads: HashSet<_> = ran.iter().map(|(name, _)| name.clone()).collect();
        assert!(threads.len() <= core_count(), "{threads:?}");
        for (name, nice) in ran {
            assert!(name.unwrap().starts_with("icedb-background-"));
            assert_eq!(nice, 10);
        }
    }

    #[tokio::test]
    async fn a_panic_in_background_work_reaches_its_caller() {
        let outcome = tokio::spawn(in_background(async { panic!("flush failed") })).await;
        assert!(outcome.unwrap_err().is_panic());
    }
}

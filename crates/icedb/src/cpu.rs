//! CPU-heavy work (Parquet encoding, the k-way merge, result encoding,
//! gzip) runs on tokio's blocking pool, at most one task per core at a
//! time, so the async workers keep serving requests and I/O; background
//! work (flushes) runs on threads of its own at a lower OS priority.

use std::future::Future;
use std::sync::OnceLock;

use tokio::sync::Semaphore;

fn cores() -> &'static Semaphore {
    static CPU: OnceLock<Semaphore> = OnceLock::new();
    CPU.get_or_init(|| Semaphore::new(core_count()))
}

/// The cores CPU-heavy work is spread over.
pub(crate) fn core_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
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

/// Drives `work` like [`on_blocking_thread`], on a thread of its own that
/// runs at a lower OS priority (nice 10 on Linux): background work that
/// computes (flushing inline parts into files) takes every idle core, but
/// yields them to inserts and queries whenever they want one. Capping it
/// at fewer cores instead made a flush slower when nothing else runs.
///
/// # Panics
/// If the OS cannot start a thread, or `work` panics (carried over).
pub(crate) async fn in_background<F>(work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("icedb-background".to_owned())
        .spawn(move || {
            lower_priority();
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle.block_on(work)));
            let _ = done.send(outcome);
        })
        .expect("the OS starts a thread");
    match result.await {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => unreachable!("the thread answers or panics"),
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

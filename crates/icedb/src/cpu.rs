//! CPU-heavy work (Parquet encoding, the k-way merge, result encoding,
//! gzip) runs on tokio's blocking pool, at most one task per core at a
//! time, so the async workers keep serving requests and I/O.

use std::future::Future;
use std::sync::OnceLock;

use tokio::sync::Semaphore;

fn cores() -> &'static Semaphore {
    static CPU: OnceLock<Semaphore> = OnceLock::new();
    CPU.get_or_init(|| Semaphore::new(core_count()))
}

/// Permits for background CPU work (flushing inline parts into files):
/// one less than the cores, at least one, so a flush's burst of jobs
/// leaves a core to the inserts and queries it would otherwise delay.
fn background() -> &'static Semaphore {
    static BACKGROUND: OnceLock<Semaphore> = OnceLock::new();
    BACKGROUND.get_or_init(|| Semaphore::new(core_count().saturating_sub(1).max(1)))
}

/// Waits for a core background work may use (see [`background`]); the
/// caller holds it for its computing, not for its I/O.
pub(crate) async fn background_core() -> tokio::sync::SemaphorePermit<'static> {
    tracing::Instrument::instrument(
        background().acquire(),
        tracing::debug_span!("cpu.background"),
    )
    .await
    .expect("never closed")
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

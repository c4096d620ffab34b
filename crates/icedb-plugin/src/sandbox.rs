//! The per-instance sandbox: WASI with nothing granted, a frozen clock, a
//! memory cap that remembers when it was hit, and the tail of whatever the
//! plugin printed (a Rust panic message, say) for error reports.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

/// Store data of one plugin instance.
pub(crate) struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: CappedMemory,
    pub(crate) output: OutputTail,
}

impl Sandbox {
    pub(crate) fn new(memory_limit: usize) -> Self {
        // No preopened directories, environment, arguments or stdin; output
        // is kept only as a short tail for error reports; sockets are
        // refused; clocks read as the Unix epoch so that plugins stay
        // deterministic (randomness stays available: hash maps need it).
        let output = OutputTail::default();
        let wasi = WasiCtxBuilder::new()
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .build();
        Sandbox {
            wasi,
            table: ResourceTable::new(),
            limiter: CappedMemory::new(memory_limit),
            output,
        }
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `StoreLimits` that also records whether a grow was refused, so that the
/// resulting trap can be reported as a memory-limit error.
pub(crate) struct CappedMemory {
    limits: StoreLimits,
    pub(crate) exceeded: bool,
}

impl CappedMemory {
    fn new(memory_limit: usize) -> Self {
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_limit)
            .trap_on_grow_failure(true)
            .build();
        CappedMemory {
            limits,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for CappedMemory {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let verdict = self.limits.memory_growing(current, desired, maximum);
        if !matches!(verdict, Ok(true)) {
            self.exceeded = true;
        }
        verdict
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// A clock stopped at the Unix epoch.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The last [`OutputTail::CAPACITY`] bytes a plugin wrote to stdout or
/// stderr. Writes never fail or block, however much the plugin prints.
#[derive(Clone, Default)]
pub(crate) struct OutputTail(Arc<Mutex<VecDeque<u8>>>);

impl OutputTail {
    const CAPACITY: usize = 1024;

    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock().expect("output tail poisoned");
        let bytes = &bytes[bytes.len().saturating_sub(Self::CAPACITY)..];
        let excess = (tail.len() + bytes.len()).saturating_sub(Self::CAPACITY);
        tail.drain(..excess);
        tail.extend(bytes);
    }

    pub(crate) fn clear(&self) {
        self.0.lock().expect("output tail poisoned").clear();
    }

    /// What was printed since the last `clear`, as one trimmed line of text.
    pub(crate) fn text(&self) -> String {
        let tail = self.0.lock().expect("output tail poisoned");
        let bytes: Vec<u8> = tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl IsTerminal for OutputTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for OutputTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputTail {
    async fn ready(&mut self) {}
}

impl AsyncWrite for OutputTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::OutputTail;

    #[test]
    fn output_tail_keeps_the_last_bytes() {
        let tail = OutputTail::default();
        tail.push(b"first line\n");
        assert_eq!(tail.text(), "first line");
        tail.push(&vec![b'x'; OutputTail::CAPACITY + 10]);
        tail.push(b"\npanicked at src/lib.rs:3:5:\nboom\n");
        let text = tail.text();
        assert!(text.ends_with("panicked at src/lib.rs:3:5: boom"), "{text}");
        assert!(!text.contains("first line"));
        assert!(text.len() <= OutputTail::CAPACITY);
        tail.clear();
        assert_eq!(tail.text(), "");
    }
}

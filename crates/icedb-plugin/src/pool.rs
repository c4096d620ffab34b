//! A pool of pre-linked, configured instances of one component. Calls take
//! an idle instance (or make one), run on the caller's thread with the time
//! and memory caps armed, and put the instance back, unless it trapped:
//! a trapped instance cannot be entered again, so it is dropped and the next
//! call makes a fresh one.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

use wasmtime::component::{Component, InstancePre};
use wasmtime::{Store, Trap, WasmBacktrace};

use crate::bindings::GuestError;
use crate::error::{PluginError, PluginErrorKind};
use crate::host::{ComponentInfo, EPOCH_TICK, PluginHost};
use crate::sandbox::Sandbox;
use crate::stats::{Counters, Outcome};

/// The bindings of one exported interface, as the pool needs them.
pub(crate) trait Guest: Sized + Send + 'static {
    type Pre: Send + Sync + 'static;
    fn pre(instance_pre: InstancePre<Sandbox>) -> wasmtime::Result<Self::Pre>;
    fn instantiate(pre: &Self::Pre, store: &mut Store<Sandbox>) -> wasmtime::Result<Self>;
    fn configure(
        &self,
        store: &mut Store<Sandbox>,
        settings: &[(String, String)],
    ) -> wasmtime::Result<Result<(), String>>;
}

struct Instance<G> {
    store: Store<Sandbox>,
    guest: G,
}

pub(crate) struct Pool<G: Guest> {
    pub(crate) info: ComponentInfo,
    host: PluginHost,
    pre: G::Pre,
    settings: Vec<(String, String)>,
    idle: Mutex<Vec<Instance<G>>>,
    max_idle: usize,
    /// Calls in progress (each holds one instance), capped at
    /// `HostOptions::max_instances`; further callers wait on `freed`.
    busy: Mutex<usize>,
    freed: Condvar,
    max_busy: usize,
    deadline_ticks: u64,
    pub(crate) counters: Counters,
}

impl<G: Guest> Pool<G> {
    /// Links the component and makes (and configures) a first instance, so
    /// that bad settings and missing imports surface at load time.
    pub(crate) fn new(
        host: PluginHost,
        info: ComponentInfo,
        component: &Component,
        settings: Vec<(String, String)>,
    ) -> Result<Self, PluginError> {
        let link_error = |e: wasmtime::Error| {
            PluginError::new(
                &info.name,
                "load",
                PluginErrorKind::Load,
                format!("cannot link: {e:#}"),
            )
        };
        let instance_pre = host
            .inner
            .linker
            .instantiate_pre(component)
            .map_err(link_error)?;
        let pre = G::pre(instance_pre).map_err(link_error)?;
        let timeout = host.inner.options.call_timeout;
        let deadline_ticks = timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64 + 1;
        let max_busy = host.inner.options.max_instances.max(1);
        let max_idle = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .min(max_busy);
        let pool = Pool {
            info,
            host,
            pre,
            settings,
            idle: Mutex::new(Vec::new()),
            max_idle,
            busy: Mutex::new(0),
            freed: Condvar::new(),
            max_busy,
            deadline_ticks,
            counters: Counters::default(),
        };
        let first = pool.fresh()?;
        pool.give_back(first);
        Ok(pool)
    }

    pub(crate) fn name(&self) -> &str {
        &self.info.name
    }

    fn fresh(&self) -> Result<Instance<G>, PluginError> {
        let options = &self.host.inner.options;
        let mut store = Store::new(&self.host.inner.engine, Sandbox::new(options.memory_limit));
        store.limiter(|sandbox| &mut sandbox.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.deadline_ticks);
        let guest = G::instantiate(&self.pre, &mut store)
            .map_err(|e| self.classify("instantiate", &e, &store))?;
        match guest.configure(&mut store, &self.settings) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                return Err(PluginError::new(
                    self.name(),
                    "configure",
                    PluginErrorKind::Config,
                    reason,
                ));
            }
            Err(e) => return Err(self.classify("configure", &e, &store)),
        }
        self.counters.record_instance();
        Ok(Instance { store, guest })
    }

    fn give_back(&self, instance: Instance<G>) {
        let mut idle = self.idle.lock().expect("instance pool poisoned");
        if idle.len() < self.max_idle {
            idle.push(instance);
        }
    }

    /// Runs one exported function on an instance, with the caps armed.
    /// `rows` is only for the statistics.
    pub(crate) fn call<R>(
        &self,
        function: &'static str,
        rows: usize,
        call: impl FnOnce(&G, &mut Store<Sandbox>) -> wasmtime::Result<Result<R, GuestError>>,
    ) -> Result<R, PluginError> {
        let _slot = self.slot();
        let started = Instant::now();
        let idle = self.idle.lock().expect("instance pool poisoned").pop();
        let mut instance = match idle {
            Some(instance) => instance,
            None => self.fresh()?,
        };
        instance.store.set_epoch_deadline(self.deadline_ticks);
        instance.store.data_mut().limiter.exceeded = false;
        instance.store.data().output.clear();
        let result = call(&instance.guest, &mut instance.store);
        let took = started.elapsed();
        match result {
            Ok(Ok(value)) => {
                self.give_back(instance);
                self.counters.record_call(rows, took, Outcome::Ok);
                Ok(value)
            }
            Ok(Err(refusal)) => {
                self.give_back(instance);
                self.counters.record_call(rows, took, Outcome::Error);
                Err(PluginError::new(
                    self.name(),
                    function,
                    PluginErrorKind::Rejected,
                    refusal.reason,
                )
                .at_row(refusal.row))
            }
            Err(trap) => {
                self.counters.record_call(rows, took, Outcome::Trap);
                Err(self.classify(function, &trap, &instance.store))
                // `instance` is dropped here: it cannot be entered again.
            }
        }
    }

    /// Waits until fewer than `max_busy` calls run (calls run on blocking
    /// threads, never on async workers).
    fn slot(&self) -> Slot<'_, G> {
        let mut busy = self.busy.lock().expect("instance pool poisoned");
        while *busy >= self.max_busy {
            busy = self.freed.wait(busy).expect("instance pool poisoned");
        }
        *busy += 1;
        Slot { pool: self }
    }

    /// Records a failure of the pool's own checks on a call's output.
    pub(crate) fn invalid_output(
        &self,
        function: &'static str,
        row: Option<u32>,
        message: String,
    ) -> PluginError {
        self.counters
            .record_call(0, std::time::Duration::ZERO, Outcome::Error);
        PluginError::new(
            self.name(),
            function,
            PluginErrorKind::InvalidOutput,
            message,
        )
        .at_row(row)
    }

    fn classify(
        &self,
        function: &'static str,
        error: &wasmtime::Error,
        store: &Store<Sandbox>,
    ) -> PluginError {
        let options = &self.host.inner.options;
        let (kind, message) = if store.data().limiter.exceeded {
            (
                PluginErrorKind::MemoryLimit,
                format!(
                    "tried to grow its memory past the {} MiB cap",
                    options.memory_limit >> 20
                ),
            )
        } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            (
                PluginErrorKind::Timeout,
                format!(
                    "interrupted after running for more than {:?} on one batch",
                    options.call_timeout
                ),
            )
        } else {
            (PluginErrorKind::Trap, describe_trap(error))
        };
        let printed = store.data().output.text();
        let message = if printed.is_empty() {
            message
        } else {
            format!("{message}; the plugin printed: {printed}")
        };
        PluginError::new(self.name(), function, kind, message)
    }
}

/// A call's place among the `max_busy` allowed at once.
struct Slot<'a, G: Guest> {
    pool: &'a Pool<G>,
}

impl<G: Guest> Drop for Slot<'_, G> {
    fn drop(&mut self) {
        *self.pool.busy.lock().expect("instance pool poisoned") -= 1;
        self.pool.freed.notify_one();
    }
}

/// One line: the trap and the innermost named wasm function.
fn describe_trap(error: &wasmtime::Error) -> String {
    let cause = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    let frame = error.downcast_ref::<WasmBacktrace>().and_then(|bt| {
        bt.frames()
            .iter()
            .find_map(|f| f.func_name().map(str::to_owned))
    });
    match frame {
        Some(func) => format!("{cause} (in {func})"),
        None => cause,
    }
}

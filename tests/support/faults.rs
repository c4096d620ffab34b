//! A fault-injecting `ObjectStore`: wraps a real store and misbehaves the
//! way object stores do — failing a request before it is sent, applying it
//! and then losing the answer (the outcome the client cannot know), applying
//! it only later (a request held by the network), delaying it, or refusing
//! every read for a while (an outage). Faults are chosen per kind of
//! request, either scripted ("the next log PUT applies then fails") or at a
//! rate from a seeded generator, so every run of a test is the same.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, stream};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What a request is, for choosing its fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A PUT of a commit-log entry (`_icedb/log/…`).
    LogPut,
    /// A PUT of a data file (`data/…`).
    DataPut,
    /// A PUT into the Delta log (`_delta_log/…`).
    DeltaPut,
    /// Any other PUT (checkpoints, markers, store checks).
    OtherPut,
    /// GET, HEAD and LIST.
    Read,
    Delete,
}

impl Kind {
    fn of_put(path: &Path) -> Kind {
        let key = path.as_ref();
        if key.starts_with("_icedb/log/") {
            Kind::LogPut
        } else if key.starts_with("data/") {
            Kind::DataPut
        } else if key.starts_with("_delta_log/") {
            Kind::DeltaPut
        } else {
            Kind::OtherPut
        }
    }
}

/// How a request misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Fails without reaching the store: nothing is applied.
    FailBefore,
    /// Applied, then the answer is lost: the client sees an error.
    ApplyThenFail,
    /// The client sees an error at once; the request is applied this much
    /// later (held by the network), whatever happened meanwhile.
    LandLater(Duration),
    /// Answered normally after this long.
    Delay(Duration),
    /// Applied at once, answered this much later (a slow response).
    AnswerLate(Duration),
    /// Applied, the answer lost, and every read fails for this long from
    /// then on (a partition right after the request).
    ApplyThenOutage(Duration),
}

#[derive(Default)]
struct State {
    scripted: HashMap<Kind, VecDeque<Fault>>,
    rates: HashMap<Kind, Vec<(f64, Fault)>>,
    outage_until: Option<Instant>,
    injected: HashMap<&'static str, u64>,
    rng: Option<StdRng>,
    single_deletes: u64,
    bulk_deletes: u64,
    requests: HashMap<Kind, u64>,
    log_entries_read: u64,
}

/// The wrapper. Clone the `Arc` to keep a handle for scripting faults while
/// a table or meta store uses it.
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    state: Mutex<State>,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultyStore",
        source: format!("injected fault: {what}").into(),
    }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            inner,
            state: Mutex::new(State {
                rng: Some(StdRng::seed_from_u64(seed)),
                ..State::default()
            }),
        })
    }

    /// The next request of `kind` gets `fault` (queued after earlier ones).
    pub fn script(&self, kind: Kind, fault: Fault) {
        let mut state = self.state.lock().unwrap();
        state.scripted.entry(kind).or_default().push_back(fault);
    }

    /// Each request of `kind` gets `fault` with probability `rate`.
    pub fn rate(&self, kind: Kind, rate: f64, fault: Fault) {
        let mut state = self.state.lock().unwrap();
        state.rates.entry(kind).or_default().push((rate, fault));
    }

    /// Every read (GET, HEAD, LIST) fails for `duration` from now.
    pub fn read_outage(&self, duration: Duration) {
        self.state.lock().unwrap().outage_until = Some(Instant::now() + duration);
    }

    /// Ends an outage and forgets every scripted fault and rate.
    pub fn heal(&self) {
        let mut state = self.state.lock().unwrap();
        state.outage_until = None;
        state.scripted.clear();
        state.rates.clear();
    }

    /// How many faults of each kind were injected.
    pub fn injected(&self) -> HashMap<&'static str, u64> {
        self.state.lock().unwrap().injected.clone()
    }

    /// How many one-key DELETEs and how many bulk deletes (`delete_stream`
    /// calls) reached this store.
    pub fn deletes(&self) -> (u64, u64) {
        let state = self.state.lock().unwrap();
        (state.single_deletes, state.bulk_deletes)
    }

    /// How many requests of each kind reached this store (faulty or not).
    pub fn requests(&self) -> HashMap<Kind, u64> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many GETs returned a commit-log entry (`_icedb/log/…`).
    pub fn log_entries_read(&self) -> u64 {
        self.state.lock().unwrap().log_entries_read
    }

    pub fn injected_total(&self) -> u64 {
        self.injected().values().sum()
    }

    fn choose(&self, kind: Kind) -> Option<Fault> {
        let mut state = self.state.lock().unwrap();
        *state.requests.entry(kind).or_default() += 1;
        if kind == Kind::Read
            && let Some(until) = state.outage_until
        {
            if Instant::now() < until {
                *state.injected.entry("read outage").or_default() += 1;
                return Some(Fault::FailBefore);
            }
            state.outage_until = None;
        }
        let fault = match state.scripted.get_mut(&kind).and_then(VecDeque::pop_front) {
            Some(fault) => Some(fault),
            None => {
                let rates = state.rates.get(&kind).cloned().unwrap_or_default();
                let rng = state.rng.as_mut().expect("seeded");
                rates
                    .into_iter()
                    .find(|(rate, _)| rng.random_bool(*rate))
                    .map(|(_, fault)| fault)
            }
        };
        if let Some(fault) = fault {
            let name = match fault {
                Fault::FailBefore => "fail before",
                Fault::ApplyThenFail => "apply then fail",
                Fault::LandLater(_) => "land later",
                Fault::Delay(_) => "delay",
                Fault::AnswerLate(_) => "answer late",
                Fault::ApplyThenOutage(_) => "apply then outage",
            };
            *state.injected.entry(name).or_default() += 1;
        }
        fault
    }

    async fn put_with_fault(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        match self.choose(Kind::of_put(location)) {
            None => self.inner.put_opts(location, payload, opts).await,
            Some(Fault::FailBefore) => Err(injected("PUT failed before sending")),
            Some(Fault::ApplyThenFail) => {
                let _ = self.inner.put_opts(location, payload, opts).await;
                Err(injected("connection reset after the PUT was applied"))
            }
            Some(Fault::ApplyThenOutage(outage)) => {
                let _ = self.inner.put_opts(location, payload, opts).await;
                self.read_outage(outage);
                Err(injected("connection lost after the PUT was applied"))
            }
            Some(Fault::LandLater(after)) => {
                let (inner, location) = (self.inner.clone(), location.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = inner.put_opts(&location, payload, opts).await;
                });
                Err(injected("PUT timed out (it is still on its way)"))
            }
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                self.inner.put_opts(location, payload, opts).await
            }
            Some(Fault::AnswerLate(delay)) => {
                let answer = self.inner.put_opts(location, payload, opts).await;
                tokio::time::sleep(delay).await;
                answer
            }
        }
    }

    /// Fails, delays or passes a read (reads have no "applied" state).
    async fn read_fault(&self) -> object_store::Result<()> {
        match self.choose(Kind::Read) {
            None => Ok(()),
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
            Some(_) => Err(injected("read failed")),
        }
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.put_with_fault(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if let Some(
            Fault::FailBefore
            | Fault::ApplyThenFail
            | Fault::LandLater(_)
            | Fault::ApplyThenOutage(_),
        ) = self.choose(Kind::of_put(location))
        {
            return Err(injected("multipart upload refused"));
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.read_fault().await?;
        let result = self.inner.get_opts(location, options).await;
        if result.is_ok() && location.as_ref().starts_with("_icedb/log/") {
            self.state.lock().unwrap().log_entries_read += 1;
        }
        result
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> object_store::Result<Bytes> {
        self.read_fault().await?;
        self.inner.get_range(location, range).await
    }

    async fn head(&self, location: &Path) -> object_store::Result<ObjectMeta> {
        self.read_fault().await?;
        self.inner.head(location).await
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.state.lock().unwrap().single_deletes += 1;
        match self.choose(Kind::Delete) {
            Some(Fault::FailBefore) => Err(injected("DELETE failed before sending")),
            Some(Fault::ApplyThenFail | Fault::LandLater(_) | Fault::ApplyThenOutage(_)) => {
                let _ = self.inner.delete(location).await;
                Err(injected("connection reset after the DELETE was applied"))
            }
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                self.inner.delete(location).await
            }
            Some(Fault::AnswerLate(delay)) => {
                let answer = self.inner.delete(location).await;
                tokio::time::sleep(delay).await;
                answer
            }
            None => self.inner.delete(location).await,
        }
    }

    /// One fault decision per bulk delete: failed before anything, or every
    /// key applied and the answer lost.
    fn delete_stream<'a>(
        &'a self,
        locations: BoxStream<'a, object_store::Result<Path>>,
    ) -> BoxStream<'a, object_store::Result<Path>> {
        self.state.lock().unwrap().bulk_deletes += 1;
        match self.choose(Kind::Delete) {
            Some(Fault::FailBefore) => {
                stream::once(async { Err(injected("bulk DELETE failed before sending")) }).boxed()
            }
            Some(Fault::ApplyThenFail | Fault::LandLater(_) | Fault::ApplyThenOutage(_)) => {
                stream::once(async move {
                    let _: Vec<_> = self.inner.delete_stream(locations).collect().await;
                    Err(injected(
                        "connection reset after the bulk DELETE was applied",
                    ))
                })
                .boxed()
            }
            Some(Fault::Delay(_) | Fault::AnswerLate(_)) | None => {
                self.inner.delete_stream(locations)
            }
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.choose(Kind::Read) {
            Some(Fault::Delay(_)) | None => self.inner.list(prefix),
            Some(_) => stream::once(async { Err(injected("LIST failed")) }).boxed(),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.choose(Kind::Read) {
            Some(Fault::Delay(_)) | None => self.inner.list_with_offset(prefix, offset),
            Some(_) => stream::once(async { Err(injected("LIST failed")) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.read_fault().await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

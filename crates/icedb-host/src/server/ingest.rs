//! Group commit: inserts arriving within one flush window share one file per
//! partition and one commit. Every request is answered only after the
//! commit holding its rows is durable in the log. Admission is bounded by rows in the
//! queue; a full queue refuses at once (the API answers 429).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use icedb::{DurableInsert, InsertReceipt, JoinedRows, PreparedRows, Table, TableError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::config::IngestConfig;
use crate::server::activity::{Activity, Kind, Status};
use crate::server::metrics::{self, Metrics};

/// What an insert request gets back once its rows are committed.
pub type Ack = icedb::api::InsertAnswer;

#[derive(Debug)]
pub enum IngestError {
    /// The queue is full; try again later.
    Busy {
        queued_rows: usize,
    },
    /// The request alone exceeds the queue.
    TooLarge {
        rows: usize,
        limit: usize,
    },
    /// The host is shutting down and takes no new rows.
    ShuttingDown,
    Table(Arc<TableError>),
}

impl std::fmt::Display for IngestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IngestError::Busy { queued_rows } => write!(
                f,
                "the insert queue is full ({queued_rows} rows waiting for their commit); retry later"
            ),
            IngestError::TooLarge { rows, limit } => write!(
                f,
                "the request holds {rows} rows, more than the insert queue takes at once ({limit}, ingest.queue_rows); split it"
            ),
            IngestError::ShuttingDown => f.write_str("the host is shutting down"),
            IngestError::Table(e) => write!(f, "{e}"),
        }
    }
}

struct Pending {
    rows: PreparedRows,
    reply: oneshot::Sender<Result<Ack, Arc<TableError>>>,
}

/// The insert path of one served table.
pub struct Ingest {
    table: Arc<Table>,
    config: IngestConfig,
    admission: Arc<Semaphore>,
    arrivals: Arc<Arrivals>,
    queue: std::sync::Mutex<Option<mpsc::UnboundedSender<Pending>>>,
    flusher: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    metrics: Arc<Metrics>,
    activity: Activity,
}

impl Ingest {
    pub fn start(
        table: Arc<Table>,
        config: IngestConfig,
        metrics: Arc<Metrics>,
        activity: Activity,
    ) -> Arc<Ingest> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let ingest = Arc::new(Ingest {
            admission: Arc::new(Semaphore::new(config.queue_rows)),
            arrivals: Arc::new(Arrivals::default()),
            table,
            config,
            queue: std::sync::Mutex::new(Some(sender)),
            flusher: tokio::sync::Mutex::new(None),
            metrics,
            activity,
        });
        let flusher = tokio::spawn(ingest.clone().flush_loop(receiver));
        *ingest.flusher.try_lock().expect("fresh mutex") = Some(flusher);
        ingest
    }

    /// Admits a request of `rows` rows against the queue, before its rows
    /// are formatted: a full queue answers at once (429), without spending
    /// CPU or memory on the request. The admission is held until the rows
    /// are committed (or fail).
    pub fn admit(&self, rows: usize) -> Result<Admission, IngestError> {
        if rows > self.config.queue_rows {
            return Err(IngestError::TooLarge {
                rows,
                limit: self.config.queue_rows,
            });
        }
        let permit = self.try_admit(rows)?;
        Ok(Admission {
            _permit: permit,
            arriving: Some(Arriving::new(self.arrivals.clone())),
        })
    }

    /// Inserts `rows` (alone or with others) and returns once they are
    /// committed.
    pub async fn insert(
        &self,
        mut admission: Admission,
        rows: PreparedRows,
    ) -> Result<Ack, IngestError> {
        let count = rows.row_count();
        let table_label = metrics::table(self.table.name());
        self.metrics
            .queued_rows
            .get_or_create(&table_label)
            .inc_by(count as i64);
        let result = self.enqueue(rows, admission.arriving.take()).await;
        self.metrics
            .queued_rows
            .get_or_create(&table_label)
            .dec_by(count as i64);
        drop(admission);
        result
    }

    fn try_admit(&self, rows: usize) -> Result<OwnedSemaphorePermit, IngestError> {
        self.admission
            .clone()
            .try_acquire_many_owned(rows.max(1) as u32)
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::Closed => IngestError::ShuttingDown,
                tokio::sync::TryAcquireError::NoPermits => IngestError::Busy {
                    queued_rows: self.config.queue_rows - self.admission.available_permits(),
                },
            })
    }

    /// Hands the rows to the flusher and waits for their answer (given
    /// once their commit is durable).
    async fn enqueue(
        &self,
        rows: PreparedRows,
        arriving: Option<Arriving>,
    ) -> Result<Ack, IngestError> {
        let (reply, answer) = oneshot::channel();
        {
            let queue = self.queue.lock().expect("queue lock");
            let Some(queue) = queue.as_ref() else {
                return Err(IngestError::ShuttingDown);
            };
            queue
                .send(Pending { rows, reply })
                .map_err(|_| IngestError::ShuttingDown)?;
        }
        // Counted out only once queued: a flusher that sees no request
        // arriving finds every earlier one in the queue.
        drop(arriving);
        // The flusher answers every request it took, even on shutdown.
        answer
            .await
            .map_err(|_| IngestError::ShuttingDown)?
            .map_err(IngestError::Table)
    }

    /// Commits one request's rows by themselves; the request is answered
    /// as [`Self::answer_and_finish`] says.
    async fn commit_alone(
        &self,
        rows: PreparedRows,
        label: &str,
        reply: oneshot::Sender<Result<Ack, Arc<TableError>>>,
    ) {
        let count = rows.row_count();
        let running = self.activity.start(Kind::Insert, self.table.name(), label);
        match self.table.insert_prepared_durable(rows).await {
            Ok(durable) => {
                let receipt = durable.receipt();
                self.record_commit(receipt, 1);
                running.finish(Status::Ok, commit_detail(receipt, 1));
                self.answer_and_finish(durable, |receipt| {
                    let _ = reply.send(Ok(ack(receipt.clone(), count, 1)));
                })
                .await;
            }
            Err(e) => {
                running.fail(&e);
                let _ = reply.send(Err(Arc::new(e)));
            }
        }
    }

    /// Answers a commit's requests (`answer`) and finishes the commit: once
    /// its log entry is durable (the replica applies it before the next
    /// commit anyway), or, on a table that keeps a Delta log, once the
    /// commit is exported too, so that an acknowledgement means Delta
    /// readers see the rows (ARCHITECTURE, "Kept in step").
    async fn answer_and_finish(
        &self,
        durable: DurableInsert<'_>,
        answer: impl FnOnce(&InsertReceipt),
    ) {
        if self.table.config().delta.is_some() {
            answer(&durable.finish().await);
        } else {
            answer(durable.receipt());
            durable.finish().await;
        }
    }

    fn record_commit(&self, receipt: &InsertReceipt, requests: usize) {
        let label = metrics::table(self.table.name());
        self.metrics
            .rows_ingested
            .get_or_create(&label)
            .inc_by(receipt.rows);
        self.metrics.insert_commits.get_or_create(&label).inc();
        self.metrics
            .requests_per_commit
            .get_or_create(&label)
            .observe(requests as f64);
    }

    /// Forms groups and commits them, at most `concurrent_flushes` at once
    /// (without group commit, each request alone, as it comes).
    ///
    /// A group waits for a free flush slot, then takes everything queued
    /// meanwhile (so under load groups grow with the commit time), and
    /// closes once no request is being read or formatted and either it
    /// holds as many requests as the group before it (clients that wait for
    /// their answers come back together: nothing is gained by waiting out
    /// the window for them) or `flush_window` since its first request has
    /// passed. Requests still being formatted are waited for at most one
    /// more window, counted from the later of that and the slot coming
    /// free; `max_group_rows` closes a group at once.
    async fn flush_loop(self: Arc<Self>, mut queue: mpsc::UnboundedReceiver<Pending>) {
        let slots = Arc::new(Semaphore::new(self.config.concurrent_flushes));
        let mut flushes = JoinSet::new();
        // The first group has no predecessor: it waits for the window.
        let mut expected = usize::MAX;
        while let Some(first) = queue.recv().await {
            if !self.config.group_commit {
                // Every request commits by itself (they take turns for the
                // log); answered once durable, finished here so a drain
                // waits for the replica (and the Delta log) to have it.
                let this = self.clone();
                flushes.spawn(async move {
                    this.commit_alone(first.rows, "1 request", first.reply)
                        .await
                });
                while flushes.try_join_next().is_some() {}
                continue;
            }
            let window = self.config.flush_window;
            let soft = tokio::time::Instant::now() + window;
            let slot = slots.clone().acquire_owned().await.expect("never closed");
            let hard = soft.max(tokio::time::Instant::now()) + window;
            let mut rows = first.rows.row_count();
            let mut group = vec![first];
            while rows < self.config.max_group_rows {
                // Read before the queue: a request counted out of
                // `arriving` is already queued.
                let arriving = self.arrivals.count.load(Ordering::Acquire);
                match queue.try_recv() {
                    Ok(pending) => {
                        rows += pending.rows.row_count();
                        group.push(pending);
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
                let now = tokio::time::Instant::now();
                if (arriving == 0 && (group.len() >= expected || now >= soft)) || now >= hard {
                    break;
                }
                let until = if arriving == 0 { soft } else { hard };
                tokio::select! {
                    next = queue.recv() => match next {
                        Some(pending) => {
                            rows += pending.rows.row_count();
                            group.push(pending);
                        }
                        None => break,
                    },
                    () = self.arrivals.changed.notified() => {}
                    () = tokio::time::sleep_until(until) => {}
                }
            }
            expected = group.len();
            let this = self.clone();
            flushes.spawn(async move {
                this.flush(group).await;
                drop(slot);
            });
            while flushes.try_join_next().is_some() {}
        }
        // The queue is closed: finish what is in flight.
        while flushes.join_next().await.is_some() {}
    }

    async fn flush(&self, mut group: Vec<Pending>) {
        if group.len() == 1 {
            // Nothing to join.
            let pending = group.pop().expect("one request");
            self.commit_alone(pending.rows, "1 request", pending.reply)
                .await;
            return;
        }
        let requests = group.len();
        let running = self.activity.start(
            Kind::Insert,
            self.table.name(),
            format!("{requests} requests"),
        );
        let (inputs, replies): (Vec<PreparedRows>, Vec<_>) =
            group.into_iter().map(|p| (p.rows, p.reply)).unzip();
        let counts: Vec<usize> = inputs.iter().map(PreparedRows::row_count).collect();
        let joined =
            tracing::debug_span!("ingest.join", requests).in_scope(|| JoinedRows::join(inputs));
        match self.table.insert_joined_durable(&joined).await {
            Ok(durable) => {
                let receipt = durable.receipt();
                self.record_commit(receipt, requests);
                running.finish(Status::Ok, commit_detail(receipt, requests));
                self.answer_and_finish(durable, |receipt| {
                    for (reply, count) in replies.into_iter().zip(counts) {
                        let _ = reply.send(Ok(ack(receipt.clone(), count, requests)));
                    }
                })
                .await;
            }
            Err(e) if e.is_input_error() => {
                // Someone's rows are bad: commit each request on its own so
                // only the culprit fails, with an error naming its own lines.
                running.finish(
                    Status::Error,
                    serde_json::json!({"requests": requests, "rows": joined.row_count(), "retried_alone": true, "error": e.to_string()}),
                );
                for (rows, reply) in joined.split().into_iter().zip(replies) {
                    self.commit_alone(rows, "1 request (retried alone)", reply)
                        .await;
                }
            }
            Err(e) => {
                running.fail(&e);
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Stops taking rows, then commits everything already accepted.
    pub async fn drain(&self) {
        self.admission.close();
        self.queue.lock().expect("queue lock").take();
        if let Some(flusher) = self.flusher.lock().await.take() {
            let _ = flusher.await;
        }
    }
}

/// A request's place in the queue, held until its rows are committed.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    /// Counts the request as arriving until its rows are queued (or it
    /// fails before that).
    arriving: Option<Arriving>,
}

/// Requests admitted whose rows are not queued yet (being formatted): a
/// group about to close waits for them.
#[derive(Default)]
struct Arrivals {
    count: AtomicUsize,
    /// Signalled whenever a request stops arriving.
    changed: Notify,
}

/// One request counted in [`Arrivals`] until dropped.
struct Arriving(Arc<Arrivals>);

impl Arriving {
    fn new(arrivals: Arc<Arrivals>) -> Arriving {
        arrivals.count.fetch_add(1, Ordering::AcqRel);
        Arriving(arrivals)
    }
}

impl Drop for Arriving {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

fn ack(receipt: InsertReceipt, rows: usize, requests: usize) -> Ack {
    Ack {
        version: receipt.version,
        rows,
        files: receipt.files,
        requests_in_commit: requests,
    }
}

fn commit_detail(receipt: &InsertReceipt, requests: usize) -> serde_json::Value {
    serde_json::json!({
        "version": receipt.version,
        "requests": requests,
        "rows": receipt.rows,
        "files": receipt.files.len(),
        "partitions": receipt.partitions,
    })
}

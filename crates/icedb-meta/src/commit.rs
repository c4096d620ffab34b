//! The commit protocol, as typed phases (DESIGN §4):
//!
//! 1. [`PreparedCommit`]: a validated draft with its commit id, not sent;
//!    optionally with the log already read for it ([`ReadHead`], from
//!    [`MetaStore::read_head`] while the caller prepared the draft).
//! 2. [`PreparedCommit::win`]: take this process's commit turn (its
//!    commits queue rather than race each other), sync the replica
//!    (verifying the table's identity before the first attempt), look for our own id among the
//!    versions attempted so far, plan the draft against the state, try to
//!    create version head+1. Each attempt ends [`Attempt::Won`],
//!    [`Attempt::Lost`] (the version is taken — possibly by our own earlier
//!    request, which the next round finds by id) or [`Attempt::Unknown`]
//!    (the request may have landed). An attempt stays unresolved until the
//!    log shows its version taken; only when none is unresolved may the
//!    commit be reported as certainly not committed.
//!    Each attempt's apply to the replica is prepared beside its request
//!    ([`StagedApply`]: an open replica transaction), so a commit costs the
//!    longer of the two, not their sum.
//! 3. [`PostCommit`]: the version is won. Keeping the staged apply (the
//!    turn ends there) and post-commit work (checkpoints) are best effort: a failure is logged,
//!    the next sync repairs the replica, and the caller gets its receipt.
//!
//! Over 600 lines on purpose: the phases, the attempts in flight and the
//! staged apply are one protocol, read together.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use object_store::{PutMode, PutOptions, PutPayload};
use rand::Rng;

use crate::error::{CommitError, Conflict, MetaError, NotCommitted, Result};
use crate::log::log_path;
use crate::meta::MetaStore;
use crate::model::{
    COMMIT_FORMAT, Commit, CommitDraft, INLINE_COMMIT_FORMAT, Operation, PLAIN_COMMIT_FORMAT,
    PURGE_COMMIT_FORMAT,
};
use crate::replica::Replica;

/// A successful commit.
#[derive(Debug, Clone)]
pub struct CommitReceipt {
    pub version: u64,
    /// 1 when the first try won; more when it lost races to other writers
    /// or had to find out whether an earlier request landed.
    pub attempts: u32,
    pub commit: Commit,
}

/// Phase 1: a validated draft and the id that will identify it in the log.
pub struct PreparedCommit<'a> {
    meta: &'a MetaStore,
    operation: Operation,
    draft: CommitDraft,
    id: String,
    /// The log as read for this commit before it was prepared.
    read: Option<ReadHead>,
}

/// The log's head as a commit's first read finds it (synced into the
/// replica, the table's identity checked), read ahead by
/// [`MetaStore::read_head`] while the caller prepares the commit, so that
/// the read and the preparation overlap; see
/// [`PreparedCommit::after_read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadHead {
    version: u64,
}

/// The outcome of one conditional create of a log entry.
enum Attempt {
    Won,
    /// The version exists: another writer's, or ours if a request whose
    /// answer was lost landed and the client retried it.
    Lost,
    /// The request may or may not have landed.
    Unknown(MetaError),
}

/// Phase 3: the version is won; the rest is best effort.
pub struct PostCommit<'a> {
    meta: &'a MetaStore,
    commit: Commit,
    attempts: u32,
    replica: ReplicaApply,
    /// This process's commit turn, held until the replica has the version.
    turn: tokio::sync::MutexGuard<'a, ()>,
}

/// What the replica still owes a won commit.
enum ReplicaApply {
    /// Nothing: the sync that found the commit by its id applied it.
    Done,
    /// The apply prepared beside the winning request, to be kept.
    Staged(StagedApply),
}

/// A commit's apply to the replica, prepared on the blocking pool while
/// its log entry is in flight and held uncommitted (other replica writes
/// wait) until [`keep`](Self::keep); dropped, the transaction is
/// abandoned and nothing changes. Only a request that wins keeps it, and
/// any sync that could compete with it would be applying a version that
/// makes this request lose or one it already waits to apply. A request
/// that stalls must not hold this process's syncs for its whole timeout:
/// without a decision within [`STAGED_APPLY_WAIT`] the transaction is
/// abandoned, and a won commit is then applied after the fact.
struct StagedApply {
    keep: std::sync::mpsc::SyncSender<bool>,
    applied: tokio::task::JoinHandle<Result<Option<u64>>>,
    path: std::path::PathBuf,
}

/// How long a staged apply waits for its request's outcome (an S3 PUT of
/// a log entry takes milliseconds; its slow tail, hundreds).
const STAGED_APPLY_WAIT: Duration = Duration::from_millis(500);

impl StagedApply {
    fn begin(replica: Arc<Replica>, commit: Commit) -> StagedApply {
        let (keep, decision) = std::sync::mpsc::sync_channel(1);
        let path = replica.path().to_owned();
        let applied = tokio::task::spawn_blocking(move || {
            replica.apply_if(std::slice::from_ref(&commit), || {
                decision.recv_timeout(STAGED_APPLY_WAIT).unwrap_or(false)
            })
        });
        StagedApply {
            keep,
            applied,
            path,
        }
    }

    /// Commits the prepared transaction; `Ok(None)` if it did not stay.
    async fn keep(self) -> Result<Option<u64>> {
        // Fails only if the task already ended (an error, or the wait ran
        // out): its result says so.
        let _ = self.keep.try_send(true);
        self.applied
            .await
            .map_err(|e| MetaError::replica_io(&self.path, e))?
    }
}

/// Attempts this commit sent whose versions the log has not yet shown
/// taken: while any remains, the commit may still land.
#[derive(Default)]
struct InFlight {
    unresolved: BTreeSet<u64>,
    /// Every attempt, by version (the newest content per version).
    attempted: BTreeMap<u64, Commit>,
    /// When the store first failed to answer while an attempt was
    /// unresolved.
    unknown_since: Option<Instant>,
    last_error: Option<MetaError>,
    /// Waits so far for the store to settle them (for the back-off).
    waits: u32,
}

impl InFlight {
    fn first_version(&self) -> Option<u64> {
        self.attempted.keys().next().copied()
    }

    /// Marks every attempt at or below `head` resolved: its version is
    /// taken, and not by us (the caller checked our id first).
    fn resolve_through(&mut self, head: u64) {
        self.unresolved.retain(|&v| v > head);
        if self.unresolved.is_empty() {
            self.unknown_since = None;
        }
    }

    /// The store could not tell us what happened; `Err` once the outcome
    /// budget is spent.
    fn record_unknown(
        &mut self,
        id: &str,
        error: MetaError,
        budget: Duration,
    ) -> Result<(), CommitError> {
        let since = *self.unknown_since.get_or_insert_with(Instant::now);
        self.last_error = Some(error);
        if since.elapsed() >= budget {
            return Err(self.outcome_unknown(id));
        }
        Ok(())
    }

    /// Records that the store could not settle the attempts in flight and
    /// waits before the next look; `Err` once the outcome budget is spent.
    async fn wait_unresolved(
        &mut self,
        id: &str,
        error: MetaError,
        budget: Duration,
    ) -> Result<(), CommitError> {
        self.record_unknown(id, error, budget)?;
        self.waits += 1;
        tokio::time::sleep(backoff(self.waits)).await;
        Ok(())
    }

    fn outcome_unknown(&mut self, id: &str) -> CommitError {
        CommitError::OutcomeUnknown {
            id: id.to_owned(),
            versions: self.attempted.keys().copied().collect(),
            last_error: Box::new(self.last_error.take().unwrap_or_else(|| {
                MetaError::InvalidCommit("attempts still unresolved".to_owned())
            })),
        }
    }
}

impl MetaStore {
    /// Phase 1: validates `draft` and gives it a commit id.
    pub fn prepare(&self, draft: CommitDraft) -> Result<PreparedCommit<'_>, CommitError> {
        let operation = draft.operation.ok_or_else(|| {
            CommitError::not_committed(MetaError::InvalidCommit("no operation".to_owned()))
        })?;
        validate_draft(&draft).map_err(CommitError::not_committed)?;
        Ok(PreparedCommit {
            meta: self,
            operation,
            draft,
            id: uuid::Uuid::now_v7().to_string(),
            read: None,
        })
    }

    /// A commit's first read of the log, ahead of the commit: syncs the
    /// replica and checks the table's identity as [`PreparedCommit::win`]
    /// does before its first attempt. `None` when the store holds another
    /// table (the commit's own read then rebuilds the replica).
    pub async fn read_head(&self) -> Result<Option<ReadHead>, MetaError> {
        Ok(self
            .sync_verified()
            .await?
            .map(|version| ReadHead { version }))
    }

    /// Commits `draft` as the next version: all three phases. The error
    /// says whether the commit certainly did not land
    /// ([`CommitError::certainly_not_committed`]).
    pub async fn commit(&self, draft: CommitDraft) -> Result<CommitReceipt, CommitError> {
        let post = self.prepare(draft)?.win().await?;
        Ok(post.finish().await)
    }
}

impl<'a> PreparedCommit<'a> {
    /// The id the log entry will carry.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Takes `read` as the first attempt's read of the log, if nothing of
    /// this process committed since it (the replica is still at its head);
    /// otherwise the first attempt reads the log itself. Another writer's
    /// version landing since is met as always: the attempt finds its
    /// version taken, reads and tries the next.
    pub fn after_read(mut self, read: ReadHead) -> Self {
        self.read = Some(read);
        self
    }

    /// Phase 2: tries versions until one is won or the outcome is decided.
    #[tracing::instrument(level = "debug", skip_all, name = "commit.win")]
    pub async fn win(self) -> Result<PostCommit<'a>, CommitError> {
        let meta = self.meta;
        let options = &meta.options;
        let turn = meta.commit_lock.lock().await;
        let started = Instant::now();
        if !meta.store_checked.load(Ordering::Acquire) {
            meta.check_store()
                .await
                .map_err(CommitError::not_committed)?;
        }
        let mut flight = InFlight::default();
        let mut attempts = 0u32;
        loop {
            // Read the table's state; before the first attempt, also verify
            // the log is the table the replica describes, and plan the
            // draft meanwhile against the replica as last synced: kept if
            // the sync finds nothing newer (the common case), else redone.
            let (state, early) = if attempts == 0 {
                let replica = meta.current_replica();
                let local = replica.version().map_err(CommitError::not_committed)?;
                let (state, plan) = match self.read {
                    Some(read) if read.version == local => (
                        Ok(State::Head(local)),
                        self.plan_on(replica.clone(), local).await,
                    ),
                    _ => {
                        tokio::join!(
                            self.read_state(true, None),
                            self.plan_on(replica.clone(), local)
                        )
                    }
                };
                (state, Some((replica, local, plan)))
            } else {
                (self.read_state(false, flight.first_version()).await, None)
            };
            let head = match state {
                Ok(State::Mine(version)) => {
                    let commit = flight
                        .attempted
                        .remove(&version)
                        .expect("our id is only ever sent in versions we attempted");
                    return Ok(PostCommit {
                        meta,
                        commit,
                        attempts,
                        replica: ReplicaApply::Done,
                        turn,
                    });
                }
                Ok(State::Head(head)) => head,
                Err(error) if flight.unresolved.is_empty() => {
                    return Err(CommitError::not_committed(error));
                }
                Err(error) => {
                    flight
                        .wait_unresolved(&self.id, error, options.outcome_budget)
                        .await?;
                    continue;
                }
            };
            flight.resolve_through(head);

            let out_of_attempts = attempts >= options.max_commit_attempts;
            let out_of_time = started.elapsed() >= options.max_commit_duration;
            // Re-sending a version still in flight adds no new outcome to
            // resolve (whichever request lands is ours), and settles it.
            let resend = flight.unresolved.contains(&(head + 1));
            if (out_of_attempts || out_of_time) && !resend {
                if flight.unresolved.is_empty() {
                    return Err(CommitError::not_committed(if out_of_attempts {
                        NotCommitted::TooManyRetries { attempts }
                    } else {
                        NotCommitted::TimeLimit {
                            elapsed: started.elapsed(),
                            limit: options.max_commit_duration,
                        }
                    }));
                }
                // Send nothing more; wait until the log shows what became
                // of the attempts in flight.
                let pending = MetaError::InvalidCommit(format!(
                    "version(s) {:?} not yet visible in the log",
                    flight.unresolved
                ));
                flight
                    .wait_unresolved(&self.id, pending, options.outcome_budget)
                    .await?;
                continue;
            }

            let planned = match early {
                Some((replica, local, plan))
                    if local == head && Arc::ptr_eq(&replica, &meta.current_replica()) =>
                {
                    plan
                }
                _ => self.plan_on(meta.current_replica(), head).await,
            };
            let commit = match planned {
                Ok(commit) => commit,
                Err(MetaError::Conflict(conflict)) if flight.unresolved.is_empty() => {
                    return Err(CommitError::Conflict(conflict));
                }
                Err(error) if flight.unresolved.is_empty() => {
                    return Err(CommitError::not_committed(error));
                }
                Err(error) => {
                    flight
                        .wait_unresolved(&self.id, error, options.outcome_budget)
                        .await?;
                    continue;
                }
            };
            attempts += 1;
            let version = commit.version;
            flight.attempted.insert(version, commit.clone());
            let staged = StagedApply::begin(meta.current_replica(), commit.clone());
            match self.attempt(&commit).await {
                Attempt::Won => {
                    return Ok(PostCommit {
                        meta,
                        commit,
                        attempts,
                        replica: ReplicaApply::Staged(staged),
                        turn,
                    });
                }
                Attempt::Lost => {
                    tracing::debug!(version, attempts, "version taken; checking whose");
                    flight.unresolved.insert(version);
                }
                Attempt::Unknown(error) => {
                    tracing::warn!(version, %error, "commit request failed; finding out whether it landed");
                    flight.unresolved.insert(version);
                    flight.record_unknown(&self.id, error, options.outcome_budget)?;
                }
            }
            tokio::time::sleep(backoff(attempts)).await;
        }
    }

    /// Syncs and looks for our id among the versions since our first
    /// attempt (however many landed meanwhile).
    #[tracing::instrument(level = "debug", skip_all, name = "commit.read_state")]
    async fn read_state(&self, verify: bool, first_attempt: Option<u64>) -> Result<State> {
        let meta = self.meta;
        let head = if verify {
            match meta.sync_verified().await? {
                Some(head) => head,
                None => {
                    tracing::warn!(
                        "the store holds another table than the local replica; rebuilding it"
                    );
                    meta.reset_replica().await?;
                    meta.catch_up().await?;
                    meta.local_version()?
                }
            }
        } else {
            meta.sync().await?
        };
        let Some(first) = first_attempt else {
            return Ok(State::Head(head));
        };
        if head < first {
            return Ok(State::Head(head));
        }
        let (found, missing) = meta.snapshot()?.find_commit_id(&self.id, first..=head)?;
        if let Some(version) = found {
            return Ok(State::Mine(version));
        }
        // Summaries the replica lacks (bootstrapped from an old checkpoint)
        // are read from the log itself.
        for version in missing {
            if let Some(commit) = meta.read_commit(version).await?
                && commit.id == self.id
            {
                return Ok(State::Mine(version));
            }
        }
        Ok(State::Head(head))
    }

    /// The commit this draft becomes on top of `head` (checked against
    /// `replica`, at `head`, on the blocking pool).
    #[tracing::instrument(level = "debug", skip_all, name = "commit.plan")]
    async fn plan_on(&self, replica: Arc<Replica>, head: u64) -> Result<Commit> {
        let timestamp_ms = chrono::Utc::now().timestamp_millis();
        if let Some(file) = self
            .draft
            .added
            .iter()
            .find(|f| crate::replica::too_old(f, timestamp_ms))
        {
            let minted_ms = crate::model::minted_ms(&file.path).unwrap_or_default();
            return Err(Conflict::FileTooOld {
                path: file.path.clone(),
                minted_ms,
                age_hours: (timestamp_ms - minted_ms) / 3_600_000,
            }
            .into());
        }
        let draft = self.draft.clone();
        let path = replica.path().to_owned();
        let (plan, table_id) = tokio::task::spawn_blocking(move || {
            let plan = replica.plan(&draft)?;
            let table_id = replica.snapshot()?.table_id()?;
            Ok::<_, MetaError>((plan, table_id))
        })
        .await
        .map_err(|e| MetaError::replica_io(&path, e))??;
        let version = head + 1;
        let inline = self.draft.added.iter().any(|f| f.inline.is_some());
        Ok(Commit {
            format: if !self.draft.segments.is_empty() {
                COMMIT_FORMAT
            } else if plan.purged_inline_through.is_some() {
                PURGE_COMMIT_FORMAT
            } else if inline {
                INLINE_COMMIT_FORMAT
            } else {
                PLAIN_COMMIT_FORMAT
            },
            version,
            id: self.id.clone(),
            // The first commit names the table after itself.
            table_id: if version == 1 {
                Some(self.id.clone())
            } else {
                table_id
            },
            timestamp_ms,
            writer: self.meta.writer.clone(),
            operation: self.operation,
            added: self.draft.added.clone(),
            segments: self.draft.segments.clone(),
            removed: self.draft.removed.clone(),
            purged: plan.purged,
            purged_inline_through: plan.purged_inline_through,
            schema_changes: plan.schema_changes,
            details: self.draft.details.clone(),
            definition: plan.definition,
        })
    }

    /// One conditional create of the commit's log entry.
    #[tracing::instrument(level = "debug", skip_all, name = "commit.attempt")]
    async fn attempt(&self, commit: &Commit) -> Attempt {
        let path = log_path(commit.version);
        let body = match serde_json::to_vec(commit) {
            Ok(body) => body,
            Err(e) => return Attempt::Unknown(MetaError::InvalidCommit(e.to_string())),
        };
        let put = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .meta
            .store
            .put_opts(&path, PutPayload::from(body), put)
            .await
        {
            Ok(put) => {
                self.meta.note_entry_tag(commit.version, put.e_tag);
                Attempt::Won
            }
            Err(object_store::Error::AlreadyExists { .. }) => Attempt::Lost,
            Err(error) => Attempt::Unknown(MetaError::store(&path, error)),
        }
    }
}

enum State {
    /// The replica's head; our commit is not among the versions attempted.
    Head(u64),
    /// Our commit landed at this version.
    Mine(u64),
}

impl PostCommit<'_> {
    pub fn version(&self) -> u64 {
        self.commit.version
    }

    /// The log entry as written.
    pub fn commit(&self) -> &Commit {
        &self.commit
    }

    /// Phase 3: applies the commit to the replica and runs post-commit work,
    /// both best effort; the commit is won whatever happens here.
    #[tracing::instrument(level = "debug", skip_all, name = "commit.finish")]
    pub async fn finish(self) -> CommitReceipt {
        let meta = self.meta;
        if let ReplicaApply::Staged(staged) = self.replica {
            let kept = staged.keep().await;
            if !matches!(kept, Ok(Some(_))) {
                // The prepared transaction failed or met another state (the
                // replica was replaced meanwhile): apply as a sync would.
                tracing::debug!(
                    version = self.commit.version,
                    ?kept,
                    "staged apply not kept; applying again"
                );
                let _guard = meta.sync_lock.lock().await;
                let applied =
                    MetaStore::apply_blocking(meta.current_replica(), vec![self.commit.clone()])
                        .await;
                if let Err(error) = applied {
                    tracing::warn!(version = self.commit.version, %error, "could not apply a won commit to the replica; the next sync will");
                }
            }
        }
        drop(self.turn);
        let interval = meta.options.checkpoint_interval;
        if interval > 0
            && self.commit.version.is_multiple_of(interval)
            && let Err(error) = meta.checkpoint().await
        {
            tracing::warn!(version = self.commit.version, %error, "could not upload a checkpoint");
        }
        CommitReceipt {
            version: self.commit.version,
            attempts: self.attempts,
            commit: self.commit,
        }
    }
}

/// Jittered exponential backoff: 5 ms doubling to a 500 ms cap, a random
/// point in the upper half.
fn backoff(attempt: u32) -> Duration {
    let cap = (5u64 << attempt.min(7)).min(500);
    Duration::from_millis(rand::rng().random_range(cap / 2..=cap))
}

fn validate_draft(draft: &CommitDraft) -> Result<()> {
    if draft.operation == Some(Operation::Alter)
        && (draft.definition.is_none()
            || !draft.added.is_empty()
            || !draft.removed.is_empty()
            || !draft.purged.is_empty()
            || draft.purged_inline_through.is_some())
    {
        return Err(MetaError::InvalidCommit(
            "an alter states the new definition and adds or removes no file".to_owned(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for file in &draft.added {
        if file.path.is_empty() || file.partition.is_empty() {
            return Err(MetaError::InvalidCommit(
                "an added file has an empty path or partition".to_owned(),
            ));
        }
        if !seen.insert(file.path.as_str()) {
            return Err(MetaError::InvalidCommit(format!(
                "file {} is added twice",
                file.path
            )));
        }
    }
    // Every segment holds rows of some added part, and every part naming
    // a segment names one of this commit's.
    let mut segments: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    for segment in &draft.segments {
        if segments.insert(segment.name.as_str(), false).is_some() {
            return Err(MetaError::InvalidCommit(format!(
                "segment {} is added twice",
                segment.name
            )));
        }
    }
    for file in &draft.added {
        if let Some(at) = &file.segment {
            match segments.get_mut(at.segment.as_str()) {
                Some(used) if file.is_inline() && file.inline.is_none() => *used = true,
                _ => {
                    return Err(MetaError::InvalidCommit(format!(
                        "file {} names segment {}, which is not one of the commit's, or is not an inline part without bytes of its own",
                        file.path, at.segment
                    )));
                }
            }
        }
    }
    if let Some((name, _)) = segments.iter().find(|(_, used)| !**used) {
        return Err(MetaError::InvalidCommit(format!(
            "segment {name} holds no added part's rows"
        )));
    }
    for file in &draft.removed {
        if seen.contains(file.path.as_str()) {
            return Err(MetaError::InvalidCommit(format!(
                "file {} is both added and removed",
                file.path
            )));
        }
    }
    Ok(())
}

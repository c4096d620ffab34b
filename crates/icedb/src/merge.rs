//! Merges: the planner bin-packs small files per partition; each job
//! merge-sorts its inputs (files in a streaming k-way merge, one batch per
//! input in memory; inline parts, all in memory, by one stable sort),
//! writes one file, and commits add + remove.
//! A conflict (another merge removed an input first) aborts the job and
//! deletes its output; nothing is lost or duplicated.
//! A job's rows — loading, decoding, merging, encoding — are `kway.rs`
//! (`MergeJob`); this file plans rounds and commits them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use futures::StreamExt;
use icedb_meta::{
    ColumnDef, CommitDraft, CommitError, Conflict, DataFile, FileRef, Operation, PartitionFilter,
    ReadHead, Snapshot,
};
use object_store::path::Path;
use tracing::Instrument;

use crate::error::{Result, TableError};
use crate::inline_part::PartReader;
use crate::kway::{JobOutput, MergeJob, conform_to};
use crate::schema::arrow_schema;
use crate::table::Table;
use crate::write::FileLayout;

/// Which end of the partition order a policy starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PartitionOrder {
    /// Oldest partitions first (Hive paths with zero-padded times sort in
    /// time order): the cold merge.
    #[serde(rename = "asc")]
    Ascending,
    /// Newest partitions first: the hot merge.
    #[serde(rename = "desc")]
    Descending,
}

/// What a merge round may touch and how big its outputs get.
#[derive(Debug, Clone)]
pub struct MergePolicy {
    pub name: String,
    /// Only partitions at or below this path (segment-aligned).
    pub partition_prefix: Option<String>,
    pub order: PartitionOrder,
    /// At most this many partitions per round, taken in `order`.
    pub max_partitions: usize,
    /// Only files smaller than this are merged.
    pub max_input_bytes: u64,
    /// A job stops adding inputs once they reach this many bytes.
    pub target_output_bytes: u64,
    pub max_files_per_merge: usize,
    /// Jobs run at once.
    pub concurrency: usize,
    /// SQL over the view `source` (a job's input files) whose result
    /// replaces them, to aggregate or deduplicate on merge — e.g.
    /// `SELECT DISTINCT ON (id) * FROM source ORDER BY id, ts DESC`. Runs in
    /// DuckDB and holds one job's result in memory; `None` merge-sorts in a
    /// bounded-memory stream.
    pub query: Option<String>,
}

impl MergePolicy {
    /// How often IceDB recommends running [`hot`](Self::hot).
    pub const HOT_EVERY: Duration = Duration::from_secs(15);
    /// How often IceDB recommends running [`cold`](Self::cold).
    pub const COLD_EVERY: Duration = Duration::from_secs(300);

    /// Frequent, small merges of the newest partitions.
    pub fn hot() -> Self {
        MergePolicy {
            name: "hot".into(),
            partition_prefix: None,
            order: PartitionOrder::Descending,
            max_partitions: 3,
            max_input_bytes: 16 << 20,
            target_output_bytes: 64 << 20,
            max_files_per_merge: 50,
            concurrency: 2,
            query: None,
        }
    }

    /// Slow, large merges over older partitions.
    pub fn cold() -> Self {
        MergePolicy {
            name: "cold".into(),
            partition_prefix: None,
            order: PartitionOrder::Ascending,
            max_partitions: usize::MAX,
            max_input_bytes: 128 << 20,
            target_output_bytes: 512 << 20,
            max_files_per_merge: 200,
            concurrency: 2,
            query: None,
        }
    }
}

/// What merging did (in the API: `elapsed` as `elapsed_ms`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MergeReport {
    pub jobs: usize,
    pub files_in: usize,
    pub files_out: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rows: u64,
    /// Jobs aborted because a concurrent commit removed an input first.
    pub conflicts: usize,
    #[serde(rename = "elapsed_ms", with = "millis")]
    pub elapsed: Duration,
}

/// A duration as fractional milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Duration::try_from_secs_f64(ms / 1e3).map_err(serde::de::Error::custom)
    }
}

impl MergeReport {
    fn absorb(&mut self, other: &MergeReport) {
        self.jobs += other.jobs;
        self.files_in += other.files_in;
        self.files_out += other.files_out;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.rows += other.rows;
        self.conflicts += other.conflicts;
    }
}

/// Jobs run at once in a round that flushes only inline parts.
const INLINE_JOBS_AT_ONCE: usize = 8;

/// Each partition a round takes, with its candidate files.
type Candidates = Vec<(String, Vec<DataFile>)>;

/// Groups of files to merge, one partition each. A group needs two files,
/// or one inline part (flushing it into a file is the point).
fn plan(partitions: Candidates, policy: &MergePolicy) -> Vec<Vec<DataFile>> {
    let worth = |group: &[DataFile]| group.len() >= 2 || group.iter().any(DataFile::is_inline);
    let mut jobs = Vec::new();
    for (_, mut files) in partitions {
        files.retain(|f| f.bytes < policy.max_input_bytes);
        // Oldest first, so data settles in write order.
        files.sort_by(|a, b| {
            a.created_ms
                .cmp(&b.created_ms)
                .then_with(|| a.path.cmp(&b.path))
        });
        let mut group: Vec<DataFile> = Vec::new();
        let mut bytes = 0;
        for file in files {
            bytes += file.bytes;
            group.push(file);
            if group.len() >= policy.max_files_per_merge.max(2)
                || bytes >= policy.target_output_bytes
            {
                if worth(&group) {
                    jobs.push(std::mem::take(&mut group));
                } else {
                    group.clear();
                }
                bytes = 0;
            }
        }
        if worth(&group) {
            jobs.push(group);
        }
    }
    jobs
}

/// What a merge round takes in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The policy's partitions and files, plus every inline part.
    Policy,
    /// Only inline parts, each partition's into one new file.
    InlineOnly,
}

/// Where a round's plan starts from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The log's head: the round syncs first.
    Synced,
    /// The replica as the previous round of the same call left it (its own
    /// commit applied). A plan from a state that may be behind is safe (a
    /// merge's commit is checked against the head), and not syncing again
    /// keeps a merge to quiescence from chasing rows that arrive meanwhile.
    AsLeft,
}

impl Table {
    /// One round of `policy`: plans jobs on the current state and runs them.
    pub async fn merge_once(&self, policy: &MergePolicy) -> Result<MergeReport> {
        self.merge_round(policy, Scope::Policy, Start::Synced).await
    }

    /// Flushes inline parts only: each partition's parts become one new
    /// sorted file (files already there are left to the merge policies,
    /// so a flush never rewrites them), in one commit, then flushed parts
    /// past their keep are purged. What a host runs when
    /// [`flush_wanted`](Self::flush_wanted) fires.
    pub async fn flush_inline(&self) -> Result<MergeReport> {
        let policy = MergePolicy {
            name: "flush".into(),
            max_files_per_merge: usize::MAX,
            ..MergePolicy::hot()
        };
        self.merge_round(&policy, Scope::InlineOnly, Start::Synced)
            .await
    }

    async fn merge_round(
        &self,
        policy: &MergePolicy,
        scope: Scope,
        start: Start,
    ) -> Result<MergeReport> {
        let started = Instant::now();
        // A synced round's read of the log is also its commit's first read
        // (the commit then reads again only if this process committed
        // since; another writer's version is met as always).
        let read = if start == Start::Synced {
            let read = self.meta().read_head().await?;
            if read.is_none() {
                // The store holds another table: the sync rebuilds the
                // replica for it.
                self.meta().sync().await?;
            }
            read
        } else {
            None
        };
        // Reading every candidate's entry from the replica is blocking
        // work: thousands of inline parts take milliseconds. Their bytes are
        // read by each job, in parallel (a merge query reads them here).
        let snapshot = self.meta().snapshot()?;
        let planning = policy.clone();
        let (candidates, table_schema, snapshot) = tokio::task::spawn_blocking(move || {
            let (mut candidates, schema) = candidates(&snapshot, &planning, scope)?;
            if planning.query.is_some() {
                for (_, files) in &mut candidates {
                    snapshot.load_inline(files)?;
                }
            }
            Ok::<_, TableError>((candidates, schema, Arc::new(snapshot)))
        })
        .instrument(tracing::debug_span!("merge.plan"))
        .await
        .expect("reading the replica does not panic")?;
        // The table's target file size caps every policy's outputs.
        let capped = MergePolicy {
            target_output_bytes: policy
                .target_output_bytes
                .min(self.config().target_file_bytes),
            ..policy.clone()
        };
        let jobs = plan(candidates, &capped);
        if jobs.is_empty() && start == Start::AsLeft {
            // Nothing new since the previous round, which purged after its
            // commit: this round has nothing to do.
            return Ok(MergeReport {
                elapsed: started.elapsed(),
                ..MergeReport::default()
            });
        }
        // Jobs of inline parts only read nothing from the store and write
        // small files (their inputs are bounded by the inline limit): their
        // time is mostly the upload, so more of them run at once.
        let concurrency = if jobs.iter().flatten().all(DataFile::is_inline) {
            policy.concurrency.max(INLINE_JOBS_AT_ONCE)
        } else {
            policy.concurrency
        }
        .max(1);
        let mut report = MergeReport::default();
        if let Some(query) = policy.query.as_deref() {
            drop(snapshot);
            let outcomes: Vec<Result<MergeReport>> = futures::stream::iter(jobs)
                .map(|inputs| self.merge_with_query(inputs, &table_schema, query))
                .buffer_unordered(concurrency)
                .collect()
                .await;
            for outcome in outcomes {
                report.absorb(&outcome?);
            }
        } else {
            // The round's jobs decode each inline segment once between them.
            let parts = Arc::new(PartReader::default());
            let written: Vec<Result<Written>> = futures::stream::iter(jobs)
                .map(|inputs| {
                    self.write_merged(inputs, &table_schema, snapshot.clone(), parts.clone())
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            // The jobs have read their parts: the round's read transaction
            // need not outlive them.
            drop(snapshot);
            let (ok, failed): (Vec<_>, Vec<_>) = written.into_iter().partition(Result::is_ok);
            let written: Vec<Written> = ok.into_iter().map(Result::unwrap).collect();
            if let Some(Err(error)) = failed.into_iter().next() {
                self.delete_files(written.iter().map(|w| w.output.path.as_str()))
                    .await;
                return Err(error);
            }
            report = self.commit_round(written, read).await?;
        }
        let purged = self.purge_flushed_inline().await?;
        // A round that committed nothing has nothing to export.
        if report.jobs > report.conflicts || purged > 0 {
            self.after_commit().await;
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// How many files each policy would merge, per partition: files smaller
    /// than its input limit, in partitions (under its prefix) holding two or
    /// more of them. One pass over the live files of the replica (no store
    /// request), whatever the number of policies.
    pub fn merge_backlog(&self, policies: &[&MergePolicy]) -> Result<Vec<BTreeMap<String, usize>>> {
        let filters: Vec<PartitionFilter> = policies
            .iter()
            .map(|p| {
                p.partition_prefix
                    .clone()
                    .map_or(PartitionFilter::All, PartitionFilter::Prefix)
            })
            .collect();
        let mut backlogs = vec![BTreeMap::<String, usize>::new(); policies.len()];
        let snapshot = self.meta().snapshot()?;
        let inline: BTreeSet<String> = snapshot.inline_partitions()?.into_iter().collect();
        for file in snapshot.files_without_bytes(&PartitionFilter::All)? {
            for ((policy, filter), backlog) in policies.iter().zip(&filters).zip(&mut backlogs) {
                if file.bytes < policy.max_input_bytes && filter.matches(&file.partition) {
                    *backlog.entry(file.partition.clone()).or_default() += 1;
                }
            }
        }
        for backlog in &mut backlogs {
            backlog.retain(|partition, files| *files >= 2 || inline.contains(partition));
        }
        Ok(backlogs)
    }

    /// Rounds of `policy` until one plans no job (at most 100 rounds). The
    /// first round syncs; the later ones plan from the replica as the
    /// previous round left it: quiescent with respect to the table as it
    /// was when the call began (plus its own merges), not chasing inserts
    /// that land meanwhile — the next call or scheduled round sees those.
    pub async fn merge_until_quiescent(&self, policy: &MergePolicy) -> Result<MergeReport> {
        self.merge_until_quiescent_reporting(policy, |_| {}).await
    }

    /// [`merge_until_quiescent`](Self::merge_until_quiescent), calling
    /// `on_round` with the running total after every round (progress).
    pub async fn merge_until_quiescent_reporting(
        &self,
        policy: &MergePolicy,
        mut on_round: impl FnMut(&MergeReport),
    ) -> Result<MergeReport> {
        let started = Instant::now();
        let mut total = MergeReport::default();
        for round in 0..100 {
            let start = if round == 0 {
                Start::Synced
            } else {
                Start::AsLeft
            };
            let round = self.merge_round(policy, Scope::Policy, start).await?;
            total.absorb(&round);
            total.elapsed = started.elapsed();
            on_round(&total);
            // Done when nothing is left to plan, or when every job lost to a
            // concurrent merge (the other side is making the progress).
            if round.files_out == 0 {
                break;
            }
        }
        total.elapsed = started.elapsed();
        Ok(total)
    }

    /// Commits a round's merged files in one commit: a flush of inline
    /// parts over 30 partitions is one log entry, not 30. If a concurrent
    /// commit removed some input first, each job commits on its own
    /// instead, so only the jobs that lost are dropped.
    async fn commit_round(
        &self,
        written: Vec<Written>,
        read: Option<ReadHead>,
    ) -> Result<MergeReport> {
        if written.is_empty() {
            return Ok(MergeReport::default());
        }
        let mut draft = CommitDraft::new(Operation::Merge);
        for job in &written {
            draft.removed.extend(job.inputs.iter().map(FileRef::from));
            draft.added.push(job.output.clone());
            for column in &job.columns {
                if !draft.columns.iter().any(|c| c.name == column.name) {
                    draft.columns.push(column.clone());
                }
            }
        }
        match self.commit_after(draft, read).await {
            Ok(_) => {
                let mut report = MergeReport::default();
                for job in &written {
                    report.absorb(&job.report());
                }
                Ok(report)
            }
            Err(CommitError::Conflict(
                Conflict::FileAlreadyRemoved { .. } | Conflict::FileNotLive { .. },
            )) => {
                let mut report = MergeReport::default();
                for job in written {
                    report.absorb(
                        &self
                            .commit_merge(job.inputs, job.output, job.columns, None)
                            .await?,
                    );
                }
                Ok(report)
            }
            Err(error) => {
                self.discard_uncommitted(&error, written.iter().map(|w| w.output.path.as_str()))
                    .await;
                Err(error.into())
            }
        }
    }

    /// Merges `inputs` (one partition, each file sorted) into one new file,
    /// not yet committed.
    #[tracing::instrument(level = "debug", skip_all, name = "merge.job", fields(inputs = inputs.len()))]
    async fn write_merged(
        &self,
        inputs: Vec<DataFile>,
        table_schema: &[ColumnDef],
        snapshot: Arc<Snapshot>,
        parts: Arc<PartReader>,
    ) -> Result<Written> {
        let store = self.meta().object_store();
        let partition = inputs[0].partition.clone();
        let layout = FileLayout::of(self.config());
        let path = FileLayout::new_path(&partition);
        let object = Path::from(path.as_str());
        let job = MergeJob {
            store,
            snapshot,
            parts,
            files: inputs.clone(),
            table_schema: table_schema.to_vec(),
            layout,
            output: object,
        };
        // Decoding inputs, picking rows and encoding Parquet is CPU work:
        // off the async workers, the inputs' reads included. A flush (inline
        // parts only: no input I/O) computes on the background threads, at
        // a lower priority, so that inserts keep their cores meanwhile.
        let written = if inputs.iter().all(DataFile::is_inline) {
            job.run().await
        } else {
            crate::cpu::on_blocking_thread(job.run()).await
        };
        let JobOutput {
            rows,
            stats,
            bytes,
            columns,
        } = match written {
            Ok(done) => done,
            Err(error) => {
                self.delete_files(std::iter::once(path.as_str())).await;
                return Err(error);
            }
        };
        let output = DataFile {
            path,
            partition,
            bytes,
            rows,
            created_ms: chrono::Utc::now().timestamp_millis(),
            columns: stats,
            inline: None,
            segment: None,
        };
        Ok(Written {
            inputs,
            output,
            columns,
        })
    }

    /// Runs a merge query over the job's inputs in DuckDB and writes its
    /// (sorted) result as the job's output.
    async fn merge_with_query(
        &self,
        inputs: Vec<DataFile>,
        table_schema: &[ColumnDef],
        query: &str,
    ) -> Result<MergeReport> {
        let partition = inputs[0].partition.clone();
        let text = query.to_owned();
        let batches = self
            .query_engine
            .run_over(inputs.clone(), table_schema.to_vec(), move |source| {
                format!("WITH source AS (SELECT * FROM {source}) {text}")
            })
            .await?;
        let Some(first) = batches.first() else {
            return Err(TableError::MergeQueryEmpty);
        };
        let columns = crate::schema::columns_of(&first.schema())?;
        let schema = arrow_schema(&columns);
        let conformed: Vec<RecordBatch> = batches
            .iter()
            .map(|b| conform_to(b, &schema))
            .collect::<Result<_>>()?;
        let merged = arrow::compute::concat_batches(&schema, &conformed)?;
        let output = self.write_file(merged, &partition).await?;
        self.commit_merge(inputs, output, columns, Some(query))
            .await
    }

    /// Commits a merge job's output; on a conflict deletes it and counts the
    /// conflict, on any other failure deletes it and fails.
    async fn commit_merge(
        &self,
        inputs: Vec<DataFile>,
        output: DataFile,
        columns: Vec<ColumnDef>,
        query: Option<&str>,
    ) -> Result<MergeReport> {
        let (path, bytes, rows) = (output.path.clone(), output.bytes, output.rows);
        let mut draft = CommitDraft::new(Operation::Merge);
        draft.removed = inputs.iter().map(FileRef::from).collect();
        draft.added = vec![output];
        draft.columns = columns;
        if let Some(query) = query {
            draft
                .details
                .insert("merge_query".to_owned(), query.to_owned());
        }
        let mut report = MergeReport {
            jobs: 1,
            ..MergeReport::default()
        };
        match self.meta().commit(draft).await {
            Ok(_) => {
                report.files_in = inputs.len();
                report.files_out = 1;
                report.bytes_in = inputs.iter().map(|f| f.bytes).sum();
                report.bytes_out = bytes;
                report.rows = rows;
                Ok(report)
            }
            Err(CommitError::Conflict(
                conflict @ (Conflict::FileAlreadyRemoved { .. } | Conflict::FileNotLive { .. }),
            )) => {
                tracing::debug!(%conflict, "merge lost to a concurrent commit; output deleted");
                self.delete_files(std::iter::once(path.as_str())).await;
                report.conflicts = 1;
                Ok(report)
            }
            Err(error) => {
                self.discard_uncommitted(&error, std::iter::once(path.as_str()))
                    .await;
                Err(error.into())
            }
        }
    }
}

/// A merge job's output, on the store and not yet committed.
struct Written {
    inputs: Vec<DataFile>,
    output: DataFile,
    /// The output's columns, with the table's types.
    columns: Vec<ColumnDef>,
}

impl Written {
    fn report(&self) -> MergeReport {
        MergeReport {
            jobs: 1,
            files_in: self.inputs.len(),
            files_out: 1,
            bytes_in: self.inputs.iter().map(|f| f.bytes).sum(),
            bytes_out: self.output.bytes,
            rows: self.output.rows,
            ..MergeReport::default()
        }
    }
}

/// The partitions a round of `policy` takes and their candidate files (as
/// `snapshot` holds them), with the table's schema.
fn candidates(
    snapshot: &Snapshot,
    policy: &MergePolicy,
    scope: Scope,
) -> Result<(Candidates, Vec<ColumnDef>)> {
    let filter = policy
        .partition_prefix
        .clone()
        .map_or(PartitionFilter::All, PartitionFilter::Prefix);
    let mut partitions = snapshot.partitions(&filter)?;
    if policy.order == PartitionOrder::Descending {
        partitions.reverse();
    }
    // Partitions with inline parts are flushed in every round, beyond
    // `max_partitions`: a flush reads nothing from the store, and the
    // table's inline bound frees up only when they become files.
    let inline: BTreeSet<String> = snapshot
        .inline_partitions()?
        .into_iter()
        .filter(|p| filter.matches(p))
        .collect();
    let mut chosen: Vec<String> = partitions
        .into_iter()
        .filter(|p| p.files >= 2 && !inline.contains(&p.partition))
        .filter(|_| scope == Scope::Policy)
        .take(policy.max_partitions)
        .map(|p| p.partition)
        .collect();
    chosen.extend(inline);
    let mut candidates = Vec::new();
    for partition in chosen {
        let files = snapshot.file_heads(&PartitionFilter::Prefix(partition.clone()))?;
        let files = files
            .into_iter()
            .filter(|f| f.partition == partition)
            .filter(|f| scope == Scope::Policy || f.is_inline())
            .collect();
        candidates.push((partition, files));
    }
    let table_schema = snapshot.schema()?;
    Ok((candidates, table_schema))
}

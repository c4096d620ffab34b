//! The insert pipeline of a table: format → partition → group → sorted
//! Parquet or inline parts → parallel upload → one commit, with the
//! inline split and its `InlineFull` fallback. [`DurableInsert`] is the
//! state between a won log entry (the rows may be acknowledged) and the
//! replica having it. The rows it takes, formatted and not yet inserted
//! (and joined for group commit), are `prepared.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::RecordBatch;
use futures::StreamExt;
use icedb_meta::{
    CommitDraft, CommitError, CommitReceipt, Conflict, DataFile, InlineData, InlineSegment,
    Operation, PostCommit, ReadHead,
};
use serde_json::value::RawValue;
use tracing::Instrument;

use crate::Batch;
use crate::error::{Result, TableError};
use crate::inline_part::{Segment, encode_segment};
use crate::prepared::{JoinedRows, PreparedRows};
use crate::schema;
use crate::table::{Formatter, Table};
use crate::write::{self, FileLayout};

/// What an insert committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertReceipt {
    pub version: u64,
    /// Object keys of the new files, relative to the table root.
    pub files: Vec<String>,
    pub rows: u64,
    pub partitions: usize,
}

/// An insert whose log entry is won and durable: its rows are committed,
/// and a caller may acknowledge them ([`DurableInsert::receipt`]).
/// [`DurableInsert::finish`] then applies the commit to this process's
/// replica (holding the process's commit turn until it has), signals inline
/// pressure and exports the Delta log when the table keeps one. Dropping it
/// unfinished is safe: the next sync applies the version.
pub struct DurableInsert<'a> {
    table: &'a Table,
    post: PostCommit<'a>,
    receipt: InsertReceipt,
}

impl DurableInsert<'_> {
    /// What the insert committed.
    pub fn receipt(&self) -> &InsertReceipt {
        &self.receipt
    }

    /// Brings the replica (and the Delta log) up to the commit; best
    /// effort, as the commit stands whatever happens here.
    pub async fn finish(self) -> InsertReceipt {
        let DurableInsert {
            table,
            post,
            receipt,
        } = self;
        let committed = post
            .finish()
            .instrument(tracing::debug_span!("insert.finish"))
            .await;
        if committed.commit.added.iter().any(DataFile::is_inline) {
            table.note_inline_pressure();
        }
        table.after_commit().await;
        receipt
    }
}

/// An insert ready to commit ([`Table::stage`]).
struct Staged {
    draft: CommitDraft,
    /// Files uploaded for it (deleted if it does not commit).
    uploaded: Vec<DataFile>,
    /// The rows of its inline parts, should they have to become files.
    records: Vec<(String, RecordBatch)>,
    partitions: usize,
}

/// What one CPU task of an insert encoded.
enum Encoded {
    /// A file to upload.
    File((DataFile, Vec<u8>)),
    /// The task's inline parts (rows few enough to be kept in the commit).
    Segment(Segment),
}

/// Rows of small files one insert's CPU task encodes before the next file
/// goes to another task (see [`Table::insert_batch`]): an insert's rows are
/// spread over the cores, in tasks of at least the first and at most the
/// second bound.
const ENCODE_TASK_ROWS: (usize, usize) = (256, 2_048);

impl Table {
    /// Inserts newline-delimited JSON (blank lines are skipped). Errors name
    /// the 1-based line.
    pub async fn insert_ndjson(&self, body: &[u8]) -> Result<InsertReceipt> {
        let prepared = self.prepare_ndjson(body).await?;
        self.insert_prepared(prepared).await
    }

    /// Inserts a JSON array of objects. Errors name the 0-based element.
    pub async fn insert_json_array(&self, body: &[u8]) -> Result<InsertReceipt> {
        let prepared = self.prepare_json_array(body).await?;
        self.insert_prepared(prepared).await
    }

    /// Inserts rows given as JSON object text, one per row.
    pub async fn insert_rows(&self, rows: Vec<String>) -> Result<InsertReceipt> {
        let prepared = self.prepare_rows(rows, None).await?;
        self.insert_prepared(prepared).await
    }

    /// Formats newline-delimited JSON without inserting it, so that a caller
    /// can check it and later insert it alone or grouped with others.
    pub async fn prepare_ndjson(&self, body: &[u8]) -> Result<PreparedRows> {
        let text = std::str::from_utf8(body).map_err(|e| {
            let line = body[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            TableError::BadInput {
                row: 0,
                line: Some(line),
                reason: "not valid UTF-8".to_owned(),
            }
        })?;
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if !line.trim().is_empty() {
                rows.push(line.to_owned());
                lines.push(index + 1);
            }
        }
        self.prepare_rows(rows, Some(lines)).await
    }

    /// Formats a JSON array of objects without inserting it.
    pub async fn prepare_json_array(&self, body: &[u8]) -> Result<PreparedRows> {
        let elements: Vec<&RawValue> =
            serde_json::from_slice(body).map_err(|e| TableError::BadInput {
                row: 0,
                line: Some(e.line()),
                reason: format!("not a JSON array of objects: {e}"),
            })?;
        let rows = elements
            .into_iter()
            .map(|raw| raw.get().to_owned())
            .collect();
        self.prepare_rows(rows, None).await
    }

    async fn prepare_rows(
        &self,
        rows: Vec<String>,
        lines: Option<Vec<usize>>,
    ) -> Result<PreparedRows> {
        if let Some(reason) = &self.write_block {
            return Err(TableError::WriteBlocked(reason.clone()));
        }
        if rows.is_empty() {
            return Err(TableError::BadInput {
                row: 0,
                line: None,
                reason: "no rows to insert".to_owned(),
            });
        }
        let batch = self
            .format(rows)
            .await
            .map_err(|e| e.with_lines(lines.as_deref()))?;
        Ok(PreparedRows { batch, lines })
    }

    /// Inserts formatted rows (all or nothing); errors name input lines
    /// where the rows came from NDJSON.
    pub async fn insert_prepared(&self, prepared: PreparedRows) -> Result<InsertReceipt> {
        Ok(self.insert_prepared_durable(prepared).await?.finish().await)
    }

    /// Inserts formatted rows and returns as soon as the commit's log entry
    /// is durable (the rows are committed: a reader syncing now sees them),
    /// before this process's replica has applied it; see [`DurableInsert`].
    pub async fn insert_prepared_durable(
        &self,
        prepared: PreparedRows,
    ) -> Result<DurableInsert<'_>> {
        let PreparedRows { batch, lines } = prepared;
        let row_count = batch.row_count;
        self.insert_batch_durable(Arc::new(batch))
            .await
            .map_err(|e| e.with_lines(lines.as_deref()))
            .inspect(|durable| {
                tracing::debug!(
                    rows = row_count,
                    version = durable.receipt.version,
                    files = durable.receipt.files.len(),
                    "insert committed"
                )
            })
    }

    #[tracing::instrument(level = "debug", skip_all, name = "insert.format", fields(rows = rows.len()))]
    async fn format(&self, rows: Vec<String>) -> Result<Batch> {
        match &self.formatter {
            Formatter::JsonText(format) => {
                let format = format.clone();
                crate::cpu::on_cpu(move || format.format(&rows))
                    .await
                    .map_err(|e| TableError::BadInput {
                        row: e.row,
                        line: None,
                        reason: e.reason,
                    })
            }
            Formatter::Plugin(plugin) => plugin.format(rows).await.map_err(|e| match e.row {
                Some(row) if e.is_input_error() => TableError::BadInput {
                    row: row as usize,
                    line: None,
                    reason: format!("{e}"),
                },
                _ => TableError::Plugin(e),
            }),
        }
    }

    /// Inserts an already formatted batch (all or nothing).
    pub async fn insert_batch(&self, batch: Batch) -> Result<InsertReceipt> {
        Ok(self
            .insert_batch_durable(Arc::new(batch))
            .await?
            .finish()
            .await)
    }

    /// Inserts joined inputs (all or nothing) and returns once the
    /// commit's log entry is durable, as [`Table::insert_prepared_durable`];
    /// the rows stay the caller's (see [`JoinedRows::split`]).
    pub async fn insert_joined_durable(&self, joined: &JoinedRows) -> Result<DurableInsert<'_>> {
        self.insert_batch_durable(joined.batch.clone()).await
    }

    #[tracing::instrument(level = "debug", skip_all, name = "insert", fields(rows = batch.row_count))]
    async fn insert_batch_durable(&self, batch: Arc<Batch>) -> Result<DurableInsert<'_>> {
        if let Some(reason) = &self.write_block {
            return Err(TableError::WriteBlocked(reason.clone()));
        }
        // The commit's first read of the log (with the table's identity
        // check) runs while the rows are partitioned, encoded and uploaded;
        // a failed read is left to the commit, which reads again.
        let (staged, read) = tokio::join!(self.stage(batch.clone()), self.meta.read_head());
        let Staged {
            mut draft,
            mut uploaded,
            records,
            partitions,
        } = staged?;
        let read = read.unwrap_or_else(|error| {
            tracing::debug!(%error, "the early read of the log failed; the commit reads again");
            None
        });
        let mut outcome = self.win(draft.clone(), read).await;
        if let Err(CommitError::Conflict(Conflict::InlineFull { .. })) = &outcome {
            // Other writers filled the table's inline bound first: the
            // parts become files (nothing of this insert was committed).
            let as_files = async { self.upload(self.parts_as_files(records).await?).await };
            match as_files.await {
                Ok(more) => uploaded.extend(more),
                Err(error) => {
                    self.delete_files(uploaded.iter().map(|f| f.path.as_str()))
                        .await;
                    return Err(error);
                }
            }
            draft.inline_limit = None;
            draft.segments.clear();
            draft.added = uploaded.clone();
            outcome = self.win(draft, None).await;
        }
        match outcome {
            Ok(post) => {
                let added = &post.commit().added;
                let receipt = InsertReceipt {
                    version: post.version(),
                    files: added.iter().map(|f| f.path.clone()).collect(),
                    rows: added.iter().map(|f| f.rows).sum(),
                    partitions,
                };
                Ok(DurableInsert {
                    table: self,
                    post,
                    receipt,
                })
            }
            Err(error) => {
                self.discard_uncommitted(&error, uploaded.iter().map(|f| f.path.as_str()))
                    .await;
                Err(error.into())
            }
        }
    }

    /// An insert's rows as its commit will add them: partitioned, checked
    /// against the table's schema, encoded as inline parts or files, the
    /// files uploaded.
    async fn stage(&self, batch: Arc<Batch>) -> Result<Staged> {
        let now = chrono::Utc::now();
        let paths = self
            .partitioner
            .partition(&batch, now.timestamp_micros())
            .instrument(tracing::debug_span!("insert.partition"))
            .await?;
        // Check the schema before anything is uploaded, against the
        // replica as it is: the commit syncs before it plans, and checks
        // the columns again against the log's head (a column another
        // writer added meanwhile widens or conflicts there), so a sync here
        // would only add a request to every insert.
        let table_schema = self.meta.snapshot()?.schema()?;
        let columns = schema::resolve(&batch, &table_schema, self.partitioner.routing_column())?;
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (row, path) in paths.iter().enumerate() {
            groups.entry(path.as_str()).or_default().push(row);
        }
        check_partition_names(
            &batch,
            groups.keys().copied(),
            &paths,
            self.partitioner.routing_column(),
        )?;
        let partitions = groups.len();
        let columns = Arc::new(columns);
        // One job per file; small jobs are packed into one CPU task until it
        // holds its share of the rows, so a group commit's thirty 27-row
        // parts are one task per core rather than thirty trips through the
        // core semaphore and the blocking pool, and a big insert encodes
        // its files on every core.
        let (least, most) = ENCODE_TASK_ROWS;
        let share = (batch.row_count as usize)
            .div_ceil(crate::cpu::core_count())
            .clamp(least, most);
        let mut tasks: Vec<Vec<(String, Vec<usize>)>> = Vec::new();
        let mut task_rows = usize::MAX;
        for (partition, rows) in groups {
            for chunk in rows.chunks(self.config.max_rows_per_file.max(1)) {
                if task_rows >= share {
                    tasks.push(Vec::new());
                    task_rows = 0;
                }
                task_rows += chunk.len();
                let task = tasks.last_mut().expect("pushed above");
                task.push((partition.to_owned(), chunk.to_vec()));
            }
        }
        let parts: usize = tasks.iter().map(Vec::len).sum();
        let task_count = tasks.len();
        let (inline_rows, max_part_bytes) = (
            self.config.inline.max_rows,
            self.config.inline.max_part_bytes,
        );
        let encoders = tasks.into_iter().map(|jobs| {
            let (batch, columns, layout) =
                (batch.clone(), columns.clone(), FileLayout::of(&self.config));
            crate::cpu::on_cpu(move || {
                let rows: Vec<&[usize]> = jobs.iter().map(|(_, rows)| rows.as_slice()).collect();
                let records = write::sorted_parts(&batch, &rows, &columns, &layout.sort_order)?;
                let created = now.timestamp_millis();
                let mut encoded = Vec::new();
                let mut inline = Vec::new();
                for ((partition, rows), record) in jobs.iter().zip(records) {
                    if rows.len() <= inline_rows {
                        let entry = FileLayout::inline_entry(&record, partition, created);
                        inline.push((entry, record));
                    } else {
                        let file = layout.encode_insert(record, partition, created)?;
                        encoded.push(Encoded::File(file));
                    }
                }
                // The task's inline parts are one segment: one encoding,
                // one value in the log and the replica.
                let (segment, too_big) =
                    encode_segment(inline, &layout.sort_order, max_part_bytes)?;
                for (entry, record) in too_big {
                    let file = layout.encode_insert(record, &entry.partition, created)?;
                    encoded.push(Encoded::File(file));
                }
                encoded.extend(segment.map(Encoded::Segment));
                Ok::<_, TableError>(encoded)
            })
        });
        let encoded: Vec<Encoded> = futures::future::try_join_all(encoders)
            .instrument(tracing::debug_span!(
                "insert.encode",
                parts,
                tasks = task_count
            ))
            .await?
            .into_iter()
            .flatten()
            .collect();
        let (segments, to_upload) = self.split_inline(encoded).await?;
        let uploaded: Vec<DataFile> = self.upload(to_upload).await?;
        let mut draft = CommitDraft::new(Operation::Insert);
        draft.definition = Some(self.definition_json.clone());
        draft.columns = columns.as_ref().clone();
        draft.added = uploaded.clone();
        let mut records = Vec::new();
        for segment in segments {
            for (file, record) in segment.parts {
                records.push((file.partition.clone(), record));
                draft.added.push(file);
            }
            draft.segments.push(InlineSegment {
                name: segment.name,
                data: InlineData(segment.bytes.into()),
            });
        }
        if !draft.segments.is_empty() {
            draft.inline_limit = Some(self.config.inline.limit_bytes);
        }
        Ok(Staged {
            draft,
            uploaded,
            records,
            partitions,
        })
    }

    /// All three phases of the commit protocol, on top of `read` when the
    /// log was read for the commit already (a merge round's or vacuum's
    /// read; see [`PreparedCommit::after_read`](icedb_meta::PreparedCommit::after_read)).
    pub(crate) async fn commit_after(
        &self,
        draft: CommitDraft,
        read: Option<ReadHead>,
    ) -> std::result::Result<CommitReceipt, CommitError> {
        Ok(self.win(draft, read).await?.finish().await)
    }

    /// Phases 1 and 2 of the commit protocol: the draft's log entry is won
    /// (durable) or the error says why not; on top of `read` when the log
    /// was read for it already.
    async fn win(
        &self,
        draft: CommitDraft,
        read: Option<ReadHead>,
    ) -> std::result::Result<PostCommit<'_>, CommitError> {
        let prepared = self.meta.prepare(draft)?;
        match read {
            Some(read) => prepared.after_read(read),
            None => prepared,
        }
        .win()
        .await
    }

    /// Splits an insert's encoded output into the segments kept in the
    /// commit and the files to upload: segments become files too when
    /// they would take the table past its inline bound (as of the last
    /// sync; the commit checks again against the log's head).
    async fn split_inline(
        &self,
        encoded: Vec<Encoded>,
    ) -> Result<(Vec<Segment>, Vec<(DataFile, Vec<u8>)>)> {
        let mut segments = Vec::new();
        let mut files = Vec::new();
        for encoded in encoded {
            match encoded {
                Encoded::File(file) => files.push(file),
                Encoded::Segment(segment) => segments.push(segment),
            }
        }
        let adding: u64 = segments.iter().map(|s| s.bytes.len() as u64).sum();
        if !segments.is_empty()
            && self.meta.snapshot()?.inline_held_bytes()? + adding > self.config.inline.limit_bytes
        {
            let records = segments
                .drain(..)
                .flat_map(|segment| segment.parts)
                .map(|(file, record)| (file.partition, record))
                .collect();
            files.extend(self.parts_as_files(records).await?);
        }
        Ok((segments, files))
    }

    /// Encodes rows meant for inline parts (sorted) as files of their
    /// partitions.
    async fn parts_as_files(
        &self,
        records: Vec<(String, RecordBatch)>,
    ) -> Result<Vec<(DataFile, Vec<u8>)>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let layout = FileLayout::of(&self.config);
        let created = chrono::Utc::now().timestamp_millis();
        crate::cpu::on_cpu(move || {
            records
                .into_iter()
                .map(|(partition, record)| layout.encode_insert(record, &partition, created))
                .collect()
        })
        .await
    }

    /// Uploads encoded files in parallel; on any failure deletes every
    /// file it tried (a failed upload may still have landed; no commit
    /// references any of them) and returns the error.
    async fn upload(&self, files: Vec<(DataFile, Vec<u8>)>) -> Result<Vec<DataFile>> {
        let paths: Vec<String> = files.iter().map(|(f, _)| f.path.clone()).collect();
        let results: Vec<Result<DataFile>> = futures::stream::iter(files)
            .map(|(file, bytes)| async move {
                self.put_object(&file.path, bytes).await?;
                Ok(file)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
        if let Some(Err(error)) = failed.into_iter().next() {
            self.delete_files(paths.iter().map(String::as_str)).await;
            return Err(error);
        }
        Ok(ok.into_iter().map(Result::unwrap).collect())
    }
}

/// Refuses a field named like a partition column (a Hive key of the rows'
/// partition paths, compared as DuckDB does, ignoring case): queries read
/// the partition's value in its place, so the field's own values would be
/// silently lost. Keys are read once per distinct partition (`partitions`);
/// the error names the offending row's own path (`paths`, one per row).
fn check_partition_names<'a>(
    batch: &Batch,
    partitions: impl IntoIterator<Item = &'a str>,
    paths: &[String],
    routing: Option<&str>,
) -> Result<()> {
    let mut keys: BTreeSet<String> = BTreeSet::new();
    for partition in partitions {
        for segment in partition.split('/') {
            if let Some((key, _)) = segment.split_once('=') {
                keys.insert(key.to_lowercase());
            }
        }
    }
    for column in &batch.columns {
        if Some(column.name.as_str()) == routing || !keys.contains(&column.name.to_lowercase()) {
            continue;
        }
        if let Some(row) = column
            .values
            .iter()
            .position(|v| *v != icedb_plugin::Value::Null)
        {
            let path = &paths[row];
            return Err(TableError::BadInput {
                row,
                line: None,
                reason: format!(
                    "field `{}` has the name of a partition column (the row's partition is `{path}`); queries would read the partition's value in its place: rename the field",
                    column.name
                ),
            });
        }
    }
    Ok(())
}

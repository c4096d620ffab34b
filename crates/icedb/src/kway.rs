//! The rows of a merge job, from its inputs to its output file
//! ([`MergeJob`]): inputs already sorted by the table's sort order stream
//! through a binary heap into one sorted output (the k-way merge), written
//! in full chunks whatever the inputs' batch sizes; an input in another
//! order is sorted whole first. Inputs all in memory (inline parts) are
//! sorted together instead.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, new_null_array};
use arrow::compute::{cast, interleave_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, Rows, SortField};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use icedb_meta::{ColumnDef, ColumnStats, DataFile, Snapshot};
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::async_writer::ParquetObjectWriter;
use tracing::Instrument;

use crate::error::Result;
use crate::schema::arrow_schema;
use crate::write;

/// One merge job's inputs and where its output goes.
pub(crate) struct MergeJob {
    pub store: Arc<dyn ObjectStore>,
    /// The replica as the job was planned on: inline parts' bytes.
    pub snapshot: Arc<Snapshot>,
    /// Decodes inline parts (segments once per round).
    pub parts: Arc<crate::inline_part::PartReader>,
    pub files: Vec<DataFile>,
    pub table_schema: Vec<ColumnDef>,
    pub layout: write::FileLayout,
    pub output: Path,
}

/// What a merge job wrote.
pub(crate) struct JobOutput {
    pub rows: u64,
    pub stats: BTreeMap<String, ColumnStats>,
    pub bytes: u64,
    /// The output's columns: every column some input has, with the
    /// table's type.
    pub columns: Vec<ColumnDef>,
}

impl MergeJob {
    /// Opens the inputs, merges their rows and writes the output (not
    /// deleted on failure: the caller does).
    pub(crate) async fn run(mut self) -> Result<JobOutput> {
        if self.files.iter().all(DataFile::is_inline) {
            return self.flush().await;
        }
        let opened = self.open().await?;
        let (columns, schema) = self.output_columns(&opened);
        let mut streams = Vec::with_capacity(opened.len());
        for input in opened {
            streams.push(if input.sorted {
                input.batches
            } else {
                resorted(input.batches, &schema, &self.layout.sort_order).await?
            });
        }
        let mut writer = AsyncArrowWriter::try_new(
            ParquetObjectWriter::new(self.store, self.output),
            schema.clone(),
            Some(self.layout.properties()),
        )?;
        let (rows, stats) = merge_sorted(streams, &schema, &self.layout.sort_order, &mut writer)
            .instrument(tracing::debug_span!("merge.write"))
            .await?;
        writer.finish().await?;
        Ok(JobOutput {
            rows,
            stats,
            // Every byte of the file went through the writer.
            bytes: writer.bytes_written() as u64,
            columns,
        })
    }

    /// A job of inline parts only (a flush): every row is in memory, so
    /// they are sorted together and encoded in one go, on the background
    /// threads, and the file is uploaded with one request from the
    /// caller's task (a slow upload holds no background thread).
    async fn flush(self) -> Result<JobOutput> {
        let (store, output) = (self.store.clone(), self.output.clone());
        let (written, bytes) = crate::cpu::in_background(self.encode_flush()).await?;
        store
            .put(&output, bytes.into())
            .instrument(tracing::debug_span!("merge.put"))
            .await
            .map_err(|e| crate::error::TableError::store(&output, e))?;
        Ok(written)
    }

    /// A flush's computing: its parts decoded, sorted together and encoded
    /// as one Parquet file (its bytes, and what it will be once uploaded).
    async fn encode_flush(mut self) -> Result<(JobOutput, Vec<u8>)> {
        let opened = self.open().await?;
        let (columns, schema) = self.output_columns(&opened);
        let mut batches = Vec::new();
        for input in opened {
            batches.extend(input.batches.try_collect::<Vec<_>>().await?);
        }
        tracing::debug_span!("merge.write").in_scope(|| {
            let sorted = sort_together(&batches, &schema, &self.layout.sort_order)?;
            // A flush's file is rewritten by merges, like an insert's.
            let props = self.layout.properties_for(sorted.num_rows());
            let bytes = write::parquet_bytes(&sorted, props)?;
            let written = JobOutput {
                rows: sorted.num_rows() as u64,
                stats: write::column_stats(&sorted),
                bytes: bytes.len() as u64,
                columns,
            };
            Ok((written, bytes))
        })
    }

    /// Loads the inline parts' bytes and opens every input.
    async fn open(&mut self) -> Result<Vec<crate::inputs::Input>> {
        // On a blocking thread (the caller's): a replica read may block.
        tracing::debug_span!("merge.load")
            .in_scope(|| self.snapshot.load_inline(&mut self.files))?;
        let wanted_order = self.layout.sort_order.join(",");
        crate::inputs::open_all(&self.store, &self.files, &wanted_order, &self.parts)
            .instrument(tracing::debug_span!("merge.open"))
            .await
    }

    /// The output's columns: every table column some input has.
    fn output_columns(&self, opened: &[crate::inputs::Input]) -> (Vec<ColumnDef>, SchemaRef) {
        let columns: Vec<ColumnDef> = self
            .table_schema
            .iter()
            .filter(|def| {
                opened
                    .iter()
                    .any(|input| input.schema.field_with_name(&def.name).is_ok())
            })
            .cloned()
            .collect();
        let schema = arrow_schema(&columns);
        (columns, schema)
    }
}

/// An input's batches, in the table's sort order.
pub(crate) type Input = BoxStream<'static, Result<RecordBatch>>;

/// An input written in another order (before an `alter` of the sort order),
/// read whole and sorted: merge inputs are small files.
pub(crate) async fn resorted(
    stream: impl futures::Stream<Item = Result<RecordBatch>> + Unpin,
    schema: &SchemaRef,
    sort_order: &[String],
) -> Result<Input> {
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    let sorted = sort_together(&batches, schema, sort_order)?;
    Ok(futures::stream::iter([Ok(sorted)]).boxed())
}

/// Inputs already in memory (a flush of inline parts: hundreds of a few
/// rows each) as one batch sorted by one stable sort of their
/// concatenation, in input order: the order the heap merge gives (equal
/// keys keep input order, then row order), without a cursor, a key
/// conversion and heap steps per input. Inputs need not be sorted.
pub(crate) fn sort_together(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    sort_order: &[String],
) -> Result<RecordBatch> {
    let conformed: Vec<RecordBatch> = batches
        .iter()
        .map(|batch| conform_to(batch, schema))
        .collect::<Result<_>>()?;
    let whole = arrow::compute::concat_batches(schema, &conformed)?;
    write::sort(whole, sort_order)
}

/// One input of the k-way merge: its stream, current batch and cursor.
struct Cursor {
    stream: Input,
    /// Its current batch, as an index into the batches held for the chunk
    /// being gathered.
    batch: usize,
    rows: usize,
    keys: Rows,
    row: usize,
    done: bool,
}

/// Reads the next non-empty batch of an input, in the output schema.
async fn next_batch(stream: &mut Input, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
    while let Some(batch) = stream.try_next().await? {
        if batch.num_rows() > 0 {
            return Ok(Some(conform_to(&batch, schema)?));
        }
    }
    Ok(None)
}

/// A batch with exactly `schema`'s columns: missing ones as nulls, others
/// cast to the table's type (int64 widened to float64, say).
pub(crate) fn conform_to(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => cast(column, field.data_type()),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Whether input `a`'s current row sorts before input `b`'s (ties: the
/// lower input).
fn before(cursors: &[Cursor], a: usize, b: usize) -> bool {
    let (x, y) = (&cursors[a], &cursors[b]);
    match x.keys.row(x.row).cmp(&y.keys.row(y.row)) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => a < b,
    }
}

/// Restores the heap order below `at` after its input's row changed.
fn sift_down(heap: &mut [usize], mut at: usize, cursors: &[Cursor]) {
    loop {
        let (left, right) = (2 * at + 1, 2 * at + 2);
        let mut smallest = at;
        if left < heap.len() && before(cursors, heap[left], heap[smallest]) {
            smallest = left;
        }
        if right < heap.len() && before(cursors, heap[right], heap[smallest]) {
            smallest = right;
        }
        if smallest == at {
            return;
        }
        heap.swap(at, smallest);
        at = smallest;
    }
}

/// Streams the merge of sorted inputs into `writer`; returns the row count
/// and the output's column statistics.
pub(crate) async fn merge_sorted(
    streams: Vec<Input>,
    schema: &SchemaRef,
    sort_order: &[String],
    writer: &mut AsyncArrowWriter<ParquetObjectWriter>,
) -> Result<(u64, BTreeMap<String, ColumnStats>)> {
    const CHUNK: usize = 8192;
    let key_columns: Vec<usize> = sort_order
        .iter()
        .filter_map(|name| schema.index_of(name).ok())
        .collect();
    let converter = RowConverter::new(
        key_columns
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect(),
    )?;
    let keys_of = |batch: &RecordBatch| -> Result<Rows> {
        let columns: Vec<_> = key_columns
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        Ok(converter.convert_columns(&columns)?)
    };
    // Batches rows of the gathered chunk may point into: every input's
    // current one, and earlier ones until the chunk is written. Chunks are
    // CHUNK rows whatever the inputs' batch sizes (a flush of inline parts
    // merges hundreds of inputs of a few rows each).
    let mut held: Vec<RecordBatch> = Vec::with_capacity(streams.len());
    let mut cursors = Vec::with_capacity(streams.len());
    for mut stream in streams {
        let batch = next_batch(&mut stream, schema).await?;
        let done = batch.is_none();
        let batch = batch.unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
        let keys = keys_of(&batch)?;
        cursors.push(Cursor {
            stream,
            batch: held.len(),
            rows: batch.num_rows(),
            keys,
            row: 0,
            done,
        });
        held.push(batch);
    }
    let mut out = Progress::default();
    let mut pending: Vec<(usize, usize)> = Vec::with_capacity(CHUNK);
    // A binary min-heap of the live inputs by their current row (ties: the
    // lower input first, so equal keys keep their input order): each output
    // row costs O(log k) comparisons instead of a scan of every input.
    let mut heap: Vec<usize> = (0..cursors.len()).filter(|&i| !cursors[i].done).collect();
    for i in (0..heap.len() / 2).rev() {
        sift_down(&mut heap, i, &cursors);
    }
    while let Some(&chosen) = heap.first() {
        pending.push((cursors[chosen].batch, cursors[chosen].row));
        cursors[chosen].row += 1;
        if pending.len() == CHUNK {
            write_chunk(&mut held, &mut pending, &mut cursors, &mut out, writer).await?;
        }
        if cursors[chosen].row == cursors[chosen].rows {
            let cursor = &mut cursors[chosen];
            match next_batch(&mut cursor.stream, schema).await? {
                Some(batch) => {
                    cursor.keys = keys_of(&batch)?;
                    cursor.rows = batch.num_rows();
                    cursor.row = 0;
                    cursor.batch = held.len();
                    held.push(batch);
                }
                None => {
                    cursor.done = true;
                    let last = heap.pop().expect("the heap held the chosen input");
                    if heap.is_empty() {
                        break;
                    }
                    heap[0] = last;
                }
            }
        }
        sift_down(&mut heap, 0, &cursors);
    }
    write_chunk(&mut held, &mut pending, &mut cursors, &mut out, writer).await?;
    Ok((out.rows, out.stats.unwrap_or_default()))
}

/// Rows written so far, and their statistics.
#[derive(Default)]
struct Progress {
    rows: u64,
    stats: Option<BTreeMap<String, ColumnStats>>,
}

/// Writes the gathered rows (`pending` points into `held`) as one chunk,
/// then lets go of every batch but the inputs' current ones.
async fn write_chunk(
    held: &mut Vec<RecordBatch>,
    pending: &mut Vec<(usize, usize)>,
    cursors: &mut [Cursor],
    out: &mut Progress,
    writer: &mut AsyncArrowWriter<ParquetObjectWriter>,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let chunk = interleave_record_batch(&held.iter().collect::<Vec<_>>(), pending)?;
    pending.clear();
    let chunk_stats = write::column_stats(&chunk);
    out.stats = Some(match out.stats.take() {
        None => chunk_stats,
        Some(so_far) => write::merge_stats(so_far, out.rows, chunk_stats, chunk.num_rows() as u64),
    });
    out.rows += chunk.num_rows() as u64;
    writer.write(&chunk).await?;
    let mut kept = Vec::with_capacity(cursors.len());
    for cursor in cursors.iter_mut() {
        let empty = RecordBatch::new_empty(held[cursor.batch].schema());
        kept.push(std::mem::replace(&mut held[cursor.batch], empty));
        cursor.batch = kept.len() - 1;
    }
    *held = kept;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use object_store::ObjectStore;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Hundreds of inputs of a few rows each, in batches of one to five
    /// rows, merge into one output sorted by (event, ts) across several
    /// full chunks; equal keys keep input order, then row order.
    #[tokio::test]
    async fn many_tiny_inputs_merge_sorted_and_stable_across_chunks() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("event", DataType::Utf8, false),
            Field::new("ts", DataType::Int64, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let mut streams: Vec<Input> = Vec::new();
        let mut expected = Vec::new();
        for input in 0..400i64 {
            let mut rows: Vec<(String, i64)> = (0..rng.random_range(1..90))
                .map(|_| {
                    let event = ["click", "signup", "view"][rng.random_range(0..3)];
                    (event.to_owned(), rng.random_range(0..50))
                })
                .collect();
            rows.sort();
            let mut batches = Vec::new();
            let mut at = 0;
            while at < rows.len() {
                let take = rng.random_range(1..=5).min(rows.len() - at);
                let slice = &rows[at..at + take];
                let n: Vec<i64> = (at..at + take)
                    .map(|i| input * 1_000_000 + i as i64)
                    .collect();
                expected.extend(slice.iter().cloned().zip(n.iter().copied()));
                batches.push(Ok(RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from_iter_values(slice.iter().map(|r| &r.0))),
                        Arc::new(Int64Array::from_iter_values(slice.iter().map(|r| r.1))),
                        Arc::new(Int64Array::from(n)),
                    ],
                )
                .unwrap()));
                at += take;
            }
            streams.push(futures::stream::iter(batches).boxed());
        }
        assert!(expected.len() > 2 * 8192, "more than two chunks");
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("out.parquet");
        let mut writer = AsyncArrowWriter::try_new(
            ParquetObjectWriter::new(store.clone(), path.clone()),
            schema.clone(),
            None,
        )
        .unwrap();
        let order = ["event".to_owned(), "ts".to_owned()];
        let (rows, stats) = merge_sorted(streams, &schema, &order, &mut writer)
            .await
            .unwrap();
        writer.finish().await.unwrap();
        assert_eq!(rows as usize, expected.len());
        assert_eq!(stats["n"].null_count, 0);

        let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
        let mut got = Vec::new();
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let event = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            let ts = batch
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            let n = batch
                .column(2)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            for i in 0..batch.num_rows() {
                got.push(((event.value(i).to_owned(), ts.value(i)), n.value(i)));
            }
        }
        // A stable sort of the inputs in input order is the one right answer.
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, expected);
    }

    /// Inputs sorted together (the in-memory path of a flush) come out as
    /// one stable sort of their concatenation in input order, whatever
    /// each input's own order, with a column some inputs lack filled with
    /// nulls for their rows.
    #[test]
    fn inputs_sorted_together_are_one_stable_sort_of_their_concatenation() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("event", DataType::Utf8, false),
            Field::new("ts", DataType::Int64, false),
            Field::new("n", DataType::Int64, false),
            Field::new("extra", DataType::Utf8, true),
        ]));
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let mut batches = Vec::new();
        let mut expected = Vec::new();
        for input in 0..60i64 {
            let rows = rng.random_range(1..30);
            let event: Vec<&str> = (0..rows)
                .map(|_| ["click", "signup", "view"][rng.random_range(0..3)])
                .collect();
            let ts: Vec<i64> = (0..rows).map(|_| rng.random_range(0..20)).collect();
            let n: Vec<i64> = (0..rows).map(|i| input * 1_000 + i as i64).collect();
            let with_extra = input % 3 != 0;
            for i in 0..rows {
                let extra = with_extra.then(|| format!("x{}", n[i]));
                expected.push(((event[i].to_owned(), ts[i]), n[i], extra));
            }
            let mut fields = vec![
                Field::new("event", DataType::Utf8, false),
                Field::new("ts", DataType::Int64, false),
                Field::new("n", DataType::Int64, false),
            ];
            let mut columns: Vec<arrow::array::ArrayRef> = vec![
                Arc::new(StringArray::from(event)),
                Arc::new(Int64Array::from(ts)),
                Arc::new(Int64Array::from(n.clone())),
            ];
            if with_extra {
                fields.push(Field::new("extra", DataType::Utf8, true));
                columns.push(Arc::new(StringArray::from_iter_values(
                    n.iter().map(|n| format!("x{n}")),
                )));
            }
            batches.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap());
        }
        let order = ["event".to_owned(), "ts".to_owned()];
        let sorted = sort_together(&batches, &schema, &order).unwrap();
        assert_eq!(sorted.schema(), schema);
        let strings = |i: usize| {
            sorted
                .column(i)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let ints = |i: usize| {
            sorted
                .column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone()
        };
        let (event, ts, n, extra) = (strings(0), ints(1), ints(2), strings(3));
        let got: Vec<_> = (0..sorted.num_rows())
            .map(|i| {
                (
                    (event.value(i).to_owned(), ts.value(i)),
                    n.value(i),
                    extra.is_valid(i).then(|| extra.value(i).to_owned()),
                )
            })
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, expected);
    }
}

//! The k-way merge of a merge job: inputs already sorted by the table's
//! sort order stream through a binary heap into one sorted output, written
//! in full chunks whatever the inputs' batch sizes; an input in another
//! order is sorted whole first.

use std::collections::BTreeMap;

use arrow::array::{RecordBatch, new_null_array};
use arrow::compute::{cast, interleave_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, Rows, SortField};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use icedb_meta::ColumnStats;
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::async_writer::ParquetObjectWriter;

use crate::error::Result;
use crate::write;

/// An input's batches, in the table's sort order.
pub(crate) type Input = BoxStream<'static, Result<RecordBatch>>;

/// An input written in another order (before an `alter` of the sort order),
/// read whole and sorted: merge inputs are small files.
pub(crate) async fn resorted(
    mut stream: impl futures::Stream<Item = Result<RecordBatch>> + Unpin,
    schema: &SchemaRef,
    sort_order: &[String],
) -> Result<Input> {
    let mut batches = Vec::new();
    while let Some(batch) = stream.try_next().await? {
        batches.push(conform_to(&batch, schema)?);
    }
    let whole = arrow::compute::concat_batches(schema, &batches)?;
    let sorted = write::sort(whole, sort_order)?;
    Ok(futures::stream::iter([Ok(sorted)]).boxed())
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

    use arrow::array::{Int64Array, StringArray};
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
}

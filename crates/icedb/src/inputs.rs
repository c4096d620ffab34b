//! Opening a merge job's input files. Most inputs are small (a merge exists
//! to combine small files), so a file up to [`WHOLE_FILE_BYTES`] is fetched
//! whole in one request and decoded from memory; larger ones are streamed
//! (footer, then row groups as the merge needs them). Inputs open
//! concurrently, [`OPEN_AT_ONCE`] at a time, in the job's order. An inline
//! part's bytes come from the log: no request at all.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use icedb_meta::DataFile;
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::file::metadata::ParquetMetaData;

use crate::error::{Result, TableError};
use crate::inline_part::{Decoded, PartReader};
use crate::write;

/// Inputs at most this large are read with one GET. A job's inputs are
/// bounded by its policy's `max_input_bytes`, so so is the memory this
/// holds.
const WHOLE_FILE_BYTES: u64 = 8 << 20;

/// Inputs opened at once (requests in flight per job).
const OPEN_AT_ONCE: usize = 16;

const BATCH_ROWS: usize = 8192;

/// An opened input: its schema, whether it is sorted by the table's current
/// order, and its batches.
pub(crate) struct Input {
    pub schema: SchemaRef,
    pub sorted: bool,
    pub batches: BoxStream<'static, Result<RecordBatch>>,
}

/// Opens `files` in order; `wanted_order` is the table's sort order as
/// files name it (`write::SORT_ORDER_KEY`).
pub(crate) async fn open_all(
    store: &Arc<dyn ObjectStore>,
    files: &[DataFile],
    wanted_order: &str,
    parts: &PartReader,
) -> Result<Vec<Input>> {
    // Owned items and futures: a borrow in a buffered stream's futures
    // makes the merge future not `Send` for every lifetime. Inline parts
    // are decoded here (in memory already; a segment once per round).
    let wanted: Arc<str> = wanted_order.into();
    let store = store.clone();
    let files: Vec<(Path, u64, Option<Decoded>)> = files
        .iter()
        .map(|f| {
            let inline = f.inline.is_some().then(|| parts.read(f)).transpose()?;
            Ok((Path::from(f.path.as_str()), f.bytes, inline))
        })
        .collect::<Result<_>>()?;
    futures::stream::iter(files)
        .map(move |(path, bytes, inline)| open(store.clone(), path, bytes, inline, wanted.clone()))
        .buffered(OPEN_AT_ONCE)
        .try_collect()
        .await
}

async fn open(
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    inline: Option<Decoded>,
    wanted_order: Arc<str>,
) -> Result<Input> {
    if let Some(part) = inline {
        return Ok(Input {
            sorted: part.sort_order.as_deref() == Some(&*wanted_order),
            schema: part.schema,
            batches: futures::stream::iter(part.batches.into_iter().map(Ok)).boxed(),
        });
    }
    if size <= WHOLE_FILE_BYTES {
        let bytes = store
            .get(&path)
            .await
            .map_err(|e| TableError::store(&path, e))?
            .bytes()
            .await
            .map_err(|e| TableError::store(&path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?.with_batch_size(BATCH_ROWS);
        let sorted = sorted_by(builder.metadata(), &wanted_order);
        let schema = builder.schema().clone();
        let reader = builder.build()?;
        return Ok(Input {
            schema,
            sorted,
            batches: futures::stream::iter(reader)
                .map_err(TableError::from)
                .boxed(),
        });
    }
    let reader = ParquetObjectReader::new(store, path).with_file_size(size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await?
        .with_batch_size(BATCH_ROWS);
    let sorted = sorted_by(builder.metadata(), &wanted_order);
    let schema = builder.schema().clone();
    Ok(Input {
        schema,
        sorted,
        batches: builder.build()?.map_err(TableError::from).boxed(),
    })
}

/// Whether the file says it is sorted by `wanted_order`. Files from before
/// an `alter` of the sort order (or without the key) are not.
fn sorted_by(metadata: &ParquetMetaData, wanted_order: &str) -> bool {
    metadata
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .any(|kv| kv.key == write::SORT_ORDER_KEY && kv.value.as_deref() == Some(wanted_order))
}

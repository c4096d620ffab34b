//! One partition's rows → a sorted Arrow batch → a Parquet file in memory,
//! with the per-column statistics the meta store keeps for pruning.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int64Array,
    Int64Builder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use icedb_meta::{ColumnDef, ColumnStats, ColumnType, DataFile, StatValue};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as ParquetCompression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::config::{Compression, TableConfig};
use crate::error::Result;
use crate::schema::arrow_schema;
use crate::{Batch, Value};

/// Longest string kept as a min/max statistic; longer ones are left out
/// (a truncated max would be wrong).
const MAX_STAT_STRING: usize = 64;

/// The Arrow batch of `rows` (indices into `batch`) with `columns`.
pub(crate) fn record_batch(
    batch: &Batch,
    rows: &[usize],
    columns: &[ColumnDef],
) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|def| {
            let values = batch.column(&def.name).map(|c| c.values.as_slice());
            build_array(values, rows, def.column_type)
        })
        .collect();
    Ok(RecordBatch::try_new(arrow_schema(columns), arrays)?)
}

fn build_array(values: Option<&[Value]>, rows: &[usize], column_type: ColumnType) -> ArrayRef {
    let value = |row: usize| values.map_or(&Value::Null, |v| &v[row]);
    match column_type {
        ColumnType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(rows.len());
            for &row in rows {
                b.append_option(match value(row) {
                    Value::Boolean(x) => Some(*x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Int64 => {
            let mut b = Int64Builder::with_capacity(rows.len());
            for &row in rows {
                b.append_option(match value(row) {
                    Value::Int(x) => Some(*x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Float64 => {
            let mut b = Float64Builder::with_capacity(rows.len());
            for &row in rows {
                b.append_option(match value(row) {
                    Value::Float(x) => Some(*x),
                    Value::Int(x) => Some(*x as f64),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::String => {
            let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
            for &row in rows {
                match value(row) {
                    Value::Text(x) => b.append_value(x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
            for &row in rows {
                b.append_option(match value(row) {
                    Value::Timestamp(x) => Some(*x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
    }
}

/// Sorts a batch by the sort-order columns it has (nulls first, ascending).
pub(crate) fn sort(batch: RecordBatch, sort_order: &[String]) -> Result<RecordBatch> {
    let keys: Vec<SortColumn> = sort_order
        .iter()
        .filter_map(|name| batch.column_by_name(name))
        .map(|values| SortColumn {
            values: values.clone(),
            options: None,
        })
        .collect();
    if keys.is_empty() || batch.num_rows() < 2 {
        return Ok(batch);
    }
    let indices = lexsort_to_indices(&keys, None)?;
    Ok(take_record_batch(&batch, &indices)?)
}

/// The Parquet key-value entry naming the order a file's rows are sorted
/// in (comma-separated columns): merges trust it, and re-sort files without it.
pub(crate) const SORT_ORDER_KEY: &str = "icedb.sort_order";

pub(crate) fn writer_properties(
    compression: Compression,
    row_group_rows: usize,
    sort_order: &[String],
) -> WriterProperties {
    let compression = match compression {
        Compression::Zstd { level } => {
            ParquetCompression::ZSTD(ZstdLevel::try_new(level).unwrap_or_default())
        }
        Compression::Snappy => ParquetCompression::SNAPPY,
        Compression::Uncompressed => ParquetCompression::UNCOMPRESSED,
    };
    let mut props = WriterProperties::builder()
        .set_compression(compression)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_size(row_group_rows.max(1));
    if !sort_order.is_empty() {
        props = props.set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
            SORT_ORDER_KEY.to_owned(),
            sort_order.join(","),
        )]));
    }
    props.build()
}

/// A sorted batch as Parquet bytes.
pub(crate) fn parquet_bytes(batch: &RecordBatch, props: WriterProperties) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4 + 1024);
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// Min, max and null count of every column.
pub(crate) fn column_stats(batch: &RecordBatch) -> BTreeMap<String, ColumnStats> {
    use arrow::compute::{max, max_boolean, max_string, min, min_boolean, min_string};
    let mut stats = BTreeMap::new();
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let any = array.as_any();
        let (lo, hi) = if let Some(a) = any.downcast_ref::<Int64Array>() {
            (min(a).map(StatValue::Int), max(a).map(StatValue::Int))
        } else if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
            (min(a).map(StatValue::Int), max(a).map(StatValue::Int))
        } else if let Some(a) = any.downcast_ref::<Float64Array>() {
            // NaN makes float ranges meaningless for pruning.
            let has_nan = a.iter().flatten().any(f64::is_nan);
            if has_nan {
                (None, None)
            } else {
                (min(a).map(StatValue::Float), max(a).map(StatValue::Float))
            }
        } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
            (
                min_boolean(a).map(StatValue::Boolean),
                max_boolean(a).map(StatValue::Boolean),
            )
        } else if let Some(a) = any.downcast_ref::<StringArray>() {
            let keep =
                |s: &str| (s.len() <= MAX_STAT_STRING).then(|| StatValue::Text(s.to_owned()));
            (min_string(a).and_then(keep), max_string(a).and_then(keep))
        } else {
            (None, None)
        };
        stats.insert(
            field.name().clone(),
            ColumnStats {
                min: lo,
                max: hi,
                null_count: array.null_count() as u64,
            },
        );
    }
    stats
}

/// Orders two statistics values of one column (ints and floats compare
/// numerically; other mixes do not compare).
pub(crate) fn compare(a: &StatValue, b: &StatValue) -> Option<std::cmp::Ordering> {
    use StatValue::*;
    match (a, b) {
        (Int(x), Int(y)) => Some(x.cmp(y)),
        (Float(x), Float(y)) => x.partial_cmp(y),
        (Int(x), Float(y)) => (*x as f64).partial_cmp(y),
        (Float(x), Int(y)) => x.partial_cmp(&(*y as f64)),
        (Text(x), Text(y)) => Some(x.cmp(y)),
        (Boolean(x), Boolean(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Statistics of two parts of one file combined (`*_rows`: rows in each
/// part). A part whose column is all null has no bounds to contribute; a
/// part with values but no bound (a NaN, a long string) makes the combined
/// bound unknown.
pub(crate) fn merge_stats(
    mut a: BTreeMap<String, ColumnStats>,
    a_rows: u64,
    b: BTreeMap<String, ColumnStats>,
    b_rows: u64,
) -> BTreeMap<String, ColumnStats> {
    for (name, theirs) in b {
        let Some(ours) = a.get_mut(&name) else {
            a.insert(name, theirs);
            continue;
        };
        let ours_empty = ours.null_count == a_rows;
        let theirs_empty = theirs.null_count == b_rows;
        ours.null_count += theirs.null_count;
        if ours_empty {
            ours.min = theirs.min;
            ours.max = theirs.max;
        } else if !theirs_empty {
            ours.min = pick(ours.min.take(), theirs.min, std::cmp::Ordering::Less);
            ours.max = pick(ours.max.take(), theirs.max, std::cmp::Ordering::Greater);
        }
    }
    a
}

fn pick(a: Option<StatValue>, b: Option<StatValue>, keep: std::cmp::Ordering) -> Option<StatValue> {
    match (a, b) {
        (Some(a), Some(b)) => match compare(&b, &a) {
            Some(order) if order == keep => Some(b),
            Some(_) => Some(a),
            None => None,
        },
        _ => None,
    }
}

/// A formatted batch as one sorted Parquet file in memory, with no table,
/// partitioning or commit: the native limit the ingest benchmark compares
/// the full pipeline against, and a convenience for tools.
pub fn encode_parquet(
    batch: &Batch,
    sort_order: &[String],
    compression: Compression,
    row_group_rows: usize,
) -> Result<Vec<u8>> {
    let columns = crate::schema::resolve(batch, &[], None)?;
    let rows: Vec<usize> = (0..batch.row_count as usize).collect();
    let record = sort(record_batch(batch, &rows, &columns)?, sort_order)?;
    parquet_bytes(
        &record,
        writer_properties(compression, row_group_rows, sort_order),
    )
}

/// Files of at most this many rows from an insert are written with Snappy
/// (see [`FileLayout::encode_insert`]).
const SMALL_FILE_ROWS: usize = 4_096;

/// An insert's rows for one partition encoded as an inline part: its entry
/// (without the bytes yet), its bytes, and its sorted rows.
pub(crate) struct InlinePart {
    pub(crate) file: DataFile,
    pub(crate) bytes: Vec<u8>,
    pub(crate) record: RecordBatch,
}

/// How a table lays out its data files: the sort order, compression and
/// row-group size every writer (insert, merge, rewrite) uses.
#[derive(Debug, Clone)]
pub(crate) struct FileLayout {
    pub(crate) sort_order: Vec<String>,
    compression: Compression,
    row_group_rows: usize,
}

impl FileLayout {
    pub(crate) fn of(config: &TableConfig) -> Self {
        FileLayout {
            sort_order: config.sort_order.clone(),
            compression: config.compression,
            row_group_rows: config.row_group_rows,
        }
    }

    /// A new, unique object key for a file of `partition`.
    pub(crate) fn new_path(partition: &str) -> String {
        format!("data/{partition}/{}.parquet", uuid::Uuid::now_v7())
    }

    /// A new, unique name for an inline part of `partition` (never an
    /// object: its bytes live in the commit).
    pub(crate) fn new_inline_path(partition: &str) -> String {
        format!(
            "{}{partition}/{}.parquet",
            icedb_meta::INLINE_PREFIX,
            uuid::Uuid::now_v7()
        )
    }

    pub(crate) fn properties(&self) -> WriterProperties {
        writer_properties(self.compression, self.row_group_rows, &self.sort_order)
    }

    /// Sorts `record` and encodes it as a new file of `partition`.
    pub(crate) fn encode(
        &self,
        record: RecordBatch,
        partition: &str,
        created_ms: i64,
    ) -> Result<(DataFile, Vec<u8>)> {
        self.encode_with(self.properties(), record, partition, created_ms)
    }

    /// [`Self::encode`] for an insert's file. A small one (at most
    /// [`SMALL_FILE_ROWS`] rows: one page per column) is written with
    /// Snappy when the table asks for zstd, without dictionaries, and with
    /// column-chunk rather than page statistics (the same bounds for one
    /// page). parquet-rs creates a zstd context per column chunk without
    /// telling it the input size, which dominated encoding files of a few
    /// KiB (perf over `http_ingest`: 24 % of the host's CPU in
    /// `ZSTD_createCCtx` and `memset` at level 3, still 11 % at level 1);
    /// Snappy keeps no context and every Parquet reader supports it; a
    /// dictionary per column of a few dozen rows costs more to build than it
    /// saves (a 27-row part of the standard workload: 64 µs and 3.6 KB with
    /// them, 33 µs and 3.1 KB without). Such files and inline parts are
    /// transient: merges write the table's layout.
    pub(crate) fn encode_insert(
        &self,
        record: RecordBatch,
        partition: &str,
        created_ms: i64,
    ) -> Result<(DataFile, Vec<u8>)> {
        if record.num_rows() > SMALL_FILE_ROWS {
            return self.encode(record, partition, created_ms);
        }
        let compression = match self.compression {
            Compression::Zstd { .. } => Compression::Snappy,
            other => other,
        };
        let props = writer_properties(compression, self.row_group_rows, &self.sort_order)
            .into_builder()
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .build();
        self.encode_with(props, record, partition, created_ms)
    }

    /// Sorts `record` and encodes it as an inline part of `partition`
    /// (see `inline_part`), keeping the sorted rows in case the part has
    /// to become a file after all.
    pub(crate) fn encode_inline(
        &self,
        record: RecordBatch,
        partition: &str,
        created_ms: i64,
    ) -> Result<InlinePart> {
        let record = sort(record, &self.sort_order)?;
        let bytes = crate::inline_part::encode(&record, &self.sort_order)?;
        let path = Self::new_inline_path(partition);
        let file = entry(path, partition, bytes.len(), &record, created_ms);
        Ok(InlinePart {
            file,
            bytes,
            record,
        })
    }

    fn encode_with(
        &self,
        props: WriterProperties,
        record: RecordBatch,
        partition: &str,
        created_ms: i64,
    ) -> Result<(DataFile, Vec<u8>)> {
        let record = sort(record, &self.sort_order)?;
        let bytes = parquet_bytes(&record, props)?;
        let file = entry(
            Self::new_path(partition),
            partition,
            bytes.len(),
            &record,
            created_ms,
        );
        Ok((file, bytes))
    }
}

/// The log entry of `record` encoded in `bytes` bytes at `path`.
fn entry(
    path: String,
    partition: &str,
    bytes: usize,
    record: &RecordBatch,
    created_ms: i64,
) -> DataFile {
    DataFile {
        path,
        partition: partition.to_owned(),
        bytes: bytes as u64,
        rows: record.num_rows() as u64,
        created_ms,
        columns: column_stats(record),
        inline: None,
    }
}

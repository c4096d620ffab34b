//! One partition's rows → a sorted Arrow batch → a Parquet file in memory,
//! with the per-column statistics the meta store keeps for pruning.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::UInt32Array;
use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int64Array,
    Int64Builder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::compute::take_record_batch;
use arrow::row::{RowConverter, SortField};
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

/// Sorts a batch by the sort-order columns it has (nulls first, ascending;
/// stable: equal keys keep their order).
pub(crate) fn sort(batch: RecordBatch, sort_order: &[String]) -> Result<RecordBatch> {
    let rows = 0..batch.num_rows();
    sort_ranges(batch, sort_order, std::slice::from_ref(&rows))
}

/// Sorts each of `ranges` (consecutive, covering `batch`) of a batch by
/// itself as [`sort`] does, with one key conversion and at most one `take`
/// for all of them (none when the rows are in order already).
pub(crate) fn sort_ranges(
    batch: RecordBatch,
    sort_order: &[String],
    ranges: &[Range<usize>],
) -> Result<RecordBatch> {
    let keys: Vec<ArrayRef> = sort_order
        .iter()
        .filter_map(|name| batch.column_by_name(name).cloned())
        .collect();
    if keys.is_empty() || batch.num_rows() < 2 {
        return Ok(batch);
    }
    let converter = RowConverter::new(
        keys.iter()
            .map(|column| SortField::new(column.data_type().clone()))
            .collect(),
    )?;
    let rows = converter.convert_columns(&keys)?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    for range in ranges {
        // `sort_by` is stable.
        order[range.clone()].sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    }
    if order.iter().enumerate().all(|(at, &row)| at as u32 == row) {
        return Ok(batch);
    }
    Ok(take_record_batch(&batch, &UInt32Array::from(order))?)
}

/// Several parts' rows of `batch` (each a list of row indices) as Arrow
/// batches sorted by `sort_order`, in the parts' order: built as one batch
/// with one sort and one `take` for all, each part a zero-copy slice of it
/// (an insert's ~30 parts of a few dozen rows cost one build instead of 30).
pub(crate) fn sorted_parts(
    batch: &Batch,
    parts: &[&[usize]],
    columns: &[ColumnDef],
    sort_order: &[String],
) -> Result<Vec<RecordBatch>> {
    let rows: Vec<usize> = parts.iter().flat_map(|part| part.iter().copied()).collect();
    let mut ranges = Vec::with_capacity(parts.len());
    let mut start = 0;
    for part in parts {
        ranges.push(start..start + part.len());
        start += part.len();
    }
    let whole = sort_ranges(record_batch(batch, &rows, columns)?, sort_order, &ranges)?;
    Ok(ranges
        .into_iter()
        .map(|range| whole.slice(range.start, range.len()))
        .collect())
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

/// Files of at most this many rows from an insert or a flush are written
/// with Snappy (see [`FileLayout::properties_for`]).
const SMALL_FILE_ROWS: usize = 4_096;

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
        let record = sort(record, &self.sort_order)?;
        self.encode_with(self.properties(), record, partition, created_ms)
    }

    /// [`Self::encode`] for an insert's file, its rows already sorted by
    /// the table's order ([`sorted_parts`]), with
    /// [`Self::properties_for`] its size.
    pub(crate) fn encode_insert(
        &self,
        record: RecordBatch,
        partition: &str,
        created_ms: i64,
    ) -> Result<(DataFile, Vec<u8>)> {
        let props = self.properties_for(record.num_rows());
        self.encode_with(props, record, partition, created_ms)
    }

    /// The properties of a new file of `rows` rows that merges will
    /// rewrite (an insert's file, a flush's): the table's layout, or, for
    /// a small one (at most [`SMALL_FILE_ROWS`] rows: one page per column),
    /// Snappy when the table asks for zstd, no dictionaries, and
    /// column-chunk rather than page statistics (the same bounds for one
    /// page). parquet-rs creates a zstd context per column chunk without
    /// telling it the input size, which dominated encoding files of a few
    /// KiB (perf over `http_ingest`: 24 % of the host's CPU in
    /// `ZSTD_createCCtx` and `memset` at level 3, still 11 % at level 1);
    /// Snappy keeps no context and every Parquet reader supports it; a
    /// dictionary per column of a few dozen rows costs more to build than it
    /// saves (a 27-row part of the standard workload: 64 µs and 3.6 KB with
    /// them, 33 µs and 3.1 KB without). Such files are transient: merges
    /// write the table's layout.
    pub(crate) fn properties_for(&self, rows: usize) -> WriterProperties {
        if rows > SMALL_FILE_ROWS {
            return self.properties();
        }
        let compression = match self.compression {
            Compression::Zstd { .. } => Compression::Snappy,
            other => other,
        };
        writer_properties(compression, self.row_group_rows, &self.sort_order)
            .into_builder()
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .build()
    }

    /// The entry of `record` (rows sorted by the table's order:
    /// [`sorted_parts`]) as a new inline part of `partition`, to be encoded
    /// with the insert's other parts in a segment
    /// ([`crate::inline_part::encode_segment`], which names it for its
    /// place and sets its bytes; a part it leaves out becomes a file with
    /// a path of its own). Unnamed until then.
    pub(crate) fn inline_entry(record: &RecordBatch, partition: &str, created_ms: i64) -> DataFile {
        entry(String::new(), partition, 0, record, created_ms)
    }

    /// Encodes sorted rows as a new file of `partition`.
    fn encode_with(
        &self,
        props: WriterProperties,
        record: RecordBatch,
        partition: &str,
        created_ms: i64,
    ) -> Result<(DataFile, Vec<u8>)> {
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
        segment: None,
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;

    use super::*;
    use crate::builtin::JsonTextFormat;

    /// The `n` values of a batch, in row order.
    fn ns(record: &RecordBatch) -> Vec<i64> {
        let column = record.column_by_name("n").unwrap();
        column.as_primitive::<Int64Type>().values().to_vec()
    }

    /// Parts built at once come back in the parts' order, each holding
    /// exactly its own rows, sorted by the order (nulls first), with equal
    /// keys in their input order — the same rows as sorting each part by
    /// itself.
    #[test]
    fn parts_built_together_are_each_sorted_by_themselves() {
        let rows = [
            r#"{"n": 0, "event": "b", "ts": 5}"#,
            r#"{"n": 1, "event": "a", "ts": 9}"#,
            r#"{"n": 2, "event": "a", "ts": 1}"#,
            r#"{"n": 3, "ts": 7}"#,
            r#"{"n": 4, "event": "b", "ts": 5}"#,
            r#"{"n": 5, "event": "a", "ts": 1}"#,
            r#"{"n": 6, "event": "c", "ts": 0}"#,
        ];
        let batch = JsonTextFormat::default().format(&rows).unwrap();
        let columns = crate::schema::resolve(&batch, &[], None).unwrap();
        let order = ["event".to_owned(), "ts".to_owned()];
        let parts: [&[usize]; 3] = [&[0, 2, 4, 5, 3], &[6], &[1, 0]];
        let sorted = sorted_parts(&batch, &parts, &columns, &order).unwrap();
        assert_eq!(
            sorted.iter().map(ns).collect::<Vec<_>>(),
            [vec![3, 2, 5, 0, 4], vec![6], vec![1, 0]]
        );
        for (part, record) in parts.iter().zip(&sorted) {
            let alone = sort(record_batch(&batch, part, &columns).unwrap(), &order).unwrap();
            assert_eq!(ns(&alone), ns(record));
            assert_eq!(alone.num_columns(), record.num_columns());
        }
        // Rows already in order come back as they are.
        let in_order = sorted_parts(&batch, &[&[3, 2, 5]], &columns, &order).unwrap();
        assert_eq!(ns(&in_order[0]), [3, 2, 5]);
        // Without sort columns, rows keep their order.
        let unsorted = sorted_parts(&batch, &parts, &columns, &[]).unwrap();
        assert_eq!(ns(&unsorted[0]), [0, 2, 4, 5, 3]);
    }

    /// A part is a slice of its task's batch: as an inline part and as a
    /// Parquet file it holds its own rows and statistics, not the batch's.
    #[test]
    fn a_part_slice_encodes_as_its_own_rows() {
        let rows: Vec<String> = (0..40)
            .map(|n| {
                format!(
                    r#"{{"n": {n}, "event": "e{}", "ts": {}}}"#,
                    n % 3,
                    1_000 - n
                )
            })
            .collect();
        let batch = JsonTextFormat::default().format(&rows).unwrap();
        let columns = crate::schema::resolve(&batch, &[], None).unwrap();
        let order = ["event".to_owned(), "ts".to_owned()];
        let (first, middle, last): (Vec<usize>, Vec<usize>, Vec<usize>) =
            ((0..10).collect(), (10..25).collect(), (25..40).collect());
        let parts = sorted_parts(&batch, &[&first, &middle, &last], &columns, &order).unwrap();
        let part = &parts[1];
        let expected = sort(record_batch(&batch, &middle, &columns).unwrap(), &order).unwrap();
        assert_eq!(ns(part), ns(&expected));

        let inline = crate::inline_part::encode(part, &order).unwrap();
        let decoded = crate::inline_part::decode(&inline.into()).unwrap();
        let decoded = arrow::compute::concat_batches(&decoded.schema, &decoded.batches).unwrap();
        assert_eq!(decoded.columns(), expected.columns());

        let file =
            parquet_bytes(part, writer_properties(Compression::Snappy, 1_000, &order)).unwrap();
        let read = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            bytes::Bytes::from(file),
            1_000,
        )
        .unwrap()
        .collect::<std::result::Result<Vec<_>, _>>()
        .unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].columns(), expected.columns());
        assert_eq!(column_stats(part), column_stats(&expected));
        assert_eq!(column_stats(part)["n"].min, Some(StatValue::Int(10)));
        assert_eq!(column_stats(part)["n"].max, Some(StatValue::Int(24)));
    }
}

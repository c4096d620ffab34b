//! The bytes of inline parts (rows kept in a commit instead of a file).
//!
//! Rows are written as an Arrow IPC stream compressed with Snappy's raw
//! format, behind the magic [`IPC_SNAPPY`]; the schema's metadata names the
//! sort order the rows are in, as a file's Parquet metadata does. Since
//! commit format 5 an insert encodes its parts together as segments
//! ([`Segment`]: the parts' rows one after another, each part a row range
//! of it) and [`PartReader`] decodes each segment once for all its parts;
//! parts of older commits are each their own stream (format 3) or Parquet
//! (format 2, starting with `PAR1`), and are still read. Measured on
//! 27-row parts of the standard workload (the size of a group commit's
//! part per daily partition): 8 µs to encode and 6 µs to decode, 2.4 KB,
//! against 36 µs, 37 µs and 3.1 KB for the smallest Parquet (Snappy, no
//! dictionary); Arrow's own IPC compression frames each buffer separately
//! (LZ4: 85 µs, 3.4 KB), hence one Snappy block. A segment of 30 such
//! parts is one stream of ~800 rows: see docs/ARCHITECTURE.md, "One
//! segment per insert".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use bytes::Bytes;
use icedb_meta::{DataFile, SegmentRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Result, TableError};
use crate::write::SORT_ORDER_KEY;

/// The first bytes of a part in IceDB's inline format.
const IPC_SNAPPY: &[u8; 8] = b"ICEIPCS1";

/// A decoded part: its schema, the sort order it says its rows are in, and
/// its rows.
pub(crate) struct Decoded {
    pub schema: SchemaRef,
    pub sort_order: Option<String>,
    pub batches: Vec<RecordBatch>,
}

/// Encodes `record` (already sorted by `sort_order`) as an inline part.
pub(crate) fn encode(record: &RecordBatch, sort_order: &[String]) -> Result<Vec<u8>> {
    let mut metadata = HashMap::new();
    if !sort_order.is_empty() {
        metadata.insert(SORT_ORDER_KEY.to_owned(), sort_order.join(","));
    }
    let schema = Arc::new(Schema::new_with_metadata(
        record.schema().fields().clone(),
        metadata,
    ));
    let record = record.clone().with_schema(schema.clone())?;
    // Room for the whole stream: growing it copied it over and over. A
    // segment is a batch of its own (concatenated), so its buffers are
    // its rows; a slice of a larger batch would be over-counted.
    let mut stream = Vec::with_capacity(1024 + record.get_array_memory_size());
    let mut writer = StreamWriter::try_new(&mut stream, &schema)?;
    writer.write(&record)?;
    writer.finish()?;
    drop(writer);
    let mut out = IPC_SNAPPY.to_vec();
    out.resize(
        IPC_SNAPPY.len() + snap::raw::max_compress_len(stream.len()),
        0,
    );
    let written = snap::raw::Encoder::new()
        .compress(&stream, &mut out[IPC_SNAPPY.len()..])
        .map_err(|e| corrupt(format!("compressing an inline part: {e}")))?;
    out.truncate(IPC_SNAPPY.len() + written);
    Ok(out)
}

/// Decodes a part in either format.
pub(crate) fn decode(bytes: &Bytes) -> Result<Decoded> {
    if let Some(body) = bytes.strip_prefix(IPC_SNAPPY.as_slice()) {
        let stream = snap::raw::Decoder::new()
            .decompress_vec(body)
            .map_err(|e| corrupt(format!("an inline part does not decompress: {e}")))?;
        let reader = StreamReader::try_new(std::io::Cursor::new(stream), None)?;
        let schema = reader.schema();
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        return Ok(Decoded {
            sort_order: schema.metadata().get(SORT_ORDER_KEY).cloned(),
            schema,
            batches,
        });
    }
    // Written before commit format 3: Parquet.
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())?;
    let sort_order = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .find(|kv| kv.key == SORT_ORDER_KEY)
        .and_then(|kv| kv.value.clone());
    let schema = builder.schema().clone();
    let batches = builder
        .build()?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Decoded {
        schema,
        sort_order,
        batches,
    })
}

/// The rows of an inline part as a snapshot lists it (with its bytes:
/// [`icedb_meta::Snapshot::load_inline`]), for tools and tests that read
/// parts themselves.
pub fn inline_rows(part: &DataFile) -> Result<Vec<RecordBatch>> {
    PartReader::default()
        .read(part)
        .map(|decoded| decoded.batches)
}

/// An insert's inline parts encoded together: one stream, each part a row
/// range of it ([`icedb_meta::InlineSegment`]).
pub(crate) struct Segment {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Each part's entry (naming the segment; its bytes its share of the
    /// segment's) and rows.
    pub parts: Vec<NewPart>,
}

/// A new inline part's entry and its rows.
pub(crate) type NewPart = (DataFile, RecordBatch);

/// Encodes `parts` (a partition's new entry without statistics' bytes,
/// and its rows sorted by `sort_order`; one schema for all) as one
/// segment. A part whose share of the segment's bytes (by rows) would
/// pass `max_part_bytes` is left out and returned with its rows, to be
/// written as a file; `None` when no part is left.
pub(crate) fn encode_segment(
    mut parts: Vec<NewPart>,
    sort_order: &[String],
    max_part_bytes: u64,
) -> Result<(Option<Segment>, Vec<NewPart>)> {
    let mut too_big = Vec::new();
    while !parts.is_empty() {
        let schema = parts[0].1.schema();
        let record = arrow::compute::concat_batches(&schema, parts.iter().map(|(_, r)| r))?;
        let bytes = encode(&record, sort_order)?;
        let shares = shares(bytes.len() as u64, parts.iter().map(|(_, r)| r.num_rows()));
        if shares.iter().any(|&share| share > max_part_bytes) {
            let (fit, over): (Vec<_>, Vec<_>) = parts
                .into_iter()
                .zip(shares)
                .partition(|(_, share)| *share <= max_part_bytes);
            too_big.extend(over.into_iter().map(|(part, _)| part));
            parts = fit.into_iter().map(|(part, _)| part).collect();
            continue;
        }
        let name = uuid::Uuid::now_v7().to_string();
        let mut offset = 0;
        for ((file, record), share) in parts.iter_mut().zip(shares) {
            let at = SegmentRef {
                segment: name.clone(),
                offset,
            };
            file.bytes = share;
            // Named for its place: the replica keeps no reference per part.
            file.path = at.part_path(&file.partition);
            file.segment = Some(at);
            offset += record.num_rows() as u64;
        }
        return Ok((Some(Segment { name, bytes, parts }), too_big));
    }
    Ok((None, too_big))
}

/// `total` bytes split over parts of `rows` rows in proportion (the last
/// takes the rounding), each at least 1.
fn shares(total: u64, rows: impl ExactSizeIterator<Item = usize> + Clone) -> Vec<u64> {
    let all: u64 = rows.clone().map(|r| r as u64).sum::<u64>().max(1);
    let count = rows.len();
    let mut given = 0;
    rows.enumerate()
        .map(|(at, r)| {
            let share = if at + 1 == count {
                total.saturating_sub(given)
            } else {
                (total as u128 * r as u128 / all as u128) as u64
            };
            given += share;
            share.max(1)
        })
        .collect()
}

/// Decodes inline parts, each segment once however many of its parts are
/// read (a flush's jobs and a query read every part of a segment); shared
/// by the jobs of one merge round.
#[derive(Default)]
pub(crate) struct PartReader {
    /// Decoded segments by name, each as one batch.
    segments: Mutex<HashMap<String, Arc<(Decoded, RecordBatch)>>>,
}

impl PartReader {
    /// The rows of inline part `part` (with its bytes loaded).
    pub(crate) fn read(&self, part: &DataFile) -> Result<Decoded> {
        let Some(bytes) = &part.inline else {
            return Err(corrupt(format!("inline part {} has no bytes", part.path)));
        };
        let Some(at) = &part.segment else {
            return decode(&bytes.0);
        };
        let segment = {
            let mut segments = self.segments.lock().expect("not poisoned");
            match segments.get(&at.segment) {
                Some(segment) => segment.clone(),
                None => {
                    let mut decoded = decode(&bytes.0)?;
                    // One batch as written (concatenating one is a slice).
                    let whole = arrow::compute::concat_batches(&decoded.schema, &decoded.batches)?;
                    decoded.batches.clear();
                    let segment = Arc::new((decoded, whole));
                    segments.insert(at.segment.clone(), segment.clone());
                    segment
                }
            }
        };
        let (decoded, whole) = segment.as_ref();
        let (offset, rows) = (at.offset as usize, part.rows as usize);
        if offset
            .checked_add(rows)
            .is_none_or(|end| end > whole.num_rows())
        {
            return Err(corrupt(format!(
                "inline part {} names rows {offset}..{} of segment {}, which has {}",
                part.path,
                offset.saturating_add(rows),
                at.segment,
                whole.num_rows()
            )));
        }
        Ok(Decoded {
            schema: decoded.schema.clone(),
            sort_order: decoded.sort_order.clone(),
            batches: vec![whole.slice(offset, rows)],
        })
    }
}

fn corrupt(reason: String) -> TableError {
    TableError::InlinePart(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    fn sample() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("event", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None, Some("b")])),
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_part_round_trips_with_its_sort_order() {
        let bytes = Bytes::from(encode(&sample(), &["event".to_owned(), "n".to_owned()]).unwrap());
        assert!(bytes.starts_with(IPC_SNAPPY));
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.sort_order.as_deref(), Some("event,n"));
        assert_eq!(decoded.batches.len(), 1);
        assert_eq!(decoded.batches[0].columns(), sample().columns());
    }

    #[test]
    fn parquet_parts_of_older_commits_still_decode() {
        let props = crate::write::writer_properties(
            crate::Compression::Snappy,
            1024,
            &["event".to_owned()],
        );
        let bytes = Bytes::from(crate::write::parquet_bytes(&sample(), props).unwrap());
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.sort_order.as_deref(), Some("event"));
        assert_eq!(decoded.batches[0].columns(), sample().columns());
    }

    fn numbers(range: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(range))]).unwrap()
    }

    fn new_part(partition: &str, record: RecordBatch) -> NewPart {
        let entry = crate::write::FileLayout::inline_entry(&record, partition, 0);
        (entry, record)
    }

    /// The segment as a snapshot hands it out: its bytes on every part.
    fn loaded(segment: &Segment) -> Vec<DataFile> {
        segment
            .parts
            .iter()
            .map(|(file, _)| DataFile {
                inline: Some(icedb_meta::InlineData(Bytes::from(segment.bytes.clone()))),
                ..file.clone()
            })
            .collect()
    }

    #[test]
    fn a_segment_gives_each_part_its_own_rows() {
        let records = [numbers(0..3), numbers(10..11), numbers(20..27)];
        let parts = ["p=a", "p=b", "p=c"]
            .iter()
            .zip(&records)
            .map(|(p, r)| new_part(p, r.clone()))
            .collect();
        let (segment, too_big) = encode_segment(parts, &["n".to_owned()], u64::MAX).unwrap();
        assert!(too_big.is_empty());
        let segment = segment.unwrap();
        let shares: u64 = segment.parts.iter().map(|(f, _)| f.bytes).sum();
        assert_eq!(shares, segment.bytes.len() as u64);
        let offsets: Vec<u64> = segment
            .parts
            .iter()
            .map(|(f, _)| f.segment.as_ref().unwrap().offset)
            .collect();
        assert_eq!(offsets, [0, 3, 4]);
        let reader = PartReader::default();
        for (file, record) in loaded(&segment).iter().zip(&records) {
            let decoded = reader.read(file).unwrap();
            assert_eq!(decoded.sort_order.as_deref(), Some("n"));
            assert_eq!(decoded.batches.len(), 1);
            assert_eq!(decoded.batches[0].columns(), record.columns());
            assert_eq!(inline_rows(file).unwrap()[0].columns(), record.columns());
        }
        assert_eq!(reader.segments.lock().unwrap().len(), 1, "decoded once");
    }

    #[test]
    fn parts_over_the_byte_bound_are_left_out_of_the_segment() {
        let parts = vec![
            new_part("p=a", numbers(0..2)),
            new_part("p=b", numbers(0..2_000)),
            new_part("p=c", numbers(5..7)),
        ];
        let (segment, too_big) = encode_segment(parts, &[], 400).unwrap();
        assert_eq!(too_big.len(), 1);
        assert_eq!(too_big[0].0.partition, "p=b");
        assert_eq!(too_big[0].1.num_rows(), 2_000);
        let segment = segment.unwrap();
        let kept: Vec<&str> = segment
            .parts
            .iter()
            .map(|(f, _)| f.partition.as_str())
            .collect();
        assert_eq!(kept, ["p=a", "p=c"]);
        let reader = PartReader::default();
        let second = reader.read(&loaded(&segment)[1]).unwrap();
        assert_eq!(second.batches[0].columns(), numbers(5..7).columns());

        let (none, all) =
            encode_segment(vec![new_part("p=b", numbers(0..2_000))], &[], 400).unwrap();
        assert!(none.is_none());
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn a_part_naming_rows_past_its_segment_is_an_error() {
        let (segment, _) =
            encode_segment(vec![new_part("p=a", numbers(0..3))], &[], u64::MAX).unwrap();
        let mut file = loaded(&segment.unwrap()).remove(0);
        file.rows = 4;
        let error = PartReader::default().read(&file).err().unwrap();
        assert!(error.to_string().contains("rows 0..4"), "{error}");
        file.inline = None;
        assert!(PartReader::default().read(&file).is_err());
    }

    #[test]
    fn damaged_parts_are_an_error_not_rows() {
        let mut bytes = encode(&sample(), &[]).unwrap();
        bytes.truncate(bytes.len() / 2);
        assert!(decode(&Bytes::from(bytes)).is_err());
        assert!(decode(&Bytes::from_static(b"ICEIPCS1garbage")).is_err());
    }
}

//! The partition stage: built-in time and field partitioning, or a plugin.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use chrono::{DateTime, Datelike, Timelike};
use icedb_plugin::{PartitionPlugin, validate_partition_path};

use crate::config::{Granularity, PartitionSpec};
use crate::error::{Result, TableError};
use crate::{Batch, Value};

pub(crate) enum Partitioner {
    Time {
        field: String,
        granularity: Granularity,
        ingest_time_if_missing: bool,
    },
    Field {
        field: String,
    },
    Plugin(PartitionPlugin),
}

impl Partitioner {
    pub(crate) fn from_spec(spec: &PartitionSpec, host: &icedb_plugin::PluginHost) -> Result<Self> {
        Ok(match spec {
            PartitionSpec::Time {
                field,
                granularity,
                ingest_time_if_missing,
            } => Partitioner::Time {
                field: field.clone(),
                granularity: *granularity,
                ingest_time_if_missing: *ingest_time_if_missing,
            },
            PartitionSpec::Field { field } => Partitioner::Field {
                field: field.clone(),
            },
            PartitionSpec::Plugin { path, settings } => {
                Partitioner::Plugin(host.load_partition(path, settings)?)
            }
        })
    }

    /// The column that only routes rows and is not stored, if any.
    pub(crate) fn routing_column(&self) -> Option<&str> {
        match self {
            Partitioner::Field { field } => Some(field),
            _ => None,
        }
    }

    /// One validated partition path per row.
    pub(crate) async fn partition(&self, batch: &Batch, now_micros: i64) -> Result<Vec<String>> {
        let rows = batch.row_count as usize;
        let paths = match self {
            Partitioner::Plugin(plugin) => plugin.partition(plugin.project(batch)).await?,
            Partitioner::Time {
                field,
                granularity,
                ingest_time_if_missing,
            } => {
                let column = batch.column(field);
                let mut paths = Vec::with_capacity(rows);
                // Each bucket's path, made once: a group commit's rows come
                // in no time order (the standard workload's 800 rows span
                // 30 days).
                let mut made: HashMap<i64, String> = HashMap::new();
                for row in 0..rows {
                    let value = column.map_or(&Value::Null, |c| &c.values[row]);
                    let micros = match time_micros(value) {
                        Ok(Some(micros)) => micros,
                        Ok(None) if *ingest_time_if_missing => now_micros,
                        Ok(None) => {
                            return Err(TableError::Partition {
                                row,
                                line: None,
                                reason: format!("field `{field}` is missing"),
                            });
                        }
                        Err(reason) => {
                            return Err(TableError::Partition {
                                row,
                                line: None,
                                reason: format!("field `{field}`: {reason}"),
                            });
                        }
                    };
                    let bucket = micros.div_euclid(granularity.micros());
                    let path = match made.entry(bucket) {
                        Entry::Occupied(path) => path.into_mut(),
                        Entry::Vacant(slot) => {
                            slot.insert(time_path(micros, *granularity).ok_or_else(|| {
                                TableError::Partition {
                                    row,
                                    line: None,
                                    reason: format!("field `{field}`: time out of range"),
                                }
                            })?)
                        }
                    };
                    paths.push(path.clone());
                }
                paths
            }
            Partitioner::Field { field } => {
                let column = batch.column(field).ok_or_else(|| TableError::Partition {
                    row: 0,
                    line: None,
                    reason: format!("no row has the field `{field}`"),
                })?;
                let mut paths = Vec::with_capacity(rows);
                for (row, value) in column.values.iter().enumerate() {
                    match value {
                        Value::Text(path) => {
                            validate_partition_path(path).map_err(|e| TableError::Partition {
                                row,
                                line: None,
                                reason: e.to_string(),
                            })?;
                            paths.push(path.clone());
                        }
                        _ => {
                            return Err(TableError::Partition {
                                row,
                                line: None,
                                reason: format!(
                                    "field `{field}` must be text naming the partition"
                                ),
                            });
                        }
                    }
                }
                paths
            }
        };
        Ok(paths)
    }
}

impl Granularity {
    fn micros(self) -> i64 {
        match self {
            Granularity::Hour => 3_600_000_000,
            // Months differ in length; a day bucket only caches the path.
            Granularity::Day | Granularity::Month => 86_400_000_000,
        }
    }
}

/// Microseconds of a time value: a timestamp, epoch ms (µs from 10^14), a
/// float of ms, or RFC 3339 text. `None` for null.
fn time_micros(value: &Value) -> Result<Option<i64>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Timestamp(us) => Ok(Some(*us)),
        Value::Int(n) if n.unsigned_abs() >= 100_000_000_000_000 => Ok(Some(*n)),
        Value::Int(n) => n
            .checked_mul(1_000)
            .map(Some)
            .ok_or_else(|| format!("{n} is out of range")),
        Value::Float(f) if f.is_finite() => Ok(Some((f * 1_000.0) as i64)),
        Value::Text(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| Some(t.timestamp_micros()))
            .map_err(|e| format!("`{text}` is not an RFC 3339 time ({e})")),
        other => Err(format!("{} is not a time", crate::rows::type_name(other))),
    }
}

fn time_path(micros: i64, granularity: Granularity) -> Option<String> {
    let t = DateTime::from_timestamp_micros(micros)?;
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    Some(match granularity {
        Granularity::Month => format!("y={:04}/m={:02}", t.year(), t.month()),
        Granularity::Day => format!("y={:04}/m={:02}/d={:02}", t.year(), t.month(), t.day()),
        Granularity::Hour => format!(
            "y={:04}/m={:02}/d={:02}/h={:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_paths() {
        let t = 1_790_899_199_999_999; // 2026-10-01T23:59:59.999999Z
        assert_eq!(time_path(t, Granularity::Day).unwrap(), "y=2026/m=10/d=01");
        assert_eq!(
            time_path(t, Granularity::Hour).unwrap(),
            "y=2026/m=10/d=01/h=23"
        );
        assert_eq!(time_path(t, Granularity::Month).unwrap(), "y=2026/m=10");
        assert_eq!(
            time_micros(&Value::Int(1_790_812_800_000)).unwrap(),
            Some(1_790_812_800_000_000)
        );
        assert_eq!(
            time_micros(&Value::Int(1_790_812_800_000_000)).unwrap(),
            Some(1_790_812_800_000_000)
        );
        assert!(time_micros(&Value::Boolean(true)).is_err());
    }

    #[tokio::test]
    async fn rows_in_no_time_order_each_get_their_own_path() {
        let day = 86_400_000_i64; // ms
        let start = 1_790_812_800_000_i64; // 2026-10-01T00:00:00Z
        // Days and hours interleaved, revisited, and a month boundary.
        let ms = [
            start,
            start + 5 * day + 3_600_000,
            start,
            start - 1,
            start + 5 * day,
            start + 31 * day,
            start + 5 * day + 3_600_000,
        ];
        let batch = Batch {
            row_count: ms.len() as u32,
            columns: vec![crate::Column {
                name: "ts".into(),
                values: ms.iter().map(|&t| Value::Int(t)).collect(),
            }],
        };
        for granularity in [Granularity::Hour, Granularity::Day, Granularity::Month] {
            let partitioner = Partitioner::Time {
                field: "ts".into(),
                granularity,
                ingest_time_if_missing: false,
            };
            let paths = partitioner.partition(&batch, 0).await.unwrap();
            let expected: Vec<String> = ms
                .iter()
                .map(|&t| time_path(t * 1_000, granularity).unwrap())
                .collect();
            assert_eq!(paths, expected, "{granularity:?}");
        }
        let days = Partitioner::Time {
            field: "ts".into(),
            granularity: Granularity::Day,
            ingest_time_if_missing: false,
        };
        assert_eq!(
            days.partition(&batch, 0).await.unwrap()[..4],
            [
                "y=2026/m=10/d=01",
                "y=2026/m=10/d=06",
                "y=2026/m=10/d=01",
                "y=2026/m=09/d=30"
            ]
        );
        // A time out of range is refused at its row, after valid rows.
        let mut out_of_range = batch.clone();
        out_of_range.columns[0].values[3] = Value::Int(i64::MAX); // µs: year 294 247
        match days.partition(&out_of_range, 0).await {
            Err(TableError::Partition { row, reason, .. }) => {
                assert_eq!(row, 3);
                assert!(reason.contains("out of range"), "{reason}");
            }
            other => panic!("expected a partition error, got {other:?}"),
        }
    }
}

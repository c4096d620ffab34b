//! Delta log actions as IceDB writes them (PROTOCOL.md: `protocol`,
//! `metaData`, `add`, `remove`, `commitInfo`), and the mapping of IceDB's
//! schema, Hive partitions and file statistics onto them.

use std::collections::BTreeMap;

use icedb_meta::{ColumnDef, ColumnStats, ColumnType, DataFile, StatValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::error::{DeltaError, Result};
use crate::export::PartitionKey;

/// Reader 1 / writer 2: plain Parquet, no deletion vectors, no column
/// mapping — what every Delta reader reads.
pub(crate) const MIN_READER_VERSION: i32 = 1;
pub(crate) const MIN_WRITER_VERSION: i32 = 2;

/// One line of a Delta commit file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Action {
    Protocol(Protocol),
    MetaData(Metadata),
    Add(Add),
    Remove(Remove),
    CommitInfo(CommitInfo),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Protocol {
    pub min_reader_version: i32,
    pub min_writer_version: i32,
}

impl Protocol {
    pub(crate) fn current() -> Self {
        Protocol {
            min_reader_version: MIN_READER_VERSION,
            min_writer_version: MIN_WRITER_VERSION,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Metadata {
    /// IceDB's table identity (the id of its first commit).
    pub id: String,
    pub name: Option<String>,
    pub format: Format,
    pub schema_string: String,
    pub partition_columns: Vec<String>,
    pub configuration: BTreeMap<String, String>,
    pub created_time: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Format {
    pub provider: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Add {
    /// Relative to the table root, URI-encoded.
    pub path: String,
    pub partition_values: BTreeMap<String, Option<String>>,
    pub size: i64,
    pub modification_time: i64,
    pub data_change: bool,
    /// JSON: numRecords, minValues, maxValues, nullCount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Remove {
    pub path: String,
    pub deletion_timestamp: i64,
    pub data_change: bool,
    pub extended_file_metadata: bool,
    pub partition_values: BTreeMap<String, Option<String>>,
}

/// Provenance, and the IceDB version this Delta version says the same as
/// (how an exporter finds where the Delta log is, and how a reader maps a
/// Delta version to IceDB's).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommitInfo {
    pub timestamp: i64,
    pub operation: String,
    pub engine_info: String,
    pub icedb_version: u64,
    pub icedb_commit_id: String,
    /// The Delta version whose `metaData` is in force: an exporter that
    /// starts cold reads it and the newest commit, nothing in between.
    pub icedb_metadata_version: u64,
}

/// Characters a Delta `path` (a relative URI) keeps as they are.
const PATH_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'=')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A file's object key as a Delta `path`: relative, URI-encoded.
pub(crate) fn delta_path(key: &str) -> String {
    utf8_percent_encode(key, PATH_KEEP).to_string()
}

/// `(key, value)` pairs of a Hive partition path (`y=2026/m=11`), values
/// unescaped (Hive escapes as `%XX`).
pub(crate) fn hive_pairs(partition: &str) -> Vec<(String, String)> {
    partition
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
            (key.to_owned(), value)
        })
        .collect()
}

/// A file's partition values as Delta states them: integers canonical
/// (`05` → `5`), empty or Hive's default partition as null.
pub(crate) fn partition_values(
    file_partition: &str,
    keys: &[PartitionKey],
) -> Result<BTreeMap<String, Option<String>>> {
    let pairs = hive_pairs(file_partition);
    let found: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
    let expected: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
    if found != expected {
        return Err(DeltaError::PartitionKeys {
            partition: file_partition.to_owned(),
            expected,
            found,
        });
    }
    Ok(pairs
        .into_iter()
        .zip(keys)
        .map(|((name, value), key)| {
            let value = if value.is_empty() || value == "__HIVE_DEFAULT_PARTITION__" {
                None
            } else if key.integer {
                Some(
                    value
                        .parse::<i64>()
                        .map_or(value, |number| number.to_string()),
                )
            } else {
                Some(value)
            };
            (name, value)
        })
        .collect())
}

/// Delta's schema JSON: IceDB's columns, then the partition columns.
pub(crate) fn schema_string(columns: &[ColumnDef], keys: &[PartitionKey]) -> Result<String> {
    let mut fields = Vec::new();
    for column in columns {
        check_name(&column.name)?;
        fields.push(field(&column.name, delta_type(column.column_type)));
    }
    for key in keys {
        if columns.iter().any(|c| c.name == key.name) {
            continue;
        }
        check_name(&key.name)?;
        fields.push(field(
            &key.name,
            if key.integer { "long" } else { "string" },
        ));
    }
    Ok(serde_json::json!({"type": "struct", "fields": fields}).to_string())
}

fn field(name: &str, data_type: &str) -> serde_json::Value {
    serde_json::json!({"name": name, "type": data_type, "nullable": true, "metadata": {}})
}

fn delta_type(column_type: ColumnType) -> &'static str {
    match column_type {
        ColumnType::Boolean => "boolean",
        ColumnType::Int64 => "long",
        ColumnType::Float64 => "double",
        ColumnType::String => "string",
        // Microseconds, UTC-adjusted: Delta's `timestamp`.
        ColumnType::Timestamp => "timestamp",
    }
}

/// Without column mapping Delta forbids these in column names.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains([' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '=']) {
        return Err(DeltaError::ColumnName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The `stats` JSON of a file: exact counts, and min/max where Delta
/// readers can use them. Timestamps are millisecond strings, the minimum
/// rounded down and the maximum up, so a reader's skipping never drops a
/// row; non-finite floats and booleans get no bounds.
pub(crate) fn stats(file: &DataFile, columns: &[ColumnDef]) -> String {
    let mut min = serde_json::Map::new();
    let mut max = serde_json::Map::new();
    let mut nulls = serde_json::Map::new();
    for column in columns {
        let Some(stats) = file.columns.get(&column.name) else {
            continue;
        };
        nulls.insert(column.name.clone(), stats.null_count.into());
        let ColumnStats {
            min: low,
            max: high,
            ..
        } = stats;
        if let (Some(low), Some(high)) = (low, high)
            && let (Some(low), Some(high)) = (
                bound(low, column.column_type, false),
                bound(high, column.column_type, true),
            )
        {
            min.insert(column.name.clone(), low);
            max.insert(column.name.clone(), high);
        }
    }
    serde_json::json!({
        "numRecords": file.rows,
        "minValues": min,
        "maxValues": max,
        "nullCount": nulls,
    })
    .to_string()
}

fn bound(value: &StatValue, column_type: ColumnType, upper: bool) -> Option<serde_json::Value> {
    match (column_type, value) {
        (ColumnType::Timestamp, StatValue::Int(micros)) => {
            let millis = if upper {
                micros.div_euclid(1_000) + i64::from(micros.rem_euclid(1_000) != 0)
            } else {
                micros.div_euclid(1_000)
            };
            let at = chrono::DateTime::from_timestamp_millis(millis)?;
            Some(at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string().into())
        }
        (ColumnType::Int64, StatValue::Int(n)) => Some((*n).into()),
        (ColumnType::Float64, StatValue::Int(n)) => Some((*n as f64).into()),
        (ColumnType::Float64, StatValue::Float(x)) if x.is_finite() => Some((*x).into()),
        (ColumnType::String, StatValue::Text(s)) => Some(s.clone().into()),
        _ => None,
    }
}

/// A Delta commit file's bytes: one action per line.
pub(crate) fn commit_bytes(actions: &[Action]) -> Vec<u8> {
    let mut out = Vec::new();
    for action in actions {
        serde_json::to_writer(&mut out, action).expect("actions serialize");
        out.push(b'\n');
    }
    out
}

/// The `commitInfo` and `metaData` of a commit file IceDB wrote (other
/// actions are skipped).
pub(crate) fn read_commit(path: &str, bytes: &[u8]) -> Result<(CommitInfo, Option<Metadata>)> {
    let corrupt = |reason: String| DeltaError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut info = None;
    let mut metadata = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| corrupt(e.to_string()))?;
        if let Some(v) = value.get("commitInfo") {
            info = Some(
                serde_json::from_value::<CommitInfo>(v.clone())
                    .map_err(|e| corrupt(format!("commitInfo: {e}")))?,
            );
        } else if let Some(v) = value.get("metaData") {
            metadata = Some(
                serde_json::from_value::<Metadata>(v.clone())
                    .map_err(|e| corrupt(format!("metaData: {e}")))?,
            );
        }
    }
    let info = info.ok_or_else(|| corrupt("no commitInfo with an IceDB version".to_owned()))?;
    Ok((info, metadata))
}

/// IceDB's columns and partition keys back from a `metaData` IceDB wrote.
pub(crate) fn columns_of(
    metadata: &Metadata,
    path: &str,
) -> Result<(Vec<ColumnDef>, Vec<PartitionKey>)> {
    let corrupt = |reason: String| DeltaError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let schema: serde_json::Value =
        serde_json::from_str(&metadata.schema_string).map_err(|e| corrupt(e.to_string()))?;
    let fields = schema["fields"]
        .as_array()
        .ok_or_else(|| corrupt("schemaString has no fields".to_owned()))?;
    let mut columns = Vec::new();
    let mut keys = Vec::new();
    for field in fields {
        let name = field["name"].as_str().unwrap_or_default().to_owned();
        let data_type = field["type"].as_str().unwrap_or_default();
        if metadata.partition_columns.contains(&name) {
            keys.push(PartitionKey {
                name,
                integer: data_type == "long",
            });
            continue;
        }
        let column_type = match data_type {
            "boolean" => ColumnType::Boolean,
            "long" => ColumnType::Int64,
            "double" => ColumnType::Float64,
            "string" => ColumnType::String,
            "timestamp" => ColumnType::Timestamp,
            other => return Err(corrupt(format!("column {name} has type {other}"))),
        };
        columns.push(ColumnDef { name, column_type });
    }
    // Partition columns in the order metaData lists them.
    keys.sort_by_key(|k| metadata.partition_columns.iter().position(|c| *c == k.name));
    Ok((columns, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_partition_values_follow_the_protocol() {
        assert_eq!(
            delta_path("data/y=2026/m=01/a b%.parquet"),
            "data/y=2026/m=01/a%20b%25.parquet"
        );
        let keys = [
            PartitionKey {
                name: "y".into(),
                integer: true,
            },
            PartitionKey {
                name: "kind".into(),
                integer: false,
            },
        ];
        let values = partition_values("y=2026/kind=a%2Fb", &keys).unwrap();
        assert_eq!(values["y"].as_deref(), Some("2026"));
        assert_eq!(values["kind"].as_deref(), Some("a/b"));
        assert_eq!(
            partition_values("y=0042/kind=", &keys).unwrap()["y"].as_deref(),
            Some("42")
        );
        assert!(partition_values("y=2026", &keys).is_err());
    }

    #[test]
    fn timestamp_bounds_never_narrow_the_range() {
        let low = bound(&StatValue::Int(1_500), ColumnType::Timestamp, false).unwrap();
        let high = bound(&StatValue::Int(1_500), ColumnType::Timestamp, true).unwrap();
        assert_eq!(low, "1970-01-01T00:00:00.001Z");
        assert_eq!(high, "1970-01-01T00:00:00.002Z");
        assert!(bound(&StatValue::Float(f64::NAN), ColumnType::Float64, true).is_none());
    }

    #[test]
    fn schema_round_trips_and_rejects_names_delta_cannot_hold() {
        let columns = vec![
            ColumnDef {
                name: "id".into(),
                column_type: ColumnType::String,
            },
            ColumnDef {
                name: "ts".into(),
                column_type: ColumnType::Timestamp,
            },
        ];
        let keys = vec![PartitionKey {
            name: "d".into(),
            integer: true,
        }];
        let metadata = Metadata {
            id: "t".into(),
            name: None,
            format: Format {
                provider: "parquet".into(),
                options: BTreeMap::new(),
            },
            schema_string: schema_string(&columns, &keys).unwrap(),
            partition_columns: vec!["d".into()],
            configuration: BTreeMap::new(),
            created_time: None,
        };
        assert_eq!(columns_of(&metadata, "x").unwrap(), (columns, keys));
        let bad = [ColumnDef {
            name: "a b".into(),
            column_type: ColumnType::String,
        }];
        assert!(schema_string(&bad, &[]).is_err());
    }
}

//! Delta checkpoints: the table's state at a version as one Parquet file
//! (`protocol`, `metaData`, one `add` per live file), so readers replay at
//! most the commits since it. The rows are the same actions the commit
//! files hold, decoded into the checkpoint schema by arrow's JSON reader.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema};
use parquet::arrow::ArrowWriter;

use crate::actions::{Action, commit_bytes};
use crate::error::{DeltaError, Result};

fn string_map() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "key_value",
            DataType::Struct(Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ])),
            false,
        )),
        false,
    )
}

fn checkpoint_schema() -> Schema {
    let strukt = |fields: Vec<Field>| DataType::Struct(Fields::from(fields));
    Schema::new(vec![
        Field::new(
            "protocol",
            strukt(vec![
                Field::new("minReaderVersion", DataType::Int32, true),
                Field::new("minWriterVersion", DataType::Int32, true),
            ]),
            true,
        ),
        Field::new(
            "metaData",
            strukt(vec![
                Field::new("id", DataType::Utf8, true),
                Field::new("name", DataType::Utf8, true),
                Field::new(
                    "format",
                    strukt(vec![
                        Field::new("provider", DataType::Utf8, true),
                        Field::new("options", string_map(), true),
                    ]),
                    true,
                ),
                Field::new("schemaString", DataType::Utf8, true),
                Field::new(
                    "partitionColumns",
                    DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
                    true,
                ),
                Field::new("configuration", string_map(), true),
                Field::new("createdTime", DataType::Int64, true),
            ]),
            true,
        ),
        Field::new(
            "add",
            strukt(vec![
                Field::new("path", DataType::Utf8, true),
                Field::new("partitionValues", string_map(), true),
                Field::new("size", DataType::Int64, true),
                Field::new("modificationTime", DataType::Int64, true),
                Field::new("dataChange", DataType::Boolean, true),
                Field::new("stats", DataType::Utf8, true),
            ]),
            true,
        ),
        Field::new(
            "remove",
            strukt(vec![
                Field::new("path", DataType::Utf8, true),
                Field::new("deletionTimestamp", DataType::Int64, true),
                Field::new("dataChange", DataType::Boolean, true),
            ]),
            true,
        ),
    ])
}

/// The checkpoint file of a state (`protocol`, `metaData`, `add`s; adds
/// carry `dataChange: false`, as checkpoints do). Blocking: CPU only.
pub(crate) fn checkpoint_bytes(actions: &[Action]) -> Result<Vec<u8>> {
    let fail = |e: &dyn std::fmt::Display| DeltaError::Checkpoint(e.to_string());
    let schema = Arc::new(checkpoint_schema());
    let lines = commit_bytes(actions);
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(8_192)
        .build_decoder()
        .map_err(|e| fail(&e))?;
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, None).map_err(|e| fail(&e))?;
    let mut rest: &[u8] = &lines;
    while !rest.is_empty() {
        let used = decoder.decode(rest).map_err(|e| fail(&e))?;
        rest = &rest[used..];
        if let Some(batch) = decoder.flush().map_err(|e| fail(&e))? {
            writer.write(&batch).map_err(|e| fail(&e))?;
        }
        if used == 0 {
            break;
        }
    }
    if let Some(batch) = decoder.flush().map_err(|e| fail(&e))? {
        writer.write(&batch).map_err(|e| fail(&e))?;
    }
    writer.into_inner().map_err(|e| fail(&e))
}

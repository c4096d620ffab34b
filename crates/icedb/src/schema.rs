//! Schema inference per batch and evolution against the table (DESIGN §5):
//! new columns are added as nullable, int64 meeting float64 widens to
//! float64, any other clash fails the insert before anything is uploaded.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use icedb_meta::{ColumnDef, ColumnType};

use crate::error::{Result, TableError};
use crate::{Batch, Value};

fn value_type(value: &Value) -> Option<ColumnType> {
    match value {
        Value::Null => None,
        Value::Boolean(_) => Some(ColumnType::Boolean),
        Value::Int(_) => Some(ColumnType::Int64),
        Value::Float(_) => Some(ColumnType::Float64),
        Value::Text(_) => Some(ColumnType::String),
        Value::Timestamp(_) => Some(ColumnType::Timestamp),
    }
}

/// The columns a batch writes, each with the type it will have in its file
/// (the table's type where the table has the column). All-null columns the
/// table does not know are left out: their type is unknown.
pub(crate) fn resolve(
    batch: &Batch,
    table: &[ColumnDef],
    skip: Option<&str>,
) -> Result<Vec<ColumnDef>> {
    let table: BTreeMap<&str, ColumnType> = table
        .iter()
        .map(|c| (c.name.as_str(), c.column_type))
        .collect();
    // DuckDB folds the case of column names: two names differing only in
    // case would read as one column.
    let mut folded: BTreeMap<String, &str> = table
        .keys()
        .map(|name| (name.to_lowercase(), *name))
        .collect();
    let mut columns = Vec::with_capacity(batch.columns.len());
    for column in &batch.columns {
        if Some(column.name.as_str()) == skip {
            continue;
        }
        let first_value = column.values.iter().position(|v| value_type(v).is_some());
        if let Some(row) = first_value {
            match folded.get(&column.name.to_lowercase()) {
                Some(other) if *other != column.name => {
                    return Err(TableError::BadInput {
                        row,
                        line: None,
                        reason: format!(
                            "field `{}` differs from column `{other}` only in letter case; queries would read them as one column",
                            column.name
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    folded.insert(column.name.to_lowercase(), column.name.as_str());
                }
            }
        }
        let mut resolved = table.get(column.name.as_str()).copied();
        for (row, value) in column.values.iter().enumerate() {
            let Some(found) = value_type(value) else {
                continue;
            };
            resolved = Some(match resolved {
                None => found,
                Some(existing) => existing
                    .unify(found)
                    .ok_or_else(|| TableError::SchemaClash {
                        column: column.name.clone(),
                        existing,
                        found,
                        row,
                        line: None,
                    })?,
            });
        }
        if let Some(column_type) = resolved {
            columns.push(ColumnDef {
                name: column.name.clone(),
                column_type,
            });
        }
    }
    Ok(columns)
}

pub(crate) fn arrow_type(column_type: ColumnType) -> DataType {
    match column_type {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::String => DataType::Utf8,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

pub(crate) fn arrow_schema(columns: &[ColumnDef]) -> Arc<Schema> {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.column_type), true))
            .collect::<Vec<_>>(),
    ))
}

/// IceDB column types for an Arrow schema produced by a query (integers
/// widen to int64, decimals and float32 to float64, any timestamp to µs UTC).
pub(crate) fn columns_of(schema: &Schema) -> Result<Vec<ColumnDef>> {
    schema
        .fields()
        .iter()
        .map(|field| {
            let column_type = match field.data_type() {
                DataType::Boolean => ColumnType::Boolean,
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                    ColumnType::Int64
                }
                DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => ColumnType::Int64,
                DataType::Float16 | DataType::Float32 | DataType::Float64 => ColumnType::Float64,
                DataType::Decimal128(..) | DataType::Decimal256(..) | DataType::UInt64 => {
                    ColumnType::Float64
                }
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::String,
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
                    ColumnType::Timestamp
                }
                other => {
                    return Err(TableError::UnstorableType {
                        column: field.name().clone(),
                        data_type: other.to_string(),
                    });
                }
            };
            Ok(ColumnDef {
                name: field.name().clone(),
                column_type,
            })
        })
        .collect()
}

/// The SQL type DuckDB uses for a column type.
pub(crate) fn sql_type(column_type: ColumnType) -> &'static str {
    match column_type {
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Int64 => "BIGINT",
        ColumnType::Float64 => "DOUBLE",
        ColumnType::String => "VARCHAR",
        ColumnType::Timestamp => "TIMESTAMPTZ",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Column;

    fn batch(columns: Vec<(&str, Vec<Value>)>) -> Batch {
        let row_count = columns[0].1.len() as u32;
        Batch {
            row_count,
            columns: columns
                .into_iter()
                .map(|(n, v)| Column {
                    name: n.into(),
                    values: v,
                })
                .collect(),
        }
    }

    #[test]
    fn widens_adds_and_clashes() {
        let table = [ColumnDef {
            name: "n".into(),
            column_type: ColumnType::Int64,
        }];
        let b = batch(vec![
            ("n", vec![Value::Int(1), Value::Float(2.5)]),
            ("s", vec![Value::Null, Value::Text("x".into())]),
            ("empty", vec![Value::Null, Value::Null]),
        ]);
        let resolved = resolve(&b, &table, None).unwrap();
        assert_eq!(
            resolved,
            [
                ColumnDef {
                    name: "n".into(),
                    column_type: ColumnType::Float64
                },
                ColumnDef {
                    name: "s".into(),
                    column_type: ColumnType::String
                }
            ]
        );
        let b = batch(vec![("n", vec![Value::Int(1), Value::Text("two".into())])]);
        match resolve(&b, &table, None).unwrap_err() {
            TableError::SchemaClash {
                column,
                existing,
                found,
                row,
                ..
            } => {
                assert_eq!(
                    (column.as_str(), existing, found, row),
                    ("n", ColumnType::Int64, ColumnType::String, 1)
                );
            }
            other => panic!("{other}"),
        }
    }
}

//! Batches as JSON rows, for printing and APIs.

use serde_json::{Map, Value as Json};

use crate::{Batch, Value};

/// A cell as JSON: timestamps as RFC 3339 text (UTC, microseconds), non-finite
/// floats as text.
pub fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or_else(|| Json::String(f.to_string()), Json::Number),
        Value::Text(s) => Json::String(s.clone()),
        Value::Timestamp(us) => match chrono::DateTime::from_timestamp_micros(*us) {
            Some(t) => Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            None => Json::from(*us),
        },
    }
}

/// Row `row` of `batch` as a JSON object (null cells omitted).
pub fn row_to_json(batch: &Batch, row: usize) -> Json {
    let mut object = Map::new();
    for column in &batch.columns {
        let value = &column.values[row];
        if !matches!(value, Value::Null) {
            object.insert(column.name.clone(), value_to_json(value));
        }
    }
    Json::Object(object)
}

/// The name of a value's type, as IceDB's schema calls it.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int(_) => "int64",
        Value::Float(_) => "float64",
        Value::Text(_) => "string",
        Value::Timestamp(_) => "timestamp",
    }
}

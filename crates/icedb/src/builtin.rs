//! Built-in formatting, so that the embedded default needs no plugin:
//! each top-level JSON field becomes a column; nested objects and arrays are
//! kept as their JSON text; chosen fields are read as timestamps.

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::{Batch, Column, Value};

/// Settings of the built-in JSON-text formatter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonTextFormat {
    /// Fields read as timestamps (RFC 3339 text, or epoch numbers in
    /// `timestamp_unit_micros` units).
    pub timestamp_fields: Vec<String>,
    /// Microseconds per unit of numeric timestamps (1 000 = milliseconds).
    pub timestamp_unit_micros: i64,
}

impl Default for JsonTextFormat {
    fn default() -> Self {
        JsonTextFormat {
            timestamp_fields: vec!["ts".to_owned()],
            timestamp_unit_micros: 1_000,
        }
    }
}

/// A row the built-in formatter cannot take, with its 0-based index.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("row {row}: {reason}")]
pub struct FormatError {
    pub row: usize,
    pub reason: String,
}

impl JsonTextFormat {
    /// Formats JSON object rows into a batch (columns in order of first
    /// appearance; a row without a column holds null there).
    pub fn format<S: AsRef<str>>(&self, rows: &[S]) -> Result<Batch, FormatError> {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut columns: Vec<Column> = Vec::new();
        for (row, text) in rows.iter().enumerate() {
            let object = match serde_json::from_str::<Row>(text.as_ref()) {
                Ok(Row::Object(fields)) => fields,
                Ok(Row::Other(kind)) => {
                    return Err(FormatError {
                        row,
                        reason: format!("expected a JSON object, got {kind}"),
                    });
                }
                Err(e) => {
                    return Err(FormatError {
                        row,
                        reason: format!("invalid JSON: {e}"),
                    });
                }
            };
            for (name, json) in object {
                if name.is_empty() {
                    return Err(FormatError {
                        row,
                        reason: "a field has an empty name".to_owned(),
                    });
                }
                let value = if self.timestamp_fields.contains(&name) {
                    self.timestamp(&json)
                } else {
                    to_value(json)
                }
                .map_err(|reason| FormatError {
                    row,
                    reason: format!("field `{name}`: {reason}"),
                })?;
                let slot = *index.entry(name).or_insert_with_key(|name| {
                    columns.push(Column {
                        name: name.clone(),
                        values: vec![Value::Null; row],
                    });
                    columns.len() - 1
                });
                let column = &mut columns[slot];
                if column.values.len() > row {
                    // Which of the two values is meant is anyone's guess
                    // (JSON leaves it open; most parsers keep the last).
                    return Err(FormatError {
                        row,
                        reason: format!("field `{}` appears twice", column.name),
                    });
                }
                column.values.push(value);
            }
            for column in &mut columns {
                if column.values.len() == row {
                    column.values.push(Value::Null);
                }
            }
        }
        Ok(Batch {
            row_count: rows.len() as u32,
            columns,
        })
    }

    fn timestamp(&self, json: &Json) -> Result<Value, String> {
        match json {
            Json::Null => Ok(Value::Null),
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    i.checked_mul(self.timestamp_unit_micros)
                        .map(Value::Timestamp)
                        .ok_or_else(|| format!("{i} is out of range for a timestamp"))
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    Ok(Value::Timestamp(
                        (f * self.timestamp_unit_micros as f64) as i64,
                    ))
                }
            }
            Json::String(text) => chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| Value::Timestamp(t.timestamp_micros()))
                .map_err(|e| format!("`{text}` is not an RFC 3339 time ({e})")),
            other => Err(format!("{} is not a timestamp", json_kind(other))),
        }
    }
}

/// A row as parsed: its top-level fields in order, each kept (a repeated
/// name is refused by the caller, not silently collapsed as a JSON map
/// would), or the kind of the JSON value that is not an object.
enum Row {
    Object(Vec<(String, Json)>),
    Other(&'static str),
}

impl<'de> serde::Deserialize<'de> for Row {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Row, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Row;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(field) = map.next_entry::<String, Json>()? {
                    fields.push(field);
                }
                Ok(Row::Object(fields))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Row, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Row::Other("an array"))
            }
            fn visit_unit<E>(self) -> Result<Row, E> {
                Ok(Row::Other("null"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Row, E> {
                Ok(Row::Other("a boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Row, E> {
                Ok(Row::Other("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Row, E> {
                Ok(Row::Other("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Row, E> {
                Ok(Row::Other("a number"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Row, E> {
                Ok(Row::Other("a string"))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// A JSON value as a column value. An integer beyond int64 is refused
/// rather than silently widened to float64 (which would change it and the
/// whole column's type).
fn to_value(json: Json) -> Result<Value, String> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => {
                return Err(format!(
                    "the integer {u} is outside the int64 range; send it as a string to keep it exactly"
                ));
            }
            (None, None) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Text(s),
        nested @ (Json::Array(_) | Json::Object(_)) => Value::Text(nested.to_string()),
    })
}

fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_top_level_and_keeps_nested_as_json_text() {
        let rows = [
            r#"{"ts": 1000, "event": "a", "properties": {"x": [1, 2]}}"#,
            r#"{"event": "b", "n": 1.5, "ok": true}"#,
        ];
        let batch = JsonTextFormat::default().format(&rows).unwrap();
        assert_eq!(batch.row_count, 2);
        let names: Vec<_> = batch.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ts", "event", "properties", "n", "ok"]);
        assert_eq!(
            batch.column("ts").unwrap().values,
            [Value::Timestamp(1_000_000), Value::Null]
        );
        assert_eq!(
            batch.column("properties").unwrap().values[0],
            Value::Text(r#"{"x":[1,2]}"#.into())
        );
        assert_eq!(
            batch.column("n").unwrap().values,
            [Value::Null, Value::Float(1.5)]
        );
    }

    #[test]
    fn names_the_bad_row() {
        let error = JsonTextFormat::default()
            .format(&["{}", "{oops", "{}"])
            .unwrap_err();
        assert_eq!(error.row, 1);
        assert!(error.reason.contains("invalid JSON"), "{error}");
        let error = JsonTextFormat::default().format(&["[1]"]).unwrap_err();
        assert!(
            error
                .reason
                .contains("expected a JSON object, got an array"),
            "{error}"
        );
        let error = JsonTextFormat::default()
            .format(&[r#"{"ts": "yesterday"}"#])
            .unwrap_err();
        assert!(error.reason.contains("field `ts`"), "{error}");
        for (text, kind) in [("\"x\"", "a string"), ("3", "a number"), ("null", "null")] {
            let error = JsonTextFormat::default().format(&[text]).unwrap_err();
            assert_eq!(error.reason, format!("expected a JSON object, got {kind}"));
        }
        let error = JsonTextFormat::default().format(&["[1] 2"]).unwrap_err();
        assert!(error.reason.contains("invalid JSON"), "{error}");
    }

    /// `{"a": 1, "a": 2}` is ambiguous: a JSON map would keep one value and
    /// drop the other without a word.
    #[test]
    fn refuses_a_field_named_twice() {
        let error = JsonTextFormat::default()
            .format(&[r#"{"a": 1, "b": 2}"#, r#"{"b": 1, "a": 2, "a": 3}"#])
            .unwrap_err();
        assert_eq!(error.row, 1);
        assert_eq!(error.reason, "field `a` appears twice");
    }
}

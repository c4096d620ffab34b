//! `flatten-json`: IceDB format-row plugin that flattens nested JSON objects
//! into dotted columns.
//!
//! `{"user": {"id": 7, "geo": {"cc": "NL"}}}` becomes the columns `user.id`
//! and `user.geo.cc`. Settings:
//! * `max-depth` (default 4): the most segments a column name may have;
//!   objects nested deeper are kept whole as the JSON text sent (only the
//!   whitespace between tokens dropped). Arrays are always kept so.
//! * `timestamp-fields` (default none): comma-separated column names whose
//!   values become timestamps: RFC 3339 text, or a number of epoch units.
//! * `timestamp-unit` (default `ms`): the unit of numeric timestamps: `s`,
//!   `ms` or `us`.
//!
//! Rows are parsed without an intermediate JSON tree: each value is first
//! delimited as its raw text, and an object within `max-depth` is read on
//! from that text. Integers beyond int64 and numbers beyond float64 are
//! refused rather than rounded. A row
//! that names a column twice (a repeated key, or `{"a": {"b": 1}, "a.b": 2}`)
//! is refused: which value is meant is anyone's guess.

wit_bindgen::generate!({ path: "../../wit", world: "format-row-plugin" });

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use exports::icedb::plugin::format_row::Guest;
use icedb::plugin::types::{Batch, Column, PluginError, Value};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

struct Settings {
    max_depth: usize,
    timestamp_fields: Vec<String>,
    timestamp_unit_micros: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_depth: 4,
            timestamp_fields: Vec::new(),
            timestamp_unit_micros: 1_000,
        }
    }
}

thread_local! {
    static SETTINGS: RefCell<Settings> = RefCell::new(Settings::default());
}

struct FlattenJson;

impl Guest for FlattenJson {
    fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
        let mut parsed = Settings::default();
        for (key, value) in settings {
            match key.as_str() {
                "max-depth" => {
                    parsed.max_depth = match value.parse::<usize>() {
                        Ok(depth) if depth >= 1 => depth,
                        _ => {
                            return Err(format!(
                                "max-depth must be an integer >= 1; got `{value}`"
                            ));
                        }
                    }
                }
                "timestamp-fields" => {
                    parsed.timestamp_fields = value
                        .split(',')
                        .map(str::trim)
                        .filter(|f| !f.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                "timestamp-unit" => {
                    parsed.timestamp_unit_micros = match value.as_str() {
                        "s" => 1_000_000,
                        "ms" => 1_000,
                        "us" => 1,
                        other => {
                            return Err(format!(
                                "timestamp-unit must be s, ms or us; got `{other}`"
                            ));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "unknown setting `{other}` (known: max-depth, timestamp-fields, timestamp-unit)"
                    ));
                }
            }
        }
        SETTINGS.with(|s| *s.borrow_mut() = parsed);
        Ok(())
    }

    fn format(rows: Vec<String>) -> Result<Batch, PluginError> {
        SETTINGS.with(|settings| {
            let settings = settings.borrow();
            let mut sink = Sink::new(&settings, rows.len());
            for (row, text) in rows.iter().enumerate() {
                sink.row(text).map_err(|reason| PluginError {
                    row: Some(row as u32),
                    reason,
                })?;
            }
            Ok(sink.finish())
        })
    }
}

/// Accumulates the columns of a batch while rows stream through it.
struct Sink<'s> {
    settings: &'s Settings,
    index: HashMap<String, usize>,
    columns: Vec<Column>,
    /// Rows finished so far; every column holds exactly this many values
    /// between rows.
    rows_done: usize,
    capacity: usize,
    /// The dotted path of the value being read, reused to avoid allocating.
    path: String,
    depth: usize,
    /// An error raised by a leaf (a bad timestamp), reported with the row.
    leaf_error: Option<String>,
    /// The column the next leaf most likely belongs to: rows of a batch
    /// usually share one shape, so leaves arrive in the same column order
    /// and a name comparison saves a hash lookup.
    predicted_slot: usize,
}

impl<'s> Sink<'s> {
    fn new(settings: &'s Settings, capacity: usize) -> Self {
        Sink {
            settings,
            index: HashMap::new(),
            columns: Vec::new(),
            rows_done: 0,
            capacity,
            path: String::new(),
            depth: 0,
            leaf_error: None,
            predicted_slot: 0,
        }
    }

    fn row(&mut self, text: &str) -> Result<(), String> {
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed = RowSeed { sink: self }
            .deserialize(&mut de)
            .and_then(|()| de.end());
        if let Some(reason) = self.leaf_error.take() {
            return Err(reason);
        }
        parsed.map_err(|e| format!("invalid JSON: {e}"))?;
        let row = self.rows_done;
        self.predicted_slot = 0;
        for column in &mut self.columns {
            if column.values.len() == row {
                column.values.push(Value::Null);
            }
        }
        self.rows_done += 1;
        Ok(())
    }

    fn leaf(&mut self, value: Value) {
        let value = if self.settings.timestamp_fields.contains(&self.path) {
            match to_timestamp(value, self.settings.timestamp_unit_micros) {
                Ok(ts) => ts,
                Err(reason) => {
                    self.leaf_error
                        .get_or_insert(format!("field `{}`: {reason}", self.path));
                    Value::Null
                }
            }
        } else {
            value
        };
        let row = self.rows_done;
        let slot = if self
            .columns
            .get(self.predicted_slot)
            .is_some_and(|c| c.name == self.path)
        {
            self.predicted_slot
        } else {
            match self.index.get(self.path.as_str()) {
                Some(&slot) => slot,
                None => {
                    let mut values = Vec::with_capacity(self.capacity);
                    values.resize(row, Value::Null);
                    self.columns.push(Column {
                        name: self.path.clone(),
                        values,
                    });
                    self.index.insert(self.path.clone(), self.columns.len() - 1);
                    self.columns.len() - 1
                }
            }
        };
        self.predicted_slot = slot + 1;
        let values = &mut self.columns[slot].values;
        if values.len() > row {
            self.leaf_error
                .get_or_insert(format!("field `{}` appears twice", self.path));
        } else {
            values.push(value);
        }
    }

    fn finish(self) -> Batch {
        Batch {
            row_count: self.rows_done as u32,
            columns: self.columns,
        }
    }
}

fn to_timestamp(value: Value, unit_micros: i64) -> Result<Value, String> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::Int(n) => n
            .checked_mul(unit_micros)
            .map(Value::Timestamp)
            .ok_or_else(|| format!("{n} is out of range for a timestamp")),
        // Beyond int64 microseconds a cast would saturate silently.
        Value::Float(f) if (f * unit_micros as f64).abs() < i64::MAX as f64 => {
            Ok(Value::Timestamp((f * unit_micros as f64) as i64))
        }
        Value::Float(f) => Err(format!("{f:e} is out of range for a timestamp")),
        Value::Text(text) => chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| Value::Timestamp(t.timestamp_micros()))
            .map_err(|e| format!("`{text}` is not an RFC 3339 time ({e})")),
        other => Err(format!("{} is not a timestamp", describe(&other))),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "a boolean",
        Value::Int(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Text(_) => "text",
        Value::Timestamp(_) => "a timestamp",
    }
}

/// The top level of a row: it must be an object.
struct RowSeed<'a, 's> {
    sink: &'a mut Sink<'s>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.sink.path.clear();
        self.sink.depth = 0;
        flatten_object(self.sink, map)
    }
}

/// Reads the entries of an object whose own path is `sink.path`.
fn flatten_object<'de, A: MapAccess<'de>>(sink: &mut Sink, mut map: A) -> Result<(), A::Error> {
    let base = sink.path.len();
    sink.depth += 1;
    while map
        .next_key_seed(KeySeed {
            path: &mut sink.path,
        })?
        .is_some()
    {
        map.next_value_seed(ValueSeed { sink: &mut *sink })?;
        sink.path.truncate(base);
    }
    sink.depth -= 1;
    Ok(())
}

/// Appends an object key to the current path (no allocation per key).
struct KeySeed<'a> {
    path: &'a mut String,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(key);
        Ok(())
    }
}

/// One value at `sink.path`, read as its raw text first: an object within
/// `max-depth` is flattened from that text; a deeper object or an array
/// is kept as the text sent (whitespace between tokens dropped), so its
/// key order, repeated keys and number spellings survive (a JSON tree
/// would collapse the keys and round a big integer to a float).
struct ValueSeed<'a, 's> {
    sink: &'a mut Sink<'s>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        let raw = <&'de RawValue>::deserialize(de)?;
        let text = raw.get();
        let value = match text.as_bytes()[0] {
            b'{' if self.sink.depth < self.sink.settings.max_depth => {
                let mut inner = serde_json::Deserializer::from_str(text);
                return inner
                    .deserialize_map(ObjectVisitor { sink: self.sink })
                    .map_err(de::Error::custom);
            }
            b'{' | b'[' => Value::Text(minified(text)),
            // Validated already: without escapes it is the text between
            // the quotes.
            b'"' if !text.contains('\\') => Value::Text(text[1..text.len() - 1].to_owned()),
            b'"' => Value::Text(serde_json::from_str(text).map_err(de::Error::custom)?),
            b't' => Value::Boolean(true),
            b'f' => Value::Boolean(false),
            b'n' => Value::Null,
            _ if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) => {
                match text.parse::<f64>() {
                    Ok(float) if float.is_finite() => Value::Float(float),
                    _ => {
                        let reason = format!(
                            "field `{}`: the number {text} is outside the float64 range",
                            self.sink.path
                        );
                        self.sink.leaf_error.get_or_insert(reason);
                        return Ok(());
                    }
                }
            }
            // Read as a float it would change (and turn the whole column
            // into floats): refuse, as the built-in formatter does.
            _ => match text.parse::<i64>() {
                Ok(int) => Value::Int(int),
                Err(_) => {
                    let reason = format!(
                        "field `{}`: the integer {text} is outside the int64 range; send it as a string to keep it exactly",
                        self.sink.path
                    );
                    self.sink.leaf_error.get_or_insert(reason);
                    return Ok(());
                }
            },
        };
        self.sink.leaf(value);
        Ok(())
    }
}

/// An object within `max-depth`, flattened into the columns under its path.
struct ObjectVisitor<'a, 's> {
    sink: &'a mut Sink<'s>,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        flatten_object(self.sink, map)
    }
}

/// Valid JSON text without the whitespace between its tokens. (IceDB's
/// built-in formatter does the same; a plugin depends on nothing of
/// IceDB's but the WIT contract.)
fn minified(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        out.push(c);
    }
    out
}

export!(FlattenJson);

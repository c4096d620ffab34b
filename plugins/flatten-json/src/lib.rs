//! `flatten-json`: IceDB format-row plugin that flattens nested JSON objects
//! into dotted columns.
//!
//! `{"user": {"id": 7, "geo": {"cc": "NL"}}}` becomes the columns `user.id`
//! and `user.geo.cc`. Settings:
//! * `max-depth` (default 4): the most segments a column name may have;
//!   objects nested deeper are kept whole as JSON text. Arrays are always
//!   kept as JSON text.
//! * `timestamp-fields` (default none): comma-separated column names whose
//!   values become timestamps: RFC 3339 text, or a number of epoch units.
//! * `timestamp-unit` (default `ms`): the unit of numeric timestamps: `s`,
//!   `ms` or `us`.
//!
//! Rows are parsed in one streaming pass (no intermediate JSON tree). A row
//! that names a column twice (a repeated key, or `{"a": {"b": 1}, "a.b": 2}`)
//! is refused: which value is meant is anyone's guess.

wit_bindgen::generate!({ path: "../../wit", world: "format-row-plugin" });

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use exports::icedb::plugin::format_row::Guest;
use icedb::plugin::types::{Batch, Column, PluginError, Value};
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

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
        Value::Float(f) if f.is_finite() => Ok(Value::Timestamp((f * unit_micros as f64) as i64)),
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

/// One value at `sink.path`.
struct ValueSeed<'a, 's> {
    sink: &'a mut Sink<'s>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.sink.leaf(Value::Null);
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.sink.leaf(Value::Boolean(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.sink.leaf(Value::Int(v));
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(v) => self.sink.leaf(Value::Int(v)),
            // Read as a float it would change (and turn the whole column
            // into floats): refuse, as the built-in formatter does.
            Err(_) => {
                let reason = format!(
                    "field `{}`: the integer {v} is outside the int64 range; send it as a string to keep it exactly",
                    self.sink.path
                );
                self.sink.leaf_error.get_or_insert(reason);
            }
        }
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.sink.leaf(Value::Float(v));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.sink.leaf(Value::Text(v.to_owned()));
        Ok(())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.sink.leaf(Value::Text(v));
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if self.sink.depth < self.sink.settings.max_depth {
            return flatten_object(self.sink, map);
        }
        let whole = serde_json::Value::deserialize(MapAccessDeserializer::new(map))?;
        self.sink.leaf(Value::Text(whole.to_string()));
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let whole = serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))?;
        self.sink.leaf(Value::Text(whole.to_string()));
        Ok(())
    }
}

export!(FlattenJson);

//! `partition-by-day`: IceDB partition strategy that puts each row in a daily,
//! Hive-style partition `y=YYYY/m=MM/d=DD` (UTC) taken from one field.
//!
//! Settings:
//! * `field` (default `ts`): the formatted column holding the event time.
//! * `int-unit` (default `auto`): how integers are read: `ms`, `us`, `s`, or
//!   `auto` (|n| >= 10^14 is microseconds, otherwise milliseconds — 10^14 ms
//!   is the year 5138, 10^14 µs is 1973).
//!
//! The field may hold an int or float (epoch), a timestamp value, or RFC 3339
//! text. A row without a usable time fails the batch, naming the row.

wit_bindgen::generate!({ path: "../../wit", world: "partition-plugin" });

use std::cell::RefCell;

use chrono::{DateTime, Datelike};
use exports::icedb::plugin::partition_strategy::Guest;
use icedb::plugin::types::{Batch, PluginError, Value};

const MICROS_PER_DAY: i64 = 86_400_000_000;

#[derive(Clone, Copy)]
enum IntUnit {
    Auto,
    Seconds,
    Millis,
    Micros,
}

struct Settings {
    field: String,
    int_unit: IntUnit,
}

thread_local! {
    static SETTINGS: RefCell<Settings> = RefCell::new(Settings {
        field: "ts".to_owned(),
        int_unit: IntUnit::Auto,
    });
}

struct PartitionByDay;

impl Guest for PartitionByDay {
    fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
        let mut parsed = Settings {
            field: "ts".to_owned(),
            int_unit: IntUnit::Auto,
        };
        for (key, value) in settings {
            match key.as_str() {
                "field" if !value.is_empty() => parsed.field = value,
                "int-unit" => {
                    parsed.int_unit = match value.as_str() {
                        "auto" => IntUnit::Auto,
                        "s" => IntUnit::Seconds,
                        "ms" => IntUnit::Millis,
                        "us" => IntUnit::Micros,
                        other => {
                            return Err(format!(
                                "int-unit must be one of auto, s, ms, us; got `{other}`"
                            ));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "unknown setting `{other}` (known: field, int-unit)"
                    ));
                }
            }
        }
        SETTINGS.with(|s| *s.borrow_mut() = parsed);
        Ok(())
    }

    fn fields() -> Vec<String> {
        SETTINGS.with(|s| vec![s.borrow().field.clone()])
    }

    fn partition(batch: Batch) -> Result<Vec<String>, PluginError> {
        SETTINGS.with(|settings| {
            let settings = settings.borrow();
            let column = batch.columns.iter().find(|c| c.name == settings.field);
            let Some(column) = column else {
                return Err(PluginError {
                    row: None,
                    reason: format!("the batch has no column `{}`", settings.field),
                });
            };
            let mut paths = Vec::with_capacity(column.values.len());
            // Events of a batch mostly share a few days: format each day once.
            let mut last: Option<(i64, String)> = None;
            for (row, value) in column.values.iter().enumerate() {
                let micros = to_micros(value, settings.int_unit).map_err(|reason| PluginError {
                    row: Some(row as u32),
                    reason: format!("field `{}`: {reason}", settings.field),
                })?;
                let day = micros.div_euclid(MICROS_PER_DAY);
                match &last {
                    Some((last_day, path)) if *last_day == day => paths.push(path.clone()),
                    _ => {
                        let path = day_path(micros).ok_or_else(|| PluginError {
                            row: Some(row as u32),
                            reason: format!("field `{}`: time out of range", settings.field),
                        })?;
                        paths.push(path.clone());
                        last = Some((day, path));
                    }
                }
            }
            Ok(paths)
        })
    }
}

fn to_micros(value: &Value, unit: IntUnit) -> Result<i64, String> {
    match value {
        Value::Timestamp(us) => Ok(*us),
        Value::Int(n) => {
            let unit = match unit {
                IntUnit::Auto if n.unsigned_abs() >= 100_000_000_000_000 => IntUnit::Micros,
                IntUnit::Auto => IntUnit::Millis,
                other => other,
            };
            let scaled = match unit {
                IntUnit::Seconds => n.checked_mul(1_000_000),
                IntUnit::Millis | IntUnit::Auto => n.checked_mul(1_000),
                IntUnit::Micros => Some(*n),
            };
            scaled.ok_or_else(|| format!("{n} is out of range"))
        }
        Value::Float(f) if f.is_finite() => Ok((f * 1_000.0) as i64),
        Value::Float(f) => Err(format!("{f} is not a time")),
        Value::Text(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_micros())
            .map_err(|e| format!("`{text}` is not RFC 3339 ({e})")),
        Value::Null => Err("missing (null)".to_owned()),
        Value::Boolean(b) => Err(format!("{b} is not a time")),
    }
}

fn day_path(micros: i64) -> Option<String> {
    let t = DateTime::from_timestamp_micros(micros)?;
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    Some(format!(
        "y={:04}/m={:02}/d={:02}",
        t.year(),
        t.month(),
        t.day()
    ))
}

export!(PartitionByDay);

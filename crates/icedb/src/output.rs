//! Query results as text: one set of rules for the CLI's table, JSON and CSV,
//! the HTTP API's JSON and CSV and the dashboard, so every column type
//! DuckDB can return renders, and renders the same everywhere.
//!
//! * Timestamps with a time zone are UTC instants; DuckDB labels them with
//!   its session zone (`Etc/UTC`), which arrow can only display with a
//!   time-zone database. They are relabelled `+00:00` (the same instant) and
//!   every output shows them as RFC 3339 / ISO 8601 in UTC with as many
//!   fractional digits as needed: `2026-10-15T12:00:00Z`,
//!   `2026-10-15T12:30:00.250Z`. Timestamps without a zone show no `Z`.
//! * Decimals (and DuckDB's HUGEINT) are exact: JSON carries them as strings.
//! * Dictionaries (DuckDB's ENUM) are decoded; intervals and durations
//!   become their text.
//! * CSV cannot hold nested values: lists, structs and maps become their
//!   JSON text in CSV (JSON keeps them nested).
//! * BLOBs are hexadecimal text; NULL is `null` in JSON and empty in CSV.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// The type a column is shown as (see the module docs).
fn display_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Timestamp(unit, Some(_)) => DataType::Timestamp(*unit, Some("+00:00".into())),
        DataType::Dictionary(_, values) => display_type(values),
        DataType::Interval(_) | DataType::Duration(_) => DataType::Utf8,
        DataType::List(field) => DataType::List(display_field(field)),
        DataType::LargeList(field) => DataType::LargeList(display_field(field)),
        DataType::FixedSizeList(field, size) => {
            DataType::FixedSizeList(display_field(field), *size)
        }
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(display_field).collect::<Vec<_>>().into())
        }
        DataType::Map(field, sorted) => DataType::Map(display_field(field), *sorted),
        other => other.clone(),
    }
}

fn display_field(field: &Arc<Field>) -> Arc<Field> {
    Arc::new(
        field
            .as_ref()
            .clone()
            .with_data_type(display_type(field.data_type())),
    )
}

/// How every text output formats values.
pub fn format_options() -> FormatOptions<'static> {
    FormatOptions::default().with_timestamp_tz_format(Some(TIMESTAMP_TZ_FORMAT))
}

/// UTC instants (their zone is `+00:00` after [`for_display`]).
const TIMESTAMP_TZ_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.fZ";

/// Text of every value, as arrow displays it (intervals, durations).
fn as_text(array: &dyn Array) -> Result<ArrayRef, ArrowError> {
    let options = format_options().with_null("");
    let formatter = ArrayFormatter::try_new(array, &options)?;
    let mut text = StringBuilder::new();
    for row in 0..array.len() {
        if array.is_null(row) {
            text.append_null();
        } else {
            text.append_value(formatter.value(row).to_string());
        }
    }
    Ok(Arc::new(text.finish()))
}

fn has_text_only(data_type: &DataType) -> bool {
    match data_type {
        DataType::Interval(_) | DataType::Duration(_) => true,
        DataType::Dictionary(_, values) => has_text_only(values),
        _ => false,
    }
}

/// A column in its display type.
fn display_column(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let target = display_type(array.data_type());
    if &target == array.data_type() {
        return Ok(array.clone());
    }
    if has_text_only(array.data_type()) {
        let decoded = match array.data_type() {
            DataType::Dictionary(_, values) => cast(array, values)?,
            _ => array.clone(),
        };
        return as_text(&decoded);
    }
    cast(array, &target)
}

/// `batch` with its columns replaced (same names, the new types).
fn with_columns(batch: &RecordBatch, columns: Vec<ArrayRef>) -> Result<RecordBatch, ArrowError> {
    let fields: Fields = batch
        .schema()
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| Arc::new(f.as_ref().clone().with_data_type(c.data_type().clone())))
        .collect::<Vec<_>>()
        .into();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// The batch as every output shows it (see the module docs).
pub fn for_display(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(display_column)
        .collect::<Result<_, _>>()?;
    with_columns(batch, columns)
}

fn is_nested(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::Struct(_)
            | DataType::Map(..)
            | DataType::Union(..)
    )
}

/// A nested column as its JSON text, one value per row.
fn nested_as_json(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let field = Field::new("v", array.data_type().clone(), true);
    let single = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![array.clone()])?;
    let mut lines = Vec::new();
    {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut lines);
        writer.write(&single)?;
        writer.finish()?;
    }
    let mut text = StringBuilder::new();
    let mut parsed = lines.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    for row in 0..array.len() {
        let line = parsed
            .next()
            .ok_or_else(|| ArrowError::JsonError("a row is missing".to_owned()))?;
        if array.is_null(row) {
            text.append_null();
            continue;
        }
        let object: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| ArrowError::JsonError(e.to_string()))?;
        text.append_value(object.get("v").map_or(String::new(), |v| v.to_string()));
    }
    Ok(Arc::new(text.finish()))
}

/// Writes batches as CSV with a header.
pub fn write_csv<W: Write>(batches: &[RecordBatch], out: W) -> Result<(), ArrowError> {
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .with_timestamp_tz_format(TIMESTAMP_TZ_FORMAT.to_owned())
        .build(out);
    for batch in batches {
        let batch = for_display(batch)?;
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| {
                if is_nested(c.data_type()) {
                    nested_as_json(c)
                } else {
                    Ok(c.clone())
                }
            })
            .collect::<Result<_, _>>()?;
        writer.write(&with_columns(&batch, columns)?)?;
    }
    Ok(())
}

/// Writes batches as one JSON array of row objects (nulls explicit).
pub fn write_json_array<W: Write>(batches: &[RecordBatch], out: W) -> Result<(), ArrowError> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(out);
    for batch in batches {
        writer.write(&for_json(batch)?)?;
    }
    writer.finish()
}

/// [`for_display`], with decimals as exact text (JSON numbers are doubles
/// to most readers).
fn for_json(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let batch = for_display(batch)?;
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Decimal128(..) | DataType::Decimal256(..) => as_text(c),
            _ => Ok(c.clone()),
        })
        .collect::<Result<_, _>>()?;
    with_columns(&batch, columns)
}

/// Writes batches as newline-delimited JSON objects (nulls explicit).
pub fn write_ndjson<W: Write>(batches: &[RecordBatch], out: W) -> Result<(), ArrowError> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(out);
    for batch in batches {
        writer.write(&for_json(batch)?)?;
    }
    writer.finish()
}

/// An aligned text table (the CLI's default output).
pub fn pretty(batches: &[RecordBatch]) -> Result<String, ArrowError> {
    let shown: Vec<RecordBatch> = batches.iter().map(for_display).collect::<Result<_, _>>()?;
    Ok(
        arrow::util::pretty::pretty_format_batches_with_options(&shown, &format_options())?
            .to_string(),
    )
}

/// Every value as display text, row by row (the dashboard's cells); nulls
/// as `null_text`.
pub fn text_cells(
    batches: &[RecordBatch],
    null_text: &str,
) -> Result<Vec<Vec<String>>, ArrowError> {
    let options = format_options().with_null(null_text);
    let mut rows = Vec::new();
    for batch in batches {
        let batch = for_display(batch)?;
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// The schema every output shows.
pub fn display_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Arc<Field>> = schema.fields().iter().map(display_field).collect();
    Arc::new(Schema::new(fields))
}

//! Binding a parsed `WHERE` to the table's columns (constants converted as
//! DuckDB casts them) and deciding, per file, whether any row may match;
//! the exact `min`/`max` of a column from the files' statistics.

use std::collections::BTreeMap;

use icedb_meta::{ColumnDef, ColumnType, DataFile, StatValue};

use super::hive::{HiveType, hive_values, is_iso_date};
use super::{Expr, Literal, Op};
use crate::query::ColumnRange;
use crate::write::compare;

/// Where a column's values come from.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Source {
    Data(String),
    Partition(String, HiveType),
}

/// The table's columns by the name SQL may use (DuckDB matches names
/// regardless of case); a name two columns answer to is not used.
pub(super) struct Columns {
    by_name: BTreeMap<String, Option<(Source, Option<ColumnType>)>>,
}

impl Columns {
    pub(super) fn new(schema: &[ColumnDef], hive: &[(String, HiveType)]) -> Columns {
        let mut by_name: BTreeMap<String, Option<(Source, Option<ColumnType>)>> = BTreeMap::new();
        let mut add = |name: &str, entry: (Source, Option<ColumnType>)| {
            by_name
                .entry(name.to_lowercase())
                .and_modify(|seen| *seen = None)
                .or_insert(Some(entry));
        };
        for column in schema {
            add(
                &column.name,
                (Source::Data(column.name.clone()), Some(column.column_type)),
            );
        }
        for (key, kind) in hive {
            add(key, (Source::Partition(key.clone(), *kind), None));
        }
        Columns { by_name }
    }

    fn get(&self, name: &str) -> Option<&(Source, Option<ColumnType>)> {
        self.by_name.get(&name.to_lowercase())?.as_ref()
    }
}

/// A predicate bound to columns, with constants in the column's domain.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Bound {
    And(Vec<Bound>),
    Or(Vec<Bound>),
    Compare {
        source: Source,
        op: Op,
        value: StatValue,
    },
    IsNull {
        source: Source,
        null: bool,
    },
    /// No row can match (a comparison with NULL, `= 2.5` on integers).
    Never,
    Unknown,
}

pub(super) fn bind(
    expr: &Expr,
    columns: &Columns,
    timestamp: &mut dyn FnMut(&Literal) -> Option<i64>,
) -> Bound {
    match expr {
        Expr::And(list) => Bound::And(list.iter().map(|e| bind(e, columns, timestamp)).collect()),
        Expr::Or(list) => Bound::Or(list.iter().map(|e| bind(e, columns, timestamp)).collect()),
        Expr::Compare { column, op, value } => match columns.get(column) {
            Some((source, column_type)) => {
                bind_compare(source, *column_type, *op, value, timestamp)
            }
            None => Bound::Unknown,
        },
        Expr::In { column, values } => match columns.get(column) {
            Some((source, column_type)) => Bound::Or(
                values
                    .iter()
                    .map(|v| bind_compare(source, *column_type, Op::Eq, v, timestamp))
                    .collect(),
            ),
            None => Bound::Unknown,
        },
        Expr::IsNull { column, null } => match columns.get(column) {
            Some((source @ Source::Data(_), _)) => Bound::IsNull {
                source: source.clone(),
                null: *null,
            },
            _ => Bound::Unknown,
        },
        Expr::Unknown => Bound::Unknown,
    }
}

/// `column <op> literal` with the literal converted as DuckDB converts it
/// for this column's type.
fn bind_compare(
    source: &Source,
    column_type: Option<ColumnType>,
    op: Op,
    literal: &Literal,
    timestamp: &mut dyn FnMut(&Literal) -> Option<i64>,
) -> Bound {
    if *literal == Literal::Null {
        return Bound::Never;
    }
    let compare = |op: Op, value: StatValue| Bound::Compare {
        source: source.clone(),
        op,
        value,
    };
    enum Domain {
        Integer,
        Float,
        Text,
        Date,
        Boolean,
        Timestamp,
    }
    let domain = match (source, column_type) {
        (Source::Partition(_, HiveType::BigInt), _) => Domain::Integer,
        (Source::Partition(_, HiveType::Date), _) => Domain::Date,
        (Source::Partition(_, HiveType::Varchar), _) => Domain::Text,
        (Source::Data(_), Some(ColumnType::Int64)) => Domain::Integer,
        (Source::Data(_), Some(ColumnType::Float64)) => Domain::Float,
        (Source::Data(_), Some(ColumnType::String)) => Domain::Text,
        (Source::Data(_), Some(ColumnType::Boolean)) => Domain::Boolean,
        (Source::Data(_), Some(ColumnType::Timestamp)) => Domain::Timestamp,
        _ => return Bound::Unknown,
    };
    match (domain, literal) {
        (Domain::Integer, Literal::Decimal { units, scale }) => {
            let Some(unit) = 10i128.checked_pow(*scale) else {
                return Bound::Unknown;
            };
            let (floor, exact) = (units.div_euclid(unit), units.rem_euclid(unit) == 0);
            let Ok(floor) = i64::try_from(floor) else {
                return Bound::Unknown;
            };
            match (op, exact) {
                (_, true) => compare(op, StatValue::Int(floor)),
                (Op::Eq, false) => Bound::Never,
                // x < 2.5 and x <= 2.5 are x <= 2; x > 2.5 and x >= 2.5 are x >= 3.
                (Op::Lt | Op::Le, false) => compare(Op::Le, StatValue::Int(floor)),
                (Op::Gt | Op::Ge, false) => match floor.checked_add(1) {
                    Some(ceiling) => compare(Op::Ge, StatValue::Int(ceiling)),
                    None => Bound::Unknown,
                },
            }
        }
        // DuckDB compares an integer with a DOUBLE as doubles, as
        // `compare` does.
        (Domain::Integer | Domain::Float, Literal::Double(d)) if !d.is_nan() => {
            compare(op, StatValue::Float(*d))
        }
        (Domain::Integer, Literal::Text(text)) => match text.trim().parse::<i64>() {
            Ok(n) => compare(op, StatValue::Int(n)),
            Err(_) => Bound::Unknown,
        },
        (Domain::Float, Literal::Decimal { units, scale }) => {
            match format!("{units}e-{scale}").parse::<f64>() {
                Ok(d) => compare(op, StatValue::Float(d)),
                Err(_) => Bound::Unknown,
            }
        }
        (Domain::Text, Literal::Text(text)) => compare(op, StatValue::Text(text.clone())),
        (Domain::Date, Literal::Text(text)) if is_iso_date(text) => {
            compare(op, StatValue::Text(text.clone()))
        }
        (Domain::Date, Literal::Cast { text, to }) if to == "DATE" && is_iso_date(text) => {
            compare(op, StatValue::Text(text.clone()))
        }
        (Domain::Boolean, Literal::Bool(b)) => compare(op, StatValue::Boolean(*b)),
        (Domain::Boolean, Literal::Cast { text, to }) if to == "BOOLEAN" => {
            match text.to_ascii_lowercase().as_str() {
                "t" | "true" => compare(op, StatValue::Boolean(true)),
                "f" | "false" => compare(op, StatValue::Boolean(false)),
                _ => Bound::Unknown,
            }
        }
        (Domain::Timestamp, Literal::Text(_) | Literal::Cast { .. }) => match timestamp(literal) {
            Some(micros) => compare(op, StatValue::Int(micros)),
            None => Bound::Unknown,
        },
        _ => Bound::Unknown,
    }
}

/// The text and target type of a constant compared with a timestamp
/// column, for DuckDB to convert (`CAST(CAST(text AS to) AS TIMESTAMPTZ)`);
/// `None` for a constant that is not such a text.
pub(crate) fn timestamp_text(literal: &Literal) -> Option<(&str, &str)> {
    match literal {
        Literal::Text(text) => Some((text, "TIMESTAMPTZ")),
        Literal::Cast { text, to }
            if matches!(
                to.as_str(),
                "TIMESTAMP" | "TIMESTAMP WITH TIME ZONE" | "DATE" | "TIMESTAMP_S" | "TIMESTAMP_MS"
            ) =>
        {
            Some((text, to))
        }
        _ => None,
    }
}

/// A bound `WHERE`: which files may hold a matching row.
#[derive(Debug)]
pub(crate) struct Filter(pub(super) Option<Bound>);

impl Filter {
    /// The filter a query's explicit ranges make (each an inclusive range
    /// of a data column; `QueryOptions::ranges`), judged like a `WHERE`.
    pub(crate) fn of_ranges(ranges: &[ColumnRange]) -> Filter {
        let bounds = ranges.iter().flat_map(|range| {
            let source = Source::Data(range.column.clone());
            let low = range.min.clone().map(|value| Bound::Compare {
                source: source.clone(),
                op: Op::Ge,
                value,
            });
            let high = range.max.clone().map(|value| Bound::Compare {
                source,
                op: Op::Le,
                value,
            });
            low.into_iter().chain(high)
        });
        Filter(Some(Bound::And(bounds.collect())))
    }

    /// Whether `may_match` is exact: every row of a kept file satisfies the
    /// `WHERE`. True without a `WHERE`, and for one that only compares
    /// partition columns (constant within a file) in ways bound exactly.
    pub(crate) fn exact(&self) -> bool {
        fn exact(bound: &Bound) -> bool {
            match bound {
                Bound::And(list) | Bound::Or(list) => list.iter().all(exact),
                Bound::Compare { source, .. } => matches!(source, Source::Partition(..)),
                Bound::Never => true,
                Bound::IsNull { .. } | Bound::Unknown => false,
            }
        }
        self.0.as_ref().is_none_or(exact)
    }

    /// False only when no row of `file` can satisfy the `WHERE`.
    pub(crate) fn may_match(&self, file: &DataFile) -> bool {
        self.0.as_ref().is_none_or(|bound| may_match(bound, file))
    }

    /// False only when no row of any file of `partition` can satisfy the
    /// `WHERE` (judged on partition columns only; a comparison of a data
    /// column may match).
    pub(crate) fn may_match_partition(&self, partition: &str) -> bool {
        self.may_match(&DataFile {
            path: String::new(),
            partition: partition.to_owned(),
            bytes: 0,
            rows: 0,
            created_ms: 0,
            columns: BTreeMap::new(),
            inline: None,
            segment: None,
        })
    }
}

fn may_match(bound: &Bound, file: &DataFile) -> bool {
    match bound {
        Bound::And(list) => list.iter().all(|b| may_match(b, file)),
        Bound::Or(list) => list.iter().any(|b| may_match(b, file)),
        Bound::Never => false,
        Bound::Unknown => true,
        Bound::IsNull { source, null } => {
            let Source::Data(name) = source else {
                return true;
            };
            let Some(stats) = file.columns.get(name) else {
                // A file without the column holds NULLs in it (a file with
                // no statistics at all says nothing).
                return *null || file.columns.is_empty();
            };
            if *null {
                stats.null_count > 0
            } else {
                stats.null_count < file.rows
            }
        }
        Bound::Compare { source, op, value } => {
            let (min, max) = match source {
                Source::Data(name) => {
                    let Some(stats) = file.columns.get(name) else {
                        return file.columns.is_empty();
                    };
                    if stats.null_count >= file.rows {
                        // Every value is NULL: no comparison holds.
                        return false;
                    }
                    match (&stats.min, &stats.max) {
                        (Some(min), Some(max)) => (min.clone(), max.clone()),
                        _ => return true,
                    }
                }
                Source::Partition(key, kind) => {
                    let Some((_, text)) = hive_values(&file.partition).find(|(k, _)| k == key)
                    else {
                        return true;
                    };
                    let value = match kind {
                        HiveType::BigInt => match text.parse::<i64>() {
                            Ok(n) => StatValue::Int(n),
                            Err(_) => return true,
                        },
                        HiveType::Date | HiveType::Varchar => StatValue::Text(text.to_owned()),
                    };
                    (value.clone(), value)
                }
            };
            let (Some(low), Some(high)) = (compare(&min, value), compare(&max, value)) else {
                return true;
            };
            match op {
                Op::Eq => low.is_le() && high.is_ge(),
                Op::Lt => low.is_lt(),
                Op::Le => low.is_le(),
                Op::Gt => high.is_gt(),
                Op::Ge => high.is_ge(),
            }
        }
    }
}

/// The value of `min`/`max` of `column` over `files` from their statistics,
/// when exact: `Some(None)` when no file holds a non-NULL value, `None`
/// when the statistics cannot say (a file without them, a NaN or long
/// string, a column type whose order DuckDB defines otherwise).
pub(crate) fn extreme(
    files: &[DataFile],
    column: &ColumnDef,
    max: bool,
) -> Option<Option<StatValue>> {
    if !matches!(
        column.column_type,
        ColumnType::Int64 | ColumnType::Timestamp | ColumnType::String | ColumnType::Boolean
    ) {
        return None;
    }
    let mut best: Option<StatValue> = None;
    for file in files {
        let Some(stats) = file.columns.get(&column.name) else {
            if file.columns.is_empty() {
                return None;
            }
            // The file has no such column: only NULLs.
            continue;
        };
        if stats.null_count >= file.rows {
            continue;
        }
        let value = if max {
            stats.max.as_ref()?
        } else {
            stats.min.as_ref()?
        };
        let replace = match &best {
            None => true,
            Some(current) => {
                let order = compare(value, current)?;
                if max { order.is_gt() } else { order.is_lt() }
            }
        };
        if replace {
            best = Some(value.clone());
        }
    }
    Some(best)
}

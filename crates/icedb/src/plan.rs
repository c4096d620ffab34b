//! Planning from the SQL. DuckDB's own parser (`json_serialize_sql`) turns a
//! query into JSON; this module reads it to find (1) the predicates of the
//! table scan's `WHERE`, which skip files whose Hive partition or per-file
//! statistics rule out every row, and (2) aggregates the log answers alone:
//! `count(*)` without a filter, `min`/`max` of a column whose statistics are
//! exact.
//!
//! Soundness comes first, and everything not understood means "may match":
//! - a statement is planned only when it reads the table exactly once,
//!   straight from its top-level `FROM` (no join, CTE of the same name,
//!   table function or sample), because the pruned view is what every
//!   reference to the table would see;
//! - only `AND`, `OR`, `=`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN`,
//!   `IS [NOT] NULL` between a column and a constant are used; a constant is
//!   converted to the column's type the way DuckDB would cast it (timestamps
//!   by DuckDB itself, in the connection's time zone), and a comparison whose
//!   conversion is not exact is not used;
//! - partition columns are typed once per query from every partition of the
//!   version read (`hive_types`), so pruning never changes a column's type.

use std::collections::BTreeMap;

use icedb_meta::{ColumnDef, ColumnType, DataFile, StatValue};
use serde_json::Value;

use crate::write::compare;

/// How DuckDB types a Hive partition column: `BIGINT` when every value is
/// a canonical integer, `DATE` when every value is `YYYY-MM-DD`, else
/// `VARCHAR` (DuckDB's own inference, made for the whole version so a
/// pruned file list types it the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HiveType {
    BigInt,
    Date,
    Varchar,
}

impl HiveType {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            HiveType::BigInt => "BIGINT",
            HiveType::Date => "DATE",
            HiveType::Varchar => "VARCHAR",
        }
    }

    fn fits(self, value: &str) -> bool {
        match self {
            HiveType::BigInt => value.parse::<i64>().is_ok_and(|n| n.to_string() == value),
            HiveType::Date => is_iso_date(value),
            HiveType::Varchar => true,
        }
    }
}

fn is_iso_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// The `key=value` segments of a Hive partition path.
pub(crate) fn hive_values(partition: &str) -> impl Iterator<Item = (&str, &str)> {
    partition
        .split('/')
        .filter_map(|segment| segment.split_once('='))
}

/// The type of every partition column over `partitions` (keys in first-seen
/// order). `integer_keys` are keys the table's definition makes integers
/// (the built-in time partitioning's zero-padded `y`, `m`, `d`, `h`): they
/// are BIGINT whenever every value is digits, so `m` does not turn from
/// BIGINT to VARCHAR the day `m=09` appears.
pub(crate) fn hive_types<'a>(
    partitions: impl IntoIterator<Item = &'a str>,
    integer_keys: &[&str],
) -> Vec<(String, HiveType)> {
    // Per key: whether every value so far is a BIGINT, a DATE.
    let mut seen: Vec<(String, bool, bool)> = Vec::new();
    for partition in partitions {
        for (key, value) in hive_values(partition) {
            let at = match seen.iter().position(|(k, ..)| k == key) {
                Some(at) => at,
                None => {
                    seen.push((key.to_owned(), true, true));
                    seen.len() - 1
                }
            };
            let (_, bigint, date) = &mut seen[at];
            *bigint &= if integer_keys.contains(&key) {
                !value.is_empty() && value.len() <= 18 && value.bytes().all(|b| b.is_ascii_digit())
            } else {
                HiveType::BigInt.fits(value)
            };
            *date &= HiveType::Date.fits(value);
        }
    }
    seen.into_iter()
        .map(|(key, bigint, date)| {
            let kind = if bigint {
                HiveType::BigInt
            } else if date {
                HiveType::Date
            } else {
                HiveType::Varchar
            };
            (key, kind)
        })
        .collect()
}

/// A comparison operator, read as `column <op> constant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn parse(kind: &str) -> Option<Op> {
        Some(match kind {
            "COMPARE_EQUAL" => Op::Eq,
            "COMPARE_LESSTHAN" => Op::Lt,
            "COMPARE_LESSTHANOREQUALTO" => Op::Le,
            "COMPARE_GREATERTHAN" => Op::Gt,
            "COMPARE_GREATERTHANOREQUALTO" => Op::Ge,
            _ => return None,
        })
    }

    /// The operator with its sides swapped (`5 < x` is `x > 5`).
    fn flipped(self) -> Op {
        match self {
            Op::Eq => Op::Eq,
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
        }
    }
}

/// A constant as the parser wrote it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    /// An exact number: `units / 10^scale`.
    Decimal {
        units: i128,
        scale: u32,
    },
    Double(f64),
    Text(String),
    Bool(bool),
    /// `CAST('text' AS type)` (also `TIMESTAMP '...'`), type as DuckDB
    /// names it.
    Cast {
        text: String,
        to: String,
    },
}

/// A `WHERE` predicate over the table's columns, as parsed.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Compare {
        column: String,
        op: Op,
        value: Literal,
    },
    In {
        column: String,
        values: Vec<Literal>,
    },
    IsNull {
        column: String,
        null: bool,
    },
    Unknown,
}

/// An aggregate of the select list the log can answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Aggregate {
    CountStar,
    Min(String),
    Max(String),
}

/// What planning found in a query.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    filter: Option<Expr>,
    aggregates: Option<Vec<Aggregate>>,
}

impl Plan {
    /// Reads DuckDB's parse of a single SELECT over the view `table`.
    pub(crate) fn of(parsed: &Value, table: &str) -> Plan {
        let node = &parsed["statements"][0]["node"];
        if node["type"] != "SELECT_NODE" || references(parsed, table) != 1 {
            return Plan::default();
        }
        let from = &node["from_table"];
        let direct = from["type"] == "BASE_TABLE"
            && eq_name(&from["table_name"], table)
            && is_empty_text(&from["schema_name"])
            && is_empty_text(&from["catalog_name"])
            && from["at_clause"].is_null()
            && from["sample"].is_null()
            && node["sample"].is_null();
        if !direct {
            return Plan::default();
        }
        let qualifier = match from["alias"].as_str() {
            Some(alias) if !alias.is_empty() => alias,
            _ => table,
        };
        let filter =
            (!node["where_clause"].is_null()).then(|| parse_expr(&node["where_clause"], qualifier));
        let aggregates = (empty_array(&node["modifiers"])
            && empty_array(&node["group_expressions"])
            && empty_array(&node["group_sets"])
            && node["having"].is_null()
            && node["qualify"].is_null()
            && node["aggregate_handling"] == "STANDARD_HANDLING"
            && empty_array(&node["cte_map"]["map"]))
        .then(|| {
            node["select_list"]
                .as_array()?
                .iter()
                .map(|item| parse_aggregate(item, qualifier))
                .collect::<Option<Vec<_>>>()
        })
        .flatten()
        .filter(|list| !list.is_empty());
        Plan { filter, aggregates }
    }

    /// Aggregates the log can answer, in select-list order, if the whole
    /// select list is made of them (and the `WHERE`, if any, is exact: see
    /// [`Filter::exact`]).
    pub(crate) fn aggregates(&self) -> Option<&[Aggregate]> {
        self.aggregates.as_deref()
    }

    /// Binds the `WHERE` to the table's columns: `schema` for data columns,
    /// `hive` for partition columns; `timestamp` converts a constant
    /// compared with a timestamp column to microseconds as DuckDB would
    /// (`None`: cannot).
    pub(crate) fn filter(
        &self,
        schema: &[ColumnDef],
        hive: &[(String, HiveType)],
        timestamp: &mut dyn FnMut(&Literal) -> Option<i64>,
    ) -> Filter {
        let columns = Columns::new(schema, hive);
        Filter(
            self.filter
                .as_ref()
                .map(|expr| bind(expr, &columns, timestamp)),
        )
    }
}

/// How many times the statement names `table` as a table (a CTE or table
/// function anywhere counts as "unknown", so many).
fn references(value: &Value, table: &str) -> usize {
    match value {
        Value::Object(map) => {
            let here = match map.get("type").and_then(Value::as_str) {
                Some("BASE_TABLE") if map.get("table_name").is_some_and(|n| eq_name(n, table)) => 1,
                Some("TABLE_FUNCTION") => 2,
                _ => 0,
            };
            let cte = map.get("cte_map").map_or(0, |ctes| {
                ctes["map"].as_array().map_or(0, |list| {
                    list.iter()
                        .filter(|entry| eq_name(&entry["key"], table))
                        .count()
                        * 2
                })
            });
            here + cte + map.values().map(|v| references(v, table)).sum::<usize>()
        }
        Value::Array(items) => items.iter().map(|v| references(v, table)).sum(),
        _ => 0,
    }
}

fn eq_name(value: &Value, name: &str) -> bool {
    value.as_str().is_some_and(|v| v.eq_ignore_ascii_case(name))
}

fn is_empty_text(value: &Value) -> bool {
    value.as_str().is_none_or(str::is_empty)
}

fn empty_array(value: &Value) -> bool {
    value.as_array().is_none_or(Vec::is_empty)
}

/// The column a `COLUMN_REF` names: `c` or `qualifier.c`.
fn column_of(expr: &Value, qualifier: &str) -> Option<String> {
    if expr["class"] != "COLUMN_REF" {
        return None;
    }
    match expr["column_names"].as_array()?.as_slice() {
        [name] => name.as_str().map(str::to_owned),
        [table, name] if eq_name(table, qualifier) => name.as_str().map(str::to_owned),
        _ => None,
    }
}

fn literal_of(expr: &Value) -> Option<Literal> {
    match expr["class"].as_str()? {
        "CONSTANT" => {
            let value = &expr["value"];
            if value["is_null"].as_bool()? {
                return Some(Literal::Null);
            }
            let raw = &value["value"];
            Some(match value["type"]["id"].as_str()? {
                "TINYINT" | "SMALLINT" | "INTEGER" | "BIGINT" | "UTINYINT" | "USMALLINT"
                | "UINTEGER" | "UBIGINT" => Literal::Decimal {
                    units: raw
                        .as_i64()
                        .map(i128::from)
                        .or(raw.as_u64().map(i128::from))?,
                    scale: 0,
                },
                "DECIMAL" => Literal::Decimal {
                    units: raw.as_i64().map(i128::from)?,
                    scale: u32::try_from(value["type"]["type_info"]["scale"].as_u64()?).ok()?,
                },
                "DOUBLE" => Literal::Double(raw.as_f64()?),
                "VARCHAR" => Literal::Text(raw.as_str()?.to_owned()),
                "BOOLEAN" => Literal::Bool(raw.as_bool()?),
                _ => return None,
            })
        }
        "CAST" if expr["try_cast"] == false => match literal_of(&expr["child"])? {
            Literal::Text(text) => Some(Literal::Cast {
                text,
                to: expr["cast_type"]["id"].as_str()?.to_owned(),
            }),
            _ => None,
        },
        _ => None,
    }
}

fn parse_expr(expr: &Value, qualifier: &str) -> Expr {
    let children = || -> Vec<Expr> {
        expr["children"]
            .as_array()
            .map(|list| list.iter().map(|c| parse_expr(c, qualifier)).collect())
            .unwrap_or_default()
    };
    let kind = expr["type"].as_str().unwrap_or_default();
    match (expr["class"].as_str().unwrap_or_default(), kind) {
        ("CONJUNCTION", "CONJUNCTION_AND") => Expr::And(children()),
        ("CONJUNCTION", "CONJUNCTION_OR") => Expr::Or(children()),
        ("COMPARISON", _) => {
            let Some(op) = Op::parse(kind) else {
                return Expr::Unknown;
            };
            let (left, right) = (&expr["left"], &expr["right"]);
            let (column, op, value) =
                match (column_of(left, qualifier), column_of(right, qualifier)) {
                    (Some(column), None) => (column, op, literal_of(right)),
                    (None, Some(column)) => (column, op.flipped(), literal_of(left)),
                    _ => return Expr::Unknown,
                };
            match value {
                Some(value) => Expr::Compare { column, op, value },
                None => Expr::Unknown,
            }
        }
        ("BETWEEN", "COMPARE_BETWEEN") => {
            let (Some(column), Some(low), Some(high)) = (
                column_of(&expr["input"], qualifier),
                literal_of(&expr["lower"]),
                literal_of(&expr["upper"]),
            ) else {
                return Expr::Unknown;
            };
            Expr::And(vec![
                Expr::Compare {
                    column: column.clone(),
                    op: Op::Ge,
                    value: low,
                },
                Expr::Compare {
                    column,
                    op: Op::Le,
                    value: high,
                },
            ])
        }
        ("OPERATOR", "COMPARE_IN") => {
            let Some([first, rest @ ..]) = expr["children"].as_array().map(Vec::as_slice) else {
                return Expr::Unknown;
            };
            let (Some(column), Some(values)) = (
                column_of(first, qualifier),
                rest.iter().map(literal_of).collect::<Option<Vec<_>>>(),
            ) else {
                return Expr::Unknown;
            };
            Expr::In { column, values }
        }
        ("OPERATOR", "OPERATOR_IS_NULL" | "OPERATOR_IS_NOT_NULL") => {
            match expr["children"].as_array().map(Vec::as_slice) {
                Some([only]) => match column_of(only, qualifier) {
                    Some(column) => Expr::IsNull {
                        column,
                        null: kind == "OPERATOR_IS_NULL",
                    },
                    None => Expr::Unknown,
                },
                _ => Expr::Unknown,
            }
        }
        _ => Expr::Unknown,
    }
}

fn parse_aggregate(item: &Value, qualifier: &str) -> Option<Aggregate> {
    let plain = item["class"] == "FUNCTION"
        && is_empty_text(&item["schema"])
        && is_empty_text(&item["catalog"])
        && item["filter"].is_null()
        && item["distinct"] == false
        && item["export_state"] == false
        && empty_array(&item["order_bys"]["orders"]);
    if !plain {
        return None;
    }
    let children = item["children"].as_array()?;
    match (item["function_name"].as_str()?, children.as_slice()) {
        ("count_star", []) => Some(Aggregate::CountStar),
        ("min", [column]) => column_of(column, qualifier).map(Aggregate::Min),
        ("max", [column]) => column_of(column, qualifier).map(Aggregate::Max),
        _ => None,
    }
}

/// Where a column's values come from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Data(String),
    Partition(String, HiveType),
}

/// The table's columns by the name SQL may use (DuckDB matches names
/// regardless of case); a name two columns answer to is not used.
struct Columns {
    by_name: BTreeMap<String, Option<(Source, Option<ColumnType>)>>,
}

impl Columns {
    fn new(schema: &[ColumnDef], hive: &[(String, HiveType)]) -> Columns {
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
enum Bound {
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

fn bind(
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
pub(crate) struct Filter(Option<Bound>);

impl Filter {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_columns_are_typed_over_every_partition() {
        let types = hive_types(
            ["y=2026/m=10/d=2026-11-01", "y=2025/m=09/d=2026-10-31"],
            &[],
        );
        assert_eq!(
            types,
            vec![
                ("y".to_owned(), HiveType::BigInt),
                ("m".to_owned(), HiveType::Varchar),
                ("d".to_owned(), HiveType::Date),
            ]
        );
        assert_eq!(hive_types(["k=1", "k=x"], &[])[0].1, HiveType::Varchar);
        assert_eq!(hive_types(["k=x", "k=1"], &[])[0].1, HiveType::Varchar);
        assert_eq!(
            hive_types(["k=1", "k=2026-01-01"], &[])[0].1,
            HiveType::Varchar
        );
        // Zero-padded values of a key the definition makes an integer.
        assert_eq!(hive_types(["y=2026/m=09"], &["m"])[1].1, HiveType::BigInt);
        assert_eq!(hive_types(["k=09"], &[])[0].1, HiveType::Varchar);
    }
}

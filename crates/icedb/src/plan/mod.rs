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

use serde_json::Value;

mod hive;
mod prune;

pub(crate) use hive::{HiveType, hive_types, hive_values};
pub(crate) use prune::{Filter, extreme, timestamp_text};

use icedb_meta::ColumnDef;
use prune::{Columns, bind};

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

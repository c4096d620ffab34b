//! The view a user query reads and the answers the log gives instead of
//! DuckDB: the live files (after planning) registered with DuckDB without
//! growing the SQL text, the table's columns and partition types kept
//! whatever is pruned, and `count(*)`/`min`/`max` from statistics.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use duckdb::Connection;
use icedb_meta::{ColumnDef, DataFile, PartitionStats, StatValue};

use crate::engine::{duck, quote_ident, quote_literal};
use crate::error::{Result, TableError};
use crate::kway::conform_to;
use crate::plan::{Aggregate, Filter, HiveType, Plan, extreme, hive_values};
use crate::schema::{arrow_schema, sql_type};

/// What a user query returned, how many files planning kept and how many
/// of them DuckDB read (none for an answer from the log).
pub(crate) struct Answer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub files_kept: usize,
    pub files_scanned: usize,
}

/// The view over `files`: the table's Hive columns typed for the whole
/// version, and every column of the table even when the files left after
/// pruning lack some (so pruning never changes what `*` or a name means).
///
/// The file list does not go into the SQL text: the URLs are appended to a
/// temporary table of the query's own connection and handed to
/// `read_parquet` as variables, one per set of columns the files hold (the
/// log knows each file's columns), so DuckDB reads one footer per file
/// instead of every footer at every bind (`union_by_name`). Inline parts
/// (rows the log holds) are decoded here and appended to a temporary table
/// unioned with the files.
///
/// `hive`: the partition columns and their types; `None` reads no
/// partition column at all (merges and rewrites, where a partition value
/// must never become data).
pub(crate) fn view_sql(
    connection: &Connection,
    schema: &[ColumnDef],
    hive: Option<&[(String, HiveType)]>,
    files: &[DataFile],
    urls: &[String],
) -> Result<String> {
    let hive_partitioning = hive.is_some();
    let hive = hive.unwrap_or(&[]);
    let null_of =
        |name: &str, sql_type: &str| format!("CAST(NULL AS {sql_type}) AS {}", quote_ident(name));
    let typed_nulls = |columns: &[&ColumnDef]| -> Vec<String> {
        columns
            .iter()
            .map(|c| null_of(&c.name, sql_type(c.column_type)))
            .collect()
    };
    let hive_columns = || {
        hive.iter()
            .filter(|(key, _)| !schema.iter().any(|c| c.name.eq_ignore_ascii_case(key)))
    };
    let (inline, objects): (Vec<&DataFile>, Vec<(&DataFile, &String)>) = {
        let (inline, objects): (Vec<_>, Vec<_>) = files
            .iter()
            .zip(urls)
            .partition(|(f, _)| f.inline.is_some());
        (inline.into_iter().map(|(f, _)| f).collect(), objects)
    };
    if files.is_empty() {
        let mut columns = typed_nulls(&schema.iter().collect::<Vec<_>>());
        columns.extend(hive_columns().map(|(key, kind)| null_of(key, kind.sql())));
        if columns.is_empty() {
            columns.push("NULL AS \"_empty\"".to_owned());
        }
        return Ok(format!("SELECT {} WHERE false", columns.join(", ")));
    }
    // Files by the columns they hold; `None`: a file written before the
    // log kept statistics, read with union_by_name.
    let mut groups: BTreeMap<Option<Vec<&str>>, Vec<usize>> = BTreeMap::new();
    for (at, (file, _)) in objects.iter().enumerate() {
        let columns = (!file.columns.is_empty())
            .then(|| file.columns.keys().map(String::as_str).collect::<Vec<_>>());
        groups.entry(columns).or_default().push(at);
    }
    connection
        .execute_batch("CREATE OR REPLACE TEMP TABLE icedb_files (grp INTEGER, url VARCHAR)")
        .map_err(duck)?;
    {
        let mut appender = connection
            .appender_to_catalog_and_db("icedb_files", "temp", "main")
            .map_err(duck)?;
        for (group, members) in groups.values().enumerate() {
            for &at in members {
                appender
                    .append_row(duckdb::params![group as i32, objects[at].1])
                    .map_err(duck)?;
            }
        }
        appender.flush().map_err(duck)?;
    }
    let hive_types = if !hive_partitioning || hive.is_empty() {
        String::new()
    } else {
        let types: Vec<String> = hive
            .iter()
            .map(|(key, kind)| format!("{}: {}", quote_literal(key), quote_literal(kind.sql())))
            .collect();
        format!(", hive_types = {{{}}}", types.join(", "))
    };
    // A column widened from int64 to float64 leaves older files int64:
    // read alone, a group whose first file is one of them would make
    // DuckDB cast every double in the group to BIGINT (1.5 → 2). Tables
    // with a float64 column therefore unify types by name (BIGINT and
    // DOUBLE meet as DOUBLE), at the cost of every footer at bind.
    let has_float = schema
        .iter()
        .any(|c| c.column_type == icedb_meta::ColumnType::Float64);
    let mut scans = Vec::with_capacity(groups.len());
    for (group, columns) in groups.keys().enumerate() {
        connection
            .execute_batch(&format!(
                "SET VARIABLE icedb_files_{group} = (SELECT list(url) FROM icedb_files WHERE grp = {group})"
            ))
            .map_err(duck)?;
        scans.push(format!(
            "SELECT * FROM read_parquet(getvariable('icedb_files_{group}'), \
             hive_partitioning = {hive_partitioning}, union_by_name = {}{hive_types})",
            columns.is_none() || has_float
        ));
    }
    if !inline.is_empty() {
        let hive: Vec<(String, HiveType)> = hive_columns().cloned().collect();
        scans.push(register_inline(connection, schema, &hive, &inline)?);
    }
    let mut scan = scans.join(" UNION ALL BY NAME ");
    let missing: Vec<&ColumnDef> = if groups.contains_key(&None) || !inline.is_empty() {
        Vec::new()
    } else {
        schema
            .iter()
            .filter(|c| {
                !groups
                    .keys()
                    .flatten()
                    .any(|columns| columns.contains(&c.name.as_str()))
            })
            .collect()
    };
    if !missing.is_empty() {
        scan = format!(
            "{scan} UNION ALL BY NAME SELECT {} WHERE false",
            typed_nulls(&missing).join(", ")
        );
    }
    if schema.is_empty() {
        return Ok(scan);
    }
    // Columns in the table's order, then the partition columns, whichever
    // files are left.
    // Float64 columns cast: files left after pruning may all be int64 ones.
    let mut columns: Vec<String> = schema
        .iter()
        .map(|c| match c.column_type {
            icedb_meta::ColumnType::Float64 => {
                format!("CAST({0} AS DOUBLE) AS {0}", quote_ident(&c.name))
            }
            _ => quote_ident(&c.name),
        })
        .collect();
    columns.extend(hive_columns().map(|(key, _)| quote_ident(key)));
    Ok(format!("SELECT {} FROM ({scan})", columns.join(", ")))
}

/// Appends the rows of inline parts to the temporary table `icedb_inline`
/// (every column of the table, then `hive`'s partition columns with the
/// values of each part's partition) and returns the SQL reading it.
fn register_inline(
    connection: &Connection,
    schema: &[ColumnDef],
    hive: &[(String, HiveType)],
    parts: &[&DataFile],
) -> Result<String> {
    let mut definitions: Vec<String> = schema
        .iter()
        .map(|c| format!("{} {}", quote_ident(&c.name), sql_type(c.column_type)))
        .collect();
    definitions.extend(
        hive.iter()
            .map(|(key, kind)| format!("{} {}", quote_ident(key), kind.sql())),
    );
    connection
        .execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE icedb_inline ({})",
            definitions.join(", ")
        ))
        .map_err(duck)?;
    let data = arrow_schema(schema);
    let mut fields: Vec<Field> = data.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(
        hive.iter()
            .map(|(key, kind)| Field::new(key, kind.arrow_type(), true)),
    );
    let full = Arc::new(Schema::new(fields));
    let mut appender = connection
        .appender_to_catalog_and_db("icedb_inline", "temp", "main")
        .map_err(duck)?;
    let reader = crate::inline_part::PartReader::default();
    for part in parts {
        let decoded = reader.read(part)?;
        let values: Vec<(&str, &str)> = hive_values(&part.partition).collect();
        for batch in decoded.batches {
            let batch = conform_to(&batch, &data)?;
            let rows = batch.num_rows();
            let mut columns = batch.columns().to_vec();
            for (key, kind) in hive {
                let value = values.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
                columns.push(kind.array(value, rows));
            }
            appender
                .append_record_batch(RecordBatch::try_new(full.clone(), columns)?)
                .map_err(duck)?;
        }
    }
    appender.flush().map_err(duck)?;
    Ok("SELECT * FROM temp.icedb_inline".to_owned())
}

/// Runs the user's statement over `view` (the table's name), holding at
/// most `limits` (rows, bytes) of result.
pub(crate) fn run_user_query(
    connection: &Connection,
    name: &str,
    view: &str,
    sql: &str,
    files_scanned: usize,
    (max_rows, max_bytes): (Option<usize>, Option<usize>),
) -> Result<Answer> {
    connection
        .execute_batch(&format!(
            "CREATE OR REPLACE TEMP VIEW {} AS {view}",
            quote_ident(name)
        ))
        .map_err(duck)?;
    let mut statement = connection.prepare(sql).map_err(duck)?;
    let arrow = statement.query_arrow([]).map_err(duck)?;
    let schema = arrow.get_schema();
    let mut batches = Vec::new();
    let (mut rows, mut bytes) = (0, 0);
    for batch in arrow {
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
        if let Some(limit) = max_rows
            && rows > limit
        {
            return Err(TableError::ResultTooLarge { limit });
        }
        if let Some(limit) = max_bytes
            && bytes > limit
        {
            return Err(TableError::ResultTooManyBytes { limit });
        }
        batches.push(batch);
    }
    Ok(Answer {
        schema,
        batches,
        files_kept: files_scanned,
        files_scanned,
    })
}

/// What the log knows of the rows a query would read.
pub(crate) enum Known<'a> {
    /// The files kept, with their row counts and statistics.
    Files(&'a [DataFile]),
    /// The totals of the partitions kept: enough for `count(*)` only.
    Partitions(&'a [PartitionStats]),
}

impl Known<'_> {
    fn rows(&self) -> i64 {
        match self {
            Known::Files(files) => files.iter().map(|f| f.rows as i64).sum(),
            Known::Partitions(partitions) => partitions.iter().map(|p| p.rows as i64).sum(),
        }
    }

    fn files(&self) -> usize {
        match self {
            Known::Files(files) => files.len(),
            Known::Partitions(partitions) => partitions.iter().map(|p| p.files as usize).sum(),
        }
    }
}

/// `count(*)`, `min(c)`, `max(c)` (and only those, without a filter or
/// with one on partition columns only) answered from the files' row counts
/// and statistics. DuckDB runs the
/// statement over an empty view of the table's columns first, so the
/// answer has exactly the names and types DuckDB would give; the log's
/// values then replace its single row.
pub(crate) fn metadata_answer(
    connection: &Connection,
    name: &str,
    sql: &str,
    (plan, filter): (&Plan, &Filter),
    (schema, hive): (&[ColumnDef], &[(String, HiveType)]),
    known: Known<'_>,
    limits: (Option<usize>, Option<usize>),
) -> Result<Option<Answer>> {
    let Some(aggregates) = plan.aggregates() else {
        return Ok(None);
    };
    if !filter.exact() {
        return Ok(None);
    }
    let mut values = Vec::with_capacity(aggregates.len());
    for aggregate in aggregates {
        let value = match aggregate {
            Aggregate::CountStar => Some(StatValue::Int(known.rows())),
            Aggregate::Min(column) | Aggregate::Max(column) => {
                let Known::Files(files) = known else {
                    return Ok(None);
                };
                let Some(def) = schema.iter().find(|c| c.name.eq_ignore_ascii_case(column)) else {
                    return Ok(None);
                };
                let max = matches!(aggregate, Aggregate::Max(_));
                match extreme(files, def, max) {
                    Some(value) => value,
                    None => return Ok(None),
                }
            }
        };
        values.push(value);
    }
    let empty = run_user_query(
        connection,
        name,
        &view_sql(connection, schema, Some(hive), &[], &[])?,
        sql,
        0,
        limits,
    )?;
    let fields = empty.schema.fields();
    if fields.len() != values.len()
        || empty
            .batches
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>()
            != 1
    {
        return Ok(None);
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(values.len());
    for (field, value) in fields.iter().zip(values) {
        let array: ArrayRef = match value {
            None => new_null_array(field.data_type(), 1),
            Some(StatValue::Int(n)) => Arc::new(Int64Array::from(vec![n])),
            Some(StatValue::Text(text)) => Arc::new(StringArray::from(vec![text])),
            Some(StatValue::Boolean(b)) => Arc::new(BooleanArray::from(vec![b])),
            Some(StatValue::Float(_)) => return Ok(None),
        };
        let Ok(array) = arrow::compute::cast(&array, field.data_type()) else {
            return Ok(None);
        };
        columns.push(array);
    }
    let batch = RecordBatch::try_new(empty.schema.clone(), columns)?;
    Ok(Some(Answer {
        schema: empty.schema,
        batches: vec![batch],
        files_kept: known.files(),
        files_scanned: 0,
    }))
}

//! Types of Hive partition columns, decided once per query for the whole
//! version read, so a pruned file list never changes a column's type.

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

    pub(crate) fn arrow_type(self) -> arrow::datatypes::DataType {
        use arrow::datatypes::DataType;
        match self {
            HiveType::BigInt => DataType::Int64,
            HiveType::Date => DataType::Date32,
            HiveType::Varchar => DataType::Utf8,
        }
    }

    /// `rows` copies of a partition value as DuckDB reads it from a path
    /// (`None`, empty or `NULL`: null; a value that does not convert: null).
    pub(crate) fn array(self, value: Option<&str>, rows: usize) -> arrow::array::ArrayRef {
        use std::sync::Arc;

        use arrow::array::{Date32Array, Int64Array, StringArray};
        let value = value.filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("NULL"));
        match self {
            HiveType::BigInt => {
                let n = value.and_then(|v| v.parse::<i64>().ok());
                Arc::new(Int64Array::from(vec![n; rows]))
            }
            HiveType::Date => {
                let days = value
                    .and_then(|v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
                    .map(|d| (d - chrono::NaiveDate::default()).num_days() as i32);
                Arc::new(Date32Array::from(vec![days; rows]))
            }
            HiveType::Varchar => Arc::new(StringArray::from(vec![value; rows])),
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

pub(super) fn is_iso_date(text: &str) -> bool {
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

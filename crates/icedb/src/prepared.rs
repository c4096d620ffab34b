//! Rows formatted for a table and not yet inserted ([`PreparedRows`], from
//! [`crate::Table::prepare_ndjson`]) and several of them joined into one
//! insert for group commit ([`JoinedRows`]), which gives each input back
//! exactly for a retry alone.

use std::sync::Arc;

use crate::{Batch, Column};

/// Rows formatted for a table and not yet inserted (see
/// [`crate::Table::prepare_ndjson`]).
#[derive(Debug, Clone)]
pub struct PreparedRows {
    pub(crate) batch: Batch,
    /// The input line of each row, for NDJSON input.
    pub(crate) lines: Option<Vec<usize>>,
}

impl PreparedRows {
    pub fn row_count(&self) -> usize {
        self.batch.row_count as usize
    }
}

/// Prepared inputs joined into one insert (group commit), their rows moved
/// rather than copied: columns are united by name and an input lacking a
/// column holds nulls there. [`JoinedRows::split`] gives every input back
/// as it was, so that after a group failed on someone's rows each input can
/// be inserted alone. Errors of the joined insert name rows of the whole
/// group, not input lines.
#[derive(Debug)]
pub struct JoinedRows {
    pub(crate) batch: Arc<Batch>,
    /// Each input's row count, column names (in its order) and input lines.
    inputs: Vec<(usize, Vec<String>, Option<Vec<usize>>)>,
}

impl JoinedRows {
    pub fn join(inputs: Vec<PreparedRows>) -> JoinedRows {
        let mut shapes = Vec::with_capacity(inputs.len());
        let mut batches = Vec::with_capacity(inputs.len());
        for PreparedRows { batch, lines } in inputs {
            let names = batch.columns.iter().map(|c| c.name.clone()).collect();
            shapes.push((batch.row_count as usize, names, lines));
            batches.push(batch);
        }
        JoinedRows {
            batch: Arc::new(Batch::concat(batches)),
            inputs: shapes,
        }
    }

    pub fn row_count(&self) -> usize {
        self.batch.row_count as usize
    }

    /// The inputs as they were joined, in order.
    pub fn split(self) -> Vec<PreparedRows> {
        let mut start = 0;
        self.inputs
            .into_iter()
            .map(|(rows, names, lines)| {
                let columns = names
                    .into_iter()
                    .map(|name| {
                        let joined = self.batch.column(&name).expect("joined by name");
                        Column {
                            values: joined.values[start..start + rows].to_vec(),
                            name,
                        }
                    })
                    .collect();
                start += rows;
                PreparedRows {
                    batch: Batch {
                        row_count: rows as u32,
                        columns,
                    },
                    lines,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    fn input(columns: Vec<(&str, Vec<Value>)>, lines: Option<Vec<usize>>) -> PreparedRows {
        let row_count = columns[0].1.len() as u32;
        PreparedRows {
            batch: Batch {
                row_count,
                columns: columns
                    .into_iter()
                    .map(|(name, values)| Column {
                        name: name.to_owned(),
                        values,
                    })
                    .collect(),
            },
            lines,
        }
    }

    #[test]
    fn joined_inputs_split_back_into_exactly_what_was_joined() {
        let text = |s: &str| Value::Text(s.to_owned());
        let inputs = vec![
            input(
                vec![
                    ("a", vec![Value::Int(1), Value::Int(2)]),
                    ("b", vec![text("x"), Value::Null]),
                ],
                Some(vec![1, 3]),
            ),
            // Other column order, a column of nulls only, a new column.
            input(
                vec![
                    ("c", vec![Value::Null]),
                    ("b", vec![text("y")]),
                    ("a", vec![Value::Int(3)]),
                ],
                None,
            ),
            input(
                vec![("d", vec![Value::Boolean(true), Value::Float(0.5)])],
                Some(vec![2, 5]),
            ),
        ];
        let joined = JoinedRows::join(inputs.clone());
        assert_eq!(joined.row_count(), 5);
        let names: Vec<&str> = joined
            .batch
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(
            joined.batch.column("d").unwrap().values,
            [
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Boolean(true),
                Value::Float(0.5)
            ]
        );
        let split = joined.split();
        assert_eq!(split.len(), inputs.len());
        for (back, sent) in split.iter().zip(&inputs) {
            assert_eq!(back.batch, sent.batch);
            assert_eq!(back.lines, sent.lines);
        }
    }
}

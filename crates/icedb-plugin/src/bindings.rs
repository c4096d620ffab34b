//! Host bindings generated from `wit/icedb.wit`, one per world, sharing the
//! types of `icedb:plugin/types`.

pub(crate) mod format_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "format-row-plugin",
        additional_derives: [PartialEq],
    });
}

pub(crate) mod partition_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "partition-plugin",
        with: { "icedb:plugin/types": super::format_world::icedb::plugin::types },
    });
}

pub(crate) use format_world::icedb::plugin::types::PluginError as GuestError;
pub use format_world::icedb::plugin::types::{Batch, Column, Value};

impl Batch {
    /// The column named `name`, if the batch has one.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Appends `batches` into one, rows in order: columns are united by
    /// name (first appearance decides the order) and rows of a batch that
    /// lacks a column hold null there.
    pub fn concat(batches: Vec<Batch>) -> Batch {
        let row_count: u32 = batches.iter().map(|b| b.row_count).sum();
        let mut columns: Vec<Column> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        let mut rows_before = 0usize;
        for batch in batches {
            let rows = batch.row_count as usize;
            for column in batch.columns {
                let position = *index.entry(column.name.clone()).or_insert_with(|| {
                    columns.push(Column {
                        name: column.name.clone(),
                        values: Vec::with_capacity(row_count as usize),
                    });
                    columns.len() - 1
                });
                let values = &mut columns[position].values;
                values.resize(rows_before, Value::Null);
                values.extend(column.values);
            }
            rows_before += rows;
        }
        for column in &mut columns {
            column.values.resize(rows_before, Value::Null);
        }
        Batch { row_count, columns }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, values: Vec<Value>) -> Column {
        Column {
            name: name.to_owned(),
            values,
        }
    }

    #[test]
    fn concat_unites_columns_and_fills_nulls() {
        let first = Batch {
            row_count: 2,
            columns: vec![column("a", vec![Value::Int(1), Value::Int(2)])],
        };
        let second = Batch {
            row_count: 1,
            columns: vec![
                column("b", vec![Value::Text("x".into())]),
                column("a", vec![Value::Float(0.5)]),
            ],
        };
        let empty_columns = Batch {
            row_count: 1,
            columns: vec![],
        };
        let joined = Batch::concat(vec![first, second, empty_columns]);
        assert_eq!(joined.row_count, 4);
        assert_eq!(
            joined.columns,
            vec![
                column(
                    "a",
                    vec![Value::Int(1), Value::Int(2), Value::Float(0.5), Value::Null]
                ),
                column(
                    "b",
                    vec![
                        Value::Null,
                        Value::Null,
                        Value::Text("x".into()),
                        Value::Null
                    ]
                ),
            ]
        );
    }
}

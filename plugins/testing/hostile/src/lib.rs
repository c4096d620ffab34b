//! `hostile`: a TEST-ONLY component that misbehaves on request, so IceDB's
//! tests can prove the host survives bad plugins. Never use it in a table.
//!
//! Each row is a JSON object; its `mode` field picks the behaviour of the
//! batch it is in (format-row reads it from the raw JSON, partition-strategy
//! from the formatted `mode` column):
//! `trap` panics, `loop` spins forever, `bomb` allocates without end,
//! `short` returns one result too few, `err` returns a plugin error for the
//! row, `dotdot`/`abs`/`empty`/`slash` return the partition paths `../x`,
//! `/abs`, `` and `a//b`; anything else behaves (`ok=1`).

wit_bindgen::generate!({ path: "../../../wit", world: "format-and-partition-plugin" });

use exports::icedb::plugin::format_row::Guest as FormatRow;
use exports::icedb::plugin::partition_strategy::Guest as PartitionStrategy;
use icedb::plugin::types::{Batch, Column, PluginError, Value};

struct Hostile;

/// Misbehaves if `mode` asks for a behaviour both interfaces share.
fn misbehave(mode: &str, row: usize) -> Result<(), PluginError> {
    match mode {
        "trap" => panic!("hostile plugin asked to trap at row {row}"),
        "loop" => loop {
            std::hint::black_box(row);
        },
        "bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![0xA5; 8 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "err" => Err(PluginError {
            row: Some(row as u32),
            reason: "hostile plugin refuses this row".into(),
        }),
        _ => Ok(()),
    }
}

fn mode_of_json(row: &str) -> &str {
    const KEY: &str = "\"mode\":\"";
    row.find(KEY)
        .map(|at| &row[at + KEY.len()..])
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("ok")
}

impl FormatRow for Hostile {
    fn configure(_settings: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn format(rows: Vec<String>) -> Result<Batch, PluginError> {
        let mut modes = Vec::with_capacity(rows.len());
        let mut short = false;
        for (i, row) in rows.iter().enumerate() {
            let mode = mode_of_json(row);
            misbehave(mode, i)?;
            short |= mode == "short";
            modes.push(Value::Text(mode.to_owned()));
        }
        if short {
            modes.pop();
        }
        Ok(Batch {
            row_count: modes.len() as u32,
            columns: vec![Column {
                name: "mode".into(),
                values: modes,
            }],
        })
    }
}

impl PartitionStrategy for Hostile {
    fn configure(_settings: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn fields() -> Vec<String> {
        vec!["mode".into()]
    }

    fn partition(batch: Batch) -> Result<Vec<String>, PluginError> {
        let mut paths = Vec::new();
        let mut short = false;
        for (i, value) in batch.columns[0].values.iter().enumerate() {
            let mode = match value {
                Value::Text(mode) => mode.as_str(),
                _ => "ok",
            };
            misbehave(mode, i)?;
            short |= mode == "short";
            paths.push(
                match mode {
                    "dotdot" => "../x",
                    "abs" => "/abs",
                    "empty" => "",
                    "slash" => "a//b",
                    _ => "ok=1",
                }
                .to_owned(),
            );
        }
        if short {
            paths.pop();
        }
        Ok(paths)
    }
}

export!(Hostile);

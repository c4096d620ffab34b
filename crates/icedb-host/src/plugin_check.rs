//! `icedb-host plugin check`: load a component, say what it exports, run
//! sample rows through it and show what comes out.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use icedb::Batch;
use icedb::builtin::JsonTextFormat;
use icedb::{HostOptions, Interface, PluginHost};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The component (.wasm) to check.
    component: PathBuf,
    /// A setting `key=value` passed to the plugin's `configure` (repeatable).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = crate::parse_setting)]
    config: Vec<(String, String)>,
    /// Sample rows, NDJSON (one JSON object per line); `-` reads standard input.
    #[arg(long, short = 'i')]
    input: Option<PathBuf>,
    /// For a partition strategy: the format-row component that formats the
    /// sample rows first (default: the component itself if it exports
    /// format-row, else the built-in JSON-text formatter).
    #[arg(long)]
    format_with: Option<PathBuf>,
    /// How many output rows to print.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Time cap per batch, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
    /// Memory cap per instance, in MiB.
    #[arg(long, default_value_t = 256)]
    memory_mib: usize,
}

pub fn check(args: CheckArgs) -> Result<()> {
    let host = PluginHost::new(HostOptions {
        memory_limit: args.memory_mib << 20,
        call_timeout: Duration::from_millis(args.timeout_ms),
        ..HostOptions::default()
    })?;
    let info = host.inspect(&args.component)?;
    let size = std::fs::metadata(&args.component)
        .map(|m| m.len())
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "component   {} ({} KiB, sha256 {})",
        info.path.display(),
        size / 1024,
        &info.hash[..16]
    )?;
    let exports: Vec<_> = info
        .exports
        .iter()
        .map(|i| format!("{}@{}", i.wit_name(), icedb::CONTRACT_VERSION))
        .collect();
    writeln!(
        out,
        "exports     {}",
        if exports.is_empty() {
            "(no icedb:plugin interface)".to_owned()
        } else {
            exports.join(", ")
        }
    )?;
    writeln!(
        out,
        "imports     {}",
        if info.imports.is_empty() {
            "(none)".to_owned()
        } else {
            info.imports.join(", ")
        }
    )?;
    let how = if info.from_cache {
        "from the compile cache"
    } else {
        "compiled, now cached"
    };
    writeln!(out, "loaded in   {} ({how})", millis(info.load_time))?;
    if info.exports.is_empty() {
        bail!(
            "{} exports neither icedb:plugin/format-row nor icedb:plugin/partition-strategy",
            info.path.display()
        );
    }

    let rows = match &args.input {
        Some(path) => read_ndjson(path)?,
        None => Vec::new(),
    };
    let does_format = info.exports.contains(&Interface::FormatRow);
    let does_partition = info.exports.contains(&Interface::PartitionStrategy);

    let mut formatted: Option<Batch> = None;
    if does_format {
        let started = Instant::now();
        let plugin = host.load_format(&args.component, &args.config)?;
        writeln!(
            out,
            "format-row  configured in {}",
            millis(started.elapsed())
        )?;
        if !rows.is_empty() {
            let started = Instant::now();
            let batch = plugin.format_blocking(&rows)?;
            report_rate(&mut out, "format", rows.len(), started.elapsed())?;
            let schema: Vec<_> = batch
                .columns
                .iter()
                .map(|c| format!("{}: {}", c.name, column_type(c)))
                .collect();
            writeln!(out, "columns     {}", schema.join(", "))?;
            for row in 0..(batch.row_count as usize).min(args.limit) {
                writeln!(out, "  {}", icedb::rows::row_to_json(&batch, row))?;
            }
            formatted = Some(batch);
        }
    }
    if does_partition {
        let started = Instant::now();
        let plugin = host.load_partition(&args.component, &args.config)?;
        writeln!(
            out,
            "partition   configured in {}; reads fields: {}",
            millis(started.elapsed()),
            plugin.fields().join(", ")
        )?;
        if !rows.is_empty() {
            let batch = match (formatted, &args.format_with) {
                (_, Some(format_path)) => {
                    host.load_format(format_path, &[])?.format_blocking(&rows)?
                }
                (Some(batch), None) => batch,
                (None, None) => JsonTextFormat::default()
                    .format(&rows)
                    .context("formatting the sample rows with the built-in formatter")?,
            };
            let started = Instant::now();
            let paths = plugin.partition_blocking(&plugin.project(&batch))?;
            report_rate(&mut out, "partition", rows.len(), started.elapsed())?;
            for (row, path) in paths.iter().enumerate().take(args.limit) {
                writeln!(out, "  row {row:<5} {path}")?;
            }
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for path in &paths {
                *counts.entry(path).or_default() += 1;
            }
            writeln!(out, "partitions  {} distinct", counts.len())?;
            for (path, count) in counts.iter().take(args.limit) {
                writeln!(out, "  {path:<40} {count} rows")?;
            }
        }
    }
    if rows.is_empty() {
        writeln!(out, "(no --input given: nothing run)")?;
    }
    Ok(())
}

fn read_ndjson(path: &PathBuf) -> Result<Vec<String>> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ))
    };
    let mut rows = Vec::new();
    for line in reader.lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if !line.trim().is_empty() {
            rows.push(line);
        }
    }
    Ok(rows)
}

fn column_type(column: &icedb::Column) -> &'static str {
    let mut kinds = column
        .values
        .iter()
        .map(icedb::rows::type_name)
        .filter(|t| *t != "null");
    let first = kinds.next().unwrap_or("null");
    if kinds.all(|t| t == first) {
        first
    } else {
        "mixed"
    }
}

fn report_rate(out: &mut impl Write, stage: &str, rows: usize, took: Duration) -> Result<()> {
    let rate = rows as f64 / took.as_secs_f64().max(1e-9);
    writeln!(
        out,
        "{stage:<11} {rows} rows in {} ({rate:.0} rows/s)",
        millis(took)
    )?;
    Ok(())
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

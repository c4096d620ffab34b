//! `icedb-host`: IceDB's headless server (`run`) and its one-shot commands.

mod commands;
mod plugin_check;
mod table_args;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// IceDB: JSON events in, sorted Parquet in object storage out, queried with DuckDB.
#[derive(Parser)]
#[command(name = "icedb-host", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve tables headless: HTTP API, merge/vacuum scheduler, metrics.
    ///
    /// With no configuration this serves one table `events` under
    /// `./icedb-data/events` with the built-in formatter and daily
    /// partitioning on `ts`.
    Run(RunArgs),
    /// Insert NDJSON rows (a file or `-` for standard input).
    Insert(commands::InsertArgs),
    /// Run SQL against a table.
    Query(commands::QueryArgs),
    /// Merge small files (to quiescence, or one round with --once).
    Merge(commands::MergeArgs),
    /// Delete removed files past the grace period, orphans, and old log entries.
    Vacuum(commands::VacuumArgs),
    /// Show a table's version, totals, schema and newest partitions.
    Status(commands::StatusArgs),
    /// Check that the store honours conditional creates (races 8 on one key).
    CheckStore(commands::CheckStoreArgs),
    /// Work with WebAssembly plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Write standard workload events as NDJSON to standard output.
    ///
    /// The shape every IceDB benchmark uses: 20 event names (skewed), 50 000
    /// users, `ts` in epoch ms over 30 days from 2026-10-01 UTC. The same seed
    /// always gives the same events.
    GenEvents {
        /// How many events.
        #[arg(long, default_value_t = 1_000)]
        rows: usize,
        /// The random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Where the embedded default table lives.
    #[arg(long, default_value = "./icedb-data/events")]
    table: String,
    /// A format-row plugin component replacing the built-in formatter.
    #[arg(long)]
    format_plugin: Option<PathBuf>,
    /// A partition-strategy plugin component replacing the built-in daily partitioning.
    #[arg(long)]
    partition_plugin: Option<PathBuf>,
    /// A plugin setting `key=value` (repeatable), passed to both plugins.
    #[arg(long = "plugin-config", value_name = "KEY=VALUE", value_parser = parse_setting)]
    plugin_config: Vec<(String, String)>,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Load a component, say what it exports, and run sample rows through it.
    ///
    /// Example: icedb-host plugin check partition-by-day.wasm --config field=ts --input rows.ndjson
    Check(plugin_check::CheckArgs),
}

/// Parses `key=value`.
pub(crate) fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ICEDB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
        Command::Insert(args) => runtime.block_on(commands::insert(args)),
        Command::Query(args) => runtime.block_on(commands::query(args)),
        Command::Merge(args) => runtime.block_on(commands::merge(args)),
        Command::Vacuum(args) => runtime.block_on(commands::vacuum(args)),
        Command::Status(args) => runtime.block_on(commands::status(args)),
        Command::CheckStore(args) => runtime.block_on(commands::check_store(args)),
        Command::Plugin(PluginCommand::Check(args)) => plugin_check::check(args),
        Command::GenEvents { rows, seed } => gen_events(rows, seed),
    }
}

fn gen_events(rows: usize, seed: u64) -> Result<()> {
    use std::io::Write;
    let mut generator = icedb::events::EventGenerator::new(seed);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..rows {
        let written = writeln!(out, "{}", generator.next_event());
        if let Err(e) = written {
            // A closed pipe (`| head`) is a normal way to stop.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e).context("writing events");
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing events"),
        _ => Ok(()),
    }
}

async fn run(args: RunArgs) -> Result<()> {
    // Handlers first: a signal during start-up must stop us cleanly too.
    let shutdown = shutdown_signal()?;
    let host = icedb_plugin::PluginHost::new(icedb_plugin::HostOptions::default())?;
    tracing::info!(table = %args.table, "icedb-host starting");
    match &args.format_plugin {
        Some(path) => {
            let plugin = host.load_format(path, &args.plugin_config)?;
            tracing::info!(plugin = plugin.name(), path = %path.display(), "format-row plugin loaded");
        }
        None => tracing::info!("format-row: built-in JSON-text formatter (ts read as a timestamp)"),
    }
    match &args.partition_plugin {
        Some(path) => {
            let plugin = host.load_partition(path, &args.plugin_config)?;
            tracing::info!(plugin = plugin.name(), fields = ?plugin.fields(), "partition-strategy plugin loaded");
        }
        None => tracing::info!("partition-strategy: built-in daily partitioning on `ts`"),
    }
    tracing::warn!(
        "the HTTP API and scheduler are not implemented yet; waiting for Ctrl-C or SIGTERM"
    );
    shutdown.await;
    tracing::info!("shutting down");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM; the handlers are installed when this is
/// called, not when it is awaited.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

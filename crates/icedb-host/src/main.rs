//! `icedb-host`: IceDB's headless server (`run`) and its one-shot commands.

mod commands;
mod config;
mod plugin_check;
mod server;
mod table_args;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's allocator: under HTTP ingest glibc spent a
/// quarter of the host's CPU in malloc, free and consolidation (perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// partitioning on `ts`, on http://127.0.0.1:8080. Try:
    ///
    ///   curl -H 'content-type: application/x-ndjson' --data-binary @events.ndjson localhost:8080/v1/tables/events/rows
    ///
    ///   curl -H 'content-type: text/plain' -d 'SELECT count(*) FROM events' localhost:8080/v1/query
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
    /// Write a commented sample configuration (every key with its default).
    Init(InitArgs),
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
    /// Change the table's recorded definition to the settings given (sort
    /// order, plugins; with --config, what the table's section states), as
    /// one logged commit. Settings not given stay as the table says.
    Alter(commands::AlterArgs),
    /// Check that the store honours conditional creates (races 8 on one key).
    CheckStore(commands::CheckStoreArgs),
    /// Work with WebAssembly plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Write the table in another format's log, for other engines.
    #[command(subcommand)]
    Export(ExportCommand),
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
    /// The configuration file (default: ./icedb.toml if it exists, else the
    /// embedded default). `ICEDB__SECTION__KEY` variables override it.
    #[arg(long, env = "ICEDB_CONFIG")]
    config: Option<PathBuf>,
    /// Listen on this address instead of server.listen (port 0: any free port).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

#[derive(clap::Args)]
struct InitArgs {
    /// Where to write the sample configuration.
    #[arg(default_value = "icedb.toml")]
    path: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Bring the Delta Lake log (`<root>/_delta_log/`) up to the table's
    /// version: one Delta commit per IceDB commit not yet exported
    /// (incremental, idempotent, safe to run from several processes).
    /// Spark, Trino, DuckDB's delta_scan, Polars and others then read the
    /// table as a Delta table at the root.
    Delta(commands::ExportDeltaArgs),
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
    without_transparent_huge_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ICEDB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // ICEDB_LOG_SPANS=1 also logs each span's busy and idle time when it
        // closes (with ICEDB_LOG=icedb=debug,icedb_meta=debug: where an
        // insert's time goes).
        .with_span_events(if std::env::var_os("ICEDB_LOG_SPANS").is_some() {
            tracing_subscriber::fmt::format::FmtSpan::CLOSE
        } else {
            tracing_subscriber::fmt::format::FmtSpan::NONE
        })
        .init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        end_quietly_when_stdout_closes();
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
        Command::Init(args) => init(args),
        Command::Insert(args) => runtime.block_on(commands::insert(args)),
        Command::Query(args) => runtime.block_on(commands::query(args)),
        Command::Merge(args) => runtime.block_on(commands::merge(args)),
        Command::Vacuum(args) => runtime.block_on(commands::vacuum(args)),
        Command::Status(args) => runtime.block_on(commands::status(args)),
        Command::Alter(args) => runtime.block_on(commands::alter(args)),
        Command::CheckStore(args) => runtime.block_on(commands::check_store(args)),
        Command::Plugin(PluginCommand::Check(args)) => plugin_check::check(args),
        Command::Export(ExportCommand::Delta(args)) => {
            runtime.block_on(commands::export_delta(args))
        }
        Command::GenEvents { rows, seed } => gen_events(rows, seed),
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks the
/// kernel for them on its arenas, and a first touch of a huge page zeroes
/// 2 MiB: a merge's short-lived, scattered buffers (decoded inline parts,
/// zstd's tables, redb pages) made a quarter of the host's CPU the
/// kernel's page zeroing. Without them a cold compaction of the small
/// workload in a host took ~25 % less CPU over five alternated pairs of
/// runs (docs/ARCHITECTURE.md). `ICEDB_THP=1` keeps them.
fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("ICEDB_THP").is_none_or(|v| v != "1") {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a
        // flag on this process's memory map; a failure (an old kernel)
        // leaves the kernel's default, which is only slower.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// One-shot commands end like other Unix tools when their reader goes
/// away (`icedb-host status | head`): by SIGPIPE, instead of the panic
/// `println!` raises on a closed stdout (Rust ignores SIGPIPE by default).
/// Not for `run`, which writes nothing to stdout and whose sockets never
/// raise it.
fn end_quietly_when_stdout_closes() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal before any
    // other thread exists; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
    let mut config = config::HostConfig::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    server::run(config, shutdown).await
}

fn init(args: InitArgs) -> Result<()> {
    if args.path.exists() && !args.force {
        anyhow::bail!(
            "{} already exists; pass --force to replace it",
            args.path.display()
        );
    }
    std::fs::write(&args.path, config::SAMPLE)
        .with_context(|| format!("writing {}", args.path.display()))?;
    println!(
        "wrote {}; edit it, then run `icedb-host run --config {}`",
        args.path.display(),
        args.path.display()
    );
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

//! `icedb-tui`: the terminal dashboard for IceDB. It owns the views
//! (overview, partitions, merges, queries, commits, plugins), their keys,
//! and the event loop that keeps the screen responsive while every fetch,
//! query and merge runs in a tokio task. It reads a table directly
//! (`--table`, serverless) or watches a running `icedb-host` (`--host`).

mod app;
mod model;
mod source;
mod ui;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use crossterm::event::{Event, KeyEventKind};
use tokio::sync::mpsc;

use app::{Action, App};
use model::{Dashboard, FileRow, QueryOutcome};
use source::Source;

/// IceDB's terminal dashboard: partitions, merges, queries, commits, plugins.
///
/// Keys: q quits, ? lists every key, Tab or 1-6 switch views.
#[derive(Parser)]
#[command(name = "icedb-tui", version, about)]
struct Cli {
    /// Open a table directly (serverless, read-only view plus queries and
    /// merges run here), e.g. ./icedb-data/events or s3://bucket/prefix.
    #[arg(long, conflicts_with = "host", required_unless_present = "host")]
    table: Option<String>,
    /// Watch a running icedb-host, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    host: Option<String>,
    /// The host's API token.
    #[arg(long, env = "ICEDB_TOKEN", requires = "host")]
    token: Option<String>,
    /// Which of the host's tables (default: its only one, or `events`); with
    /// --table, the table's SQL name.
    #[arg(long)]
    table_name: Option<String>,
    /// How often to refresh, e.g. 2s, 500ms.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    refresh: Duration,
    /// --table: S3 endpoint for S3-compatible servers.
    #[arg(long, env = "ICEDB_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    #[arg(long, env = "AWS_REGION")]
    s3_region: Option<String>,
    #[arg(long, env = "ICEDB_S3_PATH_STYLE")]
    s3_path_style: bool,
    #[arg(long, env = "ICEDB_S3_ALLOW_HTTP")]
    s3_allow_http: bool,
    /// --table: DuckDB's extension directory (httpfs for S3 tables).
    #[arg(long, env = "ICEDB_DUCKDB_EXTENSION_DIR")]
    duckdb_extension_dir: Option<PathBuf>,
}

/// Results of background work, back to the event loop.
enum Update {
    Dashboard(Box<Result<Dashboard, String>>),
    Files(String, Result<Vec<FileRow>, String>),
    Query(Result<QueryOutcome, String>),
    Merge(Result<String, String>),
}

async fn open_source(cli: &Cli) -> Result<Source> {
    if let Some(host) = &cli.host {
        return Source::host(host, cli.token.clone(), cli.table_name.clone()).await;
    }
    let root = cli.table.clone().unwrap_or_default();
    let mut config = icedb::TableConfig::new(
        cli.table_name
            .clone()
            .unwrap_or_else(|| "events".to_owned()),
        root.clone(),
    );
    // Sort order, partitioning, format and file settings: as the table's
    // recorded definition says.
    config.explicit = icedb::Explicit::none();
    config.s3 = icedb::S3Options {
        endpoint: cli.s3_endpoint.clone(),
        region: cli.s3_region.clone(),
        allow_http: cli.s3_allow_http.then_some(true),
        path_style: cli.s3_path_style.then_some(true),
        ..icedb::S3Options::default()
    };
    if cli.duckdb_extension_dir.is_some() {
        config.duckdb_extension_dir = cli.duckdb_extension_dir.clone();
    }
    let plugins = icedb::PluginHost::new(Default::default())?;
    let table = icedb::Table::open(config, &plugins)
        .await
        .with_context(|| format!("opening table {root}"))?;
    Ok(Source::table(table))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    // Connect before taking over the terminal, so errors print normally.
    let source = Arc::new(runtime.block_on(open_source(&cli))?);
    // ratatui::init installs a panic hook that restores the terminal first.
    let mut terminal = ratatui::init();
    let outcome = runtime.block_on(run(&mut terminal, source, cli.refresh));
    ratatui::restore();
    // Background fetches may still be waiting on the network.
    runtime.shutdown_timeout(Duration::from_millis(200));
    outcome
}

async fn run(
    terminal: &mut ratatui::DefaultTerminal,
    source: Arc<Source>,
    refresh: Duration,
) -> Result<()> {
    let mut app = App::new(source.label());
    let (updates_tx, mut updates) = mpsc::unbounded_channel();
    let (keys_tx, mut events) = mpsc::unbounded_channel();
    // crossterm's read blocks; it gets its own thread.
    std::thread::spawn(move || {
        while let Ok(event) = crossterm::event::read() {
            if keys_tx.send(event).is_err() {
                break;
            }
        }
    });
    let mut ticks = tokio::time::interval(refresh);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        terminal.draw(|frame| ui::draw(frame, &app))?;
        let action = tokio::select! {
            _ = ticks.tick() => if app.frozen { Action::None } else { Action::Refresh },
            Some(event) = events.recv() => match event {
                Event::Key(key) if key.kind != KeyEventKind::Release => app.on_key(key),
                // Resizes redraw on the next loop turn.
                _ => Action::None,
            },
            Some(update) = updates.recv() => {
                match update {
                    Update::Dashboard(d) => {
                        app.on_dashboard(*d, chrono::Utc::now().timestamp_millis());
                        Action::None
                    }
                    Update::Files(p, f) => {
                        app.on_files(p, f);
                        Action::None
                    }
                    // The activity lists the query or merge now; show it.
                    Update::Query(q) => {
                        app.on_query(q);
                        Action::Refresh
                    }
                    Update::Merge(m) => {
                        app.on_merge(m);
                        Action::Refresh
                    }
                }
            }
        };
        let source = source.clone();
        let tx = updates_tx.clone();
        match action {
            Action::None => {}
            Action::Quit => return Ok(()),
            Action::Refresh => {
                if !app.refreshing {
                    app.refreshing = true;
                    tokio::spawn(async move {
                        let d = source.dashboard().await.map_err(|e| format!("{e:#}"));
                        let _ = tx.send(Update::Dashboard(Box::new(d)));
                    });
                }
            }
            Action::LoadFiles(partition) => {
                tokio::spawn(async move {
                    let files = source.files(&partition).await.map_err(|e| format!("{e:#}"));
                    let _ = tx.send(Update::Files(partition, files));
                });
            }
            Action::RunQuery(sql) => {
                tokio::spawn(async move {
                    let outcome = source.query(&sql).await.map_err(|e| format!("{e:#}"));
                    let _ = tx.send(Update::Query(outcome));
                });
            }
            Action::Merge(policy) => {
                tokio::spawn(async move {
                    let outcome = source.merge(policy).await.map_err(|e| format!("{e:#}"));
                    let _ = tx.send(Update::Merge(outcome));
                });
            }
        }
    }
}

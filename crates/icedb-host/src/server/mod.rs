//! `icedb-host run`: serves the configured tables over HTTP, commits inserts
//! in groups, runs the maintenance schedule, and shuts down without losing
//! an acknowledged row.

mod activity;
mod api;
mod ingest;
mod metrics;
mod scheduler;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use icedb::{PluginHost, Table};
use tokio::task::JoinSet;

use crate::config::{HostConfig, ServerConfig};
use activity::Activity;
use ingest::Ingest;
use metrics::Metrics;

/// A table the host serves.
pub struct Served {
    table: Arc<Table>,
    ingest: Arc<Ingest>,
    /// The table's merge policies (the scheduled ones, also run on demand).
    merges: Vec<crate::config::ScheduledMerge>,
    /// The table's vacuum settings (scheduled, also run on demand).
    vacuum: icedb::VacuumOptions,
    /// The root as configured (a URL or an absolute path).
    root: String,
}

pub struct AppState {
    tables: BTreeMap<String, Served>,
    tokens: Vec<String>,
    server: ServerConfig,
    metrics: Arc<Metrics>,
    activity: Activity,
    /// Set once shutdown begins: `/readyz` fails and inserts get 503.
    draining: AtomicBool,
}

/// Serves `config` until `shutdown` resolves, then drains and returns.
pub async fn run(
    config: HostConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listen = config.server.listen;
    if !listen.ip().is_loopback() && config.server.tokens.is_empty() {
        bail!(
            "refusing to listen on {listen} without an API token: anyone who can reach it could read and write every table. \
             Set server.tokens in the config (or ICEDB__SERVER__TOKENS=<token>), or listen on 127.0.0.1"
        );
    }
    if config.server.tokens.iter().any(|t| t.len() < 16) {
        tracing::warn!("an API token is shorter than 16 characters; use long random tokens");
    }
    let plugins = PluginHost::new(Default::default())?;
    let metrics = Arc::new(Metrics::default());
    let activity = Activity::default();
    let mut tables = BTreeMap::new();
    let mut schedules = Vec::new();
    for section in &config.tables {
        let mut table_config = config.table_config(section);
        // Checkpoints run on the scheduler, not inline in some insert's commit.
        table_config.meta.checkpoint_interval = 0;
        table_config.sandbox_queries = true;
        let root = table_config.root.clone();
        let table = Arc::new(
            Table::open(table_config, &plugins)
                .await
                .with_context(|| format!("opening table `{}` at {root}", section.name))?,
        );
        // Refuse a store that would let writers overwrite each other before
        // acknowledging anything.
        table
            .check_store()
            .await
            .with_context(|| format!("checking the store of table `{}`", section.name))?;
        // DuckDB and its extensions load now, not in the first query.
        table
            .prepare_queries()
            .await
            .with_context(|| format!("starting DuckDB for table `{}`", section.name))?;
        let ingest = Ingest::start(
            table.clone(),
            config.ingest.clone(),
            metrics.clone(),
            activity.clone(),
        );
        tracing::info!(
            table = %section.name,
            root = %root,
            version = table.version()?,
            plugins = ?table.plugins().iter().map(|p| format!("{} {}", p.role, p.name)).collect::<Vec<_>>(),
            "table open"
        );
        schedules.push((
            table.clone(),
            scheduler::Schedule {
                merges: config.merges(section),
                vacuum: section.vacuum.enabled.then(|| scheduler::ScheduledVacuum {
                    every: section.vacuum.every,
                    options: HostConfig::vacuum_options(section),
                    orphans_every: section.vacuum.orphans_every,
                }),
                checkpoint: (section.checkpoint.every_versions > 0).then_some((
                    section.checkpoint.check_every,
                    section.checkpoint.every_versions,
                )),
                delta: section.delta.enabled.then_some(section.delta.every),
            },
        ));
        tables.insert(
            section.name.clone(),
            Served {
                table,
                ingest,
                merges: config.merges(section),
                vacuum: HostConfig::vacuum_options(section),
                root,
            },
        );
    }
    let state = Arc::new(AppState {
        tables,
        tokens: config.server.tokens.clone(),
        server: config.server.clone(),
        metrics: metrics.clone(),
        activity: activity.clone(),
        draining: AtomicBool::new(false),
    });

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen} (server.listen)"))?;
    let address = listener.local_addr()?;
    let mut maintenance = JoinSet::new();
    for (table, schedule) in schedules {
        scheduler::spawn(
            &mut maintenance,
            table,
            schedule,
            metrics.clone(),
            activity.clone(),
        );
    }
    // The line scripts and tests wait for (the port may have been 0).
    tracing::info!("listening on http://{address}");

    let draining = state.clone();
    // Answers go out at once, not held back by Nagle's algorithm until the
    // client acknowledges earlier bytes.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: refusing new requests, committing accepted rows");
            draining
                .draining
                .store(true, std::sync::atomic::Ordering::Relaxed);
        })
        .await
        .context("serving HTTP")?;
    // Merges, vacuums and checkpoints are safe to stop anywhere: an
    // uncommitted merge output is an orphan vacuum deletes later.
    maintenance.abort_all();
    while maintenance.join_next().await.is_some() {}
    for served in state.tables.values() {
        served.ingest.drain().await;
    }
    tracing::info!("stopped");
    Ok(())
}

fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/tables", get(api::list_tables))
        .route("/v1/tables/{table}", get(api::table_info))
        .route("/v1/tables/{table}/rows", post(api::insert_rows))
        .route("/v1/tables/{table}/partitions", get(api::partitions))
        .route("/v1/tables/{table}/files", get(api::files))
        .route("/v1/tables/{table}/commits", get(api::commits))
        .route("/v1/tables/{table}/merge", post(api::merge))
        .route("/v1/tables/{table}/vacuum", post(api::vacuum))
        .route("/v1/query", post(api::query))
        .route("/v1/activity", get(api::activity))
        .route("/metrics", get(api::prometheus))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::require_token,
        ));
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .merge(api)
        .fallback(|| async {
            api::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "no such endpoint; see the README's HTTP API section",
            )
        })
        .layer(DefaultBodyLimit::max(state.server.max_body_bytes))
        .with_state(state)
}

//! The host itself: `/v1/activity`, `/metrics`, `/healthz`, `/readyz`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use icedb::PartitionFilter;
use icedb::api::{ActivityKind, ActivityList, Health};
use serde::Deserialize;

use super::{ApiError, ApiResult};
use crate::server::AppState;
use crate::server::metrics::{self, PluginLabels};

#[derive(Deserialize)]
pub struct ActivityQuery {
    limit: Option<usize>,
    kind: Option<String>,
}

/// `GET /v1/activity[?kind=merge&limit=100]`
pub async fn activity(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ActivityQuery>,
) -> ApiResult<Json<ActivityList>> {
    let kind = match query.kind.as_deref() {
        None => None,
        Some(wanted) => Some(
            ActivityKind::ALL
                .into_iter()
                .find(|k| k.name() == wanted)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown kind `{wanted}`; use insert, query, merge, vacuum or checkpoint"
                    ))
                })?,
        ),
    };
    let (running, recent) = state.activity.list(kind, query.limit.unwrap_or(100));
    Ok(Json(ActivityList { running, recent }))
}

/// `GET /metrics`
pub async fn prometheus(State(state): State<Arc<AppState>>) -> Response {
    let m = &state.metrics;
    for (name, served) in &state.tables {
        let label = metrics::table(name);
        if let Ok(snapshot) = served.table.snapshot() {
            m.table_version
                .get_or_create(&label)
                .set(snapshot.version() as i64);
            if let Ok(partitions) = snapshot.partitions(&PartitionFilter::All) {
                let totals = icedb::Totals::of(&partitions);
                m.table_files.get_or_create(&label).set(totals.files as i64);
                m.table_rows.get_or_create(&label).set(totals.rows as i64);
                m.table_bytes.get_or_create(&label).set(totals.bytes as i64);
                m.table_partitions
                    .get_or_create(&label)
                    .set(partitions.len() as i64);
            }
        }
        for plugin in served.table.plugins() {
            let labels = PluginLabels {
                table: name.clone(),
                role: plugin.role.to_owned(),
                plugin: plugin.name.clone(),
            };
            metrics::raise_to(&m.plugin_calls.get_or_create(&labels), plugin.stats.calls);
            metrics::raise_to(&m.plugin_rows.get_or_create(&labels), plugin.stats.rows);
            metrics::raise_to(&m.plugin_errors.get_or_create(&labels), plugin.stats.errors);
            metrics::raise_to(&m.plugin_traps.get_or_create(&labels), plugin.stats.traps);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        versions: BTreeMap::new(),
    })
}

/// `GET /readyz`: every table's store answers, and the host is not draining.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let mut versions = BTreeMap::new();
    for (name, served) in &state.tables {
        match tokio::time::timeout(Duration::from_secs(5), served.table.sync()).await {
            Ok(Ok(version)) => {
                versions.insert(name.clone(), version);
            }
            Ok(Err(e)) => {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("table {name}: {e}"),
                )
                .into_response();
            }
            Err(_) => {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("table {name}: the store did not answer within 5 s"),
                )
                .into_response();
            }
        }
    }
    Json(Health {
        status: "ready".to_owned(),
        versions,
    })
    .into_response()
}

//! Tables and what is in them: `/v1/tables`, `/v1/tables/{table}`, its
//! partitions, files and commits, and merges on demand.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use icedb::PartitionFilter;
use icedb::api::{
    CommitList, FileInfo, FileList, MergeAnswer, PartitionInfo, PartitionList, PluginInfo,
    TableInfo, TableList, TableSummary,
};
use serde::Deserialize;

use super::{ApiError, ApiResult, internal, served, synced};
use crate::server::{AppState, Served};

/// Totals of a table's live files.
fn table_summary(served: &Served, snapshot: &icedb::Snapshot) -> ApiResult<TableSummary> {
    TableSummary::of(&served.table, snapshot).map_err(internal)
}

/// `GET /v1/tables`
pub async fn list_tables(State(state): State<Arc<AppState>>) -> ApiResult<Json<TableList>> {
    let mut tables = Vec::new();
    for served in state.tables.values() {
        let snapshot = synced(served).await?;
        tables.push(table_summary(served, &snapshot)?);
    }
    Ok(Json(TableList { tables }))
}

/// `GET /v1/tables/{table}`
pub async fn table_info(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<TableInfo>> {
    let served = served(&state, &name)?;
    let snapshot = synced(served).await?;
    Ok(Json(TableInfo {
        summary: table_summary(served, &snapshot)?,
        table_id: snapshot.table_id().map_err(internal)?,
        merge_backlog: backlog_totals(served)?,
        schema: snapshot.schema().map_err(internal)?,
        sort_order: served.table.config().sort_order.clone(),
        definition: served.table.definition().clone(),
        tombstones: snapshot.tombstones().map_err(internal)?.len(),
        plugins: served
            .table
            .plugins()
            .into_iter()
            .map(PluginInfo::from)
            .collect(),
    }))
}

#[derive(Deserialize)]
pub struct PartitionQuery {
    /// Only this partition and those below it.
    partition: Option<String>,
}

/// The served table, synced, and the partition filter of the request.
async fn synced_partitions<'a>(
    state: &'a AppState,
    name: &str,
    query: PartitionQuery,
) -> ApiResult<(&'a Served, icedb::Snapshot, PartitionFilter)> {
    let served = served(state, name)?;
    let snapshot = synced(served).await?;
    let filter = query
        .partition
        .map_or(PartitionFilter::All, PartitionFilter::Prefix);
    Ok((served, snapshot, filter))
}

/// `GET /v1/tables/{table}/partitions[?partition=prefix]`
pub async fn partitions(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(filter): Query<PartitionQuery>,
) -> ApiResult<Json<PartitionList>> {
    let (served, snapshot, filter) = synced_partitions(&state, &name, filter).await?;
    let cold_backlog = cold_backlog(served)?;
    let partitions = snapshot
        .partitions(&filter)
        .map_err(internal)?
        .into_iter()
        .map(|p| {
            let backlog = cold_backlog.get(&p.partition).copied().unwrap_or(0);
            PartitionInfo::new(p, backlog)
        })
        .collect();
    Ok(Json(PartitionList {
        version: snapshot.version(),
        partitions,
    }))
}

/// `GET /v1/tables/{table}/files[?partition=prefix]`: the live files, with
/// URLs other engines can read.
pub async fn files(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(filter): Query<PartitionQuery>,
) -> ApiResult<Json<FileList>> {
    let (served, snapshot, filter) = synced_partitions(&state, &name, filter).await?;
    let files = snapshot
        .files_without_bytes(&filter)
        .map_err(internal)?
        .into_iter()
        .map(|f| FileInfo::new(&served.table, f))
        .collect();
    Ok(Json(FileList {
        version: snapshot.version(),
        root: served.root.clone(),
        files,
    }))
}

#[derive(Deserialize)]
pub struct MergeQuery {
    /// `hot` or `cold` (default `hot`).
    policy: Option<String>,
    /// `quiescent`: rounds until one plans nothing, as the CLI's `merge`
    /// (default: one round).
    until: Option<String>,
}

/// `POST /v1/tables/{table}/merge[?policy=hot|cold][&until=quiescent]`: one
/// merge round now, or rounds until the table is merged (the answer then
/// totals them).
pub async fn merge(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<MergeQuery>,
) -> ApiResult<Json<MergeAnswer>> {
    let served = served(&state, &name)?;
    let wanted = query.policy.as_deref().unwrap_or("hot");
    let policy = served
        .merges
        .iter()
        .find(|m| m.policy.name == wanted)
        .map(|m| m.policy.clone())
        .or_else(|| match wanted {
            // A policy switched off in the schedule can still run by hand.
            "hot" => Some(icedb::MergePolicy::hot()),
            "cold" => Some(icedb::MergePolicy::cold()),
            _ => None,
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!("unknown merge policy `{wanted}`; use hot or cold"))
        })?;
    let rounds = match query.until.as_deref() {
        None => crate::server::scheduler::Rounds::One,
        Some("quiescent") => crate::server::scheduler::Rounds::UntilQuiescent,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown `until={other}`; the one value is `quiescent` (leave it out for one round)"
            )));
        }
    };
    let context = crate::server::scheduler::Context {
        table: served.table.clone(),
        metrics: state.metrics.clone(),
        activity: state.activity.clone(),
    };
    let report = crate::server::scheduler::merge_now(&context, &policy, rounds)
        .await
        .map_err(|e| ApiError::from_table(&e))?;
    Ok(Json(report))
}

#[derive(Deserialize)]
pub struct VacuumQuery {
    /// Look for orphans (default true; `false` skips the listing of every
    /// data object).
    orphans: Option<bool>,
}

/// `POST /v1/tables/{table}/vacuum[?orphans=false]`: a vacuum now, with the
/// table's `[tables.vacuum]` settings (its grace and retention floor;
/// nothing in the request can lower them).
pub async fn vacuum(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<VacuumQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let served = served(&state, &name)?;
    let context = crate::server::scheduler::Context {
        table: served.table.clone(),
        metrics: state.metrics.clone(),
        activity: state.activity.clone(),
    };
    let options = icedb::VacuumOptions {
        orphans: query.orphans.unwrap_or(true),
        ..served.vacuum.clone()
    };
    let answer = crate::server::scheduler::vacuum_now(&context, &options)
        .await
        .map_err(|e| ApiError::from_table(&e))?;
    Ok(Json(answer))
}

/// Files each of the table's merge policies would merge now, in total.
fn backlog_totals(served: &Served) -> ApiResult<BTreeMap<String, usize>> {
    let policies: Vec<&icedb::MergePolicy> = served.merges.iter().map(|m| &m.policy).collect();
    let backlogs = served.table.merge_backlog(&policies).map_err(internal)?;
    Ok(policies
        .iter()
        .zip(backlogs)
        .map(|(policy, backlog)| (policy.name.clone(), backlog.values().sum()))
        .collect())
}

/// Files the cold policy (the whole-table one) would merge now, per partition.
fn cold_backlog(served: &Served) -> ApiResult<BTreeMap<String, usize>> {
    let Some(cold) = served.merges.iter().find(|m| m.policy.name == "cold") else {
        return Ok(BTreeMap::new());
    };
    Ok(served
        .table
        .merge_backlog(&[&cold.policy])
        .map_err(internal)?
        .pop()
        .unwrap_or_default())
}

#[derive(Deserialize)]
pub struct LimitQuery {
    limit: Option<usize>,
}

/// `GET /v1/tables/{table}/commits[?limit=50]`: the newest commits.
pub async fn commits(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<LimitQuery>,
) -> ApiResult<Json<CommitList>> {
    let served = served(&state, &name)?;
    let history = served
        .table
        .history(query.limit.unwrap_or(50).min(10_000))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(CommitList { commits: history }))
}

//! The HTTP API (axum). Errors are JSON `{"error": "..."}` with a status
//! that says whose fault it is: 4xx for the request, 5xx for the host or
//! its store.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use icedb::{PartitionFilter, on_cpu, QueryOptions, QueryResult, TableError};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::server::activity::{Kind, Status};
use crate::server::ingest::IngestError;
use crate::server::metrics::{self, PluginLabels};
use crate::server::{AppState, Served};

/// An error answer.
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn from_table(error: &TableError) -> Self {
        let status = match error {
            e if e.is_input_error() => StatusCode::BAD_REQUEST,
            TableError::Query(_)
            | TableError::NotReadOnly(_)
            | TableError::QueryTimeout { .. }
            | TableError::ResultTooLarge { .. }
            | TableError::ResultTooManyBytes { .. } => StatusCode::BAD_REQUEST,
            // Certainly not committed: retrying the same request is safe.
            TableError::Commit(e) if e.certainly_not_committed() => {
                return ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
                };
            }
            // Possibly committed: a blind retry could store the rows twice.
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Bearer-token check for everything but the health probes.
pub async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if state.tokens.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let accepted = presented.is_some_and(|presented| {
        // Compare with every token, without stopping at the first match.
        state
            .tokens
            .iter()
            .fold(subtle::Choice::from(0), |found, token| {
                found | presented.as_bytes().ct_eq(token.as_bytes())
            })
            .into()
    });
    if accepted {
        next.run(request).await
    } else {
        let message = if presented.is_some() {
            "the bearer token is not valid"
        } else {
            "this host requires `Authorization: Bearer <token>`"
        };
        let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

fn served<'a>(state: &'a AppState, name: &str) -> ApiResult<&'a Served> {
    state.tables.get(name).ok_or_else(|| {
        let names: Vec<&str> = state.tables.keys().map(String::as_str).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no table `{name}` (this host serves: {})", names.join(", ")),
        )
    })
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The body, gunzipped if it says so, within the size limit.
async fn decoded_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> ApiResult<Bytes> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than server.max_body_bytes ({limit} bytes)"),
            )
        } else {
            ApiError::bad_request(format!("could not read the request body: {rejection}"))
        }
    })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(body),
        "gzip" | "x-gzip" => {
            let decoded = on_cpu(move || {
                let mut decoded = Vec::new();
                flate2::read::MultiGzDecoder::new(&body[..])
                    .take(limit as u64 + 1)
                    .read_to_end(&mut decoded)
                    .map(|_| decoded)
            })
            .await
            .map_err(|e| {
                ApiError::bad_request(format!("the gzip body could not be decoded: {e}"))
            })?;
            if decoded.len() > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the decompressed body is larger than server.max_body_bytes ({limit} bytes)"
                    ),
                ));
            }
            Ok(Bytes::from(decoded))
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding `{other}` is not supported; send gzip or no encoding"),
        )),
    }
}

/// `POST /v1/tables/{table}/rows`
pub async fn insert_rows(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let received = Instant::now();
    let served = served(&state, &name)?;
    let outcome = |label: &str| {
        state
            .metrics
            .insert_requests
            .get_or_create(&metrics::outcome(&name, label))
            .inc();
    };
    let result = async {
        if state.draining.load(Ordering::Relaxed) {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the host is shutting down"));
        }
        let kind = content_type(&headers);
        let body = decoded_body(&headers, body, state.server.max_body_bytes).await?;
        let text_start = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
        let busy = |e: IngestError| match e {
            IngestError::Busy { .. } => ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: e.to_string(),
                retry_after: Some(1),
            },
            IngestError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
            IngestError::ShuttingDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            IngestError::Table(e) => ApiError::from_table(&e),
        };
        let ndjson = matches!(
            kind.as_str(),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/x-jsonlines" | "application/jsonlines"
        );
        // Admit against the queue before formatting (a full queue costs the
        // request nothing): rows counted from the body's shape.
        let rows = match (ndjson, kind.as_str(), text_start) {
            (_, _, None) => return Err(ApiError::bad_request("the body holds no rows")),
            (true, _, _) => body
                .split(|b| *b == b'\n')
                .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
                .count(),
            (false, "application/json", Some(b'[')) => {
                serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&body).map_or(1, |rows| rows.len())
            }
            _ => 1,
        };
        let admission = served.ingest.admit(rows.max(1)).map_err(busy)?;
        let prepared = match (kind.as_str(), text_start) {
            (_, None) => return Err(ApiError::bad_request("the body holds no rows")),
            _ if ndjson => served.table.prepare_ndjson(&body).await,
            ("application/json", Some(b'[')) => served.table.prepare_json_array(&body).await,
            ("application/json", Some(b'{')) => {
                // One object, possibly spread over several lines.
                let row: Box<serde_json::value::RawValue> = serde_json::from_slice(&body)
                    .map_err(|e| ApiError::bad_request(format!("line {}: not a JSON object: {e}", e.line())))?;
                served.table.prepare_json_array(format!("[{}]", row.get()).as_bytes()).await
            }
            ("application/json", Some(_)) => {
                return Err(ApiError::bad_request(
                    "a JSON body must be an array of objects or one object (send NDJSON as application/x-ndjson)",
                ));
            }
            (other, _) => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "Content-Type `{}` is not accepted; send application/x-ndjson (one JSON object per line) or application/json (an array of objects)",
                        if other.is_empty() { "(none)" } else { other }
                    ),
                ));
            }
        }
        .map_err(|e| ApiError::from_table(&e))?;
        served.ingest.insert(admission, prepared).await.map_err(busy)
    }
    .await;
    match result {
        Ok(ack) => {
            outcome("ok");
            state
                .metrics
                .ack_seconds
                .get_or_create(&metrics::table(&name))
                .observe(received.elapsed().as_secs_f64());
            Ok(Json(ack).into_response())
        }
        Err(error) => {
            outcome(match error.status {
                StatusCode::TOO_MANY_REQUESTS => "busy",
                StatusCode::PAYLOAD_TOO_LARGE => "too_large",
                s if s.is_client_error() => "bad_input",
                _ => "error",
            });
            Err(error)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    sql: String,
    /// The table (default: the only one, or `events`).
    table: Option<String>,
    /// Only read partitions at or below this path.
    partition: Option<String>,
    /// Read the table as of this version.
    version: Option<u64>,
}

/// `POST /v1/query`: JSON `{"sql": ...}` or the SQL as text/plain; the
/// answer is JSON, CSV or Arrow IPC by `Accept`.
pub async fn query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = decoded_body(&headers, body, state.server.max_body_bytes).await?;
    let request = match content_type(&headers).as_str() {
        "application/json" => serde_json::from_slice::<QueryRequest>(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the query body must be JSON like {{\"sql\": \"SELECT ...\"}}: {e}"
            ))
        })?,
        "text/plain" | "application/sql" => QueryRequest {
            sql: String::from_utf8(body.to_vec())
                .map_err(|_| ApiError::bad_request("the SQL is not valid UTF-8"))?,
            table: None,
            partition: None,
            version: None,
        },
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type `{other}` is not accepted; send application/json ({{\"sql\": ...}}) or text/plain SQL"
                ),
            ));
        }
    };
    let name = match &request.table {
        Some(name) => name.clone(),
        None if state.tables.len() == 1 => state.tables.keys().next().cloned().unwrap_or_default(),
        None if state.tables.contains_key("events") => "events".to_owned(),
        None => {
            return Err(ApiError::bad_request(
                "this host serves several tables; name one with \"table\"",
            ));
        }
    };
    let served = served(&state, &name)?;
    let options = QueryOptions {
        partitions: request
            .partition
            .clone()
            .map_or(PartitionFilter::All, PartitionFilter::Prefix),
        version: request.version,
        timeout: Some(state.server.query_timeout),
        max_rows: Some(state.server.max_result_rows),
        max_bytes: Some(state.server.max_result_bytes),
        ..QueryOptions::default()
    };
    let label: String = request.sql.chars().take(500).collect();
    let running = state.activity.start(Kind::Query, &name, label);
    let outcome = |label: &str| {
        state
            .metrics
            .queries
            .get_or_create(&metrics::outcome(&name, label))
            .inc();
    };
    let result = match served.table.query(&request.sql, &options).await {
        Ok(result) => result,
        Err(e) => {
            outcome("error");
            running.fail(&e);
            return Err(ApiError::from_table(&e));
        }
    };
    state
        .metrics
        .query_seconds
        .get_or_create(&metrics::table(&name))
        .observe(result.elapsed.as_secs_f64());
    let rows = result.row_count();
    outcome("ok");
    running.finish(
        Status::Ok,
        json!({
            "rows": rows,
            "version": result.version,
            "files_scanned": result.files_scanned,
            "files_pruned": result.files_pruned,
        }),
    );
    on_cpu(move || encode_result(&headers, &result)).await
}

fn encode_result(headers: &HeaderMap, result: &QueryResult) -> ApiResult<Response> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let internal = |e: arrow::error::ArrowError| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the result: {e}"),
        )
    };
    let (content_type, body): (&str, Vec<u8>) = if accept
        .contains("application/vnd.apache.arrow.stream")
    {
        let mut body = Vec::new();
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut body, &result.schema)
            .map_err(internal)?;
        for batch in &result.batches {
            writer.write(batch).map_err(internal)?;
        }
        writer.finish().map_err(internal)?;
        drop(writer);
        ("application/vnd.apache.arrow.stream", body)
    } else if accept.contains("text/csv") {
        let mut body = Vec::new();
        icedb::output::write_csv(&result.batches, &mut body).map_err(internal)?;
        ("text/csv; charset=utf-8", body)
    } else {
        let mut rows = Vec::new();
        icedb::output::write_json_array(&result.batches, &mut rows).map_err(internal)?;
        if rows.is_empty() {
            rows = b"[]".to_vec();
        }
        let columns: Vec<serde_json::Value> = icedb::output::display_schema(&result.schema)
            .fields()
            .iter()
            .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
            .collect();
        let rows =
            serde_json::value::RawValue::from_string(String::from_utf8_lossy(&rows).into_owned())
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let body = serde_json::to_vec(&json!({
            "columns": columns,
            "rows": rows,
            "row_count": result.row_count(),
            "version": result.version,
            "files_scanned": result.files_scanned,
            "files_pruned": result.files_pruned,
            "elapsed_ms": result.elapsed.as_secs_f64() * 1e3,
        }))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        ("application/json", body)
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("x-icedb-version", HeaderValue::from(result.version));
    headers.insert(
        "x-icedb-files-scanned",
        HeaderValue::from(result.files_scanned),
    );
    headers.insert(
        "x-icedb-files-pruned",
        HeaderValue::from(result.files_pruned),
    );
    Ok(response)
}

async fn synced(served: &Served) -> ApiResult<icedb::Snapshot> {
    served.table.sync().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("syncing with the store: {e}"),
        )
    })?;
    served
        .table
        .snapshot()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Totals of a table's live files.
fn table_summary(served: &Served, snapshot: &icedb::Snapshot) -> ApiResult<serde_json::Value> {
    let partitions = snapshot
        .partitions(&PartitionFilter::All)
        .map_err(internal)?;
    let totals = icedb::Totals::of(&partitions);
    let newest_write_ms = partitions.iter().map(|p| p.newest_write_ms).max();
    Ok(json!({
        "name": served.table.name(),
        "root": served.root,
        "version": snapshot.version(),
        "files": totals.files,
        "rows": totals.rows,
        "bytes": totals.bytes,
        "partitions": partitions.len(),
        "newest_write_ms": newest_write_ms,
    }))
}

/// `GET /v1/tables`
pub async fn list_tables(State(state): State<Arc<AppState>>) -> ApiResult<Json<serde_json::Value>> {
    let mut tables = Vec::new();
    for served in state.tables.values() {
        let snapshot = synced(served).await?;
        tables.push(table_summary(served, &snapshot)?);
    }
    Ok(Json(json!({ "tables": tables })))
}

/// `GET /v1/tables/{table}`
pub async fn table_info(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let served = served(&state, &name)?;
    let snapshot = synced(served).await?;
    let mut info = table_summary(served, &snapshot)?;
    let plugins: Vec<serde_json::Value> = served
        .table
        .plugins()
        .into_iter()
        .map(|p| {
            json!({
                "role": p.role,
                "name": p.name,
                "calls": p.stats.calls,
                "rows": p.stats.rows,
                "errors": p.stats.errors,
                "traps": p.stats.traps,
                "instances_created": p.stats.instances_created,
                "busy_ms": p.stats.busy.as_secs_f64() * 1e3,
            })
        })
        .collect();
    let merge_backlog = backlog_totals(served)?;
    let extra = json!({
        "merge_backlog": merge_backlog,
        "schema": snapshot.schema().map_err(internal)?,
        "sort_order": served.table.config().sort_order,
        "definition": served.table.definition(),
        "tombstones": snapshot.tombstones().map_err(internal)?.len(),
        "plugins": plugins,
    });
    if let (Some(info), Some(extra)) = (info.as_object_mut(), extra.as_object()) {
        info.extend(extra.clone());
    }
    Ok(Json(info))
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
) -> ApiResult<Json<serde_json::Value>> {
    let (served, snapshot, filter) = synced_partitions(&state, &name, filter).await?;
    let cold_backlog = cold_backlog(served)?;
    let partitions: Vec<serde_json::Value> = snapshot
        .partitions(&filter)
        .map_err(internal)?
        .into_iter()
        .map(|p| {
            let backlog = cold_backlog.get(&p.partition).copied().unwrap_or(0);
            let mut value = json!(p);
            value["merge_backlog"] = json!(backlog);
            value
        })
        .collect();
    Ok(Json(
        json!({ "version": snapshot.version(), "partitions": partitions }),
    ))
}

/// `GET /v1/tables/{table}/files[?partition=prefix]`: the live files, with
/// URLs other engines can read.
pub async fn files(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(filter): Query<PartitionQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let (served, snapshot, filter) = synced_partitions(&state, &name, filter).await?;
    let files: Vec<serde_json::Value> = snapshot
        .files(&filter)
        .map_err(internal)?
        .into_iter()
        .map(|f| {
            json!({
                "path": f.path,
                "url": served.table.file_url(&f.path),
                "partition": f.partition,
                "bytes": f.bytes,
                "rows": f.rows,
                "created_ms": f.created_ms,
            })
        })
        .collect();
    Ok(Json(
        json!({ "version": snapshot.version(), "root": served.root, "files": files }),
    ))
}

#[derive(Deserialize)]
pub struct MergeQuery {
    /// `hot` or `cold` (default `hot`).
    policy: Option<String>,
}

/// `POST /v1/tables/{table}/merge[?policy=hot|cold]`: one merge round now.
pub async fn merge(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<MergeQuery>,
) -> ApiResult<Json<serde_json::Value>> {
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
    let context = crate::server::scheduler::Context {
        table: served.table.clone(),
        metrics: state.metrics.clone(),
        activity: state.activity.clone(),
    };
    let report = crate::server::scheduler::merge_now(&context, &policy)
        .await
        .map_err(|e| ApiError::from_table(&e))?;
    Ok(Json(report))
}

/// Files each of the table's merge policies would merge now, in total.
fn backlog_totals(served: &Served) -> ApiResult<serde_json::Value> {
    let policies: Vec<&icedb::MergePolicy> = served.merges.iter().map(|m| &m.policy).collect();
    let backlogs = served.table.merge_backlog(&policies).map_err(internal)?;
    Ok(policies
        .iter()
        .zip(backlogs)
        .map(|(policy, backlog)| (policy.name.clone(), json!(backlog.values().sum::<usize>())))
        .collect::<serde_json::Map<_, _>>()
        .into())
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
    kind: Option<String>,
}

/// `GET /v1/tables/{table}/commits[?limit=50]`: the newest commits.
pub async fn commits(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<LimitQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let served = served(&state, &name)?;
    let history = served
        .table
        .history(query.limit.unwrap_or(50).min(10_000))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(json!({ "commits": history })))
}

/// `GET /v1/activity[?kind=merge&limit=100]`
pub async fn activity(
    State(state): State<Arc<AppState>>,
    Query(query): Query<LimitQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let kind = match query.kind.as_deref() {
        None => None,
        Some("insert") => Some(Kind::Insert),
        Some("query") => Some(Kind::Query),
        Some("merge") => Some(Kind::Merge),
        Some("vacuum") => Some(Kind::Vacuum),
        Some("checkpoint") => Some(Kind::Checkpoint),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown kind `{other}`; use insert, query, merge, vacuum or checkpoint"
            )));
        }
    };
    let (running, recent) = state.activity.list(kind, query.limit.unwrap_or(100));
    Ok(Json(json!({ "running": running, "recent": recent })))
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
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
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
    Json(json!({ "status": "ready", "versions": versions })).into_response()
}

//! `POST /v1/query`: one read-only SELECT, answered as JSON, CSV or Arrow IPC.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use icedb::api::{QueryAnswer, QueryRequest, ResultColumn};
use icedb::{PartitionFilter, QueryOptions, QueryResult, on_cpu};
use serde_json::value::RawValue;

use super::{ApiError, ApiResult, content_type, decoded_body, served};
use crate::server::AppState;
use crate::server::activity::{Kind, Status};
use crate::server::metrics;

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
        serde_json::json!({
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
    let (content_type, body): (&str, Vec<u8>) =
        if accept.contains("application/vnd.apache.arrow.stream") {
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
            let columns = icedb::output::display_schema(&result.schema)
                .fields()
                .iter()
                .map(|f| ResultColumn {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                })
                .collect();
            let rows = RawValue::from_string(String::from_utf8_lossy(&rows).into_owned())
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let body = serde_json::to_vec(&QueryAnswer {
                columns,
                rows,
                row_count: result.row_count(),
                version: result.version,
                files_scanned: result.files_scanned,
                files_pruned: result.files_pruned,
                elapsed_ms: result.elapsed.as_secs_f64() * 1e3,
            })
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

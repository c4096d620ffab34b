//! The HTTP API (axum), one module per resource: `rows` (inserts),
//! `query`, `tables` (tables, partitions, files, commits, merges, vacuum) and `ops`
//! (activity, metrics, health). Bodies are the types of `icedb::api`.
//! Errors are JSON [`ErrorAnswer`] with a status that says whose fault it
//! is — 4xx for the request, 5xx for the host or its store — mapped from
//! the library's typed errors in one place, [`ApiError::from_table`].

use std::io::Read;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use icedb::api::ErrorAnswer;
use icedb::{TableError, on_cpu};
use subtle::ConstantTimeEq;

use crate::server::ingest::IngestError;
use crate::server::{AppState, Served};

mod ops;
mod query;
mod rows;
mod tables;

pub use ops::{activity, healthz, prometheus, readyz};
pub use query::query;
pub use rows::insert_rows;
pub use tables::{commits, files, list_tables, merge, partitions, table_info, vacuum};

/// An error answer.
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// The one mapping of the library's errors to HTTP statuses.
    pub(super) fn from_table(error: &TableError) -> Self {
        let status = match error {
            // The rows, the SQL or the request's settings: 400.
            e if e.is_request_error() => StatusCode::BAD_REQUEST,
            // Nothing was written; the same request may be sent again.
            e if e.is_retryable() => {
                return ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
                };
            }
            // The table and this host disagree (altered since it started,
            // another plugin build): an operator must act.
            TableError::DefinitionMismatch { .. }
            | TableError::WriteBlocked(_)
            | TableError::Commit(icedb::CommitError::Conflict(icedb::Conflict::Definition {
                ..
            })) => StatusCode::CONFLICT,
            // Possibly committed: a blind retry could store the rows twice.
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorAnswer {
                error: self.message,
            }),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Busy { .. } => ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: e.to_string(),
                retry_after: Some(1),
            },
            IngestError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            IngestError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            IngestError::Table(e) => ApiError::from_table(&e),
        }
    }
}

pub(super) type ApiResult<T> = Result<T, ApiError>;

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

pub(super) fn served<'a>(state: &'a AppState, name: &str) -> ApiResult<&'a Served> {
    state.tables.get(name).ok_or_else(|| {
        let names: Vec<&str> = state.tables.keys().map(String::as_str).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no table `{name}` (this host serves: {})", names.join(", ")),
        )
    })
}

pub(super) fn content_type(headers: &HeaderMap) -> String {
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
pub(super) async fn decoded_body(
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

pub(super) async fn synced(served: &Served) -> ApiResult<icedb::Snapshot> {
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

pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

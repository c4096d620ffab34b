//! `POST /v1/tables/{table}/rows`: NDJSON, a JSON array or one object,
//! optionally gzipped; answered once the rows are committed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiResult, content_type, decoded_body, served};
use crate::server::AppState;
use crate::server::metrics;

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
        let ndjson = matches!(
            kind.as_str(),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/x-jsonlines" | "application/jsonlines"
        );
        // Admit against the queue before formatting (a full queue costs the
        // request nothing): rows counted from the body's shape.
        let rows = match (ndjson, kind.as_str(), text_start) {
            (_, _, None) => return Err(ApiError::bad_request("the body holds no rows")),
            (true, _, _) => ndjson_rows(&body),
            (false, "application/json", Some(b'[')) => {
                serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&body).map_or(1, |rows| rows.len())
            }
            _ => 1,
        };
        let admission = served.ingest.admit(rows.max(1)).map_err(ApiError::from)?;
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
        served.ingest.insert(admission, prepared).await.map_err(ApiError::from)
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

/// The rows of an NDJSON body as admission counts them: its lines that are
/// not blank (line ends found with `memchr`, which a byte-by-byte split took
/// ~2 % of the host's CPU under HTTP ingest to do).
fn ndjson_rows(body: &[u8]) -> usize {
    let mut rows = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len())) {
        if body[start.min(end)..end]
            .iter()
            .any(|b| !b.is_ascii_whitespace())
        {
            rows += 1;
        }
        start = end + 1;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::ndjson_rows;

    #[test]
    fn ndjson_rows_are_the_lines_that_are_not_blank() {
        for (body, rows) in [
            ("", 0),
            ("\n", 0),
            (" \r\n\t\n", 0),
            ("{}", 1),
            ("{}\n", 1),
            ("\n{}", 1),
            ("{}\r\n\n  \n{\"a\": 1}\n{}", 3),
            ("{}\n\n", 1),
        ] {
            let expected = body
                .split('\n')
                .filter(|line| line.bytes().any(|b| !b.is_ascii_whitespace()))
                .count();
            assert_eq!(expected, rows, "{body:?}");
            assert_eq!(ndjson_rows(body.as_bytes()), rows, "{body:?}");
        }
    }
}

//! The HTTP side of `serve`: the same ingest handler and contract as the Lambda behind
//! API Gateway.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::LengthLimitError;
use time::OffsetDateTime;

use crate::health::Health;
use okr_consumers::ingest::{Ingest, IngestRequest, IngestResponse};
use okr_pipeline::config::DEFAULT_MAX_BODY_BYTES;

/// `POST /webhooks/{source}`, `GET /healthz`, and a JSON 404 for the rest.
pub(super) fn router(ingest: Arc<Ingest>, health: Arc<Health>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(move || async move {
                let (status, body) = health.check().await;
                json_response(status, body)
            }),
        )
        .route("/webhooks/{source}", any(webhook))
        .fallback(|| async {
            json_response(
                StatusCode::NOT_FOUND,
                r#"{"error":"not_found","message":"POST to /webhooks/{source}"}"#.into(),
            )
        })
        .with_state(ingest)
}

async fn webhook(
    State(ingest): State<Arc<Ingest>>,
    UrlPath(source): UrlPath<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    // Read one byte past the limit, so an oversized body gets the contract's 413.
    let limit = DEFAULT_MAX_BODY_BYTES + 1;
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes.to_vec(),
        Err(error) if is_too_large(&error) => vec![0; limit],
        Err(_) => {
            // The client hung up or sent a broken body: nothing was stored.
            return json_response(
                StatusCode::BAD_REQUEST,
                r#"{"error":"unreadable_body","message":"the request body could not be read to its end"}"#.into(),
            );
        }
    };
    let request = IngestRequest {
        method: parts.method,
        source,
        headers: parts.headers,
        body,
        body_is_base64: false,
    };
    let IngestResponse {
        status,
        headers,
        body,
    } = ingest.handle(request, OffsetDateTime::now_utc()).await;
    let mut response = (status, body).into_response();
    response.headers_mut().extend(headers);
    response
}

/// Whether reading the body stopped at the size limit.
fn is_too_large(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.is::<LengthLimitError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

fn json_response(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| status.into_response())
}

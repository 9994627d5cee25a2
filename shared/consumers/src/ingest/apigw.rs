//! API Gateway HTTP API (payload format 2.0) in and out of the ingest handler.
//!
//! The function takes the raw `ApiGatewayV2httpRequest` rather than `lambda_http`'s
//! `Request`: `lambda_http` decodes base64 bodies with
//! `aws_lambda_events::encodings::Body::from_maybe_encoded`, which panics on invalid
//! base64 before any handler runs. Here the handler checks the encoding and answers 400.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use time::OffsetDateTime;

use crate::ingest::{Ingest, IngestRequest, IngestResponse};

/// Answer one API Gateway event.
pub async fn handle(
    ingest: &Ingest,
    event: ApiGatewayV2httpRequest,
    now: OffsetDateTime,
) -> ApiGatewayV2httpResponse {
    let response = ingest.handle(request_from(event), now).await;
    response_to(response)
}

/// The transport-neutral request: the source from the `{source}` path parameter, or
/// from the path's last segment after `/webhooks/` when the route has no parameter.
pub fn request_from(event: ApiGatewayV2httpRequest) -> IngestRequest {
    let source = event
        .path_parameters
        .get("source")
        .cloned()
        .unwrap_or_else(|| {
            event
                .raw_path
                .as_deref()
                .and_then(|path| path.trim_end_matches('/').rsplit_once("/webhooks/"))
                .map(|(_, source)| source.to_owned())
                .unwrap_or_default()
        });
    IngestRequest {
        method: event.request_context.http.method,
        source,
        headers: event.headers,
        body: event.body.unwrap_or_default().into_bytes(),
        body_is_base64: event.is_base64_encoded,
    }
}

/// The API Gateway response for `response`.
pub fn response_to(response: IngestResponse) -> ApiGatewayV2httpResponse {
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(response.status.as_u16());
    out.headers = response.headers;
    out.body = Some(Body::Text(response.body));
    out.is_base64_encoded = false;
    out
}

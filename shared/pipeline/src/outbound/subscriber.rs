//! Posting an event to a subscription's receiver: the body with its Standard Webhooks
//! headers and, when the receiver asks for one, an `Authorization` header. The answer is
//! sorted by the one classifier ([`send_json`]): a 410 Gone is a refusal like any 4xx,
//! which the consumer reads as the receiver asking to be switched off.

use http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};

use crate::outbound::http::send_json;
use crate::outbound::{DeliveryError, Service};

/// The `User-Agent` of every post.
pub const AGENT: &str = concat!("okr-webhooks/", env!("CARGO_PKG_VERSION"));

/// One signed post of `body` to `url` with `signed` (the `webhook-*` headers) and an
/// optional `Authorization` value. No error text carries the URL or a header's value.
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    signed: &[(&'static str, String)],
    authorization: Option<&str>,
    body: Vec<u8>,
) -> Result<(), DeliveryError> {
    let mut request = http
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, AGENT)
        .body(body);
    for (name, value) in signed {
        request = request.header(*name, value);
    }
    if let Some(authorization) = authorization {
        request = request.header(AUTHORIZATION, authorization);
    }
    send_json(Service::Subscriber, request).await
}

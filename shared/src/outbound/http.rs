//! The HTTP client for Slack and PagerDuty, and the one place their answers are sorted.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use super::{DeliveryError, Service};

/// The HTTP client for Slack and PagerDuty: a 5 s timeout, and no redirects, since a
/// redirect would carry the message (and PagerDuty's routing key) to a host nobody
/// configured; a 3xx is a refusal like any other. `https_only` for the Lambda functions;
/// `serve` also posts to plain `http://` stand-ins on the local machine.
pub fn http_client(https_only: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .https_only(https_only)
        .build()
}

/// An HTTP status the service answered with, as the cause of an unavailable service.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status} {reason}")]
pub struct HttpStatus {
    /// The status code.
    pub status: u16,
    /// The service's short reason.
    pub reason: String,
}

/// Send a JSON request to `service` and sort the answer: 2xx is done; 429 is rate
/// limiting (with `Retry-After`); 408, 5xx, a timeout or a network error means the
/// service is unavailable; any other status is a refusal, with the service's short
/// reason (Slack's error code, PagerDuty's `message`). No text carries the URL.
pub async fn send_json(
    service: Service,
    request: reqwest::RequestBuilder,
) -> Result<(), DeliveryError> {
    let response = request
        .send()
        .await
        .map_err(|e| DeliveryError::unavailable(service, e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    let reason = short_reason(&body);
    Err(match status {
        StatusCode::TOO_MANY_REQUESTS => DeliveryError::RateLimited {
            service,
            retry_after,
        },
        StatusCode::REQUEST_TIMEOUT => unavailable(service, status, reason),
        status if status.is_server_error() => unavailable(service, status, reason),
        status => DeliveryError::Refused {
            service,
            status: status.as_u16(),
            reason,
        },
    })
}

fn unavailable(service: Service, status: StatusCode, reason: String) -> DeliveryError {
    let status = status.as_u16();
    DeliveryError::unavailable(service, HttpStatus { status, reason })
}

/// PagerDuty's `message`, or Slack's plain-text error code: printable ASCII, at most 120
/// characters.
fn short_reason(body: &str) -> String {
    let reason = match serde_json::from_str::<Value>(body) {
        Ok(json) => json["message"].as_str().unwrap_or_default().to_owned(),
        Err(_) => body.to_owned(),
    };
    reason
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(120)
        .collect()
}

//! The HTTP client for Slack and PagerDuty, and the one place their answers are sorted.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use crate::outbound::{DeliveryError, Service};

/// The HTTP client for Slack and PagerDuty: a 5 s timeout, and no redirects, since a
/// redirect would carry the message (and PagerDuty's routing key) to a host nobody
/// configured; a 3xx is a refusal like any other. It calls only URLs [`callable`]
/// accepted: every destination URL is checked where it is configured.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Why [`callable`] refused a URL (never the URL itself: a Slack webhook URL is a
/// credential).
pub const NOT_CALLABLE: &str =
    "must be an https:// URL (plain http:// only to a loopback address such as 127.0.0.1)";

/// `url` if the client may call it: `https://` anywhere, plain `http://` only to a
/// loopback address (127.0.0.0/8 or ::1), for a stand-in on this machine. Anything else
/// (http:// to another host, even `localhost`, which a resolver may send elsewhere;
/// another scheme; not a URL) can never be called: a configuration error, refused where
/// the URL is configured.
pub fn callable(url: &str) -> Result<reqwest::Url, &'static str> {
    okr_core::callable::loopback_or_https(url).ok_or(NOT_CALLABLE)
}

/// Whether `url` is one [`callable`] accepts as plain http: a stand-in on this machine.
pub fn is_stand_in(url: &str) -> bool {
    callable(url).is_ok_and(|url| url.scheme() == "http")
}

/// Say at start that the destination `setting` names is plain http to loopback (a
/// stand-in on this machine), so nobody mistakes it for the real service.
pub fn log_stand_in(setting: &str) {
    tracing::info!(
        setting,
        "posting over plain http to a loopback address (a local stand-in)"
    );
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

#[cfg(test)]
mod tests {
    use super::callable;

    #[test]
    fn https_anywhere_and_plain_http_only_to_loopback() {
        for good in [
            "https://hooks.slack.com/services/T0/B0/x",
            "https://events.pagerduty.com/v2/enqueue",
            "http://127.0.0.1:5001/slack",
            "http://127.8.9.10/slack",
            "http://[::1]:5001/slack",
            " https://hooks.slack.com/x ",
        ] {
            assert!(callable(good).is_ok(), "{good}");
        }
        for bad in [
            "http://hooks.slack.com/services/T0/B0/x",
            "http://localhost:5001/slack",
            "http://127.0.0.1.nip.io/slack",
            "http://10.0.0.1/slack",
            "http://[::2]/slack",
            "ftp://127.0.0.1/slack",
            "hooks.slack.com/services/x",
            "https://",
            "",
        ] {
            assert!(callable(bad).is_err(), "{bad}");
        }
    }
}

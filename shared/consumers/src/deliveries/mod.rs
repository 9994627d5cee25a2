//! The delivery log: every request to `/webhooks/*`, accepted or not, as ingest saw it:
//! when, which endpoint, the outcome and why, the event it became, the body's size and
//! hash, and the headers with signature values cut short and secrets left out. Bodies
//! are not kept (they hold personal data), except a refused one's while its endpoint
//! captures them, which is asked for and lasts a day. Kept for a bounded time and size.

pub mod memory;

use async_trait::async_trait;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use okr_pipeline::journal::{Journal, Step};

/// How long deliveries are kept by default.
pub const DEFAULT_KEEP: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// How many deliveries are kept at most by default (the oldest go first).
pub const DEFAULT_MAX_DELIVERIES: usize = 100_000;
/// How many headers of a request are kept, and how long a value may be.
const MAX_HEADERS: usize = 50;
const MAX_VALUE_CHARS: usize = 200;
/// How much of a header's value is kept when it may be a signature.
const SIGNATURE_CHARS: usize = 8;

/// One request as ingest answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// When it arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The endpoint named in the path (as requested, even when no such endpoint exists).
    pub endpoint: String,
    /// The HTTP method.
    pub method: String,
    /// The status answered.
    pub status: u16,
    /// `accepted`, `duplicate`, `handshake`, `refused` (the sender's to fix) or
    /// `unavailable` (ours: the sender retries).
    pub outcome: String,
    /// Why: `accepted`, `duplicate`, `handshake`, or the refusal's code; for a signature,
    /// what failed (`wrong_signature`, `timestamp_out_of_tolerance`, `missing_header`...).
    pub reason: String,
    /// The event it became, when it was verified and normalized.
    pub event_id: Option<String>,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// The body's size as received, in bytes.
    pub body_bytes: usize,
    /// The body's SHA-256 as received, in hex: to match a provider's copy, never to
    /// read it back. None for a body over the limit (only its start was read).
    pub body_sha256: Option<String>,
    /// The headers, lower-cased, in order: plain ones (content type, user agent, host,
    /// Standard Webhooks' id and timestamp...) whole, credentials (authorization,
    /// cookies, handshake secrets, tokens) and the sender's address (forwarded-for) as
    /// their length only, every other one (a signature, whatever its name) cut to its
    /// first characters.
    pub headers: Vec<(String, String)>,
    /// The body as received (its first [`MAX_CAPTURED_BYTES`], as text), only for a
    /// refused delivery while its endpoint captures them; the log drops it
    /// [`CAPTURE_FOR`] after it arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The trace ingest's span of it belongs to (32 hex digits; docs/deliveries.md,
    /// "Traces"): where to look it up in a tracing system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// How long an endpoint captures refused bodies once asked to, and how long the log
/// keeps each.
pub const CAPTURE_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// How much of a refused body is captured.
pub const MAX_CAPTURED_BYTES: usize = 64 * 1024;

/// What is kept of a refused `body`: its first [`MAX_CAPTURED_BYTES`] as text.
pub fn captured(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(MAX_CAPTURED_BYTES)]).into_owned()
}

impl Delivery {
    /// A delivery of `body` with `headers` to `endpoint`, before its outcome is known.
    pub fn received(
        time: OffsetDateTime,
        endpoint: &str,
        method: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Delivery {
        Delivery {
            time,
            endpoint: endpoint.chars().take(100).collect(),
            method: method.to_owned(),
            status: 0,
            outcome: String::new(),
            reason: String::new(),
            event_id: None,
            event_type: None,
            body_bytes: body.len(),
            body_sha256: Some(hex::encode(Sha256::digest(body))),
            headers: kept_headers(headers),
            body: None,
            trace_id: None,
        }
    }
}

/// Whether a header carries a credential or the sender's address: only its length is
/// kept.
fn is_withheld(name: &str) -> bool {
    matches!(
        name,
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "set-cookie"
            | "x-hook-secret"
            | "forwarded"
            | "x-forwarded-for"
            | "x-real-ip"
            | "cf-connecting-ip"
            | "true-client-ip"
    ) || name.contains("secret")
        || name.contains("token")
        || name.contains("api-key")
        || name.contains("apikey")
}

/// Headers that say nothing secret or personal: kept whole. Every other header (a
/// signature, whatever a declared scheme calls it) keeps its first characters only,
/// enough to tell two apart, too few to replay.
fn is_plain(name: &str) -> bool {
    matches!(
        name,
        "content-type"
            | "content-length"
            | "content-encoding"
            | "user-agent"
            | "accept"
            | "accept-encoding"
            | "host"
            | "connection"
            | "date"
            | "expect"
            | "webhook-id"
            | "webhook-timestamp"
            | "x-request-id"
            | "x-amzn-trace-id"
            | "traceparent"
            | "tracestate"
    )
}

/// The headers as the log keeps them.
pub fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .take(MAX_HEADERS)
        .map(|(name, value)| {
            let name = name.as_str().to_ascii_lowercase();
            let text = value.to_str().unwrap_or("");
            let kept = if is_withheld(&name) {
                format!("({} characters, not kept)", value.len())
            } else if value.to_str().is_err() {
                "(not text)".to_owned()
            } else if !is_plain(&name) {
                let start: String = text.chars().take(SIGNATURE_CHARS).collect();
                format!("{start}… ({} characters)", value.len())
            } else {
                let mut kept: String = text.chars().take(MAX_VALUE_CHARS).collect();
                if text.chars().count() > MAX_VALUE_CHARS {
                    kept.push('…');
                }
                kept
            };
            (name, kept)
        })
        .collect()
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// This endpoint's only.
    pub endpoint: Option<String>,
    /// This outcome's only.
    pub outcome: Option<String>,
    /// Since this time (inclusive).
    pub since: Option<OffsetDateTime>,
    /// The deliveries of this event only.
    pub event_id: Option<String>,
    /// The deliveries that became an event of this type only.
    pub event_type: Option<String>,
    /// At most this many, newest first (none: [`DEFAULT_LIST_LIMIT`]).
    pub limit: Option<usize>,
}

/// How many deliveries a list holds by default.
pub const DEFAULT_LIST_LIMIT: usize = 100;

impl Filter {
    /// Whether `delivery` is one it lists.
    pub fn matches(&self, delivery: &Delivery) -> bool {
        self.endpoint
            .as_ref()
            .is_none_or(|e| *e == delivery.endpoint)
            && self.outcome.as_ref().is_none_or(|o| *o == delivery.outcome)
            && self.since.is_none_or(|t| delivery.time >= t)
            && self
                .event_id
                .as_ref()
                .is_none_or(|id| delivery.event_id.as_ref() == Some(id))
            && self
                .event_type
                .as_ref()
                .is_none_or(|t| delivery.event_type.as_ref() == Some(t))
    }

    /// The most it lists.
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIST_LIMIT)
    }
}

/// Why the log could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("delivery log: {0}")]
pub struct DeliveryLogError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl DeliveryLogError {
    /// An error from a message.
    pub fn new(message: impl Into<String>) -> Self {
        DeliveryLogError(message.into().into())
    }
}

/// Where ingest records each delivery: a log line on AWS ([`LogDeliveries`]), SQLite
/// in `serve`, memory in tests.
#[async_trait]
pub trait DeliveryLog: Send + Sync {
    /// Keep `delivery` (dropping what is past the log's bounds).
    async fn record(&self, delivery: &Delivery) -> Result<(), DeliveryLogError>;

    /// Whether the bodies of refused deliveries to `endpoint` are captured at `at`
    /// (asked on a refusal only).
    async fn capturing(&self, endpoint: &str, at: OffsetDateTime) -> bool;

    /// Whether it ever keeps a body (when not, ingest copies none).
    fn keeps_bodies(&self) -> bool {
        true
    }
}

/// A delivery log that can be read, with the journeys of the events its deliveries
/// became (it is the consumers' journal too): SQLite in `serve`, memory in tests. On
/// AWS both are log lines, read with CloudWatch Logs Insights
/// (`okr-webhooks deliveries --stack`).
#[async_trait]
pub trait DeliveryStore: DeliveryLog + Journal {
    /// The deliveries `filter` matches, newest first.
    async fn list(&self, filter: &Filter) -> Result<Vec<Delivery>, DeliveryLogError>;

    /// The steps of the event `event_id`'s journey, oldest first.
    async fn journey(&self, event_id: &str) -> Result<Vec<Step>, DeliveryLogError>;
}

/// The delivery log of the ingest function: one structured log line per delivery
/// (target `delivery`, message `delivery`, the record's fields, its headers as JSON
/// text), never its body: CloudWatch Logs keeps it as long as the log group (30
/// days) and Logs Insights reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogDeliveries;

#[async_trait]
impl DeliveryLog for LogDeliveries {
    async fn record(&self, delivery: &Delivery) -> Result<(), DeliveryLogError> {
        let headers = serde_json::to_string(&delivery.headers).unwrap_or_default();
        tracing::info!(
            target: "delivery",
            endpoint = %delivery.endpoint,
            method = %delivery.method,
            status = delivery.status,
            outcome = %delivery.outcome,
            reason = %delivery.reason,
            event_id = delivery.event_id.as_deref().unwrap_or(""),
            r#type = delivery.event_type.as_deref().unwrap_or(""),
            body_bytes = delivery.body_bytes,
            body_sha256 = delivery.body_sha256.as_deref().unwrap_or(""),
            headers = %headers,
            trace_id = delivery.trace_id.as_deref().unwrap_or(""),
            "delivery"
        );
        Ok(())
    }

    async fn capturing(&self, _endpoint: &str, _at: OffsetDateTime) -> bool {
        // Never on AWS: a body in a log group would be personal data in the logs.
        false
    }

    fn keeps_bodies(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_cut_and_credentials_left_out() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "X-PeopleForce-Signature",
            "sha256=0123456789abcdef".parse().unwrap(),
        );
        headers.insert(
            "webhook-signature",
            "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
                .parse()
                .unwrap(),
        );
        headers.insert("authorization", "Bearer s3cr3t-t0ken".parse().unwrap());
        headers.insert("x-hook-secret", "hook-secret-value".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        // A declared scheme's signature header, named as its tool likes.
        headers.insert(
            "x-webhook-auth",
            "deadbeefcafebabe0011223344".parse().unwrap(),
        );
        headers.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
        let kept = kept_headers(&headers);
        let text = format!("{kept:?}");
        for secret in [
            "0123456789abcdef",
            "K5oZfzN95Z9U",
            "s3cr3t",
            "hook-secret-value",
            "cafebabe",
            "203.0",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(kept.contains(&(
            "x-peopleforce-signature".into(),
            "sha256=0… (23 characters)".into()
        )));
        assert!(kept.contains(&("authorization".into(), "(19 characters, not kept)".into())));
        assert!(kept.contains(&("content-type".into(), "application/json".into())));
        assert!(kept.contains(&("x-webhook-auth".into(), "deadbeef… (26 characters)".into())));
        assert!(kept.contains(&("x-forwarded-for".into(), "(11 characters, not kept)".into())));
    }
}

//! Why a delivery was not accepted: the answer, the log line and the error code.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use tokio::time::Instant;

use crate::ingest::{IngestResponse, MAX_MESSAGE_BYTES, RETRY_AFTER_SECS, respond};
use okr_core::normalize::NormalizeError;
use okr_core::source::Source;

/// How often the reason for failed signatures is logged, per source and reason.
pub const SIGNATURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// A source and a reason for failing.
type LogKey = (Source, &'static str);

/// Lets one log line through per key and interval, and counts the ones it holds back:
/// when it last let one through, and how many since.
#[derive(Debug)]
pub(super) struct LogLimiter {
    interval: Duration,
    seen: Mutex<HashMap<LogKey, (Instant, u64)>>,
}

impl LogLimiter {
    pub(super) fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            seen: Mutex::default(),
        }
    }

    /// `Some(held back since the last line)` when a line may be logged now.
    pub(super) fn allow(&self, key: LogKey) -> Option<u64> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get_mut(&key) {
            Some((last, held)) if now.duration_since(*last) < self.interval => {
                *held += 1;
                None
            }
            Some((last, held)) => {
                *last = now;
                Some(std::mem::take(held))
            }
            None => {
                seen.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

/// Why a delivery was not accepted.
#[derive(Debug)]
pub(super) enum Rejection {
    UnknownSource,
    /// A handshake for an endpoint that has a secret, or without a value.
    HandshakeRefused,
    /// Not a POST; the provider may say why its deliveries must be POSTs.
    MethodNotAllowed {
        advice: Option<&'static str>,
    },
    TooLarge,
    EventTooLarge,
    InvalidBase64,
    InvalidBody(NormalizeError),
    /// Not verified: what failed (`VerifyError::kind`), for the delivery log only.
    Signature(&'static str),
    SecretsUnavailable,
    EnqueueFailed {
        failures: usize,
    },
}

impl Rejection {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Rejection::UnknownSource => StatusCode::NOT_FOUND,
            Rejection::HandshakeRefused => StatusCode::FORBIDDEN,
            Rejection::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::TooLarge | Rejection::EventTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::InvalidBase64 | Rejection::InvalidBody(_) => StatusCode::BAD_REQUEST,
            Rejection::Signature(_) => StatusCode::UNAUTHORIZED,
            Rejection::SecretsUnavailable | Rejection::EnqueueFailed { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The stable error code in the JSON body and the metrics.
    pub(super) fn code(&self) -> &'static str {
        match self {
            Rejection::UnknownSource => "unknown_source",
            Rejection::HandshakeRefused => "handshake_refused",
            Rejection::MethodNotAllowed { .. } => "method_not_allowed",
            Rejection::TooLarge => "body_too_large",
            Rejection::InvalidBase64 => "invalid_body",
            // Verified, so a genuine provider sent it: their own codes, for the alarms.
            Rejection::EventTooLarge => "event_too_large",
            Rejection::InvalidBody(_) => "invalid_payload",
            Rejection::Signature(_) => "invalid_signature",
            Rejection::SecretsUnavailable => "secrets_unavailable",
            Rejection::EnqueueFailed { .. } => "enqueue_failed",
        }
    }

    /// A message for the sender: fixed texts and our own error texts, never a secret,
    /// the body, or an upstream error.
    pub(super) fn message(&self, max_body_bytes: usize) -> String {
        match self {
            // The endpoints configured here are not listed: their names are the
            // operator's, not for whoever is knocking.
            Rejection::UnknownSource => {
                "unknown endpoint: POST to /webhooks/<endpoint>, an endpoint configured here".into()
            }
            Rejection::HandshakeRefused => "a handshake is accepted only while the endpoint has \
                 no secret: re-arm the endpoint to accept a new one"
                .into(),
            Rejection::MethodNotAllowed { advice } => {
                advice.unwrap_or("webhooks are delivered with POST").into()
            }
            Rejection::TooLarge => format!("the body is over the {max_body_bytes}-byte limit"),
            Rejection::EventTooLarge => {
                format!(
                    "the normalized event is over the {MAX_MESSAGE_BYTES}-byte queue message limit"
                )
            }
            Rejection::InvalidBase64 => {
                "the body is marked base64-encoded but is not valid base64".into()
            }
            Rejection::InvalidBody(error) => error.to_string(),
            // The reason (which header, no secret configured) is for the operator's
            // log, not for whoever is knocking.
            Rejection::Signature(_) => "the signature could not be verified".into(),
            Rejection::SecretsUnavailable => {
                "the signing secrets are unavailable; retry later".into()
            }
            Rejection::EnqueueFailed { .. } => "the event could not be queued; retry later".into(),
        }
    }

    /// Why, for the delivery log: the code, or for a signature what failed.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Rejection::Signature(kind) => kind,
            other => other.code(),
        }
    }

    /// How many queues failed to store the event.
    pub(super) fn enqueue_failures(&self) -> usize {
        match self {
            Rejection::EnqueueFailed { failures } => *failures,
            _ => 0,
        }
    }

    /// The answer: the code and message as JSON, and `Retry-After` or `Allow` where they
    /// apply.
    pub(super) fn response(&self, max_body_bytes: usize) -> IngestResponse {
        let body = json!({"error": self.code(), "message": self.message(max_body_bytes)});
        let mut response = respond(self.status(), body.to_string());
        match self {
            Rejection::SecretsUnavailable | Rejection::EnqueueFailed { .. } => {
                response
                    .headers
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            Rejection::MethodNotAllowed { .. } => {
                response
                    .headers
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            _ => {}
        }
        response
    }

    /// Log the rejection: our failures as errors, verified deliveries we still refused as
    /// errors (a genuine provider cannot get them through by retrying, and the event is
    /// lost unless someone acts), the rest as information.
    pub(super) fn log(&self, source: Option<Source>, max_body_bytes: usize) {
        let status = self.status();
        let source = source.map(Source::as_str).unwrap_or("unknown");
        let (outcome, status) = (self.code(), status.as_u16());
        if self.status().is_server_error() {
            tracing::error!(source, outcome, status, "webhook not accepted");
        } else if matches!(self, Rejection::EventTooLarge | Rejection::InvalidBody(_)) {
            let detail = self.message(max_body_bytes);
            tracing::error!(
                source,
                outcome,
                status,
                detail,
                "a verified delivery was refused"
            );
        } else {
            tracing::info!(source, outcome, status, "webhook rejected");
        }
    }
}

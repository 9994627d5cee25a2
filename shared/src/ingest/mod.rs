//! The ingest handler: the HTTP contract of `POST /webhooks/{source}` (DESIGN.md,
//! "Ingest HTTP contract"), independent of API Gateway or a local server.
//!
//! Order of checks: route (404), method (405), size (413), base64 (400), secrets
//! (503), signature (401), body (400), queues (503), then 202. Nothing is enqueued
//! unless the answer is 202, and the answer is 202 only once every queue that the
//! routing table picks has stored the event.

pub mod apigw;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::json;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::event::Event;
use crate::metrics::{IngestRecord, MetricsSink};
use crate::normalize::{NormalizeError, normalize};
use crate::queue::{EventQueue, QueueMessage};
use crate::routing::Consumer;
use crate::routing::{NotifyRules, notification_view, route};
use crate::secrets::SecretCache;
use crate::signature::{VerifyError, verify};
use crate::source::Source;

/// The largest queue message: SQS's limit (1 MiB), less room for the attributes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024 - 4 * 1024;

/// Seconds a provider is asked to wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 30;

/// One delivery as the HTTP edge received it.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    /// The HTTP method.
    pub method: Method,
    /// The `{source}` path segment.
    pub source: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The body as received: raw bytes, or base64 text when `body_is_base64`.
    pub body: Vec<u8>,
    /// API Gateway's `isBase64Encoded`.
    pub body_is_base64: bool,
}

/// The answer: a status, headers, and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestResponse {
    /// The status.
    pub status: StatusCode,
    /// `content-type: application/json`, and `retry-after` or `allow` where they apply.
    pub headers: HeaderMap,
    /// The JSON body.
    pub body: String,
}

/// The ingest service and what it depends on.
pub struct Ingest {
    secrets: SecretCache,
    queue: Arc<dyn EventQueue>,
    rules: NotifyRules,
    max_body_bytes: usize,
    metrics: Arc<dyn MetricsSink>,
    signature_log: LogLimiter,
}

/// How often the reason for failed signatures is logged, per source and reason.
pub const SIGNATURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// A source and a reason for failing.
type LogKey = (Source, &'static str);

/// Lets one log line through per key and interval, and counts the ones it holds back:
/// when it last let one through, and how many since.
#[derive(Debug)]
struct LogLimiter {
    interval: Duration,
    seen: Mutex<HashMap<LogKey, (Instant, u64)>>,
}

impl LogLimiter {
    fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            seen: Mutex::default(),
        }
    }

    /// `Some(held back since the last line)` when a line may be logged now.
    fn allow(&self, key: LogKey) -> Option<u64> {
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
enum Rejection {
    UnknownSource,
    MethodNotAllowed { perscom_get: bool },
    TooLarge,
    EventTooLarge,
    InvalidBase64,
    InvalidBody(NormalizeError),
    Signature,
    SecretsUnavailable,
    EnqueueFailed { failures: usize },
}

impl Rejection {
    fn status(&self) -> StatusCode {
        match self {
            Rejection::UnknownSource => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::TooLarge | Rejection::EventTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::InvalidBase64 | Rejection::InvalidBody(_) => StatusCode::BAD_REQUEST,
            Rejection::Signature => StatusCode::UNAUTHORIZED,
            Rejection::SecretsUnavailable | Rejection::EnqueueFailed { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The stable error code in the JSON body and the metrics.
    fn code(&self) -> &'static str {
        match self {
            Rejection::UnknownSource => "unknown_source",
            Rejection::MethodNotAllowed { .. } => "method_not_allowed",
            Rejection::TooLarge => "body_too_large",
            Rejection::InvalidBase64 => "invalid_body",
            // Verified, so a genuine provider sent it: their own codes, for the alarms.
            Rejection::EventTooLarge => "event_too_large",
            Rejection::InvalidBody(_) => "invalid_payload",
            Rejection::Signature => "invalid_signature",
            Rejection::SecretsUnavailable => "secrets_unavailable",
            Rejection::EnqueueFailed { .. } => "enqueue_failed",
        }
    }

    /// A message for the sender: fixed texts and our own error texts, never a secret,
    /// the body, or an upstream error.
    fn message(&self, max_body_bytes: usize) -> String {
        match self {
            Rejection::UnknownSource => format!(
                "unknown source: POST to /webhooks/{{{}}}",
                Source::ALL.map(Source::as_str).join("|")
            ),
            Rejection::MethodNotAllowed { perscom_get: true } => "PERSCOM GET deliveries carry \
                the payload in the query string and cannot be verified: choose POST as the \
                webhook's method in PERSCOM"
                .into(),
            Rejection::MethodNotAllowed { perscom_get: false } => {
                "webhooks are delivered with POST".into()
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
            Rejection::Signature => "the signature could not be verified".into(),
            Rejection::SecretsUnavailable => {
                "the signing secrets are unavailable; retry later".into()
            }
            Rejection::EnqueueFailed { .. } => "the event could not be queued; retry later".into(),
        }
    }
}

/// A delivery that was verified and stored on every queue it routes to.
struct Accepted {
    event: Event,
    duplicate: bool,
}

impl Ingest {
    /// The service over its ports.
    pub fn new(
        secrets: SecretCache,
        queue: Arc<dyn EventQueue>,
        rules: NotifyRules,
        max_body_bytes: usize,
        metrics: Arc<dyn MetricsSink>,
    ) -> Self {
        Ingest {
            secrets,
            queue,
            rules,
            max_body_bytes,
            metrics,
            signature_log: LogLimiter::new(SIGNATURE_LOG_INTERVAL),
        }
    }

    /// Fetch the signing secrets before the first delivery (start-up). A failure is
    /// logged and retried by the first delivery.
    pub async fn warm_up(&self) {
        if let Err(error) = self.secrets.current().await {
            tracing::warn!(error = %crate::error_chain(&error), "could not prefetch the signing secrets");
        }
    }

    /// Answer one delivery. `now` is the clock for timestamps and `received_at`.
    pub async fn handle(&self, request: IngestRequest, now: OffsetDateTime) -> IngestResponse {
        let source = request.source.parse::<Source>().ok();
        let outcome = self.accept(request, now).await;
        let (response, record) = match &outcome {
            Ok(accepted) => {
                tracing::info!(
                    event_id = %accepted.event.id,
                    source = %accepted.event.source,
                    r#type = %accepted.event.event_type,
                    duplicate = accepted.duplicate,
                    outcome = "accepted",
                    "webhook accepted"
                );
                let body = json!({"event_id": accepted.event.id, "duplicate": accepted.duplicate});
                let record = IngestRecord {
                    source,
                    reason: "accepted",
                    status: 202,
                    enqueue_failures: 0,
                };
                (respond(StatusCode::ACCEPTED, body.to_string()), record)
            }
            Err(rejection) => {
                let status = rejection.status();
                let source_name = source.map(Source::as_str).unwrap_or("unknown");
                if status.is_server_error() {
                    tracing::error!(
                        source = source_name,
                        outcome = rejection.code(),
                        status = status.as_u16(),
                        "webhook not accepted"
                    );
                } else if matches!(
                    rejection,
                    Rejection::EventTooLarge | Rejection::InvalidBody(_)
                ) {
                    // Signed with our secret, yet refused: the provider will not get it
                    // through by retrying, and the event is lost unless someone acts.
                    tracing::error!(
                        source = source_name,
                        outcome = rejection.code(),
                        status = status.as_u16(),
                        detail = %rejection.message(self.max_body_bytes),
                        "a verified delivery was refused"
                    );
                } else {
                    tracing::info!(
                        source = source_name,
                        outcome = rejection.code(),
                        status = status.as_u16(),
                        "webhook rejected"
                    );
                }
                let body = json!({"error": rejection.code(), "message": rejection.message(self.max_body_bytes)});
                let mut response = respond(status, body.to_string());
                match rejection {
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
                let enqueue_failures = match rejection {
                    Rejection::EnqueueFailed { failures } => *failures,
                    _ => 0,
                };
                let record = IngestRecord {
                    source,
                    reason: rejection.code(),
                    status: status.as_u16(),
                    enqueue_failures,
                };
                (response, record)
            }
        };
        self.metrics.ingest(&record);
        response
    }

    async fn accept(
        &self,
        request: IngestRequest,
        now: OffsetDateTime,
    ) -> Result<Accepted, Rejection> {
        let source: Source = request
            .source
            .parse()
            .map_err(|_| Rejection::UnknownSource)?;
        if request.method != Method::POST {
            return Err(Rejection::MethodNotAllowed {
                perscom_get: source == Source::Perscom && request.method == Method::GET,
            });
        }
        let body = self.decoded_body(request.body, request.body_is_base64)?;
        let headers = request.headers;

        let secrets = self.secrets.current().await.map_err(|error| {
            tracing::error!(error = %crate::error_chain(&error), "signing secrets unavailable");
            Rejection::SecretsUnavailable
        })?;
        if let Err(error) = verify(source, secrets.for_source(source), &headers, &body, now) {
            let secret_related = matches!(
                error,
                VerifyError::WrongSignature
                    | VerifyError::NoSecret
                    | VerifyError::UnusableSecret(_)
            );
            // A new secret may have been rotated in: look once more (rate limited).
            let refreshed = match secret_related {
                true => self.secrets.refresh_after_failure().await,
                false => None,
            };
            let second_try = match refreshed {
                Some(fresh) => verify(source, fresh.for_source(source), &headers, &body, now),
                None => Err(error),
            };
            second_try.map_err(|error| self.signature_rejected(source, error))?;
        }

        let event = normalize(source, &headers, &body, now).map_err(Rejection::InvalidBody)?;
        let message = QueueMessage::from_event(&event).map_err(|error| {
            tracing::error!(error = %error, "could not encode the event");
            Rejection::EnqueueFailed { failures: 1 }
        })?;
        if message.body.len() > MAX_MESSAGE_BYTES {
            return Err(Rejection::EventTooLarge);
        }
        let consumers = route(&event, &self.rules);
        // Slack and the alerts get the event without the personal data they do not use.
        let notification = if consumers.iter().any(|c| *c != Consumer::Warehouse) {
            Some(
                QueueMessage::from_event(&notification_view(&event)).map_err(|error| {
                    tracing::error!(error = %error, "could not encode the event");
                    Rejection::EnqueueFailed { failures: 1 }
                })?,
            )
        } else {
            None
        };
        let sends = consumers.iter().map(|consumer| {
            let message = match (consumer, &notification) {
                (Consumer::Warehouse, _) | (_, None) => &message,
                (_, Some(notification)) => notification,
            };
            self.queue.send(*consumer, message)
        });
        let results = futures::future::join_all(sends).await;
        let mut failures = 0;
        let mut duplicate = true;
        for result in results {
            match result {
                Ok(sent) => duplicate &= sent.duplicate,
                Err(error) => {
                    failures += 1;
                    tracing::error!(
                        event_id = %event.id,
                        consumer = %error.consumer,
                        error = %crate::error_chain(&error),
                        "enqueue failed"
                    );
                }
            }
        }
        if failures > 0 {
            return Err(Rejection::EnqueueFailed { failures });
        }
        Ok(Accepted { event, duplicate })
    }

    /// Log why a signature failed, at most once a minute per source and reason (a flood
    /// of forgeries cannot fill the log), with the count held back since.
    fn signature_rejected(&self, source: Source, error: VerifyError) -> Rejection {
        if let Some(held_back) = self.signature_log.allow((source, error.kind())) {
            if matches!(
                error,
                VerifyError::NoSecret | VerifyError::UnusableSecret(_)
            ) {
                // Not the sender's fault: the operator must set the secret.
                tracing::error!(source = %source, reason = error.kind(), detail = %error, held_back, "signing secret missing or unusable");
            } else {
                tracing::warn!(source = %source, reason = error.kind(), detail = %error, held_back, "signature not verified");
            }
        }
        Rejection::Signature
    }

    /// The body bytes to verify: base64-decoded when API Gateway encoded them (checked
    /// here: an invalid encoding is the sender's error, not a crash), within the limit.
    fn decoded_body(&self, body: Vec<u8>, is_base64: bool) -> Result<Vec<u8>, Rejection> {
        let body = if is_base64 {
            // Four base64 characters carry three bytes: reject before decoding.
            if body.len() / 4 * 3 > self.max_body_bytes.saturating_add(3) {
                return Err(Rejection::TooLarge);
            }
            STANDARD
                .decode(&body)
                .map_err(|_| Rejection::InvalidBase64)?
        } else {
            body
        };
        if body.len() > self.max_body_bytes {
            return Err(Rejection::TooLarge);
        }
        Ok(body)
    }
}

fn respond(status: StatusCode, body: String) -> IngestResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    IngestResponse {
        status,
        headers,
        body,
    }
}

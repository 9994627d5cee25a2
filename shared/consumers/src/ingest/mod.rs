//! The ingest handler: the HTTP contract of `POST /webhooks/{source}` (docs/ingest.md),
//! independent of API Gateway or a local server.
//!
//! Order of checks: route (404), method (405), size (413), base64 (400), secrets
//! (503), signature (401), body (400), queues (503), then 202. Nothing is enqueued
//! unless the answer is 202, and the answer is 202 only once every queue that the
//! routing table picks has stored the event.

pub mod apigw;
mod rejection;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::json;
use time::OffsetDateTime;

use crate::deliveries::{Delivery, DeliveryLog};
use okr_core::endpoints::{Endpoint, Endpoints};
use okr_core::event::Event;
use okr_core::normalize::normalize;
use okr_core::routing::{Consumer, NotifyRules, route};
use okr_core::signature::{VerifyError, verify};
use okr_core::signing::SigningSecret;
use okr_core::source::Source;
use okr_core::subscriptions::Subscriptions;
use okr_pipeline::journal::{Journal, Journey};
use okr_pipeline::metrics::{IngestRecord, MetricsSink};
use okr_pipeline::queue::{EventQueue, QueueMessage};
use okr_pipeline::secrets::{Adopted, SecretCache, SecretWriter, fixed};
use okr_pipeline::trace::{Span, TRACEPARENT};
pub use rejection::SIGNATURE_LOG_INTERVAL;
use rejection::{LogLimiter, Rejection};

/// The largest queue message: SQS's limit (1 MiB), less room for the attributes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024 - 4 * 1024;

/// Seconds a provider is asked to wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 30;

/// One delivery as the HTTP edge received it.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    /// The HTTP method.
    pub method: Method,
    /// The `{endpoint}` path segment: the endpoint's name.
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

/// What of an event the subscriptions' queue gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// The whole event: a subscription asks for it.
    Whole,
    /// The event as the Slack queue gets it.
    Cut,
}

/// The ingest service and what it depends on.
pub struct Ingest {
    secrets: SecretCache,
    endpoints: SecretCache<Endpoints>,
    handshakes: Option<Arc<dyn SecretWriter>>,
    queue: Arc<dyn EventQueue>,
    rules: NotifyRules,
    max_body_bytes: usize,
    metrics: Arc<dyn MetricsSink>,
    signature_log: LogLimiter,
    deliveries: Option<Arc<dyn DeliveryLog>>,
    subscriptions: Option<SecretCache<Subscriptions>>,
    /// Every event goes on the subscriptions queue (to be published to the event bus).
    every_event_to_subscriptions: bool,
    journey: Journey,
}

/// What became of an accepted request.
enum Outcome {
    /// A handshake, answered.
    Handshake(IngestResponse),
    /// A delivery, stored.
    Accepted(Box<Accepted>),
}

/// A delivery that was verified and stored on every queue it routes to.
struct Accepted {
    event: Event,
    duplicate: bool,
    /// The queues it went to.
    queues: Vec<Consumer>,
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
            endpoints: SecretCache::new(
                fixed(Endpoints::builtin()),
                okr_pipeline::secrets::DEFAULT_TTL,
            ),
            handshakes: None,
            queue,
            rules,
            max_body_bytes,
            metrics,
            signature_log: LogLimiter::new(SIGNATURE_LOG_INTERVAL),
            deliveries: None,
            subscriptions: None,
            every_event_to_subscriptions: false,
            journey: Journey::logged("ingest"),
        }
    }

    /// Record each accepted event's first step in `journal` (by default, as a log line).
    pub fn journaling(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journey = self.journey.writing_to(journal);
        self
    }

    /// Record every request, accepted or not, in `log` (the delivery inspector's).
    pub fn with_deliveries(mut self, log: Arc<dyn DeliveryLog>) -> Self {
        self.deliveries = Some(log);
        self
    }

    /// Take the endpoints from `endpoints` (the endpoints document, cached) rather
    /// than the four built in.
    pub fn with_endpoints(mut self, endpoints: SecretCache<Endpoints>) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// Queue each event a subscription in `subscriptions` takes for the subscriptions
    /// consumer. When the document cannot be read, every event is queued for it (the
    /// consumer waits for a readable document): a subscriber loses nothing to an edit.
    pub fn with_subscriptions(mut self, subscriptions: SecretCache<Subscriptions>) -> Self {
        self.subscriptions = Some(subscriptions);
        self
    }

    /// Queue every event for the subscriptions' consumer, which publishes each to the
    /// event bus.
    pub fn with_every_event_to_subscriptions(mut self) -> Self {
        self.every_event_to_subscriptions = true;
        self
    }

    /// Keep the secrets a handshake hands over (Asana's `X-Hook-Secret`) in `writer`.
    /// Without one, handshakes are refused with 503.
    pub fn with_handshakes(mut self, writer: Arc<dyn SecretWriter>) -> Self {
        self.handshakes = Some(writer);
        self
    }

    /// Fetch the signing secrets and the endpoints before the first delivery
    /// (start-up). A failure is logged and retried by the first delivery.
    pub async fn warm_up(&self) {
        // Side by side: start-up waits for the slower of the two reads, not their sum.
        let (secrets, endpoints) = tokio::join!(self.secrets.current(), self.endpoints.current());
        if let Err(error) = secrets {
            tracing::warn!(error = %okr_core::error_chain(&error), "could not prefetch the signing secrets");
        }
        if let Err(error) = endpoints {
            tracing::error!(error = %okr_core::error_chain(&error), "could not read the endpoints document");
        }
    }

    /// Answer one delivery. `now` is the clock for timestamps and `received_at`.
    ///
    /// The request is a span (the child of the sender's `traceparent` header when it
    /// sent one), which every queued message names as its `traceparent`.
    pub async fn handle(&self, request: IngestRequest, now: OffsetDateTime) -> IngestResponse {
        let sender = request
            .headers
            .get(TRACEPARENT)
            .and_then(|value| value.to_str().ok());
        let mut span = Span::ingest(&request.source, sender);
        let traceparent = span.traceparent();
        let mut delivery = self.deliveries.as_ref().map(|_| Delivery {
            trace_id: span.known_trace_id(),
            ..Delivery::received(
                now,
                &request.source,
                request.method.as_str(),
                &request.headers,
                &request.body,
            )
        });
        // The start of the body, in case it is refused while its endpoint captures
        // refused bodies (asked of the log only then).
        let start = self
            .deliveries
            .as_ref()
            .filter(|log| log.keeps_bodies())
            .map(|_| {
                let end = request
                    .body
                    .len()
                    .min(crate::deliveries::MAX_CAPTURED_BYTES);
                (request.source.clone(), request.body[..end].to_vec())
            });
        let mut source = None;
        let accepted = self
            .accept(request, now, &mut source, traceparent.as_deref())
            .await;
        if let Ok(Outcome::Accepted(accepted)) = &accepted {
            let event = &accepted.event;
            span.event(&event.id, &event.event_type, None);
        }
        if let Some(delivery) = &mut delivery {
            let (outcome, reason) = match &accepted {
                Ok(Outcome::Handshake(_)) => ("handshake", "handshake"),
                Ok(Outcome::Accepted(accepted)) => {
                    delivery.event_id = Some(accepted.event.id.clone());
                    delivery.event_type = Some(accepted.event.event_type.clone());
                    match accepted.duplicate {
                        true => ("duplicate", "duplicate"),
                        false => ("accepted", "accepted"),
                    }
                }
                Err(rejection) if rejection.status().is_server_error() => {
                    ("unavailable", rejection.reason())
                }
                Err(rejection) => ("refused", rejection.reason()),
            };
            delivery.outcome = outcome.to_owned();
            delivery.reason = reason.to_owned();
            if matches!(&accepted, Err(Rejection::TooLarge)) {
                // Only the start of it was read: no hash to match.
                delivery.body_sha256 = None;
            }
        }
        // What ingest's span says: the journey's first step for an event, else the
        // delivery log's outcome and reason.
        let said: (&str, String);
        let (response, record) = match accepted {
            Ok(Outcome::Handshake(response)) => {
                said = ("handshake", String::new());
                let record = IngestRecord {
                    source,
                    reason: "handshake",
                    status: 200,
                    enqueue_failures: 0,
                };
                (response, record)
            }
            Ok(Outcome::Accepted(accepted)) => {
                tracing::info!(
                    event_id = %accepted.event.id,
                    source = %accepted.event.source,
                    endpoint = %accepted.event.endpoint(),
                    r#type = %accepted.event.event_type,
                    duplicate = accepted.duplicate,
                    outcome = "accepted",
                    "webhook accepted"
                );
                let queues: Vec<&str> = accepted.queues.iter().map(|q| q.as_str()).collect();
                let (step, detail) = match accepted.duplicate {
                    false => ("enqueued", format!("to {}", queues.join(", "))),
                    true => (
                        "duplicate",
                        format!("already on {} (the sender's retry)", queues.join(", ")),
                    ),
                };
                said = (step, detail.clone());
                // At the request's time: before any consumer's step.
                let mut step = self
                    .journey
                    .step((&accepted.event.id, None), 1, step, detail);
                step.time = now;
                self.journey.record_all(vec![step]).await;
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
                said = match rejection.status().is_server_error() {
                    true => ("unavailable", rejection.reason().to_owned()),
                    false => ("refused", rejection.reason().to_owned()),
                };
                rejection.log(source, self.max_body_bytes);
                let record = IngestRecord {
                    source,
                    reason: rejection.code(),
                    status: rejection.status().as_u16(),
                    enqueue_failures: rejection.enqueue_failures(),
                };
                (rejection.response(self.max_body_bytes), record)
            }
        };
        self.metrics.ingest(&record);
        if span.is_recording() {
            span.set(
                "http.response.status_code",
                i64::from(response.status.as_u16()),
            );
            // A refusal is the sender's error, not ours (OpenTelemetry's rule for a
            // server's span): only a 5xx marks the span failed.
            span.outcome(said.0, &said.1, response.status.is_server_error());
        }
        drop(span);
        if let (Some(log), Some(mut delivery)) = (&self.deliveries, delivery) {
            delivery.status = response.status.as_u16();
            if let Some((endpoint, start)) = start
                && delivery.outcome == "refused"
                && log.capturing(&endpoint, now).await
            {
                delivery.body = Some(crate::deliveries::captured(&start));
            }
            // The log is for people debugging: its failure never fails a delivery.
            if let Err(error) = log.record(&delivery).await {
                tracing::warn!(error = %okr_core::error_chain(&error), "the delivery could not be recorded in the delivery log");
            }
        }
        response
    }

    async fn accept(
        &self,
        request: IngestRequest,
        now: OffsetDateTime,
        named: &mut Option<Source>,
        traceparent: Option<&str>,
    ) -> Result<Outcome, Rejection> {
        let endpoints = self.endpoints.current().await.map_err(|error| {
            tracing::error!(error = %okr_core::error_chain(&error), "the endpoints document is unavailable");
            Rejection::SecretsUnavailable
        })?;
        let endpoint = endpoints
            .get(&request.source)
            .ok_or(Rejection::UnknownSource)?;
        *named = Some(endpoint.name());
        let provider = endpoint.provider();
        if request.method != Method::POST {
            return Err(Rejection::MethodNotAllowed {
                advice: provider.method_advice(&request.method),
            });
        }
        let body = self.decoded_body(request.body, request.body_is_base64)?;
        let headers = request.headers;
        if let Some(name) = provider.handshake_header()
            && let Some(value) = headers.get(name)
        {
            return self
                .handshake(endpoint, name, value)
                .await
                .map(Outcome::Handshake);
        }
        self.verified(endpoint, &headers, &body, now).await?;
        let event = normalize(&endpoint, &headers, &body, now).map_err(Rejection::InvalidBody)?;
        let mut queues = route(&event, &self.rules);
        let subscribed = self.subscribed(&event).await;
        if subscribed.is_some() {
            queues.push(Consumer::Subscriptions);
        }
        let whole = subscribed == Some(View::Whole);
        let duplicate = self.enqueue(&event, &queues, whole, traceparent).await?;
        Ok(Outcome::Accepted(Box::new(Accepted {
            event,
            duplicate,
            queues,
        })))
    }

    /// Whether the subscriptions' queue takes `event`, and as what: the whole event when
    /// a subscription taking it asks for it (or the document cannot be read), else as
    /// the Slack queue gets it.
    async fn subscribed(&self, event: &Event) -> Option<View> {
        let document = match &self.subscriptions {
            Some(cache) => match cache.current().await {
                Ok(subscriptions) => Some(subscriptions),
                Err(error) => {
                    tracing::warn!(event_id = %event.id, error = %okr_core::error_chain(&error), "cannot read the subscriptions document; queuing the event for the subscriptions");
                    return Some(View::Whole);
                }
            },
            None => None,
        };
        let mut taking = document.iter().flat_map(|d| d.taking(event)).peekable();
        let taken = taking.peek().is_some();
        if taking.any(|(_, s)| s.full_event) {
            return Some(View::Whole);
        }
        (taken || self.every_event_to_subscriptions).then_some(View::Cut)
    }

    /// A handshake (Asana's `X-Hook-Secret`): the secret is kept and echoed back, but
    /// only while the endpoint has none (`okr-webhooks endpoints rearm` clears it);
    /// a later handshake from anyone never replaces a kept secret.
    async fn handshake(
        &self,
        endpoint: Endpoint,
        header_name: &'static str,
        value: &HeaderValue,
    ) -> Result<IngestResponse, Rejection> {
        let secret = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(Rejection::HandshakeRefused)?;
        let Some(writer) = &self.handshakes else {
            tracing::error!(endpoint = %endpoint.name(), "a handshake arrived but nothing here can keep its secret");
            return Err(Rejection::SecretsUnavailable);
        };
        match writer
            .adopt(endpoint.name(), &SigningSecret::new(secret))
            .await
        {
            Ok(Adopted::Kept) => {
                self.secrets.invalidate().await;
                tracing::info!(endpoint = %endpoint.name(), outcome = "handshake", "handshake: the endpoint's secret is kept");
                let mut response =
                    respond(StatusCode::OK, json!({"handshake": "accepted"}).to_string());
                response.headers.insert(header_name, value.clone());
                Ok(response)
            }
            Ok(Adopted::AlreadySet) => {
                tracing::warn!(endpoint = %endpoint.name(), outcome = "handshake_refused", "a handshake for an endpoint that has a secret was refused (re-arm it to accept a new one)");
                Err(Rejection::HandshakeRefused)
            }
            Err(error) => {
                tracing::error!(endpoint = %endpoint.name(), error = %okr_core::error_chain(&error), "could not keep a handshake's secret");
                Err(Rejection::SecretsUnavailable)
            }
        }
    }

    /// Check the signature against the endpoint's secrets, and once more against fresh
    /// ones when a new secret may have been rotated in (rate limited).
    async fn verified(
        &self,
        endpoint: Endpoint,
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), Rejection> {
        let secrets = self.secrets.current().await.map_err(|error| {
            tracing::error!(error = %okr_core::error_chain(&error), "signing secrets unavailable");
            Rejection::SecretsUnavailable
        })?;
        let (name, provider) = (endpoint.name(), endpoint.provider());
        let Err(error) = verify(provider, secrets.for_endpoint(name), headers, body, now) else {
            return Ok(());
        };
        let secret_related = matches!(
            error,
            VerifyError::WrongSignature | VerifyError::NoSecret | VerifyError::UnusableSecret(_)
        );
        let refreshed = match secret_related {
            true => self.secrets.refresh_after_failure().await,
            false => None,
        };
        let second_try = match refreshed {
            Some(fresh) => verify(provider, fresh.for_endpoint(name), headers, body, now),
            None => Err(error),
        };
        second_try.map_err(|error| self.signature_rejected(name, error))
    }

    /// Store `event` on every queue it routes to, all at once, naming `traceparent`;
    /// true when every queue already held it (a provider's retry). Slack and the alerts
    /// get the event without the personal data they do not use.
    async fn enqueue(
        &self,
        event: &Event,
        queues: &[Consumer],
        whole_to_subscriptions: bool,
        traceparent: Option<&str>,
    ) -> Result<bool, Rejection> {
        let routed = QueueMessage::routed_with(event, queues, whole_to_subscriptions);
        let mut messages = routed.map_err(|error| {
            tracing::error!(error = %error, "could not encode the event");
            Rejection::EnqueueFailed { failures: 1 }
        })?;
        if let Some(traceparent) = traceparent {
            for (_, message) in &mut messages {
                message.traceparent = Some(traceparent.to_owned());
            }
        }
        // The whole event is the largest of its messages.
        if messages
            .iter()
            .any(|(_, m)| m.body.len() > MAX_MESSAGE_BYTES)
        {
            return Err(Rejection::EventTooLarge);
        }
        let sends = messages
            .iter()
            .map(|(consumer, message)| self.queue.send(*consumer, message));
        let mut failures = 0;
        let mut duplicate = true;
        for result in futures::future::join_all(sends).await {
            match result {
                Ok(sent) => duplicate &= sent.duplicate,
                Err(error) => {
                    failures += 1;
                    tracing::error!(
                        event_id = %event.id,
                        consumer = %error.consumer,
                        error = %okr_core::error_chain(&error),
                        "enqueue failed"
                    );
                }
            }
        }
        match failures {
            0 => Ok(duplicate),
            failures => Err(Rejection::EnqueueFailed { failures }),
        }
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
        Rejection::Signature(error.kind())
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

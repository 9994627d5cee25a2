//! The event queue port: one queue per consumer (docs/architecture.md, "The flow"), with
//! its memory adapter; SQS is in `okr-aws`, SQLite in `okr-local`.

pub mod dead_letters;
pub mod memory;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;

use okr_core::event::{Event, Payload};
use okr_core::routing::Consumer;

/// One normalized event as it travels on a queue: the event's JSON as the body, and
/// its id, source and type as attributes so consumers and operators can filter without
/// parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// `Event::id`.
    pub event_id: String,
    /// `Event::source`.
    pub source: String,
    /// `Event::event_type`.
    pub event_type: String,
    /// The event as JSON, encoded once and shared by the queues that get the same one.
    pub body: Arc<str>,
    /// The replay that re-sent it (`Event::replay`'s name), as the `replay` attribute.
    pub replay: Option<String>,
    /// The span that queued it (ingest's), as the W3C `traceparent` attribute: each
    /// consumer's span is its child ([`crate::trace`]).
    pub traceparent: Option<String>,
}

impl QueueMessage {
    /// The message for `event`.
    pub fn from_event(event: &Event) -> Result<Self, serde_json::Error> {
        Ok(QueueMessage {
            event_id: event.id.clone(),
            source: event.source.as_str().to_owned(),
            event_type: event.event_type.clone(),
            body: sqs_safe(serde_json::to_string(event)?).into(),
            replay: event.replay.as_ref().map(|mark| mark.name.clone()),
            traceparent: None,
        })
    }

    /// The messages of `event` for each of `consumers` (as `routing::route` gives
    /// them): the whole event for the warehouse, the notification view for Slack and
    /// the alerts, and for the progress queue the notification view with the HR
    /// record's `person` (the directory's fields) kept.
    pub fn routed(
        event: &Event,
        consumers: &[Consumer],
    ) -> Result<Vec<(Consumer, QueueMessage)>, serde_json::Error> {
        Self::routed_with(event, consumers, true)
    }

    /// [`Self::routed`], the subscriptions' queue getting the whole event only when
    /// `whole_to_subscriptions` (a subscription taking it asks for it), else the
    /// notification view, as Slack's: no more personal data waits on a queue than leaves.
    pub fn routed_with(
        event: &Event,
        consumers: &[Consumer],
        whole_to_subscriptions: bool,
    ) -> Result<Vec<(Consumer, QueueMessage)>, serde_json::Error> {
        let mut whole = None;
        let mut notification = None;
        // The cut-down payload, one pass over the body for every view that carries it.
        let mut cut = None;
        let mut cut_down = || -> Result<Payload, serde_json::Error> {
            Ok(match &cut {
                Some(payload) => payload,
                None => cut.insert(okr_core::normalize::notification_payload(event)?),
            }
            .clone())
        };
        let mut messages = Vec::with_capacity(consumers.len());
        for consumer in consumers {
            let projected;
            let message = match consumer {
                Consumer::Warehouse | Consumer::Subscriptions
                    if whole_to_subscriptions || *consumer == Consumer::Warehouse =>
                {
                    match &whole {
                        Some(message) => message,
                        None => whole.insert(QueueMessage::from_event(event)?),
                    }
                }
                // The notification view with the HR record's `person` kept.
                Consumer::Progress if event.person.is_some() => {
                    projected = QueueMessage::from_event(&event.with_payload(cut_down()?))?;
                    &projected
                }
                _ => match &notification {
                    Some(message) => message,
                    None => notification.insert(QueueMessage::from_event(
                        &okr_core::routing::notification_view_with(event, cut_down()?),
                    )?),
                },
            };
            messages.push((*consumer, message.clone()));
        }
        Ok(messages)
    }
}

/// SQS accepts only XML characters in a message: U+FFFE and U+FFFF (which JSON allows
/// raw) are escaped. In JSON they can only stand inside strings, so the escape decodes
/// to the same value. (serde_json already escapes the control characters.)
fn sqs_safe(json: String) -> String {
    // Both are EF BF BE / EF BF BF in UTF-8: a byte search, not a char-by-char one.
    let unsafe_char = memchr::memmem::find_iter(json.as_bytes(), b"\xEF\xBF")
        .any(|at| matches!(json.as_bytes().get(at + 2), Some(0xBE | 0xBF)));
    if unsafe_char {
        json.replace('\u{fffe}', "\\ufffe")
            .replace('\u{ffff}', "\\uffff")
    } else {
        json
    }
}

/// What a queue says about an accepted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The queue already held this event id (queues that cannot tell say false;
    /// consumers remove duplicates by event id either way).
    pub duplicate: bool,
}

/// A send that did not durably store the message.
#[derive(Debug, thiserror::Error)]
#[error("sending to the {consumer} queue failed")]
pub struct QueueError {
    /// The queue that failed.
    pub consumer: Consumer,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Durable queues, one per consumer. `send` returns only once the message is stored.
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Store `message` on `consumer`'s queue.
    async fn send(&self, consumer: Consumer, message: &QueueMessage) -> Result<Sent, QueueError>;

    /// Store every message (a replay's batch), all at once; the first failure is the
    /// error. Returns how many the queues already held (sent by this replay before an
    /// interruption; queues that cannot tell say none). Queues that can batch their
    /// writes do.
    async fn send_all(&self, messages: &[(Consumer, QueueMessage)]) -> Result<usize, QueueError> {
        let sends = messages.iter().map(|(c, m)| self.send(*c, m));
        let mut held = 0;
        for sent in futures::future::join_all(sends).await {
            held += usize::from(sent?.duplicate);
        }
        Ok(held)
    }
}

/// The receive side of the queues, as SQS's event source mapping works it for a Lambda
/// function: local mode's consumer loops use it (`okr_local::consumer`).
#[async_trait]
pub trait ReceiveQueue: Send + Sync {
    /// Up to `max` visible messages of `consumer`, hidden for `visibility`, as an SQS
    /// batch (with `ApproximateReceiveCount`).
    async fn receive(
        &self,
        consumer: Consumer,
        max: usize,
        visibility: Duration,
    ) -> Result<SqsEvent, QueueError>;
    /// Wait until something may be ready on `consumer`'s queue: true when woken by a send
    /// (or a redrive), false when `timeout` passed first.
    async fn wait(&self, consumer: Consumer, timeout: Duration) -> bool;
    /// Delete processed messages.
    async fn delete(&self, consumer: Consumer, message_ids: Vec<String>) -> Result<(), QueueError>;
    /// A failed message: moved to the dead-letter queue once it has been received
    /// `max_receive_count` times; else it is seen again when its visibility ends (the
    /// visibility timeout, or the wait a consumer set with [`Defer`]), as on SQS.
    async fn failed(
        &self,
        consumer: Consumer,
        message_id: String,
        max_receive_count: u32,
    ) -> Result<(), QueueError>;
}

/// Why a record could not be deferred.
pub type DeferError = Box<dyn std::error::Error + Send + Sync>;

/// Hides a received message for a while: how a consumer sets when a failed record is
/// seen again (SQS's `ChangeMessageVisibility`).
#[async_trait]
pub trait Defer: Send + Sync {
    /// Keep the message received with `receipt_handle` hidden for `delay` from now.
    async fn defer(&self, receipt_handle: &str, delay: Duration) -> Result<(), DeferError>;
}

/// Defers nothing: a failed record comes back after the queue's visibility timeout.
pub struct NoDefer;

#[async_trait]
impl Defer for NoDefer {
    async fn defer(&self, _receipt_handle: &str, _delay: Duration) -> Result<(), DeferError> {
        Ok(())
    }
}

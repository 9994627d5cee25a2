//! The event queues on Amazon SQS: one standard queue per consumer.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry};

use okr_core::routing::Consumer;
use okr_pipeline::config::QueueUrls;
use okr_pipeline::queue::{Defer, DeferError, EventQueue, QueueError, QueueMessage, Sent};
use okr_pipeline::retry::{Retries, Schedule};

/// Sends events to SQS.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    urls: QueueUrls,
}

impl SqsQueue {
    /// Queues at `urls`, reached through `client`.
    pub fn new(client: Client, urls: QueueUrls) -> Self {
        SqsQueue { client, urls }
    }

    /// Open the connection to SQS (and check each queue exists) before the first
    /// delivery, so it does not pay the TLS handshake. Call once at start-up.
    pub async fn warm_up(&self) -> Result<(), QueueError> {
        // A queue left unset (the subscriptions queue, where there is none) is not checked.
        let configured = Consumer::ALL
            .into_iter()
            .filter(|consumer| !self.urls.get(*consumer).is_empty());
        let checks = configured.map(|consumer| async move {
            self.client
                .get_queue_attributes()
                .queue_url(self.urls.get(consumer))
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map(drop)
                .map_err(|error| QueueError {
                    consumer,
                    source: Box::new(error),
                })
        });
        futures::future::try_join_all(checks).await.map(drop)
    }
}

fn text_attribute(value: &str) -> Result<MessageAttributeValue, aws_sdk_sqs::error::BuildError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
}

/// The message's attributes: `event_id`, `source`, `type`, `replay` for a replay's, and
/// `traceparent` when a span queued it.
fn attributes(
    message: &QueueMessage,
) -> Result<HashMap<String, MessageAttributeValue>, aws_sdk_sqs::error::BuildError> {
    let mut attributes = HashMap::from([
        ("event_id".to_owned(), text_attribute(&message.event_id)?),
        ("source".to_owned(), text_attribute(&message.source)?),
        ("type".to_owned(), text_attribute(&message.event_type)?),
    ]);
    if let Some(replay) = &message.replay {
        attributes.insert("replay".to_owned(), text_attribute(replay)?);
    }
    if let Some(traceparent) = &message.traceparent {
        attributes.insert(
            okr_pipeline::trace::TRACEPARENT.to_owned(),
            text_attribute(traceparent)?,
        );
    }
    Ok(attributes)
}

/// SendMessageBatch's limits: 10 entries, 1 MiB in all.
const BATCH_ENTRIES: usize = 10;
const BATCH_BYTES: usize = 1024 * 1024 - 16 * 1024;
/// Tries of a batch's entries that SQS failed on its side (throttling).
const BATCH_TRIES: u32 = 5;

impl SqsQueue {
    /// Send `messages` to `consumer`'s queue with SendMessageBatch (at most 10 and 1 MiB a
    /// call), trying again the entries SQS failed on its side, with a growing pause.
    async fn send_batch(
        &self,
        consumer: Consumer,
        messages: &[&QueueMessage],
    ) -> Result<(), QueueError> {
        let failed = |error: Box<dyn std::error::Error + Send + Sync>| QueueError {
            consumer,
            source: error,
        };
        let mut left: Vec<(String, &QueueMessage)> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), *m))
            .collect();
        for attempt in 1..=BATCH_TRIES {
            let mut entries = Vec::with_capacity(left.len());
            for (id, message) in &left {
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(&*message.body)
                        .set_message_attributes(Some(
                            attributes(message).map_err(|e| failed(e.into()))?,
                        ))
                        .build()
                        .map_err(|e| failed(e.into()))?,
                );
            }
            let answer = self
                .client
                .send_message_batch()
                .queue_url(self.urls.get(consumer))
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| failed(e.into()))?;
            let mut again = Vec::new();
            for failure in answer.failed() {
                if failure.sender_fault() {
                    let reason = format!("SQS refused a message: {}", failure.code());
                    return Err(failed(reason.into()));
                }
                again.push(failure.id().to_owned());
            }
            if again.is_empty() {
                return Ok(());
            }
            left.retain(|(id, _)| again.contains(id));
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
        }
        Err(failed(
            format!("SQS kept failing {} message(s)", left.len()).into(),
        ))
    }
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn send(&self, consumer: Consumer, message: &QueueMessage) -> Result<Sent, QueueError> {
        let failed = |error: Box<dyn std::error::Error + Send + Sync>| QueueError {
            consumer,
            source: error,
        };
        self.client
            .send_message()
            .queue_url(self.urls.get(consumer))
            .message_body(&*message.body)
            .set_message_attributes(Some(attributes(message).map_err(|e| failed(e.into()))?))
            .send()
            .await
            .map_err(|e| failed(e.into()))?;
        // A standard queue cannot tell a duplicate; consumers remove them by event id.
        Ok(Sent { duplicate: false })
    }

    async fn send_all(&self, messages: &[(Consumer, QueueMessage)]) -> Result<usize, QueueError> {
        for consumer in Consumer::ALL {
            let mine: Vec<&QueueMessage> = messages
                .iter()
                .filter(|(c, _)| *c == consumer)
                .map(|(_, m)| m)
                .collect();
            let mut batch: Vec<&QueueMessage> = Vec::new();
            let mut bytes = 0;
            for message in mine {
                let full = batch.len() == BATCH_ENTRIES || bytes + message.body.len() > BATCH_BYTES;
                if full && !batch.is_empty() {
                    self.send_batch(consumer, &batch).await?;
                    batch.clear();
                    bytes = 0;
                }
                bytes += message.body.len();
                batch.push(message);
            }
            if !batch.is_empty() {
                self.send_batch(consumer, &batch).await?;
            }
        }
        // A standard queue cannot tell a duplicate; consumers remove them by event id.
        Ok(0)
    }
}

/// Sets when a failed record of the queue at `queue_url` is seen again
/// (`ChangeMessageVisibility`, at most SQS's 12 hours).
#[derive(Debug, Clone)]
pub struct SqsDefer {
    client: Client,
    queue_url: String,
}

impl SqsDefer {
    /// Deferring messages of the queue at `queue_url` through `client`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsDefer {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// A consumer function's retries: the default schedule through its queue at
    /// `queue_url` (`QUEUE_URL`), or none without one.
    pub fn retries(client: Client, queue_url: Option<&str>) -> Retries {
        match queue_url {
            Some(url) => Retries {
                defer: std::sync::Arc::new(SqsDefer::new(client, url)),
                schedule: Schedule::default(),
            },
            None => Retries::default(),
        }
    }
}

#[async_trait]
impl Defer for SqsDefer {
    async fn defer(&self, receipt_handle: &str, delay: Duration) -> Result<(), DeferError> {
        // Whole seconds, rounded up: never back sooner than scheduled.
        let seconds = (delay.as_secs_f64().ceil() as u64).min(MAX_VISIBILITY_SECS) as i32;
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await?;
        Ok(())
    }
}

/// SQS's longest visibility timeout: 12 hours.
const MAX_VISIBILITY_SECS: u64 = 12 * 3600;

//! The event queues on Amazon SQS: one standard queue per consumer.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};

use super::{Defer, DeferError, EventQueue, QueueError, QueueMessage, Sent};
use crate::config::QueueUrls;
use crate::retry::{Retries, Schedule};
use crate::routing::Consumer;

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
        let checks = Consumer::ALL.map(|consumer| async move {
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
            .message_body(&message.body)
            .message_attributes(
                "event_id",
                text_attribute(&message.event_id).map_err(|e| failed(e.into()))?,
            )
            .message_attributes(
                "source",
                text_attribute(&message.source).map_err(|e| failed(e.into()))?,
            )
            .message_attributes(
                "type",
                text_attribute(&message.event_type).map_err(|e| failed(e.into()))?,
            )
            .send()
            .await
            .map_err(|e| failed(e.into()))?;
        // A standard queue cannot tell a duplicate; consumers remove them by event id.
        Ok(Sent { duplicate: false })
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

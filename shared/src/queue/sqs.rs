//! The event queues on Amazon SQS: one standard queue per consumer.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};

use super::{EventQueue, QueueError, QueueMessage, Sent};
use crate::config::QueueUrls;
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

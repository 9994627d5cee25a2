//! A dead-letter queue on Amazon SQS, for `okr-webhooks dlq --queue-url`: look at its
//! messages without taking them, and move them back to their queue with a message move
//! task (`StartMessageMoveTask`), as the SQS console's "redrive" does.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use super::DeadLetter;

/// At most this many messages are listed (a dead-letter queue keeps 14 days of them).
pub const LIST_LIMIT: usize = 100;

/// How long a listed message stays hidden if this process dies before making it
/// visible again.
const PEEK_VISIBILITY_SECS: i32 = 30;

/// Something SQS refused or that cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// A request to SQS failed.
    #[error("{action} failed")]
    Sqs {
        /// The request.
        action: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The URL names a queue no queue dead-letters into.
    #[error(
        "{0} is not the dead-letter queue of any queue: give the dead-letter queue's URL (the template's *DeadLetterQueueUrl outputs)"
    )]
    NotADeadLetterQueue(String),
    /// The move task stopped without moving everything.
    #[error("the move task ended {status}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    MoveTask {
        /// `FAILED` or `CANCELLED`.
        status: String,
        /// SQS's `FailureReason`.
        reason: Option<String>,
    },
}

fn sqs<E: std::error::Error + Send + Sync + 'static>(
    action: &'static str,
) -> impl FnOnce(SdkError<E, HttpResponse>) -> DeadLetterError {
    move |error| DeadLetterError::Sqs {
        action,
        source: Box::new(error),
    }
}

/// What a finished redrive moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// Messages moved.
    pub moved: u64,
    /// The queue(s) they went back to.
    pub to: Vec<String>,
}

/// The dead-letter queue at `url`.
#[derive(Debug, Clone)]
pub struct SqsDeadLetterQueue {
    client: Client,
    url: String,
}

impl SqsDeadLetterQueue {
    /// The dead-letter queue at `url`, reached through `client`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsDeadLetterQueue {
            client,
            url: url.into(),
        }
    }

    /// The queue's name (the last segment of its URL).
    pub fn name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or(&self.url)
    }

    /// The URLs of the queues that dead-letter into this one; an error if none do.
    pub async fn sources(&self) -> Result<Vec<String>, DeadLetterError> {
        let sources = self
            .client
            .list_dead_letter_source_queues()
            .queue_url(&self.url)
            .send()
            .await
            .map_err(sqs("ListDeadLetterSourceQueues"))?
            .queue_urls;
        if sources.is_empty() {
            return Err(DeadLetterError::NotADeadLetterQueue(self.url.clone()));
        }
        Ok(sources)
    }

    /// The approximate number of messages waiting (visible or not).
    pub async fn depth(&self) -> Result<u64, DeadLetterError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(sqs("GetQueueAttributes"))?;
        let count = |name: QueueAttributeName| {
            attributes
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(count(QueueAttributeName::ApproximateNumberOfMessages)
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
    }

    /// Up to [`LIST_LIMIT`] messages, left in the queue: each is received, then made
    /// visible again at once. SQS cannot peek, so a look is a receive: `receive_count`
    /// leaves out this look but counts earlier ones.
    pub async fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let mut letters: Vec<DeadLetter> = Vec::new();
        let mut handles = Vec::new();
        let result = self.peek(&mut letters, &mut handles).await;
        // Whatever happened, show the messages again.
        let shown = self.show_again(&handles).await;
        result.and(shown).map(|()| letters)
    }

    async fn peek(
        &self,
        letters: &mut Vec<DeadLetter>,
        handles: &mut Vec<String>,
    ) -> Result<(), DeadLetterError> {
        while letters.len() < LIST_LIMIT {
            let received = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages((LIST_LIMIT - letters.len()).min(10) as i32)
                .visibility_timeout(PEEK_VISIBILITY_SECS)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(sqs("ReceiveMessage"))?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(());
            }
            for message in messages {
                if let Some(handle) = message.receipt_handle.clone() {
                    handles.push(handle);
                }
                let attribute = |name: &str| {
                    message
                        .message_attributes()
                        .and_then(|a| a.get(name))
                        .and_then(|v| v.string_value())
                        .unwrap_or("?")
                        .to_owned()
                };
                let receive_count = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(1);
                letters.push(DeadLetter {
                    message_id: message.message_id.clone().unwrap_or_default(),
                    event_id: attribute("event_id"),
                    event_type: attribute("type"),
                    receive_count: receive_count.saturating_sub(1),
                    body: message.body.clone().unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    async fn show_again(&self, handles: &[String]) -> Result<(), DeadLetterError> {
        for chunk in handles.chunks(10) {
            let mut request = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url);
            for (i, handle) in chunk.iter().enumerate() {
                request = request.entries(
                    aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|e| DeadLetterError::Sqs {
                            action: "ChangeMessageVisibilityBatch",
                            source: e.into(),
                        })?,
                );
            }
            request
                .send()
                .await
                .map_err(sqs("ChangeMessageVisibilityBatch"))?;
        }
        Ok(())
    }

    /// Move every message back to the queue it came from, and wait until SQS says the
    /// move is done; `progress` is told the count moved so far while it runs.
    pub async fn redrive(
        &self,
        poll: Duration,
        mut progress: impl FnMut(u64),
    ) -> Result<Redriven, DeadLetterError> {
        let to = self.sources().await?;
        let arn = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(sqs("GetQueueAttributes"))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_default();
        let handle = self
            .client
            .start_message_move_task()
            .source_arn(&arn)
            .send()
            .await
            .map_err(sqs("StartMessageMoveTask"))?
            .task_handle;
        loop {
            let tasks = self
                .client
                .list_message_move_tasks()
                .source_arn(&arn)
                .max_results(1)
                .send()
                .await
                .map_err(sqs("ListMessageMoveTasks"))?
                .results
                .unwrap_or_default();
            // The newest task is ours: SQS runs one at a time per dead-letter queue.
            let Some(task) = tasks.into_iter().next() else {
                return Err(DeadLetterError::MoveTask {
                    status: "unknown".into(),
                    reason: Some(format!("SQS lists no task {}", handle.unwrap_or_default())),
                });
            };
            let moved = task.approximate_number_of_messages_moved.max(0) as u64;
            match task.status.as_deref() {
                Some("COMPLETED") => return Ok(Redriven { moved, to }),
                Some("RUNNING") | Some("CANCELLING") => progress(moved),
                other => {
                    return Err(DeadLetterError::MoveTask {
                        status: other.unwrap_or("unknown").to_owned(),
                        reason: task.failure_reason,
                    });
                }
            }
            tokio::time::sleep(poll).await;
        }
    }
}

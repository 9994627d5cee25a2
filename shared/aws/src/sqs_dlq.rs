//! A dead-letter queue on Amazon SQS, for `okr-webhooks dlq --queue-url`: look at its
//! messages without taking them, and move them back to their queue with a message move
//! task (`StartMessageMoveTask`), as the SQS console's "redrive" does.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, ListMessageMoveTasksResultEntry,
    MessageSystemAttributeName, QueueAttributeName,
};

use async_trait::async_trait;

use okr_pipeline::queue::dead_letters::{
    DeadLetter, DeadLetterError, DeadLetters, LIST_LIMIT, Listing, Redriven,
};

/// How long a listed message stays hidden while the listing goes on (and if this
/// process dies before making it visible again). Longer than a whole listing, so no
/// message is seen twice.
const PEEK_VISIBILITY_SECS: i32 = 120;

/// Long polling for the listing: a short poll samples only some SQS servers and can
/// answer "empty" while messages wait.
const PEEK_WAIT_SECS: i32 = 2;

fn sqs<E: std::error::Error + Send + Sync + 'static>(
    action: &'static str,
) -> impl FnOnce(SdkError<E, HttpResponse>) -> DeadLetterError {
    move |error| DeadLetterError::Failed {
        action,
        source: Box::new(error),
    }
}

/// A queue's name: the last segment of its URL.
pub fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
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

    /// The URLs of the queues that dead-letter into this one; an error if none do.
    async fn sources(&self) -> Result<Vec<String>, DeadLetterError> {
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
    async fn depth(&self) -> Result<u64, DeadLetterError> {
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

    /// Up to [`LIST_LIMIT`] of the `expected` messages, left in the queue: each is
    /// received, then made visible again at once. SQS cannot peek, so a look is a
    /// receive: `receive_count` leaves out this look but counts earlier ones.
    async fn peek_up_to(&self, expected: u64) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let mut letters: Vec<DeadLetter> = Vec::new();
        let mut handles = Vec::new();
        let wanted = (expected as usize).min(LIST_LIMIT);
        let result = self.peek(wanted, &mut letters, &mut handles).await;
        // Whatever happened, show the messages again.
        let shown = self.show_again(&handles).await;
        result.and(shown).map(|()| letters)
    }

    async fn peek(
        &self,
        wanted: usize,
        letters: &mut Vec<DeadLetter>,
        handles: &mut Vec<String>,
    ) -> Result<(), DeadLetterError> {
        while letters.len() < wanted {
            let received = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages((wanted - letters.len()).min(10) as i32)
                .visibility_timeout(PEEK_VISIBILITY_SECS)
                .wait_time_seconds(PEEK_WAIT_SECS)
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
                if letters
                    .iter()
                    .any(|l| Some(&l.message_id) == message.message_id.as_ref())
                {
                    continue;
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

    /// Make the listed messages visible again: every chunk is tried, and entries SQS
    /// refuses are reported (they reappear by themselves after the peek timeout).
    async fn show_again(&self, handles: &[String]) -> Result<(), DeadLetterError> {
        let mut first_error = None;
        let mut refused = 0;
        for chunk in handles.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
            });
            let entries: Result<Vec<_>, _> = entries.collect();
            let sent = match entries {
                Ok(entries) => self
                    .client
                    .change_message_visibility_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(sqs("ChangeMessageVisibilityBatch")),
                Err(error) => Err(DeadLetterError::Failed {
                    action: "ChangeMessageVisibilityBatch",
                    source: error.into(),
                }),
            };
            match sent {
                Ok(output) => refused += output.failed.len(),
                Err(error) => {
                    refused += chunk.len();
                    first_error.get_or_insert(error);
                }
            }
        }
        match (first_error, refused) {
            (Some(error), _) => Err(error),
            (None, 0) => Ok(()),
            (None, refused) => Err(DeadLetterError::StillHidden {
                count: refused,
                seconds: PEEK_VISIBILITY_SECS,
            }),
        }
    }

    /// Move every message back to the queue it came from, and wait until SQS says the
    /// move is done; `progress` is told the count moved so far while it runs.
    async fn move_back(
        &self,
        poll: Duration,
        progress: &(dyn Fn(u64) + Send + Sync),
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
        // The newest task before ours: a listing that still shows it is not about ours.
        let before = self.newest_task(&arn).await?.map(|t| t.started_timestamp);
        let handle = self
            .client
            .start_message_move_task()
            .source_arn(&arn)
            .send()
            .await
            .map_err(sqs("StartMessageMoveTask"))?
            .task_handle;
        let mut unseen_polls = 0;
        loop {
            // SQS runs one task at a time per dead-letter queue, so the newest task is
            // ours once it is newer than `before` (completed tasks lose their handle).
            let task = self.newest_task(&arn).await?.filter(|task| {
                (handle.is_some() && task.task_handle == handle)
                    || Some(task.started_timestamp) > before
            });
            match task {
                None if unseen_polls >= 30 => {
                    return Err(DeadLetterError::MoveTask {
                        status: "unknown".into(),
                        reason: Some("SQS does not list the task it started".into()),
                    });
                }
                None => unseen_polls += 1,
                Some(task) => {
                    if let Some(moved) = finished(task, progress)? {
                        let to = to.iter().map(|url| queue_name(url).to_owned()).collect();
                        return Ok(Redriven { moved, to });
                    }
                }
            }
            tokio::time::sleep(poll).await;
        }
    }

    async fn newest_task(
        &self,
        arn: &str,
    ) -> Result<Option<ListMessageMoveTasksResultEntry>, DeadLetterError> {
        Ok(self
            .client
            .list_message_move_tasks()
            .source_arn(arn)
            .max_results(1)
            .send()
            .await
            .map_err(sqs("ListMessageMoveTasks"))?
            .results
            .unwrap_or_default()
            .into_iter()
            .next())
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetterQueue {
    fn name(&self) -> &str {
        queue_name(&self.url)
    }

    async fn list(&self) -> Result<Listing, DeadLetterError> {
        self.sources().await?;
        let total = self.depth().await?;
        let letters = self.peek_up_to(total).await?;
        Ok(Listing { total, letters })
    }

    async fn redrive(
        &self,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Redriven, DeadLetterError> {
        self.move_back(Duration::from_secs(1), progress).await
    }
}

/// How many a completed task moved; `None` (after telling `progress`) while it runs; an
/// error when it failed or was cancelled.
fn finished(
    task: ListMessageMoveTasksResultEntry,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Option<u64>, DeadLetterError> {
    let moved = task.approximate_number_of_messages_moved.max(0) as u64;
    match task.status.as_deref() {
        Some("COMPLETED") => Ok(Some(moved)),
        Some("RUNNING") | Some("CANCELLING") => {
            progress(moved);
            Ok(None)
        }
        other => Err(DeadLetterError::MoveTask {
            status: other.unwrap_or("unknown").to_owned(),
            reason: task.failure_reason,
        }),
    }
}

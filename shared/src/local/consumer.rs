//! The consumer loops of local mode: the Lambda handlers, fed SQS batches from the
//! SQLite queues, with SQS's semantics: batch item failures come back after a back-off,
//! and after the maximum receive count go to the dead-letter queue.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::alerts::ProgressAlerts;
use crate::batch::UnreportableFailure;
use crate::queue::sqlite::SqliteQueue;
use crate::routing::Consumer;
use crate::slack::SlackNotifier;
use crate::warehouse::WarehouseSink;

/// Receives before a message moves to the dead-letter queue (as `maxReceiveCount`).
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// How long a received batch stays hidden (as the visibility timeout).
pub const VISIBILITY: Duration = Duration::from_secs(60);

/// A consumer handler, as its Lambda function runs it.
#[async_trait]
pub trait BatchHandler: Send + Sync {
    /// Handle one batch before `deadline`.
    async fn handle(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, UnreportableFailure>;
}

#[async_trait]
impl BatchHandler for WarehouseSink {
    async fn handle(
        &self,
        batch: SqsEvent,
        _deadline: Instant,
    ) -> Result<SqsBatchResponse, UnreportableFailure> {
        WarehouseSink::handle(self, batch).await
    }
}

#[async_trait]
impl BatchHandler for SlackNotifier {
    async fn handle(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, UnreportableFailure> {
        SlackNotifier::handle(self, batch, deadline).await
    }
}

#[async_trait]
impl BatchHandler for ProgressAlerts {
    async fn handle(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, UnreportableFailure> {
        ProgressAlerts::handle(self, batch, deadline).await
    }
}

/// The back-off before a failed message is seen again: `base` (1 s in `serve`) after the
/// first receive, doubling each time, at most 60 times `base`.
pub fn backoff(base: Duration, receive_count: u32) -> Duration {
    base.saturating_mul(1 << receive_count.saturating_sub(1).min(6))
        .min(base.saturating_mul(60))
}

/// Feed `consumer`'s queue to `handler` until `stop` turns true; the batch in hand is
/// finished first. Wakes as soon as a send commits.
pub async fn run(
    queue: Arc<SqliteQueue>,
    consumer: Consumer,
    handler: Arc<dyn BatchHandler>,
    batch_size: usize,
    retry_base: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = match queue.receive(consumer, batch_size, VISIBILITY).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(queue = %consumer, error = %crate::error_chain(&error), "receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.records.is_empty() {
            tokio::select! {
                _ = queue.wait(consumer, Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let records: Vec<(String, u32)> = batch
            .records
            .iter()
            .filter_map(|r| {
                let count = r
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                r.message_id.clone().map(|id| (id, count))
            })
            .collect();
        let deadline = Instant::now() + VISIBILITY - Duration::from_secs(5);
        let failed: Vec<String> = match handler.handle(batch, deadline).await {
            Ok(response) => response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            Err(error) => {
                tracing::error!(queue = %consumer, error = %error, "batch failed");
                records.iter().map(|(id, _)| id.clone()).collect()
            }
        };
        let done: Vec<String> = records
            .iter()
            .filter(|(id, _)| !failed.contains(id))
            .map(|(id, _)| id.clone())
            .collect();
        if let Err(error) = queue.delete(consumer, done).await {
            tracing::error!(queue = %consumer, error = %crate::error_chain(&error), "delete failed; the batch will be seen again");
        }
        for (id, count) in records.into_iter().filter(|(id, _)| failed.contains(id)) {
            if let Err(error) = queue
                .retry_later(consumer, id, backoff(retry_base, count), MAX_RECEIVE_COUNT)
                .await
            {
                tracing::error!(queue = %consumer, error = %crate::error_chain(&error), "could not schedule a retry");
            }
        }
    }
}

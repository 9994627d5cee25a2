//! The consumer loops of local mode: the Lambda handlers, fed SQS batches from the
//! SQLite queues, with SQS's semantics: a failed record comes back when its visibility
//! ends (the wait its consumer set, see `retry`), and after the maximum receive count
//! goes to the dead-letter queue.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::sqlite_queue::SqliteQueue;
use okr_consumers::alerts::ProgressAlerts;
use okr_consumers::progress::ProgressProjection;
use okr_consumers::slack::{DEFAULT_DEDUP_WINDOW, SlackNotifier};
use okr_consumers::warehouse::WarehouseSink;
use okr_core::routing::Consumer;
use okr_pipeline::batch::{BatchFailure, receive_count};
use okr_pipeline::queue::ReceiveQueue;
use okr_pipeline::retry::MAX_RECEIVE_COUNT;

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
    ) -> Result<SqsBatchResponse, BatchFailure>;
}

#[async_trait]
impl BatchHandler for WarehouseSink {
    async fn handle(
        &self,
        batch: SqsEvent,
        _deadline: Instant,
    ) -> Result<SqsBatchResponse, BatchFailure> {
        WarehouseSink::handle(self, batch).await
    }
}

#[async_trait]
impl BatchHandler for SlackNotifier {
    async fn handle(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, BatchFailure> {
        SlackNotifier::handle(self, batch, deadline).await
    }
}

#[async_trait]
impl BatchHandler for okr_consumers::subscriptions::SubscriptionSender {
    async fn handle(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, BatchFailure> {
        okr_consumers::subscriptions::SubscriptionSender::handle(self, batch, deadline).await
    }
}

#[async_trait]
impl BatchHandler for ProgressAlerts {
    async fn handle(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, BatchFailure> {
        ProgressAlerts::handle(self, batch, deadline).await
    }
}

#[async_trait]
impl BatchHandler for ProgressProjection {
    async fn handle(
        &self,
        batch: SqsEvent,
        _deadline: Instant,
    ) -> Result<SqsBatchResponse, BatchFailure> {
        ProgressProjection::handle(self, batch).await
    }
}

/// Feed `consumer`'s queue to `handler` until `stop` turns true; the batch in hand is
/// finished first. Wakes as soon as a send commits.
pub async fn run(
    queue: Arc<dyn ReceiveQueue>,
    consumer: Consumer,
    handler: Arc<dyn BatchHandler>,
    batch_size: usize,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let batch = match queue.receive(consumer, batch_size, VISIBILITY).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(queue = %consumer, error = %okr_core::error_chain(&error), "receive failed");
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
        handle_batch(queue.as_ref(), consumer, handler.as_ref(), batch).await;
    }
}

/// Hand one batch to `handler`, as Lambda would: delete what succeeded, and leave the
/// failures for their retry (or move them to the dead-letter queue).
async fn handle_batch(
    queue: &dyn ReceiveQueue,
    consumer: Consumer,
    handler: &dyn BatchHandler,
    batch: SqsEvent,
) {
    let records: Vec<(String, u32)> = batch
        .records
        .iter()
        .filter_map(|r| Some((r.message_id.clone()?, receive_count(r))))
        .collect();
    let deadline = Instant::now() + VISIBILITY - Duration::from_secs(5);
    let failed: Vec<String> = match handler.handle(batch, deadline).await {
        Ok(response) => response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect(),
        Err(error) => {
            match error {
                BatchFailure::DestinationDown(_) => {
                    tracing::warn!(queue = %consumer, error = %error, "batch deferred")
                }
                BatchFailure::Unreportable(_) => {
                    tracing::error!(queue = %consumer, error = %error, "batch failed")
                }
            }
            records.iter().map(|(id, _)| id.clone()).collect()
        }
    };
    let (retries, done): (Vec<_>, Vec<_>) =
        records.into_iter().partition(|(id, _)| failed.contains(id));
    let done = done.into_iter().map(|(id, _)| id).collect();
    if let Err(error) = queue.delete(consumer, done).await {
        tracing::error!(queue = %consumer, error = %okr_core::error_chain(&error), "delete failed; the batch will be seen again");
    }
    for (id, _) in retries {
        if let Err(error) = queue.failed(consumer, id, MAX_RECEIVE_COUNT).await {
            tracing::error!(queue = %consumer, error = %okr_core::error_chain(&error), "could not schedule a retry");
        }
    }
}

/// Accepted event ids forgotten per batch, and how often a pass runs.
const FORGET_BATCH: usize = 1000;
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// Forget the accepted event ids older than the consumers' dedup window (15 days) in the
/// background, once a minute, in bounded batches, until `stop` turns true.
pub async fn forget_old_acceptances(queue: Arc<SqliteQueue>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(FORGET_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        // Batch after batch until the old ones are gone, yielding in between, so the
        // queue's writers wait for one batch at most.
        let mut forgotten = 0;
        loop {
            match queue
                .forget_accepted(DEFAULT_DEDUP_WINDOW, FORGET_BATCH)
                .await
            {
                Ok(n) => {
                    forgotten += n;
                    if n < FORGET_BATCH || *stop.borrow() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                Err(error) => {
                    tracing::warn!(error = %okr_core::error_chain(&error), "could not forget old accepted event ids");
                    break;
                }
            }
        }
        if forgotten > 0 {
            tracing::info!(
                forgotten,
                "forgot accepted event ids older than the dedup window"
            );
        }
    }
}

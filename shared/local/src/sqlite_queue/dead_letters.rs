//! The dead-letter queues of the SQLite queues.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::params;

use crate::sqlite_queue::{SqliteQueue, now_ms};
use okr_core::routing::Consumer;
use okr_pipeline::queue::QueueError;
use okr_pipeline::queue::dead_letters::{
    DeadLetter, DeadLetterError, DeadLetters, Listing, Redriven,
};

/// One consumer's dead-letter queue in `serve`'s data directory.
pub struct LocalDeadLetters {
    queue: Arc<SqliteQueue>,
    consumer: Consumer,
}

impl LocalDeadLetters {
    /// `consumer`'s dead-letter queue in `queue`.
    pub fn new(queue: Arc<SqliteQueue>, consumer: Consumer) -> Self {
        LocalDeadLetters { queue, consumer }
    }
}

fn failed(action: &'static str) -> impl FnOnce(QueueError) -> DeadLetterError {
    move |error| DeadLetterError::Failed {
        action,
        source: Box::new(error),
    }
}

#[async_trait]
impl DeadLetters for LocalDeadLetters {
    fn name(&self) -> &str {
        self.consumer.as_str()
    }

    async fn list(&self) -> Result<Listing, DeadLetterError> {
        let letters = self
            .queue
            .dead_letters(self.consumer)
            .await
            .map_err(failed("reading the dead letters"))?;
        let total = letters.len() as u64;
        Ok(Listing { total, letters })
    }

    async fn redrive(
        &self,
        _progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Redriven, DeadLetterError> {
        let moved = self
            .queue
            .redrive(self.consumer)
            .await
            .map_err(failed("moving the dead letters"))?;
        Ok(Redriven {
            moved: moved as u64,
            to: vec![format!("the {} queue", self.consumer)],
        })
    }
}

impl SqliteQueue {
    /// The messages in `consumer`'s dead-letter queue, oldest first.
    async fn dead_letters(&self, consumer: Consumer) -> Result<Vec<DeadLetter>, QueueError> {
        self.with(consumer, move |connection| {
            let mut statement = connection.prepare(
                "SELECT message_id, event_id, type, receive_count, body FROM messages
                 WHERE queue = ?1 AND dead_at IS NOT NULL ORDER BY dead_at, seq",
            )?;
            let rows = statement
                .query_map(params![consumer.as_str()], |row| {
                    Ok(DeadLetter {
                        message_id: row.get(0)?,
                        event_id: row.get(1)?,
                        event_type: row.get(2)?,
                        receive_count: row.get::<_, i64>(3)?.clamp(0, i64::from(u32::MAX)) as u32,
                        body: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    /// Move every dead letter of `consumer` back to its queue, visible now with a fresh
    /// receive count. Returns how many moved.
    async fn redrive(&self, consumer: Consumer) -> Result<usize, QueueError> {
        let moved = self
            .with(consumer, move |connection| {
                connection.execute(
                    "UPDATE messages SET dead_at = NULL, receive_count = 0, visible_at = ?2
                     WHERE queue = ?1 AND dead_at IS NOT NULL",
                    params![consumer.as_str(), now_ms()],
                )
            })
            .await?;
        if let Some(notify) = self.wake.get(&consumer) {
            notify.notify_one();
        }
        Ok(moved)
    }
}

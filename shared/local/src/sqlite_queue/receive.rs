//! The receive side of the SQLite queues, with SQS's semantics: a visibility timeout,
//! a receive count, and the dead-letter queue after the maximum receive count.

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use rusqlite::params;

use crate::sqlite_queue::{SqliteQueue, now_ms};
use okr_core::routing::Consumer;
use okr_pipeline::queue::{Defer, DeferError, QueueError, ReceiveQueue};

/// Hide and take up to `?4` visible messages of queue `?2` (now `?3`) until `?1`.
///
/// In the `ready` index's own order (when each became visible, then arrival), so the
/// read stops at the first `?4` visible ones. Ordered by arrival alone, each receive
/// sorted the queue's whole visible backlog: while a destination is down or slower than
/// the deliveries, that backlog grows, and every receive cost more than the last.
/// (`recover_in_flight` makes what a dead run held visible since the epoch, so it goes
/// first.)
const RECEIVE: &str = "UPDATE messages SET receive_count = receive_count + 1, visible_at = ?1
     WHERE seq IN (SELECT seq FROM messages
                   WHERE queue = ?2 AND dead_at IS NULL AND visible_at <= ?3
                   ORDER BY visible_at, seq LIMIT ?4)
     RETURNING message_id, event_id, source, type, body, receive_count, seq, traceparent";

#[async_trait]
impl ReceiveQueue for SqliteQueue {
    /// Wait until something is committed to `consumer`'s queue: true when woken by a
    /// commit (or a redrive), false when `timeout` passed first.
    async fn wait(&self, consumer: Consumer, timeout: Duration) -> bool {
        // A deferred message is due when its wait ends: wake for it then, not later.
        let next = self
            .with(consumer, move |connection| {
                connection.query_row(
                    "SELECT MIN(visible_at) FROM messages WHERE queue = ?1 AND dead_at IS NULL",
                    params![consumer.as_str()],
                    |row| row.get::<_, Option<i64>>(0),
                )
            })
            .await
            .ok()
            .flatten();
        let until_next =
            next.map(|at| Duration::from_millis(at.saturating_sub(now_ms()).max(0) as u64));
        let timeout = until_next.map_or(timeout, |until| until.min(timeout));
        match self.wake.get(&consumer) {
            Some(notify) => tokio::time::timeout(timeout, notify.notified())
                .await
                .is_ok(),
            None => false,
        }
    }

    /// Up to `max` visible messages of `consumer`, hidden for `visibility`, as an SQS batch.
    async fn receive(
        &self,
        consumer: Consumer,
        max: usize,
        visibility: Duration,
    ) -> Result<SqsEvent, QueueError> {
        let hide_until = now_ms() + visibility.as_millis() as i64;
        let rows = self
            .with(consumer, move |connection| {
                let now = now_ms();
                let mut statement = connection.prepare(RECEIVE)?;
                let rows = statement
                    .query_map(
                        params![hide_until, consumer.as_str(), now, max as i64],
                        |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, String>(2)?,
                                row.get::<_, String>(3)?,
                                row.get::<_, String>(4)?,
                                row.get::<_, i64>(5)?,
                                row.get::<_, i64>(6)?,
                                row.get::<_, Option<String>>(7)?,
                            ))
                        },
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        let mut rows = rows;
        rows.sort_by_key(|row| row.6);
        let mut event = SqsEvent::default();
        event.records = rows.into_iter().map(sqs_message).collect();
        Ok(event)
    }

    /// Delete processed messages.
    async fn delete(&self, consumer: Consumer, message_ids: Vec<String>) -> Result<(), QueueError> {
        self.with(consumer, move |connection| {
            let transaction = connection.transaction()?;
            for id in &message_ids {
                transaction.execute("DELETE FROM messages WHERE message_id = ?1", params![id])?;
            }
            transaction.commit()
        })
        .await
    }

    /// A failed message: visible again after `backoff`, or moved to the dead-letter queue
    /// once it has been received `max_receive_count` times.
    async fn failed(
        &self,
        consumer: Consumer,
        message_id: String,
        max_receive_count: u32,
    ) -> Result<(), QueueError> {
        self.with(consumer, move |connection| {
            connection.execute(
                "UPDATE messages SET dead_at = ?3 WHERE message_id = ?1 AND receive_count >= ?2",
                params![message_id, i64::from(max_receive_count), now_ms()],
            )?;
            Ok(())
        })
        .await
    }
}

/// One received row (`message_id, event_id, source, type, body, receive_count, seq,
/// traceparent`) as SQS would deliver it to a Lambda function.
fn sqs_message(
    (message_id, event_id, source, event_type, body, count, seq, traceparent): Row,
) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(message_id);
    message.receipt_handle = Some(seq.to_string());
    message.body = Some(body);
    message
        .attributes
        .insert("ApproximateReceiveCount".into(), count.to_string());
    let traceparent = traceparent.map(|t| (okr_pipeline::trace::TRACEPARENT, t));
    let attributes = [
        ("event_id", event_id),
        ("source", source),
        ("type", event_type),
    ];
    for (name, value) in attributes.into_iter().chain(traceparent) {
        let mut attribute = SqsMessageAttribute::default();
        attribute.string_value = Some(value);
        attribute.data_type = Some("String".into());
        message.message_attributes.insert(name.into(), attribute);
    }
    message.event_source = Some("okr-webhooks:sqlite".into());
    message
}

/// A received row.
type Row = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
);

/// The receipt handle of a local message is its sequence number.
#[async_trait]
impl Defer for SqliteQueue {
    async fn defer(&self, receipt_handle: &str, delay: Duration) -> Result<(), DeferError> {
        let seq: i64 = receipt_handle.parse()?;
        let visible_at =
            now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        // The receipt names the message, not its queue: the error is the store's own,
        // without a queue name that could be wrong.
        self.with(Consumer::Warehouse, move |connection| {
            connection.execute(
                "UPDATE messages SET visible_at = ?2 WHERE seq = ?1 AND dead_at IS NULL",
                params![seq, visible_at],
            )?;
            Ok(())
        })
        .await
        .map_err(|error| error.source)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::RECEIVE;

    #[test]
    fn a_receive_walks_the_ready_index_without_sorting_the_backlog() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let connection = super::super::open(&dir.path().join("queues.sqlite")).expect("opens");
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {RECEIVE}"))
            .expect("prepares");
        let plan: Vec<String> = statement
            .query_map(params![0, "slack", 0, 10], |row| row.get::<_, String>(3))
            .expect("plans")
            .collect::<rusqlite::Result<_>>()
            .expect("reads the plan");
        assert!(
            plan.iter().any(|step| step.contains("INDEX ready")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }
}

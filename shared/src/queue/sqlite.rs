//! Durable queues in SQLite for local mode (`okr-webhooks serve`): every consumer's
//! queue and dead-letter queue in one WAL-mode database, with a visibility timeout and a
//! receive count per message, as SQS has.
//!
//! An event id already accepted on a queue is not queued again (`Sent::duplicate`): a
//! provider's retry of an accepted delivery is acknowledged and dropped. The ids are
//! forgotten after a while (`forget_accepted`).
//!
//! Sends go through one writer thread that commits whatever is waiting in one
//! transaction (group commit), so many concurrent deliveries share one fsync; a send
//! returns only once its transaction is durable. Each commit wakes the consumers of the
//! queues it wrote to.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use rusqlite::{Connection, params};
use tokio::sync::{Notify, mpsc, oneshot};

use super::{DeadLetter, EventQueue, QueueError, QueueMessage, Sent};
use crate::routing::Consumer;

/// Sends waiting to be committed together, at most.
const GROUP: usize = 512;

struct Pending {
    consumer: Consumer,
    message: QueueMessage,
    done: oneshot::Sender<Result<Sent, String>>,
}

/// The queues of one data directory.
pub struct SqliteQueue {
    writer: mpsc::UnboundedSender<Pending>,
    connection: Arc<Mutex<Connection>>,
    wake: Arc<HashMap<Consumer, Notify>>,
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS messages (
             seq INTEGER PRIMARY KEY AUTOINCREMENT,
             queue TEXT NOT NULL,
             message_id TEXT NOT NULL UNIQUE,
             event_id TEXT NOT NULL,
             source TEXT NOT NULL,
             type TEXT NOT NULL,
             body TEXT NOT NULL,
             receive_count INTEGER NOT NULL DEFAULT 0,
             visible_at INTEGER NOT NULL,
             dead_at INTEGER
         );
         CREATE INDEX IF NOT EXISTS ready ON messages (queue, dead_at, visible_at);
         CREATE TABLE IF NOT EXISTS accepted (
             queue TEXT NOT NULL,
             event_id TEXT NOT NULL,
             accepted_at INTEGER NOT NULL,
             PRIMARY KEY (queue, event_id)
         );
         CREATE INDEX IF NOT EXISTS accepted_age ON accepted (accepted_at);",
    )?;
    Ok(connection)
}

fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

fn failed(consumer: Consumer, error: impl std::fmt::Display) -> QueueError {
    QueueError {
        consumer,
        source: error.to_string().into(),
    }
}

impl SqliteQueue {
    /// Open (or create) the queues in the database at `path`.
    pub fn open(path: &Path) -> Result<Self, QueueError> {
        let writer_connection = open(path).map_err(|e| failed(Consumer::Warehouse, e))?;
        let connection = open(path).map_err(|e| failed(Consumer::Warehouse, e))?;
        let wake: Arc<HashMap<Consumer, Notify>> = Arc::new(
            Consumer::ALL
                .into_iter()
                .map(|c| (c, Notify::new()))
                .collect(),
        );
        let (writer, pending) = mpsc::unbounded_channel();
        let woken = Arc::clone(&wake);
        std::thread::Builder::new()
            .name("okr-webhooks-queue-writer".into())
            .spawn(move || write_loop(writer_connection, pending, &woken))
            .map_err(|e| failed(Consumer::Warehouse, e))?;
        Ok(SqliteQueue {
            writer,
            connection: Arc::new(Mutex::new(connection)),
            wake,
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        consumer: Consumer,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, QueueError> {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|e| failed(consumer, e))?
        .map_err(|e| failed(consumer, e))
    }

    /// Make every message that was in flight visible again. For a server starting on its
    /// data directory: whoever received them is gone (a crash or `kill -9`), so waiting
    /// out their visibility timeout would only delay them. Returns how many.
    pub async fn recover_in_flight(&self) -> Result<usize, QueueError> {
        self.with(Consumer::Warehouse, |connection| {
            let now = now_ms();
            connection.execute(
                "UPDATE messages SET visible_at = ?1 WHERE dead_at IS NULL AND visible_at > ?1",
                params![now],
            )
        })
        .await
    }

    /// Forget at most `limit` accepted event ids older than `older_than`, oldest first,
    /// so the duplicate check does not grow forever (a retry after that long is queued
    /// again, and the consumers' own dedup window still drops it). Returns how many.
    pub async fn forget_accepted(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<usize, QueueError> {
        let age = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(Consumer::Warehouse, move |connection| {
            connection.execute(
                "DELETE FROM accepted WHERE rowid IN (
                     SELECT rowid FROM accepted WHERE accepted_at < ?1
                     ORDER BY accepted_at LIMIT ?2)",
                params![now_ms().saturating_sub(age), limit],
            )
        })
        .await
    }

    /// Wait until something is committed to `consumer`'s queue: true when woken by a
    /// commit (or a redrive), false when `timeout` passed first.
    pub async fn wait(&self, consumer: Consumer, timeout: Duration) -> bool {
        match self.wake.get(&consumer) {
            Some(notify) => tokio::time::timeout(timeout, notify.notified())
                .await
                .is_ok(),
            None => false,
        }
    }

    /// Up to `max` visible messages of `consumer`, hidden for `visibility`, as an SQS batch.
    pub async fn receive(
        &self,
        consumer: Consumer,
        max: usize,
        visibility: Duration,
    ) -> Result<SqsEvent, QueueError> {
        let hide_until = now_ms() + visibility.as_millis() as i64;
        let rows = self
            .with(consumer, move |connection| {
                let now = now_ms();
                let mut statement = connection.prepare(
                    "UPDATE messages SET receive_count = receive_count + 1, visible_at = ?1
                     WHERE seq IN (SELECT seq FROM messages
                                   WHERE queue = ?2 AND dead_at IS NULL AND visible_at <= ?3
                                   ORDER BY seq LIMIT ?4)
                     RETURNING message_id, event_id, source, type, body, receive_count, seq",
                )?;
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
        event.records = rows
            .into_iter()
            .map(
                |(message_id, event_id, source, event_type, body, count, seq)| {
                    let mut message = SqsMessage::default();
                    message.message_id = Some(message_id);
                    message.receipt_handle = Some(seq.to_string());
                    message.body = Some(body);
                    message
                        .attributes
                        .insert("ApproximateReceiveCount".into(), count.to_string());
                    for (name, value) in [
                        ("event_id", event_id),
                        ("source", source),
                        ("type", event_type),
                    ] {
                        let mut attribute = SqsMessageAttribute::default();
                        attribute.string_value = Some(value);
                        attribute.data_type = Some("String".into());
                        message.message_attributes.insert(name.into(), attribute);
                    }
                    message.event_source = Some("okr-webhooks:sqlite".into());
                    message
                },
            )
            .collect();
        Ok(event)
    }

    /// Delete processed messages.
    pub async fn delete(
        &self,
        consumer: Consumer,
        message_ids: Vec<String>,
    ) -> Result<(), QueueError> {
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
    pub async fn retry_later(
        &self,
        consumer: Consumer,
        message_id: String,
        backoff: Duration,
        max_receive_count: u32,
    ) -> Result<(), QueueError> {
        let visible_at = now_ms() + backoff.as_millis() as i64;
        self.with(consumer, move |connection| {
            connection.execute(
                "UPDATE messages SET
                     dead_at = CASE WHEN receive_count >= ?2 THEN ?3 ELSE NULL END,
                     visible_at = ?4
                 WHERE message_id = ?1",
                params![
                    message_id,
                    i64::from(max_receive_count),
                    now_ms(),
                    visible_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// The messages in `consumer`'s dead-letter queue, oldest first.
    pub async fn dead_letters(&self, consumer: Consumer) -> Result<Vec<DeadLetter>, QueueError> {
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
    pub async fn redrive(&self, consumer: Consumer) -> Result<usize, QueueError> {
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

    /// How many messages `consumer`'s queue holds (visible or in flight), and its DLQ.
    pub async fn depth(&self, consumer: Consumer) -> Result<(usize, usize), QueueError> {
        self.with(consumer, move |connection| {
            connection.query_row(
                "SELECT COUNT(*) FILTER (WHERE dead_at IS NULL), COUNT(*) FILTER (WHERE dead_at IS NOT NULL)
                 FROM messages WHERE queue = ?1",
                params![consumer.as_str()],
                |row| Ok((row.get::<_, i64>(0)? as usize, row.get::<_, i64>(1)? as usize)),
            )
        })
        .await
    }
}

#[async_trait]
impl EventQueue for SqliteQueue {
    async fn send(&self, consumer: Consumer, message: &QueueMessage) -> Result<Sent, QueueError> {
        let (done, committed) = oneshot::channel();
        self.writer
            .send(Pending {
                consumer,
                message: message.clone(),
                done,
            })
            .map_err(|_| failed(consumer, "the queue writer stopped"))?;
        committed
            .await
            .map_err(|_| failed(consumer, "the queue writer stopped"))?
            .map_err(|e| failed(consumer, e))
    }
}

/// The writer: take every send that is waiting, insert them in one transaction, commit
/// (one fsync), then answer each and wake the consumers.
fn write_loop(
    mut connection: Connection,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    wake: &HashMap<Consumer, Notify>,
) {
    while let Some(first) = pending.blocking_recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match pending.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let result = insert_group(&mut connection, &group);
        match result {
            Ok(duplicates) => {
                let mut woken = Vec::new();
                for (entry, duplicate) in group.into_iter().zip(duplicates) {
                    if !woken.contains(&entry.consumer) {
                        woken.push(entry.consumer);
                    }
                    let _ = entry.done.send(Ok(Sent { duplicate }));
                }
                for consumer in woken {
                    // One consumer per queue: a stored permit wakes it even if it
                    // was not waiting yet.
                    if let Some(notify) = wake.get(&consumer) {
                        notify.notify_one();
                    }
                }
            }
            Err(error) => {
                for entry in group {
                    let _ = entry.done.send(Err(error.to_string()));
                }
            }
        }
    }
}

fn insert_group(connection: &mut Connection, group: &[Pending]) -> rusqlite::Result<Vec<bool>> {
    let transaction = connection.transaction()?;
    let now = now_ms();
    let mut duplicates = Vec::with_capacity(group.len());
    for entry in group {
        let queue = entry.consumer.as_str();
        let message = &entry.message;
        let first = transaction.execute(
            "INSERT OR IGNORE INTO accepted (queue, event_id, accepted_at) VALUES (?1, ?2, ?3)",
            params![queue, message.event_id, now],
        )? == 1;
        // Already accepted on this queue: the provider retried; it is not queued twice.
        if !first {
            duplicates.push(true);
            continue;
        }
        let message_id = format!("{}-{}", queue, hex::encode(rand::random::<[u8; 12]>()));
        transaction.execute(
            "INSERT INTO messages (queue, message_id, event_id, source, type, body, visible_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                queue,
                message_id,
                message.event_id,
                message.source,
                message.event_type,
                message.body,
                now
            ],
        )?;
        duplicates.push(false);
    }
    transaction.commit()?;
    Ok(duplicates)
}

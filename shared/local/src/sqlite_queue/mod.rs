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
use rusqlite::{Connection, params};
use tokio::sync::{Notify, mpsc, oneshot};

mod dead_letters;
mod receive;

pub use dead_letters::LocalDeadLetters;

use okr_core::routing::Consumer;
use okr_pipeline::queue::{EventQueue, QueueError, QueueMessage, Sent};

/// Sends waiting to be committed together, at most: a replay's batch (2,000 events) in
/// one commit; a commit of that many takes milliseconds, so a delivery waits little.
const GROUP: usize = 2048;

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

/// How many pages the WAL may hold before the receiving connection folds it in.
const CHECKPOINT_PAGES: i64 = 8000;

/// How long a statement waits for another writer's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
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
             dead_at INTEGER,
             traceparent TEXT
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
    // A data directory from before traces: its messages get the column, empty. Checked
    // and added under the write lock: `replay` or `dlq` may open the queues at the same
    // moment as `serve`.
    let mut connection = connection;
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let traced: bool = transaction.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = 'traceparent'",
        [],
        |row| row.get(0),
    )?;
    if !traced {
        transaction.execute_batch("ALTER TABLE messages ADD COLUMN traceparent TEXT")?;
    }
    transaction.commit()?;
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
        // The writer only appends to the WAL: folding it into the database (a
        // checkpoint, with its own fsyncs) is left to the other connection, so no
        // delivery waits for one.
        writer_connection
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| failed(Consumer::Warehouse, e))?;
        let connection = open(path).map_err(|e| failed(Consumer::Warehouse, e))?;
        // What this connection writes (receives, deletes, moves to the dead-letter
        // queue) may be lost to a power cut without losing an event: a lost receive or
        // delete delivers the message again, which its consumer drops by event id. So
        // its commits do not wait for an fsync; the writer's, which a 202 waits for, do.
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| failed(Consumer::Warehouse, e))?;
        // Fold the WAL in every 8,000 pages (32 MiB), not SQLite's 1,000: under load
        // the same pages (the index's, the queue's head) are rewritten in commit after
        // commit, and a checkpoint copies each page once however often it was written.
        connection
            .pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)
            .map_err(|e| failed(Consumer::Warehouse, e))?;
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

    /// Make every message that was in flight visible again, ahead of the rest. For a
    /// server starting on its data directory: whoever received them is gone (a crash or
    /// `kill -9`), so waiting out their visibility timeout would only delay them, and a
    /// receive takes messages by when they became visible: visible since the epoch, they
    /// go first (in arrival order), not behind a backlog. Returns how many.
    pub async fn recover_in_flight(&self) -> Result<usize, QueueError> {
        self.with(Consumer::Warehouse, |connection| {
            connection.execute(
                "UPDATE messages SET visible_at = 0 WHERE dead_at IS NULL AND visible_at > ?1",
                params![now_ms()],
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

    /// Whether the queues can take a send now: the writer is running, and the
    /// database's write lock can be taken (within `wait`, should another process hold
    /// it) on a file that can be written. Nothing is written.
    pub async fn check_writable(&self, wait: Duration) -> Result<(), QueueError> {
        if self.writer.is_closed() {
            return Err(failed(Consumer::Warehouse, "the queue writer stopped"));
        }
        self.with(Consumer::Warehouse, move |connection| {
            connection.busy_timeout(wait)?;
            let locked = connection.execute_batch("BEGIN IMMEDIATE; ROLLBACK;");
            connection.busy_timeout(BUSY_TIMEOUT)?;
            locked
        })
        .await
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

/// A new message's id: `<queue>-<time><sequence><random>` in hex. Ids grow, so the
/// unique index takes each at its end instead of a random page (a burst of inserts,
/// a replay, writes a few pages rather than one per message); the random part keeps
/// the ids of two processes writing at once (a replay beside `serve`) apart.
fn message_id(queue: &str, now_ms: i64) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let random: [u8; 4] = rand::random();
    format!("{queue}-{now_ms:011x}{sequence:08x}{}", hex::encode(random))
}

fn insert_group(connection: &mut Connection, group: &[Pending]) -> rusqlite::Result<Vec<bool>> {
    let transaction = connection.transaction()?;
    let now = now_ms();
    let mut duplicates = Vec::with_capacity(group.len());
    for entry in group {
        let queue = entry.consumer.as_str();
        let message = &entry.message;
        // A replay's events are accepted once per replay (its name before the id).
        let accepted = match &message.replay {
            Some(name) => format!("replay:{name}:{}", message.event_id),
            None => message.event_id.clone(),
        };
        let first = transaction
            .prepare_cached(
                "INSERT OR IGNORE INTO accepted (queue, event_id, accepted_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![queue, accepted, now])?
            == 1;
        // Already accepted on this queue: the provider retried (or the replay sent it
        // before an interruption); it is not queued twice.
        if !first {
            duplicates.push(true);
            continue;
        }
        let message_id = message_id(queue, now);
        transaction
            .prepare_cached(
                "INSERT INTO messages (queue, message_id, event_id, source, type, body, visible_at, traceparent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                queue,
                message_id,
                message.event_id,
                message.source,
                message.event_type,
                message.body,
                now,
                message.traceparent
            ])?;
        duplicates.push(false);
    }
    transaction.commit()?;
    Ok(duplicates)
}

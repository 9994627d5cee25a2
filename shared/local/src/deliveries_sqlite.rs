//! The delivery log in SQLite (`serve`'s `deliveries.sqlite`): one row per request, as
//! JSON, and one per step of an event's journey (the consumers' journal), pruned to a
//! time and a count when opened and every 500 records.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, params};

use okr_consumers::deliveries::{
    CAPTURE_FOR, Delivery, DeliveryLog, DeliveryLogError, DeliveryStore, Filter,
};
use okr_pipeline::journal::{Journal, Step};

/// How many records between two prunes.
const PRUNE_EVERY: usize = 500;
/// How many steps are kept for each delivery kept (an event has a handful: enqueued,
/// then one or more per consumer).
const STEPS_PER_DELIVERY: usize = 10;

/// `deliveries(id, at, endpoint, outcome, event_id, doc)` and `steps(id, at, event_id,
/// doc)` in a WAL-mode database. A lost record costs a debugging aid, not an event: it
/// is written without a sync per row.
#[derive(Clone)]
pub struct SqliteDeliveries {
    connection: Arc<Mutex<Connection>>,
    keep: Duration,
    max: usize,
    since_prune: Arc<AtomicUsize>,
    writer: Arc<StepWriter>,
}

impl SqliteDeliveries {
    /// Open (or create) the log at `path`, keeping deliveries for `keep` and at most
    /// `max` of them.
    pub fn open(path: &Path, keep: Duration, max: usize) -> Result<Self, DeliveryLogError> {
        let connection = Connection::open(path).map_err(wrap)?;
        // `okr-webhooks deliveries` reads while `serve` writes.
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(wrap)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS deliveries (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     at INTEGER NOT NULL,
                     endpoint TEXT NOT NULL,
                     outcome TEXT NOT NULL,
                     event_id TEXT,
                     doc TEXT NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS deliveries_at ON deliveries (at);
                 CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_id);
                 CREATE TABLE IF NOT EXISTS steps (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     at INTEGER NOT NULL,
                     event_id TEXT NOT NULL,
                     doc TEXT NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS steps_at ON steps (at);
                 CREATE INDEX IF NOT EXISTS steps_event ON steps (event_id);
                 CREATE TABLE IF NOT EXISTS bodies (
                     delivery INTEGER PRIMARY KEY,
                     at INTEGER NOT NULL,
                     body TEXT NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS captures (
                     endpoint TEXT PRIMARY KEY,
                     until INTEGER NOT NULL
                 );",
            )
            .map_err(wrap)?;
        let log = SqliteDeliveries {
            connection: Arc::new(Mutex::new(connection)),
            keep,
            max: max.max(1),
            since_prune: Arc::new(AtomicUsize::new(0)),
            writer: Arc::new(StepWriter::start(path)?),
        };
        // What aged out while nothing was written goes now.
        log.prune_now(time::OffsetDateTime::now_utc())?;
        Ok(log)
    }

    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, DeliveryLogError> + Send + 'static,
    ) -> Result<T, DeliveryLogError> {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|e| DeliveryLogError(Box::new(e)))?
    }

    /// Capture the bodies of refused deliveries to `endpoint` until `until` (none: stop
    /// capturing; the bodies captured stay until a day after each arrived).
    pub async fn capture(
        &self,
        endpoint: &str,
        until: Option<time::OffsetDateTime>,
    ) -> Result<(), DeliveryLogError> {
        let endpoint = endpoint.to_owned();
        self.with(move |c| {
            match until {
                Some(until) => c.execute(
                    "INSERT INTO captures (endpoint, until) VALUES (?1, ?2)
                     ON CONFLICT (endpoint) DO UPDATE SET until = excluded.until",
                    params![endpoint, millis(until)],
                ),
                None => c.execute(
                    "DELETE FROM captures WHERE endpoint = ?1",
                    params![endpoint],
                ),
            }
            .map_err(wrap)?;
            Ok(())
        })
        .await
    }

    /// The endpoints capturing refused bodies, and until when (milliseconds).
    async fn read_captures(
        &self,
    ) -> Result<std::collections::HashMap<String, i64>, DeliveryLogError> {
        self.with(|c| {
            let mut statement = c
                .prepare("SELECT endpoint, until FROM captures")
                .map_err(wrap)?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(wrap)?;
            rows.map(|row| row.map_err(wrap)).collect()
        })
        .await
    }

    /// The endpoints capturing refused bodies at `now`, and until when.
    pub async fn captures(
        &self,
        now: time::OffsetDateTime,
    ) -> Result<Vec<(String, time::OffsetDateTime)>, DeliveryLogError> {
        let mut found: Vec<_> = self
            .read_captures()
            .await?
            .into_iter()
            .filter(|(_, until)| *until > millis(now))
            .filter_map(|(endpoint, until)| {
                let until =
                    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(until) * 1_000_000)
                        .ok()?;
                Some((endpoint, until))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// Drop what is older than the log keeps at `now`, then the oldest beyond its count.
    pub async fn prune(&self, now: time::OffsetDateTime) -> Result<usize, DeliveryLogError> {
        let log = self.clone();
        tokio::task::spawn_blocking(move || log.prune_now(now))
            .await
            .map_err(|e| DeliveryLogError(Box::new(e)))?
    }

    fn prune_now(&self, now: time::OffsetDateTime) -> Result<usize, DeliveryLogError> {
        let oldest = ((now - self.keep).unix_timestamp_nanos() / 1_000_000) as i64;
        let max = self.max as i64;
        let c = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let old = c
            .execute("DELETE FROM deliveries WHERE at < ?1", params![oldest])
            .map_err(wrap)?;
        let over = c
            .execute(
                "DELETE FROM deliveries WHERE id <= (SELECT max(id) FROM deliveries) - ?1",
                params![max],
            )
            .map_err(wrap)?;
        c.execute("DELETE FROM steps WHERE at < ?1", params![oldest])
            .map_err(wrap)?;
        // Captured bodies go a day after they arrived, or with their delivery.
        let day_ago = millis(now - CAPTURE_FOR);
        c.execute(
            "DELETE FROM bodies WHERE at < ?1 OR delivery < (SELECT min(id) FROM deliveries)
                OR NOT EXISTS (SELECT 1 FROM deliveries)",
            params![day_ago],
        )
        .map_err(wrap)?;
        c.execute(
            "DELETE FROM steps WHERE id <= (SELECT max(id) FROM steps) - ?1",
            params![max.saturating_mul(STEPS_PER_DELIVERY as i64)],
        )
        .map_err(wrap)?;
        Ok(old + over)
    }
}

fn millis(time: time::OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Step batches waiting for the writer at most; beyond them steps are dropped (and
/// counted in a warning) rather than slowing the work they describe.
const STEPS_WAITING: usize = 10_000;
/// Steps the writer commits at once at most.
const STEPS_PER_COMMIT: usize = 2_000;

/// What the steps' writer thread is handed.
enum ToWriter {
    Steps(Vec<Step>),
    /// Answer once everything handed over before is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The steps' writer: a thread of its own with its own connection, taking what waits
/// in one transaction, so recording a step costs the work a channel send.
struct StepWriter {
    sender: std::sync::mpsc::SyncSender<ToWriter>,
    dropped: AtomicUsize,
    stopped: std::sync::atomic::AtomicBool,
}

impl StepWriter {
    fn start(path: &Path) -> Result<StepWriter, DeliveryLogError> {
        let mut connection = Connection::open(path).map_err(wrap)?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(wrap)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(STEPS_WAITING);
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || write_steps(&mut connection, &receiver))
            .map_err(|e| DeliveryLogError(Box::new(e)))?;
        Ok(StepWriter {
            sender,
            dropped: AtomicUsize::new(0),
            stopped: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// Write what arrives until every sender is gone.
fn write_steps(connection: &mut Connection, receiver: &std::sync::mpsc::Receiver<ToWriter>) {
    while let Ok(first) = receiver.recv() {
        let mut steps = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                ToWriter::Steps(more) => steps.extend(more),
                ToWriter::Flush(done) => flushes.push(done),
            }
            if steps.len() < STEPS_PER_COMMIT {
                next = receiver.try_recv().ok();
            }
        }
        if let Err(error) = insert_steps(connection, &steps) {
            // A journey is a view of the work: its loss is logged, the work goes on.
            tracing::warn!(error = %okr_core::error_chain(&error), steps = steps.len(), "could not record the events' steps");
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

fn insert_steps(connection: &mut Connection, steps: &[Step]) -> Result<(), DeliveryLogError> {
    let transaction = connection.transaction().map_err(wrap)?;
    {
        let mut insert = transaction
            .prepare_cached("INSERT INTO steps (at, event_id, doc) VALUES (?1, ?2, ?3)")
            .map_err(wrap)?;
        for step in steps {
            let doc = serde_json::to_string(step).map_err(|e| DeliveryLogError(Box::new(e)))?;
            insert
                .execute(params![millis(step.time), step.event_id, doc])
                .map_err(wrap)?;
        }
    }
    transaction.commit().map_err(wrap)
}

#[async_trait]
impl Journal for SqliteDeliveries {
    async fn append(&self, steps: Vec<Step>) {
        let count = steps.len();
        match self.writer.sender.try_send(ToWriter::Steps(steps)) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                let before = self.writer.dropped.fetch_add(count, Ordering::Relaxed);
                let after = before + count;
                // At 1, 2, 4, 8... dropped: a flood of drops logs a few lines.
                if before == 0 || after.ilog2() > before.ilog2() {
                    tracing::warn!(
                        dropped = after,
                        "the journal's writer is behind: steps dropped"
                    );
                }
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                if !self.writer.stopped.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "the journal's writer has stopped: steps are dropped from now on"
                    );
                }
            }
        }
    }
}

impl SqliteDeliveries {
    /// Wait until the steps recorded so far are written (so a read sees them).
    async fn flush_steps(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        let sender = self.writer.sender.clone();
        // `send` waits while the channel is full: off the runtime's threads.
        let handed =
            tokio::task::spawn_blocking(move || sender.send(ToWriter::Flush(done)).is_ok()).await;
        if matches!(handed, Ok(true)) {
            let _ = written.await;
        }
    }
}

fn wrap(error: rusqlite::Error) -> DeliveryLogError {
    DeliveryLogError(Box::new(error))
}

#[async_trait]
impl DeliveryLog for SqliteDeliveries {
    async fn record(&self, delivery: &Delivery) -> Result<(), DeliveryLogError> {
        // A captured body lives in `bodies`, which drops it a day after it arrived.
        let mut delivery = delivery.clone();
        let body = delivery.body.take();
        let doc = serde_json::to_string(&delivery).map_err(|e| DeliveryLogError(Box::new(e)))?;
        let at = millis(delivery.time);
        let (endpoint, outcome, event_id) = (
            delivery.endpoint.clone(),
            delivery.outcome.clone(),
            delivery.event_id.clone(),
        );
        self.with(move |c| {
            let transaction = c.transaction().map_err(wrap)?;
            transaction.execute(
                "INSERT INTO deliveries (at, endpoint, outcome, event_id, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![at, endpoint, outcome, event_id, doc],
            )
            .map_err(wrap)?;
            if let Some(body) = body {
                let id = transaction.last_insert_rowid();
                transaction
                    .execute(
                        "INSERT INTO bodies (delivery, at, body) VALUES (?1, ?2, ?3)",
                        params![id, at, body],
                    )
                    .map_err(wrap)?;
            }
            transaction.commit().map_err(wrap)
        })
        .await?;
        // One record in every PRUNE_EVERY prunes (opening does too).
        if self.since_prune.fetch_add(1, Ordering::Relaxed) + 1 >= PRUNE_EVERY {
            self.since_prune.store(0, Ordering::Relaxed);
            self.prune(delivery.time).await?;
        }
        Ok(())
    }

    async fn capturing(&self, endpoint: &str, at: time::OffsetDateTime) -> bool {
        // Asked on a refusal only: read each time, so a capture turned on by the
        // command (another process) counts from the next refusal.
        match self.read_captures().await {
            Ok(captures) => captures
                .get(endpoint)
                .is_some_and(|until| millis(at) < *until),
            Err(error) => {
                tracing::warn!(error = %okr_core::error_chain(&error), "could not read which endpoints capture refused bodies");
                false
            }
        }
    }
}

#[async_trait]
impl DeliveryStore for SqliteDeliveries {
    async fn list(&self, filter: &Filter) -> Result<Vec<Delivery>, DeliveryLogError> {
        let filter = filter.clone();
        self.with(move |c| {
            let since = filter
                .since
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .unwrap_or(i64::MIN);
            let mut statement = c
                .prepare(
                    "SELECT doc, (SELECT body FROM bodies WHERE delivery = deliveries.id)
                     FROM deliveries
                     WHERE at >= ?1
                       AND (?2 IS NULL OR endpoint = ?2)
                       AND (?3 IS NULL OR outcome = ?3)
                       AND (?4 IS NULL OR event_id = ?4)
                       AND (?6 IS NULL OR json_extract(doc, '$.type') = ?6)
                     ORDER BY id DESC LIMIT ?5",
                )
                .map_err(wrap)?;
            let rows = statement
                .query_map(
                    params![
                        since,
                        filter.endpoint,
                        filter.outcome,
                        filter.event_id,
                        filter.limit() as i64,
                        filter.event_type
                    ],
                    |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?)),
                )
                .map_err(wrap)?;
            let mut found = Vec::new();
            for row in rows {
                let (doc, body) = row.map_err(wrap)?;
                let mut delivery: Delivery =
                    serde_json::from_str(&doc).map_err(|e| DeliveryLogError(Box::new(e)))?;
                delivery.body = body;
                found.push(delivery);
            }
            Ok(found)
        })
        .await
    }

    async fn journey(&self, event_id: &str) -> Result<Vec<Step>, DeliveryLogError> {
        self.flush_steps().await;
        let event_id = event_id.to_owned();
        self.with(move |c| {
            let mut statement = c
                .prepare("SELECT doc FROM steps WHERE event_id = ?1 ORDER BY at, id LIMIT 1000")
                .map_err(wrap)?;
            let rows = statement
                .query_map(params![event_id], |row| row.get::<_, String>(0))
                .map_err(wrap)?;
            let mut steps = Vec::new();
            for doc in rows {
                let doc = doc.map_err(wrap)?;
                steps.push(serde_json::from_str(&doc).map_err(|e| DeliveryLogError(Box::new(e)))?);
            }
            Ok(steps)
        })
        .await
    }
}

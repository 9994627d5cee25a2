//! The delivery log in SQLite (`serve`'s `deliveries.sqlite`): one row per request, as
//! JSON, and one per step of an event's journey (the consumers' journal), pruned to a
//! time and a count when opened and every 500 records. Records and steps are handed to
//! a writer thread of its own, which commits what waits in one transaction: a request
//! never waits on the log's disk, and the log's writes never contend with each other.

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
/// The longest time between two prunes.
const PRUNE_AFTER: Duration = Duration::from_secs(600);
/// How many steps are kept for each delivery kept (an event has a handful: enqueued,
/// then one or more per consumer).
const STEPS_PER_DELIVERY: usize = 10;

/// `deliveries(id, at, endpoint, outcome, event_id, doc)` and `steps(id, at, event_id,
/// doc)` in a WAL-mode database. A lost record costs a debugging aid, not an event: it
/// is written without a sync per row, and dropped when the writer is far behind.
#[derive(Clone)]
pub struct SqliteDeliveries {
    /// For reads, the captures and pruning on demand.
    connection: Arc<Mutex<Connection>>,
    bounds: Bounds,
    writer: Arc<Writer>,
    /// The endpoints capturing refused bodies (until when), and when that was read.
    captures: Arc<Mutex<Option<Captures>>>,
}

/// When the captures were read, and what they were.
type Captures = (std::time::Instant, std::collections::HashMap<String, i64>);

/// How often the captures are read again at most.
const CAPTURES_EVERY: Duration = Duration::from_secs(1);

/// What the log keeps: for how long, and how many deliveries.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    keep: Duration,
    max: usize,
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
                 PRAGMA secure_delete = ON;
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
        let bounds = Bounds {
            keep,
            max: max.max(1),
        };
        // What aged out while nothing was written goes now.
        prune(&connection, bounds, time::OffsetDateTime::now_utc())?;
        Ok(SqliteDeliveries {
            connection: Arc::new(Mutex::new(connection)),
            bounds,
            writer: Arc::new(Writer::start(path, bounds)?),
            captures: Arc::default(),
        })
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
        .await?;
        *self.captures.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
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

    /// Drop what is older than the log keeps at `now`, then the oldest beyond its count
    /// (after what was recorded before is written).
    pub async fn prune(&self, now: time::OffsetDateTime) -> Result<usize, DeliveryLogError> {
        self.flush().await;
        let bounds = self.bounds;
        self.with(move |c| prune(c, bounds, now)).await
    }
}

/// Drop what is older than `bounds` keep at `now`, then the oldest beyond their count:
/// how many deliveries went.
fn prune(
    c: &Connection,
    bounds: Bounds,
    now: time::OffsetDateTime,
) -> Result<usize, DeliveryLogError> {
    let oldest = millis(now - bounds.keep);
    let max = bounds.max as i64;
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

fn millis(time: time::OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Records and step batches waiting for the writer at most; beyond them they are
/// dropped (and counted in a warning) rather than slowing the work they describe.
const WAITING: usize = 10_000;
/// Records and steps the writer commits at once at most.
const PER_COMMIT: usize = 2_000;

/// What the writer thread is handed.
enum ToWriter {
    Delivery(Box<Delivery>),
    Steps(Vec<Step>),
    /// Answer once everything handed over before is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The log's writer: a thread of its own with its own connection, taking what waits in
/// one transaction, and pruning every [`PRUNE_EVERY`] deliveries.
struct Writer {
    sender: std::sync::mpsc::SyncSender<ToWriter>,
    dropped: AtomicUsize,
    stopped: std::sync::atomic::AtomicBool,
}

impl Writer {
    fn start(path: &Path, bounds: Bounds) -> Result<Writer, DeliveryLogError> {
        let mut connection = Connection::open(path).map_err(wrap)?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(wrap)?;
        // A deleted captured body is overwritten, not left in free pages. Like the
        // reading connection, commits do not wait for an fsync (the log is a record of
        // what happened, not what makes it happen; `synchronous` is per connection).
        // The WAL keeps SQLite's checkpoint interval, so a deleted body's old frames are
        // soon written over.
        connection
            .execute_batch(
                "PRAGMA secure_delete = ON;
                 PRAGMA synchronous = NORMAL;",
            )
            .map_err(wrap)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(WAITING);
        std::thread::Builder::new()
            .name("delivery-log-writer".into())
            .spawn(move || write_all(&mut connection, &receiver, bounds))
            .map_err(|e| DeliveryLogError(Box::new(e)))?;
        Ok(Writer {
            sender,
            dropped: AtomicUsize::new(0),
            stopped: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Hand `message` (`count` records or steps) over, or drop it if the writer is far
    /// behind, saying so at 1, 2, 4, 8... dropped.
    fn hand(&self, message: ToWriter, count: usize) {
        match self.sender.try_send(message) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                let before = self.dropped.fetch_add(count, Ordering::Relaxed);
                let after = before + count;
                if before == 0 || after.ilog2() > before.ilog2() {
                    tracing::warn!(
                        dropped = after,
                        "the delivery log's writer is behind: records and steps dropped"
                    );
                }
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                if !self.stopped.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "the delivery log's writer has stopped: records and steps are dropped from now on"
                    );
                }
            }
        }
    }
}

/// Write what arrives until every sender is gone.
fn write_all(
    connection: &mut Connection,
    receiver: &std::sync::mpsc::Receiver<ToWriter>,
    bounds: Bounds,
) {
    let mut since_prune = 0;
    let mut pruned = std::time::Instant::now();
    loop {
        // Every PRUNE_EVERY deliveries, and at least every PRUNE_AFTER: a quiet log
        // still drops its captured bodies on time.
        let first = match receiver.recv_timeout(PRUNE_AFTER) {
            Ok(first) => first,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Err(error) = prune(connection, bounds, time::OffsetDateTime::now_utc()) {
                    tracing::warn!(error = %okr_core::error_chain(&error), "could not prune the delivery log");
                }
                pruned = std::time::Instant::now();
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut deliveries = Vec::new();
        let mut steps = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                ToWriter::Delivery(delivery) => deliveries.push(*delivery),
                ToWriter::Steps(more) => steps.extend(more),
                ToWriter::Flush(done) => flushes.push(done),
            }
            if deliveries.len() + steps.len() < PER_COMMIT {
                next = receiver.try_recv().ok();
            }
        }
        if let Err(error) = insert(connection, &deliveries, &steps) {
            // A debugging aid: its loss is logged, the work goes on.
            tracing::warn!(error = %okr_core::error_chain(&error), deliveries = deliveries.len(), steps = steps.len(), "could not write to the delivery log");
        }
        since_prune += deliveries.len();
        if since_prune >= PRUNE_EVERY || pruned.elapsed() >= PRUNE_AFTER {
            since_prune = 0;
            pruned = std::time::Instant::now();
            if let Err(error) = prune(connection, bounds, time::OffsetDateTime::now_utc()) {
                tracing::warn!(error = %okr_core::error_chain(&error), "could not prune the delivery log");
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Write `deliveries` (a captured body in `bodies`, which drops it a day after it
/// arrived) and `steps` in one transaction.
fn insert(
    connection: &mut Connection,
    deliveries: &[Delivery],
    steps: &[Step],
) -> Result<(), DeliveryLogError> {
    let json = |e: serde_json::Error| DeliveryLogError(Box::new(e));
    let transaction = connection.transaction().map_err(wrap)?;
    {
        let mut record = transaction
            .prepare_cached(
                "INSERT INTO deliveries (at, endpoint, outcome, event_id, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(wrap)?;
        let mut keep_body = transaction
            .prepare_cached("INSERT INTO bodies (delivery, at, body) VALUES (?1, ?2, ?3)")
            .map_err(wrap)?;
        for delivery in deliveries {
            let doc = match delivery.body {
                Some(_) => serde_json::to_string(&Delivery {
                    body: None,
                    ..delivery.clone()
                }),
                None => serde_json::to_string(delivery),
            }
            .map_err(json)?;
            let at = millis(delivery.time);
            let params = params![
                at,
                delivery.endpoint,
                delivery.outcome,
                delivery.event_id,
                doc
            ];
            let id = record.insert(params).map_err(wrap)?;
            if let Some(body) = &delivery.body {
                keep_body.execute(params![id, at, body]).map_err(wrap)?;
            }
        }
        let mut step_row = transaction
            .prepare_cached("INSERT INTO steps (at, event_id, doc) VALUES (?1, ?2, ?3)")
            .map_err(wrap)?;
        for step in steps {
            let doc = serde_json::to_string(step).map_err(json)?;
            step_row
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
        self.writer.hand(ToWriter::Steps(steps), count);
    }
}

impl SqliteDeliveries {
    /// Wait until what was recorded so far is written (so a read sees it, and nothing
    /// is lost when `serve` stops).
    pub async fn flush(&self) {
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
        self.writer
            .hand(ToWriter::Delivery(Box::new(delivery.clone())), 1);
        Ok(())
    }

    async fn capturing(&self, endpoint: &str, at: time::OffsetDateTime) -> bool {
        // Asked on a refusal only, and read again at most every CAPTURES_EVERY (a flood
        // of refusals reads it once a second): a capture turned on by the command
        // (another process) counts within a second.
        let cached = {
            let cache = self.captures.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .as_ref()
                .filter(|(read, _)| read.elapsed() < CAPTURES_EVERY)
                .map(|(_, captures)| captures.get(endpoint).copied())
        };
        let until = match cached {
            Some(until) => until,
            None => {
                let captures = self.read_captures().await.unwrap_or_else(|error| {
                    tracing::warn!(error = %okr_core::error_chain(&error), "could not read which endpoints capture refused bodies");
                    Default::default()
                });
                let until = captures.get(endpoint).copied();
                *self.captures.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((std::time::Instant::now(), captures));
                until
            }
        };
        until.is_some_and(|until| millis(at) < until)
    }
}

#[async_trait]
impl DeliveryStore for SqliteDeliveries {
    async fn list(&self, filter: &Filter) -> Result<Vec<Delivery>, DeliveryLogError> {
        self.flush().await;
        let filter = filter.clone();
        self.with(move |c| {
            let since = filter
                .since
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .unwrap_or(i64::MIN);
            let mut statement = c
                .prepare(
                    "SELECT doc, (SELECT body FROM bodies WHERE delivery = deliveries.id AND at >= ?7)
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
                        filter.event_type,
                        // A body past its day is not shown, pruned or not yet.
                        millis(time::OffsetDateTime::now_utc() - CAPTURE_FOR)
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
        self.flush().await;
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

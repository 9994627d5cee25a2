//! The delivery log in SQLite (`serve`'s `deliveries.sqlite`): one row per request, as
//! JSON, pruned to a time and a count when opened and every 500 records.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, params};

use okr_consumers::deliveries::{Delivery, DeliveryLog, DeliveryLogError, Filter};

/// How many records between two prunes.
const PRUNE_EVERY: usize = 500;

/// `deliveries(id, at, endpoint, outcome, event_id, doc)` in a WAL-mode database. A lost
/// record costs a debugging aid, not an event: it is written without a sync per row.
#[derive(Clone)]
pub struct SqliteDeliveries {
    connection: Arc<Mutex<Connection>>,
    keep: Duration,
    max: usize,
    since_prune: Arc<AtomicUsize>,
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
                 CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_id);",
            )
            .map_err(wrap)?;
        let log = SqliteDeliveries {
            connection: Arc::new(Mutex::new(connection)),
            keep,
            max: max.max(1),
            since_prune: Arc::new(AtomicUsize::new(0)),
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
        Ok(old + over)
    }
}

fn wrap(error: rusqlite::Error) -> DeliveryLogError {
    DeliveryLogError(Box::new(error))
}

#[async_trait]
impl DeliveryLog for SqliteDeliveries {
    async fn record(&self, delivery: &Delivery) -> Result<(), DeliveryLogError> {
        let doc = serde_json::to_string(delivery).map_err(|e| DeliveryLogError(Box::new(e)))?;
        let at = (delivery.time.unix_timestamp_nanos() / 1_000_000) as i64;
        let (endpoint, outcome, event_id) = (
            delivery.endpoint.clone(),
            delivery.outcome.clone(),
            delivery.event_id.clone(),
        );
        self.with(move |c| {
            c.execute(
                "INSERT INTO deliveries (at, endpoint, outcome, event_id, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![at, endpoint, outcome, event_id, doc],
            )
            .map_err(wrap)?;
            Ok(())
        })
        .await?;
        // One record in every PRUNE_EVERY prunes (opening does too).
        if self.since_prune.fetch_add(1, Ordering::Relaxed) + 1 >= PRUNE_EVERY {
            self.since_prune.store(0, Ordering::Relaxed);
            self.prune(delivery.time).await?;
        }
        Ok(())
    }

    async fn list(&self, filter: &Filter) -> Result<Vec<Delivery>, DeliveryLogError> {
        let filter = filter.clone();
        self.with(move |c| {
            let since = filter
                .since
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .unwrap_or(i64::MIN);
            let mut statement = c
                .prepare(
                    "SELECT doc FROM deliveries
                     WHERE at >= ?1
                       AND (?2 IS NULL OR endpoint = ?2)
                       AND (?3 IS NULL OR outcome = ?3)
                       AND (?4 IS NULL OR event_id = ?4)
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
                        filter.limit() as i64
                    ],
                    |row| row.get::<_, String>(0),
                )
                .map_err(wrap)?;
            let mut found = Vec::new();
            for doc in rows {
                let doc = doc.map_err(wrap)?;
                let delivery: Delivery =
                    serde_json::from_str(&doc).map_err(|e| DeliveryLogError(Box::new(e)))?;
                found.push(delivery);
            }
            Ok(found)
        })
        .await
    }
}

//! The read model in SQLite (`serve`'s `progress.sqlite`): one row per entity, its
//! record as JSON, and a write sequence number for the dashboard's live feed.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use okr_consumers::progress::{ProgressError, ProgressStore, Tracked, is_tracked_kind, key, next};
use okr_core::event::Event;
use okr_core::rules::Thresholds;

/// `progress(key, doc, version, seq)` in a WAL-mode database; a batch is one transaction.
/// Reads (the API, the live feed) have a connection of their own, so they never hold
/// up the projection's writes (WAL lets both run at once).
#[derive(Clone)]
pub struct SqliteProgressStore {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

impl SqliteProgressStore {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, ProgressError> {
        let writer = Self::connect(path)?;
        let reader = Self::connect(path)?;
        Ok(SqliteProgressStore {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    fn connect(path: &Path) -> Result<Connection, ProgressError> {
        let connection = Connection::open(path).map_err(wrap)?;
        // Another process (a `replay` into a stopped server's directory) may hold it.
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(wrap)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS progress (
                     key TEXT PRIMARY KEY,
                     doc TEXT NOT NULL,
                     version INTEGER NOT NULL,
                     seq INTEGER NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS progress_seq ON progress (seq);",
            )
            .map_err(wrap)?;
        Ok(connection)
    }

    async fn with<T: Send + 'static>(
        connection: &Arc<Mutex<Connection>>,
        work: impl FnOnce(&mut Connection) -> Result<T, ProgressError> + Send + 'static,
    ) -> Result<T, ProgressError> {
        let connection = Arc::clone(connection);
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|e| ProgressError(Box::new(e)))?
    }
}

fn wrap(error: rusqlite::Error) -> ProgressError {
    ProgressError(Box::new(error))
}

fn parse(doc: &str) -> Result<Tracked, ProgressError> {
    serde_json::from_str(doc).map_err(|e| ProgressError(Box::new(e)))
}

/// Apply `events` in one transaction: every outcome, or the transaction's error.
fn apply_all(
    connection: &mut Connection,
    events: &[Event],
    thresholds: &Thresholds,
) -> Result<Vec<bool>, ProgressError> {
    // Immediate: the write lock first, so a reader upgrading cannot fail half way.
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(wrap)?;
    let mut seq: i64 = transaction
        .query_row("SELECT coalesce(max(seq), 0) FROM progress", [], |row| {
            row.get(0)
        })
        .map_err(wrap)?;
    // The batch's records as they stand, so one entity's events follow each other.
    let mut records: HashMap<String, Option<Tracked>> = HashMap::new();
    let mut outcomes = Vec::with_capacity(events.len());
    {
        let mut read = transaction
            .prepare_cached("SELECT doc FROM progress WHERE key = ?1")
            .map_err(wrap)?;
        let mut write = transaction
            .prepare_cached(
                "INSERT INTO progress (key, doc, version, seq) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET doc = ?2, version = ?3, seq = ?4",
            )
            .map_err(wrap)?;
        for event in events {
            let Some(id) = event.entity.id.as_deref() else {
                outcomes.push(false);
                continue;
            };
            if !is_tracked_kind(&event.entity.kind) {
                outcomes.push(false);
                continue;
            }
            let key = key(event.endpoint(), id);
            let current = match records.entry(key.clone()) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(unknown) => {
                    let doc: Option<String> = read
                        .query_row(params![key], |row| row.get(0))
                        .optional()
                        .map_err(wrap)?;
                    unknown.insert(doc.as_deref().map(parse).transpose()?)
                }
            };
            let Some(updated) = next(current.as_ref(), event, thresholds) else {
                outcomes.push(false);
                continue;
            };
            seq += 1;
            let doc = serde_json::to_string(&updated).map_err(|e| ProgressError(Box::new(e)))?;
            write
                .execute(params![key, doc, updated.version as i64, seq])
                .map_err(wrap)?;
            *current = Some(updated);
            outcomes.push(true);
        }
    }
    transaction.commit().map_err(wrap)?;
    Ok(outcomes)
}

#[async_trait]
impl ProgressStore for SqliteProgressStore {
    async fn apply(
        &self,
        events: Vec<Event>,
        thresholds: &Thresholds,
    ) -> Vec<Result<bool, ProgressError>> {
        let count = events.len();
        let thresholds = *thresholds;
        match Self::with(&self.writer, move |connection| {
            apply_all(connection, &events, &thresholds)
        })
        .await
        {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            // Nothing of the batch was written: every event fails, and is retried.
            Err(error) => {
                let text = okr_core::error_chain(&error);
                (0..count)
                    .map(|_| Err(ProgressError::new(text.clone())))
                    .collect()
            }
        }
    }

    async fn all(&self) -> Result<Vec<Tracked>, ProgressError> {
        Self::with(&self.reader, |connection| {
            let mut select = connection
                .prepare_cached("SELECT doc FROM progress ORDER BY key")
                .map_err(wrap)?;
            let docs = select
                .query_map([], |row| row.get::<_, String>(0))
                .map_err(wrap)?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(wrap)?;
            docs.iter().map(|doc| parse(doc)).collect()
        })
        .await
    }

    async fn changed_since(&self, cursor: i64) -> Result<(Vec<Tracked>, i64), ProgressError> {
        Self::with(&self.reader, move |connection| {
            let mut select = connection
                .prepare_cached("SELECT doc, seq FROM progress WHERE seq > ?1 ORDER BY seq")
                .map_err(wrap)?;
            let rows = select
                .query_map(params![cursor], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(wrap)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(wrap)?;
            let last = rows.last().map_or(cursor, |(_, seq)| *seq);
            let records = rows
                .iter()
                .map(|(doc, _)| parse(doc))
                .collect::<Result<_, _>>()?;
            Ok((records, last))
        })
        .await
    }
}

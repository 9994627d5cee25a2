//! The directory in SQLite (`serve`'s `directory.sqlite`): one row per entry, as JSON,
//! with its version.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use okr_consumers::directory::{DirectoryError, DirectoryStore, Entry, Versioned};

/// `directory(key, doc, version)` in a WAL-mode database, with `secure_delete` on so a
/// forgotten person's row is overwritten, not left in free pages.
#[derive(Clone)]
pub struct SqliteDirectory {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteDirectory {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, DirectoryError> {
        let connection = Connection::open(path).map_err(wrap)?;
        // `okr-webhooks directory` may write while `serve` runs.
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(wrap)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA secure_delete = ON;
                 CREATE TABLE IF NOT EXISTS directory (
                     key TEXT PRIMARY KEY,
                     doc TEXT NOT NULL,
                     version INTEGER NOT NULL
                 );",
            )
            .map_err(wrap)?;
        Ok(SqliteDirectory {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, DirectoryError> + Send + 'static,
    ) -> Result<T, DirectoryError> {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|e| DirectoryError(Box::new(e)))?
    }
}

fn wrap(error: rusqlite::Error) -> DirectoryError {
    DirectoryError(Box::new(error))
}

fn json(error: serde_json::Error) -> DirectoryError {
    DirectoryError(Box::new(error))
}

#[async_trait]
impl DirectoryStore for SqliteDirectory {
    async fn entries(&self) -> Result<Vec<Versioned>, DirectoryError> {
        self.with(|connection| {
            let mut select = connection
                .prepare_cached("SELECT doc, version FROM directory ORDER BY key")
                .map_err(wrap)?;
            let rows = select
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(wrap)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(wrap)?;
            rows.into_iter()
                .map(|(doc, version)| {
                    Ok(Versioned {
                        entry: serde_json::from_str(&doc).map_err(json)?,
                        version: version as u64,
                    })
                })
                .collect()
        })
        .await
    }

    async fn put(&self, entry: &Entry, expected: Option<u64>) -> Result<bool, DirectoryError> {
        let key = entry.key();
        let doc = serde_json::to_string(entry).map_err(json)?;
        self.with(move |connection| {
            let transaction = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(wrap)?;
            let stored: Option<i64> = transaction
                .query_row(
                    "SELECT version FROM directory WHERE key = ?1",
                    params![key],
                    |row| row.get(0),
                )
                .optional()
                .map_err(wrap)?;
            if stored.map(|v| v as u64) != expected {
                return Ok(false);
            }
            let version = expected.unwrap_or(0) as i64 + 1;
            transaction
                .execute(
                    "INSERT INTO directory (key, doc, version) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET doc = ?2, version = ?3",
                    params![key, doc, version],
                )
                .map_err(wrap)?;
            transaction.commit().map_err(wrap)?;
            Ok(true)
        })
        .await
    }

    /// One transaction for them all: written together, or (a version moved) none.
    async fn put_all(&self, writes: &[(Entry, Option<u64>)]) -> Result<bool, DirectoryError> {
        let rows = writes
            .iter()
            .map(|(entry, expected)| {
                Ok((
                    entry.key(),
                    serde_json::to_string(entry).map_err(json)?,
                    *expected,
                ))
            })
            .collect::<Result<Vec<_>, DirectoryError>>()?;
        self.with(move |connection| {
            let transaction = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(wrap)?;
            {
                let mut read = transaction
                    .prepare_cached("SELECT version FROM directory WHERE key = ?1")
                    .map_err(wrap)?;
                let mut write = transaction
                    .prepare_cached(
                        "INSERT INTO directory (key, doc, version) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET doc = ?2, version = ?3",
                    )
                    .map_err(wrap)?;
                for (key, doc, expected) in &rows {
                    let stored: Option<i64> = read
                        .query_row(params![key], |row| row.get(0))
                        .optional()
                        .map_err(wrap)?;
                    if stored.map(|v| v as u64) != *expected {
                        // Dropped unfinished, the transaction rolls back: nothing written.
                        return Ok(false);
                    }
                    let version = expected.unwrap_or(0) as i64 + 1;
                    write.execute(params![key, doc, version]).map_err(wrap)?;
                }
            }
            transaction.commit().map_err(wrap)?;
            Ok(true)
        })
        .await
    }

    async fn remove(&self, key: &str) -> Result<(), DirectoryError> {
        let key = key.to_owned();
        self.with(move |connection| {
            connection
                .execute("DELETE FROM directory WHERE key = ?1", params![key])
                .map_err(wrap)?;
            // A removal is an erasure: the row's earlier versions leave the log too.
            connection
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(wrap)?;
            Ok(())
        })
        .await
    }
}

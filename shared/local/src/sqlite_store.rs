//! Idempotency records in SQLite (local mode).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use okr_pipeline::idempotency::{
    COMPLETED, Claim, ClaimStore, ClaimToken, IN_PROGRESS, IdempotencyError, SENDING, StateStore,
    StateWrite, Versioned, claim_of, expiry,
};

/// Two tables in a WAL-mode database: `idempotency(key, status, expires_at, token)` and
/// the state records, `state(key, version, value, expires_at)`.
///
/// **What waits for the disk.** Only the writes a lost one of which could repeat or drop
/// a side effect commit with `synchronous = FULL` (an fsync of the WAL): marking a claim
/// sending, releasing a claim (a lost release of a failed send would leave it presumed
/// done after a crash), and the state records. Claims and completions commit with
/// `NORMAL`: they survive a killed process like every commit, and after a power cut the
/// WAL, written in order, keeps everything up to the last fsync'd commit: a lost claim
/// is claimed again (its side effect had not started: its mark would have fsync'd it),
/// and a lost completion leaves the claim sending, which [`recover_after_crash`]
/// presumes done, as the completion said. One fsync a side effect, not four; and marks
/// made at the same moment (a batch's side effects, sent side by side) share one: each
/// mark waits for the next commit of marks and returns once it is durable. A mark the
/// database refuses fails the others of its commit too: none of them is sent, and each
/// claim is released for a retry.
///
/// Expired records count as absent to every read; they are deleted at most once a
/// minute, by expiry (indexed), not on every completion.
///
/// [`recover_after_crash`]: SqliteIdempotencyStore::recover_after_crash
#[derive(Clone)]
pub struct SqliteIdempotencyStore {
    /// The connection, and how its commits are set to wait now.
    connection: Arc<Mutex<(Connection, Commit)>>,
    /// When expired records were last deleted (Unix seconds).
    swept: Arc<std::sync::atomic::AtomicI64>,
    /// Marks waiting for the next fsync'd commit.
    marks: Arc<Mutex<Vec<Mark>>>,
}

/// A claim to mark sending, and whom to tell once it is durable.
struct Mark {
    key: String,
    token: String,
    until: i64,
    done: oneshot::Sender<Result<(), String>>,
}

/// Mark every claim of `marks` sending, in one transaction (one fsync).
fn commit_marks(connection: &Connection, marks: &[Mark]) -> rusqlite::Result<()> {
    let transaction = connection.unchecked_transaction()?;
    {
        let mut mark = transaction.prepare_cached(
            "UPDATE idempotency SET status = ?1, expires_at = MAX(expires_at, ?4)
             WHERE key = ?2 AND token = ?3",
        )?;
        for m in marks {
            mark.execute(params![SENDING, m.key, m.token, m.until])?;
        }
    }
    transaction.commit()
}

/// How often expired records are deleted.
const SWEEP_EVERY_S: i64 = 60;

impl SqliteIdempotencyStore {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, IdempotencyError> {
        let connection = Connection::open(path).map_err(wrap)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS idempotency (
                     key TEXT PRIMARY KEY,
                     status TEXT NOT NULL,
                     expires_at INTEGER NOT NULL,
                     token TEXT
                 );
                 CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
                 CREATE TABLE IF NOT EXISTS state (
                     key TEXT PRIMARY KEY,
                     version INTEGER NOT NULL,
                     value TEXT NOT NULL,
                     expires_at INTEGER NOT NULL
                 );",
            )
            .map_err(wrap)?;
        Ok(SqliteIdempotencyStore {
            connection: Arc::new(Mutex::new((connection, Commit::Fsync))),
            swept: Arc::new(std::sync::atomic::AtomicI64::new(0)),
            marks: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Settle the claims a crashed run left. For a server starting on its data
    /// directory: claims whose side effect had not started are dropped (their messages
    /// must not wait out the hold and exhaust their receives); claims that were sending
    /// are presumed done, since their post may have reached Slack, so it is not posted
    /// twice (at most once for the one post a crash interrupts). Returns how many were
    /// dropped, and the keys presumed done (`slack:<event id>`, `alert:...`: ids, never
    /// content), for the operator to check.
    pub async fn recover_after_crash(
        &self,
        keep: Duration,
    ) -> Result<(usize, Vec<String>), IdempotencyError> {
        let until = expiry(OffsetDateTime::now_utc(), keep);
        self.with(move |connection| {
            let transaction = connection.unchecked_transaction()?;
            let dropped = transaction.execute("DELETE FROM idempotency WHERE status = ?1", params![IN_PROGRESS])?;
            let presumed = transaction
                .prepare("SELECT key FROM idempotency WHERE status = ?1 ORDER BY key")?
                .query_map(params![SENDING], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            transaction.execute(
                "UPDATE idempotency SET status = ?1, expires_at = ?2, token = NULL WHERE status = ?3",
                params![COMPLETED, until, SENDING],
            )?;
            transaction.commit()?;
            Ok((dropped, presumed))
        })
        .await
    }

    /// Run `work` on the connection, committing with an fsync.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, IdempotencyError> {
        self.run(Commit::Fsync, work).await
    }

    /// Run `work` on the connection, committing without waiting for the disk (see the
    /// type's documentation for which writes may).
    async fn light<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, IdempotencyError> {
        self.run(Commit::Written, work).await
    }

    async fn run<T: Send + 'static>(
        &self,
        commit: Commit,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, IdempotencyError> {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut held = connection.lock().unwrap_or_else(|e| e.into_inner());
            let (connection, set) = &mut *held;
            if *set != commit {
                let level = match commit {
                    Commit::Fsync => "FULL",
                    Commit::Written => "NORMAL",
                };
                connection.pragma_update(None, "synchronous", level)?;
                *set = commit;
            }
            work(connection)
        })
        .await
        .map_err(|e| IdempotencyError(Box::new(e)))?
        .map_err(wrap)
    }

    /// Whether expired records are due to be deleted at `now` (claiming the sweep).
    fn sweep_due(&self, now: i64) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.swept.load(Ordering::Relaxed);
        now - last >= SWEEP_EVERY_S
            && self
                .swept
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// Whether a commit waits for the disk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    Fsync,
    Written,
}

fn wrap(error: rusqlite::Error) -> IdempotencyError {
    IdempotencyError(Box::new(error))
}

#[async_trait]
impl ClaimStore for SqliteIdempotencyStore {
    async fn begin(
        &self,
        key: &str,
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<Claim, IdempotencyError> {
        let mut claims = self.begin_all(&[key], now, hold).await?;
        Ok(claims.pop().unwrap_or(Claim::InProgress))
    }
    /// One transaction for the whole batch's claims: all are taken or none.
    async fn begin_all(
        &self,
        keys: &[&str],
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<Vec<Claim>, IdempotencyError> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        let (now, until) = (now.unix_timestamp(), expiry(now, hold));
        self.light(move |connection| {
            let transaction = connection.unchecked_transaction()?;
            let mut claims = Vec::with_capacity(keys.len());
            {
                // Insert, or take over an expired record; one statement, so it is atomic.
                let mut claim = transaction.prepare_cached(
                    "INSERT INTO idempotency (key, status, expires_at, token) VALUES (?1, ?2, ?3, ?5)
                     ON CONFLICT (key) DO UPDATE SET status = excluded.status,
                         expires_at = excluded.expires_at, token = excluded.token
                     WHERE idempotency.expires_at <= ?4",
                )?;
                let mut status = transaction
                    .prepare_cached("SELECT status FROM idempotency WHERE key = ?1")?;
                for key in &keys {
                    let token = ClaimToken::random();
                    if claim.execute(params![key, IN_PROGRESS, until, now, token.as_str()])? == 1 {
                        claims.push(Claim::Proceed(token));
                        continue;
                    }
                    let found: Option<String> = status
                        .query_row(params![key], |row| row.get(0))
                        .optional()?;
                    claims.push(found.map_or(Claim::InProgress, |s| claim_of(&s)));
                }
            }
            transaction.commit()?;
            Ok(claims)
        })
        .await
    }
    async fn complete(
        &self,
        key: &str,
        now: OffsetDateTime,
        keep: Duration,
    ) -> Result<(), IdempotencyError> {
        let key = key.to_owned();
        let (now, until) = (now.unix_timestamp(), expiry(now, keep));
        let sweep = self.sweep_due(now);
        self.light(move |connection| {
            let transaction = connection.unchecked_transaction()?;
            transaction
                .prepare_cached(
                    "INSERT INTO idempotency (key, status, expires_at, token) VALUES (?1, ?2, ?3, NULL)
                     ON CONFLICT (key) DO UPDATE SET status = excluded.status,
                         expires_at = excluded.expires_at, token = NULL",
                )?
                .execute(params![key, COMPLETED, until])?;
            if sweep {
                // Expired records count as absent: drop them (SQLite has no TTL of its own).
                transaction.execute(
                    "DELETE FROM idempotency WHERE expires_at <= ?1",
                    params![now],
                )?;
            }
            transaction.commit()
        })
        .await
    }
    async fn sending(
        &self,
        key: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<(), IdempotencyError> {
        let (done, marked) = oneshot::channel();
        let mark = Mark {
            key: key.to_owned(),
            token: token.as_str().to_owned(),
            until: expiry(now, hold),
            done,
        };
        self.marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(mark);
        // Whoever has the connection next commits every mark waiting then, answering each
        // once the commit is durable; one already committed with another finds none left.
        let marks = Arc::clone(&self.marks);
        self.with(move |connection| {
            // A mark whose caller stopped waiting (out of time, or its own turn failed) is
            // dropped: that caller did not start its side effect and releases its claim.
            let waiting: Vec<Mark> =
                std::mem::take(&mut *marks.lock().unwrap_or_else(PoisonError::into_inner))
                    .into_iter()
                    .filter(|mark| !mark.done.is_closed())
                    .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            let committed = commit_marks(connection, &waiting).map_err(|e| e.to_string());
            for mark in waiting {
                let _ = mark.done.send(committed.clone());
            }
            Ok(())
        })
        .await?;
        marked
            .await
            .map_err(|_| IdempotencyError("the mark was not committed".into()))?
            .map_err(|e| IdempotencyError(e.into()))
    }
    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), IdempotencyError> {
        let (key, token) = (key.to_owned(), token.as_str().to_owned());
        self.with(move |connection| {
            connection.execute(
                "DELETE FROM idempotency WHERE key = ?1 AND status IN (?2, ?3) AND token = ?4",
                params![key, IN_PROGRESS, SENDING, token],
            )?;
            Ok(())
        })
        .await
    }
    async fn is_completed(&self, key: &str, now: OffsetDateTime) -> Result<bool, IdempotencyError> {
        let (key, now) = (key.to_owned(), now.unix_timestamp());
        self.with(move |connection| {
            let status: Option<String> = connection
                .query_row(
                    "SELECT status FROM idempotency WHERE key = ?1 AND expires_at > ?2",
                    params![key, now],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(status.as_deref() == Some(COMPLETED))
        })
        .await
    }
}

#[async_trait]
impl StateStore for SqliteIdempotencyStore {
    async fn load_state(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Versioned>, IdempotencyError> {
        let (key, now) = (key.to_owned(), now.unix_timestamp());
        self.with(move |connection| {
            connection
                .query_row(
                    "SELECT version, value FROM state WHERE key = ?1 AND expires_at > ?2",
                    params![key, now],
                    |row| {
                        Ok(Versioned {
                            version: row.get::<_, i64>(0)?.try_into().unwrap_or_default(),
                            value: row.get(1)?,
                        })
                    },
                )
                .optional()
        })
        .await
    }
    async fn save_state(&self, write: &StateWrite<'_>) -> Result<bool, IdempotencyError> {
        let (key, value) = (write.key.to_owned(), write.value.to_owned());
        let (now, until) = (write.now.unix_timestamp(), expiry(write.now, write.keep));
        let expected = write.expected.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        self.with(move |connection| {
            let written = match expected {
                // No live record: insert, or take over an expired one.
                None => connection.execute(
                    "INSERT INTO state (key, version, value, expires_at) VALUES (?1, 1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET version = 1, value = excluded.value,
                         expires_at = excluded.expires_at
                     WHERE state.expires_at <= ?4",
                    params![key, value, until, now],
                )?,
                Some(expected) => connection.execute(
                    "UPDATE state SET version = version + 1, value = ?1, expires_at = ?2
                     WHERE key = ?3 AND version = ?4",
                    params![value, until, key, expected],
                )?,
            };
            connection.execute("DELETE FROM state WHERE expires_at <= ?1", params![now])?;
            Ok(written == 1)
        })
        .await
    }
}

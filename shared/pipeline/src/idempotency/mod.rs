//! Idempotency records keyed by event id (the Powertools pattern): a consumer claims an
//! event before its side effect, marks it completed after, and releases the claim when
//! the side effect failed, so a redelivered message or a provider's retry acts once.
//!
//! A claim is `IN_PROGRESS` until `hold` runs out (so a crashed holder does not block the
//! event forever); a completed record is kept for `keep` (the dedup window). Expired
//! records count as absent, whether or not the store has deleted them yet.
//!
//! The same stores keep small versioned **state records** (the progress alerts' open and
//! closed alerts per key result): read with [`StateStore::load_state`], replaced
//! with [`StateStore::save_state`] only if nobody changed them since (optimistic
//! concurrency), and kept for a time like the other records.

pub mod guard;
pub mod memory;

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

/// The longest one AWS call of a consumer (DynamoDB, Secrets Manager) may take, retries
/// included: the consumers keep this much of their time for each store call they must
/// still make after a send.
pub const CONSUMER_AWS_CALL: Duration = Duration::from_secs(5);

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No live record: the caller holds the claim (proved by the token) and should do
    /// the work.
    Proceed(ClaimToken),
    /// Someone else holds a live claim: try again later.
    InProgress,
    /// Done within the window: skip the work.
    Completed,
}

/// Proves who holds a claim, so a holder whose claim lapsed and was taken over cannot
/// release the new holder's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh random token; a store makes one for each claim it grants.
    pub fn random() -> Self {
        ClaimToken(hex::encode(rand::random::<[u8; 16]>()))
    }

    /// The token as the stores keep it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A state record as read, with the version a [`StateStore::save_state`] must
/// name to replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// Counts the writes: 1 for the first.
    pub version: u64,
    /// What the owner stored (JSON, for the alerts).
    pub value: String,
}

/// A state record to write (see [`StateStore::save_state`]).
#[derive(Debug, Clone, Copy)]
pub struct StateWrite<'a> {
    /// The record's key.
    pub key: &'a str,
    /// The version read (`None`: there was no live record).
    pub expected: Option<u64>,
    /// The new value.
    pub value: &'a str,
    /// The time of the write.
    pub now: OffsetDateTime,
    /// How long the record is kept.
    pub keep: Duration,
}

/// The store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("the idempotency store failed")]
pub struct IdempotencyError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Claims: records of work claimed and done, keyed by what the work is (an event id and
/// a destination), so a redelivered message or a provider's retry acts once.
#[async_trait]
pub trait ClaimStore: Send + Sync {
    /// Claim `key` until `now + hold`, unless a live record exists.
    async fn begin(
        &self,
        key: &str,
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<Claim, IdempotencyError>;
    /// Claim each of `keys` as [`begin`](ClaimStore::begin) does, answering in their
    /// order: a batch's claims in one call. A store that can makes it one transaction
    /// (SQLite); others give back the claims they took when one fails (or, failing that,
    /// leave them to lapse at their short hold), so an error leaves every record of the
    /// batch to be retried.
    async fn begin_all(
        &self,
        keys: &[&str],
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<Vec<Claim>, IdempotencyError> {
        let mut claims = Vec::with_capacity(keys.len());
        for key in keys {
            match self.begin(key, now, hold).await {
                Ok(claim) => claims.push(claim),
                Err(error) => {
                    give_back(self, keys, &claims).await;
                    return Err(error);
                }
            }
        }
        Ok(claims)
    }
    /// Mark `key` completed, remembered until `now + keep`.
    async fn complete(
        &self,
        key: &str,
        now: OffsetDateTime,
        keep: Duration,
    ) -> Result<(), IdempotencyError>;
    /// Mark the claim `token` on `key` as sending, held until `now + hold`: the side
    /// effect starts now, so after a crash nobody can tell whether it happened. Until it
    /// lapses it counts as in progress; local mode's restart presumes it done (see
    /// `okr_local::sqlite_store`). A claim is taken with a short hold (a retry need not
    /// wait long for a side effect that never started) and held longer here, once it may
    /// have happened.
    async fn sending(
        &self,
        key: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<(), IdempotencyError>;
    /// Drop the in-progress claim `token` on `key` after the work failed, so a retry
    /// proceeds. A completed record, or another holder's claim, stays.
    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), IdempotencyError>;
    /// Whether `key` is completed within its window (a read: nothing is claimed), for a
    /// replay's estimate of what the consumers will skip.
    async fn is_completed(&self, key: &str, now: OffsetDateTime) -> Result<bool, IdempotencyError>;
}

/// Versioned state records: small JSON documents (a breaker's state, a key result's open
/// alerts, a summary run's baseline) replaced only by a writer that read the current
/// version (optimistic concurrency), and kept for a time.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The live state record at `key`, if any (an expired one counts as absent). State
    /// records may share one key space with claims (DynamoDB): give them their own
    /// prefix.
    async fn load_state(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Versioned>, IdempotencyError>;
    /// Store the write's `value` at its `key` until `now + keep`, if the record is still
    /// at `expected` (`None`: there is no live record). Returns false, having written
    /// nothing, when another writer got there first: read again and redo the decision.
    async fn save_state(&self, write: &StateWrite<'_>) -> Result<bool, IdempotencyError>;
}

/// Release the claims of `claims` that were taken (`Proceed`), each for the key at its
/// place in `keys`, side by side: a batch that cannot go on gives back what it took, so
/// none of it waits out its hold (a release that fails lapses at that hold).
pub async fn give_back<S: ClaimStore + ?Sized>(store: &S, keys: &[&str], claims: &[Claim]) {
    let taken = keys
        .iter()
        .zip(claims)
        .filter_map(|(key, claim)| match claim {
            Claim::Proceed(token) => Some(store.release(key, token)),
            _ => None,
        });
    futures::future::join_all(taken).await;
}

/// A store that keeps both claims and state records (each adapter does: one DynamoDB
/// table, one SQLite file, one map), for the consumers that need both.
pub trait IdempotencyStore: ClaimStore + StateStore {}

impl<T: ClaimStore + StateStore + ?Sized> IdempotencyStore for T {}

/// Rewrite the state record `key` to what `change` makes of its current value (`None`
/// when there is no live record), kept for `keep`; `change` answering `None` leaves it
/// as it is. When another writer got there first, it reads and decides again (three
/// times at most, then fails with `contended`).
pub async fn update_state(
    store: &dyn StateStore,
    (key, keep): (&str, Duration),
    change: impl Fn(Option<&str>) -> Option<String>,
    contended: &'static str,
) -> Result<(), IdempotencyError> {
    for _ in 0..3 {
        let now = OffsetDateTime::now_utc();
        let stored = store.load_state(key, now).await?;
        let Some(value) = change(stored.as_ref().map(|s| s.value.as_str())) else {
            return Ok(());
        };
        let write = StateWrite {
            key,
            expected: stored.map(|s| s.version),
            value: &value,
            now,
            keep,
        };
        if store.save_state(&write).await? {
            return Ok(());
        }
    }
    Err(IdempotencyError(contended.into()))
}

pub const IN_PROGRESS: &str = "IN_PROGRESS";
pub const SENDING: &str = "SENDING";
pub const COMPLETED: &str = "COMPLETED";

/// `now + span` in Unix seconds.
pub fn expiry(now: OffsetDateTime, span: Duration) -> i64 {
    // Rounded up to the second, so a claim never lapses before `now + span`.
    match now.checked_add(time::Duration::try_from(span).unwrap_or(time::Duration::MAX)) {
        Some(end) => end.unix_timestamp() + i64::from(end.nanosecond() > 0),
        None => i64::MAX,
    }
}

pub fn claim_of(status: &str) -> Claim {
    if status == COMPLETED {
        Claim::Completed
    } else {
        Claim::InProgress
    }
}

//! The state a breaker shares with every instance, and this instance's copy of it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use tokio::time::Instant;

use crate::breaker::Breaker;
use crate::idempotency::CONSUMER_AWS_CALL;
use crate::idempotency::StateWrite;
use crate::outbound::SEND_BUDGET;

/// How long a breaker's shared record is kept after its last change.
pub(super) const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);
/// Writes of the shared record before giving up on a concurrent writer (the copy is
/// then read again on the next call).
pub(super) const WRITE_ATTEMPTS: usize = 3;
/// The longest one store call of a breaker may take (the consumers' AWS call bound).
const STORE_CALL: Duration = CONSUMER_AWS_CALL;

/// The shared record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct State {
    /// Consecutive unanswered calls.
    #[serde(default)]
    pub(super) failures: u32,
    /// When it opened (Unix ms); absent while closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) opened_at: Option<i64>,
    /// While open, from when (Unix ms) the next probe may go out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) probe_at: Option<i64>,
}

/// This instance's copy of the shared record.
#[derive(Debug, Default)]
pub(super) struct Known {
    pub(super) state: State,
    pub(super) version: Option<u64>,
    pub(super) read_at: Option<OffsetDateTime>,
    /// The last write reached only this copy: it is not read over until a write reaches
    /// the store again.
    pub(super) alone: bool,
}

pub(super) fn millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn since(at_ms: i64, now: OffsetDateTime) -> Duration {
    Duration::from_millis(millis(now).saturating_sub(at_ms).max(0) as u64)
}

/// What a write of the shared record came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// Written; the copy follows.
    Shared,
    /// The store did not answer in time: the copy took the write alone, so this
    /// instance goes on by it until the store answers again.
    Alone,
    /// Another writer came first: nothing written; read again and decide again.
    Conflict,
}

impl Breaker {
    /// How long a store call may take before `by` (the invocation's deadline, less the
    /// time kept to answer), at most [`STORE_CALL`]; `None` when no time is left.
    fn budget(&self, by: Option<Instant>) -> Option<Duration> {
        match by {
            None => Some(STORE_CALL),
            Some(by) => by
                .checked_duration_since(Instant::now() + SEND_BUDGET)
                .map(|left| left.min(STORE_CALL))
                .filter(|left| !left.is_zero()),
        }
    }

    /// `call`, given at most its budget before `by`; why not, when it did not answer.
    async fn within<T>(
        &self,
        by: Option<Instant>,
        call: impl std::future::Future<Output = Result<T, crate::idempotency::IdempotencyError>>,
    ) -> Result<T, String> {
        let budget = self.budget(by).ok_or_else(|| "no time left".to_owned())?;
        match tokio::time::timeout(budget, call).await {
            Ok(answer) => answer.map_err(|e| okr_core::error_chain(&e)),
            Err(_) => Err("no answer in time".to_owned()),
        }
    }

    /// The copy of the shared state, read again when older than `refresh` (unless its
    /// last write reached only the copy). A store that does not answer (in its budget
    /// before `by`) leaves the copy as it was, until the next `refresh`.
    pub(super) async fn current(&self, by: Option<Instant>) -> (State, Option<u64>) {
        let now = self.clock.now();
        {
            let copy = self.lock();
            let fresh = copy
                .read_at
                .is_some_and(|read| now - read < self.settings.refresh);
            if fresh || copy.alone {
                return (copy.state, copy.version);
            }
        }
        let loaded = self.within(by, self.store.load_state(&self.key, now)).await;
        let mut copy = self.lock();
        match loaded {
            Ok(Some(stored)) => {
                copy.state = serde_json::from_str(&stored.value).unwrap_or_default();
                copy.version = Some(stored.version);
            }
            Ok(None) => {
                copy.state = State::default();
                copy.version = None;
            }
            Err(error) => {
                tracing::warn!(
                    destination = self.destination,
                    error,
                    "could not read the circuit breaker's state; going on with the last known"
                );
            }
        }
        copy.read_at = Some(now);
        (copy.state, copy.version)
    }

    /// Write `next` over `version` (see [`Written`]).
    pub(super) async fn write(
        &self,
        version: Option<u64>,
        next: State,
        now: OffsetDateTime,
        by: Option<Instant>,
    ) -> Written {
        let value = serde_json::to_string(&next).unwrap_or_default();
        let write = StateWrite {
            key: &self.key,
            expected: version,
            value: &value,
            now,
            keep: KEEP,
        };
        let written = self.within(by, self.store.save_state(&write)).await;
        let mut copy = self.lock();
        match written {
            Ok(true) => {
                *copy = Known {
                    state: next,
                    version: Some(version.map_or(1, |v| v + 1)),
                    read_at: Some(now),
                    alone: false,
                };
                Written::Shared
            }
            Ok(false) => {
                copy.read_at = None;
                copy.alone = false;
                Written::Conflict
            }
            Err(error) => {
                tracing::warn!(
                    destination = self.destination,
                    error,
                    "could not write the circuit breaker's state; this instance goes on by its own copy"
                );
                copy.state = next;
                copy.read_at = Some(now);
                copy.alone = true;
                Written::Alone
            }
        }
    }
}

//! The state a breaker shares with every instance, and this instance's copy of it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Breaker;
use crate::idempotency::StateWrite;

/// How long a breaker's shared record is kept after its last change.
pub(super) const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);
/// Writes of the shared record before giving up on a concurrent writer (the copy is
/// then read again on the next call).
pub(super) const WRITE_ATTEMPTS: usize = 3;

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
}

pub(super) fn millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn since(at_ms: i64, now: OffsetDateTime) -> Duration {
    Duration::from_millis(millis(now).saturating_sub(at_ms).max(0) as u64)
}

impl Breaker {
    /// The copy of the shared state, read again when older than `refresh`. A store that
    /// does not answer leaves the copy as it was (and is asked again after `refresh`).
    pub(super) async fn current(&self) -> (State, Option<u64>) {
        let now = self.clock.now();
        {
            let copy = self.lock();
            if copy
                .read_at
                .is_some_and(|read| now - read < self.settings.refresh)
            {
                return (copy.state, copy.version);
            }
        }
        let loaded = self.store.load_state(&self.key, now).await;
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
                tracing::warn!(destination = self.destination, error = %crate::error_chain(&error), "could not read the circuit breaker's state; using the last known");
            }
        }
        copy.read_at = Some(now);
        (copy.state, copy.version)
    }

    /// Write `next` over `version`; true when written (the copy follows), false when
    /// another writer came first or the store failed (the copy is then read again).
    pub(super) async fn write(
        &self,
        version: Option<u64>,
        next: State,
        now: OffsetDateTime,
    ) -> bool {
        let value = serde_json::to_string(&next).unwrap_or_default();
        let written = self
            .store
            .save_state(&StateWrite {
                key: &self.key,
                expected: version,
                value: &value,
                now,
                keep: KEEP,
            })
            .await;
        let mut copy = self.lock();
        match written {
            Ok(true) => {
                *copy = Known {
                    state: next,
                    version: Some(version.map_or(1, |v| v + 1)),
                    read_at: Some(now),
                };
                true
            }
            Ok(false) => {
                copy.read_at = None;
                false
            }
            Err(error) => {
                tracing::warn!(destination = self.destination, error = %crate::error_chain(&error), "could not write the circuit breaker's state");
                false
            }
        }
    }
}

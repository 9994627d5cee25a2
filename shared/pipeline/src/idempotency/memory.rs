//! Idempotency records in memory, for tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::idempotency::{
    COMPLETED, Claim, ClaimStore, ClaimToken, IN_PROGRESS, IdempotencyError, SENDING, StateStore,
    StateWrite, Versioned, claim_of, expiry,
};

/// One record: status, expiry (Unix seconds), and the token of an in-progress claim.
type Record = (&'static str, i64, Option<ClaimToken>);

/// Records by key, and state records by key (version, value, expiry).
#[derive(Debug, Default)]
pub struct MemoryIdempotencyStore {
    records: Mutex<HashMap<String, Record>>,
    states: Mutex<HashMap<String, (u64, String, i64)>>,
}

impl MemoryIdempotencyStore {
    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ClaimStore for MemoryIdempotencyStore {
    async fn begin(
        &self,
        key: &str,
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<Claim, IdempotencyError> {
        let mut records = self.records();
        match records.get(key) {
            Some((status, expires, _)) if *expires > now.unix_timestamp() => Ok(claim_of(status)),
            _ => {
                let token = ClaimToken::random();
                records.insert(
                    key.to_owned(),
                    (IN_PROGRESS, expiry(now, hold), Some(token.clone())),
                );
                Ok(Claim::Proceed(token))
            }
        }
    }
    async fn is_completed(&self, key: &str, now: OffsetDateTime) -> Result<bool, IdempotencyError> {
        Ok(self.records().get(key).is_some_and(|(status, expires, _)| {
            *status == COMPLETED && *expires > now.unix_timestamp()
        }))
    }
    async fn complete(
        &self,
        key: &str,
        now: OffsetDateTime,
        keep: Duration,
    ) -> Result<(), IdempotencyError> {
        self.records()
            .insert(key.to_owned(), (COMPLETED, expiry(now, keep), None));
        Ok(())
    }
    async fn sending(
        &self,
        key: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<(), IdempotencyError> {
        let mut records = self.records();
        if let Some(record) = records
            .get_mut(key)
            .filter(|(_, _, held)| held.as_ref() == Some(token))
        {
            record.0 = SENDING;
            record.1 = record.1.max(expiry(now, hold));
        }
        Ok(())
    }
    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), IdempotencyError> {
        let mut records = self.records();
        if records.get(key).is_some_and(|(status, _, held)| {
            (*status == IN_PROGRESS || *status == SENDING) && held.as_ref() == Some(token)
        }) {
            records.remove(key);
        }
        Ok(())
    }
}

#[async_trait]
impl StateStore for MemoryIdempotencyStore {
    async fn load_state(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Versioned>, IdempotencyError> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        Ok(states
            .get(key)
            .filter(|(_, _, expires)| *expires > now.unix_timestamp())
            .map(|(version, value, _)| Versioned {
                version: *version,
                value: value.clone(),
            }))
    }
    async fn save_state(&self, write: &StateWrite<'_>) -> Result<bool, IdempotencyError> {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let record = states.get(write.key);
        let unchanged = match write.expected {
            None => record.is_none_or(|(_, _, expires)| *expires <= write.now.unix_timestamp()),
            Some(expected) => record.is_some_and(|(version, _, _)| *version == expected),
        };
        if !unchanged {
            return Ok(false);
        }
        let version = write.expected.map_or(1, |v| v + 1);
        states.insert(
            write.key.to_owned(),
            (
                version,
                write.value.to_owned(),
                expiry(write.now, write.keep),
            ),
        );
        Ok(true)
    }
}

//! Idempotency records in memory, for tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{COMPLETED, Claim, IN_PROGRESS, IdempotencyError, IdempotencyStore, claim_of, expiry};

/// key -> (status, expires at).
#[derive(Debug, Default)]
pub struct MemoryIdempotencyStore(Mutex<HashMap<String, (&'static str, i64)>>);

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn begin(
        &self,
        key: &str,
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<Claim, IdempotencyError> {
        let mut records = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match records.get(key) {
            Some((status, expires)) if *expires > now.unix_timestamp() => Ok(claim_of(status)),
            _ => {
                records.insert(key.to_owned(), (IN_PROGRESS, expiry(now, hold)));
                Ok(Claim::Proceed)
            }
        }
    }

    async fn complete(
        &self,
        key: &str,
        now: OffsetDateTime,
        keep: Duration,
    ) -> Result<(), IdempotencyError> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), (COMPLETED, expiry(now, keep)));
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), IdempotencyError> {
        let mut records = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if records
            .get(key)
            .is_some_and(|(status, _)| *status == IN_PROGRESS)
        {
            records.remove(key);
        }
        Ok(())
    }
}

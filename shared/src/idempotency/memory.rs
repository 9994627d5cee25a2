//! Idempotency records in memory, for tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    COMPLETED, Claim, ClaimToken, IN_PROGRESS, IdempotencyError, IdempotencyStore, SENDING,
    claim_of, expiry,
};

/// One record: status, expiry (Unix seconds), and the token of an in-progress claim.
type Record = (&'static str, i64, Option<ClaimToken>);

/// Records by key.
#[derive(Debug, Default)]
pub struct MemoryIdempotencyStore(Mutex<HashMap<String, Record>>);

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
            Some((status, expires, _)) if *expires > now.unix_timestamp() => Ok(claim_of(status)),
            _ => {
                let token = ClaimToken::new();
                records.insert(
                    key.to_owned(),
                    (IN_PROGRESS, expiry(now, hold), Some(token.clone())),
                );
                Ok(Claim::Proceed(token))
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
            .insert(key.to_owned(), (COMPLETED, expiry(now, keep), None));
        Ok(())
    }

    async fn sending(&self, key: &str, token: &ClaimToken) -> Result<(), IdempotencyError> {
        let mut records = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(record) = records
            .get_mut(key)
            .filter(|(_, _, held)| held.as_ref() == Some(token))
        {
            record.0 = SENDING;
        }
        Ok(())
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), IdempotencyError> {
        let mut records = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if records.get(key).is_some_and(|(status, _, held)| {
            (*status == IN_PROGRESS || *status == SENDING) && held.as_ref() == Some(token)
        }) {
            records.remove(key);
        }
        Ok(())
    }
}

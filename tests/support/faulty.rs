//! Test doubles shared by the consumer tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use okr_pipeline::idempotency::memory::MemoryIdempotencyStore;
use okr_pipeline::idempotency::{
    Claim, ClaimStore, ClaimToken, IdempotencyError, StateStore, StateWrite, Versioned,
};
use time::OffsetDateTime;

/// A memory store with faults: its first state write loses to another writer (unless
/// `lost` starts true); with `fail_completes` it cannot mark sends done, with
/// `fail_sending` it cannot mark them started; with `stall_states` its state calls take
/// an hour, with `refuse_state_writes` every state write fails; with `fail_begin_of` a
/// claim of that key fails.
#[derive(Default)]
pub struct Faulty {
    pub inner: MemoryIdempotencyStore,
    pub lost: AtomicBool,
    pub fail_completes: bool,
    pub fail_sending: bool,
    pub stall_states: bool,
    pub refuse_state_writes: bool,
    pub fail_begin_of: Option<String>,
}

fn unavailable() -> IdempotencyError {
    IdempotencyError("the table is unavailable".into())
}

#[async_trait::async_trait]
impl ClaimStore for Faulty {
    async fn begin(
        &self,
        key: &str,
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<Claim, IdempotencyError> {
        if self.fail_begin_of.as_deref() == Some(key) {
            return Err(unavailable());
        }
        self.inner.begin(key, now, hold).await
    }
    async fn complete(
        &self,
        key: &str,
        now: OffsetDateTime,
        keep: Duration,
    ) -> Result<(), IdempotencyError> {
        if self.fail_completes {
            return Err(unavailable());
        }
        self.inner.complete(key, now, keep).await
    }
    async fn sending(
        &self,
        key: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<(), IdempotencyError> {
        if self.fail_sending {
            return Err(unavailable());
        }
        self.inner.sending(key, token, now, hold).await
    }
    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), IdempotencyError> {
        self.inner.release(key, token).await
    }
    async fn is_completed(&self, key: &str, now: OffsetDateTime) -> Result<bool, IdempotencyError> {
        self.inner.is_completed(key, now).await
    }
}

#[async_trait::async_trait]
impl StateStore for Faulty {
    async fn load_state(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Versioned>, IdempotencyError> {
        if self.stall_states {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        self.inner.load_state(key, now).await
    }
    async fn save_state(&self, write: &StateWrite<'_>) -> Result<bool, IdempotencyError> {
        if self.stall_states {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if self.refuse_state_writes {
            return Err(unavailable());
        }
        if !self.lost.swap(true, Ordering::SeqCst) {
            return Ok(false);
        }
        self.inner.save_state(write).await
    }
}

//! The one way a consumer makes a side effect (a post, a page) at most once per key:
//! **claim** each key, and, with time enough left, **mark** the claims sending, **run**
//! the side effect, then **complete** them (it happened) or **release** them (it failed,
//! so a retry proceeds). Every step is bounded by the invocation's deadline, and the
//! guard logs each step's failures, so the consumers only say what they send.
//!
//! A claim is taken with a short hold (the invocation's time left), so a crash before
//! the side effect frees it soon; once marked sending it is held at least `min_hold`
//! (the queue's visibility timeout), since nobody can then tell whether the side effect
//! happened. A side effect that happened but cannot be recorded is acknowledged anyway,
//! logged and counted as [`SENDS_NOT_RECORDED`]; its claim keeps protecting it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use crate::idempotency::CONSUMER_AWS_CALL;
use crate::idempotency::{Claim, ClaimToken, IdempotencyError, IdempotencyStore};
use crate::metrics::MetricsSink;
use crate::outbound::{MIN_SEND_TIME, SEND_BUDGET};

/// The metric a consumer counts when a side effect happened but could not be recorded.
pub const SENDS_NOT_RECORDED: &str = "SendsNotRecorded";

/// What a claim found.
#[derive(Debug)]
pub enum Claimed {
    /// Ours: run the side effect with [`Guard::run`] (or give it back).
    Held(Held),
    /// Done within the dedup window: skip it.
    Done,
    /// Another delivery holds it: retry later.
    Busy,
    /// The store did not answer (logged): retry later.
    Failed(IdempotencyError),
}

/// A claim this invocation holds on one key.
#[derive(Debug)]
pub struct Held {
    key: String,
    token: ClaimToken,
    /// The event the side effect is for, in logs.
    event_id: String,
}

/// What [`Guard::run`] did.
#[derive(Debug)]
pub enum Ran<E> {
    /// The side effect happened; the claims are completed (or, failing that, logged and
    /// counted, and acknowledged anyway).
    Done,
    /// Not enough time left to mark, run and record it: nothing ran, the claims were
    /// released. The invocation should stop starting side effects.
    NoTime,
    /// A claim could not be marked sending (logged): nothing ran, the claims were released.
    NotMarked,
    /// The side effect failed: the claims were released, for a retry.
    Failed(E),
}

/// Claims, marks and records side effects in one idempotency store.
#[derive(Clone)]
pub struct Guard {
    store: Arc<dyn IdempotencyStore>,
    keep: Duration,
    min_hold: Duration,
    metrics: Arc<dyn MetricsSink>,
    service: &'static str,
}

impl Guard {
    /// A guard over `store` remembering done keys for `keep` (the dedup window), for the
    /// consumer `service` (its name in metrics).
    pub fn new(
        store: Arc<dyn IdempotencyStore>,
        keep: Duration,
        service: &'static str,
        metrics: Arc<dyn MetricsSink>,
    ) -> Self {
        Guard {
            store,
            keep,
            min_hold: Duration::ZERO,
            metrics,
            service,
        }
    }

    /// Hold every claim whose side effect started at least `hold`: the queue's
    /// visibility timeout, so no other delivery of the message can repeat it while the
    /// queue still hides the message.
    pub fn with_min_hold(mut self, hold: Duration) -> Self {
        self.min_hold = hold;
        self
    }

    /// Count what must be looked at (`SendsNotRecorded`) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<dyn MetricsSink>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The store this guard records in.
    pub fn store(&self) -> &Arc<dyn IdempotencyStore> {
        &self.store
    }

    /// Claim `key` for `event_id`'s side effect, held a little past `deadline`.
    pub async fn claim(&self, key: String, event_id: &str, deadline: Instant) -> Claimed {
        let begun = self
            .store
            .begin(&key, OffsetDateTime::now_utc(), short_hold(deadline))
            .await;
        match begun {
            Ok(Claim::Proceed(token)) => Claimed::Held(Held {
                key,
                token,
                event_id: event_id.to_owned(),
            }),
            Ok(Claim::Completed) => Claimed::Done,
            Ok(Claim::InProgress) => Claimed::Busy,
            Err(error) => {
                tracing::error!(event_id, key, error = %okr_core::error_chain(&error), "the idempotency store failed");
                Claimed::Failed(error)
            }
        }
    }

    /// Claim each `(key, event id)` of a batch in one store call ([`ClaimStore::begin_all`]:
    /// one transaction in SQLite), answering in their order. When the store fails, every
    /// one is [`Claimed::Failed`] and none is held: the whole batch is retried.
    ///
    /// [`ClaimStore::begin_all`]: crate::idempotency::ClaimStore::begin_all
    pub async fn claim_all(
        &self,
        wanted: Vec<(String, String)>,
        deadline: Instant,
    ) -> Vec<Claimed> {
        if wanted.is_empty() {
            return Vec::new();
        }
        let keys: Vec<&str> = wanted.iter().map(|(key, _)| key.as_str()).collect();
        let begun = self
            .store
            .begin_all(&keys, OffsetDateTime::now_utc(), short_hold(deadline))
            .await;
        match begun {
            Ok(claims) if claims.len() == wanted.len() => wanted
                .into_iter()
                .zip(claims)
                .map(|((key, event_id), claim)| match claim {
                    Claim::Proceed(token) => Claimed::Held(Held {
                        key,
                        token,
                        event_id,
                    }),
                    Claim::Completed => Claimed::Done,
                    Claim::InProgress => Claimed::Busy,
                })
                .collect(),
            answer => {
                let error = match answer {
                    Err(error) => okr_core::error_chain(&error),
                    Ok(claims) => {
                        // Hold none of it.
                        crate::idempotency::give_back(self.store.as_ref(), &keys, &claims).await;
                        "the store answered for another number of keys".to_owned()
                    }
                };
                tracing::error!(
                    claims = wanted.len(),
                    error,
                    "the idempotency store failed; the batch is retried"
                );
                wanted
                    .iter()
                    .map(|_| Claimed::Failed(IdempotencyError(error.clone().into())))
                    .collect()
            }
        }
    }

    /// Run `side_effect` once for all of `claims` (one post for a digest of events),
    /// after `pause`: marked sending first, completed after it succeeded, released when
    /// it failed or could not start. Without time for the pause, the marks, the side
    /// effect and the records before `deadline`, nothing runs ([`Ran::NoTime`]).
    pub async fn run<E, Fut>(
        &self,
        claims: &[Held],
        pause: Duration,
        deadline: Instant,
        side_effect: impl FnOnce() -> Fut,
    ) -> Ran<E>
    where
        Fut: Future<Output = Result<(), E>>,
    {
        let needed = pause + 2 * CONSUMER_AWS_CALL + MIN_SEND_TIME + SEND_BUDGET;
        if deadline.saturating_duration_since(Instant::now()) < needed {
            self.release(claims, deadline).await;
            return Ran::NoTime;
        }
        tokio::time::sleep(pause).await;
        if !self.mark_sending(claims, deadline).await {
            self.release(claims, deadline).await;
            return Ran::NotMarked;
        }
        match side_effect().await {
            Ok(()) => {
                for held in claims {
                    self.record_done(held, deadline).await;
                }
                Ran::Done
            }
            Err(error) => {
                self.release(claims, deadline).await;
                Ran::Failed(error)
            }
        }
    }

    /// Drop these claims, so a retry proceeds: as far as the time before `deadline`
    /// allows (else they lapse by themselves).
    pub async fn release(&self, claims: &[Held], deadline: Instant) {
        for held in claims {
            let left = deadline.saturating_duration_since(Instant::now() + SEND_BUDGET);
            let released = self.store.release(&held.key, &held.token);
            if let Some(error) = bounded(left, released).await {
                tracing::error!(event_id = %held.event_id, key = %held.key, error, "could not release the claim; it lapses by itself");
            }
        }
    }

    /// Mark each claim sending, held from now on at least `min_hold`. False, after logging
    /// why, when one cannot be marked within the time left.
    async fn mark_sending(&self, claims: &[Held], deadline: Instant) -> bool {
        for held in claims {
            let left = deadline.saturating_duration_since(Instant::now());
            let hold = (left + SEND_BUDGET).max(self.min_hold);
            let marked =
                self.store
                    .sending(&held.key, &held.token, OffsetDateTime::now_utc(), hold);
            if let Some(error) = bounded(left.saturating_sub(SEND_BUDGET), marked).await {
                tracing::error!(event_id = %held.event_id, key = %held.key, error, "could not mark the side effect as sending; not starting it now");
                return false;
            }
        }
        true
    }

    /// Mark a claim completed for the dedup window: tried twice within the time left. If
    /// the store still fails the side effect must not be repeated, so it is acknowledged
    /// anyway: logged, and counted as [`SENDS_NOT_RECORDED`].
    async fn record_done(&self, held: &Held, deadline: Instant) {
        const MARGIN: Duration = Duration::from_millis(200);
        let mut failure = None;
        for _ in 0..2 {
            let Some(left) = deadline.checked_duration_since(Instant::now() + MARGIN) else {
                break;
            };
            let completed = self
                .store
                .complete(&held.key, OffsetDateTime::now_utc(), self.keep);
            match bounded(left, completed).await {
                None => return,
                Some(error) => failure = Some(error),
            }
        }
        let error = failure.unwrap_or_else(|| "no time left to record it".to_owned());
        let service = self.service;
        tracing::error!(event_id = %held.event_id, key = %held.key, error, service, "sent, but could not record it; its claim keeps protecting it");
        self.metrics.count(service, SENDS_NOT_RECORDED);
    }
}

/// How long a claim taken now holds: past the invocation's deadline by a little, so a
/// crash frees it soon after.
pub fn short_hold(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()) + SEND_BUDGET
}

/// Await a store call for at most `left`: `None` when it succeeded, else why not.
async fn bounded(
    left: Duration,
    call: impl Future<Output = Result<(), IdempotencyError>>,
) -> Option<String> {
    match tokio::time::timeout(left, call).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(okr_core::error_chain(&error)),
        Err(_) => Some("no answer before the deadline".to_owned()),
    }
}

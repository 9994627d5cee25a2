//! A circuit breaker per destination (the Slack notifier's webhook, the alerts channel,
//! PagerDuty, the warehouse's bucket), so an outage waits in the queue instead of being
//! hammered by every record.
//!
//! - **Closed:** calls go out. Each call the destination did not answer (a 408 or 5xx, a
//!   timeout, a network error: [`DeliveryError::is_outage`]) adds to a count of
//!   consecutive failures; any answer (a success, a refusal, a 429) resets it. At
//!   `failures_to_open` it **opens**.
//! - **Open:** calls fail at once without reaching the destination, and their records
//!   wait their turn in the retry schedule (`retry`). Once per `probe_interval` one call
//!   is let through (**half-open**): the first caller to move the next probe time on in
//!   the shared record takes it, so across every instance at most one probe goes out
//!   per interval. An answer closes the breaker; another failure keeps it open.
//!
//! The state is one small record, `breaker:<destination>`, in the idempotency store
//! (DynamoDB on AWS, SQLite in `serve`), written only over the version read, and kept
//! a week after its last change. Each instance keeps a copy and reads the record again
//! only when its copy is older than `refresh`: an open breaker costs no store call per
//! record, and another instance's opening (or closing) is seen within `refresh`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::idempotency::{IdempotencyStore, StateWrite};
use crate::metrics::BreakerRecord;
use crate::outbound::{DeliveryError, Service};

/// The destinations with a breaker, by the names their metrics and records carry: the
/// Slack notifier's webhook, the alerts channel, PagerDuty, the warehouse's bucket.
pub const DESTINATIONS: [&str; 4] = [SLACK, ALERTS_SLACK, PAGERDUTY, WAREHOUSE];
/// The Slack notifier's incoming webhook.
pub const SLACK: &str = "slack";
/// The progress alerts' Slack channel.
pub const ALERTS_SLACK: &str = "alerts-slack";
/// PagerDuty's Events API.
pub const PAGERDUTY: &str = "pagerduty";
/// The warehouse's bucket (or directory).
pub const WAREHOUSE: &str = "warehouse";

/// When a breaker opens and probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive unanswered calls that open it.
    pub failures_to_open: u32,
    /// How often an open breaker lets one call through.
    pub probe_interval: Duration,
    /// How long an instance trusts its copy of the shared state.
    pub refresh: Duration,
}

impl Default for BreakerSettings {
    /// 5 failures, a probe a minute, the shared state read at most every 10 s.
    fn default() -> Self {
        BreakerSettings::scaled(Duration::from_secs(30))
    }
}

impl BreakerSettings {
    /// The default shape for a retry schedule whose first wait is `first_retry` (30 s by
    /// default; `serve`'s tests shorten it): a probe every two first waits, the copy
    /// trusted a third of one.
    pub fn scaled(first_retry: Duration) -> Self {
        BreakerSettings {
            failures_to_open: 5,
            probe_interval: first_retry.saturating_mul(2),
            refresh: first_retry / 3,
        }
    }
}

/// How long a breaker's shared record is kept after its last change.
const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);
/// Writes of the shared record before giving up on a concurrent writer (the copy is
/// then read again on the next call).
const WRITE_ATTEMPTS: usize = 3;

/// Wall-clock time, for the shared record.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Wall-clock time that moves with tokio's clock, so tests that pause and advance tokio
/// time move the breakers too.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    wall: OffsetDateTime,
    start: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock {
            wall: OffsetDateTime::now_utc(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        self.wall + self.start.elapsed()
    }
}

/// How the breakers of a consumer are made: settings and a clock.
#[derive(Clone)]
pub struct BreakerConfig {
    /// When they open and probe.
    pub settings: BreakerSettings,
    /// Their clock.
    pub clock: Arc<dyn Clock>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            settings: BreakerSettings::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl BreakerConfig {
    /// The breaker of `destination`, its state shared through `store`.
    pub fn breaker(
        &self,
        destination: &'static str,
        store: Arc<dyn IdempotencyStore>,
    ) -> Arc<Breaker> {
        Arc::new(Breaker {
            destination,
            key: format!("breaker:{destination}"),
            store,
            settings: self.settings,
            clock: Arc::clone(&self.clock),
            copy: Mutex::new(Copy::default()),
        })
    }
}

/// The shared record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// Consecutive unanswered calls.
    #[serde(default)]
    failures: u32,
    /// When it opened (Unix ms); absent while closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    opened_at: Option<i64>,
    /// While open, from when (Unix ms) the next probe may go out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probe_at: Option<i64>,
}

/// This instance's copy of the shared record.
#[derive(Debug, Default)]
struct Copy {
    state: State,
    version: Option<u64>,
    read_at: Option<OffsetDateTime>,
}

/// Calls to the destination are held back: its breaker is open.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the circuit breaker of {destination} is open: not calling it until a probe gets an answer"
)]
pub struct BreakerOpen {
    /// The destination.
    pub destination: &'static str,
    /// How long it has been open.
    pub open_for: Duration,
}

/// Leave to make a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// The breaker is closed.
    Call,
    /// The breaker is open and this call is its probe.
    Probe,
}

/// A breaker's state as this instance last saw it, for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerStatus {
    /// The destination.
    pub destination: &'static str,
    /// `closed`, `open`, or `half_open` (open, and a probe is due).
    pub state: &'static str,
    /// Consecutive unanswered calls.
    pub failures: u32,
    /// How long it has been open, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_for_seconds: Option<u64>,
}

/// One destination's circuit breaker (see the module).
pub struct Breaker {
    destination: &'static str,
    key: String,
    store: Arc<dyn IdempotencyStore>,
    settings: BreakerSettings,
    clock: Arc<dyn Clock>,
    copy: Mutex<Copy>,
}

fn millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn since(at_ms: i64, now: OffsetDateTime) -> Duration {
    Duration::from_millis(millis(now).saturating_sub(at_ms).max(0) as u64)
}

impl Breaker {
    /// The destination it guards.
    pub fn destination(&self) -> &'static str {
        self.destination
    }

    /// The state as last seen (no store call).
    pub fn status(&self) -> BreakerStatus {
        let state = self.lock().state;
        let now = self.clock.now();
        BreakerStatus {
            destination: self.destination,
            state: match (state.opened_at, state.probe_at) {
                (None, _) => "closed",
                (Some(_), Some(probe)) if millis(now) >= probe => "half_open",
                (Some(_), _) => "open",
            },
            failures: state.failures,
            open_for_seconds: state.opened_at.map(|at| since(at, now).as_secs()),
        }
    }

    /// The metric of one batch that saw this breaker, `deferred` of whose records
    /// failed at once because it was open.
    pub fn metric(&self, deferred: usize) -> BreakerRecord {
        let state = self.lock().state;
        BreakerRecord {
            destination: self.destination,
            open_for: state.opened_at.map(|at| since(at, self.clock.now())),
            deferred,
        }
    }

    /// Whether calls are held back now (open, no probe due), by the copy of the shared
    /// state (read again when stale). Consumers ask before claiming their records, so
    /// an open breaker costs them no store call per record.
    pub async fn holding(&self) -> Option<BreakerOpen> {
        let (state, _) = self.current().await;
        let now = self.clock.now();
        match (state.opened_at, state.probe_at) {
            (Some(opened), Some(probe)) if millis(now) < probe => Some(self.open(opened, now)),
            _ => None,
        }
    }

    /// Leave to call the destination now: always while closed; while open, only for the
    /// one probe of the interval, which this call takes in the shared record.
    pub async fn admit(&self) -> Result<Permit, BreakerOpen> {
        let (state, version) = self.current().await;
        let now = self.clock.now();
        let Some(opened) = state.opened_at else {
            return Ok(Permit::Call);
        };
        if state.probe_at.is_some_and(|probe| millis(now) < probe) {
            return Err(self.open(opened, now));
        }
        let next = State {
            probe_at: Some(millis(now + self.settings.probe_interval)),
            ..state
        };
        if self.write(version, next, now).await {
            tracing::info!(
                destination = self.destination,
                "circuit breaker half-open: probing"
            );
            Ok(Permit::Probe)
        } else {
            // Another instance took this probe (or the store did not answer).
            Err(self.open(opened, now))
        }
    }

    /// What a call admitted with `permit` came to: `answered` unless the destination
    /// was unavailable.
    pub async fn record(&self, permit: Permit, answered: bool) {
        for _ in 0..WRITE_ATTEMPTS {
            let (state, version) = self.current().await;
            let now = self.clock.now();
            let next = match (answered, state.opened_at) {
                (true, _) if state == State::default() => return,
                (true, _) => State::default(),
                // Open already: the probe time has moved on; nothing to count.
                (false, Some(_)) => {
                    if permit == Permit::Probe {
                        tracing::warn!(
                            destination = self.destination,
                            "circuit breaker probe failed: staying open"
                        );
                    }
                    return;
                }
                (false, None) => {
                    let failures = state.failures + 1;
                    let opens = failures >= self.settings.failures_to_open;
                    State {
                        failures,
                        opened_at: opens.then(|| millis(now)),
                        probe_at: opens.then(|| millis(now + self.settings.probe_interval)),
                    }
                }
            };
            if self.write(version, next, now).await {
                match (state.opened_at, next.opened_at) {
                    (Some(opened), None) => {
                        let open_for_s = since(opened, now).as_secs();
                        tracing::info!(
                            destination = self.destination,
                            open_for_s,
                            "circuit breaker closed"
                        );
                    }
                    (None, Some(_)) => tracing::warn!(
                        destination = self.destination,
                        failures = next.failures,
                        "circuit breaker opened"
                    ),
                    _ => {}
                }
                return;
            }
        }
    }

    /// Run `call` (one send to `service`) through the breaker: held back with an
    /// unavailable error while open, and its outcome recorded.
    pub async fn call<F, Fut>(&self, service: Service, call: F) -> Result<(), DeliveryError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), DeliveryError>>,
    {
        let permit = self
            .admit()
            .await
            .map_err(|open| DeliveryError::unavailable(service, open))?;
        let outcome = call().await;
        match &outcome {
            Ok(()) => self.record(permit, true).await,
            Err(error) if error.is_outage() => self.record(permit, false).await,
            Err(error) if error.is_answer() => self.record(permit, true).await,
            // Not sent at all (no time left): says nothing about the destination.
            Err(_) => {}
        }
        outcome
    }

    fn open(&self, opened_at: i64, now: OffsetDateTime) -> BreakerOpen {
        BreakerOpen {
            destination: self.destination,
            open_for: since(opened_at, now),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Copy> {
        self.copy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The copy of the shared state, read again when older than `refresh`. A store that
    /// does not answer leaves the copy as it was (and is asked again after `refresh`).
    async fn current(&self) -> (State, Option<u64>) {
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
    async fn write(&self, version: Option<u64>, next: State, now: OffsetDateTime) -> bool {
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
                *copy = Copy {
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

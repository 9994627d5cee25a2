//! A circuit breaker per destination (the Slack notifier's webhook, the alerts channel,
//! PagerDuty, the warehouse's bucket), so an outage waits in the queue instead of being
//! hammered by every record.
//!
//! - **Closed:** calls go out. Each call the destination did not answer (a 408 or 5xx, a
//!   timeout, a network error, an unreadable credential: [`Outcome::Unanswered`]) adds
//!   to a count of consecutive failures; any answer (a success, a refusal, a 429)
//!   resets it. At `failures_to_open` it **opens**.
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
//! record, and another instance's opening (or closing) is seen within `refresh`. Store
//! calls end by the caller's deadline; a store that does not take a write leaves the
//! instance going by its own copy.

pub use crate::outbound::BreakerOpen;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use tokio::time::Instant;

use crate::idempotency::StateStore;
use crate::idempotency::guard::Ran;
use crate::metrics::BreakerRecord;
use crate::outbound::DeliveryError;

mod settings;
mod shared;

pub use settings::{
    ALERTS_SLACK, BreakerSettings, Clock, DESTINATIONS, EMAIL, PAGERDUTY, SLACK, SystemClock,
    TokioClock, WAREHOUSE,
};
use shared::{Known, State, WRITE_ATTEMPTS, Written, millis, since};

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
    pub fn breaker(&self, destination: &'static str, store: Arc<dyn StateStore>) -> Arc<Breaker> {
        Arc::new(Breaker {
            destination,
            key: format!("breaker:{destination}"),
            store,
            settings: self.settings,
            clock: Arc::clone(&self.clock),
            copy: Mutex::new(Known::default()),
        })
    }
}

/// Leave to make a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// The breaker is closed.
    Call,
    /// The breaker is open and this call is its probe.
    Probe,
}

/// What a call came to, for its breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The destination answered: a success, a refusal, a 429.
    Answered,
    /// It did not: a 408 or 5xx, a timeout, a network error, its credential unreadable.
    Unanswered,
    /// Nothing was sent (no time left): says nothing about the destination.
    NotSent,
}

impl Outcome {
    /// The outcome of a send that failed with `error`.
    pub fn of_failure(error: &DeliveryError) -> Self {
        if error.is_answer() {
            Outcome::Answered
        } else if error.is_outage() {
            Outcome::Unanswered
        } else {
            Outcome::NotSent
        }
    }

    /// The outcome of a send run through the idempotency guard.
    pub fn of_ran(ran: &Ran<DeliveryError>) -> Self {
        match ran {
            Ran::Done => Outcome::Answered,
            Ran::Failed(error) => Outcome::of_failure(error),
            Ran::NoTime | Ran::NotMarked => Outcome::NotSent,
        }
    }
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
    store: Arc<dyn StateStore>,
    settings: BreakerSettings,
    clock: Arc<dyn Clock>,
    copy: Mutex<Known>,
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
    /// state (read again when stale, by `by`). Consumers ask before claiming their
    /// records, so an open breaker costs them no store call per record.
    pub async fn holding(&self, by: Option<Instant>) -> Option<BreakerOpen> {
        let (state, _) = self.current(by).await;
        let now = self.clock.now();
        match (state.opened_at, state.probe_at) {
            (Some(opened), Some(probe)) if millis(now) < probe => Some(self.open(opened, now)),
            _ => None,
        }
    }

    /// Leave to call the destination now: always while closed; while open, only for the
    /// one probe of the interval, which this call takes in the shared record (and alone,
    /// when the store does not answer: then each instance probes once an interval).
    /// Every store call ends by `by`.
    pub async fn admit(&self, by: Option<Instant>) -> Result<Permit, BreakerOpen> {
        let mut held = None;
        // Twice: a conflict means another instance probed or closed it meanwhile.
        for _ in 0..2 {
            let (state, version) = self.current(by).await;
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
            if self.write(version, next, now, by).await != Written::Conflict {
                tracing::info!(
                    destination = self.destination,
                    "circuit breaker half-open: probing"
                );
                return Ok(Permit::Probe);
            }
            held = Some(self.open(opened, now));
        }
        Err(held.unwrap_or(BreakerOpen {
            destination: self.destination,
            open_for: Duration::ZERO,
        }))
    }

    /// One call through the breaker, the sequence every destination follows: held back
    /// while the breaker is open (`Err`), else `call` runs and the [`Outcome`] it reports
    /// is recorded. `call` settles its own records (claims, acknowledgements) before it
    /// returns, so recording never takes their time.
    pub async fn call<T>(
        &self,
        by: Option<Instant>,
        call: impl Future<Output = (T, Outcome)>,
    ) -> Result<T, BreakerOpen> {
        let permit = self.admit(by).await?;
        let (value, outcome) = call.await;
        self.record(permit, outcome, by).await;
        Ok(value)
    }

    /// What a call admitted with `permit` came to. Store calls end by `by`; consumers
    /// record after their own records are written, so this never costs them those.
    pub async fn record(&self, permit: Permit, outcome: Outcome, by: Option<Instant>) {
        let answered = match outcome {
            Outcome::Answered => true,
            Outcome::Unanswered => false,
            Outcome::NotSent => return,
        };
        for _ in 0..WRITE_ATTEMPTS {
            let (state, version) = self.current(by).await;
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
            if self.write(version, next, now, by).await != Written::Conflict {
                self.log_change(state, next, now);
                return;
            }
        }
    }

    fn log_change(&self, before: State, after: State, now: OffsetDateTime) {
        match (before.opened_at, after.opened_at) {
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
                failures = after.failures,
                "circuit breaker opened"
            ),
            _ => {}
        }
    }

    fn open(&self, opened_at: i64, now: OffsetDateTime) -> BreakerOpen {
        BreakerOpen {
            destination: self.destination,
            open_for: since(opened_at, now),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.copy.lock().unwrap_or_else(|e| e.into_inner())
    }
}

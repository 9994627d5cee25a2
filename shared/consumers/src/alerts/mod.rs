//! Progress alerts: behind-pace, low, dropped and at-risk key results, to a Slack alerts
//! channel, PagerDuty and/or email.
//!
//! Each destination keeps, per key result, the state of every rule's alert (open or
//! closed, since when, by which event, when last sent) in a state record of the
//! idempotency store (`alert-state:<destination>:<endpoint>:<entity id>`). An update is
//! judged against it (see `state`):
//! - a rule that holds and has no open alert opens one (trigger); one that holds while its
//!   alert is open is not sent again until `window` has passed since it was last sent
//!   (by the updates' own times);
//! - a rule the update shows clear resolves its open alert, and only an open one: a
//!   completed key result resolves what is open, nothing else;
//! - an update older than the newest one applied for that key result, or one applied
//!   already, changes nothing (SQS does not keep order, and delivers twice).
//!
//! Every send goes through the idempotency guard, keyed per event (`alert:` or
//! `resolve:<destination>:event:<event id>:<rule>`, kept for the dedup window), so a send
//! that happened before a failure or a crash is not repeated when the record is retried
//! or redriven. One update of a key result is judged at a time (a claim on
//! `alert-lock:<endpoint>:<entity id>`); the state is also written only over the version
//! read, should that claim lapse.

mod destinations;
pub mod email;
pub mod messages;
mod send;
mod state;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use time::OffsetDateTime;
use tokio::time::Instant;

use destinations::Destination;
pub use destinations::{Destinations, EmailAlerts};
use okr_core::event::Event;
use okr_core::rules::{Assessment, Rule, Thresholds, assess};
use okr_pipeline::batch::{BatchFailure, RecordError, failure_of, for_each_event};
use okr_pipeline::breaker::{Breaker, BreakerConfig};
use okr_pipeline::idempotency::CONSUMER_AWS_CALL;
use okr_pipeline::idempotency::guard::{Guard, short_hold};
use okr_pipeline::idempotency::{Claim, IdempotencyStore, StateStore, StateWrite};
use okr_pipeline::journal::{Journal, Journey};
use okr_pipeline::metrics::{MetricsSink, NoMetrics};
use okr_pipeline::outbound::SEND_BUDGET;
use okr_pipeline::outbound::pagerduty::Action;
use okr_pipeline::retry::{Failure, Retries};
use state::AlertState;

/// Whether `outcome` failed because a destination refused.
fn refused(outcome: &Result<(), RecordError>) -> bool {
    matches!(outcome, Err(error) if failure_of(error.as_ref()) == Failure::Refused)
}

/// Default `ALERT_WINDOW_HOURS`: an open alert is sent again at most once a day.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long a key result's alert state is kept after its last update.
pub const STATE_KEEP: Duration = Duration::from_secs(400 * 24 * 3600);
/// How long a sent alert is remembered: longer than SQS keeps a message in the
/// dead-letter queue (14 days), so a redrive does not send it again.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(15 * 24 * 3600);
/// Records of a batch are handled one at a time, so updates of one key result cannot
/// race each other's triggers and resolves.
const CONCURRENCY: usize = 1;
/// Reads of a key result's state before giving up on a concurrent writer (the record
/// then fails and SQS retries it).
const STATE_ATTEMPTS: usize = 3;
/// The alerts' name in metrics.
const SERVICE: &str = "progress-alerts";

/// The consumer's settings besides its ports: from the environment in the Lambda
/// (`config::AlertsConfig::settings`), the defaults in `serve`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertSettings {
    /// The rules' thresholds.
    pub thresholds: Thresholds,
    /// How often an alert that stays open is sent again.
    pub window: Duration,
    /// The least time a started send's claim is held: the queue's visibility timeout.
    pub claim_hold: Duration,
}

/// The alerts consumer.
pub struct ProgressAlerts {
    destinations: Vec<Destination>,
    guard: Guard,
    thresholds: Thresholds,
    window: Duration,
    retries: Retries,
    metrics: Arc<dyn MetricsSink>,
    journey: Journey,
}

impl ProgressAlerts {
    /// The consumer over its ports.
    pub fn new(
        destinations: Destinations,
        idempotency: Arc<dyn IdempotencyStore>,
        thresholds: Thresholds,
        window: Duration,
    ) -> Self {
        let state: Arc<dyn StateStore> = idempotency.clone();
        ProgressAlerts {
            destinations: destinations.with_breakers(&BreakerConfig::default(), &state),
            guard: Guard::new(idempotency, DEDUP_WINDOW, SERVICE, Arc::new(NoMetrics)),
            thresholds,
            window,
            retries: Retries::default(),
            metrics: Arc::new(NoMetrics),
            journey: Journey::logged(okr_core::routing::Consumer::Alerts.as_str()),
        }
    }

    /// Record each event's steps in `journal` (by default, as log lines).
    pub fn journaling(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journey = self.journey.writing_to(journal);
        self
    }

    /// Make its destinations' circuit breakers by `config` (their state in the
    /// idempotency store).
    pub fn breaking(mut self, config: &BreakerConfig) -> Self {
        for destination in &mut self.destinations {
            let name = destination.breaker.destination();
            destination.breaker = config.breaker(name, self.guard.store().clone());
        }
        self
    }

    /// Its destinations' circuit breakers.
    pub fn breakers(&self) -> Vec<Arc<Breaker>> {
        self.destinations
            .iter()
            .map(|d| Arc::clone(&d.breaker))
            .collect()
    }

    /// The consumer as the Lambda and `serve` both build it.
    pub fn configured(
        destinations: Destinations,
        idempotency: Arc<dyn IdempotencyStore>,
        settings: &AlertSettings,
        metrics: Arc<dyn MetricsSink>,
    ) -> Self {
        ProgressAlerts::new(
            destinations,
            idempotency,
            settings.thresholds,
            settings.window,
        )
        .guarded(settings.claim_hold, metrics)
    }

    /// Hold a started alert's claim at least `hold` (the queue's visibility timeout, so
    /// no other delivery can repeat it while SQS hides the message), and count what must
    /// be looked at (`SendsNotRecorded`) in `metrics`.
    pub fn guarded(mut self, hold: Duration, metrics: Arc<dyn MetricsSink>) -> Self {
        self.guard = self.guard.with_min_hold(hold).with_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    /// Set when failed records are seen again.
    pub fn retrying(mut self, retries: Retries) -> Self {
        self.retries = retries;
        self
    }

    fn store(&self) -> &dyn IdempotencyStore {
        self.guard.store().as_ref()
    }

    /// Handle one SQS batch; `deadline` is when the invocation must have answered.
    pub async fn handle(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, BatchFailure> {
        let report = for_each_event(batch, CONCURRENCY, &self.journey, |event, context| {
            self.process(event, context.receive_count, deadline)
        })
        .await;
        for destination in &self.destinations {
            let deferred = destination.held_back.swap(0, Ordering::Relaxed);
            let metric = destination.breaker.metric(deferred);
            self.metrics.breaker(SERVICE, &metric);
        }
        report.finish(&self.retries, Some(deadline)).await
    }

    async fn process(
        &self,
        event: Event,
        attempt: u32,
        deadline: Instant,
    ) -> Result<(), RecordError> {
        let skipped = |why: &str| self.journey.record(&event, attempt, "skipped", why.into());
        if !matches!(event.entity.kind.as_str(), "key_result" | "objective") {
            skipped("not an objective or a key result").await;
            return Ok(());
        }
        let Some(entity_id) = event.entity.id.as_deref() else {
            // No id, no dedup key: one key result's alert would suppress or resolve
            // another's. Nothing can be alerted on it; acknowledged on purpose.
            tracing::warn!(event_id = %event.id, outcome = "no_entity_id", "a key result without an id cannot be alerted on");
            skipped("a key result without an id cannot be alerted on").await;
            return Ok(());
        };
        if let Some(held) = self.all_held_back(deadline).await {
            tracing::info!(event_id = %event.id, outcome = "deferred", "every alert destination's circuit breaker is open; not alerting now");
            return Err(Box::new(held));
        }
        // By endpoint: two accounts of one tool keep their key results apart (the four
        // default endpoints are named after their sources, so their keys are as before).
        let entity = format!("{}:{entity_id}", event.endpoint());
        let assessment = assess(&event, &self.thresholds);
        // One update of a key result at a time: two invocations judging it from the same
        // state would both send what opens. The other one's record fails and is retried.
        let scope = event.key_scope();
        let lock = format!("{scope}alert-lock:{entity}");
        let now = OffsetDateTime::now_utc();
        let token = match self.store().begin(&lock, now, short_hold(deadline)).await? {
            Claim::Proceed(token) => token,
            Claim::InProgress | Claim::Completed => {
                return Err(
                    "another update of this key result is being handled; retry later".into(),
                );
            }
        };
        // Every destination is tried, so one that fails (a revoked Slack webhook) does not
        // keep the others from alerting; the first failure fails the record. The sends
        // end early enough to leave time for the state write and the lock's release,
        // each a store call, even when the store hangs.
        let sends_deadline = deadline
            .checked_sub(2 * CONSUMER_AWS_CALL)
            .unwrap_or(deadline);
        let mut outcome = Ok(());
        let mut sent = 0;
        for destination in &self.destinations {
            let applied = if Instant::now() < sends_deadline {
                self.apply(
                    destination,
                    (&event, attempt),
                    &entity,
                    &assessment,
                    sends_deadline,
                )
                .await
            } else {
                Err("no time left in this invocation; retry later".into())
            };
            let applied = applied.map(|n| sent += n);
            // The record's failure is a refusal only if no destination failed otherwise:
            // one that is down must have its retries.
            if outcome.is_ok() || (refused(&outcome) && applied.is_err() && !refused(&applied)) {
                outcome = applied;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now() + SEND_BUDGET);
        let released = tokio::time::timeout(left, self.store().release(&lock, &token)).await;
        if !matches!(released, Ok(Ok(()))) {
            tracing::error!(key = %lock, "could not release the key result; it frees itself when the claim lapses");
        }
        if outcome.is_ok() && sent == 0 {
            let detail = "no alert opens or resolves".into();
            self.journey.record(&event, attempt, "judged", detail).await;
        }
        outcome
    }

    /// Judge `event` against `destination`'s alert state for the key result, send what
    /// opens or resolves (by `deadline`), then store the new state unless another update
    /// changed it meanwhile (then judge again: the sends already made are not repeated).
    /// A state that cannot be stored fails the record: its retry finds each send made
    /// (claimed per event) and stores the state then. Answers how many sends it made,
    /// each a step of the event's journey (`opened` or `resolved`).
    async fn apply(
        &self,
        destination: &Destination,
        (event, attempt): (&Event, u32),
        entity: &str,
        assessment: &Assessment,
        deadline: Instant,
    ) -> Result<usize, RecordError> {
        let mut sent = 0;
        let scope = event.key_scope();
        let key = format!("{scope}alert-state:{}:{entity}", destination.name());
        for _ in 0..STATE_ATTEMPTS {
            let now = OffsetDateTime::now_utc();
            let stored = self.store().load_state(&key, now).await?;
            let state: AlertState = match &stored {
                Some(stored) => serde_json::from_str(&stored.value)?,
                None => AlertState::default(),
            };
            let Some((changes, next)) = state.apply(event, assessment, self.window) else {
                tracing::info!(event_id = %event.id, destination = destination.breaker_name(), outcome = "late", "applied already, or older than the newest update applied; no alert changes");
                return Ok(sent);
            };
            for (rule, action) in changes {
                let sends = destination
                    .sends_for(event, (rule, action), assessment, &self.thresholds)
                    .await?;
                for (to, send) in sends {
                    let prefix = match action {
                        Action::Trigger => "alert",
                        Action::Resolve => "resolve",
                    };
                    let claim = format!("{scope}{prefix}:{to}:event:{}:{rule}", event.id);
                    if self
                        .once(claim, deadline, event, rule, (destination, send))
                        .await?
                    {
                        sent += 1;
                        let (outcome, detail) = step_of(action, rule, &to);
                        self.journey.record(event, attempt, outcome, detail).await;
                    }
                }
            }
            if next == state {
                return Ok(sent);
            }
            let value = serde_json::to_string(&next)?;
            let expected = stored.map(|stored| stored.version);
            if self
                .store()
                .save_state(&StateWrite {
                    key: &key,
                    expected,
                    value: &value,
                    now,
                    keep: STATE_KEEP,
                })
                .await?
            {
                return Ok(sent);
            }
            tracing::info!(event_id = %event.id, destination = destination.breaker_name(), "the key result's alert state changed meanwhile; judging again");
        }
        Err("the key result's alert state kept changing; retry later".into())
    }
}

/// A send's step: `opened` or `resolved`, with the rule and where to (an email's
/// recipient by id, never by address).
fn step_of(action: Action, rule: Rule, to: &str) -> (&'static str, String) {
    let outcome = match action {
        Action::Trigger => "opened",
        Action::Resolve => "resolved",
    };
    let detail = match to.strip_prefix("email:") {
        Some(id) => format!("{rule}: emailed {id}"),
        None => format!("{rule}: to {to}"),
    };
    (outcome, detail)
}

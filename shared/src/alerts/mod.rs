//! Progress alerts: behind-pace, low, dropped and at-risk key results, to a Slack alerts
//! channel and/or PagerDuty.
//!
//! Each destination keeps, per key result, the state of every rule's alert (open or
//! closed, since when, by which event, when last sent) in a state record of the
//! idempotency store (`alert-state:<destination>:<source>:<entity id>`). An update is
//! judged against it:
//! - a rule that holds and has no open alert opens one (trigger); one that holds while its
//!   alert is open is not sent again until `window` has passed since it was last sent
//!   (by the updates' own times);
//! - a rule the update shows clear resolves its open alert, and only an open one: a
//!   completed key result resolves what is open, nothing else;
//! - an update older than the newest one applied for that key result, or one applied
//!   already, changes nothing (SQS does not keep order, and delivers twice).
//!
//! Every send is also claimed per event (`alert:` or `resolve:<destination>:event:<event
//! id>:<rule>`, kept for the dedup window), so a send that happened before a failure or a
//! crash is not repeated when the record is retried or redriven. One update of a key
//! result is judged at a time (a claim on `alert-lock:<source>:<entity id>`); the state
//! is also written only over the version read, should that claim lapse.

pub mod pagerduty;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::batch::{RecordError, UnreportableFailure, for_each_event};
use crate::config::CONSUMER_AWS_CALL;
use crate::event::Event;
use crate::idempotency::{Claim, IdempotencyStore, record_done};
use crate::metrics::{MetricsSink, NoMetrics};
use crate::slack::message::{MAX_TEXT, SlackMessage, escape, percent, truncate};
use crate::slack::webhook::{PostError, SlackPoster};
use crate::slack::{DEFAULT_DEDUP_WINDOW, POST_BUDGET, deliver};
use pagerduty::{Action, Alert, PagerDuty};
use rules::{Assessment, Rule, Thresholds, assess, period_of};

/// One send to one destination.
enum Send {
    Slack(Arc<dyn SlackPoster>, SlackMessage),
    PagerDuty(Arc<dyn PagerDuty>, Alert),
}

impl Send {
    async fn send(&self) -> Result<(), PostError> {
        match self {
            Send::Slack(poster, message) => poster.post(message).await,
            Send::PagerDuty(client, alert) => client.send(alert).await,
        }
    }
}

/// Default `ALERT_WINDOW_HOURS`: an open alert is sent again at most once a day.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long a key result's alert state is kept after its last update.
pub const STATE_KEEP: Duration = Duration::from_secs(400 * 24 * 3600);
/// Records of a batch are handled one at a time, so updates of one key result cannot
/// race each other's triggers and resolves.
const CONCURRENCY: usize = 1;
/// Reads of a key result's state before giving up on a concurrent writer (the record
/// then fails and SQS retries it).
const STATE_ATTEMPTS: usize = 3;

/// Where alerts go; either may be absent, not both.
pub struct Destinations {
    /// The Slack alerts channel.
    pub slack: Option<Arc<dyn SlackPoster>>,
    /// PagerDuty Events API v2.
    pub pagerduty: Option<Arc<dyn PagerDuty>>,
}

/// One destination, with its own alert state.
enum Destination {
    Slack(Arc<dyn SlackPoster>),
    PagerDuty(Arc<dyn PagerDuty>),
}

impl Destination {
    fn name(&self) -> &'static str {
        match self {
            Destination::Slack(_) => "slack",
            Destination::PagerDuty(_) => "pagerduty",
        }
    }
}

/// A key result's alerts at one destination, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct AlertState {
    /// The `occurred_at` of the newest update applied.
    #[serde(with = "time::serde::rfc3339::option")]
    as_of: Option<OffsetDateTime>,
    /// The events applied that happened at `as_of` (updates may share a second): one
    /// of them delivered again is not applied twice.
    #[serde(default)]
    as_of_events: Vec<String>,
    /// Every rule that has had an alert, open or closed.
    rules: BTreeMap<Rule, RuleState>,
}

/// One rule's alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RuleState {
    open: bool,
    /// When it opened or closed (the update's `occurred_at`).
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
    /// The event that opened or closed it.
    event_id: String,
    /// When the trigger was last sent (the update's `occurred_at`).
    #[serde(with = "time::serde::rfc3339")]
    alerted_at: OffsetDateTime,
}

impl AlertState {
    /// What `event`, judged as `assessment`, opens and resolves, and the state after
    /// it; `None` when it was applied already, or an update newer than it was.
    fn apply(
        &self,
        event: &Event,
        assessment: &Assessment,
        window: Duration,
    ) -> Option<(Vec<(Rule, Action)>, AlertState)> {
        let at = event.occurred_at;
        let as_of_events = match self.as_of {
            Some(as_of) if at < as_of => return None,
            Some(as_of) if at == as_of => {
                if self.as_of_events.contains(&event.id) {
                    return None;
                }
                let mut events = self.as_of_events.clone();
                events.push(event.id.clone());
                events
            }
            _ => vec![event.id.clone()],
        };
        let mut next = AlertState {
            as_of: Some(at),
            as_of_events,
            rules: self.rules.clone(),
        };
        let mut changes = Vec::new();
        for rule in Rule::ALL {
            let open = self.rules.get(&rule).filter(|state| state.open);
            if assessment.holding.contains(&rule) {
                let opened = match open {
                    None => RuleState {
                        open: true,
                        since: at,
                        event_id: event.id.clone(),
                        alerted_at: at,
                    },
                    Some(state) if at - state.alerted_at >= window => RuleState {
                        alerted_at: at,
                        ..state.clone()
                    },
                    Some(_) => continue,
                };
                changes.push((rule, Action::Trigger));
                next.rules.insert(rule, opened);
            } else if assessment.clear.contains(&rule) {
                let Some(state) = open else { continue };
                changes.push((rule, Action::Resolve));
                next.rules.insert(
                    rule,
                    RuleState {
                        open: false,
                        since: at,
                        event_id: event.id.clone(),
                        alerted_at: state.alerted_at,
                    },
                );
            }
        }
        Some((changes, next))
    }
}

/// The alerts consumer.
pub struct ProgressAlerts {
    destinations: Vec<Destination>,
    idempotency: Arc<dyn IdempotencyStore>,
    thresholds: Thresholds,
    window: Duration,
    min_hold: Duration,
    metrics: Arc<dyn MetricsSink>,
}

/// The alerts' name in metrics.
const SERVICE: &str = "progress-alerts";

impl ProgressAlerts {
    /// The consumer over its ports.
    pub fn new(
        destinations: Destinations,
        idempotency: Arc<dyn IdempotencyStore>,
        thresholds: Thresholds,
        window: Duration,
    ) -> Self {
        let Destinations { slack, pagerduty } = destinations;
        ProgressAlerts {
            destinations: slack
                .map(Destination::Slack)
                .into_iter()
                .chain(pagerduty.map(Destination::PagerDuty))
                .collect(),
            idempotency,
            thresholds,
            window,
            min_hold: Duration::ZERO,
            metrics: Arc::new(NoMetrics),
        }
    }

    /// Hold every send's claim at least `hold`: the queue's visibility timeout.
    pub fn with_claim_hold(mut self, hold: Duration) -> Self {
        self.min_hold = hold;
        self
    }

    /// Count what must be looked at (`SendsNotRecorded`) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<dyn MetricsSink>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Handle one SQS batch; `deadline` is when the invocation must have answered.
    pub async fn handle(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, UnreportableFailure> {
        for_each_event(batch, CONCURRENCY, |event, _| self.process(event, deadline)).await
    }

    async fn process(&self, event: Event, deadline: Instant) -> Result<(), RecordError> {
        if !matches!(event.entity.kind.as_str(), "key_result" | "objective") {
            return Ok(());
        }
        let Some(entity_id) = event.entity.id.as_deref() else {
            // No id, no dedup key: one key result's alert would suppress or resolve
            // another's. Nothing can be alerted on it; acknowledged on purpose.
            tracing::warn!(event_id = %event.id, outcome = "no_entity_id", "a key result without an id cannot be alerted on");
            return Ok(());
        };
        let entity = format!("{}:{entity_id}", event.source);
        let assessment = assess(&event, &self.thresholds);
        // One update of a key result at a time: two invocations judging it from the same
        // state would both send what opens. The other one's record fails and is retried.
        let lock = format!("alert-lock:{entity}");
        let token = match self
            .idempotency
            .begin(&lock, OffsetDateTime::now_utc(), hold(deadline))
            .await?
        {
            Claim::Proceed(token) => token,
            Claim::InProgress | Claim::Completed => {
                return Err(
                    "another update of this key result is being handled; retry later".into(),
                );
            }
        };
        // Every destination is tried, so one that fails (a revoked Slack webhook) does not
        // keep the others from alerting; the first failure fails the record.
        // The sends end early enough to leave time for the state write and the lock's
        // release, each a store call, even when the store hangs.
        let sends_deadline = deadline
            .checked_sub(2 * CONSUMER_AWS_CALL)
            .unwrap_or(deadline);
        let mut outcome = Ok(());
        for destination in &self.destinations {
            let applied = if Instant::now() < sends_deadline {
                self.apply(destination, &event, &entity, &assessment, sends_deadline)
                    .await
            } else {
                Err("no time left in this invocation; retry later".into())
            };
            if outcome.is_ok() {
                outcome = applied;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now() + POST_BUDGET);
        let released = tokio::time::timeout(left, self.idempotency.release(&lock, &token)).await;
        if !matches!(released, Ok(Ok(()))) {
            tracing::error!(key = %lock, "could not release the key result; it frees itself when the claim lapses");
        }
        outcome
    }

    /// Judge `event` against `destination`'s alert state for the key result, send what
    /// opens or resolves (by `deadline`), then store the new state unless another update
    /// changed it meanwhile (then judge again: the sends already made are not repeated).
    /// A state that cannot be stored fails the record: its retry finds each send made
    /// (claimed per event) and stores the state then.
    async fn apply(
        &self,
        destination: &Destination,
        event: &Event,
        entity: &str,
        assessment: &Assessment,
        deadline: Instant,
    ) -> Result<(), RecordError> {
        let key = format!("alert-state:{}:{entity}", destination.name());
        for _ in 0..STATE_ATTEMPTS {
            let now = OffsetDateTime::now_utc();
            let stored = self.idempotency.load_state(&key, now).await?;
            let state: AlertState = match &stored {
                Some(stored) => serde_json::from_str(&stored.value)?,
                None => AlertState::default(),
            };
            let Some((changes, next)) = state.apply(event, assessment, self.window) else {
                tracing::info!(event_id = %event.id, destination = destination.name(), outcome = "late", "applied already, or older than the newest update applied; no alert changes");
                return Ok(());
            };
            for (rule, action) in changes {
                if let Some(send) = self.send_for(destination, event, rule, action, assessment) {
                    let prefix = match action {
                        Action::Trigger => "alert",
                        Action::Resolve => "resolve",
                    };
                    let claim =
                        format!("{prefix}:{}:event:{}:{rule}", destination.name(), event.id);
                    self.once(&claim, deadline, event, rule, send).await?;
                }
            }
            if next == state {
                return Ok(());
            }
            let value = serde_json::to_string(&next)?;
            let expected = stored.map(|stored| stored.version);
            if self
                .idempotency
                .save_state(&key, expected, &value, now, STATE_KEEP)
                .await?
            {
                return Ok(());
            }
            tracing::info!(event_id = %event.id, destination = destination.name(), "the key result's alert state changed meanwhile; judging again");
        }
        Err("the key result's alert state kept changing; retry later".into())
    }

    /// What to send to `destination` for `rule`: Slack hears of triggers and of
    /// recoveries (a completion it hears from the notifier, and a drop is over when
    /// progress rises again, which is not news); PagerDuty of every trigger and resolve.
    fn send_for(
        &self,
        destination: &Destination,
        event: &Event,
        rule: Rule,
        action: Action,
        assessment: &Assessment,
    ) -> Option<Send> {
        match destination {
            Destination::Slack(slack) => {
                let message = match action {
                    Action::Trigger => trigger_message(event, rule, &self.thresholds),
                    Action::Resolve if !assessment.completed && rule != Rule::Dropped => {
                        recovered_message(event, rule)
                    }
                    Action::Resolve => return None,
                };
                Some(Send::Slack(Arc::clone(slack), message))
            }
            Destination::PagerDuty(pagerduty) => Some(Send::PagerDuty(
                Arc::clone(pagerduty),
                self.alert(event, rule, action, assessment),
            )),
        }
    }

    /// Send once per `key`: claim it, send, and remember it for the dedup window. A key
    /// already completed means the send was done: nothing to do. A key another delivery
    /// holds, or a failed send, fails the record, so SQS retries it (a refusal eventually
    /// reaches the dead-letter queue).
    async fn once(
        &self,
        key: &str,
        deadline: Instant,
        event: &Event,
        rule: Rule,
        send: Send,
    ) -> Result<(), RecordError> {
        let token = match self
            .idempotency
            .begin(key, OffsetDateTime::now_utc(), hold(deadline))
            .await?
        {
            Claim::Proceed(token) => token,
            Claim::Completed => {
                tracing::info!(event_id = %event.id, rule = %rule, key = %key, outcome = "suppressed", "already sent");
                return Ok(());
            }
            Claim::InProgress => {
                return Err("another delivery holds this alert; retry later".into());
            }
        };
        // From here the alert may go out: held at least as long as the queue hides the
        // message, so no other delivery of the event can send it meanwhile.
        let sending = self.idempotency.sending(
            key,
            &token,
            OffsetDateTime::now_utc(),
            hold(deadline).max(self.min_hold),
        );
        if let Err(error) = sending.await {
            // Sent now, it would not stay protected after this invocation: retry later.
            tracing::error!(key = %key, error = %crate::error_chain(&error), "could not mark the alert as sending; not sending it now");
            if let Err(error) = self.idempotency.release(key, &token).await {
                tracing::error!(key = %key, error = %crate::error_chain(&error), "could not release the claim; it lapses by itself");
            }
            return Err(Box::new(error));
        }
        let outcome = deliver(deadline, || send.send()).await;
        match &outcome {
            Ok(()) => {
                tracing::info!(event_id = %event.id, rule = %rule, outcome = "sent", "alert sent");
                // Sent: acknowledged whether or not the record is written.
                record_done(
                    self.idempotency.as_ref(),
                    key,
                    DEFAULT_DEDUP_WINDOW,
                    deadline,
                    self.metrics.as_ref(),
                    SERVICE,
                    &event.id,
                )
                .await;
            }
            Err(error) => {
                if matches!(error, PostError::Permanent { .. }) {
                    tracing::error!(event_id = %event.id, rule = %rule, error = %error, outcome = "refused", "alert refused; it will reach the dead-letter queue");
                }
                if let Err(error) = self.idempotency.release(key, &token).await {
                    tracing::error!(key = %key, error = %crate::error_chain(&error), "could not release the claim");
                }
            }
        }
        outcome.map_err(|error| Box::new(error) as RecordError)
    }

    fn alert(&self, event: &Event, rule: Rule, action: Action, assessment: &Assessment) -> Alert {
        let entity_id = event.entity.id.as_deref().unwrap_or("unknown");
        let progress = event.progress.as_ref().and_then(|p| p.current);
        let summary = match action {
            Action::Trigger => trigger_message(event, rule, &self.thresholds).text,
            Action::Resolve if assessment.completed => {
                format!("{} {} completed", label(event), title(event))
            }
            Action::Resolve => recovered_message(event, rule).text,
        };
        Alert {
            action,
            dedup_key: format!("{}:{entity_id}:{rule}", event.source),
            summary: truncate(&summary, 1024),
            source: format!("okr-webhooks/{}", event.source),
            details: json!({
                "rule": rule.as_str(),
                "entity_kind": event.entity.kind,
                "entity_id": entity_id,
                "entity_name": event.entity.name,
                "progress": progress,
                "status": event.status.as_ref().and_then(|s| s.current.clone()),
                "event_id": event.id,
                "occurred_at": event.occurred_at.unix_timestamp(),
            }),
        }
    }
}

/// How long a claim taken now holds: past the invocation's deadline by a little, so a
/// crash frees it soon after.
fn hold(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()) + POST_BUDGET
}

fn label(event: &Event) -> &'static str {
    if event.entity.kind == "key_result" {
        "KR"
    } else {
        "Objective"
    }
}

fn title(event: &Event) -> String {
    event
        .entity
        .name
        .clone()
        .unwrap_or_else(|| "(untitled)".to_owned())
}

/// The alert for `rule` holding on `event`.
pub fn trigger_message(event: &Event, rule: Rule, thresholds: &Thresholds) -> SlackMessage {
    let (label, title) = (label(event), title(event));
    let progress = event.progress.as_ref();
    let current = progress
        .and_then(|p| p.current)
        .map(percent)
        .unwrap_or_else(|| "?".into());
    let text = match rule {
        Rule::BehindPace => {
            let elapsed = period_of(event)
                .map(|p| percent(p.elapsed(event.occurred_at)))
                .unwrap_or_else(|| "?".into());
            format!(
                "{label} {title} is behind pace: {current}% done with {elapsed}% of the period gone"
            )
        }
        Rule::Low => format!(
            "{label} {title} is low: {current}% (below {}%)",
            percent(thresholds.low_threshold)
        ),
        Rule::Dropped => {
            let fall = progress
                .and_then(|p| Some(p.previous? - p.current?))
                .map(percent)
                .unwrap_or_else(|| "?".into());
            format!("{label} {title} dropped {fall} points to {current}%")
        }
        Rule::AtRisk => {
            let status = event
                .status
                .as_ref()
                .and_then(|s| s.current.clone())
                .unwrap_or_default();
            format!(
                "{label} {title} is {}",
                status.to_lowercase().replace('_', " ")
            )
        }
    };
    slack_message(":warning:", text, event)
}

/// The message for `rule` no longer holding.
pub fn recovered_message(event: &Event, rule: Rule) -> SlackMessage {
    let current = event
        .progress
        .as_ref()
        .and_then(|p| p.current)
        .map(|c| format!(" ({}%)", percent(c)))
        .unwrap_or_default();
    let state = match rule {
        Rule::BehindPace => "is back on pace",
        Rule::Low => "is no longer low",
        Rule::Dropped => "recovered from its drop",
        Rule::AtRisk => "is no longer at risk",
    };
    slack_message(
        ":white_check_mark:",
        format!("{} {} {state}{current}", label(event), title(event)),
        event,
    )
}

fn slack_message(emoji: &str, text: String, event: &Event) -> SlackMessage {
    let context = format!("{} · {}", event.source, event.occurred_at.date());
    SlackMessage {
        text: truncate(&escape(&text), MAX_TEXT),
        blocks: vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("{emoji} {}", escape(&text)), MAX_TEXT)}}),
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(&context)}]}),
        ],
    }
}

//! Progress alerts: behind-pace, low, dropped and at-risk key results, to a Slack alerts
//! channel and/or PagerDuty, once per key result and rule within a window.
//!
//! Every send is guarded by its own idempotency record, so a redelivered event, a
//! retried batch or a burst of updates never alerts twice:
//! - a trigger by `alert:<destination>:<source>:<entity id>:<rule>`, kept for the window
//!   (default 24 hours): one alert per key result and rule in that time; and by
//!   `alert:<destination>:event:<event id>:<rule>`, kept for the dedup window, so a
//!   redriven event never alerts again;
//! - a resolve by `resolve:<destination>:event:<event id>:<rule>`; a resolve also marks
//!   the trigger's window key done, so an older update arriving late cannot reopen it.

pub mod pagerduty;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::json;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::batch::{RecordError, UnreportableFailure, for_each_event};
use crate::event::Event;
use crate::idempotency::{Claim, IdempotencyStore};
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

/// Default `ALERT_WINDOW_HOURS`: one alert per key result and rule per day.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Records of a batch are handled one at a time, so updates of one key result cannot
/// race each other's triggers and resolves.
const CONCURRENCY: usize = 1;

/// Where alerts go; either may be absent, not both.
pub struct Destinations {
    /// The Slack alerts channel.
    pub slack: Option<Arc<dyn SlackPoster>>,
    /// PagerDuty Events API v2.
    pub pagerduty: Option<Arc<dyn PagerDuty>>,
}

/// The alerts consumer.
pub struct ProgressAlerts {
    destinations: Destinations,
    idempotency: Arc<dyn IdempotencyStore>,
    thresholds: Thresholds,
    window: Duration,
}

impl ProgressAlerts {
    /// The consumer over its ports.
    pub fn new(
        destinations: Destinations,
        idempotency: Arc<dyn IdempotencyStore>,
        thresholds: Thresholds,
        window: Duration,
    ) -> Self {
        ProgressAlerts {
            destinations,
            idempotency,
            thresholds,
            window,
        }
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
        let Some(entity_id) = event.entity.id.clone() else {
            // No id, no dedup key: one key result's alert would suppress or resolve
            // another's. Nothing can be alerted on it; acknowledged on purpose.
            tracing::warn!(event_id = %event.id, outcome = "no_entity_id", "a key result without an id cannot be alerted on");
            return Ok(());
        };
        let entity = format!("{}:{entity_id}", event.source);
        let assessment = assess(&event, &self.thresholds);
        for rule in &assessment.holding {
            self.trigger(&event, &entity, *rule, &assessment, deadline)
                .await?;
        }
        let resolved = if assessment.completed {
            Rule::ALL.to_vec()
        } else {
            assessment.recovered.clone()
        };
        for rule in resolved {
            self.resolve(&event, &entity, rule, &assessment, deadline)
                .await?;
        }
        Ok(())
    }

    async fn trigger(
        &self,
        event: &Event,
        entity: &str,
        rule: Rule,
        assessment: &Assessment,
        deadline: Instant,
    ) -> Result<(), RecordError> {
        for (destination, send) in self.sends(event, rule, Action::Trigger, assessment) {
            // Once per event (a redrive days later must not alert again) and once per
            // key result and rule within the window.
            let keys = [
                (
                    format!("alert:{destination}:event:{}:{rule}", event.id),
                    DEFAULT_DEDUP_WINDOW,
                ),
                (format!("alert:{destination}:{entity}:{rule}"), self.window),
            ];
            self.once(&keys, deadline, event, rule, send).await?;
        }
        Ok(())
    }

    async fn resolve(
        &self,
        event: &Event,
        entity: &str,
        rule: Rule,
        assessment: &Assessment,
        deadline: Instant,
    ) -> Result<(), RecordError> {
        for (destination, send) in self.sends(event, rule, Action::Resolve, assessment) {
            let keys = [(
                format!("resolve:{destination}:event:{}:{rule}", event.id),
                DEFAULT_DEDUP_WINDOW,
            )];
            self.once(&keys, deadline, event, rule, send).await?;
            // An older trigger arriving after this resolve (out of order, or redelivered)
            // must not reopen the alert within the window.
            let window_key = format!("alert:{destination}:{entity}:{rule}");
            if let Err(error) = self
                .idempotency
                .complete(&window_key, OffsetDateTime::now_utc(), self.window)
                .await
            {
                tracing::error!(key = %window_key, error = %crate::error_chain(&error), "could not record the resolve");
            }
        }
        Ok(())
    }

    /// What to send where for `rule`: Slack hears of triggers and recoveries (a
    /// completion it hears from the notifier, and a drop "recovers" on any rise, which is
    /// not news); PagerDuty gets every trigger and resolve.
    fn sends(
        &self,
        event: &Event,
        rule: Rule,
        action: Action,
        assessment: &Assessment,
    ) -> Vec<(&'static str, Send)> {
        let mut sends = Vec::new();
        if let Some(slack) = &self.destinations.slack {
            let message = match action {
                Action::Trigger => Some(trigger_message(event, rule, &self.thresholds)),
                Action::Resolve if !assessment.completed && rule != Rule::Dropped => {
                    Some(recovered_message(event, rule))
                }
                Action::Resolve => None,
            };
            if let Some(message) = message {
                sends.push(("slack", Send::Slack(Arc::clone(slack), message)));
            }
        }
        if let Some(pagerduty) = &self.destinations.pagerduty {
            sends.push((
                "pagerduty",
                Send::PagerDuty(
                    Arc::clone(pagerduty),
                    self.alert(event, rule, action, assessment),
                ),
            ));
        }
        sends
    }

    /// Send once: claim every key (all must be free), send, and remember each for its
    /// time. A key already completed means the send was done (or suppressed): the others
    /// are marked done too. A key another delivery holds, or a failed send, releases the
    /// claims and fails the record, so SQS retries it (a refusal eventually reaches the
    /// dead-letter queue).
    async fn once(
        &self,
        keys: &[(String, Duration)],
        deadline: Instant,
        event: &Event,
        rule: Rule,
        send: Send,
    ) -> Result<(), RecordError> {
        let now = OffsetDateTime::now_utc();
        let hold = deadline.saturating_duration_since(Instant::now()) + POST_BUDGET;
        let mut claimed = Vec::new();
        let mut outcome: Option<Result<(), RecordError>> = None;
        for (key, keep) in keys {
            match self.idempotency.begin(key, now, hold).await {
                Ok(Claim::Proceed(token)) => claimed.push((key, *keep, token)),
                Ok(Claim::Completed) => {
                    tracing::info!(event_id = %event.id, rule = %rule, key = %key, outcome = "suppressed", "already sent");
                    outcome = Some(Ok(()));
                    break;
                }
                Ok(Claim::InProgress) => {
                    outcome = Some(Err("another delivery holds this alert; retry later".into()));
                    break;
                }
                Err(error) => {
                    outcome = Some(Err(Box::new(error)));
                    break;
                }
            }
        }
        let outcome = match outcome {
            Some(decided) => decided,
            None => {
                for (key, _, token) in &claimed {
                    if let Err(error) = self.idempotency.sending(key, token).await {
                        tracing::error!(key = %key, error = %crate::error_chain(&error), "could not mark the alert as sending");
                    }
                }
                match deliver(deadline, || send.send()).await {
                    Ok(()) => {
                        tracing::info!(event_id = %event.id, rule = %rule, outcome = "sent", "alert sent");
                        Ok(())
                    }
                    Err(error) => {
                        if matches!(error, PostError::Permanent { .. }) {
                            tracing::error!(event_id = %event.id, rule = %rule, error = %error, outcome = "refused", "alert refused; it will reach the dead-letter queue");
                        }
                        Err(Box::new(error) as RecordError)
                    }
                }
            }
        };
        for (key, keep, token) in claimed {
            let settled = match &outcome {
                Ok(()) => {
                    self.idempotency
                        .complete(key, OffsetDateTime::now_utc(), keep)
                        .await
                }
                Err(_) => self.idempotency.release(key, &token).await,
            };
            if let Err(error) = settled {
                tracing::error!(key = %key, error = %crate::error_chain(&error), "could not settle the claim");
            }
        }
        outcome
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

//! Progress alerts: behind-pace, low, dropped and at-risk key results, to a Slack alerts
//! channel and/or PagerDuty, once per key result and rule within a window.
//!
//! Every send is guarded by its own idempotency record, so a redelivered event, a
//! retried batch or a burst of updates never alerts twice:
//! - a trigger by `alert:<destination>:<source>:<entity id>:<rule>`, kept for the window
//!   (default 24 hours): one alert per key result and rule in that time;
//! - a resolve by `resolve:<destination>:<event id>:<rule>`, kept for the dedup window.

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

/// Default `ALERT_WINDOW_HOURS`: one alert per key result and rule per day.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Records handled at once in a batch.
const CONCURRENCY: usize = 4;

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
        let assessment = assess(&event, &self.thresholds);
        for rule in &assessment.holding {
            self.trigger(&event, *rule, &assessment, deadline).await?;
        }
        let resolved = if assessment.completed {
            Rule::ALL.to_vec()
        } else {
            assessment.recovered.clone()
        };
        for rule in resolved {
            self.resolve(&event, rule, &assessment, deadline).await?;
        }
        Ok(())
    }

    async fn trigger(
        &self,
        event: &Event,
        rule: Rule,
        assessment: &Assessment,
        deadline: Instant,
    ) -> Result<(), RecordError> {
        let entity = format!(
            "{}:{}:{rule}",
            event.source,
            event.entity.id.as_deref().unwrap_or("unknown")
        );
        if let Some(slack) = &self.destinations.slack {
            let message = trigger_message(event, rule, &self.thresholds);
            let key = format!("alert:slack:{entity}");
            self.once(&key, self.window, deadline, event, rule, || {
                slack.post(&message)
            })
            .await?;
        }
        if let Some(pagerduty) = &self.destinations.pagerduty {
            let alert = self.alert(event, rule, Action::Trigger, assessment);
            let key = format!("alert:pagerduty:{entity}");
            self.once(&key, self.window, deadline, event, rule, || {
                pagerduty.send(&alert)
            })
            .await?;
        }
        Ok(())
    }

    async fn resolve(
        &self,
        event: &Event,
        rule: Rule,
        assessment: &Assessment,
        deadline: Instant,
    ) -> Result<(), RecordError> {
        // Slack hears of recoveries; completions it hears from the notifier, and a drop
        // "recovers" on any rise, which is not news.
        if let Some(slack) = &self.destinations.slack
            && !assessment.completed
            && rule != Rule::Dropped
        {
            let message = recovered_message(event, rule);
            let key = format!("resolve:slack:{}:{rule}", event.id);
            self.once(&key, DEFAULT_DEDUP_WINDOW, deadline, event, rule, || {
                slack.post(&message)
            })
            .await?;
        }
        if let Some(pagerduty) = &self.destinations.pagerduty {
            let alert = self.alert(event, rule, Action::Resolve, assessment);
            let key = format!("resolve:pagerduty:{}:{rule}", event.id);
            self.once(&key, DEFAULT_DEDUP_WINDOW, deadline, event, rule, || {
                pagerduty.send(&alert)
            })
            .await?;
        }
        Ok(())
    }

    /// Send once: claim `key`, send, and remember it for `keep`; on failure release the
    /// claim and fail the record, so SQS retries it (or, for a refusal, eventually moves
    /// it to the dead-letter queue).
    async fn once<F, Fut>(
        &self,
        key: &str,
        keep: Duration,
        deadline: Instant,
        event: &Event,
        rule: Rule,
        send: F,
    ) -> Result<(), RecordError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), PostError>>,
    {
        let now = OffsetDateTime::now_utc();
        let hold = deadline.saturating_duration_since(Instant::now()) + POST_BUDGET;
        let token = match self.idempotency.begin(key, now, hold).await? {
            Claim::Proceed(token) => token,
            Claim::Completed | Claim::InProgress => {
                tracing::info!(event_id = %event.id, rule = %rule, key, outcome = "suppressed", "already sent");
                return Ok(());
            }
        };
        match deliver(deadline, send).await {
            Ok(()) => {
                tracing::info!(event_id = %event.id, rule = %rule, key, outcome = "sent", "alert sent");
                if let Err(error) = self
                    .idempotency
                    .complete(key, OffsetDateTime::now_utc(), keep)
                    .await
                {
                    tracing::error!(key, error = %crate::error_chain(&error), "could not record the alert");
                }
                Ok(())
            }
            Err(error) => {
                if matches!(error, PostError::Permanent { .. }) {
                    tracing::error!(event_id = %event.id, rule = %rule, error = %error, outcome = "refused", "alert refused; it will reach the dead-letter queue");
                }
                if let Err(release) = self.idempotency.release(key, &token).await {
                    tracing::error!(key, error = %crate::error_chain(&release), "could not release the claim");
                }
                Err(Box::new(error))
            }
        }
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

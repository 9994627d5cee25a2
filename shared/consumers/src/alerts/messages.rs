//! What the alerts say: the Slack alerts channel's messages and PagerDuty's events,
//! built from the event only.

use serde_json::json;

use okr_core::event::{Event, percent};
use okr_core::rules::{Assessment, Rule, Thresholds};
use okr_pipeline::outbound::pagerduty::{Action, Alert};
use okr_pipeline::outbound::slack::{MAX_TEXT, SlackMessage, escape, truncate};

/// The PagerDuty event for `rule` on `event`: a trigger, or a resolve (of a completion or
/// a recovery). One `dedup_key` per key result and rule.
pub fn pagerduty_alert(
    event: &Event,
    rule: Rule,
    action: Action,
    assessment: &Assessment,
    thresholds: &Thresholds,
) -> Alert {
    let entity_id = event.entity.id.as_deref().unwrap_or("unknown");
    let progress = event.progress.as_ref().and_then(|p| p.current);
    let summary = match action {
        Action::Trigger => trigger_message(event, rule, thresholds).text,
        Action::Resolve if assessment.completed => resolve_text(event, rule, assessment),
        Action::Resolve => recovered_message(event, rule).text,
    };
    Alert {
        action,
        // A forced replay pages under its own keys: it never resolves or re-opens a
        // live incident.
        dedup_key: format!(
            "{}{}:{entity_id}:{rule}",
            event.key_scope(),
            event.endpoint()
        ),
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
    slack_message(":warning:", trigger_text(event, rule, thresholds), event)
}

/// What the alert for `rule` holding on `event` says, as plain text.
pub fn trigger_text(event: &Event, rule: Rule, thresholds: &Thresholds) -> String {
    let (label, title) = (label(event), title(event));
    let progress = event.progress.as_ref();
    let current = progress
        .and_then(|p| p.current)
        .map(percent)
        .unwrap_or_else(|| "?".into());
    match rule {
        Rule::BehindPace => {
            let elapsed = event
                .period
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
    }
}

/// The message for `rule` no longer holding.
pub fn recovered_message(event: &Event, rule: Rule) -> SlackMessage {
    slack_message(":white_check_mark:", recovered_text(event, rule), event)
}

/// What the message for `rule` no longer holding says, as plain text.
pub fn recovered_text(event: &Event, rule: Rule) -> String {
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
    format!("{} {} {state}{current}", label(event), title(event))
}

/// What a resolve says: the key result completed, or `rule` no longer holds.
pub fn resolve_text(event: &Event, rule: Rule, assessment: &Assessment) -> String {
    if assessment.completed {
        format!("{} {} completed", label(event), title(event))
    } else {
        recovered_text(event, rule)
    }
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

//! Alert emails: the same trigger and resolve the Slack alerts channel and PagerDuty
//! get, as a short multipart email to each alert recipient whose scope covers the key
//! result.

use std::fmt::Write as _;

use crate::alerts::messages::{resolve_text, trigger_text};
use okr_core::event::{Event, percent};
use okr_core::rules::{Assessment, Rule, Thresholds};
use okr_pipeline::outbound::mail::Email;
use okr_pipeline::outbound::mail::escape;
use okr_pipeline::outbound::pagerduty::Action;

/// The email to `to` for `action` on `rule` about `event`.
pub fn alert_email(
    to: &str,
    event: &Event,
    (rule, action): (Rule, Action),
    assessment: &Assessment,
    thresholds: &Thresholds,
) -> Email {
    let (tag, headline, colour) = match action {
        Action::Trigger => (
            "OKR alert",
            trigger_text(event, rule, thresholds),
            "#cf222e",
        ),
        Action::Resolve => (
            "OKR alert resolved",
            resolve_text(event, rule, assessment),
            "#1a7f37",
        ),
    };
    let subject: String = format!("[{tag}] {headline}").chars().take(200).collect();
    let progress = event
        .progress
        .as_ref()
        .and_then(|p| p.current)
        .map(|p| format!("{}%", percent(p)));
    let mut facts = vec![
        ("Rule", rule.as_str().replace('_', " ")),
        ("Source", event.source.to_string()),
        ("When", event.occurred_at.date().to_string()),
    ];
    if let Some(progress) = progress {
        facts.insert(1, ("Progress", progress));
    }
    let mut text = format!("{headline}\n\n");
    for (name, value) in &facts {
        let _ = writeln!(text, "{name}: {value}");
    }
    text.push_str("\nSent by okr-webhooks.\n");
    let mut rows = String::new();
    for (name, value) in &facts {
        let _ = write!(
            rows,
            r#"<tr><td style="padding:2px 12px 2px 0;color:#57606a">{}</td><td style="padding:2px 0">{}</td></tr>"#,
            escape(name),
            escape(value)
        );
    }
    let html = format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head><body style="margin:0;padding:24px 12px;background:#f6f8fa"><table role="presentation" width="600" cellpadding="0" cellspacing="0" style="max-width:600px;width:100%;background:#ffffff;border:1px solid #d0d7de;border-left:4px solid {colour};font-family:Helvetica,Arial,sans-serif;color:#1f2328"><tr><td style="padding:16px 20px"><p style="margin:0 0 4px;font-size:12px;color:{colour};text-transform:uppercase">{tag}</p><h1 style="margin:0 0 12px;font-size:18px">{headline}</h1><table role="presentation" cellpadding="0" cellspacing="0" style="font-size:14px">{rows}</table><p style="margin:16px 0 0;font-size:12px;color:#57606a">Sent by okr-webhooks.</p></td></tr></table></body></html>"#,
        title = escape(&subject),
        tag = escape(tag),
        headline = escape(&headline),
    );
    Email {
        to: to.to_owned(),
        subject,
        text,
        html,
    }
}

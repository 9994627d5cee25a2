//! What a stalled alert says: one line (the Slack DM to the team lead; the alerts
//! channel and the PagerDuty summary, naming the team lead) and a short email to the team
//! lead. Names only: never an email address in a message.

use serde_json::json;

use super::{Action, Notice, Route, pager_action};
use okr_core::event::percent;
use okr_pipeline::outbound::mail::{Email, escape as html};
use okr_pipeline::outbound::pagerduty::Alert;
use okr_pipeline::outbound::slack::{SlackMessage, escape, truncate};

/// The longest line sent.
const MAX_TEXT: usize = 2900;

fn title(notice: &Notice) -> String {
    notice
        .record
        .title
        .clone()
        .unwrap_or_else(|| notice.record.id.clone())
}

fn progress(notice: &Notice) -> String {
    notice
        .record
        .progress
        .map(|p| format!("{}%", percent(p)))
        .unwrap_or_else(|| "no progress reported".into())
}

fn owner(notice: &Notice) -> String {
    notice
        .owner
        .clone()
        .unwrap_or_else(|| "owner unknown".into())
}

/// The alert as one line, as the team lead reads it (the email, the direct message).
pub fn text(notice: &Notice) -> String {
    line(notice, true)
}

/// The alert as one line for everyone else (the alerts channel, PagerDuty): it names
/// the team lead.
pub fn shared_text(notice: &Notice) -> String {
    line(notice, false)
}

fn line(notice: &Notice, to_lead: bool) -> String {
    let (title, at) = (title(notice), notice.record.updated_at.date());
    let whose = match &notice.route {
        Route::TeamLead { .. } if to_lead => format!("{} (your team)", owner(notice)),
        // A lead the HR record names by address only has no name to show.
        Route::TeamLead { name, .. } if name.contains('@') => {
            format!("{}, team lead unnamed in the directory", owner(notice))
        }
        Route::TeamLead { name, .. } => format!("{}, team lead {name}", owner(notice)),
        Route::OwnerUnknown => match &notice.owner {
            Some(owner) => format!("{owner}, owner unknown: not in the directory"),
            None => "owner unknown".to_owned(),
        },
        Route::OwnerInactive => format!("{}, owner no longer active", owner(notice)),
        Route::NoTeamLead => format!("{}, who has no team lead in the directory", owner(notice)),
    };
    match notice.action {
        Action::Open | Action::Remind => format!(
            "KR {title} has had no update for {} days (last on {at}, at {}): {whose}",
            notice.days,
            progress(notice)
        ),
        Action::Resolve if notice.record.completed => {
            format!("KR {title} is completed: no longer stalled ({whose})")
        }
        Action::Resolve if notice.record.deleted => {
            format!("KR {title} was deleted: no longer stalled ({whose})")
        }
        Action::Resolve if notice.period_over => {
            format!("KR {title}'s period is over: no longer stalled ({whose})")
        }
        Action::Resolve => format!(
            "KR {title} is moving again: updated on {at}, at {} ({whose})",
            progress(notice)
        ),
    }
}

/// The alerts channel's message.
pub fn channel_message(notice: &Notice) -> SlackMessage {
    let emoji = match notice.action {
        Action::Resolve => ":white_check_mark:",
        _ => ":hourglass:",
    };
    let line = escape(&shared_text(notice));
    let context = format!("{} · stalled", notice.record.source);
    SlackMessage {
        text: truncate(&line, MAX_TEXT),
        blocks: vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("{emoji} {line}"), MAX_TEXT)}}),
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(&context)}]}),
        ],
    }
}

/// The email to the team lead at `to`.
pub fn email(notice: &Notice, to: &str) -> Email {
    let lead = match &notice.route {
        Route::TeamLead { name, .. } => name.clone(),
        _ => String::new(),
    };
    let (tag, colour) = match notice.action {
        Action::Open => ("Stalled key result", "#b54708"),
        Action::Remind => ("Still stalled", "#b54708"),
        Action::Resolve => ("No longer stalled", "#1a7f37"),
    };
    let title = title(notice);
    let subject: String = format!("[{tag}] {title}").chars().take(200).collect();
    let line = text(notice);
    let next = match notice.action {
        Action::Resolve => "Nothing to do: this is the last message about it.",
        _ => "A quick word with them, or an update in the OKR tool, clears it.",
    };
    Email {
        to: to.to_owned(),
        subject,
        text: format!("Hi {lead},\n\n{line}.\n\n{next}\n\n-- okr-webhooks\n"),
        html: format!(
            "<div style=\"font-family:system-ui,sans-serif;font-size:14px;color:#1d2330\">\
             <p>Hi {},</p><p style=\"border-left:4px solid {colour};padding-left:8px\">{}.</p>\
             <p>{}</p><p style=\"color:#667085\">okr-webhooks</p></div>",
            html(&lead),
            html(&line),
            html(next)
        ),
    }
}

/// The PagerDuty event: trigger on open and reminder, resolve on resolve, one incident
/// per key result (`stalled:<endpoint>#<id>`).
pub fn pagerduty_alert(notice: &Notice) -> Alert {
    Alert {
        action: pager_action(notice.action),
        dedup_key: format!("stalled:{}", notice.record.key()),
        summary: truncate(&shared_text(notice), 1000),
        source: format!("okr-webhooks/{}", notice.record.source),
        details: json!({
            "entity": notice.record.id,
            "rule": "stalled",
            "progress": notice.record.progress,
            "days_without_update": notice.days,
        }),
    }
}

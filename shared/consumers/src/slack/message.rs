//! Slack messages for events: Block Kit with a fallback `text`, built only from named,
//! non-personal fields (titles, names, department, position, rank and award names),
//! never from the rest of the payload, and within Block Kit's limits.

use serde_json::json;
use time::macros::format_description;

use okr_core::event::{Event, RankChange, percent};
use okr_core::source::Source;
use okr_pipeline::outbound::slack::{
    MAX_BLOCKS, MAX_HEADER, MAX_TEXT, SlackMessage, escape, truncate,
};

/// The one-line summary of an event, plain text.
struct Line {
    emoji: &'static str,
    text: String,
}

/// The message for one event.
pub fn event_message(event: &Event) -> SlackMessage {
    event_message_in(event, None)
}

/// The message for one event whose owner (or, without one, whoever made the change) is
/// in `department`: named after them (`by Sam Okafor (Sales)`), or in the context line.
pub fn event_message_in(event: &Event, department: Option<&str>) -> SlackMessage {
    let mut line = line(event);
    if let Some(department) = department {
        let by = actor_name(event).map(|actor| format!(" by {actor}"));
        match by.filter(|by| line.text.ends_with(by.as_str())) {
            Some(_) => line.text.push_str(&format!(" ({department})")),
            None => line.text.push_str(&format!(" · {department}")),
        }
    }
    let mut context = vec![source_name(event.source).to_owned()];
    if let Some(actor) = actor_name(event).filter(|_| !line.text.contains(" by ")) {
        context.push(format!("by {actor}"));
    }
    if let Ok(when) = event.occurred_at.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    )) {
        context.push(when);
    }
    let mut section = format!("{} {}", line.emoji, escape(&line.text));
    if let Some(current) = event.progress.as_ref().and_then(|p| p.current)
        && event.event_type.starts_with("key_result.")
    {
        section.push_str(&format!(
            "\n`{}` {}%",
            progress_bar(current),
            percent(current)
        ));
    }
    SlackMessage {
        text: truncate(&escape(&line.text), MAX_TEXT),
        blocks: vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&section, MAX_TEXT)}}),
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(&escape(&context.join(" · ")), MAX_TEXT)}]}),
        ],
    }
}

/// One message listing several events: a header, then sections of up to 3,000
/// characters each, within 50 blocks; what does not fit is counted in a last line.
pub fn digest_message(events: &[Event]) -> SlackMessage {
    let lines: Vec<Line> = events.iter().map(line).collect();
    let header = truncate(&format!("{} OKR and HR updates", events.len()), MAX_HEADER);
    let mut blocks =
        vec![json!({"type": "header", "text": {"type": "plain_text", "text": header}})];
    let mut section = String::new();
    let mut shown = 0;
    // Header + sections within the loop + the last section + the "more" context.
    let section_limit = MAX_BLOCKS - 2;
    for line in &lines {
        let item = truncate(
            &format!("• {} {}", line.emoji, escape(&line.text)),
            MAX_TEXT,
        );
        if !section.is_empty() && section.len() + 1 + item.len() > MAX_TEXT {
            if blocks.len() >= section_limit {
                break;
            }
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": section}}));
            section = String::new();
        }
        if !section.is_empty() {
            section.push('\n');
        }
        section.push_str(&item);
        shown += 1;
    }
    if !section.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": section}}));
    }
    if shown < lines.len() {
        let more = format!("…and {} more", lines.len() - shown);
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]}));
    }
    let preview: Vec<&str> = lines.iter().take(3).map(|l| l.text.as_str()).collect();
    let mut text = format!("{} updates: {}", lines.len(), preview.join("; "));
    if lines.len() > preview.len() {
        text.push_str(&format!("; and {} more", lines.len() - preview.len()));
    }
    SlackMessage {
        text: truncate(&escape(&text), MAX_TEXT),
        blocks,
    }
}

fn line(event: &Event) -> Line {
    let (emoji, text) = match event.event_type.as_str() {
        "objective.completed" | "key_result.completed" | "key_result.progress_updated" => {
            okr_line(event)
        }
        "employee.created" | "employee.terminated" => employee_line(event),
        "award_record.created" | "rank_record.created" | "qualification_record.created" => {
            record_line(event)
        }
        other => {
            let (kind, action) = other.split_once('.').unwrap_or((other, "received"));
            let kind = kind.replace('_', " ");
            let action = action.replace('_', " ");
            let text = match &event.entity.name {
                Some(name) => format!("{}: {kind} {name} {action}", source_name(event.source)),
                None => format!("{}: {kind} {action}", source_name(event.source)),
            };
            (":bell:", text)
        }
    };
    Line { emoji, text }
}

/// `name`, or `fallback` when there is none.
fn or(name: &Option<String>, fallback: &str) -> String {
    name.clone().unwrap_or_else(|| fallback.to_owned())
}

/// An objective or key result completed, or a key result's progress.
fn okr_line(event: &Event) -> (&'static str, String) {
    let title = or(&event.entity.name, "(untitled)");
    match event.event_type.as_str() {
        "objective.completed" => (":white_check_mark:", format!("Objective {title} completed")),
        "key_result.completed" => (":white_check_mark:", format!("KR {title} completed")),
        _ => {
            let progress = event.progress.as_ref();
            let current = progress.and_then(|p| p.current);
            let previous = progress.and_then(|p| p.previous);
            let mut text = match current {
                Some(current) => format!("KR {title} updated to {}%", percent(current)),
                None => format!("KR {title} updated"),
            };
            if let Some(previous) = previous {
                text.push_str(&format!(" (from {}%)", percent(previous)));
            }
            if let Some(actor) = actor_name(event) {
                text.push_str(&format!(" by {actor}"));
            }
            let falling = matches!((previous, current), (Some(p), Some(c)) if c < p);
            let emoji = match falling {
                true => ":chart_with_downwards_trend:",
                false => ":chart_with_upwards_trend:",
            };
            (emoji, text)
        }
    }
}

/// Someone joined or left.
fn employee_line(event: &Event) -> (&'static str, String) {
    let person = or(&event.entity.name, "Someone");
    let related = &event.related;
    if event.event_type == "employee.terminated" {
        return match &related.department {
            Some(department) => (":door:", format!("{person} left {department}")),
            None => (":door:", format!("{person} left")),
        };
    }
    let text = match (&related.department, &related.position) {
        (Some(department), Some(position)) => {
            format!("{person} joined {department} as {position}")
        }
        (Some(department), None) => format!("{person} joined {department}"),
        (None, Some(position)) => format!("{person} joined as {position}"),
        (None, None) => format!("{person} joined"),
    };
    (":wave:", text)
}

/// A member's award, rank or qualification record.
fn record_line(event: &Event) -> (&'static str, String) {
    let related = &event.related;
    let member = or(&related.member, "Someone");
    match event.event_type.as_str() {
        "award_record.created" => match &related.award {
            Some(award) => (":medal:", format!("{member} received the {award} award")),
            None => (":medal:", format!("{member} received an award")),
        },
        "rank_record.created" => {
            let demoted = related.rank_change == Some(RankChange::Demotion);
            let verb = if demoted { "demoted" } else { "promoted" };
            match &related.rank {
                Some(rank) => (":military_medal:", format!("{member} was {verb} to {rank}")),
                None => (":military_medal:", format!("{member} was {verb}")),
            }
        }
        _ => match &related.qualification {
            Some(q) => (
                ":mortar_board:",
                format!("{member} earned the {q} qualification"),
            ),
            None => (":mortar_board:", format!("{member} earned a qualification")),
        },
    }
}

fn actor_name(event: &Event) -> Option<&str> {
    event.actor.as_ref().and_then(|a| a.name.as_deref())
}

/// The tool's name as people know it; a declared scheme's endpoint name as it is.
fn source_name(source: Source) -> &'static str {
    okr_core::providers::provider(source).map_or(source.as_str(), |p| p.display_name())
}

/// Ten cells, filled in proportion, clamped to 0..100 %.
fn progress_bar(value: f64) -> String {
    let filled = (value.clamp(0.0, 100.0) / 10.0).round() as usize;
    format!("{}{}", "█".repeat(filled), "░".repeat(10 - filled))
}

//! A summary as an email: the subject, a plain-text part and an HTML part (inline
//! styles, no remote images, tables for layout, as mail clients expect).

use okr_pipeline::outbound::mail::escape;
use std::fmt::Write as _;

use crate::email::summary::{Item, Section, Summary};
use okr_core::event::percent;
use okr_core::rules::Rule;
use okr_pipeline::outbound::mail::Email;

/// The subject: "OKR summary, week 48: 3 completed, 2 behind pace", then the other counts
/// that are not zero.
pub fn subject(summary: &Summary) -> String {
    let c = summary.counts;
    let mut parts = vec![
        format!("{} completed", c.completed),
        format!("{} behind pace", c.behind_pace),
    ];
    for (n, what) in [
        (c.low, "low"),
        (c.dropped, "dropped"),
        (c.at_risk, "at risk"),
        (c.stalled, "stalled"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    format!(
        "OKR summary, week {}: {}",
        summary.window.date.iso_week(),
        parts.join(", ")
    )
}

/// The summary for `to`.
pub fn email(summary: &Summary, to: &str) -> Email {
    Email {
        to: to.to_owned(),
        subject: subject(summary),
        text: text(summary),
        html: html(summary),
    }
}

fn kind_label(item: &Item) -> &'static str {
    if item.kind == "objective" {
        "Objective"
    } else {
        "KR"
    }
}

/// How an item is named under its objective's heading: "KR <title>", or "The objective"
/// for the objective itself.
fn name(item: &Item, objective: &str) -> String {
    if item.kind == "objective" && item.title == objective {
        "The objective".to_owned()
    } else {
        format!("{} {}", kind_label(item), item.title)
    }
}

fn rule_label(rule: Rule) -> &'static str {
    match rule {
        Rule::BehindPace => "behind pace",
        Rule::Low => "low",
        Rule::Dropped => "dropped",
        Rule::AtRisk => "at risk",
    }
}

fn pct(value: Option<f64>) -> String {
    value.map_or("?".to_owned(), |v| format!("{}%", percent(v)))
}

/// What an item's line says after its title.
fn detail(section: Section, item: &Item) -> String {
    match section {
        Section::Attention => {
            let rules: Vec<_> = item.rules.iter().map(|r| rule_label(*r)).collect();
            let was = match (item.from, item.progress) {
                (Some(from), Some(now)) if (from - now).abs() >= 0.5 => {
                    format!(" (was {}%)", percent(from))
                }
                _ => String::new(),
            };
            format!("{}{was} - {}", pct(item.progress), rules.join(", "))
        }
        Section::Stalled => format!(
            "{} - no update for {} days",
            pct(item.progress),
            item.idle_days
        ),
        Section::Moved => {
            let change = item.progress.unwrap_or(0.0) - item.from.unwrap_or(0.0);
            let sign = if change < 0.0 { "-" } else { "+" };
            format!(
                "{} -> {} ({sign}{})",
                item.from
                    .map_or("new".to_owned(), |v| format!("{}%", percent(v))),
                pct(item.progress),
                percent(change.abs())
            )
        }
        Section::Completed => "completed".to_owned(),
    }
}

fn heading(summary: &Summary) -> String {
    format!("OKR summary, week {}", summary.window.date.iso_week())
}

/// `at` to the minute, in UTC: `2026-11-30 08:00 UTC`.
pub fn moment(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!("{} {:02}:{:02} UTC", at.date(), at.hour(), at.minute())
}

/// The line under the heading: since when, and how much is in scope.
fn overview(summary: &Summary) -> String {
    let since = match summary.window.previous {
        Some(previous) => format!("Since {}", moment(previous)),
        None => "The first summary: everything is news".to_owned(),
    };
    format!("{since}. {}", in_scope(summary.in_scope))
}

fn in_scope(count: usize) -> String {
    match count {
        0 => "Nothing in your scope yet.".to_owned(),
        1 => "1 objective or key result in your scope.".to_owned(),
        n => format!("{n} objectives and key results in your scope."),
    }
}

/// The plain-text part.
pub fn text(summary: &Summary) -> String {
    let mut out = format!("{}\n{}\n", heading(summary), overview(summary));
    for part in &summary.parts {
        let _ = write!(out, "\n{}\n", part.section.title().to_uppercase());
        if part.groups.is_empty() {
            out.push_str("  None.\n");
        }
        for group in &part.groups {
            let _ = writeln!(out, "  {}", group.objective);
            for item in &group.items {
                let _ = writeln!(
                    out,
                    "    - {}: {}",
                    name(item, &group.objective),
                    detail(part.section, item)
                );
            }
        }
        if part.more > 0 {
            let _ = writeln!(out, "  ... and {} more", part.more);
        }
    }
    out.push_str("\nSent by okr-webhooks.\n");
    out
}

const FONT: &str = "font-family:Helvetica,Arial,sans-serif;color:#1f2328";

/// The colour of a section's accent.
fn accent(section: Section) -> &'static str {
    match section {
        Section::Attention => "#cf222e",
        Section::Stalled => "#9a6700",
        Section::Moved => "#0969da",
        Section::Completed => "#1a7f37",
    }
}

/// A progress bar as a table (mail clients ignore most CSS, not table widths).
fn bar(progress: Option<f64>, colour: &str) -> String {
    let Some(p) = progress else {
        return String::new();
    };
    let filled = p.clamp(0.0, 100.0).round() as u32;
    let cells = if filled == 0 {
        r#"<td style="background:#eaeef2;height:6px;font-size:0;line-height:0">&nbsp;</td>"#
            .to_owned()
    } else if filled >= 100 {
        format!(
            r#"<td style="background:{colour};height:6px;font-size:0;line-height:0">&nbsp;</td>"#
        )
    } else {
        format!(
            r#"<td width="{filled}%" style="background:{colour};height:6px;font-size:0;line-height:0">&nbsp;</td><td style="background:#eaeef2;height:6px;font-size:0;line-height:0">&nbsp;</td>"#
        )
    };
    format!(
        r#"<table role="presentation" width="160" cellpadding="0" cellspacing="0" style="border-collapse:collapse;margin-top:4px"><tr>{cells}</tr></table>"#
    )
}

/// The HTML part.
pub fn html(summary: &Summary) -> String {
    let mut out = format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>{title}</title></head><body style="margin:0;padding:0;background:#f6f8fa"><table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f6f8fa"><tr><td align="center" style="padding:24px 12px"><table role="presentation" width="600" cellpadding="0" cellspacing="0" style="max-width:600px;width:100%;background:#ffffff;border:1px solid #d0d7de;border-radius:6px"><tr><td style="padding:20px 24px;{FONT}"><h1 style="margin:0 0 4px;font-size:20px">{heading}</h1><p style="margin:0;font-size:14px;color:#57606a">{scope}</p></td></tr>"#,
        title = escape(&subject(summary)),
        heading = escape(&heading(summary)),
        scope = escape(&overview(summary)),
    );
    for part in &summary.parts {
        let colour = accent(part.section);
        let _ = write!(
            out,
            r#"<tr><td style="padding:12px 24px 4px;{FONT}"><h2 style="margin:0;font-size:16px;border-left:4px solid {colour};padding-left:8px">{}</h2></td></tr>"#,
            escape(part.section.title())
        );
        if part.groups.is_empty() {
            let _ = write!(
                out,
                r#"<tr><td style="padding:4px 24px 8px 36px;{FONT};font-size:14px;color:#57606a">None.</td></tr>"#
            );
        }
        for group in &part.groups {
            let _ = write!(
                out,
                r#"<tr><td style="padding:6px 24px 2px 36px;{FONT};font-size:14px;font-weight:bold">{}</td></tr>"#,
                escape(&group.objective)
            );
            for item in &group.items {
                let _ = write!(
                    out,
                    r#"<tr><td style="padding:4px 24px 6px 48px;{FONT};font-size:14px">{} <span style="color:{colour}">{}</span>{}</td></tr>"#,
                    escape(&name(item, &group.objective)),
                    escape(&detail(part.section, item)),
                    bar(item.progress, colour),
                );
            }
        }
        if part.more > 0 {
            let _ = write!(
                out,
                r#"<tr><td style="padding:4px 24px 8px 36px;{FONT};font-size:14px;color:#57606a">... and {} more</td></tr>"#,
                part.more
            );
        }
    }
    out.push_str(&format!(
        r#"<tr><td style="padding:16px 24px 20px;{FONT};font-size:12px;color:#57606a">Sent by okr-webhooks.</td></tr></table></td></tr></table></body></html>"#
    ));
    out
}

//! Which archived events a replay takes: a time window (on `received_at`, or on
//! `occurred_at`), sources, types (globs), ids and an entity.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, Time};
use wildmatch::WildMatch;

/// Which of an event's times the window is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum By {
    /// When ingest accepted it (the warehouse's partitions).
    #[default]
    ReceivedAt,
    /// When the provider says it happened.
    OccurredAt,
}

/// What a replay takes from the archive. Empty lists take everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// From this time on (inclusive).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// Before this time (exclusive).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    /// Which time the window is on.
    #[serde(default)]
    pub by: By,
    /// Sources, by name.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Endpoints, by name (an event from before endpoints is its source's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Event types, as globs (`key_result.*`).
    #[serde(default)]
    pub types: Vec<String>,
    /// Event ids.
    #[serde(default)]
    pub ids: Vec<String>,
    /// An entity's id (an objective or key result).
    #[serde(default)]
    pub entity: Option<String>,
}

/// `--since` / `--until`: an RFC 3339 time, or a date (`2026-11-20`): a date starts at
/// its midnight (UTC) for `since`, and is taken whole for `until` (up to the next
/// midnight).
pub fn parse_time(text: &str, end_of_day: bool) -> Result<OffsetDateTime, String> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let date = Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a date (YYYY-MM-DD)"))?;
    let midnight = date.with_time(Time::MIDNIGHT).assume_utc();
    Ok(if end_of_day {
        midnight + Duration::days(1)
    } else {
        midnight
    })
}

/// The fields of an archived line a selection reads, parsed without the rest.
#[derive(Debug, Deserialize)]
pub struct Head<'a> {
    /// `id`.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// `source`.
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    /// `endpoint`, absent in events from before endpoints.
    #[serde(borrow, default)]
    pub endpoint: Option<Cow<'a, str>>,
    /// `type`.
    #[serde(rename = "type", borrow)]
    pub event_type: Cow<'a, str>,
    /// `received_at`.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// `occurred_at`.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// `entity.id`.
    #[serde(borrow, default)]
    pub entity: HeadEntity<'a>,
    /// `progress`, when not null (not read).
    #[serde(default)]
    pub progress: Option<serde::de::IgnoredAny>,
    /// `status`, when not null (not read).
    #[serde(default)]
    pub status: Option<serde::de::IgnoredAny>,
    /// `person`, when not null (not read).
    #[serde(default)]
    pub person: Option<serde::de::IgnoredAny>,
}

impl Head<'_> {
    /// Whether the event carries progress or status (the alerts take it).
    pub fn tracked(&self) -> bool {
        self.progress.is_some() || self.status.is_some()
    }

    /// Whether the progress queue takes it (an objective or key result with an id, or
    /// an HR record: [`okr_core::routing::is_projected`]).
    pub fn projected(&self) -> bool {
        okr_core::routing::is_projected(
            self.entity.kind.as_deref().unwrap_or(""),
            self.entity.id.is_some(),
            self.person.is_some(),
        )
    }
}

/// The entity's id of a [`Head`].
#[derive(Debug, Default, Deserialize)]
pub struct HeadEntity<'a> {
    /// `entity.id`.
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    /// `entity.kind`.
    #[serde(borrow, default)]
    pub kind: Option<Cow<'a, str>>,
}

/// A [`Selection`] ready to match lines.
pub struct Filter {
    selection: Selection,
    types: Vec<WildMatch>,
    ids: HashSet<String>,
}

impl Filter {
    /// The filter of `selection`.
    pub fn new(selection: &Selection) -> Self {
        Filter {
            types: selection.types.iter().map(|t| WildMatch::new(t)).collect(),
            ids: selection.ids.iter().cloned().collect(),
            selection: selection.clone(),
        }
    }

    /// Whether the event `head` describes is taken.
    pub fn matches(&self, head: &Head<'_>) -> bool {
        let s = &self.selection;
        let at = match s.by {
            By::ReceivedAt => head.received_at,
            By::OccurredAt => head.occurred_at,
        };
        s.since.is_none_or(|since| at >= since)
            && s.until.is_none_or(|until| at < until)
            && (s.sources.is_empty() || s.sources.iter().any(|x| *x == head.source))
            && (s.endpoints.is_empty() || {
                let endpoint = head.endpoint.as_deref().unwrap_or(&head.source);
                s.endpoints.iter().any(|x| x == endpoint)
            })
            && (self.types.is_empty() || self.types.iter().any(|t| t.matches(&head.event_type)))
            && (self.ids.is_empty() || self.ids.contains(head.id.as_ref()))
            && s.entity
                .as_deref()
                .is_none_or(|entity| head.entity.id.as_deref() == Some(entity))
    }

    /// The partitions (`received_at` dates) that can hold a taken event, first and last
    /// (either open). On `occurred_at`, an event is received after it occurred (a day
    /// of margin for clocks), and at any time later: no last partition.
    pub fn dates(&self) -> (Option<Date>, Option<Date>) {
        let s = &self.selection;
        let last_instant = |until: OffsetDateTime| (until - Duration::nanoseconds(1)).date();
        let utc = |at: OffsetDateTime| at.to_offset(time::UtcOffset::UTC);
        match s.by {
            By::ReceivedAt => (
                s.since.map(|at| utc(at).date()),
                s.until.map(|at| last_instant(utc(at))),
            ),
            By::OccurredAt => (
                s.since
                    .map(|at| utc(at).date().previous_day().unwrap_or(Date::MIN)),
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(line: &str) -> Head<'_> {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn an_endpoint_filter_takes_its_endpoint_and_an_older_event_by_its_source() {
        let filter = Filter::new(&Selection {
            endpoints: vec!["hr-eu".into(), "peopleforce".into()],
            ..Selection::default()
        });
        let line = |endpoint: &str| {
            format!(
                r#"{{"id":"evt_1","source":"peopleforce",{endpoint}"type":"employee.created","received_at":"2026-12-05T10:00:00Z","occurred_at":"2026-12-05T10:00:00Z"}}"#
            )
        };
        assert!(filter.matches(&head(&line(r#""endpoint":"hr-eu","#))));
        assert!(!filter.matches(&head(&line(r#""endpoint":"hr-us","#))));
        // From before endpoints: its endpoint is its source.
        assert!(filter.matches(&head(&line(""))));
    }
}

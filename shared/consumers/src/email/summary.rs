//! A recipient's summary, from the progress read model as it stands and the state at
//! the previous summary ([`Baseline`]; none for the first summary, so everything is
//! news then).
//!
//! The sections, most urgent first: **needs attention** (an alert rule holds: behind
//! pace, low, dropped, at risk, as judged at its last update), **stalled** (no update
//! for `stalled_after`, by the providers' times), **progress moved** (drops, then gains,
//! largest first, from the progress at the previous summary to now), **completed** since
//! the previous summary. Each objective and key result in scope is in at most one: the
//! first of completed, needs attention, moved, stalled that fits (progress that moved
//! since the previous summary is not stalled, whatever the provider's timestamp says).
//! Within a section the items are grouped by objective, the groups in the order of
//! their most urgent item. Deleted ones are left out.

use std::collections::HashMap;
use std::time::Duration;

use time::{Date, OffsetDateTime};

use crate::email::baseline::{Baseline, Seen};
use crate::email::recipients::{Org, Scope};
use crate::progress::{Tracked, key};
use okr_core::rules::Rule;

/// Items shown per section; the rest are counted.
pub const MAX_PER_SECTION: usize = 25;
/// Default `STALLED_AFTER_DAYS`.
pub const DEFAULT_STALLED_AFTER: Duration = Duration::from_secs(14 * 24 * 3600);
/// A change of progress smaller than this (points) is not a move.
const MIN_MOVE: f64 = 0.5;

/// The time a summary covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// The previous summary's time (`None` for the first: everything is news).
    pub previous: Option<OffsetDateTime>,
    /// This summary's time.
    pub until: OffsetDateTime,
    /// `until`'s date in the recipients' time zone (the subject's week).
    pub date: Date,
}

/// A summary's sections, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// An alert rule holds.
    Attention,
    /// No update for a while.
    Stalled,
    /// Progress moved since the previous summary.
    Moved,
    /// Completed since the previous summary.
    Completed,
}

impl Section {
    /// Every section, most urgent first.
    pub const ALL: [Section; 4] = [
        Section::Attention,
        Section::Stalled,
        Section::Moved,
        Section::Completed,
    ];

    /// Its heading.
    pub fn title(self) -> &'static str {
        match self {
            Section::Attention => "Needs attention",
            Section::Stalled => "Stalled",
            Section::Moved => "Progress moved",
            Section::Completed => "Completed",
        }
    }
}

/// One objective or key result in a section.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// `objective` or `key_result`.
    pub kind: String,
    /// Its title.
    pub title: String,
    /// Progress now.
    pub progress: Option<f64>,
    /// Progress at the previous summary (`None`: it had none then).
    pub from: Option<f64>,
    /// The rules that hold.
    pub rules: Vec<Rule>,
    /// Whole days since its last update.
    pub idle_days: i64,
}

/// The items of one objective in a section.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The objective's title.
    pub objective: String,
    /// Its items, most urgent first.
    pub items: Vec<Item>,
}

/// One section's groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Which section.
    pub section: Section,
    /// Its groups.
    pub groups: Vec<Group>,
    /// Items left out beyond [`MAX_PER_SECTION`].
    pub more: usize,
}

/// What the subject counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Completed since the previous summary.
    pub completed: usize,
    /// Behind pace now.
    pub behind_pace: usize,
    /// Low now.
    pub low: usize,
    /// Dropped at their last update.
    pub dropped: usize,
    /// At risk now.
    pub at_risk: usize,
    /// Stalled.
    pub stalled: usize,
}

impl Counts {
    /// Count `item`, placed in `section`.
    fn add(&mut self, section: Section, item: &Item) {
        match section {
            Section::Completed => self.completed += 1,
            Section::Stalled => self.stalled += 1,
            Section::Attention => {
                for rule in &item.rules {
                    *match rule {
                        Rule::BehindPace => &mut self.behind_pace,
                        Rule::Low => &mut self.low,
                        Rule::Dropped => &mut self.dropped,
                        Rule::AtRisk => &mut self.at_risk,
                    } += 1;
                }
            }
            Section::Moved => {}
        }
    }
}

/// One recipient's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The time it covers.
    pub window: Window,
    /// The four sections, most urgent first.
    pub parts: Vec<Part>,
    /// The subject's counts.
    pub counts: Counts,
    /// Objectives and key results in scope (deleted ones not counted).
    pub in_scope: usize,
}

/// The summary of `records` in `scope` for `window`, against `baseline` (the state at
/// the previous summary); `org` answers the org scopes.
pub fn summarize(
    records: &[Tracked],
    baseline: Option<&Baseline>,
    (scope, org): (&Scope, Option<&Org<'_>>),
    window: Window,
    stalled_after: Duration,
) -> Summary {
    let objectives = Objectives(
        records
            .iter()
            .filter(|t| t.kind == "objective")
            .map(|t| (t.key(), t))
            .collect(),
    );
    let mut sorted: [Vec<(f64, &Tracked, Item)>; 4] = Default::default();
    let mut counts = Counts::default();
    let mut in_scope = 0;
    for tracked in records.iter().filter(|t| !t.deleted) {
        let objective = objectives.of(tracked);
        if !scope.covers(tracked, objective.and_then(|o| o.title.as_deref()), org) {
            continue;
        }
        in_scope += 1;
        let seen = baseline.and_then(|b| b.0.get(&tracked.key()));
        let placed = place(tracked, (baseline.is_some(), seen), &window, stalled_after);
        let Some((section, urgency, item)) = placed else {
            continue;
        };
        counts.add(section, &item);
        let at = Section::ALL.iter().position(|s| *s == section).unwrap_or(0);
        sorted[at].push((urgency, tracked, item));
    }
    let parts = Section::ALL
        .into_iter()
        .zip(sorted)
        .map(|(section, mut items)| {
            // Most urgent first; then by title, so the order is stable.
            items.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.2.title.cmp(&b.2.title)));
            let more = items.len().saturating_sub(MAX_PER_SECTION);
            items.truncate(MAX_PER_SECTION);
            Part {
                section,
                groups: grouped(items, &objectives),
                more,
            }
        })
        .collect();
    Summary {
        window,
        parts,
        counts,
        in_scope,
    }
}

/// Which section `tracked` belongs in, how urgent it is there (higher first), and its
/// item; `seen` is what it was at the previous summary (if there was one, and it was in
/// the read model then). `None` when nothing about it is news.
fn place(
    tracked: &Tracked,
    (baseline_exists, seen): (bool, Option<&Seen>),
    window: &Window,
    stalled_after: Duration,
) -> Option<(Section, f64, Item)> {
    let from = seen.and_then(|s| s.progress);
    let idle = window.until - tracked.updated_at;
    let item = Item {
        kind: tracked.kind.clone(),
        title: tracked
            .title
            .clone()
            .unwrap_or_else(|| format!("({})", tracked.id)),
        progress: tracked.progress,
        from,
        rules: tracked.rules.clone(),
        idle_days: idle.whole_days(),
    };
    if tracked.completed {
        let news = !seen.is_some_and(|s| s.completed);
        return news.then(|| (Section::Completed, -idle.as_seconds_f64(), item));
    }
    let progress = tracked.progress.unwrap_or(0.0);
    if !tracked.rules.is_empty() {
        let urgency = tracked.rules.len() as f64 * 1000.0 + (100.0 - progress);
        return Some((Section::Attention, urgency, item));
    }
    // Against the previous summary: what it had not seen is new, what it saw at another
    // value moved. The first summary has nothing to compare with.
    let change = progress - from.unwrap_or(0.0);
    let new = baseline_exists && seen.is_none();
    if tracked.progress.is_some() && (new || (from.is_some() && change.abs() >= MIN_MOVE)) {
        // Drops before gains, each largest first.
        let urgency = if change < 0.0 {
            1000.0 - change
        } else {
            change
        };
        return Some((Section::Moved, urgency, item));
    }
    if idle.is_positive() && idle.unsigned_abs() >= stalled_after {
        return Some((Section::Stalled, idle.as_seconds_f64(), item));
    }
    None
}

/// The objectives of the read model, by key.
struct Objectives<'a>(HashMap<String, &'a Tracked>);

impl<'a> Objectives<'a> {
    /// The objective `tracked` belongs to (itself, for an objective), when known.
    fn of(&self, tracked: &'a Tracked) -> Option<&'a Tracked> {
        if tracked.kind == "objective" {
            return Some(tracked);
        }
        let id = tracked.objective_id.as_deref()?;
        self.0.get(&key(tracked.source, id)).copied()
    }
}

/// `items` (sorted) grouped by objective, the groups in the order of their first item.
fn grouped<'a>(items: Vec<(f64, &'a Tracked, Item)>, objectives: &Objectives<'a>) -> Vec<Group> {
    let mut groups: Vec<(String, Group)> = Vec::new();
    for (_, tracked, item) in items {
        let (key, title) = match objectives.of(tracked) {
            Some(objective) => (
                objective.key(),
                objective
                    .title
                    .clone()
                    .unwrap_or_else(|| format!("({})", objective.id)),
            ),
            None => match tracked.objective_id.as_deref() {
                Some(id) => (key(tracked.source, id), format!("({id})")),
                None => (String::new(), "Without an objective".to_owned()),
            },
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.items.push(item),
            None => groups.push((
                key,
                Group {
                    objective: title,
                    items: vec![item],
                },
            )),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

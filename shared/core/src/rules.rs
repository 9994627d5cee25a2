//! The progress rules: which hold for a key result after an update, and which the
//! update shows do not hold. Whether an alert opens or resolves is decided against the
//! alerts' stored state (`AlertState::apply` in `okr-consumers`' `alerts/state.rs`), not
//! here.

use std::fmt;

use time::OffsetDateTime;

use crate::event::{Event, Period};

/// One rule.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Progress below the elapsed share of the period, minus a tolerance.
    BehindPace,
    /// Progress below a threshold (once enough of the period has passed).
    Low,
    /// Progress fell by at least N points in one update.
    Dropped,
    /// The provider's status says at risk, off track or behind.
    AtRisk,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 4] = [Rule::BehindPace, Rule::Low, Rule::Dropped, Rule::AtRisk];

    /// The rule's name in `dedup_key`s and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::BehindPace => "behind_pace",
            Rule::Low => "low",
            Rule::Dropped => "dropped",
            Rule::AtRisk => "at_risk",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rules' settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// `ALERT_PACE_TOLERANCE`: points below the expected pace (default 15).
    pub pace_tolerance: f64,
    /// `ALERT_LOW_THRESHOLD`: percent (default 30).
    pub low_threshold: f64,
    /// `ALERT_LOW_AFTER`: percent of the period that must have passed (default 50).
    pub low_after: f64,
    /// `ALERT_DROP_POINTS`: a fall of at least this many points (default 10).
    pub drop_points: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            pace_tolerance: 15.0,
            low_threshold: 30.0,
            low_after: 50.0,
            drop_points: 10.0,
        }
    }
}

/// What an update tells of the rules.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    /// Rules that hold now.
    pub holding: Vec<Rule>,
    /// Rules the update shows do not hold (an open alert on them resolves). A rule the
    /// update cannot judge (no progress, no period, no status) is in neither list.
    pub clear: Vec<Rule>,
    /// The key result is completed (or deleted): every open alert resolves.
    pub completed: bool,
}

/// Assess a progress or status update at the time it happened.
pub fn assess(event: &Event, thresholds: &Thresholds) -> Assessment {
    let progress = event.progress.as_ref();
    let status = event.status.as_ref();
    // A completed or deleted key result resolves everything and triggers nothing.
    let completed = event.event_type.ends_with(".completed")
        || event.event_type.ends_with(".deleted")
        || status
            .and_then(|s| s.current.as_deref())
            .is_some_and(is_done);
    if completed {
        return Assessment {
            holding: Vec::new(),
            clear: Rule::ALL.to_vec(),
            completed: true,
        };
    }
    let period = event.period;
    let current = progress.and_then(|p| p.current);
    let previous = progress.and_then(|p| p.previous);
    let status = status.and_then(|s| s.current.as_deref());
    let holding = holds(
        current,
        previous,
        status,
        period,
        event.occurred_at,
        thresholds,
    );
    let judged = |rule: &Rule| match rule {
        Rule::BehindPace => current.is_some() && period.is_some(),
        Rule::Low => current.is_some(),
        // A drop is over when progress rises again, not when it merely stops falling.
        Rule::Dropped => matches!((previous, current), (Some(p), Some(c)) if c > p),
        Rule::AtRisk => status.is_some(),
    };
    let clear = Rule::ALL
        .into_iter()
        .filter(|rule| judged(rule) && !holding.contains(rule))
        .collect();
    Assessment {
        holding,
        clear,
        completed: false,
    }
}

/// The rules that hold for a key result with `progress` (after `previous`), `status`
/// and `period`, at `at`: what an update triggers, and what the progress read model
/// shows as holding now.
pub fn holds(
    progress: Option<f64>,
    previous: Option<f64>,
    status: Option<&str>,
    period: Option<Period>,
    at: OffsetDateTime,
    t: &Thresholds,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    if let Some(progress) = progress {
        let elapsed = period.map(|p| p.elapsed(at));
        if elapsed.is_some_and(|elapsed| progress < elapsed - t.pace_tolerance) {
            rules.push(Rule::BehindPace);
        }
        if progress < t.low_threshold && elapsed.is_none_or(|elapsed| elapsed >= t.low_after) {
            rules.push(Rule::Low);
        }
        if previous.is_some_and(|previous| previous - progress >= t.drop_points) {
            rules.push(Rule::Dropped);
        }
    }
    if status.is_some_and(is_at_risk) {
        rules.push(Rule::AtRisk);
    }
    rules
}

fn words(status: &str) -> String {
    status.trim().to_ascii_lowercase().replace(['_', '-'], " ")
}

fn is_at_risk(status: &str) -> bool {
    matches!(words(status).as_str(), "at risk" | "off track" | "behind")
}

/// Whether `status` says the key result is done.
pub fn is_done(status: &str) -> bool {
    matches!(words(status).as_str(), "completed" | "complete" | "done")
}

/// The `stalled` rule, judged by a scheduled check rather than an update (a key result
/// that stops being updated sends nothing): not completed or deleted, no update for
/// `after`, and, when its period is known, inside it (`now` between its start and its
/// due date).
pub fn is_stalled(
    updated_at: OffsetDateTime,
    done: bool,
    period: Option<Period>,
    now: OffsetDateTime,
    after: time::Duration,
) -> bool {
    !done
        && now - updated_at >= after
        // A due date is a day: the whole of it is inside.
        && period.is_none_or(|period| period.start <= now && now < period.due + time::Duration::days(1))
}

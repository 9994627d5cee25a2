//! When summaries are due and what they cover: the time between one summary and the
//! next, kept in a state record, and cron patterns for `serve --summary-cron`.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::email::summary::Window;
use okr_pipeline::idempotency::{IdempotencyError, StateStore, StateWrite, update_state};

/// The state record of the summaries' runs.
const RUNS_KEY: &str = "summary-state:runs";
/// How long the runs' record is kept.
const RUNS_KEEP: Duration = Duration::from_secs(400 * 24 * 3600);
/// Runs remembered, so a retry of an older one still finds the run before it.
const RUNS_KEPT: usize = 20;

/// The latest runs, oldest first: each one's time and the previous run's it compared
/// with (Unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Runs {
    runs: Vec<(i64, Option<i64>)>,
}

/// The window of the summary due at `at` (the schedule's time: a retry of the same run
/// has the same), dated `date` in the recipients' zone: since the latest run before it
/// (none: the first summary). With `record`, the run is remembered, so the next one
/// starts where this one ends; a retry of this run, however late, covers the same
/// window again.
pub async fn window(
    store: &dyn StateStore,
    at: OffsetDateTime,
    date: Date,
    record: bool,
) -> Result<Window, IdempotencyError> {
    let time = at.unix_timestamp();
    for _ in 0..3 {
        let now = OffsetDateTime::now_utc();
        let stored = store.load_state(RUNS_KEY, now).await?;
        let mut runs: Runs = stored
            .as_ref()
            .and_then(|s| serde_json::from_str(&s.value).ok())
            .unwrap_or_default();
        let recorded = runs.runs.iter().find(|(t, _)| *t == time).map(|(_, p)| *p);
        // A retry keeps the window its first try had; a new run starts at the latest
        // earlier one.
        let previous = recorded.unwrap_or_else(|| {
            runs.runs
                .iter()
                .map(|(t, _)| *t)
                .filter(|t| *t < time)
                .max()
        });
        let window = Window {
            previous: previous.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()),
            until: at,
            date,
        };
        if !record || recorded.is_some() {
            return Ok(window);
        }
        runs.runs.push((time, previous));
        runs.runs.sort_unstable();
        let excess = runs.runs.len().saturating_sub(RUNS_KEPT);
        runs.runs.drain(..excess);
        let value = serde_json::to_string(&runs).map_err(|e| IdempotencyError(e.into()))?;
        let write = StateWrite {
            key: RUNS_KEY,
            expected: stored.map(|s| s.version),
            value: &value,
            now,
            keep: RUNS_KEEP,
        };
        if store.save_state(&write).await? {
            return Ok(window);
        }
    }
    Err(IdempotencyError(
        "the summaries' run record kept changing; retry later".into(),
    ))
}

/// The runs remembered (Unix seconds, oldest first): those whose state may be kept.
pub async fn runs(store: &dyn StateStore) -> Result<Vec<i64>, IdempotencyError> {
    let stored = store
        .load_state(RUNS_KEY, OffsetDateTime::now_utc())
        .await?;
    let runs: Runs = stored
        .and_then(|s| serde_json::from_str(&s.value).ok())
        .unwrap_or_default();
    Ok(runs.runs.into_iter().map(|(t, _)| t).collect())
}

/// Forget the runs at `times` (their states were dropped).
pub async fn forget(store: &dyn StateStore, times: &[i64]) -> Result<(), IdempotencyError> {
    update_state(
        store,
        (RUNS_KEY, RUNS_KEEP),
        |stored| {
            let mut runs: Runs = serde_json::from_str(stored?).unwrap_or_default();
            runs.runs.retain(|(t, _)| !times.contains(t));
            serde_json::to_string(&runs).ok()
        },
        "the summaries' run record kept changing; retry later",
    )
    .await
}

/// `at`'s date in `zone`.
pub fn date_in<Tz: TimeZone>(at: OffsetDateTime, zone: &Tz) -> Date {
    let local = zone.timestamp_opt(at.unix_timestamp(), 0).single();
    local
        .and_then(|local| {
            let month = time::Month::try_from(local.month() as u8).ok()?;
            Date::from_calendar_date(local.year(), month, local.day() as u8).ok()
        })
        .unwrap_or(at.date())
}

/// The time zone named `name` (`Europe/Berlin`, `UTC`), for `SUMMARY_TIME_ZONE`.
pub fn zone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse()
        .map_err(|_| format!("{name:?} is not an IANA time zone such as Europe/Berlin"))
}

/// A cron pattern (`minute hour day-of-month month day-of-week`, as crontab), for
/// `serve --summary-cron`.
#[derive(Debug, Clone)]
pub struct Cron(croner::Cron);

impl FromStr for Cron {
    type Err = String;

    fn from_str(pattern: &str) -> Result<Self, String> {
        croner::Cron::from_str(pattern)
            .map(Cron)
            .map_err(|e| format!("{pattern:?} is not a cron pattern such as \"0 8 * * MON\": {e}"))
    }
}

impl Cron {
    /// The first time after `after` the pattern matches.
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.0.find_next_occurrence(after, false).ok()
    }
}

/// `at` (chrono) as `time`, to the second.
pub fn to_offset<Tz: TimeZone>(at: &DateTime<Tz>) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(at.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

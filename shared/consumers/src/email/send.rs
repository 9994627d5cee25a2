//! Sending the summaries: each recipient's once per run, through the idempotency guard
//! (`summary:<run time>:<recipient id>`), so a retried run sends only what it had not.
//! A refused address is logged with the reason and skipped; the others still go out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use time::{Date, OffsetDateTime};
use tokio::time::Instant;

use crate::directory::{Directory, DirectoryStore};
use crate::email::baseline::{self, Baseline};
use crate::email::heard;
use crate::email::recipients::{Org, Recipient, Recipients};
use crate::email::summary::{Summary, Window, summarize};
use crate::email::{render, schedule};
use crate::progress::ProgressStore;
use okr_pipeline::breaker::EMAIL;
use okr_pipeline::idempotency::IdempotencyStore;
use okr_pipeline::idempotency::guard::{Claimed, Guard, Ran};
use okr_pipeline::metrics::NoMetrics;
use okr_pipeline::outbound::mail::{Email, Mailer};
use okr_pipeline::outbound::{DeliveryError, Service, deliver};
use okr_pipeline::secrets::SecretCache;

/// How long a sent summary is remembered: longer than any retry of its run.
const KEEP: Duration = Duration::from_secs(35 * 24 * 3600);
/// How long a summary whose send started is held, recorded or not: past Lambda's
/// longest retry of an asynchronous invocation (6 hours).
const SENDING_HOLD: Duration = Duration::from_secs(7 * 3600);

/// Why the summaries could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The read model could not be read.
    #[error("the progress read model could not be read: {0}")]
    Progress(String),
    /// The recipients document could not be read.
    #[error("the recipients could not be read: {0}")]
    Recipients(String),
    /// The idempotency store (the runs' record) failed.
    #[error("the idempotency store failed: {0}")]
    Store(String),
}

/// What a run did, in counts (addresses are never reported).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Recipients of summaries.
    pub recipients: usize,
    /// Summaries sent now.
    pub sent: usize,
    /// Sent before, by an earlier try of this run.
    pub already_sent: usize,
    /// Refused (the address, most likely): skipped.
    pub refused: usize,
    /// Not sent for a reason a retry may not have: the run should be retried.
    pub failed: usize,
}

/// The summaries, over their ports.
pub struct Summaries {
    progress: Arc<dyn ProgressStore>,
    recipients: Arc<SecretCache<Recipients>>,
    mailer: Arc<dyn Mailer>,
    guard: Guard,
    stalled_after: Duration,
    pace: Duration,
    directory: Option<Arc<dyn DirectoryStore>>,
}

impl Summaries {
    /// Summaries of `progress` for `recipients`, sent with `mailer`, recorded in
    /// `store`; no update for `stalled_after` is stalled.
    pub fn new(
        progress: Arc<dyn ProgressStore>,
        recipients: Arc<SecretCache<Recipients>>,
        mailer: Arc<dyn Mailer>,
        store: Arc<dyn IdempotencyStore>,
        stalled_after: Duration,
    ) -> Self {
        Summaries {
            progress,
            recipients,
            mailer,
            // A summary that started sending stays claimed longer than Lambda retries an
            // asynchronous invocation (6 hours): a retry never sends it a second time,
            // even if the first try died before it could record the send.
            guard: Guard::new(store, KEEP, "email-summaries", Arc::new(NoMetrics))
                .with_min_hold(SENDING_HOLD),
            stalled_after,
            pace: Duration::ZERO,
            directory: None,
        }
    }

    /// Read `directory` for the org scopes and `team_leads`.
    pub fn with_directory(mut self, directory: Arc<dyn DirectoryStore>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Leave `pace` between sends (SES's sending rate).
    pub fn pacing(mut self, pace: Duration) -> Self {
        self.pace = pace;
        self
    }

    /// Each recipient's summary of the run at `at` (dated `date`), with the window it
    /// covers for them, without sending or recording anything.
    pub async fn preview(
        &self,
        at: OffsetDateTime,
        date: Date,
    ) -> Result<Vec<(Recipient, Window, Email)>, SummaryError> {
        let run = self.build(at, date, false).await?;
        Ok(run
            .recipients
            .into_iter()
            .filter_map(|r| r.email.map(|(window, email)| (r.recipient, window, email)))
            .collect())
    }

    /// The run at `at`: each recipient's summary, measured from the state of the run
    /// whose summary they were last delivered. With `record`, the run and its state are
    /// kept, for the recipients who hear it now.
    async fn build(
        &self,
        at: OffsetDateTime,
        date: Date,
        record: bool,
    ) -> Result<Run, SummaryError> {
        let recipients = self
            .recipients
            .current()
            .await
            .map_err(|e| SummaryError::Recipients(okr_core::error_chain(&e)))?;
        let records = self
            .progress
            .all()
            .await
            .map_err(|e| SummaryError::Progress(e.to_string()))?;
        let store = self.guard.store().as_ref();
        let window = schedule::window(store, at, date, record)
            .await
            .map_err(failed)?;
        let runs = schedule::runs(store).await.map_err(failed)?;
        if record {
            baseline::keep(store, at, &Baseline::of(&records))
                .await
                .map_err(failed)?;
        }
        let time = at.unix_timestamp();
        // One state per run heard, shared by the recipients who heard it.
        let mut states: HashMap<i64, Option<Arc<Baseline>>> = HashMap::new();
        let mut prepared = Vec::new();
        // A directory that cannot be read holds back only the summaries that need it
        // (org scopes, the team leads'): the run fails for them, and is retried.
        let (people, waiting) = match (&self.directory, recipients.reads_directory()) {
            (Some(directory), true) => match crate::directory::load(directory.as_ref()).await {
                Ok(people) => (people, 0),
                Err(error) => {
                    let waiting = recipients
                        .listed
                        .iter()
                        .filter(|r| r.summary && r.scope.reads_directory())
                        .count()
                        + usize::from(recipients.team_leads);
                    tracing::warn!(destination = EMAIL, waiting, error = %okr_core::error_chain(&error), "the directory could not be read: the summaries by the org chart wait for the retry");
                    (Directory::default(), waiting)
                }
            },
            _ => (Directory::default(), 0),
        };
        let all = recipients.for_summaries(&people);
        let readable = all
            .iter()
            .filter(|r| waiting == 0 || !r.scope.reads_directory());
        for recipient in readable {
            let id = recipient.id();
            let heard = match heard::last(store, &id).await.map_err(failed)? {
                Some(heard) => Some(heard),
                None => {
                    let found = heard_by_claims(store, &runs, time, &id).await?;
                    // Kept as their record, so it outlives the claims' 35 days.
                    if let (true, Some(run)) = (record, found) {
                        heard::delivered(store, &id, run).await.map_err(failed)?;
                    }
                    found
                }
            };
            // A record that is no time at all counts as none.
            let since = heard.and_then(|run| OffsetDateTime::from_unix_timestamp(run).ok());
            let heard = since.map(OffsetDateTime::unix_timestamp);
            // Heard this run (an earlier try delivered it) or a later one (this is a
            // late retry of an older run): nothing new to tell them here.
            let email = match since {
                Some(since) if since >= at => None,
                _ => {
                    let before = match since {
                        Some(since) => match states.get(&since.unix_timestamp()) {
                            Some(state) => state.clone(),
                            None => {
                                let state = baseline::load(store, since)
                                    .await
                                    .map_err(failed)?
                                    .map(Arc::new);
                                if state.is_none() {
                                    tracing::warn!(
                                        destination = EMAIL,
                                        recipient = %id,
                                        "the state of the last summary this recipient heard is gone; theirs shows every completion as news"
                                    );
                                }
                                states.insert(since.unix_timestamp(), state.clone());
                                state
                            }
                        },
                        None => None,
                    };
                    let window = Window {
                        previous: since,
                        ..window
                    };
                    let org = Org {
                        directory: &people,
                        address: &recipient.address,
                    };
                    let summary: Summary = summarize(
                        &records,
                        before.as_deref(),
                        (&recipient.scope, Some(&org)),
                        window,
                        self.stalled_after,
                    );
                    Some((window, render::email(&summary, &recipient.address)))
                }
            };
            prepared.push(Prepared {
                recipient: recipient.clone(),
                heard,
                email,
            });
        }
        Ok(Run {
            runs,
            recipients: prepared,
            waiting,
        })
    }

    /// Send the run at `at` (dated `date`): each recipient's summary once, by `deadline`.
    /// Then the states nobody measures from any more are dropped.
    pub async fn send(
        &self,
        at: OffsetDateTime,
        date: Date,
        deadline: Instant,
    ) -> Result<Report, SummaryError> {
        // In UTC, to the second: the runs' keys carry it.
        let at = at.to_offset(time::UtcOffset::UTC);
        let built = self.build(at, date, true).await?;
        let store = self.guard.store().as_ref();
        let time = at.unix_timestamp();
        let run = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| at.unix_timestamp().to_string());
        let mut report = Report {
            recipients: built.recipients.len() + built.waiting,
            failed: built.waiting,
            ..Report::default()
        };
        // The run each recipient has heard once this one is done.
        let mut heard: Vec<Option<i64>> = built.recipients.iter().map(|r| r.heard).collect();
        // SES's rate: a pause after each send that was tried, none for those sent before.
        let mut last_try: Option<Instant> = None;
        for (at, prepared) in built.recipients.iter().enumerate() {
            let Some((_, email)) = &prepared.email else {
                report.already_sent += 1;
                continue;
            };
            let id = prepared.recipient.id();
            let key = format!("summary:{run}:{id}");
            let pause =
                last_try.map_or(Duration::ZERO, |at| self.pace.saturating_sub(at.elapsed()));
            let outcome = self.once(key, &id, email, (pause, deadline)).await;
            match outcome {
                Outcome::Sent => report.sent += 1,
                Outcome::AlreadySent => report.already_sent += 1,
                Outcome::Refused => report.refused += 1,
                Outcome::Failed { .. } => report.failed += 1,
                Outcome::NoTime => {
                    // The rest are left for the retry, which skips what went out.
                    report.failed =
                        report.recipients - report.sent - report.already_sent - report.refused;
                    tracing::warn!(
                        destination = EMAIL,
                        left = report.failed,
                        "no time left in this invocation; the retry sends the rest"
                    );
                    break;
                }
            }
            if matches!(outcome, Outcome::Sent | Outcome::AlreadySent) {
                match heard::delivered(store, &id, time).await {
                    Ok(()) => heard[at] = Some(time),
                    // Not lost: the next summary measures from the one before (whose
                    // state stays) and repeats this one's news.
                    Err(error) => {
                        tracing::warn!(destination = EMAIL, recipient = %id, error = %okr_core::error_chain(&error), "the delivery could not be recorded; the next summary repeats its news");
                    }
                }
            }
            // Only a send SES (or the server) was asked for counts against its rate.
            if matches!(
                outcome,
                Outcome::Sent | Outcome::Refused | Outcome::Failed { tried: true }
            ) {
                last_try = Some(Instant::now());
            }
        }
        tracing::info!(
            destination = EMAIL,
            recipients = report.recipients,
            sent = report.sent,
            already_sent = report.already_sent,
            refused = report.refused,
            failed = report.failed,
            "summaries done"
        );
        // Those held back are not among the recipients: what they measure from stays.
        if built.waiting == 0 {
            let ids: Vec<String> = built.recipients.iter().map(|r| r.recipient.id()).collect();
            self.drop_unneeded(&built.runs, time, (&ids, &heard)).await;
        }
        Ok(report)
    }

    /// Drop the states of runs before `time` that no recipient (`ids`, and `heard`, the
    /// run each last heard as this run saw it) measures from any more. Each record is
    /// read again first (another run may have delivered to them meanwhile), and runs
    /// younger than [`SENDING_HOLD`] are left alone (a try of theirs may be under way),
    /// as are later ones. A failure leaves them for the next run to drop.
    async fn drop_unneeded(
        &self,
        runs: &[i64],
        time: i64,
        (ids, heard): (&[String], &[Option<i64>]),
    ) {
        let store = self.guard.store().as_ref();
        let young = OffsetDateTime::now_utc().unix_timestamp() - SENDING_HOLD.as_secs() as i64;
        let mut unneeded: Vec<i64> = runs
            .iter()
            .copied()
            .filter(|run| *run < time && *run < young && !heard.contains(&Some(*run)))
            .collect();
        // Only when there is something to drop: who heard what, read again.
        for id in ids {
            if unneeded.is_empty() {
                return;
            }
            match heard::last(store, id).await {
                Ok(run) => unneeded.retain(|r| Some(*r) != run),
                Err(error) => {
                    tracing::warn!(destination = EMAIL, error = %okr_core::error_chain(&error), "could not read who heard what; old summaries runs are dropped next time");
                    return;
                }
            }
        }
        let mut dropped = Vec::new();
        for run in unneeded {
            let Ok(at) = OffsetDateTime::from_unix_timestamp(run) else {
                continue;
            };
            match baseline::forget(store, at).await {
                Ok(()) => dropped.push(run),
                Err(error) => {
                    tracing::warn!(destination = EMAIL, error = %okr_core::error_chain(&error), "could not drop an old summaries run's state; the next run tries again");
                    break;
                }
            }
        }
        if !dropped.is_empty()
            && let Err(error) = schedule::forget(store, &dropped).await
        {
            tracing::warn!(destination = EMAIL, error = %okr_core::error_chain(&error), "could not forget old summaries runs; the next run tries again");
        }
    }

    /// Send `email` once per `key`, after `pause`, by `deadline`.
    async fn once(
        &self,
        key: String,
        id: &str,
        email: &Email,
        (pause, deadline): (Duration, Instant),
    ) -> Outcome {
        let held = match self.guard.claim(key, id, deadline).await {
            Claimed::Held(held) => held,
            Claimed::Done => return Outcome::AlreadySent,
            Claimed::Busy => {
                tracing::warn!(
                    destination = EMAIL,
                    recipient = id,
                    outcome = "busy",
                    "another run is sending this summary"
                );
                return Outcome::Failed { tried: false };
            }
            Claimed::Failed(_) => return Outcome::Failed { tried: false },
        };
        let ran = self
            .guard
            .run(&[held], pause, deadline, || {
                deliver(Service::Email, deadline, || self.mailer.send(email))
            })
            .await;
        match ran {
            Ran::Done => {
                tracing::info!(
                    destination = EMAIL,
                    recipient = id,
                    outcome = "sent",
                    "summary sent"
                );
                Outcome::Sent
            }
            Ran::Failed(error @ DeliveryError::Refused { .. }) => {
                tracing::warn!(destination = EMAIL, recipient = id, reason = %error, outcome = "refused", "summary refused; skipped");
                Outcome::Refused
            }
            Ran::Failed(error) => {
                tracing::warn!(destination = EMAIL, recipient = id, error = %okr_core::error_chain(&error), outcome = "retry", "summary not sent");
                Outcome::Failed { tried: true }
            }
            Ran::NoTime => Outcome::NoTime,
            Ran::NotMarked => Outcome::Failed { tried: false },
        }
    }
}

/// A run, built: the runs remembered, and each recipient's part.
struct Run {
    runs: Vec<i64>,
    recipients: Vec<Prepared>,
    /// Summaries held back (the directory could not be read): failed, for the retry.
    waiting: usize,
}

/// One recipient's part of a run.
struct Prepared {
    recipient: Recipient,
    /// The run they were last delivered, before this one.
    heard: Option<i64>,
    /// What covers the time since, and their email; none when they heard this run or a
    /// later one already.
    email: Option<(Window, Email)>,
}

fn failed(error: okr_pipeline::idempotency::IdempotencyError) -> SummaryError {
    SummaryError::Store(okr_core::error_chain(&error))
}

/// Upgrading from a release without the recipients' records: the latest of `runs`
/// before `time` whose summary the guard recorded as sent to `recipient`.
async fn heard_by_claims(
    store: &dyn IdempotencyStore,
    runs: &[i64],
    time: i64,
    recipient: &str,
) -> Result<Option<i64>, SummaryError> {
    let now = OffsetDateTime::now_utc();
    for &run in runs.iter().rev().filter(|run| **run < time) {
        let Ok(at) = OffsetDateTime::from_unix_timestamp(run) else {
            continue;
        };
        let Ok(name) = at.format(&time::format_description::well_known::Rfc3339) else {
            continue;
        };
        let key = format!("summary:{name}:{recipient}");
        if store.is_completed(&key, now).await.map_err(failed)? {
            return Ok(Some(run));
        }
    }
    Ok(None)
}

#[derive(Clone, Copy)]
enum Outcome {
    Sent,
    AlreadySent,
    Refused,
    /// Not sent; `tried`: the mailer was asked (it failed), not stopped before it.
    Failed {
        tried: bool,
    },
    /// Not tried: too little time left in the invocation.
    NoTime,
}

/// What the schedule passes: its time (`<aws.scheduler.scheduled-time>`), the same for
/// every retry of one run. Without it (a manual invoke), the run is now.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ScheduledRun {
    /// When the run was due.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub scheduled_time: Option<OffsetDateTime>,
}

impl Summaries {
    /// The scheduled run `run` in `zone`, by `deadline`.
    pub async fn scheduled(
        &self,
        run: &ScheduledRun,
        zone: &chrono_tz::Tz,
        deadline: Instant,
    ) -> Result<Report, SummaryError> {
        let at = run.scheduled_time.unwrap_or_else(OffsetDateTime::now_utc);
        // To the second: the run's keys carry it.
        let at = at.replace_nanosecond(0).unwrap_or(at);
        self.send(at, schedule::date_in(at, zone), deadline).await
    }
}

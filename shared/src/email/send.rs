//! Sending the summaries: each recipient's once per run, through the idempotency guard
//! (`summary:<run time>:<recipient id>`), so a retried run sends only what it had not.
//! A refused address is logged with the reason and skipped; the others still go out.

use std::sync::Arc;
use std::time::Duration;

use time::{Date, OffsetDateTime};
use tokio::time::Instant;

use super::baseline::{self, Baseline};
use super::recipients::{Recipient, Recipients};
use super::summary::{Summary, Window, summarize};
use super::{Email, Mailer, render, schedule};
use crate::idempotency::IdempotencyStore;
use crate::idempotency::guard::{Claimed, Guard, Ran};
use crate::metrics::NoMetrics;
use crate::outbound::{DeliveryError, Service, deliver};
use crate::progress::ProgressStore;
use crate::secrets::SecretCache;

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
        }
    }

    /// Leave `pace` between sends (SES's sending rate).
    pub fn pacing(mut self, pace: Duration) -> Self {
        self.pace = pace;
        self
    }

    /// Each recipient's summary of the run at `at` (dated `date`), without sending or
    /// recording anything.
    pub async fn preview(
        &self,
        at: OffsetDateTime,
        date: Date,
    ) -> Result<(Window, Vec<(Recipient, Email)>), SummaryError> {
        self.build(at, date, false).await
    }

    async fn build(
        &self,
        at: OffsetDateTime,
        date: Date,
        record: bool,
    ) -> Result<(Window, Vec<(Recipient, Email)>), SummaryError> {
        let recipients = self
            .recipients
            .current()
            .await
            .map_err(|e| SummaryError::Recipients(crate::error_chain(&e)))?;
        let records = self
            .progress
            .all()
            .await
            .map_err(|e| SummaryError::Progress(e.to_string()))?;
        let store = self.guard.store().as_ref();
        let failed =
            |e: crate::idempotency::IdempotencyError| SummaryError::Store(crate::error_chain(&e));
        let window = schedule::window(store, at, date, record)
            .await
            .map_err(failed)?;
        let before = match window.previous {
            Some(previous) => baseline::load(store, previous).await.map_err(failed)?,
            None => None,
        };
        if record {
            baseline::keep(store, at, &Baseline::of(&records))
                .await
                .map_err(failed)?;
        }
        let emails = recipients
            .for_summaries()
            .map(|recipient| {
                let summary: Summary = summarize(
                    &records,
                    before.as_ref(),
                    &recipient.scope,
                    window,
                    self.stalled_after,
                );
                (
                    recipient.clone(),
                    render::email(&summary, &recipient.address),
                )
            })
            .collect();
        Ok((window, emails))
    }

    /// Send the run at `at` (dated `date`): each recipient's summary once, by `deadline`.
    pub async fn send(
        &self,
        at: OffsetDateTime,
        date: Date,
        deadline: Instant,
    ) -> Result<Report, SummaryError> {
        let (_, emails) = self.build(at, date, true).await?;
        let run = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| at.unix_timestamp().to_string());
        let mut report = Report {
            recipients: emails.len(),
            ..Report::default()
        };
        // SES's rate: a pause after each send that was tried, none for those sent before.
        let mut last_try: Option<Instant> = None;
        for (recipient, email) in &emails {
            let id = recipient.id();
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
                        left = report.failed,
                        "no time left in this invocation; the retry sends the rest"
                    );
                    break;
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
            recipients = report.recipients,
            sent = report.sent,
            already_sent = report.already_sent,
            refused = report.refused,
            failed = report.failed,
            "summaries done"
        );
        Ok(report)
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
                tracing::info!(recipient = id, outcome = "sent", "summary sent");
                Outcome::Sent
            }
            Ran::Failed(error @ DeliveryError::Refused { .. }) => {
                tracing::warn!(recipient = id, reason = %error, outcome = "refused", "summary refused; skipped");
                Outcome::Refused
            }
            Ran::Failed(error) => {
                tracing::warn!(recipient = id, error = %crate::error_chain(&error), outcome = "retry", "summary not sent");
                Outcome::Failed { tried: true }
            }
            Ran::NoTime => Outcome::NoTime,
            Ran::NotMarked => Outcome::Failed { tried: false },
        }
    }
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

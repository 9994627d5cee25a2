//! Stalled key results, to their owners' team leads: a scheduled check (daily on AWS,
//! `--stalled-cron` in `serve`, `okr-webhooks stalled` by hand) over the read model and
//! the directory.
//!
//! The rule `stalled` ([`okr_core::rules::is_stalled`]): a key result not completed or
//! deleted, with no update for `STALLED_AFTER_DAYS`, inside its period when the period
//! is known. Its alert has the state the other rules' alerts have, kept per key result:
//! it **opens** once, is **reminded** after the alerts' window while it holds, and
//! **resolves** at the first check after the key result is updated (or completed, or
//! its period ends). Each open and reminder goes to the owner's team lead (an email to
//! their work address; a Slack direct message found by that address when a bot token is
//! configured), and to the alerts channel and PagerDuty as configured; a resolve goes
//! where its open went. A key result whose owner the directory does not know, is no
//! longer active, or has no team lead goes to the alerts channel saying so.
//!
//! Every send is claimed first (`idempotency::guard`), so a check that is retried or
//! run twice sends each message once; the state is written only after its sends went
//! out, so a failed send is tried again at the next check.

mod messages;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::directory::{self, Directory, DirectoryStore};
use crate::progress::{ProgressStore, Tracked};
use okr_core::rules::is_stalled;
use okr_pipeline::idempotency::guard::{Claimed, Guard, Ran};
use okr_pipeline::idempotency::{IdempotencyStore, StateWrite};
use okr_pipeline::metrics::NoMetrics;
use okr_pipeline::outbound::DeliveryError;
use okr_pipeline::outbound::mail::Mailer;
use okr_pipeline::outbound::pagerduty::{Action as PagerAction, PagerDuty};
use okr_pipeline::outbound::slack::SlackPoster;
use okr_pipeline::outbound::slack_api::DirectMessages;

pub use messages::{channel_message, email, pagerduty_alert, shared_text, text};

/// How many alert states are read at once.
const STATE_READS: usize = 16;

/// How long claims and closed alerts' state are kept: longer than any reminder window.
const KEEP: Duration = Duration::from_secs(90 * 24 * 3600);

/// Where stalled alerts go; each is optional.
#[derive(Clone, Default)]
pub struct StalledDestinations {
    /// Email to the team lead.
    pub mailer: Option<Arc<dyn Mailer>>,
    /// A Slack direct message to the team lead.
    pub direct: Option<Arc<dyn DirectMessages>>,
    /// The alerts channel.
    pub channel: Option<Arc<dyn SlackPoster>>,
    /// PagerDuty.
    pub pagerduty: Option<Arc<dyn PagerDuty>>,
}

/// What a check does with one key result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The alert opens.
    Open,
    /// It still holds, a window after it was last sent.
    Remind,
    /// It no longer holds.
    Resolve,
}

impl Action {
    /// `open`, `remind`, `resolve`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Open => "open",
            Action::Remind => "remind",
            Action::Resolve => "resolve",
        }
    }
}

/// Who hears of it besides the alerts channel and PagerDuty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Route {
    /// The owner's team lead.
    TeamLead {
        /// Their name, as the directory has it.
        name: String,
        /// Their work email, when known.
        email: Option<String>,
    },
    /// The owner is not in the directory (or the key result names none).
    OwnerUnknown,
    /// The owner is no longer active (terminated).
    OwnerInactive,
    /// The owner is known but has no team lead.
    NoTeamLead,
}

/// One key result's news.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// What happens.
    pub action: Action,
    /// The key result.
    pub record: Tracked,
    /// Its owner's name, when known.
    pub owner: Option<String>,
    /// Who hears of it.
    pub route: Route,
    /// Whole days since its last update.
    pub days: i64,
    /// A resolve because its period ended (not an update).
    pub period_over: bool,
}

/// A key result's stalled alert, as stored (`stalled:<endpoint>#<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StalledState {
    open: bool,
    /// The update it was judged on: a newer one resolves it.
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
    /// When it was last sent (opened or reminded).
    #[serde(with = "time::serde::rfc3339")]
    alerted_at: OffsetDateTime,
    /// Where the open went, so the resolve goes there too.
    route: Route,
}

fn state_key(record: &Tracked) -> String {
    format!("stalled:{}", record.key())
}

/// What a check did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Alerts opened.
    pub opened: usize,
    /// Reminders.
    pub reminded: usize,
    /// Alerts resolved.
    pub resolved: usize,
    /// Messages sent.
    pub sent: usize,
    /// Messages sent by an earlier run of the same check.
    pub already_sent: usize,
    /// Messages refused (a bad address, an unknown Slack user): not tried again.
    pub refused: usize,
    /// Messages that failed: tried again at the next check.
    pub failed: usize,
}

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum StalledError {
    /// The read model.
    #[error(transparent)]
    Progress(#[from] crate::progress::ProgressError),
    /// The directory.
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
    /// The state store.
    #[error(transparent)]
    State(#[from] okr_pipeline::idempotency::IdempotencyError),
}

/// The stalled check over its stores.
pub struct StalledCheck {
    progress: Arc<dyn ProgressStore>,
    directory: Arc<dyn DirectoryStore>,
    store: Arc<dyn IdempotencyStore>,
    to: StalledDestinations,
    after: Duration,
    remind: Duration,
}

impl StalledCheck {
    /// A check judging "no update for `after`", reminding every `remind`.
    pub fn new(
        progress: Arc<dyn ProgressStore>,
        directory: Arc<dyn DirectoryStore>,
        store: Arc<dyn IdempotencyStore>,
        to: StalledDestinations,
        after: Duration,
        remind: Duration,
    ) -> Self {
        StalledCheck {
            progress,
            directory,
            store,
            to,
            after,
            remind,
        }
    }

    /// What a check at `now` would send, without sending or recording anything.
    pub async fn plan(&self, now: OffsetDateTime) -> Result<Vec<Notice>, StalledError> {
        Ok(self
            .decide(now)
            .await?
            .into_iter()
            .map(|(notice, ..)| notice)
            .collect())
    }

    async fn decide(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<(Notice, StalledState, Option<u64>, i64)>, StalledError> {
        let records = self.progress.all().await?;
        let people = directory::load(self.directory.as_ref()).await?;
        let after = time::Duration::try_from(self.after).unwrap_or(time::Duration::MAX);
        let remind = time::Duration::try_from(self.remind).unwrap_or(time::Duration::MAX);
        // Each key result's state, read a few at a time (one read each, whether or not
        // it is stalled: an open alert must be resolved when it no longer holds).
        let key_results: Vec<Tracked> = records
            .into_iter()
            .filter(|r| r.kind == "key_result")
            .collect();
        let mut states = Vec::with_capacity(key_results.len());
        for chunk in key_results.chunks(STATE_READS) {
            let reads = chunk.iter().map(|record| {
                let key = state_key(record);
                async move { self.store.load_state(&key, now).await }
            });
            states.extend(futures::future::join_all(reads).await);
        }
        let mut decided = Vec::new();
        for (record, stored) in key_results.into_iter().zip(states) {
            let stored = stored?;
            let holds = !record.deleted
                && is_stalled(
                    record.updated_at,
                    record.completed,
                    record.period,
                    now,
                    after,
                );
            let (state, version) = match &stored {
                Some(versioned) => (
                    serde_json::from_str::<StalledState>(&versioned.value).ok(),
                    Some(versioned.version),
                ),
                None => (None, None),
            };
            let open = state.as_ref().filter(|s| s.open);
            let action = match (holds, open) {
                (true, None) => Action::Open,
                (true, Some(s)) if record.updated_at > s.since => Action::Resolve,
                (true, Some(s)) if now - s.alerted_at >= remind => Action::Remind,
                (false, Some(_)) => Action::Resolve,
                _ => continue,
            };
            let (owner, route) = match (action, open) {
                (Action::Resolve, Some(s)) => (owner_name(&people, &record), s.route.clone()),
                _ => route(&people, &record),
            };
            let next = StalledState {
                open: action != Action::Resolve,
                since: match (action, open) {
                    (Action::Remind, Some(s)) => s.since,
                    _ => record.updated_at,
                },
                alerted_at: match (action, open) {
                    (Action::Resolve, Some(s)) => s.alerted_at,
                    _ => now,
                },
                route: route.clone(),
            };
            let days = (now - record.updated_at).whole_days();
            // What the messages' claims are keyed by: the same until the state is
            // written, so a check retried after a failed or lost send repeats none.
            let stamp = match (action, open) {
                (Action::Open, _) | (_, None) => record.updated_at,
                (_, Some(s)) => s.alerted_at,
            }
            .unix_timestamp();
            let period_over = action == Action::Resolve
                && !record.completed
                && !record.deleted
                && open.is_some_and(|s| record.updated_at <= s.since);
            decided.push((
                Notice {
                    action,
                    record,
                    owner,
                    route,
                    days,
                    period_over,
                },
                next,
                version,
                stamp,
            ));
        }
        Ok(decided)
    }

    /// Check at `now` and send what it finds, within `deadline`.
    pub async fn run(
        &self,
        now: OffsetDateTime,
        deadline: Instant,
    ) -> Result<Report, StalledError> {
        let guard = Guard::new(self.store.clone(), KEEP, "stalled", Arc::new(NoMetrics));
        let mut report = Report::default();
        for (notice, next, version, stamp) in self.decide(now).await? {
            let base = format!(
                "stalled:{}:{}:{stamp}",
                notice.record.key(),
                notice.action.as_str()
            );
            let mut all_out = true;
            for (destination, send) in self.sends(&notice) {
                let key = format!("{base}:{destination}");
                match guard.claim(key, &notice.record.last_event, deadline).await {
                    Claimed::Done => report.already_sent += 1,
                    Claimed::Busy | Claimed::Failed(_) => {
                        report.failed += 1;
                        all_out = false;
                    }
                    Claimed::Held(held) => {
                        let ran = guard
                            .run(&[held], Duration::ZERO, deadline, || self.deliver(&send))
                            .await;
                        match ran {
                            Ran::Done => report.sent += 1,
                            Ran::Failed(error) if error.is_refusal() => {
                                tracing::warn!(key_result = %notice.record.key(), destination, error = %okr_core::error_chain(&error), "stalled alert refused");
                                report.refused += 1;
                            }
                            Ran::Failed(error) => {
                                tracing::warn!(key_result = %notice.record.key(), destination, error = %okr_core::error_chain(&error), "stalled alert not sent; the next check tries again");
                                report.failed += 1;
                                all_out = false;
                            }
                            Ran::NoTime | Ran::NotMarked => {
                                report.failed += 1;
                                all_out = false;
                            }
                        }
                    }
                }
            }
            if !all_out {
                continue;
            }
            let value = serde_json::to_string(&next).unwrap_or_default();
            let saved = self
                .store
                .save_state(&StateWrite {
                    key: &state_key(&notice.record),
                    expected: version,
                    value: &value,
                    now,
                    keep: KEEP,
                })
                .await?;
            if !saved {
                // Another check wrote first; its claims kept the sends single.
                continue;
            }
            match notice.action {
                Action::Open => report.opened += 1,
                Action::Remind => report.reminded += 1,
                Action::Resolve => report.resolved += 1,
            }
            tracing::info!(key_result = %notice.record.key(), action = notice.action.as_str(), "stalled alert");
        }
        Ok(report)
    }

    /// The sends of `notice`, each with its destination's name.
    fn sends(&self, notice: &Notice) -> Vec<(&'static str, Send)> {
        let mut sends = Vec::new();
        if let Route::TeamLead {
            email: Some(address),
            ..
        } = &notice.route
        {
            if self.to.mailer.is_some() {
                sends.push(("email", Send::Email(email(notice, address))));
            }
            if self.to.direct.is_some() {
                let line = okr_pipeline::outbound::slack::truncate(
                    &okr_pipeline::outbound::slack::escape(&text(notice)),
                    2900,
                );
                sends.push(("slack-dm", Send::Direct(address.clone(), line)));
            }
        }
        if self.to.channel.is_some() {
            sends.push(("alerts-channel", Send::Channel(channel_message(notice))));
        }
        if self.to.pagerduty.is_some() {
            sends.push(("pagerduty", Send::Pager(pagerduty_alert(notice))));
        }
        sends
    }

    async fn deliver(&self, send: &Send) -> Result<(), DeliveryError> {
        let missing =
            || DeliveryError::unavailable(okr_pipeline::outbound::Service::Slack, "not configured");
        match send {
            Send::Email(message) => match &self.to.mailer {
                Some(mailer) => mailer.send(message).await,
                None => Err(missing()),
            },
            Send::Direct(address, line) => match &self.to.direct {
                Some(direct) => direct.send(address, line).await,
                None => Err(missing()),
            },
            Send::Channel(message) => match &self.to.channel {
                Some(channel) => channel.post(message).await,
                None => Err(missing()),
            },
            Send::Pager(alert) => match &self.to.pagerduty {
                Some(pagerduty) => pagerduty.send(alert).await,
                None => Err(missing()),
            },
        }
    }
}

/// One message to one destination.
#[derive(Debug, Clone)]
enum Send {
    Email(okr_pipeline::outbound::mail::Email),
    Direct(String, String),
    Channel(okr_pipeline::outbound::slack::SlackMessage),
    Pager(okr_pipeline::outbound::pagerduty::Alert),
}

/// The directory's name for the key result's owner, else the provider's: a name (or
/// an id), never an email address, since it goes into Slack and PagerDuty.
fn owner_name(people: &Directory, record: &Tracked) -> Option<String> {
    let owner = record.owner()?;
    match people.resolve(&owner) {
        Some((person, _)) => Some(name_of(person)),
        None => owner.name.clone().or_else(|| owner.id.clone()),
    }
}

/// A person's name, else their HR id.
fn name_of(person: &crate::directory::Record) -> String {
    person
        .person
        .name
        .clone()
        .unwrap_or_else(|| person.person.id.clone())
}

/// Who hears of a stalled key result: the owner's team lead (their manager in the
/// directory, or the manager the owner's HR record names, with an email), else the
/// alerts channel saying why.
fn route(people: &Directory, record: &Tracked) -> (Option<String>, Route) {
    let Some(owner) = record.owner() else {
        return (None, Route::OwnerUnknown);
    };
    let Some((person, _)) = people.resolve(&owner) else {
        return (owner.name.clone().or(owner.id.clone()), Route::OwnerUnknown);
    };
    let name = Some(name_of(person));
    if !person.active() {
        return (name, Route::OwnerInactive);
    }
    match people.team_lead(&person.key()) {
        Some(lead) if lead.active() => (
            name,
            Route::TeamLead {
                name: lead.name,
                email: lead.email,
            },
        ),
        _ => (name, Route::NoTeamLead),
    }
}

/// PagerDuty's action for `action`.
pub fn pager_action(action: Action) -> PagerAction {
    match action {
        Action::Open | Action::Remind => PagerAction::Trigger,
        Action::Resolve => PagerAction::Resolve,
    }
}

//! The Slack notifier: one Block Kit message per notable event (or one digest for a
//! burst), posted exactly once per event, within Slack's rate limits.

pub mod message;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tokio::time::Instant;

use crate::directory::{Directory, DirectoryStore};
use message::{digest_message, event_message_in};
use okr_core::event::Event;
use okr_core::routing::NotifyRules;
use okr_pipeline::batch::{BatchFailure, BatchReport, failure_of};
use okr_pipeline::breaker::{Breaker, BreakerConfig, Outcome, SLACK};
use okr_pipeline::idempotency::IdempotencyStore;
use okr_pipeline::idempotency::guard::{Claimed, Guard, Held, Ran};
use okr_pipeline::journal::{Journal, Journey};
use okr_pipeline::metrics::{MetricsSink, NoMetrics};
use okr_pipeline::outbound::slack::{SlackMessage, SlackPoster};
use okr_pipeline::outbound::{DeliveryError, MIN_INTERVAL, Service, deliver};
use okr_pipeline::retry::{Failure, Retries};

/// More notable events than this in one batch become one digest message.
pub const DEFAULT_DIGEST_THRESHOLD: usize = 5;
/// How long a posted event is remembered: longer than SQS keeps a message in the
/// dead-letter queue (14 days), so a redrive does not post it again.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(15 * 24 * 3600);

/// The notifier and its ports.
pub struct SlackNotifier {
    poster: Arc<dyn SlackPoster>,
    /// The directory, for the owner's department, read again at most every so often.
    directory: Option<(Arc<dyn DirectoryStore>, DirectoryCache)>,
    guard: Guard,
    rules: NotifyRules,
    digest_threshold: usize,
    min_interval: Duration,
    retries: Retries,
    breaker: Arc<Breaker>,
    metrics: Arc<dyn MetricsSink>,
    journey: Journey,
}

/// The notifier's name in metrics.
const SERVICE: &str = "slack-notifier";
/// Its destination's name, in its circuit breaker.
const DESTINATION: &str = okr_pipeline::breaker::SLACK;

/// A record whose event this invocation claimed: its message id, the event, the claim.
type Entry = (Option<String>, Event, Held);

impl SlackNotifier {
    /// A notifier posting through `poster`, remembering posts in `idempotency`.
    pub fn new(
        poster: Arc<dyn SlackPoster>,
        idempotency: Arc<dyn IdempotencyStore>,
        rules: NotifyRules,
        digest_threshold: usize,
    ) -> Self {
        SlackNotifier {
            poster,
            directory: None,
            breaker: BreakerConfig::default().breaker(DESTINATION, idempotency.clone()),
            guard: Guard::new(
                idempotency,
                DEFAULT_DEDUP_WINDOW,
                SERVICE,
                Arc::new(NoMetrics),
            ),
            rules,
            digest_threshold,
            min_interval: MIN_INTERVAL,
            retries: Retries::default(),
            metrics: Arc::new(NoMetrics),
            journey: Journey::logged(okr_core::routing::Consumer::Slack.as_str()),
        }
    }

    /// Record each event's steps in `journal` (by default, as log lines).
    pub fn journaling(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journey = self.journey.writing_to(journal);
        self
    }

    /// Name the owner's department from `directory` in each message, reading it again
    /// at most every `every`.
    pub fn with_directory(mut self, directory: Arc<dyn DirectoryStore>, every: Duration) -> Self {
        self.directory = Some((directory, DirectoryCache::new(every)));
        self
    }

    /// The department of `event`'s owner (its named owner, else who made the change),
    /// when the directory knows them; a directory that cannot be read names none.
    async fn department(&self, event: &Event) -> Option<String> {
        let (store, cache) = self.directory.as_ref()?;
        let owner = event.owner.clone().or_else(|| {
            let name = event.actor.as_ref()?.name.clone()?;
            Some(okr_core::person::Owner {
                name: Some(name),
                ..Default::default()
            })
        })?;
        let directory = cache.get(store.as_ref()).await?;
        let (person, _) = directory.resolve(&owner)?;
        person.person.department.clone()
    }

    /// Make its circuit breaker by `config` (its state in the idempotency store).
    pub fn breaking(mut self, config: &BreakerConfig) -> Self {
        self.breaker = config.breaker(DESTINATION, self.guard.store().clone());
        self
    }

    /// Its circuit breaker.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// Hold a started post's claim at least `hold` (the queue's visibility timeout, so
    /// no other delivery can repeat it while SQS hides the message), and count what must
    /// be looked at (`SendsNotRecorded`) in `metrics`.
    pub fn guarded(mut self, hold: Duration, metrics: Arc<dyn MetricsSink>) -> Self {
        self.guard = self.guard.with_min_hold(hold).with_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    /// Set when failed records are seen again.
    pub fn retrying(mut self, retries: Retries) -> Self {
        self.retries = retries;
        self
    }

    /// Change the pause between two posts of one batch (tests).
    pub fn with_min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    /// Handle one SQS batch; `deadline` is when the invocation must have answered.
    /// The notable events are claimed first; more than the digest threshold of them go
    /// out as one digest, fewer one message each, a second apart. While Slack's circuit
    /// breaker is open nothing is claimed or posted: the records wait their turn.
    pub async fn handle(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, BatchFailure> {
        let mut report = BatchReport::new(&batch, &self.journey);
        let notable = self.notable(batch, &mut report);
        if notable.is_empty() {
            return report.finish(&self.retries, Some(deadline)).await;
        }
        let mut deferred = 0;
        if let Some(open) = self.breaker.holding(Some(deadline)).await {
            for (message_id, event) in &notable {
                tracing::info!(event_id = %event.id, destination = SLACK, open_for_s = open.open_for.as_secs(), outcome = "deferred", "Slack's circuit breaker is open; not posting now");
                report.fail_because(
                    message_id.as_deref(),
                    Failure::HeldBack,
                    "Slack's circuit breaker is open".into(),
                );
            }
            deferred = notable.len();
        } else {
            let claimed = self.claim(notable, deadline, &mut report).await;
            let groups: Vec<Vec<Entry>> = if claimed.len() > self.digest_threshold {
                vec![claimed]
            } else {
                claimed.into_iter().map(|entry| vec![entry]).collect()
            };
            let mut groups = groups.into_iter();
            let mut pause = Duration::ZERO;
            while let Some(group) = groups.next() {
                let posted = self.post_group(group, pause, deadline, &mut report).await;
                deferred += posted.held_back;
                if let Some(failure) = posted.stop {
                    // No time left, or Slack is down: the rest wait for a retry too.
                    let rest: Vec<Entry> = groups.flatten().collect();
                    if failure == Failure::HeldBack {
                        deferred += rest.len();
                    }
                    self.give_back(&rest, failure, deadline, &mut report).await;
                    break;
                }
                pause = self.min_interval;
            }
        }
        self.metrics
            .breaker(SERVICE, &self.breaker.metric(deferred));
        report.finish(&self.retries, Some(deadline)).await
    }

    /// The records of `batch` that notify: decoded, and matching the rules. A record
    /// that is not an event fails as refused.
    fn notable(&self, batch: SqsEvent, report: &mut BatchReport) -> Vec<(Option<String>, Event)> {
        let mut notable = Vec::new();
        for record in batch.records {
            let Some(event) = report.decode(&record) else {
                continue;
            };
            if self.rules.matches(&event.event_type)
                || event.replay.as_ref().is_some_and(|r| r.all_types)
            {
                notable.push((record.message_id, event));
            } else {
                tracing::info!(event_id = %event.id, destination = SLACK, r#type = %event.event_type, outcome = "no_rule", "nothing to post");
                report.done(
                    record.message_id.as_deref(),
                    "skipped",
                    format!("no rule posts {}", event.event_type),
                );
            }
        }
        notable
    }

    /// Claim the notable events, all in one store call; those posted before are done,
    /// those another delivery holds (or the store could not claim) fail for a retry.
    async fn claim(
        &self,
        notable: Vec<(Option<String>, Event)>,
        deadline: Instant,
        report: &mut BatchReport,
    ) -> Vec<Entry> {
        let wanted = notable
            .iter()
            .map(|(_, event)| (claim_key(event), event.id.clone()))
            .collect();
        let claims = self.guard.claim_all(wanted, deadline).await;
        let mut claimed = Vec::new();
        for ((message_id, event), claim) in notable.into_iter().zip(claims) {
            match claim {
                Claimed::Held(held) => claimed.push((message_id, event, held)),
                Claimed::Done => {
                    tracing::info!(event_id = %event.id, destination = SLACK, outcome = "already_posted", "posted before; skipping");
                    report.done(message_id.as_deref(), "skipped", "posted before".into());
                }
                Claimed::Busy => {
                    tracing::info!(event_id = %event.id, destination = SLACK, outcome = "in_progress", "another delivery is posting it; retry later");
                    report.fail_because(
                        message_id.as_deref(),
                        Failure::Transient,
                        "another delivery is posting it".into(),
                    );
                }
                Claimed::Failed(_) => report.fail_because(
                    message_id.as_deref(),
                    Failure::Transient,
                    "the idempotency store did not answer".into(),
                ),
            }
        }
        claimed
    }

    /// After `pause`, post one group (one event's message, or a digest of more) through
    /// the guard and the breaker, and settle each record.
    async fn post_group(
        &self,
        group: Vec<Entry>,
        pause: Duration,
        deadline: Instant,
        report: &mut BatchReport,
    ) -> Posted {
        let (message, kind) = match group.as_slice() {
            [(_, event, _)] => (
                event_message_in(event, self.department(event).await.as_deref()),
                "message",
            ),
            _ => {
                let events: Vec<Event> = group.iter().map(|(_, e, _)| e.clone()).collect();
                (digest_message(&events), "digest")
            }
        };
        let size = group.len();
        let (records, claims): (Vec<_>, Vec<Held>) = group
            .into_iter()
            .map(|(message_id, event, held)| ((message_id, event), held))
            .unzip();
        let ran = self
            .post_through_breaker(&claims, &message, pause, deadline)
            .await;
        let failure = match &ran {
            Ran::Done => None,
            Ran::Failed(error) => Some(failure_of(error)),
            Ran::NoTime | Ran::NotMarked => Some(Failure::Transient),
        };
        for (message_id, event) in &records {
            match &ran {
                Ran::Done => {
                    tracing::info!(event_id = %event.id, destination = SLACK, r#type = %event.event_type, outcome = "posted", kind, "posted to Slack");
                    let detail = match size {
                        1 => "one message".to_owned(),
                        n => format!("in a digest of {n} events"),
                    };
                    report.done(message_id.as_deref(), "posted", detail);
                    continue;
                }
                Ran::Failed(error) if error.is_refusal() => {
                    tracing::error!(event_id = %event.id, destination = SLACK, error = %okr_core::error_chain(error), outcome = "refused", "Slack refused the message; it will reach the dead-letter queue")
                }
                Ran::Failed(error) => {
                    tracing::warn!(event_id = %event.id, destination = SLACK, error = %okr_core::error_chain(error), outcome = "retry", "post failed; SQS will retry")
                }
                Ran::NoTime | Ran::NotMarked => {
                    tracing::info!(event_id = %event.id, destination = SLACK, outcome = "retry", "not posted in this invocation; SQS will retry")
                }
            }
            if let Some(failure) = failure {
                let why = match &ran {
                    Ran::Failed(error) => okr_pipeline::batch::why_of(error),
                    _ => "not posted in this invocation".to_owned(),
                };
                report.fail_because(message_id.as_deref(), failure, why);
            }
        }
        Posted {
            held_back: match &ran {
                Ran::Failed(error) if error.is_held_back() => records.len(),
                _ => 0,
            },
            stop: match ran {
                Ran::NoTime => Some(Failure::Transient),
                Ran::Failed(error) if error.is_held_back() => Some(Failure::HeldBack),
                Ran::Failed(error) if error.is_outage() => Some(Failure::Transient),
                _ => None,
            },
        }
    }

    /// Post `message` for `claims` through the guard, if Slack's breaker lets it, and
    /// tell the breaker what came of it (after the claims are settled, so that never
    /// takes their time).
    async fn post_through_breaker(
        &self,
        claims: &[Held],
        message: &SlackMessage,
        pause: Duration,
        deadline: Instant,
    ) -> Ran<DeliveryError> {
        let post = async {
            let ran = self
                .guard
                .run(claims, pause, deadline, || self.post(message, deadline))
                .await;
            let outcome = Outcome::of_ran(&ran);
            (ran, outcome)
        };
        match self.breaker.call(Some(deadline), post).await {
            Ok(ran) => ran,
            Err(open) => {
                self.guard.release(claims, deadline).await;
                Ran::Failed(DeliveryError::unavailable(Service::Slack, open))
            }
        }
    }

    /// Release these claims and fail their records as `failure`, for SQS's retry.
    async fn give_back(
        &self,
        entries: &[Entry],
        failure: Failure,
        deadline: Instant,
        report: &mut BatchReport,
    ) {
        for (message_id, event, held) in entries {
            tracing::info!(event_id = %event.id, destination = SLACK, outcome = "retry", "not posted in this invocation; SQS will retry");
            self.guard
                .release(std::slice::from_ref(held), deadline)
                .await;
            report.fail_because(
                message_id.as_deref(),
                failure,
                "not posted in this invocation".into(),
            );
        }
    }

    async fn post(&self, message: &SlackMessage, deadline: Instant) -> Result<(), DeliveryError> {
        deliver(Service::Slack, deadline, || self.poster.post(message)).await
    }
}

/// What posting one group came to, for the rest of the batch.
struct Posted {
    /// Records not posted because the breaker was open.
    held_back: usize,
    /// Why the rest of the batch is not posted now, if it is not.
    stop: Option<Failure>,
}

/// The notifier's idempotency key for `event` (scoped to a forced replay's name).
pub fn claim_key(event: &Event) -> String {
    key_for(&event.key_scope(), &event.id)
}

/// The notifier's idempotency key for the event `event_id` in `scope`
/// ([`Event::key_scope`]).
pub fn key_for(scope: &str, event_id: &str) -> String {
    format!("{scope}slack:{event_id}")
}

/// The directory as last read, for a while.
struct DirectoryCache {
    every: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Arc<Directory>)>>,
}

impl DirectoryCache {
    fn new(every: Duration) -> Self {
        DirectoryCache {
            every,
            last: tokio::sync::Mutex::new(None),
        }
    }

    async fn get(&self, store: &dyn DirectoryStore) -> Option<Arc<Directory>> {
        let mut cached = self.last.lock().await;
        if let Some((at, directory)) = cached.as_ref()
            && at.elapsed() < self.every
        {
            return Some(directory.clone());
        }
        match crate::directory::load(store).await {
            Ok(directory) => {
                let directory = Arc::new(directory);
                *cached = Some((Instant::now(), directory.clone()));
                Some(directory)
            }
            Err(error) => {
                tracing::warn!(error = %okr_core::error_chain(&error), "could not read the directory: messages name no department");
                None
            }
        }
    }
}

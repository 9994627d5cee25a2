//! The Slack notifier: one Block Kit message per notable event (or one digest for a
//! burst), posted exactly once per event, within Slack's rate limits.

pub mod message;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tokio::time::Instant;

use crate::batch::{BatchReport, UnreportableFailure, decode};
use crate::event::Event;
use crate::idempotency::IdempotencyStore;
use crate::idempotency::guard::{Claimed, Guard, Held, Ran};
use crate::metrics::{MetricsSink, NoMetrics};
use crate::outbound::slack::{SlackMessage, SlackPoster};
use crate::outbound::{DeliveryError, MIN_INTERVAL, Service, deliver};
use crate::retry::{Failure, Retries};
use crate::routing::NotifyRules;
use message::{digest_message, event_message};

/// More notable events than this in one batch become one digest message.
pub const DEFAULT_DIGEST_THRESHOLD: usize = 5;
/// How long a posted event is remembered: longer than SQS keeps a message in the
/// dead-letter queue (14 days), so a redrive does not post it again.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(15 * 24 * 3600);

/// The notifier and its ports.
pub struct SlackNotifier {
    poster: Arc<dyn SlackPoster>,
    guard: Guard,
    rules: NotifyRules,
    digest_threshold: usize,
    min_interval: Duration,
    retries: Retries,
}

/// The notifier's name in metrics.
const SERVICE: &str = "slack-notifier";

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
        }
    }

    /// Hold a started post's claim at least `hold` (the queue's visibility timeout, so
    /// no other delivery can repeat it while SQS hides the message), and count what must
    /// be looked at (`SendsNotRecorded`) in `metrics`.
    pub fn guarded(mut self, hold: Duration, metrics: Arc<dyn MetricsSink>) -> Self {
        self.guard = self.guard.with_min_hold(hold).with_metrics(metrics);
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
    /// out as one digest, fewer one message each, a second apart.
    pub async fn handle(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, UnreportableFailure> {
        let mut report = BatchReport::new(&batch);
        let mut claimed: Vec<Entry> = Vec::new();
        for record in batch.records {
            let message_id = record.message_id.clone();
            let event = match decode(&record) {
                Ok(event) => event,
                Err(error) => {
                    tracing::error!(message_id = ?message_id, error = %error, "record is not an event");
                    report.fail(message_id.as_deref(), Failure::Refused);
                    continue;
                }
            };
            if !self.rules.matches(&event.event_type) {
                tracing::info!(event_id = %event.id, r#type = %event.event_type, outcome = "no_rule", "nothing to post");
                continue;
            }
            match self
                .guard
                .claim(claim_key(&event), &event.id, deadline)
                .await
            {
                Claimed::Held(held) => claimed.push((message_id, event, held)),
                Claimed::Done => {
                    tracing::info!(event_id = %event.id, outcome = "already_posted", "posted before; skipping");
                }
                Claimed::Busy => {
                    tracing::info!(event_id = %event.id, outcome = "in_progress", "another delivery is posting it; retry later");
                    report.fail(message_id.as_deref(), Failure::Transient);
                }
                Claimed::Failed(_) => report.fail(message_id.as_deref(), Failure::Transient),
            }
        }
        if claimed.len() > self.digest_threshold {
            self.post_group(claimed, Duration::ZERO, deadline, &mut report)
                .await;
        } else {
            let mut entries = claimed.into_iter();
            let mut pause = Duration::ZERO;
            while let Some(entry) = entries.next() {
                if !self
                    .post_group(vec![entry], pause, deadline, &mut report)
                    .await
                {
                    let rest: Vec<Entry> = entries.collect();
                    self.give_back(&rest, deadline, &mut report).await;
                    break;
                }
                pause = self.min_interval;
            }
        }
        report.finish(&self.retries, Some(deadline)).await
    }

    /// After `pause`, post one group (one event's message, or a digest of more) through
    /// the guard, and settle each record. False when there was no time left for it: the
    /// group was given back, and so should the rest be.
    async fn post_group(
        &self,
        group: Vec<Entry>,
        pause: Duration,
        deadline: Instant,
        report: &mut BatchReport,
    ) -> bool {
        let (message, kind) = match group.as_slice() {
            [(_, event, _)] => (event_message(event), "message"),
            _ => {
                let events: Vec<Event> = group.iter().map(|(_, e, _)| e.clone()).collect();
                (digest_message(&events), "digest")
            }
        };
        let (records, claims): (Vec<_>, Vec<Held>) = group
            .into_iter()
            .map(|(message_id, event, held)| ((message_id, event), held))
            .unzip();
        let ran = self
            .guard
            .run(&claims, pause, deadline, || self.post(&message, deadline))
            .await;
        let failure = match &ran {
            Ran::Failed(error) if error.is_refusal() => Failure::Refused,
            _ => Failure::Transient,
        };
        for (message_id, event) in &records {
            match &ran {
                Ran::Done => {
                    tracing::info!(event_id = %event.id, r#type = %event.event_type, outcome = "posted", kind, "posted to Slack");
                    continue;
                }
                Ran::Failed(error) if error.is_refusal() => {
                    tracing::error!(event_id = %event.id, error = %crate::error_chain(error), outcome = "refused", "Slack refused the message; it will reach the dead-letter queue")
                }
                Ran::Failed(error) => {
                    tracing::warn!(event_id = %event.id, error = %crate::error_chain(error), outcome = "retry", "post failed; SQS will retry")
                }
                Ran::NoTime | Ran::NotMarked => {
                    tracing::info!(event_id = %event.id, outcome = "retry", "not posted in this invocation; SQS will retry")
                }
            }
            report.fail(message_id.as_deref(), failure);
        }
        !matches!(ran, Ran::NoTime)
    }

    /// Release these claims and fail their records, for SQS's retry.
    async fn give_back(&self, entries: &[Entry], deadline: Instant, report: &mut BatchReport) {
        for (message_id, event, held) in entries {
            tracing::info!(event_id = %event.id, outcome = "retry", "not posted in this invocation; SQS will retry");
            self.guard
                .release(std::slice::from_ref(held), deadline)
                .await;
            report.fail(message_id.as_deref(), Failure::Transient);
        }
    }

    async fn post(&self, message: &SlackMessage, deadline: Instant) -> Result<(), DeliveryError> {
        deliver(Service::Slack, deadline, || self.poster.post(message)).await
    }
}

fn claim_key(event: &Event) -> String {
    format!("slack:{}", event.id)
}

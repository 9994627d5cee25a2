//! The Slack notifier: one Block Kit message per notable event (or one digest for a
//! burst), posted exactly once per event, within Slack's rate limits.

pub mod message;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::batch::{BatchReport, UnreportableFailure, decode};
use crate::config::CONSUMER_AWS_CALL;
use crate::event::Event;
use crate::idempotency::{Claim, ClaimToken, IdempotencyStore, record_done};
use crate::metrics::{MetricsSink, NoMetrics};
use crate::routing::NotifyRules;
use message::{SlackMessage, digest_message, event_message};
use webhook::{PostError, SlackPoster};

/// More notable events than this in one batch become one digest message.
pub const DEFAULT_DIGEST_THRESHOLD: usize = 5;
/// How long a posted event is remembered: longer than SQS keeps a message in the
/// dead-letter queue (14 days), so a redrive does not post it again.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(15 * 24 * 3600);
/// Slack allows about one message per second per webhook.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// A 429 asking to wait longer than this fails the record for SQS to retry later.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(15);
/// Time kept back before the deadline to record outcomes and answer; a post is cut
/// short there, and none starts with less than this (plus a moment to send) left.
pub const POST_BUDGET: Duration = Duration::from_millis(500);
/// The least time worth starting a post with.
const MIN_POST_TIME: Duration = Duration::from_millis(300);

/// The notifier and its ports.
pub struct SlackNotifier {
    poster: Arc<dyn SlackPoster>,
    idempotency: Arc<dyn IdempotencyStore>,
    rules: NotifyRules,
    digest_threshold: usize,
    dedup_window: Duration,
    min_interval: Duration,
    min_hold: Duration,
    metrics: Arc<dyn MetricsSink>,
}

/// The notifier's name in metrics.
const SERVICE: &str = "slack-notifier";

/// A record whose event this invocation claimed: its message id, the event, the claim.
type Claimed = (Option<String>, Event, ClaimToken);

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
            idempotency,
            rules,
            digest_threshold,
            dedup_window: DEFAULT_DEDUP_WINDOW,
            min_interval: MIN_INTERVAL,
            min_hold: Duration::ZERO,
            metrics: Arc::new(NoMetrics),
        }
    }

    /// Hold every claim at least `hold`: the queue's visibility timeout, so no other
    /// delivery of an event can post it while SQS still hides the message.
    pub fn with_claim_hold(mut self, hold: Duration) -> Self {
        self.min_hold = hold;
        self
    }

    /// Count what must be looked at (`SendsNotRecorded`) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<dyn MetricsSink>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Change the pause between two posts of one batch (tests).
    pub fn with_min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    /// Handle one SQS batch; `deadline` is when the invocation must have answered.
    pub async fn handle(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, UnreportableFailure> {
        let batch_size = batch.records.len();
        let mut report = BatchReport::default();
        let now = OffsetDateTime::now_utc();
        // A claim outlives this invocation a little, so a crash frees it soon after; once
        // its post starts it is held longer (`mark_sending`).
        let hold = deadline.saturating_duration_since(Instant::now()) + POST_BUDGET;
        let mut claimed: Vec<Claimed> = Vec::new();
        for record in batch.records {
            let message_id = record.message_id.clone();
            let event = match decode(&record) {
                Ok(event) => event,
                Err(error) => {
                    tracing::error!(message_id = ?message_id, error = %error, "record is not an event");
                    report.fail(message_id.as_deref());
                    continue;
                }
            };
            if !self.rules.matches(&event.event_type) {
                tracing::info!(event_id = %event.id, r#type = %event.event_type, outcome = "no_rule", "nothing to post");
                continue;
            }
            match self.idempotency.begin(&claim_key(&event), now, hold).await {
                Ok(Claim::Proceed(token)) => claimed.push((message_id, event, token)),
                Ok(Claim::Completed) => {
                    tracing::info!(event_id = %event.id, outcome = "already_posted", "posted before; skipping");
                }
                Ok(Claim::InProgress) => {
                    tracing::info!(event_id = %event.id, outcome = "in_progress", "another delivery is posting it; retry later");
                    report.fail(message_id.as_deref());
                }
                Err(error) => {
                    tracing::error!(event_id = %event.id, error = %crate::error_chain(&error), "idempotency store failed");
                    report.fail(message_id.as_deref());
                }
            }
        }

        if claimed.len() > self.digest_threshold {
            self.post_group(&claimed, Duration::ZERO, deadline, &mut report)
                .await;
        } else {
            for (index, entry) in claimed.iter().enumerate() {
                let pause = if index > 0 {
                    self.min_interval
                } else {
                    Duration::ZERO
                };
                let group = std::slice::from_ref(entry);
                if !self.post_group(group, pause, deadline, &mut report).await {
                    self.give_back(&claimed[index + 1..], deadline, &mut report)
                        .await;
                    break;
                }
            }
        }
        report.into_response(batch_size)
    }

    /// After `pause`, post one group: one event's message, or a digest of more. Each claim
    /// is marked sending, the post made, and each outcome settled. Without time for all
    /// that (the store's calls around the post included) before `deadline`, nothing is
    /// posted and the group is given back for SQS's retry, and false says so; a claim
    /// that cannot be marked gives the group back too, since its post would not stay
    /// protected after this invocation.
    async fn post_group(
        &self,
        group: &[Claimed],
        pause: Duration,
        deadline: Instant,
        report: &mut BatchReport,
    ) -> bool {
        let needed = pause + 2 * CONSUMER_AWS_CALL + MIN_POST_TIME + POST_BUDGET;
        if deadline.saturating_duration_since(Instant::now()) < needed {
            self.give_back(group, deadline, report).await;
            return false;
        }
        tokio::time::sleep(pause).await;
        if !self.mark_sending(group, deadline).await {
            self.give_back(group, deadline, report).await;
            return true;
        }
        let (message, kind) = match group {
            [(_, event, _)] => (event_message(event), "message"),
            _ => {
                let events: Vec<Event> = group.iter().map(|(_, e, _)| e.clone()).collect();
                (digest_message(&events), "digest")
            }
        };
        let posted = self.post(&message, deadline).await;
        for entry in group {
            self.settle(entry, &posted, kind, deadline, report).await;
        }
        true
    }

    /// Release these claims (as far as the time allows: else they lapse by themselves)
    /// and fail their records, for SQS's retry.
    async fn give_back(&self, group: &[Claimed], deadline: Instant, report: &mut BatchReport) {
        for (message_id, event, token) in group {
            tracing::info!(event_id = %event.id, outcome = "retry", "not posted in this invocation; SQS will retry");
            self.release(event, token, deadline).await;
            report.fail(message_id.as_deref());
        }
    }

    /// Drop the claim on `event`, within the time left before `deadline`.
    async fn release(&self, event: &Event, token: &ClaimToken, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now() + POST_BUDGET);
        let key = claim_key(event);
        let released = self.idempotency.release(&key, token);
        let error = match tokio::time::timeout(left, released).await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => crate::error_chain(&error),
            Err(_) => "no answer before the deadline".to_owned(),
        };
        tracing::error!(event_id = %event.id, error, "could not release the claim; it lapses by itself");
    }

    /// Record that these events' post starts now (see `IdempotencyStore::sending`),
    /// held from now on at least as long as SQS hides the message. False, after logging
    /// why, when one cannot be marked within the time left.
    async fn mark_sending(&self, group: &[Claimed], deadline: Instant) -> bool {
        for (_, event, token) in group {
            let left = deadline.saturating_duration_since(Instant::now());
            let hold = (left + POST_BUDGET).max(self.min_hold);
            let key = claim_key(event);
            let marked = self
                .idempotency
                .sending(&key, token, OffsetDateTime::now_utc(), hold);
            let error = match tokio::time::timeout(left.saturating_sub(POST_BUDGET), marked).await {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => crate::error_chain(&error),
                Err(_) => "no answer before the deadline".to_owned(),
            };
            tracing::error!(event_id = %event.id, error, "could not mark the post as sending; not posting it now");
            return false;
        }
        true
    }

    async fn post(&self, message: &SlackMessage, deadline: Instant) -> Result<(), PostError> {
        deliver(deadline, || self.poster.post(message)).await
    }

    /// Record the outcome of a post for one event: completed, or released and failed.
    async fn settle(
        &self,
        (message_id, event, token): &Claimed,
        posted: &Result<(), PostError>,
        kind: &str,
        deadline: Instant,
        report: &mut BatchReport,
    ) {
        let key = claim_key(event);
        match posted {
            Ok(()) => {
                tracing::info!(event_id = %event.id, r#type = %event.event_type, outcome = "posted", kind, "posted to Slack");
                // Posted: acknowledged whether or not the record is written.
                record_done(
                    self.idempotency.as_ref(),
                    &key,
                    self.dedup_window,
                    deadline,
                    self.metrics.as_ref(),
                    SERVICE,
                    &event.id,
                )
                .await;
            }
            Err(error) => {
                match error {
                    PostError::Permanent { .. } => {
                        tracing::error!(event_id = %event.id, error = %error, outcome = "refused", "Slack refused the message; it will reach the dead-letter queue")
                    }
                    _ => {
                        tracing::warn!(event_id = %event.id, error = %error, outcome = "retry", "post failed; SQS will retry")
                    }
                }
                self.release(event, token, deadline).await;
                report.fail(message_id.as_deref());
            }
        }
    }
}

/// Run `attempt` (a post), ending before `deadline` so a timeout never strands a claim,
/// and waiting out a 429 whose `Retry-After` is short and fits the time left.
pub async fn deliver<F, Fut>(deadline: Instant, attempt: F) -> Result<(), PostError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), PostError>>,
{
    loop {
        let Some(left) = deadline
            .checked_duration_since(Instant::now() + POST_BUDGET)
            .filter(|left| *left >= MIN_POST_TIME)
        else {
            return Err(PostError::Transient(
                "no time left in this invocation".into(),
            ));
        };
        let outcome = tokio::time::timeout(left, attempt())
            .await
            .unwrap_or_else(|_| Err(PostError::Transient("timed out".into())));
        match outcome {
            Err(PostError::RateLimited { retry_after }) => {
                // Never busy-loop on `Retry-After: 0`.
                let wait = retry_after.unwrap_or(MIN_INTERVAL).max(MIN_INTERVAL);
                if wait > MAX_RATE_LIMIT_WAIT || Instant::now() + wait + POST_BUDGET > deadline {
                    return Err(PostError::RateLimited { retry_after });
                }
                tracing::info!(wait_ms = wait.as_millis() as u64, "rate limited; waiting");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

fn claim_key(event: &Event) -> String {
    format!("slack:{}", event.id)
}

//! SQS batch processing for the consumers: every record either succeeds or is reported
//! as a batch item failure, so SQS retries it and, after `maxReceiveCount`, moves it to
//! the dead-letter queue. No record is ever skipped and acknowledged.
//!
//! Every consumer has the same skeleton: [`BatchReport::new`] on the batch,
//! [`BatchReport::decode`] for each record (one that is not an event fails as refused),
//! its own work with [`BatchReport::fail`] for each record it could not finish, and
//! [`BatchReport::finish`], which sets each failed record's wait from the retry schedule
//! and answers with the partial batch failure, or fails the whole batch when the
//! destination's breaker held back every record. [`for_each_event`] is that skeleton for
//! consumers that handle each record on its own, concurrently. A send to a destination
//! goes through [`crate::breaker::Breaker::call`] (admit, run through the idempotency
//! guard, record the outcome).

use std::collections::HashMap;
use std::future::Future;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use tracing::Instrument;

use crate::journal::{Journey, Step};
use crate::outbound::DeliveryError;
use crate::retry::{Failure, MAX_RECEIVE_COUNT, Retries};
use crate::trace::Span;
use okr_core::event::Event;

/// What went wrong with one record; logged, never returned to SQS.
pub type RecordError = Box<dyn std::error::Error + Send + Sync>;

/// Why a batch fails as a whole rather than by its items.
#[derive(Debug, thiserror::Error)]
pub enum BatchFailure {
    /// A record that cannot be reported as a batch item failure failed: the whole batch
    /// must be retried rather than acknowledged.
    #[error("{0} failed record(s) carry no message id; failing the whole batch so none is lost")]
    Unreportable(usize),
    /// Every record was held back by its destination's open circuit breaker. With
    /// `ReportBatchItemFailures` Lambda does not slow its polling for item failures; a
    /// failed invocation makes it back off (fewer concurrent batches) until one succeeds.
    /// The records were deferred by the retry schedule first.
    #[error(
        "every record of the batch ({0}) was held back by its destination's open circuit breaker; failing the invocation so Lambda backs off"
    )]
    DestinationDown(usize),
}

/// Why a record's body is not an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The record has no body.
    #[error("the record has no body")]
    NoBody,
    /// The body is not a schema v1 event; the text says where, never what.
    #[error("the body is not a normalized event (line {line} column {column})")]
    NotAnEvent {
        /// Where parsing stopped.
        line: usize,
        /// Where parsing stopped.
        column: usize,
    },
}

/// The event a record carries, decoded on its own: one bad body fails only its record.
/// An event from an older ingest gets the fields it lacks ([`okr_core::normalize::fill_in`]).
pub fn decode(message: &SqsMessage) -> Result<Event, DecodeError> {
    let body = message.body.as_deref().ok_or(DecodeError::NoBody)?;
    let mut event = serde_json::from_str(body).map_err(|e| DecodeError::NotAnEvent {
        line: e.line(),
        column: e.column(),
    })?;
    okr_core::normalize::fill_in(&mut event);
    Ok(event)
}

/// Collects the outcomes of one batch: sets when each failed record is seen again,
/// writes each event's steps to its journey, and holds each record's span of its
/// event's trace (from [`BatchReport::new`] to [`BatchReport::finish`]).
#[derive(Debug)]
pub struct BatchReport {
    batch_size: usize,
    /// Each record's receipt handle and receive count, by message id.
    records: HashMap<String, (Option<String>, u32)>,
    /// The event each decoded record carries, and the replay that sent it again, by
    /// message id.
    events: HashMap<String, (String, Option<String>)>,
    /// Each failure, and why (for its step).
    failures: Vec<(String, Failure, String)>,
    unreportable: usize,
    journey: Journey,
    steps: Vec<Step>,
    /// Each record's span, by message id: the child of its `traceparent`.
    spans: HashMap<String, Span>,
}

impl BatchReport {
    /// A report on `batch`, recording its events' steps in `journey`.
    pub fn new(batch: &SqsEvent, journey: &Journey) -> Self {
        BatchReport {
            batch_size: batch.records.len(),
            records: batch
                .records
                .iter()
                .filter_map(|r| {
                    let id = r.message_id.clone()?;
                    Some((id, (r.receipt_handle.clone(), receive_count(r))))
                })
                .collect(),
            events: HashMap::new(),
            failures: Vec::new(),
            unreportable: 0,
            journey: journey.clone(),
            steps: Vec::new(),
            spans: batch
                .records
                .iter()
                .filter_map(|r| {
                    let id = r.message_id.clone()?;
                    Some((id, Span::consumer(journey.consumer(), r)))
                })
                .collect(),
        }
    }

    /// The event in `message`. A record that is not one is logged and failed as
    /// refused (no retry can make it one), and this answers `None`.
    pub fn decode(&mut self, message: &SqsMessage) -> Option<Event> {
        match decode(message) {
            Ok(event) => {
                if let Some(id) = &message.message_id {
                    self.events.insert(id.clone(), ids_of(&event));
                    if let Some(span) = self.spans.get_mut(id) {
                        span.event(&event.id, &event.event_type, replay_of(&event));
                    }
                }
                Some(event)
            }
            Err(error) => {
                let message_id = message.message_id.as_deref().unwrap_or("none");
                tracing::error!(message_id = %message_id, error = %error, "record is not an event");
                self.fail(message.message_id.as_deref(), Failure::Refused);
                None
            }
        }
    }

    /// Record that the message `message_id` failed, and how.
    pub fn fail(&mut self, message_id: Option<&str>, failure: Failure) {
        self.fail_because(message_id, failure, String::new());
    }

    /// Record that the message `message_id` failed, how, and why (for its event's
    /// journey: a text naming no person and no secret, such as a [`DeliveryError`]'s).
    pub fn fail_because(&mut self, message_id: Option<&str>, failure: Failure, why: String) {
        match message_id {
            Some(id) => self.failures.push((id.to_owned(), failure, why)),
            None => self.unreportable += 1,
        }
    }

    /// Record what became of the message `message_id`'s event when it did not fail
    /// (`posted`, `skipped`, `stored`...), for its journey.
    pub fn done(&mut self, message_id: Option<&str>, outcome: &str, detail: String) {
        let Some(id) = message_id else { return };
        let Some((event_id, replay)) = self.events.get(id) else {
            return;
        };
        let attempt = self.records.get(id).map_or(1, |(_, count)| *count);
        if let Some(span) = self.spans.get_mut(id) {
            span.outcome(outcome, &detail, false);
        }
        let step = self
            .journey
            .step((event_id, replay.as_deref()), attempt, outcome, detail);
        self.steps.push(step);
    }

    /// How many records failed as `failure` so far.
    pub fn count(&self, failure: Failure) -> usize {
        self.failures
            .iter()
            .filter(|(_, f, _)| *f == failure)
            .count()
    }

    /// Hide each failed record for its wait (see [`Retries`]), then answer
    /// SQS: the failures, or an error (the whole batch retried) when a failed record has
    /// no id to report it by. A wait that cannot be set is logged: the record then comes
    /// back after the queue's visibility timeout.
    ///
    /// The waits are set within the time left before `deadline` (the invocation's, when
    /// the handler has one); those not set by then come back after the visibility timeout.
    pub async fn finish(
        mut self,
        retries: &Retries,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<SqsBatchResponse, BatchFailure> {
        if self.unreportable > 0 {
            // Every record comes back, those that went through too.
            for span in self.spans.values_mut() {
                span.outcome(
                    "retry",
                    "a failed record has no message id: the whole batch comes back",
                    true,
                );
            }
            self.journey.record_all(self.steps).await;
            return Err(BatchFailure::Unreportable(self.unreportable));
        }
        let all_failed = self.batch_size > 0 && self.failures.len() == self.batch_size;
        let waits = self.waits(retries);
        let mut steps = std::mem::take(&mut self.steps);
        steps.extend(self.failure_steps(&waits));
        self.journey.record_all(steps).await;
        defer_failures(&waits, retries, deadline).await;
        if all_failed
            && self
                .failures
                .iter()
                .all(|(_, f, _)| *f == Failure::HeldBack)
        {
            return Err(BatchFailure::DestinationDown(self.batch_size));
        }
        if all_failed {
            tracing::error!(
                records = self.batch_size,
                "every record of the batch failed"
            );
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = self
            .failures
            .into_iter()
            .map(|(id, _, _)| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
            .collect();
        Ok(response)
    }

    /// Each failed record's receipt, receive count and wait (see [`Retries`]).
    fn waits(&self, retries: &Retries) -> Vec<Wait> {
        self.failures
            .iter()
            .filter_map(|(id, failure, why)| {
                let (receipt, count) = self.records.get(id)?;
                Some(Wait {
                    message_id: id.clone(),
                    receipt: receipt.clone(),
                    failure: *failure,
                    why: why.clone(),
                    count: *count,
                    delay: retries.schedule.delay(*failure, *count, rand::random()),
                })
            })
            .collect()
    }

    /// The journey's step of each failed record whose event is known: `dead_lettered`
    /// on the last receive, else `held` (its breaker open), `refused` or `retry`, with
    /// why and the wait. Each record's span ends in error with the same words.
    fn failure_steps(&mut self, waits: &[Wait]) -> Vec<Step> {
        let spans = &mut self.spans;
        waits
            .iter()
            .filter_map(|wait| {
                let span = spans.get_mut(&wait.message_id);
                let (event_id, replay) = match self.events.get(&wait.message_id) {
                    Some(ids) => ids,
                    None => {
                        if let Some(span) = span {
                            span.outcome("refused", "the record is not an event", true);
                        }
                        return None;
                    }
                };
                let failure = &wait.failure;
                let why = match (wait.why.as_str(), failure) {
                    ("", Failure::HeldBack) => "its destination's circuit breaker is open",
                    ("", Failure::Refused) => "refused",
                    ("", Failure::Transient) => "not done in this attempt",
                    (why, _) => why,
                };
                let (outcome, detail) = if wait.count >= MAX_RECEIVE_COUNT {
                    (
                        "dead_lettered",
                        format!(
                            "{why}; receive {} of {MAX_RECEIVE_COUNT}: to the dead-letter queue",
                            wait.count
                        ),
                    )
                } else {
                    let outcome = match failure {
                        Failure::HeldBack => "held",
                        Failure::Refused => "refused",
                        Failure::Transient => "retry",
                    };
                    (
                        outcome,
                        format!("{why}; again in {}", wait_text(wait.delay)),
                    )
                };
                if let Some(span) = span {
                    span.outcome(outcome, &detail, true);
                }
                let event = (event_id.as_str(), replay.as_deref());
                Some(self.journey.step(event, wait.count, outcome, detail))
            })
            .collect()
    }
}

/// One failed record's wait.
#[derive(Debug)]
struct Wait {
    message_id: String,
    receipt: Option<String>,
    failure: Failure,
    why: String,
    count: u32,
    delay: std::time::Duration,
}

/// A wait as a person says it: `45 s`, `4 min`, `2 h`.
fn wait_text(delay: std::time::Duration) -> String {
    let s = delay.as_secs();
    if s == 0 {
        format!("{} ms", delay.as_millis())
    } else if s < 120 {
        format!("{s} s")
    } else if s < 2 * 3600 {
        format!("{} min", s / 60)
    } else {
        format!("{} h", s / 3600)
    }
}

/// Set each failure's wait, all at once (each call bounded by its client's timeouts),
/// within the time left before `deadline`.
async fn defer_failures(waits: &[Wait], retries: &Retries, deadline: Option<tokio::time::Instant>) {
    let deferrals = waits.iter().filter_map(|wait| {
        let receipt = wait.receipt.as_deref()?;
        let (id, failure, count, delay) = (&wait.message_id, wait.failure, wait.count, wait.delay);
        Some(async move {
            match retries.defer.defer(receipt, delay).await {
                Ok(()) => {
                    tracing::info!(message_id = %id, ?failure, receive_count = count, delay_s = delay.as_secs(), "record deferred")
                }
                Err(error) => {
                    tracing::warn!(message_id = %id, error = %okr_core::error_chain(error.as_ref()), "could not defer the record; it returns after the visibility timeout")
                }
            }
        })
    });
    let deferrals = futures::future::join_all(deferrals);
    let left = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
    match left {
        Some(left) => {
            let margin = std::time::Duration::from_millis(100);
            if tokio::time::timeout(left.saturating_sub(margin), deferrals)
                .await
                .is_err()
            {
                tracing::warn!(
                    "no time left to defer every failed record; the rest return after the visibility timeout"
                );
            }
        }
        None => {
            deferrals.await;
        }
    }
}

/// Run `handler` on every record's event, at most `concurrency` at a time, each in a
/// span keyed by its message id. Records that do not decode (refused: waiting will not
/// help), and records whose handler fails (refused when a destination refused them, else
/// transient), are reported as failures; finish the report to answer SQS.
pub async fn for_each_event<F, Fut>(
    event: SqsEvent,
    concurrency: usize,
    journey: &Journey,
    handler: F,
) -> BatchReport
where
    F: Fn(Event, RecordContext) -> Fut,
    Fut: Future<Output = Result<(), RecordError>>,
{
    let mut report = BatchReport::new(&event, journey);
    let handler = &handler;
    type Outcome = (
        Option<String>,
        Option<(String, Option<String>)>,
        Option<(Failure, String)>,
    );
    let spans = &mut report.spans;
    let outcomes: Vec<(Outcome, Span)> = futures::stream::iter(event.records)
        .map(|message| {
            let message_id = message.message_id.clone();
            let span = tracing::info_span!("record", message_id = message_id.as_deref().unwrap_or("none"));
            let context = RecordContext { receive_count: receive_count(&message) };
            // The record's span of its trace: what the handler's journey steps say
            // (`Journey::record`) marks it.
            let trace_span = message_id
                .as_ref()
                .and_then(|id| spans.remove(id))
                .unwrap_or_default();
            let work = async move {
                let (event_id, failure) = match decode(&message) {
                    Ok(event) => {
                        crate::trace::event_here(&event.id, &event.event_type, replay_of(&event));
                        let ids = ids_of(&event);
                        let event_id = event.id.clone();
                        let failure = match handler(event, context).await {
                            Ok(()) => None,
                            Err(error) => {
                                tracing::warn!(event_id = %event_id, error = %error, "record failed");
                                Some((failure_of(error.as_ref()), why_of(error.as_ref())))
                            }
                        };
                        (Some(ids), failure)
                    }
                    Err(error) => {
                        tracing::error!(error = %error, "record is not an event");
                        (None, Some((Failure::Refused, String::new())))
                    }
                };
                (message_id, event_id, failure)
            };
            crate::trace::within(trace_span, work).instrument(span)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for ((message_id, ids, failure), span) in outcomes {
        if let Some(id) = &message_id {
            report.spans.insert(id.clone(), span);
        }
        if let (Some(message_id), Some(ids)) = (&message_id, ids) {
            report.events.insert(message_id.clone(), ids);
        }
        if let Some((failure, why)) = failure {
            report.fail_because(message_id.as_deref(), failure, why);
        }
    }
    report
}

/// A destination's refusal will not pass by waiting; a send its open breaker held back
/// is known to wait for the destination; anything else may pass soon.
pub fn failure_of(error: &(dyn std::error::Error + 'static)) -> Failure {
    match error.downcast_ref::<DeliveryError>() {
        Some(error) if error.is_refusal() => Failure::Refused,
        Some(error) if error.is_held_back() => Failure::HeldBack,
        _ => Failure::Transient,
    }
}

/// The replay that sent `event` again, if one did.
fn replay_of(event: &Event) -> Option<&str> {
    event.replay.as_ref().map(|r| r.name.as_str())
}

/// An event's id, and the replay that sent it again (if any).
fn ids_of(event: &Event) -> (String, Option<String>) {
    (
        event.id.clone(),
        event.replay.as_ref().map(|r| r.name.clone()),
    )
}

/// Why a record failed, for its journey: a [`DeliveryError`]'s summary (its service
/// and status, never a URL or a key), else nothing (the step says it was not done, or,
/// held back, that the breaker is open).
pub fn why_of(error: &(dyn std::error::Error + 'static)) -> String {
    match error.downcast_ref::<DeliveryError>() {
        Some(error) if !error.is_held_back() => error.summary(),
        _ => String::new(),
    }
}

/// What a handler may want to know about its record.
#[derive(Debug, Clone, Copy)]
pub struct RecordContext {
    /// SQS's `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
}

/// SQS's `ApproximateReceiveCount` of `message`: 1 on the first delivery (and when absent).
pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

/// When an invocation must have answered, from the Lambda context's deadline
/// (milliseconds since the epoch). A deadline already past means an emulator that does
/// not send one (`cargo lambda watch` sends its timeout instead): assume 30 seconds.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> tokio::time::Instant {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let left = std::time::Duration::from_millis(deadline_ms).saturating_sub(now);
    let left = if left.is_zero() {
        std::time::Duration::from_secs(30)
    } else {
        left
    };
    tokio::time::Instant::now() + left
}

//! Outages against a simulated SQS queue on tokio's paused clock: a day-long Slack
//! outage sends nothing to the dead-letter queue and every event once afterwards, with
//! at most one probe per breaker interval while it lasts; a refusal still reaches the
//! dead-letter queue, in minutes; instances share their breaker; a breaker store that
//! stalls or refuses writes costs no post and leaves no breaker stuck.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use okr_consumers::slack::SlackNotifier;
use okr_core::Event;
use okr_core::routing::NotifyRules;
use okr_pipeline::batch::BatchFailure;
use okr_pipeline::breaker::{BreakerConfig, BreakerSettings, Outcome, TokioClock};
use okr_pipeline::idempotency::IdempotencyStore;
use okr_pipeline::idempotency::memory::MemoryIdempotencyStore;
use okr_pipeline::metrics::MemoryMetrics;
use okr_pipeline::outbound::http::HttpStatus;
use okr_pipeline::outbound::slack::{SlackMessage, SlackPoster};
use okr_pipeline::outbound::{DeliveryError, NoTimeLeft, Service};
use okr_pipeline::queue::{Defer, DeferError};
use okr_pipeline::retry::{MAX_RECEIVE_COUNT, Retries, Schedule};
use okr_webhooks_tests::faulty::Faulty;
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
/// The Slack queue's visibility timeout in the template.
const VISIBILITY: Duration = Duration::from_secs(370);

struct Message {
    id: String,
    body: String,
    receipt: String,
    receives: u32,
    visible_at: Instant,
}

/// A standard SQS queue with a redrive policy, on tokio's clock: a received message is
/// hidden for the visibility timeout (or the wait a consumer sets), and one received
/// `MAX_RECEIVE_COUNT` times moves to the dead-letter queue instead of being received
/// again.
#[derive(Default)]
struct SimQueue {
    messages: Mutex<Vec<Message>>,
    dead: Mutex<Vec<String>>,
    receipts: Mutex<u64>,
}

impl SimQueue {
    fn send_at(&self, id: String, body: String, at: Instant) {
        self.messages.lock().unwrap().push(Message {
            id,
            body,
            receipt: String::new(),
            receives: 0,
            visible_at: at,
        });
    }

    /// Up to `max` visible messages, as Lambda's poller hands them over.
    fn receive(&self, max: usize) -> SqsEvent {
        let now = Instant::now();
        let mut messages = self.messages.lock().unwrap();
        let mut records = Vec::new();
        let mut index = 0;
        while index < messages.len() && records.len() < max {
            if messages[index].visible_at > now {
                index += 1;
                continue;
            }
            if messages[index].receives >= MAX_RECEIVE_COUNT {
                let message = messages.remove(index);
                self.dead.lock().unwrap().push(message.id);
                continue;
            }
            let message = &mut messages[index];
            let mut receipts = self.receipts.lock().unwrap();
            *receipts += 1;
            message.receipt = format!("receipt-{receipts}");
            message.receives += 1;
            message.visible_at = now + VISIBILITY;
            let mut record = SqsMessage::default();
            record.message_id = Some(message.id.clone());
            record.receipt_handle = Some(message.receipt.clone());
            record.body = Some(message.body.clone());
            record.attributes.insert(
                "ApproximateReceiveCount".into(),
                message.receives.to_string(),
            );
            records.push(record);
            index += 1;
        }
        let mut event = SqsEvent::default();
        event.records = records;
        event
    }

    /// As Lambda does with the answer: delete what succeeded; a failed invocation
    /// deletes nothing.
    fn settle(&self, batch: &SqsEvent, answer: Result<SqsBatchResponse, BatchFailure>) {
        let Ok(response) = answer else { return };
        let failed: BTreeSet<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        let done: BTreeSet<&String> = batch
            .records
            .iter()
            .filter_map(|r| r.message_id.as_ref())
            .filter(|id| !failed.contains(*id))
            .collect();
        self.messages
            .lock()
            .unwrap()
            .retain(|m| !done.contains(&m.id));
    }

    fn next_visible(&self) -> Option<Instant> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.visible_at)
            .min()
    }

    fn dead(&self) -> Vec<String> {
        self.dead.lock().unwrap().clone()
    }
}

#[async_trait]
impl Defer for SimQueue {
    async fn defer(&self, receipt_handle: &str, delay: Duration) -> Result<(), DeferError> {
        let mut messages = self.messages.lock().unwrap();
        let message = messages
            .iter_mut()
            .find(|m| m.receipt == receipt_handle)
            .ok_or("no message with that receipt handle")?;
        message.visible_at = Instant::now() + delay;
        Ok(())
    }
}

/// Slack: answers 503 until `up_at` (or refuses with 404 `no_service` for ever when
/// `refusing`), and keeps every call's time and every message taken.
struct StandIn {
    up_at: Instant,
    refusing: bool,
    calls: Mutex<Vec<Instant>>,
    posted: Mutex<Vec<SlackMessage>>,
}

impl StandIn {
    fn down_until(up_at: Instant) -> Arc<Self> {
        Arc::new(StandIn {
            up_at,
            refusing: false,
            calls: Mutex::default(),
            posted: Mutex::default(),
        })
    }

    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl SlackPoster for StandIn {
    async fn post(&self, message: &SlackMessage) -> Result<(), DeliveryError> {
        let now = Instant::now();
        self.calls.lock().unwrap().push(now);
        if self.refusing {
            return Err(DeliveryError::Refused {
                service: Service::Slack,
                status: 404,
                reason: "no_service".into(),
            });
        }
        if now < self.up_at {
            let status = HttpStatus {
                status: 503,
                reason: "service unavailable".into(),
            };
            return Err(DeliveryError::unavailable(Service::Slack, status));
        }
        self.posted.lock().unwrap().push(message.clone());
        Ok(())
    }
}

/// The objective-completed sample as event `n`, named `Goal <n>` (four digits).
fn event(n: usize) -> (String, String) {
    let path = format!(
        "{}/../../events/slack-notifier/objective_completed.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let sample: SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut event: Event =
        serde_json::from_str(sample.records[0].body.as_deref().unwrap()).unwrap();
    event.id = format!("evt_{n:04}");
    event.entity.name = Some(format!("Goal {n:04}"));
    (event.id.clone(), serde_json::to_string(&event).unwrap())
}

/// The notifier as the Lambda runs it: breaker and retries, on tokio's clock.
fn notifier(
    slack: Arc<StandIn>,
    store: Arc<dyn IdempotencyStore>,
    queue: Arc<SimQueue>,
    metrics: Arc<MemoryMetrics>,
) -> SlackNotifier {
    let breaking = BreakerConfig {
        settings: BreakerSettings::default(),
        clock: Arc::new(TokioClock::default()),
    };
    SlackNotifier::new(slack, store, NotifyRules::default(), 5)
        .guarded(VISIBILITY, metrics)
        .breaking(&breaking)
        .retrying(Retries {
            defer: queue,
            schedule: Schedule::default(),
        })
}

/// Lambda's poller until `end`: a batch of up to 10 whenever one is visible, each
/// invocation given a minute.
async fn poll_until(queue: &SimQueue, notifier: &SlackNotifier, end: Instant) {
    while Instant::now() < end {
        let batch = queue.receive(10);
        if batch.records.is_empty() {
            match queue.next_visible() {
                Some(at) if at < end => tokio::time::sleep_until(at.max(Instant::now())).await,
                _ => return,
            }
            continue;
        }
        let answer = notifier
            .handle(batch.clone(), Instant::now() + MINUTE)
            .await;
        queue.settle(&batch, answer);
    }
}

/// How many messages each `Goal <n>` appeared in.
fn goals_posted(posted: &[SlackMessage]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for message in posted {
        let blocks = serde_json::to_string(&message.blocks).unwrap();
        let names: BTreeSet<&str> = blocks
            .match_indices("Goal ")
            .filter_map(|(at, _)| blocks.get(at..at + 9))
            .collect();
        for name in names {
            *seen.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn a_day_long_slack_outage_reaches_no_dead_letter_queue_and_posts_everything_once() {
    let start = Instant::now();
    let outage = 24 * HOUR;
    let slack = StandIn::down_until(start + outage);
    let queue = Arc::new(SimQueue::default());
    let metrics = Arc::new(MemoryMetrics::default());
    let store = Arc::new(MemoryIdempotencyStore::default());
    let notifier = notifier(slack.clone(), store, queue.clone(), metrics.clone());
    // 1,000 events arrive during the outage, one every 86.4 s.
    for n in 0..1000 {
        let (id, body) = event(n);
        queue.send_at(id, body, start + outage.mul_f64(n as f64 / 1000.0));
    }
    poll_until(&queue, &notifier, start + outage + 4 * HOUR).await;

    assert_eq!(queue.dead(), Vec::<String>::new(), "no dead letters");
    assert_eq!(queue.next_visible(), None, "every message was deleted");
    let seen = goals_posted(&slack.posted.lock().unwrap());
    assert_eq!(seen.len(), 1000, "every event posted");
    assert!(seen.values().all(|&n| n == 1), "each once: {seen:?}");

    // While it was down: five failures opened the breaker, then at most one probe a
    // minute (the default interval), whatever the number of records.
    let calls = slack.calls();
    let during: Vec<Instant> = calls
        .iter()
        .copied()
        .filter(|at| *at < start + outage)
        .collect();
    let interval = BreakerSettings::default().probe_interval;
    assert!(during.len() > 5);
    for pair in during[5..].windows(2) {
        assert!(
            pair[1] - pair[0] >= interval,
            "two probes within {:?}",
            pair[1] - pair[0]
        );
    }
    assert!(during.len() <= 5 + (outage.as_secs() / interval.as_secs()) as usize + 1);
    // The records came back far more often than Slack was called: the breaker, not
    // Slack, failed them.
    let records = metrics.breakers();
    let deferred: usize = records.iter().map(|r| r.deferred).sum();
    eprintln!(
        "{} calls to Slack during the outage; {deferred} records deferred",
        during.len()
    );
    assert!(
        deferred > 5 * during.len(),
        "{deferred} deferred, {} calls",
        during.len()
    );
    assert!(records.iter().any(|r| r.open_for >= Some(23 * HOUR)));
    assert_eq!(records.last().unwrap().open_for, None, "closed again");
}

#[tokio::test(start_paused = true)]
async fn a_refusal_still_reaches_the_dead_letter_queue_in_minutes() {
    let start = Instant::now();
    let slack = Arc::new(StandIn {
        up_at: start,
        refusing: true,
        calls: Mutex::default(),
        posted: Mutex::default(),
    });
    let queue = Arc::new(SimQueue::default());
    let store = Arc::new(MemoryIdempotencyStore::default());
    let notifier = notifier(slack.clone(), store, queue.clone(), Default::default());
    let (id, body) = event(7);
    queue.send_at(id.clone(), body, start);
    poll_until(&queue, &notifier, start + 24 * HOUR).await;
    assert_eq!(queue.dead(), [id]);
    let tried = slack.calls();
    // Every receive called Slack (a refusal is an answer: the breaker stays closed).
    assert_eq!(tried.len(), MAX_RECEIVE_COUNT as usize);
    let took = *tried.last().unwrap() - start;
    assert!(took <= 30 * MINUTE, "dead-lettered after {took:?}");
}

#[tokio::test(start_paused = true)]
async fn one_instance_opening_the_shared_breaker_stops_the_others_calls() {
    let start = Instant::now();
    let slack = StandIn::down_until(start + HOUR);
    let store: Arc<dyn IdempotencyStore> = Arc::new(MemoryIdempotencyStore::default());
    let queue = Arc::new(SimQueue::default());
    let a = notifier(
        slack.clone(),
        store.clone(),
        queue.clone(),
        Default::default(),
    );
    let b = notifier(slack.clone(), store, queue.clone(), Default::default());
    let one = |n: usize| {
        let (id, body) = event(n);
        queue.send_at(id, body, Instant::now());
        queue.receive(1)
    };
    // B fails once, then A four times: the fifth failure in all opens the breaker.
    b.handle(one(0), Instant::now() + MINUTE).await.ok();
    for n in 1..5 {
        a.handle(one(n), Instant::now() + MINUTE).await.ok();
    }
    assert_eq!(slack.calls().len(), 5);
    // Once B's copy is older than its refresh, B sees it open and calls nothing.
    tokio::time::advance(BreakerSettings::default().refresh).await;
    let answer = b.handle(one(5), Instant::now() + MINUTE).await;
    assert!(
        matches!(answer, Err(BatchFailure::DestinationDown(1))),
        "{answer:?}"
    );
    assert_eq!(slack.calls().len(), 5, "B did not call Slack");
    // When the probe is due, the two together send one.
    tokio::time::advance(BreakerSettings::default().probe_interval).await;
    let (x, y) = (one(6), one(7));
    let _ = tokio::join!(
        a.handle(x, Instant::now() + MINUTE),
        b.handle(y, Instant::now() + MINUTE)
    );
    assert_eq!(slack.calls().len(), 6, "one probe between them");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_breaker_store_neither_delays_the_answer_nor_repeats_a_post() {
    // Slack fails the first post (the breaker then writes its count), takes the next.
    let slack = StandIn::down_until(Instant::now() + 30 * Duration::from_secs(1));
    let store = Arc::new(Faulty {
        stall_states: true,
        lost: true.into(),
        ..Faulty::default()
    });
    let queue = Arc::new(SimQueue::default());
    let metrics = Arc::new(MemoryMetrics::default());
    let notifier = notifier(slack.clone(), store, queue.clone(), metrics.clone());
    let (id, body) = event(1);
    queue.send_at(id, body, Instant::now());
    let batch = queue.receive(10);
    let mut failures = Vec::new();
    for _ in 0..3 {
        let deadline = Instant::now() + MINUTE;
        let answer = notifier.handle(batch.clone(), deadline).await.unwrap();
        assert!(
            Instant::now() <= deadline,
            "answered {:?} late",
            Instant::now() - deadline
        );
        failures.push(answer.batch_item_failures.len());
        tokio::time::advance(MINUTE).await;
    }
    // Failed while Slack was down, posted once it was up, then known as posted.
    assert_eq!(failures, [1, 0, 0]);
    assert_eq!(slack.calls().len(), 2);
    assert_eq!(slack.posted.lock().unwrap().len(), 1);
    assert!(
        metrics.counts().is_empty(),
        "the post was recorded: {:?}",
        metrics.counts()
    );
}

#[tokio::test(start_paused = true)]
async fn a_breaker_whose_store_refuses_writes_still_opens_probes_and_closes() {
    let start = Instant::now();
    let slack = StandIn::down_until(start + HOUR);
    let store = Arc::new(Faulty {
        refuse_state_writes: true,
        ..Faulty::default()
    });
    let queue = Arc::new(SimQueue::default());
    let notifier = notifier(slack.clone(), store, queue.clone(), Default::default());
    for n in 0..60 {
        let (id, body) = event(n);
        queue.send_at(id, body, start + MINUTE * n as u32);
    }
    poll_until(&queue, &notifier, start + 4 * HOUR).await;
    assert_eq!(queue.dead(), Vec::<String>::new());
    let seen = goals_posted(&slack.posted.lock().unwrap());
    assert_eq!(seen.len(), 60);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    // It opened on this instance's own count: about one call a minute in the hour.
    let during = slack
        .calls()
        .iter()
        .filter(|at| **at < start + HOUR)
        .count();
    assert!(during <= 5 + 61, "{during} calls in the hour");
}

#[test]
fn only_a_destination_that_did_not_answer_counts_against_its_breaker() {
    let status = |status| HttpStatus {
        status,
        reason: String::new(),
    };
    let cases = [
        (
            DeliveryError::unavailable(Service::Slack, status(503)),
            Outcome::Unanswered,
        ),
        (
            DeliveryError::unavailable(Service::PagerDuty, "connection reset"),
            Outcome::Unanswered,
        ),
        (
            DeliveryError::Refused {
                service: Service::Slack,
                status: 404,
                reason: "no_service".into(),
            },
            Outcome::Answered,
        ),
        (
            DeliveryError::RateLimited {
                service: Service::Slack,
                retry_after: None,
            },
            Outcome::Answered,
        ),
        (
            DeliveryError::unavailable(Service::Slack, NoTimeLeft),
            Outcome::NotSent,
        ),
    ];
    for (error, outcome) in cases {
        assert_eq!(Outcome::of_failure(&error), outcome, "{error}");
    }
}

//! The subscriptions consumer on its own: a subscription failing for five days is
//! switched off (said in the metrics and each skipped event's journey) and is sent
//! nothing more; its pace keeps posts `1/rate` apart; the filters pick the events.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use http::HeaderMap;
use okr_consumers::subscriptions::{SubscriptionSender, health};
use okr_core::subscriptions::{
    Subscription, SubscriptionSecret, SubscriptionSecrets, Subscriptions,
};
use okr_core::{Event, Source, normalize};
use okr_pipeline::breaker::{BreakerConfig, BreakerSettings, Clock};
use okr_pipeline::idempotency::memory::MemoryIdempotencyStore;
use okr_pipeline::journal::MemoryJournal;
use okr_pipeline::metrics::MemoryMetrics;
use okr_pipeline::secrets::{SecretCache, fixed};
use time::OffsetDateTime;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A clock the test moves.
struct Manual(Mutex<OffsetDateTime>);

impl Clock for Manual {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

fn hire(n: usize) -> Event {
    let body = format!(
        r#"{{"action": "employee_create", "data": {{"id": {n}, "attributes": {{"first_name": "E{n}", "date_of_birth": "1990-01-0{}"}}}}}}"#,
        n % 9 + 1
    );
    normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLEFORCE).unwrap(),
        &HeaderMap::new(),
        body.as_bytes(),
        OffsetDateTime::now_utc(),
    )
    .unwrap()
}

fn batch(events: &[Event]) -> SqsEvent {
    let mut batch = SqsEvent::default();
    batch.records = events
        .iter()
        .map(|event| {
            let mut message = SqsMessage::default();
            message.message_id = Some(format!("m-{}", event.id));
            message.body = Some(serde_json::to_string(event).unwrap());
            message
        })
        .collect();
    batch
}

struct Setup {
    sender: SubscriptionSender,
    store: Arc<MemoryIdempotencyStore>,
    journal: Arc<MemoryJournal>,
    metrics: Arc<MemoryMetrics>,
    clock: Arc<Manual>,
}

fn setup(subscriptions: &[(&str, Subscription)]) -> Setup {
    let document = Subscriptions {
        subscriptions: subscriptions
            .iter()
            .map(|(name, s)| (name.to_string(), s.clone()))
            .collect(),
    };
    let secrets: SubscriptionSecrets = subscriptions
        .iter()
        .map(|(name, _)| {
            let secret = SubscriptionSecret {
                signing: vec![okr_core::subscriptions::new_secret([3; 32])],
                ..Default::default()
            };
            (name.to_string(), secret)
        })
        .collect();
    let store = Arc::new(MemoryIdempotencyStore::default());
    let journal = Arc::new(MemoryJournal::default());
    let metrics = Arc::new(MemoryMetrics::default());
    let clock = Arc::new(Manual(Mutex::new(OffsetDateTime::now_utc())));
    let config = BreakerConfig {
        // Never open: every post reaches the receiver.
        settings: BreakerSettings {
            failures_to_open: 1000,
            ..BreakerSettings::default()
        },
        clock: clock.clone(),
    };
    let sender = SubscriptionSender::new(
        Arc::new(SecretCache::new(fixed(document), Duration::from_secs(60))),
        Arc::new(SecretCache::new(fixed(secrets), Duration::from_secs(60))),
        reqwest::Client::new(),
        store.clone(),
    )
    .breaking(&config)
    .guarded(Duration::ZERO, metrics.clone())
    .journaling(journal.clone());
    Setup {
        sender,
        store,
        journal,
        metrics,
        clock,
    }
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(30)
}

#[tokio::test]
async fn a_subscription_failing_for_five_days_is_switched_off_and_sent_nothing_more() {
    let receiver = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&receiver)
        .await;
    let s = setup(&[("hr", Subscription::to(format!("{}/in", receiver.uri())))]);
    let day = time::Duration::days(1);

    let advance = |by: time::Duration| *s.clock.0.lock().unwrap() += by;
    let first = s
        .sender
        .handle(batch(&[hire(1)]), deadline())
        .await
        .unwrap();
    assert_eq!(first.batch_item_failures.len(), 1, "retried");
    let kept = health(s.store.as_ref(), "hr").await.unwrap();
    assert_eq!(kept.failing_since, Some(s.clock.now().unix_timestamp()));

    // After two quiet days, a failure starts the count again.
    advance(day * 2);
    let started = s.clock.now().unix_timestamp();
    s.sender
        .handle(batch(&[hire(2)]), deadline())
        .await
        .unwrap();
    let kept = health(s.store.as_ref(), "hr").await.unwrap();
    assert_eq!(kept.failing_since, Some(started), "counted from here");

    // Failing every day for four more days: still on.
    for n in 3..=6 {
        advance(day);
        let answer = s
            .sender
            .handle(batch(&[hire(n)]), deadline())
            .await
            .unwrap();
        assert_eq!(
            answer.batch_item_failures.len(),
            1,
            "still retried on day {n}"
        );
    }
    assert!(
        health(s.store.as_ref(), "hr")
            .await
            .unwrap()
            .disabled
            .is_none()
    );

    // A day more, five after the count started: off.
    advance(day);
    let fifth = s
        .sender
        .handle(batch(&[hire(7)]), deadline())
        .await
        .unwrap();
    assert!(fifth.batch_item_failures.is_empty(), "{fifth:?}");
    let off = health(s.store.as_ref(), "hr")
        .await
        .unwrap()
        .disabled
        .unwrap();
    assert!(off.why.starts_with("failing since "), "{}", off.why);
    assert_eq!(
        s.metrics.counts(),
        [("subscriptions", "SubscriptionsDisabled")]
    );
    let tried = receiver.received_requests().await.unwrap().len();
    assert_eq!(tried, 7);

    // Off: the next event is skipped, and says why in its journey.
    let event = hire(4);
    let next = s
        .sender
        .handle(batch(std::slice::from_ref(&event)), deadline())
        .await
        .unwrap();
    assert!(next.batch_item_failures.is_empty());
    assert_eq!(receiver.received_requests().await.unwrap().len(), tried);
    let steps = s.journal.journey(&event.id);
    assert_eq!(steps.last().unwrap().outcome, "skipped");
    assert!(
        steps
            .last()
            .unwrap()
            .detail
            .starts_with("hr is switched off: failing since ")
    );
}

/// Answers 200 and notes when.
struct Timed(Arc<Mutex<Vec<Instant>>>);

impl Respond for Timed {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.0.lock().unwrap().push(Instant::now());
        ResponseTemplate::new(200)
    }
}

#[tokio::test]
async fn a_subscriptions_pace_keeps_its_posts_apart_and_its_filters_pick_the_events() {
    let receiver = MockServer::start().await;
    let times = Arc::new(Mutex::new(Vec::new()));
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(Timed(times.clone()))
        .mount(&receiver)
        .await;
    let paced = Subscription {
        rate_per_second: Some(5),
        ..Subscription::to(format!("{}/paced", receiver.uri()))
    };
    let other = Subscription {
        types: vec!["objective.*".into()],
        ..Subscription::to(format!("{}/objectives", receiver.uri()))
    };
    let hires = Subscription {
        types: vec!["employee.*".into()],
        endpoints: vec!["peopleforce".into()],
        kinds: vec!["employee".into()],
        ..Subscription::to(format!("{}/hires", receiver.uri()))
    };
    let s = setup(&[("paced", paced), ("objectives", other), ("hires", hires)]);
    let events: Vec<Event> = (1..=6).map(hire).collect();
    let answer = s.sender.handle(batch(&events), deadline()).await.unwrap();
    assert!(answer.batch_item_failures.is_empty());

    let requests = receiver.received_requests().await.unwrap();
    let to = |path: &str| requests.iter().filter(|r| r.url.path() == path).count();
    assert_eq!((to("/paced"), to("/hires"), to("/objectives")), (6, 6, 0));
    let times: Vec<Instant> = times
        .lock()
        .unwrap()
        .iter()
        .zip(&requests)
        .filter(|(_, r)| r.url.path() == "/paced")
        .map(|(t, _)| *t)
        .collect();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(190),
            "posts {gap:?} apart at 5/s"
        );
    }
    // The cut-down event: the birth date stays home.
    for request in &requests {
        let body = String::from_utf8_lossy(&request.body);
        assert!(!body.contains("1990-01-0"), "{body}");
    }
    // Again: each (event, subscription) once.
    let again = s.sender.handle(batch(&events), deadline()).await.unwrap();
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(receiver.received_requests().await.unwrap().len(), 12);
}

#[tokio::test]
async fn a_subscription_without_its_secret_is_refused_without_counting_against_its_receiver() {
    let receiver = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let mut s = setup(&[("hr", Subscription::to(format!("{}/in", receiver.uri())))]);
    // Its secrets hold no entry for it.
    let document = Subscriptions {
        subscriptions: [(
            "hr".to_owned(),
            Subscription::to(format!("{}/in", receiver.uri())),
        )]
        .into_iter()
        .collect(),
    };
    s.sender = SubscriptionSender::new(
        Arc::new(SecretCache::new(fixed(document), Duration::from_secs(60))),
        Arc::new(SecretCache::new(
            fixed(SubscriptionSecrets::new()),
            Duration::from_secs(60),
        )),
        reqwest::Client::new(),
        s.store.clone(),
    )
    .journaling(s.journal.clone());
    let event = hire(1);
    let answer = s
        .sender
        .handle(batch(std::slice::from_ref(&event)), deadline())
        .await
        .unwrap();
    assert_eq!(
        answer.batch_item_failures.len(),
        1,
        "refused, for the dead-letter queue"
    );
    assert!(receiver.received_requests().await.unwrap().is_empty());
    let step = s.journal.journey(&event.id).pop().unwrap();
    assert_eq!(step.outcome, "refused");
    assert!(
        step.detail
            .starts_with("hr: the subscriber is misconfigured: its secrets hold no signing secret"),
        "{}",
        step.detail
    );
    // Our configuration, not the receiver: no failing stretch begins.
    let kept = health(s.store.as_ref(), "hr").await.unwrap();
    assert_eq!(kept.failing_since, None);
}

/// A batch's sends go side by side, and each decides by the health as it stands after
/// its post: a subscription failing for five days whose receiver came back is not
/// switched off by one refusal finishing after the batch's successes (the failing stretch
/// starts again from it), and 410s from every send of a batch switch it off once.
#[tokio::test]
async fn sends_side_by_side_decide_by_the_health_the_batch_left() {
    use okr_pipeline::idempotency::{StateStore, StateWrite};
    use wiremock::matchers::body_string_contains;
    let receiver = MockServer::start().await;
    Mock::given(body_string_contains("\"E3\""))
        .respond_with(ResponseTemplate::new(400).set_delay(Duration::from_millis(300)))
        .mount(&receiver)
        .await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let s = setup(&[("hr", Subscription::to(format!("{}/in", receiver.uri())))]);
    let now = s.clock.now().unix_timestamp();
    let failing = format!(
        r#"{{"failing_since": {}, "last_failure": {}}}"#,
        now - 5 * 24 * 3600 + 60,
        now - 3600
    );
    let write = StateWrite {
        key: "subscription:hr",
        expected: None,
        value: &failing,
        now: OffsetDateTime::now_utc(),
        keep: Duration::from_secs(3600),
    };
    assert!(s.store.save_state(&write).await.unwrap());
    let later = s.clock.now() + time::Duration::minutes(2);
    *s.clock.0.lock().unwrap() = later;

    let hires: Vec<Event> = (1..=6).map(hire).collect();
    let answer = s.sender.handle(batch(&hires), deadline()).await.unwrap();
    assert_eq!(answer.batch_item_failures.len(), 1, "the refused one");
    assert_eq!(receiver.received_requests().await.unwrap().len(), 6);
    let kept = health(s.store.as_ref(), "hr").await.unwrap();
    assert!(kept.disabled.is_none(), "{kept:?}");
    assert_eq!(
        kept.failing_since,
        Some(s.clock.now().unix_timestamp()),
        "a new stretch, from the refusal after the successes"
    );
    assert!(s.metrics.counts().is_empty(), "{:?}", s.metrics.counts());

    // Every send of a batch answered 410: switched off, counted once.
    let gone = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&gone)
        .await;
    let s = setup(&[("old", Subscription::to(format!("{}/in", gone.uri())))]);
    let answer = s
        .sender
        .handle(batch(&(11..=15).map(hire).collect::<Vec<_>>()), deadline())
        .await
        .unwrap();
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(gone.received_requests().await.unwrap().len(), 5);
    assert_eq!(
        s.metrics.counts(),
        [("subscriptions", "SubscriptionsDisabled")]
    );
    assert!(
        health(s.store.as_ref(), "old")
            .await
            .unwrap()
            .disabled
            .is_some()
    );
}

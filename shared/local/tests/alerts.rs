//! Progress alerts: the rules against progress histories and periods, and the alerts
//! sent to local stand-ins for a Slack alerts channel and PagerDuty (wiremock).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use http::HeaderMap;
use okr_consumers::alerts::{DEFAULT_WINDOW, Destinations, ProgressAlerts};
use okr_core::rules::{Rule, Thresholds, assess};
use okr_pipeline::outbound::pagerduty::{PagerDuty, PagerDutyClient, RoutingKey};

use okr_core::{Event, Source, normalize};
use okr_local::sqlite_store::SqliteIdempotencyStore;
use okr_pipeline::idempotency::IdempotencyStore;
use okr_pipeline::idempotency::memory::MemoryIdempotencyStore;
use okr_pipeline::outbound::http::http_client;
use okr_pipeline::outbound::slack::{SlackPoster, WebhookPoster, WebhookUrl};
use okr_pipeline::secrets::{SecretCache, StaticSecret};
use okr_webhooks_tests::faulty::Faulty;
use serde_json::{Value, json};
use time::macros::datetime;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A key result over Q2 2025 (1 April to 30 June), updated at `at`.
fn kr(at: &str, previous: Option<f64>, current: f64, status: &str) -> Event {
    let mut body = json!({
        "eventType": "objective.patch", "id": "kr-1", "parentId": "o-1", "title": "Activation",
        "startingValue": 0, "targetValue": 100, "status": status, "updatedAt": at,
        "startDate": "2025-04-01", "dueDate": "2025-06-30",
        "currentValue": {"previous": previous, "current": current},
    });
    if previous.is_none() {
        body["currentValue"] = current.into();
    }
    normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLELOGIC).unwrap(),
        &HeaderMap::new(),
        body.to_string().as_bytes(),
        datetime!(2026-01-01 0:00 UTC),
    )
    .unwrap()
}

fn without_period(previous: Option<f64>, current: f64) -> Event {
    let body = json!({"eventType": "objective.patch", "id": "kr-2", "parentId": "o", "targetValue": 100,
        "currentValue": {"previous": previous, "current": current}});
    normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLELOGIC).unwrap(),
        &HeaderMap::new(),
        body.to_string().as_bytes(),
        datetime!(2026-01-01 0:00 UTC),
    )
    .unwrap()
}

#[test]
fn the_rules_against_progress_histories_and_periods() {
    let t = Thresholds::default();
    // 2025-05-16 is 50% of the quarter; 2025-04-28 is 30%.
    let cases: [(&str, Event, &[Rule]); 12] = [
        ("no period, low", without_period(None, 20.0), &[Rule::Low]),
        ("no period, fine", without_period(None, 40.0), &[]),
        (
            "half gone, 20%: behind and low",
            kr("2025-05-16T00:00:00Z", None, 20.0, "ON_TRACK"),
            &[Rule::BehindPace, Rule::Low],
        ),
        (
            "half gone, 40%: within tolerance",
            kr("2025-05-16T00:00:00Z", None, 40.0, "ON_TRACK"),
            &[],
        ),
        (
            "half gone, 34%: just behind",
            kr("2025-05-16T00:00:00Z", None, 34.0, "ON_TRACK"),
            &[Rule::BehindPace],
        ),
        (
            "30% gone, 10%: behind, too early for low",
            kr("2025-04-28T00:00:00Z", None, 10.0, "ON_TRACK"),
            &[Rule::BehindPace],
        ),
        (
            "30% gone, 20%: on pace, too early for low",
            kr("2025-04-28T00:00:00Z", None, 20.0, "ON_TRACK"),
            &[],
        ),
        (
            "a fall of 12 points",
            kr("2025-04-10T00:00:00Z", Some(50.0), 38.0, "ON_TRACK"),
            &[Rule::Dropped],
        ),
        (
            "a fall of 5 points",
            kr("2025-04-10T00:00:00Z", Some(50.0), 45.0, "ON_TRACK"),
            &[],
        ),
        (
            "status off track",
            kr("2025-04-10T00:00:00Z", None, 50.0, "OFF_TRACK"),
            &[Rule::AtRisk],
        ),
        (
            "status at-risk",
            kr("2025-04-10T00:00:00Z", None, 50.0, "at-risk"),
            &[Rule::AtRisk],
        ),
        (
            "status behind",
            kr("2025-04-10T00:00:00Z", None, 50.0, "Behind"),
            &[Rule::AtRisk],
        ),
    ];
    for (name, event, rules) in cases {
        assert_eq!(assess(&event, &t).holding, rules, "{name}");
    }
    // Recovery: 20% -> 60% at half time: no longer behind, no longer low.
    let recovered = assess(
        &kr("2025-05-16T00:00:00Z", Some(20.0), 60.0, "ON_TRACK"),
        &t,
    );
    assert!(recovered.holding.is_empty());
    assert!(
        recovered.clear.contains(&Rule::BehindPace) && recovered.clear.contains(&Rule::Low),
        "{recovered:?}"
    );
    // A drop is over when progress rises, not when it only stops falling; a rule the
    // update cannot judge (no period, no status) is neither holding nor clear.
    assert!(recovered.clear.contains(&Rule::Dropped));
    let flat = assess(&without_period(Some(40.0), 38.0), &t);
    assert!(
        !flat.clear.contains(&Rule::Dropped) && !flat.clear.contains(&Rule::BehindPace),
        "{flat:?}"
    );
    assert!(flat.clear.contains(&Rule::Low) && !flat.clear.contains(&Rule::AtRisk));
    // Completed: everything resolves.
    let done = assess(
        &kr("2025-06-01T00:00:00Z", Some(70.0), 100.0, "COMPLETED"),
        &t,
    );
    assert!(done.completed && done.holding.is_empty());
    // Other thresholds from the environment.
    let strict = Thresholds {
        low_threshold: 50.0,
        low_after: 0.0,
        ..Thresholds::default()
    };
    assert_eq!(
        assess(&kr("2025-04-02T00:00:00Z", None, 45.0, "ON_TRACK"), &strict).holding,
        [Rule::Low]
    );
}

struct Stack {
    slack: MockServer,
    pagerduty: MockServer,
    alerts: ProgressAlerts,
}

async fn stack(with_slack: bool, with_pagerduty: bool) -> Stack {
    let slack = MockServer::start().await;
    let pagerduty = MockServer::start().await;
    for server in [&slack, &pagerduty] {
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(202).set_body_string("ok"))
            .mount(server)
            .await;
    }
    let alerts = alerts_to(
        with_slack.then_some(&slack),
        with_pagerduty.then_some(&pagerduty),
        DEFAULT_WINDOW,
    );
    Stack {
        slack,
        pagerduty,
        alerts,
    }
}

/// The alerts consumer posting to the given stand-ins (a Slack alerts channel and/or
/// PagerDuty), with an in-memory idempotency store.
fn alerts_to(
    slack: Option<&MockServer>,
    pagerduty: Option<&MockServer>,
    window: Duration,
) -> ProgressAlerts {
    alerts_with(
        slack,
        pagerduty,
        window,
        Arc::new(MemoryIdempotencyStore::default()),
    )
}

/// The same, over `store`.
fn alerts_with(
    slack: Option<&MockServer>,
    pagerduty: Option<&MockServer>,
    window: Duration,
    store: Arc<dyn IdempotencyStore>,
) -> ProgressAlerts {
    let http = http_client().unwrap();
    let slack = slack.map(|server| -> Arc<dyn SlackPoster> {
        let url = WebhookUrl::new(&format!("{}/alerts-channel", server.uri())).unwrap();
        Arc::new(WebhookPoster::new(
            http.clone(),
            SecretCache::new(Arc::new(StaticSecret(url)), Duration::from_secs(60)),
        ))
    });
    let pagerduty = pagerduty.map(|server| -> Arc<dyn PagerDuty> {
        let key = RoutingKey::new("R0UT1NGKEY0000000000000000000000").unwrap();
        let cache = SecretCache::new(Arc::new(StaticSecret(key)), Duration::from_secs(60));
        Arc::new(PagerDutyClient::new(
            http.clone(),
            format!("{}/v2/enqueue", server.uri()),
            cache,
        ))
    });
    ProgressAlerts::new(
        Destinations {
            slack,
            pagerduty,
            email: None,
        },
        store,
        Thresholds::default(),
        window,
    )
}

fn sample(name: &str) -> SqsEvent {
    let path = format!(
        "{}/../../events/progress-alerts/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

impl Stack {
    async fn handle(&self, batch: SqsEvent) -> SqsBatchResponse {
        self.alerts
            .handle(batch, Instant::now() + Duration::from_secs(60))
            .await
            .unwrap()
    }
}

async fn received(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn behind_pace_triggers_and_recovery_resolves_the_same_dedup_key() {
    let s = stack(true, true).await;
    assert!(
        s.handle(sample("behind_pace.json"))
            .await
            .batch_item_failures
            .is_empty()
    );
    let pagerduty = received(&s.pagerduty).await;
    assert_eq!(pagerduty.len(), 1);
    let trigger = &pagerduty[0];
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(
        trigger["dedup_key"],
        "peoplelogic:kr-activation-rate:behind_pace"
    );
    assert_eq!(trigger["routing_key"], "R0UT1NGKEY0000000000000000000000");
    assert_eq!(
        trigger["payload"]["summary"],
        "KR Raise activation to 40% is behind pace: 32% done with 68.2% of the period gone"
    );
    assert_eq!(trigger["payload"]["severity"], "warning");
    assert_eq!(trigger["payload"]["custom_details"]["progress"], 32.0);
    let slack = received(&s.slack).await;
    assert_eq!(slack.len(), 1);
    assert_eq!(
        slack[0]["text"],
        "KR Raise activation to 40% is behind pace: 32% done with 68.2% of the period gone"
    );

    assert!(
        s.handle(sample("recovered.json"))
            .await
            .batch_item_failures
            .is_empty()
    );
    // The recovery resolves what was triggered, and only that.
    assert_eq!(
        actions(&received(&s.pagerduty).await),
        [
            (
                "trigger",
                "peoplelogic:kr-activation-rate:behind_pace".to_owned()
            ),
            (
                "resolve",
                "peoplelogic:kr-activation-rate:behind_pace".to_owned()
            ),
        ]
    );
    assert!(received(&s.pagerduty).await[1].get("payload").is_none());
    let slack = received(&s.slack).await;
    assert_eq!(slack.len(), 2);
    assert_eq!(
        slack[1]["text"],
        "KR Raise activation to 40% is back on pace (70%)"
    );

    // Completed with nothing open: nothing to resolve, nothing sent.
    assert!(
        s.handle(sample("completed.json"))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(received(&s.pagerduty).await.len(), 2);
    assert_eq!(received(&s.slack).await.len(), 2);
}

/// (action, dedup key) of each PagerDuty request, in order.
fn actions(requests: &[Value]) -> Vec<(&'static str, String)> {
    requests
        .iter()
        .map(|r| {
            let action = match r["event_action"].as_str().unwrap() {
                "trigger" => "trigger",
                "resolve" => "resolve",
                other => panic!("unexpected event_action {other}"),
            };
            (action, r["dedup_key"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// The PagerDuty requests since the first `skip`, as (action, rule).
async fn pagerduty_since(server: &MockServer, skip: usize) -> Vec<(&'static str, String)> {
    actions(&received(server).await)
        .into_iter()
        .skip(skip)
        .map(|(action, key)| (action, key.rsplit(':').next().unwrap().to_owned()))
        .collect()
}

fn pairs(expected: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    expected
        .iter()
        .map(|(action, rule)| (*action, (*rule).to_owned()))
        .collect()
}

/// One SQS batch carrying `events`, one record each.
fn batch_of(events: &[&Event]) -> SqsEvent {
    let mut batch = sample("behind_pace.json");
    let template = batch.records[0].clone();
    batch.records = events
        .iter()
        .enumerate()
        .map(|(n, event)| {
            let mut record = template.clone();
            record.message_id = Some(format!("message-{n}-{}", event.id));
            record.body = Some(serde_json::to_string(event).unwrap());
            record
        })
        .collect();
    batch
}

/// Each idempotency store the alerts run on: in memory (Lambda tests) and SQLite
/// (`serve`); the DynamoDB adapter keeps the same contract (tests/idempotency.rs).
fn stores() -> Vec<(&'static str, Arc<dyn IdempotencyStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteIdempotencyStore::open(&dir.path().join("idempotency.sqlite")).unwrap();
    vec![
        (
            "memory",
            Arc::new(MemoryIdempotencyStore::default()),
            tempfile::tempdir().unwrap(),
        ),
        ("sqlite", Arc::new(sqlite), dir),
    ]
}

async fn handled(alerts: &ProgressAlerts, events: &[&Event]) {
    let response = alerts
        .handle(batch_of(events), Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
}

#[tokio::test]
async fn a_rise_then_a_drop_within_the_window_pages_dropped_and_behind_pace() {
    for (store_name, store, _dir) in stores() {
        let s = stack(true, true).await;
        let alerts = alerts_with(Some(&s.slack), Some(&s.pagerduty), DEFAULT_WINDOW, store);
        // Half way through the quarter: 30% -> 60% is on pace, and nothing was open, so
        // nothing resolves; an hour later 60% -> 0%.
        handled(
            &alerts,
            &[&kr("2025-05-16T00:00:00Z", Some(30.0), 60.0, "ON_TRACK")],
        )
        .await;
        assert!(received(&s.pagerduty).await.is_empty(), "{store_name}");
        assert!(received(&s.slack).await.is_empty(), "{store_name}");
        handled(
            &alerts,
            &[&kr("2025-05-16T01:00:00Z", Some(60.0), 0.0, "ON_TRACK")],
        )
        .await;
        assert_eq!(
            pagerduty_since(&s.pagerduty, 0).await,
            pairs(&[
                ("trigger", "behind_pace"),
                ("trigger", "low"),
                ("trigger", "dropped")
            ]),
            "{store_name}"
        );
        let slack: Vec<String> = received(&s.slack)
            .await
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            slack,
            [
                "KR Activation is behind pace: 0% done with 50% of the period gone",
                "KR Activation is low: 0% (below 30%)",
                "KR Activation dropped 60 points to 0%",
            ],
            "{store_name}"
        );
    }
}

#[tokio::test]
async fn a_rule_that_recovers_and_holds_again_alerts_again_and_late_updates_change_nothing() {
    for (store_name, store, _dir) in stores() {
        let s = stack(true, true).await;
        let alerts = alerts_with(Some(&s.slack), Some(&s.pagerduty), DEFAULT_WINDOW, store);
        let pagerduty = |skip| pagerduty_since(&s.pagerduty, skip);
        // Behind and low; two hours later back on track; two hours later behind again.
        handled(
            &alerts,
            &[&kr("2025-05-16T00:00:00Z", None, 20.0, "ON_TRACK")],
        )
        .await;
        assert_eq!(
            pagerduty(0).await,
            pairs(&[("trigger", "behind_pace"), ("trigger", "low")]),
            "{store_name}"
        );
        handled(
            &alerts,
            &[&kr("2025-05-16T02:00:00Z", Some(20.0), 60.0, "ON_TRACK")],
        )
        .await;
        assert_eq!(
            pagerduty(2).await,
            pairs(&[("resolve", "behind_pace"), ("resolve", "low")]),
            "{store_name}: only what was open resolves"
        );
        handled(
            &alerts,
            &[&kr("2025-05-16T04:00:00Z", Some(60.0), 20.0, "ON_TRACK")],
        )
        .await;
        assert_eq!(
            pagerduty(4).await,
            pairs(&[
                ("trigger", "behind_pace"),
                ("trigger", "low"),
                ("trigger", "dropped")
            ]),
            "{store_name}: within the window, but they had recovered"
        );
        // An update from 03:00 arrives last: older than the newest applied, it neither
        // resolves nor reopens anything.
        handled(
            &alerts,
            &[&kr("2025-05-16T03:00:00Z", Some(20.0), 60.0, "ON_TRACK")],
        )
        .await;
        assert_eq!(pagerduty(7).await, [], "{store_name}");
        let slack = received(&s.slack).await;
        assert_eq!(slack.len(), 2 + 2 + 3, "{store_name}: {slack:?}");
        assert_eq!(slack[2]["text"], "KR Activation is back on pace (60%)");
        assert_eq!(slack[3]["text"], "KR Activation is no longer low (60%)");
        // Completed: what is open resolves in PagerDuty (Slack hears of completions
        // from the notifier); a second completion finds nothing open.
        handled(
            &alerts,
            &[&kr("2025-05-20T00:00:00Z", Some(20.0), 100.0, "COMPLETED")],
        )
        .await;
        handled(
            &alerts,
            &[&kr("2025-05-21T00:00:00Z", Some(100.0), 100.0, "COMPLETED")],
        )
        .await;
        assert_eq!(
            pagerduty(7).await,
            pairs(&[
                ("resolve", "behind_pace"),
                ("resolve", "low"),
                ("resolve", "dropped")
            ]),
            "{store_name}"
        );
        assert_eq!(received(&s.slack).await.len(), 7, "{store_name}");
    }
}

#[tokio::test]
async fn a_completed_objective_with_no_open_alert_sends_nothing() {
    for (store_name, store, _dir) in stores() {
        let s = stack(true, true).await;
        let alerts = alerts_with(Some(&s.slack), Some(&s.pagerduty), DEFAULT_WINDOW, store);
        let body = sample_body("peoplelogic/objective_completed.json");
        let completed = normalize(
            &okr_core::endpoints::Endpoint::of_source(Source::PEOPLELOGIC).unwrap(),
            &HeaderMap::new(),
            &body,
            datetime!(2026-01-01 0:00 UTC),
        )
        .unwrap();
        assert_eq!(completed.event_type, "objective.completed");
        handled(&alerts, &[&completed]).await;
        assert!(received(&s.pagerduty).await.is_empty(), "{store_name}");
        assert!(received(&s.slack).await.is_empty(), "{store_name}");
    }
}

#[tokio::test]
async fn a_duplicate_and_a_redrive_days_later_alert_once() {
    for (store_name, store, _dir) in stores() {
        let s = stack(true, true).await;
        // A one-hour window, so that later updates can repeat the open alert.
        let alerts = alerts_with(
            Some(&s.slack),
            Some(&s.pagerduty),
            Duration::from_secs(3600),
            store,
        );
        let first = kr("2025-05-16T00:00:00Z", None, 40.0, "AT_RISK");
        handled(&alerts, &[&first, &first]).await;
        assert_eq!(
            pagerduty_since(&s.pagerduty, 0).await,
            pairs(&[("trigger", "at_risk")])
        );
        // Still at risk ten minutes later: the open alert is not repeated in the window.
        handled(
            &alerts,
            &[&kr("2025-05-16T00:10:00Z", None, 41.0, "AT_RISK")],
        )
        .await;
        // The first event redriven: nothing.
        handled(&alerts, &[&first]).await;
        assert_eq!(received(&s.pagerduty).await.len(), 1, "{store_name}");
        // Two days later, still at risk: the open alert is sent again, once.
        let later = kr("2025-05-18T00:00:00Z", None, 42.0, "AT_RISK");
        handled(&alerts, &[&later, &later]).await;
        handled(&alerts, &[&first, &later]).await;
        assert_eq!(
            pagerduty_since(&s.pagerduty, 0).await,
            pairs(&[("trigger", "at_risk"), ("trigger", "at_risk")]),
            "{store_name}"
        );
        assert_eq!(received(&s.slack).await.len(), 2, "{store_name}");
    }
}

fn sample_body(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../events/bodies/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn the_same_event_twice_alerts_once() {
    let s = stack(true, true).await;
    let mut batch = sample("behind_pace.json");
    let mut copy = batch.records[0].clone();
    copy.message_id = Some("the-same-event-again".into());
    batch.records.push(copy);
    assert!(s.handle(batch).await.batch_item_failures.is_empty());
    assert!(
        s.handle(sample("behind_pace.json"))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(received(&s.slack).await.len(), 1);
    assert_eq!(received(&s.pagerduty).await.len(), 1);
}

/// The behind-pace sample as replayed under `name`, forced or not.
fn replayed(name: &str, forced: bool) -> SqsEvent {
    let mut batch = sample("behind_pace.json");
    let mut event: Value = serde_json::from_str(batch.records[0].body.as_deref().unwrap()).unwrap();
    event["replay"] = json!({"name": name, "forced": forced});
    batch.records[0].body = Some(event.to_string());
    batch
}

#[tokio::test]
async fn a_replay_alerts_again_only_when_forced_and_once_per_name() {
    let s = stack(true, true).await;
    s.handle(sample("behind_pace.json")).await;
    // Gap-filling: the alert was sent; the replay changes nothing.
    assert!(
        s.handle(replayed("fill", false))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(received(&s.pagerduty).await.len(), 1);
    // Forced: judged from the replay's own state, so it is sent again, once.
    assert!(
        s.handle(replayed("again", true))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(
        s.handle(replayed("again", true))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(received(&s.pagerduty).await.len(), 2);
    assert_eq!(received(&s.slack).await.len(), 2);
}

#[tokio::test]
async fn a_second_low_update_within_the_window_alerts_no_more() {
    let s = stack(true, false).await;
    let batch = |event: Event| {
        let mut batch = sample("behind_pace.json");
        batch.records[0].body = Some(serde_json::to_string(&event).unwrap());
        batch
    };
    s.handle(batch(without_period(Some(25.0), 22.0))).await;
    s.handle(batch(without_period(Some(22.0), 19.0))).await;
    let slack = received(&s.slack).await;
    assert_eq!(slack.len(), 1, "{slack:?}");
    assert_eq!(slack[0]["text"], "KR (untitled) is low: 22% (below 30%)");
}

#[tokio::test]
async fn a_failing_destination_fails_the_record_and_the_retry_does_not_repeat_the_other() {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    let pagerduty = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/enqueue"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&pagerduty)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&pagerduty)
        .await;
    let alerts = alerts_to(Some(&slack), Some(&pagerduty), DEFAULT_WINDOW);
    let deadline = || Instant::now() + Duration::from_secs(60);
    let batch = sample("behind_pace.json");
    let id = batch.records[0].message_id.clone().unwrap();
    let first = alerts.handle(batch.clone(), deadline()).await.unwrap();
    assert_eq!(
        first
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect::<Vec<_>>(),
        [id.as_str()]
    );
    let second = alerts.handle(batch, deadline()).await.unwrap();
    assert!(second.batch_item_failures.is_empty());
    assert_eq!(received(&slack).await.len(), 1, "Slack alerted once");
    assert_eq!(
        received(&pagerduty).await.len(),
        2,
        "PagerDuty: the 500, then the trigger"
    );
}

#[tokio::test]
async fn a_refusal_from_pagerduty_fails_the_record_toward_the_dead_letter_queue() {
    let answer = ResponseTemplate::new(400)
        .set_body_json(json!({"status": "invalid event", "message": "Event object is invalid"}));
    let response = behind_pace_to_pagerduty_answering(answer).await;
    assert_eq!(response.batch_item_failures.len(), 1);
}

/// The behind-pace sample, alerted to a PagerDuty stand-in that gives `answer`.
async fn behind_pace_to_pagerduty_answering(answer: ResponseTemplate) -> SqsBatchResponse {
    let pagerduty = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer)
        .mount(&pagerduty)
        .await;
    let alerts = alerts_to(None, Some(&pagerduty), DEFAULT_WINDOW);
    alerts
        .handle(
            sample("behind_pace.json"),
            Instant::now() + Duration::from_secs(60),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn pagerduty_alone_works_and_events_that_are_not_key_results_are_ignored() {
    let s = stack(false, true).await;
    assert!(
        s.handle(sample("behind_pace.json"))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(received(&s.pagerduty).await.len(), 1);
    assert!(received(&s.slack).await.is_empty());
    // An employee event with a status: not a key result, nothing sent.
    let mut batch = sample("behind_pace.json");
    let body =
        br#"{"action":"leave_request_create","data":{"id":1,"attributes":{"state":"pending"}}}"#;
    let event = normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLEFORCE).unwrap(),
        &HeaderMap::new(),
        body,
        datetime!(2026-01-01 0:00 UTC),
    )
    .unwrap();
    batch.records[0].body = Some(serde_json::to_string(&event).unwrap());
    assert!(s.handle(batch).await.batch_item_failures.is_empty());
    assert_eq!(received(&s.pagerduty).await.len(), 1);
}

#[test]
fn routing_keys_and_webhook_urls_never_show_in_debug() {
    let key = RoutingKey::new("R0UT1NGKEY0000000000000000000000").unwrap();
    assert!(!format!("{key:?}").contains("R0UT1NG"));
    assert!(RoutingKey::new("not a key!").is_err());
}

#[tokio::test]
async fn an_older_trigger_arriving_after_the_recovery_does_not_reopen_the_alert() {
    let s = stack(true, true).await;
    assert!(
        s.handle(sample("recovered.json"))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(
        s.handle(sample("behind_pace.json"))
            .await
            .batch_item_failures
            .is_empty()
    );
    let triggers = received(&s.pagerduty)
        .await
        .into_iter()
        .filter(|r| r["event_action"] == "trigger")
        .count();
    assert_eq!(triggers, 0);
    let slack = received(&s.slack).await;
    assert!(
        slack
            .iter()
            .all(|m| !m["text"].as_str().unwrap().contains("behind pace")),
        "{slack:?}"
    );
}

#[tokio::test]
async fn key_results_without_an_id_are_not_alerted_and_deleted_ones_resolve() {
    let s = stack(true, true).await;
    let mut batch = sample("behind_pace.json");
    let mut event: Value = serde_json::from_str(batch.records[0].body.as_deref().unwrap()).unwrap();
    event["entity"]["id"] = Value::Null;
    batch.records[0].body = Some(event.to_string());
    assert!(s.handle(batch).await.batch_item_failures.is_empty());
    assert!(received(&s.pagerduty).await.is_empty());

    let body = json!({"eventType": "objective.delete", "id": "kr-9", "parentId": "o", "title": "Gone",
        "targetValue": 100, "currentValue": 10});
    let deleted = normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLELOGIC).unwrap(),
        &HeaderMap::new(),
        body.to_string().as_bytes(),
        datetime!(2026-01-01 0:00 UTC),
    )
    .unwrap();
    assert_eq!(deleted.event_type, "key_result.deleted");
    let assessment = assess(&deleted, &Thresholds::default());
    assert!(
        assessment.completed && assessment.holding.is_empty(),
        "{assessment:?}"
    );
}

#[tokio::test]
async fn an_update_of_a_key_result_another_invocation_is_judging_waits_its_turn() {
    use okr_pipeline::idempotency::{Claim, ClaimStore};
    let s = stack(true, true).await;
    let store = Arc::new(MemoryIdempotencyStore::default());
    let alerts = alerts_with(
        Some(&s.slack),
        Some(&s.pagerduty),
        DEFAULT_WINDOW,
        store.clone(),
    );
    // Another invocation is judging an update of kr-1 right now.
    let Claim::Proceed(token) = store
        .begin(
            "alert-lock:peoplelogic:kr-1",
            time::OffsetDateTime::now_utc(),
            Duration::from_secs(60),
        )
        .await
        .unwrap()
    else {
        panic!("the lock should be free")
    };
    let behind = kr("2025-05-16T00:00:00Z", None, 40.0, "AT_RISK");
    let response = alerts
        .handle(
            batch_of(&[&behind]),
            Instant::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1, "retried later");
    assert!(received(&s.pagerduty).await.is_empty());
    assert!(received(&s.slack).await.is_empty());
    // Its turn comes: the retry alerts once.
    store
        .release("alert-lock:peoplelogic:kr-1", &token)
        .await
        .unwrap();
    handled(&alerts, &[&behind]).await;
    assert_eq!(
        pagerduty_since(&s.pagerduty, 0).await,
        pairs(&[("trigger", "at_risk")])
    );
    assert_eq!(received(&s.slack).await.len(), 1);
}

#[tokio::test]
async fn updates_in_the_same_second_apply_in_turn_and_a_redelivery_of_either_changes_nothing() {
    for (store_name, store, _dir) in stores() {
        let s = stack(false, true).await;
        let alerts = alerts_with(None, Some(&s.pagerduty), DEFAULT_WINDOW, store);
        let at_risk = kr("2025-05-16T00:00:00Z", None, 40.0, "AT_RISK");
        let on_track = kr("2025-05-16T00:00:00Z", None, 41.0, "ON_TRACK");
        handled(&alerts, &[&at_risk]).await;
        handled(&alerts, &[&on_track]).await;
        // The first delivered again (alone): applied already, it does not reopen.
        handled(&alerts, &[&at_risk]).await;
        assert_eq!(
            pagerduty_since(&s.pagerduty, 0).await,
            pairs(&[("trigger", "at_risk"), ("resolve", "at_risk")]),
            "{store_name}"
        );
        // The state says closed, as PagerDuty does: the next relapse pages.
        handled(
            &alerts,
            &[&kr("2025-05-16T01:00:00Z", None, 42.0, "AT_RISK")],
        )
        .await;
        assert_eq!(
            pagerduty_since(&s.pagerduty, 2).await,
            pairs(&[("trigger", "at_risk")]),
            "{store_name}"
        );
    }
}

#[tokio::test]
async fn a_state_write_that_loses_a_race_judges_again_without_sending_twice() {
    let s = stack(false, true).await;
    let alerts = alerts_with(
        None,
        Some(&s.pagerduty),
        DEFAULT_WINDOW,
        Arc::new(Faulty::default()),
    );
    handled(
        &alerts,
        &[&kr("2025-05-16T00:00:00Z", None, 40.0, "AT_RISK")],
    )
    .await;
    assert_eq!(
        pagerduty_since(&s.pagerduty, 0).await,
        pairs(&[("trigger", "at_risk")])
    );
    // The state was stored on the second try: the recovery resolves it.
    handled(
        &alerts,
        &[&kr("2025-05-16T01:00:00Z", None, 41.0, "ON_TRACK")],
    )
    .await;
    assert_eq!(
        pagerduty_since(&s.pagerduty, 0).await,
        pairs(&[("trigger", "at_risk"), ("resolve", "at_risk")])
    );
}

#[tokio::test]
async fn a_refusing_slack_channel_does_not_keep_pagerduty_from_paging() {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_string("invalid_token"))
        .mount(&slack)
        .await;
    let pagerduty = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&pagerduty)
        .await;
    let alerts = alerts_to(Some(&slack), Some(&pagerduty), DEFAULT_WINDOW);
    let response = alerts
        .handle(
            batch_of(&[&kr("2025-05-16T00:00:00Z", None, 40.0, "AT_RISK")]),
            Instant::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "Slack's refusal fails the record"
    );
    assert_eq!(
        pagerduty_since(&pagerduty, 0).await,
        pairs(&[("trigger", "at_risk")])
    );
}

#[tokio::test]
async fn no_alert_follows_a_redirect_and_plain_http_goes_only_to_loopback() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&elsewhere)
        .await;
    // Stand-ins that send every request elsewhere: the routing key must not follow.
    let redirecting = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/v2/enqueue", elsewhere.uri())),
        )
        .mount(&redirecting)
        .await;
    let alerts = alerts_to(Some(&redirecting), Some(&redirecting), DEFAULT_WINDOW);
    let response = alerts
        .handle(
            batch_of(&[&kr("2025-05-16T00:00:00Z", None, 40.0, "AT_RISK")]),
            Instant::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1, "a 307 is a refusal");
    assert_eq!(
        received(&redirecting).await.len(),
        2,
        "Slack and PagerDuty tried once each"
    );
    assert!(
        received(&elsewhere).await.is_empty(),
        "nothing followed the redirect"
    );

    // Plain http to anywhere but loopback is refused before anything is sent: a
    // configuration error (not an outage, so the breaker stays closed), naming the
    // setting and never the URL.
    let key = RoutingKey::new("R0UT1NGKEY0000000000000000000000").unwrap();
    let pagerduty = PagerDutyClient::new(
        http_client().unwrap(),
        "http://events.example.com/v2/enqueue",
        SecretCache::new(Arc::new(StaticSecret(key)), Duration::from_secs(60)),
    );
    let alert = okr_pipeline::outbound::pagerduty::Alert {
        action: okr_pipeline::outbound::pagerduty::Action::Trigger,
        dedup_key: "peoplelogic:kr-1:at_risk".into(),
        summary: "KR Activation is at risk".into(),
        source: "okr-webhooks/peoplelogic".into(),
        details: json!({"rule": "at_risk"}),
    };
    let error = pagerduty.send(&alert).await.unwrap_err();
    assert!(
        matches!(
            error,
            okr_pipeline::outbound::DeliveryError::Misconfigured { .. }
        ),
        "{error:?}"
    );
    assert!(error.is_refusal() && !error.is_outage());
    let text = okr_core::error_chain(&error);
    assert!(text.contains("https://"), "{text}");
    assert!(!text.contains("events.example.com"), "{text}");
}

#[tokio::test]
async fn an_alert_sent_but_not_recorded_is_acknowledged_counted_and_not_sent_again() {
    let s = stack(false, true).await;
    let metrics = Arc::new(okr_pipeline::metrics::MemoryMetrics::default());
    let alerts = alerts_with(
        None,
        Some(&s.pagerduty),
        DEFAULT_WINDOW,
        Arc::new(Faulty {
            lost: true.into(),
            fail_completes: true,
            ..Faulty::default()
        }),
    )
    .guarded(Duration::from_secs(185), metrics.clone());
    let at_risk = kr("2025-05-16T00:00:00Z", None, 40.0, "AT_RISK");
    // Sent; marking it done fails: acknowledged (failing it would page again), counted.
    handled(&alerts, &[&at_risk]).await;
    assert_eq!(
        metrics.counts(),
        [(
            "progress-alerts",
            okr_pipeline::idempotency::guard::SENDS_NOT_RECORDED
        )]
    );
    // Delivered again: no second page.
    handled(&alerts, &[&at_risk]).await;
    assert_eq!(
        pagerduty_since(&s.pagerduty, 0).await,
        pairs(&[("trigger", "at_risk")])
    );
}

#[tokio::test]
async fn an_alert_whose_claim_cannot_be_marked_sending_is_not_sent_now() {
    let s = stack(true, true).await;
    let alerts = alerts_with(
        Some(&s.slack),
        Some(&s.pagerduty),
        DEFAULT_WINDOW,
        Arc::new(Faulty {
            lost: true.into(),
            fail_sending: true,
            ..Faulty::default()
        }),
    );
    let response = alerts
        .handle(
            batch_of(&[&kr("2025-05-16T00:00:00Z", None, 40.0, "AT_RISK")]),
            Instant::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1, "retried later");
    assert!(received(&s.pagerduty).await.is_empty());
    assert!(received(&s.slack).await.is_empty());
}

/// Log lines written while the test runs on this thread.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Capture this thread's log lines until the guard is dropped.
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// What was logged so far.
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn a_pagerduty_outage_is_logged_as_pagerdutys() {
    let (logs, _logging) = Logs::capture();
    let answer = ResponseTemplate::new(503).set_body_string("upstream connect error");
    let response = behind_pace_to_pagerduty_answering(answer).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    let logs = logs.text();
    assert!(
        logs.contains("PagerDuty is unavailable: HTTP 503 upstream connect error"),
        "{logs}"
    );
    assert!(!logs.contains("Slack"), "{logs}");
}

/// A send starts only with time for its own two store calls and the state write and
/// lock release after it (5 s each at most) before the deadline: about 21 s.
#[tokio::test]
async fn a_send_starts_only_with_time_for_the_store_calls_around_it() {
    let s = stack(true, true).await;
    let late = s
        .alerts
        .handle(
            sample("behind_pace.json"),
            Instant::now() + Duration::from_secs(15),
        )
        .await
        .unwrap();
    assert_eq!(late.batch_item_failures.len(), 1, "no time: retried later");
    assert!(received(&s.slack).await.is_empty());
    assert!(received(&s.pagerduty).await.is_empty());
    let in_time = s
        .alerts
        .handle(
            sample("behind_pace.json"),
            Instant::now() + Duration::from_secs(22),
        )
        .await
        .unwrap();
    assert!(in_time.batch_item_failures.is_empty());
    assert_eq!(received(&s.slack).await.len(), 1);
    assert_eq!(received(&s.pagerduty).await.len(), 1);
}

/// An alert sent to the alerts channel and to PagerDuty is logged once per destination,
/// each line naming it (the breaker's and metrics' name), so the two are told apart.
#[tokio::test]
async fn each_alert_log_line_names_its_destination() {
    let (logs, _logging) = Logs::capture();
    let s = stack(true, true).await;
    let response = s
        .alerts
        .handle(
            sample("behind_pace.json"),
            Instant::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let logs = logs.text();
    let sent: Vec<&str> = logs.lines().filter(|l| l.contains("alert sent")).collect();
    assert_eq!(sent.len(), 2, "{logs}");
    for destination in ["alerts-slack", "pagerduty"] {
        let named = format!("destination=\"{destination}\"");
        assert_eq!(
            sent.iter().filter(|l| l.contains(&named)).count(),
            1,
            "{destination}: {logs}"
        );
    }
}

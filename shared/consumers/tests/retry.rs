//! The retry schedule, and the consumers deferring their failed records by it: a
//! transient failure waits its turn, a refusal waits briefly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use okr_consumers::alerts::{DEFAULT_WINDOW, Destinations, ProgressAlerts};
use okr_consumers::slack::SlackNotifier;
use okr_core::routing::NotifyRules;
use okr_core::rules::Thresholds;
use okr_pipeline::idempotency::memory::MemoryIdempotencyStore;
use okr_pipeline::outbound::http::http_client;
use okr_pipeline::outbound::pagerduty::RoutingKey;
use okr_pipeline::outbound::slack::{WebhookPoster, WebhookUrl};
use okr_pipeline::queue::{Defer, DeferError};
use okr_pipeline::retry::{Failure, MAX_RECEIVE_COUNT, Retries, Schedule};
use okr_pipeline::secrets::{SecretCache, StaticSecret};
use tokio::time::Instant;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn transient_waits_double_from_30_s_to_2_h_within_20_percent() {
    let schedule = Schedule::default();
    let at = |count, jitter| schedule.delay(Failure::Transient, count, jitter);
    assert_eq!(at(1, 0.5), Duration::from_secs(30));
    assert_eq!(at(2, 0.5), Duration::from_secs(60));
    assert_eq!(at(8, 0.5), Duration::from_secs(64 * 60));
    assert_eq!(at(9, 0.5), 2 * HOUR);
    assert_eq!(at(25, 0.5), 2 * HOUR);
    assert_eq!(at(1, 0.0), Duration::from_secs(24));
    assert_eq!(at(1, 1.0), Duration::from_secs(36));
    assert_eq!(
        schedule.delay(Failure::Refused, 7, 0.9),
        Duration::from_secs(60)
    );
}

#[test]
fn a_day_long_outage_does_not_exhaust_the_receives_but_a_refusal_does_in_minutes() {
    let schedule = Schedule::default();
    // The waits between the receives a record gets before the queue gives up.
    let waits = |failure, jitter| -> Duration {
        (1..MAX_RECEIVE_COUNT)
            .map(|count| schedule.delay(failure, count, jitter))
            .sum()
    };
    let shortest = waits(Failure::Transient, 0.0);
    assert!(shortest >= 24 * HOUR, "{shortest:?}");
    assert!(shortest > Duration::from_secs(27 * 3600));
    let nominal = waits(Failure::Transient, 0.5);
    assert!(nominal > Duration::from_secs(34 * 3600), "{nominal:?}");
    assert_eq!(waits(Failure::Refused, 0.5), Duration::from_secs(24 * 60));
}

/// Records each deferral.
#[derive(Default)]
struct Recorded(Mutex<Vec<(String, Duration)>>);

#[async_trait]
impl Defer for Recorded {
    async fn defer(&self, receipt_handle: &str, delay: Duration) -> Result<(), DeferError> {
        self.0
            .lock()
            .unwrap()
            .push((receipt_handle.to_owned(), delay));
        Ok(())
    }
}

fn sample(name: &str) -> SqsEvent {
    let path = format!(
        "{}/../../events/slack-notifier/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The Slack notifier's deferrals of the employee sample when Slack answers `status`.
async fn notifier_deferrals(status: u16) -> Vec<(String, Duration)> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status).set_body_string("no_service"))
        .mount(&server)
        .await;
    let url = WebhookUrl::new(&format!("{}/services/T/B/X", server.uri())).unwrap();
    let poster = WebhookPoster::new(
        http_client().unwrap(),
        SecretCache::new(Arc::new(StaticSecret(url)), Duration::from_secs(60)),
    );
    let recorded = Arc::new(Recorded::default());
    let retries = Retries {
        defer: recorded.clone(),
        schedule: Schedule::default(),
    };
    let store = Arc::new(MemoryIdempotencyStore::default());
    let notifier =
        SlackNotifier::new(Arc::new(poster), store, NotifyRules::default(), 5).retrying(retries);
    let batch = sample("employee_created.json");
    let response = notifier
        .handle(batch.clone(), Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    let deferrals = recorded.0.lock().unwrap().clone();
    assert!(
        deferrals
            .iter()
            .all(|(receipt, _)| Some(receipt) == batch.records[0].receipt_handle.as_ref())
    );
    deferrals
}

#[tokio::test]
async fn a_refusal_is_deferred_briefly_and_an_outage_by_the_schedule() {
    let refused = notifier_deferrals(404).await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].1, Duration::from_secs(60));
    let unavailable = notifier_deferrals(503).await;
    assert_eq!(unavailable.len(), 1);
    let wait = unavailable[0].1;
    assert!((24..=36).contains(&wait.as_secs()), "{wait:?}");
}

/// A routing key that was rotated: the first read gives the old key, later ones the new.
struct Rotated(std::sync::atomic::AtomicUsize);

#[async_trait]
impl okr_pipeline::secrets::SecretStore<RoutingKey> for Rotated {
    async fn fetch(&self) -> Result<RoutingKey, okr_pipeline::secrets::SecretsError> {
        let reads = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        RoutingKey::new(if reads == 0 { OLD_KEY } else { NEW_KEY })
    }
}

const OLD_KEY: &str = "0LDKEY00000000000000000000000000";
const NEW_KEY: &str = "NEWKEY00000000000000000000000000";

/// The behind-pace sample through alerts to a Slack channel answering `slack` and a
/// PagerDuty answering 202 to the new key and `pagerduty` to the rest; the deferrals
/// and the PagerDuty requests.
async fn alerts_deferrals(slack: u16, pagerduty: u16) -> (Vec<Duration>, usize) {
    let (slack_server, pagerduty_server) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(slack).set_body_string("no_service"))
        .mount(&slack_server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains(NEW_KEY))
        .respond_with(ResponseTemplate::new(202))
        .with_priority(1)
        .mount(&pagerduty_server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(pagerduty)
                .set_body_string(r#"{"message":"Invalid routing key"}"#),
        )
        .mount(&pagerduty_server)
        .await;
    let url = WebhookUrl::new(&format!("{}/alerts", slack_server.uri())).unwrap();
    let key = SecretCache::new(
        Arc::new(Rotated(Default::default()))
            as Arc<dyn okr_pipeline::secrets::SecretStore<RoutingKey>>,
        Duration::from_secs(300),
    );
    let destinations = Destinations::over_http(
        &http_client().unwrap(),
        Some(SecretCache::new(
            Arc::new(StaticSecret(url)),
            Duration::from_secs(60),
        )),
        Some((format!("{}/v2/enqueue", pagerduty_server.uri()), key)),
    );
    let recorded = Arc::new(Recorded::default());
    let alerts = ProgressAlerts::new(
        destinations,
        Arc::new(MemoryIdempotencyStore::default()),
        Thresholds::default(),
        DEFAULT_WINDOW,
    )
    .retrying(Retries {
        defer: recorded.clone(),
        schedule: Schedule::default(),
    });
    let batch: SqsEvent = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../../events/progress-alerts/behind_pace.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    alerts
        .handle(batch, Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    let deferrals = recorded.0.lock().unwrap().iter().map(|(_, d)| *d).collect();
    let requests = pagerduty_server.received_requests().await.unwrap().len();
    (deferrals, requests)
}

#[tokio::test]
async fn an_alert_refused_by_slack_while_pagerduty_is_down_keeps_the_outage_schedule() {
    let (deferrals, _) = alerts_deferrals(404, 503).await;
    assert_eq!(deferrals.len(), 1);
    assert!((24..=36).contains(&deferrals[0].as_secs()), "{deferrals:?}");
    // Refused by Slack only (PagerDuty pages after reading its key again): a refusal.
    let (deferrals, _) = alerts_deferrals(404, 400).await;
    assert_eq!(deferrals, [Duration::from_secs(60)]);
}

#[tokio::test]
async fn a_rotated_routing_key_is_read_again_after_a_refusal() {
    // The cached old key is refused; the key is read again and the page goes out.
    let (deferrals, requests) = alerts_deferrals(200, 400).await;
    assert!(deferrals.is_empty(), "{deferrals:?}");
    assert_eq!(requests, 2, "the old key, then the new one");
}

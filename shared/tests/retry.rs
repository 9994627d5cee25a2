//! The retry schedule, and the consumers deferring their failed records by it: a
//! transient failure waits its turn, a refusal waits briefly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use okr_webhooks::idempotency::memory::MemoryIdempotencyStore;
use okr_webhooks::outbound::http::http_client;
use okr_webhooks::outbound::slack::{WebhookPoster, WebhookUrl};
use okr_webhooks::queue::{Defer, DeferError};
use okr_webhooks::retry::{Failure, MAX_RECEIVE_COUNT, Retries, Schedule};
use okr_webhooks::routing::NotifyRules;
use okr_webhooks::secrets::{SecretCache, StaticSecret};
use okr_webhooks::slack::SlackNotifier;
use tokio::time::Instant;
use wiremock::matchers::method;
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
        Duration::from_secs(10)
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
    assert!(waits(Failure::Refused, 0.5) < Duration::from_secs(5 * 60));
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
        "{}/../events/slack-notifier/{name}",
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
        http_client(false).unwrap(),
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
    assert_eq!(refused[0].1, Duration::from_secs(10));
    let unavailable = notifier_deferrals(503).await;
    assert_eq!(unavailable.len(), 1);
    let wait = unavailable[0].1;
    assert!((24..=36).contains(&wait.as_secs()), "{wait:?}");
}

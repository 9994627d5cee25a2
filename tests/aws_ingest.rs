//! The ingest handler with its AWS adapters against moto: Secrets Manager for the
//! signing secrets, SQS for the consumer queues.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_sdk_secretsmanager::Client as SecretsClient;
use aws_sdk_sqs::Client as SqsClient;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use okr_aws::secrets_manager::SecretsManagerStore;
use okr_aws::sqs::SqsQueue;
use okr_consumers::ingest::{Ingest, apigw};
use okr_core::Event;
use okr_core::routing::NotifyRules;
use okr_pipeline::config::QueueUrls;
use okr_pipeline::metrics::MemoryMetrics;
use okr_pipeline::secrets::{SecretCache, SecretStore, SecretsError, SigningSecrets};
use okr_webhooks_tests::{Moto, unique};
use serde_json::Value;
use time::OffsetDateTime;

/// When the Standard Webhooks sample was signed (events/ingest/generate.sh).
const STANDARD_SIGNED_AT: i64 = 1_767_225_600;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(STANDARD_SIGNED_AT + 5).unwrap()
}

fn sample(name: &str) -> ApiGatewayV2httpRequest {
    let path = format!("{}/../events/ingest/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn test_secret_document() -> String {
    std::fs::read_to_string(format!(
        "{}/../events/secrets.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Counts the fetches that reach Secrets Manager.
struct Counting<S> {
    inner: S,
    fetches: AtomicUsize,
}

#[async_trait]
impl<S: SecretStore> SecretStore for Counting<S> {
    async fn fetch(&self) -> Result<SigningSecrets, SecretsError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.inner.fetch().await
    }
}

struct Stack {
    _moto: Moto,
    sqs: SqsClient,
    secrets: SecretsClient,
    secret_id: String,
    urls: QueueUrls,
}

async fn stack() -> Stack {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let sqs = SqsClient::new(&config);
    let secrets = SecretsClient::new(&config);
    let secret_id = unique("okr-webhooks-signing");
    secrets
        .create_secret()
        .name(&secret_id)
        .secret_string(test_secret_document())
        .send()
        .await
        .unwrap();
    let urls = okr_webhooks_tests::consumer_queues(&sqs).await;
    Stack {
        _moto: moto,
        sqs,
        secrets,
        secret_id,
        urls,
    }
}

impl Stack {
    fn store(&self) -> Arc<Counting<SecretsManagerStore>> {
        Arc::new(Counting {
            inner: SecretsManagerStore::new(self.secrets.clone(), &self.secret_id),
            fetches: AtomicUsize::new(0),
        })
    }

    fn ingest(&self, store: Arc<dyn SecretStore>, urls: QueueUrls) -> Ingest {
        Ingest::new(
            SecretCache::new(store, Duration::from_secs(300)),
            Arc::new(SqsQueue::new(self.sqs.clone(), urls)),
            NotifyRules::default(),
            256 * 1024,
            Arc::new(MemoryMetrics::default()),
        )
    }

    /// Every message on `url` (received, so gone from the queue for the visibility
    /// timeout), with its `event_id`, `source` and `type` attributes.
    async fn drain(&self, url: &str) -> Vec<(Event, [String; 3])> {
        let mut all = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .visibility_timeout(300)
                .send()
                .await
                .unwrap();
            let messages = output.messages();
            if messages.is_empty() {
                return all;
            }
            for message in messages {
                let event: Event = serde_json::from_str(message.body().unwrap()).unwrap();
                let attribute = |name: &str| {
                    message.message_attributes().unwrap()[name]
                        .string_value()
                        .unwrap()
                        .to_owned()
                };
                all.push((
                    event,
                    [
                        attribute("event_id"),
                        attribute("source"),
                        attribute("type"),
                    ],
                ));
            }
        }
    }
}

async fn send(
    ingest: &Ingest,
    name: &str,
) -> (
    u16,
    Value,
    aws_lambda_events::apigw::ApiGatewayV2httpResponse,
) {
    let response = apigw::handle(ingest, sample(name), now()).await;
    let Some(aws_lambda_events::encodings::Body::Text(text)) = &response.body else {
        panic!("no body")
    };
    (
        response.status_code as u16,
        serde_json::from_str(text).unwrap(),
        response,
    )
}

#[tokio::test]
async fn valid_deliveries_land_in_the_right_queues_and_rejected_ones_nowhere() {
    let stack = stack().await;
    let store = stack.store();
    let ingest = stack.ingest(store.clone(), stack.urls.clone());
    SqsQueue::new(stack.sqs.clone(), stack.urls.clone())
        .warm_up()
        .await
        .unwrap();

    // Rejected deliveries first: nothing may reach any queue.
    for (name, status) in [
        ("tampered-body.json", 401),
        ("missing-header.json", 401),
        ("invalid-base64.json", 400),
        ("signed-not-json.json", 400),
        ("perscom-get.json", 405),
        ("unknown-source.json", 404),
        ("oversize-body.json", 413),
    ] {
        assert_eq!(send(&ingest, name).await.0, status, "{name}");
    }
    for url in [&stack.urls.warehouse, &stack.urls.slack, &stack.urls.alerts] {
        assert!(
            stack.drain(url).await.is_empty(),
            "a 4xx left a message on {url}"
        );
    }
    // The secret was read from Secrets Manager (once, plus one refetch for the tampered body).
    assert_eq!(store.fetches.load(Ordering::SeqCst), 2);

    let mut accepted = Vec::new();
    for name in [
        "peoplelogic.json",
        "peopleforce.json",
        "peopleforce-base64.json",
        "perscom.json",
        "standard.json",
    ] {
        let (status, body, _) = send(&ingest, name).await;
        assert_eq!(status, 202, "{name}: {body}");
        accepted.push((name, body["event_id"].as_str().unwrap().to_owned()));
    }
    let warehouse = stack.drain(&stack.urls.warehouse).await;
    let slack = stack.drain(&stack.urls.slack).await;
    let alerts = stack.drain(&stack.urls.alerts).await;
    let ids = |messages: &[(Event, [String; 3])]| {
        let mut ids: Vec<String> = messages.iter().map(|(event, _)| event.id.clone()).collect();
        ids.sort();
        ids
    };
    let id_of = |name: &str| accepted.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let mut all: Vec<String> = accepted.iter().map(|(_, id)| id.clone()).collect();
    all.sort();
    assert_eq!(ids(&warehouse), all, "the warehouse gets every event");
    // Not the termination (peopleforce-base64.json): it has no rule by default.
    let mut notable = vec![
        id_of("peoplelogic.json"),
        id_of("peopleforce.json"),
        id_of("standard.json"),
    ];
    notable.sort();
    assert_eq!(ids(&slack), notable, "Slack gets the events with a rule");
    let mut progress = vec![id_of("peoplelogic.json"), id_of("standard.json")];
    progress.sort();
    assert_eq!(
        ids(&alerts),
        progress,
        "alerts get events with progress or status"
    );

    for (event, [event_id, source, event_type]) in warehouse.iter().chain(&slack).chain(&alerts) {
        assert_eq!(event_id, &event.id);
        assert_eq!(source, event.source.as_str());
        assert_eq!(event_type, &event.event_type);
    }
    let types: Vec<&str> = warehouse
        .iter()
        .map(|(e, _)| e.event_type.as_str())
        .collect();
    for expected in [
        "objective.completed",
        "employee.created",
        "employee.terminated",
        "rank_record.updated",
        "key_result.progress_updated",
    ] {
        assert!(types.contains(&expected), "{types:?}");
    }
}

#[tokio::test]
async fn a_missing_queue_gives_503_and_never_a_2xx() {
    let stack = stack().await;
    let mut urls = stack.urls.clone();
    urls.slack = format!(
        "{}/123456789012/{}",
        stack._moto.url,
        unique("no-such-queue")
    );
    assert!(
        SqsQueue::new(stack.sqs.clone(), urls.clone())
            .warm_up()
            .await
            .is_err()
    );
    let ingest = stack.ingest(stack.store(), urls);

    // Routed to Slack: 503, asked to retry.
    let (status, body, response) = send(&ingest, "peopleforce.json").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "enqueue_failed");
    assert_eq!(response.headers["retry-after"], "30");
    // Not routed to Slack: the missing queue does not matter.
    assert_eq!(send(&ingest, "perscom.json").await.0, 202);
}

#[tokio::test]
async fn a_rotated_secret_is_picked_up_with_at_most_one_refetch_per_interval() {
    let stack = stack().await;
    // Start with only an old PERSCOM secret.
    stack
        .secrets
        .put_secret_value()
        .secret_id(&stack.secret_id)
        .secret_string(r#"{"perscom": "old-secret"}"#)
        .send()
        .await
        .unwrap();
    let store = stack.store();
    let ingest = stack.ingest(store.clone(), stack.urls.clone());
    ingest.warm_up().await;
    assert_eq!(store.fetches.load(Ordering::SeqCst), 1);

    // Rotate to the test secrets: the next good delivery is accepted after one refetch.
    stack
        .secrets
        .put_secret_value()
        .secret_id(&stack.secret_id)
        .secret_string(test_secret_document())
        .send()
        .await
        .unwrap();
    assert_eq!(send(&ingest, "perscom.json").await.0, 202);
    assert_eq!(store.fetches.load(Ordering::SeqCst), 2);

    // A flood of bad signatures within the 30 s interval: no more Secrets Manager calls.
    for _ in 0..40 {
        assert_eq!(send(&ingest, "tampered-body.json").await.0, 401);
    }
    assert_eq!(store.fetches.load(Ordering::SeqCst), 2);
    assert_eq!(send(&ingest, "peopleforce.json").await.0, 202);
}

#[tokio::test]
async fn a_secret_that_is_not_json_is_503_not_a_crash() {
    let stack = stack().await;
    stack
        .secrets
        .put_secret_value()
        .secret_id(&stack.secret_id)
        .secret_string("peopleforce=pf-test-secret")
        .send()
        .await
        .unwrap();
    let ingest = stack.ingest(stack.store(), stack.urls.clone());
    let (status, body, _) = send(&ingest, "peopleforce.json").await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "secrets_unavailable");
    assert!(!body.to_string().contains("pf-test-secret"));
}

#[tokio::test]
async fn characters_sqs_refuses_raw_are_queued_escaped() {
    let stack = stack().await;
    let ingest = stack.ingest(stack.store(), stack.urls.clone());
    let body = "{\"event\": \"user.created\", \"data\": {\"id\": 1, \"name\": \"odd \u{fffe}\u{ffff} name\"}}";
    let mut event = sample("perscom.json");
    event.body = Some(body.to_owned());
    let secret = okr_core::SigningSecret::new("perscom-test-secret");
    for (name, value) in okr_core::sign(
        okr_core::providers::provider(okr_core::Source::PERSCOM).unwrap(),
        &secret,
        body.as_bytes(),
        "",
        0,
    )
    .unwrap()
    {
        event.headers.insert(name, value.parse().unwrap());
    }
    let response = apigw::handle(&ingest, event, now()).await;
    assert_eq!(response.status_code, 202);
    let queued = stack.drain(&stack.urls.warehouse).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].0.entity.name.as_deref(),
        Some("odd \u{fffe}\u{ffff} name")
    );
}

/// An API Gateway request for `endpoint` with these headers and body.
fn request(endpoint: &str, headers: &[(String, String)], body: &[u8]) -> ApiGatewayV2httpRequest {
    let mut event = sample("peopleforce.json");
    event.path_parameters.clear();
    event.raw_path = Some(format!("/webhooks/{endpoint}"));
    event.headers = http::HeaderMap::new();
    for (name, value) in headers {
        event.headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    event.body = Some(String::from_utf8(body.to_vec()).unwrap());
    event.is_base64_encoded = false;
    event
}

/// Every preset through the ingest handler with its AWS adapters: the endpoints
/// document and the signing secrets in Secrets Manager, the queues on SQS. Deliveries
/// signed by each vendor's documented scheme (the independent Python signer) are
/// queued, tampered ones refused; Asana's handshake is written to the signing secret;
/// an endpoints document edited into a bad shape leaves the last good one in force.
#[tokio::test]
async fn every_preset_is_verified_through_the_ingest_handler_on_moto() {
    use okr_core::endpoints::Endpoints;
    use okr_webhooks_tests::{DATA_PRESETS, preset_body, sign_as_vendor, tampered};
    let stack = stack().await;
    let mut endpoints = serde_json::Map::new();
    let mut secrets = serde_json::Map::new();
    for preset in DATA_PRESETS {
        endpoints.insert(
            format!("via-{preset}"),
            serde_json::json!({"preset": preset}),
        );
        if preset != "asana" {
            secrets.insert(format!("via-{preset}"), format!("{preset}-secret").into());
        }
    }
    let endpoints_id = unique("okr-webhooks-endpoints");
    let document = serde_json::json!({ "endpoints": endpoints }).to_string();
    stack
        .secrets
        .create_secret()
        .name(&endpoints_id)
        .secret_string(&document)
        .send()
        .await
        .unwrap();
    stack
        .secrets
        .put_secret_value()
        .secret_id(&stack.secret_id)
        .secret_string(Value::Object(secrets).to_string())
        .send()
        .await
        .unwrap();
    let signing = Arc::new(SecretsManagerStore::new(
        stack.secrets.clone(),
        &stack.secret_id,
    ));
    let endpoints_store: Arc<dyn SecretStore<Endpoints>> = Arc::new(SecretsManagerStore::new(
        stack.secrets.clone(),
        &endpoints_id,
    ));
    let ingest = Ingest::new(
        SecretCache::new(signing.clone(), Duration::from_secs(300)),
        Arc::new(SqsQueue::new(stack.sqs.clone(), stack.urls.clone())),
        NotifyRules::default(),
        256 * 1024,
        Arc::new(MemoryMetrics::default()),
    )
    .with_endpoints(SecretCache::new(endpoints_store, Duration::from_millis(1)))
    .with_handshakes(signing);
    let now = OffsetDateTime::now_utc();
    let handle = async |endpoint: &str, headers: &[(String, String)], body: &[u8]| {
        apigw::handle(&ingest, request(endpoint, headers, body), now)
            .await
            .status_code
    };

    // Asana's handshake: kept in the signing secret, echoed, and only once.
    let handshake = [("X-Hook-Secret".to_owned(), "asana-secret".to_owned())];
    let answer = apigw::handle(&ingest, request("via-asana", &handshake, b""), now).await;
    assert_eq!(answer.status_code, 200);
    assert_eq!(answer.headers["x-hook-secret"], "asana-secret");
    let stored = stack
        .secrets
        .get_secret_value()
        .secret_id(&stack.secret_id)
        .send()
        .await
        .unwrap();
    let stored: Value = serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    assert_eq!(stored["via-asana"], "asana-secret");
    assert_eq!(stored["via-github"], "github-secret", "the others kept");
    let again = [("X-Hook-Secret".to_owned(), "intruder".to_owned())];
    assert_eq!(handle("via-asana", &again, b"").await, 403);

    let mut queued = Vec::new();
    for preset in DATA_PRESETS {
        let body = preset_body(preset, now.unix_timestamp() * 1000);
        let (headers, sent) = sign_as_vendor(
            preset,
            &format!("{preset}-secret"),
            &body,
            now.unix_timestamp(),
        );
        let endpoint = format!("via-{preset}");
        assert_eq!(handle(&endpoint, &headers, &sent).await, 202, "{preset}");
        queued.push(endpoint.clone());
        assert_eq!(
            handle(&endpoint, &headers, &tampered(preset, &sent)).await,
            401,
            "{preset} tampered"
        );
    }
    let warehouse = stack.drain(&stack.urls.warehouse).await;
    let mut endpoints_seen: Vec<String> = warehouse
        .iter()
        .map(|(event, _)| event.endpoint().to_string())
        .collect();
    endpoints_seen.sort();
    queued.sort();
    assert_eq!(endpoints_seen, queued, "each accepted once, none refused");

    // An edit that does not validate never takes effect: the last good one stays.
    stack
        .secrets
        .put_secret_value()
        .secret_id(&endpoints_id)
        .secret_string(r#"{"endpoints": {"via-github": {"preset": "gitlab"}}}"#)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let body = preset_body("github", 0);
    let (headers, sent) = sign_as_vendor("github", "github-secret", &body, now.unix_timestamp());
    assert_eq!(handle("via-github", &headers, &sent).await, 202);
}

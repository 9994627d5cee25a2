//! The ingest handler against in-memory ports: the HTTP contract, routing, secret
//! caching and rotation, with the request events in `events/ingest/`.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use http::StatusCode;
use okr_consumers::ingest::{Ingest, IngestResponse, apigw};
use okr_core::routing::Consumer;
use okr_core::routing::NotifyRules;
use okr_core::{Event, Source};
use okr_pipeline::metrics::MemoryMetrics;
use okr_pipeline::queue::memory::MemoryQueue;
use okr_pipeline::secrets::memory::MemorySecretStore;
use okr_pipeline::secrets::{SecretCache, SigningSecrets};
use serde_json::Value;
use time::OffsetDateTime;

/// When the Standard Webhooks sample was signed (events/ingest/generate.sh).
const STANDARD_SIGNED_AT: i64 = 1_767_225_600;

fn test_secrets() -> SigningSecrets {
    let path = format!("{}/../../events/secrets.json", env!("CARGO_MANIFEST_DIR"));
    SigningSecrets::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sample(name: &str) -> ApiGatewayV2httpRequest {
    let path = format!("{}/../../events/ingest/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(STANDARD_SIGNED_AT + 42).unwrap()
}

struct Harness {
    ingest: Ingest,
    store: Arc<MemorySecretStore>,
    queue: Arc<MemoryQueue>,
    metrics: Arc<MemoryMetrics>,
}

fn harness(secrets: SigningSecrets) -> Harness {
    let store = Arc::new(MemorySecretStore::new(secrets));
    let queue = Arc::new(MemoryQueue::default());
    let metrics = Arc::new(MemoryMetrics::default());
    let ingest = Ingest::new(
        SecretCache::new(store.clone(), Duration::from_secs(300)),
        queue.clone(),
        NotifyRules::default(),
        256 * 1024,
        metrics.clone(),
    );
    Harness {
        ingest,
        store,
        queue,
        metrics,
    }
}

impl Harness {
    async fn send(
        &self,
        event: ApiGatewayV2httpRequest,
    ) -> (
        StatusCode,
        Value,
        aws_lambda_events::apigw::ApiGatewayV2httpResponse,
    ) {
        let response = apigw::handle(&self.ingest, event, now()).await;
        let Some(Body::Text(text)) = &response.body else {
            panic!("no JSON body")
        };
        let body: Value = serde_json::from_str(text).unwrap();
        (
            StatusCode::from_u16(response.status_code as u16).unwrap(),
            body,
            response,
        )
    }

    fn queued(&self, consumer: Consumer) -> Vec<Event> {
        self.queue
            .messages(consumer)
            .iter()
            .map(|m| serde_json::from_str(&m.body).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn every_sample_gets_the_status_the_readme_lists() {
    use Consumer::{Alerts, Progress, Slack, Warehouse};
    let table: [(&str, u16, &[Consumer]); 13] = [
        (
            "peoplelogic.json",
            202,
            &[Warehouse, Slack, Alerts, Progress],
        ),
        (
            "peoplelogic-key-result.json",
            202,
            &[Warehouse, Slack, Alerts, Progress],
        ),
        // HR records go to the progress queue too: its consumer keeps the directory.
        ("peopleforce.json", 202, &[Warehouse, Slack, Progress]),
        // A termination: no Slack rule by default.
        ("peopleforce-base64.json", 202, &[Warehouse, Progress]),
        ("perscom.json", 202, &[Warehouse]),
        ("standard.json", 202, &[Warehouse, Slack, Alerts, Progress]),
        ("tampered-body.json", 401, &[]),
        ("missing-header.json", 401, &[]),
        ("invalid-base64.json", 400, &[]),
        ("signed-not-json.json", 400, &[]),
        ("perscom-get.json", 405, &[]),
        ("unknown-source.json", 404, &[]),
        ("oversize-body.json", 413, &[]),
    ];
    // Every file in the folder is in the table.
    let mut files: Vec<String> = std::fs::read_dir(format!(
        "{}/../../events/ingest",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .map(|entry| entry.unwrap().file_name().into_string().unwrap())
    .filter(|name| name.ends_with(".json"))
    .collect();
    files.sort();
    let mut listed: Vec<String> = table
        .iter()
        .map(|(name, _, _)| (*name).to_owned())
        .collect();
    listed.sort();
    assert_eq!(files, listed);

    for (name, status, consumers) in table {
        let h = harness(test_secrets());
        let (got, body, response) = h.send(sample(name)).await;
        assert_eq!(got.as_u16(), status, "{name}: {body}");
        assert_eq!(response.headers["content-type"], "application/json");
        for consumer in Consumer::ALL {
            let expected = usize::from(consumers.contains(&consumer));
            assert_eq!(
                h.queue.messages(consumer).len(),
                expected,
                "{name}: {consumer}"
            );
        }
        if status == 202 {
            assert_eq!(body["duplicate"], false);
            let event_id = body["event_id"].as_str().unwrap();
            for consumer in consumers {
                let message = &h.queue.messages(*consumer)[0];
                assert_eq!(message.event_id, event_id);
                let event: Event = serde_json::from_str(&message.body).unwrap();
                assert_eq!(event.id, event_id);
                assert_eq!(message.source, event.source.as_str());
                assert_eq!(message.event_type, event.event_type);
            }
        } else {
            assert!(
                body["error"].is_string() && body["message"].is_string(),
                "{name}: {body}"
            );
            assert!(
                h.queue.is_empty(),
                "{name}: a {status} must enqueue nothing"
            );
        }
    }
}

#[tokio::test]
async fn error_answers_say_what_is_wrong() {
    let h = harness(test_secrets());
    let (_, body, response) = h.send(sample("perscom-get.json")).await;
    assert_eq!(body["error"], "method_not_allowed");
    assert!(
        body["message"].as_str().unwrap().contains("choose POST"),
        "{body}"
    );
    assert_eq!(response.headers["allow"], "POST");

    // Whoever is knocking learns only that the signature failed; the reason goes to
    // the log.
    for name in ["missing-header.json", "tampered-body.json"] {
        let (_, body, _) = h.send(sample(name)).await;
        assert_eq!(
            body,
            serde_json::json!({"error": "invalid_signature", "message": "the signature could not be verified"}),
            "{name}"
        );
    }
    let (_, body, _) = h.send(sample("invalid-base64.json")).await;
    assert_eq!(
        body["message"],
        "the body is marked base64-encoded but is not valid base64"
    );
    let (_, body, _) = h.send(sample("oversize-body.json")).await;
    assert_eq!(body["message"], "the body is over the 262144-byte limit");
    let (_, body, _) = h.send(sample("unknown-source.json")).await;
    assert_eq!(body["error"], "unknown_source");
    let (_, body, _) = h.send(sample("signed-not-json.json")).await;
    assert_eq!(body["message"], "body is not valid JSON (line 1 column 2)");
}

#[tokio::test]
async fn a_retried_delivery_is_the_same_event_and_reported_as_duplicate() {
    let h = harness(test_secrets());
    let (status, first, _) = h.send(sample("peopleforce.json")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, second, _) = h.send(sample("peopleforce.json")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(first["event_id"], second["event_id"]);
    assert_eq!(
        (first["duplicate"].clone(), second["duplicate"].clone()),
        (false.into(), true.into())
    );
}

#[tokio::test]
async fn a_failing_queue_means_503_with_retry_after_and_the_retry_succeeds() {
    let h = harness(test_secrets());
    h.queue.fail(Consumer::Slack, true);
    let (status, body, response) = h.send(sample("peopleforce.json")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "enqueue_failed");
    assert_eq!(response.headers["retry-after"], "30");
    assert!(h.queue.messages(Consumer::Slack).is_empty());

    // The provider retries once the queue is back: accepted, and the warehouse copy of
    // the first try has the same event id for consumers to drop.
    h.queue.fail(Consumer::Slack, false);
    let (status, body, _) = h.send(sample("peopleforce.json")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(h.queued(Consumer::Slack).len(), 1);
    let warehouse = h.queued(Consumer::Warehouse);
    assert_eq!(warehouse.len(), 2);
    assert!(warehouse.iter().all(|e| e.id == body["event_id"]));

    let reasons: Vec<(&str, usize)> = h
        .metrics
        .records()
        .iter()
        .map(|r| (r.reason, r.enqueue_failures))
        .collect();
    assert_eq!(reasons, [("enqueue_failed", 1), ("accepted", 0)]);
}

#[tokio::test(start_paused = true)]
async fn secrets_unavailable_at_first_is_503_then_a_cached_value_keeps_serving() {
    let h = harness(test_secrets());
    h.store.set(None);
    let (status, body, response) = h.send(sample("perscom.json")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "secrets_unavailable");
    assert_eq!(response.headers["retry-after"], "30");
    assert!(h.queue.is_empty());
    // During the outage a flood of requests costs one fetch per 30 s, not one each.
    for _ in 0..20 {
        assert_eq!(
            h.send(sample("perscom.json")).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(h.store.fetches(), 1);

    // Secrets Manager is back; the next try after the interval succeeds.
    h.store.set(Some(test_secrets()));
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(h.send(sample("perscom.json")).await.0, StatusCode::ACCEPTED);
    assert_eq!(h.store.fetches(), 2);
    // Secrets Manager goes away after the TTL: the cached secrets keep serving.
    h.store.set(None);
    tokio::time::advance(Duration::from_secs(301)).await;
    assert_eq!(
        h.send(sample("peopleforce.json")).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        h.send(sample("peoplelogic.json")).await.0,
        StatusCode::ACCEPTED
    );
}

#[tokio::test(start_paused = true)]
async fn cached_secrets_are_fetched_once_per_ttl() {
    let h = harness(test_secrets());
    h.ingest.warm_up().await;
    for _ in 0..20 {
        assert_eq!(h.send(sample("perscom.json")).await.0, StatusCode::ACCEPTED);
    }
    assert_eq!(h.store.fetches(), 1);
    tokio::time::advance(Duration::from_secs(301)).await;
    assert_eq!(h.send(sample("perscom.json")).await.0, StatusCode::ACCEPTED);
    assert_eq!(h.store.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn rotation_is_picked_up_after_one_refetch_and_forgeries_cannot_multiply_fetches() {
    // Ingest starts with only an old PERSCOM secret.
    let h = harness(SigningSecrets::from_pairs([(
        Source::PERSCOM,
        "old-secret",
    )]));
    h.ingest.warm_up().await;
    assert_eq!(h.store.fetches(), 1);

    // The operator rotates to the test secret; the next delivery signed with it is
    // accepted after exactly one refetch.
    h.store.set(Some(test_secrets()));
    assert_eq!(h.send(sample("perscom.json")).await.0, StatusCode::ACCEPTED);
    assert_eq!(h.store.fetches(), 2);

    // A flood of bad signatures within the interval: no further fetch.
    for _ in 0..50 {
        assert_eq!(
            h.send(sample("tampered-body.json")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(h.store.fetches(), 2);
    // Malformed or missing headers never refetch.
    assert_eq!(
        h.send(sample("missing-header.json")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.store.fetches(), 2);

    // After the interval one more refetch is allowed, and only one.
    tokio::time::advance(Duration::from_secs(31)).await;
    for _ in 0..10 {
        assert_eq!(
            h.send(sample("tampered-body.json")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(h.store.fetches(), 3);
}

#[tokio::test]
async fn a_source_without_a_secret_accepts_nothing() {
    let h = harness(SigningSecrets::from_pairs([(
        Source::PERSCOM,
        "perscom-test-secret",
    )]));
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let (status, body, _) = h.send(sample("peopleforce.json")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nothing about the configuration in the answer; the operator reads it in the log.
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_signature", "message": "the signature could not be verified"})
    );
    assert!(h.queue.is_empty());
    let logged = logs.text();
    assert!(
        logged.contains("ERROR") && logged.contains("no secret is configured for this source"),
        "{logged}"
    );
}

/// Log lines written while its subscriber is the default, as plain text.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish()
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn lines_with(&self, text: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| line.contains(text))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_forgeries_logs_its_reason_once_a_minute_per_source_and_reason() {
    let h = harness(test_secrets());
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    for _ in 0..50 {
        h.send(sample("tampered-body.json")).await;
    }
    h.send(sample("missing-header.json")).await;
    let lines = logs.lines_with("signature not verified");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].contains("reason=\"wrong_signature\"") && lines[0].contains("held_back=0"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("reason=\"missing_header\""),
        "{}",
        lines[1]
    );
    // A minute later the next one is logged, with the count held back.
    tokio::time::advance(okr_consumers::ingest::SIGNATURE_LOG_INTERVAL).await;
    h.send(sample("tampered-body.json")).await;
    let lines = logs.lines_with("wrong_signature");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[1].contains("held_back=49"), "{}", lines[1]);
    // Never the body or a secret.
    for secret in ["perscom-test-secret", "pf-test-secret", "Vacation"] {
        assert!(!logs.text().contains(secret));
    }
}

#[tokio::test]
async fn answers_never_echo_the_body_or_a_secret() {
    let h = harness(test_secrets());
    for name in [
        "tampered-body.json",
        "signed-not-json.json",
        "oversize-body.json",
        "invalid-base64.json",
    ] {
        let (_, body, _) = h.send(sample(name)).await;
        let text = body.to_string();
        for secret in [
            "pf-test-secret",
            "perscom-test-secret",
            "YWJjMTIzIT8kKiYoKSctPUB+",
            "this is not JSON",
            "Vacation",
        ] {
            assert!(!text.contains(secret), "{name}: {text}");
        }
    }
}

#[tokio::test]
async fn metrics_count_each_request_by_reason() {
    let h = harness(test_secrets());
    for name in [
        "peopleforce.json",
        "tampered-body.json",
        "perscom-get.json",
        "unknown-source.json",
    ] {
        h.send(sample(name)).await;
    }
    let records = h.metrics.records();
    let seen: Vec<(Option<Source>, &str, u16)> = records
        .iter()
        .map(|r| (r.source, r.reason, r.status))
        .collect();
    assert_eq!(
        seen,
        [
            (Some(Source::PEOPLEFORCE), "accepted", 202),
            (Some(Source::PEOPLEFORCE), "invalid_signature", 401),
            (Some(Source::PERSCOM), "method_not_allowed", 405),
            (None, "unknown_source", 404),
        ]
    );
    let line: Value =
        serde_json::from_str(&okr_pipeline::metrics::emf_line(&records[1], now())).unwrap();
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "OkrWebhooks"
    );
    assert_eq!(line["_aws"]["Timestamp"], (STANDARD_SIGNED_AT + 42) * 1000);
    assert_eq!(
        (
            line["Received"].clone(),
            line["Rejected"].clone(),
            line["Accepted"].clone()
        ),
        (1.into(), 1.into(), 0.into())
    );
    assert_eq!(line["Reason"], "invalid_signature");
    assert_eq!(line["Source"], "peopleforce");
    // By source too, for the alarm on a provider whose signatures all fail.
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][1]["Dimensions"],
        serde_json::json!([["Service", "Source"]])
    );
    assert_eq!(line["InvalidSignature"], 1);
    let accepted: Value =
        serde_json::from_str(&okr_pipeline::metrics::emf_line(&records[0], now())).unwrap();
    assert_eq!(
        (
            accepted["Accepted"].clone(),
            accepted["InvalidSignature"].clone()
        ),
        (1.into(), 0.into())
    );
    // No source, no per-source metric (a dimension without a value).
    let unknown: Value =
        serde_json::from_str(&okr_pipeline::metrics::emf_line(&records[3], now())).unwrap();
    assert_eq!(
        unknown["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_verified_delivery_that_is_refused_has_its_own_code_and_an_error_log() {
    let h = harness(test_secrets());
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    // Signed, but not JSON: the provider's own body, refused.
    let (status, body, _) = h.send(sample("signed-not-json.json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_payload");
    // Not verified: base64 that does not decode keeps the generic code.
    let (status, body, _) = h.send(sample("invalid-base64.json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_body");
    let errors = logs.lines_with("a verified delivery was refused");
    assert_eq!(errors.len(), 1, "{}", logs.text());
    assert!(
        errors[0].contains("ERROR") && errors[0].contains("outcome=\"invalid_payload\""),
        "{}",
        errors[0]
    );
    assert!(
        !logs.text().contains("this is not JSON"),
        "the body is never logged"
    );
    let reasons: Vec<&str> = h.metrics.records().iter().map(|r| r.reason).collect();
    assert_eq!(reasons, ["invalid_payload", "invalid_body"]);
}

#[tokio::test]
async fn the_route_may_come_from_the_raw_path() {
    let h = harness(test_secrets());
    let mut event = sample("perscom.json");
    event.path_parameters.clear();
    assert_eq!(h.send(event.clone()).await.0, StatusCode::ACCEPTED);
    event.raw_path = Some("/prod/webhooks/perscom/".into());
    assert_eq!(h.send(event.clone()).await.0, StatusCode::ACCEPTED);
    event.raw_path = Some("/".into());
    assert_eq!(h.send(event).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_base64_body_over_the_limit_is_413_before_decoding() {
    let h = harness(test_secrets());
    let mut event = sample("peopleforce-base64.json");
    event.body = Some("A".repeat(400 * 1024));
    assert_eq!(h.send(event).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn the_response_carries_status_headers_and_a_json_body() {
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    let response = apigw::response_to(IngestResponse {
        status: StatusCode::ACCEPTED,
        headers,
        body: "{}".into(),
    });
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["statusCode"], 202);
    assert_eq!(json["headers"]["content-type"], "application/json");
    assert_eq!(json["body"], "{}");
    assert_eq!(json["isBase64Encoded"], false);
}

#[tokio::test]
async fn an_event_over_the_queue_message_limit_is_413_not_an_endless_503() {
    let store = Arc::new(MemorySecretStore::new(test_secrets()));
    let queue = Arc::new(MemoryQueue::default());
    // A body limit above the queue's (the configuration caps it at 512 KiB).
    let ingest = Ingest::new(
        SecretCache::new(store, Duration::from_secs(300)),
        queue.clone(),
        NotifyRules::default(),
        4 * 1024 * 1024,
        Arc::new(MemoryMetrics::default()),
    );
    let body = format!(
        r#"{{"event": "user.created", "data": {{"id": 1, "bio": "{}"}}}}"#,
        "x".repeat(1_100_000)
    );
    let mut headers = http::HeaderMap::new();
    for (name, value) in okr_core::sign(
        okr_core::providers::provider(Source::PERSCOM).unwrap(),
        &"perscom-test-secret".into(),
        body.as_bytes(),
        "",
        0,
    )
    .unwrap()
    {
        headers.insert(name, value.parse().unwrap());
    }
    let request = okr_consumers::ingest::IngestRequest {
        method: http::Method::POST,
        source: "perscom".into(),
        headers,
        body: body.into_bytes(),
        body_is_base64: false,
    };
    let response = ingest.handle(request, now()).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        response.body.contains("\"error\":\"event_too_large\""),
        "{}",
        response.body
    );
    assert!(
        response.body.contains("queue message limit"),
        "{}",
        response.body
    );
    assert!(queue.is_empty());
}

/// The PERSCOM sample request with `body` in place of its own, signed with the test
/// secret.
fn signed_perscom(body: &str) -> ApiGatewayV2httpRequest {
    let mut event = sample("perscom.json");
    event.body = Some(body.to_owned());
    for (name, value) in okr_core::sign(
        okr_core::providers::provider(Source::PERSCOM).unwrap(),
        &"perscom-test-secret".into(),
        body.as_bytes(),
        "",
        0,
    )
    .unwrap()
    {
        event.headers.insert(name, value.parse().unwrap());
    }
    event
}

#[tokio::test]
async fn characters_sqs_refuses_are_escaped_and_decode_to_the_same_event() {
    let h = harness(test_secrets());
    let body = "{\"event\": \"user.created\", \"data\": {\"id\": 1, \"name\": \"odd \u{fffe}\u{ffff} name\"}}";
    assert_eq!(h.send(signed_perscom(body)).await.0, StatusCode::ACCEPTED);
    let message = &h.queue.messages(Consumer::Warehouse)[0];
    assert!(!message.body.contains(['\u{fffe}', '\u{ffff}']));
    assert!(message.body.contains("\\ufffe\\uffff"));
    let decoded: Event = serde_json::from_str(&message.body).unwrap();
    assert_eq!(
        decoded.entity.name.as_deref(),
        Some("odd \u{fffe}\u{ffff} name")
    );
}

#[tokio::test]
async fn a_body_no_consumer_could_read_is_refused_and_the_deepest_accepted_one_reads_everywhere() {
    // A PERSCOM body whose `data` nests arrays: `levels` deep in all.
    let nested = |levels: usize| {
        format!(
            r#"{{"event": "user.created", "data": {}1{}}}"#,
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    let h = harness(test_secrets());
    // 127 levels: serde_json reads the body, but not the event that carries it one
    // level down, so no consumer could; and one level over the limit.
    for levels in [127, okr_core::normalize::MAX_DEPTH + 1] {
        let (status, body, _) = h.send(signed_perscom(&nested(levels))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{levels}: {body}");
        assert_eq!(body["error"], "invalid_payload");
        assert_eq!(
            body["message"],
            "body nests arrays and objects more than 100 levels deep"
        );
        assert!(h.queue.is_empty());
    }
    // At the limit: accepted, and every queued copy decodes the way the consumers
    // decode their records.
    let (status, _, _) = h
        .send(signed_perscom(&nested(okr_core::normalize::MAX_DEPTH)))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let messages = h.queue.messages(Consumer::Warehouse);
    assert_eq!(messages.len(), 1);
    let mut record = aws_lambda_events::sqs::SqsMessage::default();
    record.body = Some(messages[0].body.to_string());
    let event = okr_pipeline::batch::decode(&record).unwrap();
    assert_eq!(event.event_type, "user.created");
}

#[tokio::test]
async fn the_slack_queue_gets_the_hire_without_personal_data_and_the_warehouse_keeps_it() {
    let h = harness(test_secrets());
    assert_eq!(
        h.send(sample("peopleforce.json")).await.0,
        StatusCode::ACCEPTED
    );
    let slack = &h.queue.messages(Consumer::Slack)[0].body;
    let warehouse = &h.queue.messages(Consumer::Warehouse)[0].body;
    for personal in [
        "date_of_birth",
        "1978-08-31",
        "personal_email",
        "johnny.d.private@example.org",
        "mobile_number",
        "+380501234567",
    ] {
        assert!(
            !slack.contains(personal),
            "{personal} reached the Slack queue"
        );
        assert!(
            warehouse.contains(personal),
            "{personal} missing from the warehouse"
        );
    }
    // The same event otherwise: one id, and what the message needs.
    let (slack, warehouse): (Event, Event) = (
        serde_json::from_str(slack).unwrap(),
        serde_json::from_str(warehouse).unwrap(),
    );
    assert_eq!(slack.id, warehouse.id);
    assert_eq!(
        okr_consumers::slack::message::event_message(&slack).text,
        "John Doe joined IT as Senior Developer"
    );
}

#[tokio::test]
async fn every_request_is_in_the_delivery_log_with_its_outcome_and_reason_and_no_body_or_secret() {
    use okr_consumers::deliveries::memory::MemoryDeliveries;
    use okr_consumers::deliveries::{DeliveryStore, Filter};

    let log = Arc::new(MemoryDeliveries::default());
    let h = harness(test_secrets());
    let h = Harness {
        ingest: h.ingest.with_deliveries(log.clone()),
        ..h
    };
    let table = [
        ("peoplelogic.json", 202, "accepted", "accepted"),
        ("peoplelogic.json", 202, "duplicate", "duplicate"),
        ("tampered-body.json", 401, "refused", "wrong_signature"),
        ("missing-header.json", 401, "refused", "missing_header"),
        ("invalid-base64.json", 400, "refused", "invalid_body"),
        ("signed-not-json.json", 400, "refused", "invalid_payload"),
        ("perscom-get.json", 405, "refused", "method_not_allowed"),
        ("unknown-source.json", 404, "refused", "unknown_source"),
        ("oversize-body.json", 413, "refused", "body_too_large"),
    ];
    for (name, status, ..) in table {
        let (answered, ..) = h.send(sample(name)).await;
        assert_eq!(answered.as_u16(), status, "{name}");
    }
    // Signed an hour before it arrives: stale.
    let late = now() + time::Duration::hours(1);
    let response = apigw::handle(&h.ingest, sample("standard.json"), late).await;
    assert_eq!(response.status_code, 401);

    let recorded = log.all();
    assert_eq!(recorded.len(), table.len() + 1);
    for ((name, status, outcome, reason), delivery) in table.iter().zip(&recorded) {
        assert_eq!(delivery.status, *status, "{name}");
        assert_eq!(delivery.outcome, *outcome, "{name}");
        assert_eq!(delivery.reason, *reason, "{name}");
    }
    let stale = recorded.last().unwrap();
    assert_eq!(
        (stale.endpoint.as_str(), stale.reason.as_str()),
        ("standard", "timestamp_out_of_tolerance")
    );
    assert_eq!(recorded[2].endpoint, "peopleforce");
    assert_eq!(recorded[7].endpoint, "workday", "as requested");
    // The accepted one names its event; the refused ones none.
    let accepted = &recorded[0];
    assert_eq!(
        accepted.event_id.as_deref(),
        Some(h.queued(Consumer::Warehouse)[0].id.as_str())
    );
    assert_eq!(accepted.event_type.as_deref(), Some("objective.completed"));
    assert_eq!(accepted.body_sha256.as_ref().map(String::len), Some(64));
    let oversize = &recorded[8];
    assert!(oversize.body_bytes > 256 * 1024, "{}", oversize.body_bytes);
    assert_eq!(oversize.body_sha256, None, "only its start was read");
    assert!(recorded[2..].iter().all(|d| d.event_id.is_none()));
    // No body and no signature beyond its first characters.
    let text = serde_json::to_string(&recorded).unwrap();
    for kept_out in [
        "Launch the self-serve onboarding flow",
        "tnLQrcFZ4DgqUtPJdraSfAuIdi6MPVPhXhYgWkg7W7s=",
        "b6607f98989fb3d6f8434ace7f56e467fa9f1afccb85beee6bdc7add32ffe781",
    ] {
        assert!(!text.contains(kept_out), "{kept_out} in the log");
    }
    assert!(
        accepted
            .headers
            .contains(&("x-signature".into(), "tnLQrcFZ… (44 characters)".into())),
        "{:?}",
        accepted.headers
    );
    // Filters: by endpoint and outcome, newest first.
    let refused = log
        .list(&Filter {
            outcome: Some("refused".into()),
            endpoint: Some("peopleforce".into()),
            ..Filter::default()
        })
        .await
        .unwrap();
    let reasons: Vec<&str> = refused.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["body_too_large", "invalid_body", "wrong_signature"]
    );
}

//! One delivery is one trace across SQS on moto: the ingest handler's span continues
//! the sender's `traceparent` (or starts a trace), every queued message carries it as
//! its `traceparent` attribute, and each consumer's Lambda handler, given the messages
//! as SQS hands them over, makes a span of the same trace; the spans reach a real OTLP
//! receiver through the exporter the functions use.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::Client as SqsClient;
use okr_aws::dynamodb::DynamoDbIdempotencyStore;
use okr_aws::progress_dynamodb::DynamoDbProgressStore;
use okr_aws::s3::S3Sink;
use okr_aws::secrets_manager::SecretsManagerStore;
use okr_aws::sqs::SqsQueue;
use okr_consumers::alerts::{DEFAULT_WINDOW, Destinations, ProgressAlerts};
use okr_consumers::ingest::{Ingest, apigw};
use okr_consumers::progress::ProgressProjection;
use okr_consumers::slack::SlackNotifier;
use okr_consumers::warehouse::WarehouseSink;
use okr_core::routing::{Consumer, NotifyRules};
use okr_core::rules::Thresholds;
use okr_pipeline::metrics::MemoryMetrics;
use okr_pipeline::outbound::http::http_client;
use okr_pipeline::outbound::slack::{WebhookPoster, WebhookUrl};
use okr_pipeline::secrets::{SecretCache, fixed};
use okr_pipeline::trace::{Export, TRACEPARENT};
use okr_webhooks_tests::otlp::{OtlpReceiver, ReceivedSpan};
use okr_webhooks_tests::{Moto, unique};
use serde_json::Value;
use time::OffsetDateTime;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// When the samples were signed (events/ingest/generate.sh).
const SIGNED_AT: i64 = 1_767_225_600;

/// The sender's span, as a tool that traces its webhooks would send it.
const SENDER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SENDER_SPAN: &str = "00f067aa0ba902b7";

fn sample(name: &str) -> ApiGatewayV2httpRequest {
    let path = format!("{}/../events/ingest/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn one_delivery_is_one_trace_across_sqs_from_ingest_to_every_consumer() {
    let receiver = OtlpReceiver::start().await;
    okr_pipeline::trace::install("okr-webhooks-test", Export::To(receiver.traces_url())).unwrap();

    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let sqs = SqsClient::new(&config);
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let s3 = S3Sink::client(&config);
    let secret_id = unique("okr-webhooks-signing");
    let document = std::fs::read_to_string(format!(
        "{}/../events/secrets.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    secrets
        .create_secret()
        .name(&secret_id)
        .secret_string(document)
        .send()
        .await
        .unwrap();
    let queue_urls = okr_webhooks_tests::consumer_queues(&sqs).await;
    let urls: BTreeMap<&str, String> = Consumer::ALL
        .into_iter()
        .map(|c| (c.as_str(), queue_urls.get(c).to_owned()))
        .collect();
    let ingest = Ingest::new(
        SecretCache::new(
            Arc::new(SecretsManagerStore::new(secrets, &secret_id)),
            Duration::from_secs(300),
        ),
        Arc::new(SqsQueue::new(sqs.clone(), queue_urls)),
        NotifyRules::default(),
        256 * 1024,
        Arc::new(MemoryMetrics::default()),
    );

    // The key result's update from a sender that traces its webhooks; the hire from one
    // that does not.
    let mut traced = sample("peoplelogic-key-result.json");
    traced.headers.insert(
        TRACEPARENT,
        format!("00-{SENDER_TRACE}-{SENDER_SPAN}-01")
            .parse()
            .unwrap(),
    );
    let now = OffsetDateTime::from_unix_timestamp(SIGNED_AT + 5).unwrap();
    let mut events = Vec::new();
    for request in [traced, sample("peopleforce.json")] {
        let response = apigw::handle(&ingest, request, now).await;
        assert_eq!(response.status_code, 202, "{:?}", response.body);
        let Some(aws_lambda_events::encodings::Body::Text(text)) = &response.body else {
            panic!("no body")
        };
        let answer: Value = serde_json::from_str(text).unwrap();
        events.push(answer["event_id"].as_str().unwrap().to_owned());
    }

    // Each consumer, as its Lambda function is built, over moto and stand-ins.
    let stand_in = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&stand_in)
        .await;
    let webhook = |path: &str| {
        let url = WebhookUrl::new(&format!("{}/{path}", stand_in.uri())).unwrap();
        SecretCache::new(fixed(url), Duration::from_secs(300))
    };
    let idempotency = Arc::new(DynamoDbIdempotencyStore::new(
        dynamodb.clone(),
        okr_webhooks_tests::idempotency_table(&dynamodb).await,
    ));
    let bucket = unique("okr-warehouse");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let http = http_client().unwrap();
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(30);

    let mut queued: BTreeMap<&str, SqsEvent> = BTreeMap::new();
    for (consumer, url) in &urls {
        queued.insert(consumer, okr_webhooks_tests::received(&sqs, url).await);
    }
    let answered = [
        WarehouseSink::new(Arc::new(S3Sink::new(s3, &bucket, "")))
            .handle(queued["warehouse"].clone())
            .await
            .unwrap(),
        SlackNotifier::new(
            Arc::new(WebhookPoster::new(http.clone(), webhook("slack"))),
            idempotency.clone(),
            NotifyRules::default(),
            5,
        )
        .with_min_interval(Duration::ZERO)
        .handle(queued["slack"].clone(), deadline())
        .await
        .unwrap(),
        ProgressAlerts::new(
            Destinations::over_http(&http, Some(webhook("alerts")), None),
            idempotency.clone(),
            Thresholds::default(),
            DEFAULT_WINDOW,
        )
        .handle(queued["alerts"].clone(), deadline())
        .await
        .unwrap(),
        ProgressProjection::new(
            Arc::new(DynamoDbProgressStore::new(
                dynamodb.clone(),
                okr_webhooks_tests::progress_table(&dynamodb).await,
            )),
            Thresholds::default(),
        )
        .handle(queued["progress"].clone())
        .await
        .unwrap(),
    ];
    for answer in &answered {
        assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    }
    // As a function ends an invocation; then what the receiver got, once all arrived.
    okr_pipeline::trace::flush(Duration::from_secs(1)).await;
    let records: usize = queued.values().map(|b| b.records.len()).sum();
    let mut spans = receiver.spans().await;
    for _ in 0..100 {
        if spans.len() >= events.len() + records {
            break;
        }
        okr_pipeline::trace::flush(Duration::from_secs(1)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        spans = receiver.spans().await;
    }
    assert_eq!(spans.len(), events.len() + records, "{spans:#?}");

    for event_id in &events {
        let ingest_spans: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| s.kind == 2 && s.attribute("okr.event_id") == event_id)
            .collect();
        assert_eq!(ingest_spans.len(), 1, "{event_id}: {spans:#?}");
        let root = ingest_spans[0];
        assert_eq!(root.name, "POST /webhooks/{endpoint}");
        assert_eq!(root.service, "okr-webhooks-test");
        // Ingest's span says what the journey's first step says.
        assert_eq!(root.attribute("okr.outcome"), "enqueued");
        assert!(
            root.attribute("okr.detail").starts_with("to warehouse, "),
            "{root:#?}"
        );
        assert_eq!(root.attribute("http.response.status_code"), "202");
        // Every message of the event names ingest's span.
        let traceparent = format!("00-{}-{}-01", root.trace_id, root.span_id);
        let mut consumers = Vec::new();
        for (consumer, batch) in &queued {
            let carried: Vec<&SqsMessage> = batch
                .records
                .iter()
                .filter(|r| {
                    r.message_attributes["event_id"].string_value.as_deref() == Some(event_id)
                })
                .collect();
            if carried.is_empty() {
                continue;
            }
            consumers.push(*consumer);
            for record in &carried {
                assert_eq!(
                    record.message_attributes[TRACEPARENT]
                        .string_value
                        .as_deref(),
                    Some(traceparent.as_str()),
                    "{consumer}"
                );
            }
            // ... and its consumer's work is a span of the same trace, its child.
            let theirs: Vec<&ReceivedSpan> = spans
                .iter()
                .filter(|s| s.name == format!("process {consumer}"))
                .filter(|s| s.attribute("okr.event_id") == event_id)
                .collect();
            assert_eq!(theirs.len(), 1, "{consumer} of {event_id}: {spans:#?}");
            let span = theirs[0];
            assert_eq!(span.kind, 5, "a consumer's span");
            assert_eq!(span.trace_id, root.trace_id, "{consumer}");
            assert_eq!(span.parent_span_id, root.span_id, "{consumer}");
            assert_eq!(span.attribute("messaging.system"), "aws_sqs");
            let expected = match *consumer {
                "warehouse" => "stored",
                "slack" => "posted",
                "progress" => "applied",
                _ => "judged",
            };
            assert_eq!(span.attribute("okr.outcome"), expected, "{span:#?}");
            assert_eq!(span.status.0, 0, "not an error: {span:#?}");
        }
        consumers.sort();
        assert!(consumers.len() >= 3, "{event_id} went to {consumers:?}");
        let trace: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| s.trace_id == root.trace_id)
            .collect();
        assert_eq!(trace.len(), 1 + consumers.len(), "one trace per delivery");
    }
    // The traced sender's trace goes on; the other delivery starts its own.
    let root_of = |event_id: &str| {
        spans
            .iter()
            .find(|s| s.kind == 2 && s.attribute("okr.event_id") == event_id)
            .unwrap()
            .clone()
    };
    let (traced, untraced) = (root_of(&events[0]), root_of(&events[1]));
    assert_eq!(traced.trace_id, SENDER_TRACE);
    assert_eq!(traced.parent_span_id, SENDER_SPAN);
    assert_ne!(untraced.trace_id, SENDER_TRACE);
    assert_eq!(untraced.parent_span_id, "");
    // The key result's alerts consumer judged it, in the journey's words.
    let alerts = spans
        .iter()
        .find(|s| s.name == "process alerts" && s.trace_id == SENDER_TRACE)
        .expect("the alerts consumer's span");
    assert_eq!(
        alerts.attribute("okr.detail"),
        "no alert opens or resolves",
        "{alerts:#?}"
    );
}

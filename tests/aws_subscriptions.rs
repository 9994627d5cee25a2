//! Subscriptions on AWS, on moto: the ingest handler reads the subscriptions document
//! from Secrets Manager and queues on the subscriptions queue only what a subscription
//! takes; the subscriptions' Lambda handler, given the messages as SQS hands them over,
//! with its secrets from Secrets Manager and its records in DynamoDB, posts each event
//! once to its receiver, signed so the official `standardwebhooks` crate verifies it;
//! a redelivery sends nothing twice, and a 410 switches the subscription off in the
//! table.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use okr_aws::dynamodb::DynamoDbIdempotencyStore;
use okr_aws::secrets_manager::SecretsManagerStore;
use okr_aws::sqs::SqsQueue;
use okr_consumers::ingest::{Ingest, apigw};
use okr_consumers::subscriptions::{SubscriptionSender, health};
use okr_core::routing::NotifyRules;
use okr_core::subscriptions::new_secret;
use okr_pipeline::metrics::MemoryMetrics;
use okr_pipeline::outbound::http::http_client;
use okr_pipeline::secrets::SecretCache;
use okr_webhooks_tests::{Moto, unique};
use serde_json::{Value, json};
use time::OffsetDateTime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// When the samples were signed (events/ingest/generate.sh).
const SIGNED_AT: i64 = 1_767_225_600;

fn sample(name: &str) -> ApiGatewayV2httpRequest {
    let path = format!("{}/../events/ingest/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn secret(client: &aws_sdk_secretsmanager::Client, prefix: &str, value: &str) -> String {
    let id = unique(prefix);
    client
        .create_secret()
        .name(&id)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    id
}

/// How long the caches keep a secret, as in the functions.
const TTL: Duration = Duration::from_secs(300);

/// Ingest as its Lambda is wired: the repository's signing secrets and the subscriptions
/// document `document_id` from Secrets Manager, the consumers' queues on SQS; and the
/// subscriptions queue's URL.
async fn ingest(
    sqs: &aws_sdk_sqs::Client,
    secrets: &aws_sdk_secretsmanager::Client,
    document_id: &str,
) -> (Ingest, String) {
    let signing = std::fs::read_to_string(format!(
        "{}/../events/secrets.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let signing_id = secret(secrets, "okr-webhooks-signing", &signing).await;
    let urls = okr_webhooks_tests::consumer_queues(sqs).await;
    let subscriptions_url = urls.subscriptions.clone();
    let ingest = Ingest::new(
        SecretCache::new(
            Arc::new(SecretsManagerStore::new(secrets.clone(), &signing_id)),
            TTL,
        ),
        Arc::new(SqsQueue::new(sqs.clone(), urls)),
        NotifyRules::default(),
        256 * 1024,
        Arc::new(MemoryMetrics::default()),
    )
    .with_subscriptions(SecretCache::new(
        Arc::new(SecretsManagerStore::new(secrets.clone(), document_id)),
        TTL,
    ));
    (ingest, subscriptions_url)
}

#[tokio::test]
async fn ingest_queues_what_a_subscription_takes_and_the_sender_posts_it_once_signed() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/okrs"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/gone"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&receiver)
        .await;

    // Two subscriptions: the key results' events, and one whose receiver is gone.
    let document = json!({"subscriptions": {
        "okrs": {"url": format!("{}/okrs", receiver.uri()), "types": ["key_result.*"], "auth": "bearer"},
        "gone": {"url": format!("{}/gone", receiver.uri()), "kinds": ["key_result"]},
    }});
    let okrs_secret = new_secret([5; 32]);
    let subscription_secrets = json!({
        "okrs": {"signing": [okrs_secret], "bearer": "t0ken"},
        "gone": {"signing": [new_secret([6; 32])]},
    });
    let document_id = secret(
        &secrets,
        "okr-webhooks-subscriptions",
        &document.to_string(),
    )
    .await;
    let secrets_id = secret(
        &secrets,
        "okr-webhooks-subscription-secrets",
        &subscription_secrets.to_string(),
    )
    .await;
    let (ingest, subscriptions_url) = ingest(&sqs, &secrets, &document_id).await;

    // The key result's update goes to a subscription; the hire to none.
    let now = OffsetDateTime::from_unix_timestamp(SIGNED_AT + 5).unwrap();
    let mut ids = Vec::new();
    for request in [
        sample("peoplelogic-key-result.json"),
        sample("peopleforce.json"),
    ] {
        let response = apigw::handle(&ingest, request, now).await;
        assert_eq!(response.status_code, 202, "{:?}", response.body);
        let body: Value = match response.body.unwrap() {
            aws_lambda_events::encodings::Body::Text(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("{other:?}"),
        };
        ids.push(body["event_id"].as_str().unwrap().to_owned());
    }
    let queued = okr_webhooks_tests::received(&sqs, &subscriptions_url).await;
    let queued_ids: Vec<&str> = queued
        .records
        .iter()
        .map(|r| {
            r.message_attributes["event_id"]
                .string_value
                .as_deref()
                .unwrap()
        })
        .collect();
    assert_eq!(
        queued_ids,
        [ids[0].as_str()],
        "only what a subscription takes"
    );
    let queued_event: Value =
        serde_json::from_str(queued.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(queued_event["type"], "key_result.progress_updated");

    // The sender as its Lambda is wired: both documents from Secrets Manager, its
    // records in DynamoDB.
    let table = okr_webhooks_tests::idempotency_table(&dynamodb).await;
    let store = Arc::new(DynamoDbIdempotencyStore::new(dynamodb.clone(), &table));
    let sender = SubscriptionSender::new(
        Arc::new(SecretCache::new(
            Arc::new(SecretsManagerStore::new(secrets.clone(), &document_id)),
            TTL,
        )),
        Arc::new(SecretCache::new(
            Arc::new(SecretsManagerStore::new(secrets.clone(), &secrets_id)),
            TTL,
        )),
        http_client().unwrap(),
        store.clone(),
    );
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(30);
    let answer = sender.handle(queued.clone(), deadline()).await.unwrap();
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");

    let posted: Vec<_> = receiver
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/okrs")
        .collect();
    assert_eq!(posted.len(), 1);
    let webhook = standardwebhooks::Webhook::new(&okrs_secret).unwrap();
    webhook.verify(&posted[0].body, &posted[0].headers).unwrap();
    assert_eq!(posted[0].headers["webhook-id"], ids[0].as_str());
    assert_eq!(posted[0].headers["authorization"], "Bearer t0ken");
    // The 410 switched "gone" off, in the table.
    let gone = health(store.as_ref(), "gone").await.unwrap();
    assert_eq!(
        gone.disabled.map(|d| d.why).as_deref(),
        Some("its receiver answered 410 Gone")
    );

    // SQS hands the same message over again: nothing is posted twice.
    let again = sender.handle(queued, deadline()).await.unwrap();
    assert!(again.batch_item_failures.is_empty());
    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(
        requests.iter().filter(|r| r.url.path() == "/okrs").count(),
        1
    );
    assert_eq!(
        requests.iter().filter(|r| r.url.path() == "/gone").count(),
        1
    );
}

#[tokio::test]
async fn with_the_bus_every_event_is_published_to_eventbridge_once_without_personal_data() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let events = aws_sdk_eventbridge::Client::new(&config);

    // The stack's bus, and a rule of another team's: every okr-webhooks event to a queue.
    let bus = unique("okr-webhooks-events");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let target = sqs
        .create_queue()
        .queue_name(unique("their-queue"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let target_arn = sqs
        .get_queue_attributes()
        .queue_url(&target)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let rule = unique("their-rule");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(json!({"source": ["okr-webhooks"]}).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("their-queue")
                .arn(target_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let document_id = secret(
        &secrets,
        "okr-webhooks-subscriptions",
        r#"{"subscriptions": {}}"#,
    )
    .await;
    let secrets_id = secret(&secrets, "okr-webhooks-subscription-secrets", "{}").await;
    let (ingest, subscriptions_url) = ingest(&sqs, &secrets, &document_id).await;
    let ingest = ingest.with_every_event_to_subscriptions();
    // The seed's hire: no subscription takes it, the bus does.
    let now = OffsetDateTime::from_unix_timestamp(SIGNED_AT + 5).unwrap();
    let response = apigw::handle(&ingest, sample("peopleforce.json"), now).await;
    assert_eq!(response.status_code, 202);
    let queued = okr_webhooks_tests::received(&sqs, &subscriptions_url).await;
    assert_eq!(queued.records.len(), 1);
    let event_id = queued.records[0].message_attributes["event_id"]
        .string_value
        .clone()
        .unwrap();

    let table = okr_webhooks_tests::idempotency_table(&dynamodb).await;
    let sender = SubscriptionSender::new(
        Arc::new(SecretCache::new(
            Arc::new(SecretsManagerStore::new(secrets.clone(), &document_id)),
            TTL,
        )),
        Arc::new(SecretCache::new(
            Arc::new(SecretsManagerStore::new(secrets.clone(), &secrets_id)),
            TTL,
        )),
        http_client().unwrap(),
        Arc::new(DynamoDbIdempotencyStore::new(dynamodb.clone(), &table)),
    )
    .publishing_to(Arc::new(okr_aws::eventbridge::EventBridgeBus::new(
        events.clone(),
        &bus,
    )));
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(30);
    for _ in 0..2 {
        // The second time as SQS would hand the message over again.
        let answer = sender.handle(queued.clone(), deadline()).await.unwrap();
        assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    }

    let theirs = okr_webhooks_tests::received(&sqs, &target).await;
    assert_eq!(theirs.records.len(), 1, "published once");
    let body = theirs.records[0].body.as_deref().unwrap();
    let published: Value = serde_json::from_str(body).unwrap();
    assert_eq!(published["source"], "okr-webhooks");
    assert_eq!(published["detail-type"], "employee.created");
    assert_eq!(published["detail"]["id"], event_id.as_str());
    let seed = std::fs::read_to_string(format!(
        "{}/../events/bodies/peopleforce/employee_create.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let seed: Value = serde_json::from_str(&seed).unwrap();
    let birth = seed["data"]["attributes"]["date_of_birth"]
        .as_str()
        .unwrap();
    let personal = seed["data"]["attributes"]["personal_email"]
        .as_str()
        .unwrap();
    assert!(!body.contains(birth) && !body.contains(personal), "{body}");
    // Nor does the subscriptions queue hold them, when no subscription asks for the
    // whole event.
    let waiting = queued.records[0].body.as_deref().unwrap();
    assert!(
        !waiting.contains(birth) && !waiting.contains(personal),
        "{waiting}"
    );
}

//! The Slack notifier against a local HTTP server standing in for Slack (wiremock):
//! the exact messages, no personal fields, rate limits, failures, one post per event,
//! and digests within Block Kit's limits.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use http::HeaderMap;
use okr_consumers::slack::SlackNotifier;
use okr_consumers::slack::message::{digest_message, event_message};
use okr_core::routing::NotifyRules;
use okr_core::{Event, Source, normalize};
use okr_pipeline::idempotency::IdempotencyStore;
use okr_pipeline::idempotency::memory::MemoryIdempotencyStore;
use okr_pipeline::outbound::http::http_client;
use okr_pipeline::outbound::slack::{MAX_BLOCKS, MAX_HEADER, MAX_TEXT};
use okr_pipeline::outbound::slack::{WebhookPoster, WebhookUrl};
use okr_pipeline::secrets::{SecretCache, StaticSecret};
use serde_json::{Value, json};
use time::macros::datetime;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn sample(name: &str) -> SqsEvent {
    let path = format!(
        "{}/../../events/slack-notifier/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn body(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../events/bodies/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn event_from(source: Source, body: &[u8]) -> Event {
    normalize(
        &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
        &HeaderMap::new(),
        body,
        datetime!(2026-11-20 09:30 UTC),
    )
    .unwrap()
}

struct Slack {
    server: MockServer,
    notifier: SlackNotifier,
}

async fn slack() -> Slack {
    let server = MockServer::start().await;
    let notifier = notifier_to(&server, Arc::new(MemoryIdempotencyStore::default()))
        .with_min_interval(Duration::ZERO);
    Slack { server, notifier }
}

/// The notifier posting to a stand-in for the incoming webhook, with `store`.
fn notifier_to(server: &MockServer, store: Arc<dyn IdempotencyStore>) -> SlackNotifier {
    let url = WebhookUrl::new(&format!("{}/services/T000/B000/XXXX", server.uri())).unwrap();
    let poster = WebhookPoster::new(
        http_client().unwrap(),
        SecretCache::new(Arc::new(StaticSecret(url)), Duration::from_secs(300)),
    );
    SlackNotifier::new(Arc::new(poster), store, NotifyRules::default(), 5)
}

/// A stand-in for the incoming webhook that takes every post.
async fn accepting_slack() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(respond(200))
        .mount(&server)
        .await;
    server
}

fn respond(server_status: u16) -> ResponseTemplate {
    ResponseTemplate::new(server_status).set_body_string(if server_status == 200 {
        "ok"
    } else {
        ""
    })
}

impl Slack {
    async fn answer(&self, template: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/services/T000/B000/XXXX"))
            .respond_with(template)
            .mount(&self.server)
            .await;
    }

    async fn handle(&self, batch: SqsEvent) -> SqsBatchResponse {
        self.notifier
            .handle(batch, Instant::now() + Duration::from_secs(60))
            .await
            .unwrap()
    }

    async fn posted(&self) -> Vec<Value> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|request| serde_json::from_slice(&request.body).unwrap())
            .collect()
    }
}

fn failed(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

#[tokio::test]
async fn the_exact_message_posted_for_each_sample() {
    let expected = [
        (
            "objective_completed.json",
            json!({
                "text": "Objective Launch the self-serve onboarding flow completed",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": ":white_check_mark: Objective Launch the self-serve onboarding flow completed"}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": "Peoplelogic · by Priya Raman · 2025-06-02 14:21 UTC"}]}
                ]
            }),
        ),
        (
            "key_result_progress.json",
            json!({
                "text": "KR Reach 500 weekly active teams updated to 60% (from 30%) by Sam Okafor",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": ":chart_with_upwards_trend: KR Reach 500 weekly active teams updated to 60% (from 30%) by Sam Okafor\n`██████░░░░` 60%"}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": "Peoplelogic · 2025-05-20 09:00 UTC"}]}
                ]
            }),
        ),
        (
            "employee_created.json",
            json!({
                "text": "John Doe joined IT as Senior Developer",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": ":wave: John Doe joined IT as Senior Developer"}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": "PeopleForce · 2022-09-05 15:33 UTC"}]}
                ]
            }),
        ),
        (
            "award_created.json",
            json!({
                "text": "José Álvarez received the Meritorious Service Medal award",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": ":medal: José Álvarez received the Meritorious Service Medal award"}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": "PERSCOM · 2024-06-01 12:00 UTC"}]}
                ]
            }),
        ),
    ];
    for (file, message) in expected {
        let slack = slack().await;
        slack.answer(respond(200)).await;
        let response = slack.handle(sample(file)).await;
        assert!(response.batch_item_failures.is_empty(), "{file}");
        assert_eq!(slack.posted().await, [message], "{file}");
    }
}

#[test]
fn the_fallback_text_of_every_default_rule() {
    let peoplelogic = |body: Value| event_from(Source::PEOPLELOGIC, body.to_string().as_bytes());
    let perscom = |event: &str, data: Value| {
        event_from(
            Source::PERSCOM,
            json!({"event": event, "created": "2024-06-01T12:00:00Z", "data": data})
                .to_string()
                .as_bytes(),
        )
    };
    let cases = [
        (
            event_from(
                Source::PEOPLEFORCE,
                &body("peopleforce/employee_terminate.json"),
            ),
            "John Doe left IT",
        ),
        (
            peoplelogic(
                json!({"eventType": "objective.patch", "id": "k", "parentId": "o", "title": "Ship v2", "status": {"previous": "ON_TRACK", "current": "COMPLETED"}}),
            ),
            "KR Ship v2 completed",
        ),
        (
            peoplelogic(
                json!({"eventType": "objective.patch", "id": "k", "parentId": "o", "title": "Churn", "targetValue": 100, "currentValue": 42}),
            ),
            "KR Churn updated to 42%",
        ),
        (
            perscom(
                "rankrecord.created",
                json!({"id": 1, "type": 0, "rank": {"name": "Sergeant"}, "user": {"name": "Mia Chen"}}),
            ),
            "Mia Chen was promoted to Sergeant",
        ),
        (
            perscom(
                "rankrecord.created",
                json!({"id": 1, "type": 1, "rank": {"name": "Private"}, "user": {"name": "Mia Chen"}}),
            ),
            "Mia Chen was demoted to Private",
        ),
        (
            perscom(
                "qualificationrecord.created",
                json!({"id": 1, "qualification": {"name": "Marksman"}, "user": {"name": "Mia Chen"}}),
            ),
            "Mia Chen earned the Marksman qualification",
        ),
        (
            perscom("user.created", json!({"id": 78, "name": "Mia Chen"})),
            "PERSCOM: user Mia Chen created",
        ),
    ];
    for (event, text) in cases {
        assert_eq!(event_message(&event).text, text, "{}", event.event_type);
    }
}

#[tokio::test]
async fn no_message_carries_a_personal_field_from_the_hr_samples() {
    let personal = [
        "1978-08-31",
        "johnny.d.private@example.org",
        "john.doe@example.com",
        "ross.kate@example.com",
        "+380501234567",
        "T-shirt",
        "PF124593",
        "male",
        "Relocating",
        "mia.chen@example.com",
    ];
    let events = [
        event_from(
            Source::PEOPLEFORCE,
            &body("peopleforce/employee_create.json"),
        ),
        event_from(
            Source::PEOPLEFORCE,
            &body("peopleforce/employee_terminate.json"),
        ),
        event_from(Source::PERSCOM, &body("perscom/user_created.json")),
        event_from(Source::PERSCOM, &body("perscom/awardrecord_created.json")),
    ];
    let mut messages: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(&event_message(e)).unwrap())
        .collect();
    messages.push(serde_json::to_string(&digest_message(&events)).unwrap());
    for message in &messages {
        for field in personal {
            assert!(!message.contains(field), "{field} leaked into {message}");
        }
    }
    // And what Slack really received for the hire.
    let slack = slack().await;
    slack.answer(respond(200)).await;
    slack.handle(sample("employee_created.json")).await;
    let posted = slack.posted().await[0].to_string();
    for field in personal {
        assert!(!posted.contains(field), "{field} leaked into {posted}");
    }
}

#[tokio::test]
async fn a_429_with_retry_after_1_is_waited_out_and_the_message_posted_once() {
    let slack = slack().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_string("rate_limited"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&slack.server)
        .await;
    slack.answer(respond(200)).await;
    let response = slack.handle(sample("objective_completed.json")).await;
    assert!(response.batch_item_failures.is_empty());
    let posted = slack.posted().await;
    assert_eq!(posted.len(), 2, "one refused attempt, one delivered");
    assert_eq!(posted[0], posted[1]);
    // Delivered again by SQS: not posted again.
    assert!(
        slack
            .handle(sample("objective_completed.json"))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(slack.posted().await.len(), 2);
}

#[tokio::test]
async fn a_long_retry_after_fails_the_record_for_sqs_to_retry_later() {
    let slack = slack().await;
    slack
        .answer(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .await;
    let batch = sample("objective_completed.json");
    let id = batch.records[0].message_id.clone().unwrap();
    assert_eq!(failed(&slack.handle(batch).await), [id.as_str()]);
    assert_eq!(slack.posted().await.len(), 1);
}

#[tokio::test]
async fn a_500_fails_the_record_and_the_retry_posts_it() {
    let slack = slack().await;
    Mock::given(method("POST"))
        .respond_with(respond(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&slack.server)
        .await;
    slack.answer(respond(200)).await;
    let batch = sample("key_result_progress.json");
    let id = batch.records[0].message_id.clone().unwrap();
    assert_eq!(failed(&slack.handle(batch.clone()).await), [id.as_str()]);
    // SQS redelivers: the claim was released, so it posts now, once.
    assert!(
        slack
            .handle(batch.clone())
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(slack.handle(batch).await.batch_item_failures.is_empty());
    assert_eq!(slack.posted().await.len(), 2);
}

#[tokio::test]
async fn a_permanent_refusal_fails_the_record_toward_the_dead_letter_queue() {
    let slack = slack().await;
    slack
        .answer(ResponseTemplate::new(404).set_body_string("no_service"))
        .await;
    let batch = sample("employee_created.json");
    let id = batch.records[0].message_id.clone().unwrap();
    assert_eq!(failed(&slack.handle(batch.clone()).await), [id.as_str()]);
    // Each receive fails the same way until maxReceiveCount moves it to the DLQ.
    assert_eq!(failed(&slack.handle(batch).await), [id.as_str()]);
}

#[tokio::test]
async fn the_same_event_delivered_twice_is_posted_once() {
    let slack = slack().await;
    slack.answer(respond(200)).await;
    // Two messages carrying one event (a provider retry) in one batch.
    let mut batch = sample("award_created.json");
    let mut copy = batch.records[0].clone();
    copy.message_id = Some("copy-of-the-same-event".into());
    batch.records.push(copy);
    let response = slack.handle(batch).await;
    // The copy waits while the first is being posted...
    assert_eq!(failed(&response), ["copy-of-the-same-event"]);
    // ...and on redelivery sees it posted.
    let mut again = sample("award_created.json");
    again.records[0].message_id = Some("copy-of-the-same-event".into());
    assert!(slack.handle(again).await.batch_item_failures.is_empty());
    assert_eq!(slack.posted().await.len(), 1);
}

#[tokio::test]
async fn twelve_notable_events_make_one_digest_within_the_limits() {
    let slack = slack().await;
    slack.answer(respond(200)).await;
    let response = slack.handle(sample("digest.json")).await;
    assert!(response.batch_item_failures.is_empty());
    let posted = slack.posted().await;
    assert_eq!(posted.len(), 1);
    let digest = &posted[0];
    assert_eq!(digest["blocks"][0]["text"]["text"], "12 OKR and HR updates");
    let lines: usize = digest["blocks"].as_array().unwrap()[1..]
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap().lines().count())
        .sum();
    assert_eq!(lines, 12);
    assert!(
        digest["text"]
            .as_str()
            .unwrap()
            .starts_with("12 updates: KR Key result 1 updated to 5% (from 0%) by Sam Okafor;")
    );
    assert_within_limits(digest);
    // All twelve are remembered: no second digest.
    slack.handle(sample("digest.json")).await;
    assert_eq!(slack.posted().await.len(), 1);
}

#[test]
fn a_huge_digest_stays_within_block_kit_limits() {
    let events: Vec<Event> = (0..500)
        .map(|n| {
            let title = format!("Objective {n} {}", "with a very long title ".repeat(20));
            event_from(Source::PEOPLELOGIC, json!({"eventType": "objective.patch", "id": n, "title": title, "status": "COMPLETED"}).to_string().as_bytes())
        })
        .collect();
    let digest = serde_json::to_value(digest_message(&events)).unwrap();
    assert_within_limits(&digest);
    let last = digest["blocks"].as_array().unwrap().last().unwrap();
    assert!(
        last["elements"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("…and "),
        "{last}"
    );
}

fn assert_within_limits(message: &Value) {
    let blocks = message["blocks"].as_array().unwrap();
    assert!(blocks.len() <= MAX_BLOCKS, "{} blocks", blocks.len());
    assert!(message["text"].as_str().unwrap().chars().count() <= MAX_TEXT);
    for block in blocks {
        match block["type"].as_str().unwrap() {
            "header" => {
                assert!(block["text"]["text"].as_str().unwrap().chars().count() <= MAX_HEADER)
            }
            "section" => {
                assert!(block["text"]["text"].as_str().unwrap().chars().count() <= MAX_TEXT)
            }
            "context" => assert!(
                block["elements"][0]["text"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .count()
                    <= MAX_TEXT
            ),
            other => panic!("unexpected block {other}"),
        }
    }
}

#[test]
fn provider_text_cannot_mention_the_channel() {
    let event = event_from(
        Source::PEOPLELOGIC,
        json!({"eventType": "objective.patch", "id": "o", "title": "<!channel> & <https://evil.example|click>", "status": "COMPLETED"}).to_string().as_bytes(),
    );
    let message = serde_json::to_string(&event_message(&event)).unwrap();
    assert!(
        message.contains("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"),
        "{message}"
    );
    assert!(!message.contains("<!channel>"));
}

#[tokio::test]
async fn events_without_a_rule_are_acknowledged_without_a_post() {
    let slack = slack().await;
    slack.answer(respond(200)).await;
    let batch = serde_json::from_str::<SqsEvent>(
        &std::fs::read_to_string(format!(
            "{}/../../events/warehouse-sink/batch.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    // objective.completed, employee.created, two key-result updates: notable; rank_record.updated: not.
    let response = slack.handle(batch).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(slack.posted().await.len(), 4);
}

/// DynamoDB, as far as the idempotency store uses it, for one table in memory; it can
/// hang on the put that marks a post done (`complete`: the put without a condition).
#[derive(Default)]
struct FakeDynamoDb {
    items: std::sync::Mutex<std::collections::HashMap<String, Value>>,
    hang_completes: bool,
}

impl wiremock::Respond for FakeDynamoDb {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let ok = |body: Value| {
            ResponseTemplate::new(200).set_body_raw(body.to_string(), "application/x-amz-json-1.0")
        };
        let number = |value: &Value| value["N"].as_str().unwrap().parse::<i64>().unwrap();
        let target = request
            .headers
            .get("x-amz-target")
            .unwrap()
            .to_str()
            .unwrap();
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let mut items = self.items.lock().unwrap();
        match target.rsplit('.').next().unwrap() {
            "PutItem" => {
                let item = body["Item"].clone();
                let id = item["id"]["S"].as_str().unwrap().to_owned();
                if body.get("ConditionExpression").is_some() {
                    // A claim: only over an absent or expired record.
                    let now = number(&body["ExpressionAttributeValues"][":now"]);
                    if items
                        .get(&id)
                        .is_some_and(|old| number(&old["expires_at"]) > now)
                    {
                        return ResponseTemplate::new(400).set_body_raw(
                            json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "message": "The conditional request failed"}).to_string(),
                            "application/x-amz-json-1.0",
                        );
                    }
                } else if self.hang_completes {
                    return ok(json!({})).set_delay(Duration::from_secs(120));
                }
                items.insert(id, item);
                ok(json!({}))
            }
            "UpdateItem" => {
                // `sending`: the status, and the longer hold.
                let id = body["Key"]["id"]["S"].as_str().unwrap();
                if let Some(item) = items.get_mut(id) {
                    item["status"] = json!({"S": "SENDING"});
                    item["expires_at"] = body["ExpressionAttributeValues"][":until"].clone();
                }
                ok(json!({}))
            }
            "DeleteItem" => {
                items.remove(body["Key"]["id"]["S"].as_str().unwrap());
                ok(json!({}))
            }
            "GetItem" => match items.get(body["Key"]["id"]["S"].as_str().unwrap()) {
                Some(item) => ok(json!({ "Item": item })),
                None => ok(json!({})),
            },
            other => panic!("unexpected DynamoDB call {other}"),
        }
    }
}

#[tokio::test]
async fn a_hung_store_after_a_post_ends_inside_the_invocation_and_the_event_is_posted_once() {
    use okr_aws::dynamodb::DynamoDbIdempotencyStore;
    use okr_pipeline::metrics::MemoryMetrics;
    let dynamodb = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(FakeDynamoDb {
            hang_completes: true,
            ..FakeDynamoDb::default()
        })
        .mount(&dynamodb)
        .await;
    // The client the Lambda builds: the consumers' timeouts.
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(dynamodb.uri())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .timeout_config(okr_aws::config::consumer_aws_timeouts())
        .build();
    let store = DynamoDbIdempotencyStore::new(aws_sdk_dynamodb::Client::from_conf(config), "t");
    let slack = accepting_slack().await;
    let metrics = Arc::new(MemoryMetrics::default());
    let notifier = notifier_to(&slack, Arc::new(store))
        // The Slack queue's visibility timeout in the template.
        .guarded(Duration::from_secs(370), metrics.clone());

    // An invocation with 13 s left: the post goes out, then marking it done hangs.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(13);
    let response = notifier
        .handle(sample("employee_created.json"), deadline)
        .await
        .unwrap();
    assert!(
        Instant::now() < deadline,
        "the invocation ran past its deadline"
    );
    assert!(
        response.batch_item_failures.is_empty(),
        "posted, so acknowledged: failing it would post again"
    );
    assert_eq!(
        metrics.counts(),
        [(
            "slack-notifier",
            okr_pipeline::idempotency::guard::SENDS_NOT_RECORDED
        )]
    );
    // Another delivery of the event after the invocation's end, while SQS would still
    // hide the first message: the claim still holds, so it is not posted again.
    tokio::time::sleep_until(deadline + Duration::from_secs(1)).await;
    let mut again = sample("employee_created.json");
    again.records[0].message_id = Some("a-second-delivery".into());
    let response = notifier
        .handle(again, Instant::now() + Duration::from_secs(13))
        .await
        .unwrap();
    assert_eq!(failed(&response), ["a-second-delivery"], "retried later");
    assert_eq!(slack.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn no_post_starts_without_time_to_mark_send_and_record_it() {
    let server = accepting_slack().await;
    let notifier = notifier_to(&server, Arc::new(MemoryIdempotencyStore::default()));
    // Three events posted a second apart, with 11 s left: the first has time for the
    // store's two calls (5 s each at most) around its post; the second would not, so it
    // and the third are left for SQS's retry instead of running past the deadline.
    let mut batch = sample("digest.json");
    batch.records.truncate(3);
    let ids: Vec<String> = batch
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(11);
    let response = notifier.handle(batch, deadline).await.unwrap();
    assert!(Instant::now() < deadline);
    assert_eq!(failed(&response), [ids[1].as_str(), ids[2].as_str()]);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_post_whose_claim_cannot_be_marked_sending_waits_and_a_digest_needs_time_too() {
    use okr_pipeline::idempotency::{Claim, ClaimStore};
    let server = accepting_slack().await;
    let notifier = |store: Arc<dyn IdempotencyStore>| {
        notifier_to(&server, store).with_min_interval(Duration::ZERO)
    };
    // The store cannot mark the post as started: posted now, it would not stay protected
    // after this invocation, so it is not posted; its claim is released for the retry.
    let store = Arc::new(okr_webhooks_tests::faulty::Faulty {
        fail_sending: true,
        ..okr_webhooks_tests::faulty::Faulty::default()
    });
    let batch = sample("employee_created.json");
    let id = batch.records[0].message_id.clone().unwrap();
    let event: Event = serde_json::from_str(batch.records[0].body.as_deref().unwrap()).unwrap();
    let response = notifier(store.clone())
        .handle(batch, Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(failed(&response), [id.as_str()]);
    assert!(server.received_requests().await.unwrap().is_empty());
    assert!(matches!(
        store
            .inner
            .begin(
                &format!("slack:{}", event.id),
                time::OffsetDateTime::now_utc(),
                Duration::from_secs(1)
            )
            .await
            .unwrap(),
        Claim::Proceed(_)
    ));

    // A digest of twelve with less time left than the store's calls around a post may
    // take: nothing is posted, every record waits for the retry.
    let store = Arc::new(MemoryIdempotencyStore::default());
    let response = notifier(store)
        .handle(
            sample("digest.json"),
            Instant::now() + Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(response.batch_item_failures.len(), 12);
    assert!(server.received_requests().await.unwrap().is_empty());
}

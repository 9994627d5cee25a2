//! The stalled check on AWS, wired from its environment as the `stalled-check` function
//! wires it (`okr_aws::stalled::check`), run at the scheduled event sample's time: the
//! read model, the directory and the alerts' state in DynamoDB, email through SES, the
//! bot token and the alerts channel's URL from Secrets Manager, all through moto; Slack's
//! Web API and the alerts channel are stand-ins. The seed's PeopleForce hire (John Doe
//! reporting to Ross Kate) and key results John last updated 20 and 16 days before:
//! Ross gets one email and one direct message about each, the channel names him; a
//! second run sends nothing; John's update resolves one; once John is terminated his
//! stalled key result goes to the alerts channel only.

use std::time::Duration;

use http::HeaderMap;
use okr_aws::config::StalledConfig;
use okr_aws::directory_dynamodb::DynamoDbDirectory;
use okr_aws::progress_dynamodb::DynamoDbProgressStore;
use okr_consumers::email::send::ScheduledRun;
use okr_consumers::progress::ProgressStore;
use okr_consumers::stalled::Report;
use okr_core::rules::Thresholds;
use okr_core::{Event, Source, normalize};
use okr_pipeline::config::Env;
use okr_webhooks_tests::{
    Moto, directory_table, idempotency_table, progress_table, ses_sent_to, slack_web_api, unique,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ROSS: &str = "ross.kate@example.com";
const PRIVATE: [&str; 4] = [
    "1978-08-31",
    "johnny.d.private",
    "+380501234567",
    "john.doe@example.com",
];

fn peopleforce(body: &[u8], at: OffsetDateTime) -> Event {
    normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLEFORCE).unwrap(),
        &HeaderMap::new(),
        body,
        at,
    )
    .unwrap()
}

/// A Peoplelogic key result John Doe updated at `at`.
fn key_result(id: &str, title: &str, at: OffsetDateTime, status: &str) -> Event {
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let body = json!({
        "eventType": "objective.patch", "id": id, "parentId": "o-1", "title": title,
        "startingValue": 0, "targetValue": 100, "currentValue": 40, "status": status,
        "updatedBy": {"id": "u-7", "name": "John Doe"}, "updatedAt": rfc3339(at),
        "startDate": (at - time::Duration::days(30)).date().to_string(),
        "dueDate": (at + time::Duration::days(90)).date().to_string(),
    });
    normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLELOGIC).unwrap(),
        &HeaderMap::new(),
        &serde_json::to_vec(&body).unwrap(),
        at,
    )
    .unwrap()
}

/// SES's messages to Ross: (subject, text).
async fn to_ross(moto: &Moto) -> Vec<(String, String)> {
    ses_sent_to(moto, ROSS).await
}

/// The bodies `server` received at `at`.
async fn bodies(server: &MockServer, at: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == at)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// The check's tables, as the template declares them: (progress, directory,
/// idempotency).
async fn tables(dynamodb: &aws_sdk_dynamodb::Client) -> (String, String, String) {
    (
        progress_table(dynamodb).await,
        directory_table(dynamodb).await,
        idempotency_table(dynamodb).await,
    )
}

#[tokio::test]
async fn stalled_key_results_reach_the_team_lead_through_ses_and_slack_once_and_resolve() {
    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let tables = tables(&dynamodb).await;
    let progress = DynamoDbProgressStore::new(dynamodb.clone(), &tables.0);
    let directory = DynamoDbDirectory::new(dynamodb.clone(), &tables.1);

    // The run's time is the scheduled event sample's, as Scheduler passes it.
    let run: ScheduledRun =
        serde_json::from_str(include_str!("../events/stalled-check/scheduled.json")).unwrap();
    let now = run.scheduled_time.unwrap();
    let days = |n: i64| now - time::Duration::days(n);

    let hire = peopleforce(
        include_bytes!("../events/bodies/peopleforce/employee_create.json"),
        days(40),
    );
    okr_consumers::directory::apply(&directory, &[hire])
        .await
        .unwrap();
    let updates = vec![
        key_result(
            "kr-a",
            "Reach 500 weekly active teams",
            days(20),
            "ON_TRACK",
        ),
        key_result("kr-b", "Cut onboarding time", days(16), "AT_RISK"),
        key_result("kr-c", "Fresh one", days(2), "ON_TRACK"),
        key_result("kr-d", "Done one", days(20), "COMPLETED"),
    ];
    for applied in progress.apply(updates, &Thresholds::default()).await {
        applied.unwrap();
    }

    // SES with the sender verified; the secrets; the stand-ins.
    aws_sdk_sesv2::Client::new(&aws)
        .create_email_identity()
        .email_identity("okr@example.com")
        .send()
        .await
        .unwrap();
    let slack = slack_web_api(ROSS, "U0ROSS").await;
    Mock::given(method("POST"))
        .and(path("/hooks/alerts"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let (token_secret, channel_secret) = (unique("slack-bot-token"), unique("alerts-webhook"));
    for (name, value) in [
        (&token_secret, "xoxb-test".to_owned()),
        (&channel_secret, format!("{}/hooks/alerts", slack.uri())),
    ] {
        secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }

    // The function's environment, as the template sets it (with a sender and the
    // direct messages on), pointing at moto's tables and the stand-ins.
    let api = format!("{}/api", slack.uri());
    let environment = [
        ("PROGRESS_TABLE", tables.0.as_str()),
        ("DIRECTORY_TABLE", &tables.1),
        ("IDEMPOTENCY_TABLE", &tables.2),
        ("STALLED_AFTER_DAYS", "14"),
        ("ALERT_WINDOW_HOURS", "24"),
        ("EMAIL_SENDER", "okr@example.com"),
        ("SLACK_BOT_TOKEN_SECRET_ID", &token_secret),
        ("SLACK_API_URL", &api),
        ("ALERTS_SLACK_WEBHOOK_SECRET_ID", &channel_secret),
    ];
    let config = StalledConfig::from_env(&Env(|name: &str| {
        environment
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }))
    .unwrap();
    let before = to_ross(&moto).await.len();
    let check_at = async |at: OffsetDateTime| -> Report {
        // Built per run, as the function builds it.
        okr_aws::stalled::check(&config, &aws)
            .await
            .unwrap()
            .run(at, Instant::now() + Duration::from_secs(60))
            .await
            .unwrap()
    };

    // 1. Both stalled key results open: one email, one direct message and one channel
    // post each.
    let report = check_at(now).await;
    assert_eq!(
        (report.opened, report.sent, report.failed),
        (2, 6, 0),
        "{report:?}"
    );
    let mails = to_ross(&moto).await;
    assert_eq!(mails.len(), before + 2);
    let mut subjects: Vec<&str> = mails[before..].iter().map(|(s, _)| s.as_str()).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "[Stalled key result] Cut onboarding time",
            "[Stalled key result] Reach 500 weekly active teams"
        ]
    );
    for (_, text) in &mails[before..] {
        assert!(text.contains("Hi Ross Kate,"), "{text}");
        assert!(text.contains("John Doe (your team)"), "{text}");
        for private in PRIVATE {
            assert!(!text.contains(private), "{private} in {text}");
        }
    }
    let direct = bodies(&slack, "/api/chat.postMessage").await;
    assert_eq!(direct.len(), 2);
    assert!(direct.iter().all(|m| m["channel"] == "U0ROSS"));
    assert!(direct.iter().any(|m| {
        m["text"]
            .as_str()
            .unwrap()
            .contains("Reach 500 weekly active teams has had no update for 20 days")
    }));
    let channel = bodies(&slack, "/hooks/alerts").await;
    assert_eq!(channel.len(), 2);
    for post in &channel {
        let text = post["text"].as_str().unwrap();
        assert!(text.contains("John Doe, team lead Ross Kate"), "{text}");
        for private in PRIVATE {
            assert!(!text.contains(private), "{private} in {text}");
        }
    }
    let requests = slack.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .filter(|r| r.url.path().starts_with("/api/"))
            .all(|r| r.headers["authorization"] == "Bearer xoxb-test")
    );

    // 2. A retried run (the same scheduled time) and the next hour's: nothing new.
    for at in [now, now + time::Duration::hours(1)] {
        let again = check_at(at).await;
        assert_eq!((again.opened, again.sent), (0, 0), "{again:?}");
    }
    assert_eq!(to_ross(&moto).await.len(), before + 2);

    // 3. John updates kr-a: the next day's run resolves it, one email where it went.
    let tomorrow = now + time::Duration::days(1);
    for applied in progress
        .apply(
            vec![key_result(
                "kr-a",
                "Reach 500 weekly active teams",
                now + time::Duration::hours(3),
                "ON_TRACK",
            )],
            &Thresholds::default(),
        )
        .await
    {
        applied.unwrap();
    }
    let resolved = check_at(tomorrow).await;
    assert_eq!(
        (resolved.resolved, resolved.reminded),
        (1, 1),
        "kr-b is reminded a day later: {resolved:?}"
    );
    let mails = to_ross(&moto).await;
    let mut subjects: Vec<&str> = mails[before + 2..]
        .iter()
        .map(|(s, _)| s.as_str())
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "[No longer stalled] Reach 500 weekly active teams",
            "[Still stalled] Cut onboarding time"
        ]
    );

    // 4. John is terminated; a key result of his stalls: the alerts channel says so,
    // and Ross gets nothing about it.
    let terminate = peopleforce(
        include_bytes!("../events/bodies/peopleforce/employee_terminate.json"),
        tomorrow,
    );
    okr_consumers::directory::apply(&directory, &[terminate])
        .await
        .unwrap();
    for applied in progress
        .apply(
            vec![key_result(
                "kr-e",
                "Renew the partner deals",
                now - time::Duration::days(17),
                "ON_TRACK",
            )],
            &Thresholds::default(),
        )
        .await
    {
        applied.unwrap();
    }
    let mails_before = to_ross(&moto).await.len();
    let left = check_at(tomorrow + time::Duration::hours(1)).await;
    assert_eq!(left.opened, 1, "{left:?}");
    assert_eq!(to_ross(&moto).await.len(), mails_before, "no email to Ross");
    let channel = bodies(&slack, "/hooks/alerts").await;
    let last = channel.last().unwrap()["text"].as_str().unwrap().to_owned();
    assert!(
        last.contains("Renew the partner deals") && last.contains("owner no longer active"),
        "{last}"
    );
}

#[tokio::test]
async fn a_bot_token_not_put_yet_costs_the_direct_messages_only() {
    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let tables = tables(&dynamodb).await;
    let directory = DynamoDbDirectory::new(dynamodb.clone(), &tables.1);
    let progress = DynamoDbProgressStore::new(dynamodb.clone(), &tables.0);
    let now = OffsetDateTime::now_utc();
    let hire = peopleforce(
        include_bytes!("../events/bodies/peopleforce/employee_create.json"),
        now,
    );
    okr_consumers::directory::apply(&directory, &[hire])
        .await
        .unwrap();
    let stale = key_result(
        "kr-a",
        "Reach 500 weekly active teams",
        now - time::Duration::days(20),
        "ON_TRACK",
    );
    for applied in progress.apply(vec![stale], &Thresholds::default()).await {
        applied.unwrap();
    }
    // The template creates the token's secret with no value: put after deploy.
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let (token_secret, channel_secret) = (unique("slack-bot-token"), unique("alerts-webhook"));
    secrets
        .create_secret()
        .name(&token_secret)
        .send()
        .await
        .unwrap();
    let channel = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/alerts"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&channel)
        .await;
    secrets
        .create_secret()
        .name(&channel_secret)
        .secret_string(format!("{}/hooks/alerts", channel.uri()))
        .send()
        .await
        .unwrap();
    let environment = [
        ("PROGRESS_TABLE", tables.0.as_str()),
        ("DIRECTORY_TABLE", &tables.1),
        ("IDEMPOTENCY_TABLE", &tables.2),
        ("SLACK_BOT_TOKEN_SECRET_ID", &token_secret),
        ("ALERTS_SLACK_WEBHOOK_SECRET_ID", &channel_secret),
    ];
    let config = StalledConfig::from_env(&Env(|name: &str| {
        environment
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }))
    .unwrap();
    let check = okr_aws::stalled::check(&config, &aws)
        .await
        .expect("the check runs without its bot token");
    let report = check
        .run(now, Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        (report.opened, report.sent, report.failed),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(bodies(&channel, "/hooks/alerts").await.len(), 1);
}

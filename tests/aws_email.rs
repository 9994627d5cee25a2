//! Email summaries on AWS: the read model in DynamoDB, the recipients in Secrets
//! Manager, what was sent in the idempotency table, and Amazon SES v2, all through moto.
//! One send per (recipient, run); a retried invocation sends nothing more; a refused
//! address does not stop the others.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use okr_webhooks::alerts::rules::Thresholds;
use okr_webhooks::email::send::{Report, ScheduledRun, Summaries};
use okr_webhooks::email::ses::SesMailer;
use okr_webhooks::idempotency::dynamodb::DynamoDbIdempotencyStore;
use okr_webhooks::progress::ProgressStore;
use okr_webhooks::progress::dynamodb::DynamoDbProgressStore;
use okr_webhooks::secrets::SecretCache;
use okr_webhooks::secrets::secrets_manager::SecretsManagerStore;
use okr_webhooks::{Source, normalize};
use okr_webhooks_tests::{Moto, idempotency_table, progress_table, unique};
use serde_json::{Value, json};
use tokio::time::Instant;

/// What moto's SES holds as sent: (recipients, subject) of each message to `domain`.
async fn sent(moto: &Moto, domain: &str) -> Vec<(Vec<String>, String)> {
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", moto.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let to: Vec<String> = m["destinations"]["ToAddresses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
            (to, m["subject"].as_str().unwrap().to_owned())
        })
        .filter(|(to, _)| to.iter().any(|a| a.ends_with(domain)))
        .collect()
}

fn seed(path: &str) -> okr_webhooks::Event {
    let body = std::fs::read(format!(
        "{}/../events/bodies/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let source: Source = path.split('/').next().unwrap().parse().unwrap();
    normalize(
        source,
        &HeaderMap::new(),
        &body,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap()
}

fn run(at: &str) -> ScheduledRun {
    serde_json::from_value(json!({"scheduled_time": at})).unwrap()
}

#[tokio::test]
async fn each_summary_goes_out_once_per_run_through_ses_and_a_refused_address_is_skipped() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let progress = DynamoDbProgressStore::new(dynamodb.clone(), progress_table(&dynamodb).await);
    let events = [
        "peoplelogic/objective_completed.json",
        "peoplelogic/key_result_progress.json",
        "peoplelogic/key_result_progress_plain.json",
    ]
    .map(seed)
    .to_vec();
    for applied in progress.apply(events, &Thresholds::default()).await {
        applied.unwrap();
    }
    let ses = aws_sdk_sesv2::Client::new(&config);
    ses.create_email_identity()
        .email_identity("okr@example.com")
        .send()
        .await
        .unwrap();
    // Unique addresses: moto's SES is shared by the tests of one server.
    let domain = format!("{}.example.com", unique("company"));
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let secret = unique("email-recipients");
    let document = json!({"recipients": [
        {"address": format!("cto@{domain}"), "scope": "all"},
        // SES refuses it ("Missing domain"), as it would an address it cannot send to.
        {"address": "broken@", "scope": "all"},
        {"address": format!("lead@{domain}"), "scope": {"titles": ["Cut onboarding*"]}},
    ]});
    secrets
        .create_secret()
        .name(&secret)
        .secret_string(document.to_string())
        .send()
        .await
        .unwrap();
    let summaries = Summaries::new(
        Arc::new(progress),
        Arc::new(SecretCache::new(
            Arc::new(SecretsManagerStore::new(secrets, &secret)),
            Duration::from_secs(60),
        )),
        Arc::new(SesMailer::new(ses.clone(), "okr@example.com")),
        Arc::new(DynamoDbIdempotencyStore::new(
            dynamodb.clone(),
            idempotency_table(&dynamodb).await,
        )),
        Duration::from_secs(14 * 24 * 3600),
    );
    let deadline = || Instant::now() + Duration::from_secs(60);
    // Monday 08:00 in Auckland is Sunday evening UTC: the week is the zone's.
    let zone = chrono_tz::Pacific::Auckland;
    let monday = run("2025-06-08T20:00:00Z");

    let report = summaries
        .scheduled(&monday, &zone, deadline())
        .await
        .unwrap();
    assert_eq!(
        report,
        Report {
            recipients: 3,
            sent: 2,
            already_sent: 0,
            refused: 1,
            failed: 0
        }
    );
    let mut messages = sent(&moto, &domain).await;
    messages.sort();
    assert_eq!(
        messages,
        [
            (
                vec![format!("cto@{domain}")],
                "OKR summary, week 24: 1 completed, 0 behind pace, 1 at risk, 1 stalled".to_owned()
            ),
            (
                vec![format!("lead@{domain}")],
                "OKR summary, week 24: 0 completed, 0 behind pace, 1 at risk".to_owned()
            ),
        ]
    );

    // The schedule (or Lambda) retries the invocation: nothing more goes out.
    let retry = summaries
        .scheduled(&monday, &zone, deadline())
        .await
        .unwrap();
    assert_eq!(
        retry,
        Report {
            recipients: 3,
            sent: 0,
            already_sent: 2,
            refused: 1,
            failed: 0
        }
    );
    assert_eq!(sent(&moto, &domain).await.len(), 2);

    // The next week's run is a new one.
    let next = summaries
        .scheduled(&run("2025-06-15T20:00:00Z"), &zone, deadline())
        .await
        .unwrap();
    assert_eq!(next.sent, 2);
    let subjects: Vec<String> = sent(&moto, &domain)
        .await
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert!(
        subjects
            .contains(&"OKR summary, week 25: 0 completed, 0 behind pace, 1 at risk".to_owned()),
        "{subjects:?}"
    );
}

#[tokio::test]
async fn a_sender_ses_has_not_verified_is_ses_unavailable_not_one_address_refused() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let mailer = SesMailer::new(
        aws_sdk_sesv2::Client::new(&config),
        "nobody@unverified.example.org",
    );
    let email = okr_webhooks::email::Email {
        to: "someone@example.com".into(),
        subject: "s".into(),
        text: "t".into(),
        html: "<p>h</p>".into(),
    };
    use okr_webhooks::email::Mailer;
    // Every recipient would be refused alike: not skipped as this one's fault, but
    // retried (and alarmed on), with SES's reason and no address.
    let error = mailer.send(&email).await.unwrap_err();
    assert!(!error.is_refusal() && error.is_outage(), "{error:?}");
    let text = okr_webhooks::error_chain(&error);
    assert!(
        text.contains("MessageRejected: Email address not verified"),
        "{text}"
    );
    assert!(!text.contains("someone@example.com"), "{text}");
}

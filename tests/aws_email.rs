//! Email summaries on AWS: the read model in DynamoDB, the recipients in Secrets
//! Manager, what was sent in the idempotency table, and Amazon SES v2, all through moto.
//! One send per (recipient, run); a retried invocation sends nothing more; a refused
//! address does not stop the others.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use okr_aws::dynamodb::DynamoDbIdempotencyStore;
use okr_aws::progress_dynamodb::DynamoDbProgressStore;
use okr_aws::secrets_manager::SecretsManagerStore;
use okr_aws::ses::SesMailer;
use okr_consumers::email::send::{Report, ScheduledRun, Summaries};
use okr_consumers::progress::ProgressStore;
use okr_core::rules::Thresholds;
use okr_core::{Source, normalize};
use okr_pipeline::secrets::SecretCache;
use okr_webhooks_tests::{
    Moto, idempotency_table, progress_table, ses_messages, ses_sent_to, unique,
};
use serde_json::{Value, json};
use tokio::time::Instant;

/// What moto's SES holds as sent: (recipients, subject) of each message to `domain`.
async fn sent(moto: &Moto, domain: &str) -> Vec<(Vec<String>, String)> {
    ses_messages(moto)
        .await
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

fn seed(path: &str) -> okr_core::Event {
    let body = std::fs::read(format!(
        "{}/../events/bodies/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let source: Source = path.split('/').next().unwrap().parse().unwrap();
    normalize(
        &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
        &HeaderMap::new(),
        &body,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap()
}

/// SES with `okr@example.com` verified, and a recipients secret holding `document`:
/// (the SES client, the Secrets Manager client, the secret's name).
async fn ses_and_recipients(
    config: &aws_config::SdkConfig,
    document: &Value,
) -> (
    aws_sdk_sesv2::Client,
    aws_sdk_secretsmanager::Client,
    String,
) {
    let ses = aws_sdk_sesv2::Client::new(config);
    ses.create_email_identity()
        .email_identity("okr@example.com")
        .send()
        .await
        .unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(config);
    let secret = unique("email-recipients");
    secrets
        .create_secret()
        .name(&secret)
        .secret_string(document.to_string())
        .send()
        .await
        .unwrap();
    (ses, secrets, secret)
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
    // Unique addresses: moto's SES is shared by the tests of one server.
    let domain = format!("{}.example.com", unique("company"));
    let document = json!({"recipients": [
        {"address": format!("cto@{domain}"), "scope": "all"},
        // SES refuses it ("Missing domain"), as it would an address it cannot send to.
        {"address": "broken@", "scope": "all"},
        {"address": format!("lead@{domain}"), "scope": {"titles": ["Cut onboarding*"]}},
    ]});
    let (ses, secrets, secret) = ses_and_recipients(&config, &document).await;
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
    let email = okr_pipeline::outbound::mail::Email {
        to: "someone@example.com".into(),
        subject: "s".into(),
        text: "t".into(),
        html: "<p>h</p>".into(),
    };
    use okr_pipeline::outbound::mail::Mailer;
    // Every recipient would be refused alike: not skipped as this one's fault, but
    // retried (and alarmed on), with SES's reason and no address.
    let error = mailer.send(&email).await.unwrap_err();
    assert!(!error.is_refusal() && error.is_outage(), "{error:?}");
    let text = okr_core::error_chain(&error);
    assert!(
        text.contains("MessageRejected: Email address not verified"),
        "{text}"
    );
    assert!(!text.contains("someone@example.com"), "{text}");
}

/// SES unavailable for all three of Lambda's tries of a run loses no news: the next
/// run's summary tells each recipient what changed since the last one they received.
#[tokio::test]
async fn news_from_a_run_ses_could_not_send_in_three_tries_comes_in_the_next_summary_once() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let progress = Arc::new(DynamoDbProgressStore::new(
        dynamodb.clone(),
        progress_table(&dynamodb).await,
    ));
    let apply = async |paths: &[&str]| {
        let events = paths.iter().map(|p| seed(p)).collect();
        for applied in progress.apply(events, &Thresholds::default()).await {
            applied.unwrap();
        }
    };
    let cto = format!("cto@{}.example.com", unique("company"));
    let document = json!({"recipients": [{"address": cto, "scope": "all"}]});
    let (ses, secrets, secret) = ses_and_recipients(&config, &document).await;
    let store = Arc::new(DynamoDbIdempotencyStore::new(
        dynamodb.clone(),
        idempotency_table(&dynamodb).await,
    ));
    let summaries = |ses: aws_sdk_sesv2::Client| {
        Summaries::new(
            progress.clone(),
            Arc::new(SecretCache::new(
                Arc::new(SecretsManagerStore::new(secrets.clone(), &secret)),
                Duration::from_secs(60),
            )),
            Arc::new(SesMailer::new(ses, "okr@example.com")),
            store.clone(),
            Duration::from_secs(14 * 24 * 3600),
        )
    };
    let working = summaries(ses.clone());
    // SES's endpoint answering nothing: every send is an outage.
    let nowhere = aws_sdk_sesv2::config::Builder::from(&config)
        .endpoint_url(format!(
            "http://127.0.0.1:{}",
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        ))
        .build();
    let down = summaries(aws_sdk_sesv2::Client::from_conf(nowhere));
    let zone = chrono_tz::UTC;
    let deadline = || Instant::now() + Duration::from_secs(60);

    apply(&["peoplelogic/key_result_progress.json"]).await;
    let w24 = working
        .scheduled(&run("2025-06-09T08:00:00Z"), &zone, deadline())
        .await
        .unwrap();
    assert_eq!(w24.sent, 1);

    apply(&[
        "peoplelogic/objective_completed.json",
        "peoplelogic/key_result_progress_next.json",
    ])
    .await;
    for _ in 0..3 {
        let w25 = down
            .scheduled(&run("2025-06-16T08:00:00Z"), &zone, deadline())
            .await
            .unwrap();
        assert_eq!((w25.sent, w25.failed), (0, 1));
    }
    let w26 = working
        .scheduled(&run("2025-06-23T08:00:00Z"), &zone, deadline())
        .await
        .unwrap();
    assert_eq!(w26.sent, 1);
    let w27 = working
        .scheduled(&run("2025-06-30T08:00:00Z"), &zone, deadline())
        .await
        .unwrap();
    assert_eq!(w27.sent, 1);

    let mails = ses_sent_to(&moto, &cto).await;
    assert_eq!(mails.len(), 3, "{mails:?}");
    // Week 26 tells what changed since week 24, the last summary delivered.
    assert!(
        mails[1].0.starts_with("OKR summary, week 26: 1 completed"),
        "{}",
        mails[1].0
    );
    assert!(mails[1].1.contains("(+20)"), "{}", mails[1].1);
    // Week 27 has nothing new: each change was told once.
    assert!(
        mails[2].0.starts_with("OKR summary, week 27: 0 completed"),
        "{}",
        mails[2].0
    );
    assert!(!mails[2].1.contains("(+"), "{}", mails[2].1);
}

//! The delivery log through `serve`: a signed delivery and a tampered one, as
//! `okr-webhooks deliveries` prints them and `GET /api/deliveries` lists them; nothing
//! of the bodies kept.

mod common;

use std::process::Command;

use common::{BIN, client, secrets, serve_on};
use okr_core::Source;
use serde_json::Value;

const HIRE: &[u8] = include_bytes!("../../events/bodies/peopleforce/employee_create.json");
const KEY_RESULT: &[u8] =
    include_bytes!("../../events/bodies/peoplelogic/key_result_progress.json");

/// `okr-webhooks deliveries --json` over `data` with `args`, once it lists `count`
/// (serve's log writes a moment after it answers): its objects, and all it printed.
async fn listed(data: &std::path::Path, args: &[&str], count: usize) -> (Vec<Value>, String) {
    let mut found = (Vec::new(), String::new());
    common::eventually("the deliveries recorded", async || {
        found = listed_now(data, args);
        found.0.len() >= count
    })
    .await;
    found
}

/// `okr-webhooks deliveries --json` over `data` with `args`, now.
fn listed_now(data: &std::path::Path, args: &[&str]) -> (Vec<Value>, String) {
    let output = Command::new(BIN)
        .args(["deliveries", "--json", "--data-dir"])
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    let (ok, text) = common::outcome(&output);
    assert!(ok, "{text}");
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, text)
}

#[tokio::test]
async fn serve_records_each_delivery_and_the_command_and_the_api_list_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let server = serve_on("127.0.0.1", data, &[]).await;
    let secrets = secrets(data);
    let answer = common::accepted(&server.base, &secrets, Source::PEOPLELOGIC, KEY_RESULT).await;
    let event_id = answer["event_id"].as_str().unwrap().to_owned();
    common::tampered_hire(&server.base, &secrets).await;

    let (lines, text) = listed(data, &[], 2).await;
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["endpoint"], "peopleforce", "newest first");
    assert_eq!(lines[0]["outcome"], "refused");
    assert_eq!(lines[0]["reason"], "wrong_signature");
    assert_eq!(lines[0]["event_id"], Value::Null);
    assert_eq!(lines[1]["outcome"], "accepted");
    assert_eq!(lines[1]["event_id"], event_id.as_str());
    assert_eq!(lines[1]["type"], "key_result.progress_updated");
    for line in &lines {
        assert!(line["time"].as_str().is_some());
    }
    for private in [
        "1978-08-31",
        "johnny.d.private",
        "Reach 500 weekly active teams",
    ] {
        assert!(!text.contains(private), "{private} in the log");
    }
    // The table, filtered.
    let output = Command::new(BIN)
        .args(["deliveries", "--outcome", "refused", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    let (ok, table) = common::outcome(&output);
    assert!(ok, "{table}");
    assert_eq!(table.lines().count(), 1, "{table}");
    assert!(
        table.contains("\tpeopleforce\tPOST 401\trefused (wrong_signature)"),
        "{table}"
    );

    // The API: the same, by event.
    let page: Value = client()
        .get(format!("{}/api/deliveries?event={event_id}", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["outcome"], "accepted");
    let bad = client()
        .get(format!("{}/api/deliveries?outcome=lost", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let reason: Value = bad.json().await.unwrap();
    assert_eq!(reason["error"], "invalid_query");
}

#[tokio::test]
async fn an_endpoint_captures_refused_bodies_for_a_day_when_asked_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let server = serve_on("127.0.0.1", data, &[]).await;
    let secrets = secrets(data);
    let capture = |args: &[&str]| {
        let output = Command::new(BIN)
            .args(["deliveries", "capture"])
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .output()
            .unwrap();
        let (ok, text) = common::outcome(&output);
        assert!(ok, "{text}");
        text
    };
    assert_eq!(capture(&[]), "no endpoint captures refused bodies\n");
    let on = capture(&["peopleforce"]);
    assert!(
        on.starts_with("peopleforce: capturing the bodies of refused deliveries until "),
        "{on}"
    );
    assert!(capture(&[]).starts_with("peopleforce\tuntil "));

    // Refused at peopleforce: its body kept. Accepted there, or refused elsewhere: not.
    common::tampered_hire(&server.base, &secrets).await;
    common::accepted(&server.base, &secrets, Source::PEOPLEFORCE, HIRE).await;
    let (status, _) = common::deliver(
        &server.base,
        &secrets,
        Source::PEOPLELOGIC,
        "peoplelogic",
        KEY_RESULT,
        Some(b"{}"),
    )
    .await;
    assert_eq!(status, 401);
    let (lines, _) = listed(data, &[], 3).await;
    let bodies: Vec<(&str, &str, bool)> = lines
        .iter()
        .map(|l| {
            (
                l["endpoint"].as_str().unwrap(),
                l["outcome"].as_str().unwrap(),
                l.get("body").is_some(),
            )
        })
        .collect();
    assert_eq!(
        bodies,
        [
            ("peoplelogic", "refused", false),
            ("peopleforce", "accepted", false),
            ("peopleforce", "refused", true)
        ]
    );
    // The body as it came (the hire, with its personal data: kept a day only).
    assert_eq!(lines[2]["body"].as_str().unwrap().as_bytes(), HIRE);
    let api: Value = client()
        .get(format!(
            "{}/api/deliveries?outcome=refused&endpoint=peopleforce",
            server.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["items"][0]["body"].as_str().unwrap().as_bytes(), HIRE);

    // Stopped: serve sees it within a second; a refusal after that keeps no body.
    let off = capture(&["peopleforce", "--stop"]);
    assert!(off.starts_with("peopleforce: no longer capturing"), "{off}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    common::tampered_hire(&server.base, &secrets).await;
    let (lines, _) = listed(
        data,
        &["--outcome", "refused", "--endpoint", "peopleforce"],
        2,
    )
    .await;
    assert_eq!(lines.len(), 2);
    assert!(lines[0].get("body").is_none(), "{}", lines[0]);
    assert!(lines[1].get("body").is_some(), "kept until its day is over");
}

/// A writer the ingest function's log lines go to, as Lambda's JSON log format has
/// them.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines the ingest function writes for the sample PeopleForce hire, then for
/// the same request tampered with: as its `main` wires it (`LogDeliveries`, steps as log
/// lines), with the subscriber the functions use (JSON, no target).
async fn ingest_log_lines() -> (String, Vec<String>) {
    use okr_consumers::deliveries::LogDeliveries;
    use okr_consumers::ingest::{Ingest, apigw};
    use okr_pipeline::metrics::NoMetrics;
    use okr_pipeline::queue::memory::MemoryQueue;
    use okr_pipeline::secrets::SecretCache;
    use okr_pipeline::secrets::memory::MemorySecretStore;

    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let secrets = std::fs::read_to_string(format!(
        "{}/../events/secrets.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let secrets = okr_core::signing::SigningSecrets::parse(&secrets).unwrap();
    let ingest = Ingest::new(
        SecretCache::new(
            std::sync::Arc::new(MemorySecretStore::new(secrets)),
            std::time::Duration::from_secs(300),
        ),
        std::sync::Arc::new(MemoryQueue::default()),
        okr_core::routing::NotifyRules::default(),
        256 * 1024,
        std::sync::Arc::new(NoMetrics),
    )
    .with_deliveries(std::sync::Arc::new(LogDeliveries));
    let sample = std::fs::read_to_string(format!(
        "{}/../events/ingest/peopleforce.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let request: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
        serde_json::from_str(&sample).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let accepted = apigw::handle(&ingest, request.clone(), now).await;
    assert_eq!(accepted.status_code, 202);
    let mut tampered = request;
    tampered.body = tampered.body.map(|b| b.replace("John", "Jane"));
    let refused = apigw::handle(&ingest, tampered, now).await;
    assert_eq!(refused.status_code, 401);
    let Some(aws_lambda_events::encodings::Body::Text(answer)) = accepted.body else {
        panic!("no answer")
    };
    let event_id = serde_json::from_str::<Value>(&answer).unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    (event_id, text.lines().map(str::to_owned).collect())
}

#[tokio::test]
async fn deliveries_of_a_stack_are_read_from_its_log_lines_with_logs_insights() {
    use okr_webhooks_tests::{Moto, unique};

    let (event_id, lines) = ingest_log_lines().await;
    // Nothing of the body reaches the log.
    let all = lines.join("\n");
    for private in ["1978-08-31", "johnny.d.private", "+44", "John Doe"] {
        assert!(!all.contains(private), "{private} in {all}");
    }
    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws);
    let group = unique("/aws/lambda/okr-webhooks-ingest");
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap();
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name("2026/12/06/[$LATEST]0")
        .send()
        .await
        .unwrap();
    let at = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let events = lines.iter().enumerate().map(|(n, line)| {
        aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
            .timestamp(at + n as i64)
            .message(line)
            .build()
            .unwrap()
    });
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name("2026/12/06/[$LATEST]0")
        .set_log_events(Some(events.collect()))
        .send()
        .await
        .unwrap();
    let stack = common::stack_with_outputs(&aws, &[("DeliveryLogGroups", &group)]).await;
    let on_stack = |args: &[&str]| {
        let output = Command::new(BIN)
            .args(["deliveries", "--stack", &stack])
            .args(args)
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        let (ok, text) = common::outcome(&output);
        assert!(ok, "{text}");
        String::from_utf8(output.stdout).unwrap()
    };
    let json = on_stack(&["--json"]);
    let found: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(found.len(), 2, "{json}");
    assert_eq!(
        (
            &found[0]["outcome"],
            &found[0]["reason"],
            &found[0]["event_id"]
        ),
        (&"refused".into(), &"wrong_signature".into(), &Value::Null),
        "newest first"
    );
    assert_eq!(found[1]["outcome"], "accepted");
    assert_eq!(found[1]["event_id"], event_id.as_str());
    assert_eq!(found[1]["type"], "employee.created");
    assert_eq!(found[1]["endpoint"], "peopleforce");
    assert!(
        found[1]["headers"]
            .to_string()
            .contains(r#"["x-peopleforce-signature","sha256=1… (71 characters)"]"#),
        "{}",
        found[1]["headers"]
    );
    // The filters hold whatever the query engine did with them.
    let refused = on_stack(&["--outcome", "refused"]);
    assert_eq!(refused.lines().count(), 1, "{refused}");
    assert!(refused.contains("\tpeopleforce\tPOST 401\trefused (wrong_signature)"));
    // An event's delivery and its journey.
    let journey = on_stack(&["--event", &event_id]);
    let journey: Vec<&str> = journey.lines().collect();
    assert_eq!(journey.len(), 3, "{journey:?}");
    assert!(journey[0].contains("\tPOST 202\taccepted\t"));
    assert_eq!(journey[1], "journey:");
    assert!(
        journey[2].contains("\tingest\tenqueued (attempt 1)\tto warehouse, slack, progress"),
        "{}",
        journey[2]
    );
    // A stack without the output (deployed before it): a one-line error.
    let old = common::stack_with_outputs(&aws, &[]).await;
    let output = Command::new(BIN)
        .args(["deliveries", "--stack", &old])
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let (ok, text) = common::outcome(&output);
    assert!(!ok);
    assert!(text.contains("has no DeliveryLogGroups output"), "{text}");
}

//! Subscriptions through `serve`: receivers verify every post with the official Standard
//! Webhooks libraries (Python's, as a receiving team runs it, and Rust's); the filters,
//! Basic and bearer authentication, rotation and the cut-down payload hold; a receiver
//! down for a simulated day gets every event once afterwards with nothing dead-lettered;
//! a refusal dead-letters; a 410 switches the subscription off until it is enabled.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, Killed, accepted, eventually, free_port, secrets, serve_on};
use okr_core::Source;
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn sample(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(REPO).join("events/bodies").join(path)).unwrap()
}

/// `okr-webhooks subscriptions ARGS` over `data_dir`: its output, or a panic with it.
fn subscriptions(data_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .arg("subscriptions")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "subscriptions {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `subscriptions add NAME ARGS`: the secret it prints.
fn add(data_dir: &Path, name: &str, args: &[&str]) -> String {
    let out = subscriptions(data_dir, &[&["add", name][..], args].concat());
    let secret = out.lines().last().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{out}");
    secret
}

/// The Python receiver of tests/subscription_receiver.py on `port`, its printed lines
/// collected.
struct Receiver {
    _child: Killed,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start(port: u16, args: &[&str]) -> Receiver {
        let mut child = Command::new("python3")
            .arg(Path::new(REPO).join("tests/subscription_receiver.py"))
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        let receiver = Receiver {
            _child: Killed(child),
            lines,
        };
        eventually("the receiver to listen", async || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        receiver
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Each request `server` received, its body verified by the Rust `standardwebhooks`
/// crate with `secret` (the docs' Rust sample): the event.
async fn verified(server: &MockServer, secret: &str) -> Vec<Value> {
    let webhook = standardwebhooks::Webhook::new(secret).unwrap();
    let mut events = Vec::new();
    for request in server.received_requests().await.unwrap_or_default() {
        webhook
            .verify(&request.body, &request.headers)
            .unwrap_or_else(|e| panic!("{e:?}: {:?}", request.headers));
        events.push(serde_json::from_slice(&request.body).unwrap());
    }
    events
}

async fn answering(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status).set_body_string("{}"))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn receivers_verify_every_post_with_the_official_libraries_and_take_what_they_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let server = serve_on("127.0.0.1", data, &["--retry-base-ms", "50"]).await;
    let secrets = secrets(data);
    // serve has read the (missing) document; the subscriptions come after.
    accepted(
        &server.base,
        &secrets,
        Source::PEOPLELOGIC,
        &sample("peoplelogic/key_result_progress_plain.json"),
    )
    .await;

    let port = free_port();
    let okrs = add(
        data,
        "okrs",
        &[
            "--url",
            &format!("http://127.0.0.1:{port}/okr-events"),
            "--types",
            "key_result.*,objective.completed",
            "--basic",
            "okr:s3cret",
        ],
    );
    let receiver = Receiver::start(port, &["--secret", &okrs, "--basic", "okr:s3cret"]).await;
    let people = answering(200).await;
    let people_secret = add(
        data,
        "people",
        &[
            "--url",
            &format!("{}/hr", people.uri()),
            "--endpoints",
            "peopleforce",
            "--bearer",
            "t0ken",
            "--full-event",
        ],
    );
    let bi = answering(204).await;
    let bi_secret = add(
        data,
        "bi",
        &["--url", &format!("{}/bi", bi.uri()), "--kinds", "employee"],
    );
    let listed = subscriptions(data, &["list"]);
    assert!(listed.contains("okrs  http://127.0.0.1:"), "{listed}");
    assert!(
        listed
            .contains("types=key_result.*,objective.completed endpoints=all kinds=all auth=basic"),
        "{listed}"
    );
    assert!(
        listed.contains("endpoints=peopleforce kinds=all auth=bearer full-event"),
        "{listed}"
    );
    assert!(
        !listed.contains("s3cret") && !listed.contains("t0ken") && !listed.contains("whsec_"),
        "{listed}"
    );
    // serve reads the documents again within 5 s, without a restart.
    tokio::time::sleep(Duration::from_millis(5500)).await;

    let progress = accepted(
        &server.base,
        &secrets,
        Source::PEOPLELOGIC,
        &sample("peoplelogic/key_result_progress.json"),
    )
    .await;
    let completed = accepted(
        &server.base,
        &secrets,
        Source::PEOPLELOGIC,
        &sample("peoplelogic/objective_completed.json"),
    )
    .await;
    let hire = accepted(
        &server.base,
        &secrets,
        Source::PEOPLEFORCE,
        &sample("peopleforce/employee_create.json"),
    )
    .await;
    let id = |answer: &Value| answer["event_id"].as_str().unwrap().to_owned();

    eventually("the OKR receiver's two events", async || {
        receiver.lines().len() >= 2
    })
    .await;
    eventually("the people receiver's event", async || {
        verified(&people, &people_secret).await.len() == 1
    })
    .await;
    eventually("the BI receiver's event", async || {
        verified(&bi, &bi_secret).await.len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // Python's standardwebhooks verified both, and Basic; each once.
    let mut lines = receiver.lines();
    lines.sort();
    let mut expected = vec![
        format!(
            "verified {} key_result.progress_updated key_result",
            id(&progress)
        ),
        format!("verified {} objective.completed objective", id(&completed)),
    ];
    expected.sort();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, start) in lines.iter().zip(&expected) {
        assert!(line.starts_with(start.as_str()), "{line} / {start}");
    }

    // The people subscription: the hire only, whole, with the bearer token.
    let events = verified(&people, &people_secret).await;
    assert_eq!(events.len(), 1, "the hire only, once");
    assert_eq!(events[0]["id"], id(&hire).as_str());
    let request = &people.received_requests().await.unwrap()[0];
    assert_eq!(request.headers["authorization"], "Bearer t0ken");
    assert_eq!(request.headers["webhook-id"], id(&hire).as_str());
    let whole = String::from_utf8_lossy(&request.body);
    assert!(whole.contains("\"person\""), "the whole event: {whole}");

    // The BI subscription: the hire, cut down as the Slack queue gets it.
    let events = verified(&bi, &bi_secret).await;
    assert_eq!(events.len(), 1, "the hire only, once");
    assert_eq!(events[0]["type"], "employee.created");
    let request = &bi.received_requests().await.unwrap()[0];
    assert!(request.headers.get("authorization").is_none());
    let cut = String::from_utf8_lossy(&request.body);
    let hire_body = String::from_utf8(sample("peopleforce/employee_create.json")).unwrap();
    let seed: Value = serde_json::from_str(&hire_body).unwrap();
    for personal in ["date_of_birth", "personal_email"] {
        let value = find(&seed, personal).unwrap_or_else(|| panic!("the seed has {personal}"));
        assert!(
            !cut.contains(&value),
            "{personal} reached the BI subscription: {cut}"
        );
        assert!(whole.contains(&value), "the full event keeps {personal}");
    }

    // The event's journey names the subscriptions it went to.
    let journey: Value = reqwest::get(format!("{}/api/events/{}", server.base, id(&hire)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let steps = journey["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s["consumer"] == "subscriptions"
            && s["outcome"] == "sent"
            && s["detail"] == "to bi, people"),
        "{journey}"
    );
}

/// The first string value under `key` anywhere in `value`.
fn find(value: &Value, key: &str) -> Option<String> {
    match value {
        Value::Object(map) => map.iter().find_map(|(k, v)| match (k == key, v) {
            (true, Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => find(v, key),
        }),
        Value::Array(items) => items.iter().find_map(|v| find(v, key)),
        _ => None,
    }
}

#[tokio::test]
async fn a_receiver_down_for_a_simulated_day_gets_every_event_once_and_nothing_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let port = free_port();
    let secret = add(
        data,
        "okrs",
        &["--url", &format!("http://127.0.0.1:{port}/okr-events")],
    );
    // The retries wait 30 s doubling to 2 h; at --retry-base-ms 10 this runs 3,000 times
    // faster, so 29 s here is a day, and the schedule gives up after 41 s.
    let server = serve_on("127.0.0.1", data, &["--retry-base-ms", "10"]).await;
    let secrets = secrets(data);
    let mut ids = Vec::new();
    for body in [
        "peoplelogic/key_result_progress.json",
        "peoplelogic/objective_completed.json",
        "peopleforce/employee_create.json",
    ] {
        let source = if body.starts_with("peopleforce") {
            Source::PEOPLEFORCE
        } else {
            Source::PEOPLELOGIC
        };
        let answer = accepted(&server.base, &secrets, source, &sample(body)).await;
        ids.push(answer["event_id"].as_str().unwrap().to_owned());
    }
    // Nothing listens on the receiver's port for the day.
    tokio::time::sleep(Duration::from_secs(29)).await;
    let dead = subscriptions_dlq(data);
    assert_eq!(dead, "subscriptions: 0 dead letter(s)\n");

    let receiver = Receiver::start(port, &["--secret", &secret]).await;
    eventually("every event after the outage", async || {
        receiver.lines().len() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lines = receiver.lines();
    assert_eq!(lines.len(), 3, "each once: {lines:?}");
    for id in &ids {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with(&format!("verified {id} ")))
                .count(),
            1,
            "{lines:?}"
        );
    }
    assert_eq!(subscriptions_dlq(data), "subscriptions: 0 dead letter(s)\n");
    assert!(subscriptions(data, &["list"]).contains("  on  "));
}

fn subscriptions_dlq(data_dir: &Path) -> String {
    let output = Command::new(BIN)
        .args(["dlq", "list", "--queue", "subscriptions", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn a_refusal_dead_letters_and_a_410_switches_the_subscription_off_until_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let refusing = answering(400).await;
    add(
        data,
        "strict",
        &["--url", &format!("{}/in", refusing.uri())],
    );
    let gone = answering(410).await;
    let gone_secret = add(data, "gone", &["--url", &format!("{}/in", gone.uri())]);
    let server = serve_on("127.0.0.1", data, &["--retry-base-ms", "10"]).await;
    let secrets = secrets(data);
    let first = accepted(
        &server.base,
        &secrets,
        Source::PEOPLELOGIC,
        &sample("peoplelogic/objective_completed.json"),
    )
    .await;

    // 400: refused on every receive, in the dead-letter queue in moments.
    eventually("the refused event in the dead-letter queue", async || {
        subscriptions_dlq(data).starts_with("subscriptions: 1 dead letter(s)\n")
    })
    .await;
    // 410: asked once, then switched off.
    assert_eq!(gone.received_requests().await.unwrap().len(), 1);
    let listed = subscriptions(data, &["list"]);
    assert!(
        listed.contains("off (its receiver answered 410 Gone)"),
        "{listed}"
    );
    let journey: Value = reqwest::get(format!(
        "{}/api/events/{}",
        server.base,
        first["event_id"].as_str().unwrap()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let text = journey.to_string();
    assert!(
        text.contains("gone is switched off: its receiver answered 410 Gone"),
        "{text}"
    );

    // Enabled again, its next event goes to it.
    gone.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&gone)
        .await;
    assert_eq!(subscriptions(data, &["enable", "gone"]), "gone: on\n");
    assert!(
        subscriptions(data, &["list"]).contains("gone  http"),
        "listed"
    );
    let second = accepted(
        &server.base,
        &secrets,
        Source::PEOPLELOGIC,
        &sample("peoplelogic/key_result_progress.json"),
    )
    .await;
    eventually("the event after enable", async || {
        verified(&gone, &gone_secret).await.len() == 1
    })
    .await;
    assert_eq!(
        verified(&gone, &gone_secret).await[0]["id"],
        second["event_id"]
    );

    // Switched off by hand, it gets nothing.
    assert_eq!(subscriptions(data, &["disable", "gone"]), "gone: off\n");
    tokio::time::sleep(Duration::from_millis(5500)).await;
    accepted(
        &server.base,
        &secrets,
        Source::PEOPLEFORCE,
        &sample("peopleforce/employee_create.json"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(verified(&gone, &gone_secret).await.len(), 1);
}

#[tokio::test]
async fn during_a_rotation_the_old_and_new_secrets_both_sign_and_test_sends_a_signed_sample() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let receiver = answering(200).await;
    let old = add(data, "okrs", &["--url", &format!("{}/in", receiver.uri())]);
    // The receiving team's new secret goes first; both sign until the old one is removed.
    let new = okr_core::subscriptions::new_secret([7; 32]);
    let path = data.join("subscription-secrets.json");
    let mut document: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    document["okrs"]["signing"] = serde_json::json!([new, old]);
    std::fs::write(&path, document.to_string()).unwrap();

    let out = subscriptions(data, &["test", "okrs"]);
    assert!(out.starts_with("sent test_"), "{out}");
    assert!(out.contains("(objective.completed): 200 OK"), "{out}");
    assert_eq!(verified(&receiver, &old).await.len(), 1);
    assert_eq!(verified(&receiver, &new).await.len(), 1);
    let request = &receiver.received_requests().await.unwrap()[0];
    let signatures = request.headers["webhook-signature"].to_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");

    // A receiver that refuses: `test` says so and exits 1.
    let refusing = answering(401).await;
    let output = Command::new(BIN)
        .args([
            "subscriptions",
            "add",
            "closed",
            "--url",
            &format!("{}/in", refusing.uri()),
            "--data-dir",
        ])
        .arg(data)
        .output()
        .unwrap();
    assert!(output.status.success());
    let output = Command::new(BIN)
        .args(["subscriptions", "test", "closed", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains(": 401 Unauthorized"));
}

#[test]
fn bad_subscriptions_are_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |args: &[&str]| {
        let output = Command::new(BIN)
            .args(["subscriptions", "add"])
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let error = refused(&["hr", "--url", "http://hr.example.com/in"]);
    assert!(
        error.contains("subscription \"hr\": url: must be an https:// URL"),
        "{error}"
    );
    let error = refused(&["hr", "--url", "https://okr:pw@hr.example.com/in"]);
    assert!(
        error.contains("without a user or password in it") && !error.contains("pw@"),
        "{error}"
    );
    let error = refused(&["HR", "--url", "https://hr.example.com/in"]);
    assert!(error.contains("subscription \"HR\": name:"), "{error}");
    let error = refused(&["hr", "--url", "https://hr.example.com/in", "--rate", "0/s"]);
    assert!(error.contains("--rate 0/s"), "{error}");
    let error = refused(&[
        "hr",
        "--url",
        "https://hr.example.com/in",
        "--basic",
        "nopassword",
    ]);
    assert!(error.contains("--basic: expected USER:PASSWORD"), "{error}");
    subscriptions(
        dir.path(),
        &["add", "hr", "--url", "https://hr.example.com/in"],
    );
    let error = refused(&["hr", "--url", "https://hr.example.com/other"]);
    assert!(error.contains("already a subscription named hr"), "{error}");
    // The refused ones left no secret behind.
    let kept: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("subscription-secrets.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(kept.as_object().unwrap().keys().collect::<Vec<_>>(), ["hr"]);
}

#[tokio::test]
async fn a_replay_to_one_subscription_sends_what_it_missed_while_off_and_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let receiver = answering(410).await;
    let secret = add(data, "okrs", &["--url", &format!("{}/in", receiver.uri())]);
    let other = answering(200).await;
    let other_secret = add(data, "other", &["--url", &format!("{}/in", other.uri())]);
    let server = serve_on("127.0.0.1", data, &["--retry-base-ms", "10"]).await;
    let secrets = secrets(data);
    let first = accepted(
        &server.base,
        &secrets,
        Source::PEOPLELOGIC,
        &sample("peoplelogic/key_result_progress.json"),
    )
    .await;
    eventually("okrs switched off", async || {
        subscriptions(data, &["list"]).contains("okrs  http")
            && subscriptions(data, &["list"]).contains("off (its receiver answered 410 Gone)")
    })
    .await;
    let second = accepted(
        &server.base,
        &secrets,
        Source::PEOPLELOGIC,
        &sample("peoplelogic/objective_completed.json"),
    )
    .await;
    eventually("the other subscription's two events", async || {
        verified(&other, &other_secret).await.len() == 2
    })
    .await;

    // Back, and switched on: a replay of today to it alone sends the two it missed.
    receiver.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    assert_eq!(subscriptions(data, &["enable", "okrs"]), "okrs: on\n");
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let replay = |name: &str| {
        let output = Command::new(BIN)
            .args([
                "replay",
                "--to",
                "subscription:okrs",
                "--since",
                &today,
                "--name",
                name,
                "--data-dir",
            ])
            .arg(data)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    replay("fill");
    eventually("the two missed events", async || {
        verified(&receiver, &secret).await.len() >= 2
    })
    .await;
    // Once more (a gap-filling replay of another name): nothing is sent twice, and the
    // other subscription gets nothing from either.
    replay("fill-again");
    // Once the subscriptions' consumer has taken both copies of the second replay.
    for event in [&first, &second] {
        let url = format!(
            "{}/api/events/{}",
            server.base,
            event["event_id"].as_str().unwrap()
        );
        eventually("the second replay's copies taken", async || {
            let journey: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
            journey["steps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|step| step["consumer"] == "subscriptions" && step["replay"] == "fill-again")
        })
        .await;
    }
    let mut ids: Vec<String> = verified(&receiver, &secret)
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut expected = vec![
        first["event_id"].as_str().unwrap().to_owned(),
        second["event_id"].as_str().unwrap().to_owned(),
    ];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(verified(&other, &other_secret).await.len(), 2);
}

#[tokio::test]
async fn enable_on_a_stack_forgets_a_subscriptions_switching_off_in_its_table() {
    use okr_aws::dynamodb::DynamoDbIdempotencyStore;
    use okr_consumers::subscriptions::{health, health_key};

    let moto = okr_webhooks_tests::Moto::start();
    let aws = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let table = okr_webhooks_tests::idempotency_table(&dynamodb).await;
    let stack = common::stack_with_outputs(&aws, &[("IdempotencyTableName", &table)]).await;
    // What the sender writes when a receiver answers 410.
    let store = DynamoDbIdempotencyStore::new(dynamodb.clone(), &table);
    okr_pipeline::idempotency::update_state(
        &store,
        (&health_key("hr"), Duration::from_secs(3600)),
        |_| Some(r#"{"disabled":{"at":1,"why":"its receiver answered 410 Gone"}}"#.to_owned()),
        "contended",
    )
    .await
    .unwrap();
    assert!(health(&store, "hr").await.unwrap().disabled.is_some());

    let enable = || {
        Command::new(BIN)
            .args(["subscriptions", "enable", "hr", "--stack", &stack])
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    };
    let output = enable();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("hr: on (it was off: its receiver answered 410 Gone)\n"),
        "{stdout}"
    );
    assert_eq!(health(&store, "hr").await.unwrap(), Default::default());
    let again = enable();
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .starts_with("hr: not switched off by its failures\n")
    );
}

//! `okr-webhooks serve` end to end, as a user runs it: signed samples reach the
//! warehouse, Slack and the alerts; bad deliveries leave no trace; a `kill -9` loses no
//! acknowledged event and posts nothing twice; a failing destination fills the
//! dead-letter queue and `dlq redrive` delivers once it recovers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use okr_core::{Source, sign};
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

mod common;

use std::io::Read;

use common::{BIN, deliver, eventually, free_port, secrets, warehouse};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Under strace, `serve` is strace's child: both go.
        okr_webhooks_tests::kill_tree(&mut self.child);
    }
}

struct StandIns {
    slack: MockServer,
    alerts: MockServer,
    pagerduty: MockServer,
}

async fn stand_ins(slack_status: u16) -> StandIns {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(slack_status).set_body_string("ok"))
        .mount(&slack)
        .await;
    let alerts = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&alerts)
        .await;
    let pagerduty = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&pagerduty)
        .await;
    StandIns {
        slack,
        alerts,
        pagerduty,
    }
}

/// `okr-webhooks serve` on `port` over `data_dir` (through `program` first, if given:
/// strace), its output discarded unless the caller pipes it.
fn serve_command(program: Option<&[&str]>, port: u16, data_dir: &Path) -> Command {
    let mut command = match program {
        Some([program, args @ ..]) => {
            let mut command = Command::new(program);
            command.args(args).arg(BIN);
            command
        }
        _ => Command::new(BIN),
    };
    command
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

async fn start(data_dir: &Path, stand_ins: &StandIns) -> Server {
    start_with(data_dir, stand_ins, |_| {}).await
}

/// [`start`], with `configure` adding to the command (its environment) first.
async fn start_with(
    data_dir: &Path,
    stand_ins: &StandIns,
    configure: impl FnOnce(&mut Command),
) -> Server {
    let port = free_port();
    let mut command = serve_command(None, port, data_dir);
    configure(&mut command);
    let child = command
        .args(["--retry-base-ms", "50"])
        .args([
            "--slack-webhook-url",
            &format!("{}/slack", stand_ins.slack.uri()),
        ])
        .args([
            "--alerts-slack-webhook-url",
            &format!("{}/alerts", stand_ins.alerts.uri()),
        ])
        .args([
            "--pagerduty-routing-key",
            "R0UT1NGKEY0000000000000000000000",
        ])
        .args([
            "--pagerduty-events-url",
            &format!("{}/v2/enqueue", stand_ins.pagerduty.uri()),
        ])
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(format!("{}/healthz", server.base)).await
            && response.status() == 200
        {
            return server;
        }
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sample(path: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../events/bodies")
            .join(path),
    )
    .unwrap()
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn signed_samples_reach_every_destination_and_bad_deliveries_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let stand_ins = stand_ins(200).await;
    let server = start(dir.path(), &stand_ins).await;
    let secrets = secrets(dir.path());

    let mut accepted = Vec::new();
    for (source, path) in [
        (Source::PEOPLELOGIC, "peoplelogic/objective_completed.json"),
        (Source::PEOPLELOGIC, "peoplelogic/key_result_progress.json"),
        (Source::PEOPLEFORCE, "peopleforce/employee_create.json"),
        (Source::PERSCOM, "perscom/awardrecord_created.json"),
        (Source::STANDARD, "standard/key_result_progress.json"),
    ] {
        let (status, answer) = deliver(
            &server.base,
            &secrets,
            source,
            source.as_str(),
            &sample(path),
            None,
        )
        .await;
        assert_eq!(status, 202, "{path}: {answer}");
        accepted.push(answer["event_id"].as_str().unwrap().to_owned());
    }
    // Tampered, not JSON, unknown source, wrong method: their 4xx, and nothing queued.
    let body = sample("perscom/user_created.json");
    let (status, _) = deliver(
        &server.base,
        &secrets,
        Source::PERSCOM,
        "perscom",
        &body,
        Some(b"{}"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        deliver(
            &server.base,
            &secrets,
            Source::PERSCOM,
            "perscom",
            b"not json",
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(
        deliver(
            &server.base,
            &secrets,
            Source::PERSCOM,
            "workday",
            &body,
            None
        )
        .await
        .0,
        404
    );
    let get = reqwest::get(format!("{}/webhooks/perscom", server.base))
        .await
        .unwrap();
    assert_eq!(get.status(), 405);

    let dir_path = dir.path().to_owned();
    eventually("the warehouse", async || {
        warehouse(&dir_path).len() >= accepted.len()
    })
    .await;
    let mut stored: Vec<String> = warehouse(dir.path())
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    stored.sort();
    accepted.sort();
    assert_eq!(stored, accepted, "each accepted event once, nothing else");
    eventually("Slack", async || bodies(&stand_ins.slack).await.len() >= 5).await;
    let texts: Vec<String> = bodies(&stand_ins.slack)
        .await
        .iter()
        .map(|b| b["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        texts.contains(&"John Doe joined IT as Senior Developer".to_owned()),
        "{texts:?}"
    );
    assert!(
        texts.contains(&"Objective Launch the self-serve onboarding flow completed".to_owned()),
        "{texts:?}"
    );
    // A key result at risk: PagerDuty and the alerts channel hear of it.
    let (status, _) = deliver(
        &server.base,
        &secrets,
        Source::PEOPLELOGIC,
        "peoplelogic",
        &sample("peoplelogic/key_result_progress_plain.json"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    eventually("PagerDuty", async || {
        !bodies(&stand_ins.pagerduty).await.is_empty()
    })
    .await;
    let pagerduty = bodies(&stand_ins.pagerduty).await;
    assert_eq!(pagerduty[0]["event_action"], "trigger");
    assert_eq!(
        pagerduty[0]["dedup_key"],
        "peoplelogic:b3c2d1e0-1111-4a2b-8c3d-000000000042:at_risk"
    );
    eventually("the alerts channel", async || {
        !bodies(&stand_ins.alerts).await.is_empty()
    })
    .await;
    assert_eq!(
        bodies(&stand_ins.alerts).await[0]["text"],
        "KR Cut onboarding time to 10 minutes is at risk"
    );
}

#[tokio::test]
async fn peoplelogic_entity_bodies_reach_slack_and_a_drop_after_a_rise_pages() {
    let dir = tempfile::tempdir().unwrap();
    let stand_ins = stand_ins(200).await;
    let server = start(dir.path(), &stand_ins).await;
    let secrets = secrets(dir.path());
    let send = async |body: &str| {
        let (status, answer) = deliver(
            &server.base,
            &secrets,
            Source::PEOPLELOGIC,
            "peoplelogic",
            body.as_bytes(),
            None,
        )
        .await;
        assert_eq!(status, 202, "{answer}");
    };
    // The Peoplelogic document's delivery: the objective alone, no event name.
    send(r#"{"id":"o1","title":"Ship v2","status":{"previous":"ON_TRACK","current":"COMPLETED"}}"#)
        .await;
    // A key result half way through its quarter rises 30% -> 60%, then an hour later
    // falls to 0%. Sent as entities too.
    let key_result = |at: &str, previous: u32, current: u32| {
        format!(
            r#"{{"id":"kr-teams","parentId":"o1","title":"Weekly active teams","startingValue":0,"targetValue":100,"currentValue":{{"previous":{previous},"current":{current}}},"updatedAt":"{at}","startDate":"2025-04-01","dueDate":"2025-06-30"}}"#
        )
    };
    send(&key_result("2025-05-16T00:00:00Z", 30, 60)).await;
    send(&key_result("2025-05-16T01:00:00Z", 60, 0)).await;

    eventually("the completion in Slack", async || {
        bodies(&stand_ins.slack)
            .await
            .iter()
            .any(|b| b["text"] == "Objective Ship v2 completed")
    })
    .await;
    let triggered = async || {
        let mut keys: Vec<String> = bodies(&stand_ins.pagerduty)
            .await
            .iter()
            .filter(|b| b["event_action"] == "trigger")
            .map(|b| b["dedup_key"].as_str().unwrap().to_owned())
            .collect();
        keys.sort();
        keys
    };
    eventually("the pages", async || triggered().await.len() >= 3).await;
    assert_eq!(
        triggered().await,
        [
            "peoplelogic:kr-teams:behind_pace",
            "peoplelogic:kr-teams:dropped",
            "peoplelogic:kr-teams:low",
        ]
    );
    // Nothing was open when the objective completed or the key result rose: no resolve.
    assert!(
        bodies(&stand_ins.pagerduty)
            .await
            .iter()
            .all(|b| b["event_action"] == "trigger"),
        "{:?}",
        bodies(&stand_ins.pagerduty).await
    );
    let alerts: Vec<String> = bodies(&stand_ins.alerts)
        .await
        .iter()
        .map(|b| b["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        alerts.contains(
            &"KR Weekly active teams is behind pace: 0% done with 50% of the period gone"
                .to_owned()
        ),
        "{alerts:?}"
    );
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_event_and_posts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let stand_ins = stand_ins(200).await;
    let server = start(dir.path(), &stand_ins).await;
    let secrets = secrets(dir.path());

    // A burst of 300 distinct hires; the server dies in the middle of it, once 50 of
    // them have been acknowledged.
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let acknowledged_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..300)
        .map(|n| {
            let (base, secrets, client, counter) = (base.clone(), secrets.clone(), client.clone(), acknowledged_so_far.clone());
            tokio::spawn(async move {
                let body = format!(r#"{{"action":"employee_create","data":{{"id":{n},"attributes":{{"first_name":"E{n}","last_name":"Burst"}}}}}}"#);
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let mut request = client.post(format!("{base}/webhooks/peopleforce")).body(body.clone());
                for (name, value) in sign(okr_core::providers::provider(Source::PEOPLEFORCE).unwrap(), &secrets.for_endpoint(Source::PEOPLEFORCE)[0], body.as_bytes(), "", now).unwrap() {
                    request = request.header(name, value);
                }
                match request.send().await {
                    Ok(response) if response.status() == 202 => {
                        let answer: Value = response.json().await.unwrap_or(Value::Null);
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        answer["event_id"].as_str().map(|id| (n, id.to_owned()))
                    }
                    _ => None,
                }
            })
        })
        .collect();
    eventually("50 acknowledgements", async || {
        acknowledged_so_far.load(std::sync::atomic::Ordering::SeqCst) >= 50
    })
    .await;
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let mut acknowledged = Vec::new();
    for task in tasks {
        if let Some(ok) = task.await.unwrap() {
            acknowledged.push(ok);
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "some deliveries were acknowledged before the kill"
    );

    let _restarted = start(dir.path(), &stand_ins).await;
    let dir_path = dir.path().to_owned();
    let expected: Vec<String> = acknowledged.iter().map(|(_, id)| id.clone()).collect();
    eventually("every acknowledged event in the warehouse", async || {
        let stored: Vec<String> = warehouse(&dir_path)
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        expected.iter().all(|id| stored.contains(id))
    })
    .await;
    // Every acknowledged hire reaches Slack, but for the one post the kill may have cut
    // short (a digest of at most ten): it is presumed sent, so that none goes out twice.
    let names: Vec<String> = acknowledged
        .iter()
        .map(|(n, _)| format!("E{n} Burst joined"))
        .collect();
    eventually("the acknowledged hires in Slack", async || {
        let all = bodies(&stand_ins.slack)
            .await
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        names
            .iter()
            .filter(|name| all.contains(name.as_str()))
            .count()
            + 10
            >= names.len()
    })
    .await;
    // No hire reaches Slack twice.
    let all = bodies(&stand_ins.slack)
        .await
        .iter()
        .map(|b| b["blocks"].to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for n in 0..300 {
        let name = format!("E{n} Burst joined");
        assert!(
            all.matches(name.as_str()).count() <= 1,
            "{name} posted twice"
        );
    }
}

/// The PeopleForce hire, delivered to `server`: its event id.
async fn deliver_the_hire(server: &Server, data_dir: &Path) -> String {
    let (status, answer) = deliver(
        &server.base,
        &secrets(data_dir),
        Source::PEOPLEFORCE,
        "peopleforce",
        &sample("peopleforce/employee_create.json"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    answer["event_id"].as_str().unwrap().to_owned()
}

/// `GET /api/events/<event_id>`: the event's journey.
async fn journey(server: &Server, event_id: &str) -> Value {
    let response = reqwest::get(format!("{}/api/events/{event_id}", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The journey's steps of `consumer`: (outcome, attempt, detail), oldest first.
fn steps_of(journey: &Value, consumer: &str) -> Vec<(String, u64, String)> {
    journey["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["consumer"] == consumer)
        .map(|s| {
            (
                s["outcome"].as_str().unwrap().to_owned(),
                s["attempt"].as_u64().unwrap(),
                s["detail"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// `okr-webhooks dlq <action> --queue slack` on `data_dir`: its output.
fn slack_dlq(data_dir: &Path, action: &str) -> String {
    let output = Command::new(BIN)
        .args(["dlq", action, "--queue", "slack", "--data-dir"])
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

/// Slack's stand-in accepts from now on (a mock ahead of the failing one); returns how
/// many requests it had before.
async fn recover(slack: &MockServer) -> usize {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .with_priority(1)
        .mount(slack)
        .await;
    bodies(slack).await.len()
}

#[tokio::test]
async fn a_refusing_destination_fills_the_dead_letter_queue_in_moments_and_redrive_delivers() {
    let dir = tempfile::tempdir().unwrap();
    // 404 no_service: a refusal, retried every minute (here 100 ms) until the 25th receive.
    let stand_ins = stand_ins(404).await;
    let server = start(dir.path(), &stand_ins).await;
    let event_id = deliver_the_hire(&server, dir.path()).await;
    let dlq = |action: &str| slack_dlq(dir.path(), action);
    eventually("the dead-letter queue", async || {
        dlq("list").starts_with("slack: 1 dead letter(s)")
    })
    .await;
    assert!(
        dlq("list").contains("employee.created received 25 times"),
        "{}",
        dlq("list")
    );
    assert_eq!(
        bodies(&stand_ins.slack).await.len(),
        25,
        "every receive tried"
    );
    assert!(dlq("show").contains("\"type\":\"employee.created\""));
    // Its journey: enqueued on every queue; refused by Slack on each of its 25
    // receives, the last one to the dead-letter queue.
    let steps = journey(&server, &event_id).await;
    let ingest = steps_of(&steps, "ingest");
    assert_eq!(ingest.len(), 1, "{steps}");
    assert_eq!(ingest[0].0, "enqueued");
    assert!(ingest[0].2.contains("slack"), "{}", ingest[0].2);
    let slack = steps_of(&steps, "slack");
    assert_eq!(slack.len(), 25, "{slack:?}");
    for (n, (outcome, attempt, detail)) in slack.iter().enumerate() {
        assert_eq!(*attempt, n as u64 + 1, "{slack:?}");
        assert!(detail.starts_with("Slack refused it: 404"), "{detail}");
        let expected = if n < 24 { "refused" } else { "dead_lettered" };
        assert_eq!(outcome, expected, "{slack:?}");
    }
    assert!(
        slack[24]
            .2
            .ends_with("receive 25 of 25: to the dead-letter queue")
    );
    assert_eq!(steps["deliveries"][0]["outcome"], "accepted");

    // Slack is fixed; redrive delivers it.
    let before = recover(&stand_ins.slack).await;
    assert_eq!(
        dlq("redrive"),
        "slack: moved 1 message(s) back to the slack queue\n"
    );
    eventually("the redriven post", async || {
        bodies(&stand_ins.slack).await.len() == before + 1
    })
    .await;
    assert_eq!(
        bodies(&stand_ins.slack).await[before]["text"],
        "John Doe joined IT as Senior Developer"
    );
    assert_eq!(dlq("list"), "slack: 0 dead letter(s)\n");
    // Redriven, it starts again at attempt 1, and is posted.
    eventually("the posted step", async || {
        steps_of(&journey(&server, &event_id).await, "slack").len() == 26
    })
    .await;
    let slack = steps_of(&journey(&server, &event_id).await, "slack");
    assert_eq!(
        (slack[25].0.as_str(), slack[25].1, slack[25].2.as_str()),
        ("posted", 1, "one message")
    );
}

#[tokio::test]
async fn an_outage_of_a_simulated_hour_loses_nothing_to_the_dead_letter_queue() {
    let dir = tempfile::tempdir().unwrap();
    // 503: unavailable. The retries wait 30 s doubling to 2 h; this server runs that
    // schedule 600 times faster (50 ms first), so 6 s here is an hour.
    let stand_ins = stand_ins(503).await;
    let server = start(dir.path(), &stand_ins).await;
    deliver_the_hire(&server, dir.path()).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let tries = bodies(&stand_ins.slack).await.len();
    assert!((4..=9).contains(&tries), "tried {tries} times in the hour");
    assert_eq!(slack_dlq(dir.path(), "list"), "slack: 0 dead letter(s)\n");

    let before = recover(&stand_ins.slack).await;
    eventually("the post after the outage", async || {
        bodies(&stand_ins.slack).await.len() == before + 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        bodies(&stand_ins.slack).await.len(),
        before + 1,
        "posted once"
    );
    assert_eq!(slack_dlq(dir.path(), "list"), "slack: 0 dead letter(s)\n");
}

/// `GET /healthz`: its status code and body.
async fn health(server: &Server) -> (u16, Value) {
    let response = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The state of `destination`'s breaker in a `/healthz` body.
fn breaker_state<'h>(health: &'h Value, destination: &str) -> &'h str {
    health["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination"] == destination)
        .unwrap_or_else(|| panic!("no {destination} in {health}"))["state"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn through_an_outage_the_breaker_opens_healthz_says_so_and_every_event_is_posted_once() {
    let dir = tempfile::tempdir().unwrap();
    let stand_ins = stand_ins(503).await;
    let server = start(dir.path(), &stand_ins).await;
    let (status, body) = health(&server).await;
    assert_eq!((status, &body["status"]), (200, &"ok".into()), "{body}");
    assert_eq!(breaker_state(&body, "slack"), "closed");
    let samples = [
        (Source::PEOPLELOGIC, "peoplelogic/objective_completed.json"),
        (Source::PEOPLELOGIC, "peoplelogic/key_result_progress.json"),
        (
            Source::PEOPLELOGIC,
            "peoplelogic/key_result_progress_plain.json",
        ),
        (Source::PEOPLEFORCE, "peopleforce/employee_create.json"),
        (Source::PERSCOM, "perscom/awardrecord_created.json"),
    ];
    let mut event_ids = Vec::new();
    for (source, path) in samples {
        let body = sample(path);
        let route = source.as_str();
        let (status, answer) = deliver(
            &server.base,
            &secrets(dir.path()),
            source,
            route,
            &body,
            None,
        )
        .await;
        assert_eq!(status, 202, "{path}");
        event_ids.push(answer["event_id"].as_str().unwrap().to_owned());
        // One by one, so each is its own batch and its own failure.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A simulated hour (6 s at this server's pace).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, body) = health(&server).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &"degraded".into()),
        "{body}"
    );
    assert_ne!(breaker_state(&body, "slack"), "closed", "{body}");
    assert_eq!(body["queues"]["writable"], true);
    assert_eq!(slack_dlq(dir.path(), "list"), "slack: 0 dead letter(s)\n");

    let before = recover(&stand_ins.slack).await;
    eventually("every post after the outage", async || {
        posted_texts(&bodies(&stand_ins.slack).await[before..]).len() == samples.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = bodies(&stand_ins.slack).await;
    let texts = posted_texts(&after[before..]);
    assert_eq!(texts.len(), samples.len(), "{texts:?}");
    assert!(texts.values().all(|n| *n == 1), "each once: {texts:?}");
    assert_eq!(slack_dlq(dir.path(), "list"), "slack: 0 dead letter(s)\n");
    eventually("the breaker to close", async || {
        breaker_state(&health(&server).await.1, "slack") == "closed"
    })
    .await;
    assert_eq!(health(&server).await.1["status"], "ok");
    // Each event's journey: Slack's failures retried (and, for those that came while
    // the breaker was open, held), then posted once, the last step; the other consumers
    // were not held up.
    let mut held = 0;
    for event_id in &event_ids {
        let steps = journey(&server, event_id).await;
        let slack = steps_of(&steps, "slack");
        let outcomes: Vec<&str> = slack.iter().map(|(o, _, _)| o.as_str()).collect();
        assert_eq!(outcomes.last(), Some(&"posted"), "{slack:?}");
        assert_eq!(outcomes.iter().filter(|o| **o == "posted").count(), 1);
        held += outcomes.iter().filter(|o| **o == "held").count();
        assert!(
            slack.iter().all(|(o, _, d)| o != "held"
                || d.starts_with("Slack's circuit breaker is open; again in ")),
            "{slack:?}"
        );
        assert!(
            slack.iter().all(|(o, _, d)| o != "retry"
                    || d.starts_with("Slack is unavailable; again in ")
                    // The rest of a batch whose post found Slack down.
                    || d.starts_with("not posted in this invocation; again in ")),
            "{slack:?}"
        );
        let attempts: Vec<u64> = slack.iter().map(|(_, a, _)| *a).collect();
        assert!(
            attempts.windows(2).all(|w| w[1] == w[0] + 1),
            "{attempts:?}"
        );
        let warehouse = steps_of(&steps, "warehouse");
        assert_eq!(warehouse.len(), 1, "{steps}");
        assert_eq!(warehouse[0].0, "stored");
        assert!(
            warehouse[0].2.starts_with("events/v1/"),
            "{}",
            warehouse[0].2
        );
        let queued = steps_of(&steps, "ingest")[0].2.clone();
        let progress: Vec<String> = steps_of(&steps, "progress")
            .into_iter()
            .map(|s| s.0)
            .collect();
        let expected: &[&str] = if queued.contains("progress") {
            &["applied"]
        } else {
            &[]
        };
        assert_eq!(progress, expected, "{queued}");
    }
    assert!(held > 0, "no post was held back while the breaker was open");
}

/// How often each event's line appears in these posts (a message, or a digest's line).
fn posted_texts(posts: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let lines = [
        "Objective Launch the self-serve onboarding flow completed",
        "KR Reach 500 weekly active teams updated to 60% (from 30%) by Sam Okafor",
        "KR Cut onboarding time to 10 minutes updated to 50%",
        "John Doe joined IT as Senior Developer",
        "received the Meritorious Service Medal award",
    ];
    let mut seen = std::collections::BTreeMap::new();
    for post in posts {
        let blocks = post["blocks"].to_string();
        for line in lines {
            if blocks.contains(line) {
                *seen.entry(line.to_owned()).or_insert(0) += 1;
            }
        }
    }
    seen
}

#[tokio::test]
async fn healthz_is_503_while_the_queues_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let stand_ins = stand_ins(200).await;
    let server = start(dir.path(), &stand_ins).await;
    // Another process holds the queues' write lock.
    let other = rusqlite::Connection::open(dir.path().join("queues.sqlite")).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (status, body) = health(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["queues"]["writable"], false);
    assert!(
        body["queues"]["error"].as_str().unwrap().contains("locked"),
        "{body}"
    );
    other.execute_batch("ROLLBACK").unwrap();
    let (status, body) = health(&server).await;
    assert_eq!((status, &body["status"]), (200, &"ok".into()), "{body}");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let stand_ins = stand_ins(200).await;
    let first = start(dir.path(), &stand_ins).await;
    let mut second = serve_command(None, free_port(), dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("the second server kept running on the same data directory");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    let error = stderr.lines().last().unwrap();
    assert_eq!(
        error,
        format!(
            "error: the data directory {} is in use by another `okr-webhooks serve` (pid {}): stop it, or give this one its own --data-dir",
            dir.path().display(),
            first.child.id()
        )
    );
    // The first is undisturbed: a delivery is posted once.
    let (status, _) = deliver(
        &first.base,
        &secrets(dir.path()),
        Source::PEOPLEFORCE,
        "peopleforce",
        &sample("peopleforce/employee_create.json"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    eventually("the post", async || {
        !bodies(&stand_ins.slack).await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bodies(&stand_ins.slack).await.len(), 1);
    // Once the first has gone, however it went, the directory is free again.
    drop(first);
    let _restarted = start(dir.path(), &stand_ins).await;
}

#[tokio::test]
async fn a_warehouse_object_and_its_new_partition_are_synced_to_disk() {
    // `serve` under strace, which records every fsync with the path of its descriptor.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("fsync.trace");
    let data_dir = dir.path().join("data");
    let port = free_port();
    let trace_file = trace.to_str().unwrap();
    let strace = [
        "strace",
        "-f",
        "-y",
        "-qq",
        "-e",
        "trace=fsync,fdatasync",
        "-o",
        trace_file,
    ];
    let child = serve_command(Some(&strace), port, &data_dir)
        .spawn()
        .expect("strace (tests/run.sh installs it)");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    eventually("serve under strace", async || {
        reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let (status, _) = deliver(
        &server.base,
        &secrets(&data_dir),
        Source::PEOPLEFORCE,
        "peopleforce",
        &sample("peopleforce/employee_create.json"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let data = data_dir.clone();
    eventually("the warehouse object", async || {
        !warehouse(&data).is_empty()
    })
    .await;
    // Stop `serve` itself (strace, killed, would leave it running detached); strace
    // then writes out the trace and exits.
    let mut server = server;
    let strace = server.child.id();
    let serve = std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children")).unwrap();
    let serve = serve
        .split_whitespace()
        .next()
        .expect("serve runs under strace");
    assert!(
        Command::new("kill")
            .args(["-TERM", serve])
            .status()
            .unwrap()
            .success()
    );
    server.child.wait().unwrap();
    let trace = std::fs::read_to_string(&trace).unwrap();
    let synced: Vec<&str> = trace
        .lines()
        .filter(|line| line.contains("fsync(") || line.contains("fdatasync("))
        .filter_map(|line| line.split('<').nth(1)?.split('>').next())
        .collect();
    let root = data_dir.join("warehouse/events/v1");
    let partition = std::fs::read_dir(&root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for directory in [&partition, &root] {
        let directory = directory.canonicalize().unwrap();
        assert!(
            synced.contains(&directory.to_str().unwrap()),
            "{} was not synced: {synced:#?}",
            directory.display()
        );
    }
}

#[tokio::test]
async fn after_a_crash_serve_names_the_posts_it_presumes_sent() {
    use okr_local::sqlite_store::SqliteIdempotencyStore;
    use okr_pipeline::idempotency::{Claim, ClaimStore};
    // What a `kill -9` in the middle of a Slack post leaves: a claim marked sending.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteIdempotencyStore::open(&dir.path().join("idempotency.sqlite")).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let Claim::Proceed(token) = store
            .begin(
                "slack:evt_0123456789abcdef0123456789abcdef",
                now,
                Duration::from_secs(60),
            )
            .await
            .unwrap()
        else {
            panic!("a new store holds no claim")
        };
        store
            .sending(
                "slack:evt_0123456789abcdef0123456789abcdef",
                &token,
                now,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
    }
    let port = free_port();
    let mut child = serve_command(None, port, dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.starts_with("warehouse:")) {
        seen.push(
            received
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("serve said only {seen:#?}")),
        );
    }
    assert!(
        seen.contains(&"the last run stopped with 0 post(s) not started (they will be sent) and 1 in flight (presumed sent, so none goes out twice)".to_owned()),
        "{seen:#?}"
    );
    assert!(
        seen.contains(&"presumed sent: slack:evt_0123456789abcdef0123456789abcdef (check the channel; the event is in the warehouse)".to_owned()),
        "{seen:#?}"
    );
}

/// What `serve` answers a raw HTTP/1.1 request with these framing headers and body bytes.
fn raw_answer(base: &str, framing: &str, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /webhooks/perscom HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[tokio::test]
async fn a_body_that_cannot_be_read_is_a_400_and_an_oversized_one_a_413() {
    let dir = tempfile::tempdir().unwrap();
    let stand_ins = stand_ins(200).await;
    let server = start(dir.path(), &stand_ins).await;
    let base = server.base.clone();
    let (broken, oversized) = tokio::task::spawn_blocking(move || {
        // A chunk size that is not hexadecimal: the body breaks off mid-way.
        let broken = b"5\r\n{\"a\":\r\nzz\r\n";
        let broken = raw_answer(&base, "Transfer-Encoding: chunked", broken);
        let big = vec![b' '; 300 * 1024];
        let length = format!("Content-Length: {}", big.len());
        (broken, raw_answer(&base, &length, &big))
    })
    .await
    .unwrap();
    assert!(broken.starts_with("HTTP/1.1 400"), "{broken}");
    assert!(broken.contains(r#""error":"unreadable_body""#), "{broken}");
    assert!(oversized.starts_with("HTTP/1.1 413"), "{oversized}");
}

/// A destination URL that can never be called (plain http beyond loopback) stops
/// `serve` at start, naming the option and never the URL (a Slack webhook URL is a
/// credential).
#[tokio::test]
async fn a_destination_url_that_can_never_be_called_stops_serve_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (option, url) in [
        (
            "--slack-webhook-url",
            "http://hooks.example.com/services/T0/B0/s3cr3t",
        ),
        (
            "--alerts-slack-webhook-url",
            "http://hooks.example.com/services/T0/B0/s3cr3t",
        ),
        (
            "--pagerduty-events-url",
            "http://events.example.com/v2/enqueue",
        ),
    ] {
        let output = Command::new(BIN)
            .args(["serve", "--addr", &format!("127.0.0.1:{}", free_port())])
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "--pagerduty-routing-key",
                "R0UT1NGKEY0000000000000000000000",
            ])
            .args([option, url])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{option}: {stderr}");
        assert!(
            stderr.contains(option) && stderr.contains("must be an https:// URL"),
            "{stderr}"
        );
        assert!(!stderr.contains("example.com"), "{stderr}");
    }
}

#[tokio::test]
async fn a_delivery_through_serve_is_one_trace_from_the_sender_to_every_consumer_exported_by_otlp()
{
    use okr_webhooks_tests::otlp::OtlpReceiver;
    const SENDER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const SENDER_SPAN: &str = "b7ad6b7169203331";

    let dir = tempfile::tempdir().unwrap();
    let stand_ins = stand_ins(200).await;
    let receiver = OtlpReceiver::start().await;
    // As a user turns traces on: the collector's base URL. The batch processor keeps its
    // default schedule (5 s): what `serve` exports when it stops is its last flush.
    let mut server = start_with(dir.path(), &stand_ins, |command| {
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_SERVICE_NAME");
    })
    .await;

    // The seed's PeopleForce hire, from a sender that traces its webhooks.
    let body = sample("peopleforce/employee_create.json");
    let secrets = secrets(dir.path());
    let secret = &secrets.for_endpoint(Source::PEOPLEFORCE)[0];
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let provider = okr_core::providers::provider(Source::PEOPLEFORCE).unwrap();
    let mut request = reqwest::Client::new()
        .post(format!("{}/webhooks/peopleforce", server.base))
        .header("traceparent", format!("00-{SENDER_TRACE}-{SENDER_SPAN}-01"))
        .body(body.clone());
    for (name, value) in sign(provider, secret, &body, &format!("msg_{now}"), now).unwrap() {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    let event_id = answer["event_id"].as_str().unwrap().to_owned();

    // Every queue it went to has done its work.
    let mut queues: Vec<String> = Vec::new();
    eventually("every consumer's step", async || {
        let journey = journey(&server, &event_id).await;
        let enqueued = steps_of(&journey, "ingest");
        let Some((_, _, detail)) = enqueued.first() else {
            return false;
        };
        queues = detail
            .trim_start_matches("to ")
            .split(", ")
            .map(str::to_owned)
            .collect();
        queues
            .iter()
            .all(|queue| !steps_of(&journey, queue).is_empty())
    })
    .await;
    assert!(queues.len() >= 3, "{queues:?}");
    let journey = journey(&server, &event_id).await;
    // The delivery log names the trace, for the inspector's reader.
    assert_eq!(journey["deliveries"][0]["trace_id"], SENDER_TRACE);

    // Stop it as a user does: what is left of the spans leaves before it exits.
    assert!(
        Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let stopped = server.child.wait().unwrap();
    assert!(stopped.success(), "{stopped:?}");
    let spans = receiver.spans().await;

    let ingest: Vec<_> = spans.iter().filter(|s| s.kind == 2).collect();
    assert_eq!(ingest.len(), 1, "{spans:#?}");
    let ingest = ingest[0];
    assert_eq!(ingest.service, "okr-webhooks");
    assert_eq!(ingest.trace_id, SENDER_TRACE, "the sender's trace goes on");
    assert_eq!(ingest.parent_span_id, SENDER_SPAN);
    assert_eq!(ingest.attribute("okr.event_id"), event_id);
    assert_eq!(ingest.attribute("okr.endpoint"), "peopleforce");
    for queue in &queues {
        let theirs: Vec<_> = spans
            .iter()
            .filter(|s| s.name == format!("process {queue}"))
            .collect();
        assert_eq!(theirs.len(), 1, "{queue}: {spans:#?}");
        let span = theirs[0];
        assert_eq!(span.trace_id, SENDER_TRACE, "{queue}");
        assert_eq!(span.parent_span_id, ingest.span_id, "{queue}");
        assert_eq!(span.attribute("okr.event_id"), event_id);
        // The span says what the journey says.
        let (outcome, _, _) = steps_of(&journey, queue).pop().unwrap();
        assert_eq!(span.attribute("okr.outcome"), outcome, "{queue}");
    }
    assert_eq!(spans.len(), 1 + queues.len(), "{spans:#?}");
    // Nothing personal rides along: the hire's name and emails are in no span.
    let exported = format!("{spans:?}");
    for personal in ["john.doe", "John", "1978-08-31", "example.com"] {
        assert!(!exported.contains(personal), "{personal} in {exported}");
    }
}

#[tokio::test]
async fn a_refused_attempt_is_a_span_in_error_and_a_refused_delivery_is_not_ours() {
    use okr_webhooks_tests::otlp::OtlpReceiver;

    let dir = tempfile::tempdir().unwrap();
    // 404: Slack refuses every post; each attempt is a span.
    let stand_ins = stand_ins(404).await;
    let receiver = OtlpReceiver::start().await;
    let server = start_with(dir.path(), &stand_ins, |command| {
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
            .env("OTEL_BSP_SCHEDULE_DELAY", "200");
    })
    .await;
    let event_id = deliver_the_hire(&server, dir.path()).await;
    // The same body under a signature of other bytes: refused, the sender's error.
    let body = sample("peopleforce/employee_create.json");
    let (status, _) = deliver(
        &server.base,
        &secrets(dir.path()),
        Source::PEOPLEFORCE,
        "peopleforce",
        &body,
        Some(b"other bytes"),
    )
    .await;
    assert_eq!(status, 401);

    let mut spans = Vec::new();
    eventually("two refused attempts at Slack, exported", async || {
        spans = receiver.spans().await;
        spans.iter().filter(|s| s.name == "process slack").count() >= 2
    })
    .await;
    for span in spans.iter().filter(|s| s.name == "process slack") {
        assert_eq!(span.attribute("okr.event_id"), event_id);
        assert_eq!(span.attribute("okr.outcome"), "refused", "{span:#?}");
        assert!(
            span.attribute("okr.detail")
                .starts_with("Slack refused it: 404 ok; again in "),
            "{span:#?}"
        );
        assert_eq!(span.status.0, 2, "an error: {span:#?}");
        assert_eq!(
            span.status.1,
            format!("refused: {}", span.attribute("okr.detail"))
        );
    }
    let refused: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == 2 && s.attribute("okr.outcome") == "refused")
        .collect();
    assert_eq!(refused.len(), 1, "{spans:#?}");
    assert_eq!(refused[0].attribute("okr.detail"), "wrong_signature");
    assert_eq!(refused[0].attribute("http.response.status_code"), "401");
    assert_eq!(refused[0].status.0, 0, "not our error: {:#?}", refused[0]);
    assert_eq!(refused[0].attribute("okr.event_id"), "");
    // Exported, so the delivery log names its trace.
    let listed: Value = reqwest::get(format!("{}/api/deliveries?outcome=refused", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["trace_id"], refused[0].trace_id.as_str());
}

/// A `kill -9` between a batch's claims and its sends posts nothing twice and loses
/// nothing. Slack's stand-in holds every post of `Hang…` unanswered. The first `serve`
/// dies while it posts `Hang1`, with five more hires queued; the second claims those
/// five in one transaction and dies while it posts the first of them, its other claims
/// taken and not yet sent; the third sends what is left. Slack gets each hire once: the
/// two cut short are presumed sent (they reached Slack), the claimed-but-unsent ones go
/// out after the restart.
#[tokio::test]
async fn kill_9_between_a_batchs_claims_and_its_sends_posts_nothing_twice() {
    use wiremock::matchers::body_string_contains;
    let dir = tempfile::tempdir().unwrap();
    let stand_ins = stand_ins(200).await;
    stand_ins.slack.reset().await;
    Mock::given(body_string_contains("Hang"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3600)))
        .mount(&stand_ins.slack)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&stand_ins.slack)
        .await;
    let mut first = start(dir.path(), &stand_ins).await;
    let secrets = secrets(dir.path());
    let hire = |name: &str, n: u32| {
        format!(
            r#"{{"action":"employee_create","data":{{"id":{n},"attributes":{{"first_name":"{name}","last_name":"Batch"}}}}}}"#
        )
    };
    let send = async |base: &str, name: &str, n: u32| {
        let (status, _) = deliver(
            base,
            &secrets,
            Source::PEOPLEFORCE,
            "peopleforce",
            hire(name, n).as_bytes(),
            None,
        )
        .await;
        assert_eq!(status, 202, "{name}");
    };
    let posts_of = async |name: &str| {
        bodies(&stand_ins.slack)
            .await
            .iter()
            .filter(|b| b.to_string().contains(&format!("{name} Batch joined")))
            .count()
    };
    let names = ["Hang1", "Hang2", "Ok3", "Ok4", "Ok5", "Ok6"];

    send(&first.base, "Hang1", 1).await;
    eventually("Hang1 posted", async || posts_of("Hang1").await == 1).await;
    for (n, name) in names.iter().enumerate().skip(1) {
        send(&first.base, name, n as u32 + 1).await;
    }
    first.child.kill().unwrap(); // SIGKILL, mid-post
    first.child.wait().unwrap();

    let mut second = start(dir.path(), &stand_ins).await;
    eventually("Hang2 posted", async || posts_of("Hang2").await == 1).await;
    second.child.kill().unwrap(); // SIGKILL, between the batch's claims and its sends
    second.child.wait().unwrap();
    // The batch's other claims were taken before the first send, and are still open.
    let claims: Vec<String> = rusqlite::Connection::open(dir.path().join("idempotency.sqlite"))
        .unwrap()
        .prepare("SELECT status FROM idempotency WHERE key LIKE 'slack:%' ORDER BY status")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        claims.iter().filter(|s| *s == "IN_PROGRESS").count() >= 1
            && claims.iter().filter(|s| *s == "SENDING").count() == 1,
        "claims left by the kill: {claims:?}"
    );

    let _third = start(dir.path(), &stand_ins).await;
    eventually("every hire posted", async || {
        for name in names {
            if posts_of(name).await == 0 {
                return false;
            }
        }
        true
    })
    .await;
    // Time for a second post of any of them to arrive, then: once each.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in names {
        assert_eq!(posts_of(name).await, 1, "{name}");
    }
}

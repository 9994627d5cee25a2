//! Stalled key results to team leads, through `serve`, a real SMTP server and a
//! stand-in of Slack's Web API: the seed's hire (John Doe reporting to Ross Kate) and
//! Peoplelogic key results John updated more than 14 days ago; `stalled --send` emails
//! Ross once about each and messages him on Slack, and nobody else; again, nothing new;
//! John's next update resolves one (one resolve email); a terminated John's stalled key
//! result goes to the alerts channel instead.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, client, deliver, eventually, secrets, serve_on};
use okr_core::Source;
use okr_webhooks_tests::slack_web_api;
use okr_webhooks_tests::smtp::Smtp;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const HIRE: &[u8] = include_bytes!("../../events/bodies/peopleforce/employee_create.json");
const TERMINATE: &[u8] = include_bytes!("../../events/bodies/peopleforce/employee_terminate.json");

fn ago(days: i64) -> String {
    (OffsetDateTime::now_utc() - time::Duration::days(days))
        .format(&Rfc3339)
        .unwrap()
}

/// A Peoplelogic key result updated by John Doe `days` ago, inside its period.
fn key_result(id: &str, title: &str, days: i64, status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "eventType": "objective.patch", "id": id, "parentId": "o-1", "title": title,
        "startingValue": 0, "targetValue": 100, "currentValue": 40, "status": status,
        "updatedBy": {"id": "u-7", "name": "John Doe"}, "updatedAt": ago(days),
        "startDate": ago(40)[..10], "dueDate": (OffsetDateTime::now_utc() + time::Duration::days(60)).date().to_string(),
    }))
    .unwrap()
}

fn stalled(data: &Path, smtp: &str, slack: &str, mode: &str) -> (bool, String) {
    let output = Command::new(BIN)
        .args([
            "stalled",
            mode,
            "--smtp-url",
            smtp,
            "--slack-bot-token",
            "xoxb-test",
        ])
        .args(["--slack-api-url", slack, "--data-dir"])
        .arg(data)
        .env_remove("OKR_ALERTS_SLACK_WEBHOOK_URL")
        .env_remove("OKR_PAGERDUTY_ROUTING_KEY")
        .output()
        .unwrap();
    common::outcome(&output)
}

async fn key_results(base: &str) -> Value {
    client()
        .get(format!("{base}/api/progress?kind=key_result"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn stalled_key_results_reach_the_team_lead_once_and_resolve_on_the_next_update() {
    let smtp = Smtp::start(None);
    let slack = slack_web_api("ross.kate@example.com", "U0ROSS").await;
    let slack_api = format!("{}/api", slack.uri());

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let server = serve_on("127.0.0.1", data, &[]).await;
    let secrets = secrets(data);
    let send = async |source: Source, route: &str, body: &[u8]| {
        let (status, answer) = deliver(&server.base, &secrets, source, route, body, None).await;
        assert_eq!(status, 202, "{answer}");
    };
    send(Source::PEOPLEFORCE, "peopleforce", HIRE).await;
    let stale_a = key_result("kr-a", "Reach 500 weekly active teams", 20, "ON_TRACK");
    send(Source::PEOPLELOGIC, "peoplelogic", &stale_a).await;
    send(
        Source::PEOPLELOGIC,
        "peoplelogic",
        &key_result("kr-b", "Cut onboarding time", 16, "ON_TRACK"),
    )
    .await;
    // Neither stalled: updated 3 days ago; completed.
    send(
        Source::PEOPLELOGIC,
        "peoplelogic",
        &key_result("kr-c", "Fresh", 3, "ON_TRACK"),
    )
    .await;
    send(
        Source::PEOPLELOGIC,
        "peoplelogic",
        &key_result("kr-d", "Done long ago", 30, "COMPLETED"),
    )
    .await;
    eventually("four key results in the read model", async || {
        key_results(&server.base).await["total"] == 4
    })
    .await;
    eventually("John in the directory", async || {
        key_results(&server.base).await["items"][0]["team_lead"] == "Ross Kate"
    })
    .await;

    let (ok, plan) = stalled(data, &smtp.url, &slack_api, "--dry-run");
    assert!(ok, "{plan}");
    assert!(
        plan.starts_with("2 stalled key result(s) to report"),
        "{plan}"
    );
    for title in ["Reach 500 weekly active teams", "Cut onboarding time"] {
        assert!(
            plan.contains(&format!("open\t{title} (owner John Doe,")),
            "{title}: {plan}"
        );
    }
    assert!(
        plan.contains("-> Ross Kate <ross.kate@example.com> by email and Slack DM"),
        "{plan}"
    );
    assert!(smtp.received().is_empty(), "a dry run sends nothing");

    let (ok, sent) = stalled(data, &smtp.url, &slack_api, "--send");
    assert!(ok, "{sent}");
    assert!(
        sent.contains("stalled: 2 opened, 0 reminded, 0 resolved"),
        "{sent}"
    );
    let mails = smtp.wait_for(2, std::time::Duration::from_secs(10));
    assert_eq!(mails.len(), 2);
    let mut subjects = Vec::new();
    for mail in &mails {
        assert_eq!(mail.rcpt_tos(), ["ross.kate@example.com"]);
        subjects.push(mail.header("subject").unwrap());
        let text = mail.part("text/plain").unwrap();
        assert!(text.starts_with("Hi Ross Kate,"), "{text}");
        assert!(text.contains("John Doe (your team)"), "{text}");
        for private in [
            "1978-08-31",
            "johnny.d.private",
            "+380501234567",
            "john.doe@example.com",
        ] {
            assert!(!mail.raw().contains(private), "{private} in {}", mail.raw());
        }
    }
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "[Stalled key result] Cut onboarding time",
            "[Stalled key result] Reach 500 weekly active teams"
        ]
    );
    let requests = slack.received_requests().await.unwrap();
    let posts: Vec<Value> = requests
        .iter()
        .filter(|r| r.url.path() == "/api/chat.postMessage")
        .map(|r| {
            assert_eq!(r.headers["authorization"], "Bearer xoxb-test");
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect();
    assert_eq!(posts.len(), 2);
    assert!(posts.iter().all(|p| p["channel"] == "U0ROSS"));
    assert!(posts.iter().any(|p| {
        p["text"]
            .as_str()
            .unwrap()
            .contains("Reach 500 weekly active teams has had no update for 20 days")
    }));
    // The alerts channel (printed: none configured) has both too.
    assert_eq!(sent.matches("[alerts] KR ").count(), 2, "{sent}");
    // It names the team lead there; "your team" is only for the team lead.
    let channel = sent
        .lines()
        .filter(|l| l.starts_with("[alerts] ") && l.ends_with(": John Doe, team lead Ross Kate"));
    assert_eq!(channel.count(), 2, "{sent}");
    assert!(!sent.contains("(your team)"), "{sent}");

    // Again: nothing new.
    let (ok, again) = stalled(data, &smtp.url, &slack_api, "--send");
    assert!(ok, "{again}");
    assert!(again.starts_with("0 stalled key result(s)"), "{again}");
    assert_eq!(smtp.received().len(), 2);

    // John's next update of kr-a: one resolve email.
    send(
        Source::PEOPLELOGIC,
        "peoplelogic",
        &key_result("kr-a", "Reach 500 weekly active teams", 0, "ON_TRACK"),
    )
    .await;
    eventually("kr-a updated", async || {
        let page = key_results(&server.base).await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "kr-a" && r["history"].as_array().unwrap().len() == 2)
    })
    .await;
    let (ok, resolved) = stalled(data, &smtp.url, &slack_api, "--send");
    assert!(ok, "{resolved}");
    assert!(
        resolved.contains("stalled: 0 opened, 0 reminded, 1 resolved"),
        "{resolved}"
    );
    let mails = smtp.wait_for(3, std::time::Duration::from_secs(10));
    assert_eq!(mails.len(), 3);
    let last = mails
        .iter()
        .find(|m| {
            m.header("subject")
                .unwrap()
                .starts_with("[No longer stalled]")
        })
        .unwrap();
    assert_eq!(
        last.header("subject").unwrap(),
        "[No longer stalled] Reach 500 weekly active teams"
    );
    assert_eq!(last.rcpt_tos(), ["ross.kate@example.com"]);

    // John leaves; a key result of his stalls: the alerts channel, not Ross.
    let mut terminate: Value = serde_json::from_slice(TERMINATE).unwrap();
    terminate["data"]["meta"]["updated_at"] = json!(ago(0));
    send(
        Source::PEOPLEFORCE,
        "peopleforce",
        &serde_json::to_vec(&terminate).unwrap(),
    )
    .await;
    send(
        Source::PEOPLELOGIC,
        "peoplelogic",
        &key_result("kr-e", "Renew the partner deals", 18, "ON_TRACK"),
    )
    .await;
    eventually("kr-e in the read model", async || {
        key_results(&server.base).await["total"] == 5
    })
    .await;
    eventually("John inactive", async || {
        let out = Command::new(BIN)
            .args(["directory", "list", "--json", "--data-dir"])
            .arg(data)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("\"active\":false")
    })
    .await;
    let (ok, left) = stalled(data, &smtp.url, &slack_api, "--send");
    assert!(ok, "{left}");
    assert!(left.contains("open\tRenew the partner deals (owner John Doe, 18 days without an update) -> (owner no longer active)"), "{left}");
    assert!(
        left.contains("[alerts] KR Renew the partner deals has had no update for 18 days"),
        "{left}"
    );
    assert!(left.contains("owner no longer active"), "{left}");
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(
        smtp.received().len(),
        3,
        "no email for a departed owner's key result"
    );
    drop(server);
}

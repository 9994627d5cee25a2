//! Email from `okr-webhooks serve` and `okr-webhooks summary`, received by a real SMTP
//! server (aiosmtpd, which parses each MIME message): the summary's two parts, its
//! subject's counts, its sections and their order, no personal data, a refused address
//! skipped; the HTML part rendered in headless Chromium; alert emails once each.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::browser::{assert_fits_a_phone, chromium};
use common::{BIN, deliver, eventually, secrets, serve_on};
use okr_core::Source;
use okr_webhooks_tests::smtp::{Received, Smtp};
use serde_json::{Value, json};

fn body(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../events/bodies/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn write_recipients(dir: &Path, document: Value) {
    std::fs::write(dir.join("email-recipients.json"), document.to_string()).unwrap();
}

async fn send_all(base: &str, dir: &Path, paths: &[&str]) {
    let secrets = secrets(dir);
    for path in paths {
        let source: Source = path.split('/').next().unwrap().parse().unwrap();
        let (status, answer) =
            deliver(base, &secrets, source, source.as_str(), &body(path), None).await;
        assert_eq!(status, 202, "{path}: {answer}");
    }
}

async fn records(base: &str) -> Vec<Value> {
    let page: Value = reqwest::get(format!("{base}/api/progress"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().cloned().unwrap_or_default()
}

/// `okr-webhooks summary --send` over `dir`, through `smtp`.
fn summary_command(dir: &Path, smtp: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["summary", "--send", "--smtp-url", smtp, "--data-dir"])
        .arg(dir)
        .env("TZ", "UTC")
        .output()
        .unwrap()
}

/// `okr-webhooks summary --send` over `dir`, through `smtp`, succeeding: (stdout, stderr).
fn summary_send(dir: &Path, smtp: &str) -> (String, String) {
    let output = summary_command(dir, smtp);
    let (stdout, stderr) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert!(output.status.success(), "{stdout}{stderr}");
    (stdout, stderr)
}

fn to<'a>(received: &'a [Received], address: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|m| m.rcpt_tos() == [address])
        .collect()
}

/// Each of `needles` is in `text`, each after the one before.
fn in_order(text: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        let at = text[from..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not after {from} in:\n{text}"));
        from += at + needle.len();
    }
}

#[tokio::test]
async fn the_walk_through_a_summary_through_smtp_with_both_parts_its_sections_in_order_and_no_personal_data()
 {
    let smtp = Smtp::start(Some("bounce"));
    let dir = tempfile::tempdir().unwrap();
    write_recipients(
        dir.path(),
        json!({"recipients": [
            {"address": "cto@example.com", "scope": "all"},
            {"address": "bounce@example.com", "scope": "all"},
            {"address": "teams@example.com", "scope": {"titles": ["Reach *"]}},
        ]}),
    );
    let server = serve_on("127.0.0.1", dir.path(), &["--smtp-url", &smtp.url]).await;
    let base = server.base.as_str();
    send_all(
        base,
        dir.path(),
        &[
            "peoplelogic/objective_completed.json",
            "peoplelogic/key_result_progress.json",
            "peoplelogic/key_result_progress_plain.json",
            "peopleforce/employee_create.json",
            "perscom/user_created.json",
        ],
    )
    .await;
    eventually("three records in the read model", async || {
        records(base).await.len() == 3
    })
    .await;

    let (stdout, stderr) = summary_send(dir.path(), &smtp.url);
    assert_eq!(
        stdout,
        format!(
            "2 sent, 0 sent before, 1 refused, 0 failed (of 3 recipients), through the SMTP server at {}\n",
            smtp.url
        )
    );
    // Addresses are counted, never printed or logged; the refusal is, with its reason.
    assert!(!stdout.contains('@') && !stderr.contains('@'), "{stderr}");
    assert!(
        stderr.contains("summary refused; skipped") && stderr.contains("550"),
        "{stderr}"
    );

    let received = smtp.wait_for(2, Duration::from_secs(10));
    assert_eq!(received.len(), 2);
    let cto = to(&received, "cto@example.com")[0];
    let week = time::OffsetDateTime::now_utc().iso_week();
    assert_eq!(
        cto.header("subject").unwrap(),
        format!("OKR summary, week {week}: 1 completed, 0 behind pace, 1 at risk, 1 stalled")
    );
    assert_eq!(cto.header("from").unwrap(), "okr-webhooks@localhost");
    assert_eq!(cto.0["content_type"], "multipart/alternative");
    let text = cto.part("text/plain").unwrap();
    let html = cto.part("text/html").unwrap();
    in_order(
        &text,
        &[
            "The first summary: everything is news. 3 objectives and key results in your scope.",
            "NEEDS ATTENTION",
            "  Launch the self-serve onboarding flow\n    - KR Cut onboarding time to 10 minutes: 50% - at risk",
            "STALLED",
            "    - KR Reach 500 weekly active teams: 60% - no update for",
            "PROGRESS MOVED\n  None.",
            "COMPLETED",
            "    - The objective: completed",
        ],
    );
    in_order(
        &html,
        &[
            ">Needs attention<",
            "Cut onboarding time to 10 minutes",
            ">Stalled<",
            "Reach 500 weekly active teams",
            ">Progress moved<",
            ">Completed<",
            "The objective",
        ],
    );
    // The HR events' personal fields, and who made changes, are in no part.
    for personal in [
        "1978-08-31",
        "johnny.d.private@example.org",
        "+380501234567",
        "Sam Okafor",
        "Priya Raman",
    ] {
        assert!(!cto.raw().contains(personal), "{personal}");
    }
    let teams = to(&received, "teams@example.com")[0];
    assert!(
        teams
            .part("text/plain")
            .unwrap()
            .contains("1 objective or key result in your scope.")
    );

    // The HTML part in a real browser, desktop and phone widths.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let page = shots.join("summary.html");
    std::fs::write(&page, &html).unwrap();
    let browser = chromium(760, 1000).await;
    let client = &browser.client;
    client
        .goto(&format!("file://{}", page.display()))
        .await
        .unwrap();
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(shots.join("summary.png"), png).unwrap();
    let headings = client
        .execute(
            "return [...document.querySelectorAll('h2')].map(h => h.textContent);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        headings,
        json!(["Needs attention", "Stalled", "Progress moved", "Completed"])
    );
    assert_fits_a_phone(client).await;
    std::fs::write(
        shots.join("summary-phone.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    eprintln!("screenshots: {}", shots.join("summary.png").display());

    // The next summary says what changed since this one: the key result moved 60% -> 80%;
    // the objective's completion was news last time.
    send_all(
        base,
        dir.path(),
        &["peoplelogic/key_result_progress_next.json"],
    )
    .await;
    eventually("the update in the read model", async || {
        records(base).await.iter().any(|r| r["progress"] == 80.0)
    })
    .await;
    std::thread::sleep(Duration::from_millis(1100));
    summary_send(dir.path(), &smtp.url);
    let received = smtp.wait_for(4, Duration::from_secs(10));
    let second = to(&received, "cto@example.com")[1]
        .part("text/plain")
        .unwrap();
    in_order(
        &second,
        &[
            "NEEDS ATTENTION",
            "STALLED\n  None.",
            "PROGRESS MOVED",
            "    - KR Reach 500 weekly active teams: 60% -> 80% (+20)",
            "COMPLETED\n  None.",
        ],
    );
}

#[tokio::test]
async fn serve_emails_an_alert_and_its_resolve_once_each_to_the_recipients_of_its_scope() {
    let smtp = Smtp::start(None);
    let dir = tempfile::tempdir().unwrap();
    write_recipients(
        dir.path(),
        json!({"recipients": [
            {"address": "lead@example.com", "scope": {"objectives": ["5f0c1a2b-7d3e-4c59-8a61-0b9e2f4d7c18"]}, "alerts": true, "summary": false},
            {"address": "cto@example.com", "scope": "all"},
            {"address": "people@example.com", "scope": {"source": "peopleforce"}, "alerts": true},
        ]}),
    );
    let server = serve_on("127.0.0.1", dir.path(), &["--smtp-url", &smtp.url]).await;
    let base = server.base.as_str();
    let at_risk = "peoplelogic/key_result_progress_plain.json";
    send_all(base, dir.path(), &[at_risk, at_risk]).await;
    let received = smtp.wait_for(1, Duration::from_secs(30));
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].header("subject").unwrap(),
        "[OKR alert] KR Cut onboarding time to 10 minutes is at risk"
    );

    // The same key result back on track, a day later (the seed's body, its status and
    // time changed), delivered twice.
    let mut recovered: Value = serde_json::from_slice(&body(at_risk)).unwrap();
    recovered["status"] = json!("ON_TRACK");
    recovered["updatedAt"] = json!("2025-05-22T16:45:00Z");
    let path = dir.path().join("recovered.json");
    std::fs::write(&path, recovered.to_string()).unwrap();
    let secrets = secrets(dir.path());
    for _ in 0..2 {
        let body = recovered.to_string().into_bytes();
        let (status, _) = deliver(
            base,
            &secrets,
            Source::PEOPLELOGIC,
            "peoplelogic",
            &body,
            None,
        )
        .await;
        assert_eq!(status, 202);
    }
    let received = smtp.wait_for(2, Duration::from_secs(30));
    assert_eq!(
        received[1].header("subject").unwrap(),
        "[OKR alert resolved] KR Cut onboarding time to 10 minutes is no longer at risk (50%)"
    );
    assert!(
        received[1]
            .part("text/plain")
            .unwrap()
            .contains("Rule: at risk")
    );
    assert!(received[1].part("text/html").is_some());
    // Nothing more arrives, and all went to the one recipient of that scope.
    std::thread::sleep(Duration::from_secs(2));
    let received = smtp.received();
    assert_eq!(received.len(), 2);
    assert!(
        received
            .iter()
            .all(|m| m.rcpt_tos() == ["lead@example.com"])
    );
}

#[tokio::test]
async fn serve_on_a_summary_cron_writes_each_run_to_the_outbox_without_an_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    write_recipients(
        dir.path(),
        json!({"recipients": [{"address": "cto@example.com", "scope": "all"}]}),
    );
    // Every two seconds (a seconds field first).
    let server = serve_on(
        "127.0.0.1",
        dir.path(),
        &["--summary-cron", "*/2 * * * * *"],
    )
    .await;
    send_all(
        server.base.as_str(),
        dir.path(),
        &["peoplelogic/key_result_progress_plain.json"],
    )
    .await;
    let outbox = dir.path().join("outbox");
    let emls = || -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&outbox) else {
            return Vec::new();
        };
        let mut files: Vec<_> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    };
    eventually("two scheduled runs in the outbox", async || {
        emls().len() >= 2
    })
    .await;
    let files = emls();
    for eml in &files {
        assert!(eml.contains("To: cto@example.com\r\n"), "{eml}");
        assert!(eml.contains("Subject: OKR summary, week "), "{eml}");
        assert!(eml.contains("Content-Type: multipart/alternative"), "{eml}");
        assert!(
            eml.contains("Content-Type: text/plain") && eml.contains("Content-Type: text/html")
        );
    }
    // The second run compares with the first: nothing is news any more.
    assert!(files[1].contains("Since "), "{}", files[1]);
}

/// `okr-webhooks summary --send` over `dir` through `smtp`: (exit code, stdout).
fn summary_run(dir: &Path, smtp: &str) -> (Option<i32>, String) {
    // A run's keys carry its second: two runs never share one.
    std::thread::sleep(Duration::from_millis(1100));
    let output = summary_command(dir, smtp);
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

/// The plain-text part of the `n`th message (0-based) `smtp` received for `address`.
fn nth_text(smtp: &Smtp, address: &str, n: usize) -> String {
    let received = smtp.received();
    let messages = to(&received, address);
    let message = messages
        .get(n)
        .unwrap_or_else(|| panic!("no message {n} to {address}: {}", messages.len()));
    message.part("text/plain").unwrap()
}

/// A summary that was not delivered (the SMTP server down for everyone, then a 451 for
/// one recipient) loses no news: each recipient's next delivered summary says what
/// changed since the last summary *they* received, once.
#[tokio::test]
async fn news_before_a_failed_run_reaches_each_recipient_in_their_next_delivered_summary_once() {
    let dir = tempfile::tempdir().unwrap();
    write_recipients(
        dir.path(),
        json!({"recipients": [
            {"address": "cto@example.com", "scope": "all"},
            {"address": "lead@example.com", "scope": "all"},
        ]}),
    );
    let up = Smtp::start(None);
    let greylisting = Smtp::deferring("lead");
    let down = format!("smtp://127.0.0.1:{}", common::free_port());
    let server = serve_on("127.0.0.1", dir.path(), &["--smtp-url", &up.url]).await;
    let base = server.base.as_str();
    let progress = async |value: f64| {
        eventually("the update in the read model", async || {
            records(base).await.iter().any(|r| r["progress"] == value)
        })
        .await;
    };

    // Run 0, delivered to both: the key result at 60%.
    send_all(base, dir.path(), &["peoplelogic/key_result_progress.json"]).await;
    progress(60.0).await;
    assert_eq!(
        summary_run(dir.path(), &up.url),
        (
            Some(0),
            format!(
                "2 sent, 0 sent before, 0 refused, 0 failed (of 2 recipients), through the SMTP server at {}\n",
                up.url
            )
        )
    );

    // The objective completes and the key result moves to 80%; run 1 finds the SMTP
    // server down.
    send_all(
        base,
        dir.path(),
        &[
            "peoplelogic/objective_completed.json",
            "peoplelogic/key_result_progress_next.json",
        ],
    )
    .await;
    progress(80.0).await;
    let (code, stdout) = summary_run(dir.path(), &down);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.starts_with("0 sent, 0 sent before, 0 refused, 2 failed (of 2 recipients)"),
        "{stdout}"
    );

    // Run 2: the server is back, but greylists the lead (451): the CTO hears run 1's news.
    let (code, stdout) = summary_run(dir.path(), &greylisting.url);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.starts_with("1 sent, 0 sent before, 0 refused, 1 failed (of 2 recipients)"),
        "{stdout}"
    );
    let cto = nth_text(&greylisting, "cto@example.com", 0);
    in_order(
        &cto,
        &[
            "PROGRESS MOVED",
            "    - KR Reach 500 weekly active teams: 60% -> 80% (+20)",
            "COMPLETED",
            "    - The objective: completed",
        ],
    );
    assert!(to(&greylisting.received(), "lead@example.com").is_empty());

    // The key result moves to 90%; run 3 reaches both.
    let mut next: Value =
        serde_json::from_slice(&body("peoplelogic/key_result_progress_next.json")).unwrap();
    next["currentValue"] = json!({"previous": 420, "current": 460});
    next["updatedAt"] = json!("2025-05-28T09:00:00Z");
    let (status, answer) = deliver(
        base,
        &secrets(dir.path()),
        Source::PEOPLELOGIC,
        "peoplelogic",
        next.to_string().as_bytes(),
        None,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    progress(90.0).await;
    let (code, stdout) = summary_run(dir.path(), &up.url);
    assert_eq!(code, Some(0), "{stdout}");
    // The CTO: only what is new since run 2.
    let cto = nth_text(&up, "cto@example.com", 1);
    in_order(
        &cto,
        &[
            "PROGRESS MOVED",
            "    - KR Reach 500 weekly active teams: 80% -> 90% (+10)",
            "COMPLETED\n  None.",
        ],
    );
    // The lead: everything since run 0, the last summary the lead received, in one.
    let lead = nth_text(&up, "lead@example.com", 1);
    in_order(
        &lead,
        &[
            "PROGRESS MOVED",
            "    - KR Reach 500 weekly active teams: 60% -> 90% (+30)",
            "COMPLETED",
            "    - The objective: completed",
        ],
    );

    // Run 4: nothing new for either; each change was told once.
    let (code, stdout) = summary_run(dir.path(), &up.url);
    assert_eq!(code, Some(0), "{stdout}");
    for address in ["cto@example.com", "lead@example.com"] {
        in_order(
            &nth_text(&up, address, 2),
            &["PROGRESS MOVED\n  None.", "COMPLETED\n  None."],
        );
    }
}

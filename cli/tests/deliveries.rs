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

/// `okr-webhooks deliveries --json` over `data` with `args`: its objects, and all it
/// printed.
fn listed(data: &std::path::Path, args: &[&str]) -> (Vec<Value>, String) {
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

    let (lines, text) = listed(data, &[]);
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
    let (lines, _) = listed(data, &[]);
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

    // Stopped: the next refusal keeps no body.
    let off = capture(&["peopleforce", "--stop"]);
    assert!(off.starts_with("peopleforce: no longer capturing"), "{off}");
    common::tampered_hire(&server.base, &secrets).await;
    let (lines, _) = listed(data, &["--outcome", "refused", "--endpoint", "peopleforce"]);
    assert_eq!(lines.len(), 2);
    assert!(lines[0].get("body").is_none(), "{}", lines[0]);
    assert!(lines[1].get("body").is_some(), "kept until its day is over");
}

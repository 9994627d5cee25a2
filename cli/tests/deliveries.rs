//! The delivery log through `serve`: a signed delivery and a tampered one, as
//! `okr-webhooks deliveries` prints them and `GET /api/deliveries` lists them; nothing
//! of the bodies kept.

mod common;

use std::process::Command;

use common::{BIN, client, secrets, serve_on};
use okr_core::Source;
use serde_json::Value;

const KEY_RESULT: &[u8] =
    include_bytes!("../../events/bodies/peoplelogic/key_result_progress.json");

#[tokio::test]
async fn serve_records_each_delivery_and_the_command_and_the_api_list_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let server = serve_on("127.0.0.1", data, &[]).await;
    let secrets = secrets(data);
    let answer = common::accepted(&server.base, &secrets, Source::PEOPLELOGIC, KEY_RESULT).await;
    let event_id = answer["event_id"].as_str().unwrap().to_owned();
    common::tampered_hire(&server.base, &secrets).await;

    let output = Command::new(BIN)
        .args(["deliveries", "--json", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    let (ok, text) = common::outcome(&output);
    assert!(ok, "{text}");
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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

//! The `okr-webhooks` command as a user runs it.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn okr_webhooks() -> Command {
    assert_cmd::cargo::cargo_bin_cmd!("okr-webhooks")
}

fn sample(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events/bodies")
        .join(path)
}

fn secret_for(source: &str) -> &'static str {
    match source {
        "peoplelogic" => "YWJjMTIzIT8kKiYoKSctPUB+",
        "standard" => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        _ => "s3cret",
    }
}

/// `okr-webhooks sign` output, as `--header` arguments.
fn sign(source: &str, body: &PathBuf) -> Vec<String> {
    let output = okr_webhooks()
        .args(["sign", "--source", source, "--secret", secret_for(source)])
        .arg(body)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout
        .lines()
        .flat_map(|line| ["--header".to_owned(), line.to_owned()])
        .collect()
}

#[test]
fn sign_output_fed_to_verify_is_valid_for_every_source() {
    for (source, body) in [
        ("peoplelogic", "peoplelogic/objective_completed.json"),
        ("peopleforce", "peopleforce/employee_create.json"),
        ("perscom", "perscom/rankrecord_updated.json"),
        ("standard", "standard/key_result_progress.json"),
    ] {
        let body = sample(body);
        let headers = sign(source, &body);
        assert_eq!(headers.len(), if source == "standard" { 6 } else { 2 });
        okr_webhooks()
            .args(["verify", "--source", source, "--secret", secret_for(source)])
            .args(&headers)
            .arg(&body)
            .assert()
            .success()
            .stdout("valid\n");
        // The same delivery with another secret is not.
        okr_webhooks()
            .args(["verify", "--source", source, "--secret", "d3Jvbmc="])
            .args(&headers)
            .arg(&body)
            .assert()
            .code(1)
            .stdout(predicate::str::starts_with(
                "invalid: signature does not match\n",
            ));
    }
}

#[test]
fn sign_prints_the_header_lines_each_source_sends() {
    let body = sample("perscom/user_created.json");
    okr_webhooks()
        .args(["sign", "-s", "peopleforce", "--secret", "s3cret"])
        .arg(&body)
        .assert()
        .success()
        .stdout(
            predicate::str::is_match("^X-PeopleForce-Signature: sha256=[0-9a-f]{64}\n$").unwrap(),
        );
    okr_webhooks()
        .args(["sign", "-s", "perscom", "--secret", "s3cret"])
        .arg(&body)
        .assert()
        .success()
        .stdout(predicate::str::is_match("^Signature: [0-9a-f]{64}\n$").unwrap());
    okr_webhooks()
        .args([
            "sign",
            "-s",
            "peoplelogic",
            "--secret",
            "YWJjMTIzIT8kKiYoKSctPUB+",
        ])
        .arg(&body)
        .assert()
        .success()
        .stdout(predicate::str::is_match("^X-Signature: [A-Za-z0-9+/]{43}=\n$").unwrap());
    okr_webhooks()
        .args(["sign", "-s", "standard", "--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "--id", "msg_1", "--timestamp", "1700000000"])
        .arg(&body)
        .assert()
        .success()
        .stdout(predicate::str::is_match("^webhook-id: msg_1\nwebhook-timestamp: 1700000000\nwebhook-signature: v1,[A-Za-z0-9+/]{43}=\n$").unwrap());
}

#[test]
fn the_standard_webhooks_vector_verifies_through_the_cli() {
    let vector = [
        "--header",
        "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek",
        "--header",
        "webhook-timestamp: 1614265330",
        "--header",
        "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ];
    okr_webhooks()
        .args([
            "verify",
            "--source",
            "standard",
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "--at",
            "1614265330",
        ])
        .args(vector)
        .write_stdin(r#"{"test": 2432232314}"#)
        .assert()
        .success()
        .stdout("valid\n");
    // Re-serialized compactly: invalid, and the tool says why.
    okr_webhooks()
        .args([
            "verify",
            "--source",
            "standard",
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "--at",
            "1614265330",
        ])
        .args(vector)
        .write_stdin(r#"{"test":2432232314}"#)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "invalid: signature does not match",
        ))
        .stdout(predicate::str::contains(
            "confirmed: the JSON body was re-serialized",
        ));
    // Without --at the delivery is years old.
    okr_webhooks()
        .args([
            "verify",
            "--source",
            "standard",
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ])
        .args(vector)
        .write_stdin(r#"{"test": 2432232314}"#)
        .assert()
        .code(1)
        .stdout(
            predicate::str::is_match(
                "^invalid: timestamp is [0-9]+ s in the past; the tolerance is 300 s\n",
            )
            .unwrap(),
        )
        .stdout(predicate::str::contains("--at"));
}

#[test]
fn verify_names_likely_causes() {
    let body = sample("peopleforce/employee_create.json");
    let headers = sign("peopleforce", &body);
    // The secret pasted with a trailing newline.
    okr_webhooks()
        .args(["verify", "-s", "peopleforce", "--secret", "s3cret\n"])
        .args(&headers)
        .arg(&body)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "confirmed: the secret has stray whitespace",
        ));
    // The header without its sha256= prefix.
    let bare = headers[1].replacen("sha256=", "", 1);
    okr_webhooks()
        .args([
            "verify",
            "-s",
            "peopleforce",
            "--secret",
            "s3cret",
            "--header",
            &bare,
        ])
        .arg(&body)
        .assert()
        .code(1)
        .stdout(predicate::str::starts_with(
            "invalid: malformed header X-PeopleForce-Signature",
        ))
        .stdout(predicate::str::contains(
            "confirmed: the header is missing the sha256= prefix",
        ));
    // A rotation: the second secret matches.
    okr_webhooks()
        .args([
            "verify",
            "-s",
            "peopleforce",
            "--secret",
            "old",
            "--secret",
            "s3cret",
        ])
        .args(&headers)
        .arg(&body)
        .assert()
        .success()
        .stdout("valid\n");
}

#[test]
fn normalize_prints_a_schema_v1_event() {
    let output = okr_webhooks()
        .args([
            "normalize",
            "--source",
            "peoplelogic",
            "--received-at",
            "2025-06-02T14:21:09Z",
        ])
        .arg(sample("peoplelogic/objective_completed.json"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let event: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(event["type"], "objective.completed");
    assert_eq!(event["received_at"], "2025-06-02T14:21:09Z");
    let schema: Value = serde_json::from_str(okr_core::event::JSON_SCHEMA_V1).unwrap();
    assert!(
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap()
            .is_valid(&event)
    );

    // A Peoplelogic body without an event name, from standard input: the objective
    // itself, read by its shape.
    let output = okr_webhooks()
        .args(["normalize", "--source", "peoplelogic"])
        .write_stdin(
            r#"{"id":"o1","title":"Ship v2","status":{"previous":"ON_TRACK","current":"COMPLETED"}}"#,
        )
        .output()
        .unwrap();
    assert!(output.status.success());
    let event: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(event["type"], "objective.completed");
    assert_eq!(event["entity"]["name"], "Ship v2");

    // Standard Webhooks: the id comes from webhook-id.
    let id_of = |webhook_id: &str| {
        let output = okr_webhooks()
            .args([
                "normalize",
                "-s",
                "standard",
                "-H",
                &format!("webhook-id: {webhook_id}"),
            ])
            .arg(sample("standard/key_result_progress.json"))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&output.stdout).unwrap()["id"].clone()
    };
    assert_eq!(id_of("msg_a"), id_of("msg_a"));
    assert_ne!(id_of("msg_a"), id_of("msg_b"));
}

#[test]
fn bad_input_is_one_line_and_a_non_zero_exit() {
    let one_line_error = |args: &[&str], stdin: &str, expected: &str| {
        let output = okr_webhooks()
            .args(args)
            .write_stdin(stdin)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"));
    };
    one_line_error(
        &["normalize", "-s", "perscom"],
        "[1, 2]",
        "body is a JSON array, not an object",
    );
    one_line_error(
        &["normalize", "-s", "perscom"],
        "{\"date_of_birth\": ",
        "body is not valid JSON",
    );
    one_line_error(
        &["normalize", "-s", "workday"],
        "{}",
        "unknown endpoint workday",
    );
    one_line_error(
        &[
            "verify",
            "-s",
            "perscom",
            "--secret",
            "x",
            "/no/such/file.json",
        ],
        "",
        "cannot read /no/such/file.json",
    );
    one_line_error(
        &[
            "verify", "-s", "perscom", "--secret", "x", "--header", "no colon",
        ],
        "{}",
        "expected `Name: value`",
    );
    one_line_error(&["verify", "-s", "perscom"], "{}", "--secret");
    one_line_error(
        &["sign", "-s", "peoplelogic", "--secret", "not base64!"],
        "{}",
        "unusable secret",
    );
    one_line_error(
        &[
            "verify",
            "-s",
            "standard",
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "--at",
            "99999999999999",
        ],
        "{}",
        "not a representable Unix time",
    );
    // The secret never shows, even in an error.
    let output = okr_webhooks()
        .args(["sign", "-s", "standard", "--secret", "whsec_***hunter2***"])
        .write_stdin("{}")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"));
}

//! Deliveries signed by independent implementations of each scheme (the providers'
//! documented code in Python, Ruby, PHP and the JVM, and the official Standard Webhooks
//! Python library) verify through `okr-webhooks verify`; tampered copies do not.
//!
//! The interpreters are installed by `tests/run.sh`; a missing one fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

fn signer(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/signers")
        .join(name)
}

fn sample(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events/bodies")
        .join(path)
}

/// Run an external signer; its stdout is `Name: value` lines.
fn external(program: &str, args: &[&str]) -> Vec<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); tests/run.sh installs it"));
    assert!(
        output.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `okr-webhooks verify`: the exit code and stdout.
fn verify(
    source: &str,
    secret: &str,
    headers: &[String],
    body: &Path,
    at: Option<i64>,
) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_okr-webhooks"));
    command.args(["verify", "--source", source, "--secret", secret]);
    for header in headers {
        command.args(["--header", header]);
    }
    if let Some(at) = at {
        command.args(["--at", &at.to_string()]);
    }
    let output = command.arg(body).output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

/// A copy of `body` with one byte changed, in a temporary file.
fn tampered(body: &Path, name: &str) -> PathBuf {
    let mut bytes = std::fs::read(body).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let path = temp_path(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "okr-webhooks-interop-{}-{name}",
        std::process::id()
    ))
}

fn assert_verifies_and_tampered_fails(
    source: &str,
    secret: &str,
    headers: &[String],
    body: &Path,
    at: Option<i64>,
) {
    assert_eq!(
        verify(source, secret, headers, body, at),
        (0, "valid\n".to_owned()),
        "{source} {headers:?}"
    );
    let copy = tampered(body, &format!("{source}-tampered.json"));
    let (code, stdout) = verify(source, secret, headers, &copy, at);
    assert_eq!(code, 1, "{source}: {stdout}");
    assert!(
        stdout.starts_with("invalid: signature does not match"),
        "{stdout}"
    );
}

#[test]
fn peopleforce_signed_by_its_documented_python_code() {
    let body = sample("peopleforce/employee_create.json");
    let headers = external(
        "python3",
        &[
            signer("peopleforce.py").to_str().unwrap(),
            body.to_str().unwrap(),
            "pf-s3cret",
        ],
    );
    assert_verifies_and_tampered_fails("peopleforce", "pf-s3cret", &headers, &body, None);
}

#[test]
fn peopleforce_signed_by_its_documented_ruby_code() {
    let body = sample("peopleforce/leave_request_create.json");
    let headers = external(
        "ruby",
        &[
            signer("peopleforce.rb").to_str().unwrap(),
            body.to_str().unwrap(),
            "pf-s3cret",
        ],
    );
    assert_verifies_and_tampered_fails("peopleforce", "pf-s3cret", &headers, &body, None);
}

#[test]
fn perscom_body_and_signature_made_by_php() {
    let body = temp_path("perscom.json");
    let headers = external(
        "php",
        &[
            signer("perscom.php").to_str().unwrap(),
            body.to_str().unwrap(),
            "perscom-s3cret",
        ],
    );
    let raw = std::fs::read_to_string(&body).unwrap();
    assert!(
        raw.contains(r"https:\/\/perscom.example") && raw.contains(r"\u2014"),
        "{raw}"
    );
    assert_verifies_and_tampered_fails("perscom", "perscom-s3cret", &headers, &body, None);

    // And the PHP-escaped body normalizes to the real characters.
    let output = Command::new(env!("CARGO_BIN_EXE_okr-webhooks"))
        .args(["normalize", "--source", "perscom"])
        .arg(&body)
        .output()
        .unwrap();
    let event: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(event["type"], "rank_record.updated");
    assert_eq!(
        event["payload"]["data"]["text"],
        "Promoted \u{2014} see https://perscom.example/orders/512"
    );
    assert_eq!(
        event["payload"]["data"]["user"]["name"],
        "Jos\u{e9} \u{1f396}"
    );
}

#[test]
fn peoplelogic_signed_by_the_jvm_code_of_its_kotlin_sample() {
    let body = sample("peoplelogic/objective_completed.json");
    let headers = external(
        "java",
        &[
            signer("Peoplelogic.java").to_str().unwrap(),
            body.to_str().unwrap(),
            "YWJjMTIzIT8kKiYoKSctPUB+",
        ],
    );
    assert_verifies_and_tampered_fails(
        "peoplelogic",
        "YWJjMTIzIT8kKiYoKSctPUB+",
        &headers,
        &body,
        None,
    );
}

#[test]
fn standard_webhooks_signed_by_the_official_python_library() {
    let body = sample("standard/key_result_progress.json");
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let headers = external(
        "python3",
        &[
            signer("standard.py").to_str().unwrap(),
            body.to_str().unwrap(),
            secret,
            "msg_2LJcVnq9ewbLcgFHLKjbPf2ysns",
            "1716200000",
        ],
    );
    assert_verifies_and_tampered_fails("standard", secret, &headers, &body, Some(1_716_200_000));
}

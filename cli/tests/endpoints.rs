//! Named endpoints through `serve`: a delivery signed by each preset's vendor (an
//! independent Python signer written from the vendor's docs) is accepted and a tampered
//! one refused; two endpoints of one preset keep their own secrets; a declared scheme
//! and mapping reach the warehouse and the read model as a built-in provider's events
//! do; Asana's handshake is kept across a restart and never replaced; a bad endpoints
//! document stops `serve` with the endpoint and the field named.

mod common;

use std::path::Path;
use std::process::Command;

use common::{client, eventually, secrets, serve_on, warehouse};
use okr_webhooks_tests::{DATA_PRESETS, preset_body, sign_as_vendor, tampered};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_okr-webhooks");

/// The issue's example document (docs/writing-a-scheme.md) and one endpoint per preset.
fn document() -> Value {
    let mut endpoints: serde_json::Map<String, Value> = serde_json::from_str(
        r#"{
      "hr-eu":  {"preset": "peopleforce"},
      "hr-us":  {"preset": "peopleforce"},
      "hiring": {"preset": "greenhouse"},
      "goals":  {
        "scheme": {
          "header": "X-Goals-Signature", "algorithm": "sha256", "encoding": "hex", "prefix": "sha256=",
          "signed": "{timestamp}.{body}", "key": "utf8",
          "timestamp": {"header": "X-Goals-Timestamp", "unit": "s", "tolerance_s": 300}
        },
        "mapping": {
          "event": "/event",
          "types": {"goal.progress": "key_result.progress_updated", "goal.done": "key_result.completed"},
          "entity": {"kind": "key_result", "id": "/goal/id", "title": "/goal/name", "parent": "/goal/objective_id"},
          "progress": {"current": "/goal/progress", "previous": "/goal/previous_progress"},
          "status": "/goal/status", "actor": {"id": "/by/id", "name": "/by/name"}, "occurred_at": "/sent_at"
        }
      }}"#,
    )
    .unwrap();
    for preset in DATA_PRESETS {
        endpoints.insert(format!("via-{preset}"), json!({"preset": preset}));
    }
    json!({ "endpoints": endpoints })
}

fn write_setup(data_dir: &Path) {
    std::fs::create_dir_all(data_dir).unwrap();
    std::fs::write(
        data_dir.join("endpoints.json"),
        serde_json::to_string_pretty(&document()).unwrap(),
    )
    .unwrap();
    let mut secrets = json!({
        "hr-eu": "eu-secret", "hr-us": "us-secret", "goals": "goals-secret",
    });
    for preset in DATA_PRESETS {
        if preset != "asana" {
            secrets[format!("via-{preset}")] = format!("{preset}-secret-1").into();
        }
    }
    std::fs::write(data_dir.join("secrets.json"), secrets.to_string()).unwrap();
}

async fn post(
    base: &str,
    endpoint: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = client()
        .post(format!("{base}/webhooks/{endpoint}"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn every_preset_signed_by_its_vendor_is_accepted_and_tampered_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_setup(dir.path());
    let serve = serve_on("127.0.0.1", dir.path(), &[]).await;
    // The asana endpoint first takes its handshake.
    let (status, _, echoed) = post(
        &serve.base,
        "via-asana",
        &[("X-Hook-Secret".into(), "asana-secret-1".into())],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(echoed["x-hook-secret"], "asana-secret-1");

    let mut accepted = Vec::new();
    for preset in DATA_PRESETS {
        let secret = format!("{preset}-secret-1");
        let body = preset_body(preset, now() * 1000);
        let (headers, sent) = sign_as_vendor(preset, &secret, &body, now());
        let endpoint = format!("via-{preset}");
        let (status, answer, _) = post(&serve.base, &endpoint, &headers, &sent).await;
        assert_eq!(status, 202, "{preset}: {answer}");
        accepted.push((preset, answer["event_id"].as_str().unwrap().to_owned()));
        let (status, answer, _) =
            post(&serve.base, &endpoint, &headers, &tampered(preset, &sent)).await;
        assert_eq!(status, 401, "{preset} tampered: {answer}");
        assert_eq!(answer["message"], "the signature could not be verified");
        // Signed with another endpoint's secret: refused too.
        let (headers, sent) = sign_as_vendor(preset, "someone-elses", &body, now());
        let (status, _, _) = post(&serve.base, &endpoint, &headers, &sent).await;
        assert_eq!(status, 401, "{preset} with the wrong secret");
    }
    let (status, answer, _) = post(&serve.base, "via-nobody", &[], b"{}").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("unknown_source"))
    );

    // Every accepted delivery reaches the warehouse with its endpoint and its tool.
    eventually("every preset's event in the warehouse", async || {
        let events = warehouse(dir.path());
        accepted.iter().all(|(preset, id)| {
            events.iter().any(|e| {
                e["id"] == id.as_str()
                    && e["source"] == *preset
                    && e["endpoint"] == format!("via-{preset}")
            })
        })
    })
    .await;
}

#[tokio::test]
async fn two_endpoints_of_one_preset_and_a_declared_mapping() {
    let dir = tempfile::tempdir().unwrap();
    write_setup(dir.path());
    let serve = serve_on("127.0.0.1", dir.path(), &[]).await;
    let signed_by = |endpoint: &str, secret: &str, body: &[u8]| {
        let output = Command::new(BIN)
            .args([
                "sign",
                "--endpoint",
                endpoint,
                "--secret",
                secret,
                "--endpoints",
            ])
            .arg(dir.path().join("endpoints.json"))
            .arg("-")
            .stdin_bytes(body)
            .unwrap();
        String::from_utf8(output)
            .unwrap()
            .lines()
            .map(|line| {
                let (name, value) = line.split_once(": ").unwrap();
                (name.to_owned(), value.to_owned())
            })
            .collect::<Vec<_>>()
    };
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/bodies/peopleforce/employee_create.json"
    ))
    .unwrap();
    let by_eu = signed_by("hr-eu", "eu-secret", &body);
    assert_eq!(post(&serve.base, "hr-eu", &by_eu, &body).await.0, 202);
    assert_eq!(post(&serve.base, "hr-us", &by_eu, &body).await.0, 401);
    let by_us = signed_by("hr-us", "us-secret", &body);
    assert_eq!(post(&serve.base, "hr-us", &by_us, &body).await.0, 202);

    let goal = br#"{"event":"goal.progress","sent_at":"2026-12-05T10:00:00Z","by":{"id":"u7","name":"Sam Okafor"},"goal":{"id":"g42","name":"Reach 500 weekly active teams","objective_id":"o9","progress":60,"previous_progress":45,"status":"on_track"}}"#;
    let headers = signed_by("goals", "goals-secret", goal);
    let (status, answer, _) = post(&serve.base, "goals", &headers, goal).await;
    assert_eq!(status, 202, "{answer}");
    // A progress that is not a number: a clear 400, nothing stored.
    let wrong = br#"{"event":"goal.progress","goal":{"id":"g42","progress":"most"}}"#;
    let headers = signed_by("goals", "goals-secret", wrong);
    let (status, answer, _) = post(&serve.base, "goals", &headers, wrong).await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["message"],
        "mapping: /goal/progress (progress.current) is string, expected a number"
    );

    // The mapped event reaches the read model as any key result does.
    eventually("the mapped key result in /api/progress", async || {
        let response = client()
            .get(format!("{}/api/progress", serve.base))
            .send()
            .await
            .unwrap();
        let records: Value = response.json().await.unwrap_or(Value::Null);
        records["items"].as_array().is_some_and(|records| {
            records
                .iter()
                .any(|r| r["id"] == "g42" && r["progress"] == 60.0 && r["source"] == "goals")
        })
    })
    .await;
    let events = warehouse(dir.path());
    let sources: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["endpoint"].as_str().unwrap(),
                e["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(sources.contains(&("hr-eu", "peopleforce")));
    assert!(sources.contains(&("hr-us", "peopleforce")));
    assert_eq!(
        events.iter().filter(|e| e["endpoint"] == "goals").count(),
        1,
        "the 400 stored nothing"
    );
}

#[tokio::test]
async fn asanas_handshake_is_kept_across_a_restart_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(
        dir.path().join("endpoints.json"),
        r#"{"endpoints": {"tasks": {"preset": "asana"}}}"#,
    )
    .unwrap();
    let handshake = |secret: &str| vec![("X-Hook-Secret".to_owned(), secret.to_owned())];
    let body = preset_body("asana", 0);
    {
        let serve = serve_on("127.0.0.1", dir.path(), &[]).await;
        // Before the handshake the endpoint has no secret: nothing verifies.
        let (headers, _) = sign_as_vendor("asana", "first", &body, now());
        assert_eq!(post(&serve.base, "tasks", &headers, &body).await.0, 401);
        let (status, _, echoed) = post(&serve.base, "tasks", &handshake("first"), b"").await;
        assert_eq!(
            (status, echoed["x-hook-secret"].to_str().unwrap()),
            (200, "first")
        );
        assert_eq!(post(&serve.base, "tasks", &headers, &body).await.0, 202);
        let (status, answer, _) = post(&serve.base, "tasks", &handshake("second"), b"").await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (403, Some("handshake_refused"))
        );
    }
    assert_eq!(
        secrets(dir.path()).for_endpoint("tasks".parse().unwrap())[0].expose(),
        "first"
    );
    let serve = serve_on("127.0.0.1", dir.path(), &[]).await;
    assert_eq!(
        post(&serve.base, "tasks", &handshake("third"), b"").await.0,
        403
    );
    let (headers, _) = sign_as_vendor("asana", "first", &body, now());
    assert_eq!(post(&serve.base, "tasks", &headers, &body).await.0, 202);
    // Re-armed by the user, the next handshake is kept.
    let rearm = Command::new(BIN)
        .args(["endpoints", "rearm", "tasks", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        rearm.status.success(),
        "{}",
        String::from_utf8_lossy(&rearm.stderr)
    );
    eventually("the re-armed endpoint takes a new handshake", async || {
        post(&serve.base, "tasks", &handshake("fourth"), b"")
            .await
            .0
            == 200
    })
    .await;
    assert_eq!(
        secrets(dir.path()).for_endpoint("tasks".parse().unwrap())[0].expose(),
        "fourth"
    );
}

#[test]
fn a_bad_endpoints_document_stops_serve_naming_the_endpoint_and_the_field() {
    for (document, expected) in [
        (
            r#"{"endpoints": {"hr": {"preset": "workday"}}}"#,
            r#"endpoint "hr": preset: unknown preset "workday""#,
        ),
        (
            r#"{"endpoints": {"goals": {"scheme": {"header": "X-S", "algorithm": "sha256", "encoding": "hex"}, "mapping": {"entity": {"id": "goal.id"}}}}}"#,
            r#"endpoint "goals": mapping.entity.id: "goal.id" is not a JSON Pointer"#,
        ),
        (
            r#"{"endpoints": {"goals": {"scheme": {"header": "X-S", "algorithm": "md5", "encoding": "hex"}}}}"#,
            r#"endpoint "goals": scheme.algorithm: unknown algorithm "md5""#,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("endpoints.json"), document).unwrap();
        let output = Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{document}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            stderr.contains("does not validate, so serve does not start"),
            "{stderr}"
        );
        assert!(
            !dir.path().join("queues.sqlite").exists(),
            "nothing was started"
        );
    }
}

#[test]
fn endpoints_add_list_and_test() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (code, out, _) = run(&["endpoints", "add", "hiring", "--preset", "greenhouse"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("payload URL: http://127.0.0.1:3000/webhooks/hiring"),
        "{out}"
    );
    let (code, _, err) = run(&["endpoints", "add", "hiring", "--preset", "ashby"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("already has an endpoint named hiring"),
        "{err}"
    );
    let (code, _, err) = run(&["endpoints", "add", "bad", "--preset", "workday"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(r#"endpoint "bad": preset: unknown preset "workday""#),
        "{err}"
    );
    let (_, list, _) = run(&["endpoints", "list"]);
    let hiring = list.lines().find(|l| l.starts_with("hiring\t")).unwrap();
    assert_eq!(
        hiring,
        "hiring\thttp://127.0.0.1:3000/webhooks/hiring\tpreset greenhouse\t1 secret"
    );
    let secret = secrets(dir.path()).for_endpoint("hiring".parse().unwrap())[0]
        .expose()
        .to_owned();
    assert!(!list.contains(&secret), "secrets never listed");
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/bodies/greenhouse/candidate_hired.json"
    );
    let (code, out, err) = run(&["endpoints", "test", "hiring", sample]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\nverified\n"), "{out}");
    let event: Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    assert_eq!(
        (event["endpoint"].as_str(), event["source"].as_str()),
        (Some("hiring"), Some("greenhouse"))
    );
    assert!(!out.contains(&secret));
}

trait StdinBytes {
    fn stdin_bytes(&mut self, body: &[u8]) -> std::io::Result<Vec<u8>>;
}

impl StdinBytes for Command {
    fn stdin_bytes(&mut self, body: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::Write;
        let mut child = self
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        child.stdin.take().unwrap().write_all(body)?;
        let output = child.wait_with_output()?;
        assert!(output.status.success());
        Ok(output.stdout)
    }
}

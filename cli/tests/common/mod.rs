//! What the `serve` tests share: the binary, a free port, signed deliveries, waiting.

#![allow(dead_code)]

pub mod browser;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use okr_core::signing::SigningSecrets;
use okr_core::{Source, sign};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_okr-webhooks");

/// One HTTP client for every delivery: making one loads the TLS roots, which costs more
/// than a delivery to `serve`. (Per process: nextest runs each test in its own, so the
/// client never outlives the runtime its connections belong to.)
pub fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

/// A port nothing listens on.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn secrets(data_dir: &Path) -> SigningSecrets {
    SigningSecrets::parse(&std::fs::read_to_string(data_dir.join("secrets.json")).unwrap()).unwrap()
}

/// POST `body` to /webhooks/`route`, signed for `source` (over `signed` when given).
pub async fn deliver(
    base: &str,
    secrets: &SigningSecrets,
    source: Source,
    route: &str,
    body: &[u8],
    signed: Option<&[u8]>,
) -> (u16, Value) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let secret = &secrets.for_endpoint(source)[0];
    let mut request = client()
        .post(format!("{base}/webhooks/{route}"))
        .body(body.to_vec());
    let id = format!("msg_{}", now);
    let provider = okr_core::providers::provider(source).unwrap();
    for (name, value) in sign(provider, secret, signed.unwrap_or(body), &id, now).unwrap() {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A child process, killed with everything it started when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        okr_webhooks_tests::kill_tree(&mut self.0);
    }
}

/// A running `okr-webhooks serve`, killed when dropped.
pub struct Serve {
    child: Child,
    /// `http://HOST:PORT`, on loopback.
    pub base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        okr_webhooks_tests::kill_tree(&mut self.child);
    }
}

/// POST the seed's PeopleForce hire to /webhooks/peopleforce, signed over another body
/// (tampered with on the way), and expect 401.
#[allow(dead_code)]
pub async fn tampered_hire(base: &str, secrets: &SigningSecrets) {
    let hire = include_bytes!("../../../events/bodies/peopleforce/employee_create.json");
    let (status, answer) = deliver(
        base,
        secrets,
        Source::PEOPLEFORCE,
        "peopleforce",
        hire,
        Some(b"{}"),
    )
    .await;
    assert_eq!(status, 401, "{answer}");
}

/// POST `body` to /webhooks/`source`, signed for it, and expect 202: the answer.
pub async fn accepted(base: &str, secrets: &SigningSecrets, source: Source, body: &[u8]) -> Value {
    let (status, answer) = deliver(base, secrets, source, source.as_str(), body, None).await;
    assert_eq!(status, 202, "{answer}");
    answer
}

/// `serve` over `data_dir` listening on `host` (a free port), with `args`; once it
/// answers `/healthz`.
pub async fn serve_on(host: &str, data_dir: &Path, args: &[&str]) -> Serve {
    let port = free_port();
    let child = Command::new(BIN)
        .args(["serve", "--addr", &format!("{host}:{port}"), "--data-dir"])
        .arg(data_dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Serve { child, base }
}

/// Every event in `data_dir`'s warehouse.
pub fn warehouse(data_dir: &Path) -> Vec<Value> {
    let mut events = Vec::new();
    let root = data_dir.join("warehouse/events/v1");
    let Ok(days) = std::fs::read_dir(&root) else {
        return events;
    };
    for day in days {
        for file in std::fs::read_dir(day.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "gz") {
                let mut text = String::new();
                GzDecoder::new(std::fs::File::open(&path).unwrap())
                    .read_to_string(&mut text)
                    .unwrap();
                events.extend(
                    text.lines()
                        .map(|l| serde_json::from_str::<Value>(l).unwrap()),
                );
            }
        }
    }
    events
}

/// A command's outcome: whether it succeeded, and its stdout then stderr.
pub fn outcome(output: &std::process::Output) -> (bool, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A CloudFormation stack (in moto) whose outputs are `outputs`, as `sam deploy` leaves
/// one: its name.
pub async fn stack_with_outputs(aws: &aws_config::SdkConfig, outputs: &[(&str, &str)]) -> String {
    let stack = okr_webhooks_tests::unique("okr-webhooks");
    let outputs: serde_json::Map<String, Value> = outputs
        .iter()
        .map(|(name, value)| (name.to_string(), serde_json::json!({"Value": value})))
        .collect();
    let template = serde_json::json!({
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": outputs,
    });
    aws_sdk_cloudformation::Client::new(aws)
        .create_stack()
        .stack_name(&stack)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
    stack
}

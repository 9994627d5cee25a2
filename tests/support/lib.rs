//! Test support: a moto server (a local AWS API server) for the AWS adapters.
//!
//! Each test process starts its own server on a free port: `tests/moto_server.py`,
//! moto plus the SQS message move tasks it lacks (install moto with
//! `pip install "moto[server]"`; `tests/run.sh` does). With `OKR_TEST_MOTO_URL` set,
//! tests use that server instead. Tests name their resources uniquely, so they can
//! share one server.

pub mod faulty;
pub mod otlp;
pub mod smtp;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// A running moto server.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Option<Child>,
}

impl Moto {
    /// The shared server from `OKR_TEST_MOTO_URL`, or a new one.
    pub fn start() -> Moto {
        if let Ok(url) = std::env::var("OKR_TEST_MOTO_URL") {
            return Moto { url, child: None };
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tests/moto_server.py ({e}): pip install \"moto[server]\" (tests/run.sh does)"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "tests/moto_server.py exited ({status}): pip install \"moto[server]\" (tests/run.sh does)"
                );
            }
            assert!(
                Instant::now() < deadline,
                "tests/moto_server.py did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            url: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        }
    }

    /// SDK configuration pointing at this server, with dummy credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            kill_tree(child);
        }
    }
}

/// Stop `child` and every process it started, however deep (chromedriver's Chromium
/// and its helpers, `cargo lambda watch`'s functions): each is found by its parent in
/// `/proc` and killed, then `child` is reaped. Killing only `child` would leave its
/// children running, adopted by init, after the test.
pub fn kill_tree(child: &mut Child) {
    let mut tree = vec![child.id()];
    let mut at = 0;
    while at < tree.len() {
        let parent = tree[at];
        tree.extend(children_of(parent));
        at += 1;
    }
    // Stop them all first, so none starts another while the rest are killed.
    signal("-STOP", &tree[1..]);
    let _ = child.kill();
    signal("-KILL", &tree[1..]);
    let _ = child.wait();
}

/// The processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

fn signal(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(signal)
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// Receive everything on `url` as Lambda's event source mapping hands it over: the
/// body, the receive count and the message attributes.
pub async fn received(sqs: &aws_sdk_sqs::Client, url: &str) -> aws_lambda_events::sqs::SqsEvent {
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    loop {
        let output = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .visibility_timeout(300)
            .send()
            .await
            .unwrap();
        let messages = output.messages.unwrap_or_default();
        if messages.is_empty() {
            return event;
        }
        for message in messages {
            let mut record = aws_lambda_events::sqs::SqsMessage::default();
            record.message_id = message.message_id.clone();
            record.receipt_handle = message.receipt_handle.clone();
            record.body = message.body.clone();
            record.event_source = Some("aws:sqs".into());
            record
                .attributes
                .insert("ApproximateReceiveCount".into(), "1".into());
            for (name, value) in message.message_attributes.unwrap_or_default() {
                let mut attribute = aws_lambda_events::sqs::SqsMessageAttribute::default();
                attribute.string_value = value.string_value;
                attribute.data_type = Some(value.data_type);
                record.message_attributes.insert(name, attribute);
            }
            event.records.push(record);
        }
    }
}

/// A name no other test (or earlier run against the same server) uses.
/// One SQS queue per consumer, created on `sqs` under unique names.
pub async fn consumer_queues(sqs: &aws_sdk_sqs::Client) -> okr_pipeline::config::QueueUrls {
    let mut urls = Vec::new();
    for consumer in okr_core::routing::Consumer::ALL {
        let created = sqs
            .create_queue()
            .queue_name(unique(consumer.as_str()))
            .send()
            .await
            .unwrap();
        urls.push(created.queue_url().unwrap().to_owned());
    }
    let [warehouse, slack, alerts, progress, subscriptions] =
        <[String; 5]>::try_from(urls).unwrap();
    okr_pipeline::config::QueueUrls {
        warehouse,
        slack,
        alerts,
        progress,
        subscriptions,
    }
}

pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// The behaviour every claim store must have (`ClaimStore`); each adapter's test runs
/// it.
pub async fn claim_store_contract(store: &dyn okr_pipeline::idempotency::ClaimStore) {
    use okr_pipeline::idempotency::{Claim, ClaimToken};
    use time::macros::datetime;

    let t0 = datetime!(2026-11-20 09:00 UTC);
    let hold = Duration::from_secs(60);
    let keep = Duration::from_secs(24 * 3600);
    let secs = |n: u64| Duration::from_secs(n);
    let proceed = |claim: Claim| -> ClaimToken {
        match claim {
            Claim::Proceed(token) => token,
            other => panic!("expected to proceed, got {other:?}"),
        }
    };

    // First call proceeds; a second while it runs sees in-progress.
    let key = unique("evt");
    assert!(!store.is_completed(&key, t0).await.unwrap(), "nothing yet");
    let token = proceed(store.begin(&key, t0, hold).await.unwrap());
    assert_eq!(
        store.begin(&key, t0 + secs(1), hold).await.unwrap(),
        Claim::InProgress
    );
    assert!(
        !store.is_completed(&key, t0 + secs(1)).await.unwrap(),
        "in progress"
    );
    // Completed: a later call sees completed, and release does not undo it.
    store.complete(&key, t0 + secs(2), keep).await.unwrap();
    assert!(store.is_completed(&key, t0 + secs(3)).await.unwrap());
    assert!(
        !store.is_completed(&key, t0 + secs(3) + keep).await.unwrap(),
        "not after its window"
    );
    assert_eq!(
        store.begin(&key, t0 + secs(3600), hold).await.unwrap(),
        Claim::Completed
    );
    store.release(&key, &token).await.unwrap();
    assert_eq!(
        store.begin(&key, t0 + secs(7200), hold).await.unwrap(),
        Claim::Completed
    );
    // After the window the record is expired: the event may proceed again.
    proceed(store.begin(&key, t0 + secs(3) + keep, hold).await.unwrap());

    // A claim whose holder crashed lapses after `hold`; the late holder's release then
    // leaves the new holder's claim alone.
    let crashed = unique("evt");
    let late = proceed(store.begin(&crashed, t0, hold).await.unwrap());
    assert_eq!(
        store.begin(&crashed, t0 + secs(59), hold).await.unwrap(),
        Claim::InProgress
    );
    let current = proceed(store.begin(&crashed, t0 + secs(61), hold).await.unwrap());
    store.release(&crashed, &late).await.unwrap();
    assert_eq!(
        store.begin(&crashed, t0 + secs(62), hold).await.unwrap(),
        Claim::InProgress
    );
    store.release(&crashed, &current).await.unwrap();
    proceed(store.begin(&crashed, t0 + secs(63), hold).await.unwrap());

    // Released after a failure: the retry proceeds at once.
    let failed = unique("evt");
    let token = proceed(store.begin(&failed, t0, hold).await.unwrap());
    store.release(&failed, &token).await.unwrap();
    proceed(store.begin(&failed, t0 + secs(1), hold).await.unwrap());

    // A claim that is sending still counts as in progress, held from then on for the
    // longer hold it is given; released, it proceeds.
    let sent = unique("evt");
    let token = proceed(store.begin(&sent, t0, hold).await.unwrap());
    store
        .sending(&sent, &token, t0 + secs(1), secs(600))
        .await
        .unwrap();
    assert_eq!(
        store.begin(&sent, t0 + secs(1), hold).await.unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        store.begin(&sent, t0 + secs(300), hold).await.unwrap(),
        Claim::InProgress,
        "held past its first hold"
    );
    store.release(&sent, &token).await.unwrap();
    proceed(store.begin(&sent, t0 + secs(302), hold).await.unwrap());
    // Someone else's token marks nothing: the lapsed claim stays lapsed.
    let lapsed = unique("evt");
    proceed(store.begin(&lapsed, t0, hold).await.unwrap());
    let stranger = proceed(store.begin(&unique("evt"), t0, hold).await.unwrap());
    store
        .sending(&lapsed, &stranger, t0 + secs(1), secs(600))
        .await
        .unwrap();
    proceed(store.begin(&lapsed, t0 + secs(61), hold).await.unwrap());

    // Truly concurrent claims: exactly one proceeds.
    for _ in 0..5 {
        let raced = unique("evt");
        let (a, b) = tokio::join!(store.begin(&raced, t0, hold), store.begin(&raced, t0, hold));
        let proceeded = [a.unwrap(), b.unwrap()]
            .iter()
            .filter(|c| matches!(c, Claim::Proceed(_)))
            .count();
        assert_eq!(proceeded, 1);
    }

    // A batch's claims in one call, answered in order: completed, held elsewhere, new.
    let (done, held, new) = (unique("evt"), unique("evt"), unique("evt"));
    proceed(store.begin(&done, t0, hold).await.unwrap());
    store.complete(&done, t0, keep).await.unwrap();
    proceed(store.begin(&held, t0, hold).await.unwrap());
    let claims = store
        .begin_all(&[&done, &held, &new], t0 + secs(1), hold)
        .await
        .unwrap();
    assert!(
        matches!(
            claims.as_slice(),
            [Claim::Completed, Claim::InProgress, Claim::Proceed(_)]
        ),
        "{claims:?}"
    );
    assert_eq!(
        store.begin(&new, t0 + secs(1), hold).await.unwrap(),
        Claim::InProgress,
        "the batch holds its new claim"
    );
}

/// The behaviour every state store must have (`StateStore`): state records are absent,
/// created once, replaced only from the version read, and absent again once expired
/// (then anyone may create it anew). Each adapter's test runs it.
pub async fn state_store_contract(store: &dyn okr_pipeline::idempotency::StateStore) {
    use okr_pipeline::idempotency::StateWrite;
    use time::macros::datetime;

    let t0 = datetime!(2026-11-20 09:00 UTC);
    let keep = Duration::from_secs(24 * 3600);
    let secs = |n: u64| Duration::from_secs(n);
    let state = unique("alert-state");
    let save = |expected: Option<u64>, value: &'static str, now| {
        let write = StateWrite {
            key: &state,
            expected,
            value,
            now,
            keep,
        };
        async move { store.save_state(&write).await.unwrap() }
    };
    assert_eq!(store.load_state(&state, t0).await.unwrap(), None);
    assert!(save(None, "one", t0).await);
    assert!(!save(None, "rival", t0).await);
    let read = store.load_state(&state, t0).await.unwrap().unwrap();
    assert_eq!(read.value, "one");
    assert!(save(Some(read.version), "two", t0 + secs(1)).await);
    assert!(!save(Some(read.version), "stale", t0 + secs(2)).await);
    let read = store
        .load_state(&state, t0 + secs(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.value, "two");
    let later = t0 + secs(1) + keep;
    assert_eq!(store.load_state(&state, later).await.unwrap(), None);
    assert!(save(None, "anew", later).await);
    assert_eq!(
        store
            .load_state(&state, later)
            .await
            .unwrap()
            .unwrap()
            .value,
        "anew"
    );

    // Concurrent first writes of a state record: exactly one is stored.
    for _ in 0..5 {
        let raced = unique("alert-state");
        let write = |value| StateWrite {
            key: &raced,
            expected: None,
            value,
            now: t0,
            keep,
        };
        let (first, second) = (write("a"), write("b"));
        let (a, b) = tokio::join!(store.save_state(&first), store.save_state(&second));
        assert_eq!(
            [a.unwrap(), b.unwrap()]
                .iter()
                .filter(|saved| **saved)
                .count(),
            1
        );
    }
}

/// A progress read model table as the template declares it (key `key`, the
/// `by-written-at` index), named uniquely.
pub async fn progress_table(client: &aws_sdk_dynamodb::Client) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    use okr_aws::progress_dynamodb::BY_WRITTEN_AT;
    let table = unique("okr-progress");
    let attribute = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&table)
        .attribute_definitions(attribute("key", ScalarAttributeType::S))
        .attribute_definitions(attribute("feed", ScalarAttributeType::S))
        .attribute_definitions(attribute("written_at", ScalarAttributeType::N))
        .key_schema(key("key", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(BY_WRITTEN_AT)
                .key_schema(key("feed", KeyType::Hash))
                .key_schema(key("written_at", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    table
}

/// An idempotency table as the template declares it (key `id`), named uniquely.
pub async fn idempotency_table(client: &aws_sdk_dynamodb::Client) -> String {
    keyed_table(client, "okr-webhooks-idempotency", "id").await
}

/// A pay-per-request table with the string partition key `key`, named `prefix` and a
/// unique suffix.
async fn keyed_table(client: &aws_sdk_dynamodb::Client, prefix: &str, key: &str) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let table = unique(prefix);
    client
        .create_table()
        .table_name(&table)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    table
}

/// The presets written as data, each with a sample body in `events/bodies/<preset>/`.
pub const DATA_PRESETS: [&str; 13] = [
    "github",
    "jira",
    "greenhouse",
    "ashby",
    "lever",
    "workable",
    "bamboohr",
    "hibob",
    "deel",
    "gusto",
    "remote",
    "linear",
    "asana",
];

/// A preset's sample body, made fresh where the vendor signs a time in the body
/// (Linear's `webhookTimestamp`, within 60 s of now; Lever's `triggeredAt`, 300 s).
pub fn preset_body(preset: &str, now_ms: i64) -> Vec<u8> {
    let dir = format!("{}/../events/bodies/{preset}", env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "json"))
        .unwrap_or_else(|| panic!("no sample body in {dir}"));
    let body = std::fs::read(&file).unwrap();
    let fresh = match preset {
        "linear" => Some("webhookTimestamp"),
        "lever" => Some("triggeredAt"),
        _ => None,
    };
    if let Some(field) = fresh {
        let mut value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        value[field] = now_ms.into();
        return serde_json::to_vec(&value).unwrap();
    }
    body
}

/// Sign `body` as the preset's vendor documents it, by the independent Python signer
/// (`cli/tests/signers/presets.py`): the headers, and the body to send (Lever carries
/// its signature in the body).
pub fn sign_as_vendor(
    preset: &str,
    secret: &str,
    body: &[u8],
    now: i64,
) -> (Vec<(String, String)>, Vec<u8>) {
    let file = std::env::temp_dir().join(unique(&format!("okr-webhooks-{preset}-body")));
    std::fs::write(&file, body).unwrap();
    let signer = format!(
        "{}/../cli/tests/signers/presets.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = Command::new("python3")
        .arg(&signer)
        .args([preset, secret])
        .arg(&file)
        .args(["--now", &now.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); tests/run.sh installs it"));
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "{preset}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let (header_lines, sent) = match text.split_once("--body\n") {
        Some((headers, body)) => (headers.to_owned(), body.trim_end().as_bytes().to_vec()),
        None => (text.clone(), body.to_vec()),
    };
    let headers = header_lines
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once(": ").unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect();
    (headers, sent)
}

/// A copy of a signed delivery that must no longer verify: one byte of the body
/// changed, or for Lever (which signs only its token and time) the token.
pub fn tampered(preset: &str, body: &[u8]) -> Vec<u8> {
    if preset == "lever" {
        let mut value: serde_json::Value = serde_json::from_slice(body).unwrap();
        value["token"] = "not-the-token".into();
        return serde_json::to_vec(&value).unwrap();
    }
    let mut changed = body.to_vec();
    let at = changed.len() / 2;
    changed[at] ^= 0x01;
    changed
}

/// A directory table as the template declares it (key `key`), named uniquely.
pub async fn directory_table(client: &aws_sdk_dynamodb::Client) -> String {
    keyed_table(client, "okr-directory", "key").await
}

/// What every directory store does: a write names the version it read (none: only
/// where nothing is), a stale one writes nothing, entries come back with their
/// versions, and a removal removes (twice is not an error).
pub async fn directory_store_contract(store: &dyn okr_consumers::directory::DirectoryStore) {
    use okr_consumers::directory::{Entry, Erased, Link};
    let link = |person: &str| {
        Entry::Link(Link {
            owner: "Sam Okafor".into(),
            person: person.into(),
        })
    };
    assert!(store.entries().await.unwrap().is_empty());
    assert!(store.put(&link("person#a#1"), None).await.unwrap());
    assert!(
        !store.put(&link("person#a#2"), None).await.unwrap(),
        "one is there"
    );
    assert!(store.put(&link("person#a#2"), Some(1)).await.unwrap());
    assert!(
        !store.put(&link("person#a#3"), Some(1)).await.unwrap(),
        "stale"
    );
    let erased = Entry::Erased(Erased {
        hash: "ab".repeat(32),
    });
    assert!(store.put(&erased, None).await.unwrap());
    let mut entries = store.entries().await.unwrap();
    entries.sort_by_key(|v| v.entry.key());
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].entry, erased);
    assert_eq!(entries[0].version, 1);
    assert_eq!(entries[1].entry, link("person#a#2"));
    assert_eq!(entries[1].version, 2);
    store.remove(&link("x").key()).await.unwrap();
    store.remove(&link("x").key()).await.unwrap();
    let entries = store.entries().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert!(
        store.put(&link("person#a#4"), None).await.unwrap(),
        "gone, so new"
    );
    // A batch's writes in one call: a stale first writes nothing; fresh ones all land.
    let other = |person: &str| {
        Entry::Link(Link {
            owner: "Ada Obi".into(),
            person: person.into(),
        })
    };
    assert!(
        !store
            .put_all(&[(link("person#a#5"), None), (other("person#b#1"), None)])
            .await
            .unwrap(),
        "stale"
    );
    assert_eq!(store.entries().await.unwrap().len(), 2);
    assert!(
        store
            .put_all(&[(link("person#a#5"), Some(1)), (other("person#b#1"), None)])
            .await
            .unwrap()
    );
    let mut entries = store.entries().await.unwrap();
    entries.sort_by_key(|v| v.entry.key());
    let written: Vec<(Entry, u64)> = entries.into_iter().map(|v| (v.entry, v.version)).collect();
    assert!(written.contains(&(link("person#a#5"), 2)), "{written:?}");
    assert!(written.contains(&(other("person#b#1"), 1)), "{written:?}");
}

/// Every message moto's SES holds as sent (the server's, not only this test's), as
/// moto's data API shows it: `destinations.ToAddresses`, `subject`, `body`.
pub async fn ses_messages(moto: &Moto) -> Vec<serde_json::Value> {
    let data: serde_json::Value = reqwest::get(format!("{}/moto-api/data.json", moto.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// What moto's SES holds as sent to `address` alone: (subject, body) of each message,
/// in order.
pub async fn ses_sent_to(moto: &Moto, address: &str) -> Vec<(String, String)> {
    ses_messages(moto)
        .await
        .iter()
        .filter(|m| m["destinations"]["ToAddresses"] == serde_json::json!([address]))
        .map(|m| {
            let text = |field: &str| m[field].as_str().unwrap_or_default().to_owned();
            (text("subject"), text("body"))
        })
        .collect()
}

/// A stand-in of Slack's Web API under `/api` that knows one user, `email` with the id
/// `user`: `users.lookupByEmail` finds them, `chat.postMessage` accepts anything.
pub async fn slack_web_api(email: &str, user: &str) -> wiremock::MockServer {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let slack = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/users.lookupByEmail"))
        .and(query_param("email", email))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"ok": true, "user": {"id": user}})),
        )
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
        .mount(&slack)
        .await;
    slack
}

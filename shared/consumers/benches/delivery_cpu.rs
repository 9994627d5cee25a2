//! The CPU ingest spends on one delivery, per endpoint's sample body: verify the
//! signature, normalize the body, encode the queue messages it routes to; and the three
//! together. The four built-in sources, a preset written as data (Greenhouse) and the
//! declared scheme and mapping of docs/writing-a-scheme.md (`goals`), side by side.
//! `cargo bench -p okr-consumers --bench delivery_cpu` (docs/performance.md).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use okr_core::endpoints::{Endpoint, Endpoints};
use okr_core::routing::{NotifyRules, route};
use okr_core::{SigningSecret, Source, normalize, sign, verify};
use okr_pipeline::queue::QueueMessage;
use time::OffsetDateTime;

/// Each built-in source's (first) secret in `events/secrets.json`, the samples' own.
fn secret(source: Source) -> SigningSecret {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/secrets.json");
    let secrets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("events/secrets.json")).expect("JSON");
    let value = &secrets[source.as_str()];
    let text = value
        .as_str()
        .or_else(|| value[0].as_str())
        .expect("a secret per source");
    SigningSecret::new(text)
}

/// The declared endpoint of docs/writing-a-scheme.md.
const GOALS: &str = r#"{"endpoints": {"goals": {
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
  }}}}"#;

const GOAL_BODY: &str = r#"{"event":"goal.progress","sent_at":"2026-12-05T10:00:00Z","by":{"id":"u7","name":"Sam Okafor"},"goal":{"id":"g42","name":"Reach 500 weekly active teams","objective_id":"o9","progress":60,"previous_progress":45,"status":"on_track"}}"#;

struct Sample {
    name: &'static str,
    endpoint: Endpoint,
    secret: SigningSecret,
    body: Vec<u8>,
    headers: HeaderMap,
}

fn samples(now: OffsetDateTime) -> Vec<Sample> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/bodies");
    let read = |path: &str| std::fs::read(format!("{dir}/{path}")).expect("sample body");
    let builtin = |source: Source| Endpoint::of_source(source).expect("built in");
    let goals = Endpoints::parse(GOALS)
        .expect("the documented example")
        .get("goals")
        .expect("goals");
    let greenhouse = Endpoint::of_source("greenhouse".parse().expect("a name")).expect("a preset");
    [
        (
            "peopleforce employee_create",
            builtin(Source::PEOPLEFORCE),
            secret(Source::PEOPLEFORCE),
            read("peopleforce/employee_create.json"),
        ),
        (
            "peoplelogic key_result_progress",
            builtin(Source::PEOPLELOGIC),
            secret(Source::PEOPLELOGIC),
            read("peoplelogic/key_result_progress.json"),
        ),
        (
            "perscom rankrecord_updated",
            builtin(Source::PERSCOM),
            secret(Source::PERSCOM),
            read("perscom/rankrecord_updated.json"),
        ),
        (
            "standard key_result_progress",
            builtin(Source::STANDARD),
            secret(Source::STANDARD),
            read("standard/key_result_progress.json"),
        ),
        (
            "greenhouse (preset) candidate_hired",
            greenhouse,
            SigningSecret::new("greenhouse-secret"),
            read("greenhouse/candidate_hired.json"),
        ),
        (
            "goals (declared scheme and mapping) goal.progress",
            goals,
            SigningSecret::new("goals-secret"),
            GOAL_BODY.as_bytes().to_vec(),
        ),
    ]
    .into_iter()
    .map(|(name, endpoint, secret, body)| {
        let signed = sign(
            endpoint.provider(),
            &secret,
            &body,
            "msg_bench",
            now.unix_timestamp(),
        )
        .expect("signs");
        let mut headers = HeaderMap::new();
        for (name, value) in signed {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(&value).expect("header value"),
            );
        }
        Sample {
            name,
            endpoint,
            secret,
            body,
            headers,
        }
    })
    .collect()
}

fn delivery(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let rules = NotifyRules::default();
    for sample in samples(now) {
        let mut group = c.benchmark_group(sample.name);
        group.throughput(Throughput::Bytes(sample.body.len() as u64));
        let (endpoint, headers, body) = (&sample.endpoint, &sample.headers, &sample.body[..]);
        let provider = endpoint.provider();
        let secrets = [sample.secret.clone()];
        group.bench_function("verify", |b| {
            b.iter(|| verify(provider, &secrets, headers, black_box(body), now).expect("verifies"))
        });
        group.bench_function("normalize", |b| {
            b.iter(|| normalize(endpoint, headers, black_box(body), now).expect("normalizes"))
        });
        let event = normalize(endpoint, headers, body, now).expect("normalizes");
        let consumers = route(&event, &rules);
        group.bench_function("encode", |b| {
            b.iter(|| QueueMessage::routed(black_box(&event), &consumers).expect("encodes"))
        });
        group.bench_function("delivery", |b| {
            b.iter(|| {
                verify(provider, &secrets, headers, black_box(body), now).expect("verifies");
                let event = normalize(endpoint, headers, body, now).expect("normalizes");
                QueueMessage::routed(&event, &route(&event, &rules)).expect("encodes")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, delivery);
criterion_main!(benches);

//! The CPU ingest spends on one delivery, per source's sample body: verify the
//! signature, normalize the body, encode the queue messages it routes to; and the three
//! together. `cargo bench -p okr-consumers --bench delivery_cpu` (docs/performance.md).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use okr_core::routing::{NotifyRules, route};
use okr_core::{SigningSecret, Source, normalize, sign, verify};
use okr_pipeline::queue::QueueMessage;
use time::OffsetDateTime;

/// Each source's (first) secret in `events/secrets.json`, the samples' own.
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

struct Sample {
    name: &'static str,
    source: Source,
    body: Vec<u8>,
    headers: HeaderMap,
}

fn samples(now: OffsetDateTime) -> Vec<Sample> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/bodies");
    [
        (
            "peopleforce employee_create",
            Source::PEOPLEFORCE,
            "peopleforce/employee_create.json",
        ),
        (
            "peoplelogic key_result_progress",
            Source::PEOPLELOGIC,
            "peoplelogic/key_result_progress.json",
        ),
        (
            "perscom rankrecord_updated",
            Source::PERSCOM,
            "perscom/rankrecord_updated.json",
        ),
        (
            "standard key_result_progress",
            Source::STANDARD,
            "standard/key_result_progress.json",
        ),
    ]
    .into_iter()
    .map(|(name, source, path)| {
        let body = std::fs::read(format!("{dir}/{path}")).expect("sample body");
        let secret = secret(source);
        let signed = sign(
            okr_core::providers::provider(source).unwrap(),
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
            source,
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
        let (source, headers, body) = (sample.source, &sample.headers, &sample.body[..]);
        let secrets = [secret(source)];
        group.bench_function("verify", |b| {
            b.iter(|| {
                verify(
                    okr_core::providers::provider(source).unwrap(),
                    &secrets,
                    headers,
                    black_box(body),
                    now,
                )
                .expect("verifies")
            })
        });
        group.bench_function("normalize", |b| {
            b.iter(|| {
                normalize(
                    &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
                    headers,
                    black_box(body),
                    now,
                )
                .expect("normalizes")
            })
        });
        let event = normalize(
            &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
            headers,
            body,
            now,
        )
        .expect("normalizes");
        let consumers = route(&event, &rules);
        group.bench_function("encode", |b| {
            b.iter(|| QueueMessage::routed(black_box(&event), &consumers).expect("encodes"))
        });
        group.bench_function("delivery", |b| {
            b.iter(|| {
                verify(
                    okr_core::providers::provider(source).unwrap(),
                    &secrets,
                    headers,
                    black_box(body),
                    now,
                )
                .expect("verifies");
                let event = normalize(
                    &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
                    headers,
                    body,
                    now,
                )
                .expect("normalizes");
                QueueMessage::routed(&event, &route(&event, &rules)).expect("encodes")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, delivery);
criterion_main!(benches);

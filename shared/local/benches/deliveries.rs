//! What the delivery log costs `serve` per request: the record made from the request
//! (the body's SHA-256, the headers kept) for the seed's PeopleForce hire, and its
//! write to `deliveries.sqlite`; a journey step handed to the journal (its writer thread
//! commits them in batches); and, printed, the bytes a record and a step take on disk
//! (over 10,000 records and the 40,000 steps of their events: enqueued, stored, posted,
//! applied) and the writer's rate; and a whole delivery of the hire through ingest
//! (verify, normalize, route, enqueue to a queue that takes it at once) without the log,
//! and with it (its record and its first step), and without it once the tracer that
//! exports nothing is installed (the traceparent each message carries).
//! `cargo bench -p okr-local --bench deliveries` (docs/deliveries.md).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use okr_consumers::deliveries::{Delivery, DeliveryLog, DeliveryStore};
use okr_local::deliveries_sqlite::SqliteDeliveries;
use okr_pipeline::journal::{Journal, Step};
use time::OffsetDateTime;

const BODY: &[u8] = include_bytes!("../../../events/bodies/peopleforce/employee_create.json");

fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/json"),
        ("user-agent", "PeopleForce-Webhooks/1.0"),
        (
            "x-peopleforce-signature",
            "sha256=267655772e53f0f31e9ac41dea35dc2f359b0d57659354577c50c9c7203b41cc",
        ),
        ("host", "127.0.0.1:3000"),
        ("accept", "*/*"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
}

fn record(received: &HeaderMap, n: u64) -> Delivery {
    let mut delivery = Delivery::received(
        OffsetDateTime::now_utc(),
        "peopleforce",
        "POST",
        received,
        BODY,
    );
    delivery.status = 202;
    delivery.outcome = "accepted".into();
    delivery.reason = "accepted".into();
    delivery.event_id = Some(format!("evt_{n:032x}"));
    delivery.event_type = Some("employee.created".into());
    delivery
}

/// The four steps of a hire's journey in `serve`, as its consumers write them.
fn steps(n: u64) -> Vec<Step> {
    let event_id = format!("evt_{n:032x}");
    [
        (
            "ingest",
            "enqueued",
            "to warehouse, slack, progress".to_owned(),
        ),
        (
            "warehouse",
            "stored",
            "events/v1/date=2026-12-06/part-20261206T090000Z-0123456789abcdef.ndjson.gz".to_owned(),
        ),
        ("slack", "posted", "one message".to_owned()),
        (
            "progress",
            "applied",
            "nothing new for the read model; the directory updated".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(consumer, outcome, detail)| Step {
        event_id: event_id.clone(),
        consumer: consumer.into(),
        outcome: outcome.into(),
        time: OffsetDateTime::now_utc(),
        attempt: 1,
        detail,
        replay: None,
    })
    .collect()
}

fn size(path: &std::path::Path) -> u64 {
    let checkpoint = rusqlite::Connection::open(path).expect("opens");
    checkpoint
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoints");
    std::fs::metadata(path).expect("a file").len()
}

/// A queue that takes every message at once: ingest's own work is what is measured.
struct Discard;

#[async_trait::async_trait]
impl okr_pipeline::queue::EventQueue for Discard {
    async fn send(
        &self,
        _consumer: okr_core::routing::Consumer,
        _message: &okr_pipeline::queue::QueueMessage,
    ) -> Result<okr_pipeline::queue::Sent, okr_pipeline::queue::QueueError> {
        Ok(okr_pipeline::queue::Sent { duplicate: false })
    }
}

/// Ingest over the repository's sample secrets, enqueueing to [`Discard`].
fn ingest() -> okr_consumers::ingest::Ingest {
    let secrets = include_str!("../../../events/secrets.json");
    let secrets = okr_core::signing::SigningSecrets::parse(secrets).expect("the sample secrets");
    okr_consumers::ingest::Ingest::new(
        okr_pipeline::secrets::SecretCache::new(
            std::sync::Arc::new(okr_pipeline::secrets::memory::MemorySecretStore::new(
                secrets,
            )),
            Duration::from_secs(300),
        ),
        std::sync::Arc::new(Discard),
        okr_core::routing::NotifyRules::default(),
        256 * 1024,
        std::sync::Arc::new(okr_pipeline::metrics::NoMetrics),
    )
}

/// The sample PeopleForce hire as `serve` hands it to ingest, signed.
fn hire_request() -> okr_consumers::ingest::IngestRequest {
    let sample: serde_json::Value =
        serde_json::from_str(include_str!("../../../events/ingest/peopleforce.json"))
            .expect("the sample request");
    let mut headers = HeaderMap::new();
    for (name, value) in sample["headers"].as_object().expect("headers") {
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("a name"),
            HeaderValue::from_str(value.as_str().expect("text")).expect("a value"),
        );
    }
    okr_consumers::ingest::IngestRequest {
        method: http::Method::POST,
        source: "peopleforce".into(),
        headers,
        body: sample["body"].as_str().expect("a body").as_bytes().to_vec(),
        body_is_base64: false,
    }
}

/// The time `iters` runs of `hand` take, a thousand at a time, the log written (and
/// not timed) after each thousand.
fn in_thousands(
    runtime: &tokio::runtime::Runtime,
    log: &SqliteDeliveries,
    iters: u64,
    mut hand: impl FnMut(),
) -> Duration {
    let mut took = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let now = left.min(1000);
        let started = std::time::Instant::now();
        for _ in 0..now {
            hand();
        }
        took += started.elapsed();
        runtime.block_on(log.flush());
        left -= now;
    }
    took
}

fn deliveries(c: &mut Criterion) {
    let received = headers();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("deliveries.sqlite");
    let log = SqliteDeliveries::open(&path, Duration::from_secs(7 * 24 * 3600), 1_000_000)
        .expect("opens");

    // Storage: 10,000 records (written once a read waits for them), then the database
    // and its write-ahead log checkpointed.
    let started = std::time::Instant::now();
    runtime.block_on(async {
        for n in 0..10_000 {
            log.record(&record(&received, n)).await.expect("records");
        }
        log.list(&okr_consumers::deliveries::Filter::default())
            .await
            .expect("reads");
    });
    eprintln!(
        "10,000 records written in {:.2?} ({:.0} records/s)",
        started.elapsed(),
        10_000.0 / started.elapsed().as_secs_f64()
    );
    let records = size(&path);
    eprintln!(
        "deliveries.sqlite: {records} bytes for 10,000 records: {} bytes a record",
        records / 10_000
    );
    // Their events' steps, four each, as the consumers hand them over (one batch each),
    // and then read back (which waits for the writer).
    let started = std::time::Instant::now();
    runtime.block_on(async {
        for n in 0..10_000 {
            for step in steps(n) {
                log.append(vec![step]).await;
            }
        }
        log.journey("evt_0").await.expect("reads");
    });
    let took = started.elapsed();
    let with_steps = size(&path);
    eprintln!(
        "40,000 steps written in {took:.2?} ({:.0} steps/s); {} bytes a step; {} bytes a delivery with its journey",
        40_000.0 / took.as_secs_f64(),
        (with_steps - records) / 40_000,
        with_steps / 10_000
    );

    let mut group = c.benchmark_group("delivery log");
    group.bench_function("the record of a PeopleForce hire (hash, headers)", |b| {
        let mut n = 0;
        b.iter(|| {
            n += 1;
            black_box(record(black_box(&received), n))
        })
    });
    // Hand-offs timed a thousand at a time, each thousand written before the next (so
    // none is dropped: the writer is slower than a hand-off).
    group.bench_function("its hand-off to the log's writer", |b| {
        let delivery = record(&received, 0);
        b.iter_custom(|iters| {
            in_thousands(&runtime, &log, iters, || {
                runtime
                    .block_on(log.record(black_box(&delivery)))
                    .expect("records")
            })
        })
    });
    // A whole delivery, without the log and with it.
    let request = hire_request();
    let plain = ingest();
    let logged = ingest()
        .with_deliveries(std::sync::Arc::new(log.clone()))
        .journaling(std::sync::Arc::new(log.clone()));
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        runtime
            .block_on(plain.handle(request.clone(), now))
            .status
            .as_u16(),
        202
    );
    group.bench_function(
        "a delivery of the hire through ingest, without the log",
        |b| b.iter(|| runtime.block_on(plain.handle(black_box(request.clone()), now))),
    );
    group.bench_function("the same delivery, with the log and its first step", |b| {
        b.iter(|| runtime.block_on(logged.handle(black_box(request.clone()), now)))
    });
    // The same delivery with the tracer `serve` installs when no OTLP endpoint is set:
    // ingest's span gets its ids and its messages their traceparent, nothing recorded.
    okr_pipeline::trace::install("okr-webhooks", okr_pipeline::trace::Export::Off)
        .expect("installs");
    group.bench_function(
        "the delivery without the log, traces on but not exported",
        |b| b.iter(|| runtime.block_on(plain.handle(black_box(request.clone()), now))),
    );
    group.bench_function("a journey step handed to the journal", |b| {
        let step = steps(0).remove(0);
        b.iter_custom(|iters| {
            in_thousands(&runtime, &log, iters, || {
                runtime.block_on(log.append(vec![black_box(step.clone())]))
            })
        })
    });
    group.finish();
}

criterion_group!(benches, deliveries);
criterion_main!(benches);

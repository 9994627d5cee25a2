//! What the delivery log costs `serve` per request: the record made from the request
//! (the body's SHA-256, the headers kept) for the seed's PeopleForce hire, and its
//! write to `deliveries.sqlite`; a journey step handed to the journal (its writer thread
//! commits them in batches); and, printed, the bytes a record and a step take on disk
//! (over 10,000 records and the 40,000 steps of their events: enqueued, stored, posted,
//! applied) and the writer's rate. `cargo bench -p okr-local --bench deliveries`
//! (docs/deliveries.md).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use okr_consumers::deliveries::{Delivery, DeliveryLog};
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

fn deliveries(c: &mut Criterion) {
    let received = headers();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("deliveries.sqlite");
    let log = SqliteDeliveries::open(&path, Duration::from_secs(7 * 24 * 3600), 1_000_000)
        .expect("opens");

    // Storage: 10,000 records, then the database and its write-ahead log checkpointed.
    runtime.block_on(async {
        for n in 0..10_000 {
            log.record(&record(&received, n)).await.expect("records");
        }
    });
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
    group.bench_function("its write to deliveries.sqlite", |b| {
        let delivery = record(&received, 0);
        b.iter(|| {
            runtime
                .block_on(log.record(black_box(&delivery)))
                .expect("records")
        })
    });
    group.bench_function("a journey step handed to the journal", |b| {
        let mut n = 0;
        b.iter_batched(
            || {
                n += 1;
                steps(n).remove(0)
            },
            |step| runtime.block_on(log.append(vec![black_box(step)])),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, deliveries);
criterion_main!(benches);

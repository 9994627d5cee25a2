//! What the delivery log costs `serve` per request: the record made from the request
//! (the body's SHA-256, the headers kept) for the seed's PeopleForce hire, and its
//! write to `deliveries.sqlite`; and the bytes a record takes on disk (printed, over
//! 10,000 records). `cargo bench -p okr-local --bench deliveries` (docs/deliveries.md).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use okr_consumers::deliveries::{Delivery, DeliveryLog};
use okr_local::deliveries_sqlite::SqliteDeliveries;
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
    let checkpoint = rusqlite::Connection::open(&path).expect("opens");
    checkpoint
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoints");
    let size = std::fs::metadata(&path).expect("a file").len();
    eprintln!(
        "deliveries.sqlite: {size} bytes for 10,000 records: {} bytes a record",
        size / 10_000
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
    group.finish();
}

criterion_group!(benches, deliveries);
criterion_main!(benches);

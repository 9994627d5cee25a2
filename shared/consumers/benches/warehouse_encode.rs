//! The warehouse sink's encode path: normalized events into gzip NDJSON, the work done
//! per event before one write per batch. `cargo bench -p okr-consumers --bench warehouse_encode`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::HeaderMap;
use okr_consumers::warehouse::NdjsonGz;
use okr_core::{Event, Source, normalize};
use time::macros::datetime;

fn samples() -> Vec<Event> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/bodies");
    [
        (Source::PEOPLELOGIC, "peoplelogic/objective_completed.json"),
        (Source::PEOPLELOGIC, "peoplelogic/key_result_progress.json"),
        (Source::PEOPLEFORCE, "peopleforce/employee_create.json"),
        (Source::PERSCOM, "perscom/rankrecord_updated.json"),
        (Source::STANDARD, "standard/key_result_progress.json"),
    ]
    .into_iter()
    .map(|(source, path)| {
        let body = std::fs::read(format!("{dir}/{path}")).expect("sample body");
        normalize(
            &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
            &HeaderMap::new(),
            &body,
            datetime!(2026-11-20 09:30 UTC),
        )
        .expect("sample normalizes")
    })
    .collect()
}

fn encode(c: &mut Criterion) {
    let samples = samples();
    // A thousand distinct events (ids, entities and times differ, as in a real batch).
    let batch: Vec<Event> = samples
        .iter()
        .cycle()
        .take(1_000)
        .enumerate()
        .map(|(n, sample)| {
            let mut event = sample.clone();
            event.id = format!(
                "evt_{:032x}",
                (n as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
            );
            event.entity.id = Some(format!("{}-{n}", event.entity.id.unwrap_or_default()));
            event.received_at += std::time::Duration::from_millis(n as u64 * 37);
            event
        })
        .collect();
    // What a warehouse-sink record costs: the SQS body (the event's JSON) decoded, then
    // encoded as one compressed line.
    let bodies: Vec<String> = batch
        .iter()
        .map(|e| serde_json::to_string(e).expect("encodes"))
        .collect();

    let mut group = c.benchmark_group("warehouse_encode");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("encode_1000_events", |b| {
        b.iter(|| {
            let mut ndjson = NdjsonGz::default();
            for event in &batch {
                ndjson.push(black_box(event)).expect("encodes");
            }
            black_box(ndjson.finish().expect("finishes"))
        })
    });
    group.bench_function("decode_and_encode_1000_records", |b| {
        b.iter(|| {
            let mut ndjson = NdjsonGz::default();
            for body in &bodies {
                let event: Event = serde_json::from_str(black_box(body)).expect("decodes");
                ndjson.push(&event).expect("encodes");
            }
            black_box(ndjson.finish().expect("finishes"))
        })
    });
    group.finish();

    let mut ndjson = NdjsonGz::default();
    for event in &batch {
        ndjson.push(event).expect("encodes");
    }
    let raw: usize = bodies.iter().map(|b| b.len() + 1).sum();
    let gzip = ndjson.finish().expect("finishes").len();
    println!(
        "1000 events: {raw} bytes of NDJSON -> {gzip} bytes gzip ({:.1}x)",
        raw as f64 / gzip as f64
    );
}

criterion_group!(benches, encode);
criterion_main!(benches);

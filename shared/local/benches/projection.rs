//! How many events a second the progress read model applies in `serve`: SQS batches of
//! 500 (serve's batch size) of the notification view of Peoplelogic key result updates,
//! decoded and applied in one SQLite transaction each (synchronous=FULL, as serve runs
//! it), 5,000 key results updated four times each, out of order within a batch.
//! `cargo bench -p okr-local --bench projection` (docs/dashboard.md).

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::HeaderMap;
use okr_consumers::progress::ProgressProjection;
use okr_core::routing::notification_view;
use okr_core::rules::Thresholds;
use okr_core::{Source, normalize};
use okr_local::progress_sqlite::SqliteProgressStore;
use serde_json::json;
use time::OffsetDateTime;

const KEY_RESULTS: usize = 5_000;
const UPDATES: usize = 4;
const BATCH: usize = 500;

/// The batches, as the progress queue holds them.
fn batches() -> Vec<SqsEvent> {
    let received = OffsetDateTime::now_utc();
    let mut messages = Vec::new();
    for update in 0..UPDATES {
        for kr in 0..KEY_RESULTS {
            // Later updates first within each pass of a batch: half the events are late.
            let day = 1 + (UPDATES - 1 - update) * 5 + (kr % 2) * update;
            let body = json!({
                "eventType": "objective.patch", "id": format!("kr-{kr}"),
                "parentId": format!("o-{}", kr / 50), "title": format!("Key result {kr}"),
                "startingValue": 0, "targetValue": 100,
                "currentValue": {"previous": update * 10, "current": update * 10 + kr % 10},
                "status": {"previous": "ON_TRACK", "current": if kr.is_multiple_of(7) { "AT_RISK" } else { "ON_TRACK" }},
                "updatedBy": {"id": "u-1", "name": "Sam Okafor"},
                "updatedAt": format!("2025-05-{day:02}T09:00:00Z"),
                "startDate": "2025-04-01", "dueDate": "2025-06-30",
            });
            let event = normalize(
                &okr_core::endpoints::Endpoint::of_source(Source::PEOPLELOGIC).unwrap(),
                &HeaderMap::new(),
                body.to_string().as_bytes(),
                received,
            )
            .expect("normalizes");
            let view = notification_view(&event).expect("cuts down");
            let mut message = SqsMessage::default();
            message.message_id = Some(format!("m-{update}-{kr}"));
            message.body = Some(serde_json::to_string(&view).expect("encodes"));
            messages.push(message);
        }
    }
    messages
        .chunks(BATCH)
        .map(|chunk| {
            let mut batch = SqsEvent::default();
            batch.records = chunk.to_vec();
            batch
        })
        .collect()
}

fn projection(c: &mut Criterion) {
    let batches = batches();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mut group = c.benchmark_group("projection");
    group.sample_size(10);
    group.throughput(Throughput::Elements((KEY_RESULTS * UPDATES) as u64));
    group.bench_function("20,000 events into an empty SQLite read model", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("a directory");
                let store =
                    SqliteProgressStore::open(&dir.path().join("progress.sqlite")).expect("opens");
                let projection = ProgressProjection::new(Arc::new(store), Thresholds::default());
                (dir, projection, batches.clone())
            },
            |(dir, projection, batches)| {
                runtime.block_on(async {
                    for batch in batches {
                        let answer = projection.handle(batch).await.expect("applies");
                        assert!(answer.batch_item_failures.is_empty());
                    }
                });
                dir
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, projection);
criterion_main!(benches);

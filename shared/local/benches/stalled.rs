//! How long a stalled check takes in `serve` at 10,000 key results with nothing new to
//! send (the daily case): the read model and the directory read whole, and one alert
//! state read per key result, all from SQLite; 1,000 of the key results stalled with
//! their alerts already open. `cargo bench -p okr-local --bench stalled`
//! (docs/directory.md).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::HeaderMap;
use okr_consumers::progress::ProgressStore;
use okr_consumers::stalled::{StalledCheck, StalledDestinations};
use okr_core::rules::Thresholds;
use okr_core::{Source, normalize};
use okr_local::directory_sqlite::SqliteDirectory;
use okr_local::progress_sqlite::SqliteProgressStore;
use okr_local::sqlite_store::SqliteIdempotencyStore;
use serde_json::json;
use time::macros::datetime;

const KEY_RESULTS: usize = 10_000;
/// One in ten was last updated long ago: stalled.
const STALLED_EVERY: usize = 10;

fn stalled(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("a directory");
    let now = datetime!(2026-12-07 09:00 UTC);
    let check = runtime.block_on(async {
        let progress =
            SqliteProgressStore::open(&dir.path().join("progress.sqlite")).expect("opens");
        let events = (0..KEY_RESULTS)
            .map(|kr| {
                let day = if kr % STALLED_EVERY == 0 { 1 } else { 30 };
                let body = json!({
                    "eventType": "objective.patch", "id": format!("kr-{kr}"),
                    "parentId": format!("o-{}", kr / 50), "title": format!("Key result {kr}"),
                    "startingValue": 0, "targetValue": 100,
                    "currentValue": {"previous": 10, "current": 20 + kr % 10},
                    "status": {"previous": "ON_TRACK", "current": "ON_TRACK"},
                    "updatedBy": {"id": "u-7", "name": "John Doe"},
                    "updatedAt": format!("2026-11-{day:02}T09:00:00Z"),
                    "startDate": "2026-10-01", "dueDate": "2027-03-31",
                });
                normalize(
                    &okr_core::endpoints::Endpoint::of_source(Source::PEOPLELOGIC).unwrap(),
                    &HeaderMap::new(),
                    body.to_string().as_bytes(),
                    now,
                )
                .expect("normalizes")
            })
            .collect::<Vec<_>>();
        for chunk in events.chunks(500) {
            for applied in progress.apply(chunk.to_vec(), &Thresholds::default()).await {
                applied.expect("applies");
            }
        }
        let directory = SqliteDirectory::open(&dir.path().join("directory.sqlite")).expect("opens");
        let hire = normalize(
            &okr_core::endpoints::Endpoint::of_source(Source::PEOPLEFORCE).unwrap(),
            &HeaderMap::new(),
            include_bytes!("../../../events/bodies/peopleforce/employee_create.json"),
            now,
        )
        .expect("normalizes");
        okr_consumers::directory::apply(&directory, &[hire])
            .await
            .expect("applies");
        let states =
            SqliteIdempotencyStore::open(&dir.path().join("idempotency.sqlite")).expect("opens");
        let check = StalledCheck::new(
            Arc::new(progress),
            Arc::new(directory),
            Arc::new(states),
            StalledDestinations::default(),
            Duration::from_secs(14 * 24 * 3600),
            Duration::from_secs(24 * 3600),
        );
        // The first check opens the stalled ones (no destinations: nothing to send).
        let opened = check
            .run(now, tokio::time::Instant::now() + Duration::from_secs(600))
            .await
            .expect("runs");
        assert_eq!(opened.opened, KEY_RESULTS / STALLED_EVERY);
        check
    });
    let mut group = c.benchmark_group("stalled");
    group.sample_size(10);
    group.throughput(Throughput::Elements(KEY_RESULTS as u64));
    group.bench_function("a check with nothing new, 10,000 key results", |b| {
        b.iter(|| {
            let plan = runtime
                .block_on(check.plan(now + time::Duration::hours(1)))
                .expect("plans");
            assert!(plan.is_empty());
        })
    });
    group.finish();
}

criterion_group!(benches, stalled);
criterion_main!(benches);

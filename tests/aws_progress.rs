//! The progress read model's stores: DynamoDB (through moto, the table as the template
//! declares it) and SQLite behave alike: events out of order, twice, across batches and
//! from two writers at once give the state of applying them in order; the feed's
//! `changed_since` returns what was written.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use http::HeaderMap;
use okr_aws::progress_dynamodb::DynamoDbProgressStore;
use okr_consumers::progress::{ProgressStore, Tracked, next};
use okr_core::rules::Thresholds;
use okr_core::{Event, Source, normalize};
use okr_local::progress_sqlite::SqliteProgressStore;
use okr_webhooks_tests::{Moto, progress_table};
use serde_json::json;
use time::macros::datetime;

fn kr(id: &str, day: u32, current: f64) -> Event {
    let body = json!({
        "eventType": "objective.patch", "id": id, "parentId": "o-1", "title": format!("KR {id}"),
        "startingValue": 0, "targetValue": 100, "currentValue": current, "status": "ON_TRACK",
        "updatedAt": format!("2025-05-{day:02}T09:00:00Z"),
        "startDate": "2025-04-01", "dueDate": "2025-06-30",
    });
    normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLELOGIC).unwrap(),
        &HeaderMap::new(),
        body.to_string().as_bytes(),
        datetime!(2026-01-01 0:00 UTC),
    )
    .unwrap()
}

fn in_order(events: &[Event]) -> Tracked {
    let mut record: Option<Tracked> = None;
    for event in events {
        if let Some(updated) = next(record.as_ref(), event, &Thresholds::default()) {
            record = Some(updated);
        }
    }
    record.unwrap()
}

fn without_version(mut record: Tracked) -> Tracked {
    record.version = 0;
    record
}

/// What every progress store must do.
async fn contract(a: Arc<dyn ProgressStore>, b: Arc<dyn ProgressStore>) {
    let t = Thresholds::default();
    let one: Vec<Event> = (1..=6)
        .map(|d| kr("kr-1", d, f64::from(d) * 10.0))
        .collect();
    let two: Vec<Event> = (1..=3).map(|d| kr("kr-2", d, f64::from(d) * 5.0)).collect();
    // Newest first, a repeat in the batch, another entity between.
    let batch = vec![
        one[5].clone(),
        two[0].clone(),
        one[1].clone(),
        one[5].clone(),
    ];
    let outcomes: Vec<bool> = a
        .apply(batch, &t)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(outcomes, [true, true, true, false]);
    let (changed, cursor) = a.changed_since(0).await.unwrap();
    // Each record as it stands: kr-1 written twice (its newest event, then an older
    // point), kr-2 once.
    let versions: Vec<(String, u64)> = changed.iter().map(|r| (r.id.clone(), r.version)).collect();
    assert_eq!(versions.len(), 2);
    assert!(versions.contains(&("kr-1".into(), 2)), "{versions:?}");
    assert!(versions.contains(&("kr-2".into(), 1)), "{versions:?}");

    // The rest from two writers at once, each batch in its own order: the conditional
    // writes (or the one transaction at a time) keep every event.
    let to_a = vec![one[0].clone(), one[2].clone(), two[2].clone()];
    let to_b = vec![one[4].clone(), one[3].clone(), two[1].clone()];
    let (first, second) = tokio::join!(a.apply(to_a, &t), b.apply(to_b, &t));
    for outcome in first.into_iter().chain(second) {
        assert!(outcome.unwrap(), "each event was new");
    }
    // A repeat of all of it changes nothing.
    for outcome in a.apply([one.clone(), two.clone()].concat(), &t).await {
        assert!(!outcome.unwrap());
    }

    let all = b.all().await.unwrap();
    let states: Vec<Tracked> = all.into_iter().map(without_version).collect();
    assert_eq!(
        states,
        [
            without_version(in_order(&one)),
            without_version(in_order(&two))
        ]
    );
    assert_eq!(states[0].history.len(), 6);
    assert_eq!(states[0].progress, Some(60.0));

    let (later, _) = a.changed_since(cursor).await.unwrap();
    assert!(
        later
            .iter()
            .any(|r| r.id == "kr-1" && r.progress == Some(60.0))
    );
    assert!(
        later
            .iter()
            .any(|r| r.id == "kr-2" && r.progress == Some(15.0))
    );
}

#[tokio::test]
async fn sqlite_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("progress.sqlite");
    let a = Arc::new(SqliteProgressStore::open(&path).unwrap());
    let b = Arc::new(SqliteProgressStore::open(&path).unwrap());
    contract(a, b).await;
}

#[tokio::test]
async fn dynamodb_keeps_the_contract() {
    let moto = Moto::start();
    let client = Client::new(&moto.sdk_config().await);
    let table = progress_table(&client).await;
    let a = Arc::new(DynamoDbProgressStore::new(client.clone(), &table));
    let b = Arc::new(DynamoDbProgressStore::new(client.clone(), &table));
    contract(a, b).await;
}

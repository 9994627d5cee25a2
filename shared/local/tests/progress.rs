//! The progress read model: events in order, out of order, twice and deleted give the
//! expected state and history, in memory and in SQLite; the projection consumer's
//! batches; the progress API's filters, order, pages and CSV.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use http::HeaderMap;
use okr_consumers::directory::Directory;
use okr_consumers::progress::query::{Query, Sort, to_csv};
use okr_consumers::progress::{HISTORY, ProgressProjection, ProgressStore, Tracked, next};
use okr_core::rules::{Rule, Thresholds};
use okr_core::{Event, Source, normalize};
use okr_local::progress_sqlite::SqliteProgressStore;
use serde_json::{Value, json};
use time::macros::datetime;

fn event(source: Source, body: Value) -> Event {
    normalize(
        &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
        &HeaderMap::new(),
        body.to_string().as_bytes(),
        datetime!(2026-01-01 0:00 UTC),
    )
    .unwrap()
}

/// A Peoplelogic key result of objective `o-1` over Q2 2025, at `current` of 100 at `at`.
fn kr(id: &str, at: &str, previous: f64, current: f64, status: &str) -> Event {
    event(
        Source::PEOPLELOGIC,
        json!({
            "eventType": "objective.patch", "id": id, "parentId": "o-1", "title": "Activation",
            "startingValue": 0, "targetValue": 100, "status": status, "updatedAt": at,
            "startDate": "2025-04-01", "dueDate": "2025-06-30",
            "currentValue": {"previous": previous, "current": current},
            "updatedBy": {"id": "u-1", "name": "Sam Okafor"},
        }),
    )
}

/// Apply `events` one after another, as the stores do.
fn project(events: &[Event]) -> Option<Tracked> {
    let thresholds = Thresholds::default();
    let mut record: Option<Tracked> = None;
    for event in events {
        if let Some(updated) = next(record.as_ref(), event, &thresholds) {
            record = Some(updated);
        }
    }
    record
}

/// The state without its write count (which differs with the order of arrival).
fn state(mut record: Tracked) -> Tracked {
    record.version = 0;
    record
}

fn sequence() -> Vec<Event> {
    vec![
        kr("kr-1", "2025-05-01T09:00:00Z", 0.0, 40.0, "ON_TRACK"),
        kr("kr-1", "2025-05-10T09:00:00Z", 40.0, 55.0, "ON_TRACK"),
        kr("kr-1", "2025-05-20T09:00:00Z", 55.0, 42.0, "AT_RISK"),
    ]
}

#[test]
fn in_order_the_newest_update_sets_the_state_and_every_point_is_in_the_history() {
    let record = project(&sequence()).unwrap();
    assert_eq!(record.source, Source::PEOPLELOGIC);
    assert_eq!(record.id, "kr-1");
    assert_eq!(record.kind, "key_result");
    assert_eq!(record.title.as_deref(), Some("Activation"));
    assert_eq!(record.objective_id.as_deref(), Some("o-1"));
    assert_eq!(record.progress, Some(42.0));
    assert_eq!(record.status.as_deref(), Some("AT_RISK"));
    assert_eq!(record.updated_by.as_deref(), Some("Sam Okafor"));
    assert_eq!(record.updated_at, datetime!(2025-05-20 09:00 UTC));
    let points: Vec<f64> = record.history.iter().map(|p| p.progress).collect();
    assert_eq!(points, [40.0, 55.0, 42.0]);
    // 55 -> 42 is a drop of 13 points; AT_RISK is at risk; 42 is not low (>= 30), and
    // at 20 May 54% of the quarter has passed: 42 is within 15 points of that pace.
    assert_eq!(record.rules, [Rule::Dropped, Rule::AtRisk]);
    assert_eq!(record.version, 3);
}

#[test]
fn out_of_order_gives_the_in_order_state_and_an_older_event_never_overwrites() {
    let events = sequence();
    let in_order = state(project(&events).unwrap());
    for order in [[2, 1, 0], [1, 2, 0], [2, 0, 1], [0, 2, 1]] {
        let shuffled: Vec<Event> = order.iter().map(|&n| events[n].clone()).collect();
        assert_eq!(
            state(project(&shuffled).unwrap()),
            in_order,
            "order {order:?}"
        );
    }
    // The newest first: the older ones only fill in the history, in time order.
    let record = project(&[events[2].clone(), events[0].clone()]).unwrap();
    assert_eq!(record.progress, Some(42.0));
    assert_eq!(record.status.as_deref(), Some("AT_RISK"));
    let points: Vec<f64> = record.history.iter().map(|p| p.progress).collect();
    assert_eq!(points, [40.0, 42.0]);
}

#[test]
fn the_same_event_twice_changes_nothing() {
    let thresholds = Thresholds::default();
    let events = sequence();
    let record = project(&events).unwrap();
    for event in &events {
        assert!(
            next(Some(&record), event, &thresholds).is_none(),
            "{}",
            event.id
        );
    }
    let doubled: Vec<Event> = events.iter().flat_map(|e| [e.clone(), e.clone()]).collect();
    assert_eq!(project(&doubled).unwrap(), record);
}

#[test]
fn an_older_event_fills_in_what_the_newer_did_not_say() {
    let newer = event(
        Source::STANDARD,
        json!({"type": "key_result.progress_updated", "timestamp": "2025-05-21T10:00:00Z",
               "data": {"id": "kr_42", "progress": {"previous": 45, "current": 50}}}),
    );
    let older = event(
        Source::STANDARD,
        json!({"type": "key_result.progress_updated", "timestamp": "2025-05-20T09:00:00Z",
               "data": {"id": "kr_42", "title": "Close 20 enterprise deals", "objective_id": "obj_7",
                        "progress": {"previous": 30, "current": 45}, "status": "on_track",
                        "actor": {"id": "user_7", "name": "Lee Park"}}}),
    );
    let record = project(&[newer, older]).unwrap();
    assert_eq!(record.progress, Some(50.0));
    assert_eq!(record.title.as_deref(), Some("Close 20 enterprise deals"));
    assert_eq!(record.objective_id.as_deref(), Some("obj_7"));
    assert_eq!(record.status.as_deref(), Some("on_track"));
    // Who made the newest change is not known; the older change's author is not it.
    assert_eq!(record.updated_by, None);
}

#[test]
fn deleted_and_completed_entities_hold_no_rules() {
    let mut events = sequence();
    events.push(event(
        Source::PEOPLELOGIC,
        json!({"eventType": "objective.delete", "id": "kr-1", "parentId": "o-1",
               "updatedAt": "2025-05-25T09:00:00Z"}),
    ));
    let record = project(&events).unwrap();
    assert!(record.deleted);
    assert!(record.rules.is_empty());
    assert_eq!(record.progress, Some(42.0));

    // The seed's receiver reads `id` and `status.current` from a body without an event
    // name: an objective patched to COMPLETED.
    let completed = project(&[event(
        Source::PEOPLELOGIC,
        json!({"id": "obj-123", "title": "Launch v2", "status": {"previous": "ON_TRACK", "current": "COMPLETED"}}),
    )])
    .unwrap();
    assert_eq!(completed.kind, "objective");
    assert!(completed.completed);
    assert!(completed.rules.is_empty());
}

#[test]
fn the_history_keeps_the_last_thirty_points() {
    let events: Vec<Event> = (0..40)
        .map(|n| {
            let at = format!("2025-05-{:02}T{:02}:00:00Z", 1 + n / 20, n % 20);
            kr("kr-9", &at, n as f64, n as f64 + 1.0, "ON_TRACK")
        })
        .collect();
    let reversed: Vec<Event> = events.iter().rev().cloned().collect();
    let record = project(&events).unwrap();
    assert_eq!(record.history.len(), HISTORY);
    assert_eq!(record.history[0].progress, 11.0);
    assert_eq!(record.history[HISTORY - 1].progress, 40.0);
    assert_eq!(state(project(&reversed).unwrap()), state(record));
}

#[test]
fn other_entities_are_not_projected() {
    let hire = event(
        Source::PEOPLEFORCE,
        serde_json::from_slice(
            &std::fs::read("../../events/bodies/peopleforce/employee_create.json").unwrap(),
        )
        .unwrap(),
    );
    assert!(project(&[hire]).is_none());
}

fn sqs_batch(events: &[Event], extra: Option<&str>) -> SqsEvent {
    let mut records: Vec<SqsMessage> = events
        .iter()
        .enumerate()
        .map(|(n, e)| {
            let mut message = SqsMessage::default();
            message.message_id = Some(format!("m{n}"));
            message.body = Some(serde_json::to_string(e).unwrap());
            message
        })
        .collect();
    if let Some(body) = extra {
        let mut message = SqsMessage::default();
        message.message_id = Some("bad".into());
        message.body = Some(body.into());
        records.push(message);
    }
    let mut batch = SqsEvent::default();
    batch.records = records;
    batch
}

#[tokio::test]
async fn sqlite_applies_batches_out_of_order_and_twice_and_keeps_the_state_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("progress.sqlite");
    let store = Arc::new(SqliteProgressStore::open(&path).unwrap());
    let events = sequence();
    let projection = ProgressProjection::new(store.clone(), Thresholds::default());
    // Newest first, a repeat, and a record that is not an event (refused alone).
    let first = [events[2].clone(), events[0].clone(), events[2].clone()];
    let answer = projection
        .handle(sqs_batch(&first, Some("not json")))
        .await
        .unwrap();
    let failed: Vec<&str> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["bad"]);
    let (changed, cursor) = store.changed_since(0).await.unwrap();
    assert_eq!(changed.len(), 1);
    let answer = projection.handle(sqs_batch(&events, None)).await.unwrap();
    assert!(answer.batch_item_failures.is_empty());
    let (changed, later) = store.changed_since(cursor).await.unwrap();
    assert_eq!(changed.len(), 1, "the middle event was new");
    assert!(later > cursor);
    assert!(store.changed_since(later).await.unwrap().0.is_empty());

    drop(projection);
    drop(store);
    let reopened = SqliteProgressStore::open(&path).unwrap();
    let all = reopened.all().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(state(all[0].clone()), state(project(&events).unwrap()));
}

fn records() -> Vec<Tracked> {
    let t = Thresholds::default();
    let mut out = vec![project(&sequence()).unwrap()];
    let mut named = kr("kr-2", "2025-05-20T09:00:00Z", 70.0, 75.0, "ON_TRACK");
    named.entity.name = Some("Revenue, \"net\" of refunds".into());
    out.push(Tracked::first(&named, &t).unwrap());
    let standard = event(
        Source::STANDARD,
        serde_json::from_slice(
            &std::fs::read("../../events/bodies/standard/key_result_progress.json").unwrap(),
        )
        .unwrap(),
    );
    out.push(Tracked::first(&standard, &t).unwrap());
    let mut gone = Tracked::first(
        &kr("kr-3", "2025-05-20T09:00:00Z", 0.0, 5.0, "ON_TRACK"),
        &t,
    )
    .unwrap();
    gone.deleted = true;
    out.push(gone);
    out
}

fn ids(query: &Query) -> Vec<String> {
    query
        .page(records(), &Directory::default())
        .items
        .into_iter()
        .map(|r| r.record.id)
        .collect()
}

#[test]
fn the_api_filters_by_source_status_rule_and_title_and_leaves_deleted_out_unless_asked() {
    assert_eq!(ids(&Query::default()), ["kr-1", "kr-2", "kr_42"]);
    let q = |f: fn(&mut Query)| {
        let mut query = Query::default();
        f(&mut query);
        ids(&query)
    };
    assert_eq!(q(|q| q.source = Some("standard".into())), ["kr_42"]);
    assert_eq!(q(|q| q.status = Some("at risk".into())), ["kr-1"]);
    assert_eq!(q(|q| q.status = Some("on_track".into())), ["kr-2", "kr_42"]);
    assert_eq!(q(|q| q.rule = Some(Rule::Dropped)), ["kr-1"]);
    assert_eq!(q(|q| q.q = Some("REVENUE".into())), ["kr-2"]);
    assert_eq!(
        q(|q| q.include_deleted = true),
        ["kr-1", "kr-2", "kr-3", "kr_42"]
    );
    // Most behind first: kr_42 has no period (55 from 100), kr-1 is 12 behind pace, kr-2 ahead.
    assert_eq!(q(|q| q.sort = Sort::Behind), ["kr_42", "kr-1", "kr-2"]);
}

#[test]
fn the_api_pages_with_offsets() {
    let mut query = Query {
        limit: Some(2),
        include_deleted: true,
        ..Query::default()
    };
    let first = query.page(records(), &Directory::default());
    assert_eq!(
        (first.total, first.offset, first.next_offset),
        (4, 0, Some(2))
    );
    assert_eq!(first.items.len(), 2);
    query.offset = 2;
    let second = query.page(records(), &Directory::default());
    assert_eq!(second.next_offset, None);
    let seen: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|r| r.record.id.clone())
        .collect();
    assert_eq!(seen, ["kr-1", "kr-2", "kr-3", "kr_42"]);
    let parsed: Query = serde_urlencoded_query("limit=2&offset=2&sort=behind&source=peoplelogic");
    assert_eq!(parsed.sort, Sort::Behind);
    assert_eq!(parsed.source.as_deref(), Some("peoplelogic"));
}

fn serde_urlencoded_query(text: &str) -> Query {
    let uri: http::Uri = format!("/api/progress?{text}").parse().unwrap();
    axum::extract::Query::<Query>::try_from_uri(&uri).unwrap().0
}

#[test]
fn csv_quotes_titles_with_commas_and_quotes_and_reads_back_the_same() {
    let page = Query::default().page(records(), &Directory::default());
    let text = to_csv(&page).unwrap();
    assert!(text.contains(r#""Revenue, ""net"" of refunds""#), "{text}");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[3], "title");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[1][3], "Revenue, \"net\" of refunds");
    assert_eq!(&rows[0][7], "dropped;at_risk");
    assert_eq!(&rows[0][5], "42");
    assert_eq!(&rows[0][12], "2025-05-20T09:00:00Z");
}

#[tokio::test]
async fn the_sample_batch_applies_by_occurrence_whatever_its_order() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/progress-projection/batch.json"
    );
    let batch: SqsEvent = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteProgressStore::open(&dir.path().join("p.sqlite")).unwrap());
    let projection = ProgressProjection::new(store.clone(), Thresholds::default());
    let answer = projection.handle(batch).await.unwrap();
    assert!(answer.batch_item_failures.is_empty());
    let all = store.all().await.unwrap();
    let titles: Vec<&str> = all.iter().filter_map(|r| r.title.as_deref()).collect();
    assert_eq!(all.len(), 3, "{titles:?}");
    let kr = all
        .iter()
        .find(|r| r.id == "a7d4e9c0-2b1f-4e8a-9c3d-5f6a7b8c9d01")
        .unwrap();
    // The newer update (80%) came first; the older one (60%) only joined the history.
    assert_eq!(kr.progress, Some(80.0));
    let points: Vec<f64> = kr.history.iter().map(|p| p.progress).collect();
    assert_eq!(points, [60.0, 80.0]);
    assert_eq!(
        kr.objective_id.as_deref(),
        Some("5f0c1a2b-7d3e-4c59-8a61-0b9e2f4d7c18")
    );
    let standard = all.iter().find(|r| r.source == Source::STANDARD).unwrap();
    assert_eq!(standard.progress, Some(45.0));
    assert_eq!(standard.updated_by.as_deref(), Some("Lee Park"));
}

/// Six events of one key result, each saying something else: created, progress only (no
/// `parentId`: Peoplelogic calls it an objective), a new title only, a drop with a status,
/// completed, and a delete at the completion's very time.
fn varied() -> Vec<Event> {
    let pl = |body: Value| event(Source::PEOPLELOGIC, body);
    vec![
        pl(
            json!({"eventType": "objective.post", "id": "kr-v", "parentId": "o-1", "title": "Old title",
                  "startingValue": 0, "targetValue": 100, "currentValue": 10, "status": "ON_TRACK",
                  "startDate": "2025-04-01", "dueDate": "2025-06-30", "updatedAt": "2025-04-10T09:00:00Z"}),
        ),
        pl(
            json!({"eventType": "objective.patch", "id": "kr-v", "startingValue": 0, "targetValue": 100,
                  "currentValue": {"previous": 10, "current": 40}, "updatedAt": "2025-05-01T09:00:00Z"}),
        ),
        pl(
            json!({"eventType": "objective.patch", "id": "kr-v", "title": "New title",
                  "updatedAt": "2025-05-02T09:00:00Z"}),
        ),
        pl(
            json!({"eventType": "objective.patch", "id": "kr-v", "parentId": "o-1", "startingValue": 0,
                  "targetValue": 100, "currentValue": {"previous": 40, "current": 20},
                  "status": {"previous": "ON_TRACK", "current": "AT_RISK"}, "updatedAt": "2025-05-03T09:00:00Z"}),
        ),
        pl(
            json!({"eventType": "objective.patch", "id": "kr-v", "parentId": "o-1",
                  "status": {"previous": "AT_RISK", "current": "COMPLETED"}, "updatedAt": "2025-05-04T09:00:00Z"}),
        ),
        pl(
            json!({"eventType": "objective.delete", "id": "kr-v", "updatedAt": "2025-05-04T09:00:00Z"}),
        ),
    ]
}

/// Every order of `events`.
fn orders(events: &[Event]) -> Vec<Vec<Event>> {
    if events.len() <= 1 {
        return vec![events.to_vec()];
    }
    let mut all = Vec::new();
    for n in 0..events.len() {
        let mut rest = events.to_vec();
        let first = rest.remove(n);
        for mut order in orders(&rest) {
            order.insert(0, first.clone());
            all.push(order);
        }
    }
    all
}

#[test]
fn every_order_of_events_saying_different_things_gives_the_in_order_state() {
    let events = varied();
    for take in [4, 5, 6] {
        let events = &events[..take];
        let in_order = state(project(events).unwrap());
        let orders = orders(events);
        for order in &orders {
            assert_eq!(state(project(order).unwrap()), in_order, "{take} events");
        }
        assert_eq!(in_order.kind, "key_result");
        assert_eq!(in_order.title.as_deref(), Some("New title"));
        assert_eq!(in_order.objective_id.as_deref(), Some("o-1"));
        assert_eq!(in_order.progress, Some(20.0));
        let points: Vec<f64> = in_order.history.iter().map(|p| p.progress).collect();
        assert_eq!(points, [10.0, 40.0, 20.0]);
        match take {
            4 => {
                assert_eq!(in_order.status.as_deref(), Some("AT_RISK"));
                assert!(!in_order.completed && !in_order.deleted);
                // 3 May: 36% of the quarter gone, 20 done (more than 15 behind), down 20
                // points, and at risk.
                assert_eq!(
                    in_order.rules,
                    [Rule::BehindPace, Rule::Dropped, Rule::AtRisk]
                );
            }
            5 => {
                assert!(in_order.completed && !in_order.deleted);
                assert!(in_order.rules.is_empty());
            }
            _ => {
                // The delete shares the completion's time, and wins the tie.
                assert!(in_order.completed && in_order.deleted, "{in_order:?}");
                assert!(in_order.rules.is_empty());
            }
        }
        eprintln!("{take} events: {} orders", orders.len());
    }
}

#[test]
fn csv_keeps_a_spreadsheet_from_running_a_title_as_a_formula() {
    let mut records = records();
    records[0].title = Some("=HYPERLINK(\"http://x\",\"click\")".into());
    records[1].title = Some("-2 points".into());
    let text = to_csv(&Query::default().page(records, &Directory::default())).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(&rows[0][3], "'=HYPERLINK(\"http://x\",\"click\")");
    assert_eq!(&rows[1][3], "'-2 points");
    // Numbers stay numbers.
    assert_eq!(&rows[0][5], "42");
}

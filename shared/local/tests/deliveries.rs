//! `serve`'s delivery log in SQLite: what is recorded comes back newest first through
//! the filters, each event's journey comes back in order, and pruning keeps both to
//! their age and count.

use std::time::Duration;

use http::HeaderMap;
use okr_consumers::deliveries::{Delivery, DeliveryLog, DeliveryStore, Filter};
use okr_local::deliveries_sqlite::SqliteDeliveries;
use okr_pipeline::journal::{Journal, Step};

fn delivery(n: usize, at: time::OffsetDateTime) -> Delivery {
    let mut delivery = Delivery::received(
        at,
        if n.is_multiple_of(2) {
            "peoplelogic"
        } else {
            "perscom"
        },
        "POST",
        &HeaderMap::new(),
        format!("body {n}").as_bytes(),
    );
    delivery.status = 202;
    delivery.outcome = "accepted".into();
    delivery.reason = "accepted".into();
    delivery.event_id = Some(format!("evt_{n}"));
    delivery
}

#[tokio::test]
async fn the_log_lists_newest_first_and_keeps_to_its_age_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deliveries.sqlite");
    let week = Duration::from_secs(7 * 24 * 3600);
    let log = SqliteDeliveries::open(&path, week, 100).unwrap();
    // Now (a reopen prunes by the clock), to the second.
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    // Ten from two weeks ago, then 300 of today.
    for n in 0..10 {
        log.record(&delivery(n, now - time::Duration::days(14)))
            .await
            .unwrap();
    }
    for n in 10..310 {
        log.record(&delivery(n, now + time::Duration::seconds(n as i64)))
            .await
            .unwrap();
    }
    let all = |log: SqliteDeliveries| async move {
        log.list(&Filter {
            limit: Some(1000),
            ..Filter::default()
        })
        .await
        .unwrap()
    };
    assert_eq!(all(log.clone()).await.len(), 310, "between two prunes");
    assert_eq!(
        log.prune(now + time::Duration::hours(1)).await.unwrap(),
        210
    );
    let kept = all(log.clone()).await;
    assert_eq!(kept.len(), 100);
    assert_eq!(kept[0].event_id.as_deref(), Some("evt_309"), "newest first");
    assert_eq!(kept[99].event_id.as_deref(), Some("evt_210"));

    // The filters, and a reopen (what `okr-webhooks deliveries` does).
    let reopened = SqliteDeliveries::open(&path, week, 100).unwrap();
    let perscom = reopened
        .list(&Filter {
            endpoint: Some("perscom".into()),
            since: Some(now + time::Duration::seconds(300)),
            ..Filter::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = perscom.iter().filter_map(|d| d.event_id.clone()).collect();
    assert_eq!(ids, ["evt_309", "evt_307", "evt_305", "evt_303", "evt_301"]);
    let one = reopened
        .list(&Filter {
            event_id: Some("evt_250".into()),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].body_bytes, "body 250".len());
}

#[tokio::test]
async fn journeys_come_back_in_order_by_type_too_and_are_pruned_with_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deliveries.sqlite");
    let week = Duration::from_secs(7 * 24 * 3600);
    // At most 2 deliveries, so at most 20 steps.
    let log = SqliteDeliveries::open(&path, week, 2).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let step = |event: &str, n: u32, at: time::OffsetDateTime| Step {
        event_id: event.into(),
        consumer: "slack".into(),
        outcome: if n < 25 { "retry" } else { "dead_lettered" }.into(),
        time: at,
        attempt: n,
        detail: format!("attempt {n}"),
        replay: None,
    };
    // An old event's steps, then 25 of a new one's, written in two batches.
    log.append(vec![step("evt_old", 1, now - time::Duration::days(8))])
        .await;
    log.append((1..=20).map(|n| step("evt_new", n, now)).collect())
        .await;
    log.append((21..=25).map(|n| step("evt_new", n, now)).collect())
        .await;
    let journey = log.journey("evt_new").await.unwrap();
    let attempts: Vec<u32> = journey.iter().map(|s| s.attempt).collect();
    assert_eq!(attempts, (1..=25).collect::<Vec<_>>());
    assert_eq!(journey[24].outcome, "dead_lettered");
    assert_eq!(log.journey("evt_old").await.unwrap().len(), 1);
    log.prune(now).await.unwrap();
    assert!(
        log.journey("evt_old").await.unwrap().is_empty(),
        "older than kept"
    );
    let kept = log.journey("evt_new").await.unwrap();
    assert_eq!(kept.len(), 20, "ten steps a delivery");
    assert_eq!(kept[0].attempt, 6, "the oldest went first");

    // Deliveries by the type of event they became.
    let mut hire = delivery(1, now);
    hire.event_type = Some("employee.created".into());
    let mut update = delivery(2, now);
    update.event_type = Some("key_result.progress_updated".into());
    log.record(&hire).await.unwrap();
    log.record(&update).await.unwrap();
    let found = log
        .list(&Filter {
            event_type: Some("employee.created".into()),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].event_id.as_deref(), Some("evt_1"));
}

#[tokio::test]
async fn a_captured_body_is_kept_a_day_and_capture_ends_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deliveries.sqlite");
    let log = SqliteDeliveries::open(&path, Duration::from_secs(7 * 24 * 3600), 100).unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert!(!log.capturing("peopleforce", now).await);
    log.capture("peopleforce", Some(now + time::Duration::hours(24)))
        .await
        .unwrap();
    assert!(log.capturing("peopleforce", now).await);
    assert!(!log.capturing("perscom", now).await);
    assert!(
        !log.capturing("peopleforce", now + time::Duration::hours(25))
            .await,
        "a day only"
    );
    let mut refused = delivery(1, now);
    refused.outcome = "refused".into();
    refused.body = Some("{\"birth_date\":\"1978-08-31\"}".into());
    log.record(&refused).await.unwrap();
    let kept = log.list(&Filter::default()).await.unwrap();
    assert_eq!(kept[0].body, refused.body);
    // Within its day it stays; a day later it is gone; the delivery stays its week.
    log.prune(now + time::Duration::hours(23)).await.unwrap();
    let kept = log.list(&Filter::default()).await.unwrap();
    assert_eq!(kept[0].body, refused.body);
    log.prune(now + time::Duration::hours(25)).await.unwrap();
    let kept = log.list(&Filter::default()).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].body, None);
    log.capture("peopleforce", None).await.unwrap();
    assert!(!log.capturing("peopleforce", now).await);
    assert!(log.captures(now).await.unwrap().is_empty());
}

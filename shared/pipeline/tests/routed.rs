//! The queue messages of one event, made together (one cut-down payload shared by the
//! views that carry it), are the same as each view made on its own: the whole event for
//! the warehouse, the notification view for Slack, the alerts and a subscription not
//! asking for the whole event, and for the progress queue the notification view with
//! the HR record's `person` kept.

use http::HeaderMap;
use okr_core::endpoints::Endpoint;
use okr_core::event::Event;
use okr_core::normalize::notification_payload;
use okr_core::routing::Consumer;
use okr_core::{Source, normalize};
use okr_pipeline::queue::QueueMessage;
use time::macros::datetime;

/// A sample body of `events/bodies`, normalized.
fn sample(source: Source, path: &str) -> Event {
    let path = format!("{}/../../events/bodies/{path}", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(path).expect("the sample body");
    let endpoint = Endpoint::of_source(source).expect("built in");
    normalize(
        &endpoint,
        &HeaderMap::new(),
        &body,
        datetime!(2026-12-06 10:00 UTC),
    )
    .expect("normalizes")
}

fn json(event: &Event) -> String {
    serde_json::to_string(event).expect("encodes")
}

/// The views made the plain way, each on its own: a whole copy of the event with the
/// payload cut down, without `person` (Slack, alerts) or with it (progress).
fn notification(event: &Event) -> String {
    json(&Event {
        payload: notification_payload(event).expect("cuts down"),
        person: None,
        ..event.clone()
    })
}

fn progress(event: &Event) -> String {
    json(&Event {
        payload: notification_payload(event).expect("cuts down"),
        ..event.clone()
    })
}

const ALL: [Consumer; 5] = [
    Consumer::Warehouse,
    Consumer::Slack,
    Consumer::Progress,
    Consumer::Alerts,
    Consumer::Subscriptions,
];

fn bodies(event: &Event, consumers: &[Consumer], whole: bool) -> Vec<(Consumer, String)> {
    QueueMessage::routed_with(event, consumers, whole)
        .expect("routes")
        .into_iter()
        .map(|(consumer, message)| (consumer, message.body.to_string()))
        .collect()
}

#[test]
fn each_queue_gets_the_view_it_would_get_alone() {
    let hire = sample(Source::PEOPLEFORCE, "peopleforce/employee_create.json");
    assert!(hire.person.is_some(), "the hire carries a person");
    assert_eq!(
        bodies(&hire, &ALL, false),
        vec![
            (Consumer::Warehouse, json(&hire)),
            (Consumer::Slack, notification(&hire)),
            (Consumer::Progress, progress(&hire)),
            (Consumer::Alerts, notification(&hire)),
            (Consumer::Subscriptions, notification(&hire)),
        ]
    );
    // The progress view is the notification view and the directory's fields; a personal
    // email of the body reaches the warehouse only.
    assert!(progress(&hire).contains("\"person\":{"));
    assert!(!notification(&hire).contains("\"person\""));
    assert!(json(&hire).contains("personal_email"));
    assert!(!notification(&hire).contains("personal_email"));
    assert!(!progress(&hire).contains("personal_email"));

    // A subscription asking for the whole event shares the warehouse's message.
    assert_eq!(
        bodies(&hire, &[Consumer::Warehouse, Consumer::Subscriptions], true),
        vec![
            (Consumer::Warehouse, json(&hire)),
            (Consumer::Subscriptions, json(&hire)),
        ]
    );

    // Without a person, the progress queue gets the notification view.
    let update = sample(Source::PEOPLELOGIC, "peoplelogic/key_result_progress.json");
    assert!(update.person.is_none());
    assert_eq!(
        bodies(&update, &ALL, false),
        vec![
            (Consumer::Warehouse, json(&update)),
            (Consumer::Slack, notification(&update)),
            (Consumer::Progress, notification(&update)),
            (Consumer::Alerts, notification(&update)),
            (Consumer::Subscriptions, notification(&update)),
        ]
    );
}

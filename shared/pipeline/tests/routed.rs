//! The queue messages of one event, made together (one cut-down payload shared by the
//! views that carry it), are the same as each view made on its own: the whole event for
//! the warehouse, the notification view for Slack, the alerts and a subscription not
//! asking for the whole event, and for the progress queue the notification view with
//! the HR record's `person` kept.

use http::HeaderMap;
use okr_core::endpoints::Endpoint;
use okr_core::routing::{Consumer, notification_view, view_for};
use okr_core::{Source, normalize};
use okr_pipeline::queue::QueueMessage;
use time::macros::datetime;

/// The PeopleForce hire of `events/bodies`, normalized: an HR record with a person.
fn hire() -> okr_core::event::Event {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/bodies/peopleforce/employee_create.json"
    );
    let body = std::fs::read(path).expect("the sample body");
    let endpoint = Endpoint::of_source(Source::PEOPLEFORCE).expect("built in");
    normalize(
        &endpoint,
        &HeaderMap::new(),
        &body,
        datetime!(2026-12-06 10:00 UTC),
    )
    .expect("normalizes")
}

fn json(event: &okr_core::event::Event) -> String {
    serde_json::to_string(event).expect("encodes")
}

#[test]
fn each_queue_gets_the_view_it_would_get_alone() {
    let event = hire();
    assert!(event.person.is_some(), "the hire carries a person");
    let consumers = [
        Consumer::Warehouse,
        Consumer::Slack,
        Consumer::Progress,
        Consumer::Alerts,
        Consumer::Subscriptions,
    ];
    let routed = QueueMessage::routed_with(&event, &consumers, false).expect("routes");
    let bodies: Vec<(Consumer, String)> = routed
        .iter()
        .map(|(consumer, message)| (*consumer, message.body.to_string()))
        .collect();
    let notification = json(&notification_view(&event).expect("a view"));
    let progress = json(&view_for(&event, Consumer::Progress).expect("a view"));
    assert_eq!(
        bodies,
        vec![
            (Consumer::Warehouse, json(&event)),
            (Consumer::Slack, notification.clone()),
            (Consumer::Progress, progress.clone()),
            (Consumer::Alerts, notification.clone()),
            (Consumer::Subscriptions, notification.clone()),
        ]
    );
    // The progress view is the notification view and the directory's fields.
    assert_ne!(progress, notification);
    assert!(progress.contains("\"person\":{"), "{progress}");
    assert!(!notification.contains("\"person\""), "{notification}");
    // A personal email of the body reaches the warehouse only.
    let personal = "personal_email";
    assert!(json(&event).contains(personal));
    assert!(!notification.contains(personal) && !progress.contains(personal));

    let whole = QueueMessage::routed_with(&event, &[Consumer::Subscriptions], true)
        .expect("routes")
        .remove(0);
    assert_eq!(&*whole.1.body, json(&event));
}

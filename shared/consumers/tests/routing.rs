//! What each queue gets: the warehouse the whole event, Slack and the alerts the event
//! without the personal data their messages do not use, and nothing they do use lost.

use http::HeaderMap;
use okr_consumers::alerts::messages::trigger_message;
use okr_consumers::slack::message::event_message;
use okr_core::routing::{NotifyRules, notification_view, route};
use okr_core::rules::{Thresholds, assess};
use okr_core::{Event, Source, normalize};
use serde_json::{Value, json};
use time::macros::datetime;

fn normalized(source: Source, body: &[u8]) -> Event {
    normalize(
        &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
        &HeaderMap::new(),
        body,
        datetime!(2026-11-20 09:30 UTC),
    )
    .unwrap()
}

/// Every sample body, and the shapes the samples lack: a PERSCOM rank record (and a
/// demotion), a qualification, a hire without a department, key results with their
/// period at the top, under `entity`, under `data` and nested as `period`.
fn cases() -> Vec<(String, Event)> {
    let root = format!("{}/../../events/bodies", env!("CARGO_MANIFEST_DIR"));
    let mut cases = Vec::new();
    for source in Source::ALL {
        let dir = format!("{root}/{}", source.as_str());
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let body = std::fs::read(&path).unwrap();
            cases.push((path.display().to_string(), normalized(source, &body)));
        }
    }
    let extra = [
        (
            Source::PERSCOM,
            json!({"event": "rankrecord.created", "data": {"id": 1, "type": 1, "rank": {"name": "Private"}, "user": {"name": "Mia Chen"}, "text": "private note"}}),
        ),
        (
            Source::PERSCOM,
            json!({"event": "rankrecord.created", "data": {"id": 2, "type": 0, "rank": {"name": "Sergeant"}, "user": {"name": "Mia Chen"}}}),
        ),
        (
            Source::PERSCOM,
            json!({"event": "qualificationrecord.created", "data": {"id": 3, "qualification": {"name": "Marksman"}, "user": {"name": "Mia Chen", "email": "mia@example.org"}}}),
        ),
        (
            Source::PEOPLEFORCE,
            json!({"action": "employee_create", "data": {"id": 4, "attributes": {"first_name": "Ann", "last_name": "Lee", "date_of_birth": "1990-01-01"}, "position": {"name": "Analyst"}}}),
        ),
        (
            Source::PEOPLEFORCE,
            json!({"action": "employee_terminate", "data": {"id": 5, "attributes": {"first_name": "Ann", "last_name": "Lee"}, "department": {"name": "IT"}}}),
        ),
        (
            Source::PEOPLELOGIC,
            json!({"eventType": "objective.patch", "id": "k1", "parentId": "o", "title": "KR", "targetValue": 100, "currentValue": {"previous": 60, "current": 10}, "startDate": "2025-04-01", "dueDate": "2025-06-30", "updatedAt": "2025-06-01T00:00:00Z"}),
        ),
        (
            Source::PEOPLELOGIC,
            json!({"eventType": "objective.patch", "entity": {"id": "k2", "parentId": "o", "title": "KR", "targetValue": 100, "currentValue": 10, "startDate": "2025-04-01", "dueDate": "2025-06-30", "updatedAt": "2025-06-01T00:00:00Z", "owner": {"name": "Sam", "email": "sam@example.org"}}}),
        ),
        (
            Source::STANDARD,
            json!({"type": "key_result.progress_updated", "timestamp": "2025-06-01T00:00:00Z", "data": {"id": "k3", "title": "KR", "progress": {"previous": 50, "current": 20}, "period": {"start": "2025-04-01", "end": "2025-06-30"}, "status": "at_risk"}}),
        ),
        (
            Source::STANDARD,
            json!({"type": "key_result.progress_updated", "timestamp": "2025-06-01T00:00:00Z", "data": {"id": "k4", "title": "KR", "progress": 20, "start_date": "2025-04-01", "due_date": "2025-06-30"}}),
        ),
    ];
    for (source, body) in extra {
        cases.push((
            body.to_string(),
            normalized(source, body.to_string().as_bytes()),
        ));
    }
    cases
}

#[test]
fn slack_messages_and_alerts_read_the_same_from_the_cut_down_event() {
    let thresholds = Thresholds::default();
    let mut periods = 0;
    for (name, event) in cases() {
        let view = notification_view(&event).unwrap();
        assert_eq!(
            serde_json::to_value(event_message(&view)).unwrap(),
            serde_json::to_value(event_message(&event)).unwrap(),
            "{name}"
        );
        assert_eq!(view.period, event.period, "{name}");
        periods += usize::from(event.period.is_some());
        let assessment = assess(&event, &thresholds);
        assert_eq!(assess(&view, &thresholds), assessment, "{name}");
        for rule in assessment.holding {
            assert_eq!(
                serde_json::to_value(trigger_message(&view, rule, &thresholds)).unwrap(),
                serde_json::to_value(trigger_message(&event, rule, &thresholds)).unwrap(),
                "{name}"
            );
        }
        // Everything but the payload and an HR record's `person` (its work and manager
        // emails are for the directory only) is the event itself.
        assert!(view.person.is_none(), "{name}");
        let mut whole = serde_json::to_value(&view).unwrap();
        whole["payload"] = event.payload.to_value().unwrap();
        let mut event_without_person = serde_json::to_value(&event).unwrap();
        event_without_person
            .as_object_mut()
            .unwrap()
            .remove("person");
        assert_eq!(whole, event_without_person, "{name}");
    }
    assert!(periods >= 5, "the cases exercise periods");
}

#[test]
fn the_peopleforce_hire_reaches_slack_without_birth_date_personal_email_or_phone() {
    let body = std::fs::read(format!(
        "{}/../../events/bodies/peopleforce/employee_create.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let event = normalized(Source::PEOPLEFORCE, &body);
    assert!(route(&event, &NotifyRules::default()).contains(&okr_core::routing::Consumer::Slack));
    let view = serde_json::to_string(&notification_view(&event).unwrap()).unwrap();
    for personal in [
        "date_of_birth",
        "1978-08-31",
        "personal_email",
        "johnny.d.private@example.org",
        "mobile_number",
        "+380501234567",
        "T-shirt size",
    ] {
        assert!(!view.contains(personal), "{personal} in {view}");
    }
    let view: Value = serde_json::from_str(&view).unwrap();
    assert_eq!(
        view["payload"],
        json!({"data": {"department": {"name": "IT"}, "position": {"name": "Senior Developer"}}})
    );
    assert_eq!(
        view["related"],
        json!({"department": "IT", "position": "Senior Developer"})
    );
}

#[test]
fn an_hr_records_dates_stay_in_the_warehouse() {
    let leave = normalized(
        Source::PEOPLEFORCE,
        json!({"action": "leave_request_create", "data": {"id": 7, "start_date": "2026-12-01", "end_date": "2026-12-24", "department": {"name": "IT"}}}).to_string().as_bytes(),
    );
    assert_eq!(leave.period, None);
    let view = notification_view(&leave).unwrap();
    assert_eq!(
        view.payload.to_value().unwrap(),
        json!({"data": {"department": {"name": "IT"}}})
    );
    assert_eq!(view.related.department.as_deref(), Some("IT"));
}

#[test]
fn terminations_are_not_posted_by_default_and_can_be_turned_on() {
    assert!(!NotifyRules::default().matches("employee.terminated"));
    assert!(NotifyRules::default().matches("employee.created"));
    let rules = NotifyRules::parse(&format!(
        "{},employee.terminated",
        okr_core::routing::DEFAULT_NOTIFY_TYPES
    ));
    assert!(rules.matches("employee.terminated"));
}

/// An event without `period` and `related` (enqueued by the previous version, which read
/// them from the payload) reads the same once decoded, whole or as the Slack and alerts
/// queues get it; and the cut-down payload those queues get still holds what the
/// previous version's consumers read. Events queued across an upgrade or a rollback lose
/// nothing.
#[test]
fn events_without_period_and_related_read_the_same_whole_or_cut_down() {
    let mut filled = 0;
    for (name, event) in cases() {
        for event in [event.clone(), notification_view(&event).unwrap()] {
            let mut old = serde_json::to_value(&event).unwrap();
            let fields = old.as_object_mut().unwrap();
            filled += usize::from(fields.remove("period").is_some());
            filled += usize::from(fields.remove("related").is_some());
            let mut message = aws_lambda_events::sqs::SqsMessage::default();
            message.body = Some(old.to_string());
            let decoded = okr_pipeline::batch::decode(&message).unwrap();
            assert_eq!(decoded, event, "{name}");
        }
    }
    assert!(filled >= 16, "the cases carry periods and names: {filled}");
}

/// The cut-down payload, built the plain way: the whole body read into a `Value`, and
/// the fields the Slack and alerts queues keep copied in the order they are written.
fn cut_down_the_plain_way(event: &Event) -> Value {
    let body = event.payload.to_value().unwrap();
    let with_period = matches!(event.entity.kind.as_str(), "key_result" | "objective");
    let period = |object: &Value| {
        let mut kept = serde_json::Map::new();
        let keys = [
            "startDate",
            "start_date",
            "periodStart",
            "dueDate",
            "due_date",
            "endDate",
            "end_date",
            "periodEnd",
            "period",
        ];
        for key in keys.into_iter().filter(|_| with_period) {
            if let Some(value) = object.get(key) {
                kept.insert(key.to_owned(), value.clone());
            }
        }
        kept
    };
    let mut kept = period(&body);
    if let Some(data) = body.get("data").filter(|data| data.is_object()) {
        let mut data_kept = period(data);
        for key in [
            "user",
            "department",
            "position",
            "award",
            "rank",
            "qualification",
        ] {
            if let Some(name) = data.get(key).and_then(|object| object.get("name")) {
                data_kept.insert(key.to_owned(), json!({ "name": name }));
            }
        }
        if let Some(kind) = data.get("type").filter(|kind| kind.is_number()) {
            data_kept.insert("type".to_owned(), kind.clone());
        }
        if !data_kept.is_empty() {
            kept.insert("data".to_owned(), Value::Object(data_kept));
        }
    }
    if let Some(entity) = body.get("entity") {
        let entity_kept = period(entity);
        if !entity_kept.is_empty() {
            kept.insert("entity".to_owned(), Value::Object(entity_kept));
        }
    }
    Value::Object(kept)
}

/// The cut-down payload is picked from the body in one pass; it holds what the plain
/// way gives, in the same order, for every case and for the shapes one pass could get
/// wrong: a key sent twice (the last wins, an object or not), `data` an array, a named
/// object that is a string, a kind that is a string, escaped keys. Values are copied as
/// they were sent.
#[test]
fn the_cut_down_payload_holds_what_the_plain_way_gives() {
    let tricky = [
        r#"{"type": "key_result.progress_updated", "data": {"user": {"name": "A"}}, "startDate": "2025-01-01", "dueDate": "2025-03-31", "data": "gone"}"#,
        r#"{"type": "key_result.progress_updated", "data": {"dueDate": "2025-01-01"}, "data": {"startDate": "2025-04-01", "dueDate": "2025-06-30"}}"#,
        r#"{"type": "employee.created", "data": [{"user": {"name": "A"}}]}"#,
        r#"{"type": "rank_record.created", "data": {"user": "Mia", "rank": {"name": "Sgt", "name": "Sergeant"}, "type": "1"}}"#,
        r#"{"type": "key_result.progress_updated", "d\u0061ta": {"st\u0061rtDate": "2025-04-01", "dueDate": "2025-06-30"}}"#,
        r#"{"type": "key_result.progress_updated", "entity": {"startDate": "2025-04-01"}, "entity": "x"}"#,
        r#"{"type": "objective.updated", "entity": "x", "entity": {"period": {"start": "2025-04-01", "end": "2025-06-30"}}}"#,
        r#"{"type": "key_result.progress_updated", "entity": null, "startDate": "2025-04-01", "dueDate": "2025-06-30", "data": {"user": null, "rank": true, "award": -1.5e2, "position": 18446744073709551615, "department": "D\u0065pt", "qualification": -2, "user": {"name": "A"}, "rank": {"name": "R"}, "rank": "x", "type": -1}}"#,
        r#"{"type": "rank_record.created", "data": -1, "entity": [1, {"startDate": "2025-04-01"}]}"#,
        r#"{"type": "rank_record.created", "data": {"type": 1.50e0, "user": {"name": "Mi\u0061", "email": "mia@example.org"}}}"#,
    ];
    let mut cases = cases();
    for body in tricky {
        cases.push((
            body.to_owned(),
            normalized(Source::STANDARD, body.as_bytes()),
        ));
    }
    let mut kept = 0;
    for (name, event) in &cases {
        let cut = notification_view(event).unwrap().payload;
        let expected = cut_down_the_plain_way(event);
        // Both read back: the same fields, the same values, in the same order.
        assert_eq!(
            cut.to_value().unwrap().to_string(),
            expected.to_string(),
            "{name}"
        );
        kept += usize::from(expected != json!({}));
    }
    assert!(kept >= 20, "the cases keep fields: {kept}");
    // As sent: a number's and a string's own spelling.
    let last = notification_view(&cases.last().unwrap().1).unwrap().payload;
    assert_eq!(
        last.get(),
        r#"{"data":{"user":{"name":"Mi\u0061"},"type":1.50e0}}"#
    );
}

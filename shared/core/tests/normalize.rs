//! Normalization of the sample deliveries in `events/bodies/` (taken from the provider
//! documents), checked field by field and against `schema/event.v1.json`.

use http::{HeaderMap, HeaderValue};
use okr_core::event::{Actor, Change, Entity, JSON_SCHEMA_V1, UNKNOWN_TYPE};
use okr_core::{Event, NormalizeError, Source, normalize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const RECEIVED: OffsetDateTime = datetime!(2025-06-02 14:21:09 UTC);

fn sample(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../events/bodies/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn normalized(source: Source, body: &[u8]) -> Event {
    let event = normalize(
        &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
        &HeaderMap::new(),
        body,
        RECEIVED,
    )
    .unwrap();
    assert_valid(&event);
    event
}

fn assert_valid(event: &Event) {
    let schema: Value = serde_json::from_str(JSON_SCHEMA_V1).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let instance = serde_json::to_value(event).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{} does not match the schema: {errors:?}",
        event.id
    );
}

fn entity(kind: &str, id: &str, name: Option<&str>) -> Entity {
    Entity {
        kind: kind.into(),
        id: Some(id.into()),
        name: name.map(Into::into),
        parent: None,
    }
}

fn text_change(previous: Option<&str>, current: Option<&str>) -> Option<Change<String>> {
    Some(Change {
        previous: previous.map(Into::into),
        current: current.map(Into::into),
    })
}

#[test]
fn peopleforce_employee_create_from_the_docs() {
    let body = sample("peopleforce/employee_create.json");
    let event = normalized(Source::PEOPLEFORCE, &body);
    assert_eq!(event.schema, "okr-webhooks.event.v1");
    assert_eq!(event.source, Source::PEOPLEFORCE);
    assert_eq!(event.event_type, "employee.created");
    assert_eq!(event.provider_event, "employee_create");
    assert_eq!(event.entity, entity("employee", "130333", Some("John Doe")));
    assert_eq!(event.occurred_at, datetime!(2022-09-05 15:33:55.526 UTC));
    assert_eq!(event.received_at, RECEIVED);
    assert_eq!(event.actor, None);
    assert_eq!(event.status, None);
    assert_eq!(event.progress, None);
    assert!(event.changed_fields.is_empty());
    assert_eq!(
        event.payload.to_value().unwrap(),
        serde_json::from_slice::<Value>(&body).unwrap()
    );
    // The body is carried as sent, its line breaks (between tokens only) made spaces:
    // one event, one NDJSON line.
    let text = std::str::from_utf8(&body).unwrap().trim();
    assert!(text.contains('\n'));
    assert_eq!(event.payload.get(), text.replace('\n', " "));
    assert!(
        event.id.starts_with("evt_") && event.id.len() == 36,
        "{}",
        event.id
    );
}

#[test]
fn tabs_and_crlf_line_breaks_between_tokens_become_spaces_and_escaped_ones_stay() {
    // The sample with Windows line breaks, tab indents and a tab escaped in a value.
    let text = String::from_utf8(sample("peopleforce/employee_create.json")).unwrap();
    let text = text
        .replace("\n", "\r\n")
        .replace("  ", "\t")
        .replace("\"John\"", "\"Jo\\thn\"");
    let event = normalized(Source::PEOPLEFORCE, format!("\r\n{text}\t").as_bytes());
    let expected = text.trim().replace(['\t', '\r', '\n'], " ");
    assert_eq!(event.payload.get(), expected);
    assert!(event.payload.get().contains(r#""Jo\thn""#));
    assert_eq!(
        event.payload.to_value().unwrap()["data"]["attributes"]["first_name"],
        "Jo\thn"
    );
}

#[test]
fn peopleforce_topics_map_to_past_tense_types() {
    let event = normalized(
        Source::PEOPLEFORCE,
        &sample("peopleforce/employee_terminate.json"),
    );
    assert_eq!(event.event_type, "employee.terminated");
    assert_eq!(event.occurred_at, datetime!(2023-03-01 07:12:00 UTC));
    let event = normalized(
        Source::PEOPLEFORCE,
        &sample("peopleforce/leave_request_create.json"),
    );
    assert_eq!(event.event_type, "leave_request.created");
    assert_eq!(event.entity.kind, "leave_request");
    assert_eq!(event.status, text_change(None, Some("pending")));
    for (action, expected) in [
        ("employee_update", "employee.updated"),
        ("leave_request_approve", "leave_request.approved"),
        ("leave_request_reject", "leave_request.rejected"),
        ("leave_request_cancel", "leave_request.cancelled"),
        ("leave_request_destroy", "leave_request.deleted"),
        ("employee_rehire", "employee.rehired"),
    ] {
        let body = json!({"action": action, "data": {"id": 1}}).to_string();
        assert_eq!(
            normalized(Source::PEOPLEFORCE, body.as_bytes()).event_type,
            expected,
            "{action}"
        );
    }
}

#[test]
fn perscom_envelope_written_by_php_json_encode() {
    let body = sample("perscom/rankrecord_updated.json");
    // The sample really is PHP-escaped.
    assert!(String::from_utf8_lossy(&body).contains(r"https:\/\/perscom.example"));
    let event = normalized(Source::PERSCOM, &body);
    assert_eq!(event.event_type, "rank_record.updated");
    assert_eq!(event.provider_event, "rankrecord.updated");
    assert_eq!(event.entity, entity("rank_record", "512", Some("Sergeant")));
    assert_eq!(event.occurred_at, datetime!(2024-05-14 16:03:21 UTC));
    assert_eq!(
        event.actor,
        Some(Actor {
            id: Some("3".into()),
            name: None
        })
    );
    assert_eq!(event.changed_fields, ["rank_id", "text"]);
    assert_eq!(
        event.payload.to_value().unwrap()["data"]["text"],
        "Promoted for outstanding leadership \u{2014} see https://perscom.example/orders/512"
    );
    assert_eq!(
        event.payload.to_value().unwrap()["data"]["user"]["name"],
        "Jos\u{e9} \u{c1}lvarez \u{1f396}"
    );
    assert_eq!(
        event.payload.to_value().unwrap()["trace_id"],
        "01HXZ3K6J9V2T8W4Q5R7N1M0PC"
    );

    let event = normalized(Source::PERSCOM, &sample("perscom/user_created.json"));
    assert_eq!(event.event_type, "user.created");
    assert_eq!(event.entity, entity("user", "78", Some("Mia Chen")));
    assert_eq!(event.status, text_change(None, Some("Active")));
    assert!(event.changed_fields.is_empty());
}

#[test]
fn perscom_resource_names_become_snake_case_kinds() {
    for (event, expected) in [
        ("assignmentrecord.created", "assignment_record.created"),
        ("awardrecord.deleted", "award_record.deleted"),
        ("combatrecord.updated", "combat_record.updated"),
        (
            "qualificationrecord.created",
            "qualification_record.created",
        ),
        ("servicerecord.created", "service_record.created"),
        ("submission.created", "submission.created"),
        ("calendar.updated", "calendar.updated"),
        ("event.deleted", "event.deleted"),
    ] {
        let body =
            json!({"event": event, "created": "2024-05-14T16:03:21.000000Z", "data": {"id": 1}})
                .to_string();
        assert_eq!(
            normalized(Source::PERSCOM, body.as_bytes()).event_type,
            expected
        );
    }
}

#[test]
fn peoplelogic_objective_completed() {
    let event = normalized(
        Source::PEOPLELOGIC,
        &sample("peoplelogic/objective_completed.json"),
    );
    assert_eq!(event.event_type, "objective.completed");
    assert_eq!(event.provider_event, "objective.patch");
    assert_eq!(
        event.entity,
        entity(
            "objective",
            "5f0c1a2b-7d3e-4c59-8a61-0b9e2f4d7c18",
            Some("Launch the self-serve onboarding flow")
        )
    );
    assert_eq!(
        event.status,
        text_change(Some("ON_TRACK"), Some("COMPLETED"))
    );
    assert_eq!(
        event.actor,
        Some(Actor {
            id: Some("u-1029".into()),
            name: Some("Priya Raman".into())
        })
    );
    assert_eq!(event.occurred_at, datetime!(2025-06-02 14:21:07 UTC));
    assert_eq!(event.changed_fields, ["status"]);
    assert_eq!(event.progress, None);
}

#[test]
fn peoplelogic_key_result_progress_with_previous_current_pairs() {
    let event = normalized(
        Source::PEOPLELOGIC,
        &sample("peoplelogic/key_result_progress.json"),
    );
    assert_eq!(event.event_type, "key_result.progress_updated");
    assert_eq!(event.entity.kind, "key_result");
    assert_eq!(
        event.entity.name.as_deref(),
        Some("Reach 500 weekly active teams")
    );
    // start 100, target 500: 220 -> 30 %, 340 -> 60 %.
    assert_eq!(
        event.progress,
        Some(Change {
            previous: Some(30.0),
            current: Some(60.0)
        })
    );
    assert_eq!(event.changed_fields, ["currentValue"]);
    assert_eq!(event.actor.unwrap().name.as_deref(), Some("Sam Okafor"));
}

#[test]
fn peoplelogic_key_result_progress_with_plain_values() {
    let event = normalized(
        Source::PEOPLELOGIC,
        &sample("peoplelogic/key_result_progress_plain.json"),
    );
    assert_eq!(event.event_type, "key_result.progress_updated");
    // A decreasing target: start 60, target 10, current 35 -> 50 %.
    assert_eq!(
        event.progress,
        Some(Change {
            previous: None,
            current: Some(50.0)
        })
    );
    assert_eq!(event.status, text_change(None, Some("AT_RISK")));
    assert_eq!(
        event.actor,
        Some(Actor {
            id: Some("u-3301".into()),
            name: None
        })
    );
    assert!(event.changed_fields.is_empty());
}

#[test]
fn peoplelogic_change_types_and_entities() {
    let cases = [
        (
            json!({"eventType": "objective.post", "id": "o1", "title": "T"}),
            "objective.created",
        ),
        (
            json!({"eventType": "objective.delete", "id": "o1"}),
            "objective.deleted",
        ),
        (
            json!({"eventType": "objective.post", "id": "k1", "parentId": "o1"}),
            "key_result.created",
        ),
        (
            json!({"eventType": "meeting.post", "id": "m1"}),
            "meeting.created",
        ),
        (json!({"eventType": "idp.patch", "id": "i1"}), "idp.updated"),
        (
            json!({"eventType": "oneOnOne.patch", "id": "x"}),
            "one_on_one.updated",
        ),
        (
            json!({"entityType": "objective", "changeType": "PATCH", "id": "o1", "status": "COMPLETED"}),
            "objective.completed",
        ),
        (
            json!({"eventType": "objective.patch", "entity": {"id": "o1", "status": {"previous": "ON_TRACK", "current": "COMPLETED"}}}),
            "objective.completed",
        ),
        // Status unchanged, title changed: a plain update.
        (
            json!({"eventType": "objective.patch", "id": "o1", "title": {"previous": "a", "current": "b"}, "status": {"previous": "ON_TRACK", "current": "ON_TRACK"}}),
            "objective.updated",
        ),
        // A key result reaching its target and COMPLETED at once is completed.
        (
            json!({"eventType": "objective.patch", "id": "k", "parentId": "o", "startingValue": 0, "targetValue": 10, "currentValue": {"previous": 8, "current": 10}, "status": {"previous": "ON_TRACK", "current": "COMPLETED"}}),
            "key_result.completed",
        ),
        // A key result whose value did not change is only updated.
        (
            json!({"eventType": "objective.patch", "id": "k", "parentId": "o", "targetValue": 10, "currentValue": {"previous": 8, "current": 8}, "title": {"previous": "a", "current": "b"}}),
            "key_result.updated",
        ),
    ];
    for (body, expected) in cases {
        let event = normalized(Source::PEOPLELOGIC, body.to_string().as_bytes());
        assert_eq!(event.event_type, expected, "{body}");
    }
}

#[test]
fn peoplelogic_bodies_without_an_event_name_are_read_by_their_shape() {
    // The Peoplelogic document's scenario: a webhook on `objective.patch` with
    // `ifUpdates: ["status"]`, whose receiver reads `id` and `status.current`.
    let completed = normalized(
        Source::PEOPLELOGIC,
        br#"{"id":"o1","title":"Ship v2","status":{"previous":"ON_TRACK","current":"COMPLETED"}}"#,
    );
    assert_eq!(completed.event_type, "objective.completed");
    assert_eq!(completed.provider_event, "objective.patch");
    assert_eq!(completed.entity, entity("objective", "o1", Some("Ship v2")));
    assert_eq!(
        completed.status,
        text_change(Some("ON_TRACK"), Some("COMPLETED"))
    );
    assert_valid(&completed);

    // A key result's progress, paired values, `name` for its name.
    let paired = normalized(
        Source::PEOPLELOGIC,
        br#"{"id":"k1","parentId":"o1","name":"Reach 500 teams","startingValue":100,"targetValue":500,"currentValue":{"previous":220,"current":340}}"#,
    );
    assert_eq!(paired.event_type, "key_result.progress_updated");
    assert_eq!(
        paired.entity,
        Entity {
            parent: Some("o1".into()),
            ..entity("key_result", "k1", Some("Reach 500 teams"))
        }
    );
    assert_eq!(
        paired.progress,
        Some(Change {
            previous: Some(30.0),
            current: Some(60.0)
        })
    );
    assert_valid(&paired);

    // Plain values: the value is what changed.
    let plain = normalized(
        Source::PEOPLELOGIC,
        br#"{"id":"k2","parentId":"o1","title":"Cut onboarding","startingValue":60,"targetValue":10,"currentValue":35}"#,
    );
    assert_eq!(plain.event_type, "key_result.progress_updated");
    assert_eq!(
        plain.progress,
        Some(Change {
            previous: None,
            current: Some(50.0)
        })
    );
    assert_valid(&plain);

    let cases = [
        // A plain update of an objective, and of a key result whose value stayed.
        (
            json!({"id": "o2", "title": {"previous": "a", "current": "b"}}),
            "objective.updated",
            "objective.patch",
        ),
        (
            json!({"id": "k3", "parentId": "o1", "targetValue": 10, "currentValue": {"previous": 8, "current": 8}}),
            "key_result.updated",
            "objective.patch",
        ),
        // A plain status, sent because it changed.
        (
            json!({"id": "o3", "status": "COMPLETED"}),
            "objective.completed",
            "objective.patch",
        ),
        // A null parentId is an objective; the entity may sit under `entity`.
        (
            json!({"entity": {"id": "o4", "parentId": null, "status": {"previous": "AT_RISK", "current": "ON_TRACK"}}}),
            "objective.updated",
            "objective.patch",
        ),
        // The body's `entityType` names the kind.
        (
            json!({"entityType": "idp", "id": "i1", "status": "COMPLETED"}),
            "idp.completed",
            "idp.patch",
        ),
        // An objective's own `type` is not an event name.
        (
            json!({"id": "o6", "type": "TEAM", "status": "COMPLETED"}),
            "objective.completed",
            "objective.patch",
        ),
        // An event name in the body still wins.
        (
            json!({"eventType": "objective.post", "id": "o5", "status": "COMPLETED"}),
            "objective.created",
            "objective.post",
        ),
    ];
    for (body, event_type, provider_event) in cases {
        let event = normalized(Source::PEOPLELOGIC, body.to_string().as_bytes());
        assert_eq!(event.event_type, event_type, "{body}");
        assert_eq!(event.provider_event, provider_event, "{body}");
        assert_valid(&event);
    }
}

#[test]
fn peoplelogic_progress_edge_cases() {
    let progress =
        |body: Value| normalized(Source::PEOPLELOGIC, body.to_string().as_bytes()).progress;
    // No startingValue counts from 0; string numbers are read.
    assert_eq!(
        progress(
            json!({"eventType": "objective.patch", "id": "k", "parentId": "o", "targetValue": "200", "currentValue": {"previous": "50", "current": 150}})
        ),
        Some(Change {
            previous: Some(25.0),
            current: Some(75.0)
        })
    );
    // start == target: progress is undefined, not a division by zero.
    assert_eq!(
        progress(
            json!({"eventType": "objective.patch", "id": "k", "parentId": "o", "startingValue": 5, "targetValue": 5, "currentValue": 5})
        ),
        None
    );
    // Over-achievement is reported as it is.
    assert_eq!(
        progress(
            json!({"eventType": "objective.patch", "id": "k", "parentId": "o", "startingValue": 0, "targetValue": 3, "currentValue": 4})
        ),
        Some(Change {
            previous: None,
            current: Some(133.33)
        })
    );
}

#[test]
fn standard_webhooks_type_from_body_and_id_from_webhook_id() {
    let body = sample("standard/key_result_progress.json");
    let mut headers = HeaderMap::new();
    headers.insert(
        "webhook-id",
        HeaderValue::from_static("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
    );
    let event = normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::STANDARD).unwrap(),
        &headers,
        &body,
        RECEIVED,
    )
    .unwrap();
    assert_valid(&event);
    assert_eq!(event.event_type, "key_result.progress_updated");
    assert_eq!(event.provider_event, "key_result.progress_updated");
    assert_eq!(
        event.entity,
        entity("key_result", "kr_42", Some("Close 20 enterprise deals"))
    );
    assert_eq!(event.occurred_at, datetime!(2025-05-20 09:00:00 UTC));
    assert_eq!(
        event.progress,
        Some(Change {
            previous: Some(30.0),
            current: Some(45.0)
        })
    );
    assert_eq!(event.status, text_change(None, Some("on_track")));
    assert_eq!(
        event.actor,
        Some(Actor {
            id: Some("user_7".into()),
            name: Some("Lee Park".into())
        })
    );
    assert_eq!(event.changed_fields, ["progress"]);

    // The id follows webhook-id, so a retry with a re-encoded body is the same event...
    let reencoded = serde_json::to_vec_pretty(&event.payload).unwrap();
    assert_eq!(
        normalize(
            &okr_core::endpoints::Endpoint::of_source(Source::STANDARD).unwrap(),
            &headers,
            &reencoded,
            RECEIVED
        )
        .unwrap()
        .id,
        event.id
    );
    // ... and another message id is another event.
    headers.insert("webhook-id", HeaderValue::from_static("msg_other"));
    assert_ne!(
        normalize(
            &okr_core::endpoints::Endpoint::of_source(Source::STANDARD).unwrap(),
            &headers,
            &body,
            RECEIVED
        )
        .unwrap()
        .id,
        event.id
    );
}

#[test]
fn ids_are_deterministic_per_delivery() {
    for (source, path) in [
        (Source::PEOPLELOGIC, "peoplelogic/objective_completed.json"),
        (Source::PEOPLEFORCE, "peopleforce/employee_create.json"),
        (Source::PERSCOM, "perscom/rankrecord_updated.json"),
    ] {
        let body = sample(path);
        let first = normalize(
            &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
            &HeaderMap::new(),
            &body,
            RECEIVED,
        )
        .unwrap();
        let retried = normalize(
            &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
            &HeaderMap::new(),
            &body,
            datetime!(2025-06-02 15:00:00 UTC),
        )
        .unwrap();
        assert_eq!(first.id, retried.id, "{path}");
        let mut other = body.clone();
        other.extend_from_slice(b" ");
        assert_ne!(
            normalize(
                &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
                &HeaderMap::new(),
                &other,
                RECEIVED
            )
            .unwrap()
            .id,
            first.id
        );
    }
    // The same bytes from two sources are two events.
    let body = br#"{"id": 1}"#;
    assert_ne!(
        normalize(
            &okr_core::endpoints::Endpoint::of_source(Source::PERSCOM).unwrap(),
            &HeaderMap::new(),
            body,
            RECEIVED
        )
        .unwrap()
        .id,
        normalize(
            &okr_core::endpoints::Endpoint::of_source(Source::PEOPLEFORCE).unwrap(),
            &HeaderMap::new(),
            body,
            RECEIVED
        )
        .unwrap()
        .id
    );
}

#[test]
fn unknown_events_still_normalize_with_the_provider_name_kept() {
    let cases = [
        (
            Source::PEOPLEFORCE,
            json!({"action": "payroll_run_finish", "data": {"id": 9}}),
            "payroll_run_finish",
        ),
        (
            Source::PERSCOM,
            json!({"event": "widget.created", "data": {"id": 9}}),
            "widget.created",
        ),
        (
            Source::PERSCOM,
            json!({"event": "user.promoted", "data": {"id": 9}}),
            "user.promoted",
        ),
        (
            Source::STANDARD,
            json!({"type": "Invoice Paid", "data": {}}),
            "Invoice Paid",
        ),
        (
            Source::PEOPLELOGIC,
            json!({"eventType": "objective.archive", "id": "o"}),
            "objective.archive",
        ),
        // No event name and no id: not an entity either.
        (
            Source::PEOPLELOGIC,
            json!({"status": "COMPLETED"}),
            "unknown",
        ),
        (Source::STANDARD, json!({}), "unknown"),
    ];
    for (source, body, provider_event) in cases {
        let event = normalized(source, body.to_string().as_bytes());
        assert_eq!(event.event_type, UNKNOWN_TYPE, "{body}");
        assert_eq!(event.provider_event, provider_event);
        // The body as it was sent, byte for byte.
        assert_eq!(event.payload.get(), body.to_string());
        // No time in the body: occurred_at falls back to the receive time.
        assert_eq!(event.occurred_at, RECEIVED);
    }
}

#[test]
fn only_a_body_that_is_not_a_json_object_is_an_error() {
    let error = |body: &[u8]| {
        normalize(
            &okr_core::endpoints::Endpoint::of_source(Source::PERSCOM).unwrap(),
            &HeaderMap::new(),
            body,
            RECEIVED,
        )
        .unwrap_err()
    };
    assert_eq!(error(b"[1, 2]"), NormalizeError::NotObject("array"));
    assert_eq!(error(b"\"text\""), NormalizeError::NotObject("string"));
    assert_eq!(error(b"null"), NormalizeError::NotObject("null"));
    assert_eq!(error(b"\xff\xfe{}"), NormalizeError::NotUtf8);
    assert!(matches!(error(b""), NormalizeError::NotJson(_)));
    // Nested deeper than an event can carry: a body 100 levels deep is fine, 101 not.
    let nested = |levels: usize| format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels));
    assert!(
        normalize(
            &okr_core::endpoints::Endpoint::of_source(Source::PERSCOM).unwrap(),
            &HeaderMap::new(),
            nested(100).as_bytes(),
            RECEIVED
        )
        .is_ok()
    );
    assert_eq!(error(nested(101).as_bytes()), NormalizeError::TooDeep);
    assert_eq!(
        error(b"{\"a\": }"),
        NormalizeError::NotJson("line 1 column 7".into())
    );
    // The error text never quotes the body.
    assert!(
        !error(br#"{"date_of_birth": "1978-08-31""#)
            .to_string()
            .contains("1978")
    );
}

#[test]
fn the_schema_rejects_what_is_not_an_event() {
    let schema: Value = serde_json::from_str(JSON_SCHEMA_V1).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let event = normalized(
        Source::PEOPLEFORCE,
        &sample("peopleforce/employee_create.json"),
    );
    let good = serde_json::to_value(&event).unwrap();
    assert!(validator.is_valid(&good));
    for (pointer, bad) in [
        ("/type", json!("Employee Created")),
        ("/id", json!("130333")),
        ("/source", json!("Workday")),
        ("/endpoint", json!("hr eu")),
        ("/occurred_at", json!("yesterday")),
        ("/progress", json!({"previous": "10%", "current": null})),
        ("/payload", json!([1])),
    ] {
        let mut instance = good.clone();
        *instance.pointer_mut(pointer).unwrap() = bad;
        assert!(
            !validator.is_valid(&instance),
            "{pointer} should be rejected"
        );
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("received_at");
    assert!(!validator.is_valid(&missing));
}

#[test]
fn times_rfc_3339_cannot_write_in_utc_fall_back_to_received_at() {
    for timestamp in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"] {
        let body =
            json!({"type": "objective.completed", "timestamp": timestamp, "data": {"id": "o1"}});
        let event = normalized(Source::STANDARD, body.to_string().as_bytes());
        assert_eq!(event.occurred_at, RECEIVED, "{timestamp}");
    }
}

//! PERSCOM.io (Laravel, spatie/webhook-server):
//! `{event, created, request_id, trace_id, data, changes}` with events such as
//! `rankrecord.updated`. Bodies come from PHP's `json_encode` (`\/`, `\uXXXX`), which
//! is plain JSON to serde.

use crate::event::Change;
use crate::normalize::{Json, Object, Parts, actor, first_text, first_time};

/// PERSCOM's resource names and the entity kinds they become.
const ENTITIES: [(&str, &str); 10] = [
    ("assignmentrecord", "assignment_record"),
    ("awardrecord", "award_record"),
    ("calendar", "calendar"),
    ("combatrecord", "combat_record"),
    ("event", "event"),
    ("qualificationrecord", "qualification_record"),
    ("rankrecord", "rank_record"),
    ("servicerecord", "service_record"),
    ("submission", "submission"),
    ("user", "user"),
];

const ACTIONS: [&str; 3] = ["created", "updated", "deleted"];

pub(super) fn parts(body: &Object<'_>) -> Parts {
    let data = crate::normalize::object(body, "data");
    let event = first_text(body, &["event"]);
    let related_name = [
        "rank",
        "award",
        "qualification",
        "position",
        "unit",
        "status",
    ]
    .iter()
    .find_map(|key| data.get(key).and_then(Json::as_object))
    .and_then(|related| first_text(related, &["name"]));
    let parts = Parts {
        provider_event: event.clone(),
        entity_id: first_text(data, &["id"]),
        entity_name: first_text(data, &["name", "title"]).or(related_name),
        occurred_at: first_time(body, &["created"]),
        actor: data.get("author").and_then(actor).or_else(|| {
            first_text(data, &["author_id"]).map(|id| crate::event::Actor {
                id: Some(id),
                name: None,
            })
        }),
        status: data
            .get("status")
            .and_then(|status| match status {
                Json::Object(object) => first_text(object, &["name"]),
                other => crate::normalize::text(other),
            })
            .map(|current| Change {
                previous: None,
                current: Some(current),
            }),
        changed_fields: match body.get("changes") {
            Some(Json::Object(changes)) => changes.keys().map(str::to_owned).collect(),
            Some(Json::Array(keys)) => keys.iter().filter_map(crate::normalize::text).collect(),
            _ => Vec::new(),
        },
        ..Parts::default()
    };
    let Some((resource, action)) = event.as_deref().and_then(|e| e.split_once('.')) else {
        return parts;
    };
    let kind = ENTITIES
        .iter()
        .find(|(name, _)| *name == resource)
        .map(|(_, kind)| *kind);
    match kind {
        Some(kind) if ACTIONS.contains(&action) => parts.typed(kind, action),
        _ => parts,
    }
}

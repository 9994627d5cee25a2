//! PeopleForce: `{"action": "employee_create", "data": {...}}`.
//!
//! Topics are `<entity>_<verb>`; the verb becomes the past tense
//! (`leave_request_approve` -> `leave_request.approved`).

use crate::event::Change;
use crate::normalize::{Json, Object, Parts, first_text, first_time};

/// Topic verbs and the action each becomes.
const VERBS: [(&str, &str); 12] = [
    ("create", "created"),
    ("update", "updated"),
    ("destroy", "deleted"),
    ("delete", "deleted"),
    ("terminate", "terminated"),
    ("rehire", "rehired"),
    ("approve", "approved"),
    ("reject", "rejected"),
    ("cancel", "cancelled"),
    ("archive", "archived"),
    ("restore", "restored"),
    ("complete", "completed"),
];

pub(super) fn parts(body: &Object<'_>) -> Parts {
    let data = crate::normalize::object(body, "data");
    let attributes = data
        .get("attributes")
        .and_then(Json::as_object)
        .unwrap_or(data);
    let meta = crate::normalize::object(data, "meta");
    let action = first_text(body, &["action", "event", "topic"]);

    let full_name = match (
        first_text(attributes, &["first_name"]),
        first_text(attributes, &["last_name"]),
    ) {
        (Some(first), Some(last)) => Some(format!("{first} {last}")),
        (first, last) => first.or(last),
    };
    let parts = Parts {
        provider_event: action.clone(),
        entity_id: first_text(data, &["id"]),
        entity_name: first_text(attributes, &["full_name", "name", "title"]).or(full_name),
        occurred_at: first_time(meta, &["updated_at", "created_at"])
            .or_else(|| first_time(attributes, &["updated_at", "created_at"])),
        status: first_text(attributes, &["status", "state"]).map(|current| Change {
            previous: None,
            current: Some(current),
        }),
        changed_fields: body
            .get("changes")
            .and_then(Json::as_object)
            .map(|changes| changes.keys().map(str::to_owned).collect())
            .unwrap_or_default(),
        ..Parts::default()
    };
    let Some(action) = action else { return parts };
    match VERBS.iter().find_map(|(verb, past)| {
        action
            .strip_suffix(verb)?
            .strip_suffix('_')
            .map(|entity| (entity, *past))
    }) {
        Some((entity, past)) => parts.typed(entity, past),
        None => parts,
    }
}

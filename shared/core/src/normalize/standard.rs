//! Standard Webhooks: `{type, timestamp, data}`; the type is already
//! `<entity>.<action>` in most senders' vocabulary and is kept as sent.

use crate::normalize::{Field, Object, Parts, actor, first_text, first_time, is_name};

pub(super) fn parts(body: &Object<'_>) -> Parts {
    let data = crate::normalize::object(body, "data");
    let event_type = first_text(body, &["type"]);
    let mut parts = Parts {
        provider_event: event_type.clone(),
        entity_id: first_text(data, &["id"]),
        entity_name: first_text(data, &["name", "title"]),
        entity_parent: first_text(data, &["objective_id", "parent_id"]),
        occurred_at: first_time(body, &["timestamp"]),
        actor: data.get("actor").and_then(actor),
        status: Field::read(data, "status").map(|f| f.text_change()),
        progress: Field::read(data, "progress").map(|f| f.number_change()),
        changed_fields: crate::normalize::changed_pairs(data),
        ..Parts::default()
    };
    if let Some(event_type) =
        event_type.filter(|t| t.split('.').count() >= 2 && t.split('.').all(is_name))
    {
        parts.entity_kind = event_type.split('.').next().map(str::to_owned);
        parts.event_type = Some(event_type);
    }
    parts
}

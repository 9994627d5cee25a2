//! PERSCOM.io (Laravel, spatie/webhook-server):
//! `{event, created, request_id, trace_id, data, changes}` with events such as
//! `rankrecord.updated`. Bodies come from PHP's `json_encode` (`\/`, `\uXXXX`), which
//! is plain JSON to serde.
//!
//! Signatures: `Signature: <hex HMAC-SHA256 of the body>` (no prefix), keyed with the
//! secret's text. Deliveries must be POSTs: a GET carries the payload in the query
//! string, which no signature covers.

use crate::event::Change;
use crate::parts::{Json, Object, Parts, actor, first_text, first_time};
use http::{HeaderMap, Method};
use time::OffsetDateTime;

use crate::providers::Provider;
use crate::scheme::{Cause, Delivery, VerifyError, decode_hex_mac, mac, single_header};

/// PERSCOM's signature header.
pub const HEADER: &str = "Signature";

/// A prefix PERSCOM never sends (other tools do).
const FOREIGN_PREFIX: &str = "sha256=";

/// PERSCOM.io.
pub struct Perscom;

impl Provider for Perscom {
    fn display_name(&self) -> &'static str {
        "PERSCOM"
    }

    fn delivery<'h>(
        &self,
        headers: &'h HeaderMap,
        _body: &'h [u8],
        _now: OffsetDateTime,
    ) -> Result<Delivery<'h>, VerifyError> {
        let value = single_header(headers, HEADER)?;
        if value.starts_with(FOREIGN_PREFIX) {
            return Err(VerifyError::MalformedHeader {
                header: HEADER,
                reason: "PERSCOM signatures carry no sha256= prefix",
            });
        }
        let signature = decode_hex_mac(value).ok_or(VerifyError::MalformedHeader {
            header: HEADER,
            reason: "expected 64 hex digits",
        })?;
        Ok(Delivery::over_body(signature))
    }

    fn sign(
        &self,
        key: &[u8],
        body: &[u8],
        _id: &str,
        _timestamp: i64,
    ) -> Vec<(&'static str, String)> {
        vec![(HEADER, hex::encode(mac(key, &[body])))]
    }

    fn setup(&self) -> (&'static str, &'static str) {
        ("Webhooks, with the method POST", "the webhook's secret")
    }

    fn signature_format(&self) -> &'static str {
        "Signature: <64 hex digits>"
    }

    fn malformed_causes(
        &self,
        value: &str,
        _headers: &HeaderMap,
        _verifies: &dyn Fn(&HeaderMap) -> bool,
    ) -> Vec<Cause> {
        match value.starts_with(FOREIGN_PREFIX) {
            true => vec![Cause::possible(
                "PERSCOM sends the bare hex digest; a sha256= prefix means the delivery came \
                 from another tool: choose its --source",
            )],
            false => Vec::new(),
        }
    }

    fn parts(&self, body: &Object<'_>) -> Parts {
        parts(body)
    }

    fn method_advice(&self, method: &Method) -> Option<&'static str> {
        (method == Method::GET).then_some(
            "PERSCOM GET deliveries carry the payload in the query string and cannot be \
             verified: choose POST as the webhook's method in PERSCOM",
        )
    }
}

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

fn parts(body: &Object<'_>) -> Parts {
    let data = crate::parts::object(body, "data");
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
                other => crate::parts::text(other),
            })
            .map(|current| Change {
                previous: None,
                current: Some(current),
            }),
        changed_fields: match body.get("changes") {
            Some(Json::Object(changes)) => changes.keys().map(str::to_owned).collect(),
            Some(Json::Array(keys)) => keys.iter().filter_map(crate::parts::text).collect(),
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

//! PeopleForce: `{"action": "employee_create", "data": {...}}`.
//!
//! Topics are `<entity>_<verb>`; the verb becomes the past tense
//! (`leave_request_approve` -> `leave_request.approved`).
//!
//! Signatures: `X-PeopleForce-Signature: sha256=<hex HMAC-SHA256 of the body>`, keyed
//! with the secret's text.

use crate::event::Change;
use crate::parts::{Json, Object, Parts, first_text, first_time};
use http::HeaderMap;
use time::OffsetDateTime;

use crate::person::{Manager, Person};
use crate::providers::Provider;
use crate::scheme::{Cause, Delivery, VerifyError, decode_hex_mac, mac, single_header};

/// PeopleForce's signature header.
pub const HEADER: &str = "X-PeopleForce-Signature";

/// What comes before the hex digest.
const PREFIX: &str = "sha256=";

/// PeopleForce.
pub struct Peopleforce;

impl Provider for Peopleforce {
    fn display_name(&self) -> &'static str {
        "PeopleForce"
    }

    fn delivery<'h>(
        &self,
        headers: &'h HeaderMap,
        _body: &'h [u8],
        _now: OffsetDateTime,
    ) -> Result<Delivery<'h>, VerifyError> {
        let value = single_header(headers, HEADER)?;
        let digest = value
            .strip_prefix(PREFIX)
            .ok_or(VerifyError::MalformedHeader {
                header: HEADER,
                reason: "expected sha256=<hex digest>",
            })?;
        let signature = decode_hex_mac(digest).ok_or(VerifyError::MalformedHeader {
            header: HEADER,
            reason: "expected 64 hex digits after sha256=",
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
        vec![(
            HEADER,
            format!("{PREFIX}{}", hex::encode(mac(key, &[body]))),
        )]
    }

    fn setup(&self) -> (&'static str, &'static str) {
        ("Settings → Webhooks", "the secret text you set there")
    }

    fn signature_format(&self) -> &'static str {
        "X-PeopleForce-Signature: sha256=<64 hex digits>"
    }

    fn malformed_causes(
        &self,
        value: &str,
        headers: &HeaderMap,
        verifies: &dyn Fn(&HeaderMap) -> bool,
    ) -> Vec<Cause> {
        let looks_hex = value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit());
        if !looks_hex {
            return Vec::new();
        }
        let mut fixed = headers.clone();
        if let Ok(with_prefix) = format!("{PREFIX}{value}").parse() {
            fixed.insert(HEADER, with_prefix);
        }
        vec![Cause {
            confirmed: verifies(&fixed),
            text: "the header is missing the sha256= prefix PeopleForce sends".into(),
        }]
    }

    fn parts(&self, body: &Object<'_>) -> Parts {
        parts(body)
    }
}

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

fn parts(body: &Object<'_>) -> Parts {
    let data = crate::parts::object(body, "data");
    let attributes = data
        .get("attributes")
        .and_then(Json::as_object)
        .unwrap_or(data);
    let meta = crate::parts::object(data, "meta");
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
    let parts = Parts {
        person: person(&action, data, attributes, parts.entity_name.as_deref()),
        ..parts
    };
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

/// The directory's fields of an employee record (`employee_*`): its id, name, work
/// `email`, `reporting_to`, and the names of its department, division and position.
/// `employee_terminate` makes them inactive, `employee_create` and `employee_rehire`
/// active; another event leaves that as it was.
fn person(
    action: &str,
    data: &Object<'_>,
    attributes: &Object<'_>,
    name: Option<&str>,
) -> Option<Person> {
    let verb = action.strip_prefix("employee_")?;
    let named = |key: &str| {
        [data, attributes]
            .iter()
            .find_map(|object| object.get(key)?.as_object())
            .and_then(|object| first_text(object, &["name"]))
    };
    let manager = [data, attributes]
        .iter()
        .find_map(|object| object.get("reporting_to")?.as_object())
        .map(|manager| Manager {
            id: first_text(manager, &["id"]),
            email: first_text(manager, &["email"]),
            name: first_text(manager, &["full_name", "name"]),
        })
        .filter(|manager| !manager.is_empty());
    Some(Person {
        id: first_text(data, &["id"])?,
        name: name.map(str::to_owned),
        email: first_text(attributes, &["email", "work_email"]),
        manager,
        department: named("department"),
        division: named("division"),
        position: named("position"),
        active: match verb {
            "terminate" => Some(false),
            "create" | "rehire" => Some(true),
            _ => None,
        },
    })
}

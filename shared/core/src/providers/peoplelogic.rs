//! Peoplelogic: events `<entity>.<post|patch|delete>` about OKRs, IDPs, meetings...
//!
//! The event name comes from `eventType` (or `event`, `type`, or `entityType` with
//! `changeType`); a body without one is read as a patch of its entity, the way the
//! Peoplelogic document's own receiver reads it. The entity is the body itself or its
//! `entity` / `data` object. Fields come plain or as `{previous, current}` pairs. A key result is an objective with a
//! `parentId`; its progress is (current - starting) / (target - starting) x 100.
//!
//! Signatures: `X-Signature: <base64 HMAC-SHA256 of the body>`, keyed with the
//! base64-decoded `secretBase64` text Peoplelogic shows.

use crate::event::Change;
use crate::parts::{
    Field, Json, Object, Parts, actor, first_text, first_time, percent, snake_case,
};
use base64::Engine;
use base64::engine::general_purpose;
use http::HeaderMap;
use time::OffsetDateTime;

use crate::providers::Provider;
use crate::scheme::{BASE64, Cause, Delivery, VerifyError, decode_base64_mac, mac, single_header};

/// Peoplelogic's signature header.
pub const HEADER: &str = "X-Signature";

/// Peoplelogic.
pub struct Peoplelogic;

impl Provider for Peoplelogic {
    fn display_name(&self) -> &'static str {
        "Peoplelogic"
    }

    fn key(&self, secret: &str) -> Result<Vec<u8>, &'static str> {
        BASE64
            .decode(secret)
            .map_err(|_| "a Peoplelogic secret is the secretBase64 text, and this is not base64")
    }

    fn new_secret(&self, random: [u8; 32]) -> String {
        general_purpose::STANDARD.encode(random)
    }

    fn delivery<'h>(
        &self,
        headers: &'h HeaderMap,
        _body: &'h [u8],
        _now: OffsetDateTime,
    ) -> Result<Delivery<'h>, VerifyError> {
        let value = single_header(headers, HEADER)?;
        let signature = decode_base64_mac(value).ok_or(VerifyError::MalformedHeader {
            header: HEADER,
            reason: "expected the base64 of a 32-byte HMAC-SHA256",
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
        vec![(HEADER, general_purpose::STANDARD.encode(mac(key, &[body])))]
    }

    fn setup(&self) -> (&'static str, &'static str) {
        ("a webhook subscription", "the secretBase64 it shows once")
    }

    fn signature_format(&self) -> &'static str {
        "X-Signature: <base64 of the HMAC-SHA256>"
    }

    fn secret_advice(&self) -> &'static str {
        "pass the secretBase64 value exactly as Peoplelogic showed it"
    }

    fn misderived_keys(&self, secret: &str) -> Vec<Vec<u8>> {
        vec![secret.as_bytes().to_vec()]
    }

    fn misderived_key_cause(&self) -> (&'static str, Option<&'static str>) {
        (
            "the signature was made with the secretBase64 text itself as the key; \
             Peoplelogic signs with its base64-decoded bytes",
            Some(
                "a Peoplelogic secret must be base64-decoded before use as the HMAC key \
                 (pass the secretBase64 text: this tool decodes it)",
            ),
        )
    }

    fn malformed_causes(
        &self,
        value: &str,
        _headers: &HeaderMap,
        _verifies: &dyn Fn(&HeaderMap) -> bool,
    ) -> Vec<Cause> {
        let looks_hex = value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit());
        match looks_hex {
            true => vec![Cause::possible(
                "Peoplelogic's X-Signature is base64, and this value is hex: was it signed by \
                 another tool (choose its --source)?",
            )],
            false => Vec::new(),
        }
    }

    fn parts(&self, body: &Object<'_>) -> Parts {
        parts(body)
    }
}

const COMPLETED: &str = "COMPLETED";

fn parts(body: &Object<'_>) -> Parts {
    let entity = ["entity", "data"]
        .iter()
        .find_map(|key| body.get(key).and_then(Json::as_object))
        .unwrap_or(body);
    let entity_id = first_text(entity, &["id", "entityId"]);
    let provider_event = event_name(body, entity_id.is_some());
    let parts = Parts {
        provider_event: provider_event.clone(),
        entity_id,
        entity_name: first_text(entity, &["title", "name"]),
        entity_parent: Field::read(entity, "parentId").and_then(|f| f.current_text()),
        occurred_at: first_time(
            entity,
            &["updatedAt", "modifiedAt", "lastUpdated", "createdAt"],
        ),
        actor: ["updatedBy", "modifiedBy", "lastUpdatedBy", "user", "owner"]
            .iter()
            .find_map(|key| crate::parts::current(entity, key).and_then(actor)),
        status: Field::read(entity, "status").map(|field| field.text_change()),
        progress: progress(entity),
        changed_fields: crate::parts::changed_pairs(entity),
        owner: crate::parts::first_owner(entity, &["owner", "assignee", "assignedTo"]),
        ..Parts::default()
    };
    match provider_event.as_deref().and_then(|e| e.rsplit_once('.')) {
        Some((entity_type, change)) => match kind_and_action(entity, entity_type, change) {
            Some((kind, action)) => parts.typed(&kind, action),
            None => parts,
        },
        None => parts,
    }
}

/// The event's name: `eventType` or `event`, a dotted `type` (an objective's own `type`,
/// "TEAM", is not one), or `entityType` + `changeType`. A body without one is the entity
/// a one-event subscription sends (the Peoplelogic document's receiver reads `id` and
/// `status.current` from it): a patch of its `entityType` (default objective), as long
/// as it has an id.
fn event_name(body: &Object<'_>, has_id: bool) -> Option<String> {
    let named = first_text(body, &["eventType", "event"])
        .or_else(|| first_text(body, &["type"]).filter(|name| name.contains('.')))
        .or_else(|| {
            let entity_type = first_text(body, &["entityType"])?;
            let change_type = first_text(body, &["changeType"])?;
            Some(format!(
                "{entity_type}.{}",
                change_type.to_ascii_lowercase()
            ))
        });
    named.or_else(|| {
        has_id.then_some(())?;
        let entity_type = first_text(body, &["entityType"]).unwrap_or_else(|| "objective".into());
        Some(format!("{entity_type}.patch"))
    })
}

/// The entity kind (an objective with a `parentId` is a key result) and the action: a
/// post is created, a delete deleted, a patch completed when its status becomes
/// COMPLETED, progress_updated when a key result's `currentValue` changed, else updated.
fn kind_and_action(
    entity: &Object<'_>,
    entity_type: &str,
    change: &str,
) -> Option<(String, &'static str)> {
    let mut kind = snake_case(entity_type);
    let is_key_result = Field::read(entity, "parentId").is_some_and(|f| f.current.is_some());
    if kind == "objective" && is_key_result {
        kind = "key_result".to_owned();
    }
    let action = match change.to_ascii_lowercase().as_str() {
        "post" => "created",
        "delete" => "deleted",
        "patch" => {
            let completed = Field::read(entity, "status").is_some_and(|field| {
                field.changed()
                    && field
                        .current_text()
                        .is_some_and(|s| s.eq_ignore_ascii_case(COMPLETED))
            });
            let moved = Field::read(entity, "currentValue").is_some_and(|f| f.changed());
            if completed {
                "completed"
            } else if kind == "key_result" && moved {
                "progress_updated"
            } else {
                "updated"
            }
        }
        _ => return None,
    };
    Some((kind, action))
}

/// Key-result progress from `startingValue`, `currentValue` and `targetValue` (each
/// plain or paired; a missing start counts as 0), else a `progress` field in percent.
fn progress(entity: &Object<'_>) -> Option<Change<f64>> {
    let current = Field::read(entity, "currentValue").map(|f| f.number_change());
    let target = Field::read(entity, "targetValue").map(|f| f.number_change());
    if let (Some(current), Some(target)) = (current, target) {
        let start = Field::read(entity, "startingValue")
            .map(|f| f.number_change())
            .unwrap_or(Change {
                previous: Some(0.0),
                current: Some(0.0),
            });
        let at = |value: Option<f64>, start: Option<f64>, target: Option<f64>| {
            percent(start.unwrap_or(0.0), value?, target?)
        };
        let change = Change {
            previous: at(
                current.previous,
                start.previous.or(start.current),
                target.previous.or(target.current),
            ),
            current: at(current.current, start.current, target.current),
        };
        return (change.current.is_some() || change.previous.is_some()).then_some(change);
    }
    Field::read(entity, "progress").map(|f| f.number_change())
}

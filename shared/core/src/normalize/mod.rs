//! Turn each source's body into one [`Event`] (schema v1).
//!
//! Only a body that is not a JSON object is an error: an event this crate does not
//! recognize still normalizes, with the type [`UNKNOWN_TYPE`] and the provider's own
//! name kept, so nothing is dropped.

mod context;

mod lazy;

pub use crate::json::{Json, Object};
pub use context::notification_payload;

use http::HeaderMap;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::endpoints::Endpoint;
use crate::event::{Entity, Event, Payload, SCHEMA_V1, UNKNOWN_TYPE};
use crate::providers::declared::MappingError;
use crate::source::Source;

/// Why a body cannot be normalized. The texts never quote the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// The body is not UTF-8.
    #[error("body is not valid UTF-8")]
    NotUtf8,
    /// The body is not JSON; the text says where parsing stopped.
    #[error("body is not valid JSON ({0})")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("body is a JSON {0}, not an object")]
    NotObject(&'static str),
    /// The body nests arrays and objects deeper than [`MAX_DEPTH`].
    #[error("body nests arrays and objects more than {MAX_DEPTH} levels deep")]
    TooDeep,
    /// The endpoint's mapping found a value of the wrong type.
    #[error(transparent)]
    Mapping(#[from] MappingError),
}

/// The deepest nesting of arrays and objects a body may have. The event carries the body
/// one level down, and every consumer must be able to read the event back (serde_json
/// stops at 128 levels), so ingest refuses what no consumer could decode.
pub const MAX_DEPTH: usize = 100;

/// Normalize one verified delivery to `endpoint`. `received_at` is the arrival time
/// (the clock is passed in); `headers` supply the delivery id of a provider that sends
/// one.
pub fn normalize(
    endpoint: &Endpoint,
    headers: &HeaderMap,
    body: &[u8],
    received_at: OffsetDateTime,
) -> Result<Event, NormalizeError> {
    let text = std::str::from_utf8(body).map_err(|_| NormalizeError::NotUtf8)?;
    let not_json = |error: serde_json::Error| {
        NormalizeError::NotJson(format!("line {} column {}", error.line(), error.column()))
    };
    let read: Json<'_> = serde_json::from_str(text).map_err(not_json)?;
    let Json::Object(object) = &read else {
        return Err(NormalizeError::NotObject(read.kind()));
    };
    if read.deeper_than(MAX_DEPTH) {
        return Err(NormalizeError::TooDeep);
    }
    let provider = endpoint.provider();
    let parts = match provider.mapped_parts(&read, endpoint.name().as_str()) {
        Some(mapped) => mapped?,
        None => provider.parts(object),
    };
    let delivery_id = provider.delivery_id(headers, &read);
    // The clock is ours; a time RFC 3339 cannot write in UTC (year 10000) is a bug.
    let received_at = crate::event::utc(received_at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let event_type = parts.event_type.unwrap_or_else(|| UNKNOWN_TYPE.to_owned());
    let entity_kind = parts.entity_kind.unwrap_or_else(|| "unknown".to_owned());
    Ok(Event {
        schema: SCHEMA_V1.to_owned(),
        id: event_id(endpoint.name(), delivery_id.as_deref().unwrap_or(body)),
        source: endpoint.source(),
        endpoint: Some(endpoint.name()),
        period: context::period(&read, &entity_kind),
        related: context::related(&read, &event_type),
        event_type,
        provider_event: parts.provider_event.unwrap_or_else(|| "unknown".to_owned()),
        entity: Entity {
            kind: entity_kind,
            id: parts.entity_id,
            name: parts.entity_name,
            parent: parts.entity_parent,
        },
        occurred_at: parts.occurred_at.unwrap_or(received_at),
        received_at,
        actor: parts.actor,
        status: parts.status,
        progress: parts.progress,
        changed_fields: parts.changed_fields,
        owner: parts.owner,
        person: parts.person,
        payload: Payload::from_body(text).map_err(not_json)?,
        replay: None,
    })
}

/// Fill in what an event normalized by an older version (before `period` and
/// `related`, or an HR record's `person`) leaves out, from the payload it carries, so
/// events still queued across an upgrade, or replayed from the archive, read the same
/// to the consumers. An event that has them is left as it is. `person` comes back for
/// the tools whose provider knows it (PeopleForce); a declared mapping's is not
/// re-read.
pub fn fill_in(event: &mut Event) {
    let without_person = event.person.is_none() && event.entity.kind == "employee";
    if event.period.is_some() && !event.related.is_empty() && !without_person {
        return;
    }
    let Ok(body) = event.payload.read() else {
        return;
    };
    let period = context::period(&body, &event.entity.kind);
    let related = context::related(&body, &event.event_type);
    if without_person
        && let (Json::Object(object), Some(provider)) =
            (&body, crate::providers::provider(event.source))
    {
        event.person = provider.parts(object).person;
    }
    drop(body);
    event.period = event.period.or(period);
    if event.related.is_empty() {
        event.related = related;
    }
}

/// The deterministic event id: `evt_` and the first 128 bits of
/// SHA-256(endpoint, 0, key) (an endpoint named after its source, as the four built-in
/// ones are, gives the ids it always gave), where the key is the provider's delivery id when it has one
/// that stays the same across retries (`Provider::delivery_id`), else the raw
/// body (a retry resends the same bytes).
pub fn event_id(endpoint: Source, key: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(endpoint.as_str())
        .chain_update([0])
        .chain_update(key)
        .finalize();
    format!("evt_{}", hex::encode(&digest[..16]))
}

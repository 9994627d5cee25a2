//! Turn each source's body into one [`Event`] (schema v1).
//!
//! Only a body that is not a JSON object is an error: an event this crate does not
//! recognize still normalizes, with the type [`UNKNOWN_TYPE`] and the provider's own
//! name kept, so nothing is dropped.

mod context;

mod lazy;

pub use crate::json::{Json, Object};
pub use context::notification_payload;
mod peopleforce;
mod peoplelogic;
mod perscom;
mod standard;

use http::HeaderMap;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::event::{Actor, Change, Entity, Event, Payload, SCHEMA_V1, UNKNOWN_TYPE};
use crate::signature::STANDARD_ID_HEADER;
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
}

/// The deepest nesting of arrays and objects a body may have. The event carries the body
/// one level down, and every consumer must be able to read the event back (serde_json
/// stops at 128 levels), so ingest refuses what no consumer could decode.
pub const MAX_DEPTH: usize = 100;

/// Normalize one verified delivery. `received_at` is the arrival time (the clock is
/// passed in); `headers` supply the Standard Webhooks delivery id.
pub fn normalize(
    source: Source,
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
    let parts = match source {
        Source::Peoplelogic => peoplelogic::parts(object),
        Source::Peopleforce => peopleforce::parts(object),
        Source::Perscom => perscom::parts(object),
        Source::Standard => standard::parts(object),
    };
    let delivery_id = match source {
        Source::Standard => headers
            .get(STANDARD_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::as_bytes),
        _ => None,
    };
    // The clock is ours; a time RFC 3339 cannot write in UTC (year 10000) is a bug.
    let received_at = crate::event::utc(received_at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let event_type = parts.event_type.unwrap_or_else(|| UNKNOWN_TYPE.to_owned());
    let entity_kind = parts.entity_kind.unwrap_or_else(|| "unknown".to_owned());
    Ok(Event {
        schema: SCHEMA_V1.to_owned(),
        id: event_id(source, delivery_id.unwrap_or(body)),
        source,
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
        payload: Payload::from_body(text).map_err(not_json)?,
        replay: None,
    })
}

/// Fill in what an event normalized by an older version (before `period` and
/// `related`) leaves out, from the payload it carries, so events still queued across an
/// upgrade read the same to the consumers. An event that has them is left as it is.
pub fn fill_in(event: &mut Event) {
    if event.period.is_some() && !event.related.is_empty() {
        return;
    }
    let Ok(body) = event.payload.read() else {
        return;
    };
    let period = context::period(&body, &event.entity.kind);
    let related = context::related(&body, &event.event_type);
    drop(body);
    event.period = event.period.or(period);
    if event.related.is_empty() {
        event.related = related;
    }
}

/// The deterministic event id: `evt_` and the first 128 bits of
/// SHA-256(source, 0, key), where the key is the provider's delivery id when it has one
/// that stays the same across retries (Standard Webhooks' `webhook-id`), else the raw
/// body (a retry resends the same bytes).
pub fn event_id(source: Source, key: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(source.as_str())
        .chain_update([0])
        .chain_update(key)
        .finalize();
    format!("evt_{}", hex::encode(&digest[..16]))
}

/// What a source module reads from its body; `normalize` fills in the rest.
#[derive(Debug, Default)]
struct Parts {
    event_type: Option<String>,
    provider_event: Option<String>,
    entity_kind: Option<String>,
    entity_id: Option<String>,
    entity_name: Option<String>,
    entity_parent: Option<String>,
    occurred_at: Option<OffsetDateTime>,
    actor: Option<Actor>,
    status: Option<Change<String>>,
    progress: Option<Change<f64>>,
    changed_fields: Vec<String>,
}

impl Parts {
    /// Set the entity kind and type from `<kind>.<action>`; an invalid name leaves the
    /// event unknown.
    fn typed(mut self, kind: &str, action: &str) -> Self {
        if is_name(kind) && is_name(action) {
            self.entity_kind = Some(kind.to_owned());
            self.event_type = Some(format!("{kind}.{action}"));
        }
        self
    }
}

/// `[a-z][a-z0-9_]*`: one segment of an event type.
fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `keyResult`, `Key-Result`, `key result` -> `key_result`.
fn snake_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c == '-' || c == ' ' || c == '_' {
            out.push('_');
            previous_lower = false;
        } else {
            out.push(c);
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// A field that may come plain (`"status": "DONE"`) or as a change
/// (`"status": {"previous": "ON_TRACK", "current": "DONE"}`).
#[derive(Debug, Clone, Copy)]
struct Field<'a> {
    previous: Option<&'a Json<'a>>,
    current: Option<&'a Json<'a>>,
    /// Whether it came as a `{previous, current}` pair.
    paired: bool,
}

impl<'a> Field<'a> {
    fn read(object: &'a Object<'a>, key: &str) -> Option<Field<'a>> {
        Field::of(object.get(key)?)
    }

    fn of(value: &'a Json<'a>) -> Option<Field<'a>> {
        match value {
            Json::Object(pair)
                if !pair.is_empty() && pair.keys().all(|k| k == "previous" || k == "current") =>
            {
                Some(Field {
                    previous: pair.get("previous").filter(|v| !v.is_null()),
                    current: pair.get("current").filter(|v| !v.is_null()),
                    paired: true,
                })
            }
            Json::Null => None,
            plain => Some(Field {
                previous: None,
                current: Some(plain),
                paired: false,
            }),
        }
    }

    /// Changed, as far as the body tells: a pair with different values, or a plain
    /// value (the provider sent it because it changed; it cannot say otherwise).
    fn changed(&self) -> bool {
        !self.paired || self.previous != self.current
    }

    fn text_change(&self) -> Change<String> {
        Change {
            previous: self.previous.and_then(text),
            current: self.current.and_then(text),
        }
    }

    fn number_change(&self) -> Change<f64> {
        Change {
            previous: self.previous.and_then(number),
            current: self.current.and_then(number),
        }
    }

    fn current_text(&self) -> Option<String> {
        self.current.and_then(text)
    }
}

/// The object at `key` (the provider's `data`, `meta`, ...), or an empty one.
fn object<'a>(body: &'a Object<'a>, key: &str) -> &'a Object<'a> {
    static EMPTY: Object<'static> = Object::new();
    body.get(key).and_then(Json::as_object).unwrap_or(&EMPTY)
}

/// The fields of `object` sent as a `{previous, current}` pair whose values differ,
/// each once (a key sent twice counts with its last value).
fn changed_pairs(object: &Object<'_>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut changed: Vec<String> = object
        .iter()
        .rev()
        .filter(|(key, _)| seen.insert(*key))
        .filter(|(_, value)| Field::of(value).is_some_and(|f| f.paired && f.changed()))
        .map(|(key, _)| key.to_owned())
        .collect();
    changed.reverse();
    changed
}

/// The current value of `key`, plain or paired.
fn current<'a>(object: &'a Object<'a>, key: &str) -> Option<&'a Json<'a>> {
    Field::read(object, key).and_then(|field| field.current)
}

/// The first of `keys` that holds text (a string or number).
fn first_text(object: &Object<'_>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|key| current(object, key).and_then(text))
}

/// The first of `keys` that holds an RFC 3339 time, in UTC.
fn first_time(object: &Object<'_>, keys: &[&str]) -> Option<OffsetDateTime> {
    keys.iter()
        .find_map(|key| current(object, key).and_then(timestamp))
}

/// Strings as they are, numbers as written; nothing else is text.
fn text(value: &Json<'_>) -> Option<String> {
    match value {
        Json::String(s) if !s.is_empty() => Some(s.as_ref().to_owned()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Numbers, and strings that hold one (`"42.5"`).
fn number(value: &Json<'_>) -> Option<f64> {
    match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

fn timestamp(value: &Json<'_>) -> Option<OffsetDateTime> {
    let text = value.as_str()?;
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        // PHP and Rails often write "2024-01-31 12:00:00" in UTC.
        .or_else(|| {
            OffsetDateTime::parse(&format!("{}Z", text.replacen(' ', "T", 1)), &Rfc3339).ok()
        })?;
    crate::event::utc(parsed)
}

/// An object's `id` and display name: `{id, name | full_name | displayName | title}`,
/// or a plain string or number taken as the id.
fn actor(value: &Json<'_>) -> Option<Actor> {
    let actor = match value {
        Json::Object(object) => Actor {
            id: first_text(object, &["id"]),
            name: first_text(
                object,
                &["name", "full_name", "fullName", "displayName", "title"],
            ),
        },
        other => Actor {
            id: text(other),
            name: None,
        },
    };
    (actor.id.is_some() || actor.name.is_some()).then_some(actor)
}

/// Progress in percent from start, current and target values; none when the range is
/// empty. Rounded to two decimals so the same inputs always print the same.
fn percent(start: f64, current: f64, target: f64) -> Option<f64> {
    let span = target - start;
    (span != 0.0).then(|| ((current - start) / span * 10_000.0).round() / 100.0)
}

//! The normalized event, schema v1 (`schema/event.v1.json`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::source::Source;

/// The value of [`Event::schema`] for this version.
pub const SCHEMA_V1: &str = "okr-webhooks.event.v1";

/// The type given to provider events this crate does not recognize; the provider's
/// own name stays in [`Event::provider_event`] and the body in [`Event::payload`].
pub const UNKNOWN_TYPE: &str = "unknown.received";

/// One provider delivery in the one shape every consumer reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Always [`SCHEMA_V1`].
    pub schema: String,
    /// `evt_` and 32 hex digits; the same delivery, retried, gives the same id.
    pub id: String,
    /// Who sent it.
    pub source: Source,
    /// `<entity>.<action>`, e.g. `objective.completed`, or [`UNKNOWN_TYPE`].
    #[serde(rename = "type")]
    pub event_type: String,
    /// The provider's own name for the event, e.g. `employee_create`.
    pub provider_event: String,
    /// What the event is about.
    pub entity: Entity,
    /// When the provider says it happened; `received_at` when it does not say.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// When the delivery reached us.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Who made the change, when the provider says.
    pub actor: Option<Actor>,
    /// The entity's status before and after, when the provider sends one.
    pub status: Option<Change<String>>,
    /// Progress in percent before and after, for key results and other progress.
    pub progress: Option<Change<f64>>,
    /// Fields the provider reports as changed.
    pub changed_fields: Vec<String>,
    /// The provider's JSON body, unchanged.
    pub payload: Value,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// `objective`, `key_result`, `employee`, `rank_record`, ...
    pub kind: String,
    /// The provider's id for it, as text.
    pub id: Option<String>,
    /// Its title or name, for messages.
    pub name: Option<String>,
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The provider's id for them.
    pub id: Option<String>,
    /// Their display name.
    pub name: Option<String>,
}

/// A value before and after the change; either may be unknown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change<T> {
    /// Before, when known.
    pub previous: Option<T>,
    /// After, when known.
    pub current: Option<T>,
}

/// `time` in UTC, when that is a time RFC 3339 can write (years 0 to 9999);
/// `9999-12-31T23:59:59-01:00` is not.
pub fn utc(time: OffsetDateTime) -> Option<OffsetDateTime> {
    time.checked_to_offset(time::UtcOffset::UTC)
        .filter(|t| (0..=9999).contains(&t.year()))
}

/// `schema/event.v1.json`, the JSON Schema (draft 2020-12) of [`Event`].
pub const JSON_SCHEMA_V1: &str = include_str!("../../schema/event.v1.json");

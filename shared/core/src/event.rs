//! The normalized event, schema v1 (`schema/event.v1.json`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::json::Json;
use crate::person::{Owner, Person};

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
    /// The tool that sent it: a built-in provider, a preset, or for a scheme declared
    /// in the endpoints document, the endpoint's name.
    pub source: Source,
    /// The endpoint it was posted to (`POST /webhooks/<endpoint>`). Added in schema v1.1;
    /// an event from before has none, and its endpoint is its source
    /// ([`Event::endpoint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Source>,
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
    /// A key result's or objective's period, when the provider sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// The names an HR record refers to, when the provider sends them.
    #[serde(default, skip_serializing_if = "Related::is_empty")]
    pub related: Related,
    /// The key result's or objective's owner or assignee, when the provider names one.
    /// Added in schema v1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// An HR record's directory fields (id, name, work email, manager, department,
    /// division, position, active), and nothing else of it. Added in schema v1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
    /// The provider's JSON body, unchanged.
    pub payload: Payload,
    /// Set when a replay re-sent it (`okr_consumers::replay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayMark>,
}

impl Event {
    /// The endpoint it was posted to; its source for an event from before endpoints.
    pub fn endpoint(&self) -> Source {
        self.endpoint.unwrap_or(self.source)
    }

    /// A copy of this event carrying `payload` instead of its own (whose body is not
    /// copied first, as `Event { payload, ..event.clone() }` would).
    pub fn with_payload(&self, payload: Payload) -> Event {
        // Every field named, so a new one cannot be left out.
        let Event {
            schema,
            id,
            source,
            endpoint,
            event_type,
            provider_event,
            entity,
            occurred_at,
            received_at,
            actor,
            status,
            progress,
            changed_fields,
            period,
            related,
            owner,
            person,
            payload: _,
            replay,
        } = self;
        Event {
            schema: schema.clone(),
            id: id.clone(),
            source: *source,
            endpoint: *endpoint,
            event_type: event_type.clone(),
            provider_event: provider_event.clone(),
            entity: entity.clone(),
            occurred_at: *occurred_at,
            received_at: *received_at,
            actor: actor.clone(),
            status: status.clone(),
            progress: progress.clone(),
            changed_fields: changed_fields.clone(),
            period: *period,
            related: related.clone(),
            owner: owner.clone(),
            person: person.clone(),
            payload,
            replay: replay.clone(),
        }
    }
}

/// The provider's JSON body as it was sent: carried as its text, never rebuilt, so the
/// event is encoded in one pass and the body reaches the warehouse byte for byte (line
/// breaks and tabs between its tokens aside, which NDJSON cannot carry).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The body's JSON text, checked. Line breaks and tabs can only stand between tokens
    /// in JSON (inside strings they are escaped), so they become spaces and the value is
    /// the same.
    pub fn from_body(text: &str) -> Result<Payload, serde_json::Error> {
        match memchr::memchr3(b'\t', b'\n', b'\r', text.as_bytes()) {
            // The usual body, compact: checked in place (without the spaces around it)
            // and copied once.
            None => serde_json::from_str::<&RawValue>(text).map(|raw| Payload(raw.to_owned())),
            // Bytes, not chars: all three are ASCII, and a char-by-char replace cost
            // more than the rest of normalizing.
            Some(_) => {
                let spaced: Vec<u8> = (text.trim().bytes())
                    .map(|b| match b {
                        b'\t' | b'\n' | b'\r' => b' ',
                        other => other,
                    })
                    .collect();
                let spaced = String::from_utf8(spaced).map_err(serde::de::Error::custom)?;
                RawValue::from_string(spaced).map(Payload)
            }
        }
    }

    /// A payload of `raw`.
    pub fn from_raw(raw: Box<RawValue>) -> Payload {
        Payload(raw)
    }

    /// The JSON value, unparsed.
    pub fn raw(&self) -> &RawValue {
        &self.0
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The body read in place, for the few fields a reader needs.
    pub fn read(&self) -> Result<Json<'_>, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The body as a `serde_json::Value`.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

impl PartialEq for Payload {
    /// The same JSON value (the same text, or the same once read: spacing aside).
    fn eq(&self, other: &Payload) -> bool {
        self.get() == other.get()
            || matches!((self.to_value(), other.to_value()), (Ok(a), Ok(b)) if a == b)
    }
}

/// The replay that re-sent an event: by default the consumers' usual idempotency
/// decides what goes out again (only what never did); `forced`, their keys are scoped
/// to the replay's name, so it goes out once more, once per name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayMark {
    /// The replay's name.
    pub name: String,
    /// Whether it sends again what was sent.
    #[serde(default)]
    pub forced: bool,
    /// Whether Slack posts it whatever its type (`--all-types`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_types: bool,
    /// The one subscription it is for (`--to subscription:NAME`): the subscriptions'
    /// consumer sends it to that subscription alone, and not to the event bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
}

impl ReplayMark {
    /// What the consumers' idempotency keys start with for the events it marks:
    /// nothing, or `replay:<name>:` when forced.
    pub fn key_scope(&self) -> String {
        match self.forced {
            true => format!("replay:{}:", self.name),
            false => String::new(),
        }
    }
}

impl Event {
    /// What the consumers' idempotency keys start with ([`ReplayMark::key_scope`]).
    pub fn key_scope(&self) -> String {
        self.replay
            .as_ref()
            .map(ReplayMark::key_scope)
            .unwrap_or_default()
    }
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
    /// The objective a key result belongs to, when the provider says (a `parentId`, a
    /// `data.objective_id`: docs/event-schema.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
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

/// A key result's or objective's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// The first day.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// The due date; after `start`.
    #[serde(with = "time::serde::rfc3339")]
    pub due: OffsetDateTime,
}

impl Period {
    /// The share of the period elapsed at `at`, in percent, 0 to 100.
    pub fn elapsed(&self, at: OffsetDateTime) -> f64 {
        let total = (self.due - self.start).as_seconds_f64();
        if total <= 0.0 {
            return 100.0;
        }
        ((at - self.start).as_seconds_f64() / total * 100.0).clamp(0.0, 100.0)
    }
}

/// The names of what an HR record refers to: messages show them. Only names, never the
/// rest of those records (birth dates, personal emails stay in `payload`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Related {
    /// The member a record is about (a roster record's `data.user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// A person's department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// A person's position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// The award of an award record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub award: Option<String>,
    /// The rank of a rank record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<String>,
    /// The qualification of a qualification record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification: Option<String>,
    /// Whether a rank record promotes or demotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_change: Option<RankChange>,
}

impl Related {
    /// Whether it names nothing (then the event leaves it out).
    pub fn is_empty(&self) -> bool {
        self == &Related::default()
    }
}

/// The direction of a rank record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RankChange {
    /// Up a rank (a rank record's `data.type` 0).
    Promotion,
    /// Down a rank (a rank record's `data.type` 1).
    Demotion,
}

/// `60.0` -> `60`, `33.333` -> `33.3`: a percentage as messages show it.
pub fn percent(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

/// `time` in UTC, when that is a time RFC 3339 can write (years 0 to 9999);
/// `9999-12-31T23:59:59-01:00` is not.
pub fn utc(time: OffsetDateTime) -> Option<OffsetDateTime> {
    time.checked_to_offset(time::UtcOffset::UTC)
        .filter(|t| (0..=9999).contains(&t.year()))
}

/// `schema/event.v1.json`, the JSON Schema (draft 2020-12) of [`Event`].
pub const JSON_SCHEMA_V1: &str = include_str!("../../../schema/event.v1.json");

/// A replay's name: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_replay_name(name: &str) -> Result<(), String> {
    let fits = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    match fits {
        true => Ok(()),
        false => Err(format!(
            "{name:?} is not a replay name: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )),
    }
}

//! The toolkit a provider's normalization reads its body with: the [`Parts`] it fills
//! in, fields sent plain or as `{previous, current}` pairs, text, numbers, times,
//! actors and percentages, read the same way for every provider.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::event::{Actor, Change};
pub use crate::json::{Json, Object};
use crate::person::Owner;

/// What a provider reads from its body; `normalize` fills in the rest.
#[derive(Debug, Default)]
pub struct Parts {
    pub event_type: Option<String>,
    pub provider_event: Option<String>,
    pub entity_kind: Option<String>,
    pub entity_id: Option<String>,
    pub entity_name: Option<String>,
    pub entity_parent: Option<String>,
    pub occurred_at: Option<OffsetDateTime>,
    pub actor: Option<Actor>,
    pub status: Option<Change<String>>,
    pub progress: Option<Change<f64>>,
    pub changed_fields: Vec<String>,
    /// The entity's owner or assignee, when the body names one.
    pub owner: Option<Owner>,
    /// An HR record's directory fields.
    pub person: Option<crate::person::Person>,
}

impl Parts {
    /// Set the entity kind and type from `<kind>.<action>`; an invalid name leaves the
    /// event unknown.
    pub fn typed(mut self, kind: &str, action: &str) -> Self {
        if is_name(kind) && is_name(action) {
            self.entity_kind = Some(kind.to_owned());
            self.event_type = Some(format!("{kind}.{action}"));
        }
        self
    }
}

/// `[a-z][a-z0-9_]*`: one segment of an event type.
pub fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `keyResult`, `Key-Result`, `key result` -> `key_result`.
pub fn snake_case(text: &str) -> String {
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
pub struct Field<'a> {
    pub previous: Option<&'a Json<'a>>,
    pub current: Option<&'a Json<'a>>,
    /// Whether it came as a `{previous, current}` pair.
    pub paired: bool,
}

impl<'a> Field<'a> {
    pub fn read(object: &'a Object<'a>, key: &str) -> Option<Field<'a>> {
        Field::of(object.get(key)?)
    }

    pub fn of(value: &'a Json<'a>) -> Option<Field<'a>> {
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
    pub fn changed(&self) -> bool {
        !self.paired || self.previous != self.current
    }

    pub fn text_change(&self) -> Change<String> {
        Change {
            previous: self.previous.and_then(text),
            current: self.current.and_then(text),
        }
    }

    pub fn number_change(&self) -> Change<f64> {
        Change {
            previous: self.previous.and_then(number),
            current: self.current.and_then(number),
        }
    }

    pub fn current_text(&self) -> Option<String> {
        self.current.and_then(text)
    }
}

/// The object at `key` (the provider's `data`, `meta`, ...), or an empty one.
pub fn object<'a>(body: &'a Object<'a>, key: &str) -> &'a Object<'a> {
    static EMPTY: Object<'static> = Object::new();
    body.get(key).and_then(Json::as_object).unwrap_or(&EMPTY)
}

/// The fields of `object` sent as a `{previous, current}` pair whose values differ,
/// each once (a key sent twice counts with its last value).
pub fn changed_pairs(object: &Object<'_>) -> Vec<String> {
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
pub fn current<'a>(object: &'a Object<'a>, key: &str) -> Option<&'a Json<'a>> {
    Field::read(object, key).and_then(|field| field.current)
}

/// The first of `keys` that holds text (a string or number).
pub fn first_text(object: &Object<'_>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|key| current(object, key).and_then(text))
}

/// The first of `keys` that holds an RFC 3339 time, in UTC.
pub fn first_time(object: &Object<'_>, keys: &[&str]) -> Option<OffsetDateTime> {
    keys.iter()
        .find_map(|key| current(object, key).and_then(timestamp))
}

/// Strings as they are, numbers as written; nothing else is text.
pub fn text(value: &Json<'_>) -> Option<String> {
    match value {
        Json::String(s) if !s.is_empty() => Some(s.as_ref().to_owned()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Numbers, and strings that hold one (`"42.5"`).
pub fn number(value: &Json<'_>) -> Option<f64> {
    match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

pub fn timestamp(value: &Json<'_>) -> Option<OffsetDateTime> {
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
pub fn actor(value: &Json<'_>) -> Option<Actor> {
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
pub fn percent(start: f64, current: f64, target: f64) -> Option<f64> {
    let span = target - start;
    (span != 0.0).then(|| ((current - start) / span * 10_000.0).round() / 100.0)
}

/// An owner from a body's `owner`-like field: an object with an id, a name or an
/// email, or a text (an email when it has an `@`, else a name).
pub fn owner(value: &Json<'_>) -> Option<Owner> {
    let owner = match value {
        Json::Object(object) => Owner {
            id: first_text(object, &["id"]),
            name: first_text(
                object,
                &["name", "full_name", "fullName", "displayName", "title"],
            ),
            email: first_text(object, &["email", "work_email", "workEmail"]),
        },
        Json::String(text) if text.contains('@') => Owner {
            email: Some(text.to_string()),
            ..Owner::default()
        },
        Json::String(text) if !text.is_empty() => Owner {
            name: Some(text.to_string()),
            ..Owner::default()
        },
        _ => return None,
    };
    (!owner.is_empty()).then_some(owner)
}

/// The first of `keys` in `object` that names an owner.
pub fn first_owner(object: &Object<'_>, keys: &[&str]) -> Option<Owner> {
    keys.iter()
        .find_map(|key| current(object, key).and_then(owner))
}

//! The tool an event came from, and the names endpoints and tools go by.
//!
//! Four tools are built in (their providers are Rust modules in `crate::providers`); the
//! presets and the schemes a user declares (`crate::endpoints`) add more at run time, so
//! a source is a name rather than a closed list. Names are interned: each distinct name
//! is stored once for the life of the process (they come from the endpoints document,
//! so there are few), which keeps [`Source`] `Copy` like the enum it replaced.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The tool a delivery came from: a built-in provider's name (`peopleforce`), a
/// preset's (`greenhouse`), or a declared scheme's endpoint name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(&'static str);

impl Source {
    /// Peoplelogic: `X-Signature`, base64 HMAC-SHA256 with a base64 key.
    pub const PEOPLELOGIC: Source = Source("peoplelogic");
    /// PeopleForce: `X-PeopleForce-Signature: sha256=<hex>`.
    pub const PEOPLEFORCE: Source = Source("peopleforce");
    /// PERSCOM.io: `Signature: <hex>`.
    pub const PERSCOM: Source = Source("perscom");
    /// Any tool speaking Standard Webhooks v1.
    pub const STANDARD: Source = Source("standard");

    /// The built-in sources, in the order the README lists them: with no endpoints
    /// document, each is an endpoint of its own name.
    pub const ALL: [Source; 4] = [
        Source::PEOPLELOGIC,
        Source::PEOPLEFORCE,
        Source::PERSCOM,
        Source::STANDARD,
    ];

    /// The name used in routes, secrets and events.
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// The names of the built-in sources, as a list for messages: `a, b, c, d`.
    pub fn names() -> String {
        Source::ALL.map(Source::as_str).join(", ")
    }

    /// A source of this name, when it is a valid name ([`check_name`]).
    pub fn named(name: &str) -> Result<Source, InvalidName> {
        check_name(name)?;
        Ok(Source(intern(name)))
    }

    /// Whether it is one of the four built-in providers.
    pub fn is_builtin(self) -> bool {
        Source::ALL.contains(&self)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The name is not a valid source or endpoint name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a valid name: use 1 to {MAX_NAME_LEN} lowercase letters, digits, '-' or '_', starting with a letter"
)]
pub struct InvalidName;

/// The longest endpoint or source name.
pub const MAX_NAME_LEN: usize = 64;

/// `[a-z][a-z0-9_-]{0,63}`: a name that is safe in a URL path, a metric dimension, a
/// file and a log line.
pub fn check_name(name: &str) -> Result<(), InvalidName> {
    let mut chars = name.chars();
    let valid = name.len() <= MAX_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid { Ok(()) } else { Err(InvalidName) }
}

impl FromStr for Source {
    type Err = InvalidName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::named(s)
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Source::named(&name).map_err(serde::de::Error::custom)
    }
}

static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// The one stored copy of `name`. Names are checked first ([`check_name`]: at most 64
/// bytes), and only names from the endpoints document, the secrets document and the
/// events they produced reach here (never a name from a request), so the set stays
/// small.
pub(crate) fn intern(name: &str) -> &'static str {
    if let Some(builtin) = Source::ALL.iter().find(|s| s.0 == name) {
        return builtin.0;
    }
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.get(name) {
        return known;
    }
    let stored: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(stored);
    stored
}

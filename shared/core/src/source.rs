//! The webhook sources this crate understands.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A webhook provider, as named in the route `POST /webhooks/{source}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Peoplelogic: `X-Signature`, base64 HMAC-SHA256 with a base64 key.
    Peoplelogic,
    /// PeopleForce: `X-PeopleForce-Signature: sha256=<hex>`.
    Peopleforce,
    /// PERSCOM.io: `Signature: <hex>`.
    Perscom,
    /// Any tool speaking Standard Webhooks v1.
    Standard,
}

impl Source {
    /// Every source, in the order the README lists them.
    pub const ALL: [Source; 4] = [
        Source::Peoplelogic,
        Source::Peopleforce,
        Source::Perscom,
        Source::Standard,
    ];

    /// The name used in routes, secrets and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Peoplelogic => "peoplelogic",
            Source::Peopleforce => "peopleforce",
            Source::Perscom => "perscom",
            Source::Standard => "standard",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Source {
    /// The names of every source, as a list for messages: `a, b, c, d`.
    pub fn names() -> String {
        Source::ALL.map(Source::as_str).join(", ")
    }
}

/// The name is not one of [`Source::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown source (expected one of peoplelogic, peopleforce, perscom, standard)")]
pub struct UnknownSource;

impl FromStr for Source {
    type Err = UnknownSource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL
            .into_iter()
            .find(|source| source.as_str() == s)
            .ok_or(UnknownSource)
    }
}

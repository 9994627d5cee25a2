//! Signing secrets: one source's secret, kept out of logs and error texts, and every
//! source's secrets as the one JSON secret holds them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::source::Source;

/// One signing secret as the provider shows it (a `secretBase64` text, a `whsec_...`
/// text: each provider's `Provider::key` reads its own).
///
/// `Debug` and `Display` print `[redacted]`, so a secret can travel in structs that
/// are logged without ever reaching the log.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl SigningSecret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        SigningSecret(value.into())
    }

    /// The secret text. Call only where the bytes are needed for a MAC.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

impl fmt::Display for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for SigningSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SigningSecret)
    }
}

impl From<&str> for SigningSecret {
    fn from(value: &str) -> Self {
        SigningSecret::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = SigningSecret::new("hunter2-very-secret");
        assert_eq!(format!("{secret:?}"), "SigningSecret([redacted])");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(
            format!("{:?}", vec![secret.clone()]),
            "[SigningSecret([redacted])]"
        );
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }
}

/// Every endpoint's signing secrets, by endpoint name. `Debug` shows names and counts,
/// never values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningSecrets(BTreeMap<Source, Vec<SigningSecret>>);

impl SigningSecrets {
    /// Parse the secret document:
    /// `{"<endpoint>": "YWJj...", "<another>": ["new", "old"], ...}`. A value is a
    /// string or a list of strings (rotation: any of them verifies). Names that cannot
    /// be an endpoint's are ignored with a warning, so a typo leaves that endpoint
    /// without a secret (it then accepts nothing) rather than taking every endpoint down.
    pub fn parse(document: &str) -> Result<Self, MalformedSecrets> {
        let Ok(Value::Object(entries)) = serde_json::from_str::<Value>(document) else {
            return Err(MalformedSecrets("the secret is not a JSON object".into()));
        };
        let mut secrets = BTreeMap::new();
        for (name, value) in entries {
            let Ok(source) = Source::from_str(&name) else {
                tracing::warn!("ignoring a signing secret under a name no endpoint can have");
                continue;
            };
            let values = match value {
                Value::String(one) => vec![one],
                Value::Array(many) => many
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        _ => Err(()),
                    })
                    .collect::<Result<Vec<_>, ()>>()
                    .map_err(|()| {
                        MalformedSecrets(format!("{source}: a list must hold only strings"))
                    })?,
                _ => {
                    return Err(MalformedSecrets(format!(
                        "{source}: expected a string or a list of strings"
                    )));
                }
            };
            secrets.insert(source, values.into_iter().map(SigningSecret::new).collect());
        }
        Ok(SigningSecrets(secrets))
    }

    /// Secrets given directly (tests, local mode).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (Source, &'a str)>) -> Self {
        let mut secrets: BTreeMap<Source, Vec<SigningSecret>> = BTreeMap::new();
        for (source, value) in pairs {
            secrets
                .entry(source)
                .or_default()
                .push(SigningSecret::new(value));
        }
        SigningSecrets(secrets)
    }

    /// The secrets of the endpoint named `endpoint`; empty when it has none (it then
    /// accepts nothing).
    pub fn for_endpoint(&self, endpoint: Source) -> &[SigningSecret] {
        self.0.get(&endpoint).map(Vec::as_slice).unwrap_or_default()
    }

    /// The names of the endpoints that have at least one secret.
    pub fn names(&self) -> impl Iterator<Item = Source> + '_ {
        self.0
            .iter()
            .filter(|(_, secrets)| !secrets.is_empty())
            .map(|(name, _)| *name)
    }
}

/// Whether an entry of the signing-secrets document gives its endpoint a secret: a
/// non-empty text or list (a handshake is kept only for an endpoint without one).
pub fn has_secret(entry: Option<&Value>) -> bool {
    match entry {
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Array(list)) => !list.is_empty(),
        Some(_) => true,
        None => false,
    }
}

/// The signing-secrets document is not in the documented format. The text never quotes
/// a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedSecrets(pub String);

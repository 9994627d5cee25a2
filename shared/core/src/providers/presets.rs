//! The presets: tools whose scheme and mapping are written as data, one JSON file each
//! in `presets/` (the same `scheme` and `mapping` an endpoint may declare, plus the
//! tool's name, where its secret comes from and the vendor page it was written from).
//! docs/providers.md has a row for each.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use crate::providers::declared::{Declared, FieldError, Mapping, Scheme};

/// Each preset's name and document.
const DOCUMENTS: [(&str, &str); 13] = [
    ("github", include_str!("presets/github.json")),
    ("jira", include_str!("presets/jira.json")),
    ("greenhouse", include_str!("presets/greenhouse.json")),
    ("ashby", include_str!("presets/ashby.json")),
    ("lever", include_str!("presets/lever.json")),
    ("workable", include_str!("presets/workable.json")),
    ("bamboohr", include_str!("presets/bamboohr.json")),
    ("hibob", include_str!("presets/hibob.json")),
    ("deel", include_str!("presets/deel.json")),
    ("gusto", include_str!("presets/gusto.json")),
    ("remote", include_str!("presets/remote.json")),
    ("linear", include_str!("presets/linear.json")),
    ("asana", include_str!("presets/asana.json")),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    display_name: String,
    #[allow(dead_code)]
    docs: String,
    setup: (String, String),
    #[serde(default)]
    handshake: Option<String>,
    scheme: Value,
    #[serde(default)]
    mapping: Option<Value>,
}

/// Read one preset's document.
pub fn parse(text: &str) -> Result<Declared, FieldError> {
    let document: Document = serde_json::from_str(text).map_err(|error| FieldError {
        field: "preset".into(),
        reason: error.to_string(),
    })?;
    if let Some(header) = &document.handshake
        && http::HeaderName::from_bytes(header.as_bytes()).is_err()
    {
        return Err(FieldError {
            field: "handshake".into(),
            reason: "not a valid header name".into(),
        });
    }
    let scheme = Scheme::parse(&document.scheme, "scheme")?;
    let mapping = match &document.mapping {
        Some(mapping) => Mapping::parse(mapping, "mapping")?,
        None => Mapping::default(),
    };
    Ok(Declared::new(
        &document.display_name,
        scheme,
        mapping,
        (&document.setup.0, &document.setup.1),
        document.handshake.as_deref(),
    ))
}

static PRESETS: LazyLock<Vec<(&'static str, Declared)>> = LazyLock::new(|| {
    DOCUMENTS
        .iter()
        .filter_map(|(name, text)| match parse(text) {
            Ok(declared) => Some((*name, declared)),
            // Every preset is parsed by the tests; one that fails is left out rather
            // than taking every endpoint down.
            Err(error) => {
                tracing::error!(preset = name, error = %error, "a preset does not parse");
                None
            }
        })
        .collect()
});

/// The preset of this name.
pub fn preset(name: &str) -> Option<&'static Declared> {
    PRESETS
        .iter()
        .find(|(preset, _)| *preset == name)
        .map(|(_, declared)| declared)
}

/// The names of the presets written as data, in the order docs/providers.md lists them.
pub fn names() -> impl Iterator<Item = &'static str> {
    DOCUMENTS.iter().map(|(name, _)| *name)
}

/// A preset's JSON document, as shipped.
pub fn document(name: &str) -> Option<&'static str> {
    DOCUMENTS
        .iter()
        .find(|(preset, _)| *preset == name)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses() {
        for (name, text) in DOCUMENTS {
            parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(preset(name).is_some(), "{name}");
        }
    }
}

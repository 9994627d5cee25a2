//! Endpoints: the names deliveries are posted to (`POST /webhooks/<endpoint>`), each
//! bound to a preset (a built-in provider or one written as data) or to a scheme and a
//! mapping declared in the endpoints document (docs/writing-a-scheme.md). With no
//! document, the four built-in sources are endpoints of their own names, as they always
//! were; a document adds endpoints (and may redefine those four).
//!
//! A document that does not validate is refused whole, with the endpoint and the field
//! named: `endpoint "goals": scheme.algorithm: unknown algorithm "md5" ...`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use serde::Deserialize;
use serde_json::Value;

use crate::providers::declared::{Declared, FieldError, Mapping, Scheme};
use crate::providers::{Provider, preset_names, presets, provider};
use crate::source::Source;

/// One endpoint: its name, the tool it receives from, and that tool's provider.
#[derive(Clone, Copy)]
pub struct Endpoint {
    name: Source,
    source: Source,
    provider: &'static dyn Provider,
    declared: bool,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("source", &self.source)
            .finish()
    }
}

impl Endpoint {
    /// The endpoint named after a built-in source or a preset, receiving from it.
    pub fn of_source(source: Source) -> Option<Endpoint> {
        provider(source).map(|provider| Endpoint {
            name: source,
            source,
            provider,
            declared: false,
        })
    }

    /// Its name, as in its URL and the secrets document.
    pub fn name(&self) -> Source {
        self.name
    }

    /// The tool it receives from: the preset's name, or for a declared scheme the
    /// endpoint's own name.
    pub fn source(&self) -> Source {
        self.source
    }

    /// What verifies and normalizes its deliveries.
    pub fn provider(&self) -> &'static dyn Provider {
        self.provider
    }

    /// `preset <name>`, or `scheme` for one declared in the document.
    pub fn binding(&self) -> String {
        if self.declared {
            "scheme".to_owned()
        } else {
            format!("preset {}", self.source)
        }
    }
}

/// Why an endpoints document was refused: the endpoint and field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointsError {
    /// The document is not the documented shape.
    #[error("the endpoints document is not valid: {0}")]
    Document(String),
    /// One endpoint's entry is not valid.
    #[error("endpoint \"{endpoint}\": {field}: {reason}")]
    Endpoint {
        /// The endpoint's name.
        endpoint: String,
        /// The field, e.g. `scheme.algorithm`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// Every endpoint, by name.
#[derive(Debug, Clone)]
pub struct Endpoints {
    by_name: BTreeMap<Source, Endpoint>,
}

impl PartialEq for Endpoints {
    fn eq(&self, other: &Endpoints) -> bool {
        self.by_name.len() == other.by_name.len()
            && self
                .by_name
                .iter()
                .zip(&other.by_name)
                .all(|((a, x), (b, y))| {
                    a == b && x.source == y.source && std::ptr::addr_eq(x.provider, y.provider)
                })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    endpoints: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    preset: Option<String>,
    scheme: Option<Value>,
    mapping: Option<Value>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints::builtin()
    }
}

impl Endpoints {
    /// The four built-in sources, each an endpoint of its own name.
    pub fn builtin() -> Endpoints {
        Endpoints {
            by_name: Source::ALL
                .into_iter()
                .filter_map(|source| Some((source, Endpoint::of_source(source)?)))
                .collect(),
        }
    }

    /// Read an endpoints document: `{"endpoints": {"<name>": {"preset": ...} | {"scheme":
    /// ..., "mapping": ...}}}`. The four built-in endpoints stay unless it redefines them.
    pub fn parse(text: &str) -> Result<Endpoints, EndpointsError> {
        // The document is read again on every cache refresh (every 5 s in `serve`): the
        // same text gives the endpoints already made, so declared providers are made
        // (and kept) once per version of the document, not once per read.
        static LAST: Mutex<Option<(String, Endpoints)>> = Mutex::new(None);
        let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, endpoints)) = last.as_ref()
            && seen == text
        {
            return Ok(endpoints.clone());
        }
        let endpoints = Endpoints::parse_new(text)?;
        *last = Some((text.to_owned(), endpoints.clone()));
        Ok(endpoints)
    }

    fn parse_new(text: &str) -> Result<Endpoints, EndpointsError> {
        let document: RawDocument = serde_json::from_str(text)
            .map_err(|error| EndpointsError::Document(error.to_string()))?;
        let mut endpoints = Endpoints::builtin();
        for (name, entry) in document.endpoints {
            let fail = |field: &str, reason: String| EndpointsError::Endpoint {
                endpoint: name.clone(),
                field: field.to_owned(),
                reason,
            };
            let from_field = |error: FieldError| fail(&error.field, error.reason);
            let endpoint_name =
                Source::named(&name).map_err(|error| fail("name", error.to_string()))?;
            let raw: RawEndpoint =
                serde_json::from_value(entry).map_err(|error| fail("entry", error.to_string()))?;
            let endpoint = match (raw.preset, raw.scheme) {
                (Some(_), Some(_)) => {
                    return Err(fail("preset", "give a preset or a scheme, not both".into()));
                }
                (None, None) => {
                    return Err(fail("preset", "give a preset or a scheme".into()));
                }
                (Some(preset), None) => {
                    let source = Source::named(&preset)
                        .ok()
                        .filter(|source| provider(*source).is_some())
                        .ok_or_else(|| {
                            fail(
                                "preset",
                                format!(
                                    "unknown preset \"{preset}\" (expected one of {})",
                                    preset_names().join(", ")
                                ),
                            )
                        })?;
                    let provider = match (&raw.mapping, presets::preset(source.as_str())) {
                        (None, _) => provider(source).ok_or_else(|| {
                            fail("preset", format!("unknown preset \"{preset}\""))
                        })?,
                        (Some(_), None) => {
                            return Err(fail(
                                "mapping",
                                format!(
                                    "the built-in preset {preset} normalizes its own events; \
                                     declare a scheme to map the body yourself"
                                ),
                            ));
                        }
                        (Some(mapping), Some(base)) => {
                            let mapping = Mapping::parse(mapping, "mapping").map_err(from_field)?;
                            leak(Declared::new(
                                base.display_name,
                                base.scheme.clone(),
                                mapping,
                                base.setup,
                                base.handshake,
                            ))
                        }
                    };
                    Endpoint {
                        name: endpoint_name,
                        source,
                        provider,
                        declared: false,
                    }
                }
                (None, Some(scheme)) => {
                    let scheme = Scheme::parse(&scheme, "scheme").map_err(from_field)?;
                    let mapping = match &raw.mapping {
                        Some(mapping) => Mapping::parse(mapping, "mapping").map_err(from_field)?,
                        None => Mapping::default(),
                    };
                    let provider = leak(Declared::new(
                        &name,
                        scheme,
                        mapping,
                        (
                            "the tool's webhook settings",
                            "the signing secret the tool shows or that you set there",
                        ),
                        None,
                    ));
                    Endpoint {
                        name: endpoint_name,
                        source: endpoint_name,
                        provider,
                        declared: true,
                    }
                }
            };
            endpoints.by_name.insert(endpoint_name, endpoint);
        }
        Ok(endpoints)
    }

    /// The endpoint of this name.
    pub fn get(&self, name: &str) -> Option<Endpoint> {
        // Compared as text: a name from a request is neither interned (anyone can make
        // them up) nor looked up in the shared set of names (a lock on every request).
        self.by_name
            .iter()
            .find(|(known, _)| known.as_str() == name)
            .map(|(_, endpoint)| *endpoint)
    }

    /// Every endpoint, by name.
    pub fn iter(&self) -> impl Iterator<Item = Endpoint> + '_ {
        self.by_name.values().copied()
    }

    /// The endpoint names, as a list for messages.
    pub fn names(&self) -> String {
        self.by_name
            .keys()
            .map(|name| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A declared provider kept for the life of the process: a document is parsed once per
/// version of its text ([`Endpoints::parse`]), so this is a few kilobytes per edit.
fn leak(declared: Declared) -> &'static dyn Provider {
    Box::leak(Box::new(declared))
}

//! Who gets email: one JSON document (a secret in Secrets Manager on AWS,
//! `email-recipients.json` in the data directory locally).
//!
//! ```json
//! {"recipients": [
//!   {"address": "cto@example.com", "scope": "all"},
//!   {"address": "growth@example.com", "scope": {"titles": ["*activation*"]}, "alerts": true},
//!   {"address": "people@example.com", "scope": {"source": "<a source>"}, "summary": false, "alerts": true},
//!   {"address": "sales@example.com", "scope": {"objectives": ["obj-revenue"]}}
//! ]}
//! ```
//!
//! `summary` defaults to true, `alerts` to false. Errors name a recipient by its place
//! in the list, never by its address.

use sha2::{Digest, Sha256};
use wildmatch::WildMatch;

use crate::progress::Tracked;
use okr_core::event::Event;
use okr_core::source::Source;
use okr_pipeline::secrets::{FromSecret, SecretsError};

/// The recipients document.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipients(pub Vec<Recipient>);

/// One recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    /// The address: personal data, never logged.
    pub address: String,
    /// What it hears about.
    pub scope: Scope,
    /// Gets the summaries.
    pub summary: bool,
    /// Gets alert emails.
    pub alerts: bool,
}

/// Which objectives and key results a recipient hears about.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// Everything.
    All,
    /// One source's.
    Source(Source),
    /// These objectives and their key results.
    Objectives(Vec<String>),
    /// Those whose title (or, for a key result in a summary, its objective's title)
    /// matches one of these patterns (`*` and `?`, any case).
    Titles(Vec<String>),
}

impl Recipient {
    /// Its name in logs, keys and files: a hash of the address (lower-cased).
    pub fn id(&self) -> String {
        let digest = Sha256::digest(self.address.trim().to_lowercase().as_bytes());
        format!("r-{}", &hex::encode(digest)[..12])
    }
}

impl Scope {
    /// Whether `tracked` is in scope; `objective_title` is its objective's title (key
    /// results).
    pub fn covers(&self, tracked: &Tracked, objective_title: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Source(source) => tracked.source == *source,
            Scope::Objectives(ids) => {
                let objective = if tracked.kind == "objective" {
                    Some(tracked.id.as_str())
                } else {
                    tracked.objective_id.as_deref()
                };
                objective.is_some_and(|id| ids.iter().any(|wanted| wanted == id))
            }
            Scope::Titles(globs) => [tracked.title.as_deref(), objective_title]
                .into_iter()
                .flatten()
                .any(|title| matches_any(globs, title)),
        }
    }

    /// Whether an alert on `event` is in scope: by its source, its id or its objective's
    /// (`entity.parent`), or its own title.
    pub fn covers_event(&self, event: &Event) -> bool {
        match self {
            Scope::All => true,
            Scope::Source(source) => event.source == *source,
            Scope::Objectives(ids) => [event.entity.id.as_deref(), event.entity.parent.as_deref()]
                .into_iter()
                .flatten()
                .any(|id| ids.iter().any(|wanted| wanted == id)),
            Scope::Titles(globs) => event
                .entity
                .name
                .as_deref()
                .is_some_and(|title| matches_any(globs, title)),
        }
    }
}

fn matches_any(globs: &[String], title: &str) -> bool {
    globs
        .iter()
        .any(|glob| WildMatch::new_case_insensitive(glob).matches(title))
}

impl Recipients {
    /// Those who get summaries.
    pub fn for_summaries(&self) -> impl Iterator<Item = &Recipient> {
        self.0.iter().filter(|r| r.summary)
    }

    /// Those who get alert emails on `event`.
    pub fn for_alert<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a Recipient> {
        self.0
            .iter()
            .filter(move |r| r.alerts && r.scope.covers_event(event))
    }

    /// Parse the document; errors name the recipient's place, not its address.
    pub fn parse(text: &str) -> Result<Recipients, String> {
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "not JSON (line {}, column {}): expected {{\"recipients\": [...]}}",
                e.line(),
                e.column()
            )
        })?;
        let list = doc
            .get("recipients")
            .and_then(|r| r.as_array())
            .ok_or("expected {\"recipients\": [...]}")?;
        let mut recipients: Vec<Recipient> = Vec::with_capacity(list.len());
        let mut places = std::collections::HashMap::with_capacity(list.len());
        for (at, entry) in list.iter().enumerate() {
            let parsed = recipient(entry).map_err(|e| format!("recipient {}: {e}", at + 1))?;
            // One id per address: a second entry would share the first's once-only keys.
            if let Some(first) = places.insert(parsed.id(), at) {
                return Err(format!(
                    "recipient {}: the same address as recipient {} (give it one entry)",
                    at + 1,
                    first + 1
                ));
            }
            recipients.push(parsed);
        }
        Ok(Recipients(recipients))
    }
}

fn recipient(entry: &serde_json::Value) -> Result<Recipient, String> {
    let address = entry
        .get("address")
        .and_then(|a| a.as_str())
        .map(str::trim)
        .ok_or("needs an \"address\"")?;
    if address.is_empty() || !address.contains('@') || address.contains(char::is_whitespace) {
        return Err("its \"address\" is not an email address".into());
    }
    let flag = |name: &str, default: bool| match entry.get(name) {
        None => Ok(default),
        Some(value) => value
            .as_bool()
            .ok_or(format!("\"{name}\" must be true or false")),
    };
    Ok(Recipient {
        address: address.to_owned(),
        scope: scope(entry.get("scope"))?,
        summary: flag("summary", true)?,
        alerts: flag("alerts", false)?,
    })
}

const SCOPES: &str = "\"scope\" must be \"all\", {\"source\": \"...\"}, {\"objectives\": [\"...\"]} or {\"titles\": [\"...\"]}";

fn scope(value: Option<&serde_json::Value>) -> Result<Scope, String> {
    let Some(value) = value else {
        return Err("needs a \"scope\"".into());
    };
    if value.as_str() == Some("all") {
        return Ok(Scope::All);
    }
    let object = value.as_object().filter(|o| o.len() == 1).ok_or(SCOPES)?;
    let strings = |v: &serde_json::Value| -> Result<Vec<String>, String> {
        let list: Option<Vec<String>> = v.as_array().map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        });
        match list {
            Some(list) if !list.is_empty() && list.len() == v.as_array().map_or(0, Vec::len) => {
                Ok(list)
            }
            _ => Err(SCOPES.to_owned()),
        }
    };
    if let Some(source) = object.get("source") {
        let source = source
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                format!(
                    "\"source\" must be a tool's name ({}, a preset's or a declared endpoint's)",
                    Source::names()
                )
            })?;
        return Ok(Scope::Source(source));
    }
    if let Some(ids) = object.get("objectives") {
        return Ok(Scope::Objectives(strings(ids)?));
    }
    if let Some(globs) = object.get("titles") {
        return Ok(Scope::Titles(strings(globs)?));
    }
    Err(SCOPES.into())
}

impl FromSecret for Recipients {
    fn from_secret(text: &str) -> Result<Self, SecretsError> {
        Recipients::parse(text).map_err(SecretsError::Invalid)
    }
}

//! Who gets email: one JSON document (a secret in Secrets Manager on AWS,
//! `email-recipients.json` in the data directory locally).
//!
//! ```json
//! {"recipients": [
//!   {"address": "cto@example.com", "scope": "all"},
//!   {"address": "growth@example.com", "scope": {"titles": ["*activation*"]}, "alerts": true},
//!   {"address": "people@example.com", "scope": {"source": "<a source>"}, "summary": false, "alerts": true},
//!   {"address": "sales@example.com", "scope": {"objectives": ["obj-revenue"]}},
//!   {"address": "cleo.park@example.com", "scope": {"reports": "all"}},
//!   {"address": "it-lead@example.com", "scope": {"department": "IT"}}
//! ], "team_leads": true}
//! ```
//!
//! `summary` defaults to true, `alerts` to false. The org scopes (`reports`,
//! `department`) read the directory, for summaries only. `team_leads: true` sends every
//! active person with reports in the directory their direct reports' summary; an entry
//! for the same address wins. Errors name a recipient by its place in the list, never
//! by its address.

use sha2::{Digest, Sha256};
use wildmatch::WildMatch;

use crate::directory::Directory;
use crate::progress::Tracked;
use okr_core::event::Event;
use okr_core::source::Source;
use okr_pipeline::secrets::{FromSecret, SecretsError};

/// The recipients document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recipients {
    /// The recipients listed.
    pub listed: Vec<Recipient>,
    /// `team_leads`: every team lead in the directory gets their team's summary.
    pub team_leads: bool,
}

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
    /// Those owned by the recipient's reports in the directory (matched by the
    /// recipient's address): direct ones, or `all` down the chart.
    Reports {
        /// Down the whole chart.
        all: bool,
    },
    /// Those whose owner is in this department (case aside).
    Department(String),
}

/// What the org scopes read: the directory, and who the recipient is in it.
pub struct Org<'a> {
    /// The directory.
    pub directory: &'a Directory,
    /// The recipient's address.
    pub address: &'a str,
}

impl Recipient {
    /// Its name in logs, keys and files: a hash of the address (lower-cased).
    pub fn id(&self) -> String {
        let digest = Sha256::digest(self.address.trim().to_lowercase().as_bytes());
        format!("r-{}", &hex::encode(digest)[..12])
    }
}

impl Scope {
    /// Whether it is an org scope, which the directory answers.
    pub fn reads_directory(&self) -> bool {
        matches!(self, Scope::Reports { .. } | Scope::Department(_))
    }

    /// Whether `tracked` is in scope; `objective_title` is its objective's title (key
    /// results); `org` answers the org scopes (without it they cover nothing).
    pub fn covers(
        &self,
        tracked: &Tracked,
        objective_title: Option<&str>,
        org: Option<&Org<'_>>,
    ) -> bool {
        let owner = || {
            let org = org?;
            let owner = tracked.owner()?;
            org.directory.resolve(&owner).map(|(person, _)| person)
        };
        match self {
            Scope::Reports { all } => {
                let (Some(org), Some(owner)) = (org, owner()) else {
                    return false;
                };
                let Some(me) = org.directory.find(org.address) else {
                    return false;
                };
                let owner = owner.key();
                org.directory
                    .reports(&me.key(), *all)
                    .iter()
                    .any(|report| report.key() == owner)
            }
            Scope::Department(department) => owner()
                .and_then(|p| p.person.department.as_deref())
                .is_some_and(|d| d.to_lowercase() == department.trim().to_lowercase()),
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
            // Refused with alerts at parse time: the alerts read no directory.
            Scope::Reports { .. } | Scope::Department(_) => false,
        }
    }
}

fn matches_any(globs: &[String], title: &str) -> bool {
    globs
        .iter()
        .any(|glob| WildMatch::new_case_insensitive(glob).matches(title))
}

impl Recipients {
    /// Those who get summaries: the listed ones, and with `team_leads`, every active
    /// team lead in `directory` with a work email who is not listed (scope: their
    /// direct reports).
    pub fn for_summaries(&self, directory: &Directory) -> Vec<Recipient> {
        let mut recipients: Vec<Recipient> =
            self.listed.iter().filter(|r| r.summary).cloned().collect();
        if self.team_leads {
            let listed: std::collections::HashSet<String> =
                self.listed.iter().map(Recipient::id).collect();
            for lead in directory.team_leads() {
                let Some(address) = lead.person.email.clone() else {
                    continue;
                };
                let recipient = Recipient {
                    address,
                    scope: Scope::Reports { all: false },
                    summary: true,
                    alerts: false,
                };
                if !listed.contains(&recipient.id())
                    && !recipients.iter().any(|r| r.id() == recipient.id())
                {
                    recipients.push(recipient);
                }
            }
        }
        recipients
    }

    /// Whether any recipient needs the directory (an org scope, or `team_leads`).
    pub fn reads_directory(&self) -> bool {
        self.team_leads || self.listed.iter().any(|r| r.scope.reads_directory())
    }

    /// Those who get alert emails on `event`.
    pub fn for_alert<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a Recipient> {
        self.listed
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
        let team_leads = match doc.get("team_leads") {
            None => false,
            Some(value) => value
                .as_bool()
                .ok_or("\"team_leads\" must be true or false")?,
        };
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
        Ok(Recipients {
            listed: recipients,
            team_leads,
        })
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
    let recipient = Recipient {
        address: address.to_owned(),
        scope: scope(entry.get("scope"))?,
        summary: flag("summary", true)?,
        alerts: flag("alerts", false)?,
    };
    if recipient.alerts
        && matches!(
            recipient.scope,
            Scope::Reports { .. } | Scope::Department(_)
        )
    {
        return Err("\"alerts\": true needs a scope of \"all\", source, objectives or titles (the org scopes route summaries; stalled key results reach team leads by themselves)".into());
    }
    Ok(recipient)
}

const SCOPES: &str = "\"scope\" must be \"all\", {\"source\": \"...\"}, {\"objectives\": [\"...\"]}, {\"titles\": [\"...\"]}, {\"reports\": \"direct\" or \"all\"} or {\"department\": \"...\"}";

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
    if let Some(reports) = object.get("reports") {
        return match reports.as_str() {
            Some("direct") => Ok(Scope::Reports { all: false }),
            Some("all") => Ok(Scope::Reports { all: true }),
            _ => Err("\"reports\" must be \"direct\" or \"all\"".into()),
        };
    }
    if let Some(department) = object.get("department") {
        return match department.as_str().map(str::trim) {
            Some(name) if !name.is_empty() => Ok(Scope::Department(name.to_owned())),
            _ => Err("\"department\" must be a department's name".into()),
        };
    }
    Err(SCOPES.into())
}

impl FromSecret for Recipients {
    fn from_secret(text: &str) -> Result<Self, SecretsError> {
        Recipients::parse(text).map_err(SecretsError::Invalid)
    }
}

//! People: who owns a key result (the provider's owner or assignee), and a person as
//! the directory keeps them (the few fields of an HR record that route news). Only these
//! fields leave normalization: birth dates, personal emails, phones, addresses, pay and
//! custom fields stay in the payload, which the directory never reads.

use serde::{Deserialize, Serialize};

/// The person a key result or objective belongs to, as the provider names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The provider's id for them (the OKR tool's, not the HR tool's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Their display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Their work email, when the provider sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Owner {
    /// Whether it says nothing.
    pub fn is_empty(&self) -> bool {
        self.id.is_none() && self.name.is_none() && self.email.is_none()
    }

    /// How messages and the CLI name them: the name, else the email, else the id.
    pub fn label(&self) -> &str {
        (self.name.as_deref())
            .or(self.email.as_deref())
            .or(self.id.as_deref())
            .unwrap_or("")
    }
}

/// A person as an HR record describes them: the directory's fields and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The HR tool's id for them.
    pub id: String,
    /// Their full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Their work email (never a personal one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whom they report to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<Manager>,
    /// Their department's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Their division's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<String>,
    /// Their position's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Employed (false once terminated); unknown when the record does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// The manager an HR record names: by the HR tool's id, by work email, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    /// The HR tool's id for the manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The manager's work email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The manager's name, for display until their own record arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Manager {
    /// Whether it names nobody.
    pub fn is_empty(&self) -> bool {
        self.id.is_none() && self.email.is_none()
    }
}

/// A work email as the directory compares it: trimmed, lowercase.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A name as the directory compares it: words separated by one space, lowercase.
pub fn name_key(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

//! `<data-dir>/subscriptions.json`, the subscriptions document, and
//! `<data-dir>/subscription-secrets.json`, their secrets (readable by the owner only).
//! Both are read on every fetch (behind a cache), so `subscriptions add` and an edit take
//! effect in a running `serve` without a restart.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::{Map, Value};

use okr_core::subscriptions::{
    Subscription, SubscriptionSecret, SubscriptionSecrets, Subscriptions,
};
use okr_pipeline::secrets::{FromSecret, SecretStore, SecretsError};

use crate::secrets_file::{lock_for_writing, write_document};

/// The two documents in a data directory.
#[derive(Debug, Clone)]
pub struct SubscriptionsFile {
    document: PathBuf,
    secrets: PathBuf,
}

impl SubscriptionsFile {
    /// The document at `document` (`<data-dir>/subscriptions.json`), its secrets beside
    /// it in `subscription-secrets.json`.
    pub fn new(document: &Path) -> Self {
        SubscriptionsFile {
            document: document.to_owned(),
            secrets: document.with_file_name("subscription-secrets.json"),
        }
    }

    /// The subscriptions document's path.
    pub fn path(&self) -> &Path {
        &self.document
    }

    /// The subscriptions now (none without the file), or why the document is refused.
    pub fn load(&self) -> Result<Subscriptions, String> {
        read(&self.document)
            .and_then(|text| Subscriptions::parse(&text).map_err(|e| e.to_string()))
            .map_err(|e| format!("{}: {e}", self.document.display()))
    }

    /// Every subscription's secrets now (none without the file).
    pub fn load_secrets(&self) -> Result<SubscriptionSecrets, String> {
        read(&self.secrets)
            .and_then(|text| {
                <SubscriptionSecrets as FromSecret>::from_secret(&text).map_err(|e| e.to_string())
            })
            .map_err(|e| format!("{}: {e}", self.secrets.display()))
    }

    /// Add the subscription `name` with its secret: the secret is written first, so a
    /// subscription is never in the document without one; the document is checked whole
    /// before it is written (in one rename). An existing name is refused.
    pub fn add(
        &self,
        name: &str,
        subscription: &Subscription,
        secret: &SubscriptionSecret,
    ) -> Result<(), String> {
        let _writing = self.lock()?;
        let mut document = self.load()?;
        if document.subscriptions.contains_key(name) {
            return Err(format!("there is already a subscription named {name}"));
        }
        document
            .subscriptions
            .insert(name.to_owned(), subscription.clone());
        document.check().map_err(|e| e.to_string())?;
        let mut secrets = self.load_secrets()?;
        secrets.insert(name.to_owned(), secret.clone());
        write(&self.secrets, &secrets)?;
        write(&self.document, &document)
    }

    /// Switch the subscription `name` on or off; false when it already was.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<bool, String> {
        let _writing = self.lock()?;
        let mut document = self.load()?;
        let subscription = document
            .subscriptions
            .get_mut(name)
            .ok_or_else(|| format!("there is no subscription named {name}"))?;
        if subscription.enabled == enabled {
            return Ok(false);
        }
        subscription.enabled = enabled;
        write(&self.document, &document)?;
        Ok(true)
    }

    /// The lock both documents are written under (one at a time across processes).
    fn lock(&self) -> Result<std::fs::File, String> {
        if let Some(parent) = self.document.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        lock_for_writing(&self.document)
            .map_err(|e| format!("cannot lock {}: {e}", self.document.display()))
    }
}

/// The file's text; a missing file is empty.
fn read(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(error) => Err(error.to_string()),
    }
}

/// Write `value` whole, privately, in one rename.
fn write(path: &Path, value: &impl serde::Serialize) -> Result<(), String> {
    let map: Map<String, Value> = match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => return Err(e.to_string()),
    };
    write_document(path, &map).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[async_trait]
impl SecretStore<Subscriptions> for SubscriptionsFile {
    async fn fetch(&self) -> Result<Subscriptions, SecretsError> {
        self.load().map_err(SecretsError::Invalid)
    }
}

#[async_trait]
impl SecretStore<SubscriptionSecrets> for SubscriptionsFile {
    async fn fetch(&self) -> Result<SubscriptionSecrets, SecretsError> {
        self.load_secrets().map_err(SecretsError::Invalid)
    }
}

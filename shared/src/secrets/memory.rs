//! An in-memory secret store for tests: its value can be changed or made to fail, and
//! it counts fetches.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::{SecretStore, SecretsError, SigningSecrets};

/// Holds a document (or an outage) and counts how often it was fetched.
#[derive(Default)]
pub struct MemorySecretStore {
    value: Mutex<Option<SigningSecrets>>,
    fetches: AtomicUsize,
}

impl MemorySecretStore {
    /// A store holding `secrets`.
    pub fn new(secrets: SigningSecrets) -> Self {
        MemorySecretStore {
            value: Mutex::new(Some(secrets)),
            fetches: AtomicUsize::new(0),
        }
    }

    /// Replace the value (rotation); `None` makes every fetch fail.
    pub fn set(&self, secrets: Option<SigningSecrets>) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = secrets;
    }

    /// How many fetches were made.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl SecretStore for MemorySecretStore {
    async fn fetch(&self) -> Result<SigningSecrets, SecretsError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.value
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| SecretsError::Unavailable("the memory store is switched off".into()))
    }
}

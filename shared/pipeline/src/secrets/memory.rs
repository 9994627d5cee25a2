//! An in-memory secret store for tests: its value can be changed or made to fail, and
//! it counts fetches.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::secrets::{SecretStore, SecretsError, SigningSecrets};

/// Holds a value (or an outage) and counts how often it was fetched.
pub struct MemorySecretStore<T = SigningSecrets> {
    value: Mutex<Option<T>>,
    fetches: AtomicUsize,
}

impl<T> MemorySecretStore<T> {
    /// A store holding `secrets`.
    pub fn new(secrets: T) -> Self {
        MemorySecretStore {
            value: Mutex::new(Some(secrets)),
            fetches: AtomicUsize::new(0),
        }
    }

    /// Replace the value (rotation); `None` makes every fetch fail.
    pub fn set(&self, secrets: Option<T>) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = secrets;
    }

    /// How many fetches were made.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<T: Clone + Send + Sync> SecretStore<T> for MemorySecretStore<T> {
    async fn fetch(&self) -> Result<T, SecretsError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.value
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| SecretsError::Unavailable("the memory store is switched off".into()))
    }
}

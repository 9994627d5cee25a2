//! Secrets: the signing secrets (one JSON secret, docs/ingest.md), the port
//! that fetches a secret, and the cache that keeps Secrets Manager calls few.

pub mod memory;

pub use okr_core::signing::{SigningSecret, SigningSecrets};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long fetched secrets are used before they are fetched again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// After a failed verification the secrets are refetched at most this often, so a
/// flood of forged requests costs at most one Secrets Manager call per interval.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Why secrets could not be had. The texts never carry a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The store did not answer (network, permissions, throttling).
    #[error("the secret store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The secret exists but is not in the documented format.
    #[error("the secret is malformed: {0}")]
    Invalid(String),
}

/// A value kept in a secret, read from the secret's text.
pub trait FromSecret: Sized {
    /// Parse the secret's text. Errors must not quote it.
    fn from_secret(text: &str) -> Result<Self, SecretsError>;
}

/// Where a secret comes from: Secrets Manager in AWS, a file locally, memory in tests.
#[async_trait]
pub trait SecretStore<T = SigningSecrets>: Send + Sync {
    /// Read the current value.
    async fn fetch(&self) -> Result<T, SecretsError>;
}

/// A secret cached with a TTL, refetched early (at most once per interval) when it
/// proves wrong (a signature fails), and kept serving when a refresh fails.
pub struct SecretCache<T = SigningSecrets> {
    store: Arc<dyn SecretStore<T>>,
    ttl: Duration,
    refetch_interval: Duration,
    state: Mutex<CacheState<T>>,
}

struct CacheState<T> {
    value: Option<Arc<T>>,
    /// When `value` should be fetched again.
    refresh_at: Option<Instant>,
    /// The last refetch caused by a failed verification.
    last_forced: Option<Instant>,
}

impl<T: PartialEq + Send + Sync> SecretCache<T> {
    /// A cache over `store` with the given TTL and the default refetch interval.
    pub fn new(store: Arc<dyn SecretStore<T>>, ttl: Duration) -> Self {
        let state = CacheState {
            value: None,
            refresh_at: None,
            last_forced: None,
        };
        SecretCache {
            store,
            ttl,
            refetch_interval: REFETCH_INTERVAL,
            state: Mutex::new(state),
        }
    }

    /// The current value: cached while fresh; fetched when stale. When a fetch fails
    /// the stale value keeps serving (and the next try waits an interval); with nothing
    /// cached the error is returned.
    pub async fn current(&self) -> Result<Arc<T>, SecretsError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(refresh_at) = state.refresh_at
            && now < refresh_at
        {
            return match &state.value {
                Some(value) => Ok(Arc::clone(value)),
                // The last fetch failed with nothing cached: wait out the interval, so
                // a flood of requests during an outage does not multiply calls.
                None => Err(SecretsError::Unavailable(
                    "the last fetch failed; retrying after 30 s".into(),
                )),
            };
        }
        match self.store.fetch().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                state.value = Some(Arc::clone(&fresh));
                state.refresh_at = Some(later(now, self.ttl));
                Ok(fresh)
            }
            Err(error) => {
                state.refresh_at = Some(later(now, self.refetch_interval.min(self.ttl)));
                match state.value.clone() {
                    Some(stale) => {
                        if let SecretsError::Invalid(reason) = &error {
                            // A document someone edited into a bad shape: the last good
                            // one stays in force, and the operator must hear of it
                            // (`ConfigDocumentInvalid` alarms on this line).
                            tracing::error!(
                                alarm = "ConfigDocumentInvalid",
                                reason = %reason,
                                "a configuration document does not validate; the last good one stays in force"
                            );
                        } else {
                            tracing::warn!(error = %okr_core::error_chain(&error), "secret refresh failed; serving the cached secrets");
                        }
                        Ok(stale)
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// Fetch again on the next use (a handshake just changed the secrets).
    pub async fn invalidate(&self) {
        self.state.lock().await.refresh_at = None;
    }

    /// After a signature failed: fetch again unless that was done within the refetch
    /// interval. Returns the new secrets when they differ from the cached ones, so the
    /// caller verifies once more only when that can change the answer.
    pub async fn refresh_after_failure(&self) -> Option<Arc<T>> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if state
            .last_forced
            .is_some_and(|last| now < last + self.refetch_interval)
        {
            return None;
        }
        state.last_forced = Some(now);
        match self.store.fetch().await {
            Ok(fresh) => {
                let changed = state.value.as_deref() != Some(&fresh);
                let fresh = Arc::new(fresh);
                state.value = Some(Arc::clone(&fresh));
                state.refresh_at = Some(later(now, self.ttl));
                changed.then_some(fresh)
            }
            Err(error) => {
                tracing::warn!(error = %okr_core::error_chain(&error), "secret refetch after a failed signature failed");
                None
            }
        }
    }
}

/// `now + span`, or a day from now when that overflows.
fn later(now: Instant, span: Duration) -> Instant {
    now.checked_add(span)
        .unwrap_or_else(|| now + Duration::from_secs(86_400))
}

/// A fixed value, for local mode and tests where a secret comes from configuration.
pub struct StaticSecret<T>(pub T);

#[async_trait]
impl<T: Clone + Send + Sync> SecretStore<T> for StaticSecret<T> {
    async fn fetch(&self) -> Result<T, SecretsError> {
        Ok(self.0.clone())
    }
}

/// A store of a fixed value.
pub fn fixed<T: Clone + Send + Sync + 'static>(value: T) -> Arc<dyn SecretStore<T>> {
    Arc::new(StaticSecret(value))
}

impl FromSecret for okr_core::endpoints::Endpoints {
    fn from_secret(text: &str) -> Result<Self, SecretsError> {
        okr_core::endpoints::Endpoints::parse(text)
            .map_err(|error| SecretsError::Invalid(error.to_string()))
    }
}

impl FromSecret for okr_core::subscriptions::Subscriptions {
    fn from_secret(text: &str) -> Result<Self, SecretsError> {
        okr_core::subscriptions::Subscriptions::parse(text)
            .map_err(|error| SecretsError::Invalid(error.to_string()))
    }
}

impl FromSecret for okr_core::subscriptions::SubscriptionSecrets {
    /// The subscription secrets document; an empty text holds none. Serde's error
    /// names the place, never a value.
    fn from_secret(text: &str) -> Result<Self, SecretsError> {
        if text.trim().is_empty() {
            return Ok(Default::default());
        }
        let mut secrets: Self = serde_json::from_str(text).map_err(|error| {
            SecretsError::Invalid(format!(
                "the subscription secrets are not {{\"<name>\": {{\"signing\": [\"whsec_...\"]}}}} (line {}, column {})",
                error.line(),
                error.column()
            ))
        })?;
        // An entry that is not valid is left out, not the whole document: one mistyped
        // secret stops its own subscription (its posts are refused for want of a secret),
        // never the others, also on a cold start with no earlier copy to fall back on.
        secrets.retain(
            |name, secret| match okr_core::subscriptions::check_secret(name, secret) {
                Ok(()) => true,
                Err(reason) => {
                    tracing::error!(
                        alarm = "ConfigDocumentInvalid",
                        reason = %reason,
                        "a subscription's secrets do not validate; it is left out"
                    );
                    false
                }
            },
        );
        Ok(secrets)
    }
}

/// What became of a secret a handshake handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// The endpoint had no secret; this one is kept.
    Kept,
    /// The endpoint has a secret already; nothing changed.
    AlreadySet,
}

/// Where a handshake's secret is kept: the signing-secrets document, written only for
/// an endpoint that has no secret there.
#[async_trait]
pub trait SecretWriter: Send + Sync {
    /// Keep `secret` as the secret of the endpoint named `endpoint`, unless it has one.
    async fn adopt(
        &self,
        endpoint: okr_core::Source,
        secret: &SigningSecret,
    ) -> Result<Adopted, SecretsError>;
}

impl FromSecret for SigningSecrets {
    fn from_secret(text: &str) -> Result<Self, SecretsError> {
        SigningSecrets::parse(text).map_err(|malformed| SecretsError::Invalid(malformed.0))
    }
}

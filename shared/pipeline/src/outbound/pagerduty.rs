//! PagerDuty Events API v2: `trigger` when a rule starts holding, `resolve` when the key
//! result recovers or is completed, one `dedup_key` per key result and rule.

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};

use crate::outbound::http::send_json;
use crate::outbound::{DeliveryError, Service, credential};
use crate::secrets::{FromSecret, SecretCache, SecretsError};

/// An integration's routing key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct RoutingKey(String);

impl fmt::Debug for RoutingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoutingKey([redacted])")
    }
}

impl FromSecret for RoutingKey {
    /// The secret holds the key, or `{"routing_key": "..."}`.
    fn from_secret(text: &str) -> Result<Self, SecretsError> {
        let key = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object
                .get("routing_key")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => Some(text.trim().to_owned()),
        };
        key.filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()))
            .map(RoutingKey)
            .ok_or_else(|| SecretsError::Invalid("expected a PagerDuty routing key".into()))
    }
}

impl RoutingKey {
    /// A key given directly (local mode, tests).
    pub fn new(key: &str) -> Result<Self, SecretsError> {
        RoutingKey::from_secret(key)
    }
}

/// What to tell PagerDuty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Open (or update) the incident for the dedup key.
    Trigger,
    /// Close it.
    Resolve,
}

/// One event for the Events API.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Trigger or resolve.
    pub action: Action,
    /// `<source>:<entity id>:<rule>`.
    pub dedup_key: String,
    /// One line for the incident title.
    pub summary: String,
    /// Where it comes from (`okr-webhooks/<source>`).
    pub source: String,
    /// Extra fields: entity, rule, progress. Never personal data.
    pub details: Value,
}

impl Alert {
    /// The request body, with the routing key.
    pub fn body(&self, routing_key: &RoutingKey) -> Value {
        let mut body = json!({
            "routing_key": routing_key.0,
            "event_action": self.action,
            "dedup_key": self.dedup_key,
        });
        if self.action == Action::Trigger {
            body["payload"] = json!({
                "summary": self.summary,
                "source": self.source,
                "severity": "warning",
                "component": "okr-webhooks",
                "group": "key-results",
                "class": self.details["rule"],
                "custom_details": self.details,
            });
        }
        body
    }
}

/// Somewhere PagerDuty events go.
#[async_trait]
pub trait PagerDuty: Send + Sync {
    /// Send one event.
    async fn send(&self, alert: &Alert) -> Result<(), DeliveryError>;
}

/// The Events API over HTTP.
pub struct PagerDutyClient {
    client: reqwest::Client,
    /// The endpoint, or why it can never be called (checked again here, though the
    /// configuration refuses such a URL first: no event leaves for it).
    url: Result<reqwest::Url, &'static str>,
    routing_key: SecretCache<RoutingKey>,
}

impl PagerDutyClient {
    /// A client posting to `url` (normally `config::DEFAULT_PAGERDUTY_EVENTS_URL`) with
    /// the key `routing_key` caches. A `url` [`crate::outbound::http::callable`] refuses makes
    /// every send a configuration error.
    pub fn new(
        client: reqwest::Client,
        url: impl Into<String>,
        routing_key: SecretCache<RoutingKey>,
    ) -> Self {
        PagerDutyClient {
            client,
            url: crate::outbound::http::callable(&url.into()),
            routing_key,
        }
    }
}

impl PagerDutyClient {
    async fn send_with(&self, key: &RoutingKey, alert: &Alert) -> Result<(), DeliveryError> {
        let url = self
            .url
            .clone()
            .map_err(|reason| DeliveryError::Misconfigured {
                service: Service::PagerDuty,
                reason: format!("the events URL {reason}"),
            })?;
        let body = alert.body(key);
        send_json(Service::PagerDuty, self.client.post(url).json(&body)).await
    }
}

#[async_trait]
impl PagerDuty for PagerDutyClient {
    async fn send(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let key = credential(&self.routing_key, Service::PagerDuty).await?;
        match self.send_with(&key, alert).await {
            // The key may have been rotated: look once more (rate limited).
            Err(error @ DeliveryError::Refused { .. }) => {
                match self.routing_key.refresh_after_failure().await {
                    Some(fresh) if fresh != key => self.send_with(&fresh, alert).await,
                    _ => Err(error),
                }
            }
            other => other,
        }
    }
}

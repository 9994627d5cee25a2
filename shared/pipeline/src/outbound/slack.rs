//! Slack incoming webhooks: the message shape, mrkdwn escaping and Block Kit's limits,
//! and the poster. The webhook URL is a credential: it comes from its own secret
//! (cached), and never appears in logs or errors.

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::outbound::http::send_json;
use crate::outbound::{DeliveryError, Service, credential};
use crate::secrets::{FromSecret, SecretCache, SecretsError};

/// Block Kit: at most 50 blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// Block Kit: at most 3,000 characters in a section or context text.
pub const MAX_TEXT: usize = 3000;
/// Block Kit: at most 150 characters in a header.
pub const MAX_HEADER: usize = 150;

/// One incoming-webhook message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackMessage {
    /// The fallback text (notifications, screen readers), escaped like the blocks:
    /// Slack reads it as mrkdwn too.
    pub text: String,
    /// The Block Kit blocks.
    pub blocks: Vec<Value>,
}

/// Slack mrkdwn control characters in provider text would make links and mentions
/// (`<!channel>`): escape them.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// An incoming-webhook URL. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Check and wrap a URL: `https://`, or plain `http://` to a loopback address (a
    /// stand-in on this machine), as [`crate::outbound::http::callable`] allows.
    pub fn new(url: &str) -> Result<Self, SecretsError> {
        crate::outbound::http::callable(url)
            .map(|_| WebhookUrl(url.trim().to_owned()))
            .map_err(|reason| SecretsError::Invalid(format!("the webhook URL {reason}")))
    }

    /// Whether it is plain http (to loopback): a stand-in, said at start.
    pub fn is_plain_http(&self) -> bool {
        crate::outbound::http::is_stand_in(&self.0)
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookUrl([redacted])")
    }
}

impl FromSecret for WebhookUrl {
    /// The secret holds the URL, or `{"webhook_url": "..."}`.
    fn from_secret(text: &str) -> Result<Self, SecretsError> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => match object.get("webhook_url").and_then(Value::as_str) {
                Some(url) => WebhookUrl::new(url),
                None => Err(SecretsError::Invalid(
                    "expected {\"webhook_url\": \"https://...\"}".into(),
                )),
            },
            _ => WebhookUrl::new(text),
        }
    }
}

/// Somewhere Slack messages go: an incoming webhook, or stdout in local mode.
#[async_trait]
pub trait SlackPoster: Send + Sync {
    /// Post one message.
    async fn post(&self, message: &SlackMessage) -> Result<(), DeliveryError>;
}

/// Posts to the incoming webhook whose URL the secret holds.
pub struct WebhookPoster {
    client: reqwest::Client,
    url: SecretCache<WebhookUrl>,
}

impl WebhookPoster {
    /// A poster through `client` (see [`crate::outbound::http::http_client`]) to the URL `url`
    /// caches.
    pub fn new(client: reqwest::Client, url: SecretCache<WebhookUrl>) -> Self {
        WebhookPoster { client, url }
    }

    async fn post_to(&self, url: &WebhookUrl, message: &SlackMessage) -> Result<(), DeliveryError> {
        send_json(Service::Slack, self.client.post(&url.0).json(message)).await
    }
}

#[async_trait]
impl SlackPoster for WebhookPoster {
    async fn post(&self, message: &SlackMessage) -> Result<(), DeliveryError> {
        let url = credential(&self.url, Service::Slack).await?;
        match self.post_to(&url, message).await {
            // The webhook may have been replaced: look once more (rate limited).
            Err(
                error @ DeliveryError::Refused {
                    status: 403 | 404 | 410,
                    ..
                },
            ) => match self.url.refresh_after_failure().await {
                Some(fresh) => self.post_to(&fresh, message).await,
                None => Err(error),
            },
            other => other,
        }
    }
}

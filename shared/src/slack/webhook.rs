//! Posting to a Slack incoming webhook. The webhook URL is a credential: it comes from
//! its own secret (cached), and never appears in logs or errors.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use http::StatusCode;
use serde_json::Value;

use super::message::SlackMessage;
use crate::secrets::{FromSecret, SecretCache, SecretsError};

/// An incoming-webhook URL. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Check and wrap a URL (`https://`, or `http://` for a local stand-in).
    pub fn new(url: &str) -> Result<Self, SecretsError> {
        let url = url.trim();
        if url.starts_with("https://") || url.starts_with("http://") {
            Ok(WebhookUrl(url.to_owned()))
        } else {
            Err(SecretsError::Invalid(
                "the webhook URL must start with https://".into(),
            ))
        }
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

/// Why a post did not go through. Texts carry Slack's error code, never the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// 429: Slack asks to wait.
    #[error("rate limited by Slack")]
    RateLimited {
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// 5xx, a timeout or a network error: worth retrying later.
    #[error("Slack is unavailable: {0}")]
    Transient(String),
    /// Slack refused the message or the webhook (`invalid_blocks`, `no_service`,
    /// `channel_is_archived`, ...): retrying will not help.
    #[error("Slack refused the message: {status} {reason}")]
    Permanent {
        /// The HTTP status.
        status: u16,
        /// Slack's error code.
        reason: String,
    },
}

/// Somewhere Slack messages go: the incoming webhook, or stdout in local mode.
#[async_trait]
pub trait SlackPoster: Send + Sync {
    /// Post one message.
    async fn post(&self, message: &SlackMessage) -> Result<(), PostError>;
}

/// Posts to the incoming webhook whose URL the secret holds.
pub struct WebhookPoster {
    client: reqwest::Client,
    url: SecretCache<WebhookUrl>,
}

impl WebhookPoster {
    /// A poster through `client` (give it a timeout) to the URL `url` caches.
    pub fn new(client: reqwest::Client, url: SecretCache<WebhookUrl>) -> Self {
        WebhookPoster { client, url }
    }

    async fn post_to(&self, url: &WebhookUrl, message: &SlackMessage) -> Result<(), PostError> {
        send_json(self.client.post(&url.0).json(message)).await
    }
}

/// The HTTP client for Slack and PagerDuty: a 5 s timeout, and no redirects, since a
/// redirect would carry the message (and PagerDuty's routing key) to a host nobody
/// configured; a 3xx is a refusal like any other. `https_only` for the Lambda functions;
/// `serve` also posts to plain `http://` stand-ins on the local machine.
pub fn http_client(https_only: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .https_only(https_only)
        .build()
}

/// Send a JSON request to Slack or PagerDuty and sort the answer: 2xx is done; 429 is
/// rate limiting (with `Retry-After`); 5xx, a timeout or a network error is transient;
/// any other status is a refusal, with the service's short reason (Slack's error code,
/// PagerDuty's `message`). No text carries the URL.
pub(crate) async fn send_json(request: reqwest::RequestBuilder) -> Result<(), PostError> {
    let response = request
        .send()
        .await
        .map_err(|e| PostError::Transient(e.without_url().to_string()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    let reason = match serde_json::from_str::<Value>(&body) {
        Ok(json) => json["message"].as_str().unwrap_or_default().to_owned(),
        Err(_) => body,
    };
    let reason: String = reason
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(120)
        .collect();
    Err(match status {
        StatusCode::TOO_MANY_REQUESTS => PostError::RateLimited { retry_after },
        status if status.is_server_error() => {
            PostError::Transient(format!("{} {reason}", status.as_u16()))
        }
        status => PostError::Permanent {
            status: status.as_u16(),
            reason,
        },
    })
}

#[async_trait]
impl SlackPoster for WebhookPoster {
    async fn post(&self, message: &SlackMessage) -> Result<(), PostError> {
        let url = self
            .url
            .current()
            .await
            .map_err(|e| PostError::Transient(e.to_string()))?;
        match self.post_to(&url, message).await {
            // The webhook may have been replaced: look once more (rate limited).
            Err(
                error @ PostError::Permanent {
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

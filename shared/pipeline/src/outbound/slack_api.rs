//! Slack's Web API with a bot token, for direct messages: the user found by their work
//! email (`users.lookupByEmail`), then a message to them (`chat.postMessage` with the
//! user's id as the channel, which opens the DM). Needs the bot scopes `users:read.email`
//! and `chat:write`.
//!
//! The Web API answers 200 with `{"ok": false, "error": ...}` for most failures: an
//! unknown email (`users_not_found`) or a bad token is a refusal, `ratelimited` (a 429)
//! and Slack's own errors are worth retrying. No error text carries the token or the
//! address.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::outbound::http::{callable, http_client};
use crate::outbound::{DeliveryError, Service};
use crate::secrets::{FromSecret, SecretsError};

/// Slack's Web API.
pub const SLACK_API: &str = "https://slack.com/api";

/// A Slack bot token (`xoxb-...`), as kept in a secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct BotToken(String);

impl std::fmt::Debug for BotToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotToken([redacted])")
    }
}

impl FromSecret for BotToken {
    /// The secret holds the token, or `{"bot_token": "..."}`.
    fn from_secret(text: &str) -> Result<Self, SecretsError> {
        let token = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object
                .get("bot_token")
                .and_then(Value::as_str)
                .map(|t| t.trim().to_owned()),
            _ => Some(text.trim().to_owned()),
        };
        token
            .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_graphic()))
            .map(BotToken)
            .ok_or_else(|| SecretsError::Invalid("expected a Slack bot token (xoxb-...)".into()))
    }
}

impl BotToken {
    /// The token itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Somewhere direct messages go.
#[async_trait]
pub trait DirectMessages: Send + Sync {
    /// Send `text` to the Slack user whose email is `email`.
    async fn send(&self, email: &str, text: &str) -> Result<(), DeliveryError>;
}

/// The Web API over HTTP.
pub struct SlackApi {
    client: reqwest::Client,
    base: reqwest::Url,
    token: String,
}

impl SlackApi {
    /// A client of the Web API at `base` ([`SLACK_API`], or a stand-in on loopback)
    /// with the bot token `token`; an error says why the URL cannot be called.
    pub fn new(base: &str, token: &str) -> Result<SlackApi, &'static str> {
        let mut base = callable(base)?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        if token.trim().is_empty() {
            return Err("the Slack bot token is empty");
        }
        Ok(SlackApi {
            client: http_client().map_err(|_| "no HTTP client")?,
            base,
            token: token.trim().to_owned(),
        })
    }

    async fn call(
        &self,
        method: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, DeliveryError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| DeliveryError::unavailable(Service::Slack, e.without_url()))?;
        let status = response.status();
        if status.as_u16() == 429 {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .map(std::time::Duration::from_secs);
            return Err(DeliveryError::RateLimited {
                service: Service::Slack,
                retry_after,
            });
        }
        if !status.is_success() {
            let cause = format!("{method} answered {status}");
            return match status.is_server_error() {
                true => Err(DeliveryError::unavailable(Service::Slack, cause)),
                false => Err(DeliveryError::Refused {
                    service: Service::Slack,
                    status: status.as_u16(),
                    reason: cause,
                }),
            };
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| DeliveryError::unavailable(Service::Slack, e.without_url()))?;
        if body["ok"] == true {
            return Ok(body);
        }
        let error = body["error"].as_str().unwrap_or("unknown_error");
        match error {
            "ratelimited" => Err(DeliveryError::RateLimited {
                service: Service::Slack,
                retry_after: None,
            }),
            // Slack's own trouble, and a token or scope that needs fixing: every message
            // would fail alike, so they wait for the next check instead of being dropped.
            "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout"
            | "invalid_auth"
            | "not_authed"
            | "token_revoked"
            | "token_expired"
            | "account_inactive"
            | "missing_scope"
            | "no_permission" => Err(DeliveryError::unavailable(
                Service::Slack,
                format!("{method}: {error}"),
            )),
            _ => Err(DeliveryError::Refused {
                service: Service::Slack,
                status: 200,
                reason: format!("{method}: {error}"),
            }),
        }
    }

    fn url(&self, method: &str) -> Result<reqwest::Url, DeliveryError> {
        self.base
            .join(method)
            .map_err(|e| DeliveryError::unavailable(Service::Slack, e))
    }
}

#[async_trait]
impl DirectMessages for SlackApi {
    async fn send(&self, email: &str, text: &str) -> Result<(), DeliveryError> {
        let mut url = self.url("users.lookupByEmail")?;
        url.query_pairs_mut().append_pair("email", email);
        let lookup = self.client.get(url);
        let user = self.call("users.lookupByEmail", lookup).await?;
        let Some(id) = user["user"]["id"].as_str() else {
            return Err(DeliveryError::Refused {
                service: Service::Slack,
                status: 200,
                reason: "users.lookupByEmail: no user id in the answer".into(),
            });
        };
        let post = self
            .client
            .post(self.url("chat.postMessage")?)
            .json(&json!({"channel": id, "text": text}));
        self.call("chat.postMessage", post).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bot_token_is_read_plain_or_from_json_and_never_shown() {
        let plain = BotToken::from_secret(" xoxb-1-2-abc\n").unwrap();
        assert_eq!(plain.expose(), "xoxb-1-2-abc");
        let json = BotToken::from_secret(r#"{"bot_token": "xoxb-1-2-abc"}"#).unwrap();
        assert_eq!(json, plain);
        assert_eq!(format!("{plain:?}"), "BotToken([redacted])");
        for bad in ["", "  ", "xoxb 1", r#"{"token": "xoxb-1"}"#] {
            let error = BotToken::from_secret(bad).unwrap_err().to_string();
            assert!(
                error.contains("expected a Slack bot token"),
                "{bad}: {error}"
            );
            assert!(
                !error.contains("xoxb-1") && !error.contains("xoxb 1"),
                "{error}"
            );
        }
    }
}

//! The stalled check's configuration.

use std::time::Duration;

use okr_pipeline::config::{ConfigError, Env, optional, stalled_after};
use okr_pipeline::outbound::slack_api::SLACK_API;

/// The stalled check Lambda's configuration: its stores, the rule's setting, and where
/// alerts go. Each destination is optional; at least one must be set.
#[derive(Debug, Clone)]
pub struct StalledConfig {
    /// `PROGRESS_TABLE`: the read model.
    pub progress_table: String,
    /// `DIRECTORY_TABLE`: who owns what, and their team leads.
    pub directory_table: String,
    /// `IDEMPOTENCY_TABLE`: each alert's state, and what was sent.
    pub idempotency_table: String,
    /// `STALLED_AFTER_DAYS` (default 14), as the summaries read it.
    pub stalled_after: Duration,
    /// `ALERT_WINDOW_HOURS` (default 24): an alert that stays open is sent again after
    /// this long, as the other alerts are.
    pub window: Duration,
    /// `EMAIL_SENDER`: email to team leads through SES, when set.
    pub email_sender: Option<String>,
    /// `SLACK_BOT_TOKEN_SECRET_ID`: direct messages to team leads, when set.
    pub slack_bot_token_secret_id: Option<String>,
    /// `SLACK_API_URL` (default Slack's Web API).
    pub slack_api_url: String,
    /// `ALERTS_SLACK_WEBHOOK_SECRET_ID`: the alerts channel, when set.
    pub slack_webhook_secret_id: Option<String>,
    /// `PAGERDUTY_ROUTING_KEY_SECRET_ID`: PagerDuty, when set.
    pub pagerduty_routing_key_secret_id: Option<String>,
    /// `PAGERDUTY_EVENTS_URL` (default the Events API v2 endpoint).
    pub pagerduty_events_url: String,
}

impl StalledConfig {
    /// Read every variable; the first missing or invalid one is the error.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let email_sender = optional(env, "EMAIL_SENDER");
        let slack_bot_token_secret_id = optional(env, "SLACK_BOT_TOKEN_SECRET_ID");
        let slack_webhook_secret_id = optional(env, "ALERTS_SLACK_WEBHOOK_SECRET_ID");
        let pagerduty_routing_key_secret_id = optional(env, "PAGERDUTY_ROUTING_KEY_SECRET_ID");
        if email_sender.is_none()
            && slack_bot_token_secret_id.is_none()
            && slack_webhook_secret_id.is_none()
            && pagerduty_routing_key_secret_id.is_none()
        {
            return Err(ConfigError::Missing(
                "EMAIL_SENDER, SLACK_BOT_TOKEN_SECRET_ID, ALERTS_SLACK_WEBHOOK_SECRET_ID or PAGERDUTY_ROUTING_KEY_SECRET_ID",
            ));
        }
        let slack_api_url = match optional(env, "SLACK_API_URL") {
            None => SLACK_API.to_owned(),
            Some(url) => okr_pipeline::outbound::http::callable(&url)
                .map(|_| url.trim().to_owned())
                .map_err(|reason| ConfigError::Unusable {
                    name: "SLACK_API_URL",
                    reason,
                })?,
        };
        Ok(StalledConfig {
            progress_table: env.required("PROGRESS_TABLE")?,
            directory_table: env.required("DIRECTORY_TABLE")?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            stalled_after: stalled_after(env)?,
            window: super::alert_window(env)?,
            email_sender,
            slack_bot_token_secret_id,
            slack_api_url,
            slack_webhook_secret_id,
            pagerduty_routing_key_secret_id,
            pagerduty_events_url: okr_pipeline::config::events_url(
                "PAGERDUTY_EVENTS_URL",
                optional(env, "PAGERDUTY_EVENTS_URL"),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<StalledConfig, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        StalledConfig::from_env(&Env(move |name: &str| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        }))
    }

    const TABLES: [(&str, &str); 3] = [
        ("PROGRESS_TABLE", "p"),
        ("DIRECTORY_TABLE", "d"),
        ("IDEMPOTENCY_TABLE", "i"),
    ];

    #[test]
    fn it_needs_somewhere_to_send() {
        let error = read(&TABLES).unwrap_err().to_string();
        assert!(error.contains("EMAIL_SENDER"), "{error}");
        let config =
            read(&[TABLES.as_slice(), &[("EMAIL_SENDER", "okr@example.com")]].concat()).unwrap();
        assert_eq!(config.stalled_after, Duration::from_secs(14 * 24 * 3600));
        assert_eq!(config.window, Duration::from_secs(24 * 3600));
        assert_eq!(config.slack_api_url, SLACK_API);
        assert!(config.slack_bot_token_secret_id.is_none());
    }

    #[test]
    fn a_slack_api_url_that_cannot_be_called_is_refused() {
        let error = read(
            &[
                TABLES.as_slice(),
                &[
                    ("SLACK_BOT_TOKEN_SECRET_ID", "t"),
                    ("SLACK_API_URL", "http://slack.example.com/api"),
                ],
            ]
            .concat(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("SLACK_API_URL"), "{error}");
    }
}

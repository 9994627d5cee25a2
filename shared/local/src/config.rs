//! `okr-webhooks serve`'s configuration.

use std::time::Duration;

use okr_core::routing::NotifyRules;
use okr_pipeline::config::{ConfigError, Env, notify_rules};

/// Where `serve` sends; what is not set is printed instead.
#[derive(Debug, Clone, Default)]
pub struct LocalDestinations {
    /// `--slack-webhook-url` / `OKR_SLACK_WEBHOOK_URL`: the notifier's incoming webhook.
    pub slack_webhook_url: Option<String>,
    /// `--alerts-slack-webhook-url` / `OKR_ALERTS_SLACK_WEBHOOK_URL`: the alerts channel's.
    pub alerts_slack_webhook_url: Option<String>,
    /// `--pagerduty-routing-key` / `OKR_PAGERDUTY_ROUTING_KEY`.
    pub pagerduty_routing_key: Option<String>,
    /// `--pagerduty-events-url` / `PAGERDUTY_EVENTS_URL`.
    pub pagerduty_events_url: Option<String>,
    /// `--slack-bot-token` / `OKR_SLACK_BOT_TOKEN`: direct messages to team leads.
    pub slack_bot_token: Option<String>,
    /// `--slack-api-url` / `OKR_SLACK_API_URL`: Slack's Web API.
    pub slack_api_url: String,
}

/// `serve`'s configuration, read once at start.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Where Slack messages and alerts go (each printed when not set).
    pub destinations: LocalDestinations,
    /// The PagerDuty Events API endpoint (default the Events API v2).
    pub pagerduty_events_url: String,
    /// `SLACK_NOTIFY_TYPES`, as for ingest.
    pub notify: NotifyRules,
    /// The first retry wait of a failed record (`retry::Schedule::starting_at`).
    pub retry_base: Duration,
    /// `--dashboard-token` / `OKR_DASHBOARD_TOKEN`: what the dashboard and the progress
    /// API require when `serve` is bound beyond loopback.
    pub dashboard_token: Option<String>,
    /// How email goes out, and when summaries are due.
    pub email: LocalEmail,
}

/// Email on one machine.
#[derive(Debug, Clone, Default)]
pub struct LocalEmail {
    /// `--smtp-url` / `OKR_SMTP_URL`: the SMTP server (default: `.eml` files in
    /// `<data-dir>/outbox/`).
    pub smtp_url: Option<String>,
    /// `OKR_SMTP_USERNAME` and `OKR_SMTP_PASSWORD`, when both are set.
    pub credentials: Option<(String, String)>,
    /// `OKR_EMAIL_FROM` (default `okr-webhooks@localhost`).
    pub from: String,
    /// `--summary-cron` / `OKR_SUMMARY_CRON`: when `serve` sends the summaries, in this
    /// machine's time zone.
    pub summary_cron: Option<okr_consumers::email::schedule::Cron>,
    /// `--stalled-cron` / `OKR_STALLED_CRON`: when `serve` runs the stalled check.
    pub stalled_cron: Option<okr_consumers::email::schedule::Cron>,
    /// `STALLED_AFTER_DAYS` (default 14).
    pub stalled_after: Duration,
}

impl LocalEmail {
    /// The SMTP URL given (or none), and the rest from the environment.
    pub fn new<F: Fn(&str) -> Option<String>>(
        smtp_url: Option<String>,
        env: &Env<F>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &str| (env.0)(name).filter(|v| !v.trim().is_empty());
        Ok(LocalEmail {
            smtp_url: smtp_url.filter(|url| !url.trim().is_empty()),
            credentials: var("OKR_SMTP_USERNAME").zip(var("OKR_SMTP_PASSWORD")),
            from: var("OKR_EMAIL_FROM").unwrap_or_else(|| crate::smtp::DEFAULT_FROM.to_owned()),
            summary_cron: None,
            stalled_cron: None,
            stalled_after: okr_pipeline::config::stalled_after(env)?,
        })
    }
}

impl LocalConfig {
    /// `serve`'s options (`destinations`, `retry_base`), and the environment for the rest.
    pub fn new<F: Fn(&str) -> Option<String>>(
        destinations: LocalDestinations,
        retry_base: Duration,
        env: &Env<F>,
    ) -> Result<Self, ConfigError> {
        // A URL that can never be called stops `serve` before it starts anything.
        let webhooks = [
            ("--slack-webhook-url", &destinations.slack_webhook_url),
            (
                "--alerts-slack-webhook-url",
                &destinations.alerts_slack_webhook_url,
            ),
        ];
        for (name, url) in webhooks {
            if let Some(url) = url.as_deref().filter(|url| !url.trim().is_empty()) {
                okr_pipeline::outbound::http::callable(url)
                    .map_err(|reason| ConfigError::Unusable { name, reason })?;
            }
        }
        let pagerduty_events_url = okr_pipeline::config::events_url(
            "--pagerduty-events-url (PAGERDUTY_EVENTS_URL)",
            destinations.pagerduty_events_url.clone(),
        )?;
        Ok(LocalConfig {
            destinations,
            pagerduty_events_url,
            notify: notify_rules(env),
            retry_base,
            dashboard_token: None,
            email: LocalEmail::new(None, env)?,
        })
    }
}

//! The email summaries' configuration, and the alerts' email destination.

use std::time::Duration;

use okr_pipeline::config::{ConfigError, Env, secret_cache_ttl, stalled_after};

/// Where email comes from and who gets it: `EMAIL_SENDER` (an address of a verified SES
/// identity) and `EMAIL_RECIPIENTS_SECRET_ID` (the recipients document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSource {
    /// `EMAIL_SENDER`.
    pub sender: String,
    /// `EMAIL_RECIPIENTS_SECRET_ID`.
    pub recipients_secret_id: String,
}

impl EmailSource {
    /// Both variables, or neither (`None`); one without the other is an error.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<Option<Self>, ConfigError> {
        let var = |name: &str| (env.0)(name).filter(|v| !v.trim().is_empty());
        match (var("EMAIL_SENDER"), var("EMAIL_RECIPIENTS_SECRET_ID")) {
            (Some(sender), Some(recipients_secret_id)) => Ok(Some(EmailSource {
                sender,
                recipients_secret_id,
            })),
            (None, None) => Ok(None),
            (None, Some(_)) => Err(ConfigError::Missing("EMAIL_SENDER")),
            (Some(_), None) => Err(ConfigError::Missing("EMAIL_RECIPIENTS_SECRET_ID")),
        }
    }
}

/// The email summaries Lambda's configuration.
#[derive(Debug, Clone)]
pub struct SummariesConfig {
    /// `EMAIL_SENDER` and `EMAIL_RECIPIENTS_SECRET_ID`.
    pub email: EmailSource,
    /// `PROGRESS_TABLE`: the read model.
    pub progress_table: String,
    /// `DIRECTORY_TABLE`: the directory, for the org scopes and `team_leads`.
    pub directory_table: String,
    /// `IDEMPOTENCY_TABLE`: what was sent, and the previous run's state.
    pub idempotency_table: String,
    /// `SUMMARY_TIME_ZONE` (default `UTC`): the schedule's zone, for the week and dates.
    pub time_zone: chrono_tz::Tz,
    /// `STALLED_AFTER_DAYS` (default 14).
    pub stalled_after: Duration,
    /// `EMAIL_MAX_SEND_RATE` (default 1 per second, SES's sandbox rate): the pause
    /// between two sends is its inverse.
    pub pace: Duration,
    /// `SECRET_CACHE_TTL_SECONDS` (default 300).
    pub secret_cache_ttl: Duration,
}

impl SummariesConfig {
    /// Read every variable.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let email = EmailSource::from_env(env)?.ok_or(ConfigError::Missing(
            "EMAIL_SENDER and EMAIL_RECIPIENTS_SECRET_ID",
        ))?;
        let zone = (env.0)("SUMMARY_TIME_ZONE").filter(|v| !v.trim().is_empty());
        let time_zone = match zone {
            None => chrono_tz::UTC,
            Some(name) => okr_consumers::email::schedule::zone(name.trim()).map_err(|_| {
                ConfigError::Invalid {
                    name: "SUMMARY_TIME_ZONE",
                    expected: "an IANA time zone such as Europe/Berlin",
                }
            })?,
        };
        let rate = env.number_in(
            "EMAIL_MAX_SEND_RATE",
            1,
            1..=1000,
            "a number of emails per second from 1 to 1000",
        )?;
        Ok(SummariesConfig {
            email,
            progress_table: env.required("PROGRESS_TABLE")?,
            directory_table: env.required("DIRECTORY_TABLE")?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            time_zone,
            stalled_after: stalled_after(env)?,
            pace: Duration::from_secs(1) / rate as u32,
            secret_cache_ttl: secret_cache_ttl(env)?,
        })
    }
}

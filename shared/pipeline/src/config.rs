//! Configuration from environment variables, read once at start. A missing or invalid
//! variable stops start-up with its name.

use std::str::FromStr;
use std::time::Duration;

use okr_core::routing::{Consumer, DEFAULT_NOTIFY_TYPES, NotifyRules};

/// Default `PAGERDUTY_EVENTS_URL`: the Events API v2 endpoint.
pub const DEFAULT_PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Default `MAX_BODY_BYTES`: 256 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// The largest `MAX_BODY_BYTES`: half the 1 MiB SQS message, since the normalized
/// event carries the body and the fields taken from it.
pub const MAX_BODY_BYTES_LIMIT: usize = 512 * 1024;

/// The queue URL of each consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    /// `WAREHOUSE_QUEUE_URL`.
    pub warehouse: String,
    /// `SLACK_QUEUE_URL`.
    pub slack: String,
    /// `ALERTS_QUEUE_URL`.
    pub alerts: String,
    /// `PROGRESS_QUEUE_URL`.
    pub progress: String,
    /// The subscriptions queue's; empty where there is none (the stack has none yet).
    pub subscriptions: String,
}

impl QueueUrls {
    /// The URL of `consumer`'s queue.
    pub fn get(&self, consumer: Consumer) -> &str {
        match consumer {
            Consumer::Warehouse => &self.warehouse,
            Consumer::Slack => &self.slack,
            Consumer::Alerts => &self.alerts,
            Consumer::Progress => &self.progress,
            Consumer::Subscriptions => &self.subscriptions,
        }
    }
}

/// A variable that is missing or cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Required and not set (or empty).
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    /// Set, but not in the expected form.
    #[error("environment variable {name} is invalid: expected {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What it should hold.
        expected: &'static str,
    },
    /// A setting (a variable, or `serve`'s option) whose value can never work.
    #[error("{name} {reason}")]
    Unusable {
        /// The setting, as the user sets it.
        name: &'static str,
        /// What is wrong, never the value.
        reason: &'static str,
    },
}

/// The PagerDuty Events API endpoint `name` sets (the Events API v2 when unset): a URL
/// the HTTP client can call ([`crate::outbound::http::callable`]).
pub fn events_url(name: &'static str, url: Option<String>) -> Result<String, ConfigError> {
    let Some(url) = url.filter(|url| !url.trim().is_empty()) else {
        return Ok(DEFAULT_PAGERDUTY_EVENTS_URL.to_owned());
    };
    crate::outbound::http::callable(&url)
        .map(|_| url.trim().to_owned())
        .map_err(|reason| ConfigError::Unusable { name, reason })
}

/// Reads variables through `lookup` (the process environment, or a map in tests).
pub struct Env<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// A required variable.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        (self.0)(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing(name))
    }

    /// An optional number in `range`, or `default`.
    pub fn number_in(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
        expected: &'static str,
    ) -> Result<u64, ConfigError> {
        let value = self.parsed_or(name, default, expected)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::Invalid { name, expected })
        }
    }

    /// An optional variable parsed as `T`, or `default`.
    pub fn parsed_or<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        match (self.0)(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|_| ConfigError::Invalid { name, expected }),
        }
    }
}

/// The process environment.
pub fn process_env() -> Env<impl Fn(&str) -> Option<String>> {
    Env(|name: &str| std::env::var(name).ok())
}

/// An optional variable; blank counts as unset.
pub fn optional<F: Fn(&str) -> Option<String>>(env: &Env<F>, name: &'static str) -> Option<String> {
    (env.0)(name).filter(|v| !v.trim().is_empty())
}

/// `SLACK_NOTIFY_TYPES` (default [`DEFAULT_NOTIFY_TYPES`]).
pub fn notify_rules<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> NotifyRules {
    NotifyRules::parse(
        &(env.0)("SLACK_NOTIFY_TYPES").unwrap_or_else(|| DEFAULT_NOTIFY_TYPES.to_owned()),
    )
}
/// `STALLED_AFTER_DAYS` (default 14): a summary calls a key result stalled after this
/// long without an update.
pub fn stalled_after<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(
        24 * 3600
            * env.number_in(
                "STALLED_AFTER_DAYS",
                14,
                1..=365,
                "a number of days from 1 to 365",
            )?,
    ))
}

/// `SECRET_CACHE_TTL_SECONDS` (default 300).
pub fn secret_cache_ttl<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(env.number_in(
        "SECRET_CACHE_TTL_SECONDS",
        300,
        1..=86_400,
        "a number of seconds from 1 to 86400",
    )?))
}
/// `QUEUE_VISIBILITY_TIMEOUT_SECONDS`: required, 0 to 43200.
pub fn visibility_timeout<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Duration, ConfigError> {
    let expected = "a number of seconds from 0 to 43200 (the queue's visibility timeout)";
    let seconds: u64 = env
        .required("QUEUE_VISIBILITY_TIMEOUT_SECONDS")?
        .trim()
        .parse()
        .map_err(|_| ConfigError::Invalid {
            name: "QUEUE_VISIBILITY_TIMEOUT_SECONDS",
            expected,
        })?;
    if seconds > 43_200 {
        return Err(ConfigError::Invalid {
            name: "QUEUE_VISIBILITY_TIMEOUT_SECONDS",
            expected,
        });
    }
    Ok(Duration::from_secs(seconds))
}

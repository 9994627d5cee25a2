//! Configuration from environment variables, read once at start. A missing or invalid
//! variable stops start-up with its name.

use std::str::FromStr;
use std::time::Duration;

use crate::routing::{Consumer, DEFAULT_NOTIFY_TYPES, NotifyRules};
use crate::slack::DEFAULT_DIGEST_THRESHOLD;
use crate::warehouse::WarehouseUrl;

/// Default `PAGERDUTY_EVENTS_URL`: the Events API v2 endpoint.
pub const DEFAULT_PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Default `MAX_BODY_BYTES`: 256 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// The largest `MAX_BODY_BYTES`: half the 1 MiB SQS message, since the normalized
/// event carries the body and the fields taken from it.
pub const MAX_BODY_BYTES_LIMIT: usize = 512 * 1024;

/// AWS SDK timeouts for a function's clients: connect within 1 s, each attempt within
/// `attempt`, the whole call with its retries within `operation`, so a hung AWS call ends
/// inside the invocation instead of running into the function's timeout.
pub fn aws_timeouts(
    attempt: Duration,
    operation: Duration,
) -> aws_sdk_sqs::config::timeout::TimeoutConfig {
    aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

/// The longest one AWS call of a consumer (DynamoDB, Secrets Manager) may take, retries
/// included: the consumers keep this much of their time for each store call they must
/// still make after a send.
pub const CONSUMER_AWS_CALL: Duration = Duration::from_secs(5);

/// The consumers' clients: each call ends within [`CONSUMER_AWS_CALL`], well inside the
/// 30 s and 60 s the consumer functions have.
pub fn consumer_aws_timeouts() -> aws_sdk_sqs::config::timeout::TimeoutConfig {
    aws_timeouts(Duration::from_secs(2), CONSUMER_AWS_CALL)
}

/// The queue URL of each consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    /// `WAREHOUSE_QUEUE_URL`.
    pub warehouse: String,
    /// `SLACK_QUEUE_URL`.
    pub slack: String,
    /// `ALERTS_QUEUE_URL`.
    pub alerts: String,
}

impl QueueUrls {
    /// The URL of `consumer`'s queue.
    pub fn get(&self, consumer: Consumer) -> &str {
        match consumer {
            Consumer::Warehouse => &self.warehouse,
            Consumer::Slack => &self.slack,
            Consumer::Alerts => &self.alerts,
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

/// The ingest function's configuration.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// `SIGNING_SECRET_ID`: the Secrets Manager secret (name or ARN) with the signing secrets.
    pub secret_id: String,
    /// `WAREHOUSE_QUEUE_URL`, `SLACK_QUEUE_URL`, `ALERTS_QUEUE_URL`.
    pub queue_urls: QueueUrls,
    /// `MAX_BODY_BYTES` (default 262144).
    pub max_body_bytes: usize,
    /// `SECRET_CACHE_TTL_SECONDS` (default 300).
    pub secret_cache_ttl: Duration,
    /// `SLACK_NOTIFY_TYPES` (default [`DEFAULT_NOTIFY_TYPES`]).
    pub notify: NotifyRules,
}

impl IngestConfig {
    /// Read every variable; the first missing or invalid one is the error.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(IngestConfig {
            secret_id: env.required("SIGNING_SECRET_ID")?,
            queue_urls: QueueUrls {
                warehouse: env.required("WAREHOUSE_QUEUE_URL")?,
                slack: env.required("SLACK_QUEUE_URL")?,
                alerts: env.required("ALERTS_QUEUE_URL")?,
            },
            max_body_bytes: env.number_in(
                "MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES as u64,
                1..=MAX_BODY_BYTES_LIMIT as u64,
                "a number of bytes from 1 to 524288",
            )? as usize,
            secret_cache_ttl: secret_cache_ttl(env)?,
            notify: notify_rules(env),
        })
    }
}

/// The warehouse sink's configuration.
#[derive(Debug, Clone)]
pub struct WarehouseConfig {
    /// `WAREHOUSE_URL`: `s3://bucket/prefix` or a local directory.
    pub url: WarehouseUrl,
}

impl WarehouseConfig {
    /// Read every variable; the first missing or invalid one is the error.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let url = env.required("WAREHOUSE_URL")?;
        let url = url.parse().map_err(|expected| ConfigError::Invalid {
            name: "WAREHOUSE_URL",
            expected,
        })?;
        Ok(WarehouseConfig { url })
    }
}

fn notify_rules<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> NotifyRules {
    NotifyRules::parse(
        &(env.0)("SLACK_NOTIFY_TYPES").unwrap_or_else(|| DEFAULT_NOTIFY_TYPES.to_owned()),
    )
}

fn secret_cache_ttl<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(env.number_in(
        "SECRET_CACHE_TTL_SECONDS",
        300,
        1..=86_400,
        "a number of seconds from 1 to 86400",
    )?))
}

/// The Slack notifier's configuration.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// `SLACK_WEBHOOK_SECRET_ID`: the secret holding the incoming-webhook URL.
    pub webhook_secret_id: String,
    /// `IDEMPOTENCY_TABLE`: the DynamoDB table of idempotency records.
    pub idempotency_table: String,
    /// `SLACK_NOTIFY_TYPES`, as for ingest.
    pub notify: NotifyRules,
    /// `SLACK_DIGEST_THRESHOLD` (default 5): more notable events in a batch make a digest.
    pub digest_threshold: usize,
    /// `SECRET_CACHE_TTL_SECONDS` (default 300).
    pub secret_cache_ttl: Duration,
    /// `QUEUE_VISIBILITY_TIMEOUT_SECONDS`: the Slack queue's visibility timeout, the
    /// least time a claim is held.
    pub visibility_timeout: Duration,
}

impl SlackConfig {
    /// Read every variable; the first missing or invalid one is the error.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(SlackConfig {
            webhook_secret_id: env.required("SLACK_WEBHOOK_SECRET_ID")?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            notify: notify_rules(env),
            digest_threshold: env.number_in(
                "SLACK_DIGEST_THRESHOLD",
                DEFAULT_DIGEST_THRESHOLD as u64,
                1..=1000,
                "a number of events from 1 to 1000",
            )? as usize,
            secret_cache_ttl: secret_cache_ttl(env)?,
            visibility_timeout: visibility_timeout(env)?,
        })
    }
}

fn visibility_timeout<F: Fn(&str) -> Option<String>>(
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

/// The progress alerts' configuration.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// `ALERTS_SLACK_WEBHOOK_SECRET_ID`: the secret with the alerts channel's webhook URL.
    pub slack_webhook_secret_id: Option<String>,
    /// `PAGERDUTY_ROUTING_KEY_SECRET_ID`: the secret with the PagerDuty routing key.
    pub pagerduty_routing_key_secret_id: Option<String>,
    /// `PAGERDUTY_EVENTS_URL` (default the Events API v2 endpoint).
    pub pagerduty_events_url: String,
    /// `IDEMPOTENCY_TABLE`.
    pub idempotency_table: String,
    /// `ALERT_PACE_TOLERANCE`, `ALERT_LOW_THRESHOLD`, `ALERT_LOW_AFTER`, `ALERT_DROP_POINTS`.
    pub thresholds: crate::alerts::rules::Thresholds,
    /// `ALERT_WINDOW_HOURS` (default 24): how often an alert that stays open is sent again.
    pub window: Duration,
    /// `SECRET_CACHE_TTL_SECONDS` (default 300).
    pub secret_cache_ttl: Duration,
    /// `QUEUE_VISIBILITY_TIMEOUT_SECONDS`: the alerts queue's visibility timeout, the
    /// least time a claim is held.
    pub visibility_timeout: Duration,
}

impl AlertsConfig {
    /// Read every variable; at least one destination must be set.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let optional = |name: &'static str| (env.0)(name).filter(|v| !v.trim().is_empty());
        let slack_webhook_secret_id = optional("ALERTS_SLACK_WEBHOOK_SECRET_ID");
        let pagerduty_routing_key_secret_id = optional("PAGERDUTY_ROUTING_KEY_SECRET_ID");
        if slack_webhook_secret_id.is_none() && pagerduty_routing_key_secret_id.is_none() {
            return Err(ConfigError::Missing(
                "ALERTS_SLACK_WEBHOOK_SECRET_ID or PAGERDUTY_ROUTING_KEY_SECRET_ID",
            ));
        }
        let defaults = crate::alerts::rules::Thresholds::default();
        let points = |name: &'static str, default: f64| -> Result<f64, ConfigError> {
            let value: f64 = env.parsed_or(name, default, "a number from 0 to 100")?;
            if (0.0..=100.0).contains(&value) {
                Ok(value)
            } else {
                Err(ConfigError::Invalid {
                    name,
                    expected: "a number from 0 to 100",
                })
            }
        };
        Ok(AlertsConfig {
            slack_webhook_secret_id,
            pagerduty_routing_key_secret_id,
            pagerduty_events_url: optional("PAGERDUTY_EVENTS_URL")
                .unwrap_or_else(|| DEFAULT_PAGERDUTY_EVENTS_URL.to_owned()),
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            thresholds: crate::alerts::rules::Thresholds {
                pace_tolerance: points("ALERT_PACE_TOLERANCE", defaults.pace_tolerance)?,
                low_threshold: points("ALERT_LOW_THRESHOLD", defaults.low_threshold)?,
                low_after: points("ALERT_LOW_AFTER", defaults.low_after)?,
                drop_points: points("ALERT_DROP_POINTS", defaults.drop_points)?,
            },
            window: Duration::from_secs(
                3600 * env.number_in(
                    "ALERT_WINDOW_HOURS",
                    24,
                    1..=24 * 30,
                    "a number of hours from 1 to 720",
                )?,
            ),
            secret_cache_ttl: secret_cache_ttl(env)?,
            visibility_timeout: visibility_timeout(env)?,
        })
    }
}

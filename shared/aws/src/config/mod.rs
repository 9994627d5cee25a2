//! The Lambda functions' configurations.

pub mod email;
pub mod stalled;

pub use email::{EmailSource, SummariesConfig};
pub use stalled::StalledConfig;

use std::time::Duration;

use okr_consumers::slack::DEFAULT_DIGEST_THRESHOLD;
use okr_consumers::warehouse::WarehouseUrl;
use okr_core::routing::NotifyRules;
use okr_core::rules::Thresholds;
use okr_pipeline::config::{
    ConfigError, DEFAULT_MAX_BODY_BYTES, Env, MAX_BODY_BYTES_LIMIT, QueueUrls, notify_rules,
    secret_cache_ttl, visibility_timeout,
};

/// The ingest function's configuration.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// `SIGNING_SECRET_ID`: the Secrets Manager secret (name or ARN) with the signing secrets.
    pub secret_id: String,
    /// `ENDPOINTS_SECRET_ID`: the Secrets Manager secret with the endpoints document;
    /// without it, the four built-in endpoints.
    pub endpoints_secret_id: Option<String>,
    /// `WAREHOUSE_QUEUE_URL`, `SLACK_QUEUE_URL`, `ALERTS_QUEUE_URL`, `PROGRESS_QUEUE_URL`,
    /// and `SUBSCRIPTIONS_QUEUE_URL` (with `SUBSCRIPTIONS_SECRET_ID`).
    pub queue_urls: QueueUrls,
    /// `SUBSCRIPTIONS_SECRET_ID`: the secret with the subscriptions document; ingest
    /// queues each event a subscription takes on the subscriptions queue. Without it,
    /// none is queued there.
    pub subscriptions_secret_id: Option<String>,
    /// `PUBLISH_TO_EVENT_BUS` (`true` or `false`, default `false`): queue every event for
    /// the subscriptions' sender, which publishes each to the event bus.
    pub publish_to_event_bus: bool,
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
        let config = IngestConfig {
            secret_id: env.required("SIGNING_SECRET_ID")?,
            endpoints_secret_id: okr_pipeline::config::optional(env, "ENDPOINTS_SECRET_ID"),
            queue_urls: QueueUrls {
                warehouse: env.required("WAREHOUSE_QUEUE_URL")?,
                slack: env.required("SLACK_QUEUE_URL")?,
                alerts: env.required("ALERTS_QUEUE_URL")?,
                progress: env.required("PROGRESS_QUEUE_URL")?,
                subscriptions: okr_pipeline::config::optional(env, "SUBSCRIPTIONS_QUEUE_URL")
                    .unwrap_or_default(),
            },
            subscriptions_secret_id: okr_pipeline::config::optional(env, "SUBSCRIPTIONS_SECRET_ID"),
            publish_to_event_bus: env.parsed_or("PUBLISH_TO_EVENT_BUS", false, "true or false")?,
            max_body_bytes: env.number_in(
                "MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES as u64,
                1..=MAX_BODY_BYTES_LIMIT as u64,
                "a number of bytes from 1 to 524288",
            )? as usize,
            secret_cache_ttl: secret_cache_ttl(env)?,
            notify: notify_rules(env),
        };
        // Subscriptions and the bus need the subscriptions queue.
        if (config.subscriptions_secret_id.is_some() || config.publish_to_event_bus)
            && config.queue_urls.subscriptions.is_empty()
        {
            return Err(ConfigError::Missing("SUBSCRIPTIONS_QUEUE_URL"));
        }
        Ok(config)
    }
}

/// The warehouse sink's configuration.
#[derive(Debug, Clone)]
pub struct WarehouseConfig {
    /// `WAREHOUSE_URL`: `s3://bucket/prefix` or a local directory.
    pub url: WarehouseUrl,
    /// `QUEUE_URL`, as for the Slack notifier.
    pub queue_url: Option<String>,
    /// `IDEMPOTENCY_TABLE` (optional): the DynamoDB table holding the circuit breaker's
    /// state, shared by every instance; without it each instance keeps its own.
    pub idempotency_table: Option<String>,
}

impl WarehouseConfig {
    /// Read every variable; the first missing or invalid one is the error.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(WarehouseConfig {
            url: warehouse_url(env)?,
            queue_url: okr_pipeline::config::optional(env, "QUEUE_URL"),
            idempotency_table: okr_pipeline::config::optional(env, "IDEMPOTENCY_TABLE"),
        })
    }
}

/// The people snapshot's configuration.
#[derive(Debug, Clone)]
pub struct PeopleSnapshotConfig {
    /// `DIRECTORY_TABLE`: the directory of people.
    pub directory_table: String,
    /// `WAREHOUSE_URL`: the warehouse the sink writes, `s3://bucket/prefix` or a local
    /// directory; the snapshots go under `people/v1/` there.
    pub url: WarehouseUrl,
}

impl PeopleSnapshotConfig {
    /// Read every variable; the first missing or invalid one is the error.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(PeopleSnapshotConfig {
            directory_table: env.required("DIRECTORY_TABLE")?,
            url: warehouse_url(env)?,
        })
    }
}

/// `WAREHOUSE_URL`.
fn warehouse_url<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<WarehouseUrl, ConfigError> {
    env.required("WAREHOUSE_URL")?
        .parse()
        .map_err(|expected| ConfigError::Invalid {
            name: "WAREHOUSE_URL",
            expected,
        })
}

/// The subscriptions consumer's configuration.
#[derive(Debug, Clone)]
pub struct SubscriptionsConfig {
    /// `SUBSCRIPTIONS_SECRET_ID`: the secret with the subscriptions document.
    pub document_secret_id: String,
    /// `SUBSCRIPTION_SECRETS_SECRET_ID`: the secret with their signing secrets and
    /// credentials.
    pub secrets_secret_id: String,
    /// `IDEMPOTENCY_TABLE`: what was sent, the breakers and each subscription's health.
    pub idempotency_table: String,
    /// `QUEUE_URL`: the function's own queue, for the retry schedule's waits.
    pub queue_url: Option<String>,
    /// `SECRET_CACHE_TTL_SECONDS` (default 300): how soon an edit of either document
    /// takes effect.
    pub secret_cache_ttl: Duration,
    /// `QUEUE_VISIBILITY_TIMEOUT_SECONDS`: the least time a claim is held.
    pub visibility_timeout: Duration,
    /// `EVENT_BUS_NAME`: the EventBridge bus every event is published to; empty: none.
    pub event_bus: Option<String>,
}

impl SubscriptionsConfig {
    /// Read every variable; the first missing or invalid one is the error.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(SubscriptionsConfig {
            document_secret_id: env.required("SUBSCRIPTIONS_SECRET_ID")?,
            secrets_secret_id: env.required("SUBSCRIPTION_SECRETS_SECRET_ID")?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            queue_url: okr_pipeline::config::optional(env, "QUEUE_URL"),
            secret_cache_ttl: secret_cache_ttl(env)?,
            visibility_timeout: visibility_timeout(env)?,
            event_bus: okr_pipeline::config::optional(env, "EVENT_BUS_NAME"),
        })
    }
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
    /// `QUEUE_URL`: the function's own queue, so a failed record waits its turn in the
    /// retry schedule (`ChangeMessageVisibility`); without it a failed record comes back
    /// after the visibility timeout.
    pub queue_url: Option<String>,
    /// `SLACK_DIGEST_THRESHOLD` (default 5): more notable events in a batch make a digest.
    pub digest_threshold: usize,
    /// `SECRET_CACHE_TTL_SECONDS` (default 300).
    pub secret_cache_ttl: Duration,
    /// `QUEUE_VISIBILITY_TIMEOUT_SECONDS`: the Slack queue's visibility timeout, the
    /// least time a claim is held.
    pub visibility_timeout: Duration,
    /// `DIRECTORY_TABLE`: the directory, for the owner's department in messages (none:
    /// messages name no department).
    pub directory_table: Option<String>,
}

impl SlackConfig {
    /// Read every variable; the first missing or invalid one is the error.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(SlackConfig {
            webhook_secret_id: env.required("SLACK_WEBHOOK_SECRET_ID")?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            notify: notify_rules(env),
            queue_url: okr_pipeline::config::optional(env, "QUEUE_URL"),
            digest_threshold: env.number_in(
                "SLACK_DIGEST_THRESHOLD",
                DEFAULT_DIGEST_THRESHOLD as u64,
                1..=1000,
                "a number of events from 1 to 1000",
            )? as usize,
            secret_cache_ttl: secret_cache_ttl(env)?,
            visibility_timeout: visibility_timeout(env)?,
            directory_table: okr_pipeline::config::optional(env, "DIRECTORY_TABLE"),
        })
    }
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
    /// `QUEUE_URL`, as for the Slack notifier.
    pub queue_url: Option<String>,
    /// `ALERT_PACE_TOLERANCE`, `ALERT_LOW_THRESHOLD`, `ALERT_LOW_AFTER`, `ALERT_DROP_POINTS`.
    pub thresholds: okr_core::rules::Thresholds,
    /// `ALERT_WINDOW_HOURS` (default 24): how often an alert that stays open is sent again.
    pub window: Duration,
    /// `SECRET_CACHE_TTL_SECONDS` (default 300).
    pub secret_cache_ttl: Duration,
    /// `QUEUE_VISIBILITY_TIMEOUT_SECONDS`: the alerts queue's visibility timeout, the
    /// least time a claim is held.
    pub visibility_timeout: Duration,
    /// `EMAIL_SENDER` and `EMAIL_RECIPIENTS_SECRET_ID`: alert emails, when both are set.
    pub email: Option<crate::config::EmailSource>,
}

impl AlertsConfig {
    /// The consumer's settings.
    pub fn settings(&self) -> okr_consumers::alerts::AlertSettings {
        okr_consumers::alerts::AlertSettings {
            thresholds: self.thresholds,
            window: self.window,
            claim_hold: self.visibility_timeout,
        }
    }

    /// Read every variable; at least one destination must be set.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let optional = |name: &'static str| (env.0)(name).filter(|v| !v.trim().is_empty());
        let slack_webhook_secret_id = optional("ALERTS_SLACK_WEBHOOK_SECRET_ID");
        let pagerduty_routing_key_secret_id = optional("PAGERDUTY_ROUTING_KEY_SECRET_ID");
        let email = crate::config::EmailSource::from_env(env)?;
        if slack_webhook_secret_id.is_none()
            && pagerduty_routing_key_secret_id.is_none()
            && email.is_none()
        {
            return Err(ConfigError::Missing(
                "ALERTS_SLACK_WEBHOOK_SECRET_ID, PAGERDUTY_ROUTING_KEY_SECRET_ID or EMAIL_SENDER",
            ));
        }
        Ok(AlertsConfig {
            slack_webhook_secret_id,
            pagerduty_routing_key_secret_id,
            pagerduty_events_url: okr_pipeline::config::events_url(
                "PAGERDUTY_EVENTS_URL",
                optional("PAGERDUTY_EVENTS_URL"),
            )?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            queue_url: optional("QUEUE_URL"),
            thresholds: thresholds(env)?,
            window: alert_window(env)?,
            secret_cache_ttl: secret_cache_ttl(env)?,
            visibility_timeout: visibility_timeout(env)?,
            email,
        })
    }
}

/// `ALERT_WINDOW_HOURS` (default 24): how often an alert that stays open is sent again.
fn alert_window<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(
        3600 * env.number_in(
            "ALERT_WINDOW_HOURS",
            24,
            1..=24 * 30,
            "a number of hours from 1 to 720",
        )?,
    ))
}

/// `ALERT_PACE_TOLERANCE`, `ALERT_LOW_THRESHOLD`, `ALERT_LOW_AFTER`, `ALERT_DROP_POINTS`:
/// the rules' settings, each a number from 0 to 100 (the alerts' defaults when unset).
fn thresholds<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Thresholds, ConfigError> {
    let defaults = Thresholds::default();
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
    Ok(Thresholds {
        pace_tolerance: points("ALERT_PACE_TOLERANCE", defaults.pace_tolerance)?,
        low_threshold: points("ALERT_LOW_THRESHOLD", defaults.low_threshold)?,
        low_after: points("ALERT_LOW_AFTER", defaults.low_after)?,
        drop_points: points("ALERT_DROP_POINTS", defaults.drop_points)?,
    })
}

/// The progress projection's configuration.
#[derive(Debug, Clone)]
pub struct ProjectionConfig {
    /// `PROGRESS_TABLE`: the DynamoDB table of the read model.
    pub table: String,
    /// `DIRECTORY_TABLE`: the DynamoDB table of the directory of people.
    pub directory_table: String,
    /// `QUEUE_URL`, as for the other consumers: where failed records' waits are set.
    pub queue_url: Option<String>,
    /// The alert rules' settings, as the progress alerts read them, so the read model
    /// shows the rules the alerts apply.
    pub thresholds: Thresholds,
}

impl ProjectionConfig {
    /// Read every variable.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(ProjectionConfig {
            table: env.required("PROGRESS_TABLE")?,
            directory_table: env.required("DIRECTORY_TABLE")?,
            queue_url: (env.0)("QUEUE_URL").filter(|v| !v.trim().is_empty()),
            thresholds: thresholds(env)?,
        })
    }
}

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

/// The consumers' clients: each call ends within [`CONSUMER_AWS_CALL`](okr_pipeline::idempotency::CONSUMER_AWS_CALL), well inside the
/// 60 s the consumer functions have.
pub fn consumer_aws_timeouts() -> aws_sdk_sqs::config::timeout::TimeoutConfig {
    aws_timeouts(
        Duration::from_secs(2),
        okr_pipeline::idempotency::CONSUMER_AWS_CALL,
    )
}

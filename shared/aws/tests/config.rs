//! Configuration from the environment: missing and out-of-range variables are named;
//! the logging filter keeps payload-logging libraries at INFO.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use okr_aws::config::{AlertsConfig, IngestConfig, SlackConfig, WarehouseConfig};
use okr_pipeline::config::{ConfigError, Env};

fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Env(move |name: &str| map.get(name).cloned())
}

const INGEST: [(&str, &str); 5] = [
    ("SIGNING_SECRET_ID", "okr-webhooks/signing"),
    ("WAREHOUSE_QUEUE_URL", "https://sqs/w"),
    ("SLACK_QUEUE_URL", "https://sqs/s"),
    ("ALERTS_QUEUE_URL", "https://sqs/a"),
    ("PROGRESS_QUEUE_URL", "https://sqs/p"),
];

#[test]
fn ingest_reads_its_variables_and_names_a_missing_one() {
    let config = IngestConfig::from_env(&env(&INGEST)).unwrap();
    assert_eq!(config.max_body_bytes, 262_144);
    assert_eq!(config.secret_cache_ttl.as_secs(), 300);
    assert!(config.notify.matches("objective.completed"));
    for missing in INGEST.map(|(name, _)| name) {
        let pairs: Vec<(&str, &str)> = INGEST
            .iter()
            .copied()
            .filter(|(n, _)| *n != missing)
            .collect();
        assert_eq!(
            IngestConfig::from_env(&env(&pairs)).unwrap_err(),
            ConfigError::Missing(missing)
        );
    }
    let missing = IngestConfig::from_env(&env(&INGEST[1..])).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "missing environment variable SIGNING_SECRET_ID"
    );
}

#[test]
fn out_of_range_numbers_are_refused_with_their_name() {
    for (name, value) in [
        ("MAX_BODY_BYTES", "18446744073709551615"),
        ("MAX_BODY_BYTES", "0"),
        ("MAX_BODY_BYTES", "600000"),
        ("MAX_BODY_BYTES", "lots"),
        ("SECRET_CACHE_TTL_SECONDS", "18446744073709551615"),
        ("SECRET_CACHE_TTL_SECONDS", "-5"),
    ] {
        let mut pairs = INGEST.to_vec();
        pairs.push((name, value));
        match IngestConfig::from_env(&env(&pairs)) {
            Err(ConfigError::Invalid { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name}={value}: {other:?}"),
        }
    }
    let mut pairs = INGEST.to_vec();
    pairs.extend([
        ("MAX_BODY_BYTES", "524288"),
        ("SLACK_NOTIFY_TYPES", "objective.*, *.created"),
    ]);
    let config = IngestConfig::from_env(&env(&pairs)).unwrap();
    assert_eq!(config.max_body_bytes, 524_288);
    assert!(config.notify.matches("objective.updated") && config.notify.matches("user.created"));
    assert!(!config.notify.matches("key_result.progress_updated"));
}

#[test]
fn consumers_read_their_variables() {
    assert_eq!(
        WarehouseConfig::from_env(&env(&[])).unwrap_err(),
        ConfigError::Missing("WAREHOUSE_URL")
    );
    assert!(matches!(
        WarehouseConfig::from_env(&env(&[("WAREHOUSE_URL", "ftp://x")])),
        Err(ConfigError::Invalid {
            name: "WAREHOUSE_URL",
            ..
        })
    ));
    let slack = [
        ("SLACK_WEBHOOK_SECRET_ID", "okr/slack"),
        ("IDEMPOTENCY_TABLE", "okr-idempotency"),
        ("QUEUE_VISIBILITY_TIMEOUT_SECONDS", "370"),
    ];
    let config = SlackConfig::from_env(&env(&slack)).unwrap();
    assert_eq!(config.digest_threshold, 5);
    assert_eq!(config.visibility_timeout.as_secs(), 370);
    assert_eq!(
        SlackConfig::from_env(&env(&slack[1..])).unwrap_err(),
        ConfigError::Missing("SLACK_WEBHOOK_SECRET_ID")
    );
    assert_eq!(
        SlackConfig::from_env(&env(&slack[..2])).unwrap_err(),
        ConfigError::Missing("QUEUE_VISIBILITY_TIMEOUT_SECONDS")
    );
    let mut too_long = slack;
    too_long[2].1 = "43201";
    assert!(matches!(
        SlackConfig::from_env(&env(&too_long)),
        Err(ConfigError::Invalid {
            name: "QUEUE_VISIBILITY_TIMEOUT_SECONDS",
            ..
        })
    ));
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn trace_logging_never_lets_the_runtime_log_raw_events() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(okr_pipeline::telemetry::filter(
            Some("trace"),
            Some("lambda_runtime=trace"),
        ))
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::trace!(target: "lambda_runtime::layers::api_response", "raw JSON event received from Lambda");
        tracing::trace!(target: "aws_smithy_runtime::client", "response body");
        tracing::trace!(target: "okr_consumers::ingest", "our own trace line");
        tracing::info!(target: "lambda_runtime", "runtime info line");
    });
    let output = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(output.contains("our own trace line"), "{output}");
    assert!(output.contains("runtime info line"), "{output}");
    assert!(!output.contains("raw JSON event"), "{output}");
    assert!(!output.contains("response body"), "{output}");
}

#[test]
fn alerts_need_a_destination_and_read_their_thresholds() {
    let table = ("IDEMPOTENCY_TABLE", "okr-idempotency");
    let visibility = ("QUEUE_VISIBILITY_TIMEOUT_SECONDS", "185");
    assert_eq!(
        AlertsConfig::from_env(&env(&[table])).unwrap_err(),
        ConfigError::Missing(
            "ALERTS_SLACK_WEBHOOK_SECRET_ID, PAGERDUTY_ROUTING_KEY_SECRET_ID or EMAIL_SENDER"
        )
    );
    let config = AlertsConfig::from_env(&env(&[
        table,
        visibility,
        ("PAGERDUTY_ROUTING_KEY_SECRET_ID", "okr/pd"),
    ]))
    .unwrap();
    assert_eq!(config.visibility_timeout.as_secs(), 185);
    assert_eq!(
        config.pagerduty_events_url,
        "https://events.pagerduty.com/v2/enqueue"
    );
    assert_eq!(config.window.as_secs(), 24 * 3600);
    assert_eq!(config.thresholds.low_threshold, 30.0);
    let config = AlertsConfig::from_env(&env(&[
        table,
        visibility,
        ("ALERTS_SLACK_WEBHOOK_SECRET_ID", "okr/alerts"),
        ("ALERT_LOW_THRESHOLD", "40"),
        ("ALERT_WINDOW_HOURS", "6"),
    ]))
    .unwrap();
    assert_eq!(
        (config.thresholds.low_threshold, config.window.as_secs()),
        (40.0, 6 * 3600)
    );
    assert!(matches!(
        AlertsConfig::from_env(&env(&[
            table,
            visibility,
            ("PAGERDUTY_ROUTING_KEY_SECRET_ID", "k"),
            ("ALERT_DROP_POINTS", "150")
        ])),
        Err(ConfigError::Invalid {
            name: "ALERT_DROP_POINTS",
            ..
        })
    ));
}

#[test]
fn a_pagerduty_url_that_can_never_be_called_fails_the_start_naming_the_variable() {
    let config = |url: &str| {
        AlertsConfig::from_env(&env(&[
            ("IDEMPOTENCY_TABLE", "t"),
            ("QUEUE_VISIBILITY_TIMEOUT_SECONDS", "185"),
            ("PAGERDUTY_ROUTING_KEY_SECRET_ID", "k"),
            ("PAGERDUTY_EVENTS_URL", url),
        ]))
    };
    for bad in [
        "http://events.example.com/v2/enqueue",
        "http://localhost:5001/v2/enqueue",
        "ftp://127.0.0.1/x",
        "events.pagerduty.com/v2/enqueue",
    ] {
        let error = config(bad).unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::Unusable {
                    name: "PAGERDUTY_EVENTS_URL",
                    ..
                }
            ),
            "{bad}: {error:?}"
        );
        let text = error.to_string();
        assert!(
            text.starts_with("PAGERDUTY_EVENTS_URL must be an https:// URL"),
            "{text}"
        );
        assert!(!text.contains(bad), "{text}");
    }
    for good in [
        "https://events.eu.pagerduty.com/v2/enqueue",
        "http://127.0.0.1:5001/v2/enqueue",
        "http://[::1]:5001/v2/enqueue",
    ] {
        assert_eq!(config(good).unwrap().pagerduty_events_url, good);
    }
}

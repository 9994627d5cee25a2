//! okr-webhooks: verify webhooks from OKR and HR tools, normalize them into one event
//! shape, and route them to Slack, a data warehouse and progress alerts.
//!
//! This crate holds all the logic; the Lambda functions and the `okr-webhooks` command
//! are thin wiring around it. Each outside thing is a small trait (port) with an AWS
//! adapter and an in-memory one: [`secrets::SecretStore`], [`queue::EventQueue`],
//! [`metrics::MetricsSink`], [`idempotency::IdempotencyStore`], [`warehouse::ObjectSink`].

pub mod alerts;
pub mod batch;
pub mod breaker;
pub mod config;
pub mod dashboard;
pub mod email;
pub mod event;
pub mod idempotency;
pub mod ingest;
pub mod local;
pub mod metrics;
pub mod normalize;
pub mod outbound;
pub mod progress;
pub mod queue;
pub mod replay;
pub mod retry;
pub mod routing;
pub mod secrets;
pub mod signature;
pub mod slack;
pub mod source;
pub mod telemetry;
pub mod warehouse;

pub use event::{Event, SCHEMA_V1};
pub use normalize::{NormalizeError, normalize};
pub use secrets::SigningSecret;
pub use signature::{VerifyError, sign, verify};
pub use source::Source;

/// An error and its causes on one line (`a: b: c`), for logs. AWS SDK errors show only
/// "service error" at the top; the cause says which.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

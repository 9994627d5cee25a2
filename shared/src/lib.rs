//! okr-webhooks: verify webhooks from OKR and HR tools, normalize them into one event
//! shape, and route them to Slack, a data warehouse and progress alerts.
//!
//! This crate holds all the logic; the Lambda functions and the `okr-webhooks` command
//! are thin wiring around it. Each outside thing is a small trait (port) with an AWS
//! adapter and an in-memory one: [`secrets::SecretStore`], [`queue::EventQueue`],
//! [`metrics::MetricsSink`].

pub mod config;
pub mod event;
pub mod ingest;
pub mod metrics;
pub mod normalize;
pub mod queue;
pub mod routing;
pub mod secret;
pub mod secrets;
pub mod signature;
pub mod source;

pub use event::{Event, SCHEMA_V1};
pub use normalize::{NormalizeError, normalize};
pub use secret::SigningSecret;
pub use signature::{VerifyError, sign, verify};
pub use source::Source;

//! okr-webhooks: verify webhooks from OKR and HR tools, normalize them into one event
//! shape, and route them to Slack, a data warehouse and progress alerts.
//!
//! This crate holds all the logic; the Lambda functions and the `okr-webhooks` command
//! are thin wiring around it.

pub mod event;
pub mod normalize;
pub mod secret;
pub mod signature;
pub mod source;

pub use event::{Event, SCHEMA_V1};
pub use normalize::{NormalizeError, normalize};
pub use secret::SigningSecret;
pub use signature::{VerifyError, sign, verify};
pub use source::Source;

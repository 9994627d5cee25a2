//! The core of okr-webhooks: the providers, their signatures, and the one normalized
//! event every delivery becomes. Pure logic: no async runtime, no AWS, no storage.

pub mod callable;
pub mod endpoints;
pub mod event;
pub mod json;
pub mod normalize;
pub mod parts;
pub mod person;
pub mod providers;
pub mod routing;
pub mod rules;
pub mod scheme;
pub mod signature;
pub mod signing;
pub mod source;
pub mod subscriptions;

pub use event::{Event, SCHEMA_V1};
pub use normalize::{NormalizeError, normalize};
pub use signature::{VerifyError, sign, verify};
pub use signing::SigningSecret;
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

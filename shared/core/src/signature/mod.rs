//! Signature verification and signing for every source (docs/providers.md).
//!
//! Every scheme is an HMAC-SHA256 over the raw body bytes (some with a delivery id and
//! a timestamp before them); they differ in the header, the encoding, and how the key is
//! derived from the secret, which each provider's module says
//! ([`crate::providers::Provider`]). Verification compares in constant time
//! ([`hmac::Mac::verify_slice`]), looks headers up case-insensitively
//! ([`http::HeaderMap`]), and accepts a delivery when any configured secret matches
//! (rotation).

mod diagnose;

pub use crate::scheme::{Cause, TIMESTAMP_TOLERANCE_SECS, VerifyError};
pub use diagnose::likely_causes;

use http::HeaderMap;
use time::OffsetDateTime;

use crate::providers::provider;
use crate::signing::SigningSecret;
use crate::source::Source;

/// Check that `body`, received with `headers`, was signed by `source` with one of
/// `secrets`. `now` is the clock for signed timestamps.
pub fn verify(
    source: Source,
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), VerifyError> {
    let keys = usable_keys(source, secrets)?;
    let delivery = provider(source).delivery(headers, now)?;
    if delivery.signed_by_any(&keys, body) {
        Ok(())
    } else {
        Err(VerifyError::WrongSignature)
    }
}

/// The headers `source` sends for `body` signed with `secret`, as (name, value).
///
/// `id` and `timestamp` enter only the schemes that sign them (as
/// `webhook-id` and `webhook-timestamp`); the others sign the body alone.
pub fn sign(
    source: Source,
    secret: &SigningSecret,
    body: &[u8],
    id: &str,
    timestamp: i64,
) -> Result<Vec<(&'static str, String)>, VerifyError> {
    let key = key_bytes(source, secret).map_err(VerifyError::UnusableSecret)?;
    Ok(provider(source).sign(&key, body, id, timestamp))
}

/// The HMAC keys of every usable secret; an error when none is usable.
fn usable_keys(source: Source, secrets: &[SigningSecret]) -> Result<Vec<Vec<u8>>, VerifyError> {
    let mut first_problem = None;
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|secret| match key_bytes(source, secret) {
            Ok(key) => Some(key),
            Err(problem) => {
                first_problem.get_or_insert(problem);
                None
            }
        })
        .collect();
    match (keys.is_empty(), first_problem) {
        (false, _) => Ok(keys),
        (true, Some(problem)) => Err(VerifyError::UnusableSecret(problem)),
        (true, None) => Err(VerifyError::NoSecret),
    }
}

/// The HMAC key `source` derives from `secret`.
pub(crate) fn key_bytes(source: Source, secret: &SigningSecret) -> Result<Vec<u8>, &'static str> {
    let text = secret.expose();
    if text.is_empty() {
        return Err("the secret is empty");
    }
    provider(source).key(text)
}

/// Verify with raw HMAC keys instead of secrets; the diagnosis tries alternative keys.
pub(crate) fn verify_with_keys(
    source: Source,
    keys: &[Vec<u8>],
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> bool {
    provider(source)
        .delivery(headers, now)
        .is_ok_and(|delivery| delivery.signed_by_any(keys, body))
}

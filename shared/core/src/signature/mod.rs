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

use crate::providers::Provider;
use crate::signing::SigningSecret;

/// Check that `body`, received with `headers`, was signed as `provider` signs with one
/// of `secrets`. `now` is the clock for signed timestamps.
pub fn verify(
    provider: &dyn Provider,
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), VerifyError> {
    let keys = usable_keys(provider, secrets)?;
    let delivery = provider.delivery(headers, body, now)?;
    if delivery.signed_by_any(&keys, body) {
        Ok(())
    } else {
        Err(VerifyError::WrongSignature)
    }
}

/// The headers `provider` sends for `body` signed with `secret`, as (name, value).
///
/// `id` and `timestamp` enter only the schemes that sign them (as
/// `webhook-id` and `webhook-timestamp`); the others sign the body alone.
pub fn sign(
    provider: &dyn Provider,
    secret: &SigningSecret,
    body: &[u8],
    id: &str,
    timestamp: i64,
) -> Result<Vec<(&'static str, String)>, VerifyError> {
    let key = key_bytes(provider, secret).map_err(VerifyError::UnusableSecret)?;
    Ok(provider.sign(&key, body, id, timestamp))
}

/// Signature headers as (name, value).
pub type SignatureHeaders = Vec<(&'static str, String)>;

/// A signed delivery: its headers, and its body (the same bytes, unless the scheme
/// carries its signature in the body, which then holds it).
pub fn sign_delivery(
    provider: &dyn Provider,
    secret: &SigningSecret,
    body: &[u8],
    id: &str,
    timestamp: i64,
) -> Result<(SignatureHeaders, Vec<u8>), VerifyError> {
    let key = key_bytes(provider, secret).map_err(VerifyError::UnusableSecret)?;
    let body = provider
        .signed_body(&key, body)
        .unwrap_or_else(|| body.to_vec());
    let headers = provider.sign(&key, &body, id, timestamp);
    Ok((headers, body))
}

/// The HMAC keys of every usable secret; an error when none is usable.
fn usable_keys(
    provider: &dyn Provider,
    secrets: &[SigningSecret],
) -> Result<Vec<Vec<u8>>, VerifyError> {
    let mut first_problem = None;
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|secret| match key_bytes(provider, secret) {
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

/// The HMAC key `provider` derives from `secret`.
pub(crate) fn key_bytes(
    provider: &dyn Provider,
    secret: &SigningSecret,
) -> Result<Vec<u8>, &'static str> {
    let text = secret.expose();
    if text.is_empty() {
        return Err("the secret is empty");
    }
    provider.key(text)
}

/// Verify with raw HMAC keys instead of secrets; the diagnosis tries alternative keys.
pub(crate) fn verify_with_keys(
    provider: &dyn Provider,
    keys: &[Vec<u8>],
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> bool {
    provider
        .delivery(headers, body, now)
        .is_ok_and(|delivery| delivery.signed_by_any(keys, body))
}

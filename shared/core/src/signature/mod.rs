//! Signature verification and signing for every source (docs/providers.md).
//!
//! Every scheme is an HMAC-SHA256 over the raw body bytes; they differ in the header,
//! the encoding, and how the key is derived from the secret. Verification compares in
//! constant time ([`hmac::Mac::verify_slice`]), looks headers up case-insensitively
//! ([`http::HeaderMap`]), and accepts a delivery when any configured secret matches
//! (rotation).

mod delivery;
mod diagnose;

use delivery::Delivery;
pub use diagnose::{Cause, likely_causes};

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;
use time::OffsetDateTime;

use crate::signing::SigningSecret;
use crate::source::Source;

type HmacSha256 = Hmac<Sha256>;

/// Standard Webhooks: how far a `webhook-timestamp` may be from now, either way.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// Peoplelogic's header.
pub const PEOPLELOGIC_HEADER: &str = "X-Signature";
/// PeopleForce's header.
pub const PEOPLEFORCE_HEADER: &str = "X-PeopleForce-Signature";
/// PERSCOM's header.
pub const PERSCOM_HEADER: &str = "Signature";
/// Standard Webhooks: the delivery id.
pub const STANDARD_ID_HEADER: &str = "webhook-id";
/// Standard Webhooks: the Unix timestamp in seconds.
pub const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Standard Webhooks: space-separated `v1,<base64>` signatures.
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";

const PEOPLEFORCE_PREFIX: &str = "sha256=";
const STANDARD_SECRET_PREFIX: &str = "whsec_";
const MAC_LEN: usize = 32;

/// Base64 with the standard alphabet, padding optional on input.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a delivery is not accepted as genuine. The texts name headers and reasons,
/// never a secret or the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but cannot be read as the scheme says.
    #[error("malformed header {header}: {reason}")]
    MalformedHeader {
        /// The header's name.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The header is well formed but no configured secret produces it.
    #[error("signature does not match")]
    WrongSignature,
    /// Standard Webhooks: the timestamp is more than five minutes from now.
    #[error(
        "timestamp is {} s in the {}; the tolerance is {TIMESTAMP_TOLERANCE_SECS} s",
        skew.unsigned_abs(),
        if *skew < 0 { "past" } else { "future" }
    )]
    TimestampOutOfTolerance {
        /// Timestamp minus now, in seconds.
        skew: i64,
    },
    /// No configured secret can be turned into a key.
    #[error("unusable secret: {0}")]
    UnusableSecret(&'static str),
    /// The source has no secret configured: it accepts nothing.
    #[error("no secret is configured for this source")]
    NoSecret,
}

impl VerifyError {
    /// A stable name for the kind of failure, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) => "missing_header",
            VerifyError::MalformedHeader { .. } => "malformed_header",
            VerifyError::WrongSignature => "wrong_signature",
            VerifyError::TimestampOutOfTolerance { .. } => "timestamp_out_of_tolerance",
            VerifyError::UnusableSecret(_) => "unusable_secret",
            VerifyError::NoSecret => "no_secret",
        }
    }
}

/// Check that `body`, received with `headers`, was signed by `source` with one of
/// `secrets`. `now` is the clock for the Standard Webhooks timestamp check.
pub fn verify(
    source: Source,
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), VerifyError> {
    let keys = usable_keys(source, secrets)?;
    let delivery = Delivery::parse(source, headers, now)?;
    if delivery.signed_by_any(&keys, body) {
        Ok(())
    } else {
        Err(VerifyError::WrongSignature)
    }
}

/// The headers `source` sends for `body` signed with `secret`, as (name, value).
///
/// `id` and `timestamp` enter only Standard Webhooks signatures (`webhook-id`,
/// `webhook-timestamp`); the other schemes sign the body alone.
pub fn sign(
    source: Source,
    secret: &SigningSecret,
    body: &[u8],
    id: &str,
    timestamp: i64,
) -> Result<Vec<(&'static str, String)>, VerifyError> {
    let key = key_bytes(source, secret).map_err(VerifyError::UnusableSecret)?;
    let timestamp_text = timestamp.to_string();
    let parts: Vec<&[u8]> = match source {
        Source::Standard => vec![id.as_bytes(), b".", timestamp_text.as_bytes(), b".", body],
        _ => vec![body],
    };
    let tag = mac_over(&key, &parts).finalize().into_bytes();
    Ok(match source {
        Source::Peoplelogic => vec![(PEOPLELOGIC_HEADER, general_purpose::STANDARD.encode(tag))],
        Source::Peopleforce => vec![(
            PEOPLEFORCE_HEADER,
            format!("{PEOPLEFORCE_PREFIX}{}", hex::encode(tag)),
        )],
        Source::Perscom => vec![(PERSCOM_HEADER, hex::encode(tag))],
        Source::Standard => vec![
            (STANDARD_ID_HEADER, id.to_owned()),
            (STANDARD_TIMESTAMP_HEADER, timestamp_text),
            (
                STANDARD_SIGNATURE_HEADER,
                format!("v1,{}", general_purpose::STANDARD.encode(tag)),
            ),
        ],
    })
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
pub fn key_bytes(source: Source, secret: &SigningSecret) -> Result<Vec<u8>, &'static str> {
    let text = secret.expose();
    if text.is_empty() {
        return Err("the secret is empty");
    }
    match source {
        Source::Peoplelogic => BASE64
            .decode(text)
            .map_err(|_| "a Peoplelogic secret is the secretBase64 text, and this is not base64"),
        Source::Peopleforce | Source::Perscom => Ok(text.as_bytes().to_vec()),
        Source::Standard => {
            let encoded = text.strip_prefix(STANDARD_SECRET_PREFIX).unwrap_or(text);
            match BASE64.decode(encoded) {
                Ok(key) if !key.is_empty() => Ok(key),
                _ => {
                    Err("a Standard Webhooks secret is whsec_ followed by base64, and this is not")
                }
            }
        }
    }
}

fn mac_over(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Verify with raw HMAC keys instead of secrets; the diagnosis tries alternative keys.
pub fn verify_with_keys(
    source: Source,
    keys: &[Vec<u8>],
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> bool {
    Delivery::parse(source, headers, now).is_ok_and(|delivery| delivery.signed_by_any(keys, body))
}

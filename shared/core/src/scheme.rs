//! What every signature scheme is built from: the headers a delivery carries its
//! signature in, the MAC over the signed bytes, and the errors and diagnoses a failed
//! check gives. Each provider's module (`crate::providers`) puts these together.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far a signed timestamp may be from now, either way.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// The length of an HMAC-SHA256.
pub const MAC_LEN: usize = 32;

/// Base64 with the standard alphabet, padding optional on input.
pub const BASE64: GeneralPurpose = GeneralPurpose::new(
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
    /// A signed timestamp is more than five minutes from now.
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

/// The signature material read from one delivery's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<'h> {
    /// What the MAC covers before the body, in order (nothing for a MAC over the body
    /// alone).
    pub signed_before_body: Vec<&'h [u8]>,
    /// The candidate MACs (a sender may list several).
    pub signatures: Vec<Vec<u8>>,
}

impl<'h> Delivery<'h> {
    /// One MAC over the body alone.
    pub fn over_body(signature: Vec<u8>) -> Self {
        Delivery {
            signed_before_body: Vec::new(),
            signatures: vec![signature],
        }
    }

    /// Whether any key's MAC equals any listed signature (constant time).
    pub fn signed_by_any(&self, keys: &[Vec<u8>], body: &[u8]) -> bool {
        let mut parts = self.signed_before_body.clone();
        parts.push(body);
        keys.iter().any(|key| {
            let mac = mac_over(key, &parts);
            self.signatures
                .iter()
                .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
        })
    }
}

/// The HMAC-SHA256 of `parts` in order, with `key`.
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    mac_over(key, parts).finalize().into_bytes().into()
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

/// One possible reason for a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// True when a repaired copy of the input verifies, so this is the reason.
    pub confirmed: bool,
    /// What to check or change.
    pub text: String,
}

impl Cause {
    /// A cause a repaired copy of the input proved.
    pub fn confirmed(text: impl Into<String>) -> Self {
        Cause {
            confirmed: true,
            text: text.into(),
        }
    }

    /// A cause worth checking.
    pub fn possible(text: impl Into<String>) -> Self {
        Cause {
            confirmed: false,
            text: text.into(),
        }
    }
}

/// The one value of `name`; missing, repeated, empty or non-ASCII values are errors.
pub fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<&'h str, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(VerifyError::MissingHeader(name))?;
    if values.next().is_some() {
        return Err(VerifyError::MalformedHeader {
            header: name,
            reason: "sent more than once",
        });
    }
    let value = value
        .to_str()
        .map_err(|_| VerifyError::MalformedHeader {
            header: name,
            reason: "not visible ASCII",
        })?
        .trim();
    if value.is_empty() {
        return Err(VerifyError::MalformedHeader {
            header: name,
            reason: "empty",
        });
    }
    Ok(value)
}

/// A 32-byte MAC written in base64.
pub fn decode_base64_mac(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text).ok().filter(|mac| mac.len() == MAC_LEN)
}

/// A 32-byte MAC written in hex.
pub fn decode_hex_mac(text: &str) -> Option<Vec<u8>> {
    hex::decode(text).ok().filter(|mac| mac.len() == MAC_LEN)
}

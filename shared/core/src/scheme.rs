//! What every signature scheme is built from: the headers a delivery carries its
//! signature in, the MAC over the signed bytes, and the errors and diagnoses a failed
//! check gives. Each provider's module (`crate::providers`) puts these together.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use std::borrow::Cow;

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha1::Sha1;
use sha2::{Sha256, Sha512};

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
    /// A body field the scheme reads (a JSON Pointer) is absent or not text.
    #[error("missing body field {0}")]
    MissingField(&'static str),
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
    /// A signed timestamp is further from now than the scheme's tolerance.
    #[error(
        "timestamp is {} s in the {}; the tolerance is {tolerance} s",
        skew.unsigned_abs(),
        if *skew < 0 { "past" } else { "future" }
    )]
    TimestampOutOfTolerance {
        /// Timestamp minus now, in seconds.
        skew: i64,
        /// The scheme's tolerance, in seconds.
        tolerance: i64,
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
            VerifyError::MissingField(_) => "missing_field",
            VerifyError::MalformedHeader { .. } => "malformed_header",
            VerifyError::WrongSignature => "wrong_signature",
            VerifyError::TimestampOutOfTolerance { .. } => "timestamp_out_of_tolerance",
            VerifyError::UnusableSecret(_) => "unusable_secret",
            VerifyError::NoSecret => "no_secret",
        }
    }

    /// A timestamp `skew` seconds from now, refused under the usual five minutes.
    pub fn stale(skew: i64) -> VerifyError {
        VerifyError::TimestampOutOfTolerance {
            skew,
            tolerance: TIMESTAMP_TOLERANCE_SECS,
        }
    }
}

/// The hash under the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1 (20 bytes).
    Sha1,
    /// HMAC-SHA256 (32 bytes).
    Sha256,
    /// HMAC-SHA512 (64 bytes).
    Sha512,
}

impl Algorithm {
    /// The MAC's length in bytes.
    pub fn mac_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    /// Its name in a scheme: `sha1`, `sha256`, `sha512`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

/// One part of what a MAC covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'h> {
    /// Bytes read from the delivery (a header, a body field) or written in the scheme.
    Bytes(Cow<'h, [u8]>),
    /// The body, as received.
    Body,
}

/// The signature material read from one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<'h> {
    /// The hash under the HMAC.
    pub algorithm: Algorithm,
    /// What the MAC covers, in order.
    pub signed: Vec<Piece<'h>>,
    /// The candidate MACs (a sender may list several).
    pub signatures: Vec<Vec<u8>>,
}

impl<'h> Delivery<'h> {
    /// One HMAC-SHA256 over the body alone.
    pub fn over_body(signature: Vec<u8>) -> Self {
        Delivery {
            algorithm: Algorithm::Sha256,
            signed: vec![Piece::Body],
            signatures: vec![signature],
        }
    }

    /// Whether any key's MAC equals any listed signature (constant time).
    pub fn signed_by_any(&self, keys: &[Vec<u8>], body: &[u8]) -> bool {
        let parts: Vec<&[u8]> = self
            .signed
            .iter()
            .map(|piece| match piece {
                Piece::Bytes(bytes) => bytes.as_ref(),
                Piece::Body => body,
            })
            .collect();
        keys.iter().any(|key| {
            let mac = mac_with(self.algorithm, key, &parts);
            self.signatures.iter().any(|candidate| {
                bool::from(subtle::ConstantTimeEq::ct_eq(&mac[..], &candidate[..]))
            })
        })
    }
}

/// The HMAC-SHA256 of `parts` in order, with `key`.
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    let mut out = [0; MAC_LEN];
    out.copy_from_slice(&mac_with(Algorithm::Sha256, key, parts));
    out
}

/// The HMAC of `parts` in order, with `key`, under `algorithm`.
pub fn mac_with(algorithm: Algorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <M as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Algorithm::Sha1 => run::<Hmac<Sha1>>(key, parts),
        Algorithm::Sha256 => run::<Hmac<Sha256>>(key, parts),
        Algorithm::Sha512 => run::<Hmac<Sha512>>(key, parts),
    }
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

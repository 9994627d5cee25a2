//! Reading the signature material from a delivery's headers, per scheme.

use base64::Engine;
use hmac::Mac;
use http::HeaderMap;
use time::OffsetDateTime;

use crate::signature::{
    BASE64, MAC_LEN, PEOPLEFORCE_HEADER, PEOPLEFORCE_PREFIX, PEOPLELOGIC_HEADER, PERSCOM_HEADER,
    STANDARD_ID_HEADER, STANDARD_SIGNATURE_HEADER, STANDARD_TIMESTAMP_HEADER,
    TIMESTAMP_TOLERANCE_SECS, VerifyError, mac_over,
};
use crate::source::Source;

/// The signature material read from one delivery's headers.
pub(super) struct Delivery<'h> {
    /// Standard Webhooks: `webhook-id` and `webhook-timestamp` as sent.
    pub(super) standard: Option<(&'h str, &'h str)>,
    /// The candidate MACs (Standard Webhooks may list several).
    pub(super) signatures: Vec<Vec<u8>>,
}

impl<'h> Delivery<'h> {
    pub(super) fn parse(
        source: Source,
        headers: &'h HeaderMap,
        now: OffsetDateTime,
    ) -> Result<Self, VerifyError> {
        let signature = match source {
            Source::Standard => return Delivery::standard(headers, now),
            Source::Peoplelogic => {
                let value = single_header(headers, PEOPLELOGIC_HEADER)?;
                decode_base64_mac(value).ok_or(VerifyError::MalformedHeader {
                    header: PEOPLELOGIC_HEADER,
                    reason: "expected the base64 of a 32-byte HMAC-SHA256",
                })?
            }
            Source::Peopleforce => {
                let value = single_header(headers, PEOPLEFORCE_HEADER)?;
                let digest =
                    value
                        .strip_prefix(PEOPLEFORCE_PREFIX)
                        .ok_or(VerifyError::MalformedHeader {
                            header: PEOPLEFORCE_HEADER,
                            reason: "expected sha256=<hex digest>",
                        })?;
                decode_hex_mac(digest).ok_or(VerifyError::MalformedHeader {
                    header: PEOPLEFORCE_HEADER,
                    reason: "expected 64 hex digits after sha256=",
                })?
            }
            Source::Perscom => {
                let value = single_header(headers, PERSCOM_HEADER)?;
                if value.starts_with(PEOPLEFORCE_PREFIX) {
                    return Err(VerifyError::MalformedHeader {
                        header: PERSCOM_HEADER,
                        reason: "PERSCOM signatures carry no sha256= prefix",
                    });
                }
                decode_hex_mac(value).ok_or(VerifyError::MalformedHeader {
                    header: PERSCOM_HEADER,
                    reason: "expected 64 hex digits",
                })?
            }
        };
        Ok(Delivery {
            standard: None,
            signatures: vec![signature],
        })
    }

    /// Standard Webhooks: the id, a timestamp within the tolerance of `now`, and one or
    /// more `v1,<base64>` signatures.
    fn standard(headers: &'h HeaderMap, now: OffsetDateTime) -> Result<Self, VerifyError> {
        let id = single_header(headers, STANDARD_ID_HEADER)?;
        let timestamp_text = single_header(headers, STANDARD_TIMESTAMP_HEADER)?;
        let timestamp: i64 = timestamp_text
            .parse()
            .map_err(|_| VerifyError::MalformedHeader {
                header: STANDARD_TIMESTAMP_HEADER,
                reason: "expected a Unix timestamp in seconds",
            })?;
        let skew = timestamp.saturating_sub(now.unix_timestamp());
        if timestamp.abs_diff(now.unix_timestamp()) > TIMESTAMP_TOLERANCE_SECS.unsigned_abs() {
            return Err(VerifyError::TimestampOutOfTolerance { skew });
        }
        let value = single_header(headers, STANDARD_SIGNATURE_HEADER)?;
        let signatures: Vec<Vec<u8>> = value
            .split_ascii_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(decode_base64_mac)
            .collect();
        if signatures.is_empty() {
            return Err(VerifyError::MalformedHeader {
                header: STANDARD_SIGNATURE_HEADER,
                reason: "expected one or more v1,<base64> signatures",
            });
        }
        Ok(Delivery {
            standard: Some((id, timestamp_text)),
            signatures,
        })
    }

    /// Whether any key's MAC over `body` equals any listed signature (constant time).
    pub(super) fn signed_by_any(&self, keys: &[Vec<u8>], body: &[u8]) -> bool {
        let parts = self.signed_parts(body);
        keys.iter().any(|key| {
            let mac = mac_over(key, &parts);
            self.signatures
                .iter()
                .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
        })
    }

    /// The bytes the MAC covers, in order.
    fn signed_parts<'b>(&self, body: &'b [u8]) -> Vec<&'b [u8]>
    where
        'h: 'b,
    {
        match self.standard {
            Some((id, timestamp)) => {
                vec![id.as_bytes(), b".", timestamp.as_bytes(), b".", body]
            }
            None => vec![body],
        }
    }
}

/// The one value of `name`; missing, repeated, empty or non-ASCII values are errors.
pub(super) fn single_header<'h>(
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

pub(super) fn decode_base64_mac(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text).ok().filter(|mac| mac.len() == MAC_LEN)
}

pub(super) fn decode_hex_mac(text: &str) -> Option<Vec<u8>> {
    hex::decode(text).ok().filter(|mac| mac.len() == MAC_LEN)
}

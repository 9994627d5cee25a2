//! Likely causes of a failed verification, for people debugging a webhook by hand
//! (`okr-webhooks verify`). Never used on the ingest path: telling a caller why its
//! forgery failed would help the forger.

use std::io;

use http::HeaderMap;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter, Serializer};
use time::OffsetDateTime;

use crate::providers::Provider;
use crate::scheme::{Cause, VerifyError};
use crate::signature::{key_bytes, verify_with_keys};
use crate::signing::SigningSecret;

/// The likely causes of `error`, confirmed ones first. Each confirmation is a real
/// verification of a repaired copy (body without a final newline, re-serialized JSON,
/// trimmed secret, a differently derived key), so a hint never guesses when it can check.
pub fn likely_causes(
    provider: &dyn Provider,
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
    error: &VerifyError,
) -> Vec<Cause> {
    let mut causes = match error {
        VerifyError::WrongSignature => wrong_signature(provider, secrets, headers, body, now),
        VerifyError::MalformedHeader { header, .. } => {
            malformed(provider, secrets, headers, body, now, header)
        }
        VerifyError::MissingHeader(header) => vec![Cause::possible(format!(
            "{name} deliveries carry the {header} header: check the delivery came from {name} \
             (or choose the endpoint it came from) and that a proxy did not drop the header",
            name = provider.display_name()
        ))],
        VerifyError::MissingField(field) => vec![Cause::possible(format!(
            "{name} deliveries carry the body field {field}: check the delivery came from {name} \
             and that the body is the one it sent",
            name = provider.display_name()
        ))],
        VerifyError::TimestampOutOfTolerance { tolerance, .. } => vec![Cause::possible(format!(
            "the delivery is older than the scheme's tolerance ({tolerance} s: a stored copy or a \
             replay) or a clock is off; to check a stored delivery, pass its time with --at"
        ))],
        VerifyError::UnusableSecret(_) => {
            vec![Cause::possible(provider.secret_advice())]
        }
        VerifyError::NoSecret => vec![Cause::possible("pass the secret with --secret")],
    };
    causes.sort_by_key(|cause| !cause.confirmed);
    causes
}

fn wrong_signature(
    provider: &dyn Provider,
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Vec<Cause> {
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|secret| key_bytes(provider, secret).ok())
        .collect();
    let signed =
        |keys: &[Vec<u8>], body: &[u8]| verify_with_keys(provider, keys, headers, body, now);
    let mut causes = body_causes(&keys, body, &signed);
    causes.extend(secret_causes(provider, secrets, body, &signed));
    causes
}

/// Whether these keys sign this body, for the delivery's headers.
type Signed<'a> = &'a dyn Fn(&[Vec<u8>], &[u8]) -> bool;

/// What was done to the body after signing, as far as trying can tell.
fn body_causes(keys: &[Vec<u8>], body: &[u8], signed: Signed<'_>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let trimmed = body.trim_ascii();
    if trimmed.len() != body.len() && signed(keys, trimmed) {
        causes.push(Cause::confirmed(
            "the body has leading or trailing whitespace (often a final newline added by an \
             editor or `echo`) that was not signed: use the bytes exactly as received",
        ));
    }
    if body.windows(2).any(|pair| pair == b"\r\n") {
        let unix: Vec<u8> = String::from_utf8_lossy(body)
            .replace("\r\n", "\n")
            .into_bytes();
        if signed(keys, &unix) {
            causes.push(Cause::confirmed(
                "the body's line endings were changed from \\n to \\r\\n after signing",
            ));
        }
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        let reserialized = [
            reserialize(&json, CompactFormatter),
            reserialize(&json, PrettyFormatter::new()),
            reserialize(&json, PythonFormatter),
        ];
        if reserialized
            .iter()
            .flatten()
            .any(|copy| copy != body && copy != trimmed && signed(keys, copy))
        {
            causes.push(Cause::confirmed(
                "the JSON body was re-serialized (spacing or indentation changed) after signing: \
                 verify the raw body bytes, not a parsed and re-encoded copy",
            ));
        }
    }
    causes.push(Cause::possible(
        "the body was changed after signing: re-serialized JSON, whitespace or line endings, or \
         character escaping; a signature covers the exact bytes",
    ));
    causes
}

/// What is wrong with the secret, as far as trying can tell.
fn secret_causes(
    provider: &dyn Provider,
    secrets: &[SigningSecret],
    body: &[u8],
    signed: Signed<'_>,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let trimmed_keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter(|secret| secret.expose().trim() != secret.expose())
        .filter_map(|secret| key_bytes(provider, &SigningSecret::new(secret.expose().trim())).ok())
        .collect();
    if !trimmed_keys.is_empty() && signed(&trimmed_keys, body) {
        causes.push(Cause::confirmed(
            "the secret has stray whitespace (a space or newline around it): remove it",
        ));
    }
    let misderived: Vec<Vec<u8>> = secrets
        .iter()
        .flat_map(|secret| provider.misderived_keys(secret.expose().trim()))
        .collect();
    let (confirmed, advice) = provider.misderived_key_cause();
    if !misderived.is_empty() && signed(&misderived, body) {
        causes.push(Cause::confirmed(confirmed));
    }
    causes.extend(advice.map(Cause::possible));
    causes.push(Cause::possible(
        "the secret differs from the one set at the provider, or it was rotated: pass each \
         current secret with its own --secret",
    ));
    causes
}

fn malformed(
    provider: &dyn Provider,
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
    header: &str,
) -> Vec<Cause> {
    let value = headers
        .get(header)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|secret| key_bytes(provider, secret).ok())
        .collect();
    let verifies = |fixed: &HeaderMap| verify_with_keys(provider, &keys, fixed, body, now);
    let mut causes = provider.malformed_causes(value, headers, &verifies);
    let expected = provider.signature_format();
    causes.push(Cause::possible(format!(
        "{} sends {expected}",
        provider.display_name()
    )));
    causes
}

fn reserialize<F: Formatter>(value: &serde_json::Value, formatter: F) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    serde::Serialize::serialize(value, &mut Serializer::with_formatter(&mut out, formatter))
        .ok()?;
    Some(out)
}

/// `, ` before every item but the first.
fn comma<W: ?Sized + io::Write>(writer: &mut W, first: bool) -> io::Result<()> {
    match first {
        true => Ok(()),
        false => writer.write_all(b", "),
    }
}

/// JSON spaced as Python's `json.dumps` writes it by default: `{"a": 1, "b": [1, 2]}`.
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        comma(writer, first)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        comma(writer, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }
}

//! Standard Webhooks: `{type, timestamp, data}`; the type is already
//! `<entity>.<action>` in most senders' vocabulary and is kept as sent.
//!
//! Signatures (Standard Webhooks v1): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64> [v1,<base64> ...]`, an HMAC-SHA256 of
//! `{id}.{timestamp}.{body}` keyed with the base64 after `whsec_`; the timestamp must be
//! within five minutes of now. The event id is made from `webhook-id`.

use crate::parts::{Field, Object, Parts, actor, first_text, first_time, is_name};
use base64::Engine;
use base64::engine::general_purpose;
use http::HeaderMap;
use time::OffsetDateTime;

use crate::providers::Provider;
use std::borrow::Cow;

use crate::scheme::{
    Algorithm, BASE64, Delivery, Piece, TIMESTAMP_TOLERANCE_SECS, VerifyError, decode_base64_mac,
    mac, single_header,
};

/// The delivery id, the same across retries.
pub const ID_HEADER: &str = "webhook-id";
/// The Unix timestamp in seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Space-separated `v1,<base64>` signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// What a secret starts with.
const SECRET_PREFIX: &str = "whsec_";

/// Any tool speaking Standard Webhooks.
pub struct Standard;

impl Provider for Standard {
    fn display_name(&self) -> &'static str {
        "Standard Webhooks"
    }

    fn key(&self, secret: &str) -> Result<Vec<u8>, &'static str> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        match BASE64.decode(encoded) {
            Ok(key) if !key.is_empty() => Ok(key),
            _ => Err("a Standard Webhooks secret is whsec_ followed by base64, and this is not"),
        }
    }

    fn new_secret(&self, random: [u8; 32]) -> String {
        format!(
            "{SECRET_PREFIX}{}",
            general_purpose::STANDARD.encode(random)
        )
    }

    /// The id, a timestamp within the tolerance of `now`, and one or more
    /// `v1,<base64>` signatures.
    fn delivery<'h>(
        &self,
        headers: &'h HeaderMap,
        _body: &'h [u8],
        now: OffsetDateTime,
    ) -> Result<Delivery<'h>, VerifyError> {
        let id = single_header(headers, ID_HEADER)?;
        let timestamp_text = single_header(headers, TIMESTAMP_HEADER)?;
        let timestamp: i64 = timestamp_text
            .parse()
            .map_err(|_| VerifyError::MalformedHeader {
                header: TIMESTAMP_HEADER,
                reason: "expected a Unix timestamp in seconds",
            })?;
        let skew = timestamp.saturating_sub(now.unix_timestamp());
        if timestamp.abs_diff(now.unix_timestamp()) > TIMESTAMP_TOLERANCE_SECS.unsigned_abs() {
            return Err(VerifyError::stale(skew));
        }
        let value = single_header(headers, SIGNATURE_HEADER)?;
        let signatures: Vec<Vec<u8>> = value
            .split_ascii_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(decode_base64_mac)
            .collect();
        if signatures.is_empty() {
            return Err(VerifyError::MalformedHeader {
                header: SIGNATURE_HEADER,
                reason: "expected one or more v1,<base64> signatures",
            });
        }
        Ok(Delivery {
            algorithm: Algorithm::Sha256,
            signed: vec![
                Piece::Bytes(Cow::Borrowed(id.as_bytes())),
                Piece::Bytes(Cow::Borrowed(b".")),
                Piece::Bytes(Cow::Borrowed(timestamp_text.as_bytes())),
                Piece::Bytes(Cow::Borrowed(b".")),
                Piece::Body,
            ],
            signatures,
        })
    }

    fn sign(
        &self,
        key: &[u8],
        body: &[u8],
        id: &str,
        timestamp: i64,
    ) -> Vec<(&'static str, String)> {
        let timestamp = timestamp.to_string();
        let tag = mac(
            key,
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
        );
        vec![
            (ID_HEADER, id.to_owned()),
            (TIMESTAMP_HEADER, timestamp),
            (
                SIGNATURE_HEADER,
                format!("v1,{}", general_purpose::STANDARD.encode(tag)),
            ),
        ]
    }

    fn setup(&self) -> (&'static str, &'static str) {
        (
            "the sender's endpoint settings",
            "the whsec_... secret it shows",
        )
    }

    fn signature_format(&self) -> &'static str {
        "webhook-signature: v1,<base64> [v1,<base64> ...]"
    }

    fn secret_advice(&self) -> &'static str {
        "pass the whsec_... value exactly as the sender showed it"
    }

    fn misderived_keys(&self, secret: &str) -> Vec<Vec<u8>> {
        let unprefixed = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        vec![secret.as_bytes().to_vec(), unprefixed.as_bytes().to_vec()]
    }

    fn misderived_key_cause(&self) -> (&'static str, Option<&'static str>) {
        (
            "the signature was made with the secret text as the key; Standard Webhooks \
             signs with the base64-decoded part after whsec_",
            None,
        )
    }

    fn parts(&self, body: &Object<'_>) -> Parts {
        parts(body)
    }

    fn delivery_id<'h>(
        &self,
        headers: &'h HeaderMap,
        _body: &crate::json::Json<'_>,
    ) -> Option<Cow<'h, [u8]>> {
        headers
            .get(ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(|id| Cow::Borrowed(id.as_bytes()))
    }
}

fn parts(body: &Object<'_>) -> Parts {
    let data = crate::parts::object(body, "data");
    let event_type = first_text(body, &["type"]);
    let mut parts = Parts {
        provider_event: event_type.clone(),
        entity_id: first_text(data, &["id"]),
        entity_name: first_text(data, &["name", "title"]),
        entity_parent: first_text(data, &["objective_id", "parent_id"]),
        occurred_at: first_time(body, &["timestamp"]),
        actor: data.get("actor").and_then(actor),
        status: Field::read(data, "status").map(|f| f.text_change()),
        progress: Field::read(data, "progress").map(|f| f.number_change()),
        changed_fields: crate::parts::changed_pairs(data),
        owner: crate::parts::first_owner(data, &["owner", "assignee"]),
        ..Parts::default()
    };
    if let Some(event_type) =
        event_type.filter(|t| t.split('.').count() >= 2 && t.split('.').all(is_name))
    {
        parts.entity_kind = event_type.split('.').next().map(str::to_owned);
        parts.event_type = Some(event_type);
    }
    parts
}

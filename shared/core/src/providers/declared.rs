//! A provider written as data: a signature scheme and a mapping, read from JSON (a
//! preset in `presets/`, or an endpoint's own `scheme` and `mapping` in the endpoints
//! document, docs/writing-a-scheme.md).
//!
//! A scheme says where the signature is (a header, or a field of the body), how it is
//! written (hex or base64, after a prefix, several split by a separator), what the HMAC
//! covers (a template over the body, a timestamp, a delivery id and the method) and how
//! the secret's text becomes the key. A mapping says, with JSON Pointers, where the
//! event's name, entity, progress, status, actor and time are in the body.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::event::{Actor, Change};
use crate::json::{Json, Object};
use crate::parts::{Parts, is_name, number, percent, snake_case, text, timestamp};
use crate::person::{Manager, Owner, Person};
use crate::providers::Provider;
use crate::scheme::{Algorithm, BASE64, Delivery, Piece, VerifyError, mac_with, single_header};
use crate::source::intern;

/// A field of a scheme or mapping that is not as documented: `field` is its path in
/// the document (`scheme.algorithm`), `reason` what is wrong (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// Where, e.g. `mapping.progress.current`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Where a value is: a header, or a JSON Pointer into the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// A request header (looked up case-insensitively).
    Header(&'static str),
    /// A JSON Pointer (RFC 6901) into the body.
    Pointer(&'static str),
}

/// How the secret's text becomes the HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// The text's bytes as they are.
    Utf8,
    /// The text is base64.
    Base64,
    /// The text is hex.
    Hex,
    /// `whsec_` and base64 (Standard Webhooks).
    Whsec,
}

/// How a signature is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lowercase or uppercase hex.
    Hex,
    /// Standard base64, padding optional.
    Base64,
}

/// One piece of the `signed` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Text(String),
    Body,
    Timestamp,
    Id,
    Method,
}

/// A signed timestamp: where it is, its unit, and how far from now it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// Where it is.
    pub at: Located,
    /// Milliseconds (true) or seconds.
    pub millis: bool,
    /// How far from now it may be, in seconds; `None` checks no age.
    pub tolerance_s: Option<i64>,
}

/// A declared signature scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    /// Where the signature is.
    pub signature: Located,
    /// The hash.
    pub algorithm: Algorithm,
    /// How the signature is written.
    pub encoding: Encoding,
    /// Text before each signature (`sha256=`).
    pub prefix: Option<&'static str>,
    /// What splits several signatures in one value.
    pub separator: Option<&'static str>,
    template: Vec<Token>,
    /// How the secret becomes the key.
    pub key: KeyFormat,
    /// The signed timestamp, when there is one.
    pub timestamp: Option<Stamp>,
    /// The delivery id, when there is one (the event id is made from it).
    pub id: Option<Located>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheme {
    header: Option<String>,
    pointer: Option<String>,
    algorithm: Option<String>,
    encoding: Option<String>,
    prefix: Option<String>,
    separator: Option<String>,
    signed: Option<String>,
    key: Option<String>,
    timestamp: Option<RawStamp>,
    id: Option<RawLocated>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStamp {
    header: Option<String>,
    pointer: Option<String>,
    unit: Option<String>,
    tolerance_s: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocated {
    header: Option<String>,
    pointer: Option<String>,
}

/// A typed reading of `value`, with serde's reason as the field error.
fn read<T: serde::de::DeserializeOwned>(value: &Value, field: &str) -> Result<T, FieldError> {
    T::deserialize(value).map_err(|error| field_error(field, error.to_string()))
}

fn located(
    header: Option<String>,
    pointer: Option<String>,
    field: &str,
) -> Result<Located, FieldError> {
    match (header, pointer) {
        (Some(header), None) => {
            http::HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| field_error(format!("{field}.header"), "not a valid header name"))?;
            Ok(Located::Header(intern(&header.to_ascii_lowercase())))
        }
        (None, Some(pointer)) => {
            check_pointer(&pointer)
                .map_err(|reason| field_error(format!("{field}.pointer"), reason))?;
            Ok(Located::Pointer(intern(&pointer)))
        }
        (Some(_), Some(_)) => Err(field_error(field, "give a header or a pointer, not both")),
        (None, None) => Err(field_error(field, "give a header or a pointer")),
    }
}

/// The value named `text` among `choices`, for the field `<field>.<what>` (the key
/// format's field is `key`): `unknown algorithm "md5" (expected sha1, sha256 or
/// sha512)`, or `required` when absent.
fn one_of<T: Copy>(
    text: Option<&str>,
    field: &str,
    what: &str,
    choices: &[(&str, T)],
) -> Result<T, FieldError> {
    let name = what.split(' ').next().unwrap_or(what);
    let Some(text) = text else {
        return Err(field_error(format!("{field}.{name}"), "required"));
    };
    if let Some((_, value)) = choices.iter().find(|(choice, _)| *choice == text) {
        return Ok(*value);
    }
    let names: Vec<&str> = choices.iter().map(|(choice, _)| *choice).collect();
    let expected = match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(field_error(
        format!("{field}.{name}"),
        format!("unknown {what} \"{text}\" (expected {expected})"),
    ))
}

/// A JSON Pointer (RFC 6901): empty, or `/` segments where `~` is only `~0` or `~1`.
pub fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!(
            "\"{pointer}\" is not a JSON Pointer (it starts with /, e.g. /goal/id)"
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "\"{pointer}\" is not a JSON Pointer (~ must be followed by 0 or 1)"
            ));
        }
    }
    Ok(())
}

impl Scheme {
    /// Read and check a scheme object; errors name the field under `field`.
    pub fn parse(value: &Value, field: &str) -> Result<Scheme, FieldError> {
        let raw: RawScheme = read(value, field)?;
        let signature = located(raw.header, raw.pointer, field)?;
        use Algorithm::{Sha1, Sha256, Sha512};
        let algorithm = one_of(
            raw.algorithm.as_deref(),
            field,
            "algorithm",
            &[("sha1", Sha1), ("sha256", Sha256), ("sha512", Sha512)],
        )?;
        let encoding = one_of(
            raw.encoding.as_deref(),
            field,
            "encoding",
            &[("hex", Encoding::Hex), ("base64", Encoding::Base64)],
        )?;
        let key = one_of(
            Some(raw.key.as_deref().unwrap_or("utf8")),
            field,
            "key format",
            &[
                ("utf8", KeyFormat::Utf8),
                ("base64", KeyFormat::Base64),
                ("hex", KeyFormat::Hex),
                ("whsec", KeyFormat::Whsec),
            ],
        )?;
        let template = parse_template(raw.signed.as_deref().unwrap_or("{body}"))
            .map_err(|reason| field_error(format!("{field}.signed"), reason))?;
        let timestamp = match raw.timestamp {
            Some(stamp) => {
                let at = located(stamp.header, stamp.pointer, &format!("{field}.timestamp"))?;
                let millis = one_of(
                    Some(stamp.unit.as_deref().unwrap_or("s")),
                    &format!("{field}.timestamp"),
                    "unit",
                    &[("s", false), ("ms", true)],
                )?;
                if stamp.tolerance_s.is_some_and(|t| t <= 0) {
                    return Err(field_error(
                        format!("{field}.timestamp.tolerance_s"),
                        "must be a positive number of seconds",
                    ));
                }
                Some(Stamp {
                    at,
                    millis,
                    tolerance_s: stamp.tolerance_s,
                })
            }
            None => None,
        };
        let id = match raw.id {
            Some(id) => Some(located(id.header, id.pointer, &format!("{field}.id"))?),
            None => None,
        };
        if template.contains(&Token::Timestamp) && timestamp.is_none() {
            return Err(field_error(
                format!("{field}.signed"),
                "uses {timestamp} but the scheme has no timestamp",
            ));
        }
        if template.contains(&Token::Id) && id.is_none() {
            return Err(field_error(
                format!("{field}.signed"),
                "uses {id} but the scheme has no id",
            ));
        }
        // What the MAC covers must tie it to this delivery: a header signature covers
        // the body; a signature carried in the body cannot cover the body, so it covers
        // the delivery's id or time (and the body is then not signed: Lever's way).
        let body_signed = template.contains(&Token::Body);
        match (&signature, body_signed) {
            (Located::Header(_), false) => {
                return Err(field_error(
                    format!("{field}.signed"),
                    "must include {body}: a signature that does not cover the body would \
                     verify any body",
                ));
            }
            (Located::Pointer(_), true) => {
                return Err(field_error(
                    format!("{field}.signed"),
                    "cannot include {body} when the signature is in the body (the body \
                     cannot sign itself); sign the delivery's {id} or {timestamp}",
                ));
            }
            (Located::Pointer(_), false)
                if !template.contains(&Token::Id) && !template.contains(&Token::Timestamp) =>
            {
                return Err(field_error(
                    format!("{field}.signed"),
                    "must include {id} or {timestamp}: a signature over fixed text would \
                     verify any delivery",
                ));
            }
            _ => {}
        }
        // An age is worth checking only on a timestamp the signature covers.
        if let Some(stamp) = &timestamp {
            let signed_time = template.contains(&Token::Timestamp)
                || (matches!(stamp.at, Located::Pointer(_)) && body_signed);
            if stamp.tolerance_s.is_some() && !signed_time {
                return Err(field_error(
                    format!("{field}.timestamp.tolerance_s"),
                    "the timestamp is not signed (put {timestamp} in \"signed\", or read it \
                     from the signed body), so its age proves nothing",
                ));
            }
        }
        let text =
            |value: Option<String>, name: &str| -> Result<Option<&'static str>, FieldError> {
                match value {
                    Some(v) if v.is_empty() => {
                        Err(field_error(format!("{field}.{name}"), "must not be empty"))
                    }
                    Some(v) => Ok(Some(intern(&v))),
                    None => Ok(None),
                }
            };
        Ok(Scheme {
            signature,
            algorithm,
            encoding,
            prefix: text(raw.prefix, "prefix")?,
            separator: text(raw.separator, "separator")?,
            template,
            key,
            timestamp,
            id,
        })
    }

    /// The HMAC key of a secret's text, in the scheme's key format.
    pub fn key(&self, secret: &str) -> Result<Vec<u8>, &'static str> {
        let key = match self.key {
            KeyFormat::Utf8 => Ok(secret.as_bytes().to_vec()),
            KeyFormat::Base64 => BASE64
                .decode(secret)
                .map_err(|_| "this scheme's key is base64, and the secret is not"),
            KeyFormat::Hex => {
                hex::decode(secret).map_err(|_| "this scheme's key is hex, and the secret is not")
            }
            KeyFormat::Whsec => BASE64
                .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
                .map_err(|_| "this scheme's secret is whsec_ followed by base64, and this is not"),
        }?;
        if key.is_empty() {
            return Err("the key is empty");
        }
        Ok(key)
    }

    /// A new random secret in the scheme's key format.
    pub fn new_secret(&self, random: [u8; 32]) -> String {
        match self.key {
            KeyFormat::Utf8 | KeyFormat::Hex => hex::encode(random),
            KeyFormat::Base64 => general_purpose::STANDARD.encode(random),
            KeyFormat::Whsec => format!("whsec_{}", general_purpose::STANDARD.encode(random)),
        }
    }

    /// What the signature looks like, for messages: `X-Hub-Signature-256: sha256=<hex>`.
    pub fn format(&self) -> String {
        let encoded = match self.encoding {
            Encoding::Hex => "<hex>",
            Encoding::Base64 => "<base64>",
        };
        let one = format!("{}{encoded}", self.prefix.unwrap_or(""));
        let value = match self.separator {
            Some(separator) => format!("{one}[{separator}{one} ...]"),
            None => one,
        };
        let mac = format!(
            "HMAC-{} of {}",
            self.algorithm.name().to_uppercase(),
            self.template_text()
        );
        match &self.signature {
            Located::Header(name) => format!("{name}: {value} ({mac})"),
            Located::Pointer(pointer) => format!("body field {pointer}: {value} ({mac})"),
        }
    }

    fn template_text(&self) -> String {
        self.template
            .iter()
            .map(|token| match token {
                Token::Text(text) => text.as_str(),
                Token::Body => "{body}",
                Token::Timestamp => "{timestamp}",
                Token::Id => "{id}",
                Token::Method => "{method}",
            })
            .collect()
    }

    /// The signature material of one delivery.
    pub fn delivery<'h>(
        &self,
        headers: &'h HeaderMap,
        body: &'h [u8],
        now: OffsetDateTime,
    ) -> Result<Delivery<'h>, VerifyError> {
        let document = self
            .needs_body()
            .then(|| serde_json::from_slice::<Value>(body).ok())
            .flatten();
        let value_of = |at: &Located| -> Result<Cow<'h, str>, VerifyError> {
            match at {
                Located::Header(name) => single_header(headers, name).map(Cow::Borrowed),
                Located::Pointer(pointer) => document
                    .as_ref()
                    .and_then(|doc| field_text(doc, pointer))
                    .map(Cow::Owned)
                    .ok_or(VerifyError::MissingField(pointer)),
            }
        };
        let timestamp = match &self.timestamp {
            Some(stamp) => {
                let text = value_of(&stamp.at)?;
                // A time in the body is a JSON integer: a string could move digits
                // between it and a field signed beside it.
                if let Located::Pointer(pointer) = stamp.at
                    && !document
                        .as_ref()
                        .and_then(|doc| doc.pointer(pointer))
                        .is_some_and(|v| v.is_i64() || v.is_u64())
                {
                    return Err(VerifyError::MalformedHeader {
                        header: pointer,
                        reason: "expected a Unix timestamp as a JSON integer",
                    });
                }
                let value: i64 = text
                    .trim()
                    .parse()
                    .map_err(|_| VerifyError::MalformedHeader {
                        header: at_name(&stamp.at),
                        reason: if stamp.millis {
                            "expected a Unix timestamp in milliseconds"
                        } else {
                            "expected a Unix timestamp in seconds"
                        },
                    })?;
                let seconds = if stamp.millis {
                    value.div_euclid(1000)
                } else {
                    value
                };
                if let Some(tolerance) = stamp.tolerance_s {
                    let skew = seconds.saturating_sub(now.unix_timestamp());
                    if skew.unsigned_abs() > tolerance.unsigned_abs() {
                        return Err(VerifyError::TimestampOutOfTolerance { skew, tolerance });
                    }
                }
                Some(text)
            }
            None => None,
        };
        let id = match &self.id {
            Some(at) if self.template.contains(&Token::Id) => Some(value_of(at)?),
            _ => None,
        };
        let value = value_of(&self.signature)?;
        let signatures = self.signatures(&value);
        if signatures.is_empty() {
            return Err(VerifyError::MalformedHeader {
                header: at_name(&self.signature),
                reason: self.malformed_reason(),
            });
        }
        let signed = self
            .template
            .iter()
            .map(|token| match token {
                Token::Text(text) => Piece::Bytes(Cow::Owned(text.as_bytes().to_vec())),
                Token::Body => Piece::Body,
                Token::Timestamp => Piece::Bytes(cow_bytes(timestamp.clone().unwrap_or_default())),
                Token::Id => Piece::Bytes(cow_bytes(id.clone().unwrap_or_default())),
                Token::Method => Piece::Bytes(Cow::Borrowed(b"POST")),
            })
            .collect();
        Ok(Delivery {
            algorithm: self.algorithm,
            signed,
            signatures,
        })
    }

    /// Whether verifying reads a field of the body (an id that is not signed is read
    /// only by normalization, from the body it parses anyway).
    fn needs_body(&self) -> bool {
        let pointer = |at: &Located| matches!(at, Located::Pointer(_));
        pointer(&self.signature)
            || self.timestamp.as_ref().is_some_and(|s| pointer(&s.at))
            || (self.template.contains(&Token::Id) && self.id.as_ref().is_some_and(pointer))
    }

    fn malformed_reason(&self) -> &'static str {
        match (self.encoding, self.prefix.is_some()) {
            (Encoding::Hex, false) => "expected a hex signature of the scheme's length",
            (Encoding::Hex, true) => "expected the scheme's prefix and a hex signature",
            (Encoding::Base64, false) => "expected a base64 signature of the scheme's length",
            (Encoding::Base64, true) => "expected the scheme's prefix and a base64 signature",
        }
    }

    /// The signatures a value lists, decoded; entries without the prefix or of the
    /// wrong length are skipped.
    pub fn signatures(&self, value: &str) -> Vec<Vec<u8>> {
        let entries: Vec<&str> = match self.separator {
            Some(separator) if separator.trim().is_empty() => {
                value.split_ascii_whitespace().collect()
            }
            Some(separator) => value.split(separator).collect(),
            None => vec![value],
        };
        entries
            .into_iter()
            .filter_map(|entry| {
                let entry = entry.trim();
                match self.prefix {
                    Some(prefix) => entry.strip_prefix(prefix),
                    None => Some(entry),
                }
            })
            .filter_map(|encoded| match self.encoding {
                Encoding::Hex => hex::decode(encoded.trim()).ok(),
                Encoding::Base64 => BASE64.decode(encoded.trim()).ok(),
            })
            .filter(|mac| mac.len() == self.algorithm.mac_len())
            .collect()
    }

    /// The headers that sign `body` with `key`; `id` and `timestamp` (seconds) are
    /// used when the scheme reads them from headers. A scheme that reads them from the
    /// body signs the body's own values; one whose signature is in the body has no
    /// header to give (use [`Scheme::signed_body`]).
    pub fn sign(
        &self,
        key: &[u8],
        body: &[u8],
        id: &str,
        timestamp: i64,
    ) -> Vec<(&'static str, String)> {
        let document = self
            .needs_body()
            .then(|| serde_json::from_slice::<Value>(body).ok())
            .flatten();
        let from_body = |pointer: &str| -> String {
            document
                .as_ref()
                .and_then(|doc| field_text(doc, pointer))
                .unwrap_or_default()
        };
        let mut headers = Vec::new();
        let timestamp_text = match &self.timestamp {
            Some(Stamp {
                at: Located::Header(name),
                millis,
                ..
            }) => {
                let text = if *millis {
                    timestamp.saturating_mul(1000).to_string()
                } else {
                    timestamp.to_string()
                };
                headers.push((*name, text.clone()));
                text
            }
            Some(Stamp {
                at: Located::Pointer(pointer),
                ..
            }) => from_body(pointer),
            None => String::new(),
        };
        let id_text = match &self.id {
            Some(Located::Header(name)) => {
                headers.push((*name, id.to_owned()));
                id.to_owned()
            }
            Some(Located::Pointer(pointer)) => from_body(pointer),
            None => String::new(),
        };
        let signature = self.signature_text(key, body, &timestamp_text, &id_text);
        if let Located::Header(name) = self.signature {
            headers.push((name, signature));
        }
        headers
    }

    /// The prefixed, encoded signature over `body` with the given timestamp and id.
    fn signature_text(&self, key: &[u8], body: &[u8], timestamp: &str, id: &str) -> String {
        let parts: Vec<&[u8]> = self
            .template
            .iter()
            .map(|token| match token {
                Token::Text(text) => text.as_bytes(),
                Token::Body => body,
                Token::Timestamp => timestamp.as_bytes(),
                Token::Id => id.as_bytes(),
                Token::Method => b"POST",
            })
            .collect();
        let mac = mac_with(self.algorithm, key, &parts);
        let encoded = match self.encoding {
            Encoding::Hex => hex::encode(mac),
            Encoding::Base64 => general_purpose::STANDARD.encode(mac),
        };
        format!("{}{encoded}", self.prefix.unwrap_or(""))
    }

    /// For a scheme whose signature is a body field: the body with that field set to
    /// the signature (the body's own id and timestamp are the ones signed). `None` for
    /// a scheme that signs in a header, or a body that is not a JSON object.
    pub fn signed_body(&self, key: &[u8], body: &[u8]) -> Option<Vec<u8>> {
        let Located::Pointer(pointer) = self.signature else {
            return None;
        };
        let mut document: Value = serde_json::from_slice(body).ok()?;
        let read = |at: &Option<Located>| match at {
            Some(Located::Pointer(p)) => field_text(&document, p),
            _ => None,
        };
        let timestamp = read(&self.timestamp.as_ref().map(|s| s.at.clone())).unwrap_or_default();
        let id = read(&self.id).unwrap_or_default();
        let signature = self.signature_text(key, body, &timestamp, &id);
        let (parent, leaf) = pointer.rsplit_once('/')?;
        let leaf = leaf.replace("~1", "/").replace("~0", "~");
        document
            .pointer_mut(parent)?
            .as_object_mut()?
            .insert(leaf, Value::String(signature));
        serde_json::to_vec(&document).ok()
    }

    /// The delivery id, when the scheme reads one that the signature covers (an id
    /// anyone could change would make a replayed copy a new event; without one the
    /// event id is made from the body).
    pub fn delivery_id<'h>(
        &self,
        headers: &'h HeaderMap,
        body: &Json<'_>,
    ) -> Option<Cow<'h, [u8]>> {
        let id = self.id.as_ref()?;
        let signed = self.template.contains(&Token::Id)
            || (matches!(id, Located::Pointer(_)) && self.template.contains(&Token::Body));
        if !signed {
            return None;
        }
        match id {
            Located::Header(name) => headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .map(|id| Cow::Borrowed(id.as_bytes())),
            // Read from the body normalization has already parsed.
            Located::Pointer(pointer) => body
                .pointer(pointer)
                .and_then(text)
                .map(|id| Cow::Owned(id.into_bytes())),
        }
    }
}

/// A body field as text: a non-empty string as it is, a number as written; anything
/// else is no value. The signer and the verifier read fields the same way.
fn field_text(document: &Value, pointer: &str) -> Option<String> {
    match document.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn cow_bytes(text: Cow<'_, str>) -> Cow<'_, [u8]> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

fn at_name(at: &Located) -> &'static str {
    match at {
        Located::Header(name) | Located::Pointer(name) => name,
    }
}

fn parse_template(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(0) => {
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("\"{text}\": a {{ without its }}"))?;
                let token = match &rest[1..end] {
                    "body" => Token::Body,
                    "timestamp" => Token::Timestamp,
                    "id" => Token::Id,
                    "method" => Token::Method,
                    "url" => {
                        return Err(
                            "{url} is not supported: behind API Gateway and proxies the URL a \
                             sender signed cannot be known for sure"
                                .into(),
                        );
                    }
                    other => {
                        return Err(format!(
                            "unknown placeholder {{{other}}} (expected {{body}}, {{timestamp}}, {{id}} or {{method}})"
                        ));
                    }
                };
                tokens.push(token);
                rest = &rest[end + 1..];
            }
            Some(start) => {
                tokens.push(Token::Text(rest[..start].to_owned()));
                rest = &rest[start..];
            }
            None => {
                tokens.push(Token::Text(rest.to_owned()));
                rest = "";
            }
        }
    }
    match tokens.iter().filter(|t| **t == Token::Body).count() {
        1 => Ok(tokens),
        0 => Ok(tokens),
        _ => Err(format!("\"{text}\": {{body}} appears more than once")),
    }
}

/// Where a mapped field is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mapping {
    event: Option<&'static str>,
    types: BTreeMap<String, String>,
    kind: Option<Kind>,
    id: Option<&'static str>,
    title: Option<&'static str>,
    parent: Option<&'static str>,
    current: Option<&'static str>,
    previous: Option<&'static str>,
    value: Option<&'static str>,
    previous_value: Option<&'static str>,
    target: Option<&'static str>,
    start: Option<&'static str>,
    status: Option<&'static str>,
    previous_status: Option<&'static str>,
    actor_id: Option<&'static str>,
    actor_name: Option<&'static str>,
    occurred_at: Option<&'static str>,
    owner: PersonPointers,
    person: PersonPointers,
}

/// The pointers of a mapping's `owner` or `person`, checked and interned, in the order
/// of [`RawPerson::fields`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PersonPointers([Option<&'static str>; 9]);

/// Pointers to a person's fields: an owner's `id`, `name`, `email`; an HR record's also
/// `manager_id`, `manager_email`, `department`, `division`, `position`, `active`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerson {
    id: Option<String>,
    name: Option<String>,
    email: Option<String>,
    manager_id: Option<String>,
    manager_email: Option<String>,
    department: Option<String>,
    division: Option<String>,
    position: Option<String>,
    active: Option<String>,
}

impl RawPerson {
    fn fields(&self) -> [(&'static str, &Option<String>); 9] {
        [
            ("id", &self.id),
            ("name", &self.name),
            ("email", &self.email),
            ("manager_id", &self.manager_id),
            ("manager_email", &self.manager_email),
            ("department", &self.department),
            ("division", &self.division),
            ("position", &self.position),
            ("active", &self.active),
        ]
    }

    fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, p)| p.is_none())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Literal(String),
    Pointer(&'static str),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    event: Option<String>,
    #[serde(default)]
    types: BTreeMap<String, String>,
    #[serde(default)]
    entity: RawEntity,
    #[serde(default)]
    progress: RawProgress,
    status: Option<String>,
    previous_status: Option<String>,
    #[serde(default)]
    actor: RawActor,
    occurred_at: Option<String>,
    #[serde(default)]
    owner: RawPerson,
    #[serde(default)]
    person: RawPerson,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEntity {
    kind: Option<String>,
    id: Option<String>,
    title: Option<String>,
    parent: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProgress {
    current: Option<String>,
    previous: Option<String>,
    value: Option<String>,
    previous_value: Option<String>,
    target: Option<String>,
    start: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawActor {
    id: Option<String>,
    name: Option<String>,
}

/// A mapped value of the wrong type: the field and what it should have been.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping: {pointer} ({field}) is {found}, expected {expected}")]
pub struct MappingError {
    /// The mapping's field, e.g. `progress.current`.
    pub field: &'static str,
    /// The pointer it reads.
    pub pointer: &'static str,
    /// The JSON type found.
    pub found: &'static str,
    /// What it should be.
    pub expected: &'static str,
}

impl Mapping {
    /// Read and check a mapping object; errors name the field under `field`.
    pub fn parse(value: &Value, field: &str) -> Result<Mapping, FieldError> {
        let raw: RawMapping = read(value, field)?;
        let pointer =
            |value: Option<String>, name: &str| -> Result<Option<&'static str>, FieldError> {
                match value {
                    Some(p) => {
                        check_pointer(&p)
                            .map_err(|reason| field_error(format!("{field}.{name}"), reason))?;
                        Ok(Some(intern(&p)))
                    }
                    None => Ok(None),
                }
            };
        for (name, event_type) in &raw.types {
            if !is_type(event_type) {
                return Err(field_error(
                    format!("{field}.types.{name}"),
                    format!(
                        "\"{event_type}\" is not an event type (<entity>.<action>, lowercase, e.g. key_result.completed)"
                    ),
                ));
            }
        }
        let kind = match raw.entity.kind {
            Some(kind) if kind.starts_with('/') => Some(Kind::Pointer(
                pointer(Some(kind), "entity.kind")?.unwrap_or_default(),
            )),
            Some(kind) if is_name(&kind) => Some(Kind::Literal(kind)),
            Some(kind) => {
                return Err(field_error(
                    format!("{field}.entity.kind"),
                    format!(
                        "\"{kind}\" is neither an entity kind (lowercase, e.g. key_result) nor a JSON Pointer"
                    ),
                ));
            }
            None => None,
        };
        let progress = raw.progress;
        if progress.value.is_some() != progress.target.is_some() {
            return Err(field_error(
                format!("{field}.progress"),
                "value and target go together (progress is value/target in percent)",
            ));
        }
        if progress.current.is_some() && progress.value.is_some() {
            return Err(field_error(
                format!("{field}.progress"),
                "give current (a percent) or value and target, not both",
            ));
        }
        let mut people = [PersonPointers::default(), PersonPointers::default()];
        for ((group, fields, allowed), checked) in
            [("owner", &raw.owner, 3), ("person", &raw.person, 9)]
                .into_iter()
                .zip(&mut people)
        {
            for (index, (name, value)) in fields.fields().iter().enumerate() {
                if value.is_some() && index >= allowed {
                    return Err(field_error(
                        format!("{field}.{group}.{name}"),
                        "an owner has only id, name and email",
                    ));
                }
                checked.0[index] = pointer((*value).clone(), &format!("{group}.{name}"))?;
            }
        }
        if !raw.person.is_empty() && raw.person.id.is_none() {
            return Err(field_error(
                format!("{field}.person.id"),
                "a person needs an id (the HR tool's id for them)",
            ));
        }
        let [owner, person] = people;
        Ok(Mapping {
            owner,
            person,
            event: pointer(raw.event, "event")?,
            types: raw.types,
            kind,
            id: pointer(raw.entity.id, "entity.id")?,
            title: pointer(raw.entity.title, "entity.title")?,
            parent: pointer(raw.entity.parent, "entity.parent")?,
            current: pointer(progress.current, "progress.current")?,
            previous: pointer(progress.previous, "progress.previous")?,
            value: pointer(progress.value, "progress.value")?,
            previous_value: pointer(progress.previous_value, "progress.previous_value")?,
            target: pointer(progress.target, "progress.target")?,
            start: pointer(progress.start, "progress.start")?,
            status: pointer(raw.status, "status")?,
            previous_status: pointer(raw.previous_status, "previous_status")?,
            actor_id: pointer(raw.actor.id, "actor.id")?,
            actor_name: pointer(raw.actor.name, "actor.name")?,
            occurred_at: pointer(raw.occurred_at, "occurred_at")?,
        })
    }

    /// The event's parts from `body`. A pointer that finds nothing (null, or an empty
    /// string) leaves its field empty; a value of the wrong type is an error. `endpoint` names the types
    /// of events `types` does not list: `<endpoint>.<event name>`.
    pub fn parts(&self, body: &Json<'_>, endpoint: &str) -> Result<Parts, MappingError> {
        let at = |pointer: Option<&'static str>| {
            pointer
                .and_then(|p| body.pointer(p))
                .filter(|v| !v.is_null() && v.as_str() != Some(""))
        };
        let text_at = |pointer: Option<&'static str>,
                       field: &'static str|
         -> Result<Option<String>, MappingError> {
            match at(pointer) {
                None => Ok(None),
                Some(value) => text(value).map(Some).ok_or(MappingError {
                    field,
                    pointer: pointer.unwrap_or_default(),
                    found: value.kind(),
                    expected: "text or a number",
                }),
            }
        };
        let number_at = |pointer: Option<&'static str>,
                         field: &'static str|
         -> Result<Option<f64>, MappingError> {
            match at(pointer) {
                None => Ok(None),
                Some(value) => number(value).map(Some).ok_or(MappingError {
                    field,
                    pointer: pointer.unwrap_or_default(),
                    found: value.kind(),
                    expected: "a number",
                }),
            }
        };
        let provider_event = text_at(self.event, "event")?;
        let event_type = provider_event
            .as_deref()
            .and_then(|name| match self.types.get(name) {
                Some(mapped) => Some(mapped.clone()),
                None => {
                    let derived = format!("{}.{}", type_segment(endpoint), type_segment(name));
                    is_type(&derived).then_some(derived)
                }
            });
        let entity_kind = match &self.kind {
            Some(Kind::Literal(kind)) => Some(kind.clone()),
            Some(Kind::Pointer(pointer)) => text_at(Some(pointer), "entity.kind")?
                .map(|kind| snake_case(&kind))
                .filter(|kind| is_name(kind)),
            None => None,
        }
        .or_else(|| {
            event_type
                .as_deref()
                .and_then(|t| t.split('.').next())
                .map(str::to_owned)
        });
        let progress = match (self.current, self.value) {
            (Some(_), _) => {
                let current = number_at(self.current, "progress.current")?;
                let previous = number_at(self.previous, "progress.previous")?;
                current.map(|current| Change {
                    previous,
                    current: Some(current),
                })
            }
            (None, Some(_)) => {
                let value = number_at(self.value, "progress.value")?;
                let previous_value = number_at(self.previous_value, "progress.previous_value")?;
                let target = number_at(self.target, "progress.target")?;
                let start = number_at(self.start, "progress.start")?.unwrap_or(0.0);
                match (value, target) {
                    (Some(value), Some(target)) => Some(Change {
                        previous: previous_value.and_then(|p| percent(start, p, target)),
                        current: percent(start, value, target),
                    })
                    .filter(|change| change.current.is_some()),
                    _ => None,
                }
            }
            (None, None) => None,
        };
        let status = text_at(self.status, "status")?.map(|current| Change {
            previous: None,
            current: Some(current),
        });
        let status = match (status, text_at(self.previous_status, "previous_status")?) {
            (Some(mut change), previous) => {
                change.previous = previous;
                Some(change)
            }
            (None, _) => None,
        };
        let actor = Actor {
            id: text_at(self.actor_id, "actor.id")?,
            name: text_at(self.actor_name, "actor.name")?,
        };
        let occurred_at = match at(self.occurred_at) {
            None => None,
            Some(value) => Some(time_of(value).ok_or(MappingError {
                field: "occurred_at",
                pointer: self.occurred_at.unwrap_or_default(),
                found: value.kind(),
                expected: "an RFC 3339 time or Unix seconds or milliseconds",
            })?),
        };
        let text_of = |pointer: Option<&'static str>, field: &'static str| text_at(pointer, field);
        Ok(Parts {
            provider_event,
            entity_kind,
            entity_id: text_at(self.id, "entity.id")?,
            entity_name: text_at(self.title, "entity.title")?,
            entity_parent: text_at(self.parent, "entity.parent")?,
            occurred_at,
            actor: (actor.id.is_some() || actor.name.is_some()).then_some(actor),
            status,
            progress,
            changed_fields: Vec::new(),
            owner: self.owner_at(&text_of)?,
            person: self.person_at(body, &text_of, event_type.as_deref())?,
            event_type,
        })
    }

    fn owner_at(&self, text_of: &TextOf<'_>) -> Result<Option<Owner>, MappingError> {
        let [id, name, email, ..] = self.owner.0;
        let owner = Owner {
            id: text_of(id, "owner.id")?,
            name: text_of(name, "owner.name")?,
            email: text_of(email, "owner.email")?,
        };
        Ok((!owner.is_empty()).then_some(owner))
    }

    /// The person an HR record describes, when the mapping has `person` and its id is
    /// there. `active` is read from its pointer (true or false, or a text such as
    /// `Active` or `Terminated`); without one, an event whose type ends in `.terminated`,
    /// `.deleted`, `.left` or `.offboarded` makes the person inactive.
    fn person_at(
        &self,
        body: &Json<'_>,
        text_of: &TextOf<'_>,
        event_type: Option<&str>,
    ) -> Result<Option<Person>, MappingError> {
        let [
            id,
            name,
            email,
            manager_id,
            manager_email,
            department,
            division,
            position,
            active,
        ] = self.person.0;
        let Some(id) = text_of(id, "person.id")? else {
            return Ok(None);
        };
        let manager = Manager {
            id: text_of(manager_id, "person.manager_id")?,
            email: text_of(manager_email, "person.manager_email")?,
            name: None,
        };
        let active_pointer = active;
        let active = match active_pointer.and_then(|pointer| body.pointer(pointer)) {
            None | Some(Json::Null) => event_type
                .and_then(|t| t.rsplit_once('.'))
                .filter(|(_, action)| {
                    matches!(*action, "terminated" | "deleted" | "left" | "offboarded")
                })
                .map(|_| false),
            Some(value) => Some(activity(value).ok_or(MappingError {
                field: "person.active",
                pointer: active_pointer.unwrap_or_default(),
                found: value.kind(),
                expected: "true or false, or a status such as active or terminated",
            })?),
        };
        Ok(Some(Person {
            id,
            name: text_of(name, "person.name")?,
            email: text_of(email, "person.email")?,
            manager: (!manager.is_empty()).then_some(manager),
            department: text_of(department, "person.department")?,
            division: text_of(division, "person.division")?,
            position: text_of(position, "person.position")?,
            active,
        }))
    }
}

/// Reads the text at a pointer, or fails with the mapping field's name.
type TextOf<'a> =
    dyn Fn(Option<&'static str>, &'static str) -> Result<Option<String>, MappingError> + 'a;

/// Whether a person is employed, from a boolean or a status text.
fn activity(value: &Json<'_>) -> Option<bool> {
    match value {
        Json::Bool(active) => Some(*active),
        Json::String(text) => match text.trim().to_lowercase().as_str() {
            "active" | "employed" | "true" | "yes" => Some(true),
            "inactive" | "terminated" | "left" | "offboarded" | "false" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// An RFC 3339 text, or a Unix time in seconds (or milliseconds, when it is past the
/// year 33658 as seconds).
fn time_of(value: &Json<'_>) -> Option<OffsetDateTime> {
    if let Some(time) = timestamp(value) {
        return Some(time);
    }
    let n = match value {
        Json::Number(n) => n.as_i64()?,
        _ => return None,
    };
    let seconds = if n.unsigned_abs() >= 1_000_000_000_000 {
        n.div_euclid(1000)
    } else {
        n
    };
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

/// `<segment>(.<segment>)+`, each `[a-z][a-z0-9_]*`: what the schema calls a type.
pub fn is_type(text: &str) -> bool {
    text.split('.').count() >= 2 && text.split('.').all(is_name)
}

/// A name as one segment of a type: `hr-eu` → `hr_eu`, `Goal.Done` → `goal_done`.
fn type_segment(name: &str) -> String {
    let snake = snake_case(name);
    let cleaned: String = snake
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    match cleaned.chars().next() {
        Some(c) if c.is_ascii_lowercase() => cleaned,
        _ => format!("e_{cleaned}"),
    }
}

/// A provider declared as data.
#[derive(Debug)]
pub struct Declared {
    /// The name people know it by.
    pub display_name: &'static str,
    /// Its signature scheme.
    pub scheme: Scheme,
    /// Where its events' fields are.
    pub mapping: Mapping,
    /// Where the payload URL and the secret go.
    pub setup: (&'static str, &'static str),
    /// The header of a handshake that hands us the secret (Asana's `X-Hook-Secret`).
    pub handshake: Option<&'static str>,
    /// What the scheme looks like, for messages.
    format: &'static str,
}

impl Declared {
    /// A provider from a scheme and a mapping.
    pub fn new(
        display_name: &str,
        scheme: Scheme,
        mapping: Mapping,
        setup: (&str, &str),
        handshake: Option<&str>,
    ) -> Declared {
        let format = intern(&scheme.format());
        Declared {
            display_name: intern(display_name),
            scheme,
            mapping,
            setup: (intern(setup.0), intern(setup.1)),
            handshake: handshake.map(|h| intern(&h.to_ascii_lowercase())),
            format,
        }
    }
}

impl Provider for Declared {
    fn display_name(&self) -> &'static str {
        self.display_name
    }

    fn key(&self, secret: &str) -> Result<Vec<u8>, &'static str> {
        self.scheme.key(secret)
    }

    fn new_secret(&self, random: [u8; 32]) -> String {
        self.scheme.new_secret(random)
    }

    fn delivery<'h>(
        &self,
        headers: &'h HeaderMap,
        body: &'h [u8],
        now: OffsetDateTime,
    ) -> Result<Delivery<'h>, VerifyError> {
        self.scheme.delivery(headers, body, now)
    }

    fn sign(
        &self,
        key: &[u8],
        body: &[u8],
        id: &str,
        timestamp: i64,
    ) -> Vec<(&'static str, String)> {
        self.scheme.sign(key, body, id, timestamp)
    }

    fn signed_body(&self, key: &[u8], body: &[u8]) -> Option<Vec<u8>> {
        self.scheme.signed_body(key, body)
    }

    fn signature_format(&self) -> &'static str {
        self.format
    }

    fn setup(&self) -> (&'static str, &'static str) {
        self.setup
    }

    fn secret_advice(&self) -> &'static str {
        match self.scheme.key {
            KeyFormat::Utf8 => "pass the secret exactly as the tool shows it",
            KeyFormat::Base64 => {
                "this scheme's secret is base64: pass it exactly as the tool shows it"
            }
            KeyFormat::Hex => "this scheme's secret is hex: pass it exactly as the tool shows it",
            KeyFormat::Whsec => "pass the whsec_... value exactly as the tool shows it",
        }
    }

    fn misderived_keys(&self, secret: &str) -> Vec<Vec<u8>> {
        let mut keys = vec![secret.as_bytes().to_vec()];
        keys.extend(
            BASE64
                .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
                .ok(),
        );
        keys.extend(hex::decode(secret).ok());
        keys.retain(|key| self.scheme.key(secret).as_deref() != Ok(key.as_slice()));
        keys
    }

    fn misderived_key_cause(&self) -> (&'static str, Option<&'static str>) {
        (
            "the signature was made with the secret read in another key format: set the \
             scheme's \"key\" (utf8, base64, hex or whsec) to the one the tool uses",
            None,
        )
    }

    fn malformed_causes(
        &self,
        value: &str,
        _headers: &HeaderMap,
        _verifies: &dyn Fn(&HeaderMap) -> bool,
    ) -> Vec<crate::scheme::Cause> {
        use crate::scheme::Cause;
        let mut causes = Vec::new();
        if let Some(prefix) = self.scheme.prefix
            && !value.contains(prefix)
        {
            causes.push(Cause::possible(format!(
                "the value does not start with the scheme's prefix \"{prefix}\": check the \"prefix\" \
                 (a different one, or none) and that the right header was sent"
            )));
        }
        let other = Scheme {
            encoding: match self.scheme.encoding {
                Encoding::Hex => Encoding::Base64,
                Encoding::Base64 => Encoding::Hex,
            },
            ..self.scheme.clone()
        };
        if !other.signatures(value).is_empty() {
            causes.push(Cause::possible(format!(
                "the signature reads as {} rather than {}: check the scheme's \"encoding\"",
                match other.encoding {
                    Encoding::Hex => "hex",
                    Encoding::Base64 => "base64",
                },
                match self.scheme.encoding {
                    Encoding::Hex => "hex",
                    Encoding::Base64 => "base64",
                }
            )));
        }
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            let other = Scheme {
                algorithm,
                ..self.scheme.clone()
            };
            if algorithm != self.scheme.algorithm && !other.signatures(value).is_empty() {
                causes.push(Cause::possible(format!(
                    "the signature is as long as an HMAC-{}: check the scheme's \"algorithm\"",
                    algorithm.name().to_uppercase()
                )));
            }
        }
        causes
    }

    fn parts(&self, body: &Object<'_>) -> Parts {
        // Without an endpoint name (the registry's own use): the tool's name.
        self.mapping
            .parts(&Json::Object(body.clone()), self.display_name)
            .unwrap_or_default()
    }

    fn mapped_parts(&self, body: &Json<'_>, endpoint: &str) -> Option<Result<Parts, MappingError>> {
        Some(self.mapping.parts(body, endpoint))
    }

    fn delivery_id<'h>(&self, headers: &'h HeaderMap, body: &Json<'_>) -> Option<Cow<'h, [u8]>> {
        self.scheme.delivery_id(headers, body)
    }

    fn handshake_header(&self) -> Option<&'static str> {
        self.handshake
    }
}

//! The providers: each tool this product receives webhooks from lives in one module
//! here, holding all it knows (its signature scheme and key format, how its headers are
//! read, how a failed signature is diagnosed, how its body becomes an event, its name
//! and what its secret looks like), behind the [`Provider`] trait. [`provider`] is the
//! one table that registers them; outside this folder only [`Source`] names them. What
//! all providers share is read by shape, whichever sent it (`normalize::context`: a
//! period, the names under `data`, a rank record's direction).
//!
//! Adding a provider: a module beside these, a variant of [`Source`] with its name, a row
//! in [`provider`], its sample bodies in `events/bodies/<name>/`, its row in
//! docs/providers.md and its tests (`shared/core/tests/providers.rs` signs and verifies
//! every registered provider's samples).

pub mod declared;
pub mod peopleforce;
pub mod peoplelogic;
pub mod perscom;
pub mod presets;
pub mod standard;

use std::borrow::Cow;

use http::{HeaderMap, Method};
use time::OffsetDateTime;

use crate::json::{Json, Object};
use crate::parts::Parts;
use crate::scheme::{Cause, Delivery, VerifyError};
use crate::source::Source;
use declared::MappingError;

/// Everything the pipeline asks of one provider.
pub trait Provider: Sync {
    /// The name people know it by, for messages.
    fn display_name(&self) -> &'static str;

    /// The HMAC key of a secret written as the provider shows it; the error says what
    /// the secret should look like (and never quotes it). Most tools key with the
    /// secret's text as it is.
    fn key(&self, secret: &str) -> Result<Vec<u8>, &'static str> {
        Ok(secret.as_bytes().to_vec())
    }

    /// A new random secret in the provider's format, from 32 random bytes (`serve`
    /// writes one for each provider on its first start): hex text unless the provider
    /// says otherwise.
    fn new_secret(&self, random: [u8; 32]) -> String {
        hex::encode(random)
    }

    /// The signature material in a delivery (its headers, or for some schemes fields of
    /// its body), checked as far as that allows (a timestamp within the tolerance of
    /// `now`).
    fn delivery<'h>(
        &self,
        headers: &'h HeaderMap,
        body: &'h [u8],
        now: OffsetDateTime,
    ) -> Result<Delivery<'h>, VerifyError>;

    /// The headers that sign `body` with `key`, as the provider sends them; `id` and
    /// `timestamp` are used by schemes that sign them.
    fn sign(
        &self,
        key: &[u8],
        body: &[u8],
        id: &str,
        timestamp: i64,
    ) -> Vec<(&'static str, String)>;

    /// For a scheme that carries its signature in the body: the body with the signature
    /// written in. `None` for one that signs in headers.
    fn signed_body(&self, _key: &[u8], _body: &[u8]) -> Option<Vec<u8>> {
        None
    }

    /// What its signature header looks like, for a diagnosis.
    fn signature_format(&self) -> &'static str;

    /// Where in the tool the payload URL is pasted, and what its signing secret is
    /// there: `("Settings → Webhooks", "the secret text you set there")`.
    fn setup(&self) -> (&'static str, &'static str);

    /// What to do with a secret it cannot use.
    fn secret_advice(&self) -> &'static str {
        "pass the secret exactly as configured at the provider"
    }

    /// Keys a sender may have derived from the secret text by mistake; when one of them
    /// signs the delivery, [`Provider::misderived_key_cause`] is the confirmed cause.
    fn misderived_keys(&self, _secret: &str) -> Vec<Vec<u8>> {
        Vec::new()
    }

    /// The confirmed cause when a [`Provider::misderived_keys`] key signs the delivery,
    /// and what to check about the key either way.
    fn misderived_key_cause(&self) -> (&'static str, Option<&'static str>) {
        ("", None)
    }

    /// Likely causes of a malformed signature header `value`; `verifies` says whether a
    /// repaired copy of the headers verifies with the secrets given.
    fn malformed_causes(
        &self,
        _value: &str,
        _headers: &HeaderMap,
        _verifies: &dyn Fn(&HeaderMap) -> bool,
    ) -> Vec<Cause> {
        Vec::new()
    }

    /// What it sends, as the event's parts.
    fn parts(&self, body: &Object<'_>) -> Parts;

    /// For a provider declared as data: its mapping's reading of `body` for an endpoint
    /// named `endpoint`, which may fail on a value of the wrong type. `None` for the
    /// built-in providers, whose [`Provider::parts`] cannot fail.
    fn mapped_parts(
        &self,
        _body: &Json<'_>,
        _endpoint: &str,
    ) -> Option<Result<Parts, MappingError>> {
        None
    }

    /// The header of a handshake that hands over the secret on the first request
    /// (Asana's `X-Hook-Secret`), when the provider has one.
    fn handshake_header(&self) -> Option<&'static str> {
        None
    }

    /// The delivery id that stays the same across retries, when it sends one (the
    /// event id is made from it instead of the body); `body` is the body as
    /// normalization read it.
    fn delivery_id<'h>(&self, _headers: &'h HeaderMap, _body: &Json<'_>) -> Option<Cow<'h, [u8]>> {
        None
    }

    /// Why a delivery with `method` (not POST) cannot be accepted, when it has more to
    /// say than that webhooks are delivered with POST.
    fn method_advice(&self, _method: &Method) -> Option<&'static str> {
        None
    }
}

/// The registry: the provider behind each built-in source and each preset; `None`
/// for a source of a scheme declared in the endpoints document (its endpoint holds it).
pub fn provider(source: Source) -> Option<&'static dyn Provider> {
    match source {
        Source::PEOPLELOGIC => Some(&peoplelogic::Peoplelogic),
        Source::PEOPLEFORCE => Some(&peopleforce::Peopleforce),
        Source::PERSCOM => Some(&perscom::Perscom),
        Source::STANDARD => Some(&standard::Standard),
        other => presets::preset(other.as_str()).map(|declared| declared as &dyn Provider),
    }
}

/// Every preset's name: the four built in, then the ones written as data.
pub fn preset_names() -> Vec<&'static str> {
    Source::ALL
        .iter()
        .map(|s| s.as_str())
        .chain(presets::names())
        .collect()
}

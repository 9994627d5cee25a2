//! Subscriptions: other services that receive the normalized events as webhooks of our
//! own, signed with Standard Webhooks (docs/subscriptions.md).
//!
//! The subscriptions document, `{"subscriptions": {"<name>": {...}}}`, says for each one
//! where it goes (`url`), which events it takes (`types`, `endpoints`, `kinds`), how the
//! receiver also authenticates us (`auth`: `basic` or `bearer`), how fast it may be sent
//! to (`rate_per_second`), whether it gets the whole event (`full_event`) and whether it
//! is switched on (`enabled`). Its secrets (the `whsec_` signing secrets, a password or
//! token) are kept apart, in the subscription secrets document.
//!
//! A document that does not validate is refused whole, with the subscription and field
//! named.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose;
use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

use crate::event::Event;
use crate::providers::Provider;
use crate::providers::standard::Standard;

/// How the receiver authenticates us besides the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// HTTP Basic (`Authorization: Basic ...`), the user and password in the secrets.
    Basic,
    /// A bearer token (`Authorization: Bearer ...`), the token in the secrets.
    Bearer,
}

/// One subscription, as the document holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Where the events are posted: `https://`, or plain `http://` to a loopback address.
    pub url: String,
    /// Glob patterns over the event's `type` (`objective.*`, `*.completed`); none is
    /// every type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// The endpoints whose events it takes (`peoplelogic`, `goals`); none is every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// The entity kinds it takes (`objective`, `key_result`, `employee`); none is every
    /// kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// How the receiver authenticates us besides the signature, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// At most this many posts a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u32>,
    /// Send the whole event, with the provider's body. Without it the receiver gets the
    /// event as the Slack queue does: no birth dates, personal emails or phones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full_event: bool,
    /// Whether events are sent to it (`subscriptions disable` switches it off).
    #[serde(default = "on", skip_serializing_if = "is_on")]
    pub enabled: bool,
    /// `types`, compiled on first use (`takes` runs for every event at ingest): derived,
    /// so leave it as [`Subscription::to`] makes it.
    #[serde(skip)]
    pub patterns: Patterns,
}

/// Compiled type patterns: derived from `types`, so never part of a subscription's
/// equality or its document.
#[derive(Debug, Clone, Default)]
pub struct Patterns(std::sync::OnceLock<Vec<WildMatch>>);

impl PartialEq for Patterns {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn on() -> bool {
    true
}

fn is_on(enabled: &bool) -> bool {
    *enabled
}

impl Subscription {
    /// A subscription to `url` taking every event.
    pub fn to(url: impl Into<String>) -> Self {
        Subscription {
            url: url.into(),
            types: Vec::new(),
            endpoints: Vec::new(),
            kinds: Vec::new(),
            auth: None,
            rate_per_second: None,
            full_event: false,
            enabled: true,
            patterns: Patterns::default(),
        }
    }

    /// Whether it takes `event` by its filters (switched on or not).
    pub fn takes(&self, event: &Event) -> bool {
        let endpoint = event.endpoint.unwrap_or(event.source);
        let patterns = self
            .patterns
            .0
            .get_or_init(|| self.types.iter().map(|t| WildMatch::new(t)).collect());
        (patterns.is_empty() || patterns.iter().any(|p| p.matches(&event.event_type)))
            && (self.endpoints.is_empty()
                || self.endpoints.iter().any(|name| name == endpoint.as_str()))
            && (self.kinds.is_empty() || self.kinds.contains(&event.entity.kind))
    }

    /// Check its fields; the reason names the field.
    fn check(&self) -> Result<(), (&'static str, String)> {
        check_url(&self.url).map_err(|reason| ("url", reason.to_owned()))?;
        for pattern in &self.types {
            if pattern.trim().is_empty() || pattern.trim() != pattern {
                return Err(("types", format!("\"{pattern}\" is not a type pattern")));
            }
        }
        for (field, names) in [("endpoints", &self.endpoints), ("kinds", &self.kinds)] {
            if let Some(bad) = names.iter().find(|name| !is_name(name)) {
                return Err((field, format!("\"{bad}\" is not a name")));
            }
        }
        if self.rate_per_second == Some(0) {
            return Err(("rate_per_second", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// Why [`check_url`] refused a subscription's URL (never the URL itself: it may carry a
/// token in its path).
pub const URL_RULE: &str = "must be an https:// URL (plain http:// only to a loopback \
address such as 127.0.0.1), without a user or password in it (use --basic)";

/// Whether `url` can be a subscription's: `https://` with a host, or plain `http://` to
/// a loopback address (127.0.0.0/8, ::1; not `localhost`, which a resolver may send
/// elsewhere), and no credentials in it.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    match crate::callable::loopback_or_https(url) {
        Some(parsed)
            if parsed.username().is_empty() && parsed.password().is_none() && url.trim() == url =>
        {
            Ok(())
        }
        _ => Err(URL_RULE),
    }
}

/// Whether `name` is a subscription's (or a filter's) name: 1 to 64 of `a-z`, `0-9`,
/// `-` and `_`.
pub fn is_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Why a subscriptions document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionsError {
    /// The document is not the documented shape.
    #[error("the subscriptions document is not valid: {0}")]
    Document(String),
    /// One subscription is not valid.
    #[error("subscription \"{subscription}\": {field}: {reason}")]
    Subscription {
        /// Its name.
        subscription: String,
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// Every subscription, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscriptions {
    /// The subscriptions by name.
    #[serde(default)]
    pub subscriptions: BTreeMap<String, Subscription>,
}

impl Subscriptions {
    /// Read a subscriptions document (an empty text is no subscription).
    pub fn parse(text: &str) -> Result<Subscriptions, SubscriptionsError> {
        if text.trim().is_empty() {
            return Ok(Subscriptions::default());
        }
        let document: Subscriptions = serde_json::from_str(text)
            .map_err(|error| SubscriptionsError::Document(without_values(&error)))?;
        document.check()?;
        Ok(document)
    }

    /// Check every name and subscription.
    pub fn check(&self) -> Result<(), SubscriptionsError> {
        for (name, subscription) in &self.subscriptions {
            let fail = |field: &str, reason: String| SubscriptionsError::Subscription {
                subscription: name.clone(),
                field: field.to_owned(),
                reason,
            };
            if !is_name(name) {
                return Err(fail("name", "1 to 64 of a-z, 0-9, - and _".to_owned()));
            }
            subscription
                .check()
                .map_err(|(field, reason)| fail(field, reason))?;
        }
        Ok(())
    }

    /// The switched-on subscriptions that take `event`.
    pub fn taking<'a>(
        &'a self,
        event: &'a Event,
    ) -> impl Iterator<Item = (&'a str, &'a Subscription)> + 'a {
        self.subscriptions
            .iter()
            .filter(move |(_, s)| s.enabled && s.takes(event))
            .map(|(name, s)| (name.as_str(), s))
    }

    /// Whether any switched-on subscription takes `event`: ingest queues it for them.
    pub fn any_takes(&self, event: &Event) -> bool {
        self.taking(event).next().is_some()
    }
}

/// One subscription's secrets, kept apart from the document: its `whsec_` signing
/// secrets (the newest first; two or more during a rotation, each signing every post)
/// and the receiver's credential when it asks for one. `Debug` prints no value.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSecret {
    /// The `whsec_` signing secrets.
    pub signing: Vec<String>,
    /// `user:password` for HTTP Basic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<String>,
    /// The bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<String>,
}

impl std::fmt::Debug for SubscriptionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionSecret")
            .field(
                "signing",
                &format_args!("[{} redacted]", self.signing.len()),
            )
            .field("basic", &self.basic.as_ref().map(|_| "[redacted]"))
            .field("bearer", &self.bearer.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl SubscriptionSecret {
    /// The `Authorization` header `auth` asks for, from these secrets; `Err` names what
    /// is missing, never a value.
    pub fn authorization(&self, auth: Option<Auth>) -> Result<Option<String>, &'static str> {
        match auth {
            None => Ok(None),
            Some(Auth::Basic) => self
                .basic
                .as_deref()
                .map(|pair| Some(basic_authorization(pair)))
                .ok_or("it asks for HTTP Basic and its secrets hold no user and password"),
            Some(Auth::Bearer) => self
                .bearer
                .as_deref()
                .map(|token| Some(format!("Bearer {token}")))
                .ok_or("it asks for a bearer token and its secrets hold none"),
        }
    }
}

/// Every subscription's secrets, by subscription name: `{"<name>": {"signing":
/// ["whsec_..."], "basic": "user:password"}}`.
pub type SubscriptionSecrets = BTreeMap<String, SubscriptionSecret>;

/// Serde's reason, when it names only fields (`unknown field `secret``, `missing field
/// `url``); else where and what kind of error, since serde's other texts quote the value
/// (a token pasted in the wrong field would reach the logs).
fn without_values(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.starts_with("unknown field") || text.starts_with("missing field") {
        return text;
    }
    let what = match error.classify() {
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Eof => "the document ends early",
        _ => "a value of the wrong type, or not one of the documented ones",
    };
    format!("{what} at line {} column {}", error.line(), error.column())
}

/// Check every subscription's secrets: at least one signing secret, each `whsec_` and
/// base64; Basic as `user:password`. The reason names the subscription and the field,
/// never a value.
pub fn check_secrets(secrets: &SubscriptionSecrets) -> Result<(), String> {
    secrets
        .iter()
        .try_for_each(|(name, secret)| check_secret(name, secret))
}

/// Check one subscription's secrets (see [`check_secrets`]).
pub fn check_secret(name: &str, secret: &SubscriptionSecret) -> Result<(), String> {
    {
        if secret.signing.is_empty() {
            return Err(format!("\"{name}\": signing: no signing secret"));
        }
        for (at, signing) in secret.signing.iter().enumerate() {
            if !signing.starts_with("whsec_") {
                return Err(format!("\"{name}\": signing[{at}]: not a whsec_ secret"));
            }
            Standard
                .key(signing)
                .map_err(|reason| format!("\"{name}\": signing[{at}]: {reason}"))?;
        }
        if secret
            .basic
            .as_deref()
            .is_some_and(|pair| !pair.contains(':'))
        {
            return Err(format!("\"{name}\": basic: expected user:password"));
        }
    }
    Ok(())
}

/// A new `whsec_` signing secret from 32 random bytes (24 would do; Svix's are 24).
pub fn new_secret(random: [u8; 32]) -> String {
    Standard.new_secret(random)
}

/// The Standard Webhooks headers for one post of `body`: `webhook-id` (the event id, so
/// a receiver drops repeats), `webhook-timestamp` and `webhook-signature` with one
/// `v1,` signature per secret (during a rotation, the new secret's and the old's).
/// A secret that is not `whsec_` and base64 is named by its place, never shown.
pub fn sign(
    secrets: &[String],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, String> {
    let mut signatures = Vec::with_capacity(secrets.len());
    for (at, secret) in secrets.iter().enumerate() {
        let key = Standard
            .key(secret)
            .map_err(|reason| format!("signing secret {}: {reason}", at + 1))?;
        let headers = Standard.sign(&key, body, id, timestamp);
        signatures.extend(
            headers
                .into_iter()
                .filter(|(name, _)| *name == crate::providers::standard::SIGNATURE_HEADER)
                .map(|(_, value)| value),
        );
    }
    if signatures.is_empty() {
        return Err("no signing secret".to_owned());
    }
    Ok(vec![
        (crate::providers::standard::ID_HEADER, id.to_owned()),
        (
            crate::providers::standard::TIMESTAMP_HEADER,
            timestamp.to_string(),
        ),
        (
            crate::providers::standard::SIGNATURE_HEADER,
            signatures.join(" "),
        ),
    ])
}

/// `Authorization: Basic` for `user:password`.
pub fn basic_authorization(user_and_password: &str) -> String {
    format!(
        "Basic {}",
        general_purpose::STANDARD.encode(user_and_password.as_bytes())
    )
}

/// The body a subscription gets for `event`: the whole event when it asks for it, else
/// the event as the Slack queue gets it ([`crate::routing::notification_view`]).
pub fn payload(subscription: &Subscription, event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    match subscription.full_event {
        true => serde_json::to_vec(event),
        false => serde_json::to_vec(&crate::routing::notification_view(event)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_https_or_loopback_http_without_credentials() {
        for good in [
            "https://hr.example.com/okr",
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        for bad in [
            "http://hr.example.com/okr",
            "http://localhost:8080/hook",
            "https://user:pass@hr.example.com/okr",
            "https://token@hr.example.com/okr",
            "ftp://127.0.0.1/x",
            "hr.example.com",
            " https://hr.example.com",
            "",
        ] {
            assert_eq!(check_url(bad), Err(URL_RULE), "{bad}");
        }
    }

    #[test]
    fn a_document_names_what_is_wrong() {
        let refused = |text: &str| Subscriptions::parse(text).unwrap_err().to_string();
        assert_eq!(
            refused(r#"{"subscriptions": {"Bad Name": {"url": "https://x.example"}}}"#),
            "subscription \"Bad Name\": name: 1 to 64 of a-z, 0-9, - and _"
        );
        assert!(
            refused(r#"{"subscriptions": {"hr": {"url": "http://x.example"}}}"#)
                .starts_with("subscription \"hr\": url: must be an https:// URL")
        );
        assert_eq!(
            refused(
                r#"{"subscriptions": {"hr": {"url": "https://x.example", "rate_per_second": 0}}}"#
            ),
            "subscription \"hr\": rate_per_second: must be at least 1"
        );
        assert!(
            refused(
                r#"{"subscriptions": {"hr": {"url": "https://x.example", "secret": "whsec_x"}}}"#
            )
            .contains("unknown field `secret`")
        );
        assert_eq!(Subscriptions::parse("").unwrap(), Subscriptions::default());
    }

    #[test]
    fn errors_never_quote_a_value() {
        let text =
            r#"{"subscriptions": {"hr": {"url": "https://x.example", "auth": "Bearer s3cr3t"}}}"#;
        let error = Subscriptions::parse(text).unwrap_err().to_string();
        assert!(!error.contains("s3cr3t"), "{error}");
        assert!(error.contains("line 1 column"), "{error}");
        let mut secrets = SubscriptionSecrets::new();
        secrets.insert(
            "hr".into(),
            SubscriptionSecret {
                signing: vec!["whsec_!!notbase64".into()],
                ..Default::default()
            },
        );
        let error = check_secrets(&secrets).unwrap_err();
        assert!(error.starts_with("\"hr\": signing[0]: "), "{error}");
        assert!(!error.contains("notbase64"), "{error}");
        secrets.get_mut("hr").unwrap().signing = vec![new_secret([1; 32])];
        secrets.get_mut("hr").unwrap().basic = Some("nopassword".into());
        assert_eq!(
            check_secrets(&secrets).unwrap_err(),
            "\"hr\": basic: expected user:password"
        );
    }

    #[test]
    fn signing_with_two_secrets_gives_two_signatures() {
        let secrets = [new_secret([1; 32]), new_secret([2; 32])];
        let headers = sign(&secrets, "evt_1", 1_700_000_000, b"{}").unwrap();
        assert_eq!(headers[0], ("webhook-id", "evt_1".to_owned()));
        assert_eq!(headers[1], ("webhook-timestamp", "1700000000".to_owned()));
        let signatures: Vec<&str> = headers[2].1.split(' ').collect();
        assert_eq!(signatures.len(), 2);
        assert!(signatures.iter().all(|s| s.starts_with("v1,")));
        assert_ne!(signatures[0], signatures[1]);
        let error = sign(&[secrets[0].clone(), "nope!".into()], "e", 1, b"{}").unwrap_err();
        assert!(error.starts_with("signing secret 2: "), "{error}");
        assert!(!error.contains("nope"));
    }
}

//! Property tests: no input panics; what is signed verifies; any one-byte change fails.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue};
use okr_core::signature::likely_causes;
use okr_core::{SigningSecret, Source, VerifyError, normalize, sign, verify};
use proptest::prelude::*;
use time::OffsetDateTime;

const NOW: i64 = 1_700_000_000;

fn source() -> impl Strategy<Value = Source> {
    prop::sample::select(Source::ALL.to_vec())
}

/// A secret in the form `source` expects.
fn secret(source: Source) -> BoxedStrategy<SigningSecret> {
    match source {
        Source::PEOPLELOGIC => prop::collection::vec(any::<u8>(), 1..64)
            .prop_map(|key| SigningSecret::new(STANDARD.encode(key)))
            .boxed(),
        Source::STANDARD => prop::collection::vec(any::<u8>(), 1..64)
            .prop_map(|key| SigningSecret::new(format!("whsec_{}", STANDARD.encode(key))))
            .boxed(),
        Source::PEOPLEFORCE | Source::PERSCOM => "[ -~]{1,64}".prop_map(SigningSecret::new).boxed(),
        other => unreachable!("{other} is not a built-in source"),
    }
}

fn signed(source: Source, secret: &SigningSecret, body: &[u8], id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in sign(
        okr_core::providers::provider(source).unwrap(),
        secret,
        body,
        id,
        NOW,
    )
    .unwrap()
    {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    headers
}

/// Header names the schemes read, in any case, plus noise.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "X-Signature",
            "x-peopleforce-signature",
            "SIGNATURE",
            "webhook-id",
            "Webhook-Timestamp",
            "webhook-signature",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z-]{1,20}",
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..100),
        "(sha256=)?[0-9a-fA-F]{0,70}".prop_map(String::into_bytes),
        "(v1,[A-Za-z0-9+/=]{0,50} ?){0,3}".prop_map(String::into_bytes),
        "-?[0-9]{1,20}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_input_never_panics(
        source in source(),
        headers in prop::collection::vec((header_name(), header_value()), 0..6),
        body in prop::collection::vec(any::<u8>(), 0..512),
        secrets in prop::collection::vec("[ -~]{0,40}", 0..3),
        now in any::<i32>(),
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_bytes(&value)) {
                map.append(name, value);
            }
        }
        let secrets: Vec<SigningSecret> = secrets.into_iter().map(SigningSecret::new).collect();
        let now = OffsetDateTime::from_unix_timestamp(i64::from(now)).unwrap();
        if let Err(error) = verify(okr_core::providers::provider(source).unwrap(), &secrets, &map, &body, now) {
            let _ = likely_causes(okr_core::providers::provider(source).unwrap(), &secrets, &map, &body, now, &error);
        }
        let _ = normalize(&okr_core::endpoints::Endpoint::of_source(source).unwrap(), &map, &body, now);
    }

    #[test]
    fn arbitrary_json_objects_always_normalize(
        source in source(),
        body in prop::collection::btree_map("[a-zA-Z_]{1,12}", any::<i64>().prop_map(serde_json::Value::from), 0..8),
        event in "[a-z_]{1,12}[._][a-z_]{1,12}",
    ) {
        let mut object: serde_json::Map<String, serde_json::Value> = body.into_iter().collect();
        for key in ["action", "event", "eventType", "type"] {
            object.insert(key.to_owned(), event.clone().into());
        }
        let bytes = serde_json::to_vec(&object).unwrap();
        let normalized = normalize(&okr_core::endpoints::Endpoint::of_source(source).unwrap(), &HeaderMap::new(), &bytes, OffsetDateTime::UNIX_EPOCH);
        prop_assert!(normalized.is_ok());
    }

    #[test]
    fn what_is_signed_verifies(
        (source, secret) in source().prop_flat_map(|s| (Just(s), secret(s))),
        body in prop::collection::vec(any::<u8>(), 0..1024),
        id in "msg_[A-Za-z0-9]{1,32}",
    ) {
        let headers = signed(source, &secret, &body, &id);
        let now = OffsetDateTime::from_unix_timestamp(NOW).unwrap();
        prop_assert_eq!(verify(okr_core::providers::provider(source).unwrap(), &[secret], &headers, &body, now), Ok(()));
    }

    #[test]
    fn any_one_byte_change_of_the_body_fails(
        (source, secret) in source().prop_flat_map(|s| (Just(s), secret(s))),
        body in prop::collection::vec(any::<u8>(), 1..1024),
        index in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let headers = signed(source, &secret, &body, "msg_1");
        let mut changed = body.clone();
        changed[index.index(body.len())] ^= flip;
        let now = OffsetDateTime::from_unix_timestamp(NOW).unwrap();
        prop_assert_eq!(verify(okr_core::providers::provider(source).unwrap(), &[secret], &headers, &changed, now), Err(VerifyError::WrongSignature));
    }
}

//! Every registered provider, through the registry alone: a secret in its own format
//! signs each of its sample bodies (`events/bodies/<name>/`) so that the delivery
//! verifies and normalizes to an event of that source, and a tampered body, signature or
//! secret is refused.

use http::{HeaderMap, HeaderName, HeaderValue};
use okr_core::providers::provider;
use okr_core::{SigningSecret, Source, VerifyError, normalize, sign, verify};
use time::OffsetDateTime;

const NOW: i64 = 1_764_930_000;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).unwrap()
}

fn samples(source: Source) -> Vec<(String, Vec<u8>)> {
    let dir = format!(
        "{}/../../events/bodies/{}",
        env!("CARGO_MANIFEST_DIR"),
        source.as_str()
    );
    let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect();
    found.sort();
    found
}

fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            )
        })
        .collect()
}

/// `text` with one character changed to another of the same kind, so it still parses.
fn altered(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = chars.len() - 2;
    chars[at] = match chars[at] {
        'A' => 'B',
        '0' => '1',
        c if c.is_ascii_digit() => '0',
        c if c.is_ascii_lowercase() => {
            if c == 'a' {
                'b'
            } else {
                'a'
            }
        }
        _ => 'A',
    };
    chars.into_iter().collect()
}

#[test]
fn every_provider_signs_and_verifies_its_samples_and_refuses_tampered_ones() {
    for source in Source::ALL {
        let provider = provider(source).unwrap();
        let secret = SigningSecret::new(provider.new_secret([7; 32]));
        let other = SigningSecret::new(provider.new_secret([8; 32]));
        assert!(provider.key(secret.expose()).is_ok(), "{source}");
        let bodies = samples(source);
        assert!(!bodies.is_empty(), "{source} has no sample bodies");
        for (name, body) in bodies {
            let signed = sign(
                okr_core::providers::provider(source).unwrap(),
                &secret,
                &body,
                "msg_providers_test",
                NOW,
            )
            .unwrap();
            let map = headers(&signed);
            let secrets = [secret.clone()];
            assert_eq!(
                verify(
                    okr_core::providers::provider(source).unwrap(),
                    &secrets,
                    &map,
                    &body,
                    now()
                ),
                Ok(()),
                "{name}"
            );
            // Rotation: any configured secret verifies.
            let rotated = [other.clone(), secret.clone()];
            assert_eq!(
                verify(
                    okr_core::providers::provider(source).unwrap(),
                    &rotated,
                    &map,
                    &body,
                    now()
                ),
                Ok(()),
                "{name}"
            );
            let event = normalize(
                &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
                &map,
                &body,
                now(),
            )
            .unwrap();
            assert_eq!(event.source, source, "{name}");

            let mut tampered = body.clone();
            tampered.extend_from_slice(b" ");
            assert_eq!(
                verify(
                    okr_core::providers::provider(source).unwrap(),
                    &secrets,
                    &map,
                    &tampered,
                    now()
                ),
                Err(VerifyError::WrongSignature),
                "{name}: a changed body"
            );
            assert_eq!(
                verify(
                    okr_core::providers::provider(source).unwrap(),
                    std::slice::from_ref(&other),
                    &map,
                    &body,
                    now()
                ),
                Err(VerifyError::WrongSignature),
                "{name}: another secret"
            );
            // The last signature header's value changed by one character.
            let mut forged = signed.clone();
            let last = forged.len() - 1;
            forged[last].1 = altered(&forged[last].1);
            assert!(
                verify(
                    okr_core::providers::provider(source).unwrap(),
                    &secrets,
                    &headers(&forged),
                    &body,
                    now()
                )
                .is_err(),
                "{name}: a changed signature {:?}",
                forged[last]
            );
            // No signature at all.
            assert!(matches!(
                verify(
                    okr_core::providers::provider(source).unwrap(),
                    &secrets,
                    &HeaderMap::new(),
                    &body,
                    now()
                ),
                Err(VerifyError::MissingHeader(_))
            ));
        }
    }
}

#[test]
fn each_source_name_is_its_route_secret_and_event_name() {
    for source in Source::ALL {
        assert_eq!(source.as_str().parse::<Source>(), Ok(source));
        assert_eq!(
            serde_json::to_string(&source).unwrap(),
            format!("\"{}\"", source.as_str())
        );
        assert!(Source::names().contains(source.as_str()));
        assert!(!provider(source).unwrap().display_name().is_empty());
        assert!(!provider(source).unwrap().signature_format().is_empty());
    }
    // Any name is a source (a declared scheme's is its endpoint's), but only the built-in
    // ones and the presets have a provider in the registry.
    assert!("Not a name!".parse::<Source>().is_err());
    assert!(provider("nobody".parse().unwrap()).is_none());
}

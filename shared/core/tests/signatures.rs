//! Signature schemes: sign-then-verify, tampered inputs, rotation, the published
//! Standard Webhooks vector and the official Standard Webhooks library.

use http::{HeaderMap, HeaderName, HeaderValue};
use okr_core::providers::peopleforce::HEADER as PEOPLEFORCE_HEADER;
use okr_core::providers::peoplelogic::HEADER as PEOPLELOGIC_HEADER;
use okr_core::providers::perscom::HEADER as PERSCOM_HEADER;
use okr_core::providers::standard::SIGNATURE_HEADER as STANDARD_SIGNATURE_HEADER;
use okr_core::signature::{TIMESTAMP_TOLERANCE_SECS, likely_causes};
use okr_core::{SigningSecret, Source, VerifyError, sign, verify};
use time::OffsetDateTime;

const NOW: i64 = 1_614_265_330;
const BODY: &[u8] = br#"{"action":"employee_create","data":{"id":130333}}"#;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).unwrap()
}

fn secret_for(source: Source) -> SigningSecret {
    SigningSecret::new(match source {
        Source::PEOPLELOGIC => "YWJjMTIzIT8kKiYoKSctPUB+",
        Source::PEOPLEFORCE => "pf-webhook-secret",
        Source::PERSCOM => "s3cret",
        Source::STANDARD => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        other => unreachable!("{other} is not a built-in source"),
    })
}

fn other_secret_for(source: Source) -> SigningSecret {
    SigningSecret::new(match source {
        Source::PEOPLELOGIC => "b3RoZXIta2V5LWJ5dGVzIQ==",
        Source::PEOPLEFORCE | Source::PERSCOM => "another-secret",
        Source::STANDARD => "whsec_dGhlLW90aGVyLXdoc2VjLWtleS1ieXRlcw==",
        other => unreachable!("{other} is not a built-in source"),
    })
}

fn signature_header(source: Source) -> &'static str {
    match source {
        Source::PEOPLELOGIC => PEOPLELOGIC_HEADER,
        Source::PEOPLEFORCE => PEOPLEFORCE_HEADER,
        Source::PERSCOM => PERSCOM_HEADER,
        Source::STANDARD => STANDARD_SIGNATURE_HEADER,
        other => unreachable!("{other} is not a built-in source"),
    }
}

fn signed_headers(source: Source, secret: &SigningSecret, body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in sign(
        okr_core::providers::provider(source).unwrap(),
        secret,
        body,
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        NOW,
    )
    .unwrap()
    {
        headers.append(
            HeaderName::from_static_lower(name),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    headers
}

trait FromStaticLower {
    fn from_static_lower(name: &str) -> HeaderName;
}

impl FromStaticLower for HeaderName {
    fn from_static_lower(name: &str) -> HeaderName {
        HeaderName::from_bytes(name.as_bytes()).unwrap()
    }
}

fn check(
    source: Source,
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), VerifyError> {
    verify(
        okr_core::providers::provider(source).unwrap(),
        secrets,
        headers,
        body,
        now(),
    )
}

/// Replace the signature header's value.
fn with_signature(headers: &HeaderMap, source: Source, value: &str) -> HeaderMap {
    let mut headers = headers.clone();
    headers.insert(
        signature_header(source),
        HeaderValue::from_str(value).unwrap(),
    );
    headers
}

fn signature_value(headers: &HeaderMap, source: Source) -> String {
    headers
        .get(signature_header(source))
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn every_source_verifies_what_it_signs() {
    for source in Source::ALL {
        let secret = secret_for(source);
        let headers = signed_headers(source, &secret, BODY);
        assert_eq!(check(source, &[secret], &headers, BODY), Ok(()), "{source}");
    }
}

#[test]
fn header_names_match_case_insensitively() {
    for source in Source::ALL {
        let secret = secret_for(source);
        let mut shouted = HeaderMap::new();
        for (name, value) in &signed_headers(source, &secret, BODY) {
            let upper = name.as_str().to_ascii_uppercase();
            shouted.append(
                HeaderName::from_bytes(upper.as_bytes()).unwrap(),
                value.clone(),
            );
        }
        assert_eq!(check(source, &[secret], &shouted, BODY), Ok(()), "{source}");
    }
}

#[test]
fn tampered_deliveries_are_rejected_with_the_right_reason() {
    for source in Source::ALL {
        let secret = secret_for(source);
        let good = signed_headers(source, &secret, BODY);
        let header = signature_header(source);
        let value = signature_value(&good, source);
        let malformed = |reason| Err(VerifyError::MalformedHeader { header, reason });

        // Body changed by one byte.
        let mut changed = BODY.to_vec();
        changed[10] ^= 0x01;
        assert_eq!(
            check(source, std::slice::from_ref(&secret), &good, &changed),
            Err(VerifyError::WrongSignature),
            "{source}: body"
        );

        // Wrong secret.
        assert_eq!(
            check(source, &[other_secret_for(source)], &good, BODY),
            Err(VerifyError::WrongSignature),
            "{source}: secret"
        );

        // Header missing.
        let mut missing = good.clone();
        missing.remove(header);
        assert_eq!(
            check(source, std::slice::from_ref(&secret), &missing, BODY),
            Err(VerifyError::MissingHeader(header)),
            "{source}: missing"
        );

        // Header empty.
        let empty = with_signature(&good, source, "");
        assert_eq!(
            check(source, std::slice::from_ref(&secret), &empty, BODY),
            malformed("empty"),
            "{source}: empty"
        );

        // Header duplicated.
        let mut twice = good.clone();
        twice.append(header, HeaderValue::from_str(&value).unwrap());
        assert_eq!(
            check(source, std::slice::from_ref(&secret), &twice, BODY),
            malformed("sent more than once"),
            "{source}: twice"
        );

        // Wrong prefix.
        let (wrong_prefix, reason) = match source {
            Source::PEOPLELOGIC => (
                format!("sha256={value}"),
                "expected the base64 of a 32-byte HMAC-SHA256",
            ),
            Source::PEOPLEFORCE => (
                value.replacen("sha256=", "sha1=", 1),
                "expected sha256=<hex digest>",
            ),
            Source::PERSCOM => (
                format!("sha256={value}"),
                "PERSCOM signatures carry no sha256= prefix",
            ),
            Source::STANDARD => (
                value.replacen("v1,", "v2,", 1),
                "expected one or more v1,<base64> signatures",
            ),
            other => unreachable!("{other} is not a built-in source"),
        };
        let prefixed = with_signature(&good, source, &wrong_prefix);
        assert_eq!(
            check(source, std::slice::from_ref(&secret), &prefixed, BODY),
            malformed(reason),
            "{source}: prefix"
        );

        // Upper-case: hex digests are the same MAC in either case; base64 is not.
        let upper = with_signature(
            &good,
            source,
            &value
                .to_ascii_uppercase()
                .replacen("SHA256=", "sha256=", 1)
                .replacen("V1,", "v1,", 1),
        );
        let expected = match source {
            Source::PEOPLEFORCE | Source::PERSCOM => Ok(()),
            Source::PEOPLELOGIC | Source::STANDARD => Err(VerifyError::WrongSignature),
            other => unreachable!("{other} is not a built-in source"),
        };
        assert_eq!(
            check(source, std::slice::from_ref(&secret), &upper, BODY),
            expected,
            "{source}: upper case"
        );

        // Truncated.
        let truncated = with_signature(&good, source, &value[..value.len() - 4]);
        let reason = match source {
            Source::PEOPLELOGIC => "expected the base64 of a 32-byte HMAC-SHA256",
            Source::PEOPLEFORCE => "expected 64 hex digits after sha256=",
            Source::PERSCOM => "expected 64 hex digits",
            Source::STANDARD => "expected one or more v1,<base64> signatures",
            other => unreachable!("{other} is not a built-in source"),
        };
        assert_eq!(
            check(source, std::slice::from_ref(&secret), &truncated, BODY),
            malformed(reason),
            "{source}: truncated"
        );

        // Rotation: the second of two secrets matches.
        assert_eq!(
            check(
                source,
                &[other_secret_for(source), secret.clone()],
                &good,
                BODY
            ),
            Ok(()),
            "{source}: rotation"
        );
        // ... and a delivery signed with the new secret passes while the old is still listed.
        let rotated = signed_headers(source, &other_secret_for(source), BODY);
        assert_eq!(
            check(
                source,
                &[secret.clone(), other_secret_for(source)],
                &rotated,
                BODY
            ),
            Ok(()),
            "{source}: rotation new"
        );
    }
}

#[test]
fn a_source_without_secrets_accepts_nothing() {
    for source in Source::ALL {
        let headers = signed_headers(source, &secret_for(source), BODY);
        assert_eq!(
            check(source, &[], &headers, BODY),
            Err(VerifyError::NoSecret)
        );
    }
}

#[test]
fn unusable_secrets_are_told_apart_and_skipped_during_rotation() {
    let not_base64 = SigningSecret::new("this is not base64!");
    let headers = signed_headers(Source::PEOPLELOGIC, &secret_for(Source::PEOPLELOGIC), BODY);
    assert!(matches!(
        check(
            Source::PEOPLELOGIC,
            std::slice::from_ref(&not_base64),
            &headers,
            BODY
        ),
        Err(VerifyError::UnusableSecret(_))
    ));
    assert_eq!(
        check(
            Source::PEOPLELOGIC,
            &[not_base64, secret_for(Source::PEOPLELOGIC)],
            &headers,
            BODY
        ),
        Ok(())
    );
    assert!(matches!(
        sign(
            okr_core::providers::provider(Source::STANDARD).unwrap(),
            &SigningSecret::new("whsec_***"),
            BODY,
            "id",
            NOW
        ),
        Err(VerifyError::UnusableSecret(_))
    ));
    assert!(matches!(
        check(
            Source::PERSCOM,
            &[SigningSecret::new("")],
            &signed_headers(Source::PERSCOM, &secret_for(Source::PERSCOM), BODY),
            BODY
        ),
        Err(VerifyError::UnusableSecret(_))
    ));
}

#[test]
fn error_texts_never_contain_the_secret() {
    let secret = SigningSecret::new("not!base64!hunter2");
    let headers = signed_headers(Source::PEOPLEFORCE, &SigningSecret::new("x"), BODY);
    for source in Source::ALL {
        if let Err(error) = check(source, std::slice::from_ref(&secret), &headers, BODY) {
            assert!(!error.to_string().contains("hunter2"), "{error}");
            assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
        }
    }
}

// Standard Webhooks ---------------------------------------------------------------

const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn standard_headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", HeaderValue::from_str(id).unwrap());
    headers.insert(
        "webhook-timestamp",
        HeaderValue::from_str(&timestamp.to_string()).unwrap(),
    );
    headers.insert(
        "webhook-signature",
        HeaderValue::from_str(signature).unwrap(),
    );
    headers
}

#[test]
fn the_published_standard_webhooks_vector_verifies_and_a_compact_copy_does_not() {
    let secret = [SigningSecret::new(VECTOR_SECRET)];
    let headers = standard_headers(VECTOR_ID, NOW, VECTOR_SIGNATURE);
    assert_eq!(
        verify(
            okr_core::providers::provider(Source::STANDARD).unwrap(),
            &secret,
            &headers,
            VECTOR_BODY,
            now()
        ),
        Ok(())
    );
    assert_eq!(
        verify(
            okr_core::providers::provider(Source::STANDARD).unwrap(),
            &secret,
            &headers,
            br#"{"test":2432232314}"#,
            now()
        ),
        Err(VerifyError::WrongSignature)
    );
    let signed = sign(
        okr_core::providers::provider(Source::STANDARD).unwrap(),
        &secret[0],
        VECTOR_BODY,
        VECTOR_ID,
        NOW,
    )
    .unwrap();
    assert_eq!(
        signed[2],
        ("webhook-signature", VECTOR_SIGNATURE.to_owned())
    );
}

#[test]
fn standard_timestamps_are_accepted_within_five_minutes_either_way() {
    let secret = [SigningSecret::new(VECTOR_SECRET)];
    let headers = standard_headers(VECTOR_ID, NOW, VECTOR_SIGNATURE);
    let at = |offset: i64| OffsetDateTime::from_unix_timestamp(NOW + offset).unwrap();
    for offset in [-TIMESTAMP_TOLERANCE_SECS, 0, TIMESTAMP_TOLERANCE_SECS] {
        assert_eq!(
            verify(
                okr_core::providers::provider(Source::STANDARD).unwrap(),
                &secret,
                &headers,
                VECTOR_BODY,
                at(offset)
            ),
            Ok(())
        );
    }
    // The clock is 301 s ahead of the timestamp: the delivery is too old.
    assert_eq!(
        verify(
            okr_core::providers::provider(Source::STANDARD).unwrap(),
            &secret,
            &headers,
            VECTOR_BODY,
            at(301)
        ),
        Err(VerifyError::TimestampOutOfTolerance {
            skew: -301,
            tolerance: 300
        })
    );
    assert_eq!(
        verify(
            okr_core::providers::provider(Source::STANDARD).unwrap(),
            &secret,
            &headers,
            VECTOR_BODY,
            at(-301)
        ),
        Err(VerifyError::TimestampOutOfTolerance {
            skew: 301,
            tolerance: 300
        })
    );
    let bad_timestamp = {
        let mut h = headers.clone();
        h.insert(
            "webhook-timestamp",
            HeaderValue::from_static("2021-02-25T15:02:10Z"),
        );
        h
    };
    assert_eq!(
        verify(
            okr_core::providers::provider(Source::STANDARD).unwrap(),
            &secret,
            &bad_timestamp,
            VECTOR_BODY,
            now()
        ),
        Err(VerifyError::MalformedHeader {
            header: "webhook-timestamp",
            reason: "expected a Unix timestamp in seconds"
        })
    );
}

#[test]
fn any_of_several_standard_signatures_may_match() {
    let secret = [SigningSecret::new(VECTOR_SECRET)];
    let other = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=";
    for list in [
        format!("{other} {VECTOR_SIGNATURE}"),
        format!("v1a,abc {VECTOR_SIGNATURE}"),
        format!("{VECTOR_SIGNATURE}  {other}"),
    ] {
        let headers = standard_headers(VECTOR_ID, NOW, &list);
        assert_eq!(
            verify(
                okr_core::providers::provider(Source::STANDARD).unwrap(),
                &secret,
                &headers,
                VECTOR_BODY,
                now()
            ),
            Ok(()),
            "{list}"
        );
    }
    let headers = standard_headers(VECTOR_ID, NOW, other);
    assert_eq!(
        verify(
            okr_core::providers::provider(Source::STANDARD).unwrap(),
            &secret,
            &headers,
            VECTOR_BODY,
            now()
        ),
        Err(VerifyError::WrongSignature)
    );
    // The id and timestamp are signed too.
    let headers = standard_headers("msg_other", NOW, VECTOR_SIGNATURE);
    assert_eq!(
        verify(
            okr_core::providers::provider(Source::STANDARD).unwrap(),
            &secret,
            &headers,
            VECTOR_BODY,
            now()
        ),
        Err(VerifyError::WrongSignature)
    );
}

#[test]
fn the_official_standard_webhooks_library_agrees_both_ways() {
    let webhook = standardwebhooks::Webhook::new(VECTOR_SECRET).unwrap();
    let secret = SigningSecret::new(VECTOR_SECRET);
    let now = OffsetDateTime::now_utc();
    let body =
        br#"{"type":"objective.completed","timestamp":"2025-06-02T14:21:07Z","data":{"id":"o1"}}"#;

    // Theirs signs, ours verifies; a tampered copy fails.
    let theirs = webhook
        .sign("msg_theirs", now.unix_timestamp(), body)
        .unwrap();
    let headers = standard_headers("msg_theirs", now.unix_timestamp(), &theirs);
    assert_eq!(
        verify(
            okr_core::providers::provider(Source::STANDARD).unwrap(),
            std::slice::from_ref(&secret),
            &headers,
            body,
            now
        ),
        Ok(())
    );
    let mut tampered = body.to_vec();
    tampered[3] = b'T';
    assert_eq!(
        verify(
            okr_core::providers::provider(Source::STANDARD).unwrap(),
            std::slice::from_ref(&secret),
            &headers,
            &tampered,
            now
        ),
        Err(VerifyError::WrongSignature)
    );

    // Ours signs, theirs verifies.
    let mut ours = HeaderMap::new();
    for (name, value) in sign(
        okr_core::providers::provider(Source::STANDARD).unwrap(),
        &secret,
        body,
        "msg_ours",
        now.unix_timestamp(),
    )
    .unwrap()
    {
        ours.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    assert!(webhook.verify(body, &ours).is_ok());
    assert!(webhook.verify(&tampered, &ours).is_err());
}

// Diagnosis --------------------------------------------------------------------------

fn confirmed_causes(
    source: Source,
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<String> {
    let error = verify(
        okr_core::providers::provider(source).unwrap(),
        secrets,
        headers,
        body,
        now(),
    )
    .unwrap_err();
    likely_causes(
        okr_core::providers::provider(source).unwrap(),
        secrets,
        headers,
        body,
        now(),
        &error,
    )
    .into_iter()
    .filter(|cause| cause.confirmed)
    .map(|cause| cause.text)
    .collect()
}

#[test]
fn diagnosis_confirms_a_final_newline_and_a_reserialized_body() {
    let secret = secret_for(Source::PERSCOM);
    let headers = signed_headers(Source::PERSCOM, &secret, BODY);
    let mut with_newline = BODY.to_vec();
    with_newline.push(b'\n');
    let causes = confirmed_causes(
        Source::PERSCOM,
        std::slice::from_ref(&secret),
        &headers,
        &with_newline,
    );
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert!(causes[0].contains("final newline"), "{causes:?}");

    let pretty =
        serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(BODY).unwrap())
            .unwrap();
    let causes = confirmed_causes(
        Source::PERSCOM,
        std::slice::from_ref(&secret),
        &headers,
        &pretty,
    );
    assert!(
        causes.iter().any(|c| c.contains("re-serialized")),
        "{causes:?}"
    );
}

#[test]
fn diagnosis_confirms_stray_whitespace_and_an_undecoded_peoplelogic_secret() {
    let secret = secret_for(Source::PEOPLEFORCE);
    let headers = signed_headers(Source::PEOPLEFORCE, &secret, BODY);
    let padded = SigningSecret::new(format!(" {}\n", secret.expose()));
    let causes = confirmed_causes(Source::PEOPLEFORCE, &[padded], &headers, BODY);
    assert!(
        causes.iter().any(|c| c.contains("stray whitespace")),
        "{causes:?}"
    );

    // Someone signed with the secretBase64 text as the key.
    let text = secret_for(Source::PEOPLELOGIC);
    let raw_key = SigningSecret::new(base64_of(text.expose().as_bytes()));
    let headers = signed_headers(Source::PEOPLELOGIC, &raw_key, BODY);
    let causes = confirmed_causes(Source::PEOPLELOGIC, &[text], &headers, BODY);
    assert!(
        causes
            .iter()
            .any(|c| c.contains("secretBase64 text itself")),
        "{causes:?}"
    );
}

#[test]
fn diagnosis_confirms_a_missing_sha256_prefix() {
    let secret = secret_for(Source::PEOPLEFORCE);
    let headers = signed_headers(Source::PEOPLEFORCE, &secret, BODY);
    let bare = signature_value(&headers, Source::PEOPLEFORCE).replacen("sha256=", "", 1);
    let headers = with_signature(&headers, Source::PEOPLEFORCE, &bare);
    let causes = confirmed_causes(Source::PEOPLEFORCE, &[secret], &headers, BODY);
    assert!(
        causes
            .iter()
            .any(|c| c.contains("missing the sha256= prefix")),
        "{causes:?}"
    );
}

#[test]
fn diagnosis_confirms_nothing_for_a_plain_forgery() {
    let secret = secret_for(Source::PERSCOM);
    let headers = with_signature(&HeaderMap::new(), Source::PERSCOM, &"ab".repeat(32));
    assert!(confirmed_causes(Source::PERSCOM, &[secret], &headers, BODY).is_empty());
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn extreme_standard_timestamps_are_out_of_tolerance_not_a_panic() {
    let secret = [SigningSecret::new(VECTOR_SECRET)];
    for timestamp in [i64::MIN, i64::MAX, -1, 0] {
        let headers = standard_headers(VECTOR_ID, timestamp, VECTOR_SIGNATURE);
        assert!(matches!(
            verify(
                okr_core::providers::provider(Source::STANDARD).unwrap(),
                &secret,
                &headers,
                VECTOR_BODY,
                now()
            ),
            Err(VerifyError::TimestampOutOfTolerance { .. })
        ));
    }
}

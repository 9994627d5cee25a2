//! Endpoints, declared schemes and mappings: every combination of algorithm, encoding,
//! key format and signed template round-trips; timestamps are held to their tolerance;
//! rotation; two endpoints of one preset keep their own secrets; the issue's mapping
//! example and a second tool's nested one normalize to events the schema accepts; a bad
//! document is refused with the endpoint and the field named.

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use time::OffsetDateTime;

use okr_core::endpoints::{Endpoint, Endpoints};
use okr_core::normalize::NormalizeError;
use okr_core::signature::{likely_causes, sign_delivery};
use okr_core::{SigningSecret, VerifyError, normalize, verify};

const NOW: i64 = 1_764_950_400;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).unwrap()
}

fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn endpoint_with(scheme: Value) -> Endpoint {
    let document = json!({"endpoints": {"custom": {"scheme": scheme}}});
    Endpoints::parse(&document.to_string())
        .unwrap()
        .get("custom")
        .unwrap()
}

/// Sign with our signer, and check with a MAC computed here by hand from the scheme's
/// description, so a mistake shared by both our signer and verifier cannot pass.
fn hand_signature(
    algorithm: &str,
    key: &[u8],
    message: &[u8],
    encoding: &str,
    prefix: &str,
) -> String {
    use hmac::{KeyInit, Mac};
    let mac: Vec<u8> = match algorithm {
        "sha1" => {
            let mut m = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key).unwrap();
            m.update(message);
            m.finalize().into_bytes().to_vec()
        }
        "sha256" => {
            let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
            m.update(message);
            m.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut m = <hmac::Hmac<sha2::Sha512> as KeyInit>::new_from_slice(key).unwrap();
            m.update(message);
            m.finalize().into_bytes().to_vec()
        }
    };
    let encoded = match encoding {
        "hex" => hex::encode(mac),
        _ => base64::engine::general_purpose::STANDARD.encode(mac),
    };
    format!("{prefix}{encoded}")
}

#[test]
fn every_algorithm_encoding_key_format_and_template_round_trips() {
    let body = br#"{"event":"goal.progress","goal":{"id":"g1","progress":40}}"#;
    let raw_key = b"0123456789abcdef0123456789abcdef";
    let key_texts = [
        ("utf8", String::from_utf8(raw_key.to_vec()).unwrap()),
        (
            "base64",
            base64::engine::general_purpose::STANDARD.encode(raw_key),
        ),
        ("hex", hex::encode(raw_key)),
        (
            "whsec",
            format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(raw_key)
            ),
        ),
    ];
    let templates = [
        "{body}",
        "{timestamp}.{body}",
        "{id}.{timestamp}.{body}",
        "{body}{timestamp}",
        "{body}:{timestamp}",
        "{method}{body}",
        "v0:{timestamp}:{body}",
    ];
    let mut combinations = 0;
    for algorithm in ["sha1", "sha256", "sha512"] {
        for encoding in ["hex", "base64"] {
            for (key_format, secret) in &key_texts {
                for template in templates {
                    let scheme = json!({
                        "header": "X-Sig", "algorithm": algorithm, "encoding": encoding,
                        "prefix": "v1=", "signed": template, "key": key_format,
                        "timestamp": {"header": "X-Time", "unit": "s"},
                        "id": {"header": "X-Id"},
                    });
                    let endpoint = endpoint_with(scheme);
                    let secret = SigningSecret::new(secret.as_str());
                    let (signed, sent) =
                        sign_delivery(endpoint.provider(), &secret, body, "msg_1", NOW).unwrap();
                    assert_eq!(sent, body);
                    let map = headers(&signed);
                    let message = template
                        .replace("{timestamp}", &NOW.to_string())
                        .replace("{id}", "msg_1")
                        .replace("{method}", "POST")
                        .replace("{body}", std::str::from_utf8(body).unwrap());
                    let expected =
                        hand_signature(algorithm, raw_key, message.as_bytes(), encoding, "v1=");
                    assert_eq!(
                        map["x-sig"], expected,
                        "{algorithm} {encoding} {key_format} {template}"
                    );
                    let secrets = [secret];
                    assert_eq!(
                        verify(endpoint.provider(), &secrets, &map, body, now()),
                        Ok(())
                    );
                    let mut tampered = body.to_vec();
                    tampered[10] ^= 1;
                    assert_eq!(
                        verify(endpoint.provider(), &secrets, &map, &tampered, now()),
                        Err(VerifyError::WrongSignature),
                        "{algorithm} {encoding} {key_format} {template}"
                    );
                    combinations += 1;
                }
            }
        }
    }
    assert_eq!(combinations, 3 * 2 * 4 * 7);
}

#[test]
fn timestamps_hold_to_the_tolerance_in_seconds_or_milliseconds() {
    for (unit, scale) in [("s", 1), ("ms", 1000)] {
        let endpoint = endpoint_with(json!({
            "header": "X-Sig", "algorithm": "sha256", "encoding": "hex",
            "signed": "{timestamp}.{body}",
            "timestamp": {"header": "X-Time", "unit": unit, "tolerance_s": 60},
        }));
        let secrets = [SigningSecret::new("s3cret")];
        let body = br#"{"a":1}"#;
        for (offset, ok) in [
            (0, true),
            (60, true),
            (-60, true),
            (61, false),
            (-61, false),
        ] {
            let signed =
                okr_core::sign(endpoint.provider(), &secrets[0], body, "", NOW + offset).unwrap();
            let result = verify(
                endpoint.provider(),
                &secrets,
                &headers(&signed),
                body,
                now(),
            );
            match ok {
                true => assert_eq!(result, Ok(()), "{unit} {offset}"),
                false => assert_eq!(
                    result,
                    Err(VerifyError::TimestampOutOfTolerance {
                        skew: offset,
                        tolerance: 60
                    }),
                    "{unit} {offset}"
                ),
            }
            let _ = scale;
        }
    }
}

#[test]
fn rotation_any_listed_secret_verifies_and_a_removed_one_does_not() {
    let endpoint =
        endpoint_with(json!({"header": "X-Sig", "algorithm": "sha256", "encoding": "hex"}));
    let body = br#"{"a":1}"#;
    let old = SigningSecret::new("old-secret");
    let new = SigningSecret::new("new-secret");
    let by_old = headers(&okr_core::sign(endpoint.provider(), &old, body, "", NOW).unwrap());
    let by_new = headers(&okr_core::sign(endpoint.provider(), &new, body, "", NOW).unwrap());
    let both = [new.clone(), old.clone()];
    assert_eq!(
        verify(endpoint.provider(), &both, &by_old, body, now()),
        Ok(())
    );
    assert_eq!(
        verify(endpoint.provider(), &both, &by_new, body, now()),
        Ok(())
    );
    let only_new = [new];
    assert_eq!(
        verify(endpoint.provider(), &only_new, &by_old, body, now()),
        Err(VerifyError::WrongSignature)
    );
}

#[test]
fn a_separator_lists_several_signatures_and_any_may_match() {
    let endpoint = endpoint_with(json!({
        "header": "X-Sig", "algorithm": "sha256", "encoding": "base64", "prefix": "v1,",
        "separator": " ", "signed": "{id}.{timestamp}.{body}", "key": "whsec",
        "id": {"header": "webhook-id"},
        "timestamp": {"header": "webhook-timestamp", "unit": "s", "tolerance_s": 300},
    }));
    let secret = SigningSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let body = br#"{"type":"goal.updated"}"#;
    let mut signed = okr_core::sign(endpoint.provider(), &secret, body, "msg_x", NOW).unwrap();
    let signature = signed.pop().unwrap().1;
    signed.push(("X-Sig", format!("v1,bm90LWEtc2lnbmF0dXJl {signature}")));
    assert_eq!(
        verify(
            endpoint.provider(),
            &[secret],
            &headers(&signed),
            body,
            now()
        ),
        Ok(())
    );
}

/// A declared Standard Webhooks scheme verifies what the built-in Standard Webhooks
/// provider signs: the two descriptions agree.
#[test]
fn a_declared_standard_webhooks_scheme_agrees_with_the_built_in_one() {
    let endpoint = endpoint_with(json!({
        "header": "webhook-signature", "algorithm": "sha256", "encoding": "base64",
        "prefix": "v1,", "separator": " ", "signed": "{id}.{timestamp}.{body}", "key": "whsec",
        "id": {"header": "webhook-id"},
        "timestamp": {"header": "webhook-timestamp", "unit": "s", "tolerance_s": 300},
    }));
    let builtin = Endpoint::of_source(okr_core::Source::STANDARD).unwrap();
    let secret = SigningSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let body = br#"{"type":"key_result.updated","data":{"id":"kr_1"}}"#;
    let signed = okr_core::sign(
        builtin.provider(),
        &secret,
        body,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        NOW,
    )
    .unwrap();
    assert_eq!(
        verify(
            endpoint.provider(),
            &[secret],
            &headers(&signed),
            body,
            now()
        ),
        Ok(())
    );
}

#[test]
fn two_endpoints_of_one_preset_accept_only_their_own_secret() {
    let endpoints = Endpoints::parse(
        r#"{"endpoints": {"hr-eu": {"preset": "peopleforce"}, "hr-us": {"preset": "peopleforce"}}}"#,
    )
    .unwrap();
    let (eu, us) = (
        endpoints.get("hr-eu").unwrap(),
        endpoints.get("hr-us").unwrap(),
    );
    assert_eq!(eu.source(), us.source());
    let secrets =
        okr_core::signing::SigningSecrets::parse(r#"{"hr-eu": "eu-secret", "hr-us": "us-secret"}"#)
            .unwrap();
    let body = br#"{"action":"employee_create","data":{"id":1}}"#;
    let by_eu = headers(
        &okr_core::sign(
            eu.provider(),
            &SigningSecret::new("eu-secret"),
            body,
            "",
            NOW,
        )
        .unwrap(),
    );
    let check = |endpoint: &Endpoint| {
        verify(
            endpoint.provider(),
            secrets.for_endpoint(endpoint.name()),
            &by_eu,
            body,
            now(),
        )
    };
    assert_eq!(check(&eu), Ok(()));
    assert_eq!(check(&us), Err(VerifyError::WrongSignature));
    // And the two never share event ids, while the default endpoint keeps its old ones.
    let a = normalize(&eu, &by_eu, body, now()).unwrap();
    let b = normalize(&us, &by_eu, body, now()).unwrap();
    let default = normalize(
        &Endpoint::of_source(okr_core::Source::PEOPLEFORCE).unwrap(),
        &by_eu,
        body,
        now(),
    )
    .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(
        default.id,
        okr_core::normalize::event_id(okr_core::Source::PEOPLEFORCE, body)
    );
    assert_eq!(
        (a.endpoint(), a.source),
        (eu.name(), okr_core::Source::PEOPLEFORCE)
    );
}

/// The issue's example document, as docs/writing-a-scheme.md shows it.
const EXAMPLE: &str = r#"{"endpoints": {
  "hr-eu":  {"preset": "peopleforce"},
  "hiring": {"preset": "greenhouse"},
  "goals":  {
    "scheme": {
      "header": "X-Goals-Signature", "algorithm": "sha256", "encoding": "hex", "prefix": "sha256=",
      "signed": "{timestamp}.{body}", "key": "utf8",
      "timestamp": {"header": "X-Goals-Timestamp", "unit": "s", "tolerance_s": 300}
    },
    "mapping": {
      "event": "/event",
      "types": {"goal.progress": "key_result.progress_updated", "goal.done": "key_result.completed"},
      "entity": {"kind": "key_result", "id": "/goal/id", "title": "/goal/name", "parent": "/goal/objective_id"},
      "progress": {"current": "/goal/progress", "previous": "/goal/previous_progress"},
      "status": "/goal/status", "actor": {"id": "/by/id", "name": "/by/name"}, "occurred_at": "/sent_at"
    }
  }
}}"#;

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schema/event.v1.json"
    ))
    .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[test]
fn the_example_mapping_normalizes_as_documented() {
    let endpoints = Endpoints::parse(EXAMPLE).unwrap();
    let goals = endpoints.get("goals").unwrap();
    let body = br#"{"event":"goal.progress","sent_at":"2026-12-05T10:00:00Z","by":{"id":"u7","name":"Sam Okafor"},"goal":{"id":"g42","name":"Reach 500 weekly active teams","objective_id":"o9","progress":60,"previous_progress":45,"status":"on_track"}}"#;
    let secret = SigningSecret::new("goals-secret");
    let signed = headers(&okr_core::sign(goals.provider(), &secret, body, "", NOW).unwrap());
    assert_eq!(
        verify(goals.provider(), &[secret], &signed, body, now()),
        Ok(())
    );
    let event = normalize(&goals, &signed, body, now()).unwrap();
    assert_eq!(event.event_type, "key_result.progress_updated");
    assert_eq!(event.provider_event, "goal.progress");
    assert_eq!(event.source.as_str(), "goals");
    assert_eq!(event.endpoint().as_str(), "goals");
    assert_eq!(event.entity.kind, "key_result");
    assert_eq!(event.entity.id.as_deref(), Some("g42"));
    assert_eq!(
        event.entity.name.as_deref(),
        Some("Reach 500 weekly active teams")
    );
    assert_eq!(event.entity.parent.as_deref(), Some("o9"));
    let progress = event.progress.as_ref().unwrap();
    assert_eq!(
        (progress.previous, progress.current),
        (Some(45.0), Some(60.0))
    );
    assert_eq!(
        event.status.as_ref().unwrap().current.as_deref(),
        Some("on_track")
    );
    let actor = event.actor.as_ref().unwrap();
    assert_eq!(
        (actor.id.as_deref(), actor.name.as_deref()),
        (Some("u7"), Some("Sam Okafor"))
    );
    assert_eq!(event.occurred_at.unix_timestamp(), 1_796_464_800);
    let value = serde_json::to_value(&event).unwrap();
    assert!(schema().is_valid(&value), "{value}");

    // A name `types` does not list becomes `<endpoint>.<name>`, and still an event.
    let other = br#"{"event":"goal.archived","goal":{"id":"g42"}}"#;
    let event = normalize(&goals, &HeaderMap::new(), other, now()).unwrap();
    assert_eq!(event.event_type, "goals.goal_archived");
    assert!(schema().is_valid(&serde_json::to_value(&event).unwrap()));

    // A pointer that finds nothing, null or an empty string leaves the field empty.
    let blank = br#"{"event":"goal.done","goal":{"id":"","progress":null}}"#;
    let event = normalize(&goals, &HeaderMap::new(), blank, now()).unwrap();
    assert_eq!((event.entity.id, event.progress), (None, None));
    let sparse = br#"{"event":"goal.done"}"#;
    let event = normalize(&goals, &HeaderMap::new(), sparse, now()).unwrap();
    assert_eq!(event.event_type, "key_result.completed");
    assert_eq!(event.entity.id, None);
    assert_eq!(event.progress, None);

    // A value of the wrong type is a clear error naming the pointer.
    let wrong = br#"{"event":"goal.progress","goal":{"id":"g42","progress":"most of it"}}"#;
    let error = normalize(&goals, &HeaderMap::new(), wrong, now()).unwrap_err();
    assert!(matches!(error, NormalizeError::Mapping(_)));
    assert_eq!(
        error.to_string(),
        "mapping: /goal/progress (progress.current) is string, expected a number"
    );

    // The hyphenated preset endpoint and the preset named by a data file both resolve.
    assert_eq!(
        endpoints.get("hiring").unwrap().source().as_str(),
        "greenhouse"
    );
    assert_eq!(
        endpoints.get("hr-eu").unwrap().binding(),
        "preset peopleforce"
    );
    assert!(
        endpoints.get("peoplelogic").is_some(),
        "the built-in endpoints stay"
    );
}

/// A second tool, shaped like many OKR tools' APIs: the key result nested two levels
/// down, progress as a value against a start and a target, the kind read from the body.
#[test]
fn a_nested_mapping_with_progress_as_value_and_target() {
    let document = r#"{"endpoints": {"okrs": {
      "scheme": {"header": "X-Okrs-Signature", "algorithm": "sha512", "encoding": "base64", "key": "base64",
                 "id": {"pointer": "/delivery/id"}},
      "mapping": {
        "event": "/delivery/topic",
        "types": {"kr.checkin": "key_result.progress_updated"},
        "entity": {"kind": "/payload/item/type", "id": "/payload/item/id", "title": "/payload/item/title",
                   "parent": "/payload/item/goal/id"},
        "progress": {"value": "/payload/item/metric/current", "previous_value": "/payload/item/metric/before",
                     "target": "/payload/item/metric/target", "start": "/payload/item/metric/start"},
        "actor": {"name": "/payload/author/display_name"},
        "occurred_at": "/delivery/at_ms"
      }}}}"#;
    let endpoints = Endpoints::parse(document).unwrap();
    let okrs = endpoints.get("okrs").unwrap();
    let body = br#"{"delivery":{"id":"d-77","topic":"kr.checkin","at_ms":1764928800000},"payload":{"author":{"display_name":"Ada Example"},"item":{"type":"KeyResult","id":"kr-5","title":"Cut p95 latency","goal":{"id":"obj-2"},"metric":{"start":200,"current":140,"before":170,"target":100}}}}"#;
    let secret = SigningSecret::new(base64::engine::general_purpose::STANDARD.encode(b"okrs key"));
    let signed = headers(&okr_core::sign(okrs.provider(), &secret, body, "", NOW).unwrap());
    assert_eq!(
        verify(okrs.provider(), &[secret], &signed, body, now()),
        Ok(())
    );
    let event = normalize(&okrs, &signed, body, now()).unwrap();
    assert_eq!(event.event_type, "key_result.progress_updated");
    assert_eq!(event.entity.kind, "key_result", "KeyResult in snake case");
    assert_eq!(event.entity.parent.as_deref(), Some("obj-2"));
    let progress = event.progress.as_ref().unwrap();
    // (140 - 200) / (100 - 200) = 60 %; before: (170 - 200) / -100 = 30 %.
    assert_eq!(
        (progress.previous, progress.current),
        (Some(30.0), Some(60.0))
    );
    assert_eq!(event.occurred_at.unix_timestamp(), 1_764_928_800);
    // The delivery id in the body makes the event id: the same delivery, the same id.
    let again = normalize(&okrs, &HeaderMap::new(), body, now()).unwrap();
    assert_eq!(again.id, event.id);
    assert_eq!(
        event.id,
        okr_core::normalize::event_id(okrs.name(), b"d-77")
    );
    assert!(schema().is_valid(&serde_json::to_value(&event).unwrap()));
}

#[test]
fn a_bad_document_names_the_endpoint_and_the_field() {
    for (document, expected) in [
        (
            r#"{"endpoints": {"hr": {"preset": "workday"}}}"#,
            "endpoint \"hr\": preset: unknown preset \"workday\" (expected one of peoplelogic,",
        ),
        (
            r#"{"endpoints": {"goals": {"scheme": {"header": "X-S", "algorithm": "md5", "encoding": "hex"}}}}"#,
            "endpoint \"goals\": scheme.algorithm: unknown algorithm \"md5\" (expected sha1, sha256 or sha512)",
        ),
        (
            r#"{"endpoints": {"goals": {"scheme": {"header": "X-S", "algorithm": "sha256", "encoding": "hex"}, "mapping": {"entity": {"id": "goal/id"}}}}}"#,
            "endpoint \"goals\": mapping.entity.id: \"goal/id\" is not a JSON Pointer",
        ),
        (
            r#"{"endpoints": {"goals": {"scheme": {"header": "X-S", "algorithm": "sha256", "encoding": "hex"}, "mapping": {"event": "/e~2"}}}}"#,
            "endpoint \"goals\": mapping.event: \"/e~2\" is not a JSON Pointer (~ must be followed by 0 or 1)",
        ),
        (
            r#"{"endpoints": {"goals": {"scheme": {"header": "X-S", "algorithm": "sha256", "encoding": "hex", "signed": "{timestamp}.{body}"}}}}"#,
            "endpoint \"goals\": scheme.signed: uses {timestamp} but the scheme has no timestamp",
        ),
        (
            r#"{"endpoints": {"goals": {"scheme": {"header": "X-S", "algorithm": "sha256", "encoding": "hex", "signed": "{url}{body}"}}}}"#,
            "endpoint \"goals\": scheme.signed: {url} is not supported",
        ),
        (
            r#"{"endpoints": {"goals": {"scheme": {"header": "X-S", "algorithm": "sha256", "encoding": "hex", "colour": "red"}}}}"#,
            "endpoint \"goals\": scheme: unknown field `colour`",
        ),
        (
            r#"{"endpoints": {"Goals!": {"preset": "github"}}}"#,
            "endpoint \"Goals!\": name: not a valid name",
        ),
        (
            r#"{"endpoints": {"hr": {"preset": "peopleforce", "mapping": {"event": "/x"}}}}"#,
            "endpoint \"hr\": mapping: the built-in preset peopleforce normalizes its own events",
        ),
        (
            r#"{"endpoints": {"goals": {"scheme": {"header": "X-S", "algorithm": "sha256", "encoding": "hex"}, "mapping": {"types": {"a": "Not A Type"}}}}}"#,
            "endpoint \"goals\": mapping.types.a: \"Not A Type\" is not an event type",
        ),
        (
            r#"{"endpoint": {}}"#,
            "the endpoints document is not valid: unknown field `endpoint`",
        ),
    ] {
        let error = Endpoints::parse(document).unwrap_err().to_string();
        assert!(
            error.starts_with(expected),
            "{error}\n  expected: {expected}"
        );
    }
}

#[test]
fn diagnosis_names_the_wrong_encoding_prefix_and_key_format() {
    let endpoint = endpoint_with(json!({
        "header": "X-Sig", "algorithm": "sha256", "encoding": "hex", "prefix": "sha256=", "key": "utf8",
    }));
    let body = br#"{"a":1}"#;
    let secret = SigningSecret::new("c2VjcmV0LWtleQ==");
    let causes = |value: String| {
        let map = headers(&[("X-Sig", value)]);
        let error = verify(
            endpoint.provider(),
            std::slice::from_ref(&secret),
            &map,
            body,
            now(),
        )
        .unwrap_err();
        likely_causes(
            endpoint.provider(),
            std::slice::from_ref(&secret),
            &map,
            body,
            now(),
            &error,
        )
        .into_iter()
        .map(|c| (c.confirmed, c.text))
        .collect::<Vec<_>>()
    };
    // Base64 where hex is expected.
    let b64 = hand_signature("sha256", b"c2VjcmV0LWtleQ==", body, "base64", "sha256=");
    assert!(
        causes(b64)
            .iter()
            .any(|(_, t)| t.contains("reads as base64 rather than hex"))
    );
    // No prefix.
    let bare = hand_signature("sha256", b"c2VjcmV0LWtleQ==", body, "hex", "");
    assert!(
        causes(bare)
            .iter()
            .any(|(_, t)| t.contains("prefix \"sha256=\""))
    );
    // The sender decoded the base64 secret to make its key: confirmed.
    let decoded = hand_signature("sha256", b"secret-key", body, "hex", "sha256=");
    assert!(
        causes(decoded)
            .iter()
            .any(|(confirmed, t)| *confirmed && t.contains("another key format"))
    );
    // The body changed after signing: the usual body hints apply to every scheme.
    let good = hand_signature(
        "sha256",
        b"c2VjcmV0LWtleQ==",
        br#"{"a":2}"#,
        "hex",
        "sha256=",
    );
    assert!(
        causes(good)
            .iter()
            .any(|(_, t)| t.contains("body was changed"))
    );
}

#[test]
fn the_github_preset_verifies_githubs_documented_test_vector() {
    // docs.github.com, "Validating webhook deliveries": this secret and payload give
    // this signature.
    let github = Endpoint::of_source("github".parse().unwrap()).unwrap();
    let map = headers(&[(
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
    )]);
    let secret = [SigningSecret::new("It's a Secret to Everybody")];
    assert_eq!(
        verify(github.provider(), &secret, &map, b"Hello, World!", now()),
        Ok(())
    );
    assert_eq!(
        verify(github.provider(), &secret, &map, b"Hello, World?", now()),
        Err(VerifyError::WrongSignature)
    );
}

#[test]
fn lever_signs_in_the_body_over_its_token_and_time() {
    let lever = Endpoint::of_source("lever".parse().unwrap()).unwrap();
    let body = br#"{"token":"3a1b","triggeredAt":1764950400000,"event":"candidateHired","signature":"","data":{"opportunityId":"o-1"}}"#;
    let secret = SigningSecret::new("lever-token");
    let (signed, sent) = sign_delivery(lever.provider(), &secret, body, "", NOW).unwrap();
    assert!(signed.is_empty(), "no header: the signature is in the body");
    let sent_json: Value = serde_json::from_slice(&sent).unwrap();
    let expected = hand_signature("sha256", b"lever-token", b"3a1b1764950400000", "hex", "");
    assert_eq!(sent_json["signature"], expected);
    let secrets = [secret];
    assert_eq!(
        verify(lever.provider(), &secrets, &HeaderMap::new(), &sent, now()),
        Ok(())
    );
    assert_eq!(
        verify(lever.provider(), &secrets, &HeaderMap::new(), body, now()),
        Err(VerifyError::MissingField("/signature")),
        "the sample's empty signature is no signature"
    );
    // Lever signs only its token and time, so a copy is held to five minutes; and a
    // time sent as a string (digits moved between it and the token) is refused.
    let later = OffsetDateTime::from_unix_timestamp(NOW + 301).unwrap();
    assert!(matches!(
        verify(lever.provider(), &secrets, &HeaderMap::new(), &sent, later),
        Err(VerifyError::TimestampOutOfTolerance { tolerance: 300, .. })
    ));
    let mut shifted = sent_json.clone();
    shifted["token"] = "3a1b1".into();
    shifted["triggeredAt"] = "764950400000".into();
    assert!(matches!(
        verify(
            lever.provider(),
            &secrets,
            &HeaderMap::new(),
            &serde_json::to_vec(&shifted).unwrap(),
            now()
        ),
        Err(VerifyError::MalformedHeader { .. })
    ));
}

#[test]
fn a_scheme_whose_signature_would_not_tie_it_to_the_delivery_is_refused() {
    for (scheme, expected) in [
        (
            r#"{"header": "X-S", "algorithm": "sha256", "encoding": "hex", "signed": ""}"#,
            "scheme.signed: must include {body}",
        ),
        (
            r#"{"header": "X-S", "algorithm": "sha256", "encoding": "hex", "signed": "{method}"}"#,
            "scheme.signed: must include {body}",
        ),
        (
            r#"{"pointer": "/sig", "algorithm": "sha256", "encoding": "hex"}"#,
            "scheme.signed: cannot include {body} when the signature is in the body",
        ),
        (
            r#"{"pointer": "/sig", "algorithm": "sha256", "encoding": "hex", "signed": "fixed"}"#,
            "scheme.signed: must include {id} or {timestamp}",
        ),
        (
            r#"{"header": "X-S", "algorithm": "sha256", "encoding": "hex",
                "timestamp": {"header": "X-T", "tolerance_s": 300}}"#,
            "scheme.timestamp.tolerance_s: the timestamp is not signed",
        ),
    ] {
        let document = format!(r#"{{"endpoints": {{"e": {{"scheme": {scheme}}}}}}}"#);
        let error = Endpoints::parse(&document).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("endpoint \"e\": {expected}")),
            "{error}"
        );
    }
}

/// An id header the signature does not cover cannot make a replayed copy a new event:
/// the event id is then made from the body.
#[test]
fn only_a_signed_delivery_id_makes_the_event_id() {
    let github = Endpoint::of_source("github".parse().unwrap()).unwrap();
    let body = br#"{"action":"opened"}"#;
    let secret = SigningSecret::new("s");
    let mut signed = okr_core::sign(github.provider(), &secret, body, "", NOW).unwrap();
    signed.retain(|(name, _)| !name.eq_ignore_ascii_case("x-github-delivery"));
    let first = headers(&[signed.clone(), vec![("X-GitHub-Delivery", "one".into())]].concat());
    let copy = headers(&[signed, vec![("X-GitHub-Delivery", "two".into())]].concat());
    let a = normalize(&github, &first, body, now()).unwrap();
    let b = normalize(&github, &copy, body, now()).unwrap();
    assert_eq!(a.id, b.id);
}

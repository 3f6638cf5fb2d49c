//! HubSpot webhooks: signature v3, and deal notifications mapped to ledger events.
//!
//! A delivery is a JSON array of notifications. Mapped: `deal.creation` (opened, amount 0, the
//! configured default owner), and `deal.propertyChange` of `dealstage` (through the
//! `[hubspot.stages]` map: a stage move, won or lost), `amount`, `closedate` and
//! `hubspot_owner_id`. Everything else (other properties, `deal.deletion`: a ledger forgets
//! nothing, other objects) is accepted and ignored, with a counter. HubSpot may send one
//! notification more than once, under different eventIds, so an event's `source_id` is a hash
//! of what it says (type, object, property, value, occurredAt): a redelivery is a duplicate.

use crate::config::{
    HubSpotConfig, StageTarget, HUBSPOT_TIMESTAMP_AGE_MS_MAX, HUBSPOT_TIMESTAMP_AHEAD_MS_MAX,
};
use base64::Engine;
use dealledger_events::{parse_line, Deals, Rejection, Rule, Submission, Timestamp};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Notifications in one delivery, at most (HubSpot sends up to 100).
pub const DELIVERY_NOTIFICATIONS_MAX: usize = 1000;

/// One notification, as HubSpot sends it. Fields HubSpot adds later are ignored.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    #[serde(default)]
    pub event_id: Option<u64>,
    #[serde(default)]
    pub subscription_id: Option<u64>,
    #[serde(default)]
    pub portal_id: Option<u64>,
    /// Milliseconds since the epoch.
    pub occurred_at: i64,
    pub subscription_type: String,
    pub object_id: u64,
    #[serde(default)]
    pub property_name: Option<String>,
    #[serde(default)]
    pub property_value: Option<String>,
    #[serde(default)]
    pub change_source: Option<String>,
    #[serde(default)]
    pub source_id: Option<String>,
}

/// Why a signed request is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("X-HubSpot-Request-Timestamp `{0}` is not milliseconds since the epoch")]
    BadTimestamp(String),
    #[error(
        "the request timestamp is {age_ms} ms old; at most {HUBSPOT_TIMESTAMP_AGE_MS_MAX} ms are accepted"
    )]
    TooOld { age_ms: i64 },
    #[error("the request timestamp is {ahead_ms} ms ahead of this daemon's clock; at most {HUBSPOT_TIMESTAMP_AHEAD_MS_MAX} ms are accepted (check the clock)")]
    InFuture { ahead_ms: i64 },
    #[error("X-HubSpot-Signature-v3 does not match the request (check [hubspot] app_secret and public_url)")]
    Mismatch,
}

/// HubSpot signs the URI with these characters decoded.
fn decode_uri(uri: &str) -> String {
    const DECODED: [(&str, &str); 12] = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = uri.to_string();
    for (from, to) in DECODED {
        out = out.replace(from, to).replace(&from.to_lowercase(), to);
    }
    out
}

/// The v3 signature of a request: base64(HMAC-SHA256(secret, method + uri + body + timestamp)).
pub fn sign_v3(secret: &str, method: &str, uri: &str, body: &[u8], timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(method.as_bytes());
    mac.update(decode_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks `X-HubSpot-Signature-v3` (`signature`) over the request, and the timestamp's age
/// against `now`.
pub fn verify_v3(
    secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    now: Timestamp,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing("X-HubSpot-Request-Timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("X-HubSpot-Signature-v3"))?;
    let sent_ms: i64 =
        timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp(timestamp.into()))?;
    // The header is untrusted: saturating, so no value can overflow the age.
    let age_ms = (now.0 / 1000).saturating_sub(sent_ms);
    if age_ms > HUBSPOT_TIMESTAMP_AGE_MS_MAX {
        return Err(SignatureError::TooOld { age_ms });
    }
    // A signed future timestamp would stay replayable until it aged past the window.
    if age_ms < -HUBSPOT_TIMESTAMP_AHEAD_MS_MAX {
        return Err(SignatureError::InFuture { ahead_ms: age_ms.saturating_neg() });
    }
    let expected = sign_v3(secret, method, uri, body, timestamp);
    // Constant time: the comparison must not tell an attacker how many bytes matched.
    let equal: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), signature.trim().as_bytes()).into();
    if !equal {
        return Err(SignatureError::Mismatch);
    }
    Ok(())
}

/// Parses a delivery body.
pub fn parse_deliveries(body: &[u8]) -> Result<Vec<Delivery>, Rejection> {
    let deliveries: Vec<Delivery> = serde_json::from_slice(body).map_err(|e| {
        Rejection::new(Rule::MalformedJson, format!("not a JSON array of HubSpot notifications: {e}"))
    })?;
    if deliveries.len() > DELIVERY_NOTIFICATIONS_MAX {
        return Err(Rejection::new(
            Rule::TooLarge,
            format!("{} notifications, at most {DELIVERY_NOTIFICATIONS_MAX}", deliveries.len()),
        ));
    }
    Ok(deliveries)
}

pub struct Mapped {
    pub submissions: Vec<Submission>,
    pub ignored: u64,
}

/// The ledger's id of a HubSpot deal.
pub fn deal_id(object_id: u64) -> String {
    format!("hubspot-{object_id}")
}

fn source_id(d: &Delivery) -> String {
    let mut hash = Sha256::new();
    for part in [
        d.subscription_type.as_str(),
        &d.object_id.to_string(),
        d.property_name.as_deref().unwrap_or(""),
        d.property_value.as_deref().unwrap_or(""),
        &d.occurred_at.to_string(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("hubspot:{hex}")
}

/// A `closedate` value: milliseconds since the epoch (what HubSpot sends), or a date.
fn close_date(value: &str) -> Option<String> {
    if let Ok(ms) = value.parse::<i64>() {
        let at = Timestamp(ms.checked_mul(1000)?);
        return Some(at.to_string()[..10].to_string());
    }
    value.get(..10).filter(|d| dealledger_events::time::Date::parse(d).is_ok()).map(str::to_string)
}

/// Maps a delivery to submissions, in (occurredAt, creation first) order. `deals` is the
/// ledger's state (a stage change to the stage a deal is in maps to nothing). The error names
/// the notification's index in the delivery.
pub fn to_submissions(
    deliveries: &[Delivery],
    deals: &Deals,
    opened_stage: &str,
    config: Option<&HubSpotConfig>,
) -> Result<Mapped, (usize, Rejection)> {
    let Some(config) = config else {
        return Err((0, Rejection::new(Rule::InvalidValue, "no [hubspot] section in dealledger.toml")));
    };
    let mut order: Vec<usize> = (0..deliveries.len()).collect();
    order
        .sort_by_key(|&i| (deliveries[i].occurred_at, deliveries[i].subscription_type != "deal.creation", i));
    let mut submissions = Vec::new();
    let mut ignored = 0;
    // Stages as this delivery leaves them, over what the ledger knows.
    let mut stages: std::collections::HashMap<String, Option<String>> = Default::default();
    for i in order {
        let d = &deliveries[i];
        let deal = deal_id(d.object_id);
        let at = Timestamp(d.occurred_at.saturating_mul(1000)).to_string();
        let mut event = serde_json::json!({
            "deal": deal, "at": at, "actor": "hubspot", "source_id": source_id(d),
        });
        let fields = event.as_object_mut().expect("an object");
        let value = d.property_value.as_deref().unwrap_or("");
        let current = |stages: &std::collections::HashMap<String, Option<String>>| -> Option<Option<String>> {
            stages.get(&deal).cloned().or_else(|| deals.stage_now(&deal).map(|s| s.map(str::to_string)))
        };
        match (d.subscription_type.as_str(), d.property_name.as_deref()) {
            ("deal.creation", _) => {
                fields.insert("type".into(), "opened".into());
                fields.insert("owner".into(), config.default_owner.clone().into());
                fields.insert("amount".into(), 0.into());
                stages.insert(deal.clone(), Some(opened_stage.to_string()));
            }
            ("deal.propertyChange", Some("dealstage")) => {
                let target = config.stages.get(value).ok_or_else(|| {
                    (
                        i,
                        Rejection::field(
                            Rule::UnknownStage,
                            "propertyValue",
                            format!("HubSpot deal stage `{value}` is not mapped in [hubspot.stages] of dealledger.toml"),
                        ),
                    )
                })?;
                match target {
                    StageTarget::Stage(stage) => {
                        if current(&stages) == Some(Some(stage.clone())) {
                            ignored += 1;
                            continue;
                        }
                        fields.insert("type".into(), "stage_moved".into());
                        fields.insert("to".into(), stage.clone().into());
                        stages.insert(deal.clone(), Some(stage.clone()));
                    }
                    StageTarget::Won => {
                        fields.insert("type".into(), "won".into());
                        stages.insert(deal.clone(), None);
                    }
                    StageTarget::Lost => {
                        fields.insert("type".into(), "lost".into());
                        fields.insert("reason".into(), "closed lost in HubSpot".into());
                        stages.insert(deal.clone(), None);
                    }
                }
            }
            ("deal.propertyChange", Some("amount")) if !value.is_empty() => {
                fields.insert("type".into(), "amount_changed".into());
                fields.insert("amount".into(), value.into());
            }
            ("deal.propertyChange", Some("closedate")) if !value.is_empty() => {
                let date = close_date(value).ok_or_else(|| {
                    (
                        i,
                        Rejection::field(
                            Rule::InvalidValue,
                            "propertyValue",
                            format!("closedate `{value}` is neither milliseconds since the epoch nor a date"),
                        ),
                    )
                })?;
                fields.insert("type".into(), "close_date_changed".into());
                fields.insert("close_date".into(), date.into());
            }
            ("deal.propertyChange", Some("hubspot_owner_id")) if !value.is_empty() => {
                fields.insert("type".into(), "owner_changed".into());
                fields.insert("owner".into(), value.into());
            }
            _ => {
                ignored += 1;
                continue;
            }
        }
        let submission = parse_line(&event.to_string()).map_err(|rejection| (i, rejection))?;
        submissions.push(submission);
    }
    // A delivery where nothing maps is fine: HubSpot must not retry it.
    Ok(Mapped { submissions, ignored })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_v3_round_trip_and_refusals() {
        let now = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let ts = (now.0 / 1000 - 1000).to_string();
        let uri = "https://ledger.example.com/v1/hooks/hubspot";
        let sig = sign_v3("secret", "POST", uri, b"[]", &ts);
        assert_eq!(verify_v3("secret", "POST", uri, b"[]", Some(&ts), Some(&sig), now), Ok(()));
        assert_eq!(
            verify_v3("other", "POST", uri, b"[]", Some(&ts), Some(&sig), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_v3("secret", "POST", uri, b"[1]", Some(&ts), Some(&sig), now),
            Err(SignatureError::Mismatch)
        );
        let old = (now.0 / 1000 - 300_001).to_string();
        let sig_old = sign_v3("secret", "POST", uri, b"[]", &old);
        assert_eq!(
            verify_v3("secret", "POST", uri, b"[]", Some(&old), Some(&sig_old), now),
            Err(SignatureError::TooOld { age_ms: 300_001 })
        );
        assert_eq!(
            verify_v3("secret", "POST", uri, b"[]", None, Some(&sig), now),
            Err(SignatureError::Missing("X-HubSpot-Request-Timestamp"))
        );
        // Encoded characters in the URI are signed decoded.
        let encoded = "https://h/v1/hooks/hubspot%3Fa%3Ab";
        assert_eq!(
            sign_v3("s", "POST", encoded, b"", "1"),
            sign_v3("s", "POST", "https://h/v1/hooks/hubspot?a:b", b"", "1")
        );
    }

    #[test]
    fn a_timestamp_at_the_ends_of_i64_is_refused_not_a_panic() {
        // The age was `now - sent` unchecked: i64::MIN overflowed (a panic in debug builds).
        let now = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let verify = |ts: &str| verify_v3("secret", "POST", "https://h/x", b"[]", Some(ts), Some("sig"), now);
        assert_eq!(verify(&i64::MIN.to_string()), Err(SignatureError::TooOld { age_ms: i64::MAX }));
        assert!(matches!(verify(&i64::MAX.to_string()), Err(SignatureError::InFuture { .. })));
    }

    #[test]
    fn a_timestamp_from_the_future_is_refused() {
        let now = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let now_ms = now.0 / 1000;
        for (ahead_ms, accepted) in [(60_000, true), (HUBSPOT_TIMESTAMP_AHEAD_MS_MAX, true), (600_000, false)]
        {
            let ts = (now_ms + ahead_ms).to_string();
            let sig = sign_v3("secret", "POST", "https://h/x", b"[]", &ts);
            let verified = verify_v3("secret", "POST", "https://h/x", b"[]", Some(&ts), Some(&sig), now);
            assert_eq!(verified.is_ok(), accepted, "{ahead_ms} ms ahead: {verified:?}");
        }
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256("secret", "POSThttps://h/x[]1700000000000"), computed independently
        // (python3: base64.b64encode(hmac.new(b"secret", msg, hashlib.sha256).digest())).
        assert_eq!(
            sign_v3("secret", "POST", "https://h/x", b"[]", "1700000000000"),
            "+ZMcHODsDh/hG/UtCq4cubnupteaj+hbtKkF2YxJIt8="
        );
    }

    mod fuzz {
        //! Decoding, mapping and signature checks are total: any body, any notification, any
        //! header, never a panic. ProptestConfig::default(): `PROPTEST_CASES` sets a soak.
        use super::*;
        use proptest::prelude::*;

        fn config() -> HubSpotConfig {
            HubSpotConfig {
                app_secret: "s".into(),
                stages: [
                    ("qualifiedtobuy".to_string(), StageTarget::Stage("qualifying".into())),
                    ("presentationscheduled".to_string(), StageTarget::Stage("quote".into())),
                    ("closedwon".to_string(), StageTarget::Won),
                    ("closedlost".to_string(), StageTarget::Lost),
                ]
                .into(),
                public_url: None,
                default_owner: "hubspot".into(),
                body_bytes_max: crate::config::HUBSPOT_BODY_BYTES_MAX_DEFAULT,
            }
        }

        /// A ledger where hubspot-1 is open in `prospecting` and hubspot-2 is won.
        fn deals() -> Deals {
            let mut deals = Deals::default();
            let now = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").expect("valid");
            let lines = [
                r#"{"deal":"hubspot-1","type":"opened","at":"2025-01-01T00:00:00Z","owner":"o","amount":1}"#,
                r#"{"deal":"hubspot-2","type":"opened","at":"2025-01-01T00:00:00Z","owner":"o","amount":1}"#,
                r#"{"deal":"hubspot-2","type":"won","at":"2025-01-02T00:00:00Z"}"#,
            ];
            for (seq, line) in lines.iter().enumerate() {
                let mut submission = parse_line(line).expect("valid");
                deals.admit(&mut submission, seq as u64 + 1, now, &Default::default()).expect("valid");
            }
            deals
        }

        /// Decodes `body` and maps what it holds; checks what any outcome must satisfy.
        fn check(body: &[u8]) -> Result<(), TestCaseError> {
            let Ok(deliveries) = parse_deliveries(body) else { return Ok(()) };
            prop_assert!(deliveries.len() <= DELIVERY_NOTIFICATIONS_MAX);
            match to_submissions(&deliveries, &deals(), "prospecting", Some(&config())) {
                Ok(mapped) => {
                    prop_assert!(mapped.submissions.len() + mapped.ignored as usize <= deliveries.len());
                    for submission in &mapped.submissions {
                        prop_assert!(submission.event.deal.as_str().starts_with("hubspot-"));
                    }
                }
                Err((index, _)) => prop_assert!(index < deliveries.len()),
            }
            Ok(())
        }

        fn pick(values: &'static [&'static str]) -> BoxedStrategy<String> {
            proptest::sample::select(values).prop_map(str::to_string).boxed()
        }

        /// A JSON number beyond or at every range, or another type.
        fn odd_number() -> BoxedStrategy<String> {
            prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                any::<u64>().prop_map(|n| n.to_string()),
                pick(&[
                    "-1",
                    "1.5",
                    "1e400",
                    "18446744073709551616",
                    "-9223372036854775809",
                    "null",
                    "\"1\"",
                    "[]"
                ]),
            ]
            .boxed()
        }

        fn text() -> BoxedStrategy<String> {
            prop_oneof![
                4 => pick(&[
                    "dealstage", "amount", "closedate", "hubspot_owner_id", "hs_x", "", "qualifiedtobuy",
                    "presentationscheduled", "closedwon", "closedlost", "appointmentscheduled", "1200.50",
                    "1735689600000", "-62135596800001", "9223372036854775807", "2025-03-04",
                    "2025-03-04T10:00:00Z", "2025-02-30", "２０２５-03-04", "-1", "1e3",
                ]),
                2 => "\\PC{0,24}",
                1 => "(?s).{0,12}",
                1 => (any::<char>(), 0usize..5000).prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
            ]
            .boxed()
        }

        fn quoted(text: String) -> String {
            serde_json::to_string(&text).expect("a string serializes")
        }

        /// One notification as JSON text: HubSpot's fields, mostly of the right type, sometimes
        /// missing, of another type, or joined by fields it may add later.
        fn notification() -> BoxedStrategy<String> {
            let kind =
                pick(&["deal.creation", "deal.propertyChange", "deal.deletion", "contact.creation", ""]);
            let object_id = prop_oneof![20 => (1u64..4).prop_map(|n| n.to_string()), 1 => odd_number()];
            let occurred_at = prop_oneof![
                20 => (1_735_689_600_000i64..1_735_689_700_000).prop_map(|n| n.to_string()),
                1 => odd_number(),
            ];
            let fields = (
                prop_oneof![20 => kind.prop_map(quoted), 1 => odd_number()],
                object_id,
                occurred_at,
                prop::option::of(text().prop_map(quoted)),
                prop::option::of(prop_oneof![20 => text().prop_map(quoted), 1 => odd_number()]),
                prop::option::of(
                    prop_oneof![20 => any::<u32>().prop_map(|n| n.to_string()), 1 => odd_number()],
                ),
                prop::option::weighted(0.1, text().prop_map(quoted)),
                prop::option::weighted(
                    0.05,
                    prop::sample::subsequence(vec!["subscriptionType", "objectId", "occurredAt"], 1..=3),
                ),
            );
            fields
                .prop_map(|(kind, object, at, name, value, event_id, extra, missing)| {
                    let mut parts = Vec::new();
                    for (key, value) in [("subscriptionType", kind), ("objectId", object), ("occurredAt", at)]
                    {
                        if !missing.as_ref().is_some_and(|m| m.contains(&key)) {
                            parts.push(format!("\"{key}\":{value}"));
                        }
                    }
                    let optional = [
                        ("propertyName", name),
                        ("propertyValue", value),
                        ("eventId", event_id),
                        ("attemptNumber", extra),
                    ];
                    for (key, value) in optional {
                        if let Some(value) = value {
                            parts.push(format!("\"{key}\":{value}"));
                        }
                    }
                    format!("{{{}}}", parts.join(","))
                })
                .boxed()
        }

        proptest! {
            #![proptest_config(ProptestConfig::default())]

            #[test]
            fn fuzz_hubspot_delivery_bytes(body in prop::collection::vec(any::<u8>(), 0..2048)) {
                check(&body)?;
            }

            #[test]
            fn fuzz_hubspot_delivery_json(
                notifications in prop::collection::vec(notification(), 0..8),
                cut in prop::option::weighted(0.1, any::<prop::sample::Index>()),
            ) {
                let mut body = format!("[{}]", notifications.join(",")).into_bytes();
                if let Some(cut) = cut {
                    body.truncate(cut.index(body.len() + 1));
                }
                check(&body)?;
            }

            #[test]
            fn fuzz_hubspot_mapping(
                occurred_at in any::<i64>(),
                object_id in any::<u64>(),
                kind in 0usize..4,
                property in 0usize..6,
                value in text(),
            ) {
                let kinds = ["deal.creation", "deal.propertyChange", "deal.deletion", "contact.creation"];
                let properties = ["dealstage", "amount", "closedate", "hubspot_owner_id", "hs_x", ""];
                let delivery = Delivery {
                    event_id: None,
                    subscription_id: None,
                    portal_id: None,
                    occurred_at,
                    subscription_type: kinds[kind].to_string(),
                    object_id,
                    property_name: Some(properties[property].to_string()),
                    property_value: Some(value),
                    change_source: None,
                    source_id: None,
                };
                let _ = to_submissions(&[delivery.clone(), delivery], &deals(), "prospecting", Some(&config()));
            }

            #[test]
            fn fuzz_hubspot_signature(
                uri in prop_oneof!["\\PC{0,40}", "https://h/v1/hooks/hubspot(%[0-9a-fA-F]{2}|[a-z?=&]){0,12}"],
                body in prop::collection::vec(any::<u8>(), 0..256),
                timestamp in prop::option::of(prop_oneof![
                    any::<i64>().prop_map(|n| n.to_string()),
                    pick(&["-9223372036854775808", "9223372036854775807", " 1767225600000 ", "", "1e3", "+5"]),
                    "\\PC{0,20}",
                ]),
                signature in prop::option::of("\\PC{0,60}"),
                secret in "\\PC{0,20}",
            ) {
                let now = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").expect("valid");
                let _ = verify_v3(&secret, "POST", &uri, &body, timestamp.as_deref(), signature.as_deref(), now);
                // And a request signed with the secret, a minute ago, passes.
                let recent = (now.0 / 1000 - 60_000).to_string();
                let signed = sign_v3(&secret, "POST", &uri, &body, &recent);
                prop_assert_eq!(verify_v3(&secret, "POST", &uri, &body, Some(&recent), Some(&signed), now), Ok(()));
            }
        }
    }

    #[test]
    fn close_dates() {
        assert_eq!(close_date("1735689600000").as_deref(), Some("2025-01-01"));
        assert_eq!(close_date("2025-03-04").as_deref(), Some("2025-03-04"));
        assert_eq!(close_date("2025-03-04T10:00:00Z").as_deref(), Some("2025-03-04"));
        assert_eq!(close_date("soon"), None);
    }
}

//! HubSpot webhooks: signature v3, and deal notifications mapped to ledger events.
//!
//! A delivery is a JSON array of notifications. Mapped: `deal.creation` (opened, amount 0, the
//! configured default owner), and `deal.propertyChange` of `dealstage` (through the
//! `[hubspot.stages]` map: a stage move, won or lost), `amount`, `closedate` and
//! `hubspot_owner_id`. Everything else (other properties, `deal.deletion`: a ledger forgets
//! nothing, other objects) is accepted and ignored, with a counter. HubSpot may send one
//! notification more than once, under different eventIds, so an event's `source_id` is a hash
//! of what it says (type, object, property, value, occurredAt): a redelivery is a duplicate.

use crate::config::{HubSpotConfig, StageTarget, HUBSPOT_TIMESTAMP_AGE_MS_MAX};
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
    let age_ms = now.0 / 1000 - sent_ms;
    if age_ms > HUBSPOT_TIMESTAMP_AGE_MS_MAX {
        return Err(SignatureError::TooOld { age_ms });
    }
    let expected = sign_v3(secret, method, uri, body, timestamp);
    // Constant time: the comparison must not tell an attacker how many bytes matched.
    let (a, b) = (expected.as_bytes(), signature.trim().as_bytes());
    let differ = a.len() != b.len() || a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) != 0;
    if differ {
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
    fn known_vector() {
        // HMAC-SHA256("secret", "POSThttps://h/x[]1700000000000"), computed independently
        // (python3: base64.b64encode(hmac.new(b"secret", msg, hashlib.sha256).digest())).
        assert_eq!(
            sign_v3("secret", "POST", "https://h/x", b"[]", "1700000000000"),
            "+ZMcHODsDh/hG/UtCq4cubnupteaj+hbtKkF2YxJIt8="
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        // Decoding and mapping are total: any bytes, any notification, never a panic.
        #[test]
        fn deliveries_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = parse_deliveries(&body);
        }

        #[test]
        fn mapping_never_panics(
            occurred_at in proptest::prelude::any::<i64>(),
            object_id in proptest::prelude::any::<u64>(),
            kind in 0usize..4,
            property in 0usize..6,
            value in "\\PC{0,20}",
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
            let config = HubSpotConfig {
                app_secret: "s".into(),
                stages: [("qualifiedtobuy".to_string(), StageTarget::Stage("qualifying".into()))].into(),
                public_url: None,
                default_owner: "hubspot".into(),
            };
            let _ = to_submissions(&[delivery.clone(), delivery], &Deals::default(), "prospecting", Some(&config));
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

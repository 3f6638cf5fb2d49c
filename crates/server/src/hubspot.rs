//! HubSpot webhooks: signature v3, and deal notifications mapped to ledger events.
//!
//! A delivery is a JSON array of notifications. Mapped: `deal.creation` (opened, amount 0, the
//! configured default owner), and `deal.propertyChange` of `dealstage` (through the
//! `[hubspot.stages]` map: a stage move, won or lost), `amount`, `closedate` and
//! `hubspot_owner_id`. Everything else (other properties, `deal.deletion`: a ledger forgets
//! nothing, other objects) is accepted and ignored, with a counter. HubSpot may send one
//! notification more than once, under different eventIds, so an event's `source_id` is a hash
//! of what it says (type, object, property, value, occurredAt): a redelivery is a duplicate.

use crate::config::{HubSpotConfig, HUBSPOT_TIMESTAMP_AGE_MS_MAX, HUBSPOT_TIMESTAMP_AHEAD_MS_MAX};
use crate::quarantine::{Hold, Quarantine, Reason, Release};
use base64::Engine;
use dealledger_events::{parse_line, Rejection, Rule, Submission, Timestamp};
use dealledger_import::hubspot::{Change, Mapping, What};
use dealledger_log::{Batch, BlockStore, Outcome};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Notifications in one delivery, at most (HubSpot sends up to 100).
pub const DELIVERY_NOTIFICATIONS_MAX: usize = 1000;

/// One notification, as HubSpot sends it. Fields HubSpot adds later are ignored.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
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

/// One notification of a delivery: its JSON as sent, and what it says when it has HubSpot's
/// shape (a notification that does not is quarantined, not the delivery refused).
#[derive(Clone, Debug)]
pub struct Notification {
    pub json: serde_json::Value,
    pub parsed: Result<Delivery, Rejection>,
}

impl Notification {
    pub fn from_json(json: serde_json::Value) -> Notification {
        let parsed = serde_json::from_value::<Delivery>(json.clone())
            .map_err(|e| Rejection::new(Rule::MalformedJson, format!("not a HubSpot notification: {e}")));
        Notification { json, parsed }
    }

    /// What identifies it in the quarantine: its change's `source_id`, or a hash of its JSON.
    pub fn key(&self) -> String {
        match &self.parsed {
            Ok(d) => d.change().source_id(),
            Err(_) => {
                let digest = Sha256::digest(self.json.to_string().as_bytes());
                let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
                format!("hubspot-unparsed:{hex}")
            }
        }
    }
}

impl Delivery {
    /// The change it tells of, as the backfill would tell it.
    pub fn change(&self) -> Change<'_> {
        let what = match (self.subscription_type.as_str(), self.property_name.as_deref()) {
            ("deal.creation", _) => What::Creation,
            ("deal.propertyChange", Some(name)) => {
                What::Property { name, value: self.property_value.as_deref().unwrap_or("") }
            }
            // Other subscriptions map to nothing; the name keeps their keys apart.
            (other, _) => What::Property { name: other, value: "" },
        };
        Change { object_id: self.object_id, what, at_ms: self.occurred_at }
    }
}

/// Parses a delivery body: a JSON array, each element a notification of its own.
pub fn parse_deliveries(body: &[u8]) -> Result<Vec<Notification>, Rejection> {
    let values: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| {
        Rejection::new(Rule::MalformedJson, format!("not a JSON array of HubSpot notifications: {e}"))
    })?;
    if values.len() > DELIVERY_NOTIFICATIONS_MAX {
        return Err(Rejection::new(
            Rule::TooLarge,
            format!("{} notifications, at most {DELIVERY_NOTIFICATIONS_MAX}", values.len()),
        ));
    }
    Ok(values.into_iter().map(Notification::from_json).collect())
}

/// The ledger's id of a HubSpot deal.
pub fn deal_id(object_id: u64) -> String {
    dealledger_import::hubspot::deal_id(object_id)
}

/// What became of one notification.
#[derive(Debug)]
pub enum Fate {
    /// Its events, with their deal ids, are in the batch (appended or duplicates).
    Stored(Vec<(String, Outcome)>),
    /// It maps to no event (another property, a move to the stage the deal is in).
    Ignored,
    /// It cannot be admitted yet: to the quarantine, with why.
    Held(Rejection),
}

/// The order notifications are admitted in: by occurredAt, a deal's creation before its
/// changes at the same moment, then as sent (unparsed ones first: they touch no deal).
pub fn admission_order(notifications: &[Notification]) -> Vec<usize> {
    let mut order: Vec<(usize, &Notification)> = notifications.iter().enumerate().collect();
    order.sort_by_key(|&(i, n)| match &n.parsed {
        Ok(d) => (1, d.occurred_at, d.subscription_type != "deal.creation", i),
        Err(_) => (0, 0, false, i),
    });
    order.into_iter().map(|(i, _)| i).collect()
}

/// Admits one notification into `batch` as its own atomic unit, against the ledger's state with
/// everything admitted before it.
pub fn admit<S: BlockStore>(
    batch: &mut Batch<'_, S>,
    notification: &Notification,
    config: &HubSpotConfig,
) -> Fate {
    let d = match &notification.parsed {
        Ok(d) => d,
        Err(rejection) => return Fate::Held(rejection.clone()),
    };
    let mapping = config.mapping();
    let submission = match submission(&d.change(), &mapping) {
        Ok(Some(submission)) => submission,
        Ok(None) => return Fate::Ignored,
        Err(rejection) => return Fate::Held(rejection),
    };
    let deal = submission.event.deal.as_str().to_string();
    let stored =
        |outcomes: Vec<Outcome>| Fate::Stored(outcomes.into_iter().map(|o| (deal.clone(), o)).collect());
    match batch.push_all(vec![submission.clone()]) {
        Ok(outcomes) => stored(outcomes),
        Err((_, rejection)) if rejection.rule == Rule::SameStage => Fate::Ignored,
        Err((_, rejection)) if rejection.rule == Rule::NotOpened && config.open_unknown => {
            let opening = Change { object_id: d.object_id, what: What::Creation, at_ms: d.occurred_at };
            let opened = match submission_of(opening.event(&mapping).map(|e| e.map(opening_event))) {
                Ok(Some(opened)) => opened,
                Ok(None) => return Fate::Held(rejection),
                Err(rejection) => return Fate::Held(rejection),
            };
            match batch.push_all(vec![opened.clone(), submission]) {
                Ok(outcomes) => stored(outcomes),
                // A change to the stage the deal opens in: the opening says it all.
                Err((_, r)) if r.rule == Rule::SameStage => match batch.push_all(vec![opened]) {
                    Ok(outcomes) => stored(outcomes),
                    Err((_, r)) => Fate::Held(r),
                },
                Err((_, r)) => Fate::Held(r),
            }
        }
        Err((_, rejection)) => Fate::Held(rejection),
    }
}

/// What admitting a delivery (or retrying the quarantine) did, and what the quarantine must
/// record once the batch is durable.
#[derive(Debug, Default)]
pub struct Admitted {
    /// Events stored, with their deal ids (appended or duplicates).
    pub outcomes: Vec<(String, Outcome)>,
    /// Notifications that map to no event.
    pub ignored: u64,
    /// Notifications held back, by index in the delivery (or in the quarantine), with why.
    pub quarantined: Vec<(usize, Rejection)>,
    pub holds: Vec<Hold>,
    pub releases: Vec<(String, Release)>,
}

/// Admits each notification of a delivery on its own, in [`admission_order`]; a notification
/// whose `eventId` came earlier in the same delivery is the same notification, ignored.
/// `held` says whether a key is in the quarantine (so an admitted one is released).
pub fn admit_delivery<S: BlockStore>(
    batch: &mut Batch<'_, S>,
    notifications: &[Notification],
    config: &HubSpotConfig,
    held: impl Fn(&str) -> bool,
) -> Admitted {
    let mut admitted = Admitted::default();
    let mut event_ids = std::collections::HashSet::new();
    for i in admission_order(notifications) {
        // The order is of this slice's own indices.
        let Some(notification) = notifications.get(i) else { continue };
        if let Ok(Delivery { event_id: Some(id), .. }) = &notification.parsed {
            if !event_ids.insert(*id) {
                admitted.ignored += 1;
                continue;
            }
        }
        let key = notification.key();
        match admit(batch, notification, config) {
            Fate::Stored(outcomes) => {
                if held(&key) {
                    let fresh = outcomes.iter().any(|(_, o)| matches!(o, Outcome::Appended { .. }));
                    admitted.releases.push((key, if fresh { Release::Admitted } else { Release::Duplicate }));
                }
                admitted.outcomes.extend(outcomes);
            }
            Fate::Ignored => {
                if held(&key) {
                    admitted.releases.push((key, Release::Ignored));
                }
                admitted.ignored += 1;
            }
            Fate::Held(rejection) => {
                admitted.holds.push(Hold {
                    key,
                    notification: notification.json.clone(),
                    reason: Reason::of(&rejection),
                });
                admitted.quarantined.push((i, rejection));
            }
        }
    }
    admitted
}

/// Retries every quarantined notification against the ledger as it is now, with `config` (read
/// again by the caller, so a mapping added since is used).
pub fn retry_quarantine<S: BlockStore>(
    batch: &mut Batch<'_, S>,
    quarantine: &Quarantine,
    config: &HubSpotConfig,
) -> Admitted {
    let notifications: Vec<Notification> =
        quarantine.entries().map(|entry| Notification::from_json(entry.notification.clone())).collect();
    admit_delivery(batch, &notifications, config, |key| quarantine.contains(key))
}

/// The submission a change stands for, through the contract's own parser.
fn submission(change: &Change<'_>, mapping: &Mapping) -> Result<Option<Submission>, Rejection> {
    submission_of(change.event(mapping))
}

fn submission_of(
    event: Result<Option<serde_json::Value>, Rejection>,
) -> Result<Option<Submission>, Rejection> {
    match event? {
        Some(event) => parse_line(&event.to_string()).map(Some),
        None => Ok(None),
    }
}

/// A deal opened from a notification of a change (`open_unknown`): a `source_id` of the deal's
/// own, so whichever of its notifications comes first opens it once, and an actor that tells it
/// from a HubSpot creation.
fn opening_event(mut event: serde_json::Value) -> serde_json::Value {
    let deal = event.get("deal").and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
    if let Some(object) = event.as_object_mut() {
        object.insert("source_id".into(), format!("hubspot-open-unknown:{deal}").into());
        object.insert("actor".into(), "hubspot-open-unknown".into());
    }
    event
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
        use crate::config::StageTarget;
        use proptest::prelude::*;

        fn config() -> HubSpotConfig {
            HubSpotConfig {
                app_secret: Some("s".into()),
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
                unsigned_bytes_max: crate::config::HUBSPOT_UNSIGNED_BYTES_MAX_DEFAULT,
                open_unknown: false,
                api_url: crate::config::HUBSPOT_API_URL_DEFAULT.into(),
                pipelines: None,
            }
        }

        /// A ledger where hubspot-1 is open in `prospecting` and hubspot-2 is won.
        fn ledger() -> dealledger_log::Ledger<dealledger_log::MemStore> {
            let mut ledger =
                dealledger_log::Ledger::open(dealledger_log::MemStore::default(), Default::default())
                    .expect("opens");
            let clock = dealledger_events::FixedClock(
                Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").expect("valid"),
            );
            let lines = [
                r#"{"deal":"hubspot-1","type":"opened","at":"2025-01-01T00:00:00Z","owner":"o","amount":1}"#,
                r#"{"deal":"hubspot-2","type":"opened","at":"2025-01-01T00:00:00Z","owner":"o","amount":1}"#,
                r#"{"deal":"hubspot-2","type":"won","at":"2025-01-02T00:00:00Z"}"#,
            ];
            let mut batch = ledger.batch(&clock);
            for line in lines {
                batch.push(parse_line(line).expect("valid")).expect("valid");
            }
            batch.commit().expect("commits");
            ledger
        }

        /// Admits every notification in a batch that is then dropped; checks what any
        /// outcome must satisfy.
        fn admit_all(notifications: &[Notification]) -> Result<(), TestCaseError> {
            let mut ledger = ledger();
            let clock = dealledger_events::FixedClock(
                Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").expect("valid"),
            );
            let mut batch = ledger.batch(&clock);
            for open_unknown in [false, true] {
                let config = HubSpotConfig { open_unknown, ..config() };
                for i in admission_order(notifications) {
                    let _ = notifications[i].key();
                    if let Fate::Stored(outcomes) = admit(&mut batch, &notifications[i], &config) {
                        prop_assert!(!outcomes.is_empty() && outcomes.len() <= 2);
                        for (deal, _) in outcomes {
                            prop_assert!(deal.starts_with("hubspot-"));
                        }
                    }
                }
            }
            Ok(())
        }

        /// Decodes `body` and admits what it holds.
        fn check(body: &[u8]) -> Result<(), TestCaseError> {
            let Ok(notifications) = parse_deliveries(body) else { return Ok(()) };
            prop_assert!(notifications.len() <= DELIVERY_NOTIFICATIONS_MAX);
            admit_all(&notifications)
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
                let json = serde_json::to_value(&delivery).expect("serializes");
                let notification = Notification { json, parsed: Ok(delivery) };
                admit_all(&[notification.clone(), notification])?;
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
}

//! HubSpot end to end: a delivery is admitted notification by
//! notification, what cannot be admitted yet is quarantined durably and retried after the cause
//! is fixed, and a backfill from HubSpot's deals endpoint and the webhooks store each change once.

use crate::daemon::{answer, Daemon, NOW_MS, TOKEN};
use crate::harness::Ledger as Sandbox;

pub const SECRET: &str = "hs-secret";

fn toml(stages: &str, extra: &str) -> String {
    format!(
        "[serve]\ntoken = \"{TOKEN}\"\n[hubspot]\napp_secret = \"{SECRET}\"\n{extra}\
         [hubspot.stages]\nappointmentscheduled = \"prospecting\"\nqualifiedtobuy = \"qualifying\"\n\
         presentationscheduled = \"quote\"\nclosedwon = \"won\"\nclosedlost = \"lost\"\n{stages}"
    )
}

/// One notification as HubSpot sends it.
pub fn note(event_id: u64, ms: i64, object: u64, kind: &str, property: &str, value: &str) -> String {
    format!(
        r#"{{"eventId":{event_id},"subscriptionId":7,"portalId":99,"appId":1,"occurredAt":{ms},"subscriptionType":"{kind}","attemptNumber":0,"objectId":{object},"propertyName":"{property}","propertyValue":"{value}","changeSource":"CRM_UI","sourceId":"userId:5"}}"#
    )
}

/// Posts a signed delivery to the hook.
pub fn deliver(d: &Daemon, body: &str) -> (u16, serde_json::Value) {
    let uri = format!("{}/v1/hooks/hubspot", d.url);
    let ts = (NOW_MS - 60_000).to_string();
    let signature = dealledger_server::hubspot::sign_v3(SECRET, "POST", &uri, body.as_bytes(), &ts);
    answer(
        ureq::post(&uri)
            .set("Content-Type", "application/json")
            .set("X-HubSpot-Request-Timestamp", &ts)
            .set("X-HubSpot-Signature-v3", &signature)
            .send_string(body),
    )
}

/// (type, at, to) of each event of a deal, as the daemon reports them.
fn history(d: &Daemon, deal: &str) -> Vec<(String, String, String)> {
    let (code, text) = d.get(&format!("/v1/deals/{deal}"));
    if code == 404 {
        return Vec::new();
    }
    let events: serde_json::Value = serde_json::from_str(&text).unwrap();
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["at"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

const T0: i64 = 1_736_500_000_000; // 2025-01-10T09:06:40Z

#[test]
fn a_delivery_is_admitted_notification_by_notification() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, &toml("", ""));
    let (code, ack) = deliver(&d, &format!("[{}]", note(1, T0, 777, "deal.creation", "", "")));
    assert_eq!(code, 200, "{ack}");
    // Deal 777 moves; deal 888 was created before the app was installed; 777 then moves to a
    // stage nobody mapped yet.
    let delivery = format!(
        "[{},{},{}]",
        note(2, T0 + 1000, 777, "deal.propertyChange", "dealstage", "presentationscheduled"),
        note(3, T0 + 2000, 888, "deal.propertyChange", "dealstage", "qualifiedtobuy"),
        note(4, T0 + 3000, 777, "deal.propertyChange", "dealstage", "contractsent"),
    );
    let (code, ack) = deliver(&d, &delivery);
    assert_eq!(code, 200, "{ack}");
    assert_eq!((ack["quarantined"].as_u64(), ack["last_seq"].as_u64()), (Some(2), Some(2)), "{ack}");
    assert_eq!(history(&d, "hubspot-777")[1].2, "quote");
    let listed = d.get_json("/v1/quarantine");
    let entries = listed["entries"].as_array().unwrap();
    let rules: Vec<&str> = entries.iter().map(|e| e["reason"]["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["not_opened", "unknown_stage"], "{listed}");
    assert_eq!(entries[0]["notification"]["objectId"], 888);
    assert_eq!(entries[0]["attempts"], 1);
    assert!(entries[1]["reason"]["message"].as_str().unwrap().contains("contractsent"), "{listed}");

    // HubSpot redelivers (a timeout on its side): one duplicate, the same two entries, seen twice.
    let (code, ack) = deliver(&d, &delivery);
    assert_eq!((code, ack["duplicates"].as_u64(), ack["quarantined"].as_u64()), (200, Some(1), Some(2)));
    let listed = d.get_json("/v1/quarantine");
    assert_eq!(listed["count"], 2, "{listed}");
    assert_eq!(listed["entries"][0]["attempts"], 2, "{listed}");
    assert!(d.get("/metrics").1.contains("dealledger_hubspot_quarantined 2"));

    // The cause is fixed: a mapping for `contractsent`. The retry reads [hubspot] again.
    std::fs::write(l.data().join("dealledger.toml"), toml("contractsent = \"closing\"\n", "")).unwrap();
    let (code, retried) = d.post("/v1/quarantine/retry", "{}");
    assert_eq!(code, 200, "{retried}");
    assert_eq!((retried["admitted"].as_u64(), retried["quarantined"].as_u64()), (Some(1), Some(1)));
    assert_eq!(history(&d, "hubspot-777").last().unwrap().2, "closing");
    // The CLI's retry goes through the daemon that holds the ledger.
    let run = l.run(&["quarantine", "retry", "--format", "json"]).ok();
    assert_eq!((run.json()["admitted"].as_u64(), run.json()["remaining"].as_u64()), (Some(0), Some(1)));
    assert!(d.get("/metrics").1.contains("dealledger_hubspot_quarantined 1"));
    // Killed, not stopped: the quarantine is on disk, and the CLI reads it.
    drop(d);
    let run = l.run(&["audit", "quarantine", "--format", "json"]).ok();
    let listed = run.json();
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["entries"][0]["notification"]["objectId"], 888);
    let run = l.run(&["audit", "quarantine"]).ok();
    assert!(run.stdout.contains("not_opened") && run.stdout.contains("888"), "{}", run.stdout);
}

#[test]
fn open_unknown_opens_a_deal_from_its_first_notification() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, &toml("", "open_unknown = true\n"));
    let delivery =
        format!("[{}]", note(3, T0 + 2000, 888, "deal.propertyChange", "dealstage", "qualifiedtobuy"));
    let (code, ack) = deliver(&d, &delivery);
    assert_eq!((code, ack["quarantined"].as_u64()), (200, Some(0)), "{ack}");
    let events = history(&d, "hubspot-888");
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(kinds, ["opened", "stage_moved"], "{events:?}");
    // A redelivery is a duplicate, and opens nothing again.
    let (code, ack) = deliver(&d, &delivery);
    assert_eq!((code, ack["duplicates"].as_u64(), ack["last_seq"].as_u64()), (200, Some(1), None), "{ack}");
    assert_eq!(history(&d, "hubspot-888").len(), 2);
    // The opening says where it came from, and a later notification of the deal is a change.
    let (code, text) = d.get("/v1/deals/hubspot-888");
    assert!(code == 200 && text.contains("hubspot-open-unknown"), "{text}");
}

/// The webhook deliveries that tell the same changes as the backfill fixtures
/// (tests/fixtures/hubspot): 888 was created before the app was installed, so no creation.
fn webhook_deliveries() -> Vec<String> {
    let t_999 = 1_736_668_800_000; // 2025-01-12T08:00:00Z
    vec![
        format!(
            "[{},{},{},{},{},{}]",
            note(11, T0 + 1000, 777, "deal.propertyChange", "dealstage", "presentationscheduled"),
            note(10, T0, 777, "deal.creation", "", ""),
            note(12, T0, 777, "deal.propertyChange", "dealstage", "appointmentscheduled"),
            note(13, T0 + 500, 777, "deal.propertyChange", "hubspot_owner_id", "5"),
            note(14, T0 + 2000, 777, "deal.propertyChange", "amount", "25000.50"),
            note(15, T0 + 3000, 777, "deal.propertyChange", "closedate", "1740787200000"),
        ),
        format!("[{}]", note(20, T0 + 2000, 888, "deal.propertyChange", "dealstage", "qualifiedtobuy")),
        format!(
            "[{},{},{},{}]",
            note(30, T0 + 86_400_000, 777, "deal.propertyChange", "dealstage", "closedwon"),
            note(31, t_999, 999, "deal.creation", "", ""),
            note(32, t_999, 999, "deal.propertyChange", "dealstage", "appointmentscheduled"),
            note(33, t_999 + 86_400_000, 999, "deal.propertyChange", "dealstage", "closedlost"),
        ),
    ]
}

fn backfill(l: &Sandbox) -> serde_json::Value {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hubspot");
    let run = l
        .run(&[
            "ingest",
            "--format",
            "hubspot-deals",
            "--output",
            "json",
            &format!("{fixtures}/deals-page-1.json"),
            &format!("{fixtures}/deals-page-2.json"),
        ])
        .ok();
    run.json()
}

/// Every deal's events as (at, type, source_id, details), sorted: what was stored, whatever the
/// order it arrived in.
fn stored(l: &Sandbox) -> Vec<String> {
    let mut all = Vec::new();
    for deal in ["hubspot-777", "hubspot-888", "hubspot-999"] {
        let run = l.run(&["audit", "deal", deal, "--format", "json"]).ok();
        for e in run.json().as_array().unwrap() {
            // Who appended it (the hook, or nobody for the backfill) is bookkeeping too.
            let mut e = e.clone();
            let object = e.as_object_mut().unwrap();
            for volatile in ["seq", "version", "recorded_at", "appended_at", "appended_by"] {
                object.remove(volatile);
            }
            all.push(e.to_string());
        }
    }
    all.sort();
    all
}

#[test]
fn backfill_and_webhooks_store_each_change_once_in_either_order() {
    // Webhooks first (888's move is quarantined: the deal is unknown), then the backfill, then
    // a retry, which finds 888's move stored by the backfill.
    let first = Sandbox::new();
    let d = Daemon::start(&first, &toml("", ""));
    let mut quarantined = 0;
    for delivery in webhook_deliveries() {
        let (code, ack) = deliver(&d, &delivery);
        assert_eq!(code, 200, "{ack}");
        quarantined += ack["quarantined"].as_u64().unwrap();
    }
    assert_eq!(quarantined, 1, "only 888's move, whose deal the ledger has not seen");
    assert_eq!(d.terminate(), 0);
    let filled = backfill(&first);
    assert_eq!(filled["ingested"], 3, "888's opening, amount and move: {filled}");
    let run = first.run(&["quarantine", "retry", "--format", "json"]).ok();
    assert_eq!(
        (run.json()["admitted"].as_u64(), run.json()["remaining"].as_u64()),
        (Some(0), Some(0)),
        "{}",
        run.stdout
    );
    let listed = first.run(&["audit", "quarantine", "--format", "json"]).ok().json();
    assert_eq!(listed["count"], 0, "{listed}");

    // The backfill first, then the same webhooks: every one a duplicate or ignored.
    let second = Sandbox::new();
    std::fs::create_dir_all(second.data()).unwrap();
    std::fs::write(second.data().join("dealledger.toml"), toml("", "")).unwrap();
    let filled = backfill(&second);
    assert_eq!(filled["ingested"], 11, "{filled}");
    let d = Daemon::start(&second, &toml("", ""));
    for delivery in webhook_deliveries() {
        let (code, ack) = deliver(&d, &delivery);
        assert_eq!(
            (code, ack["quarantined"].as_u64(), ack["first_seq"].as_u64()),
            (200, Some(0), None),
            "{ack}"
        );
    }
    assert_eq!(d.terminate(), 0);

    let (a, b) = (stored(&first), stored(&second));
    assert_eq!(a.len(), 11, "{a:#?}");
    assert_eq!(a, b);
    assert_eq!(first.run(&["audit", "verify"]).code, 0);
}

#[test]
fn a_backfill_with_an_unmapped_stage_stores_nothing_and_names_it() {
    let l = Sandbox::new();
    std::fs::create_dir_all(l.data()).unwrap();
    // No mapping for presentationscheduled.
    let config = toml("", "").replace("presentationscheduled = \"quote\"\n", "");
    std::fs::write(l.data().join("dealledger.toml"), config).unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hubspot");
    let run = l.run(&["ingest", "--format", "hubspot-deals", &format!("{fixtures}/deals-page-1.json")]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("deal 777") && run.stderr.contains("presentationscheduled"),
        "{}",
        run.stderr
    );
    assert_eq!(l.run(&["stats", "--format", "json"]).json()["events"], 0);
    // Without a [hubspot] section there is no stage map to go through.
    std::fs::write(l.data().join("dealledger.toml"), "").unwrap();
    let run = l.run(&["ingest", "--format", "hubspot-deals", &format!("{fixtures}/deals-page-1.json")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("[hubspot]"), "{}", run.stderr);
}

#[test]
fn numbers_at_the_ends_of_their_ranges_are_quarantined_not_a_panic() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, &toml("", ""));
    let (code, ack) = deliver(&d, &format!("[{}]", note(1, T0, 5, "deal.creation", "", "")));
    assert_eq!(code, 200, "{ack}");
    let delivery = format!(
        "[{},{},{}]",
        note(2, i64::MAX, 5, "deal.propertyChange", "amount", "10"),
        note(3, T0 + 1, 5, "deal.propertyChange", "closedate", &i64::MIN.to_string()),
        note(4, T0 + 2, 5, "deal.propertyChange", "amount", "99999999999999999999999999"),
    );
    let (code, ack) = deliver(&d, &delivery);
    assert_eq!((code, ack["quarantined"].as_u64()), (200, Some(3)), "{ack}");
    let rules: Vec<&str> =
        ack["quarantine"].as_array().unwrap().iter().map(|q| q["rule"].as_str().unwrap()).collect();
    assert!(rules.iter().all(|r| *r == "invalid_value" || *r == "in_future"), "{ack}");
    assert_eq!(history(&d, "hubspot-5").len(), 1);
}

//! `dealledger sync hubspot` against the local HubSpot of the testkit, which answers as HubSpot's
//! API reference describes: a full sync, an incremental one, a repeated one, rate limits, a 5xx
//! and a cut connection mid-way, a run stopped by an outage and resumed, and search's cap.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code: a panic is a failing test")]

mod common;

use common::MemSink;
use dealledger_events::{Pipeline, Timestamp};
use dealledger_import::hubspot::Mapping;
use dealledger_import::Target;
use dealledger_sync::http::{RealPause, Secret};
use dealledger_sync::hubspot::{sync, Ran, Settings, Steps};
use dealledger_sync::testkit::{ms, FakeActivity, FakeDeal, FakeHubSpot, Portal};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const NOW: &str = "2025-03-01T00:00:00Z";

fn settings(url: &str) -> Settings {
    let mapping = Mapping {
        stages: [
            ("appointmentscheduled", Target::Stage("prospecting".into())),
            ("qualifiedtobuy", Target::Stage("qualifying".into())),
            ("contractsent", Target::Stage("quote".into())),
            ("closedwon", Target::Won),
            ("closedlost", Target::Lost),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        default_owner: "hubspot".into(),
    };
    let mut settings = Settings::new(mapping, Pipeline::default());
    settings.api_url = url.to_string();
    settings.pipelines = Some(["default".to_string()].into());
    settings
}

fn activity(at: &str, deals: &[u64], properties: &[(&str, &str)]) -> FakeActivity {
    let mut all: BTreeMap<String, String> =
        properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.insert("hs_timestamp".into(), ms(at).to_string());
    FakeActivity {
        created_ms: ms(at),
        modified_ms: ms(at),
        properties: all,
        deals: deals.to_vec(),
        contacts: vec![501],
    }
}

/// Three deals and their activities, each a case of the mapping.
fn portal() -> Portal {
    let mut portal = Portal::default();
    let mut d1 = FakeDeal::new(ms("2025-01-02T09:00:00Z"), "appointmentscheduled");
    d1.set("amount", "12000", ms("2025-01-02T09:00:00Z"));
    d1.set("hubspot_owner_id", "77", ms("2025-01-02T09:05:00Z"));
    d1.set("dealstage", "qualifiedtobuy", ms("2025-01-10T10:00:00Z"));
    let mut d2 = FakeDeal::new(ms("2025-01-03T09:00:00Z"), "appointmentscheduled");
    d2.set("dealstage", "closedlost", ms("2025-02-01T10:00:00Z"));
    let mut d3 = FakeDeal::new(ms("2025-01-04T09:00:00Z"), "appointmentscheduled");
    d3.pipeline = "renewals".into();
    portal.deals.extend([(1, d1), (2, d2), (3, d3)]);
    let calls = [
        (
            11,
            activity(
                "2025-01-05T10:00:00Z",
                &[1],
                &[("hs_call_direction", "OUTBOUND"), ("hs_call_duration", "600000")],
            ),
        ),
        (
            12,
            activity(
                "2025-01-06T10:00:00Z",
                &[1, 2],
                &[("hs_call_direction", "INBOUND"), ("hs_call_duration", "90000")],
            ),
        ),
        (13, activity("2025-01-07T10:00:00Z", &[], &[("hs_call_direction", "OUTBOUND")])),
        (14, activity("2025-01-01T10:00:00Z", &[1], &[("hs_call_direction", "OUTBOUND")])),
        (15, activity("2025-01-08T10:00:00Z", &[3], &[("hs_call_direction", "OUTBOUND")])),
    ];
    let emails = [
        (21, activity("2025-01-05T11:00:00Z", &[1], &[("hs_email_direction", "EMAIL")])),
        (22, activity("2025-01-05T15:00:00Z", &[1], &[("hs_email_direction", "INCOMING_EMAIL")])),
    ];
    let meetings = [
        (
            31,
            activity(
                "2025-01-09T14:00:00Z",
                &[1],
                &[
                    ("hs_meeting_start_time", &ms("2025-01-09T14:00:00Z").to_string()),
                    ("hs_meeting_end_time", &ms("2025-01-09T14:45:00Z").to_string()),
                    ("hs_meeting_outcome", "COMPLETED"),
                ],
            ),
        ),
        (32, activity("2025-01-09T16:00:00Z", &[2], &[("hs_meeting_outcome", "NO_SHOW")])),
        (
            33,
            activity(
                "2025-02-20T09:00:00Z",
                &[1],
                &[
                    ("hs_meeting_start_time", &ms("2025-03-04T09:00:00Z").to_string()),
                    ("hs_meeting_outcome", "SCHEDULED"),
                ],
            ),
        ),
    ];
    for (kind, list) in [("calls", &calls[..]), ("emails", &emails[..]), ("meetings", &meetings[..])] {
        for (id, a) in list {
            portal.activities.insert((kind.to_string(), *id), a.clone());
        }
    }
    portal
}

fn run(fake: &FakeHubSpot, settings: &Settings, sink: &mut MemSink, state: &Path, now: &str) -> Ran {
    sink.now = Timestamp::parse_rfc3339(now).unwrap();
    // Taken first: the portal's lock must not be held while the fake answers.
    let token = fake.portal().token.clone();
    let pause = Box::new(RealPause::default());
    sync(settings, Secret::new(token), pause, sink.now, state, sink, &mut |_| {}, Steps::All)
}

fn kinds(sink: &MemSink) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for event in sink.events() {
        *out.entry(event["type"].as_str().unwrap().to_string()).or_default() += 1;
    }
    out
}

#[test]
fn a_full_sync_maps_every_object_and_names_what_it_skips() {
    let fake = FakeHubSpot::start(portal());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sync/hubspot.json");
    let mut sink = MemSink::new(NOW);
    let ran = run(&fake, &settings(&fake.url), &mut sink, &state, NOW);
    ran.result.unwrap();
    let s = &ran.summary;
    // Deals 1 and 2 (3 is in a pipeline not synced): opened, amount, owner, stage; lost.
    assert_eq!(
        kinds(&sink),
        BTreeMap::from([
            ("amount_changed".into(), 1),
            ("lost".into(), 1),
            ("opened".into(), 2),
            ("owner_changed".into(), 1),
            ("stage_moved".into(), 1),
            ("touch".into(), 6),
        ])
    );
    let expected_skips = [
        ("before_creation", 1),   // call 14, before deal 1 opened
        ("meeting_not_held", 1),  // meeting 32
        ("no_deal", 1),           // call 13
        ("same_stage", 2),        // each deal's first stage, as the backfill
        ("unknown_deal", 1),      // call 15 on deal 3
        ("unmapped_pipeline", 1), // deal 3
    ];
    let expected: BTreeMap<String, u64> = expected_skips.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    assert_eq!(s.skipped_by_kind, expected, "{:#?}", s.skipped_examples);
    assert_eq!((s.events_stored, s.duplicates, s.held, s.pending), (12, 0, 0, 1));
    // Touches: the call on two deals twice; minutes from the duration, direction, contact.
    let touches = sink.touches();
    let by_source: BTreeMap<&str, &Value> =
        touches.iter().map(|t| (t["source_id"].as_str().unwrap(), t)).collect();
    let call = by_source["hubspot:call:11:hubspot-1"];
    assert_eq!(
        (call["channel"].as_str(), call["direction"].as_str(), call["minutes"].as_u64()),
        (Some("call"), Some("outbound"), Some(10))
    );
    assert_eq!(call["contact"], "hubspot-contact-501");
    assert_eq!(by_source["hubspot:call:12:hubspot-2"]["direction"], "inbound");
    assert_eq!(by_source["hubspot:call:12:hubspot-1"]["minutes"], 2);
    assert_eq!(by_source["hubspot:email:22:hubspot-1"]["direction"], "inbound");
    assert_eq!(by_source["hubspot:email:21:hubspot-1"]["direction"], "outbound");
    assert_eq!(by_source["hubspot:meeting:31:hubspot-1"]["minutes"], 45);
    // The cursor is the last modification read, per object; the future meeting waits.
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["cursors"]["deals"], ms("2025-02-01T10:00:00Z"));
    assert_eq!(saved["pending"][0]["id"], "33");
    assert_eq!(s.http.requests as usize, fake.portal().seen.len());
    // Reconciled: deal 1 is the one open deal the CRM lists in a synced pipeline, and agrees.
    let reconciled = s.reconciled.as_ref().unwrap();
    assert_eq!((reconciled.compared, reconciled.differed, reconciled.differences_total), (1, 0, 0));
}

/// The base portal, synced once at `NOW`, its state in `hubspot.json` of the directory.
fn synced() -> (FakeHubSpot, tempfile::TempDir, Settings, MemSink) {
    let fake = FakeHubSpot::start(portal());
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&fake.url);
    let mut sink = MemSink::new(NOW);
    run(&fake, &settings, &mut sink, &dir.path().join("hubspot.json"), NOW).result.unwrap();
    (fake, dir, settings, sink)
}

/// The events of `deal` of type `kind`.
fn events_of(sink: &MemSink, deal: &str, kind: &str) -> Vec<Value> {
    sink.events().into_iter().filter(|e| e["deal"] == deal && e["type"] == kind).collect()
}

#[test]
fn a_missed_change_is_found_by_reconciling_and_stored_at_its_real_time() {
    let (fake, dir, settings, mut sink) = synced();
    let state = dir.path().join("hubspot.json");
    // A change the incremental search does not show (its webhook was missed, and the deal's
    // modification time is where the search has already been): only a reconciliation finds it.
    {
        let mut portal = fake.portal();
        let deal = portal.deals.get_mut(&1).unwrap();
        let modified = deal.modified_ms;
        deal.set("amount", "15000", ms("2025-01-20T12:00:00Z"));
        deal.set("closedate", &ms("2025-04-30T00:00:00Z").to_string(), ms("2025-01-20T12:00:00Z"));
        deal.modified_ms = modified;
    }
    let later = "2025-03-03T00:00:00Z";
    let ran = run(&fake, &settings, &mut sink, &state, later);
    ran.result.unwrap();
    let reconciled = ran.summary.reconciled.unwrap();
    assert_eq!((reconciled.differed, reconciled.stored_from_history), (1, 2), "{reconciled:#?}");
    assert!(reconciled.differences.is_empty(), "{:#?}", reconciled.differences);
    // Stored at its real time: `at` and `recorded_at` are HubSpot's, `appended_at` the run's.
    let amounts = events_of(&sink, "hubspot-1", "amount_changed");
    let missed = amounts.iter().find(|e| e["amount"] == 15000.0).unwrap_or_else(|| panic!("{amounts:#?}"));
    assert_eq!(missed["at"], "2025-01-20T12:00:00Z");
    assert_eq!(missed["recorded_at"], "2025-01-20T12:00:00Z");
    assert_eq!(missed["appended_at"], later);
    // A second run finds nothing to do.
    let again = run(&fake, &settings, &mut sink, &state, "2025-03-03T00:10:00Z");
    let reconciled = again.summary.reconciled.unwrap();
    assert_eq!((reconciled.differed, reconciled.stored_from_history), (0, 0));
}

#[test]
fn a_difference_the_history_cannot_explain_is_listed_not_patched() {
    let (fake, dir, settings, mut sink) = synced();
    let state = dir.path().join("hubspot.json");
    let before = sink.events();
    {
        let mut portal = fake.portal();
        let deal = portal.deals.get_mut(&1).unwrap();
        // Values written with no history (an import with history off), one of them a stage
        // the ledger has no mapping for; and a deal HubSpot no longer lists.
        deal.silent.insert("amount".into(), "99999".into());
        deal.silent.insert("dealstage".into(), "a-stage-nobody-mapped".into());
        let mut gone = FakeDeal::new(ms("2025-01-05T09:00:00Z"), "appointmentscheduled");
        gone.modified_ms = ms("2025-01-05T09:00:00Z");
        portal.deals.insert(9, gone);
    }
    run(&fake, &settings, &mut sink, &state, "2025-03-01T00:05:00Z").result.unwrap();
    fake.portal().deals.remove(&9);
    let ran = run(&fake, &settings, &mut sink, &state, "2025-03-01T00:10:00Z");
    ran.result.unwrap();
    let reconciled = ran.summary.reconciled.clone().unwrap();
    let found: Vec<(&str, &str, &str, &str, &str)> = reconciled
        .differences
        .iter()
        .map(|d| (d.deal.as_str(), d.field, d.crm.as_str(), d.ledger.as_str(), d.cause))
        .collect();
    assert_eq!(
        found,
        [
            ("hubspot-1", "amount", "99999.00", "12000.00", "not_in_history"),
            ("hubspot-1", "stage", "a-stage-nobody-mapped", "qualifying", "unmapped_stage"),
            ("hubspot-9", "deal", "", "prospecting", "not_in_crm"),
        ]
    );
    assert_eq!(reconciled.stored_from_history, 0);
    // Listed, never patched: deal 1's events are what they were.
    let now: Vec<Value> = sink.events().into_iter().filter(|e| e["deal"] == "hubspot-1").collect();
    let then: Vec<Value> = before.into_iter().filter(|e| e["deal"] == "hubspot-1").collect();
    assert_eq!(now, then);
    let lines = ran.summary.lines().join("\n");
    assert!(lines.contains("hubspot-1 amount: CRM 99999.00, ledger 12000.00 [not_in_history]"), "{lines}");
}

#[test]
fn a_repeated_sync_stores_nothing_and_an_incremental_one_only_the_changes() {
    let (fake, dir, settings, mut sink) = synced();
    let state = dir.path().join("hubspot.json");
    let before = sink.events().len();
    let again = run(&fake, &settings, &mut sink, &state, "2025-03-01T00:05:00Z");
    again.result.unwrap();
    assert_eq!((again.summary.events_stored, sink.events().len()), (0, before));
    // What changed since: a stage move of deal 1, a new call on deal 2, the booked meeting held.
    {
        let mut portal = fake.portal();
        portal.deals.get_mut(&1).unwrap().set("dealstage", "contractsent", ms("2025-03-02T10:00:00Z"));
        portal.activities.insert(
            ("calls".into(), 16),
            activity(
                "2025-03-02T11:00:00Z",
                &[2],
                &[("hs_call_direction", "OUTBOUND"), ("hs_call_duration", "60000")],
            ),
        );
        portal.seen.clear();
    }
    let later = run(&fake, &settings, &mut sink, &state, "2025-03-05T00:00:00Z");
    later.result.unwrap();
    let s = &later.summary;
    // The stage move, the new call (deal 2 is lost: a touch is still a touch), the meeting due.
    assert_eq!(s.events_stored, 3, "{s:#?}");
    assert_eq!(s.pending, 0);
    assert_eq!(sink.events().len(), before + 3);
    // It asked only for what changed since the cursor, less the overlap.
    let portal = fake.portal();
    let deal_search = portal.seen.iter().find(|r| r.path == "/crm/v3/objects/deals/search").unwrap();
    let from = &deal_search.body["filterGroups"][0]["filters"][0];
    assert_eq!(from["operator"], "GTE");
    assert_eq!(from["value"], (ms("2025-02-01T10:00:00Z") - 10 * 60 * 1000).to_string());
    // Deal 1 changed; deal 2's last change is the cursor itself, which the overlap reads again.
    let read = portal.seen.iter().find(|r| r.path == "/crm/v3/objects/deals/batch/read").unwrap();
    let mut ids: Vec<&str> =
        read.body["inputs"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["1", "2"]);
}

#[test]
fn rate_limits_are_obeyed_and_never_met_twice_in_a_row() {
    let mut portal = portal();
    // Enough deals for several history reads; a tight limit the client must pace itself to.
    for id in 100..260u64 {
        portal
            .deals
            .insert(id, FakeDeal::new(ms("2025-01-02T09:00:00Z") + id as i64, "appointmentscheduled"));
    }
    portal.limit = (2, 1000);
    portal.retry_after_s = Some(1);
    let fake = FakeHubSpot::start(portal);
    let dir = tempfile::tempdir().unwrap();
    let mut sink = MemSink::new(NOW);
    let ran = run(&fake, &settings(&fake.url), &mut sink, &dir.path().join("s.json"), NOW);
    ran.result.unwrap();
    let portal = fake.portal();
    let (throttled, in_a_row) = portal.throttled();
    assert!(in_a_row <= 1, "{throttled} 429s, {in_a_row} in a row");
    assert_eq!(ran.summary.http.throttled as usize, throttled);
    assert_eq!(kinds(&sink)["opened"], 162);
    // Searches are spaced to under five a second: no search was throttled.
    let searches: Vec<_> = portal.seen.iter().filter(|r| r.path.ends_with("/search")).collect();
    assert!(searches.iter().all(|r| r.status == 200));
    for pair in searches.windows(2) {
        assert!(
            pair[1].at.duration_since(pair[0].at).as_millis() >= 200,
            "searches closer than a fifth of a second"
        );
    }
}

#[test]
fn a_5xx_and_a_cut_connection_mid_way_are_retried_and_change_nothing() {
    let clean = {
        let fake = FakeHubSpot::start(portal());
        let dir = tempfile::tempdir().unwrap();
        let mut sink = MemSink::new(NOW);
        run(&fake, &settings(&fake.url), &mut sink, &dir.path().join("s.json"), NOW).result.unwrap();
        sink.events()
    };
    let mut faulty = portal();
    faulty.faults.insert(3, dealledger_sync::testkit::Fault::Status(502));
    faulty.faults.insert(6, dealledger_sync::testkit::Fault::Cut);
    faulty.faults.insert(7, dealledger_sync::testkit::Fault::Status(429));
    let fake = FakeHubSpot::start(faulty);
    let dir = tempfile::tempdir().unwrap();
    let mut sink = MemSink::new(NOW);
    let ran = run(&fake, &settings(&fake.url), &mut sink, &dir.path().join("s.json"), NOW);
    ran.result.unwrap();
    assert_eq!(ran.summary.http.failed, 2, "{:?}", ran.summary.http);
    assert_eq!(ran.summary.http.throttled, 1);
    let strip = |events: Vec<Value>| -> Vec<Value> {
        events
            .into_iter()
            .map(|mut e| {
                e.as_object_mut().unwrap().remove("appended_at");
                e
            })
            .collect()
    };
    assert_eq!(strip(sink.events()), strip(clean));
}

/// The portal and 450 more calls on deal 1, a second apart: pages enough to stop between.
fn portal_with_calls() -> Portal {
    let mut big = portal();
    for id in 1000..1450u64 {
        let at = ms("2025-01-20T00:00:00Z") + id as i64 * 1000;
        big.activities.insert(("calls".into(), id), activity(&dealledger_sync::testkit::iso(at), &[1], &[]));
    }
    big
}

#[test]
fn a_run_stopped_by_an_outage_resumes_and_stores_nothing_twice() {
    let big = portal_with_calls();
    let clean = {
        let mut same = Portal::default();
        (same.activities, same.deals) = (big.activities.clone(), big.deals.clone());
        let fake = FakeHubSpot::start(same);
        let dir = tempfile::tempdir().unwrap();
        let mut sink = MemSink::new(NOW);
        run(&fake, &settings(&fake.url), &mut sink, &dir.path().join("s.json"), NOW).result.unwrap();
        sink.events().len()
    };
    // The API goes down after the first page of calls is stored.
    let fake = FakeHubSpot::start(big);
    let mut settings = settings(&fake.url);
    settings.retries_max = 1;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let mut sink = MemSink::new(NOW);
    let calls_page = |portal: &Portal| {
        portal.seen.iter().filter(|r| r.path == "/crm/v3/objects/calls/search" && r.status == 200).count()
    };
    // Requests: the deals' search and history read, then the first page of calls (search,
    // associations to deals and to contacts); the next search meets the outage.
    fake.portal().down_from = Some(2 + 3 + 1);
    let ran = run(&fake, &settings, &mut sink, &state, NOW);
    let error = ran.result.unwrap_err().to_string();
    assert!(error.contains("gave up after 2 attempts") && error.contains("503"), "{error}");
    assert_eq!(calls_page(&fake.portal()), 1);
    let stored_before = sink.events().len();
    assert!(stored_before > 0 && stored_before < clean, "{stored_before} of {clean}");
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(saved["cursors"]["calls"].is_i64(), "the first page's cursor is saved: {saved}");
    fake.portal().down_from = None;
    let resumed = run(&fake, &settings, &mut sink, &state, NOW);
    resumed.result.unwrap();
    assert_eq!(sink.events().len(), clean);
    // It asked for calls again from the saved cursor (less the overlap), not from the start.
    let portal = fake.portal();
    let searches: Vec<_> =
        portal.seen.iter().filter(|r| r.path == "/crm/v3/objects/calls/search" && r.status == 200).collect();
    assert_ne!(searches.last().unwrap().body["filterGroups"][0]["filters"][0]["value"], "0");
}

#[test]
fn search_past_its_cap_goes_on_from_the_last_modification_read() {
    let mut big = portal_with_calls();
    big.search_results_max = 400;
    let fake = FakeHubSpot::start(big);
    let mut settings = settings(&fake.url);
    settings.search_results_max = 400;
    let dir = tempfile::tempdir().unwrap();
    let mut sink = MemSink::new(NOW);
    let ran = run(&fake, &settings, &mut sink, &dir.path().join("s.json"), NOW);
    ran.result.unwrap();
    // 450 calls on deal 1 and the 3 of the base portal that map.
    assert_eq!(sink.touches().iter().filter(|t| t["channel"] == "call").count(), 453);
    let portal = fake.portal();
    // (207s are associations reads naming call 13, which is on no deal.)
    let refused: Vec<_> =
        portal.seen.iter().filter(|r| r.status == 400).map(|r| (&r.path, &r.body)).collect();
    assert!(refused.is_empty(), "no request past the cap: {refused:?}");
    let searches = portal.seen.iter().filter(|r| r.path == "/crm/v3/objects/calls/search").count();
    assert_eq!(searches, 2 + 1, "two pages to the cap, then one from the last modification read");
}

#[test]
fn a_refused_token_is_one_clear_error() {
    let fake = FakeHubSpot::start(portal());
    let dir = tempfile::tempdir().unwrap();
    let mut sink = MemSink::new(NOW);
    let ran = sync(
        &settings(&fake.url),
        Secret::new("wrong".into()),
        Box::new(RealPause::default()),
        sink.now,
        &dir.path().join("s.json"),
        &mut sink,
        &mut |_| {},
        Steps::All,
    );
    let error = ran.result.unwrap_err().to_string();
    assert!(
        error.contains("HubSpot refused the token") && error.contains("INVALID_AUTHENTICATION"),
        "{error}"
    );
    assert!(!error.contains("wrong"), "the token is never shown: {error}");
    assert!(sink.events().is_empty());
}

//! `sync salesforce` against the local Salesforce of the testkit, which answers as the REST API
//! Developer Guide describes: a full sync that stores what the files give and the activities, an
//! incremental one, a repeated one, files then sync, an outage resumed, a 503 and a cut
//! connection, the daily allocation's share, owner changes, reconciliation, a refused token.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code: a panic is a failing test")]

mod common;

use common::MemSink;
use dealledger_import::Options;
use dealledger_sync::http::{RealPause, Secret};
use dealledger_sync::salesforce::{sync, Settings};
use dealledger_sync::testkit::salesforce::{records_from_csv, sf_time, FakeSalesforce, Org, Record};
use dealledger_sync::testkit::Fault;
use dealledger_sync::{Ran, Sink, Steps};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const NOW: &str = "2024-06-01T00:00:00Z";
/// The fixture's opportunity with history and no Opportunity row.
const GONE: &str = "006Fx00000O0010AAV";

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../import/tests/fixtures").join(path)
}

fn record(fields: Value) -> Record {
    serde_json::from_value(fields).unwrap()
}

/// The importer fixture's opportunities and their history, and activities on the open
/// opportunity 5 (opened 2024-01-12 12:00, Negotiation/Review).
fn org() -> Org {
    let mut org = Org::default();
    for (object, file) in
        [("Opportunity", "Opportunity.csv"), ("OpportunityHistory", "OpportunityHistory.csv")]
    {
        let text = std::fs::read_to_string(fixture(&format!("salesforce-history/{file}"))).unwrap();
        for mut r in records_from_csv(&text) {
            // The export has no SystemModstamp for opportunities: their creation is it.
            if let (None, Some(created)) = (r.get("SystemModstamp").cloned(), r.get("CreatedDate").cloned()) {
                r.insert("SystemModstamp".into(), created);
            }
            org.insert(object, r);
        }
    }
    let opp = "006Fx00000O0005AAV";
    org.insert("Task", task("00TFx0000001", opp, "Call", "Outbound", 1200, "2024-01-15T10:00:00Z"));
    org.insert("Task", task("00TFx0000002", opp, "Call", "Inbound", 300, "2024-01-16T09:00:00Z"));
    // Open: no touch.
    let mut open = task("00TFx0000003", opp, "Task", "", 0, "2024-01-17T09:00:00Z");
    open.insert("IsClosed".into(), json!(false));
    open.insert("Status".into(), json!("Not Started"));
    open.remove("CompletedDateTime");
    org.insert("Task", open);
    org.insert(
        "Event",
        record(json!({"Id": "00UFx0000001", "WhatId": opp, "StartDateTime": sf_time("2024-01-18T14:00:00Z"),
            "EndDateTime": sf_time("2024-01-18T14:45:00Z"), "DurationInMinutes": 45, "IsAllDayEvent": false,
            "CreatedDate": sf_time("2024-01-10T09:00:00Z"), "SystemModstamp": sf_time("2024-01-10T09:00:00Z"),
            "IsDeleted": false, "IsArchived": true})),
    );
    org.insert("EmailMessage", email("02sFx0000001", opp, true, "2024-01-19T08:00:00Z"));
    org
}

fn task(id: &str, what: &str, subtype: &str, call_type: &str, seconds: i64, at: &str) -> Record {
    record(
        json!({"Id": id, "WhatId": what, "OwnerId": "005Fx00000U0001AAQ", "Status": "Completed", "IsClosed": true,
        "TaskSubtype": subtype, "CallType": if call_type.is_empty() { Value::Null } else { json!(call_type) },
        "CallDurationInSeconds": if seconds > 0 { json!(seconds) } else { Value::Null },
        "ActivityDate": at.get(..10).unwrap(), "CompletedDateTime": sf_time(at), "CreatedDate": sf_time(at),
        "SystemModstamp": sf_time(at), "IsDeleted": false, "IsArchived": false}),
    )
}

fn email(id: &str, related: &str, incoming: bool, at: &str) -> Record {
    record(
        json!({"Id": id, "RelatedToId": related, "Incoming": incoming, "Status": "3", "MessageDate": sf_time(at),
        "CreatedById": "005Fx00000U0001AAQ", "CreatedDate": sf_time(at), "SystemModstamp": sf_time(at), "IsDeleted": false}),
    )
}

fn settings(url: &str) -> Settings {
    Settings::new(url, Options::default())
}

fn run(fake: &FakeSalesforce, settings: &Settings, sink: &mut MemSink, state: &Path, now: &str) -> Ran {
    sink.now = dealledger_events::Timestamp::parse_rfc3339(now).unwrap();
    let token = fake.org().token.clone();
    let pause = Box::new(RealPause::default());
    sync(settings, Secret::new(token), pause, sink.now, state, sink, &mut |_| {}, Steps::All)
}

/// The events the `salesforce-history` importer gives for the fixture's files, stored.
fn imported_files() -> MemSink {
    let files =
        [fixture("salesforce-history/OpportunityHistory.csv"), fixture("salesforce-history/Opportunity.csv")];
    let imported = dealledger_import::salesforce::import(&files, &Options::default()).unwrap();
    let mut sink = MemSink::new(NOW);
    let stored = sink.store(imported.rows).unwrap();
    assert!(stored.refused.is_empty() && stored.held == 0, "{stored:?}");
    sink
}

fn source_ids(sink: &MemSink) -> BTreeSet<String> {
    sink.events().iter().map(|e| e["source_id"].as_str().unwrap().to_string()).collect()
}

/// The events' source_ids of one clean run of the base org.
fn clean_run() -> BTreeSet<String> {
    let fake = FakeSalesforce::start(org());
    let dir = tempfile::tempdir().unwrap();
    let mut sink = MemSink::new(NOW);
    run(&fake, &settings(&fake.url), &mut sink, &dir.path().join("s.json"), NOW).result.unwrap();
    source_ids(&sink)
}

#[test]
fn a_full_sync_stores_what_the_files_give_and_the_activities() {
    let fake = FakeSalesforce::start(org());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("salesforce.json");
    let mut sink = MemSink::new(NOW);
    let ran = run(&fake, &settings(&fake.url), &mut sink, &state, NOW);
    ran.result.unwrap();
    // The history: exactly the importer's events, with its source_ids.
    let files = source_ids(&imported_files());
    let synced = source_ids(&sink);
    assert!(files.is_subset(&synced), "missing: {:?}", files.difference(&synced).collect::<Vec<_>>());
    let touches: Vec<Value> = sink.touches();
    let extra: BTreeSet<&String> = synced.difference(&files).collect();
    assert_eq!(extra.len(), touches.len(), "{extra:?}");
    // Two calls, the archived meeting (queryAll reads it), an email; the open task skipped.
    let by_source = |id: &str| touches.iter().find(|t| t["source_id"] == id).unwrap().clone();
    assert_eq!(touches.len(), 4, "{touches:#?}");
    assert_eq!(by_source("salesforce:task:00TFx0000001")["minutes"], 20);
    assert_eq!(by_source("salesforce:task:00TFx0000002")["direction"], "inbound");
    assert_eq!(by_source("salesforce:event:00UFx0000001")["minutes"], 45);
    assert_eq!(by_source("salesforce:email:02sFx0000001")["direction"], "inbound");
    let s = &ran.summary;
    assert_eq!(s.skipped_by_kind.get("open_task"), Some(&1), "{:?}", s.skipped_by_kind);
    // The queries asked pages of 2,000, queryAll for tasks and events only.
    let org = fake.org();
    let resources: BTreeSet<(String, bool)> = org
        .seen
        .iter()
        .filter(|q| q.soql.contains(" FROM Task ") || q.soql.contains(" FROM EmailMessage "))
        .map(|q| (q.resource.clone(), q.soql.contains("FROM Task")))
        .collect();
    assert_eq!(resources, BTreeSet::from([("queryAll".to_string(), true), ("query".to_string(), false)]));
    // Reconciled: every opportunity the ledger holds open agrees with Salesforce, but for the
    // one whose history the export has and Salesforce no longer lists.
    let reconciled = s.reconciled.as_ref().unwrap();
    let differences: Vec<(&str, &str)> =
        reconciled.differences.iter().map(|d| (d.deal.as_str(), d.cause)).collect();
    assert_eq!(differences, [(GONE, "not_in_crm")], "{:#?}", reconciled.differences);
    assert!(reconciled.compared >= 5, "{reconciled:?}");
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["cursors"]["Task"], dealledger_sync::testkit::ms("2024-01-17T09:00:00Z"));
}

#[test]
fn files_then_sync_store_each_change_once_and_a_repeated_sync_nothing() {
    let fake = FakeSalesforce::start(org());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("salesforce.json");
    let mut sink = imported_files();
    let files = sink.events().len() as u64;
    let ran = run(&fake, &settings(&fake.url), &mut sink, &state, NOW);
    ran.result.unwrap();
    assert_eq!(ran.summary.events_stored, 4, "only the touches are new: {:?}", ran.summary);
    assert!(ran.summary.duplicates >= files, "{:?}", ran.summary);
    let again = run(&fake, &settings(&fake.url), &mut sink, &state, "2024-06-01T00:05:00Z");
    again.result.unwrap();
    assert_eq!(again.summary.events_stored, 0, "{:?}", again.summary);
}

#[test]
fn an_incremental_sync_reads_from_the_cursor_and_stores_only_the_changes() {
    let fake = FakeSalesforce::start(org());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("salesforce.json");
    let settings = settings(&fake.url);
    let mut sink = MemSink::new(NOW);
    run(&fake, &settings, &mut sink, &state, NOW).result.unwrap();
    let before = sink.events().len();
    let opp = "006Fx00000O0005AAV";
    {
        let mut org = fake.org();
        org.seen.clear();
        org.insert(
            "OpportunityHistory",
            record(json!({"Id": "008Fx00000H9001AAA", "OpportunityId": opp, "CreatedById": "005Fx00000U0001AAQ",
                "CreatedDate": sf_time("2024-06-02T10:00:00Z"), "StageName": "Closed Lost", "Amount": 7500,
                "CloseDate": "2024-06-02", "SystemModstamp": sf_time("2024-06-02T10:00:00Z"), "IsDeleted": false})),
        );
        org.record("Opportunity", opp).unwrap().insert("StageName".into(), json!("Closed Lost"));
        // An owner change, written twice as Salesforce writes it: by name, and by Id.
        for (id, kind, old, new) in [
            ("017Fx01", "Text", "Ann", "Bo"),
            ("017Fx02", "EntityId", "005Fx00000U0001AAQ", "005Fx00000U0002AAQ"),
        ] {
            org.insert(
                "OpportunityFieldHistory",
                record(json!({"Id": id, "OpportunityId": opp, "CreatedById": "005Fx00000U0009AAQ",
                    "CreatedDate": sf_time("2024-06-01T12:00:00Z"), "Field": "Owner", "DataType": kind,
                    "OldValue": old, "NewValue": new, "IsDeleted": false})),
            );
        }
        org.record("Opportunity", opp).unwrap().insert("OwnerId".into(), json!("005Fx00000U0002AAQ"));
        org.insert("Task", task("00TFx0000009", opp, "Call", "Outbound", 600, "2024-06-01T15:00:00Z"));
    }
    let later = run(&fake, &settings, &mut sink, &state, "2024-06-03T00:00:00Z");
    later.result.unwrap();
    let s = &later.summary;
    // The loss with its close date, the owner change (its name row counted, not stored), the call.
    let new: Vec<(String, String)> = sink.events()[before..]
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["source_id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(s.events_stored, 4, "{new:?}");
    // (Counted twice: the opportunity is read by the history scan and by the owner scan.)
    assert_eq!(s.skipped_by_kind.get("owner_names"), Some(&2), "{:?}", s.skipped_by_kind);
    assert_eq!(sink.events().len(), before + 4);
    let owner = sink.events().into_iter().find(|e| e["type"] == "owner_changed").unwrap();
    assert_eq!(
        (owner["owner"].as_str(), owner["at"].as_str()),
        (Some("005Fx00000U0002AAQ"), Some("2024-06-01T12:00:00Z"))
    );
    // It asked for history from the cursor less ten minutes.
    let org = fake.org();
    let history =
        org.seen.iter().find(|q| q.soql.starts_with("SELECT Id, OpportunityId, SystemModstamp")).unwrap();
    assert!(history.soql.contains("SystemModstamp >= 2024-04-15T16:50:00Z"), "{}", history.soql);
}

#[test]
fn an_outage_a_503_and_a_cut_connection_are_ridden_out_and_a_stopped_run_resumes() {
    // A clean run, for comparison.
    let clean = clean_run();
    let mut org = org();
    org.faults.insert(3, Fault::Status(503));
    org.faults.insert(5, Fault::Cut);
    org.down_from = Some(9);
    let fake = FakeSalesforce::start(org);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let mut settings = settings(&fake.url);
    settings.retries_max = 1;
    let mut sink = MemSink::new(NOW);
    let ran = run(&fake, &settings, &mut sink, &state, NOW);
    let error = ran.result.unwrap_err().to_string();
    assert!(error.contains("503"), "{error}");
    assert!(ran.summary.http.failed >= 2, "{:?}", ran.summary.http);
    fake.org().down_from = None;
    let resumed = run(&fake, &settings, &mut sink, &state, NOW);
    resumed.result.unwrap();
    assert_eq!(source_ids(&sink), clean, "the two runs store what one clean run does, nothing twice");
}

#[test]
fn a_run_takes_only_its_share_of_the_daily_allocation() {
    let mut org = org();
    // After the first request 10 are left of the day: a fifth of them is 2, that first one
    // included.
    org.api_usage = (14_989, 15_000);
    let fake = FakeSalesforce::start(org);
    let dir = tempfile::tempdir().unwrap();
    let mut sink = MemSink::new(NOW);
    let ran = run(&fake, &settings(&fake.url), &mut sink, &dir.path().join("s.json"), NOW);
    let error = ran.result.unwrap_err().to_string();
    assert!(error.contains("api_share_max") && error.contains("stopped after 2 requests"), "{error}");
    assert_eq!(fake.org().api_usage.0, 14_991, "no request past the share");
}

#[test]
fn a_difference_no_history_explains_is_listed_and_a_refused_token_is_one_clear_error() {
    let fake = FakeSalesforce::start(org());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let mut sink = MemSink::new(NOW);
    run(&fake, &settings(&fake.url), &mut sink, &state, NOW).result.unwrap();
    fake.org().record("Opportunity", "006Fx00000O0008AAV").unwrap().insert("Amount".into(), json!(13000));
    let ran = run(&fake, &settings(&fake.url), &mut sink, &state, "2024-06-01T00:05:00Z");
    ran.result.unwrap();
    let reconciled = ran.summary.reconciled.unwrap();
    let found: Vec<(&str, &str, &str, &str, &str)> = reconciled
        .differences
        .iter()
        .map(|d| (d.deal.as_str(), d.field, d.crm.as_str(), d.ledger.as_str(), d.cause))
        .collect();
    assert_eq!(
        found,
        [
            ("006Fx00000O0008AAV", "amount", "13000.00", "12000.00", "not_in_history"),
            (GONE, "deal", "", "prospecting", "not_in_crm")
        ]
    );
    let wrong = sync(
        &settings(&fake.url),
        Secret::new("not-the-token".into()),
        Box::new(RealPause::default()),
        sink.now,
        &state,
        &mut sink,
        &mut |_| {},
        Steps::All,
    );
    let error = wrong.result.unwrap_err().to_string();
    assert!(
        error.contains("Salesforce refused the token") && error.contains("INVALID_SESSION_ID"),
        "{error}"
    );
    assert!(!error.contains("not-the-token"), "{error}");
}

#[test]
fn pages_are_followed_to_done_and_a_refused_query_stops_the_run_with_its_code() {
    let clean = clean_run();
    // Pages of three records: every query's nextRecordsUrl followed until done.
    let mut small = org();
    small.page_max = 3;
    let fake = FakeSalesforce::start(small);
    let dir = tempfile::tempdir().unwrap();
    let mut sink = MemSink::new(NOW);
    let ran = run(&fake, &settings(&fake.url), &mut sink, &dir.path().join("s.json"), NOW);
    ran.result.unwrap();
    assert_eq!(source_ids(&sink), clean);
    let more = fake.org().seen.iter().filter(|q| q.resource == "more").count();
    assert!(more >= 10, "{more} pages after the first");
    assert!(fake.org().seen.iter().all(|q| q.records <= 3));
    // A query Salesforce refuses: the run stops at once with Salesforce's code and message.
    let mut org = org();
    org.malformed = Some("FROM EmailMessage".into());
    let fake = FakeSalesforce::start(org);
    let dir = tempfile::tempdir().unwrap();
    let mut sink = MemSink::new(NOW);
    let ran = run(&fake, &settings(&fake.url), &mut sink, &dir.path().join("s.json"), NOW);
    let error = ran.result.unwrap_err().to_string();
    assert!(
        error.contains("400") && error.contains("MALFORMED_QUERY") && error.contains("unexpected token"),
        "{error}"
    );
    assert_eq!(ran.summary.http.failed, 0, "a 400 is not retried");
    // What came before it is stored: the history and the tasks and events.
    assert!(!sink.touches().is_empty());
}

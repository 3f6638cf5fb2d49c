//! `dealledger sync salesforce` through the binary and the daemon, against the local Salesforce
//! of the sync crate's testkit: on the shared Salesforce sample with the project's own activity
//! fixture, the figures built on touches against the same hand count as the files give; files
//! then sync store each change once; `[sync] salesforce` in the daemon.

use crate::harness::find_number;
use crate::harness::Ledger as Sandbox;
use crate::importers::{datasets, fixture};
use dealledger_sync::testkit::salesforce::{records_from_csv, FakeSalesforce, Org};
use serde_json::Value;

const NOW: &str = "2018-11-01T00:00:00Z";

/// An org of these CSV exports (object name, file).
fn org_of(files: &[(&str, String)]) -> Org {
    let mut org = Org::default();
    for (object, path) in files {
        for record in records_from_csv(&std::fs::read_to_string(path).unwrap()) {
            org.insert(object, record);
        }
    }
    org
}

fn toml(url: &str) -> String {
    format!("[salesforce]\ninstance_url = \"{url}\"\n")
}

fn sync(sandbox: &Sandbox, token: &std::path::Path) -> Value {
    let token = token.to_str().unwrap();
    sandbox.run(&["--now", NOW, "sync", "salesforce", "--token-file", token, "--format", "json"]).ok().json()
}

#[test]
fn synced_salesforce_activities_carry_the_figures_and_files_then_sync_store_nothing_twice() {
    let Some([history, opportunities]) =
        datasets(["salesforce-sample/OpportunityHistory.csv", "salesforce-sample/Opportunity.csv"])
    else {
        return;
    };
    let own = |f: &str| fixture(&format!("salesforce-sample-activities/{f}"));
    let fake = FakeSalesforce::start(org_of(&[
        ("Opportunity", opportunities.clone()),
        ("OpportunityHistory", history.clone()),
        ("OpportunityHistory", own("OpportunityHistory-later.csv")),
        ("Task", own("Task.csv")),
        ("Event", own("Event.csv")),
        ("EmailMessage", own("EmailMessage.csv")),
    ]));
    fake.org()
        .record("Opportunity", "0064600000J5S5TAAV")
        .unwrap()
        .insert("StageName".into(), "Closed Lost".into());
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.data()).unwrap();
    std::fs::write(sandbox.data().join("dealledger.toml"), toml(&fake.url)).unwrap();
    let token = sandbox.file("token", &[&fake.org().token.clone()]);
    let summary = sync(&sandbox, &token);
    // The sample's 80 events, the loss with its close date, six touches; the rows the files skip.
    assert_eq!(summary["events_stored"], 88, "{summary}");
    for kind in ["all_day", "deleted", "email_not_sent", "no_opportunity", "open_task"] {
        assert_eq!(summary["skipped_by_kind"][kind], 1, "{kind}: {summary}");
    }
    // The meeting booked for February waits for its day.
    assert_eq!(summary["pending"], 1, "{summary}");
    assert_eq!(summary["reconciled"]["differences_total"], 0, "{summary}");
    let report = |args: &[&str]| {
        sandbox.run(&[&["--now", NOW, "report"][..], args, &["--format", "json"]].concat()).ok().json()
    };
    // The hand count of importers::salesforce_activities_carry_the_figures_on_the_shared_sample.
    let cost = report(&["bad-deal-cost", "--from", "2018-10-01", "--to", "2018-11-01", "--deals"]);
    assert_eq!(find_number(&cost, "effort_hours"), Some(1.75), "{cost}");
    let kpis = report(&["kpis", "--from", "2018-10-01", "--to", "2018-11-01"]);
    assert_eq!(find_number(&kpis, "first_response_hours_median"), Some(48.0), "{kpis}");
    let flags = report(&["flags"]);
    let no_activity: Vec<&Value> =
        flags["flags"].as_array().unwrap().iter().filter(|f| f["rule"] == "no_activity").collect();
    assert_eq!(no_activity.len(), 12, "{flags}");
    let u = no_activity.iter().find(|f| f["deal"] == "0064600000J5S5UAAV").unwrap();
    assert_eq!(u["figure"], 14.625, "{u}");

    // Files first, then the sync: every change is stored once.
    let files = Sandbox::new();
    files
        .run(&[
            "ingest",
            "--format",
            "salesforce-history",
            &history,
            &opportunities,
            &own("OpportunityHistory-later.csv"),
        ])
        .ok();
    let (t, e, m) = (own("Task.csv"), own("Event.csv"), own("EmailMessage.csv"));
    files.run(&["--now", NOW, "ingest", "--format", "salesforce-activities", &t, &e, &m]).ok();
    std::fs::write(files.data().join("dealledger.toml"), toml(&fake.url)).unwrap();
    let token = files.file("token", &[&fake.org().token.clone()]);
    let after_files = sync(&files, &token);
    assert_eq!(
        (after_files["events_stored"].as_u64(), after_files["duplicates"].as_u64()),
        (Some(0), Some(88)),
        "{after_files}"
    );
    assert_eq!(files.head(), sandbox.head());
}

#[test]
fn a_missing_token_or_section_is_one_clear_error() {
    let sandbox = Sandbox::new();
    let none = sandbox.run(&["sync", "salesforce"]);
    assert_eq!(none.code, 2, "{}", none.stderr);
    assert!(none.stderr.contains("[salesforce]") && none.stderr.contains("instance_url"), "{}", none.stderr);
    std::fs::create_dir_all(sandbox.data()).unwrap();
    std::fs::write(sandbox.data().join("dealledger.toml"), toml("http://127.0.0.1:9")).unwrap();
    let no_token = sandbox.run(&["sync", "salesforce"]);
    assert_eq!(no_token.code, 2, "{}", no_token.stderr);
    assert!(no_token.stderr.contains("DEALLEDGER_SALESFORCE_TOKEN"), "{}", no_token.stderr);
}

/// `[sync] salesforce` in the daemon: the first run at the start, through the writer, the
/// project's own fixture (the sample's opportunities need the datasets).
#[test]
fn the_daemon_syncs_salesforce_on_its_schedule() {
    use crate::daemon::{Daemon, TOKEN};
    let history = fixture("salesforce-history/OpportunityHistory.csv");
    let opportunities = fixture("salesforce-history/Opportunity.csv");
    let fake = FakeSalesforce::start(org_of(&[
        ("Opportunity", opportunities.clone()),
        ("OpportunityHistory", history.clone()),
    ]));
    let sandbox = Sandbox::new();
    let token = sandbox.file("sf-token", &[&fake.org().token.clone()]);
    let toml = format!(
        "[serve]\ntoken = \"{TOKEN}\"\n[sync]\nsalesforce = \"1h\"\nsalesforce_token_file = \"{}\"\n{}",
        token.display(),
        toml(&fake.url)
    );
    let d = Daemon::start(&sandbox, &toml);
    let status = crate::sync::wait_for_json(&d, "/v1/sync", |s| s["salesforce"]["runs"].as_u64() >= Some(1));
    let last = &status["salesforce"]["last"];
    assert_eq!(last["outcome"], "ok", "{status}");
    // What the files give, through the daemon's writer.
    let files = Sandbox::new();
    let run = files
        .run(&["ingest", "--format", "salesforce-history", &history, &opportunities, "--output", "json"])
        .ok();
    assert_eq!(last["summary"]["events_stored"], run.json()["ingested"], "{status}");
    assert_eq!(d.terminate(), 0);
}

/// A run killed (SIGKILL) in the middle resumes from its last stored page, and the two runs
/// together store what one clean run stores, nothing twice.
#[test]
fn a_run_killed_mid_way_resumes_and_stores_nothing_twice() {
    use dealledger_sync::testkit::salesforce::{sf_time, Record};
    let fixture_org = || {
        let mut org = org_of(&[
            ("Opportunity", fixture("salesforce-history/Opportunity.csv")),
            ("OpportunityHistory", fixture("salesforce-history/OpportunityHistory.csv")),
        ]);
        // 1,000 calls on opportunity 5, one a minute: pages of 200.
        for i in 0..1000i64 {
            let at = sf_time(&format!("2024-03-01T{:02}:{:02}:00Z", i / 60, i % 60));
            let task: Record = serde_json::from_value(serde_json::json!({
                "Id": format!("00TFx{i:013}"), "WhatId": "006Fx00000O0005AAV", "Status": "Completed",
                "IsClosed": true, "TaskSubtype": "Call", "CallType": "Outbound", "CallDurationInSeconds": 60,
                "CompletedDateTime": at, "CreatedDate": at, "SystemModstamp": at, "IsDeleted": false}))
            .unwrap();
            org.insert("Task", task);
        }
        org
    };
    let now = "2024-06-01T00:00:00Z";
    let start = |org: Org| {
        let fake = FakeSalesforce::start(org);
        let sandbox = Sandbox::new();
        std::fs::create_dir_all(sandbox.data()).unwrap();
        std::fs::write(
            sandbox.data().join("dealledger.toml"),
            format!("{}batch_size = 200\n", toml(&fake.url)),
        )
        .unwrap();
        let token = sandbox.file("token", &[&fake.org().token.clone()]);
        (fake, sandbox, token)
    };
    let run = |sandbox: &Sandbox, token: &std::path::Path| {
        let args =
            ["--now", now, "sync", "salesforce", "--token-file", token.to_str().unwrap(), "--format", "json"];
        sandbox.run(&args).ok().json()
    };
    let clean = {
        let (_fake, sandbox, token) = start(fixture_org());
        run(&sandbox, &token);
        sandbox.head()
    };
    let mut org = fixture_org();
    org.delay_ms = 150;
    let (fake, sandbox, token) = start(org);
    let mut child = std::process::Command::new(crate::harness::binary())
        .args(["--data", sandbox.data().to_str().unwrap(), "--now", now, "sync", "salesforce", "--quiet"])
        .args(["--token-file", token.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the third page of tasks is asked for: two are stored by then.
    let task_pages = || {
        let org = fake.org();
        let first = org.seen.iter().position(|q| q.soql.contains(" FROM Task "));
        first.map_or(0, |i| org.seen.iter().skip(i).filter(|q| q.resource != "query").count())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while task_pages() < 3 {
        assert!(std::time::Instant::now() < deadline, "the run never reached its third page of tasks");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stored_before = sandbox.head();
    assert!(stored_before > 0 && stored_before < clean, "{stored_before} of {clean}");
    let state: Value =
        serde_json::from_slice(&std::fs::read(sandbox.data().join("sync/salesforce.json")).unwrap()).unwrap();
    assert!(state["cursors"]["Task"].is_i64(), "{state}");
    fake.org().delay_ms = 0;
    let resumed = run(&sandbox, &token);
    assert_eq!(sandbox.head(), clean, "{resumed}");
    assert_eq!(resumed["events_stored"].as_u64().unwrap() + stored_before, clean, "stored once: {resumed}");
}

//! `dealledger sync hubspot` through the binary, against the local HubSpot of the sync crate's
//! testkit: the figures built on touches (bad-deal cost, flags, first response, selling time,
//! a gone-dark what-if) from synced calls, emails and meetings, each against a hand count; a
//! run again stores nothing; an unmapped stage is held in the quarantine and released by retry.

use crate::harness::find_number;
use crate::harness::Ledger as Sandbox;
use dealledger_sync::testkit::{ms, FakeActivity, FakeDeal, FakeHubSpot, Portal};
use serde_json::Value;

const NOW: &str = "2025-03-01T00:00:00Z";

fn toml(url: &str, extra_stage: &str) -> String {
    format!(
        "[hubspot]\napi_url = \"{url}\"\n[hubspot.stages]\nappointmentscheduled = \"prospecting\"\n\
         qualifiedtobuy = \"qualifying\"\nclosedwon = \"won\"\nclosedlost = \"lost\"\n{extra_stage}"
    )
}

fn activity(at: &str, deal: u64, properties: &[(&str, String)]) -> FakeActivity {
    let mut activity = FakeActivity {
        created_ms: ms(at),
        modified_ms: ms(at),
        deals: vec![deal],
        contacts: vec![900 + deal],
        ..FakeActivity::default()
    };
    activity.properties.insert("hs_timestamp".into(), ms(at).to_string());
    for (k, v) in properties {
        activity.properties.insert(k.to_string(), v.clone());
    }
    activity
}

/// Deal 1: lost on Feb 15 after a 30-minute call, an inbound email and an hour's meeting.
/// Deal 2: open, a 15-minute call, an inbound email on Jan 4, a 10-minute call on Jan 20.
fn portal() -> Portal {
    let mut portal = Portal::default();
    let mut d1 = FakeDeal::new(ms("2025-01-02T09:00:00Z"), "appointmentscheduled");
    d1.set("amount", "10000", ms("2025-01-02T09:00:00Z"));
    d1.set("hubspot_owner_id", "77", ms("2025-01-02T09:01:00Z"));
    d1.set("dealstage", "qualifiedtobuy", ms("2025-01-10T10:00:00Z"));
    d1.set("dealstage", "closedlost", ms("2025-02-15T10:00:00Z"));
    let mut d2 = FakeDeal::new(ms("2025-01-03T09:00:00Z"), "appointmentscheduled");
    d2.set("amount", "5000", ms("2025-01-03T09:00:00Z"));
    d2.set("hubspot_owner_id", "77", ms("2025-01-03T09:01:00Z"));
    d2.set("dealstage", "qualifiedtobuy", ms("2025-01-05T10:00:00Z"));
    portal.deals.extend([(1, d1), (2, d2)]);
    let call = |minutes: i64, direction: &str| {
        vec![
            ("hs_call_direction", direction.to_string()),
            ("hs_call_duration", (minutes * 60_000).to_string()),
        ]
    };
    let email = |direction: &str| vec![("hs_email_direction", direction.to_string())];
    let meeting = |start: &str, end: &str| {
        vec![
            ("hs_meeting_start_time", ms(start).to_string()),
            ("hs_meeting_end_time", ms(end).to_string()),
            ("hs_meeting_outcome", "COMPLETED".to_string()),
        ]
    };
    let all = [
        ("calls", 101, activity("2025-01-02T11:00:00Z", 1, &call(30, "OUTBOUND"))),
        ("emails", 201, activity("2025-01-06T10:00:00Z", 1, &email("INCOMING_EMAIL"))),
        (
            "meetings",
            301,
            activity("2025-01-12T14:00:00Z", 1, &meeting("2025-01-12T14:00:00Z", "2025-01-12T15:00:00Z")),
        ),
        ("calls", 102, activity("2025-01-03T13:00:00Z", 2, &call(15, "OUTBOUND"))),
        ("emails", 202, activity("2025-01-04T09:00:00Z", 2, &email("INCOMING_EMAIL"))),
        ("calls", 103, activity("2025-01-20T10:00:00Z", 2, &call(10, "OUTBOUND"))),
    ];
    for (kind, id, a) in all {
        portal.activities.insert((kind.to_string(), id), a);
    }
    portal
}

fn sync(sandbox: &Sandbox, token: &std::path::Path) -> Value {
    sandbox
        .run(&["--now", NOW, "sync", "hubspot", "--token-file", token.to_str().unwrap(), "--format", "json"])
        .ok()
        .json()
}

#[test]
fn synced_touches_carry_every_figure_built_on_them() {
    let fake = FakeHubSpot::start(portal());
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.data()).unwrap();
    std::fs::write(sandbox.data().join("dealledger.toml"), toml(&fake.url, "")).unwrap();
    let token = sandbox.file("token", &[&fake.portal().token.clone()]);
    let summary = sync(&sandbox, &token);
    // 2 opened, 2 amounts, 2 owners, 2 qualifying moves, 1 lost; 6 touches.
    assert_eq!(
        (summary["events_stored"].as_u64(), summary["duplicates"].as_u64()),
        (Some(15), Some(0)),
        "{summary}"
    );
    assert_eq!(summary["skipped_by_kind"], serde_json::json!({"same_stage": 2}));
    assert!(summary["requests"].as_u64().unwrap() >= 9, "{summary}");
    // Again: nothing new.
    let again = sync(&sandbox, &token);
    assert_eq!(again["events_stored"], 0, "{again}");

    let report = |args: &[&str]| {
        let mut all = vec!["--now", NOW, "report"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--format", "json"]);
        sandbox.run(&all).ok().json()
    };
    // Bad deals: deal 1, lost; its effort the call's 30 minutes, the meeting's 60 and the
    // email's 5 (an email has no minutes of its own: its channel's default, docs/metrics.md).
    let cost = report(&["bad-deal-cost", "--from", "2025-01-01", "--to", "2025-03-01", "--deals"]);
    let text = cost.to_string();
    assert!(text.contains("hubspot-1") && !text.contains("hubspot-2"), "{cost}");
    assert_eq!(find_number(&cost, "effort_hours"), Some(1.583333), "{cost}");
    // Flags on the open deal 2 at Mar 1: no inbound since Jan 4 (> 14 days), no touch since
    // Jan 20 (> 10 days).
    let flags = report(&["flags"]);
    let text = flags.to_string();
    assert!(text.contains("gone_dark") && text.contains("no_activity"), "{flags}");
    assert_eq!(flags["deals_flagged"], 1, "{flags}");
    // First response: 2 h (deal 1) and 4 h (deal 2): median 3 h. Owner 77's touch minutes:
    // 30 + 5 + 60 (deal 1) and 15 + 5 + 10 (deal 2).
    let kpis = report(&["kpis", "--from", "2025-01-01", "--to", "2025-03-01"]);
    assert_eq!(find_number(&kpis, "first_response_hours_median"), Some(3.0), "{kpis}");
    assert_eq!(find_number(&kpis, "touch_minutes"), Some(125.0), "{kpis}");
    assert!(find_number(&kpis, "selling_time_share").is_some_and(|s| s > 0.0), "{kpis}");
    let printed =
        sandbox.run(&["--now", NOW, "report", "kpis", "--from", "2025-01-01", "--to", "2025-03-01"]).ok();
    assert!(!printed.stdout.contains("-0.0"), "{}", printed.stdout);
    // gone_dark = 14: both deals go 14 days without an inbound touch while open (deal 1 after
    // Jan 6: out on Jan 20, lost later; deal 2 after Jan 4: out on Jan 18, still open), so both
    // are cut, and the effort saved is deal 2's 10-minute call of Jan 20 (deal 1 had no touch
    // after Jan 20).
    let whatif = sandbox
        .run(&[
            "--now",
            NOW,
            "whatif",
            "--rule",
            "gone_dark=14",
            "--from",
            "2025-01-01",
            "--to",
            "2025-03-01",
            "--format",
            "json",
        ])
        .ok()
        .json();
    let cut = ["cut", "cut_bad", "cut_open", "effort_hours_saved"].map(|k| find_number(&whatif, k));
    assert_eq!(cut, [Some(2.0), Some(1.0), Some(1.0), Some(0.166667)], "{whatif}");
}

#[test]
fn an_unmapped_stage_is_held_and_released_by_retry() {
    let mut portal = portal();
    portal.deals.get_mut(&2).unwrap().set("dealstage", "contractsent", ms("2025-02-01T10:00:00Z"));
    let fake = FakeHubSpot::start(portal);
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.data()).unwrap();
    std::fs::write(sandbox.data().join("dealledger.toml"), toml(&fake.url, "")).unwrap();
    let token = sandbox.file("token", &[&fake.portal().token.clone()]);
    let summary = sync(&sandbox, &token);
    assert_eq!(summary["held"], 1, "{summary}");
    let held = sandbox.run(&["audit", "quarantine", "--format", "json"]).ok().json();
    assert!(held.to_string().contains("contractsent"), "{held}");
    std::fs::write(sandbox.data().join("dealledger.toml"), toml(&fake.url, "contractsent = \"quote\"\n"))
        .unwrap();
    let retried = sandbox.run(&["--now", NOW, "quarantine", "retry", "--format", "json"]).ok().json();
    assert_eq!(
        (retried["admitted"].as_u64(), retried["remaining"].as_u64()),
        (Some(1), Some(0)),
        "{retried}"
    );
    // The sync reads it again (the overlap) and finds it stored.
    let again = sync(&sandbox, &token);
    assert_eq!((again["events_stored"].as_u64(), again["held"].as_u64()), (Some(0), Some(0)), "{again}");
}

#[test]
fn a_missing_or_refused_token_is_one_clear_error() {
    let fake = FakeHubSpot::start(portal());
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.data()).unwrap();
    std::fs::write(sandbox.data().join("dealledger.toml"), toml(&fake.url, "")).unwrap();
    let none = sandbox.run(&["sync", "hubspot"]);
    assert_eq!(none.code, 2, "{}", none.stderr);
    assert!(
        none.stderr.contains("--token-file") && none.stderr.contains("DEALLEDGER_HUBSPOT_TOKEN"),
        "{}",
        none.stderr
    );
    let wrong = sandbox.file("wrong", &["not-the-token"]);
    let refused = sandbox.run(&["--now", NOW, "sync", "hubspot", "--token-file", wrong.to_str().unwrap()]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("HubSpot refused the token"), "{}", refused.stderr);
    assert!(!refused.stderr.contains("not-the-token") && !refused.stdout.contains("not-the-token"));
}

/// Webhooks first, then a sync of the same portal: each change is stored once (the webhook's
/// events are the sync's duplicates), and the sync adds only what the webhooks did not say.
#[test]
fn webhooks_then_sync_store_each_change_once() {
    use crate::daemon::{Daemon, TOKEN};
    use crate::hubspot::{deliver, note, SECRET};
    let fake = FakeHubSpot::start(portal());
    let sandbox = Sandbox::new();
    let toml = format!("[serve]\ntoken = \"{TOKEN}\"\n{}", toml(&fake.url, ""))
        .replace("[hubspot]\n", &format!("[hubspot]\napp_secret = \"{SECRET}\"\n"));
    let d = Daemon::start(&sandbox, &toml);
    let created = ms("2025-01-02T09:00:00Z");
    let delivery = format!(
        "[{},{},{}]",
        note(1, created, 1, "deal.creation", "", ""),
        note(2, created, 1, "deal.propertyChange", "amount", "10000"),
        note(3, ms("2025-01-10T10:00:00Z"), 1, "deal.propertyChange", "dealstage", "qualifiedtobuy"),
    );
    let (code, ack) = deliver(&d, &delivery);
    assert_eq!((code, ack["quarantined"].as_u64()), (200, Some(0)), "{ack}");
    assert_eq!(d.terminate(), 0);
    let token = sandbox.file("token", &[&fake.portal().token.clone()]);
    let now = "2026-01-15T12:00:00Z";
    let run = sandbox
        .run(&["--now", now, "sync", "hubspot", "--token-file", token.to_str().unwrap(), "--format", "json"])
        .ok()
        .json();
    // The portal is 15 events; the webhooks said 3 of them.
    assert_eq!((run["events_stored"].as_u64(), run["duplicates"].as_u64()), (Some(12), Some(3)), "{run}");
    assert_eq!(sandbox.head(), 15);
}

/// A run killed (SIGKILL) in the middle resumes from its last stored page, and the two runs
/// together store what one clean run stores, nothing twice.
#[test]
fn a_run_killed_mid_way_resumes_and_stores_nothing_twice() {
    let mut portal = portal();
    for id in 1000..1600u64 {
        let at = ms("2025-01-20T00:00:00Z") + id as i64 * 1000;
        portal.activities.insert(("calls".into(), id), activity(&dealledger_sync::testkit::iso(at), 2, &[]));
    }
    let clean_events = {
        let mut same = Portal::default();
        (same.deals, same.activities) = (portal.deals.clone(), portal.activities.clone());
        let fake = FakeHubSpot::start(same);
        let sandbox = Sandbox::new();
        std::fs::create_dir_all(sandbox.data()).unwrap();
        std::fs::write(sandbox.data().join("dealledger.toml"), toml(&fake.url, "")).unwrap();
        let token = sandbox.file("token", &[&fake.portal().token.clone()]);
        sync(&sandbox, &token);
        sandbox.head()
    };
    portal.delay_ms = 150;
    let fake = FakeHubSpot::start(portal);
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.data()).unwrap();
    std::fs::write(sandbox.data().join("dealledger.toml"), toml(&fake.url, "")).unwrap();
    let token = sandbox.file("token", &[&fake.portal().token.clone()]);
    let mut child = std::process::Command::new(crate::harness::binary())
        .args(["--data", sandbox.data().to_str().unwrap(), "--now", NOW, "sync", "hubspot", "--quiet"])
        .args(["--token-file", token.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the second page of calls is asked for: the first is stored by then.
    let calls_searched =
        || fake.portal().seen.iter().filter(|r| r.path == "/crm/v3/objects/calls/search").count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while calls_searched() < 2 {
        assert!(std::time::Instant::now() < deadline, "the run never reached its second page of calls");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stored_before = sandbox.head();
    assert!(stored_before > 0 && stored_before < clean_events, "{stored_before} of {clean_events}");
    let state: Value =
        serde_json::from_slice(&std::fs::read(sandbox.data().join("sync/hubspot.json")).unwrap()).unwrap();
    assert!(state["cursors"]["calls"].is_i64(), "{state}");
    fake.portal().delay_ms = 0;
    let resumed = sync(&sandbox, &token);
    assert_eq!(sandbox.head(), clean_events, "{resumed}");
    assert_eq!(
        resumed["events_stored"].as_u64().unwrap() + stored_before,
        clean_events,
        "stored once: {resumed}"
    );
}

/// Negative zero is printed by no report, in no format: on the shared Salesforce sample's shape
/// (the project's own fixture: no touches, so every effort figure is zero) and on a synced one.
#[test]
fn negative_zero_is_printed_nowhere() {
    let sandbox = Sandbox::new();
    let fixture = |path: &str| format!("{}/crates/import/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    let (history, opportunities) =
        (fixture("salesforce-history/OpportunityHistory.csv"), fixture("salesforce-history/Opportunity.csv"));
    sandbox.run(&["ingest", "--format", "salesforce-history", &history, &opportunities]).ok();
    let fake = FakeHubSpot::start(portal());
    std::fs::write(sandbox.data().join("dealledger.toml"), toml(&fake.url, "")).unwrap();
    let token = sandbox.file("token", &[&fake.portal().token.clone()]);
    sync(&sandbox, &token);
    let period = ["--from", "2015-01-01", "--to", "2026-01-01"];
    let reports: [&[&str]; 5] = [
        &["pipeline"],
        &["time-in-stage", "--by", "owner"],
        &["kpis", period[0], period[1], period[2], period[3]],
        &["bad-deal-cost", period[0], period[1], period[2], period[3], "--deals"],
        &["flags"],
    ];
    for report in reports {
        for format in ["table", "csv", "json"] {
            let mut args = vec!["--now", NOW, "report"];
            args.extend_from_slice(report);
            args.extend_from_slice(&["--format", format]);
            let run = sandbox.run(&args);
            assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
            for text in [&run.stdout, &run.stderr] {
                let negative_zero = text.match_indices("-0").any(|(i, _)| {
                    let rest = &text[i + 2..];
                    let digits_follow = rest.starts_with('.')
                        && rest[1..].chars().take_while(|c| c.is_ascii_digit()).all(|c| c == '0');
                    let ends = rest.is_empty() || !rest.starts_with(|c: char| c.is_ascii_digit() || c == '.');
                    let starts_number = i == 0 || !text[..i].ends_with(|c: char| c.is_ascii_alphanumeric());
                    starts_number && (digits_follow && rest.len() > 1 || ends)
                });
                assert!(!negative_zero, "{args:?} printed a negative zero:\n{text}");
            }
        }
    }
}

/// Polls `GET path` until `done` holds of its JSON, for at most 60 s (a loaded machine).
pub(crate) fn wait_for_json(d: &crate::daemon::Daemon, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let now = d.get_json(path);
        if done(&now) {
            return now;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "{path} never came to pass: {now}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The value of one Prometheus sample, when the text has it.
pub(crate) fn sample(metrics: &str, name: &str) -> Option<u64> {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A daemon syncing the base portal every `every` (`extra`: more of `[sync]`), once its
/// first run has ended: the fake, the sandbox, the daemon and `GET /v1/sync` then.
fn syncing_daemon(every: &str, extra: &str) -> (FakeHubSpot, Sandbox, crate::daemon::Daemon, Value) {
    use crate::daemon::{Daemon, TOKEN};
    let fake = FakeHubSpot::start(portal());
    let sandbox = Sandbox::new();
    let token = sandbox.file("hubspot-token", &[&fake.portal().token.clone()]);
    let toml = format!(
        "[serve]\ntoken = \"{TOKEN}\"\n[sync]\nhubspot_token_file = \"{}\"\nhubspot = \"{every}\"\n{extra}{}",
        token.display(),
        toml(&fake.url, "")
    );
    let d = Daemon::start(&sandbox, &toml);
    let status = wait_for_json(&d, "/v1/sync", |s| s["hubspot"]["runs"].as_u64() >= Some(1));
    (fake, sandbox, d, status)
}

/// `[sync] hubspot` in the daemon: the first run at the start, through the writer, with the
/// same figures as the command's hand count; HubSpot down fails a run, never readiness, and
/// says why; back up, the next run stores what changed.
#[test]
fn the_daemon_syncs_on_its_schedule_and_rides_out_hubspot_down() {
    let (fake, sandbox, d, status) = syncing_daemon("1s", "retries_max = 1\n");
    let last = &status["hubspot"]["last"];
    assert_eq!(last["outcome"], "ok", "{status}");
    assert_eq!(last["summary"]["events_stored"], 15, "{status}");
    assert_eq!(last["summary"]["reconciled"]["compared"], 1, "{status}");
    assert_eq!(last["summary"]["reconciled"]["differences_total"], 0, "{status}");
    assert_eq!(status["hubspot"]["every_seconds"], 1);
    // The daemon's figures: the command's hand count (synced_touches_carry_every_figure_built_on_them).
    let cost = d.get_json("/v1/reports/bad-deal-cost?from=2025-01-01&to=2025-03-01&deals=true");
    assert_eq!(find_number(&cost, "effort_hours"), Some(1.583333), "{cost}");
    let kpis = d.get_json("/v1/reports/kpis?from=2025-01-01&to=2025-03-01");
    assert_eq!(find_number(&kpis, "first_response_hours_median"), Some(3.0), "{kpis}");
    assert_eq!(find_number(&kpis, "touch_minutes"), Some(125.0), "{kpis}");
    // Appended by the sync, in the daemon.
    let deal = d.get_json("/v1/deals/hubspot-1");
    assert_eq!(deal[0]["appended_by"], "sync-hubspot", "{deal}");
    let (_, metrics) = d.get("/metrics");
    assert!(
        sample(&metrics, "dealledger_sync_runs_total{crm=\"hubspot\",outcome=\"ok\"}") >= Some(1),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "dealledger_sync_events_total{crm=\"hubspot\"}"), Some(15), "{metrics}");
    // HubSpot down: a run fails and says why; the daemon stays ready.
    let failed_before = status["hubspot"]["failed_runs"].as_u64().unwrap();
    fake.portal().down_from = Some(0);
    let status =
        wait_for_json(&d, "/v1/sync", |s| s["hubspot"]["failed_runs"].as_u64() > Some(failed_before));
    let error = status["hubspot"]["last"]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("503"), "{status}");
    assert!(!error.contains(&fake.portal().token), "the token is never shown: {error}");
    let ready = ureq::get(&format!("{}/readyz", d.url)).call().map(|r| r.status());
    assert_eq!(ready.ok(), Some(200), "a CRM down never makes the daemon unready");
    let (_, metrics) = d.get("/metrics");
    assert!(sample(&metrics, "dealledger_sync_errors_total{crm=\"hubspot\"}") >= Some(1), "{metrics}");
    // Back up, with a change: a later run stores it, once.
    {
        let mut portal = fake.portal();
        portal.down_from = None;
        portal.deals.get_mut(&2).unwrap().set("amount", "7000", ms("2025-02-20T10:00:00Z"));
    }
    let stored = |s: &Value| s["hubspot"]["last"]["outcome"] == "ok";
    wait_for_json(&d, "/v1/sync", stored);
    let started = std::time::Instant::now();
    loop {
        let (_, metrics) = d.get("/metrics");
        if sample(&metrics, "dealledger_sync_events_total{crm=\"hubspot\"}") == Some(16) {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "{metrics}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(d.terminate(), 0);
    assert_eq!(sandbox.head(), 16);
}

#[test]
fn a_daemon_asked_to_sync_without_a_token_refuses_to_start() {
    let fake = FakeHubSpot::start(portal());
    let sandbox = Sandbox::new();
    let toml = format!(
        "[sync]\nhubspot = \"5m\"\nhubspot_token_file = \"/nonexistent/token\"\n{}",
        toml(&fake.url, "")
    );
    let stderr = crate::daemon::serve_refuses(&sandbox, &toml, &[]);
    assert!(
        stderr.contains("[sync] hubspot_token_file") && stderr.contains("/nonexistent/token"),
        "{stderr}"
    );
    let toml = toml.replace("hubspot = \"5m\"", "hubspot = \"5 minutes\"");
    let stderr = crate::daemon::serve_refuses(&sandbox, &toml, &[]);
    assert!(stderr.contains("[sync] hubspot") && stderr.contains("`5m`"), "{stderr}");
}

/// `report reconcile`: what HubSpot says now against the ledger, each difference with its
/// likely cause; a value HubSpot's history does not show is listed, never patched.
#[test]
fn report_reconcile_lists_what_the_history_cannot_explain() {
    let fake = FakeHubSpot::start(portal());
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.data()).unwrap();
    std::fs::write(sandbox.data().join("dealledger.toml"), toml(&fake.url, "")).unwrap();
    let token = sandbox.file("token", &[&fake.portal().token.clone()]);
    sync(&sandbox, &token);
    let head = sandbox.head();
    fake.portal().deals.get_mut(&2).unwrap().silent.insert("amount".into(), "6500".into());
    let args = ["--now", NOW, "report", "reconcile", "--token-file", token.to_str().unwrap()];
    let json = sandbox.run(&[&args[..], &["--format", "json"]].concat()).ok().json();
    let reconciled = &json["reconciled"];
    assert_eq!(
        reconciled["differences"],
        serde_json::json!([{"deal": "hubspot-2", "field": "amount", "crm": "6500.00", "ledger": "5000.00",
                            "cause": "not_in_history"}]),
        "{json}"
    );
    assert_eq!(reconciled["stored_from_history"], 0, "{json}");
    assert_eq!(sandbox.head(), head, "nothing is invented");
    let table = sandbox.run(&args).ok();
    assert!(
        table.stdout.contains("hubspot-2 amount: CRM 6500.00, ledger 5000.00 [not_in_history]"),
        "{}",
        table.stdout
    );
    let through_daemon = sandbox.run(&[&["--server", "http://127.0.0.1:9"][..], &args[..]].concat());
    assert_eq!(through_daemon.code, 2, "{}", through_daemon.stderr);
}

/// The dashboard shows the last scheduled sync's outcome beside the live count.
#[test]
fn the_dashboard_shows_the_last_sync() {
    use crate::daemon::TOKEN;
    if !crate::dashboard::tools_available("the_dashboard_shows_the_last_sync") {
        return;
    }
    let (_fake, _sandbox, d, _) = syncing_daemon("1h", "");
    let sign_in = format!(
        "(document.querySelector('input[name=token]').value = {}, document.querySelector('form').requestSubmit(), true)",
        serde_json::json!(TOKEN)
    );
    let has = |text: &str| format!("document.body.innerText.includes({})", serde_json::json!(text));
    let results = crate::dashboard::drive(
        &d.url,
        serde_json::json!([
            {"page": "pipeline", "hash": "pipeline", "until": has("Sign in")},
            {"page": "pipeline", "hash": "pipeline", "navigate": false, "evaluate": sign_in,
             "until": has("hubspot sync at")},
        ]),
    );
    let text = results[1]["text"].as_str().unwrap_or_default();
    assert!(text.contains("15 stored, 0 differences with hubspot"), "{text}");
}

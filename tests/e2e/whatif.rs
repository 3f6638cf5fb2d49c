//! `dealledger whatif` through the binary, and `GET /v1/whatif` on the daemon.

use crate::daemon::{Daemon, NOW};
use crate::harness::Ledger;

/// The seed's example: opened on day 0 (2025-01-01), an inbound touch on day 1, a 30-minute call
/// on day 20, disqualified on day 45; and a deal won on day 30 after going quiet from day 9.
fn history() -> Vec<String> {
    vec![
        r#"{"deal":"A","type":"opened","at":"2025-01-01T00:00:00Z","owner":"ann","amount":10000}"#.into(),
        r#"{"deal":"A","type":"touch","at":"2025-01-02T00:00:00Z","channel":"email","direction":"inbound"}"#.into(),
        r#"{"deal":"A","type":"touch","at":"2025-01-21T00:00:00Z","channel":"call","direction":"outbound","minutes":30}"#.into(),
        r#"{"deal":"A","type":"disqualified","at":"2025-02-15T00:00:00Z","reason":"gone_dark"}"#.into(),
        r#"{"deal":"W","type":"opened","at":"2025-01-01T00:00:00Z","owner":"bob","amount":25000}"#.into(),
        r#"{"deal":"W","type":"touch","at":"2025-01-10T00:00:00Z","channel":"call","direction":"inbound"}"#.into(),
        r#"{"deal":"W","type":"won","at":"2025-01-31T00:00:00Z"}"#.into(),
    ]
}

fn ledger() -> Ledger {
    let l = Ledger::new();
    let lines = history();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    l.ingest("events.jsonl", &refs).ok();
    l
}

#[test]
fn one_policy_a_sweep_a_plot_and_a_comparison() {
    let l = ledger();
    let r = l.run(&["whatif", "--rule", "gone_dark=14", "--deals", "--format", "json"]).ok().json();
    // A is cut on day 15 instead of day 45: 30 days at $4,000. W is cut on day 23: a false cut.
    assert_eq!(r["policy"], serde_json::json!({"gone_dark": 14.0}));
    assert_eq!(
        (r["cut"].as_u64(), r["cut_won"].as_u64(), r["cut_bad"].as_u64()),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(r["calendar_days_saved"], 30.0);
    assert_eq!(r["calendar_value_saved"], 120000.0);
    assert_eq!(r["revenue_at_risk"], 25000.0);
    assert_eq!(r["effort_value_saved"], 1000.0);
    assert_eq!(r["net_value"], -24000.0);
    assert_eq!(r["deals"][0]["cut_at"], "2025-01-16T00:00:00Z");
    assert_eq!(r["deals"][1]["rule"], "gone_dark");

    let svg = l.dir.path().join("sweep.svg");
    let sweep = l
        .run(&["whatif", "--sweep", "gone_dark=10..25", "--plot", svg.to_str().unwrap(), "--format", "json"])
        .ok()
        .json();
    let rows = sweep["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 16);
    // Every row is what the single run says.
    for value in [10, 14, 21, 22] {
        let single =
            l.run(&["whatif", "--rule", &format!("gone_dark={value}"), "--format", "json"]).ok().json();
        let row = rows.iter().find(|r| r["value"] == f64::from(value)).unwrap();
        for key in ["cut", "cut_won", "revenue_at_risk", "net_value", "calendar_days_saved", "precision"] {
            assert_eq!(row[key], single[key], "{key} at {value}");
        }
    }
    // W is quiet from day 9 and won on day 30: 21 days still cut it (at the very moment it was
    // won: the cut comes first), from 22 days on it is kept.
    assert_eq!(sweep["best"]["value"], 22.0);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.matches("<polyline").count() == 3, "{text}");
    assert!(text.contains("best: gone_dark = 22"), "{text}");

    let a = l.file("a.toml", &["gone_dark = 14"]);
    let b = l.file("b.toml", &["gone_dark = 30", "unanswered_touches = 3"]);
    let compared = l
        .run(&["whatif", "--compare", a.to_str().unwrap(), b.to_str().unwrap(), "--format", "json"])
        .ok()
        .json();
    assert_eq!(compared["policies"][0]["cut"], 2);
    assert_eq!(
        compared["policies"][1]["policy"],
        serde_json::json!({"gone_dark": 30.0, "unanswered_touches": 3})
    );
    assert_eq!(compared["policies"][1]["cut"], 1);
    // For people, each policy under its file's name, not its JSON.
    let table = l.run(&["whatif", "--compare", a.to_str().unwrap(), b.to_str().unwrap()]).ok().stdout;
    let rows: Vec<&str> = table.lines().filter(|line| line.contains(".toml")).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].starts_with(a.to_str().unwrap()) && rows[1].starts_with(b.to_str().unwrap()), "{table}");
    assert!(!table.contains("{\""), "{table}");
}

#[test]
fn bad_policies_are_one_clear_error() {
    let l = ledger();
    let run = l.run(&["whatif"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no policy"), "{}", run.stderr);
    let run = l.run(&["whatif", "--rule", "gone_drak=14"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("unknown rule `gone_drak`"), "{}", run.stderr);
    let run = l.run(&["whatif", "--sweep", "gone_dark=20..10"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("FROM <= TO"), "{}", run.stderr);
    let bad = l.file(
        "bad.toml",
        &["[[missing_field]]", "field = \"budget\"", "by_stage = \"nowhere\"", "grace_days = 1"],
    );
    let run = l.run(&["whatif", "--policy", bad.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("by_stage `nowhere` is not a pipeline stage"), "{}", run.stderr);
    // A policy file the schema refuses: the engine's error kind maps to the flags' exit code.
    let typo = l.file("typo.toml", &["gone_drak = 14"]);
    let run = l.run(&["whatif", "--policy", typo.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains(":1:1: unknown key `gone_drak`"), "{}", run.stderr);
}

#[test]
fn the_daemon_answers_the_same() {
    let l = ledger();
    let args =
        ["whatif", "--rule", "gone_dark=14", "--rule", "no_activity=30", "--by", "owner", "--format", "json"];
    // At the daemon's moment: as-of defaults to now.
    let local = l.run(&[&["--now", NOW][..], &args[..]].concat()).ok();
    let d = Daemon::start(&l, "[serve]\ntoken = \"t0ken-for-the-tests\"\n");
    let (code, text) = d.get("/v1/whatif?rule=gone_dark%3D14&rule=no_activity=30&by=owner");
    assert_eq!(code, 200, "{text}");
    assert_eq!(text, local.stdout);
    // And the CLI's --server asks it.
    let through = l.run(&[&["--server", d.url.as_str()][..], &args[..]].concat());
    assert_eq!(through.ok().stdout, local.stdout);
    let chart = l.dir.path().join("sweep.svg");
    let refused = l.run(&[
        "--server",
        &d.url,
        "whatif",
        "--sweep",
        "gone_dark=7..9",
        "--plot",
        chart.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("run --policy and --plot where the data directory"),
        "{}",
        refused.stderr
    );
    let refused = l.run(&["--server", &d.url, "stats"]);
    assert_eq!(refused.code, 2);
    let (code, text) = d.get("/v1/whatif?rule=nope=1");
    assert_eq!(code, 400);
    assert!(text.contains("unknown rule `nope`"), "{text}");
    assert_eq!(d.terminate(), 0);
}

#[test]
fn the_daemon_sweeps_and_compares_the_same() {
    let l = ledger();
    let strict = l.file("strict.toml", &["gone_dark = 10", "stalled = 1.5"]);
    let loose = l.file("loose.toml", &["gone_dark = 30", "unanswered_touches = 4"]);
    let sweep = ["whatif", "--rule", "no_activity=30", "--sweep", "gone_dark=7..12:0.5", "--format", "json"];
    let compare =
        ["whatif", "--compare", strict.to_str().unwrap(), loose.to_str().unwrap(), "--format", "json"];
    let at_now = |args: &[&str]| l.run(&[&["--now", NOW][..], args].concat()).ok().stdout;
    let (local_sweep, local_compare) = (at_now(&sweep), at_now(&compare));
    let d = Daemon::start(&l, "[serve]\ntoken = \"t0ken-for-the-tests\"\n");
    let (code, text) = d.get("/v1/whatif?rule=no_activity=30&sweep=gone_dark%3D7..12:0.5");
    assert_eq!(code, 200, "{text}");
    assert_eq!(text, local_sweep);
    let labels = format!("label={}&label={}", strict.display(), loose.display());
    let (code, text) = d.get(&format!(
        "/v1/whatif?policy=gone_dark=10,stalled=1.5&policy=gone_dark=30,unanswered_touches=4&{labels}"
    ));
    assert_eq!(code, 200, "{text}");
    assert_eq!(text, local_compare);
    // Without labels, each policy is shown under its rules.
    let (_, text) = d.get("/v1/whatif?policy=gone_dark=10,stalled=1.5&policy=gone_dark=30");
    let unlabelled: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(unlabelled["policies"][1]["label"], "gone_dark=30");
    // The CLI's --server asks it for both.
    for (args, local) in [(&sweep[..], &local_sweep), (&compare[..], &local_compare)] {
        let through = l.run(&[&["--server", d.url.as_str()][..], args].concat());
        assert_eq!(&through.ok().stdout, local, "{args:?}");
    }
    // What cannot travel is refused with the reason.
    let (code, text) = d.get("/v1/whatif?rule=gone_dark=14&policy=stalled=2");
    assert_eq!(code, 400, "{text}");
    let (code, text) = d.get("/v1/whatif?sweep=gone_dark=1..20000");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("at most 10000"), "{text}");
    let fields = l.file(
        "fields.toml",
        &["[[missing_field]]", "field = \"budget\"", "by_stage = \"quote\"", "grace_days = 1"],
    );
    let refused = l.run(&[
        "--server",
        &d.url,
        "whatif",
        "--compare",
        fields.to_str().unwrap(),
        strict.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("missing_field"), "{}", refused.stderr);
    assert_eq!(d.terminate(), 0);
}

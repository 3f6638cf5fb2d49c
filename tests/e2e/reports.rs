//! Reports through the binary: bitemporal answers with recorded times from the injected clock,
//! every format, settings from dealledger.toml, checkpoints that do not change answers.

use crate::harness::{a, Ledger, OPEN_A};

fn pipeline_stage(l: &Ledger, args: &[&str]) -> (String, u64) {
    let mut all = vec!["report", "pipeline", "--format", "json"];
    all.extend_from_slice(args);
    let report = l.run(&all).ok().json();
    let stages = report["stages"].as_array().unwrap();
    let open: Vec<_> = stages.iter().filter(|s| s["deals"] != 0).collect();
    assert_eq!(open.len(), 1, "{report}");
    (open[0]["stage"].as_str().unwrap().to_string(), open[0]["deals"].as_u64().unwrap())
}

#[test]
fn a_late_logged_move_changes_known_at_answers_not_as_of_answers() {
    let l = Ledger::new();
    let path =
        l.file("first.jsonl", &[OPEN_A, &a("touch", 12, r#","channel":"call","direction":"inbound""#)]);
    l.run(&["--now", "2024-01-20T00:00:00Z", "ingest", path.to_str().unwrap()]).ok();
    // Logged on 02-01, but it happened on 01-15: recorded_at comes from the clock.
    let late = l.file("late.jsonl", &[&a("stage_moved", 15, r#","to":"quote""#)]);
    l.run(&["--now", "2024-02-01T00:00:00Z", "ingest", late.to_str().unwrap()]).ok();

    let as_of = ["--as-of", "2024-01-25"];
    assert_eq!(
        pipeline_stage(&l, &[&as_of[..], &["--known-at", "2024-01-25"]].concat()),
        ("prospecting".into(), 1)
    );
    assert_eq!(
        pipeline_stage(&l, &[&as_of[..], &["--known-at", "2024-02-02"]].concat()),
        ("quote".into(), 1)
    );
    // As of a moment before the move, whatever we know.
    assert_eq!(
        pipeline_stage(&l, &["--as-of", "2024-01-14", "--known-at", "2024-02-02"]),
        ("prospecting".into(), 1)
    );
    // Defaults are now (the injected clock).
    let report =
        l.run(&["--now", "2024-03-01T00:00:00Z", "report", "pipeline", "--format", "json"]).ok().json();
    assert_eq!(report["as_of"], "2024-03-01T00:00:00Z");
    assert_eq!(report["known_at"], "2024-03-01T00:00:00Z");
    assert_eq!(report["totals"]["amount"], 12000.0);
    assert_eq!(report["totals"]["weighted_amount"], 6000.0);
}

#[test]
fn reports_in_every_format_with_settings_and_checkpoints() {
    let l = Ledger::new();
    l.ingest(
        "events.jsonl",
        &[
            OPEN_A,
            &a("touch", 11, r#","channel":"meeting","direction":"outbound""#),
            &a("touch", 12, r#","channel":"call","direction":"outbound","minutes":30"#),
            &a("disqualified", 20, r#","reason":"no_budget""#),
        ],
    )
    .ok();
    std::fs::write(
        l.data().join("dealledger.toml"),
        "[costs]\nquota = 600000\nselling_hours = 450\n[flags]\ngone_dark_days = 7\n",
    )
    .unwrap();
    let period = ["--from", "2024-01-01", "--to", "2024-02-01"];
    let cost = |format: &str| {
        let mut args = vec!["report", "bad-deal-cost", "--format", format];
        args.extend_from_slice(&period);
        l.run(&args).ok().stdout
    };
    // 90 minutes at 600,000 / 450 h = 1,333.33 an hour: 2,000.00, commission 200.00.
    let json: serde_json::Value = serde_json::from_str(&cost("json")).unwrap();
    assert_eq!(
        json["totals"],
        serde_json::json!({"bad_deals": 1, "effort_hours": 1.5, "time_cost": 2000.00, "commission_cost": 200.00})
    );
    assert_eq!(json["by_owner"][0]["hourly_value"], 1333.33);
    assert_eq!(
        cost("csv"),
        "owner,bad_deals,effort_hours,hourly_value,time_cost,commission_cost\n\
         ana,1,1.5,1333.33,2000.00,200.00\n(total),1,1.5,,2000.00,200.00\n"
    );
    assert!(
        cost("table").contains("ana              1            1.50  1,333.33 USD  2,000.00 USD"),
        "{}",
        cost("table")
    );

    // The first report saved a checkpoint; the answer from it equals the one after a replay.
    let kpis = || {
        l.run(&[
            "--now",
            "2099-01-01T00:00:00Z",
            "report",
            "kpis",
            "--from",
            "2024-01-01",
            "--to",
            "2024-02-01",
            "--format",
            "json",
        ])
        .ok()
        .stdout
    };
    let from_checkpoint = kpis();
    l.run(&["replay"]).ok();
    assert_eq!(kpis(), from_checkpoint);
    let k: serde_json::Value = serde_json::from_str(&from_checkpoint).unwrap();
    assert_eq!((k["disqualified"].as_u64(), k["close_rate"].as_f64()), (Some(1), Some(0.0)), "{k}");
    // First outbound touch one day after opening (01-10 09:00 to 01-11 10:00).
    assert_eq!(k["avg_first_response_hours"], 25.0);

    for report in [&["time-in-stage"][..], &["flags"], &["time-in-stage", "--by", "owner", "--deals"]] {
        for format in ["table", "json", "csv"] {
            let mut args = vec!["report"];
            args.extend_from_slice(report);
            args.extend_from_slice(&["--format", format, "--as-of", "2024-01-15"]);
            let run = l.run(&args).ok();
            assert!(!run.stdout.is_empty(), "{args:?}");
        }
    }
    let flags = l.run(&["report", "flags", "--as-of", "2024-01-26", "--format", "json"]).ok().json();
    assert_eq!(flags["flags"], serde_json::json!([]), "a disqualified deal raises no flag");
    let flags = l.run(&["report", "flags", "--as-of", "2024-01-19", "--format", "json"]).ok().json();
    let rules: Vec<&str> =
        flags["flags"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["gone_dark"], "{flags}");
    assert_eq!(flags["flags"][0]["since"], "2024-01-17T09:00:00Z");
}

#[test]
fn bad_report_arguments_are_one_clear_error() {
    let l = Ledger::new();
    l.ingest("events.jsonl", &[OPEN_A]).ok();
    let run = l.run(&["report", "pipeline", "--as-of", "last tuesday"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--as-of `last tuesday`"), "{}", run.stderr);
    let run = l.run(&["report", "kpis", "--from", "2024-02-01", "--to", "2024-01-01"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--from `2024-02-01`: must be before to (2024-01-01)"), "{}", run.stderr);
    std::fs::write(l.data().join("dealledger.toml"), "[flags]\nlate_stages = [\"negotiation\"]\n").unwrap();
    let run = l.run(&["report", "flags"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("dealledger.toml: [flags]: `negotiation` is not a stage"), "{}", run.stderr);
}

use crate::harness::*;

#[test]
fn ingest_reports_and_stats_count() {
    let l = Ledger::new();
    let touch = a("touch", 11, r#","channel":"call","direction":"outbound","minutes":20,"source_id":"c-1""#);
    let moved = a("stage_moved", 12, r#","to":"qualifying""#);
    let run = l.ingest("in.jsonl", &[OPEN_A, &touch, "", &moved]).ok();
    let report = run.json();
    assert_eq!(report["ingested"], 3);
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["head_seq"], 3);
    let stats = l.run(&["stats", "--format", "json"]).ok().json();
    assert_eq!(stats["events"], 3);
    assert_eq!(stats["deals"], 1);
    assert_eq!(stats["head_seq"], 3);
    assert!(stats["bytes_on_disk"].as_u64().unwrap() > 0);
}

#[test]
fn duplicates_are_skipped_and_conflicts_refused() {
    let l = Ledger::new();
    let t1 = a("touch", 11, r#","channel":"email","direction":"inbound","source_id":"mail-1""#);
    let t2 = a("touch", 12, r#","channel":"email","direction":"inbound","source_id":"mail-2""#);
    l.ingest("one.jsonl", &[OPEN_A, &t1]).ok();
    // A retry of the same export plus one new line: only the new line is stored.
    let report = l.ingest("two.jsonl", &[&t1, &t2]).ok().json();
    assert_eq!((report["ingested"].as_u64(), report["duplicates"].as_u64()), (Some(1), Some(1)));
    // A different body under a known source_id: a conflict, exit 4, nothing stored.
    let changed = a("touch", 13, r#","channel":"email","direction":"inbound","source_id":"mail-1""#);
    let t3 = a("touch", 14, r#","channel":"call","direction":"outbound""#);
    let path = l.file("three.jsonl", &[&t3, &changed]);
    let run = l.run(&["ingest", path.to_str().unwrap()]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("three.jsonl:2: field `source_id`: `mail-1` was stored as seq 2 with a different body [idempotency_conflict]"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was stored"));
    assert_eq!(l.head(), 3);
}

#[test]
fn expected_version_conflicts() {
    let l = Ledger::new();
    l.ingest("one.jsonl", &[OPEN_A]).ok();
    let good = a("touch", 11, r#","channel":"call","direction":"outbound","expected_version":1"#);
    let stale = a("touch", 12, r#","channel":"call","direction":"outbound","expected_version":1"#);
    l.ingest("two.jsonl", &[&good]).ok();
    let run = l.ingest("three.jsonl", &[&stale]);
    assert_eq!(run.code, 4);
    assert!(
        run.stderr.contains(
            "three.jsonl:1: field `expected_version`: deal `A-1` is at version 2, not 1 [version_conflict]"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(l.head(), 2);
}

#[test]
fn stdin_and_several_files_are_one_batch() {
    let l = Ledger::new();
    let first = l.file("1.jsonl", &[OPEN_A]);
    let bad = l.file("2.jsonl", &[&a("touch", 11, r#","channel":"fax","direction":"outbound""#)]);
    let run = l.run(&["ingest", first.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("2.jsonl:1: field `channel`: `fax` is not a channel"), "{}", run.stderr);
    assert_eq!(l.head(), 0, "the valid first file was not stored either");
    let run = l.run_with_stdin(&["ingest", "--output", "json", "-"], Some(&format!("{OPEN_A}\n"))).ok();
    assert_eq!(run.json()["ingested"], 1);
}

#[test]
fn skip_invalid_writes_rejects_with_reasons() {
    let l = Ledger::new();
    let rejects = l.dir.path().join("rejects.jsonl");
    let bad = a("stage_moved", 11, r#","to":"nowhere""#);
    let good = a("stage_moved", 12, r#","to":"quote""#);
    let path = l.file("in.jsonl", &[OPEN_A, &bad, "{oops", &good]);
    let run = l
        .run(&[
            "ingest",
            "--skip-invalid",
            "--rejects",
            rejects.to_str().unwrap(),
            "--output",
            "json",
            path.to_str().unwrap(),
        ])
        .ok();
    assert_eq!(run.json()["ingested"], 2);
    assert_eq!(run.json()["rejected"], 2);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0]["location"].as_str().unwrap().ends_with("in.jsonl:2"));
    assert_eq!(lines[0]["rule"], "unknown_stage");
    assert_eq!(lines[0]["field"], "to");
    assert_eq!(lines[0]["line"], bad.as_str());
    assert_eq!(lines[1]["rule"], "malformed_json");
    assert!(lines[1]["location"].as_str().unwrap().ends_with("in.jsonl:3"));
    // --skip-invalid without --rejects is refused by the flag parser (exit 2).
    assert_eq!(l.run(&["ingest", "--skip-invalid", path.to_str().unwrap()]).code, 2);
}

#[test]
fn pipeline_comes_from_dealledger_toml() {
    let l = Ledger::new();
    std::fs::create_dir_all(l.data()).unwrap();
    std::fs::write(
        l.data().join("dealledger.toml"),
        "[[pipeline.stages]]\nname = \"discovery\"\nprobability = 0.2\n[[pipeline.stages]]\nname = \"proposal\"\nprobability = 0.6\n",
    )
    .unwrap();
    let open = r#"{"deal":"P-1","type":"opened","at":"2024-01-10T09:00:00Z","owner":"ana","amount":1}"#;
    let to_quote = r#"{"deal":"P-1","type":"stage_moved","at":"2024-01-11T09:00:00Z","to":"quote"}"#;
    let run = l.ingest("in.jsonl", &[open, to_quote]);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("`quote` is not a stage of the pipeline (discovery, proposal) [unknown_stage]"),
        "{}",
        run.stderr
    );
    let to_proposal = r#"{"deal":"P-1","type":"stage_moved","at":"2024-01-11T09:00:00Z","to":"proposal"}"#;
    l.ingest("ok.jsonl", &[open, to_proposal]).ok();
    let history = l.run(&["audit", "deal", "P-1", "--format", "json"]).ok().json();
    assert_eq!(history[0]["stage"], "discovery", "opened defaults to the pipeline's first stage");
}

#[test]
fn gen_is_deterministic_and_ingests_whole() {
    let l = Ledger::new();
    let one = l.run(&["gen", "--deals", "60", "--seed", "9"]).ok().stdout;
    let two = l.run(&["gen", "--deals", "60", "--seed", "9"]).ok().stdout;
    assert_eq!(one, two);
    assert_ne!(one, l.run(&["gen", "--deals", "60", "--seed", "10"]).ok().stdout);
    let events = one.lines().count() as u64;
    let report = l.run_with_stdin(&["ingest", "--output", "json"], Some(&one)).ok().json();
    assert_eq!(report["ingested"].as_u64(), Some(events));
    assert_eq!(l.run(&["stats", "--format", "json"]).ok().json()["deals"], 60);
    // Two deals more after the checkpoint that count saved: the deal index's count and the tail.
    let more = concat!(
        r#"{"deal":"N-1","type":"opened","at":"2025-01-01T00:00:00Z","owner":"ann","amount":1}"#,
        "\n",
        r#"{"deal":"N-2","type":"opened","at":"2025-01-01T00:00:00Z","owner":"ann","amount":1}"#,
        "\n"
    );
    l.run_with_stdin(&["ingest"], Some(more)).ok();
    assert_eq!(l.run(&["stats", "--format", "json"]).ok().json()["deals"], 62);
}

#[test]
fn demo_runs_in_a_given_directory_and_refuses_a_full_one() {
    let l = Ledger::new();
    let run = l.run(&["demo", "--deals", "200"]).ok();
    assert!(run.stdout.contains("Pipeline (USD) as of"), "{}", run.stdout);
    assert!(run.stdout.contains("audit verify: ok"));
    let again = l.run(&["demo", "--deals", "200"]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("already holds"), "{}", again.stderr);
}

#[test]
fn help_is_there_for_every_subcommand() {
    let l = Ledger::new();
    for command in [
        &["ingest"][..],
        &["stats"],
        &["replay"],
        &["audit", "deal"],
        &["audit", "verify"],
        &["audit", "digest"],
        &["gen"],
        &["demo"],
        &["bench"],
        &["report", "pipeline"],
        &["report", "time-in-stage"],
        &["report", "kpis"],
        &["report", "bad-deal-cost"],
        &["report", "flags"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let run = l.run(&args).ok();
        assert!(run.stdout.contains("Usage: dealledger"), "{args:?}: {}", run.stdout);
    }
}

#[test]
fn reading_an_empty_data_dir_says_what_to_do() {
    let l = Ledger::new();
    let run = l.run(&["stats"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no ledger in"), "{}", run.stderr);
}

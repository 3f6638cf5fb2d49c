//! The first hour of a new user (issue 24): what the README's commands do on generated data, as
//! a person types them. Each test is one defect found that way, seen to fail before its fix.

use crate::daemon::{Daemon, NOW, TOKEN};
use crate::harness::{binary, Ledger};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// A ledger holding `gen --deals N --seed 7` (two currencies, 2024 and 2025), ingested at
/// [`NOW`], and the file it came from.
fn generated(deals: &str) -> (Ledger, std::path::PathBuf) {
    let l = Ledger::new();
    let history = l.run(&["gen", "--deals", deals, "--seed", "7"]).ok().stdout;
    let path = l.dir.path().join("history.jsonl");
    std::fs::write(&path, history).unwrap();
    l.run(&["--now", NOW, "ingest", "--quiet", path.to_str().unwrap()]).ok();
    (l, path)
}

/// Runs the binary with its standard output closed after the first line, as `| head -1` does.
fn first_line_only(l: &Ledger, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(binary())
        .arg("--data")
        .arg(l.data())
        .args(args)
        .env_remove("DEALLEDGER_DATA")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    // The reader is dropped here: the pipe is closed with most of the output unwritten.
    let output = child.wait_with_output().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn output_cut_short_by_a_closed_pipe_is_a_clean_exit() {
    let (l, _) = generated("1500");
    for args in [
        &["--now", NOW, "report", "time-in-stage", "--deals"][..],
        &["--now", NOW, "report", "time-in-stage", "--deals", "--format", "json"],
        &["--now", NOW, "whatif", "--rule", "gone_dark=14", "--deals"],
        &["audit", "deal", "D-0000001", "--format", "json"],
    ] {
        let (code, stderr) = first_line_only(&l, args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn report_html_works_while_the_daemon_holds_the_ledger() {
    let (l, _) = generated("200");
    let daemon = Daemon::start(&l, &format!("[serve]\ntoken = \"{TOKEN}\"\n"));
    let out = l.dir.path().join("review.html");
    let out = out.to_str().unwrap();
    // Without --server: the ledger is the daemon's, and the error gives the command that works.
    let refused = l.run(&["--now", NOW, "report", "html", "--out", out]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains(&format!("--server {} report html", daemon.url)), "{}", refused.stderr);
    // With it, the file is made from the daemon's answers: the same figures.
    let made = l.run(&["--now", NOW, "--server", &daemon.url, "report", "html", "--out", out]).ok();
    assert!(made.stdout.contains("wrote"), "{}", made.stdout);
    let page = std::fs::read_to_string(out).unwrap();
    let pipeline = daemon.get_json("/v1/reports/pipeline");
    let total = pipeline["totals"]["amount"].to_string();
    assert!(page.contains(&total), "the page holds the daemon's pipeline total {total}");
    // CSV has no room for notes: the daemon sends them as headers, and --server prints them
    // where the person is (the history ends two weeks before the daemon's now).
    let csv = l.run(&["--server", &daemon.url, "report", "flags", "--format", "csv"]).ok();
    assert!(csv.stdout.starts_with("deal,owner,rule,since,figure,detail\n"), "{}", csv.stdout);
    assert!(csv.stderr.contains("note: nothing happened in the "), "{}", csv.stderr);
    assert!(csv.stderr.contains(&format!("days before {NOW}")), "{}", csv.stderr);
    assert!(csv.stderr.contains("offer: --as-of "), "{}", csv.stderr);
    daemon.terminate();
}

#[test]
fn ingesting_a_file_again_stores_nothing_twice() {
    let (l, path) = generated("300");
    let path = path.to_str().unwrap();
    let rejects = l.dir.path().join("rejects.jsonl");
    let cost = |l: &Ledger| {
        l.run(&["--now", NOW, "report", "bad-deal-cost", "--from", "2024-01-01", "--to", "2026-01-01"])
            .ok()
            .stdout
    };
    let before = (l.head(), cost(&l));
    let lines = std::fs::read_to_string(path).unwrap().lines().count() as u64;
    // The README's command, twice: every line of the second run is a duplicate of the first.
    let again = l
        .run(&[
            "--now",
            NOW,
            "ingest",
            "--skip-invalid",
            "--rejects",
            rejects.to_str().unwrap(),
            "--output",
            "json",
            path,
        ])
        .ok()
        .json();
    assert_eq!((again["ingested"].as_u64(), again["rejected"].as_u64()), (Some(0), Some(0)), "{again}");
    assert_eq!(again["duplicates"].as_u64(), Some(lines));
    // A plain re-ingest too.
    let plain = l.run(&["--now", NOW, "ingest", "--output", "json", path]).ok().json();
    assert_eq!((plain["ingested"].as_u64(), plain["duplicates"].as_u64()), (Some(0), Some(lines)));
    assert_eq!((l.head(), cost(&l)), before, "nothing stored twice, no figure changed");

    // The same deals exported again with another amount: not a re-send, and the error says
    // what probably happened.
    let changed: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| line.replacen("\"amount\":", "\"amount\":1", 1))
        .collect();
    let changed = l.file("changed.jsonl", &changed.iter().map(String::as_str).collect::<Vec<_>>());
    let refused = l.run(&["--now", NOW, "ingest", changed.to_str().unwrap()]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(refused.stderr.contains("[already_opened]"), "{}", refused.stderr);
    assert!(refused.stderr.contains("loaded before"), "{}", refused.stderr);
}

#[test]
fn a_currency_the_deals_do_not_have_is_refused_and_one_they_have_is_shown_alone() {
    let (l, _) = generated("300");
    let refused = l.run(&["--now", NOW, "report", "pipeline", "--currency", "ZZZ"]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains("EUR, USD"), "names the currencies there are: {}", refused.stderr);
    let kpis = l.run(&[
        "--now",
        NOW,
        "report",
        "kpis",
        "--from",
        "2025-01-01",
        "--to",
        "2025-04-01",
        "--currency",
        "JPY",
    ]);
    assert_eq!(kpis.code, 2, "{}", kpis.stdout);
    for (report, extra) in
        [("pipeline", &[][..]), ("kpis", &["--from", "2025-01-01", "--to", "2025-04-01"][..])]
    {
        for (asked, other) in [("USD", "EUR"), ("EUR", "USD")] {
            let args = [&["--now", NOW, "report", report, "--currency", asked][..], extra].concat();
            let shown = l.run(&args).ok().stdout;
            assert!(shown.contains(&format!("({asked})")), "{report} {asked}: {shown}");
            assert!(!shown.contains(&format!("({other})")), "{report} {asked} shows {other}: {shown}");
            let json = l.run(&[&args[..], &["--format", "json"]].concat()).ok().json();
            assert_eq!(json["currency"], asked);
            assert!(json.get("by_currency").is_none(), "{report} {asked}: one currency asked, one given");
            assert_eq!(json["currencies"], serde_json::json!(["EUR", "USD"]), "the others are named");
        }
    }
}

#[test]
fn a_moment_typed_wrong_says_what_was_expected() {
    let (l, _) = generated("20");
    let run = l.run(&["--now", NOW, "report", "kpis", "--from", "2025-01-01", "--to", "2025-04-31"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("April 2025 has 30 days"), "{}", run.stderr);
    let run = l.run(&["--now", NOW, "report", "pipeline", "--as-of", "2025-06-30T12:00"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("e.g. 2025-06-30T12:00:00Z"), "{}", run.stderr);
}

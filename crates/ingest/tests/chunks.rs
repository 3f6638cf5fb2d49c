//! An input read in several chunks: lines cut at a chunk's end are whole in the next, every line
//! keeps its number (a reject names the right one), and CRLF and blank lines are taken as one.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "a test: a panic is a failure")]

use dealledger_events::{FixedClock, Pipeline, Timestamp};
use dealledger_ingest::{run, Options};
use dealledger_log::{Ledger, MemStore};
use std::io::Write;

#[test]
fn lines_across_chunks_keep_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let rejects = dir.path().join("rejects.jsonl");
    // About 12 MB: three 4 MiB chunks, with lines cut at both boundaries.
    const LINES: usize = 130_000;
    let bad = [1, 46_611, 93_222, LINES];
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for n in 1..=LINES {
        let line = if bad.contains(&n) {
            format!(
                r#"{{"deal":"D-{n}","type":"opened","at":"2025-01-01T00:00:00Z","owner":"ann","amount":-1}}"#
            )
        } else {
            format!(
                r#"{{"deal":"D-{n}","type":"opened","at":"2025-01-01T00:00:00Z","owner":"ann","amount":100}}"#
            )
        };
        // Every tenth line ends in CRLF, and a blank line stands in for every 1,000th event.
        let end = if n % 10 == 0 { "\r\n" } else { "\n" };
        let line = if n % 1000 == 0 { String::new() } else { line };
        write!(file, "{line}{end}").unwrap();
    }
    file.flush().unwrap();
    drop(file);
    assert!(std::fs::metadata(&input).unwrap().len() > 3 * 4 * 1024 * 1024 - 1_000_000);

    let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
    let clock = FixedClock(Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap());
    let options = Options {
        inputs: vec![input.display().to_string()],
        skip_invalid: true,
        rejects: Some(rejects.clone()),
        rejects_bytes_max: dealledger_ingest::REJECTS_BYTES_MAX_DEFAULT,
        progress: false,
    };
    let report = run(&mut ledger, &clock, &options).unwrap();
    let blank = LINES / 1000;
    let rejected_lines: Vec<usize> = bad.iter().copied().filter(|n| n % 1000 != 0).collect();
    assert_eq!(report.rejected as usize, rejected_lines.len());
    assert_eq!(report.ingested as usize, LINES - blank - rejected_lines.len());
    let locations: Vec<String> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["location"].as_str().unwrap().to_string()
        })
        .collect();
    let expected: Vec<String> = rejected_lines.iter().map(|n| format!("{}:{n}", input.display())).collect();
    assert_eq!(locations, expected);
}

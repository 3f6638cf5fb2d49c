//! Time sanity: an `at` or `recorded_at` more than `[ingest] max_future`
//! after the ledger's clock is refused with its own rule, and so is a `recorded_at` that far
//! before `at`; every stored event keeps `appended_at`, the ledger's own clock when it was
//! appended, beside the client's `recorded_at`.

use crate::daemon::{Daemon, NOW};
use crate::harness::Ledger;

const OPEN: &str = r#"{"deal":"T-1","type":"opened","at":"2026-01-10T09:00:00Z","owner":"o","amount":1}"#;

fn ingest_at(l: &Ledger, now: &str, lines: &[&str]) -> crate::harness::Run {
    let path = l.file("in.jsonl", lines);
    l.run(&["--now", now, "ingest", path.to_str().unwrap()])
}

#[test]
fn events_from_the_future_and_recorded_before_they_happened_are_refused() {
    let l = Ledger::new();
    ingest_at(&l, NOW, &[OPEN]).ok();
    let refused = [
        // Next year: it would vanish from every default report.
        (
            r#"{"deal":"T-1","type":"touch","at":"2027-01-15T12:00:00Z","channel":"call","direction":"outbound"}"#,
            "[in_future]",
        ),
        (
            r#"{"deal":"T-1","type":"touch","at":"2026-01-15T11:00:00Z","recorded_at":"2026-03-01T00:00:00Z","channel":"call","direction":"outbound"}"#,
            "[in_future]",
        ),
        // A source cannot have recorded a fact two days before it happened.
        (
            r#"{"deal":"T-1","type":"touch","at":"2026-01-14T12:00:00Z","recorded_at":"2026-01-12T11:00:00Z","channel":"call","direction":"outbound"}"#,
            "[recorded_before_at]",
        ),
    ];
    for (line, rule) in refused {
        let run = ingest_at(&l, NOW, &[line]);
        assert_eq!(run.code, 3, "{line}\n{}", run.stderr);
        assert!(run.stderr.contains(rule), "{line}\n{}", run.stderr);
    }
    assert_eq!(l.head(), 1, "nothing stored");
    // Within a day of the clock is a clock skew, not the future.
    let soon = r#"{"deal":"T-1","type":"touch","at":"2026-01-16T06:00:00Z","recorded_at":"2026-01-15T18:00:00Z","channel":"call","direction":"outbound"}"#;
    ingest_at(&l, NOW, &[soon]).ok();
    // A backdated recorded_at is taken (it is what the source says), and appended_at keeps the
    // truth of when the ledger learnt it.
    let backdated = r#"{"deal":"T-1","type":"touch","at":"2026-01-11T09:00:00Z","recorded_at":"2026-01-11T10:00:00Z","channel":"email","direction":"inbound"}"#;
    ingest_at(&l, "2026-01-20T08:00:00Z", &[backdated]).ok();
    let events = l.run(&["audit", "deal", "T-1", "--format", "json"]).ok().json();
    let last = &events[2];
    assert_eq!(
        (last["recorded_at"].as_str(), last["appended_at"].as_str()),
        (Some("2026-01-11T10:00:00Z"), Some("2026-01-20T08:00:00Z")),
        "{events}"
    );
    assert_eq!(events[0]["appended_at"], NOW);
    let table = l.run(&["audit", "deal", "T-1"]).ok().stdout;
    assert!(table.contains("appended_at") && table.contains("2026-01-20T08:00:00Z"), "{table}");
    // The skew is configurable.
    std::fs::write(l.data().join("dealledger.toml"), "[ingest]\nmax_future = \"400d\"\n").unwrap();
    ingest_at(&l, NOW, &[refused[0].0]).ok();
}

#[test]
fn the_daemon_refuses_an_event_dated_next_year() {
    let l = Ledger::new();
    let d = Daemon::start(&l, "");
    let (code, ack) = d.post("/v1/events", OPEN);
    assert_eq!(code, 200, "{ack}");
    let next_year = r#"{"deal":"T-1","type":"touch","at":"2027-01-15T12:00:00Z","channel":"call","direction":"outbound"}"#;
    let (code, err) = d.post("/v1/events", next_year);
    assert_eq!(
        (code, err["error"].as_str(), err["field"].as_str()),
        (400, Some("in_future"), Some("at")),
        "{err}"
    );
    assert_eq!(d.get_json("/v1/events")["head_seq"], 1);
}

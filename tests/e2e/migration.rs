//! The codec's format migrations: a store written by the code of each earlier record format
//! (tests/fixtures/store-v1 and store-v2, never rewritten) opens, verifies, and replays to the
//! very reports that code gave; new events go into it in today's format, and the two read side
//! by side.

use crate::harness::{copy_dir, Ledger};

const NOW: &str = "2026-06-01T00:00:00Z";

fn fixture(format: u8) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/store-v{format}"))
}

fn expected_of(format: u8, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(format).join("expected").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn json(l: &Ledger, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--now", NOW];
    all.extend_from_slice(args);
    l.run(&all).ok().json()
}

/// Whether `actual` holds every key and value of `expected` (objects may have more keys; arrays
/// and scalars must match), or the path of the first difference.
fn gives_again(actual: &serde_json::Value, expected: &serde_json::Value, at: &str) -> Result<(), String> {
    use serde_json::Value;
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => expected.iter().try_for_each(|(key, value)| {
            let path = format!("{at}.{key}");
            actual.get(key).map_or(Err(path.clone()), |found| gives_again(found, value, &path))
        }),
        (Value::Array(actual), Value::Array(expected)) if actual.len() == expected.len() => actual
            .iter()
            .zip(expected)
            .enumerate()
            .try_for_each(|(i, (a, e))| gives_again(a, e, &format!("{at}[{i}]"))),
        _ if actual == expected => Ok(()),
        _ => Err(at.to_string()),
    }
}

#[test]
fn a_version_1_store_opens_verifies_and_replays_to_the_same_reports() {
    let events = old_store_reads_and_takes_new_events(1);
    // Format 1 did not keep the append time; format 2 does.
    assert!(events[..events.len() - 1].iter().all(|e| e.get("appended_at").is_none()));
}

#[test]
fn a_version_2_store_opens_verifies_and_replays_to_the_same_reports() {
    let events = old_store_reads_and_takes_new_events(2);
    // Format 2 kept the append time, not who appended (format 3; a command appends as nobody).
    assert!(events[..events.len() - 1]
        .iter()
        .all(|e| e["appended_at"] == NOW && e.get("appended_by").is_none()));
}

/// The store of record `format` opens, verifies, replays to that code's reports, and takes a
/// new event in today's format: the deal's history after it.
fn old_store_reads_and_takes_new_events(format: u8) -> Vec<serde_json::Value> {
    let expected = |name: &str| expected_of(format, name);
    let l = Ledger::new();
    copy_dir(&fixture(format).join("data"), &l.data());
    l.run(&["audit", "verify"]).ok();
    assert_eq!(json(&l, &["audit", "digest"]), expected("digest.json"));
    assert_eq!(json(&l, &["stats", "--format", "json"])["events"], expected("stats.json")["events"]);
    let reports: [(&[&str], &str); 5] = [
        (&["report", "pipeline", "--format", "json"], "pipeline.json"),
        (&["report", "time-in-stage", "--format", "json"], "time-in-stage.json"),
        (&["report", "flags", "--format", "json"], "flags.json"),
        (&["report", "kpis", "--from", "2025-01-01", "--to", "2025-07-01", "--format", "json"], "kpis.json"),
        (
            &["report", "pipeline", "--as-of", "2025-06-30", "--known-at", "2025-07-01", "--format", "json"],
            "pipeline-past.json",
        ),
    ];
    // Every figure that code gave is given again, the same; figures added since (new KPI keys)
    // may stand beside them.
    let check = |l: &Ledger| {
        for (args, file) in &reports {
            let (actual, expected) = (json(l, args), expected(file));
            if let Err(at) = gives_again(&actual, &expected, "") {
                panic!("{args:?}: at {at}\n  actual: {actual}\n  expected: {expected}");
            }
        }
    };
    check(&l);
    // From the log alone, without the old checkpoint.
    l.run(&["replay"]).ok();
    check(&l);
    assert_eq!(
        json(&l, &["audit", "deal", "D-0000001", "--format", "json"]),
        expected("deal-D-0000001.json")
    );

    // A new event joins in today's format; old and new blocks verify and read together.
    let touch = r#"{"deal":"D-0000001","type":"touch","at":"2026-05-30T10:00:00Z","channel":"call","direction":"outbound","source_id":"new-1"}"#;
    let path = l.file("new.jsonl", &[touch]);
    l.run(&["--now", NOW, "ingest", path.to_str().unwrap()]).ok();
    l.run(&["audit", "verify"]).ok();
    let history = json(&l, &["audit", "deal", "D-0000001", "--format", "json"]);
    let events = history.as_array().unwrap();
    assert_eq!(events.len(), expected("deal-D-0000001.json").as_array().unwrap().len() + 1);
    assert_eq!(&events[..events.len() - 1], expected("deal-D-0000001.json").as_array().unwrap().as_slice());
    assert_eq!(events.last().unwrap()["source_id"], "new-1");
    assert_eq!(events.last().unwrap()["appended_at"], NOW);
    events.clone()
}

//! The on-disk record format is pinned by a golden file: today's encoder must produce exactly
//! these bytes, and today's decoder must read them back to exactly these events. A change that
//! breaks either is a format change and needs a new `FORMAT_VERSION` (and a reader for the old).
//!
//! To write the file after a deliberate format change: `UPDATE_GOLDEN=1 cargo test -p
//! dealledger-events --test golden`.

use dealledger_events::codec::{decode_record, encode_record, FORMAT_VERSION};
use dealledger_events::{parse_line, Currency, Deals, Pipeline, Timestamp};

const LINES: &str = include_str!("golden/records-v1.jsonl");
const GOLDEN_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/records-v1.bin");

fn events() -> Vec<(u32, dealledger_events::Event)> {
    let mut deals = Deals::default();
    let pipeline = Pipeline::default();
    let now = Timestamp::parse_rfc3339("2024-06-01T00:00:00Z").unwrap();
    LINES
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let mut submission = parse_line(line).unwrap();
            let version = deals.admit(&mut submission, i as u64 + 1, now, &pipeline).unwrap();
            (version, submission.event)
        })
        .collect()
}

#[test]
fn records_encode_to_the_golden_bytes_and_back() {
    let events = events();
    let mut bytes = Vec::new();
    for (version, event) in &events {
        encode_record(*version, event, &mut bytes);
    }
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN_PATH, &bytes).unwrap();
    }
    let golden = std::fs::read(GOLDEN_PATH).expect("golden file present");
    assert_eq!(FORMAT_VERSION, 1);
    assert_eq!(bytes, golden, "encoder output changed: this is an on-disk format change");

    let mut offset = 0;
    for (version, event) in &events {
        let (got_version, got_event, used) = decode_record(FORMAT_VERSION, &golden[offset..]).unwrap();
        assert_eq!((got_version, &got_event), (*version, event));
        offset += used;
    }
    assert_eq!(offset, golden.len());
}

#[test]
fn unknown_versions_and_garbage_are_errors_not_panics() {
    let golden = std::fs::read(GOLDEN_PATH).unwrap();
    assert!(decode_record(2, &golden).is_err());
    assert!(decode_record(FORMAT_VERSION, &golden[..3]).is_err());
    assert!(decode_record(FORMAT_VERSION, &[0xff; 16]).is_err());
}

#[test]
fn amounts_on_disk_are_minor_units() {
    let events = events();
    let json = dealledger_events::write_event_json;
    let mut out = String::new();
    json(&mut out, &events[0].1, Currency::USD, "");
    assert!(out.contains("\"amount\":25000.00"), "{out}");
}

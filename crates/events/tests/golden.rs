//! The on-disk record formats are pinned by golden files. Today's encoder must produce exactly
//! the bytes of `records-v3.bin`, and today's decoder must read it, the version 2 file
//! `records-v2.bin` and the version 1 file `records-v1.bin` (each written by the code of its
//! format, never rewritten) back to exactly these events: version 2 through its upcaster with no
//! `appended_by`, version 1 with no `appended_at` either. A change that
//! breaks either is a format change and needs a new `FORMAT_VERSION`, an upcaster from the one
//! before, and a golden file of its own.
//!
//! To write the current version's file after a deliberate format change: `UPDATE_GOLDEN=1 cargo
//! test -p dealledger-events --test golden`. It never writes an older version's file.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test code: a panic is a failing test"
)]

use dealledger_events::codec::{decode_record, encode_record, FORMAT_VERSION, FORMAT_VERSION_OLDEST};
use dealledger_events::{parse_line, Currency, Deals, Pipeline, Timestamp};

const LINES: &str = include_str!("golden/records-v1.jsonl");
const GOLDEN_V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/records-v1.bin");
const GOLDEN_V2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/records-v2.bin");
const GOLDEN_V3: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/records-v3.bin");

/// The golden events, admitted at 2024-06-01 (so `appended_at` is that moment), every other
/// one by the token `crm-integration`.
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
            // What the ledger's batch stamps after admission.
            submission.event.appended_at = Some(now);
            submission.event.appended_by = (i % 2 == 0).then(|| "crm-integration".to_string());
            (version, submission.event)
        })
        .collect()
}

/// Decodes every record of `bytes` as `format_version`.
fn decode_all(format_version: u8, bytes: &[u8]) -> Vec<(u32, dealledger_events::Event)> {
    let mut offset = 0;
    let mut out = Vec::new();
    while offset < bytes.len() {
        let (version, event, used) = decode_record(format_version, &bytes[offset..]).unwrap();
        out.push((version, event));
        offset += used;
    }
    out
}

#[test]
fn records_encode_to_the_golden_bytes_and_back() {
    let events = events();
    let mut bytes = Vec::new();
    for (version, event) in &events {
        encode_record(*version, event, &mut bytes);
    }
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN_V3, &bytes).unwrap();
    }
    let golden = std::fs::read(GOLDEN_V3).expect("golden file present");
    assert_eq!(FORMAT_VERSION, 3);
    assert_eq!(bytes, golden, "encoder output changed: this is an on-disk format change");
    assert_eq!(decode_all(FORMAT_VERSION, &golden), events);
    assert!(events.iter().all(|(_, e)| e.appended_at.is_some()));
    assert!(events.iter().any(|(_, e)| e.appended_by.is_some()));
}

#[test]
fn version_2_records_read_through_the_upcaster() {
    let golden = std::fs::read(GOLDEN_V2).expect("golden file present");
    let expected: Vec<_> = events()
        .into_iter()
        .map(|(version, mut event)| {
            event.appended_by = None;
            (version, event)
        })
        .collect();
    assert_eq!(decode_all(2, &golden), expected);
}

#[test]
fn version_1_records_read_through_the_upcaster() {
    let golden = std::fs::read(GOLDEN_V1).expect("golden file present");
    assert_eq!(FORMAT_VERSION_OLDEST, 1);
    let expected: Vec<_> = events()
        .into_iter()
        .map(|(version, mut event)| {
            event.appended_at = None;
            event.appended_by = None;
            (version, event)
        })
        .collect();
    assert_eq!(decode_all(1, &golden), expected);
}

#[test]
fn unknown_versions_and_garbage_are_errors_not_panics() {
    let golden = std::fs::read(GOLDEN_V3).unwrap();
    assert!(decode_record(0, &golden).is_err());
    assert!(decode_record(4, &golden).is_err());
    assert!(decode_record(FORMAT_VERSION, &golden[..3]).is_err());
    assert!(decode_record(FORMAT_VERSION, &[0xff; 16]).is_err());
    assert!(decode_record(1, &[0xff; 16]).is_err());
}

#[test]
fn amounts_on_disk_are_minor_units() {
    let events = events();
    let json = dealledger_events::write_event_json;
    let mut out = String::new();
    json(&mut out, &events[0].1, Currency::USD, "");
    assert!(out.contains("\"amount\":25000.00"), "{out}");
}

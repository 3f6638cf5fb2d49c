//! The disk is untrusted: arbitrary bytes given to the block and record decoders, and blocks
//! with valid checksums and chains around arbitrary (mostly mutated real) records given to the
//! writer's rebuild and to `verify`, give an error or a value, never a panic.
//!
//! Default case counts keep each under a few seconds; `PROPTEST_CASES=1000000 cargo test
//! --release -p dealledger-log --test fuzz_blocks` is the soak (figures in README).

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test code: a panic is a failing test"
)]

use dealledger_events::codec::{decode_record_ref, encode_record, FORMAT_VERSION};
use dealledger_events::{parse_line, Pipeline, Timestamp};
use dealledger_log::block::{self, ZERO_HASH};
use dealledger_log::{BlockStore, Head, Ledger, Log, MemStore};
use proptest::prelude::*;
use std::sync::Arc;

/// Valid records of every kind, the seeds the mutations start from.
fn seed_records() -> Vec<u8> {
    let at = r#""at":"2024-01-10T09:00:00Z""#;
    let lines = [
        format!(
            r#"{{"deal":"A-1","type":"opened",{at},"owner":"ana","amount":"12000.50","close_date":"2024-03-31","stage":"qualifying","name":"Acme"}}"#
        ),
        format!(
            r#"{{"deal":"A-1","type":"touch",{at},"channel":"call","direction":"inbound","minutes":30,"contact":"c@x"}}"#
        ),
        format!(r#"{{"deal":"A-1","type":"stage_moved",{at},"to":"quote"}}"#),
        format!(r#"{{"deal":"A-1","type":"amount_changed",{at},"amount":700}}"#),
        format!(r#"{{"deal":"A-1","type":"close_date_changed",{at},"close_date":"2024-05-01"}}"#),
        format!(r#"{{"deal":"A-1","type":"owner_changed",{at},"owner":"bo"}}"#),
        format!(r#"{{"deal":"A-1","type":"field_set",{at},"field":"budget","value":true}}"#),
        format!(r#"{{"deal":"A-1","type":"disqualified",{at},"reason":"no_budget","note":"n"}}"#),
        format!(r#"{{"deal":"A-1","type":"requalified",{at},"stage":"quote"}}"#),
        format!(r#"{{"deal":"A-1","type":"won",{at},"amount":800,"actor":"x","source_id":"s"}}"#),
    ];
    let mut raw = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut event = parse_line(line).unwrap().event;
        event.recorded_at = Some(Timestamp(event.at.0 + 1_000_000));
        if let dealledger_events::Body::AmountChanged { amount }
        | dealledger_events::Body::Won { amount: Some(amount) } = &mut event.body
        {
            amount.resolve(dealledger_events::Currency::USD).unwrap();
        }
        if let dealledger_events::Body::Opened { amount, .. } = &mut event.body {
            amount.resolve(dealledger_events::Currency::USD).unwrap();
        }
        encode_record(i as u32 + 1, &event, &mut raw);
    }
    raw
}

/// Byte edits: (position, what) where what is a new byte, a deletion or an insertion.
fn mutated(edits: Vec<(usize, u8, u8)>) -> Vec<u8> {
    let mut raw = seed_records();
    for (at, op, byte) in edits {
        if raw.is_empty() {
            raw.push(byte);
            continue;
        }
        let at = at % raw.len();
        match op % 4 {
            0 => raw[at] = byte,
            1 => raw[at] ^= 1 << (byte % 8),
            2 => {
                raw.remove(at);
            }
            _ => raw.insert(at, byte),
        }
    }
    raw
}

/// A store holding one block sealed around `raw` as `count` events.
fn store_with_block(raw: &[u8], count: u32) -> Arc<MemStore> {
    let mut compressor = zstd::bulk::Compressor::new(3).unwrap();
    let (value, chain) = block::seal(&mut compressor, 1, count, &ZERO_HASH, raw);
    let store = Arc::new(MemStore::default());
    store.append(&[(1, value)], Head { seq: u64::from(count), chain }).unwrap();
    store
}

fn exercise(store: Arc<MemStore>) {
    let _ = Ledger::open(store.clone(), Pipeline::default());
    if let Ok(log) = Log::open(store) {
        let _ = log.verify(None, |_| {});
        let _ = log.scan_refs(1, |_| Ok(true));
        let _ = log.scan(1, |_| Ok(true));
        let _ = log.read(1);
    }
}

proptest! {
    #[test]
    fn fuzz_record_decoder_raw_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512), seq in any::<u64>()) {
        let _ = decode_record_ref(FORMAT_VERSION, seq, &bytes);
        let _ = dealledger_events::codec::decode_record(FORMAT_VERSION, &bytes);
    }

    #[test]
    fn fuzz_block_decoder_raw_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024), key in any::<u64>()) {
        if let Ok(header) = block::header(key, &bytes) {
            let mut decompressor = zstd::bulk::Decompressor::new().unwrap();
            let mut raw = Vec::new();
            if block::records(&mut decompressor, &header, &bytes, &mut raw).is_ok() {
                let _ = block::decode_event_refs(&header, &raw, |_| Ok(()));
            }
        }
        let _ = block::find_intact(&bytes);
    }

    #[test]
    fn fuzz_sealed_blocks_of_mutated_records(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..8), count in 1u32..14) {
        exercise(store_with_block(&mutated(edits), count));
    }

    #[test]
    fn fuzz_sealed_blocks_of_raw_bytes(raw in proptest::collection::vec(any::<u8>(), 1..600), count in 1u32..6) {
        exercise(store_with_block(&raw, count));
    }
}

#[test]
fn the_seed_records_are_a_valid_history() {
    // The mutations start from something real: unmutated, the block opens and verifies.
    let store = store_with_block(&seed_records(), 10);
    Ledger::open(store.clone(), Pipeline::default()).unwrap();
    Log::open(store).unwrap().verify(None, |_| {}).unwrap();
}

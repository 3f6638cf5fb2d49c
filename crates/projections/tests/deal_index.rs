//! The deal index saved beside the timeline's checkpoint: it answers what the timeline holds,
//! and is unusable (never wrong) when damaged or taken on another log.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test code: a panic is a failing test"
)]

use dealledger_events::{parse_line, Pipeline};
use dealledger_log::{BlockStore, Ledger, MemStore};
use dealledger_projections::deal_index::{deal_count, lookup, Lookup, DEALS_PER_BUCKET_TARGET, KEY};
use dealledger_projections::testkit::append;
use dealledger_projections::{rebuild, Timeline};
use std::sync::Arc;

/// `deals` deals, each opened and touched `touches` times, interleaved, in batches of 50.
fn ledger(deals: usize, touches: usize) -> Ledger<Arc<MemStore>> {
    let mut lines = Vec::new();
    for d in 0..deals {
        lines.push(format!(
            r#"{{"deal":"D-{d}","type":"opened","at":"2025-01-01T00:00:00Z","owner":"ana","amount":100}}"#
        ));
    }
    for t in 0..touches {
        for d in 0..deals {
            lines.push(format!(
                r#"{{"deal":"D-{d}","type":"touch","at":"2025-01-02T00:00:00Z","channel":"call","direction":"outbound","minutes":5,"source_id":"{d}-{t}"}}"#
            ));
        }
    }
    let events: Vec<_> = lines.iter().map(|l| parse_line(l).unwrap().event).collect();
    let mut ledger = Ledger::open(Arc::new(MemStore::default()), Pipeline::default()).unwrap();
    for chunk in events.chunks(50) {
        append(&mut ledger, chunk);
    }
    ledger
}

#[test]
fn the_index_answers_what_the_timeline_holds_for_every_deal() {
    let deals = DEALS_PER_BUCKET_TARGET * 5 + 3;
    let ledger = ledger(deals, 3);
    assert!(matches!(lookup(ledger.log(), "D-0").unwrap(), Lookup::Unusable(_)), "none saved yet");
    let (timeline, _) = rebuild::<Timeline, _>(ledger.log()).unwrap();
    let head = ledger.log().head().seq;
    for deal in timeline.deals() {
        let Lookup::Found { through, seqs, offsets } = lookup(ledger.log(), deal.id).unwrap() else {
            panic!("{}: the index was just saved", deal.id)
        };
        assert_eq!(
            (through, &seqs, &offsets),
            (head, &deal.seqs().to_vec(), &deal.offsets().to_vec()),
            "{}",
            deal.id
        );
        assert_eq!(seqs.len(), 4);
        // And the log reads the deal back by it.
        let mut read = Vec::new();
        ledger
            .log()
            .read_deal(deal.id, &seqs, &offsets, |e| {
                read.push(e.seq);
                Ok(())
            })
            .unwrap();
        assert_eq!(read, seqs);
    }
    let Lookup::Found { seqs, .. } = lookup(ledger.log(), "D-nobody").unwrap() else { panic!("usable") };
    assert!(seqs.is_empty(), "a deal the index does not hold has no events through it");
}

#[test]
fn the_deal_count_is_the_index_and_the_tail() {
    let mut ledger = ledger(DEALS_PER_BUCKET_TARGET + 5, 1);
    assert_eq!(deal_count(ledger.log()).unwrap(), None, "none saved yet");
    let (timeline, _) = rebuild::<Timeline, _>(ledger.log()).unwrap();
    assert_eq!(deal_count(ledger.log()).unwrap(), Some(timeline.deals().len() as u64));
    // Two deals more, and a touch of an old one, after the index: counted from the tail.
    let lines = [
        r#"{"deal":"N-1","type":"opened","at":"2025-01-03T00:00:00Z","owner":"ana","amount":100}"#,
        r#"{"deal":"N-2","type":"opened","at":"2025-01-03T00:00:00Z","owner":"ana","amount":100}"#,
        r#"{"deal":"D-0","type":"touch","at":"2025-01-03T00:00:00Z","channel":"call","direction":"inbound"}"#,
    ];
    let events: Vec<_> = lines.iter().map(|l| parse_line(l).unwrap().event).collect();
    append(&mut ledger, &events);
    assert_eq!(deal_count(ledger.log()).unwrap(), Some(timeline.deals().len() as u64 + 2));
}

#[test]
fn a_damaged_index_or_one_of_another_log_is_unusable_never_wrong() {
    let ledger = ledger(40, 2);
    rebuild::<Timeline, _>(ledger.log()).unwrap();
    let store = ledger.log().store();
    let good = store.get_meta(KEY).unwrap().unwrap();
    // Every single flipped byte: unusable, or (a byte in another deal's bucket) still the truth.
    let Lookup::Found { seqs: truth, .. } = lookup(ledger.log(), "D-7").unwrap() else { panic!("usable") };
    let count = deal_count(ledger.log()).unwrap();
    assert_eq!(count, Some(40));
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        store.put_meta(KEY, &bad).unwrap();
        match lookup(ledger.log(), "D-7").unwrap() {
            Lookup::Unusable(_) => {}
            Lookup::Found { seqs, .. } => assert_eq!(seqs, truth, "byte {at} flipped"),
        }
        let counted = deal_count(ledger.log()).unwrap();
        assert!(counted.is_none() || counted == count, "byte {at} flipped: {counted:?}");
    }
    // Cut short anywhere: unusable or still the truth.
    for len in 0..good.len() {
        store.put_meta(KEY, &good[..len]).unwrap();
        match lookup(ledger.log(), "D-7").unwrap() {
            Lookup::Unusable(_) => {}
            Lookup::Found { seqs, .. } => assert_eq!(seqs, truth, "cut at {len}"),
        }
        let counted = deal_count(ledger.log()).unwrap();
        assert!(counted.is_none() || counted == count, "cut at {len}: {counted:?}");
    }
    // An index taken on another log (same length, other events) is unusable.
    let other = self::ledger(41, 2);
    rebuild::<Timeline, _>(other.log()).unwrap();
    store.put_meta(KEY, &other.log().store().get_meta(KEY).unwrap().unwrap()).unwrap();
    let Lookup::Unusable(why) = lookup(ledger.log(), "D-7").unwrap() else { panic!("another log's index") };
    assert!(why.contains("another log"), "{why}");
}

//! Checkpoints never change an answer: a timeline caught up from a checkpoint plus the tail is
//! the timeline rebuilt from scratch, byte for byte, and rebuilding twice gives the same bytes.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test code: a panic is a failing test"
)]

use dealledger_events::Pipeline;
use dealledger_log::{Ledger, MemStore};
use dealledger_projections::testkit::append;
use dealledger_projections::{catch_up, rebuild, Projection, Timeline};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn checkpoint_plus_tail_equals_full_replay(seed in 0u64..1_000_000, deals in 3u64..40, cut in 0.0f64..1.0) {
        let mut events = Vec::new();
        dealledger_gen::generate(&dealledger_gen::Config::new(seed, deals), |e| events.push(e.clone()));
        let split = ((events.len() as f64) * cut) as usize;
        let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
        append(&mut ledger, &events[..split]);
        let (first, stats) = catch_up::<Timeline, _>(ledger.log()).unwrap();
        prop_assert_eq!(stats.events, split as u64);
        prop_assert_eq!(first.events(), split);
        append(&mut ledger, &events[split..]);
        let (caught_up, stats) = catch_up::<Timeline, _>(ledger.log()).unwrap();
        prop_assert!(stats.from_checkpoint);
        prop_assert_eq!(stats.events, (events.len() - split) as u64);
        let (full, _) = rebuild::<Timeline, _>(ledger.log()).unwrap();
        let (again, _) = rebuild::<Timeline, _>(ledger.log()).unwrap();
        prop_assert_eq!(caught_up.encode(), full.encode());
        prop_assert_eq!(again.encode(), full.encode());
        // The index rebuilt after loading finds every deal.
        for deal in full.deals() {
            prop_assert_eq!(caught_up.deal(deal.id), Some(deal));
        }
    }
}

#[test]
fn compacting_the_columns_keeps_every_deals_history() {
    // Past 4,096 deals moved to lists of their own, the timeline lays them end to end again:
    // a full replay and a replay from a checkpoint taken halfway compact at different moments,
    // and must still hold the same histories, byte for byte.
    let mut events = Vec::new();
    dealledger_gen::generate(&dealledger_gen::Config::new(7, 9000), |e| events.push(e.clone()));
    let half = events.len() / 2;
    let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
    append(&mut ledger, &events[..half]);
    catch_up::<Timeline, _>(ledger.log()).unwrap();
    append(&mut ledger, &events[half..]);
    let (caught_up, stats) = catch_up::<Timeline, _>(ledger.log()).unwrap();
    assert!(stats.from_checkpoint);
    let (full, _) = rebuild::<Timeline, _>(ledger.log()).unwrap();
    assert_eq!(full.deals().len(), 9000);
    assert_eq!(full.events(), events.len());
    assert_eq!(caught_up.encode(), full.encode());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// A snapshot (what the daemon's what-ifs read) is the timeline: the same bytes, every deal
    /// found by its id, and it folds on as the original does.
    #[test]
    fn a_snapshot_is_the_timeline(seed in 0u64..1_000_000, deals in 3u64..40) {
        let mut events = Vec::new();
        dealledger_gen::generate(&dealledger_gen::Config::new(seed, deals), |e| events.push(e.clone()));
        let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
        append(&mut ledger, &events);
        let (mut timeline, _) = rebuild::<Timeline, _>(ledger.log()).unwrap();
        timeline.refresh();
        let snapshot = timeline.snapshot();
        prop_assert_eq!(snapshot.encode(), timeline.encode());
        prop_assert!(!snapshot.is_fresh());
        for deal in timeline.deals() {
            prop_assert_eq!(snapshot.deal(deal.id), Some(deal));
        }
    }
}

//! Checkpoints that cannot lie: a damaged checkpoint is rebuilt (never an error, never a wrong
//! report), arbitrary bytes behind a valid header and checksum are rejected or give a timeline
//! that folds without a panic, and the fold's meaning cannot change without its version.
//!
//! `PROPTEST_CASES=1000000 cargo test --release -p dealledger-projections --test
//! fuzz_checkpoint` is the soak (figures in README).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test code: a panic is a failing test"
)]

use dealledger_events::{parse_line, Pipeline};
use dealledger_log::{BlockStore, Ledger, MemStore};
use dealledger_projections::testkit::append;
use dealledger_projections::{catch_up, rebuild, Projection, Timeline, View};
use proptest::prelude::*;
use std::sync::Arc;

const KEY: &str = "checkpoint/timeline";
/// version, seq, chain, state length, state crc32c.
const HEADER_BYTES: usize = 4 + 8 + 32 + 8 + 4;

/// A history with every kind of event, a backdated one and two currencies.
fn history() -> Vec<String> {
    [
        r#"{"deal":"A","type":"opened","at":"2025-01-10T09:00:00Z","owner":"ana","amount":"1200.50","close_date":"2025-03-31"}"#,
        r#"{"deal":"B","type":"opened","at":"2025-01-11T09:00:00Z","owner":"bo","amount":5000,"currency":"JPY","stage":"qualifying"}"#,
        r#"{"deal":"A","type":"touch","at":"2025-01-12T10:00:00Z","channel":"call","direction":"outbound","minutes":20,"contact":"c1"}"#,
        r#"{"deal":"A","type":"touch","at":"2025-01-13T10:00:00Z","channel":"email","direction":"inbound","contact":"c2"}"#,
        r#"{"deal":"A","type":"stage_moved","at":"2025-01-20T10:00:00Z","to":"quote"}"#,
        r#"{"deal":"A","type":"amount_changed","at":"2025-01-21T10:00:00Z","amount":"1500"}"#,
        r#"{"deal":"A","type":"close_date_changed","at":"2025-01-22T10:00:00Z","close_date":"2025-04-30"}"#,
        r#"{"deal":"B","type":"owner_changed","at":"2025-01-23T10:00:00Z","owner":"cy"}"#,
        r#"{"deal":"B","type":"field_set","at":"2025-01-24T10:00:00Z","field":"budget","value":"yes"}"#,
        r#"{"deal":"B","type":"disqualified","at":"2025-01-25T10:00:00Z","reason":"no_budget"}"#,
        r#"{"deal":"B","type":"requalified","at":"2025-02-01T10:00:00Z","stage":"quote"}"#,
        r#"{"deal":"B","type":"lost","at":"2025-02-10T10:00:00Z","reason":"price"}"#,
        r#"{"deal":"A","type":"touch","at":"2025-01-15T10:00:00Z","channel":"meeting","direction":"outbound"}"#,
        r#"{"deal":"A","type":"won","at":"2025-02-20T10:00:00Z","amount":"1400"}"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn ledger() -> Ledger<Arc<MemStore>> {
    let events: Vec<_> = history().iter().map(|l| parse_line(l).unwrap().event).collect();
    let mut ledger = Ledger::open(Arc::new(MemStore::default()), Pipeline::default()).unwrap();
    append(&mut ledger, &events);
    ledger
}

/// Puts `state` behind a valid header (version, the log's head, length, crc) as the checkpoint.
fn put_state(ledger: &Ledger<Arc<MemStore>>, state: &[u8]) {
    put_state_of_version(ledger, Timeline::VERSION, state);
}

fn put_state_of_version(ledger: &Ledger<Arc<MemStore>>, version: u32, state: &[u8]) {
    let head = ledger.log().head();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&head.seq.to_le_bytes());
    bytes.extend_from_slice(&head.chain);
    bytes.extend_from_slice(&(state.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(state).to_le_bytes());
    bytes.extend_from_slice(state);
    ledger.log().store().put_meta(KEY, &bytes).unwrap();
}

/// Whatever the checkpoint held: catch_up answers, and its timeline folds without a panic.
fn exercise(ledger: &Ledger<Arc<MemStore>>) {
    let (mut timeline, _) =
        catch_up::<Timeline, _>(ledger.log()).expect("a bad checkpoint is never an error");
    timeline.refresh();
    for view in [
        View::ALL,
        View {
            as_of: dealledger_events::Timestamp(1_736_000_000_000_000),
            known_at: dealledger_events::Timestamp::MAX,
        },
    ] {
        let folded = timeline.fold_deals(view, true, || 0usize, |n, _, f| *n += f.visits.len());
        let _ = folded.iter().sum::<usize>();
    }
    for deal in timeline.deals() {
        let _ = timeline.deal(deal.id);
    }
}

#[test]
fn a_damaged_checkpoint_is_rebuilt_and_answers_the_same() {
    let ledger = ledger();
    let (full, _) = rebuild::<Timeline, _>(ledger.log()).unwrap();
    let good = ledger.log().store().get_meta(KEY).unwrap().unwrap();
    // One flipped bit anywhere in the state, a truncation, a wrong length: all rebuilt.
    for damaged in [
        {
            let mut b = good.clone();
            let last = b.len() - 1;
            b[last] ^= 0x10;
            b
        },
        {
            let mut b = good.clone();
            b[HEADER_BYTES + 3] ^= 1;
            b
        },
        good[..good.len() - 7].to_vec(),
        good[..20].to_vec(),
        Vec::new(),
    ] {
        ledger.log().store().put_meta(KEY, &damaged).unwrap();
        let (timeline, stats) = catch_up::<Timeline, _>(ledger.log()).unwrap();
        assert!(!stats.from_checkpoint, "a damaged checkpoint was used");
        assert_eq!(timeline.encode(), full.encode());
    }
}

#[test]
fn the_fold_cannot_change_without_its_version() {
    // The timeline's state for a fixed history, pinned beside its version. If this fails, the
    // fold's meaning or the state's layout changed: bump Timeline::VERSION (checkpoints of the
    // old version are then rebuilt, not misread) and update both figures here.
    let (timeline, _) = rebuild::<Timeline, _>(ledger().log()).unwrap();
    let state = timeline.encode();
    let pinned = (Timeline::VERSION, state.len(), crc32c::crc32c(&state));
    // The state holds each event's offset in its block, so a record format that writes a record
    // longer moves them (format 3's `appended_by` did, by one byte a record): blocks already
    // written keep theirs, so the version stays and only this figure changes.
    assert_eq!(pinned, (7, 726, 4_129_928_271), "the timeline's state changed; see the comment above");
}

#[test]
fn a_checkpoint_of_the_old_format_is_rebuilt_not_misread() {
    // A version 6 checkpoint (bincode's encoding of the timeline's structs), written by that
    // version for this file's history.
    let old = include_bytes!("golden/timeline-v6.checkpoint");
    assert_eq!(u32::from_le_bytes(old[..4].try_into().unwrap()), 6);
    let state = &old[HEADER_BYTES..];
    // Its state is not taken for today's, even behind today's version number and a valid crc.
    assert!(Timeline::decode_state(state).is_err());
    let ledger = ledger();
    let (full, _) = rebuild::<Timeline, _>(ledger.log()).unwrap();
    for version in [6, Timeline::VERSION] {
        put_state_of_version(&ledger, version, state);
        let (timeline, stats) = catch_up::<Timeline, _>(ledger.log()).unwrap();
        assert!(!stats.from_checkpoint, "version {version}: the old state was used");
        assert_eq!(timeline.encode(), full.encode());
    }
}

proptest! {
    #[test]
    fn fuzz_checkpoint_state_mutated(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let ledger = ledger();
        let (timeline, _) = rebuild::<Timeline, _>(ledger.log()).unwrap();
        let mut state = timeline.encode();
        for (at, byte) in edits {
            let at = at % state.len();
            state[at] = byte;
        }
        // Decoding is strict: a state it takes is the one encoding gives (nothing ignored).
        if let Ok(decoded) = Timeline::decode_state(&state) {
            prop_assert_eq!(decoded.encode(), state.clone());
        }
        put_state(&ledger, &state);
        exercise(&ledger);
    }

    #[test]
    fn fuzz_checkpoint_state_raw_bytes(state in proptest::collection::vec(any::<u8>(), 0..600)) {
        let ledger = ledger();
        put_state(&ledger, &state);
        exercise(&ledger);
    }

    #[test]
    fn fuzz_checkpoint_whole_value_raw_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let ledger = ledger();
        ledger.log().store().put_meta(KEY, &bytes).unwrap();
        exercise(&ledger);
    }
}

#[test]
fn a_failed_checkpoint_write_keeps_the_old_one_and_only_an_explicit_replay_fails() {
    use dealledger_log::faults::{Fault, FaultRates, FaultStore};
    let store = Arc::new(FaultStore::new(3, FaultRates::default()));
    let events: Vec<_> = history().iter().map(|l| parse_line(l).unwrap().event).collect();
    let mut ledger = Ledger::open(store.clone(), Pipeline::default()).unwrap();
    append(&mut ledger, &events[..7]);
    let (_, first) = catch_up::<Timeline, _>(ledger.log()).unwrap();
    assert_eq!(first.events, 7);
    let saved = store.get_meta(KEY).unwrap().unwrap();
    append(&mut ledger, &events[7..]);
    // A report's catch-up cannot save its checkpoint: it answers anyway, and the old one stays.
    store.force(Fault::MetaWrite);
    let (timeline, stats) = catch_up::<Timeline, _>(ledger.log()).unwrap();
    assert!(stats.from_checkpoint);
    assert_eq!(stats.events, (events.len() - 7) as u64);
    assert_eq!(store.get_meta(KEY).unwrap().unwrap(), saved);
    let (full, _) = rebuild::<Timeline, _>(ledger.log()).unwrap();
    assert_eq!(timeline.encode(), full.encode());
    // `dealledger replay` asked for the checkpoint: there the failure is the answer.
    store.force(Fault::MetaWrite);
    assert!(rebuild::<Timeline, _>(ledger.log()).is_err());
}

#[test]
fn a_catch_up_with_no_checkpoint_answers_though_its_first_checkpoint_cannot_be_saved() {
    // Found by the daemon's random fault test: a daemon on a log with no checkpoint would not
    // start when saving its first checkpoint (or the deal index beside it) failed.
    use dealledger_log::faults::{Fault, FaultRates, FaultStore};
    let store = Arc::new(FaultStore::new(5, FaultRates::default()));
    let events: Vec<_> = history().iter().map(|l| parse_line(l).unwrap().event).collect();
    let mut ledger = Ledger::open(store.clone(), Pipeline::default()).unwrap();
    append(&mut ledger, &events);
    store.force(Fault::MetaWrite);
    let (timeline, stats) =
        catch_up::<Timeline, _>(ledger.log()).expect("a catch-up with no checkpoint to start from answers");
    assert!(!stats.from_checkpoint);
    assert_eq!(stats.events, events.len() as u64);
    assert!(store.get_meta(KEY).unwrap().is_none(), "nothing was saved");
    let (full, _) = rebuild::<Timeline, _>(ledger.log()).unwrap();
    assert_eq!(timeline.encode(), full.encode());
}

#[test]
fn a_sound_checkpoint_is_used() {
    // The checks above must not reject good checkpoints: a generated history of some size
    // (whose state decodes to several times its encoded size) loads from its checkpoint.
    let mut events = Vec::new();
    dealledger_gen::generate(&dealledger_gen::Config::new(42, 400), |e| events.push(e.clone()));
    let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
    append(&mut ledger, &events);
    let (built, first) = catch_up::<Timeline, _>(ledger.log()).unwrap();
    assert!(!first.from_checkpoint);
    let (loaded, second) = catch_up::<Timeline, _>(ledger.log()).unwrap();
    assert!(second.from_checkpoint && second.events == 0, "{second:?}");
    assert_eq!(loaded.encode(), built.encode());
}

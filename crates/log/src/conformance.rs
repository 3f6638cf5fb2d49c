//! The one ledger suite every [`BlockStore`] passes: the in-memory store and sled in this
//! crate's tests (`tests/conformance.rs`), JetStream in `dealledger-jetstream`'s. What the log
//! and the ledger promise above the trait (numbering, idempotency across a reopen, atomic
//! multi-block appends, scans from any block, the mark, metadata values read whole and by
//! range, verification, a deal read by its seqs) is checked here once, over a [`Backend`] that
//! makes and reopens stores. Hidden: test support, not API.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test support: a panic is a failing test"
)]

use crate::{BlockStore, Head, Ledger, Log, LogError, Outcome};
use dealledger_events::{parse_line, FixedClock, Pipeline, Timestamp};

/// Makes the stores the suite runs on.
pub trait Backend {
    type Store: BlockStore;
    /// A new, empty store of its own.
    fn fresh(&mut self) -> Self::Store;
    /// The same store as another process would open it next (the handle is closed first).
    fn reopen(&mut self, store: Self::Store) -> Self::Store;
    /// A second handle on the same store open at the same time, where the backend allows two
    /// writers to try (a shared store such as a stream); None where it excludes them.
    fn second_handle(&mut self, store: &Self::Store) -> Option<Self::Store>;
}

/// Every check, in order; `name` says which backend a failure is on.
pub fn run_all<B: Backend>(backend: &mut B) {
    empty_store(backend);
    numbering_and_duplicates_survive_a_reopen(backend);
    blocks_scan_and_read_back(backend);
    the_mark_follows_every_append(backend);
    metadata_whole_and_by_range(backend);
    a_deal_is_read_by_its_seqs(backend);
    a_stale_writer_is_fenced(backend);
}

fn clock() -> FixedClock {
    FixedClock(Timestamp::parse_rfc3339("2024-06-01T00:00:00Z").unwrap())
}

fn opened(deal: &str) -> String {
    format!(r#"{{"deal":"{deal}","type":"opened","at":"2024-01-01T00:00:00Z","owner":"ana","amount":1000}}"#)
}

fn touch(deal: &str, source_id: &str, minutes: u32) -> String {
    format!(
        r#"{{"deal":"{deal}","type":"touch","at":"2024-01-02T01:00:00Z","channel":"call","direction":"outbound","minutes":{minutes},"source_id":"{source_id}"}}"#
    )
}

fn append<S: BlockStore>(ledger: &mut Ledger<S>, lines: &[String]) -> Result<Vec<Outcome>, LogError> {
    let clock = clock();
    let mut batch = ledger.batch(&clock);
    let mut outcomes = Vec::new();
    for line in lines {
        outcomes.push(batch.push(parse_line(line).unwrap()).unwrap());
    }
    batch.commit()?;
    Ok(outcomes)
}

/// A deal with `touches` touches, `source_id`s `{tag}-N`: about 100 bytes of record each, so
/// 10,000 of them are several blocks.
fn deal_lines(deal: &str, tag: &str, touches: u32) -> Vec<String> {
    let mut lines = vec![opened(deal)];
    lines.extend((0..touches).map(|i| touch(deal, &format!("{tag}-{i}"), i % 90)));
    lines
}

fn keys<S: BlockStore>(store: &S) -> Vec<u64> {
    let mut keys = Vec::new();
    store
        .scan(0, &mut |key, _| {
            keys.push(key);
            Ok(true)
        })
        .unwrap();
    keys
}

pub fn empty_store<B: Backend>(backend: &mut B) {
    let store = backend.fresh();
    assert!(store.last().unwrap().is_none());
    assert!(store.block_at_or_before(1).unwrap().is_none());
    assert!(store.mark().unwrap().is_none());
    assert!(keys(&store).is_empty());
    assert!(store.get_meta("checkpoint/none").unwrap().is_none());
    assert!(store.get_meta_range("checkpoint/none", 0, 10).unwrap().is_none());
    let log = Log::open(store).unwrap();
    assert_eq!(log.head(), Head::EMPTY);
    log.check_mark().unwrap();
}

pub fn numbering_and_duplicates_survive_a_reopen<B: Backend>(backend: &mut B) {
    let mut ledger = Ledger::open(backend.fresh(), Pipeline::default()).unwrap();
    let out = append(&mut ledger, &[opened("a"), opened("b"), touch("a", "s1", 5)]).unwrap();
    assert_eq!(
        out,
        [
            Outcome::Appended { seq: 1, version: 1 },
            Outcome::Appended { seq: 2, version: 1 },
            Outcome::Appended { seq: 3, version: 2 }
        ]
    );
    let out = append(&mut ledger, &[touch("a", "s1", 5), touch("b", "s2", 5)]).unwrap();
    assert_eq!(out, [Outcome::Duplicate { seq: 3, version: 2 }, Outcome::Appended { seq: 4, version: 2 }]);
    // Several blocks in one atomic append.
    let out = append(&mut ledger, &deal_lines("c", "c", 12_000)).unwrap();
    assert_eq!(out.last(), Some(&Outcome::Appended { seq: 12_005, version: 12_001 }));
    let head = ledger.log().head();
    let store = ledger.into_log().into_store();
    assert!(keys(&store).len() >= 2, "12,000 events are several blocks");
    // Another process: the state is rebuilt from the store alone.
    let mut ledger = Ledger::open(backend.reopen(store), Pipeline::default()).unwrap();
    assert_eq!(ledger.log().head(), head);
    ledger.log().check_mark().unwrap();
    let out =
        append(&mut ledger, &[touch("a", "s1", 5), touch("c", "c-11999", 11_999 % 90), opened("d")]).unwrap();
    assert_eq!(
        out,
        [
            Outcome::Duplicate { seq: 3, version: 2 },
            Outcome::Duplicate { seq: 12_005, version: 12_001 },
            Outcome::Appended { seq: 12_006, version: 1 }
        ]
    );
    let verified = ledger.log().verify(Some(ledger.log().head()), |_| {}).unwrap();
    assert_eq!(verified.events, 12_006);
    let read = ledger.log().read(777).unwrap().unwrap();
    assert_eq!((read.seq, read.version, read.event.source_id.as_deref()), (777, 773, Some("c-771")));
}

pub fn blocks_scan_and_read_back<B: Backend>(backend: &mut B) {
    let mut ledger = Ledger::open(backend.fresh(), Pipeline::default()).unwrap();
    for round in 0..3 {
        append(&mut ledger, &deal_lines(&format!("d{round}"), &format!("r{round}"), 6_000)).unwrap();
    }
    let log = ledger.log();
    let store = log.store();
    let keys = keys(store);
    assert!(keys.len() >= 3, "{keys:?}");
    assert_eq!(keys[0], 1);
    // Every block: found by its first seq, by its last, and by any seq between.
    let mut ends = Vec::new();
    store
        .scan(0, &mut |key, bytes| {
            let header = crate::block::header(key, bytes).unwrap();
            ends.push((key, header.last_seq()));
            Ok(true)
        })
        .unwrap();
    for window in ends.windows(2) {
        assert_eq!(window[0].1 + 1, window[1].0, "blocks are contiguous");
    }
    for &(first, last) in &ends {
        for seq in [first, (first + last) / 2, last] {
            assert_eq!(store.block_at_or_before(seq).unwrap().unwrap().0, first, "seq {seq}");
        }
    }
    assert_eq!(store.last().unwrap().unwrap().0, *keys.last().unwrap());
    assert_eq!(store.block_at_or_before(u64::MAX).unwrap().unwrap().0, *keys.last().unwrap());
    // A scan from any key sees that block and every later one; the visitor can stop it.
    for &from in &keys {
        let mut seen = Vec::new();
        store
            .scan(from, &mut |key, _| {
                seen.push(key);
                Ok(true)
            })
            .unwrap();
        assert_eq!(seen, keys.iter().copied().filter(|&k| k >= from).collect::<Vec<_>>());
    }
    let mut seen = 0;
    store
        .scan(0, &mut |_, _| {
            seen += 1;
            Ok(seen < 2)
        })
        .unwrap();
    assert_eq!(seen, 2);
    // Events come back in order, numbered without a gap.
    let mut next = 1;
    log.scan(1, |e| {
        assert_eq!(e.seq, next);
        next += 1;
        Ok(true)
    })
    .unwrap();
    assert_eq!(next, 18_004);
    let mut from_middle = Vec::new();
    log.scan(9_000, |e| {
        from_middle.push(e.seq);
        Ok(from_middle.len() < 3)
    })
    .unwrap();
    assert_eq!(from_middle, [9_000, 9_001, 9_002]);
}

pub fn the_mark_follows_every_append<B: Backend>(backend: &mut B) {
    let mut ledger = Ledger::open(backend.fresh(), Pipeline::default()).unwrap();
    append(&mut ledger, &[opened("a")]).unwrap();
    assert_eq!(ledger.log().store().mark().unwrap(), Some(ledger.log().head()));
    append(&mut ledger, &deal_lines("b", "b", 3_000)).unwrap();
    let head = ledger.log().head();
    assert_eq!(ledger.log().store().mark().unwrap(), Some(head));
    // The mark alone (an append of no blocks) and a reset, as recovery uses them.
    let store = ledger.into_log().into_store();
    store.append(&[], head).unwrap();
    assert_eq!(store.mark().unwrap(), Some(head));
    let ahead = Head { seq: head.seq + 10, chain: head.chain };
    store.reset_mark(ahead).unwrap();
    assert_eq!(store.mark().unwrap(), Some(ahead));
    assert!(!store.mark_location().is_empty());
    // A log below its mark is a lost tail, and the ledger refuses to write to it.
    let store = backend.reopen(store);
    let log = Log::open(store).unwrap();
    match log.check_mark() {
        Err(LogError::LostTail { ends_at, acknowledged, .. }) => {
            assert_eq!((ends_at, acknowledged), (head.seq, head.seq + 10))
        }
        other => panic!("expected a lost tail, got {other:?}"),
    }
    let store = log.into_store();
    assert!(Ledger::open(backend.reopen(store), Pipeline::default()).is_err());
}

pub fn metadata_whole_and_by_range<B: Backend>(backend: &mut B) {
    let store = backend.fresh();
    let small = b"a checkpoint".to_vec();
    store.put_meta("checkpoint/small", &small).unwrap();
    assert_eq!(store.get_meta("checkpoint/small").unwrap().unwrap(), small);
    assert_eq!(&*store.read_meta("checkpoint/small").unwrap().unwrap(), &small[..]);
    // Larger than one chunk of any backend that chunks, with a pattern that shows misplacing.
    let large: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    store.put_meta("checkpoint/large", &large).unwrap();
    assert_eq!(store.get_meta("checkpoint/large").unwrap().unwrap(), large);
    assert_eq!(&*store.read_meta("checkpoint/large").unwrap().unwrap(), &large[..]);
    for (at, len) in [(0usize, 16usize), (1_000_000, 4_096), (2_999_990, 100), (3_000_000, 5), (4_000_000, 5)]
    {
        let want = &large[at.min(large.len())..(at + len).min(large.len())];
        assert_eq!(
            store.get_meta_range("checkpoint/large", at as u64, len).unwrap().unwrap(),
            want,
            "{at}+{len}"
        );
    }
    // Replaced whole; an empty value is a value.
    store.put_meta("checkpoint/large", &small).unwrap();
    assert_eq!(store.get_meta("checkpoint/large").unwrap().unwrap(), small);
    store.put_meta("checkpoint/empty", &[]).unwrap();
    assert_eq!(store.get_meta("checkpoint/empty").unwrap().unwrap(), Vec::<u8>::new());
    let store = backend.reopen(store);
    assert_eq!(store.get_meta("checkpoint/small").unwrap().unwrap(), small);
}

pub fn a_deal_is_read_by_its_seqs<B: Backend>(backend: &mut B) {
    let mut ledger = Ledger::open(backend.fresh(), Pipeline::default()).unwrap();
    append(&mut ledger, &[opened("a"), opened("b")]).unwrap();
    for round in 0..3 {
        let mut lines = Vec::new();
        for i in 0..3_000 {
            lines.push(touch("a", &format!("a-{round}-{i}"), 1));
            lines.push(touch("b", &format!("b-{round}-{i}"), 1));
        }
        append(&mut ledger, &lines).unwrap();
    }
    let log = ledger.log();
    let (mut seqs, mut offsets) = (Vec::new(), Vec::new());
    log.scan_refs(1, |e| {
        if e.deal == "a" {
            seqs.push(e.seq);
            offsets.push(e.offset);
        }
        Ok(true)
    })
    .unwrap();
    let mut read = Vec::new();
    log.read_deal("a", &seqs, &offsets, |e| {
        read.push((e.seq, e.version));
        Ok(())
    })
    .unwrap();
    assert_eq!(read, seqs.iter().copied().zip(1..).collect::<Vec<_>>());
}

pub fn a_stale_writer_is_fenced<B: Backend>(backend: &mut B) {
    let store = backend.fresh();
    let Some(second) = backend.second_handle(&store) else { return };
    let mut first = Ledger::open(store, Pipeline::default()).unwrap();
    let mut stale = Ledger::open(second, Pipeline::default()).unwrap();
    append(&mut first, &[opened("a")]).unwrap();
    append(&mut first, &deal_lines("b", "b", 5_000)).unwrap();
    let head = first.log().head();
    // The second writer opened before those appends: its log ends at seq 0. Its append, one
    // block or several, is refused and stores nothing.
    for lines in [vec![opened("z")], deal_lines("y", "y", 5_000)] {
        match append(&mut stale, &lines) {
            Err(LogError::Fenced(_)) => {}
            other => panic!("a stale writer's append must be fenced, got {other:?}"),
        }
        let log = Log::open(backend.second_handle(first.log().store()).unwrap()).unwrap();
        assert_eq!(log.head(), head, "nothing of the fenced write is stored");
    }
    // Rebuilt from the store, it writes after what is there.
    let store = stale.into_log().into_store();
    let mut rebuilt = Ledger::open(backend.reopen(store), Pipeline::default()).unwrap();
    assert_eq!(rebuilt.log().head(), head);
    let out = append(&mut rebuilt, &[opened("z"), touch("b", "b-0", 0)]).unwrap();
    assert_eq!(
        out,
        [Outcome::Appended { seq: head.seq + 1, version: 1 }, Outcome::Duplicate { seq: 3, version: 2 }]
    );
    // Now the first is the stale one.
    match append(&mut first, &[opened("x")]) {
        Err(LogError::Fenced(_)) => {}
        other => panic!("the first writer is now stale, got {other:?}"),
    }
    rebuilt.log().verify(None, |_| {}).unwrap();
    // A stale writer's late mark (a barrier at the head it knew) never moves the mark back.
    let late = backend.second_handle(rebuilt.log().store()).unwrap();
    late.append(&[], head).unwrap();
    assert_eq!(rebuilt.log().store().mark().unwrap(), Some(rebuilt.log().head()));
}

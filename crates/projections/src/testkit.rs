//! Hand-built histories for tests of everything that reads a timeline: events admitted by the
//! ledger's own rules (so every history is one the ledger would accept), folded into a timeline
//! without a store.

use crate::{Projection, Timeline};
use dealledger_events::{
    parse_line, Deals, Event, EventRef, FixedClock, Pipeline, StoredEvent, Submission, Timestamp,
};
use dealledger_log::{BlockStore, Ledger};

/// Admits the JSON lines in order on the default pipeline; events without `recorded_at` are
/// recorded at the epoch (known to every view). Panics on a line the rules refuse: a test's
/// history is wrong, not its subject.
pub fn timeline(lines: &[String]) -> Timeline {
    let mut rules = Deals::default();
    let pipeline = Pipeline::default();
    let mut timeline = Timeline::default();
    for (i, line) in lines.iter().enumerate() {
        let mut submission = parse_line(line).unwrap_or_else(|e| panic!("line {}: {e:?}", i + 1));
        let seq = i as u64 + 1;
        let version = rules
            .admit(&mut submission, seq, Timestamp(0), &pipeline)
            .unwrap_or_else(|e| panic!("line {}: {e:?}", i + 1));
        let stored = StoredEvent { seq, version, event: submission.event };
        timeline.apply(&EventRef::of(&stored)).expect("a valid history");
    }
    timeline
}

/// Appends `events` to `ledger` as one committed batch, recorded at 2026-06-01 unless they say
/// otherwise. Panics on a refusal, like [`timeline`].
pub fn append<S: BlockStore>(ledger: &mut Ledger<S>, events: &[Event]) {
    let clock = FixedClock(Timestamp::parse_rfc3339("2026-06-01T00:00:00Z").expect("a valid instant"));
    let mut batch = ledger.batch(&clock);
    for event in events {
        batch.push(Submission { event: event.clone(), expected_version: None }).expect("a valid event");
    }
    batch.commit().expect("the store accepts the batch");
}

//! Hand-built histories for tests of everything that reads a timeline: events admitted by the
//! ledger's own rules (so every history is one the ledger would accept), folded into a timeline
//! without a store.

use crate::{Projection, Timeline};
use dealledger_events::{parse_line, Deals, EventRef, Pipeline, StoredEvent, Timestamp};

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
        timeline.apply(&EventRef::of(&stored));
    }
    timeline
}

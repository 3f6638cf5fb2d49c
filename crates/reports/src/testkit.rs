//! Hand-built histories for the report tests: events admitted by the ledger's rules (so every
//! history here is one the ledger would accept), folded into a timeline.

use dealledger_events::{parse_line, Deals, EventRef, Pipeline, StoredEvent, Timestamp};
use dealledger_projections::{Projection, Timeline};

/// One JSON event: `e("a", "opened", "2024-01-01", r#""owner":"ann","amount":100"#)`. A bare
/// date means midnight UTC.
pub fn e(deal: &str, kind: &str, at: &str, fields: &str) -> String {
    let at = if at.len() == 10 { format!("{at}T00:00:00Z") } else { at.to_string() };
    let sep = if fields.is_empty() { "" } else { "," };
    format!(r#"{{"deal":"{deal}","type":"{kind}","at":"{at}"{sep}{fields}}}"#)
}

/// Admits the lines in order; events without `recorded_at` are recorded at the epoch (known to
/// every view).
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

pub fn t(text: &str) -> Timestamp {
    Timestamp::parse_instant_or_date(text).unwrap()
}

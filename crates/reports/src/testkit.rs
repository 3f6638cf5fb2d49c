//! Hand-built histories for the report tests: events admitted by the ledger's rules (so every
//! history here is one the ledger would accept), folded into a timeline.

use dealledger_events::Timestamp;

/// One JSON event: `e("a", "opened", "2024-01-01", r#""owner":"ann","amount":100"#)`. A bare
/// date means midnight UTC.
pub fn e(deal: &str, kind: &str, at: &str, fields: &str) -> String {
    let at = if at.len() == 10 { format!("{at}T00:00:00Z") } else { at.to_string() };
    let sep = if fields.is_empty() { "" } else { "," };
    format!(r#"{{"deal":"{deal}","type":"{kind}","at":"{at}"{sep}{fields}}}"#)
}

pub use dealledger_projections::testkit::timeline;

pub fn t(text: &str) -> Timestamp {
    Timestamp::parse_instant_or_date(text).unwrap()
}

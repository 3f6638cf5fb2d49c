//! What a figure stands on. A report says, beside its figures, where the data cannot support
//! them (no touches, no amounts, nothing in the period): one line each, the JSON's `notes`. And
//! where the moment or period it looks at holds no events (a history imported from an export
//! that ended long ago, looked at "now"), it says so and offers the moment or period that ends
//! at the ledger's last event (the JSON's `offer`), one rule for every report and the what-if.

use dealledger_events::time::MICROS_PER_DAY;
use dealledger_events::Timestamp;
use dealledger_projections::Timeline;
use serde::Serialize;

use crate::output::{thousands, Instant};

/// A moment a week or more after the ledger's last event is "quiet": nothing the ledger knows
/// happened near it, so a figure that counts time up to it (days without a touch, days in a
/// stage) counts the silence of the data's end.
pub const QUIET_DAYS_MIN: i64 = 7;

/// The moment or period a report offers instead of its own, when its own holds no events: the
/// one that ends at the ledger's last event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Offer {
    AsOf { as_of: Instant },
    Period { from: Instant, to: Instant },
}

impl Offer {
    /// The offer as the flags that ask for it.
    pub fn flags(&self) -> String {
        match self {
            Offer::AsOf { as_of } => format!("--as-of {}", as_of.0),
            Offer::Period { from, to } => format!("--from {} --to {}", from.0, to.0),
        }
    }
}

/// What a report says of its figures: the notes, and an offer if it has one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Basis {
    pub notes: Vec<String>,
    pub offer: Option<Offer>,
}

impl Basis {
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The lines a table ends with: `note: ...`, then `offer: FLAGS` (what to type).
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.notes.iter().map(|n| format!("note: {n}")).collect();
        if let Some(offer) = &self.offer {
            lines.push(format!("offer: {}", offer.flags()));
        }
        lines
    }

    /// A report as of `as_of`: quiet when the ledger's last event is a week or more before it.
    pub fn as_of(timeline: &Timeline, as_of: Timestamp) -> Basis {
        let mut basis = Basis::default();
        if timeline.deals().is_empty() {
            basis.note("the ledger holds no events");
            return basis;
        }
        let latest = timeline.latest_at();
        let quiet = as_of.0.saturating_sub(latest.0);
        if quiet >= QUIET_DAYS_MIN * MICROS_PER_DAY {
            basis.note(format!(
                "nothing happened in the {} days before {as_of}: the ledger's last event is at {latest}; \
                 time counted up to {as_of} (days without a touch, days in a stage) is mostly the silence \
                 after it",
                thousands(u64::try_from(quiet / MICROS_PER_DAY).unwrap_or(0))
            ));
            basis.offer = Some(Offer::AsOf { as_of: Instant(latest) });
        }
        basis
    }

    /// A report over [from, to): quiet when the ledger's last event is before the period. The
    /// offer is the period of the same length that ends with the last event's day (whole UTC
    /// days, as the dashboard's periods are).
    pub fn period(timeline: &Timeline, from: Timestamp, to: Timestamp) -> Basis {
        let mut basis = Basis::default();
        if timeline.deals().is_empty() {
            basis.note("the ledger holds no events");
            return basis;
        }
        let latest = timeline.latest_at();
        if latest < from {
            basis.note(format!(
                "nothing happened in this period: the ledger's last event is at {latest}, before it begins"
            ));
            let end = Timestamp(latest.date().start().0.saturating_add(MICROS_PER_DAY));
            let start = Timestamp(end.0.saturating_sub(to.0.saturating_sub(from.0)));
            basis.offer = Some(Offer::Period { from: Instant(start), to: Instant(end) });
        }
        basis
    }
}

/// `n` things, in the singular for one: `count(1, "contact", "contacts")` is `1 contact`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

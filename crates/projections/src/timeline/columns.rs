//! The timeline's storage: every deal's lists laid end to end, one vector per list.

use super::{Entry, Touch};
use dealledger_events::Currency;
use dealledger_log::MetaBytes;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// Where each deal's items lie in one column: deal `i`'s are `ends[i - 1]..ends[i]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Ranges {
    ends: Vec<usize>,
}

impl Ranges {
    pub(super) fn with_capacity(deals: usize) -> Ranges {
        Ranges { ends: Vec::with_capacity(deals) }
    }

    /// Items in all.
    pub(super) fn total(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    // Deal numbers are below deals() wherever they come from (the timeline hands out only
    // its own), and `ends` holds one end per deal, ascending: a deal's range is inside.
    #[allow(clippy::indexing_slicing, reason = "a deal number the timeline handed out: see above")]
    pub(super) fn range(&self, deal: usize) -> Range<usize> {
        let start = match deal {
            0 => 0,
            _ => self.ends[deal - 1],
        };
        start..self.ends[deal]
    }

    /// Ends the next deal's items at `end`, the column's length after them.
    pub(super) fn push(&mut self, end: usize) {
        debug_assert!(self.ends.last().is_none_or(|&last| last <= end), "ranges follow each other");
        self.ends.push(end);
    }
}

/// Every deal's id and currency, always here, and the lists of the deals that have not moved
/// to [`Lists`] of their own.
#[derive(Clone, Debug, Default)]
pub(super) struct Columns {
    pub(super) ids: String,
    pub(super) id_ranges: Ranges,
    pub(super) currencies: Vec<Currency>,
    pub(super) lists: ListColumns,
}

/// The deals' lists, end to end: a moved deal keeps its old (stale) items here until the next
/// compaction, and a deal opened since has none.
///
/// Touches and seqs, loaded from a checkpoint, stay in its bytes (checked, not decoded) until a
/// reader first asks for them: a report of stages and amounts never allocates the 60% of the
/// timeline they are.
#[derive(Clone, Debug, Default)]
pub(super) struct ListColumns {
    pub(super) entries: Vec<Entry>,
    pub(super) entry_ranges: Ranges,
    touches: OnceLock<Vec<Touch>>,
    pub(super) touch_ranges: Ranges,
    seqs: OnceLock<SeqColumns>,
    pub(super) seq_ranges: Ranges,
    deferred: Option<Arc<Deferred>>,
}

/// Every deal's seqs, and beside each its record's offset in its block.
#[derive(Clone, Debug, Default)]
pub(super) struct SeqColumns {
    pub(super) seqs: Vec<u64>,
    pub(super) offsets: Vec<u32>,
}

/// A checkpoint's bytes, and where in them its touch records and its seq varints are: both
/// already checked by [`super::codec::decode`], so decoding them later cannot fail.
pub(super) struct Deferred {
    pub(super) bytes: MetaBytes,
    pub(super) touches: Range<usize>,
    pub(super) seqs: Range<usize>,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred").field("touches", &self.touches).field("seqs", &self.seqs).finish()
    }
}

/// One deal's lists once an event has changed them.
#[derive(Clone, Debug, Default)]
pub(super) struct Lists {
    pub(super) entries: Vec<Entry>,
    pub(super) touches: Vec<Touch>,
    pub(super) seqs: Vec<u64>,
    pub(super) offsets: Vec<u32>,
}

impl Columns {
    pub(super) fn deals(&self) -> usize {
        self.currencies.len()
    }

    #[allow(
        clippy::indexing_slicing,
        clippy::string_slice,
        reason = "the deal's range, inside the ids and on the boundaries of whole ids (each pushed whole)"
    )]
    pub(super) fn id(&self, deal: usize) -> &str {
        &self.ids[self.id_ranges.range(deal)]
    }

    /// A new deal, with no items in the columns.
    pub(super) fn push_deal(&mut self, id: &str, currency: Currency) {
        self.ids.push_str(id);
        self.id_ranges.push(self.ids.len());
        self.currencies.push(currency);
        self.lists.push_deal(&[], &[], &[], &[]);
    }
}

impl ListColumns {
    pub(super) fn with_capacity(deals: usize, entries: usize, touches: usize, seqs: usize) -> ListColumns {
        ListColumns {
            entries: Vec::with_capacity(entries),
            entry_ranges: Ranges::with_capacity(deals),
            touches: OnceLock::from(Vec::with_capacity(touches)),
            touch_ranges: Ranges::with_capacity(deals),
            seqs: OnceLock::from(SeqColumns {
                seqs: Vec::with_capacity(seqs),
                offsets: Vec::with_capacity(seqs),
            }),
            seq_ranges: Ranges::with_capacity(deals),
            deferred: None,
        }
    }

    /// Columns whose touches and seqs are still in a checkpoint's (checked) bytes.
    pub(super) fn deferred(
        entries: Vec<Entry>,
        entry_ranges: Ranges,
        touch_ranges: Ranges,
        seq_ranges: Ranges,
        deferred: Deferred,
    ) -> ListColumns {
        ListColumns {
            entries,
            entry_ranges,
            touches: OnceLock::new(),
            touch_ranges,
            seqs: OnceLock::new(),
            seq_ranges,
            deferred: Some(Arc::new(deferred)),
        }
    }

    fn touches(&self) -> &Vec<Touch> {
        self.touches.get_or_init(|| match &self.deferred {
            Some(d) => super::codec::touches_from(d.bytes.get(d.touches.clone()).unwrap_or_default()),
            None => Vec::new(),
        })
    }

    fn seqs(&self) -> &SeqColumns {
        self.seqs.get_or_init(|| match &self.deferred {
            Some(d) => {
                super::codec::seqs_from(d.bytes.get(d.seqs.clone()).unwrap_or_default(), &self.seq_ranges)
            }
            None => SeqColumns::default(),
        })
    }

    /// The next deal's lists.
    pub(super) fn push_deal(&mut self, entries: &[Entry], touches: &[Touch], seqs: &[u64], offsets: &[u32]) {
        debug_assert_eq!(seqs.len(), offsets.len());
        self.touches();
        self.seqs();
        self.entries.extend_from_slice(entries);
        self.entry_ranges.push(self.entries.len());
        let all = self.touches.get_mut().expect("decoded above");
        all.extend_from_slice(touches);
        self.touch_ranges.push(all.len());
        let all = self.seqs.get_mut().expect("decoded above");
        all.seqs.extend_from_slice(seqs);
        all.offsets.extend_from_slice(offsets);
        self.seq_ranges.push(all.seqs.len());
    }

    #[allow(clippy::indexing_slicing, reason = "the deal's range, inside the entries by construction")]
    pub(super) fn entries_of(&self, deal: usize) -> &[Entry] {
        &self.entries[self.entry_ranges.range(deal)]
    }

    #[allow(clippy::indexing_slicing, reason = "the deal's range, inside the touches (checked at decode)")]
    pub(super) fn touches_of(&self, deal: usize) -> &[Touch] {
        &self.touches()[self.touch_ranges.range(deal)]
    }

    #[allow(clippy::indexing_slicing, reason = "the deal's range, inside the seqs (checked at decode)")]
    pub(super) fn seqs_of(&self, deal: usize) -> (&[u64], &[u32]) {
        let range = self.seq_ranges.range(deal);
        let all = self.seqs();
        (&all.seqs[range.clone()], &all.offsets[range])
    }
}

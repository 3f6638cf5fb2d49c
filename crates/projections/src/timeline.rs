//! `timeline`: every deal's history, compact, in business-time order: what every report reads.
//!
//! Reports ask about any moment twice over: `as_of` (business time, `at`) and `known_at`
//! (recorded time). No single "current state" answers that, so the timeline keeps each deal's
//! events, stripped to what reports use: strings interned to [`Name`]s, touches apart from the
//! changes (they are most of the log and most reports skip them), both in (`at`, seq) order.
//! A report then folds a deal's prefix with `at <= as_of`, skipping `recorded_at > known_at`.
//!
//! Order: events arrive in seq order and seq breaks ties in `at`, so a new event goes after
//! every stored event with `at <= its at`; seq itself need not be kept.

use ahash::AHashMap;
use dealledger_events::lifecycle::Step;
use dealledger_events::{
    BodyRef, Channel, Currency, Date, Direction, DqReason, EventRef, FieldValueRef, Timestamp,
};

mod codec;
mod columns;

use crate::{Folded, Projection};
use columns::{Columns, ListColumns, Lists};

/// An interned string: a stage, owner or field name.
pub type Name = u32;

/// Strings by [`Name`]. The map is rebuilt after loading, not stored.
#[derive(Clone, Debug, Default)]
pub struct Names {
    strings: Vec<String>,
    index: AHashMap<String, Name>,
}

impl Names {
    pub fn intern(&mut self, text: &str) -> Name {
        if let Some(&name) = self.index.get(text) {
            return name;
        }
        // 2^32 distinct strings would take over 100 GB before this could fail.
        let name = Name::try_from(self.strings.len()).expect("fewer than 2^32 distinct names fit in memory");
        self.strings.push(text.to_string());
        self.index.insert(text.to_string(), name);
        name
    }

    pub fn get(&self, text: &str) -> Option<Name> {
        self.index.get(text).copied()
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// A name this table gave out (names are never removed).
    #[allow(clippy::indexing_slicing, reason = "a Name is only ever made by this table's intern")]
    pub fn resolve(&self, name: Name) -> &str {
        &self.strings[name as usize]
    }

    fn reindex(&mut self) {
        self.index = self.strings.iter().enumerate().map(|(i, s)| (s.clone(), i as Name)).collect();
    }
}

/// A change to a deal: every event but touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Opened {
        stage: Name,
        owner: Name,
        amount_minor: i64,
        close_date: Option<Date>,
    },
    Moved {
        to: Name,
    },
    Won {
        amount_minor: Option<i64>,
    },
    Lost,
    Disqualified {
        reason: DqReason,
    },
    Requalified {
        stage: Option<Name>,
    },
    Amount {
        amount_minor: i64,
    },
    CloseDate {
        close_date: Date,
    },
    Owner {
        owner: Name,
    },
    /// `set` is false when the field was cleared (a JSON null).
    Field {
        field: Name,
        set: bool,
    },
}

impl Change {
    /// The change as a step of the deal's lifecycle, if it is one.
    pub fn lifecycle_step(&self) -> Option<Step<Name>> {
        Some(match *self {
            Change::Opened { stage, .. } => Step::Opened(stage),
            Change::Moved { to } => Step::Moved(to),
            Change::Won { .. } => Step::Won,
            Change::Lost => Step::Lost,
            Change::Disqualified { .. } => Step::Disqualified,
            Change::Requalified { stage } => Step::Requalified(stage),
            Change::Amount { .. }
            | Change::CloseDate { .. }
            | Change::Owner { .. }
            | Change::Field { .. } => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub at: Timestamp,
    pub recorded_at: Timestamp,
    pub change: Change,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Touch {
    pub at: Timestamp,
    pub recorded_at: Timestamp,
    pub channel: Channel,
    pub direction: Direction,
    pub minutes: Option<u16>,
    /// The contact, as [`contact_key`]: reports only count distinct contacts, and interning
    /// every contact of every deal cost a third of replay time.
    pub contact: Option<u64>,
}

impl Touch {
    /// Minutes the touch counts for: its own, else the channel's default (call 15, email 5,
    /// meeting 60, demo 60, social 5, other 10).
    pub fn minutes_or_default(&self) -> i64 {
        i64::from(self.minutes.unwrap_or(match self.channel {
            Channel::Call => 15,
            Channel::Email => 5,
            Channel::Meeting | Channel::Demo => 60,
            Channel::Social => 5,
            Channel::Other => 10,
        }))
    }
}

/// FNV-1a, 64 bits: stable across versions and platforms (checkpoints keep it), and two contacts
/// of one deal colliding is a 1 in 2^64 event.
pub fn contact_key(contact: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in contact.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// One deal's history, borrowed from the [`Timeline`].
#[derive(Clone, Copy, Debug)]
pub struct DealHistory<'a> {
    pub id: &'a str,
    pub currency: Currency,
    /// Changes in (`at`, seq) order; the first is `Opened`.
    pub entries: &'a [Entry],
    /// Where its touches and seqs are: columns a checkpoint's load leaves undecoded until a
    /// reader asks for them (most reports never do).
    lists: Source<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Source<'a> {
    Columns(&'a ListColumns, usize),
    Lists(&'a Lists),
}

impl PartialEq for DealHistory<'_> {
    fn eq(&self, other: &Self) -> bool {
        (self.id, self.currency, self.entries, self.touches(), self.seqs(), self.offsets())
            == (other.id, other.currency, other.entries, other.touches(), other.seqs(), other.offsets())
    }
}

impl Eq for DealHistory<'_> {}

/// Which events a report sees: `at <= as_of` and `recorded_at <= known_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub as_of: Timestamp,
    pub known_at: Timestamp,
}

impl View {
    pub const ALL: View = View { as_of: Timestamp::MAX, known_at: Timestamp::MAX };

    pub fn sees(&self, at: Timestamp, recorded_at: Timestamp) -> bool {
        at <= self.as_of && recorded_at <= self.known_at
    }
}

impl<'a> DealHistory<'a> {
    /// Touches in (`at`, seq) order.
    pub fn touches(&self) -> &'a [Touch] {
        match self.lists {
            Source::Columns(columns, deal) => columns.touches_of(deal),
            Source::Lists(lists) => &lists.touches,
        }
    }

    /// The seq of every event of the deal, ascending: the index that reads a deal's history
    /// from the log without scanning it (`GET /v1/deals/{id}`, `audit deal`).
    pub fn seqs(&self) -> &'a [u64] {
        match self.lists {
            Source::Columns(columns, deal) => columns.seqs_of(deal).0,
            Source::Lists(lists) => &lists.seqs,
        }
    }

    /// Beside each seq, where its record starts in its block's uncompressed records: with it a
    /// reader decodes just that record instead of every record before it in the block.
    pub fn offsets(&self) -> &'a [u32] {
        match self.lists {
            Source::Columns(columns, deal) => columns.seqs_of(deal).1,
            Source::Lists(lists) => &lists.offsets,
        }
    }

    /// The changes this view sees, in order.
    pub fn entries(&self, view: View) -> impl Iterator<Item = &'a Entry> + 'a {
        let entries = self.entries;
        let end = entries.partition_point(|e| e.at <= view.as_of);
        entries.get(..end).unwrap_or_default().iter().filter(move |e| e.recorded_at <= view.known_at)
    }

    /// The touches this view sees, in order.
    pub fn touches_in(&self, view: View) -> impl Iterator<Item = &'a Touch> + 'a {
        let touches = self.touches();
        let end = touches.partition_point(|t| t.at <= view.as_of);
        touches.get(..end).unwrap_or_default().iter().filter(move |t| t.recorded_at <= view.known_at)
    }
}

/// A timeline state that does not decode ([`Timeline::decode_state`]): what is wrong with it.
/// (A checkpoint's loader reports the same as the checkpoint's corruption.)
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the timeline's state does not decode: {0}")]
pub struct StateError(pub String);

/// Every deal's history, in order of first appearance in the log.
///
/// Laid out for the folds and for the checkpoint, not for the writer: each list is one vector
/// for all deals ([`Columns`]), which a checkpoint loads in one sequential pass with a handful
/// of allocations, and which a fold over every deal reads front to back. A deal that an event
/// changes after that moves to vectors of its own ([`Lists`]); when those hold more deals than
/// the columns, they are folded back in ([`Timeline::compact`]), so the moves cost at most twice
/// the copying of the whole timeline, however the events come.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub names: Names,
    columns: Columns,
    /// Per deal, where its lists are when it has left the columns ([`MOVED_NOT`] where not); empty
    /// while no deal has.
    moved: Vec<u32>,
    lists: Vec<Lists>,
    /// The latest `at` and `recorded_at` of any event: a view at or past both sees everything.
    latest_at: Timestamp,
    latest_recorded_at: Timestamp,
    /// Deal ids to deal indexes: built when first asked for, since a one-off report that
    /// never looks a deal up (most) need not hash every id.
    index: std::sync::OnceLock<AHashMap<String, u32>>,
    current: Current,
}

/// In [`Timeline::moved`]: the deal's lists are in the columns.
const MOVED_NOT: u32 = u32::MAX;

/// Every deal folded under [`View::ALL`], touches too: what a report on "now" reads, so it
/// need not fold 10 M events' worth of history per question. Built by [`Timeline::refresh`],
/// which then refolds only the deals events have touched since.
#[derive(Clone, Debug, Default)]
struct Current {
    built: bool,
    /// By deal index, while built.
    folded: Vec<Folded>,
    /// Deals touched since the last refresh (indexes, unsorted, repeats allowed).
    stale: Vec<u32>,
}

impl Current {
    /// Past this many stale entries per deal a refresh refolds everything: the list stays
    /// bounded however long nobody refreshes (a large catch-up).
    const STALE_PER_DEAL_MAX: usize = 1;

    fn touched(&mut self, deal: u32, deals: usize) {
        if self.built {
            self.stale.push(deal);
            if self.stale.len() > deals.max(1024) * Self::STALE_PER_DEAL_MAX {
                *self = Current::default();
            }
        }
    }

    fn fresh(&self) -> bool {
        self.built && self.stale.is_empty()
    }
}

static FORCED_PARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Folds in exactly `parts` parts (0: one per core), however few the deals: lets tests check
/// that merging parts gives what one pass gives, on histories small enough to test.
#[doc(hidden)]
pub fn force_parallel_parts(parts: usize) {
    FORCED_PARTS.store(parts, std::sync::atomic::Ordering::Relaxed);
}

/// How many parts to fold `deals` deals in: one per core (at most 8), and one for few deals,
/// where a thread would cost more than it saves.
fn parallel_parts(deals: usize) -> usize {
    const DEALS_PER_PART_MIN: usize = 8192;
    let forced = FORCED_PARTS.load(std::sync::atomic::Ordering::Relaxed);
    if forced > 0 {
        return forced.min(deals).max(1);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    cores.min(deals / DEALS_PER_PART_MIN).max(1)
}

/// Reallocates every deal's visits in deal order, all while the old ones are still held, so
/// that they come from fresh memory one after another: a report walking the deals then reads
/// its visits nearly in sequence instead of chasing pointers all over the heap (4x faster at
/// 10 M events).
fn compact_visits(mut folded: Vec<Folded>) -> Vec<Folded> {
    let visits: Vec<Vec<crate::Visit>> = folded.iter().map(|f| f.visits.clone()).collect();
    for (f, visits) in folded.iter_mut().zip(visits) {
        f.visits = visits;
    }
    folded
}

fn fold_all(deal: &DealHistory) -> Folded {
    let mut folded = Folded::default();
    let visible = folded.fold(deal, View::ALL);
    debug_assert!(visible, "every stored deal has its opened event");
    folded.fold_touches(deal, View::ALL);
    folded
}

impl Timeline {
    /// Folds every deal the view sees (its touches too when `touches`, see
    /// [`Folded::fold_touches`]) into accumulators: the deals are cut into consecutive parts
    /// folded on all cores, one accumulator per part, returned in deal order, so that merging
    /// them in order gives what one pass would. A view that sees every event reads the folds
    /// [`Timeline::refresh`] keeps, when they are fresh.
    pub fn fold_deals<A: Send>(
        &self,
        view: View,
        touches: bool,
        init: impl Fn() -> A + Sync,
        each: impl Fn(&mut A, &DealHistory<'_>, &Folded) + Sync,
    ) -> Vec<A> {
        let deals = self.columns.deals();
        let parts = parallel_parts(deals);
        let part_len = deals.div_ceil(parts).max(1);
        let fold_part = |start: usize| {
            let mut acc = init();
            let end = (start + part_len).min(deals);
            self.each_folded_in(start..end, view, touches, |deal, folded| each(&mut acc, deal, folded));
            acc
        };
        if parts == 1 {
            return vec![fold_part(0)];
        }
        std::thread::scope(|scope| {
            let rest: Vec<_> =
                (1..parts).map(|part| scope.spawn(move || fold_part(part * part_len))).collect();
            let mut accs = vec![fold_part(0)];
            accs.extend(rest.into_iter().map(|h| h.join().expect("folding threads do not panic")));
            accs
        })
    }

    /// Calls `each` with every deal the view sees, folded as [`Timeline::fold_deals`] does, in
    /// deal order, on this thread.
    pub fn each_folded(&self, view: View, touches: bool, each: impl FnMut(&DealHistory<'_>, &Folded)) {
        self.each_folded_in(0..self.columns.deals(), view, touches, each);
    }

    fn each_folded_in(
        &self,
        range: std::ops::Range<usize>,
        view: View,
        touches: bool,
        mut each: impl FnMut(&DealHistory<'_>, &Folded),
    ) {
        let sees_all = view.as_of >= self.latest_at && view.known_at >= self.latest_recorded_at;
        if sees_all && self.current.fresh() {
            debug_assert_eq!(self.current.folded.len(), self.columns.deals());
            for (i, folded) in range.clone().zip(self.current.folded.get(range).unwrap_or_default()) {
                each(&self.history(i), folded);
            }
            return;
        }
        let mut folded = Folded::default();
        for i in range {
            let deal = self.history(i);
            if folded.fold(&deal, view) {
                if touches {
                    folded.fold_touches(&deal, view);
                }
                each(&deal, &folded);
            }
        }
    }

    /// The latest business time (`at`) of any event: the end of the history.
    pub fn latest_at(&self) -> Timestamp {
        self.latest_at
    }

    /// A copy of the history for a long computation to read while this one keeps folding (the
    /// daemon's what-ifs): everything but the folds of "now" and the id index, which it
    /// rebuilds if it asks for them.
    pub fn snapshot(&self) -> Timeline {
        Timeline {
            names: self.names.clone(),
            columns: self.columns.clone(),
            moved: self.moved.clone(),
            lists: self.lists.clone(),
            latest_at: self.latest_at,
            latest_recorded_at: self.latest_recorded_at,
            index: std::sync::OnceLock::new(),
            current: Current::default(),
        }
    }

    /// True when the folds of "now" are built and no event came after the last refresh.
    pub fn is_fresh(&self) -> bool {
        self.current.fresh()
    }

    /// Brings the folds of "now" up to date: all of them the first time (on all cores), then
    /// only the deals that events touched since. The daemon calls it after each commit; a
    /// one-off report need not (it folds what it reads).
    pub fn refresh(&mut self) {
        if !self.current.built {
            let deals = self.columns.deals();
            let part_len = deals.div_ceil(parallel_parts(deals)).max(1);
            let this = &*self;
            let folded = std::thread::scope(|scope| {
                let parts: Vec<_> = (0..deals)
                    .step_by(part_len)
                    .map(|start| {
                        let end = (start + part_len).min(deals);
                        scope.spawn(move || {
                            (start..end).map(|i| fold_all(&this.history(i))).collect::<Vec<_>>()
                        })
                    })
                    .collect();
                parts.into_iter().flat_map(|h| h.join().expect("folding threads do not panic")).collect()
            });
            self.current = Current { built: true, folded: compact_visits(folded), stale: Vec::new() };
            return;
        }
        let mut stale = std::mem::take(&mut self.current.stale);
        stale.sort_unstable();
        stale.dedup();
        for &deal in &stale {
            let folded = fold_all(&self.history(deal as usize));
            match self.current.folded.get_mut(deal as usize) {
                Some(slot) => *slot = folded,
                None => {
                    debug_assert_eq!(self.current.folded.len(), deal as usize, "deals are appended in order");
                    self.current.folded.push(folded);
                }
            }
        }
        stale.clear();
        self.current.stale = stale;
    }

    /// [`Projection::decode`] of a state held in memory (tests, tools).
    pub fn decode_state(state: &[u8]) -> Result<Timeline, StateError> {
        codec::decode(dealledger_log::MetaBytes::Owned(state.to_vec()), 0..state.len()).map_err(StateError)
    }

    pub fn deals(&self) -> Deals<'_> {
        Deals { timeline: self }
    }

    pub fn deal(&self, id: &str) -> Option<DealHistory<'_>> {
        self.index().get(id).map(|&i| self.history(i as usize))
    }

    pub fn events(&self) -> usize {
        self.deals().iter().map(|d| d.entries.len() + d.touches().len()).sum()
    }

    /// Deal `i`'s history, from its own lists if it has moved to them, else from the columns.
    #[allow(
        clippy::indexing_slicing,
        reason = "i is one of the timeline's deals; moved holds indices of lists"
    )]
    fn history(&self, i: usize) -> DealHistory<'_> {
        let (entries, lists) = match self.moved.get(i) {
            Some(&list) if list != MOVED_NOT => {
                let lists = &self.lists[list as usize];
                (&lists.entries[..], Source::Lists(lists))
            }
            _ => (self.columns.lists.entries_of(i), Source::Columns(&self.columns.lists, i)),
        };
        DealHistory { id: self.columns.id(i), currency: self.columns.currencies[i], entries, lists }
    }

    /// Deal `i`'s own lists, moving it out of the columns if it is still there.
    #[allow(
        clippy::indexing_slicing,
        reason = "i is one of the timeline's deals (moved is resized to them first)"
    )]
    fn lists_mut(&mut self, i: usize) -> &mut Lists {
        let deals = self.columns.deals();
        if self.moved.len() < deals {
            self.moved.resize(deals, MOVED_NOT);
        }
        if self.moved[i] == MOVED_NOT {
            let lists = &self.columns.lists;
            let (seqs, offsets) = lists.seqs_of(i);
            let lists = Lists {
                entries: lists.entries_of(i).to_vec(),
                touches: lists.touches_of(i).to_vec(),
                seqs: seqs.to_vec(),
                offsets: offsets.to_vec(),
            };
            // Fewer lists than deals, and deals fit u32 (apply checks it).
            self.moved[i] = self.lists.len() as u32;
            self.lists.push(lists);
        }
        &mut self.lists[self.moved[i] as usize]
    }

    /// Once more deals have moved to their own lists than stayed in the columns, lays every
    /// deal's lists end to end again. Below `MOVED_MIN` moves it waits: a replay from
    /// nothing would otherwise compact at every other deal.
    fn compact_if_due(&mut self) {
        const MOVED_MIN: usize = 4096;
        let moved = self.lists.len();
        if moved < MOVED_MIN || moved <= self.columns.deals() - moved {
            return;
        }
        self.compact();
    }

    /// Lays every deal's lists end to end in the columns, in deal order.
    fn compact(&mut self) {
        if self.lists.is_empty() {
            return;
        }
        let deals = self.columns.deals();
        let (mut entries, mut touches, mut seqs) = (0, 0, 0);
        for deal in self.deals() {
            entries += deal.entries.len();
            touches += deal.touches().len();
            seqs += deal.seqs().len();
        }
        let mut lists = ListColumns::with_capacity(deals, entries, touches, seqs);
        for deal in self.deals() {
            lists.push_deal(deal.entries, deal.touches(), deal.seqs(), deal.offsets());
        }
        self.columns.lists = lists;
        self.moved = Vec::new();
        self.lists = Vec::new();
    }

    fn index(&self) -> &AHashMap<String, u32> {
        self.index.get_or_init(|| {
            let deals = self.columns.deals();
            let mut index = AHashMap::with_capacity(deals);
            for i in 0..deals {
                // Deals fit u32: apply and the checkpoint's decoding check it.
                index.insert(self.columns.id(i).to_string(), i as u32);
            }
            index
        })
    }

    /// Records that event `seq` is the deal's: events come in seq order.
    fn note_seq(lists: &mut Lists, id: &str, seq: u64, offset: u32) -> Result<(), String> {
        if let Some(&last) = lists.seqs.last().filter(|&&last| last >= seq) {
            return Err(format!("event {seq} of deal `{id}` comes after its event {last}"));
        }
        lists.seqs.push(seq);
        lists.offsets.push(offset);
        Ok(())
    }

    fn note_times(&mut self, at: Timestamp, recorded_at: Timestamp) {
        self.latest_at = self.latest_at.max(at);
        self.latest_recorded_at = self.latest_recorded_at.max(recorded_at);
    }

    /// The index of an event's deal, which a valid log opened before it.
    fn deal_index(&self, event: &EventRef<'_>) -> Result<u32, String> {
        self.index()
            .get(event.deal)
            .copied()
            .ok_or_else(|| format!("deal `{}` has an event before its `opened`", event.deal))
    }

    /// Adds a change or touch to a deal that exists, in (`at`, seq) order.
    fn add(&mut self, event: &EventRef<'_>, item: Item) -> Result<(), String> {
        let deal = self.deal_index(event)?;
        let deals = self.columns.deals();
        let (at, recorded_at) = (event.at, event.recorded_at);
        let lists = self.lists_mut(deal as usize);
        Timeline::note_seq(lists, event.deal, event.seq, event.offset)?;
        match item {
            Item::Entry(entry) => insert_ordered(&mut lists.entries, at, entry, |e| e.at),
            Item::Touch(touch) => insert_ordered(&mut lists.touches, at, touch, |t| t.at),
        }
        self.note_times(at, recorded_at);
        self.current.touched(deal, deals);
        self.compact_if_due();
        Ok(())
    }
}

/// A change or a touch, on its way into a deal's lists.
enum Item {
    Entry(Entry),
    Touch(Touch),
}

/// The timeline's deals, in order of first appearance in the log.
#[derive(Clone, Copy)]
pub struct Deals<'a> {
    timeline: &'a Timeline,
}

impl<'a> Deals<'a> {
    pub fn len(&self) -> usize {
        self.timeline.columns.deals()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> Option<DealHistory<'a>> {
        (i < self.len()).then(|| self.timeline.history(i))
    }

    pub fn iter(&self) -> DealsIter<'a> {
        DealsIter { timeline: self.timeline, next: 0..self.len() }
    }
}

impl<'a> IntoIterator for Deals<'a> {
    type Item = DealHistory<'a>;
    type IntoIter = DealsIter<'a>;

    fn into_iter(self) -> DealsIter<'a> {
        self.iter()
    }
}

#[derive(Clone)]
pub struct DealsIter<'a> {
    timeline: &'a Timeline,
    next: std::ops::Range<usize>,
}

impl<'a> Iterator for DealsIter<'a> {
    type Item = DealHistory<'a>;

    fn next(&mut self) -> Option<DealHistory<'a>> {
        self.next.next().map(|i| self.timeline.history(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.next.size_hint()
    }
}

impl ExactSizeIterator for DealsIter<'_> {}

impl DoubleEndedIterator for DealsIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.next.next_back().map(|i| self.timeline.history(i))
    }
}

/// Inserts after every element with `at <= new.at`: the (at, seq) order, since seq only grows.
fn insert_ordered<T>(items: &mut Vec<T>, at: Timestamp, item: T, at_of: impl Fn(&T) -> Timestamp) {
    if items.last().is_none_or(|last| at_of(last) <= at) {
        items.push(item);
    } else {
        let position = items.partition_point(|x| at_of(x) <= at);
        items.insert(position, item);
    }
}

impl Projection for Timeline {
    const NAME: &'static str = "timeline";
    /// 4: the checkpoint gained a checksum (the state's meaning is that of 3); 5: each deal's
    /// seqs; 6: and their records' offsets in their blocks; 7: the columnar layout of
    /// [`codec`] in place of the codec's (bincode's) encoding of the structs.
    const VERSION: u32 = 7;

    fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    fn decode(checkpoint: dealledger_log::MetaBytes, state: std::ops::Range<usize>) -> Result<Self, String> {
        codec::decode(checkpoint, state)
    }

    fn beside(&self, head: &dealledger_log::Head) -> Option<(&'static str, Vec<u8>)> {
        Some((crate::deal_index::KEY, crate::deal_index::encode(self, head)))
    }

    fn apply(&mut self, event: &EventRef<'_>) -> Result<(), String> {
        let (at, recorded_at) = (event.at, event.recorded_at);
        let change = match event.body {
            BodyRef::Opened { owner, amount, currency, stage, close_date, .. } => {
                let stage = stage.ok_or("a stored `opened` without its stage")?;
                if self.index().contains_key(event.deal) {
                    return Err(format!("deal `{}` is opened a second time", event.deal));
                }
                let i = u32::try_from(self.columns.deals()).map_err(|_| "more than 2^32 deals")?;
                if i == MOVED_NOT {
                    return Err("more than 2^32 - 1 deals".into());
                }
                let change = Change::Opened {
                    stage: self.names.intern(stage),
                    owner: self.names.intern(owner),
                    amount_minor: amount.minor(),
                    close_date,
                };
                self.index();
                self.index.get_mut().expect("built above").insert(event.deal.to_string(), i);
                self.columns.push_deal(event.deal, currency);
                let lists = self.lists_mut(i as usize);
                lists.entries.push(Entry { at, recorded_at, change });
                lists.seqs.push(event.seq);
                lists.offsets.push(event.offset);
                self.note_times(at, recorded_at);
                self.current.touched(i, self.columns.deals() - 1);
                self.compact_if_due();
                return Ok(());
            }
            BodyRef::Touch { channel, direction, minutes, contact } => {
                let touch =
                    Touch { at, recorded_at, channel, direction, minutes, contact: contact.map(contact_key) };
                return self.add(event, Item::Touch(touch));
            }
            BodyRef::StageMoved { to } => Change::Moved { to: self.names.intern(to) },
            BodyRef::Won { amount } => Change::Won { amount_minor: amount.map(|a| a.minor()) },
            BodyRef::Lost { .. } => Change::Lost,
            BodyRef::Disqualified { reason, .. } => Change::Disqualified { reason },
            BodyRef::Requalified { stage, .. } => {
                Change::Requalified { stage: stage.map(|s| self.names.intern(s)) }
            }
            BodyRef::AmountChanged { amount } => Change::Amount { amount_minor: amount.minor() },
            BodyRef::CloseDateChanged { close_date } => Change::CloseDate { close_date },
            BodyRef::OwnerChanged { owner } => Change::Owner { owner: self.names.intern(owner) },
            BodyRef::FieldSet { field, value } => {
                Change::Field { field: self.names.intern(field), set: !matches!(value, FieldValueRef::Clear) }
            }
        };
        self.add(event, Item::Entry(Entry { at, recorded_at, change }))
    }
}

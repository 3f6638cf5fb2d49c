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
use serde::{Deserialize, Serialize};

use crate::{Folded, Projection};

/// An interned string: a stage, owner or field name.
pub type Name = u32;

/// Strings by [`Name`]. The map is rebuilt after loading, not stored.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Names {
    strings: Vec<String>,
    #[serde(skip)]
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

    pub fn resolve(&self, name: Name) -> &str {
        &self.strings[name as usize]
    }

    fn reindex(&mut self) {
        self.index = self.strings.iter().enumerate().map(|(i, s)| (s.clone(), i as Name)).collect();
    }
}

/// A change to a deal: every event but touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub at: Timestamp,
    pub recorded_at: Timestamp,
    pub change: Change,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// One deal's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealHistory {
    pub id: String,
    pub currency: Currency,
    /// Changes in (`at`, seq) order; the first is `Opened`.
    pub entries: Vec<Entry>,
    /// Touches in (`at`, seq) order.
    pub touches: Vec<Touch>,
    /// The seq of every event of the deal, ascending: the index that reads a deal's history
    /// from the log without scanning it (`GET /v1/deals/{id}`, `audit deal`).
    pub seqs: Vec<u64>,
    /// Beside each seq, where its record starts in its block's uncompressed records: with it a
    /// reader decodes just that record instead of every record before it in the block.
    pub offsets: Vec<u32>,
}

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

impl DealHistory {
    /// The changes this view sees, in order.
    pub fn entries(&self, view: View) -> impl Iterator<Item = &Entry> + '_ {
        let end = self.entries.partition_point(|e| e.at <= view.as_of);
        self.entries[..end].iter().filter(move |e| e.recorded_at <= view.known_at)
    }

    /// The touches this view sees, in order.
    pub fn touches(&self, view: View) -> impl Iterator<Item = &Touch> + '_ {
        let end = self.touches.partition_point(|t| t.at <= view.as_of);
        self.touches[..end].iter().filter(move |t| t.recorded_at <= view.known_at)
    }
}

/// Every deal's history, in order of first appearance in the log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Timeline {
    pub names: Names,
    deals: Vec<DealHistory>,
    /// The latest `at` and `recorded_at` of any event: a view at or past both sees everything.
    latest_at: Timestamp,
    latest_recorded_at: Timestamp,
    #[serde(skip)]
    index: AHashMap<String, u32>,
    #[serde(skip)]
    current: Current,
}

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
fn compact(mut folded: Vec<Folded>) -> Vec<Folded> {
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
        each: impl Fn(&mut A, &DealHistory, &Folded) + Sync,
    ) -> Vec<A> {
        let parts = parallel_parts(self.deals.len());
        let part_len = self.deals.len().div_ceil(parts).max(1);
        let fold_part = |start: usize| {
            let mut acc = init();
            let end = (start + part_len).min(self.deals.len());
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
    pub fn each_folded(&self, view: View, touches: bool, each: impl FnMut(&DealHistory, &Folded)) {
        self.each_folded_in(0..self.deals.len(), view, touches, each);
    }

    fn each_folded_in(
        &self,
        range: std::ops::Range<usize>,
        view: View,
        touches: bool,
        mut each: impl FnMut(&DealHistory, &Folded),
    ) {
        let sees_all = view.as_of >= self.latest_at && view.known_at >= self.latest_recorded_at;
        if sees_all && self.current.fresh() {
            debug_assert_eq!(self.current.folded.len(), self.deals.len());
            for (deal, folded) in self.deals[range.clone()].iter().zip(&self.current.folded[range]) {
                each(deal, folded);
            }
            return;
        }
        let mut folded = Folded::default();
        for deal in &self.deals[range] {
            if folded.fold(deal, view) {
                if touches {
                    folded.fold_touches(deal, view);
                }
                each(deal, &folded);
            }
        }
    }

    /// The latest business time (`at`) of any event: the end of the history.
    pub fn latest_at(&self) -> Timestamp {
        self.latest_at
    }

    /// True when the folds of "now" are built and no event came after the last refresh.
    pub fn is_fresh(&self) -> bool {
        self.current.fresh()
    }

    /// Brings the folds of "now" up to date: all of them the first time (on all cores), then
    /// only the deals that events touched since. The daemon calls it after each commit; a
    /// one-off report need not (it folds what it reads).
    pub fn refresh(&mut self) {
        let current = &mut self.current;
        if !current.built {
            let part_len = self.deals.len().div_ceil(parallel_parts(self.deals.len())).max(1);
            let folded = std::thread::scope(|scope| {
                let parts: Vec<_> = self
                    .deals
                    .chunks(part_len)
                    .map(|part| scope.spawn(|| part.iter().map(fold_all).collect::<Vec<_>>()))
                    .collect();
                parts.into_iter().flat_map(|h| h.join().expect("folding threads do not panic")).collect()
            });
            *current = Current { built: true, folded: compact(folded), stale: Vec::new() };
            return;
        }
        current.stale.sort_unstable();
        current.stale.dedup();
        for &deal in &current.stale {
            let history = &self.deals[deal as usize];
            match current.folded.get_mut(deal as usize) {
                Some(folded) => *folded = fold_all(history),
                None => {
                    debug_assert_eq!(current.folded.len(), deal as usize, "deals are appended in order");
                    current.folded.push(fold_all(history));
                }
            }
        }
        current.stale.clear();
    }

    pub fn deals(&self) -> &[DealHistory] {
        &self.deals
    }

    pub fn deal(&self, id: &str) -> Option<&DealHistory> {
        self.index.get(id).map(|&i| &self.deals[i as usize])
    }

    pub fn events(&self) -> usize {
        self.deals.iter().map(|d| d.entries.len() + d.touches.len()).sum()
    }
}

impl Timeline {
    /// A decoded checkpoint is only used if a fold could have produced it: every name it
    /// refers to exists, every deal starts with its one `opened` and keeps its lists in `at`
    /// order, ids are valid and distinct, and the latest instants are the latest of the lists.
    /// Readers then index and compare without checks of their own.
    /// Records that event `seq` is the deal's: events come in seq order.
    fn note_seq(&mut self, deal: u32, seq: u64, offset: u32) -> Result<(), String> {
        let history = &mut self.deals[deal as usize];
        if let Some(&last) = history.seqs.last().filter(|&&last| last >= seq) {
            return Err(format!("event {seq} of deal `{}` comes after its event {last}", history.id));
        }
        history.seqs.push(seq);
        history.offsets.push(offset);
        Ok(())
    }

    fn check_loaded(&self) -> Result<(), String> {
        let names = self.names.len();
        let name = |name: Name, deal: &str| match (name as usize) < names {
            true => Ok(()),
            false => Err(format!("deal `{deal}` names string {name} of {names}")),
        };
        u32::try_from(self.deals.len()).map_err(|_| "more than 2^32 deals")?;
        let mut ids = ahash::AHashSet::with_capacity(self.deals.len());
        let (mut latest_at, mut latest_recorded_at) = (Timestamp::MIN, Timestamp::MIN);
        for deal in &self.deals {
            let id = deal.id.as_str();
            dealledger_events::DealId::check(id).map_err(|why| why.to_string())?;
            if !ids.insert(id) {
                return Err(format!("deal `{id}` appears twice"));
            }
            if !matches!(deal.entries.first(), Some(Entry { change: Change::Opened { .. }, .. })) {
                return Err(format!("deal `{id}` does not start with its `opened`"));
            }
            let counted = deal.entries.len().saturating_add(deal.touches.len());
            if deal.seqs.len() < counted
                || deal.seqs.windows(2).any(|w| w[0] >= w[1])
                || deal.offsets.len() != deal.seqs.len()
            {
                return Err(format!("deal `{id}`'s seqs are not ascending, miss events or miss offsets"));
            }
            for (i, entry) in deal.entries.iter().enumerate() {
                match entry.change {
                    Change::Opened { stage, owner, .. } => {
                        if i > 0 {
                            return Err(format!("deal `{id}` is opened twice"));
                        }
                        name(stage, id)?;
                        name(owner, id)?;
                    }
                    Change::Moved { to: n } | Change::Owner { owner: n } | Change::Field { field: n, .. } => {
                        name(n, id)?
                    }
                    Change::Requalified { stage: Some(n) } => name(n, id)?,
                    _ => {}
                }
            }
            let times = deal.entries.iter().map(|e| (e.at, e.recorded_at));
            let times = times.chain(deal.touches.iter().map(|t| (t.at, t.recorded_at)));
            for (at, recorded_at) in times {
                if !at.is_valid() || !recorded_at.is_valid() {
                    return Err(format!("deal `{id}` has an instant outside years 0000 to 9999"));
                }
                latest_at = latest_at.max(at);
                latest_recorded_at = latest_recorded_at.max(recorded_at);
            }
            if !deal.entries.is_sorted_by_key(|e| e.at) || !deal.touches.is_sorted_by_key(|t| t.at) {
                return Err(format!("deal `{id}`'s history is not in time order"));
            }
        }
        let empty = self.deals.is_empty();
        let expected = if empty {
            (Timestamp::default(), Timestamp::default())
        } else {
            (latest_at, latest_recorded_at)
        };
        if (self.latest_at, self.latest_recorded_at) != expected {
            return Err("the latest instants are not those of the history".into());
        }
        Ok(())
    }

    fn note_times(&mut self, at: Timestamp, recorded_at: Timestamp) {
        self.latest_at = self.latest_at.max(at);
        self.latest_recorded_at = self.latest_recorded_at.max(recorded_at);
    }

    /// The index of an event's deal, which a valid log opened before it.
    fn deal_index(&self, event: &EventRef<'_>) -> Result<u32, String> {
        self.index
            .get(event.deal)
            .copied()
            .ok_or_else(|| format!("deal `{}` has an event before its `opened`", event.deal))
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
    /// seqs; 6: and their records' offsets in their blocks.
    const VERSION: u32 = 6;

    fn loaded(&mut self) -> Result<(), String> {
        self.names.reindex();
        self.check_loaded()?;
        self.index = self.deals.iter().enumerate().map(|(i, d)| (d.id.clone(), i as u32)).collect();
        Ok(())
    }

    fn beside(&self, head: &dealledger_log::Head) -> Option<(&'static str, Vec<u8>)> {
        Some((crate::deal_index::KEY, crate::deal_index::encode(self, head)))
    }

    fn apply(&mut self, event: &EventRef<'_>) -> Result<(), String> {
        let (at, recorded_at) = (event.at, event.recorded_at);
        let names = &mut self.names;
        let change = match event.body {
            BodyRef::Opened { owner, amount, currency, stage, close_date, .. } => {
                let stage = stage.ok_or("a stored `opened` without its stage")?;
                if self.index.contains_key(event.deal) {
                    return Err(format!("deal `{}` is opened a second time", event.deal));
                }
                let i = u32::try_from(self.deals.len()).map_err(|_| "more than 2^32 deals")?;
                let change = Change::Opened {
                    stage: names.intern(stage),
                    owner: names.intern(owner),
                    amount_minor: amount.minor(),
                    close_date,
                };
                self.note_times(at, recorded_at);
                self.index.insert(event.deal.to_string(), i);
                self.current.touched(i, self.deals.len());
                self.deals.push(DealHistory {
                    id: event.deal.to_string(),
                    currency,
                    entries: vec![Entry { at, recorded_at, change }],
                    touches: Vec::new(),
                    seqs: vec![event.seq],
                    offsets: vec![event.offset],
                });
                return Ok(());
            }
            BodyRef::Touch { channel, direction, minutes, contact } => {
                let touch =
                    Touch { at, recorded_at, channel, direction, minutes, contact: contact.map(contact_key) };
                let deal = self.deal_index(event)?;
                self.note_seq(deal, event.seq, event.offset)?;
                self.note_times(at, recorded_at);
                self.current.touched(deal, self.deals.len());
                insert_ordered(&mut self.deals[deal as usize].touches, at, touch, |t| t.at);
                return Ok(());
            }
            BodyRef::StageMoved { to } => Change::Moved { to: names.intern(to) },
            BodyRef::Won { amount } => Change::Won { amount_minor: amount.map(|a| a.minor()) },
            BodyRef::Lost { .. } => Change::Lost,
            BodyRef::Disqualified { reason, .. } => Change::Disqualified { reason },
            BodyRef::Requalified { stage, .. } => {
                Change::Requalified { stage: stage.map(|s| names.intern(s)) }
            }
            BodyRef::AmountChanged { amount } => Change::Amount { amount_minor: amount.minor() },
            BodyRef::CloseDateChanged { close_date } => Change::CloseDate { close_date },
            BodyRef::OwnerChanged { owner } => Change::Owner { owner: names.intern(owner) },
            BodyRef::FieldSet { field, value } => {
                Change::Field { field: names.intern(field), set: !matches!(value, FieldValueRef::Clear) }
            }
        };
        let deal = self.deal_index(event)?;
        self.note_seq(deal, event.seq, event.offset)?;
        self.note_times(at, recorded_at);
        self.current.touched(deal, self.deals.len());
        insert_ordered(&mut self.deals[deal as usize].entries, at, Entry { at, recorded_at, change }, |e| {
            e.at
        });
        Ok(())
    }
}

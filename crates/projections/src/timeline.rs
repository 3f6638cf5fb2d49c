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
use dealledger_events::{
    BodyRef, Channel, Currency, Date, Direction, DqReason, EventRef, FieldValueRef, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::Projection;

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
        let name = Name::try_from(self.strings.len()).expect("fewer than 2^32 distinct names");
        self.strings.push(text.to_string());
        self.index.insert(text.to_string(), name);
        name
    }

    pub fn get(&self, text: &str) -> Option<Name> {
        self.index.get(text).copied()
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
    #[serde(skip)]
    index: AHashMap<String, u32>,
}

impl Timeline {
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
    const VERSION: u32 = 2;

    fn loaded(&mut self) {
        self.names.reindex();
        self.index = self.deals.iter().enumerate().map(|(i, d)| (d.id.clone(), i as u32)).collect();
    }

    fn apply(&mut self, event: &EventRef<'_>) {
        let (at, recorded_at) = (event.at, event.recorded_at);
        let names = &mut self.names;
        let change = match event.body {
            BodyRef::Opened { owner, amount, currency, stage, close_date, .. } => {
                let change = Change::Opened {
                    stage: names.intern(stage.expect("stored opened events name their stage")),
                    owner: names.intern(owner),
                    amount_minor: amount.minor(),
                    close_date,
                };
                let i = u32::try_from(self.deals.len()).expect("fewer than 2^32 deals");
                self.index.insert(event.deal.to_string(), i);
                self.deals.push(DealHistory {
                    id: event.deal.to_string(),
                    currency,
                    entries: vec![Entry { at, recorded_at, change }],
                    touches: Vec::new(),
                });
                return;
            }
            BodyRef::Touch { channel, direction, minutes, contact } => {
                let touch =
                    Touch { at, recorded_at, channel, direction, minutes, contact: contact.map(contact_key) };
                let deal = self.index[event.deal];
                insert_ordered(&mut self.deals[deal as usize].touches, at, touch, |t| t.at);
                return;
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
        let deal = *self.index.get(event.deal).expect("stored events follow their deal's opened");
        insert_ordered(&mut self.deals[deal as usize].entries, at, Entry { at, recorded_at, change }, |e| {
            e.at
        });
    }
}

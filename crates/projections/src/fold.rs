//! Folding one deal's history under a [`View`]: status, stage, amount, owner and stage visits.
//!
//! A view that drops events by `recorded_at` can leave a history no writer would have accepted
//! (a `won` known before the `requalified` that preceded it). The fold never fails on that: it
//! follows the lifecycle leniently ([`lifecycle::follow`]): a status change is taken as it comes,
//! a stage move on a closed deal only changes its stage, a requalification of an open deal
//! changes nothing.

pub use dealledger_events::lifecycle::Status;
use dealledger_events::lifecycle::{self, Lifecycle, Transition};
use dealledger_events::{Date, Direction, Timestamp};

use crate::timeline::{Change, DealHistory, Name, View};

/// A stay in one stage: from entering it (opened, stage_moved, requalified) to the next
/// stage_moved, won, lost or disqualified; `end` is None while the deal is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Visit {
    pub stage: Name,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

/// A deal as one view sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Folded {
    pub opened_at: Timestamp,
    pub opened_amount_minor: i64,
    pub status: Option<Status>,
    /// When the current status was set: opened, requalified, or the closing event.
    pub status_at: Timestamp,
    /// The current stage, or the stage the deal closed in.
    pub stage: Name,
    pub owner: Name,
    /// The latest amount.
    pub amount_minor: i64,
    /// For a won deal: the won event's amount, else the amount then.
    pub won_amount_minor: i64,
    pub close_date: Option<Date>,
    /// The last requalification, if any.
    pub requalified_at: Option<Timestamp>,
    pub visits: Vec<Visit>,
    /// The fields set (not cleared) in this view, sorted.
    pub fields_set: Vec<Name>,
    /// What the deal's touches add up to: only filled by [`Folded::fold_touches`].
    pub touches: TouchFacts,
    /// Scratch for counting distinct contacts; always left empty.
    contact_keys: Vec<u64>,
}

/// A deal's touches in one view, reduced to what reports ask of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TouchFacts {
    /// The latest touch, either direction.
    pub last_at: Option<Timestamp>,
    pub last_inbound_at: Option<Timestamp>,
    /// The first outbound touch in (`at`, seq) order.
    pub first_outbound_at: Option<Timestamp>,
    /// Distinct contacts over all touches.
    pub contacts: u32,
    /// Minutes (a touch's own, else its channel's default) of the touches with `at` up to and
    /// including `status_at`: for a closed deal, the effort it took until it closed.
    pub minutes_to_status: i64,
    /// The touches in the view: none means the figures built on touches have nothing under them.
    pub count: u32,
}

impl Folded {
    /// The status; only meaningful after a successful [`Folded::fold`].
    pub fn status(&self) -> Status {
        self.status.expect("folded deals have a status")
    }

    /// Folds `deal` under `view` into `self` (reusing its allocation). False when the view does
    /// not see the deal's `opened`: the deal does not exist for it.
    pub fn fold(&mut self, deal: &DealHistory, view: View) -> bool {
        self.visits.clear();
        self.fields_set.clear();
        self.touches = TouchFacts::default();
        self.status = None;
        self.requalified_at = None;
        for entry in deal.entries(view) {
            let at = entry.at;
            if let Some(step) = entry.change.lifecycle_step() {
                let state = self.status.map(|status| Lifecycle { status, stage: self.stage });
                if let Some(transition) = lifecycle::follow(state, step) {
                    self.transition(transition, entry.change, at);
                }
                continue;
            }
            if self.status.is_none() {
                continue;
            }
            match entry.change {
                Change::Amount { amount_minor } => self.amount_minor = amount_minor,
                Change::CloseDate { close_date } => self.close_date = Some(close_date),
                Change::Owner { owner } => self.owner = owner,
                Change::Field { field, set } => match (self.fields_set.binary_search(&field), set) {
                    (Err(i), true) => self.fields_set.insert(i, field),
                    (Ok(i), false) => {
                        self.fields_set.remove(i);
                    }
                    _ => {}
                },
                // Lifecycle steps were taken above.
                _ => {}
            }
        }
        self.status.is_some()
    }

    /// Fills [`Folded::touches`] from the deal's touches in `view`; call after a successful
    /// [`Folded::fold`] under the same view.
    pub fn fold_touches(&mut self, deal: &DealHistory, view: View) {
        let mut facts = TouchFacts::default();
        for touch in deal.touches_in(view) {
            facts.count = facts.count.saturating_add(1);
            let at = Some(touch.at);
            facts.last_at = facts.last_at.max(at);
            match touch.direction {
                Direction::Inbound => facts.last_inbound_at = facts.last_inbound_at.max(at),
                Direction::Outbound => facts.first_outbound_at = facts.first_outbound_at.or(at),
            }
            if let Some(contact) = touch.contact {
                self.contact_keys.push(contact);
            }
            if touch.at <= self.status_at {
                facts.minutes_to_status += touch.minutes_or_default();
            }
        }
        self.contact_keys.sort_unstable();
        self.contact_keys.dedup();
        facts.contacts = u32::try_from(self.contact_keys.len()).expect("fewer than 2^32 touches per deal");
        self.contact_keys.clear();
        self.touches = facts;
    }

    /// Whether the field is set in this view.
    pub fn field_is_set(&self, field: Name) -> bool {
        self.fields_set.binary_search(&field).is_ok()
    }

    /// A lifecycle transition, with what `change` adds to it (the opening figures, the won
    /// amount), and the visits it starts and ends.
    fn transition(&mut self, transition: Transition<Name>, change: Change, at: Timestamp) {
        match transition {
            Transition::Opened(stage) => {
                let (owner, amount_minor, close_date) = match change {
                    Change::Opened { owner, amount_minor, close_date, .. } => {
                        (owner, amount_minor, close_date)
                    }
                    _ => (self.owner, self.amount_minor, self.close_date),
                };
                self.opened_at = at;
                self.opened_amount_minor = amount_minor;
                self.owner = owner;
                self.amount_minor = amount_minor;
                self.won_amount_minor = 0;
                self.close_date = close_date;
                self.visits.push(Visit { stage, start: at, end: None });
            }
            Transition::Moved { to, stay } => {
                if stay {
                    self.end_visit(at);
                    self.visits.push(Visit { stage: to, start: at, end: None });
                }
            }
            Transition::Closed { status, was_open } => {
                if was_open {
                    self.end_visit(at);
                }
                if status == Status::Won {
                    let won = if let Change::Won { amount_minor } = change { amount_minor } else { None };
                    self.won_amount_minor = won.unwrap_or(self.amount_minor);
                }
            }
            Transition::Reopened(stage) => {
                self.requalified_at = Some(at);
                self.visits.push(Visit { stage, start: at, end: None });
            }
            Transition::Unchanged => return,
        }
        let mut state = self.status.map(|status| Lifecycle { status, stage: self.stage });
        lifecycle::apply(&mut state, transition);
        if let Some(life) = state {
            self.status = Some(life.status);
            self.stage = life.stage;
        }
        self.status_at = match transition {
            Transition::Moved { .. } => self.status_at,
            _ => at,
        };
    }

    fn end_visit(&mut self, at: Timestamp) {
        if let Some(visit) = self.visits.last_mut() {
            if visit.end.is_none() {
                visit.end = Some(at);
            }
        }
    }

    /// The open visit, if the deal is open.
    pub fn current_visit(&self) -> Option<&Visit> {
        self.visits.last().filter(|v| v.end.is_none())
    }
}

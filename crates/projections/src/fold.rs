//! Folding one deal's history under a [`View`]: status, stage, amount, owner and stage visits.
//!
//! A view that drops events by `recorded_at` can leave a history no writer would have accepted
//! (a `won` known before the `requalified` that preceded it). The fold never fails on that: a
//! status change is taken as it comes, and a stage move on a closed deal only changes its stage.

use dealledger_events::{Date, Direction, Timestamp};

use crate::timeline::{Change, DealHistory, Name, View};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Open,
    Won,
    Lost,
    Disqualified,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Won => "won",
            Status::Lost => "lost",
            Status::Disqualified => "disqualified",
        }
    }

    pub fn is_bad(self) -> bool {
        matches!(self, Status::Lost | Status::Disqualified)
    }
}

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
            match entry.change {
                Change::Opened { stage, owner, amount_minor, close_date } => {
                    self.opened_at = at;
                    self.opened_amount_minor = amount_minor;
                    self.status = Some(Status::Open);
                    self.status_at = at;
                    self.stage = stage;
                    self.owner = owner;
                    self.amount_minor = amount_minor;
                    self.won_amount_minor = 0;
                    self.close_date = close_date;
                    self.visits.push(Visit { stage, start: at, end: None });
                }
                _ if self.status.is_none() => {}
                Change::Moved { to } => {
                    if self.status == Some(Status::Open) {
                        self.end_visit(at);
                        self.visits.push(Visit { stage: to, start: at, end: None });
                    }
                    self.stage = to;
                }
                Change::Won { amount_minor } => {
                    self.close(Status::Won, at);
                    self.won_amount_minor = amount_minor.unwrap_or(self.amount_minor);
                }
                Change::Lost => self.close(Status::Lost, at),
                Change::Disqualified { .. } => self.close(Status::Disqualified, at),
                Change::Requalified { stage } => {
                    if self.status != Some(Status::Open) {
                        self.stage = stage.unwrap_or(self.stage);
                        self.status = Some(Status::Open);
                        self.status_at = at;
                        self.requalified_at = Some(at);
                        self.visits.push(Visit { stage: self.stage, start: at, end: None });
                    }
                }
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
            }
        }
        self.status.is_some()
    }

    /// Fills [`Folded::touches`] from the deal's touches in `view`; call after a successful
    /// [`Folded::fold`] under the same view.
    pub fn fold_touches(&mut self, deal: &DealHistory, view: View) {
        let mut facts = TouchFacts::default();
        for touch in deal.touches(view) {
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

    fn close(&mut self, status: Status, at: Timestamp) {
        if self.status == Some(Status::Open) {
            self.end_visit(at);
        }
        self.status = Some(status);
        self.status_at = at;
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

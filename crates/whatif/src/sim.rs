//! One deal under one policy: walk its history in the order the team learned it, and find the
//! first moment a rule's condition holds while the deal is open.
//!
//! By default the walk goes in business time: an event counts from its `at`, whenever it was
//! logged (what was true: a late-logged inbound touch still restarts the clock, and histories
//! backfilled from a CRM export years later replay as they happened). With `as_logged` it goes
//! in order of knowledge: an event counts from max(`at`, `recorded_at`), because a policy running
//! at the time could not act on what was not logged yet (a late-logged inbound touch then does
//! not save a deal already cut); clocks still restart at the event's `at`, and a cut never lands
//! before the moment the state that triggers it was known. When a deadline and an event fall on
//! the same instant the cut comes first: a deal that really closed at exactly the cut moment
//! counts as cut.

use crate::history::StageHistory;
use dealledger_events::lifecycle::{self, Lifecycle, Status, Transition};
use dealledger_events::time::MICROS_PER_DAY;
use dealledger_events::{Date, Direction, Timestamp};
use dealledger_projections::{Change, DealHistory, Name};
use dealledger_reports::flags::FlagRule;

/// A policy in the units of the walk.
#[derive(Clone, Debug, Default)]
pub struct Compiled {
    pub gone_dark_us: Option<i64>,
    pub no_activity_us: Option<i64>,
    pub stalled_factor: Option<f64>,
    pub missing_field: Vec<MissingRule>,
    pub unanswered_touches: Option<u32>,
    pub past_close_date_us: Option<i64>,
    /// Walk in order of knowledge (max of `at` and `recorded_at`) instead of business time.
    pub as_logged: bool,
}

/// A `missing_field` rule in the units of the walk.
#[derive(Clone, Debug)]
pub struct MissingRule {
    /// The field, or None if no deal ever set it.
    pub field: Option<Name>,
    /// The pipeline index of `by_stage`: from it on, the field is expected.
    pub by_stage_index: usize,
    pub grace_us: i64,
    /// `missing_field:FIELD`, the cut's rule.
    pub label: String,
}

pub fn days_to_us(days: f64) -> i64 {
    (days * MICROS_PER_DAY as f64).round() as i64
}

/// Which rule cut, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub at: Timestamp,
    pub rule: String,
}

#[derive(Clone, Copy)]
enum Item {
    Entry(usize),
    Touch(usize),
}

/// One entry or touch of the deal, where the walk meets it.
#[derive(Clone, Copy)]
struct Step {
    /// When the walk counts it: `at`, or with `as_logged` the later of `at` and `recorded_at`.
    known: Timestamp,
    at: Timestamp,
    item: Item,
}

impl Step {
    /// The walk's order: by `known`, then `at`, entries before touches, then their own order.
    fn order(&self) -> (Timestamp, Timestamp, u8, usize) {
        match self.item {
            Item::Entry(i) => (self.known, self.at, 0, i),
            Item::Touch(i) => (self.known, self.at, 1, i),
        }
    }
}

/// Reused buffers.
#[derive(Default)]
pub struct Scratch {
    steps: Vec<Step>,
    fields: Vec<Name>,
    since: Vec<Option<Timestamp>>,
}

struct State {
    life: Lifecycle<Name>,
    stage_index: Option<usize>,
    visit_start: Timestamp,
    reset_inbound: Timestamp,
    reset_any: Timestamp,
    streak: u32,
    close_date: Option<Date>,
}

/// The numeric rules: the ones a number sets (`--rule gone_dark=14`) and a sweep varies. Every
/// name of a rule in the code comes from here.
///
/// Swept over many values, a rule is not walked once per value: one walk records the rule's
/// windows (a deadline anchor holding from `start` to `end`), and each value's cut is read off
/// them with the walk's own formulas, so a sweep row equals a single run exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swept {
    GoneDark,
    NoActivity,
    Stalled,
    PastCloseDate,
    UnansweredTouches,
}

/// The rank of `missing_field` rules in a tie: after the deadlines of [`Swept`]'s first three.
const MISSING_FIELD_TIE_RANK: u8 = 3;

impl Swept {
    /// Every numeric rule, in the order messages list them.
    pub const ALL: [Swept; 5] =
        [Swept::GoneDark, Swept::NoActivity, Swept::Stalled, Swept::UnansweredTouches, Swept::PastCloseDate];

    pub fn parse(rule: &str) -> Option<Swept> {
        Swept::ALL.into_iter().find(|swept| swept.name() == rule)
    }

    /// The rule's name; the four that are also flags carry the flag's name.
    pub fn name(self) -> &'static str {
        match self {
            Swept::GoneDark => FlagRule::GoneDark.name(),
            Swept::NoActivity => FlagRule::NoActivity.name(),
            Swept::Stalled => FlagRule::Stalled.name(),
            Swept::PastCloseDate => FlagRule::PastCloseDate.name(),
            Swept::UnansweredTouches => "unanswered_touches",
        }
    }

    /// Whether the rule counts touches (its clock restarts at them, or it counts them).
    pub fn counts_touches(self) -> bool {
        matches!(self, Swept::GoneDark | Swept::NoActivity | Swept::UnansweredTouches)
    }

    /// The names of every numeric rule, for messages.
    pub fn names() -> String {
        Swept::ALL.map(Swept::name).join(", ")
    }

    /// The order in which rules win a tie (the walk checks deadlines in this order, and only
    /// then counts an unanswered touch).
    fn tie_rank(self) -> u8 {
        match self {
            Swept::GoneDark => 0,
            Swept::NoActivity => 1,
            Swept::Stalled => 2,
            Swept::PastCloseDate => 4,
            Swept::UnansweredTouches => 5,
        }
    }
}

/// The tie rank of a cut's rule, by its name (`missing_field:FIELD` for the others).
pub fn tie_rank(rule: &str) -> u8 {
    Swept::parse(rule).map_or(MISSING_FIELD_TIE_RANK, Swept::tie_rank)
}

/// What the swept rule's deadline is counted from: `anchor` (µs) plus the value in days, or for
/// `stalled` plus the value times `p90` (µs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    anchor: i64,
    p90: i64,
}

/// A span in which the swept rule's deadline is anchored at one `key`: a value whose deadline
/// falls by `end` cuts at the later of the deadline and `start`.
#[derive(Clone, Copy, Debug)]
struct Window {
    key: Key,
    start: Timestamp,
    end: Timestamp,
}

/// For `unanswered_touches`: an outbound touch while open, and the streak it makes.
#[derive(Clone, Copy, Debug)]
struct Streak {
    at: Timestamp,
    outbound_in_a_row: u32,
}

/// One deal's windows for the swept rule.
#[derive(Debug, Default)]
pub struct Windows {
    deadlines: Vec<Window>,
    streaks: Vec<Streak>,
    /// The window open now: its key and since when.
    current: Option<(Key, Timestamp)>,
}

impl Windows {
    fn clear(&mut self) {
        self.deadlines.clear();
        self.streaks.clear();
        self.current = None;
    }

    fn observe(&mut self, key: Option<Key>, now: Timestamp) {
        if self.current.map(|(current, _)| current) == key {
            return;
        }
        self.close(now);
        self.current = key.map(|k| (k, now));
    }

    fn close(&mut self, end: Timestamp) {
        if let Some((key, start)) = self.current.take() {
            self.deadlines.push(Window { key, start, end });
        }
    }

    /// The swept rule's cut at `value`, if any.
    pub fn cut(&self, swept: Swept, value: f64) -> Option<Timestamp> {
        if swept == Swept::UnansweredTouches {
            let n = value as u32;
            return self.streaks.iter().find(|s| s.outbound_in_a_row >= n).map(|s| s.at);
        }
        let days = days_to_us(value);
        self.deadlines.iter().find_map(|&Window { key, start, end }| {
            let d = match swept {
                Swept::Stalled => key.anchor.saturating_add((value * key.p90 as f64) as i64),
                _ => key.anchor.saturating_add(days),
            };
            (d <= end.0).then(|| Timestamp(d).max(start))
        })
    }
}

/// What every deal's walk shares: the stages' p90 history, each interned name's pipeline index,
/// and how far the history goes.
pub struct World<'a> {
    pub history: &'a StageHistory,
    pub stage_index: &'a [Option<usize>],
    pub as_of: Timestamp,
}

/// The cut of `deal` under `policy`, seeing events with `at <= as_of`.
pub fn simulate(deal: &DealHistory, policy: &Compiled, world: &World, scratch: &mut Scratch) -> Option<Cut> {
    walk(deal, policy, world, scratch, None)
}

/// The cut under `policy` (which must not hold `swept`), and `swept`'s windows up to it.
pub fn simulate_swept(
    deal: &DealHistory,
    policy: &Compiled,
    swept: Swept,
    world: &World,
    scratch: &mut Scratch,
    windows: &mut Windows,
) -> Option<Cut> {
    windows.clear();
    walk(deal, policy, world, scratch, Some((swept, windows)))
}

fn walk(
    deal: &DealHistory,
    policy: &Compiled,
    world: &World,
    scratch: &mut Scratch,
    tracker: Option<(Swept, &mut Windows)>,
) -> Option<Cut> {
    with_walk(deal, policy, world, scratch, tracker, |walk, steps| walk.run(steps))
}

/// The deal's lifecycle at `world.as_of` as the walk follows it (no rule cuts it): what the
/// property tests hold against admission and the projection fold.
pub fn lifecycle_at(
    deal: &DealHistory,
    as_logged: bool,
    world: &World,
    scratch: &mut Scratch,
) -> Option<Lifecycle<Name>> {
    let policy = Compiled { as_logged, ..Compiled::default() };
    with_walk(deal, &policy, world, scratch, None, |walk, steps| {
        walk.run(steps);
        walk.state.as_ref().map(|s| s.life)
    })
}

/// Orders the deal's steps for the walk, and runs `f` on a fresh walk over them.
fn with_walk<R>(
    deal: &DealHistory,
    policy: &Compiled,
    world: &World,
    scratch: &mut Scratch,
    tracker: Option<(Swept, &mut Windows)>,
    f: impl FnOnce(&mut Walk<'_, '_>, &[Step]) -> R,
) -> R {
    let Scratch { steps, fields, since } = scratch;
    steps.clear();
    fields.clear();
    since.clear();
    since.resize(policy.missing_field.len(), None);
    let as_of = world.as_of;
    let known =
        |at: Timestamp, recorded_at: Timestamp| if policy.as_logged { at.max(recorded_at) } else { at };
    for (i, e) in deal.entries.iter().enumerate().take_while(|(_, e)| e.at <= as_of) {
        steps.push(Step { known: known(e.at, e.recorded_at), at: e.at, item: Item::Entry(i) });
    }
    for (i, t) in deal.touches().iter().enumerate().take_while(|(_, t)| t.at <= as_of) {
        steps.push(Step { known: known(t.at, t.recorded_at), at: t.at, item: Item::Touch(i) });
    }
    steps.sort_unstable_by_key(Step::order);
    let mut walk = Walk { deal, policy, world, fields, since, tracker, state: None, now: Timestamp::MIN };
    f(&mut walk, steps)
}

/// One deal's walk: its state, the clocks of the missing-field rules, and the swept rule's
/// windows when sweeping.
struct Walk<'a, 'w> {
    deal: &'a DealHistory<'a>,
    policy: &'a Compiled,
    world: &'a World<'a>,
    /// The fields set so far.
    fields: &'a mut Vec<Name>,
    /// Per missing-field rule, since when the field has been expected (None: not yet).
    since: &'a mut Vec<Option<Timestamp>>,
    tracker: Option<(Swept, &'w mut Windows)>,
    /// None until the deal is opened.
    state: Option<State>,
    /// The moment of the last step taken.
    now: Timestamp,
}

impl Walk<'_, '_> {
    fn run(&mut self, steps: &[Step]) -> Option<Cut> {
        let as_of = self.world.as_of;
        for step in steps {
            if step.known > as_of {
                break;
            }
            // A deadline due by the time this step is known cuts before it.
            if let Some((d, rule)) = self.state.as_ref().and_then(|s| self.deadline(s)) {
                if d <= step.known {
                    self.close_windows(step.known);
                    return Some(Cut { at: d.max(self.now), rule });
                }
            }
            self.now = step.known;
            match step.item {
                Item::Entry(i) => self.entry(i, step.at),
                Item::Touch(i) => {
                    if let Some(cut) = self.touch(i, step.at) {
                        return Some(cut);
                    }
                }
            }
            self.observe_windows();
        }
        self.close_windows(as_of);
        let (d, rule) = self.deadline(self.state.as_ref()?)?;
        (d <= as_of).then(|| Cut { at: d.max(self.now), rule })
    }

    fn index_of(&self, name: Name) -> Option<usize> {
        self.world.stage_index.get(name as usize).copied().flatten()
    }

    /// The earliest deadline of the rules, while the deal is open.
    fn deadline(&self, state: &State) -> Option<(Timestamp, String)> {
        if !state.life.is_open() {
            return None;
        }
        let policy = self.policy;
        let mut best: Option<(Timestamp, String)> = None;
        let mut consider = |at: i64, rule: &str| {
            if best.as_ref().is_none_or(|(b, _)| at < b.0) {
                best = Some((Timestamp(at), rule.to_string()));
            }
        };
        if let Some(d) = policy.gone_dark_us {
            consider(state.reset_inbound.0.saturating_add(d), Swept::GoneDark.name());
        }
        if let Some(d) = policy.no_activity_us {
            consider(state.reset_any.0.saturating_add(d), Swept::NoActivity.name());
        }
        if let Some(f) = policy.stalled_factor {
            if let Some(p90) = self.world.history.p90_before(state.life.stage, state.visit_start) {
                consider(state.visit_start.0.saturating_add((f * p90 as f64) as i64), Swept::Stalled.name());
            }
        }
        for (rule, since) in policy.missing_field.iter().zip(self.since.iter()) {
            let unset = rule.field.is_none_or(|field| !self.fields.contains(&field));
            if let (Some(since), true) = (since, unset) {
                consider(since.0.saturating_add(rule.grace_us), &rule.label);
            }
        }
        if let (Some(d), Some(close)) = (policy.past_close_date_us, state.close_date) {
            consider(
                close.start().0.saturating_add(MICROS_PER_DAY).saturating_add(d),
                Swept::PastCloseDate.name(),
            );
        }
        best
    }

    /// An entry of the deal's history, at `at`.
    fn entry(&mut self, i: usize, at: Timestamp) {
        let change = self.deal.entries[i].change;
        let Some(step) = change.lifecycle_step() else {
            self.fact(change);
            return;
        };
        let Some(transition) = lifecycle::follow(self.state.as_ref().map(|s| s.life), step) else { return };
        if let Transition::Opened(stage) = transition {
            let close_date = if let Change::Opened { close_date, .. } = change { close_date } else { None };
            let stage_index = self.index_of(stage);
            self.state = Some(State {
                life: Lifecycle { status: Status::Open, stage },
                stage_index,
                visit_start: at,
                reset_inbound: at,
                reset_any: at,
                streak: 0,
                close_date,
            });
            enter(self.policy, self.since, stage_index, at, true);
            return;
        }
        let stage_index = |name: Name| self.world.stage_index.get(name as usize).copied().flatten();
        let Some(s) = self.state.as_mut() else { return };
        s.life.apply(transition);
        s.stage_index = stage_index(s.life.stage);
        match transition {
            Transition::Moved { .. } => {
                s.visit_start = at;
                enter(self.policy, self.since, s.stage_index, at, false);
            }
            // A requalification restarts the clocks, also when the walk has the deal open
            // already (with `as_logged`, when the close before it was logged later).
            Transition::Reopened(_) | Transition::Unchanged => {
                s.visit_start = at;
                s.reset_inbound = s.reset_inbound.max(at);
                s.reset_any = s.reset_any.max(at);
                s.streak = 0;
                enter(self.policy, self.since, s.stage_index, at, true);
            }
            Transition::Opened(_) | Transition::Closed { .. } => {}
        }
    }

    /// An entry that is not a lifecycle step: a close date or a field.
    fn fact(&mut self, change: Change) {
        let Some(s) = self.state.as_mut() else { return };
        match change {
            Change::CloseDate { close_date } => s.close_date = Some(close_date),
            Change::Field { field, set } => {
                let present = self.fields.iter().position(|f| *f == field);
                match (set, present) {
                    (true, None) => self.fields.push(field),
                    (false, Some(p)) => {
                        self.fields.swap_remove(p);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// A touch of the deal, at `at`: restarts clocks, counts a streak of outbound touches, and
    /// cuts when the streak reaches `unanswered_touches`.
    fn touch(&mut self, i: usize, at: Timestamp) -> Option<Cut> {
        let now = self.now;
        let s = self.state.as_mut()?;
        s.reset_any = s.reset_any.max(at);
        match self.deal.touches()[i].direction {
            Direction::Inbound => {
                s.reset_inbound = s.reset_inbound.max(at);
                s.streak = 0;
            }
            Direction::Outbound => {
                s.streak += 1;
                if let Some((Swept::UnansweredTouches, windows)) = self.tracker.as_mut() {
                    if s.life.is_open() {
                        windows.streaks.push(Streak { at: now, outbound_in_a_row: s.streak });
                    }
                }
                if s.life.is_open() && self.policy.unanswered_touches.is_some_and(|n| s.streak >= n) {
                    self.close_windows(now);
                    return Some(Cut { at: now, rule: Swept::UnansweredTouches.name().into() });
                }
            }
        }
        None
    }

    /// The swept rule's deadline anchor in the current state (None: closed, or the rule cannot
    /// fire), recorded as a window when it changes.
    fn observe_windows(&mut self) {
        let Some((swept, windows)) = self.tracker.as_mut() else { return };
        let Some(s) = &self.state else { return };
        let key = if !s.life.is_open() {
            None
        } else {
            match swept {
                Swept::GoneDark => Some(Key { anchor: s.reset_inbound.0, p90: 0 }),
                Swept::NoActivity => Some(Key { anchor: s.reset_any.0, p90: 0 }),
                Swept::PastCloseDate => {
                    s.close_date.map(|c| Key { anchor: c.start().0.saturating_add(MICROS_PER_DAY), p90: 0 })
                }
                Swept::Stalled => self
                    .world
                    .history
                    .p90_before(s.life.stage, s.visit_start)
                    .map(|p90| Key { anchor: s.visit_start.0, p90 }),
                Swept::UnansweredTouches => None,
            }
        };
        windows.observe(key, self.now);
    }

    fn close_windows(&mut self, end: Timestamp) {
        if let Some((_, windows)) = self.tracker.as_mut() {
            windows.close(end);
        }
    }
}

/// Where the missing-field clocks stand after entering a stage at `at`: a rule's clock starts
/// when the deal reaches its stage (or a later one), and `restart` (opened, requalified) starts
/// it afresh.
fn enter(
    policy: &Compiled,
    since: &mut [Option<Timestamp>],
    stage_index: Option<usize>,
    at: Timestamp,
    restart: bool,
) {
    for (rule, since) in policy.missing_field.iter().zip(since.iter_mut()) {
        let past = stage_index.is_some_and(|i| i >= rule.by_stage_index);
        *since = match (past, *since) {
            (false, _) => None,
            (true, Some(s)) if !restart => Some(s),
            (true, _) => Some(at),
        };
    }
}

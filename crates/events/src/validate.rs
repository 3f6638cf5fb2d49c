//! The validity rules of the contract, checked per deal in business-time order.
//!
//! [`Deals`] holds, for every deal, just what the rules need: its currency, when it was opened,
//! its version and its lifecycle steps (opened, stage moves, outcomes, requalifications) ordered
//! by (at, seq). A new event is inserted at its place in that order and the whole lifecycle is
//! folded again, so a backdated event is accepted exactly when the history stays valid with it.
//! Touches and field changes only need to come after `opened`, so they are counted, not kept.
//!
//! Deciding is separate from storing: `admit` mutates only this in-memory state, and every
//! mutation is undoable back to a [`Savepoint`], which is how a batch stays all or nothing.

use crate::event::{Amount, Body, DealId, Event, Submission};
use crate::event_ref::{BodyRef, EventRef};
use crate::lifecycle::{self, Lifecycle, Refusal, Status};
use crate::money::Currency;
use crate::pipeline::Pipeline;
use crate::rejection::{Rejection, Rule};
use crate::time::Timestamp;
use std::collections::HashMap;

/// Interned stage name (index into [`Deals::stage_names`]).
/// u32, not u16: a long history under changing pipelines could name more than 65,536 stages,
/// and 2^32 names cannot fit in memory first. (A Step is 24 bytes either way.)
type StageId = u32;

type StepKind = lifecycle::Step<StageId>;

#[derive(Clone, Copy, Debug)]
struct Step {
    at: Timestamp,
    seq: u64,
    kind: StepKind,
}

/// What the rules know of one deal.
#[derive(Clone, Debug)]
pub struct DealLine {
    pub currency: Currency,
    pub opened_at: Timestamp,
    /// Events stored for the deal: the version the next writer must name as `expected_version`.
    pub version: u32,
    steps: Vec<Step>,
}

/// A point to roll the state back to.
#[derive(Clone, Copy, Debug)]
pub struct Savepoint(usize);

/// How to undo one admitted event. Entries are undone in reverse order, so a deal created by
/// `Created` is always the last line, and a step's position is still right when it is removed.
#[derive(Clone, Copy, Debug)]
enum Undo {
    /// A new deal: drop the last line.
    Created,
    /// A touch or field change: one version back.
    Counted(u32),
    /// A lifecycle step inserted at this position: remove it and one version back.
    Stepped(u32, u32),
}

/// Every deal's line, plus an undo journal since the last [`Deals::commit`].
#[derive(Default)]
pub struct Deals {
    lines: Vec<DealLine>,
    /// Deal id to its index in `lines`. ahash: fast, and keyed at random per process, so ids
    /// chosen by an attacker cannot degrade it (SipHash cost a twentieth of ingest).
    index: HashMap<DealId, u32, ahash::RandomState>,
    /// Ids by index, for undoing `Created`.
    ids: Vec<DealId>,
    stage_names: Vec<String>,
    stage_ids: HashMap<String, StageId, ahash::RandomState>,
    undo: Vec<Undo>,
}

impl Deals {
    /// The line at position `i`. Positions come only from `index` (filled by `create`, which
    /// pushes the line), and `rollback` removes a line only from the end, with its index entry.
    #[allow(
        clippy::indexing_slicing,
        reason = "positions come from self.index, kept in step with self.lines"
    )]
    fn line(&self, i: u32) -> &DealLine {
        &self.lines[i as usize]
    }

    #[allow(
        clippy::indexing_slicing,
        reason = "positions come from self.index, kept in step with self.lines"
    )]
    fn line_mut(&mut self, i: u32) -> &mut DealLine {
        &mut self.lines[i as usize]
    }

    /// A stage's name; ids are handed out only by `intern`, which pushes the name first.
    #[allow(clippy::indexing_slicing, reason = "stage ids come from self.intern, one per name")]
    fn stage_name(&self, id: StageId) -> &str {
        self.stage_names[id as usize].as_str()
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn get(&self, deal: &DealId) -> Option<&DealLine> {
        self.index.get(deal).map(|i| self.line(*i))
    }

    /// The deal's currency, once opened.
    pub fn currency(&self, deal: &DealId) -> Option<Currency> {
        self.get(deal).map(|line| line.currency)
    }

    /// Where the deal stands after all its steps; None if it is not opened.
    pub fn lifecycle(&self, deal: &str) -> Option<Lifecycle<&str>> {
        let line = self.line(*self.index.get(deal)?);
        let mut state = None;
        for step in &line.steps {
            // Stored steps are valid in order, and on valid steps `follow` is `decide`.
            if let Some(transition) = lifecycle::follow(state, step.kind) {
                lifecycle::apply(&mut state, transition);
            }
        }
        state.map(|life| Lifecycle { status: life.status, stage: self.stage_name(life.stage) })
    }

    /// `Some(Some(stage))` open in that stage, `Some(None)` won, lost or disqualified, `None` not
    /// opened. For mappers (webhooks) that must not send a stage move to the stage a deal is
    /// already in.
    pub fn stage_now(&self, deal: &str) -> Option<Option<&str>> {
        self.lifecycle(deal).map(|life| life.is_open().then_some(life.stage))
    }

    pub fn savepoint(&self) -> Savepoint {
        Savepoint(self.undo.len())
    }

    pub fn rollback(&mut self, savepoint: Savepoint) {
        while self.undo.len() > savepoint.0 {
            match self.undo.pop().expect("len checked") {
                Undo::Created => {
                    self.lines.pop().expect("a created line is the last one");
                    let id = self.ids.pop().expect("one id per line");
                    self.index.remove(&id);
                }
                Undo::Counted(i) => self.line_mut(i).version -= 1,
                Undo::Stepped(i, position) => {
                    let line = self.line_mut(i);
                    line.steps.remove(position as usize);
                    line.version -= 1;
                }
            }
        }
    }

    fn create(&mut self, deal: &DealId, line: DealLine) -> u32 {
        let i = u32::try_from(self.lines.len()).expect("fewer than 2^32 deals");
        self.lines.push(line);
        self.ids.push(deal.clone());
        self.index.insert(deal.clone(), i);
        i
    }

    /// Forgets the undo journal: what was admitted is now stored.
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    fn intern(&mut self, stage: &str) -> StageId {
        if let Some(id) = self.stage_ids.get(stage) {
            return *id;
        }
        let id = StageId::try_from(self.stage_names.len())
            .expect("fewer than 2^32 distinct stage names fit in memory");
        self.stage_names.push(stage.to_string());
        self.stage_ids.insert(stage.to_string(), id);
        id
    }

    /// Applies an event already in the log (rebuilding state on open). Stored events were valid
    /// when appended, so nothing is checked beyond what keeps the state consistent; a stored
    /// event that breaks that is refused by the rule it breaks (the log calls it corrupt).
    pub fn replay(&mut self, event: &EventRef<'_>) -> Result<(), Rejection> {
        let kind = match event.body {
            BodyRef::Opened { stage: Some(stage), .. } => Some(StepKind::Opened(self.intern(stage))),
            BodyRef::Opened { stage: None, .. } => {
                return Err(Rejection::field(
                    Rule::MissingField,
                    "stage",
                    "a stored `opened` without its stage",
                ))
            }
            BodyRef::StageMoved { to } => Some(StepKind::Moved(self.intern(to))),
            BodyRef::Won { .. } => Some(StepKind::Won),
            BodyRef::Lost { .. } => Some(StepKind::Lost),
            BodyRef::Disqualified { .. } => Some(StepKind::Disqualified),
            BodyRef::Requalified { stage, .. } => Some(StepKind::Requalified(stage.map(|s| self.intern(s)))),
            _ => None,
        };
        let i = match (event.body, self.index.get(event.deal)) {
            (BodyRef::Opened { .. }, Some(_)) => {
                let why = format!("deal `{}` is opened a second time", event.deal);
                return Err(Rejection::new(Rule::AlreadyOpened, why));
            }
            (BodyRef::Opened { currency, .. }, None) => {
                let line = DealLine { currency, opened_at: event.at, version: 0, steps: Vec::new() };
                let deal = DealId::parse(event.deal)
                    .map_err(|why| Rejection::field(Rule::InvalidValue, "deal", format!("deal id: {why}")))?;
                self.create(&deal, line)
            }
            (_, Some(&i)) => i,
            (_, None) => {
                let why = format!("deal `{}` has an event before its `opened`", event.deal);
                return Err(Rejection::new(Rule::NotOpened, why));
            }
        };
        let line = self.line_mut(i);
        if line.version.checked_add(1) != Some(event.version) {
            let why = format!(
                "deal `{}` version {} where {} was due",
                event.deal,
                event.version,
                u64::from(line.version) + 1
            );
            return Err(Rejection::new(Rule::VersionConflict, why));
        }
        line.version = event.version;
        if let Some(kind) = kind {
            let position = line.steps.partition_point(|step| step.at <= event.at);
            line.steps.insert(position, Step { at: event.at, seq: event.seq, kind });
        }
        Ok(())
    }

    fn step_kind(&mut self, body: &Body) -> Option<StepKind> {
        Some(match body {
            Body::Opened { stage, .. } => {
                StepKind::Opened(self.intern(stage.as_deref().expect("stage resolved before storing")))
            }
            Body::StageMoved { to } => StepKind::Moved(self.intern(to)),
            Body::Won { .. } => StepKind::Won,
            Body::Lost { .. } => StepKind::Lost,
            Body::Disqualified { .. } => StepKind::Disqualified,
            Body::Requalified { stage, .. } => {
                StepKind::Requalified(stage.as_deref().map(|s| self.intern(s)))
            }
            _ => return None,
        })
    }

    /// Checks a new event against its deal's history and, if it is valid, records it as event
    /// `seq` and resolves its defaults (opened stage, amounts in minor units, recorded_at).
    /// Returns the deal's version after it. On error nothing changed.
    pub fn admit(
        &mut self,
        submission: &mut Submission,
        seq: u64,
        now: Timestamp,
        pipeline: &Pipeline,
    ) -> Result<u32, Rejection> {
        let event = &mut submission.event;
        let existing = self.index.get(&event.deal).copied();
        let current_version = existing.map_or(0, |i| self.line(i).version);
        if let Some(expected) = submission.expected_version {
            if expected != current_version {
                return Err(Rejection::field(
                    Rule::VersionConflict,
                    "expected_version",
                    format!("deal `{}` is at version {current_version}, not {expected}", event.deal),
                ));
            }
        }
        self.resolve(event, existing.map(|i| self.line(i).currency), pipeline)?;
        if event.recorded_at.is_none() {
            event.recorded_at = Some(now);
        }
        let i = match (&event.body, existing) {
            (Body::Opened { .. }, Some(i)) => {
                return Err(Rejection::new(
                    Rule::AlreadyOpened,
                    format!("deal `{}` was already opened at {}", event.deal, self.line(i).opened_at),
                ));
            }
            (Body::Opened { currency, stage, .. }, None) => {
                let stage = self.intern(stage.as_deref().expect("resolved"));
                let line = DealLine {
                    currency: *currency,
                    opened_at: event.at,
                    version: 1,
                    steps: vec![Step { at: event.at, seq, kind: StepKind::Opened(stage) }],
                };
                self.create(&event.deal, line);
                self.undo.push(Undo::Created);
                return Ok(1);
            }
            (_, None) => {
                return Err(Rejection::new(
                    Rule::NotOpened,
                    format!("deal `{}` has no `opened` event; open it first", event.deal),
                ));
            }
            (_, Some(i)) => i,
        };
        let opened_at = self.line(i).opened_at;
        if event.at < opened_at {
            return Err(Rejection::field(
                Rule::BeforeOpened,
                "at",
                format!("{} is before deal `{}` was opened ({opened_at})", event.at, event.deal),
            ));
        }
        let Some(kind) = self.step_kind(&event.body) else {
            // Touches and field changes: valid at any time after opened.
            self.line_mut(i).version += 1;
            self.undo.push(Undo::Counted(i));
            return Ok(self.line(i).version);
        };
        let line = self.line_mut(i);
        let position = line.steps.partition_point(|step| step.at <= event.at);
        line.steps.insert(position, Step { at: event.at, seq, kind });
        if let Err(rejection) = self.check_steps(&self.line(i).steps, position, &event.deal) {
            self.line_mut(i).steps.remove(position);
            return Err(rejection);
        }
        let line = self.line_mut(i);
        line.version += 1;
        let version = line.version;
        self.undo.push(Undo::Stepped(i, position as u32));
        Ok(version)
    }

    /// Stage names known, amounts in the deal's currency, defaults filled in.
    fn resolve(
        &self,
        event: &mut Event,
        currency: Option<Currency>,
        pipeline: &Pipeline,
    ) -> Result<(), Rejection> {
        let known = |stage: &str, field: &'static str| -> Result<(), Rejection> {
            if pipeline.index(stage).is_none() {
                return Err(Rejection::field(
                    Rule::UnknownStage,
                    field,
                    format!("`{stage}` is not a stage of the pipeline ({})", pipeline.names()),
                ));
            }
            Ok(())
        };
        let resolve_amount = |amount: &mut Amount| -> Result<(), Rejection> {
            // Without an opened deal there is no currency; the NotOpened rule reports that.
            if let Some(currency) = currency {
                amount
                    .resolve(currency)
                    .map_err(|why| Rejection::field(Rule::InvalidValue, "amount", why.to_string()))?;
            }
            Ok(())
        };
        match &mut event.body {
            Body::Opened { stage, .. } => match stage {
                Some(stage) => known(stage, "stage")?,
                None => *stage = Some(pipeline.first().to_string()),
            },
            Body::StageMoved { to } => known(to, "to")?,
            Body::Requalified { stage: Some(stage), .. } => known(stage, "stage")?,
            Body::AmountChanged { amount } => resolve_amount(amount)?,
            Body::Won { amount: Some(amount) } => resolve_amount(amount)?,
            _ => {}
        }
        Ok(())
    }

    /// Folds the lifecycle; `new` is the index of the step just inserted.
    fn check_steps(&self, steps: &[Step], new: usize, deal: &DealId) -> Result<(), Rejection> {
        let mut state: Option<Lifecycle<StageId>> = None;
        for (i, step) in steps.iter().enumerate() {
            match lifecycle::decide(state, step.kind) {
                Ok(transition) => lifecycle::apply(&mut state, transition),
                Err(refusal) if i == new => return Err(self.rejection(refusal, step.kind)),
                Err(refusal) => {
                    let rejection = self.rejection(refusal, step.kind);
                    let Some(inserted) = steps.get(new) else { return Err(rejection) };
                    return Err(Rejection::new(
                        Rule::BreaksLaterEvent,
                        format!(
                            "an event at {} would make deal `{}`'s later `{}` at {} (seq {}) invalid: {}",
                            inserted.at,
                            deal,
                            step.kind.name(),
                            step.at,
                            step.seq,
                            rejection.detail
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The refusal in words, with stage names.
    fn rejection(&self, refusal: Refusal<StageId>, kind: StepKind) -> Rejection {
        let describe = |state: Lifecycle<StageId>| match state.status {
            Status::Open => format!("open in `{}`", self.stage_name(state.stage)),
            closed => closed.as_str().to_string(),
        };
        let rule = refusal.rule();
        match refusal {
            Refusal::NotOpened => Rejection::new(rule, "the deal is not opened yet"),
            Refusal::AlreadyOpened => Rejection::new(rule, "the deal is already opened"),
            Refusal::SameStage(to) => {
                Rejection::field(rule, "to", format!("the deal is already in `{}`", self.stage_name(to)))
            }
            Refusal::NotOpen(state) => Rejection::new(
                rule,
                format!("`{}` needs an open deal; the deal is {} then", kind.name(), describe(state)),
            ),
            Refusal::NotClosed(state) => Rejection::new(
                rule,
                format!(
                    "`requalified` needs a lost or disqualified deal; the deal is {} then",
                    describe(state)
                ),
            ),
        }
    }
}

/// The rules that need the ledger's clock, checked by the ledger before [`Deals::admit`] (the
/// history rules are pure; tests build histories with no clock): nothing dated or recorded more
/// than `[ingest] max_future` after `now` (it would vanish from every report "as of now"), and
/// no `recorded_at` that far before `at` (a source cannot record a fact before it happens). The
/// tolerance allows for clocks that disagree. A missing `recorded_at` counts as `now`.
pub fn check_clock(event: &Event, now: Timestamp, pipeline: &Pipeline) -> Result<(), Rejection> {
    let skew_micros = pipeline.max_future_micros();
    let latest = Timestamp(now.0.saturating_add(skew_micros));
    if event.at > latest {
        return Err(Rejection::field(
            Rule::InFuture,
            "at",
            format!("{} is after the ledger's clock ({now}) by more than [ingest] max_future", event.at),
        ));
    }
    let recorded_at = event.recorded_at.unwrap_or(now);
    if recorded_at > latest {
        return Err(Rejection::field(
            Rule::InFuture,
            "recorded_at",
            format!("{recorded_at} is after the ledger's clock ({now}) by more than [ingest] max_future"),
        ));
    }
    if recorded_at.0 < event.at.0.saturating_sub(skew_micros) {
        return Err(Rejection::field(
            Rule::RecordedBeforeAt,
            "recorded_at",
            format!("{recorded_at} is before the event's at ({}) by more than [ingest] max_future", event.at),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_line;

    /// Given these lines (each must be admitted), when `line` arrives, then `expected`
    /// (`Ok(version)` or the rejection's text).
    fn check(given: &[&str], line: &str, expected: Result<u32, &str>) {
        let pipeline = Pipeline::default();
        let mut deals = Deals::default();
        let now = Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        for (i, given) in given.iter().enumerate() {
            let mut s = parse_line(given).unwrap();
            deals
                .admit(&mut s, i as u64 + 1, now, &pipeline)
                .unwrap_or_else(|e| panic!("given {given}: {e}"));
        }
        deals.commit();
        type Snapshot = Vec<(DealId, u32, Vec<(Timestamp, u64)>)>;
        let snapshot = |deals: &Deals| -> Snapshot {
            let steps = |l: &DealLine| l.steps.iter().map(|s| (s.at, s.seq)).collect();
            let lines = deals.ids.iter().zip(&deals.lines);
            lines.map(|(d, l)| (d.clone(), l.version, steps(l))).collect()
        };
        let before = snapshot(&deals);
        let mut s = parse_line(line).unwrap();
        let got = deals.admit(&mut s, given.len() as u64 + 1, now, &pipeline).map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_string));
        if got.is_err() {
            assert_eq!(before, snapshot(&deals), "a rejection changes nothing");
        } else {
            // And an admitted event is undone exactly.
            deals.rollback(Savepoint(deals.undo.len() - 1));
            assert_eq!(before, snapshot(&deals), "rollback restores exactly");
        }
    }

    const OPEN: &str = r#"{"deal":"d","type":"opened","at":"2024-01-10T00:00:00Z","owner":"o","amount":100}"#;

    fn ev(kind: &str, at: &str, extra: &str) -> String {
        format!(r#"{{"deal":"d","type":"{kind}","at":"2024-01-{at}T00:00:00Z"{extra}}}"#)
    }

    #[test]
    fn opened_exactly_once_and_first() {
        check(&[], OPEN, Ok(1));
        check(&[OPEN], OPEN, Err("deal `d` was already opened at 2024-01-10T00:00:00Z [already_opened]"));
        check(
            &[],
            &ev("touch", "11", r#","channel":"call","direction":"outbound""#),
            Err("deal `d` has no `opened` event; open it first [not_opened]"),
        );
        check(&[OPEN], &ev("touch", "09", r#","channel":"call","direction":"outbound""#), Err("field `at`: 2024-01-09T00:00:00Z is before deal `d` was opened (2024-01-10T00:00:00Z) [before_opened]"));
        check(&[OPEN], &ev("touch", "10", r#","channel":"call","direction":"outbound""#), Ok(2));
    }

    #[test]
    fn stage_moves() {
        check(&[OPEN], &ev("stage_moved", "11", r#","to":"quote""#), Ok(2));
        check(
            &[OPEN],
            &ev("stage_moved", "11", r#","to":"prospecting""#),
            Err("field `to`: the deal is already in `prospecting` [same_stage]"),
        );
        check(&[OPEN], &ev("stage_moved", "11", r#","to":"demo""#), Err("field `to`: `demo` is not a stage of the pipeline (prospecting, qualifying, quote, closing) [unknown_stage]"));
        let won = ev("won", "12", "");
        check(
            &[OPEN, &won],
            &ev("stage_moved", "13", r#","to":"quote""#),
            Err("`stage_moved` needs an open deal; the deal is won then [not_open]"),
        );
        // Backdated before the win: valid.
        check(&[OPEN, &won], &ev("stage_moved", "11", r#","to":"quote""#), Ok(3));
    }

    #[test]
    fn outcomes_and_requalification() {
        let dq = ev("disqualified", "12", r#","reason":"gone_dark""#);
        check(&[OPEN, &dq], &ev("requalified", "13", ""), Ok(3));
        check(
            &[OPEN, &dq],
            &ev("won", "13", ""),
            Err("`won` needs an open deal; the deal is disqualified then [not_open]"),
        );
        check(&[OPEN], &ev("requalified", "13", ""), Err("`requalified` needs a lost or disqualified deal; the deal is open in `prospecting` then [not_closed]"));
        let won = ev("won", "12", "");
        check(
            &[OPEN, &won],
            &ev("requalified", "13", ""),
            Err("`requalified` needs a lost or disqualified deal; the deal is won then [not_closed]"),
        );
        let lost = ev("lost", "12", r#","reason":"price""#);
        check(&[OPEN, &lost], &ev("requalified", "13", r#","stage":"quote""#), Ok(3));
        // Requalified into the stage it was in: moving to that stage is then a no-op, refused.
        let requal = ev("requalified", "13", "");
        check(
            &[OPEN, &lost, &requal],
            &ev("stage_moved", "14", r#","to":"prospecting""#),
            Err("field `to`: the deal is already in `prospecting` [same_stage]"),
        );
        check(&[OPEN, &lost, &requal], &ev("lost", "14", r#","reason":"again""#), Ok(4));
    }

    #[test]
    fn backdated_events_that_break_history() {
        let won = ev("won", "15", "");
        check(&[OPEN, &won], &ev("lost", "12", r#","reason":"x""#), Err("an event at 2024-01-12T00:00:00Z would make deal `d`'s later `won` at 2024-01-15T00:00:00Z (seq 2) invalid: `won` needs an open deal; the deal is lost then [breaks_later_event]"));
        let moved = ev("stage_moved", "15", r#","to":"quote""#);
        check(&[OPEN, &moved], &ev("stage_moved", "12", r#","to":"quote""#), Err("an event at 2024-01-12T00:00:00Z would make deal `d`'s later `stage_moved` at 2024-01-15T00:00:00Z (seq 2) invalid: the deal is already in `quote` [breaks_later_event]"));
        check(&[OPEN, &moved], &ev("stage_moved", "12", r#","to":"qualifying""#), Ok(3));
    }

    #[test]
    fn ties_in_at_order_by_arrival() {
        let won = ev("won", "12", "");
        // Same instant, arriving later: comes after the win, so the deal is not open.
        check(
            &[OPEN, &won],
            &ev("stage_moved", "12", r#","to":"quote""#),
            Err("`stage_moved` needs an open deal; the deal is won then [not_open]"),
        );
    }

    #[test]
    fn expected_version() {
        let touch = ev("touch", "11", r#","channel":"call","direction":"outbound","expected_version":1"#);
        check(&[OPEN], &touch, Ok(2));
        check(
            &[OPEN, &touch],
            &touch,
            Err("field `expected_version`: deal `d` is at version 2, not 1 [version_conflict]"),
        );
        check(&[], &OPEN.replace("\"owner\"", "\"expected_version\":0,\"owner\""), Ok(1));
    }

    #[test]
    fn amounts_resolve_in_the_deal_currency() {
        let jpy = r#"{"deal":"d","type":"opened","at":"2024-01-10T00:00:00Z","owner":"o","amount":100,"currency":"JPY"}"#;
        check(
            &[jpy],
            &ev("amount_changed", "11", r#","amount":"10.5""#),
            Err("field `amount`: 10.5 has 1 decimal places; JPY allows 0 [invalid_value]"),
        );
        check(&[jpy], &ev("amount_changed", "11", r#","amount":"10""#), Ok(2));
    }

    #[test]
    fn rollback_restores_exactly() {
        let pipeline = Pipeline::default();
        let mut deals = Deals::default();
        let now = Timestamp(0);
        let mut s = parse_line(OPEN).unwrap();
        deals.admit(&mut s, 1, now, &pipeline).unwrap();
        deals.commit();
        let savepoint = deals.savepoint();
        let mut s = parse_line(&ev("stage_moved", "11", r#","to":"quote""#)).unwrap();
        deals.admit(&mut s, 2, now, &pipeline).unwrap();
        let mut s = parse_line(&OPEN.replace("\"d\"", "\"e\"")).unwrap();
        deals.admit(&mut s, 3, now, &pipeline).unwrap();
        assert_eq!(deals.len(), 2);
        deals.rollback(savepoint);
        assert_eq!(deals.len(), 1);
        let line = deals.get(&DealId::parse("d").unwrap()).unwrap();
        assert_eq!((line.version, line.steps.len()), (1, 1));
    }
}

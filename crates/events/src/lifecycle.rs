//! A deal's lifecycle as one small state machine: opened in a stage, moved between stages, then
//! won, lost or disqualified, and open again after a requalification.
//!
//! Deciding is separate from changing state. Admission asks [`decide`], which refuses what the
//! contract forbids. The projection fold and the what-if walk ask [`follow`], which never fails:
//! a view cut by `recorded_at` or walked in order of knowledge can show a history no writer would
//! have accepted (a `won` without the `requalified` before it), and a report must still say
//! something. Both answer with a [`Transition`], and [`apply`] (which cannot fail) is the only
//! place the state changes. Every transition `decide` allows, `follow` gives too.
//!
//! The stage is a type parameter: admission interns stage names one way, the timeline another.

use crate::rejection::Rule;

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

    /// Lost or disqualified: a deal that cost effort and brought nothing.
    pub fn is_bad(self) -> bool {
        matches!(self, Status::Lost | Status::Disqualified)
    }
}

/// An event of the lifecycle, with its stage (if it names one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<S> {
    Opened(S),
    Moved(S),
    Won,
    Lost,
    Disqualified,
    /// Requalified into this stage, or (None) into the stage the deal closed in.
    Requalified(Option<S>),
}

impl<S> Step<S> {
    /// The event type's name in the contract.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Opened(_) => "opened",
            Step::Moved(_) => "stage_moved",
            Step::Won => "won",
            Step::Lost => "lost",
            Step::Disqualified => "disqualified",
            Step::Requalified(_) => "requalified",
        }
    }
}

/// Where a deal stands: its status and its stage (for a closed deal, the stage it closed in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifecycle<S> {
    pub status: Status,
    pub stage: S,
}

impl<S> Lifecycle<S> {
    pub fn is_open(&self) -> bool {
        self.status == Status::Open
    }
}

/// What a step does to a deal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition<S> {
    /// The deal begins, open in this stage.
    Opened(S),
    /// The deal is in stage `to` now. `stay`: it was open, so a stay in `to` begins; false only
    /// from [`follow`], for a closed deal, whose stage (the one it would reopen in) changes.
    Moved { to: S, stay: bool },
    /// The deal closes. `was_open` is false only from [`follow`]: a closed deal closes again.
    Closed { status: Status, was_open: bool },
    /// The deal is open again, in this stage.
    Reopened(S),
    /// Only from [`follow`]: a requalification of a deal that is open already changes nothing.
    Unchanged,
}

/// Why [`decide`] refuses a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal<S> {
    /// Any step but `opened` before the deal is opened.
    NotOpened,
    AlreadyOpened,
    /// A stage move to the stage the deal is in.
    SameStage(S),
    /// A stage move or an outcome on a closed deal.
    NotOpen(Lifecycle<S>),
    /// A requalification of a deal that is not lost or disqualified.
    NotClosed(Lifecycle<S>),
}

impl<S> Refusal<S> {
    pub fn rule(&self) -> Rule {
        match self {
            Refusal::NotOpened => Rule::NotOpened,
            Refusal::AlreadyOpened => Rule::AlreadyOpened,
            Refusal::SameStage(_) => Rule::SameStage,
            Refusal::NotOpen(_) => Rule::NotOpen,
            Refusal::NotClosed(_) => Rule::NotClosed,
        }
    }
}

/// The contract's rules: what `step` does to a deal in `state` (None: not opened yet), or why it
/// may not happen.
pub fn decide<S: Copy + Eq>(state: Option<Lifecycle<S>>, step: Step<S>) -> Result<Transition<S>, Refusal<S>> {
    let Some(state) = state else {
        return match step {
            Step::Opened(stage) => Ok(Transition::Opened(stage)),
            _ => Err(Refusal::NotOpened),
        };
    };
    let open = state.is_open();
    match step {
        Step::Opened(_) => Err(Refusal::AlreadyOpened),
        Step::Moved(to) if open && to == state.stage => Err(Refusal::SameStage(to)),
        Step::Moved(_) | Step::Won | Step::Lost | Step::Disqualified if !open => Err(Refusal::NotOpen(state)),
        Step::Requalified(_) if !matches!(state.status, Status::Lost | Status::Disqualified) => {
            Err(Refusal::NotClosed(state))
        }
        _ => Ok(follow_opened(state, step)),
    }
}

/// What `step` does to a deal in `state` in a view that may have lost steps: never refused. A
/// step before `opened` (None) changes nothing: for the view the deal does not exist yet.
pub fn follow<S: Copy>(state: Option<Lifecycle<S>>, step: Step<S>) -> Option<Transition<S>> {
    match (state, step) {
        (_, Step::Opened(stage)) => Some(Transition::Opened(stage)),
        (None, _) => None,
        (Some(state), step) => Some(follow_opened(state, step)),
    }
}

fn follow_opened<S: Copy>(state: Lifecycle<S>, step: Step<S>) -> Transition<S> {
    let open = state.is_open();
    let closed = |status| Transition::Closed { status, was_open: open };
    match step {
        Step::Opened(stage) => Transition::Opened(stage),
        Step::Moved(to) => Transition::Moved { to, stay: open },
        Step::Won => closed(Status::Won),
        Step::Lost => closed(Status::Lost),
        Step::Disqualified => closed(Status::Disqualified),
        Step::Requalified(_) if open => Transition::Unchanged,
        Step::Requalified(stage) => Transition::Reopened(stage.unwrap_or(state.stage)),
    }
}

/// The state after `transition`: the one place a lifecycle changes. A deal that is not opened
/// yet only changes by `Opened` (neither `decide` nor `follow` gives it anything else).
pub fn apply<S: Copy>(state: &mut Option<Lifecycle<S>>, transition: Transition<S>) {
    match (state, transition) {
        (Some(life), transition) => life.apply(transition),
        (state @ None, Transition::Opened(stage)) => *state = Some(Lifecycle { status: Status::Open, stage }),
        (None, _) => {}
    }
}

impl<S: Copy> Lifecycle<S> {
    /// [`apply`] to an opened deal.
    pub fn apply(&mut self, transition: Transition<S>) {
        match transition {
            Transition::Opened(stage) | Transition::Reopened(stage) => {
                *self = Lifecycle { status: Status::Open, stage };
            }
            Transition::Moved { to, .. } => self.stage = to,
            Transition::Closed { status, .. } => self.status = status,
            Transition::Unchanged => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn step() -> impl Strategy<Value = Step<u8>> {
        prop_oneof![
            (0u8..3).prop_map(Step::Opened),
            (0u8..3).prop_map(Step::Moved),
            Just(Step::Won),
            Just(Step::Lost),
            Just(Step::Disqualified),
            proptest::option::of(0u8..3).prop_map(Step::Requalified),
        ]
    }

    proptest! {
        /// Whatever admission allows, a view's fold does the same; and a history built only of
        /// allowed steps never reaches a step `follow` would treat leniently.
        #[test]
        fn follow_agrees_with_decide(steps in proptest::collection::vec(step(), 0..24)) {
            let mut strict = None;
            let mut lenient = None;
            for step in steps {
                let followed = follow(lenient, step);
                if let Ok(transition) = decide(strict, step) {
                    prop_assert_eq!(followed, Some(transition));
                    let lenient_only = matches!(
                        transition,
                        Transition::Unchanged
                            | Transition::Moved { stay: false, .. }
                            | Transition::Closed { was_open: false, .. }
                    );
                    prop_assert!(!lenient_only, "decide allowed {:?}", transition);
                    apply(&mut strict, transition);
                    apply(&mut lenient, transition);
                    prop_assert_eq!(strict, lenient);
                }
            }
        }
    }

    #[test]
    fn the_contracts_refusals() {
        let open = |stage| Some(Lifecycle { status: Status::Open, stage });
        let closed = |status| Some(Lifecycle { status, stage: 1u8 });
        assert_eq!(decide(None, Step::<u8>::Won), Err(Refusal::NotOpened));
        assert_eq!(decide(open(1), Step::Opened(2)), Err(Refusal::AlreadyOpened));
        assert_eq!(decide(open(1), Step::Moved(1)), Err(Refusal::SameStage(1)));
        assert_eq!(decide(open(1), Step::Moved(2)), Ok(Transition::Moved { to: 2, stay: true }));
        for status in [Status::Won, Status::Lost, Status::Disqualified] {
            assert!(matches!(decide(closed(status), Step::Lost), Err(Refusal::NotOpen(_))));
        }
        assert!(matches!(decide(closed(Status::Won), Step::Requalified(None)), Err(Refusal::NotClosed(_))));
        assert!(matches!(decide(open(1), Step::Requalified(None)), Err(Refusal::NotClosed(_))));
        assert_eq!(decide(closed(Status::Lost), Step::Requalified(None)), Ok(Transition::Reopened(1)));
        assert_eq!(
            decide(closed(Status::Disqualified), Step::Requalified(Some(0))),
            Ok(Transition::Reopened(0))
        );
        // A view that missed the requalification: the won deal is reopened, the open one stays.
        assert_eq!(follow(closed(Status::Won), Step::Requalified(None)), Some(Transition::Reopened(1)));
        assert_eq!(follow(open(1), Step::Requalified(Some(2))), Some(Transition::Unchanged));
        assert_eq!(follow(None, Step::Moved(2)), None);
    }
}

//! A what-if question as the CLI and the daemon ask it, answered by the same code: one policy
//! run, a sweep of one rule over a policy, or policies compared, over one scope.

use crate::compare::Comparison;
use crate::{Policy, Prepared, Scope, SweepReport, Watch, WhatIfError, WhatIfReport};
use dealledger_events::{Currency, Timestamp};
use dealledger_projections::Timeline;
use dealledger_reports::{Answered, Format, Settings};

/// What is asked.
#[derive(Clone, Debug)]
pub enum Ask {
    Run(Policy),
    /// The base policy, the swept rule and its values.
    Sweep(Policy, String, Vec<f64>),
    /// Policies, each with the name it is shown under (its file, or its rules as sent).
    Compare(Vec<(String, Policy)>),
}

#[derive(Clone, Debug)]
pub struct Question {
    pub ask: Ask,
    /// Deals opened in [from, to).
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// History up to here; None: now (the reports' default, with the same word and offer when
    /// the history ended before it).
    pub as_of: Option<Timestamp>,
    pub as_logged: bool,
    /// The deals' currency; None: the only one, else `[costs] currency`.
    pub currency: Option<Currency>,
    /// For a run: the outcome by owner as well.
    pub by_owner: bool,
    /// For a run: every cut deal as well.
    pub deals: bool,
}

/// An answer, one report per kind of question.
pub enum Answer {
    Run(WhatIfReport),
    Sweep(SweepReport),
    Compare(Comparison),
}

impl Answer {
    pub fn render(&self, format: Format) -> Answered {
        match self {
            Answer::Run(report) => Answered::of(report, format),
            Answer::Sweep(report) => Answered::of(report, format),
            Answer::Compare(report) => Answered::of(report, format),
        }
    }
}

impl Answer {
    /// The answer's picture: a sweep's lines (a run or a comparison has none).
    pub fn chart(&self) -> Option<dealledger_reports::chart::Chart> {
        match self {
            Answer::Sweep(report) => {
                Some(dealledger_reports::chart::Chart::Lines(crate::plot::sweep_chart(report)))
            }
            _ => None,
        }
    }
}

impl Question {
    /// The answer on `timeline`; `now` is the default as-of; `watch` is asked before each deal
    /// walk ([`crate::UNWATCHED`]: never stop).
    pub fn answer(
        &self,
        timeline: &Timeline,
        settings: &Settings,
        now: Timestamp,
        watch: Watch<'_>,
    ) -> Result<Answer, WhatIfError> {
        let as_of = self.as_of.unwrap_or(now);
        let scope =
            Scope { from: self.from, to: self.to, as_of, as_logged: self.as_logged, currency: self.currency };
        let prepared = Prepared::new(timeline, settings, scope)?.watched(watch);
        match &self.ask {
            Ask::Run(policy) => prepared.run(policy, self.by_owner, self.deals).map(Answer::Run),
            Ask::Sweep(policy, rule, values) => prepared.sweep(policy, rule, values).map(Answer::Sweep),
            Ask::Compare(policies) => prepared.compare(policies).map(Answer::Compare),
        }
    }
}

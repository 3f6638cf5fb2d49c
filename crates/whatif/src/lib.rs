//! dealledger's what-if engine: take the team's real history and ask "had we disqualified deals
//! by this rule, what would we have saved, and which wins would we have thrown away?".
//!
//! A [`Policy`] of rules is simulated on every deal ([`sim`]) in the order the team learned its
//! history, with the `stalled` rule's p90 taken only from visits that ended before
//! ([`history`]), so a backtest never looks into the future. Outcomes are counted against the
//! deals' real outcomes and priced with the rates of the bad-deal-cost report.
//!
//! Boundary: reads a `Timeline` and report `Settings`; no storage, no clock, no files (the
//! sweep chart is SVG text, written by the caller). Money in
//! integer minor units until printed. The definitions are the contract of docs/whatif.md.

pub mod compare;
pub mod history;
pub mod plot;
pub mod policy;
pub mod question;
pub mod sim;

pub use policy::{MissingField, Policy};
pub use question::{Answer, Ask, Question};

use dealledger_events::time::MICROS_PER_DAY;
use dealledger_events::{Currency, Timestamp};
use dealledger_projections::{Folded, Name, Status, Timeline, View};
use dealledger_reports::basis::{count, Basis};
use dealledger_reports::output::thousands;
use dealledger_reports::output::{div_round, round6, Cell, Instant, Money, Table};
use dealledger_reports::{stage_indexes, Report, Settings};
use history::StageHistory;
use serde::Serialize;
use sim::{days_to_us, simulate, simulate_swept, Compiled, Cut, Scratch, Swept};
use std::collections::BTreeMap;

/// The what-if engine's error: which input is wrong, and why. The CLI names its flag after the
/// kind, the daemon its query parameter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WhatIfError {
    /// A rule or a policy (a name, a value, a missing_field's stage).
    #[error("{0}")]
    Policy(String),
    #[error("{0}")]
    Sweep(String),
    #[error("{0}")]
    Compare(String),
    /// A currency no deal of the scope has.
    #[error("{0}")]
    Currency(String),
    /// Its [`Watch`] stopped it, saying why (a deadline, a client gone).
    #[error("{0}")]
    Stopped(String),
}

/// How far a question's work is: `done` of the `total` deal walks it makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// Asked before each deal walk of a run, sweep or comparison: go on, or why to stop (the question
/// then fails with [`WhatIfError::Stopped`]). The daemon stops a what-if whose client has gone or
/// whose deadline has passed; the engine itself keeps no clock.
pub type Watch<'w> = &'w dyn Fn(Progress) -> Result<(), String>;

/// The watch that never stops (the CLI's: its user has Ctrl-C).
pub const UNWATCHED: Watch<'static> = &|_| Ok(());

/// Which deals and how far: deals opened in [from, to) in one currency, history up to `as_of`.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub as_of: Timestamp,
    /// Simulate in order of knowledge (events count from when they were logged); default:
    /// business time (see [`sim`]).
    pub as_logged: bool,
    /// The deals' currency (amounts of two currencies are never added): default the only one
    /// the deals have, else `[costs] currency`, as the reports choose.
    pub currency: Option<Currency>,
}

/// What the figures stand on: the deals backtested, and how many have what the rules and the
/// prices need (the JSON's `scope`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Coverage {
    #[serde(serialize_with = "dealledger_reports::output::currency_code")]
    pub currency: Currency,
    /// Deals in the scope: opened in [from, to), in this currency, seen by as-of.
    pub deals: u64,
    /// Of them, with a touch by as-of.
    pub with_touches: u64,
    /// Of them, won by as-of; and won with an amount that is not 0.
    pub won: u64,
    pub won_with_amount: u64,
    /// Deals of the other currencies, left out.
    pub left_out: Vec<LeftOut>,
    /// `[costs] currency`, in which selling time (effort and calendar value, net value) is
    /// priced.
    #[serde(serialize_with = "dealledger_reports::output::currency_code")]
    pub priced_in: Currency,
}

/// Deals of another currency than the backtest's, which it leaves out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeftOut {
    #[serde(serialize_with = "dealledger_reports::output::currency_code")]
    pub currency: Currency,
    pub deals: u64,
}

impl Coverage {
    /// Whether the touch rules of a policy have touches to count on: at least half of the deals
    /// have one. Below that, most cuts fall N days after the opening whatever happened.
    fn supports_touch_rules(&self) -> bool {
        self.with_touches.saturating_mul(2) >= self.deals
    }

    /// The note on a policy's touch rules, where the deals cannot support them.
    fn touch_note(&self, rules: &[&str]) -> Option<String> {
        (!rules.is_empty() && !self.supports_touch_rules()).then(|| {
            format!(
                "{} of the {} have a touch: {} cuts a deal without touches when its clock runs out from the \
                 opening, whatever happened, so the figures say little about the rule",
                thousands(self.with_touches),
                count(self.deals, "deal", "deals"),
                rules.join(" and ")
            )
        })
    }
}

/// The outcome figures of one policy (over all deals, or one owner's).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub cut: u64,
    pub cut_won: u64,
    pub cut_bad: u64,
    pub cut_open: u64,
    pub bad_deals: u64,
    pub revenue_at_risk: Money,
    pub effort_hours_saved: f64,
    pub effort_value_saved: Money,
    pub calendar_days_saved: f64,
    pub calendar_value_saved: Money,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// effort_value_saved - revenue_at_risk; null where the deals' currency is not `[costs]`
    /// currency, in which selling time is priced (two currencies are never added).
    pub net_value: Option<Money>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OwnerOutcome {
    pub owner: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// One cut deal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CutDeal {
    pub deal: String,
    pub owner: String,
    pub rule: String,
    pub cut_at: Instant,
    /// won, lost, disqualified or open (at as-of).
    pub outcome: &'static str,
    /// When the real outcome was set (as-of for a deal still open).
    pub outcome_at: Instant,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WhatIfReport {
    /// In a comparison: the policy's name (its file, or its rules as sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub policy: Policy,
    pub as_of: Instant,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub as_logged: bool,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_owner: Option<Vec<OwnerOutcome>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deals: Option<Vec<CutDeal>>,
    pub scope: Coverage,
    #[serde(flatten)]
    pub basis: Basis,
}

/// Per owner, the raw sums an [`Outcome`] is priced from.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    cut: u64,
    cut_won: u64,
    cut_bad: u64,
    cut_open: u64,
    bad_deals: u64,
    revenue_minor: i128,
    effort_minutes: i64,
    calendar_us: i64,
}

/// A deal as the outcome side sees it: its real outcome at as-of.
struct Real {
    index: usize,
    owner: Name,
    status: Status,
    /// When the final status was set; as-of for an open deal.
    end: Timestamp,
    won_minor: i64,
}

/// Every deal opened in the scope's [from, to) as of its moment: its currency, its real outcome
/// and whether it had a touch by then.
fn deals_in_scope(timeline: &Timeline, scope: &Scope, view: View) -> Vec<(Currency, Real, bool)> {
    let mut in_scope = Vec::new();
    let mut folded = Folded::default();
    for (index, deal) in timeline.deals().iter().enumerate() {
        if !folded.fold(&deal, view) {
            continue;
        }
        let opened = folded.opened_at;
        if scope.from.is_some_and(|f| opened < f) || scope.to.is_some_and(|t| opened >= t) {
            continue;
        }
        let status = folded.status();
        let end = if status == Status::Open { scope.as_of } else { folded.status_at };
        let touched = deal.touches().first().is_some_and(|t| t.at <= scope.as_of);
        let real = Real { index, owner: folded.owner, status, end, won_minor: folded.won_amount_minor };
        in_scope.push((deal.currency, real, touched));
    }
    in_scope
}

/// What every answer says whatever the policy: the moment, the deals of other currencies left
/// out, won deals without an amount, and selling time priced in another currency.
fn coverage_basis(timeline: &Timeline, settings: &Settings, as_of: Timestamp, coverage: &Coverage) -> Basis {
    let mut basis = Basis::as_of(timeline, as_of);
    for left in &coverage.left_out {
        basis.note(format!(
            "{} in {} left out: amounts of two currencies are never added (--currency {} backtests them)",
            count(left.deals, "deal", "deals"),
            left.currency,
            left.currency
        ));
    }
    let won = count(coverage.won, "won deal", "won deals");
    match (coverage.won, coverage.won_with_amount) {
        (0, _) => {}
        (_, 0) => basis.note(format!(
            "none of the {won} has an amount: revenue at risk is 0 for want of data, so a cut win looks \
             free; no best is named"
        )),
        (all, with) if with < all => basis.note(format!(
            "{} of the {won} have no amount: revenue at risk counts them as 0",
            thousands(all - with)
        )),
        _ => {}
    }
    let currency = coverage.currency;
    if currency != settings.currency {
        basis.note(format!(
            "selling time is priced in {} ([costs] currency) and these deals are in {currency}: net value \
             would subtract one from the other, so it is left empty and no best is named",
            settings.currency
        ));
    }
    basis
}

/// What a backtest needs, computed once and shared by every policy of a sweep or comparison.
pub struct Prepared<'t> {
    timeline: &'t Timeline,
    settings: &'t Settings,
    scope: Scope,
    /// The deals' currency, chosen.
    currency: Currency,
    history: StageHistory,
    stage_index: Vec<Option<usize>>,
    reals: Vec<Real>,
    coverage: Coverage,
    /// What every answer says whatever the policy: the moment, the deals left out, amounts.
    basis: Basis,
    watch: Watch<'t>,
}

impl<'t> Prepared<'t> {
    /// The deals in scope and their real outcomes. Refuses a currency no deal of the scope has.
    pub fn new(
        timeline: &'t Timeline,
        settings: &'t Settings,
        scope: Scope,
    ) -> Result<Prepared<'t>, WhatIfError> {
        let view = View { as_of: scope.as_of, known_at: Timestamp::MAX };
        let history = StageHistory::build(timeline, view);
        let stage_index = stage_indexes(timeline, settings);
        // Every deal in [from, to) with its currency; the chosen currency's are kept.
        let in_scope = deals_in_scope(timeline, &scope, view);
        let mut counts: BTreeMap<Currency, u64> = BTreeMap::new();
        for (currency, _, _) in &in_scope {
            *counts.entry(*currency).or_default() += 1;
        }
        let present: Vec<Currency> = counts.keys().copied().collect();
        let currency = dealledger_reports::report_currency(&present, scope.currency, settings)
            .map_err(|e| WhatIfError::Currency(e.to_string()))?;
        let mut coverage = Coverage {
            currency,
            deals: 0,
            with_touches: 0,
            won: 0,
            won_with_amount: 0,
            left_out: counts
                .iter()
                .filter(|(c, _)| **c != currency)
                .map(|(&currency, &deals)| LeftOut { currency, deals })
                .collect(),
            priced_in: settings.currency,
        };
        let mut reals = Vec::new();
        for (deal_currency, real, touched) in in_scope {
            if deal_currency != currency {
                continue;
            }
            coverage.deals += 1;
            coverage.with_touches += u64::from(touched);
            if real.status == Status::Won {
                coverage.won += 1;
                coverage.won_with_amount += u64::from(real.won_minor != 0);
            }
            reals.push(real);
        }
        let basis = coverage_basis(timeline, settings, scope.as_of, &coverage);
        let watch = UNWATCHED;
        Ok(Prepared {
            timeline,
            settings,
            scope,
            currency,
            history,
            stage_index,
            reals,
            coverage,
            basis,
            watch,
        })
    }

    /// The same, asking `watch` before each deal walk of every run, sweep and comparison.
    pub fn watched(self, watch: Watch<'t>) -> Prepared<'t> {
        Prepared { watch, ..self }
    }

    /// Asks the watch whether to walk the next deal, `done` of `total` being walked.
    fn go_on(&self, done: usize, total: usize) -> Result<(), WhatIfError> {
        let progress = Progress { done: done as u64, total: total as u64 };
        (self.watch)(progress).map_err(WhatIfError::Stopped)
    }

    /// What an answer about `policy` stands on: the shared notes, and the touch rules' where
    /// the deals have few touches.
    fn basis_for(&self, touch_rules: &[&str]) -> Basis {
        let mut basis = self.basis.clone();
        if let Some(note) = self.coverage.touch_note(touch_rules) {
            basis.note(note);
        }
        basis
    }

    /// Whether net value can rank policies: money on both sides, in one currency.
    fn prices_compare(&self) -> bool {
        self.currency == self.settings.currency
            && (self.coverage.won == 0 || self.coverage.won_with_amount > 0)
    }

    fn world(&self) -> sim::World<'_> {
        sim::World { history: &self.history, stage_index: &self.stage_index, as_of: self.scope.as_of }
    }

    fn compile(&self, policy: &Policy) -> Result<Compiled, String> {
        let mut missing = Vec::new();
        for m in &policy.missing_field {
            let by = self.settings.pipeline.index(&m.by_stage).ok_or_else(|| {
                format!("missing_field {}: by_stage `{}` is not a pipeline stage", m.field, m.by_stage)
            })?;
            missing.push(sim::MissingRule {
                field: self.timeline.names.get(&m.field),
                by_stage_index: by,
                grace_us: days_to_us(m.grace_days),
                label: format!("missing_field:{}", m.field),
            });
        }
        Ok(Compiled {
            gone_dark_us: policy.gone_dark.map(days_to_us),
            no_activity_us: policy.no_activity.map(days_to_us),
            stalled_factor: policy.stalled,
            missing_field: missing,
            unanswered_touches: policy.unanswered_touches,
            past_close_date_us: policy.past_close_date.map(days_to_us),
            as_logged: self.scope.as_logged,
        })
    }

    /// Backtests one policy.
    pub fn run(
        &self,
        policy: &Policy,
        by_owner: bool,
        with_deals: bool,
    ) -> Result<WhatIfReport, WhatIfError> {
        self.run_part(policy, by_owner, with_deals, (0, 1))
    }

    /// A run that is part `part.0` of `part.1` equal parts of the work (a comparison's policy),
    /// for the progress its watch is told.
    fn run_part(
        &self,
        policy: &Policy,
        by_owner: bool,
        with_deals: bool,
        part: (usize, usize),
    ) -> Result<WhatIfReport, WhatIfError> {
        let compiled = self.compile(policy).map_err(WhatIfError::Policy)?;
        let world = self.world();
        let mut scratch = Scratch::default();
        let mut owners: BTreeMap<Name, Sums> = BTreeMap::new();
        let mut cut_deals = Vec::new();
        let deals = self.timeline.deals();
        let (total, done_before) = (self.reals.len() * part.1, self.reals.len() * part.0);
        for (walked, real) in self.reals.iter().enumerate() {
            self.go_on(done_before + walked, total)?;
            let deal = &deals.get(real.index).expect("a real deal is the timeline's");
            let cut = simulate(deal, &compiled, &world, &mut scratch);
            let sums = owners.entry(real.owner).or_default();
            account(
                real,
                deal.touches().iter().map(|t| (t.at, t.minutes_or_default())),
                cut.as_ref().map(|c| c.at),
                sums,
            );
            let Some(Cut { at, rule }) = cut else { continue };
            if with_deals {
                cut_deals.push(CutDeal {
                    deal: deal.id.to_string(),
                    owner: self.timeline.names.resolve(real.owner).to_string(),
                    rule,
                    cut_at: Instant(at),
                    outcome: match real.status {
                        Status::Won => "won",
                        Status::Lost => "lost",
                        Status::Disqualified => "disqualified",
                        Status::Open => "open",
                    },
                    outcome_at: Instant(real.end),
                });
            }
        }
        let (outcome, owners) = self.total(owners);
        Ok(WhatIfReport {
            label: None,
            policy: policy.clone(),
            as_of: Instant(self.scope.as_of),
            as_logged: self.scope.as_logged,
            outcome,
            by_owner: by_owner.then_some(owners),
            deals: with_deals.then_some(cut_deals),
            scope: self.coverage.clone(),
            basis: self.basis_for(&policy.touch_rules()),
        })
    }

    /// The outcome over every owner, and each owner's, by owner name.
    fn total(&self, owners: BTreeMap<Name, Sums>) -> (Outcome, Vec<OwnerOutcome>) {
        let priced_in = self.settings.currency;
        let mut priced: Vec<(String, Outcome, Sums)> = owners
            .into_iter()
            .map(|(owner, sums)| {
                let name = self.timeline.names.resolve(owner).to_string();
                let outcome = self.price(&name, &sums);
                (name, outcome, sums)
            })
            .collect();
        priced.sort_by(|a, b| a.0.cmp(&b.0));
        let total_sums = priced.iter().fold(Sums::default(), |mut a, (_, _, s)| {
            a.cut += s.cut;
            a.cut_won += s.cut_won;
            a.cut_bad += s.cut_bad;
            a.cut_open += s.cut_open;
            a.bad_deals += s.bad_deals;
            a.revenue_minor += s.revenue_minor;
            a.effort_minutes += s.effort_minutes;
            a.calendar_us += s.calendar_us;
            a
        });
        // Money totals are the sums of the owners' rounded figures, so the rows add up.
        let sum = |f: fn(&Outcome) -> &Money| {
            Money::new(priced.iter().map(|(_, o, _)| f(o).minor).sum(), priced_in)
        };
        let effort_value_saved = sum(|o| &o.effort_value_saved);
        let revenue_at_risk = Money::new(total_sums.revenue_minor, self.currency);
        let outcome = Outcome {
            effort_value_saved,
            calendar_value_saved: sum(|o| &o.calendar_value_saved),
            net_value: self.net(effort_value_saved, revenue_at_risk),
            revenue_at_risk,
            ..counts(&total_sums, priced_in)
        };
        (outcome, priced.into_iter().map(|(owner, outcome, _)| OwnerOutcome { owner, outcome }).collect())
    }

    /// effort - revenue, when both are in one currency.
    fn net(&self, effort: Money, revenue: Money) -> Option<Money> {
        (effort.currency == revenue.currency)
            .then(|| Money::new(effort.minor - revenue.minor, effort.currency))
    }

    fn price(&self, owner: &str, sums: &Sums) -> Outcome {
        let currency = self.settings.currency;
        let rates = self.settings.rates(owner);
        let quota = i128::from(rates.quota_minor);
        let effort =
            div_round(i128::from(sums.effort_minutes) * quota, i128::from(rates.selling_hours.max(1)) * 60);
        let calendar = div_round(
            i128::from(sums.calendar_us) * quota,
            i128::from(rates.working_days.max(1)) * i128::from(MICROS_PER_DAY),
        );
        let revenue = Money::new(sums.revenue_minor, self.currency);
        let effort = Money::new(effort, currency);
        Outcome {
            effort_value_saved: effort,
            calendar_value_saved: Money::new(calendar, currency),
            net_value: self.net(effort, revenue),
            revenue_at_risk: revenue,
            ..counts(sums, currency)
        }
    }
}

/// One value of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepRow {
    pub value: f64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepReport {
    pub rule: String,
    /// The other rules, held fixed while `rule` is swept.
    pub policy: Policy,
    pub as_of: Instant,
    pub rows: Vec<SweepRow>,
    /// The row with the greatest net value (the smallest value on a tie); null where the data
    /// cannot support one (the notes say why): a touch rule on deals with few touches, won
    /// deals without amounts, net value in no one currency, or a row that cuts every win.
    pub best: Option<SweepRow>,
    pub scope: Coverage,
    #[serde(flatten)]
    pub basis: Basis,
}

impl Prepared<'_> {
    /// Backtests `base` with `rule` set to each of `values`: one walk per deal records the rule's
    /// windows, and each value's cut is read off them (a row equals a single run exactly).
    pub fn sweep(&self, base: &Policy, rule: &str, values: &[f64]) -> Result<SweepReport, WhatIfError> {
        let swept = Swept::parse(rule).ok_or_else(|| {
            WhatIfError::Sweep(format!("`{rule}` cannot be swept (numeric rules: {})", Swept::names()))
        })?;
        for &value in values {
            base.clone().set(rule, value).map_err(|e| WhatIfError::Sweep(e.to_string()))?;
        }
        let mut fixed = base.clone();
        match swept {
            Swept::GoneDark => fixed.gone_dark = None,
            Swept::NoActivity => fixed.no_activity = None,
            Swept::Stalled => fixed.stalled = None,
            Swept::PastCloseDate => fixed.past_close_date = None,
            Swept::UnansweredTouches => fixed.unanswered_touches = None,
        }
        let compiled = self.compile(&fixed).map_err(WhatIfError::Sweep)?;
        let mut scratch = Scratch::default();
        let mut windows = sim::Windows::default();
        let world = self.world();
        let mut owners: Vec<BTreeMap<Name, Sums>> = vec![BTreeMap::new(); values.len()];
        let mut touches: Vec<(Timestamp, i64)> = Vec::new();
        let deals = self.timeline.deals();
        for (walked, real) in self.reals.iter().enumerate() {
            self.go_on(walked, self.reals.len())?;
            let deal = &deals.get(real.index).expect("a real deal is the timeline's");
            let fixed_cut = simulate_swept(deal, &compiled, swept, &world, &mut scratch, &mut windows);
            touches.clear();
            touches.extend(deal.touches().iter().map(|t| (t.at, t.minutes_or_default())));
            for (i, &value) in values.iter().enumerate() {
                let cut = match (&fixed_cut, windows.cut(swept, value)) {
                    (Some(f), Some(s)) => {
                        // The earlier wins; on a tie, the rule the walk checks first.
                        if (s, sim::tie_rank(swept.name())) < (f.at, sim::tie_rank(&f.rule)) {
                            Some(s)
                        } else {
                            Some(f.at)
                        }
                    }
                    (Some(f), None) => Some(f.at),
                    (None, s) => s,
                };
                account(real, touches.iter().copied(), cut, owners[i].entry(real.owner).or_default());
            }
        }
        let rows: Vec<SweepRow> = values
            .iter()
            .zip(owners)
            .map(|(&value, owners)| SweepRow { value, outcome: self.total(owners).0 })
            .collect();
        let mut touch_rules = fixed.touch_rules();
        if swept.counts_touches() {
            touch_rules.insert(0, swept.name());
        }
        let mut basis = self.basis_for(&touch_rules);
        let supported = self.prices_compare() && self.coverage.touch_note(&touch_rules).is_none();
        let best = supported.then(|| self.best(&rows, &mut basis)).flatten();
        Ok(SweepReport {
            rule: rule.to_string(),
            policy: fixed,
            as_of: Instant(self.scope.as_of),
            rows,
            best,
            scope: self.coverage.clone(),
            basis,
        })
    }

    /// The row with the greatest net value (the first on a tie), unless it cuts every win; and
    /// what the range says of it: that no value pays, that it lies at an edge of the range.
    fn best(&self, rows: &[SweepRow], basis: &mut Basis) -> Option<SweepRow> {
        let net = |row: &SweepRow| row.outcome.net_value.map_or(i128::MIN, |m| m.minor);
        let best = rows.iter().fold(None::<&SweepRow>, |best, row| match best {
            Some(b) if net(b) >= net(row) => Some(b),
            _ => Some(row),
        })?;
        let won = self.coverage.won;
        if won > 0 && best.outcome.cut_won == won {
            basis.note(format!(
                "the greatest net value cuts every win ({} of {}): it prices the time saved above all the \
                 revenue, and no best is named",
                thousands(won),
                thousands(won)
            ));
            return None;
        }
        if net(best) <= 0 {
            basis.note(
                "no value of the range pays for itself: net value is at most 0 at every value; the best is \
                 the one that loses least",
            );
        }
        let edge = [rows.first(), rows.last()].into_iter().flatten().any(|row| row.value == best.value);
        if rows.len() > 1 && edge {
            basis.note(format!(
                "the best ({}) is at an edge of the range: a wider range may do better",
                best.value
            ));
        }
        Some(best.clone())
    }
}

impl Report for SweepReport {
    fn tables(&self) -> Vec<Table> {
        let mut columns = vec![self.rule.as_str()];
        columns.extend(OUTCOME_COLUMNS);
        let title =
            format!("Sweep of {}, deals in {}, history to {}", self.rule, self.scope.currency, self.as_of.0);
        let mut table = Table::new(title, &columns);
        for row in &self.rows {
            let mut cells = vec![Cell::Num(row.value, 2)];
            cells.extend(outcome_cells(&row.outcome));
            table.push(cells);
        }
        let mut tables = vec![table];
        if let Some(best) = &self.best {
            let mut t = Table::new("Best net value", &["rule", "value", "net value"]);
            t.push(vec![
                Cell::Text(self.rule.clone()),
                Cell::Num(best.value, 2),
                best.outcome.net_value.map_or(Cell::Null, Cell::Money),
            ]);
            tables.push(t);
        }
        tables
    }

    fn csv_table(&self) -> Table {
        let mut columns = vec!["value"];
        columns.extend(OUTCOME_KEYS);
        let mut table = Table::new("", &columns);
        table.rows = self.tables().remove(0).rows;
        table
    }

    fn note_lines(&self) -> Vec<String> {
        self.basis.lines()
    }
}

/// Adds one deal to its owner's sums: its real outcome and, if the policy cut it at `cut`, what
/// the cut puts at risk or saves. `touches` are (at, minutes) in time order.
fn account(
    real: &Real,
    touches: impl Iterator<Item = (Timestamp, i64)>,
    cut: Option<Timestamp>,
    sums: &mut Sums,
) {
    let bad = matches!(real.status, Status::Lost | Status::Disqualified);
    sums.bad_deals += u64::from(bad);
    let Some(at) = cut else { return };
    sums.cut += 1;
    match real.status {
        Status::Won => {
            sums.cut_won += 1;
            sums.revenue_minor += i128::from(real.won_minor);
        }
        _ => {
            if bad {
                sums.cut_bad += 1;
            } else {
                sums.cut_open += 1;
            }
            // The effort the cut would have freed: touches after it, up to the close.
            sums.effort_minutes +=
                touches.filter(|(t, _)| *t > at && *t <= real.end).map(|(_, m)| m).sum::<i64>();
            sums.calendar_us += (real.end.0 - at.0).max(0);
        }
    }
}

/// The count-only figures of an outcome (money left at zero for the caller to fill in).
fn counts(s: &Sums, currency: dealledger_events::Currency) -> Outcome {
    let ratio = |n: u64, d: u64| (d > 0).then(|| round6(n as f64 / d as f64));
    let zero = Money::new(0, currency);
    Outcome {
        cut: s.cut,
        cut_won: s.cut_won,
        cut_bad: s.cut_bad,
        cut_open: s.cut_open,
        bad_deals: s.bad_deals,
        revenue_at_risk: zero,
        effort_hours_saved: round6(s.effort_minutes as f64 / 60.0),
        effort_value_saved: zero,
        calendar_days_saved: round6(s.calendar_us as f64 / MICROS_PER_DAY as f64),
        calendar_value_saved: zero,
        precision: ratio(s.cut_bad, s.cut_bad + s.cut_won),
        recall: ratio(s.cut_bad, s.bad_deals),
        net_value: None,
    }
}

const OUTCOME_COLUMNS: [&str; 13] = [
    "cut",
    "cut won",
    "cut bad",
    "cut open",
    "bad deals",
    "revenue at risk",
    "effort saved (hours)",
    "effort value saved",
    "calendar saved (days)",
    "calendar value saved",
    "precision",
    "recall",
    "net value",
];

/// The JSON keys of an outcome, for CSV headers.
const OUTCOME_KEYS: [&str; 13] = [
    "cut",
    "cut_won",
    "cut_bad",
    "cut_open",
    "bad_deals",
    "revenue_at_risk",
    "effort_hours_saved",
    "effort_value_saved",
    "calendar_days_saved",
    "calendar_value_saved",
    "precision",
    "recall",
    "net_value",
];

fn outcome_cells(o: &Outcome) -> Vec<Cell> {
    let ratio = |r: Option<f64>| r.map_or(Cell::Null, |r| Cell::Num(r, 3));
    vec![
        Cell::Int(o.cut as i64),
        Cell::Int(o.cut_won as i64),
        Cell::Int(o.cut_bad as i64),
        Cell::Int(o.cut_open as i64),
        Cell::Int(o.bad_deals as i64),
        Cell::Money(o.revenue_at_risk),
        Cell::Num(o.effort_hours_saved, 2),
        Cell::Money(o.effort_value_saved),
        Cell::Num(o.calendar_days_saved, 2),
        Cell::Money(o.calendar_value_saved),
        ratio(o.precision),
        ratio(o.recall),
        o.net_value.map_or(Cell::Null, Cell::Money),
    ]
}

impl Report for WhatIfReport {
    fn tables(&self) -> Vec<Table> {
        let mut columns = vec!["owner"];
        columns.extend(OUTCOME_COLUMNS);
        let title = format!(
            "What if: {}, deals in {}, history to {}",
            self.policy.describe(),
            self.scope.currency,
            self.as_of.0
        );
        let mut table = Table::new(title, &columns);
        for o in self.by_owner.iter().flatten() {
            let mut row = vec![Cell::Text(o.owner.clone())];
            row.extend(outcome_cells(&o.outcome));
            table.push(row);
        }
        let mut row = vec![Cell::Text("(total)".into())];
        row.extend(outcome_cells(&self.outcome));
        table.push(row);
        let mut tables = vec![table];
        if let Some(deals) = &self.deals {
            let mut t =
                Table::new("Cut deals", &["deal", "owner", "rule", "cut at", "outcome", "outcome at"]);
            for d in deals {
                t.push(vec![
                    Cell::Text(d.deal.clone()),
                    Cell::Text(d.owner.clone()),
                    Cell::Text(d.rule.clone()),
                    Cell::Text(d.cut_at.0.to_string()),
                    Cell::Text(d.outcome.into()),
                    Cell::Text(d.outcome_at.0.to_string()),
                ]);
            }
            tables.push(t);
        }
        tables
    }

    fn csv_table(&self) -> Table {
        let mut columns = vec!["owner"];
        columns.extend(OUTCOME_KEYS);
        let mut table = Table::new("", &columns);
        table.rows = self.tables().remove(0).rows;
        table
    }

    fn note_lines(&self) -> Vec<String> {
        self.basis.lines()
    }
}

#[cfg(test)]
mod tests;

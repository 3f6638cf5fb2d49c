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
use dealledger_events::Timestamp;
use dealledger_projections::{Folded, Name, Status, Timeline, View};
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
}

/// Which deals and how far: deals opened in [from, to), history up to `as_of`.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub as_of: Timestamp,
    /// Simulate in order of knowledge (events count from when they were logged); default:
    /// business time (see [`sim`]).
    pub as_logged: bool,
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
    pub net_value: Money,
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

/// What a backtest needs, computed once and shared by every policy of a sweep or comparison.
pub struct Prepared<'t> {
    timeline: &'t Timeline,
    settings: &'t Settings,
    scope: Scope,
    history: StageHistory,
    stage_index: Vec<Option<usize>>,
    reals: Vec<Real>,
}

impl<'t> Prepared<'t> {
    pub fn new(timeline: &'t Timeline, settings: &'t Settings, scope: Scope) -> Prepared<'t> {
        let view = View { as_of: scope.as_of, known_at: Timestamp::MAX };
        let history = StageHistory::build(timeline, view);
        let stage_index = stage_indexes(timeline, settings);
        let mut reals = Vec::new();
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
            reals.push(Real { index, owner: folded.owner, status, end, won_minor: folded.won_amount_minor });
        }
        Prepared { timeline, settings, scope, history, stage_index, reals }
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
        let compiled = self.compile(policy).map_err(WhatIfError::Policy)?;
        let world = self.world();
        let mut scratch = Scratch::default();
        let mut owners: BTreeMap<Name, Sums> = BTreeMap::new();
        let mut cut_deals = Vec::new();
        let deals = self.timeline.deals();
        for real in &self.reals {
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
            policy: policy.clone(),
            as_of: Instant(self.scope.as_of),
            as_logged: self.scope.as_logged,
            outcome,
            by_owner: by_owner.then_some(owners),
            deals: with_deals.then_some(cut_deals),
        })
    }

    /// The outcome over every owner, and each owner's, by owner name.
    fn total(&self, owners: BTreeMap<Name, Sums>) -> (Outcome, Vec<OwnerOutcome>) {
        let currency = self.settings.currency;
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
        let sum =
            |f: fn(&Outcome) -> &Money| Money::new(priced.iter().map(|(_, o, _)| f(o).minor).sum(), currency);
        let effort_value_saved = sum(|o| &o.effort_value_saved);
        let revenue_at_risk = Money::new(total_sums.revenue_minor, currency);
        let outcome = Outcome {
            effort_value_saved,
            calendar_value_saved: sum(|o| &o.calendar_value_saved),
            net_value: Money::new(effort_value_saved.minor - revenue_at_risk.minor, currency),
            revenue_at_risk,
            ..counts(&total_sums, currency)
        };
        (outcome, priced.into_iter().map(|(owner, outcome, _)| OwnerOutcome { owner, outcome }).collect())
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
        let revenue = Money::new(sums.revenue_minor, currency);
        Outcome {
            effort_value_saved: Money::new(effort, currency),
            calendar_value_saved: Money::new(calendar, currency),
            net_value: Money::new(effort - sums.revenue_minor, currency),
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
    /// The row with the greatest net value (the smallest value on a tie).
    pub best: Option<SweepRow>,
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
        for real in &self.reals {
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
        let best = rows
            .iter()
            .fold(None::<&SweepRow>, |best, row| match best {
                Some(b) if b.outcome.net_value.minor >= row.outcome.net_value.minor => Some(b),
                _ => Some(row),
            })
            .cloned();
        Ok(SweepReport {
            rule: rule.to_string(),
            policy: fixed,
            as_of: Instant(self.scope.as_of),
            rows,
            best,
        })
    }
}

impl Report for SweepReport {
    fn tables(&self) -> Vec<Table> {
        let mut columns = vec![self.rule.as_str()];
        columns.extend(OUTCOME_COLUMNS);
        let mut table = Table::new(format!("Sweep of {}, history to {}", self.rule, self.as_of.0), &columns);
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
                Cell::Money(best.outcome.net_value),
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
        net_value: zero,
    }
}

/// The end of the log: the latest `at` any event has.
pub fn log_end(timeline: &Timeline) -> Timestamp {
    timeline.latest_at()
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
        Cell::Money(o.net_value),
    ]
}

impl Report for WhatIfReport {
    fn tables(&self) -> Vec<Table> {
        let policy = serde_json::to_string(&self.policy).expect("policies serialize");
        let mut columns = vec!["owner"];
        columns.extend(OUTCOME_COLUMNS);
        let mut table = Table::new(format!("What if: {policy}, history to {}", self.as_of.0), &columns);
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
}

#[cfg(test)]
mod tests;

//! `report pipeline`: open deals by stage, and closed counts, as of a moment.

use dealledger_events::Currency;
use dealledger_projections::{Name, Status, Timeline, View};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::basis::{count, Basis};
use crate::chart::{Bars, Chart, Series};
use crate::output::{div_round, thousands, units, Cell, Instant, Money, Report, Table};
use crate::{report_currency, stage_indexes, stage_order, NoSuchCurrency, Settings};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageRow {
    pub stage: String,
    pub deals: u64,
    pub amount: Money,
    pub weighted_amount: Money,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Totals {
    pub deals: u64,
    pub amount: Money,
    pub weighted_amount: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Closed {
    pub won: u64,
    pub lost: u64,
    pub disqualified: u64,
}

/// The pipeline of one currency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CurrencyPipeline {
    #[serde(serialize_with = "crate::output::currency_code")]
    pub currency: Currency,
    pub stages: Vec<StageRow>,
    pub totals: Totals,
    pub closed: Closed,
    /// Open deals whose amount is 0: what the amounts stand on.
    #[serde(skip)]
    without_amount: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PipelineReport {
    pub as_of: Instant,
    pub known_at: Instant,
    /// The report currency's figures at the top level, for scripts.
    #[serde(flatten)]
    pub main: CurrencyPipeline,
    /// Every currency, when the deals have more than one and none was asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_currency: Vec<CurrencyPipeline>,
    /// Every currency the deals of the view have, in code order (whichever is shown).
    #[serde(serialize_with = "crate::output::currency_codes")]
    pub currencies: Vec<Currency>,
    #[serde(flatten)]
    pub basis: Basis,
}

#[derive(Default)]
struct Acc {
    /// Per stage name (by [`dealledger_projections::Name`]): deals, amount, amount x basis points.
    stages: Vec<(u64, i128, i128)>,
    closed: (u64, u64, u64),
    /// Open deals with an amount of 0.
    without_amount: u64,
}

impl Acc {
    fn merge(&mut self, other: Acc) {
        if self.stages.len() < other.stages.len() {
            self.stages.resize(other.stages.len(), (0, 0, 0));
        }
        for (row, add) in self.stages.iter_mut().zip(other.stages) {
            *row = (row.0 + add.0, row.1 + add.1, row.2 + add.2);
        }
        self.closed =
            (self.closed.0 + other.closed.0, self.closed.1 + other.closed.1, self.closed.2 + other.closed.2);
        self.without_amount += other.without_amount;
    }
}

/// Open deals by stage (the deal's latest amount at `as_of`, weighted by the stage's
/// probability), every pipeline stage listed in order, then any stage the pipeline no longer has.
pub fn pipeline(
    timeline: &Timeline,
    settings: &Settings,
    view: View,
    currency: Option<Currency>,
) -> Result<PipelineReport, NoSuchCurrency> {
    let stages = settings.pipeline.stages();
    let bp_by_name: Vec<i128> = stage_indexes(timeline, settings)
        .into_iter()
        .map(|i| i.map_or(0, |i| i128::from(stages[i].probability_bp)))
        .collect();
    let parts =
        timeline.fold_deals(view, false, BTreeMap::<Currency, Acc>::new, |by_currency, deal, folded| {
            let acc = by_currency.entry(deal.currency).or_default();
            match folded.status() {
                Status::Won => acc.closed.0 += 1,
                Status::Lost => acc.closed.1 += 1,
                Status::Disqualified => acc.closed.2 += 1,
                Status::Open => {
                    if acc.stages.is_empty() {
                        acc.stages = vec![(0, 0, 0); bp_by_name.len()];
                    }
                    let amount = i128::from(folded.amount_minor);
                    acc.without_amount += u64::from(amount == 0);
                    let row = &mut acc.stages[folded.stage as usize];
                    row.0 += 1;
                    row.1 += amount;
                    row.2 += amount * bp_by_name[folded.stage as usize];
                }
            }
        });
    let mut by_currency: BTreeMap<Currency, Acc> = BTreeMap::new();
    for part in parts {
        for (currency, acc) in part {
            by_currency.entry(currency).or_default().merge(acc);
        }
    }
    let currencies: Vec<Currency> = by_currency.keys().copied().collect();
    let main_currency = report_currency(&currencies, currency, settings)?;
    let mut all: Vec<CurrencyPipeline> = Vec::new();
    by_currency.entry(main_currency).or_default();
    for (currency, acc) in by_currency {
        all.push(finish(timeline, settings, currency, acc));
    }
    let main = all.iter().find(|p| p.currency == main_currency).cloned().expect("inserted above");
    // One currency asked for, one shown.
    let by_currency = if all.len() > 1 && currency.is_none() { all } else { Vec::new() };
    let mut basis = Basis::as_of(timeline, view.as_of);
    let shown = if by_currency.is_empty() { std::slice::from_ref(&main) } else { &by_currency[..] };
    for p in shown {
        let open = p.totals.deals;
        match p.without_amount {
            0 => {}
            n if n == open => basis.note(format!(
                "none of the {} in {} has an amount: their amount and weighted amount are 0 for want of data",
                count(open, "open deal", "open deals"),
                p.currency
            )),
            n => basis.note(format!(
                "{} of the {} in {} have no amount (0): they add nothing to amount and weighted amount",
                thousands(n),
                count(open, "open deal", "open deals"),
                p.currency
            )),
        }
    }
    Ok(PipelineReport {
        as_of: Instant(view.as_of),
        known_at: Instant(view.known_at),
        main,
        by_currency,
        currencies,
        basis,
    })
}

fn finish(timeline: &Timeline, settings: &Settings, currency: Currency, acc: Acc) -> CurrencyPipeline {
    let money = |minor: i128| Money::new(minor, currency);
    let seen: Vec<Name> = (0..acc.stages.len()).filter(|&n| acc.stages[n].0 > 0).map(|n| n as Name).collect();
    let stages = stage_order(timeline, settings, &seen)
        .into_iter()
        .map(|(stage, name)| {
            let (deals, amount, weighted) =
                name.and_then(|n| acc.stages.get(n as usize)).copied().unwrap_or_default();
            StageRow {
                stage,
                deals,
                amount: money(amount),
                weighted_amount: money(div_round(weighted, 10_000)),
            }
        })
        .collect::<Vec<_>>();
    let totals = Totals {
        deals: stages.iter().map(|s| s.deals).sum(),
        amount: money(stages.iter().map(|s| s.amount.minor).sum()),
        weighted_amount: money(stages.iter().map(|s| s.weighted_amount.minor).sum()),
    };
    let (won, lost, disqualified) = acc.closed;
    CurrencyPipeline {
        currency,
        stages,
        totals,
        closed: Closed { won, lost, disqualified },
        without_amount: acc.without_amount,
    }
}

impl Report for PipelineReport {
    fn tables(&self) -> Vec<Table> {
        let all =
            if self.by_currency.is_empty() { std::slice::from_ref(&self.main) } else { &self.by_currency };
        all.iter()
            .map(|p| {
                let title = format!(
                    "Pipeline ({}) as of {}, known at {}: won {}, lost {}, disqualified {}",
                    p.currency,
                    self.as_of.0,
                    self.known_at.0,
                    thousands(p.closed.won),
                    thousands(p.closed.lost),
                    thousands(p.closed.disqualified)
                );
                let mut table = Table::new(title, &["stage", "deals", "amount", "weighted amount"]);
                for s in &p.stages {
                    table.push(vec![
                        Cell::Text(s.stage.clone()),
                        Cell::Int(s.deals as i64),
                        Cell::Money(s.amount),
                        Cell::Money(s.weighted_amount),
                    ]);
                }
                table.push(vec![
                    Cell::Text("total".into()),
                    Cell::Int(p.totals.deals as i64),
                    Cell::Money(p.totals.amount),
                    Cell::Money(p.totals.weighted_amount),
                ]);
                table
            })
            .collect()
    }

    fn csv_table(&self) -> Table {
        let all =
            if self.by_currency.is_empty() { std::slice::from_ref(&self.main) } else { &self.by_currency };
        let mut table = Table::new("", &["currency", "stage", "deals", "amount", "weighted_amount"]);
        for p in all {
            let c = || Cell::Text(p.currency.to_string());
            for s in &p.stages {
                table.push(vec![
                    c(),
                    Cell::Text(s.stage.clone()),
                    Cell::Int(s.deals as i64),
                    Cell::Money(s.amount),
                    Cell::Money(s.weighted_amount),
                ]);
            }
            for (name, n) in
                [("won", p.closed.won), ("lost", p.closed.lost), ("disqualified", p.closed.disqualified)]
            {
                table.push(vec![c(), Cell::Text(name.into()), Cell::Int(n as i64), Cell::Null, Cell::Null]);
            }
        }
        table
    }

    fn note_lines(&self) -> Vec<String> {
        self.basis.lines()
    }

    /// The leading currency's open deals by stage: amount and weighted amount.
    fn chart(&self) -> Option<Chart> {
        let p = &self.main;
        Some(Chart::Bars(Bars {
            title: format!("Open deals by stage ({}), as of {}", p.currency, self.as_of.0),
            unit: p.currency.to_string(),
            categories: p.stages.iter().map(|s| s.stage.clone()).collect(),
            series: vec![
                Series::new("amount", p.stages.iter().map(|s| units(s.amount)).collect()),
                Series::new("weighted amount", p.stages.iter().map(|s| units(s.weighted_amount)).collect()),
            ],
        }))
    }
}

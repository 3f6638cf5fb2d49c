//! `report pipeline`: open deals by stage, and closed counts, as of a moment.

use dealledger_events::Currency;
use dealledger_projections::{Folded, Status, Timeline, View};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::output::{div_round, Cell, Instant, Money, Report, Table};
use crate::{report_currency, Settings};

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
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PipelineReport {
    pub as_of: Instant,
    pub known_at: Instant,
    /// The report currency's figures at the top level, for scripts.
    #[serde(flatten)]
    pub main: CurrencyPipeline,
    /// Every currency, when the deals have more than one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_currency: Vec<CurrencyPipeline>,
}

#[derive(Default)]
struct Acc {
    /// Per stage name: deals, amount, amount x basis points.
    stages: BTreeMap<String, (u64, i128, i128)>,
    closed: (u64, u64, u64),
}

/// Open deals by stage (the deal's latest amount at `as_of`, weighted by the stage's
/// probability), every pipeline stage listed in order, then any stage the pipeline no longer has.
pub fn pipeline(
    timeline: &Timeline,
    settings: &Settings,
    view: View,
    currency: Option<Currency>,
) -> PipelineReport {
    let mut by_currency: BTreeMap<Currency, Acc> = BTreeMap::new();
    let mut folded = Folded::default();
    for deal in timeline.deals() {
        if !folded.fold(deal, view) {
            continue;
        }
        let acc = by_currency.entry(deal.currency).or_default();
        match folded.status() {
            Status::Won => acc.closed.0 += 1,
            Status::Lost => acc.closed.1 += 1,
            Status::Disqualified => acc.closed.2 += 1,
            Status::Open => {
                let stage = timeline.names.resolve(folded.stage);
                let bp = settings
                    .pipeline
                    .index(stage)
                    .map_or(0, |i| settings.pipeline.stages()[i].probability_bp);
                let amount = i128::from(folded.amount_minor);
                let row = match acc.stages.get_mut(stage) {
                    Some(row) => row,
                    None => acc.stages.entry(stage.to_string()).or_default(),
                };
                row.0 += 1;
                row.1 += amount;
                row.2 += amount * i128::from(bp);
            }
        }
    }
    let currencies: Vec<Currency> = by_currency.keys().copied().collect();
    let main_currency = report_currency(&currencies, currency, settings);
    let mut all: Vec<CurrencyPipeline> = Vec::new();
    by_currency.entry(main_currency).or_default();
    for (currency, acc) in by_currency {
        all.push(finish(settings, currency, acc));
    }
    let main = all.iter().find(|p| p.currency == main_currency).cloned().expect("inserted above");
    let by_currency = if all.len() > 1 { all } else { Vec::new() };
    PipelineReport { as_of: Instant(view.as_of), known_at: Instant(view.known_at), main, by_currency }
}

fn finish(settings: &Settings, currency: Currency, mut acc: Acc) -> CurrencyPipeline {
    let money = |minor: i128| Money::new(minor, currency);
    let mut stages = Vec::new();
    let mut push = |stage: String, (deals, amount, weighted): (u64, i128, i128)| {
        stages.push(StageRow {
            stage,
            deals,
            amount: money(amount),
            weighted_amount: money(div_round(weighted, 10_000)),
        });
    };
    for stage in settings.pipeline.stages() {
        let row = acc.stages.remove(&stage.name).unwrap_or_default();
        push(stage.name.clone(), row);
    }
    for (stage, row) in acc.stages {
        push(stage, row);
    }
    let totals = Totals {
        deals: stages.iter().map(|s| s.deals).sum(),
        amount: money(stages.iter().map(|s| s.amount.minor).sum()),
        weighted_amount: money(stages.iter().map(|s| s.weighted_amount.minor).sum()),
    };
    let (won, lost, disqualified) = acc.closed;
    CurrencyPipeline { currency, stages, totals, closed: Closed { won, lost, disqualified } }
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
                    p.closed.won,
                    p.closed.lost,
                    p.closed.disqualified
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
}

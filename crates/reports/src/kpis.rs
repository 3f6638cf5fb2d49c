//! `report kpis`: the period's closed deals, revenue, cycle, created pipeline, first response
//! and stage conversion.

use dealledger_events::money::Decimal;
use dealledger_events::time::MICROS_PER_DAY;
use dealledger_events::{Currency, Timestamp};

const MICROS_PER_HOUR: i64 = MICROS_PER_DAY / 24;
use dealledger_projections::{Name, Status, Timeline, View};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::output::{div_round, opt_num, round6, Cell, Instant, Money, Report, Table};
use crate::{report_currency, stage_indexes, Settings};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Conversion {
    pub stage: String,
    pub entered: u64,
    pub advanced: u64,
    pub rate: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Kpis {
    #[serde(serialize_with = "crate::output::currency_code")]
    pub currency: Currency,
    pub won: u64,
    pub lost: u64,
    pub disqualified: u64,
    pub close_rate: Option<f64>,
    pub revenue: Money,
    pub avg_deal_size: Option<Money>,
    pub avg_cycle_days: Option<f64>,
    pub opportunities_created: u64,
    pub pipeline_generated: Money,
    pub avg_first_response_hours: Option<f64>,
    pub stage_conversion: Vec<Conversion>,
    /// Percent error of `--forecast` against revenue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_accuracy: Option<Option<f64>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KpiReport {
    pub from: Instant,
    pub to: Instant,
    pub known_at: Instant,
    #[serde(flatten)]
    pub main: Kpis,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_currency: Vec<Kpis>,
}

#[derive(Default)]
struct Acc {
    won: u64,
    lost: u64,
    disqualified: u64,
    revenue_minor: i128,
    cycle_micros: i128,
    created: u64,
    generated_minor: i128,
    responses: u64,
    response_micros: i128,
    /// Per pipeline stage index: entered, advanced.
    conversion: Vec<(u64, u64)>,
}

impl Acc {
    fn merge(&mut self, other: Acc) {
        self.won += other.won;
        self.lost += other.lost;
        self.disqualified += other.disqualified;
        self.revenue_minor += other.revenue_minor;
        self.cycle_micros += other.cycle_micros;
        self.created += other.created;
        self.generated_minor += other.generated_minor;
        self.responses += other.responses;
        self.response_micros += other.response_micros;
        for (counts, add) in self.conversion.iter_mut().zip(other.conversion) {
            *counts = (counts.0 + add.0, counts.1 + add.1);
        }
    }
}

fn ratio(numerator: f64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| round6(numerator / denominator as f64))
}

/// KPIs over [from, to): computed from the events with `at < to` (and `recorded_at <=
/// known_at`). `forecast` is an amount of the report currency, any number of decimals.
pub fn kpis(
    timeline: &Timeline,
    settings: &Settings,
    from: Timestamp,
    to: Timestamp,
    known_at: Timestamp,
    currency: Option<Currency>,
    forecast: Option<Decimal>,
) -> KpiReport {
    let view = View { as_of: Timestamp(to.0 - 1), known_at };
    let in_period = |t: Timestamp| from <= t && t < to;
    let stages = settings.pipeline.stages().len();
    let index_by_name = stage_indexes(timeline, settings);
    let index = |name: Name| index_by_name[name as usize];
    let parts =
        timeline.fold_deals(view, true, BTreeMap::<Currency, Acc>::new, |by_currency, deal, folded| {
            let acc = by_currency
                .entry(deal.currency)
                .or_insert_with(|| Acc { conversion: vec![(0, 0); stages], ..Acc::default() });
            let status = folded.status();
            if status != Status::Open && in_period(folded.status_at) {
                match status {
                    Status::Won => {
                        acc.won += 1;
                        acc.revenue_minor += i128::from(folded.won_amount_minor);
                        acc.cycle_micros += i128::from(folded.status_at.0 - folded.opened_at.0);
                    }
                    Status::Lost => acc.lost += 1,
                    Status::Disqualified => acc.disqualified += 1,
                    Status::Open => unreachable!(),
                }
            }
            if !in_period(folded.opened_at) {
                return;
            }
            acc.created += 1;
            acc.generated_minor += i128::from(folded.opened_amount_minor);
            if let Some(first_outbound) = folded.touches.first_outbound_at {
                acc.responses += 1;
                acc.response_micros += i128::from(first_outbound.0 - folded.opened_at.0);
            }
            // Per stage: when the deal first entered it, and whether it reached a later stage (or
            // was won) after that.
            for (i, counts) in acc.conversion.iter_mut().enumerate() {
                let Some(first) = folded.visits.iter().find(|v| index(v.stage) == Some(i)) else {
                    continue;
                };
                counts.0 += 1;
                let later = folded
                    .visits
                    .iter()
                    .any(|v| v.start >= first.start && index(v.stage).is_some_and(|j| j > i));
                if later || status == Status::Won {
                    counts.1 += 1;
                }
            }
        });
    let mut by_currency: BTreeMap<Currency, Acc> = BTreeMap::new();
    for (currency, acc) in parts.into_iter().flatten() {
        match by_currency.entry(currency) {
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(acc);
            }
            std::collections::btree_map::Entry::Occupied(mut entry) => entry.get_mut().merge(acc),
        }
    }
    let currencies: Vec<Currency> = by_currency.keys().copied().collect();
    let main_currency = report_currency(&currencies, currency, settings);
    by_currency
        .entry(main_currency)
        .or_insert_with(|| Acc { conversion: vec![(0, 0); stages], ..Acc::default() });
    let mut all: Vec<Kpis> = by_currency.into_iter().map(|(c, acc)| finish(settings, c, acc)).collect();
    for k in &mut all {
        if k.currency == main_currency {
            if let Some(forecast) = forecast {
                // Both sides at one decimal scale, exactly: revenue in minor units, the
                // forecast as written.
                let exponent = k.currency.exponent();
                let scale = exponent.max(forecast.scale);
                let actual = k.revenue.minor * 10i128.pow(scale - exponent);
                let forecast = i128::from(forecast.mantissa) * 10i128.pow(scale - forecast.scale);
                k.forecast_accuracy = Some(
                    (actual != 0)
                        .then(|| round6((actual - forecast).abs() as f64 / actual.abs() as f64 * 100.0)),
                );
            }
        }
    }
    let main = all.iter().find(|k| k.currency == main_currency).cloned().expect("inserted above");
    let by_currency = if all.len() > 1 { all } else { Vec::new() };
    KpiReport { from: Instant(from), to: Instant(to), known_at: Instant(known_at), main, by_currency }
}

fn finish(settings: &Settings, currency: Currency, acc: Acc) -> Kpis {
    let closed = acc.won + acc.lost + acc.disqualified;
    Kpis {
        currency,
        won: acc.won,
        lost: acc.lost,
        disqualified: acc.disqualified,
        close_rate: ratio(acc.won as f64, closed),
        revenue: Money::new(acc.revenue_minor, currency),
        avg_deal_size: (acc.won > 0)
            .then(|| Money::new(div_round(acc.revenue_minor, i128::from(acc.won)), currency)),
        avg_cycle_days: ratio(acc.cycle_micros as f64 / MICROS_PER_DAY as f64, acc.won),
        opportunities_created: acc.created,
        pipeline_generated: Money::new(acc.generated_minor, currency),
        avg_first_response_hours: ratio(acc.response_micros as f64 / MICROS_PER_HOUR as f64, acc.responses),
        stage_conversion: settings
            .pipeline
            .stages()
            .iter()
            .zip(&acc.conversion)
            .map(|(stage, &(entered, advanced))| Conversion {
                stage: stage.name.clone(),
                entered,
                advanced,
                rate: ratio(advanced as f64, entered),
            })
            .collect(),
        forecast_accuracy: None,
    }
}

impl Report for KpiReport {
    fn tables(&self) -> Vec<Table> {
        let all =
            if self.by_currency.is_empty() { std::slice::from_ref(&self.main) } else { &self.by_currency };
        let mut tables = Vec::new();
        for k in all {
            let mut t = Table::new(
                format!(
                    "KPIs ({}) from {} to {}, known at {}",
                    k.currency, self.from.0, self.to.0, self.known_at.0
                ),
                &["kpi", "value"],
            );
            let mut row = |name: &str, cell: Cell| t.push(vec![Cell::Text(name.into()), cell]);
            row("won (deals)", Cell::Int(k.won as i64));
            row("lost (deals)", Cell::Int(k.lost as i64));
            row("disqualified (deals)", Cell::Int(k.disqualified as i64));
            row("close rate (won / closed)", opt_num(k.close_rate.map(|r| r * 100.0), 1));
            row("revenue", Cell::Money(k.revenue));
            row("avg deal size", k.avg_deal_size.map_or(Cell::Null, Cell::Money));
            row("avg cycle (days)", opt_num(k.avg_cycle_days, 1));
            row("opportunities created", Cell::Int(k.opportunities_created as i64));
            row("pipeline generated", Cell::Money(k.pipeline_generated));
            row("avg first response (hours)", opt_num(k.avg_first_response_hours, 1));
            if let Some(accuracy) = k.forecast_accuracy {
                row("forecast error (%)", opt_num(accuracy, 1));
            }
            tables.push(t);
            let mut c = Table::new(
                "Stage conversion (deals opened in the period)",
                &["stage", "entered", "advanced", "rate (%)"],
            );
            for s in &k.stage_conversion {
                c.push(vec![
                    Cell::Text(s.stage.clone()),
                    Cell::Int(s.entered as i64),
                    Cell::Int(s.advanced as i64),
                    opt_num(s.rate.map(|r| r * 100.0), 1),
                ]);
            }
            tables.push(c);
        }
        tables
    }

    /// One row per currency, a column per KPI (stage conversion as `conversion_STAGE`).
    fn csv_table(&self) -> Table {
        let all =
            if self.by_currency.is_empty() { std::slice::from_ref(&self.main) } else { &self.by_currency };
        let mut columns = vec![
            "currency",
            "won",
            "lost",
            "disqualified",
            "close_rate",
            "revenue",
            "avg_deal_size",
            "avg_cycle_days",
            "opportunities_created",
            "pipeline_generated",
            "avg_first_response_hours",
            "forecast_accuracy",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        for stage in &self.main.stage_conversion {
            columns.push(format!("conversion_{}", stage.stage));
        }
        let mut table = Table { title: String::new(), columns, rows: Vec::new() };
        for k in all {
            let mut row = vec![
                Cell::Text(k.currency.to_string()),
                Cell::Int(k.won as i64),
                Cell::Int(k.lost as i64),
                Cell::Int(k.disqualified as i64),
                opt_num(k.close_rate, 6),
                Cell::Money(k.revenue),
                k.avg_deal_size.map_or(Cell::Null, Cell::Money),
                opt_num(k.avg_cycle_days, 6),
                Cell::Int(k.opportunities_created as i64),
                Cell::Money(k.pipeline_generated),
                opt_num(k.avg_first_response_hours, 6),
                opt_num(k.forecast_accuracy.flatten(), 6),
            ];
            row.extend(k.stage_conversion.iter().map(|s| opt_num(s.rate, 6)));
            table.push(row);
        }
        table
    }
}

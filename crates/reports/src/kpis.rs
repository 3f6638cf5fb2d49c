//! `report kpis`: the period's closed deals, revenue, cycle, created pipeline, first response,
//! stage conversion, sales velocity and CAC, and per owner win rate, quota attainment and
//! selling time.

use dealledger_events::money::Decimal;
use dealledger_events::time::MICROS_PER_DAY;
use dealledger_events::{Currency, Timestamp};

const MICROS_PER_HOUR: i64 = MICROS_PER_DAY / 24;
use dealledger_projections::{DealHistory, Folded, Name, Status, Timeline, View};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::basis::{count, Basis};
use crate::chart::{Bars, Chart, Series};
use crate::output::{div_round, opt_num, round6, thousands, Cell, Instant, Money, Report, Table};
use crate::{report_currency, stage_indexes, NoSuchCurrency, Settings};

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
    pub first_response_hours_median: Option<f64>,
    pub first_response_hours_p90: Option<f64>,
    pub stage_conversion: Vec<Conversion>,
    /// won / (won + lost): the close rate without the disqualified.
    pub win_rate: Option<f64>,
    /// opportunities_created x win_rate x avg_deal_size / avg_cycle_days: money a day.
    pub sales_velocity: Option<Money>,
    /// Spend of the period from `[costs.spend]` (months prorated by their overlap with it); null
    /// without a month of spend that overlaps the period, and for a currency other than the
    /// settings' one.
    pub spend: Option<Money>,
    /// spend / won.
    pub cac: Option<Money>,
    /// Percent error of `--forecast` against revenue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_accuracy: Option<Option<f64>>,
    /// What the money figures stand on: won deals and new deals with an amount of 0.
    #[serde(skip)]
    won_without_amount: u64,
    #[serde(skip)]
    created_without_amount: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KpiReport {
    pub from: Instant,
    pub to: Instant,
    pub known_at: Instant,
    #[serde(flatten)]
    pub main: Kpis,
    /// Every currency, when the deals have more than one and none was asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_currency: Vec<Kpis>,
    /// Every currency the deals of the view have, in code order (whichever is shown).
    #[serde(serialize_with = "crate::output::currency_codes")]
    pub currencies: Vec<Currency>,
    /// Per owner (the deal's owner as of the period's end), in name order.
    pub by_owner: Vec<OwnerKpis>,
    /// `[costs] currency`: the owners' revenue and quota are in it, whichever currency leads.
    #[serde(serialize_with = "crate::output::currency_code")]
    pub by_owner_currency: Currency,
    #[serde(flatten)]
    pub basis: Basis,
}

/// One owner's period. Counts and touch minutes over the deals of every currency; revenue and
/// quota in the settings' currency (deals of other currencies do not count toward a quota).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OwnerKpis {
    pub owner: String,
    pub won: u64,
    pub lost: u64,
    /// won / (won + lost).
    pub win_rate: Option<f64>,
    pub revenue: Money,
    /// The owner's annual quota prorated to the period: quota x period / 365 days.
    pub quota: Money,
    /// revenue / quota.
    pub quota_attainment: Option<f64>,
    /// Minutes of the touches in the period (a touch's own, else its channel's default).
    pub touch_minutes: i64,
    /// working_days x working_hours, prorated to the period like the quota.
    pub working_hours: f64,
    /// touch_minutes / (working_hours x 60); null on a history without touches (unknown, not 0).
    pub selling_time_share: Option<f64>,
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
    /// First response times of the deals opened in the period.
    responses_micros: Vec<i64>,
    /// Per pipeline stage index: entered, advanced.
    conversion: Vec<(u64, u64)>,
    won_without_amount: u64,
    created_without_amount: u64,
}

#[derive(Default)]
struct OwnerAcc {
    won: u64,
    lost: u64,
    /// Of the won deals in the settings' currency.
    revenue_minor: i128,
    touch_minutes: i64,
}

impl OwnerAcc {
    fn merge(&mut self, other: &OwnerAcc) {
        self.won += other.won;
        self.lost += other.lost;
        self.revenue_minor += other.revenue_minor;
        self.touch_minutes += other.touch_minutes;
    }
}

/// One fold part's sums.
#[derive(Default)]
struct Part {
    by_currency: BTreeMap<Currency, Acc>,
    by_owner: BTreeMap<Name, OwnerAcc>,
    /// Whether any deal of the view has a touch.
    touched: bool,
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
        self.responses_micros.extend(other.responses_micros);
        for (counts, add) in self.conversion.iter_mut().zip(other.conversion) {
            *counts = (counts.0 + add.0, counts.1 + add.1);
        }
        self.won_without_amount += other.won_without_amount;
        self.created_without_amount += other.created_without_amount;
    }
}

fn ratio(numerator: f64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| round6(numerator / denominator as f64))
}

/// What one deal adds to a fold part's sums over [from, to).
struct PeriodFold<'a> {
    settings: &'a Settings,
    view: View,
    from: Timestamp,
    to: Timestamp,
    /// A stage name's index in the pipeline, by name.
    index_by_name: Vec<Option<usize>>,
}

impl PeriodFold<'_> {
    fn in_period(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }

    fn new_acc(&self) -> Acc {
        Acc { conversion: vec![(0, 0); self.settings.pipeline.stages().len()], ..Acc::default() }
    }

    fn add(&self, part: &mut Part, deal: &DealHistory<'_>, folded: &Folded) {
        part.touched |= folded.touches.count > 0;
        let owner = part.by_owner.entry(folded.owner).or_default();
        owner.touch_minutes += deal
            .touches_in(self.view)
            .filter(|touch| self.in_period(touch.at))
            .map(|touch| touch.minutes_or_default())
            .sum::<i64>();
        let acc = part.by_currency.entry(deal.currency).or_insert_with(|| self.new_acc());
        let status = folded.status();
        if status != Status::Open && self.in_period(folded.status_at) {
            match status {
                Status::Won => {
                    acc.won += 1;
                    acc.won_without_amount += u64::from(folded.won_amount_minor == 0);
                    acc.revenue_minor += i128::from(folded.won_amount_minor);
                    acc.cycle_micros += i128::from(folded.status_at.0 - folded.opened_at.0);
                    owner.won += 1;
                    if deal.currency == self.settings.currency {
                        owner.revenue_minor += i128::from(folded.won_amount_minor);
                    }
                }
                Status::Lost => {
                    acc.lost += 1;
                    owner.lost += 1;
                }
                Status::Disqualified => acc.disqualified += 1,
                Status::Open => unreachable!(),
            }
        }
        if self.in_period(folded.opened_at) {
            self.add_created(acc, folded, status);
        }
    }

    /// A deal opened in the period: its amount, its first response, and per stage whether it
    /// entered it and whether it entered a later stage (or was won) after it first did. "After"
    /// is the order of the visits, which is the order of entry, (at, seq): two moves at one
    /// instant count in the order they were appended.
    fn add_created(&self, acc: &mut Acc, folded: &Folded, status: Status) {
        acc.created += 1;
        acc.created_without_amount += u64::from(folded.opened_amount_minor == 0);
        acc.generated_minor += i128::from(folded.opened_amount_minor);
        if let Some(first_outbound) = folded.touches.first_outbound_at {
            acc.responses_micros.push(first_outbound.0 - folded.opened_at.0);
        }
        let index = |name: Name| self.index_by_name.get(name as usize).copied().flatten();
        for (i, counts) in acc.conversion.iter_mut().enumerate() {
            let Some(first) = folded.visits.iter().position(|v| index(v.stage) == Some(i)) else {
                continue;
            };
            counts.0 += 1;
            let later = folded
                .visits
                .get(first + 1..)
                .unwrap_or_default()
                .iter()
                .any(|v| index(v.stage).is_some_and(|j| j > i));
            if later || status == Status::Won {
                counts.1 += 1;
            }
        }
    }
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
) -> Result<KpiReport, NoSuchCurrency> {
    let view = View { as_of: Timestamp(to.0 - 1), known_at };
    let fold = PeriodFold { settings, view, from, to, index_by_name: stage_indexes(timeline, settings) };
    let parts =
        timeline.fold_deals(view, true, Part::default, |part, deal, folded| fold.add(part, deal, folded));
    let mut owners: BTreeMap<&str, OwnerAcc> =
        settings.owner_rates.keys().map(|owner| (owner.as_str(), OwnerAcc::default())).collect();
    for part in &parts {
        for (&name, acc) in &part.by_owner {
            owners.entry(timeline.names.resolve(name)).or_default().merge(acc);
        }
    }
    let touched = parts.iter().any(|part| part.touched);
    let period_micros = i128::from(to.0.saturating_sub(from.0).max(0));
    let by_owner = owners
        .into_iter()
        .map(|(owner, acc)| owner_kpis(settings, owner, acc, period_micros, touched))
        .collect();
    let mut by_currency: BTreeMap<Currency, Acc> = BTreeMap::new();
    for (currency, acc) in parts.into_iter().flat_map(|part| part.by_currency) {
        match by_currency.entry(currency) {
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(acc);
            }
            std::collections::btree_map::Entry::Occupied(mut entry) => entry.get_mut().merge(acc),
        }
    }
    let currencies: Vec<Currency> = by_currency.keys().copied().collect();
    let main_currency = report_currency(&currencies, currency, settings)?;
    by_currency.entry(main_currency).or_insert_with(|| fold.new_acc());
    let spend = spend_in(settings, from, to);
    let mut all: Vec<Kpis> = by_currency
        .into_iter()
        .map(|(c, acc)| finish(settings, c, acc, spend.filter(|_| c == settings.currency)))
        .collect();
    let main = all.iter_mut().find(|k| k.currency == main_currency).expect("inserted above");
    if let Some(forecast) = forecast {
        main.forecast_accuracy = Some(forecast_accuracy(main.revenue.minor, main.currency, forecast));
    }
    let main = main.clone();
    // One currency asked for, one shown.
    let by_currency = if all.len() > 1 && currency.is_none() { all } else { Vec::new() };
    let shown = if by_currency.is_empty() { std::slice::from_ref(&main) } else { &by_currency[..] };
    let basis = kpis_basis(timeline, from, to, touched, shown);
    Ok(KpiReport {
        from: Instant(from),
        to: Instant(to),
        known_at: Instant(known_at),
        main,
        by_currency,
        currencies,
        by_owner,
        by_owner_currency: settings.currency,
        basis,
    })
}

/// |actual - forecast| / |actual| in percent (null when nothing was won), both sides at one
/// decimal scale, exactly: revenue in minor units, the forecast as written.
fn forecast_accuracy(revenue_minor: i128, currency: Currency, forecast: Decimal) -> Option<f64> {
    let exponent = currency.exponent();
    let scale = exponent.max(forecast.scale);
    let actual = revenue_minor * 10i128.pow(scale - exponent);
    let forecast = i128::from(forecast.mantissa) * 10i128.pow(scale - forecast.scale);
    (actual != 0).then(|| round6((actual - forecast).abs() as f64 / actual.abs() as f64 * 100.0))
}

/// What the figures stand on: the period, and where the history holds no touches or deals
/// without an amount.
fn kpis_basis(timeline: &Timeline, from: Timestamp, to: Timestamp, touched: bool, shown: &[Kpis]) -> Basis {
    let mut basis = Basis::period(timeline, from, to);
    if !touched && !timeline.deals().is_empty() {
        basis.note(
            "the history holds no touches: first response and selling time cannot be computed (shown \
             empty, not 0)",
        );
    }
    for k in shown {
        let c = k.currency;
        if k.won_without_amount > 0 {
            basis.note(format!(
                "{} of the {} in {c} have no amount (0): revenue, avg deal size and sales velocity count \
                 them as 0",
                thousands(k.won_without_amount),
                count(k.won, "won deal", "won deals")
            ));
        }
        if k.created_without_amount > 0 {
            basis.note(format!(
                "{} of the {} opened in {c} have no amount (0): pipeline generated counts them as 0",
                thousands(k.created_without_amount),
                count(k.opportunities_created, "deal", "deals")
            ));
        }
    }
    basis
}

/// A year's figure prorated to `period_micros`: x period / 365 days, rounded to the unit.
fn prorated(yearly: i128, period_micros: i128) -> i128 {
    div_round(yearly * period_micros, 365 * i128::from(MICROS_PER_DAY))
}

/// One owner's figures; `touched`: whether the view has any touch (without, selling time is
/// unknown).
fn owner_kpis(
    settings: &Settings,
    owner: &str,
    acc: OwnerAcc,
    period_micros: i128,
    touched: bool,
) -> OwnerKpis {
    let rates = settings.rates(owner);
    let quota_minor = prorated(i128::from(rates.quota_minor), period_micros);
    let year_hours = f64::from(rates.working_days) * f64::from(rates.working_hours);
    let working_hours = year_hours * period_micros as f64 / (365.0 * MICROS_PER_DAY as f64);
    OwnerKpis {
        owner: owner.to_string(),
        won: acc.won,
        lost: acc.lost,
        win_rate: ratio(acc.won as f64, acc.won + acc.lost),
        revenue: Money::new(acc.revenue_minor, settings.currency),
        quota: Money::new(quota_minor, settings.currency),
        quota_attainment: (quota_minor > 0).then(|| round6(acc.revenue_minor as f64 / quota_minor as f64)),
        touch_minutes: acc.touch_minutes,
        working_hours: round6(working_hours),
        selling_time_share: (working_hours > 0.0 && touched)
            .then(|| round6(acc.touch_minutes as f64 / (working_hours * 60.0))),
    }
}

/// The spend of [from, to) in minor units of the settings' currency: each month of
/// `[costs.spend]` prorated by the part of it inside the period (rounded per month); None when no
/// month overlaps the period.
fn spend_in(settings: &Settings, from: Timestamp, to: Timestamp) -> Option<i128> {
    let mut total = None;
    for month in &settings.spend {
        let overlap = i128::from(to.0.min(month.to.0)) - i128::from(from.0.max(month.from.0));
        if overlap <= 0 {
            continue;
        }
        let length = i128::from(month.to.0) - i128::from(month.from.0);
        *total.get_or_insert(0) += div_round(i128::from(month.minor) * overlap, length);
    }
    total
}

fn finish(settings: &Settings, currency: Currency, mut acc: Acc, spend_minor: Option<i128>) -> Kpis {
    let closed = acc.won + acc.lost + acc.disqualified;
    let responses = acc.responses_micros.len() as u64;
    let response_sum: i128 = acc.responses_micros.iter().map(|&m| i128::from(m)).sum();
    let hours = |micros: i64| micros as f64 / MICROS_PER_HOUR as f64;
    let response_order = crate::stages::OrderStats::of(&mut acc.responses_micros, hours);
    // opportunities x (won / (won + lost)) x (revenue / won) / (cycle days / won), with the
    // won counts cancelled: opportunities x revenue x won / ((won + lost) x cycle days).
    let velocity = (acc.won > 0 && acc.cycle_micros > 0).then(|| {
        let cycle_days = acc.cycle_micros as f64 / MICROS_PER_DAY as f64;
        let minor = acc.created as f64 * acc.revenue_minor as f64 * acc.won as f64
            / ((acc.won + acc.lost) as f64 * cycle_days);
        Money::new(minor.round() as i128, currency)
    });
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
        avg_first_response_hours: ratio(response_sum as f64 / MICROS_PER_HOUR as f64, responses),
        first_response_hours_median: response_order.map(|o| round6(o.median)),
        first_response_hours_p90: response_order.map(|o| round6(o.p90)),
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
        win_rate: ratio(acc.won as f64, acc.won + acc.lost),
        sales_velocity: velocity,
        spend: spend_minor.map(|minor| Money::new(minor, currency)),
        cac: spend_minor
            .filter(|_| acc.won > 0)
            .map(|minor| Money::new(div_round(minor, i128::from(acc.won)), currency)),
        forecast_accuracy: None,
        won_without_amount: acc.won_without_amount,
        created_without_amount: acc.created_without_amount,
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
            row("close rate (%, won / closed)", opt_num(k.close_rate.map(|r| r * 100.0), 1));
            row("revenue", Cell::Money(k.revenue));
            row("avg deal size", k.avg_deal_size.map_or(Cell::Null, Cell::Money));
            row("avg cycle (days)", opt_num(k.avg_cycle_days, 1));
            row("opportunities created", Cell::Int(k.opportunities_created as i64));
            row("pipeline generated", Cell::Money(k.pipeline_generated));
            row("avg first response (hours)", opt_num(k.avg_first_response_hours, 1));
            row("median first response (hours)", opt_num(k.first_response_hours_median, 1));
            row("p90 first response (hours)", opt_num(k.first_response_hours_p90, 1));
            row("win rate (%, won / (won + lost))", opt_num(k.win_rate.map(|r| r * 100.0), 1));
            row("sales velocity (per day)", k.sales_velocity.map_or(Cell::Null, Cell::Money));
            row("spend", k.spend.map_or(Cell::Null, Cell::Money));
            row("CAC (spend / won)", k.cac.map_or(Cell::Null, Cell::Money));
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
        let mut owners = Table::new(
            "Per owner",
            &[
                "owner",
                "won",
                "lost",
                "win rate (%)",
                "revenue",
                "quota (period)",
                "attainment (%)",
                "touch minutes",
                "working hours",
                "selling time (%)",
            ],
        );
        for o in &self.by_owner {
            owners.push(vec![
                Cell::Text(o.owner.clone()),
                Cell::Int(o.won as i64),
                Cell::Int(o.lost as i64),
                opt_num(o.win_rate.map(|r| r * 100.0), 1),
                Cell::Money(o.revenue),
                Cell::Money(o.quota),
                opt_num(o.quota_attainment.map(|r| r * 100.0), 1),
                Cell::Int(o.touch_minutes),
                opt_num(Some(o.working_hours), 1),
                opt_num(o.selling_time_share.map(|r| r * 100.0), 1),
            ]);
        }
        tables.push(owners);
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
            "first_response_hours_median",
            "first_response_hours_p90",
            "win_rate",
            "sales_velocity",
            "spend",
            "cac",
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
                opt_num(k.first_response_hours_median, 6),
                opt_num(k.first_response_hours_p90, 6),
                opt_num(k.win_rate, 6),
                k.sales_velocity.map_or(Cell::Null, Cell::Money),
                k.spend.map_or(Cell::Null, Cell::Money),
                k.cac.map_or(Cell::Null, Cell::Money),
                opt_num(k.forecast_accuracy.flatten(), 6),
            ];
            row.extend(k.stage_conversion.iter().map(|s| opt_num(s.rate, 6)));
            table.push(row);
        }
        table
    }

    fn note_lines(&self) -> Vec<String> {
        self.basis.lines()
    }

    /// The leading currency's stage conversion, in percent.
    fn chart(&self) -> Option<Chart> {
        let k = &self.main;
        Some(Chart::Bars(Bars {
            title: format!(
                "Stage conversion of the deals opened from {} to {} ({})",
                self.from.0, self.to.0, k.currency
            ),
            unit: "% advanced".into(),
            categories: k.stage_conversion.iter().map(|s| s.stage.clone()).collect(),
            series: vec![Series::new(
                "rate",
                k.stage_conversion.iter().map(|s| s.rate.map_or(f64::NAN, |r| round6(r * 100.0))).collect(),
            )],
        }))
    }
}

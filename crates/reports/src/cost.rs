//! `report bad-deal-cost`: the selling time spent on deals that ended lost or disqualified, and
//! what it was worth.

use dealledger_events::Timestamp;
use dealledger_projections::{Name, Status, Timeline, View};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::basis::{count, Basis};
use crate::chart::{Bars, Chart, Series};
use crate::output::{div_round, round6, thousands, units, Cell, Instant, Money, Report, Table};
use crate::Settings;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cost {
    pub bad_deals: u64,
    pub effort_hours: f64,
    pub time_cost: Money,
    pub commission_cost: Money,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OwnerCost {
    pub owner: String,
    #[serde(flatten)]
    pub cost: Cost,
    /// Annual quota / selling hours per year.
    pub hourly_value: Money,
}

/// One bad deal and what it cost (`--deals`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DealCost {
    pub deal: String,
    pub owner: String,
    /// lost or disqualified.
    pub outcome: &'static str,
    pub ended_at: Instant,
    pub effort_hours: f64,
    pub time_cost: Money,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostReport {
    pub from: Instant,
    pub to: Instant,
    pub known_at: Instant,
    /// `[costs] currency`: the costs price the owners' time.
    #[serde(serialize_with = "crate::output::currency_code")]
    pub currency: dealledger_events::Currency,
    pub totals: Cost,
    /// By time cost, the costliest first (then by owner).
    pub by_owner: Vec<OwnerCost>,
    /// With `deals`: every bad deal, the costliest first (then by deal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deals: Option<Vec<DealCost>>,
    #[serde(flatten)]
    pub basis: Basis,
}

/// Per owner: bad deals, minutes, and with `deals` each deal's (id, status, end, minutes).
#[derive(Default)]
struct OwnerSums {
    deals: u64,
    minutes: i64,
    /// Bad deals without a touch in the view.
    untouched: u64,
    listed: Vec<(String, Status, Timestamp, i64)>,
}

/// Hours of `minutes`, to 6 decimals (a whole second), from the integer: never a sum of
/// rounded figures, never -0.
fn hours_of(minutes: i64) -> f64 {
    round6(minutes as f64 / 60.0) + 0.0
}

/// `owner`'s bad-deal cost, and each of its listed deals' into `deals`: minutes of its selling
/// time priced at its rates, rounded once.
fn owner_cost(settings: &Settings, owner: &str, sums: &OwnerSums, deals: &mut Vec<DealCost>) -> OwnerCost {
    let currency = settings.currency;
    let rates = settings.rates(owner);
    // Minutes of this owner's selling time as (time cost, commission cost), rounded once.
    let price = |minutes: i64| {
        let per_minute_divisor = i128::from(rates.selling_hours) * 60;
        let value = i128::from(minutes) * i128::from(rates.quota_minor);
        let commission = value * i128::from(rates.commission_bp);
        (div_round(value, per_minute_divisor), div_round(commission, per_minute_divisor * 10_000))
    };
    for (deal, status, ended, minutes) in &sums.listed {
        deals.push(DealCost {
            deal: deal.clone(),
            owner: owner.to_string(),
            outcome: status.as_str(),
            ended_at: Instant(*ended),
            effort_hours: hours_of(*minutes),
            time_cost: Money::new(price(*minutes).0, currency),
        });
    }
    let (time_cost, commission_cost) = price(sums.minutes);
    OwnerCost {
        owner: owner.to_string(),
        cost: Cost {
            bad_deals: sums.deals,
            effort_hours: hours_of(sums.minutes),
            time_cost: Money::new(time_cost, currency),
            commission_cost: Money::new(commission_cost, currency),
        },
        hourly_value: Money::new(
            div_round(i128::from(rates.quota_minor), i128::from(rates.selling_hours)),
            currency,
        ),
    }
}

/// What the cost stands on: the period, and where the history holds no touches at all or bad
/// deals without one.
fn cost_basis(
    timeline: &Timeline,
    from: Timestamp,
    to: Timestamp,
    touched: bool,
    untouched: u64,
    bad_deals: u64,
) -> Basis {
    let mut basis = Basis::period(timeline, from, to);
    if !touched {
        basis.note(
            "the history holds no touches: effort is 0 hours and its cost 0 for want of data, not because \
             the bad deals cost no time",
        );
    } else if untouched > 0 {
        basis.note(format!(
            "{} of the {} have no touch: counted at 0 hours",
            thousands(untouched),
            count(bad_deals, "bad deal", "bad deals")
        ));
    }
    basis
}

/// Bad deals: final status (on the events with `at < to`) lost or disqualified, set by an event
/// in [from, to). Effort: every touch up to and including that event's `at`. Each owner's costs
/// are rounded to the minor unit once; the totals are the sums of the owners' figures (effort
/// hours from the total minutes). With `with_deals`, each bad deal too.
pub fn bad_deal_cost(
    timeline: &Timeline,
    settings: &Settings,
    from: Timestamp,
    to: Timestamp,
    known_at: Timestamp,
    with_deals: bool,
) -> CostReport {
    let view = View { as_of: Timestamp(to.0 - 1), known_at };
    // Per part: per owner, and whether the view held any touch at all.
    let parts = timeline.fold_deals(
        view,
        true,
        <(BTreeMap<Name, OwnerSums>, bool)>::default,
        |(owners, touched), deal, folded| {
            *touched |= folded.touches.count > 0;
            let ended = folded.status_at;
            if folded.status().is_bad() && from <= ended && ended < to {
                let owner = owners.entry(folded.owner).or_default();
                owner.deals += 1;
                owner.minutes += folded.touches.minutes_to_status;
                owner.untouched += u64::from(folded.touches.count == 0);
                if with_deals {
                    owner.listed.push((
                        deal.id.to_string(),
                        folded.status(),
                        ended,
                        folded.touches.minutes_to_status,
                    ));
                }
            }
        },
    );
    let mut touched = false;
    let mut owners: BTreeMap<&str, OwnerSums> = BTreeMap::new();
    for (part, part_touched) in parts {
        touched |= part_touched;
        for (owner, add) in part {
            let sum = owners.entry(timeline.names.resolve(owner)).or_default();
            sum.deals += add.deals;
            sum.minutes += add.minutes;
            sum.untouched += add.untouched;
            sum.listed.extend(add.listed);
        }
    }
    let currency = settings.currency;
    let mut deals = Vec::new();
    let mut by_owner: Vec<OwnerCost> =
        owners.iter().map(|(&owner, sums)| owner_cost(settings, owner, sums, &mut deals)).collect();
    by_owner.sort_by(|a, b| {
        b.cost.time_cost.minor.cmp(&a.cost.time_cost.minor).then_with(|| a.owner.cmp(&b.owner))
    });
    deals.sort_by(|a, b| b.time_cost.minor.cmp(&a.time_cost.minor).then_with(|| a.deal.cmp(&b.deal)));
    let bad_deals: u64 = owners.values().map(|o| o.deals).sum();
    let totals = Cost {
        bad_deals,
        effort_hours: hours_of(owners.values().map(|o| o.minutes).sum()),
        time_cost: Money::new(by_owner.iter().map(|o| o.cost.time_cost.minor).sum(), currency),
        commission_cost: Money::new(by_owner.iter().map(|o| o.cost.commission_cost.minor).sum(), currency),
    };
    let untouched: u64 = owners.values().map(|o| o.untouched).sum();
    let basis = cost_basis(timeline, from, to, touched, untouched, bad_deals);
    CostReport {
        from: Instant(from),
        to: Instant(to),
        known_at: Instant(known_at),
        currency,
        totals,
        by_owner,
        deals: with_deals.then_some(deals),
        basis,
    }
}

impl Report for CostReport {
    fn tables(&self) -> Vec<Table> {
        let mut table = Table::new(
            format!("Cost of bad deals (lost or disqualified) from {} to {}", self.from.0, self.to.0),
            &["owner", "bad deals", "effort (hours)", "hourly value", "time cost", "commission cost"],
        );
        let row = |name: &str, c: &Cost, hourly: Cell| {
            vec![
                Cell::Text(name.into()),
                Cell::Int(c.bad_deals as i64),
                Cell::Num(c.effort_hours, 2),
                hourly,
                Cell::Money(c.time_cost),
                Cell::Money(c.commission_cost),
            ]
        };
        for o in &self.by_owner {
            table.push(row(&o.owner, &o.cost, Cell::Money(o.hourly_value)));
        }
        table.push(row("(total)", &self.totals, Cell::Null));
        let mut tables = vec![table];
        if let Some(deals) = &self.deals {
            let mut t = Table::new(
                "Bad deals, the costliest first",
                &["deal", "owner", "outcome", "ended at", "effort (hours)", "time cost"],
            );
            for d in deals {
                t.push(vec![
                    Cell::Text(d.deal.clone()),
                    Cell::Text(d.owner.clone()),
                    Cell::Text(d.outcome.into()),
                    Cell::Text(d.ended_at.0.to_string()),
                    Cell::Num(d.effort_hours, 2),
                    Cell::Money(d.time_cost),
                ]);
            }
            tables.push(t);
        }
        tables
    }

    /// Per owner; with `deals`, per deal.
    fn csv_table(&self) -> Table {
        let mut tables = self.tables();
        let (columns, rows): (&[&str], _) = match (self.deals.is_some(), tables.pop()) {
            (true, Some(deals)) => {
                (&["deal", "owner", "outcome", "ended_at", "effort_hours", "time_cost"], deals.rows)
            }
            (_, last) => (
                &["owner", "bad_deals", "effort_hours", "hourly_value", "time_cost", "commission_cost"],
                last.map(|t| t.rows).unwrap_or_default(),
            ),
        };
        let mut table = Table::new("", columns);
        table.rows = rows;
        table
    }

    fn note_lines(&self) -> Vec<String> {
        self.basis.lines()
    }

    /// Each owner's time cost, the costliest first.
    fn chart(&self) -> Option<Chart> {
        let currency = self.currency;
        Some(Chart::Bars(Bars {
            title: format!("Selling time spent on bad deals from {} to {}", self.from.0, self.to.0),
            unit: currency.to_string(),
            categories: self.by_owner.iter().map(|o| o.owner.clone()).collect(),
            series: vec![Series::new(
                "time cost",
                self.by_owner.iter().map(|o| units(o.cost.time_cost)).collect(),
            )],
        }))
    }
}

//! `report bad-deal-cost`: the selling time spent on deals that ended lost or disqualified, and
//! what it was worth.

use dealledger_events::Timestamp;
use dealledger_projections::{Name, Timeline, View};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::output::{div_round, round6, Cell, Instant, Money, Report, Table};
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

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostReport {
    pub from: Instant,
    pub to: Instant,
    pub known_at: Instant,
    pub totals: Cost,
    pub by_owner: Vec<OwnerCost>,
}

/// Bad deals: final status (on the events with `at < to`) lost or disqualified, set by an event
/// in [from, to). Effort: every touch up to and including that event's `at`. Each owner's costs
/// are rounded to the minor unit once; the totals are the sums of the owners' figures.
pub fn bad_deal_cost(
    timeline: &Timeline,
    settings: &Settings,
    from: Timestamp,
    to: Timestamp,
    known_at: Timestamp,
    _with_deals: bool,
) -> CostReport {
    let view = View { as_of: Timestamp(to.0 - 1), known_at };
    let parts = timeline.fold_deals(view, true, BTreeMap::<Name, (u64, i64)>::new, |owners, _, folded| {
        let ended = folded.status_at;
        if folded.status().is_bad() && from <= ended && ended < to {
            let owner = owners.entry(folded.owner).or_default();
            owner.0 += 1;
            owner.1 += folded.touches.minutes_to_status;
        }
    });
    let mut owners: BTreeMap<&str, (u64, i64)> = BTreeMap::new();
    for (owner, (deals, minutes)) in parts.into_iter().flatten() {
        let sum = owners.entry(timeline.names.resolve(owner)).or_default();
        sum.0 += deals;
        sum.1 += minutes;
    }
    let currency = settings.currency;
    let by_owner: Vec<OwnerCost> = owners
        .into_iter()
        .map(|(owner, (bad_deals, minutes))| {
            let rates = settings.rates(owner);
            let per_minute_divisor = i128::from(rates.selling_hours) * 60;
            let value = i128::from(minutes) * i128::from(rates.quota_minor);
            OwnerCost {
                owner: owner.to_string(),
                cost: Cost {
                    bad_deals,
                    effort_hours: round6(minutes as f64 / 60.0),
                    time_cost: Money::new(div_round(value, per_minute_divisor), currency),
                    commission_cost: Money::new(
                        div_round(value * i128::from(rates.commission_bp), per_minute_divisor * 10_000),
                        currency,
                    ),
                },
                hourly_value: Money::new(
                    div_round(i128::from(rates.quota_minor), i128::from(rates.selling_hours)),
                    currency,
                ),
            }
        })
        .collect();
    let totals = Cost {
        bad_deals: by_owner.iter().map(|o| o.cost.bad_deals).sum(),
        effort_hours: round6(by_owner.iter().map(|o| o.cost.effort_hours).sum()),
        time_cost: Money::new(by_owner.iter().map(|o| o.cost.time_cost.minor).sum(), currency),
        commission_cost: Money::new(by_owner.iter().map(|o| o.cost.commission_cost.minor).sum(), currency),
    };
    CostReport { from: Instant(from), to: Instant(to), known_at: Instant(known_at), totals, by_owner }
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
        vec![table]
    }

    fn csv_table(&self) -> Table {
        let mut table = Table::new(
            "",
            &["owner", "bad_deals", "effort_hours", "hourly_value", "time_cost", "commission_cost"],
        );
        table.rows = self.tables().remove(0).rows;
        table
    }
}

//! `report time-in-stage`: how long stage visits take, per stage (and per owner), and each deal's
//! cumulative time in each stage.

use dealledger_projections::{Folded, Name, Timeline, View};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::basis::Basis;
use crate::chart::{Bars, Chart, Series};
use crate::output::{days, opt_num, round6, Cell, Instant, Report, Table};
use crate::{stage_order, Settings};

/// Statistics over a set of durations (microseconds), in days.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DurationStats {
    pub completed: u64,
    pub mean_days: Option<f64>,
    pub median_days: Option<f64>,
    pub p90_days: Option<f64>,
    pub max_days: Option<f64>,
}

impl DurationStats {
    /// Reorders `micros` (order statistics by selection, not a sort: linear time). Median: the
    /// middle value, or the mean of the two middle values; p90: nearest rank, the value at rank
    /// ceil(0.9 n).
    pub fn of(micros: &mut [i64]) -> DurationStats {
        let Some(order) = OrderStats::of(micros, days) else {
            return DurationStats {
                completed: 0,
                mean_days: None,
                median_days: None,
                p90_days: None,
                max_days: None,
            };
        };
        let n = micros.len();
        let sum: i128 = micros.iter().map(|&m| i128::from(m)).sum();
        DurationStats {
            completed: n as u64,
            mean_days: Some(round6(sum as f64 / n as f64 / dealledger_events::time::MICROS_PER_DAY as f64)),
            median_days: Some(round6(order.median)),
            p90_days: Some(round6(order.p90)),
            max_days: Some(round6(order.max)),
        }
    }
}

/// Median, p90 and max of a set of durations, in the unit `unit` converts microseconds to.
/// Median: the middle value, or the mean of the two middle values; p90: nearest rank, the value
/// at rank ceil(0.9 n).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrderStats {
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

impl OrderStats {
    /// Reorders `micros` (order statistics by selection, not a sort: linear time); None when
    /// there are none.
    pub fn of(micros: &mut [i64], unit: impl Fn(i64) -> f64) -> Option<OrderStats> {
        let n = micros.len();
        if n == 0 {
            return None;
        }
        let mid = n / 2;
        let (below, &mut upper_middle, above) = micros.select_nth_unstable(mid);
        let median = if n % 2 == 1 {
            unit(upper_middle)
        } else {
            let lower_middle = *below.iter().max().expect("an even n > 0 leaves n/2 values below");
            (unit(lower_middle) + unit(upper_middle)) / 2.0
        };
        // The p90 rank is at or past the middle: select it among the values above.
        let p90_index = p90_rank(n) - 1;
        debug_assert!(p90_index >= mid);
        let p90 =
            if p90_index == mid { upper_middle } else { *above.select_nth_unstable(p90_index - mid - 1).1 };
        let max = above.iter().copied().max().unwrap_or(upper_middle);
        Some(OrderStats { median, p90: unit(p90), max: unit(max) })
    }
}

/// Nearest rank of the 90th percentile among n values: ceil(0.9 n), 1-based, in integers.
pub fn p90_rank(n: usize) -> usize {
    (9 * n).div_ceil(10)
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageStats {
    pub stage: String,
    #[serde(flatten)]
    pub stats: DurationStats,
    /// Deals open in this stage at `as_of`.
    pub open: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OwnerStages {
    pub owner: String,
    pub stages: Vec<StageStats>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageDays {
    pub stage: String,
    pub days: f64,
}

/// A deal's cumulative time in each stage it visited (the open visit counted up to `as_of`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DealStages {
    pub deal: String,
    pub owner: String,
    pub status: &'static str,
    pub stages: Vec<StageDays>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimeInStageReport {
    pub as_of: Instant,
    pub stages: Vec<StageStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_owner: Option<Vec<OwnerStages>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deals: Option<Vec<DealStages>>,
    #[serde(flatten)]
    pub basis: Basis,
}

/// Visits by stage ([`Name`]): the completed visits' lengths, and the open visits.
struct Acc {
    completed: Vec<Vec<i64>>,
    open: Vec<u64>,
}

impl Acc {
    fn new(names: usize) -> Acc {
        Acc { completed: vec![Vec::new(); names], open: vec![0; names] }
    }

    fn add(&mut self, folded: &Folded) {
        for visit in &folded.visits {
            let stage = visit.stage as usize;
            match visit.end {
                Some(end) => self.completed[stage].push(end.0 - visit.start.0),
                None => self.open[stage] += 1,
            }
        }
    }

    fn merge(&mut self, other: Acc) {
        for (completed, add) in self.completed.iter_mut().zip(other.completed) {
            completed.extend(add);
        }
        for (open, add) in self.open.iter_mut().zip(other.open) {
            *open += add;
        }
    }

    fn finish(mut self, timeline: &Timeline, settings: &Settings) -> Vec<StageStats> {
        let seen: Vec<Name> = (0..self.open.len())
            .filter(|&n| self.open[n] > 0 || !self.completed[n].is_empty())
            .map(|n| n as Name)
            .collect();
        stage_order(timeline, settings, &seen)
            .into_iter()
            .map(|(stage, name)| {
                let mut micros =
                    name.map(|n| std::mem::take(&mut self.completed[n as usize])).unwrap_or_default();
                StageStats {
                    stage,
                    stats: DurationStats::of(&mut micros),
                    open: name.map_or(0, |n| self.open[n as usize]),
                }
            })
            .collect()
    }
}

/// Per stage ([`Name`]), the lengths of the visits completed in the view, in no order.
pub(crate) fn completed_visits(timeline: &Timeline, view: View) -> Vec<Vec<i64>> {
    let names = timeline.names.len();
    let parts = timeline.fold_deals(view, false, || Acc::new(names), |acc, _, folded| acc.add(folded));
    let mut all = Acc::new(names);
    for part in parts {
        all.merge(part);
    }
    all.completed
}

/// What one part of the deals adds up to.
struct Part {
    all: Acc,
    owners: BTreeMap<Name, Acc>,
    deals: Vec<DealStages>,
}

/// Completed visits (ended at or before `as_of`) per stage; `by_owner` groups by each deal's
/// owner at `as_of`; `with_deals` adds every deal's cumulative days per stage.
pub fn time_in_stage(
    timeline: &Timeline,
    settings: &Settings,
    view: View,
    by_owner: bool,
    with_deals: bool,
) -> TimeInStageReport {
    let names = timeline.names.len();
    let init = || Part { all: Acc::new(names), owners: BTreeMap::new(), deals: Vec::new() };
    let parts = timeline.fold_deals(view, false, init, |part, deal, folded| {
        part.all.add(folded);
        if by_owner {
            part.owners.entry(folded.owner).or_insert_with(|| Acc::new(names)).add(folded);
        }
        if with_deals {
            let mut cumulative: BTreeMap<Name, i64> = BTreeMap::new();
            for visit in &folded.visits {
                let end = visit.end.unwrap_or(view.as_of);
                *cumulative.entry(visit.stage).or_default() += end.0 - visit.start.0;
            }
            let seen: Vec<Name> = cumulative.keys().copied().collect();
            let stages = stage_order(timeline, settings, &seen)
                .into_iter()
                .filter_map(|(stage, name)| {
                    name.and_then(|n| cumulative.get(&n))
                        .map(|&micros| StageDays { stage, days: round6(days(micros)) })
                })
                .collect();
            part.deals.push(DealStages {
                deal: deal.id.to_string(),
                owner: timeline.names.resolve(folded.owner).to_string(),
                status: folded.status().as_str(),
                stages,
            });
        }
    });
    let mut all = Acc::new(names);
    let mut owners: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut deals = Vec::new();
    for part in parts {
        all.merge(part.all);
        for (owner, acc) in part.owners {
            owners.entry(timeline.names.resolve(owner)).or_insert_with(|| Acc::new(names)).merge(acc);
        }
        deals.extend(part.deals);
    }
    deals.sort_by(|a, b| a.deal.cmp(&b.deal));
    let mut basis = Basis::as_of(timeline, view.as_of);
    let stages = all.finish(timeline, settings);
    if !timeline.deals().is_empty() && stages.iter().all(|s| s.stats.completed == 0) {
        basis.note(format!(
            "no stage visit ended by {}: there are no durations yet, only deals open in a stage",
            view.as_of
        ));
    }
    TimeInStageReport {
        as_of: Instant(view.as_of),
        stages,
        basis,
        by_owner: by_owner.then(|| {
            owners
                .into_iter()
                .map(|(owner, acc)| OwnerStages {
                    owner: owner.to_string(),
                    stages: acc.finish(timeline, settings),
                })
                .collect()
        }),
        deals: with_deals.then_some(deals),
    }
}

const STAT_COLUMNS: [&str; 6] =
    ["completed", "mean (days)", "median (days)", "p90 (days)", "max (days)", "deals open"];

fn stat_cells(s: &StageStats) -> Vec<Cell> {
    vec![
        Cell::Text(s.stage.clone()),
        Cell::Int(s.stats.completed as i64),
        opt_num(s.stats.mean_days, 2),
        opt_num(s.stats.median_days, 2),
        opt_num(s.stats.p90_days, 2),
        opt_num(s.stats.max_days, 2),
        Cell::Int(s.open as i64),
    ]
}

fn stat_columns(first: &[&str]) -> Vec<String> {
    let mut columns: Vec<String> = first.iter().map(|c| c.to_string()).collect();
    columns.push("stage".into());
    columns.extend(STAT_COLUMNS.iter().map(|c| c.to_string()));
    columns
}

impl Report for TimeInStageReport {
    fn tables(&self) -> Vec<Table> {
        let mut tables = Vec::new();
        let mut table = Table {
            title: format!("Time in stage as of {}", self.as_of.0),
            columns: stat_columns(&[]),
            rows: vec![],
        };
        for s in &self.stages {
            table.push(stat_cells(s));
        }
        tables.push(table);
        if let Some(owners) = &self.by_owner {
            let mut table =
                Table { title: "By owner".into(), columns: stat_columns(&["owner"]), rows: vec![] };
            for o in owners {
                for s in &o.stages {
                    let mut row = vec![Cell::Text(o.owner.clone())];
                    row.extend(stat_cells(s));
                    table.push(row);
                }
            }
            tables.push(table);
        }
        if let Some(deals) = &self.deals {
            let mut table =
                Table::new("Cumulative time per deal", &["deal", "owner", "status", "stage", "days"]);
            for d in deals {
                for s in &d.stages {
                    table.push(vec![
                        Cell::Text(d.deal.clone()),
                        Cell::Text(d.owner.clone()),
                        Cell::Text(d.status.into()),
                        Cell::Text(s.stage.clone()),
                        Cell::Num(s.days, 2),
                    ]);
                }
            }
            tables.push(table);
        }
        tables
    }

    /// The most detailed table asked for: per deal, else per owner, else per stage.
    fn csv_table(&self) -> Table {
        let mut tables = self.tables();
        let mut table = tables.pop().expect("at least one table");
        table.title.clear();
        table.columns = table.columns.iter().map(|c| csv_name(c)).collect();
        table
    }

    fn note_lines(&self) -> Vec<String> {
        self.basis.lines()
    }

    /// Completed visits by stage: median, p90 and max.
    fn chart(&self) -> Option<Chart> {
        let of = |pick: fn(&DurationStats) -> Option<f64>| -> Vec<f64> {
            self.stages.iter().map(|s| pick(&s.stats).unwrap_or(f64::NAN)).collect()
        };
        Some(Chart::Bars(Bars {
            title: format!("Completed stage visits, as of {}", self.as_of.0),
            unit: "days".into(),
            categories: self.stages.iter().map(|s| s.stage.clone()).collect(),
            series: vec![
                Series::new("median", of(|s| s.median_days)),
                Series::new("p90", of(|s| s.p90_days)),
                Series::new("max", of(|s| s.max_days)),
            ],
        }))
    }
}

/// `mean (days)` to `mean_days`: CSV headers match the JSON keys.
fn csv_name(column: &str) -> String {
    match column {
        "mean (days)" => "mean_days".into(),
        "median (days)" => "median_days".into(),
        "p90 (days)" => "p90_days".into(),
        "max (days)" => "max_days".into(),
        "deals open" => "open".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod selection_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Selection gives the figures a full sort gives.
        #[test]
        fn stats_by_selection_equal_stats_by_sorting(mut micros in proptest::collection::vec(0i64..1_000_000_000_000, 1..200)) {
            let mut sorted = micros.clone();
            sorted.sort_unstable();
            let n = sorted.len();
            let median = if n % 2 == 1 { days(sorted[n / 2]) } else { (days(sorted[n / 2 - 1]) + days(sorted[n / 2])) / 2.0 };
            let stats = DurationStats::of(&mut micros);
            prop_assert_eq!(stats.completed, n as u64);
            prop_assert_eq!(stats.median_days, Some(round6(median)));
            prop_assert_eq!(stats.p90_days, Some(round6(days(sorted[p90_rank(n) - 1]))));
            prop_assert_eq!(stats.max_days, Some(round6(days(sorted[n - 1]))));
        }
    }
}

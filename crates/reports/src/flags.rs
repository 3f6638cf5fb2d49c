//! `report flags`: open deals that need a decision, each with its rule, figure and since when.

use dealledger_events::time::MICROS_PER_DAY;
use dealledger_events::Timestamp;
use dealledger_projections::{Name, Status, Timeline, View};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::output::{days, round6, Cell, Instant, Report, Table};
use crate::stages::{completed_visits, p90_rank};
use crate::{stage_indexes, Settings};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Flag {
    /// None for a flag on an owner (late-stage pile-up).
    pub deal: Option<String>,
    pub owner: String,
    pub rule: &'static str,
    /// When the rule started to hold.
    pub since: Instant,
    /// The figure behind the flag, in the unit the rule counts (days, contacts, deals).
    pub figure: f64,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlagReport {
    pub as_of: Instant,
    pub flags: Vec<Flag>,
}

/// Flags every open deal at `as_of` (see docs/metrics.md for each rule). Flags are ordered by
/// deal, then rule; owner flags come last, by owner.
pub fn flags(timeline: &Timeline, settings: &Settings, view: View) -> FlagReport {
    let as_of = view.as_of;
    let f = &settings.flags;
    let pipeline = &settings.pipeline;
    let index_by_name = stage_indexes(timeline, settings);
    let stage_index = |name: Name| index_by_name[name as usize];
    // Per stage with exit criteria: its name, pipeline index, and each required field with its
    // interned name (None: no deal ever set it).
    type Criteria<'a> = (&'a str, usize, Vec<(&'a str, Option<Name>)>);
    let exit_criteria: Vec<Criteria> = settings
        .exit_criteria
        .iter()
        .map(|(stage, fields)| {
            let index = pipeline.index(stage).expect("settings checked exit-criteria stages");
            (stage.as_str(), index, fields.iter().map(|f| (f.as_str(), timeline.names.get(f))).collect())
        })
        .collect();
    let contacts_index = pipeline.index(&f.contacts_by_stage).unwrap_or(usize::MAX);
    let late: BTreeSet<usize> = f.late_stages.iter().filter_map(|s| pipeline.index(s)).collect();
    let p90 = stage_p90s(timeline, view);

    // Per part: the deal flags, and per owner when each of their late-stage deals got there.
    type Part = (Vec<Flag>, BTreeMap<Name, Vec<Timestamp>>);
    let parts = timeline.fold_deals(view, true, Part::default, |(out, late_by_owner), deal, folded| {
        if folded.status() != Status::Open {
            return;
        }
        let owner = timeline.names.resolve(folded.owner);
        let mut flag = |rule: &'static str, since: Timestamp, figure: f64, detail: String| {
            out.push(Flag {
                deal: Some(deal.id.clone()),
                owner: owner.to_string(),
                rule,
                since: Instant(since),
                figure: round6(figure),
                detail,
            })
        };
        // The clocks of gone_dark and no_activity start at opened and restart at requalified.
        let clock_start = folded.requalified_at.unwrap_or(folded.opened_at);
        let touches = &folded.touches;
        let last_inbound = touches.last_inbound_at.map_or(clock_start, |at| at.max(clock_start));
        let last_touch = touches.last_at.map_or(clock_start, |at| at.max(clock_start));
        let contacts = touches.contacts as usize;
        let quiet = |since: Timestamp,
                     limit_days: u32,
                     rule: &'static str,
                     what: &str,
                     flag: &mut dyn FnMut(&'static str, Timestamp, f64, String)| {
            let limit = i64::from(limit_days) * MICROS_PER_DAY;
            if as_of.0 - since.0 >= limit {
                let d = days(as_of.0 - since.0);
                flag(
                    rule,
                    Timestamp(since.0 + limit),
                    d,
                    format!("no {what} for {d:.1} days (limit {limit_days})"),
                );
            }
        };
        quiet(last_inbound, f.gone_dark_days, "gone_dark", "inbound touch", &mut flag);
        quiet(last_touch, f.no_activity_days, "no_activity", "touch", &mut flag);

        if let Some(visit) = folded.current_visit() {
            if let Some(p90_micros) = p90[visit.stage as usize] {
                let length = as_of.0 - visit.start.0;
                if length > p90_micros {
                    flag(
                        "stalled",
                        Timestamp(visit.start.0 + p90_micros),
                        days(length),
                        format!(
                            "{:.1} days in {}, p90 {:.1} days",
                            days(length),
                            timeline.names.resolve(visit.stage),
                            days(p90_micros)
                        ),
                    );
                }
            }
        }
        if let Some(close_date) = folded.close_date {
            // Past the close date once that day is over.
            let past = Timestamp(close_date.start().0 + MICROS_PER_DAY);
            if as_of >= past {
                let d = days(as_of.0 - past.0);
                flag("past_close_date", past, d, format!("{d:.1} days past close date {close_date}"));
            }
        }
        let current = stage_index(folded.stage);
        // When the deal first reached stage `index` or a later one.
        let reached = |index: usize| {
            folded.visits.iter().find(|v| stage_index(v.stage).is_some_and(|i| i >= index)).map(|v| v.start)
        };
        if current.is_some_and(|i| i >= contacts_index) && contacts < f.min_contacts as usize {
            let since = reached(contacts_index).unwrap_or(folded.status_at);
            flag(
                "not_enough_contacts",
                since,
                contacts as f64,
                format!("{} contacts by {} (minimum {})", contacts, f.contacts_by_stage, f.min_contacts),
            );
        }
        for (stage, index, fields) in &exit_criteria {
            if current.is_none_or(|i| i <= *index) {
                continue;
            }
            let missing: Vec<&str> = fields
                .iter()
                .filter(|(_, name)| !name.is_some_and(|n| folded.field_is_set(n)))
                .map(|(field, _)| *field)
                .collect();
            if !missing.is_empty() {
                let since = reached(index + 1).unwrap_or(folded.status_at);
                flag(
                    "missing_exit_criteria",
                    since,
                    missing.len() as f64,
                    format!("left {stage} without {}", missing.join(", ")),
                );
            }
        }
        if current.is_some_and(|i| late.contains(&i)) {
            let entered = folded.current_visit().map_or(folded.status_at, |v| v.start);
            late_by_owner.entry(folded.owner).or_default().push(entered);
        }
    });
    let mut out = Vec::new();
    let mut late_by_owner: BTreeMap<&str, Vec<Timestamp>> = BTreeMap::new();
    for (flags, late) in parts {
        out.extend(flags);
        for (owner, entered) in late {
            late_by_owner.entry(timeline.names.resolve(owner)).or_default().extend(entered);
        }
    }
    out.sort_by(|a, b| (&a.deal, a.rule).cmp(&(&b.deal, b.rule)));
    for (owner, mut entered) in late_by_owner {
        let max = f.late_stage_deals_max as usize;
        if entered.len() > max {
            entered.sort_unstable();
            out.push(Flag {
                deal: None,
                owner: owner.to_string(),
                rule: "late_stage_pileup",
                since: Instant(entered[max]),
                figure: entered.len() as f64,
                detail: format!("{} deals in {} (maximum {max})", entered.len(), f.late_stages.join(" or ")),
            });
        }
    }
    FlagReport { as_of: Instant(as_of), flags: out }
}

/// Per stage ([`Name`]), the p90 (nearest rank) of the visits completed by `as_of`; None for a
/// stage without one.
pub fn stage_p90s(timeline: &Timeline, view: View) -> Vec<Option<i64>> {
    completed_visits(timeline, view)
        .into_iter()
        .map(|mut micros| {
            let rank = p90_rank(micros.len());
            (rank > 0).then(|| *micros.select_nth_unstable(rank - 1).1)
        })
        .collect()
}

impl Report for FlagReport {
    fn tables(&self) -> Vec<Table> {
        let mut table = Table::new(
            format!("Flags as of {}: {} open deals need a decision", self.as_of.0, {
                self.flags.iter().filter_map(|f| f.deal.as_ref()).collect::<BTreeSet<_>>().len()
            }),
            &["deal", "owner", "rule", "since", "detail"],
        );
        for f in &self.flags {
            table.push(vec![
                Cell::Text(f.deal.clone().unwrap_or_else(|| "-".into())),
                Cell::Text(f.owner.clone()),
                Cell::Text(f.rule.into()),
                Cell::Text(f.since.0.to_string()),
                Cell::Text(f.detail.clone()),
            ]);
        }
        vec![table]
    }

    fn csv_table(&self) -> Table {
        let mut table = Table::new("", &["deal", "owner", "rule", "since", "figure", "detail"]);
        for f in &self.flags {
            table.push(vec![
                f.deal.clone().map_or(Cell::Null, Cell::Text),
                Cell::Text(f.owner.clone()),
                Cell::Text(f.rule.into()),
                Cell::Text(f.since.0.to_string()),
                Cell::Num(f.figure, 6),
                Cell::Text(f.detail.clone()),
            ]);
        }
        table
    }
}

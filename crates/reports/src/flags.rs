//! `report flags`: open deals that need a decision, each with its rule, figure and since when.

use dealledger_events::time::MICROS_PER_DAY;
use dealledger_events::Timestamp;
use dealledger_projections::{Folded, Name, Status, Timeline, View};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::basis::{count, Basis};
use crate::output::{days, round6, Cell, Instant, Report, Table};
use crate::settings::FlagSettings;
use crate::stages::{completed_visits, p90_rank};
use crate::{stage_indexes, Settings};

/// The flag rules (docs/metrics.md). Their names are the report's `rule` values; the what-if
/// engine's rules of the same meaning take their names from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagRule {
    GoneDark,
    NoActivity,
    Stalled,
    PastCloseDate,
    NotEnoughContacts,
    MissingExitCriteria,
    LateStagePileup,
}

impl FlagRule {
    pub fn name(self) -> &'static str {
        match self {
            FlagRule::GoneDark => "gone_dark",
            FlagRule::NoActivity => "no_activity",
            FlagRule::Stalled => "stalled",
            FlagRule::PastCloseDate => "past_close_date",
            FlagRule::NotEnoughContacts => "not_enough_contacts",
            FlagRule::MissingExitCriteria => "missing_exit_criteria",
            FlagRule::LateStagePileup => "late_stage_pileup",
        }
    }
}

impl Serialize for FlagRule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Flag {
    /// None for a flag on an owner (late-stage pile-up).
    pub deal: Option<String>,
    pub owner: String,
    pub rule: FlagRule,
    /// When the rule started to hold.
    pub since: Instant,
    /// The figure behind the flag, in the unit the rule counts (days, contacts, deals).
    pub figure: f64,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlagReport {
    pub as_of: Instant,
    /// Open deals with at least one flag: the count of deals that need a decision (several
    /// flags may name one deal).
    pub deals_flagged: u64,
    pub flags: Vec<Flag>,
    #[serde(flatten)]
    pub basis: Basis,
}

impl FlagRule {
    /// Whether the rule counts touches: on a history without any, it would flag every deal
    /// for want of data.
    fn needs_touches(self) -> bool {
        matches!(self, FlagRule::GoneDark | FlagRule::NoActivity | FlagRule::NotEnoughContacts)
    }
}

/// A stage with exit criteria: its name, pipeline index, and each required field with its
/// interned name (None: no deal ever set it).
struct Criteria<'a> {
    stage: &'a str,
    index: usize,
    fields: Vec<(&'a str, Option<Name>)>,
}

/// What the deal rules need, computed once per report.
struct Rules<'a> {
    timeline: &'a Timeline,
    settings: &'a FlagSettings,
    as_of: Timestamp,
    /// Pipeline index by interned stage name.
    stage_index: Vec<Option<usize>>,
    exit_criteria: Vec<Criteria<'a>>,
    contacts_index: usize,
    late: BTreeSet<usize>,
    /// Per stage, the p90 of its completed visits.
    p90: Vec<Option<i64>>,
}

/// One open deal's flags, as they are raised.
struct Raised<'a> {
    deal: &'a str,
    owner: &'a str,
    out: &'a mut Vec<Flag>,
}

impl Raised<'_> {
    fn flag(&mut self, rule: FlagRule, since: Timestamp, figure: f64, detail: String) {
        self.out.push(Flag {
            deal: Some(self.deal.to_string()),
            owner: self.owner.to_string(),
            rule,
            since: Instant(since),
            figure: round6(figure),
            detail,
        })
    }
}

impl Rules<'_> {
    fn stage_index(&self, name: Name) -> Option<usize> {
        self.stage_index[name as usize]
    }

    /// Every deal rule, in the order their flags are listed for a deal of one rule's name.
    fn check(&self, folded: &Folded, raised: &mut Raised) {
        let f = self.settings;
        // The clocks of gone_dark and no_activity start at opened and restart at requalified.
        let clock_start = folded.requalified_at.unwrap_or(folded.opened_at);
        let touches = &folded.touches;
        let last_inbound = touches.last_inbound_at.map_or(clock_start, |at| at.max(clock_start));
        let last_touch = touches.last_at.map_or(clock_start, |at| at.max(clock_start));
        self.quiet(last_inbound, f.gone_dark_days, FlagRule::GoneDark, "inbound touch", raised);
        self.quiet(last_touch, f.no_activity_days, FlagRule::NoActivity, "touch", raised);
        self.stalled(folded, raised);
        self.past_close_date(folded, raised);
        self.not_enough_contacts(folded, raised);
        self.missing_exit_criteria(folded, raised);
    }

    /// gone_dark and no_activity: nothing since `since` for `limit_days`.
    fn quiet(&self, since: Timestamp, limit_days: u32, rule: FlagRule, what: &str, raised: &mut Raised) {
        let limit = i64::from(limit_days) * MICROS_PER_DAY;
        if self.as_of.0 - since.0 >= limit {
            let d = days(self.as_of.0 - since.0);
            raised.flag(
                rule,
                Timestamp(since.0 + limit),
                d,
                format!("no {what} for {d:.1} days (limit {limit_days})"),
            );
        }
    }

    /// The current visit is longer than its stage's p90.
    fn stalled(&self, folded: &Folded, raised: &mut Raised) {
        let Some(visit) = folded.current_visit() else { return };
        let Some(p90_micros) = self.p90[visit.stage as usize] else { return };
        let length = self.as_of.0 - visit.start.0;
        if length > p90_micros {
            let detail = format!(
                "{:.1} days in {}, p90 {:.1} days",
                days(length),
                self.timeline.names.resolve(visit.stage),
                days(p90_micros)
            );
            raised.flag(FlagRule::Stalled, Timestamp(visit.start.0 + p90_micros), days(length), detail);
        }
    }

    /// Past the close date once that day is over.
    fn past_close_date(&self, folded: &Folded, raised: &mut Raised) {
        let Some(close_date) = folded.close_date else { return };
        let past = Timestamp(close_date.start().0 + MICROS_PER_DAY);
        if self.as_of >= past {
            let d = days(self.as_of.0 - past.0);
            raised.flag(
                FlagRule::PastCloseDate,
                past,
                d,
                format!("{d:.1} days past close date {close_date}"),
            );
        }
    }

    /// When the deal first reached stage `index` or a later one.
    fn reached(&self, folded: &Folded, index: usize) -> Option<Timestamp> {
        folded.visits.iter().find(|v| self.stage_index(v.stage).is_some_and(|i| i >= index)).map(|v| v.start)
    }

    /// Fewer distinct contacts than the minimum, at or past the stage that expects them.
    fn not_enough_contacts(&self, folded: &Folded, raised: &mut Raised) {
        let f = self.settings;
        let contacts = folded.touches.contacts as usize;
        let current = self.stage_index(folded.stage);
        if current.is_some_and(|i| i >= self.contacts_index) && contacts < f.min_contacts as usize {
            let since = self.reached(folded, self.contacts_index).unwrap_or(folded.status_at);
            let detail = format!(
                "{} by {} (minimum {})",
                count(contacts as u64, "contact", "contacts"),
                f.contacts_by_stage,
                f.min_contacts
            );
            raised.flag(FlagRule::NotEnoughContacts, since, contacts as f64, detail);
        }
    }

    /// Past a stage without the fields it expects, one flag per such stage.
    fn missing_exit_criteria(&self, folded: &Folded, raised: &mut Raised) {
        let current = self.stage_index(folded.stage);
        for Criteria { stage, index, fields } in &self.exit_criteria {
            if current.is_none_or(|i| i <= *index) {
                continue;
            }
            let missing: Vec<&str> = fields
                .iter()
                .filter(|(_, name)| !name.is_some_and(|n| folded.field_is_set(n)))
                .map(|(field, _)| *field)
                .collect();
            if !missing.is_empty() {
                let since = self.reached(folded, index + 1).unwrap_or(folded.status_at);
                let detail = format!("left {stage} without {}", missing.join(", "));
                raised.flag(FlagRule::MissingExitCriteria, since, missing.len() as f64, detail);
            }
        }
    }

    /// When the deal entered a late stage, if it is in one.
    fn late_since(&self, folded: &Folded) -> Option<Timestamp> {
        let current = self.stage_index(folded.stage)?;
        self.late.contains(&current).then(|| folded.current_visit().map_or(folded.status_at, |v| v.start))
    }
}

/// Flags every open deal at `as_of` (see docs/metrics.md for each rule). Flags are ordered by
/// deal, then rule; owner flags come last, by owner.
pub fn flags(timeline: &Timeline, settings: &Settings, view: View) -> FlagReport {
    let f = &settings.flags;
    let pipeline = &settings.pipeline;
    let rules = Rules {
        timeline,
        settings: f,
        as_of: view.as_of,
        stage_index: stage_indexes(timeline, settings),
        exit_criteria: settings
            .exit_criteria
            .iter()
            .map(|(stage, fields)| Criteria {
                stage: stage.as_str(),
                index: pipeline.index(stage).expect("settings checked exit-criteria stages"),
                fields: fields.iter().map(|f| (f.as_str(), timeline.names.get(f))).collect(),
            })
            .collect(),
        contacts_index: pipeline.index(&f.contacts_by_stage).unwrap_or(usize::MAX),
        late: f.late_stages.iter().filter_map(|s| pipeline.index(s)).collect(),
        p90: stage_p90s(timeline, view),
    };
    // Per part: the deal flags, per owner when each of their late-stage deals got there, and
    // whether the view held any touch.
    type Part = (Vec<Flag>, BTreeMap<Name, Vec<Timestamp>>, bool);
    let parts =
        timeline.fold_deals(view, true, Part::default, |(out, late_by_owner, touched), deal, folded| {
            *touched |= folded.touches.count > 0;
            if folded.status() != Status::Open {
                return;
            }
            let owner = timeline.names.resolve(folded.owner);
            rules.check(folded, &mut Raised { deal: deal.id, owner, out });
            if let Some(entered) = rules.late_since(folded) {
                late_by_owner.entry(folded.owner).or_default().push(entered);
            }
        });
    let mut out = Vec::new();
    let mut touched = false;
    let mut late_by_owner: BTreeMap<&str, Vec<Timestamp>> = BTreeMap::new();
    for (flags, late, part_touched) in parts {
        out.extend(flags);
        touched |= part_touched;
        for (owner, entered) in late {
            late_by_owner.entry(timeline.names.resolve(owner)).or_default().extend(entered);
        }
    }
    let mut basis = Basis::as_of(timeline, view.as_of);
    if !touched && !timeline.deals().is_empty() {
        out.retain(|flag| !flag.rule.needs_touches());
        basis.note(
            "the history holds no touches: gone_dark, no_activity and not_enough_contacts are not checked \
             (every deal would be flagged for want of data)",
        );
    }
    out.sort_by(|a, b| (&a.deal, a.rule.name()).cmp(&(&b.deal, b.rule.name())));
    let deals_flagged = out.iter().filter_map(|f| f.deal.as_ref()).collect::<BTreeSet<_>>().len() as u64;
    out.extend(late_stage_pileups(f, late_by_owner));
    FlagReport { as_of: Instant(view.as_of), deals_flagged, flags: out, basis }
}

/// An owner with more late-stage deals than the maximum, by owner.
fn late_stage_pileups(f: &FlagSettings, late_by_owner: BTreeMap<&str, Vec<Timestamp>>) -> Vec<Flag> {
    let max = f.late_stage_deals_max as usize;
    let mut out = Vec::new();
    for (owner, mut entered) in late_by_owner {
        if entered.len() > max {
            entered.sort_unstable();
            out.push(Flag {
                deal: None,
                owner: owner.to_string(),
                rule: FlagRule::LateStagePileup,
                since: Instant(entered[max]),
                figure: entered.len() as f64,
                detail: format!("{} deals in {} (maximum {max})", entered.len(), f.late_stages.join(" or ")),
            });
        }
    }
    out
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
        let needs = if self.deals_flagged == 1 { "needs" } else { "need" };
        let mut table = Table::new(
            format!(
                "Flags as of {}: {} {needs} a decision ({})",
                self.as_of.0,
                count(self.deals_flagged, "open deal", "open deals"),
                count(self.flags.len() as u64, "flag", "flags")
            ),
            &["deal", "owner", "rule", "since", "detail"],
        );
        for f in &self.flags {
            table.push(vec![
                Cell::Text(f.deal.clone().unwrap_or_else(|| "-".into())),
                Cell::Text(f.owner.clone()),
                Cell::Text(f.rule.name().into()),
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
                Cell::Text(f.rule.name().into()),
                Cell::Text(f.since.0.to_string()),
                Cell::Num(f.figure, 6),
                Cell::Text(f.detail.clone()),
            ]);
        }
        table
    }

    fn note_lines(&self) -> Vec<String> {
        self.basis.lines()
    }
}

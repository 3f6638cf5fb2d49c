//! Salesforce OpportunityHistory exports (with Opportunity.csv for owner and name, optional).
//!
//! Salesforce writes a history row when Stage, Amount, Probability or CloseDate changes. The
//! first row of an opportunity opens it; a stage change is a stage move (or won / lost, or a
//! requalification when a closed deal reopens); amount and close-date changes are their events;
//! a row that changes only the probability or forecast category maps to nothing (the ledger
//! derives probability from the stage) and is reported. CreatedDate gives `at` and
//! `recorded_at`, Id the `source_id` (with the event type appended: one row can carry several
//! changes), CreatedById the actor.

use crate::{cell, deal_id, first_location, read_all, ImportError, Imported, Options, Table, Target};
use dealledger_events::{Pipeline, Timestamp};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;

/// Salesforce's standard opportunity stages and their default probabilities (percent).
pub const STANDARD_STAGES: [(&str, u32); 8] = [
    ("Prospecting", 10),
    ("Qualification", 10),
    ("Needs Analysis", 20),
    ("Value Proposition", 50),
    ("Id. Decision Makers", 60),
    ("Perception Analysis", 70),
    ("Proposal/Price Quote", 75),
    ("Negotiation/Review", 90),
];

/// A standard stage's target: Closed Won / Closed Lost, or the pipeline stage whose probability
/// is nearest the standard one (the lower stage on a tie).
pub fn standard_target(name: &str, pipeline: &Pipeline) -> Option<Target> {
    match name {
        "Closed Won" => return Some(Target::Won),
        "Closed Lost" => return Some(Target::Lost),
        _ => {}
    }
    let percent = STANDARD_STAGES.iter().find(|(n, _)| *n == name)?.1;
    let bp = percent * 100;
    let stage = pipeline.stages().iter().min_by_key(|s| s.probability_bp.abs_diff(bp))?;
    Some(Target::Stage(stage.name.clone()))
}

/// `2018-10-13 17:16:45` (data loader, UTC) or `2018-10-13T17:16:45.000+0000` (API): the
/// instant, and the same as RFC 3339. `None` for anything else, also for text whose date, time or
/// zone is not where those formats put them (a cell is untrusted: it may hold any character, so
/// it is cut with `get`, never by byte index).
pub(crate) fn instant(text: &str) -> Option<(String, Timestamp)> {
    let text = text.trim();
    let (date, time, rest) = (text.get(..10)?, text.get(11..19)?, text.get(19..)?);
    let zone = match rest {
        "" | "Z" => "Z".to_string(),
        rest => {
            let rest = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
            match rest {
                "" | "Z" => "Z".to_string(),
                z if z.len() == 5 => format!("{}:{}", z.get(..3)?, z.get(3..)?),
                z => z.to_string(),
            }
        }
    };
    let out = format!("{date}T{time}{zone}");
    let at = Timestamp::parse_rfc3339(&out).ok()?;
    Some((out, at))
}

struct Opportunity {
    owner: String,
    name: String,
}

/// The cells of one history row that the events are made of.
struct HistoryRow {
    id: String,
    opportunity: String,
    actor: String,
    stage: String,
    amount: String,
    close: String,
}

struct State {
    target: Target,
    amount: String,
    close_date: String,
}

pub fn import(files: &[PathBuf], options: &Options) -> Result<Imported, ImportError> {
    import_tables(read_all(files)?, options)
}

/// A history row read, with where it sorts: by CreatedDate, then file and line.
struct Read {
    created: Timestamp,
    file: usize,
    line: u64,
    location: String,
    /// CreatedDate as RFC 3339.
    at: String,
    row: HistoryRow,
}

/// [`import`] of files already read.
pub(crate) fn import_tables(tables: Vec<Table>, options: &Options) -> Result<Imported, ImportError> {
    let first = first_location(&tables);
    let (history, others): (Vec<Table>, Vec<Table>) = tables
        .into_iter()
        .partition(|t| t.has(options.columns.get("deal_id").map_or("OpportunityId", String::as_str)));
    let opportunities = opportunities(&others, options)?;
    if history.is_empty() {
        return Err(ImportError::Invalid {
            location: first,
            why: "no OpportunityHistory file among the inputs (a CSV with an OpportunityId column)".into(),
        });
    }
    let mut replay = Replay {
        options,
        opportunities: &opportunities,
        out: Imported::default(),
        deals: HashMap::new(),
        last_stage: options.pipeline.stages().last().expect("a pipeline has stages").name.clone(),
    };
    for read in history_rows(&history, options)? {
        replay.row(read)?;
    }
    replay.out.finish(&options.pipeline)
}

/// Opportunity.csv: owner and name by opportunity id.
fn opportunities(tables: &[Table], options: &Options) -> Result<HashMap<String, Opportunity>, ImportError> {
    let mut opportunities = HashMap::new();
    for table in tables {
        let id = table.column(options, "opportunity_id", "Id")?;
        let owner = table.column(options, "opportunity_owner", "OwnerId")?;
        let name = table.column(options, "opportunity_name", "Name")?;
        for (_, record) in &table.records {
            opportunities.insert(
                cell(record, id).to_string(),
                Opportunity { owner: cell(record, owner).to_string(), name: cell(record, name).to_string() },
            );
        }
    }
    Ok(opportunities)
}

/// Every history row not deleted, in (CreatedDate, file, line) order: each deal's rows in time
/// order.
fn history_rows(history: &[Table], options: &Options) -> Result<Vec<Read>, ImportError> {
    let mut rows = Vec::new();
    for (file, table) in history.iter().enumerate() {
        let c = |key: &str, default: &str| table.column(options, key, default);
        let (id, opportunity, actor, created, stage, amount, close) = (
            c("id", "Id")?,
            c("deal_id", "OpportunityId")?,
            c("actor", "CreatedById")?,
            c("created", "CreatedDate")?,
            c("stage", "StageName")?,
            c("amount", "Amount")?,
            c("close_date", "CloseDate")?,
        );
        let deleted = c("deleted", "IsDeleted").ok();
        for (line, record) in &table.records {
            let location = table.location(*line);
            if deleted.is_some_and(|d| matches!(cell(record, d), "1" | "true" | "True")) {
                continue;
            }
            let created = cell(record, created);
            let Some((at, sort_key)) = instant(created) else {
                return Err(ImportError::Invalid {
                    location,
                    why: format!("CreatedDate `{created}` is not a date and time"),
                });
            };
            let text = |column: usize| cell(record, column).to_string();
            let row = HistoryRow {
                id: text(id),
                opportunity: text(opportunity),
                actor: text(actor),
                stage: text(stage),
                amount: text(amount),
                close: text(close),
            };
            rows.push(Read { created: sort_key, file, line: *line, location, at, row });
        }
    }
    rows.sort_by_key(|r| (r.created, r.file, r.line));
    Ok(rows)
}

/// The opportunities as their history builds them.
struct Replay<'a> {
    options: &'a Options,
    opportunities: &'a HashMap<String, Opportunity>,
    out: Imported,
    deals: HashMap<String, State>,
    /// Where a deal first seen closed, or reopened from closed, is put.
    last_stage: String,
}

/// One history row's events: its deal and the fields every event of it carries.
struct RowEvents<'r> {
    deal: String,
    at: &'r str,
    actor: &'r str,
    id: &'r str,
}

impl RowEvents<'_> {
    fn event(&self, kind: &str) -> serde_json::Value {
        json!({"deal": self.deal, "type": kind, "at": self.at, "recorded_at": self.at, "actor": self.actor, "source_id": format!("{}:{kind}", self.id)})
    }
}

impl Replay<'_> {
    /// One history row: opens its opportunity, or makes the events of what it changed.
    fn row(&mut self, read: Read) -> Result<(), ImportError> {
        let Read { location, at, row, .. } = read;
        let invalid = |why: String| ImportError::Invalid { location: location.clone(), why };
        let deal = deal_id(&row.opportunity).map_err(invalid)?;
        let options = self.options;
        let Some(target) =
            self.out.target(options, &row.stage, &location, |s| standard_target(s, &options.pipeline))
        else {
            return Ok(());
        };
        // `2018-08-22 00:00:00` or `2018-08-22`; empty means unchanged.
        let close = &row.close;
        let close_date = match close.get(..10) {
            _ if close.is_empty() => String::new(),
            Some(date) if dealledger_events::Date::parse(date).is_ok() => date.to_string(),
            _ => return Err(invalid(format!("CloseDate `{close}` is not a date (YYYY-MM-DD)"))),
        };
        let events = RowEvents { deal, at: &at, actor: &row.actor, id: &row.id };
        if self.deals.contains_key(&events.deal) {
            self.change(&events, &location, &row, target, close_date);
        } else {
            self.open(&events, &location, &row, target, close_date);
        }
        Ok(())
    }

    /// The first row of an opportunity: opened, and won or lost if it is first seen closed.
    fn open(
        &mut self,
        events: &RowEvents,
        location: &str,
        row: &HistoryRow,
        target: Target,
        close_date: String,
    ) {
        let mut opened = events.event("opened");
        let known = self.opportunities.get(&row.opportunity);
        crate::set(&mut opened, "owner", known.map_or(row.actor.clone(), |o| o.owner.clone()).into());
        crate::set(
            &mut opened,
            "amount",
            if row.amount.is_empty() { "0".into() } else { row.amount.clone().into() },
        );
        let stage = match &target {
            Target::Stage(s) => s.clone(),
            // First seen closed: the stage before is unknown, so the last one (no earlier
            // stage's time is invented).
            _ => self.last_stage.clone(),
        };
        crate::set(&mut opened, "stage", stage.into());
        if !close_date.is_empty() {
            crate::set(&mut opened, "close_date", close_date.clone().into());
        }
        if let Some(name) = known.map(|o| o.name.as_str()).filter(|n| !n.is_empty()) {
            crate::set(&mut opened, "name", name.into());
        }
        self.out.push(location.to_string(), opened);
        match &target {
            Target::Won => self.out.push(location.to_string(), events.event("won")),
            Target::Lost => {
                let mut e = events.event("lost");
                crate::set(&mut e, "reason", row.stage.clone().into());
                self.out.push(location.to_string(), e);
            }
            Target::Stage(_) => {}
        }
        self.deals.insert(events.deal.clone(), State { target, amount: row.amount.clone(), close_date });
    }

    /// A later row: the stage, amount and close-date changes it carries, or a report that it
    /// changed only what the ledger derives.
    fn change(
        &mut self,
        events: &RowEvents,
        location: &str,
        row: &HistoryRow,
        target: Target,
        close_date: String,
    ) {
        let Some(state) = self.deals.get_mut(&events.deal) else { return };
        let out = &mut self.out;
        let push = |out: &mut Imported, e: serde_json::Value| out.push(location.to_string(), e);
        let (amount, stage_name) = (&row.amount, &row.stage);
        let mut changed = false;
        let mut won_now = false;
        if target != state.target {
            changed = true;
            let closed = !matches!(state.target, Target::Stage(_));
            match &target {
                Target::Stage(s) if closed => {
                    let mut e = events.event("requalified");
                    crate::set(&mut e, "stage", s.clone().into());
                    push(out, e);
                }
                Target::Stage(s) => {
                    let mut e = events.event("stage_moved");
                    crate::set(&mut e, "to", s.clone().into());
                    push(out, e);
                }
                outcome => {
                    if closed {
                        let mut e = events.event("requalified");
                        crate::set(&mut e, "stage", self.last_stage.clone().into());
                        push(out, e);
                    }
                    let mut e = events.event(if *outcome == Target::Won { "won" } else { "lost" });
                    if *outcome == Target::Won {
                        won_now = true;
                        if !amount.is_empty() {
                            crate::set(&mut e, "amount", amount.clone().into());
                        }
                    } else {
                        crate::set(&mut e, "reason", stage_name.clone().into());
                    }
                    push(out, e);
                }
            }
            state.target = target;
        }
        if !amount.is_empty() && *amount != state.amount {
            changed = true;
            // A won event in this row already carries the amount.
            if !won_now {
                let mut e = events.event("amount_changed");
                crate::set(&mut e, "amount", amount.clone().into());
                push(out, e);
            }
            state.amount = amount.clone();
        }
        if !close_date.is_empty() && close_date != state.close_date {
            changed = true;
            let mut e = events.event("close_date_changed");
            crate::set(&mut e, "close_date", close_date.clone().into());
            push(out, e);
            state.close_date = close_date;
        }
        if !changed {
            let why =
                format!("{}: only probability or forecast category changed (derived from the stage)", row.id);
            out.skip(location.to_string(), "probability_only", why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_stages_on_the_default_pipeline() {
        let p = Pipeline::default();
        let stage = |n: &str| match standard_target(n, &p) {
            Some(Target::Stage(s)) => s,
            other => format!("{other:?}"),
        };
        assert_eq!(stage("Prospecting"), "prospecting");
        assert_eq!(stage("Qualification"), "prospecting");
        assert_eq!(stage("Needs Analysis"), "qualifying");
        assert_eq!(stage("Value Proposition"), "quote");
        assert_eq!(stage("Id. Decision Makers"), "quote");
        assert_eq!(stage("Perception Analysis"), "closing");
        assert_eq!(stage("Proposal/Price Quote"), "closing");
        assert_eq!(stage("Negotiation/Review"), "closing");
        assert_eq!(standard_target("Closed Won", &p), Some(Target::Won));
        assert_eq!(standard_target("Closed Lost", &p), Some(Target::Lost));
        assert_eq!(standard_target("Pitching", &p), None);
    }

    #[test]
    fn instants() {
        let text = |t: &str| instant(t).map(|(text, _)| text);
        assert_eq!(text("2018-10-13 17:16:45").as_deref(), Some("2018-10-13T17:16:45Z"));
        assert_eq!(text("2018-10-13T17:16:45.000+0000").as_deref(), Some("2018-10-13T17:16:45+00:00"));
        assert_eq!(text("2018-10-13"), None);
        assert_eq!(
            instant("2018-10-13 17:16:45").map(|(_, at)| at.to_string()).as_deref(),
            Some("2018-10-13T17:16:45Z")
        );
    }
}

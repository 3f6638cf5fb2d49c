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

/// A record read through the API: its fields' text by API name.
pub type Record = std::collections::BTreeMap<String, String>;

/// The same import of OpportunityHistory and Opportunity records read through the API (`sync
/// salesforce`): the same events with the same `source_id`s as the files give. `name` says
/// where they came from in locations (`salesforce OpportunityHistory:N`).
pub fn import_records(
    name: &str,
    history: &[Record],
    opportunities: &[Record],
    owners: &[Record],
    options: &Options,
) -> Result<Imported, ImportError> {
    let table = |object: &str, records: &[Record], headers: &[&str]| Table {
        path: format!("{name} {object}"),
        headers: headers.iter().map(|h| h.to_string()).collect(),
        records: records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let cells = headers.iter().map(|h| r.get(*h).map_or("", String::as_str));
                (i as u64 + 1, csv::StringRecord::from_iter(cells))
            })
            .collect(),
    };
    let history_headers = [
        "Id",
        "OpportunityId",
        "CreatedById",
        "CreatedDate",
        "StageName",
        "Amount",
        "CloseDate",
        "IsDeleted",
    ];
    let mut tables = vec![table("OpportunityHistory", history, &history_headers)];
    if !opportunities.is_empty() {
        tables.push(table("Opportunity", opportunities, &["Id", "OwnerId", "Name"]));
    }
    if !owners.is_empty() {
        let headers = [
            "Id",
            "OpportunityId",
            "CreatedById",
            "CreatedDate",
            "Field",
            "DataType",
            "OldValue",
            "NewValue",
        ];
        tables.push(table("OpportunityFieldHistory", owners, &headers));
    }
    import_tables(tables, options)
}

/// Whether two amount cells say the same amount (`7500`, `7500.0` and `7500.00` do: the API
/// writes numbers, exports text).
fn same_amount(a: &str, b: &str) -> bool {
    use dealledger_events::money::Decimal;
    match (Decimal::parse(a.trim()), Decimal::parse(b.trim())) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Owner changes from OpportunityFieldHistory records of the `Owner` field. Salesforce writes
/// each change twice, once with the users' names (`DataType` `Text`) and once with their Ids
/// (`EntityId`): the Id row is an `owner_changed` to `NewValue` at its `CreatedDate`
/// (`recorded_at` the same, `source_id` `ID:owner_changed`, `actor` its `CreatedById`); the
/// name row is counted as `owner_names`, a deleted row as `deleted`.
pub fn owner_changes(rows: &[(String, Record)]) -> Imported {
    let mut out = Imported::default();
    for (location, row) in rows {
        let field = |key: &str| row.get(key).map_or("", |v| v.trim());
        let location = location.clone();
        if field("Field") != "Owner" {
            out.skip(
                location,
                "unmapped_field",
                format!("a change of {}, which the ledger does not follow", field("Field")),
            );
            continue;
        }
        if matches!(field("IsDeleted"), "1" | "true" | "True") {
            out.skip(location, "deleted", "deleted in Salesforce");
            continue;
        }
        if field("DataType") != "EntityId" {
            out.skip(location, "owner_names", "the change by the users' names; its Id row is the event");
            continue;
        }
        let Some((at, _)) = instant(field("CreatedDate")) else {
            out.skip(
                location,
                "no_date",
                format!("CreatedDate `{}` is not a date and time", field("CreatedDate")),
            );
            continue;
        };
        let event = json!({
            "deal": field("OpportunityId"), "type": "owner_changed", "at": at, "recorded_at": at,
            "actor": field("CreatedById"), "owner": field("NewValue"),
            "source_id": format!("{}:owner_changed", field("Id")),
        });
        out.push(location, event);
    }
    out
}

/// A Salesforce stage name's target, as the import maps it: `[import.stages]`, a pipeline stage
/// of that name, else the standard stages' rule; None when none takes it.
pub fn stage_target(name: &str, options: &Options) -> Option<Target> {
    options.target(name, |s| standard_target(s, &options.pipeline))
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
    let (field_history, tables): (Vec<Table>, Vec<Table>) =
        tables.into_iter().partition(|t| t.has("Field") && t.has("NewValue"));
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
    let owner_rows = records_of(&field_history);
    let mut replay = Replay {
        options,
        opportunities: &opportunities,
        first_owners: first_owners(&owner_rows),
        out: Imported::default(),
        deals: HashMap::new(),
        last_stage: options.pipeline.stages().last().expect("a pipeline has stages").name.clone(),
    };
    for read in history_rows(&history, options)? {
        replay.row(read)?;
    }
    let mut out = replay.out;
    let owners = owner_changes(&owner_rows);
    out.rows.extend(owners.rows);
    out.skipped.extend(owners.skipped);
    out.finish(&options.pipeline)
}

/// The rows of OpportunityFieldHistory tables, each with where it is, by its fields' names.
fn records_of(tables: &[Table]) -> Vec<(String, Record)> {
    let mut out = Vec::new();
    for table in tables {
        for (line, record) in &table.records {
            let fields =
                table.headers.iter().zip(record.iter()).map(|(h, v)| (h.clone(), v.trim().to_string()));
            out.push((table.location(*line), fields.collect()));
        }
    }
    out
}

/// Each opportunity's owner before its first owner change: the old value of its first change
/// by Id. An opportunity opens with it (else with its owner now, from Opportunity.csv), so that
/// its opening says the same whenever it is read, before or after an owner change.
fn first_owners(rows: &[(String, Record)]) -> HashMap<String, String> {
    let mut changes: Vec<(Timestamp, &str, &str, &str)> = rows
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.get("Field").map(String::as_str) == Some("Owner"))
        .filter(|r| r.get("DataType").map(String::as_str) == Some("EntityId"))
        .filter(|r| !matches!(r.get("IsDeleted").map(String::as_str), Some("1" | "true" | "True")))
        .filter_map(|r| {
            let at = instant(r.get("CreatedDate")?)?.1;
            Some((at, r.get("Id")?.as_str(), r.get("OpportunityId")?.as_str(), r.get("OldValue")?.as_str()))
        })
        .collect();
    changes.sort_unstable();
    let mut out = HashMap::new();
    for (_, _, opportunity, old) in changes {
        if !old.is_empty() {
            out.entry(opportunity.to_string()).or_insert_with(|| old.to_string());
        }
    }
    out
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
    /// The owner before the first owner change, by opportunity.
    first_owners: HashMap<String, String>,
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
        let owner = match self.first_owners.get(&row.opportunity) {
            Some(first) => first.clone(),
            None => known.map_or(row.actor.clone(), |o| o.owner.clone()),
        };
        crate::set(&mut opened, "owner", owner.into());
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
        if !amount.is_empty() && !same_amount(amount, &state.amount) {
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

//! Field-change logs: one row per (deal, change time, field, new value), as Pipedrive exports
//! them (deal_changes.csv, with stages.csv for stage names, fields.csv for lost-reason labels and
//! activity.csv for touches) and like Salesforce's OpportunityFieldHistory. Files are told apart
//! by their headers, so they can be given in any order.
//!
//! Fields understood (either vocabulary): creation (`add_time`, `created`) opens the deal;
//! owner (`user_id`, `owner_id`, `Owner`) changes the owner; stage (`stage_id`, `StageName`)
//! moves it (or wins, loses, requalifies, through the stage map); `lost_reason` loses it;
//! `status` won/lost; amount (`value`, `Amount`); close date (`expected_close_date`,
//! `CloseDate`). Anything else is reported and skipped. Rows dated before a deal's creation, a
//! second creation, a second loss and activities for deals the log never created are reported
//! and skipped; done activities become outbound touches.

use crate::opportunities::iso_date;
use crate::{cell, deal_id, first_location, read_all, ImportError, Imported, Options, Table, Target};
use dealledger_events::Timestamp;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// `2024-04-09 21:32:09`, `2024-04-09T21:32:09` (UTC), or RFC 3339: as RFC 3339, and the
/// instant in microseconds. A cell may hold any character, so it is cut with `get`, never by
/// byte index.
fn instant(text: &str) -> Option<(String, i64)> {
    let text = text.trim();
    if let Ok(at) = Timestamp::parse_rfc3339(text) {
        return Some((text.to_string(), at.0));
    }
    if text.len() == 19 {
        let out = format!("{}T{}Z", text.get(..10)?, text.get(11..)?);
        let at = Timestamp::parse_rfc3339(&out).ok()?;
        return Some((out, at.0));
    }
    None
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Created,
    Owner,
    Stage,
    LostReason,
    Status,
    Amount,
    CloseDate,
}

fn field(key: &str) -> Option<Field> {
    Some(match key {
        "add_time" | "created" | "Created" => Field::Created,
        "user_id" | "owner_id" | "Owner" | "OwnerId" => Field::Owner,
        "stage_id" | "StageName" | "stage" => Field::Stage,
        "lost_reason" => Field::LostReason,
        "status" => Field::Status,
        "value" | "Amount" | "amount" => Field::Amount,
        "expected_close_date" | "CloseDate" | "close_date" => Field::CloseDate,
        _ => return None,
    })
}

#[derive(Clone, PartialEq, Eq)]
enum Status {
    Open(String),
    Won,
    Lost,
}

struct Deal {
    opened_at: i64,
    status: Status,
    owner: String,
}

/// Lost-reason labels from fields.csv (`FIELD_VALUE_OPTIONS` of `lost_reason`: a JSON list of
/// {id, label}).
fn lost_labels(table: &Table) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    let (Some(key), Some(options)) = (
        table.headers.iter().position(|h| h == "FIELD_KEY"),
        table.headers.iter().position(|h| h == "FIELD_VALUE_OPTIONS"),
    ) else {
        return labels;
    };
    for (_, record) in &table.records {
        if cell(record, key) != "lost_reason" {
            continue;
        }
        if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(cell(record, options)) {
            for item in items {
                if let (Some(id), Some(label)) =
                    (item.get("id").and_then(Value::as_str), item.get("label").and_then(Value::as_str))
                {
                    labels.insert(id.to_string(), label.to_string());
                }
            }
        }
    }
    labels
}

pub fn import(files: &[PathBuf], options: &Options) -> Result<Imported, ImportError> {
    import_tables(read_all(files)?, options)
}

/// The inputs, told apart by their headers.
#[derive(Default)]
struct Inputs<'t> {
    changes: Vec<&'t Table>,
    activities: Vec<&'t Table>,
    /// Stage id to name (stages.csv).
    stage_names: HashMap<String, String>,
    /// Lost-reason id to label (fields.csv).
    labels: HashMap<String, String>,
    /// Activity type key to name.
    activity_types: HashMap<String, String>,
}

/// One row of a change log, read.
struct ChangeRow {
    /// The change time in microseconds, then the file and line: the order rows are replayed in.
    time: i64,
    file: usize,
    line: u64,
    location: String,
    /// The change time as RFC 3339.
    at: String,
    deal: String,
    field: String,
    value: String,
}

/// An event made, with where it goes among the others.
struct Pending {
    time: i64,
    /// Changes (0) before activities (1) at one instant.
    rank: u8,
    order: usize,
    location: String,
    event: Value,
}

/// [`import`] of files already read.
pub(crate) fn import_tables(tables: Vec<Table>, options: &Options) -> Result<Imported, ImportError> {
    let inputs = sort_inputs(&tables, options)?;
    let mut replay = Replay {
        options,
        inputs: &inputs,
        out: Imported::default(),
        events: Vec::new(),
        deals: HashMap::new(),
        first_stage: options.pipeline.first().to_string(),
    };
    for row in change_rows(&inputs.changes, options)? {
        replay.change(row)?;
    }
    for table in &inputs.activities {
        replay.activities(table)?;
    }
    let Replay { mut out, mut events, .. } = replay;
    events.sort_by_key(|e| (e.time, e.rank, e.order));
    for Pending { location, event, .. } in events {
        out.push(location, event);
    }
    out.finish(&options.pipeline)
}

fn sort_inputs<'t>(tables: &'t [Table], options: &Options) -> Result<Inputs<'t>, ImportError> {
    let key = |k: &str, d: &'static str| options.columns.get(k).cloned().unwrap_or_else(|| d.to_string());
    let (deal_col, field_col) = (key("deal_id", "deal_id"), key("field", "changed_field_key"));
    let mut inputs = Inputs::default();
    for table in tables {
        if table.has(&field_col) && table.has(&deal_col) {
            inputs.changes.push(table);
        } else if table.has("stage_id") && table.has("stage_name") {
            let (id, name) = (
                table.column(options, "stage_id", "stage_id")?,
                table.column(options, "stage_name", "stage_name")?,
            );
            for (_, r) in &table.records {
                inputs.stage_names.insert(cell(r, id).to_string(), cell(r, name).to_string());
            }
        } else if table.has("FIELD_KEY") {
            inputs.labels = lost_labels(table);
        } else if table.has("activity_id") && table.has(&deal_col) {
            inputs.activities.push(table);
        } else if table.has("type") && table.has("name") && table.has("active") {
            let (t, n) = (
                table.column(options, "activity_type", "type")?,
                table.column(options, "activity_type_name", "name")?,
            );
            for (_, r) in &table.records {
                inputs.activity_types.insert(cell(r, t).to_string(), cell(r, n).to_string());
            }
        } else {
            return Err(ImportError::Invalid {
                location: format!("{}:1", table.path),
                why: format!(
                    "not a change log, stages, fields, activity or activity-type file (header: {})",
                    table.headers.join(", ")
                ),
            });
        }
    }
    if inputs.changes.is_empty() {
        return Err(ImportError::Invalid {
            location: first_location(tables),
            why: format!("no change log among the inputs (a CSV with columns {deal_col} and {field_col})"),
        });
    }
    Ok(inputs)
}

/// Every change row in (time, file, line) order.
fn change_rows(changes: &[&Table], options: &Options) -> Result<Vec<ChangeRow>, ImportError> {
    let mut rows = Vec::new();
    for (file, table) in changes.iter().enumerate() {
        let deal = table.column(options, "deal_id", "deal_id")?;
        let time = table.column(options, "change_time", "change_time")?;
        let field = table.column(options, "field", "changed_field_key")?;
        let value = table.column(options, "value", "new_value")?;
        for (line, record) in &table.records {
            let location = table.location(*line);
            let text = cell(record, time);
            let (at, time) = instant(text).ok_or_else(|| ImportError::Invalid {
                location: location.clone(),
                why: format!("change time `{text}` is not a date and time"),
            })?;
            rows.push(ChangeRow {
                time,
                file,
                line: *line,
                location,
                at,
                deal: cell(record, deal).to_string(),
                field: cell(record, field).to_string(),
                value: cell(record, value).to_string(),
            });
        }
    }
    rows.sort_by_key(|r| (r.time, r.file, r.line));
    Ok(rows)
}

/// The deals as the change log builds them, and the events made so far.
struct Replay<'a> {
    options: &'a Options,
    inputs: &'a Inputs<'a>,
    out: Imported,
    events: Vec<Pending>,
    deals: HashMap<String, Deal>,
    first_stage: String,
}

/// What one change row is about: its deal, field and time, for the events it makes.
struct Change<'r> {
    deal: String,
    key: &'r str,
    at: &'r str,
    time: i64,
    location: &'r str,
}

impl Change<'_> {
    fn event(&self, kind: &str) -> Value {
        let deal = &self.deal;
        // The change log's time is when the CRM recorded the change.
        json!({"deal": deal, "type": kind, "at": self.at, "recorded_at": self.at, "source_id": format!("{deal}:{}:{}", self.key, self.at)})
    }
}

impl Replay<'_> {
    fn emit(&mut self, change: &Change, event: Value) {
        let order = self.events.len();
        self.events.push(Pending {
            time: change.time,
            rank: 0,
            order,
            location: change.location.to_string(),
            event,
        });
    }

    fn skip(&mut self, change: &Change, kind: &'static str, why: String) {
        self.out.skip(change.location.to_string(), kind, why);
    }

    /// One change row: opens, moves, closes or changes its deal, or is skipped with the reason.
    fn change(&mut self, row: ChangeRow) -> Result<(), ImportError> {
        let invalid = |why: String| ImportError::Invalid { location: row.location.clone(), why };
        let deal = deal_id(&row.deal).map_err(invalid)?;
        let change = Change { deal, key: &row.field, at: &row.at, time: row.time, location: &row.location };
        let deal = change.deal.clone();
        let Some(f) = field(&row.field) else {
            self.skip(&change, "unmapped_field", format!("deal {deal}: field `{}` is not mapped", row.field));
            return Ok(());
        };
        if !self.deals.contains_key(&deal) {
            if f != Field::Created {
                let why = format!("deal {deal}: `{}` dated before the deal's creation row", row.field);
                self.skip(&change, "before_creation", why);
                return Ok(());
            }
            let mut e = change.event("opened");
            crate::set(&mut e, "owner", "unassigned".into());
            crate::set(&mut e, "amount", 0.into());
            crate::set(&mut e, "stage", self.first_stage.clone().into());
            self.emit(&change, e);
            let status = Status::Open(self.first_stage.clone());
            self.deals.insert(deal, Deal { opened_at: row.time, status, owner: "unassigned".into() });
            return Ok(());
        }
        let value = row.value.clone();
        match f {
            Field::Created => {
                self.skip(&change, "second_creation", format!("deal {deal}: a second creation row"))
            }
            Field::Owner if self.deals.get(&deal).is_some_and(|d| d.owner == value) || value.is_empty() => {
                self.skip(&change, "owner_unchanged", format!("deal {deal}: owner unchanged"))
            }
            Field::Owner => {
                let mut e = change.event("owner_changed");
                crate::set(&mut e, "owner", value.clone().into());
                self.emit(&change, e);
                self.set(&deal, |state| state.owner = value);
            }
            Field::Stage => self.stage(&change, value)?,
            Field::LostReason | Field::Status => self.close(&change, f, value),
            Field::Amount => {
                let mut e = change.event("amount_changed");
                crate::set(&mut e, "amount", value.into());
                self.emit(&change, e);
            }
            Field::CloseDate => {
                let Some(date) = iso_date(&value) else {
                    self.skip(&change, "no_date", format!("deal {deal}: close date `{value}` is not a date"));
                    return Ok(());
                };
                let mut e = change.event("close_date_changed");
                crate::set(&mut e, "close_date", date.into());
                self.emit(&change, e);
            }
        }
        Ok(())
    }

    fn set(&mut self, deal: &str, edit: impl FnOnce(&mut Deal)) {
        if let Some(state) = self.deals.get_mut(deal) {
            edit(state);
        }
    }

    fn status(&self, deal: &str) -> Status {
        self.deals.get(deal).map_or(Status::Lost, |state| state.status.clone())
    }

    /// A stage change: a move, a win or loss through the stage map, or a requalification of a
    /// lost deal.
    fn stage(&mut self, change: &Change, value: String) -> Result<(), ImportError> {
        let deal = change.deal.clone();
        let name = self.inputs.stage_names.get(&value).cloned().unwrap_or(value);
        let Some(target) = self.out.target(self.options, &name, change.location, |_| None) else {
            return Ok(());
        };
        match (&target, &self.status(&deal)) {
            (Target::Stage(s), Status::Open(current)) if s == current => {
                self.skip(change, "same_stage", format!("deal {deal}: already in `{s}`"));
            }
            (Target::Stage(s), Status::Open(_)) => {
                let mut e = change.event("stage_moved");
                crate::set(&mut e, "to", s.clone().into());
                self.emit(change, e);
                self.set(&deal, |state| state.status = Status::Open(s.clone()));
            }
            (Target::Stage(s), Status::Won) => {
                self.skip(change, "after_won", format!("deal {deal}: stage `{s}` after the deal was won"));
            }
            (Target::Stage(s), Status::Lost) => {
                let mut e = change.event("requalified");
                crate::set(&mut e, "stage", s.clone().into());
                self.emit(change, e);
                self.set(&deal, |state| state.status = Status::Open(s.clone()));
            }
            (Target::Won, Status::Open(_)) => {
                self.emit(change, change.event("won"));
                self.set(&deal, |state| state.status = Status::Won);
            }
            (Target::Lost, Status::Open(_)) => {
                let mut e = change.event("lost");
                crate::set(&mut e, "reason", format!("stage {name}").into());
                self.emit(change, e);
                self.set(&deal, |state| state.status = Status::Lost);
            }
            _ => self.skip(
                change,
                "already_closed",
                format!("deal {deal}: stage `{name}` on a deal already closed"),
            ),
        }
        Ok(())
    }

    /// `status` won or lost, or a `lost_reason`: closes an open deal.
    fn close(&mut self, change: &Change, f: Field, value: String) {
        let deal = change.deal.clone();
        let key = change.key;
        let outcome = match (f, value.as_str()) {
            (Field::Status, "won") => Status::Won,
            (Field::Status, "lost") | (Field::LostReason, _) => Status::Lost,
            _ => {
                self.skip(
                    change,
                    "unmapped_value",
                    format!("deal {deal}: status `{value}` is neither won nor lost"),
                );
                return;
            }
        };
        if !matches!(self.status(&deal), Status::Open(_)) {
            self.skip(change, "already_closed", format!("deal {deal}: `{key}` on a deal already closed"));
            return;
        }
        let e = if outcome == Status::Won {
            change.event("won")
        } else {
            let mut e = change.event("lost");
            let reason = self.inputs.labels.get(&value).cloned().unwrap_or_else(|| format!("{key} {value}"));
            crate::set(&mut e, "reason", reason.into());
            e
        };
        self.emit(change, e);
        self.set(&deal, |state| state.status = outcome);
    }

    /// Done activities of deals the change log created, as outbound touches.
    fn activities(&mut self, table: &Table) -> Result<(), ImportError> {
        let options = self.options;
        let id = table.column(options, "activity_id", "activity_id")?;
        let deal_c = table.column(options, "deal_id", "deal_id")?;
        let done = table.column(options, "done", "done")?;
        let due = table.column(options, "activity_at", "due_to")?;
        let kind = table.column(options, "activity_type", "type")?;
        let user = table.column(options, "activity_user", "assigned_to_user").ok();
        for (line, record) in &table.records {
            let location = table.location(*line);
            let (activity, deal) = (cell(record, id), cell(record, deal_c));
            if !matches!(cell(record, done), "True" | "true" | "1") {
                self.out.skip(location, "not_done", format!("activity {activity}: not done"));
                continue;
            }
            let Some(state) = self.deals.get(deal) else {
                let why = format!("activity {activity}: deal {deal} is not in the change log");
                self.out.skip(location, "unknown_deal", why);
                continue;
            };
            let text = cell(record, due);
            let Some((at, time)) = instant(text) else {
                self.out.skip(location, "no_date", format!("activity {activity}: no valid time (`{text}`)"));
                continue;
            };
            if time < state.opened_at {
                let why = format!("activity {activity}: dated before deal {deal} was created");
                self.out.skip(location, "before_creation", why);
                continue;
            }
            let type_key = cell(record, kind);
            let type_name =
                self.inputs.activity_types.get(type_key).map_or(type_key, String::as_str).to_lowercase();
            // An activity's due time is the only time the export gives it: when it was done,
            // and so when it was known.
            let mut e = json!({"deal": deal, "type": "touch", "at": at, "recorded_at": at, "channel": channel_of(&type_name), "direction": "outbound", "source_id": format!("activity:{activity}")});
            if let Some(user) = user.map(|u| cell(record, u)).filter(|u| !u.is_empty()) {
                crate::set(&mut e, "actor", user.into());
            }
            let order = self.events.len();
            self.events.push(Pending { time, rank: 1, order, location, event: e });
        }
        Ok(())
    }
}

/// The touch channel an activity type's name suggests.
fn channel_of(type_name: &str) -> &'static str {
    if type_name.contains("call") {
        "call"
    } else if type_name.contains("meeting") {
        "meeting"
    } else if type_name.contains("email") {
        "email"
    } else if type_name.contains("demo") {
        "demo"
    } else {
        "other"
    }
}

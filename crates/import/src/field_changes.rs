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
                if let (Some(id), Some(label)) = (item["id"].as_str(), item["label"].as_str()) {
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

/// [`import`] of files already read.
pub(crate) fn import_tables(tables: Vec<Table>, options: &Options) -> Result<Imported, ImportError> {
    let key = |k: &str, d: &'static str| options.columns.get(k).cloned().unwrap_or_else(|| d.to_string());
    let (deal_col, field_col) = (key("deal_id", "deal_id"), key("field", "changed_field_key"));
    let mut stage_names: HashMap<String, String> = HashMap::new();
    let mut labels = HashMap::new();
    let mut activity_types: HashMap<String, String> = HashMap::new();
    let (mut changes, mut activities) = (Vec::new(), Vec::new());
    for table in &tables {
        if table.has(&field_col) && table.has(&deal_col) {
            changes.push(table);
        } else if table.has("stage_id") && table.has("stage_name") {
            let (id, name) = (
                table.column(options, "stage_id", "stage_id")?,
                table.column(options, "stage_name", "stage_name")?,
            );
            for (_, r) in &table.records {
                stage_names.insert(cell(r, id).to_string(), cell(r, name).to_string());
            }
        } else if table.has("FIELD_KEY") {
            labels = lost_labels(table);
        } else if table.has("activity_id") && table.has(&deal_col) {
            activities.push(table);
        } else if table.has("type") && table.has("name") && table.has("active") {
            let (t, n) = (
                table.column(options, "activity_type", "type")?,
                table.column(options, "activity_type_name", "name")?,
            );
            for (_, r) in &table.records {
                activity_types.insert(cell(r, t).to_string(), cell(r, n).to_string());
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
    if changes.is_empty() {
        return Err(ImportError::Invalid {
            location: first_location(&tables),
            why: format!("no change log among the inputs (a CSV with columns {deal_col} and {field_col})"),
        });
    }
    // Every change row in (time, file, line) order.
    let mut rows = Vec::new();
    for (t, table) in changes.iter().enumerate() {
        let deal = table.column(options, "deal_id", "deal_id")?;
        let time = table.column(options, "change_time", "change_time")?;
        let field_c = table.column(options, "field", "changed_field_key")?;
        let value = table.column(options, "value", "new_value")?;
        for (line, record) in &table.records {
            let location = table.location(*line);
            let text = cell(record, time);
            let (at, time) = instant(text).ok_or_else(|| ImportError::Invalid {
                location: location.clone(),
                why: format!("change time `{text}` is not a date and time"),
            })?;
            let row = (
                cell(record, deal).to_string(),
                cell(record, field_c).to_string(),
                cell(record, value).to_string(),
            );
            rows.push((time, t, *line, location, at, row));
        }
    }
    rows.sort_by_key(|r| (r.0, r.1, r.2));
    let mut out = Imported::default();
    // (time, rank, order, location, event): changes rank before activities at one instant.
    let mut events: Vec<(i64, u8, usize, String, Value)> = Vec::new();
    let mut deals: HashMap<String, Deal> = HashMap::new();
    let first_stage = options.pipeline.first().to_string();
    for (time, _, _, location, at, (raw_deal, key, value)) in rows {
        let invalid = |why: String| ImportError::Invalid { location: location.clone(), why };
        let deal = deal_id(&raw_deal).map_err(invalid)?;
        let Some(f) = field(&key) else {
            out.skip(location, "unmapped_field", format!("deal {deal}: field `{key}` is not mapped"));
            continue;
        };
        let base = |kind: &str| json!({"deal": deal, "type": kind, "at": at, "source_id": format!("{deal}:{key}:{at}")});
        let mut emit = |event: Value| {
            let order = events.len();
            events.push((time, 0, order, location.clone(), event));
        };
        let Some(state) = deals.get_mut(&deal) else {
            if f != Field::Created {
                out.skip(
                    location,
                    "before_creation",
                    format!("deal {deal}: `{key}` dated before the deal's creation row"),
                );
                continue;
            }
            let mut e = base("opened");
            e["owner"] = "unassigned".into();
            e["amount"] = 0.into();
            e["stage"] = first_stage.clone().into();
            emit(e);
            deals.insert(
                deal.clone(),
                Deal {
                    opened_at: time,
                    status: Status::Open(first_stage.clone()),
                    owner: "unassigned".into(),
                },
            );
            continue;
        };
        match f {
            Field::Created => {
                out.skip(location, "second_creation", format!("deal {deal}: a second creation row"))
            }
            Field::Owner if value == state.owner || value.is_empty() => {
                out.skip(location, "owner_unchanged", format!("deal {deal}: owner unchanged"))
            }
            Field::Owner => {
                let mut e = base("owner_changed");
                e["owner"] = value.clone().into();
                emit(e);
                state.owner = value;
            }
            Field::Stage => {
                let name = stage_names.get(&value).cloned().unwrap_or(value);
                let target = options.target(&name, |_| None).map_err(invalid)?;
                match (&target, &state.status) {
                    (Target::Stage(s), Status::Open(current)) if s == current => {
                        out.skip(location, "same_stage", format!("deal {deal}: already in `{s}`"));
                    }
                    (Target::Stage(s), Status::Open(_)) => {
                        let mut e = base("stage_moved");
                        e["to"] = s.clone().into();
                        emit(e);
                        state.status = Status::Open(s.clone());
                    }
                    (Target::Stage(s), Status::Won) => {
                        out.skip(
                            location,
                            "after_won",
                            format!("deal {deal}: stage `{s}` after the deal was won"),
                        );
                    }
                    (Target::Stage(s), Status::Lost) => {
                        let mut e = base("requalified");
                        e["stage"] = s.clone().into();
                        emit(e);
                        state.status = Status::Open(s.clone());
                    }
                    (Target::Won, Status::Open(_)) => {
                        emit(base("won"));
                        state.status = Status::Won;
                    }
                    (Target::Lost, Status::Open(_)) => {
                        let mut e = base("lost");
                        e["reason"] = format!("stage {name}").into();
                        emit(e);
                        state.status = Status::Lost;
                    }
                    _ => out.skip(
                        location,
                        "already_closed",
                        format!("deal {deal}: stage `{name}` on a deal already closed"),
                    ),
                }
            }
            Field::LostReason | Field::Status => {
                let outcome = match (f, value.as_str()) {
                    (Field::Status, "won") => Status::Won,
                    (Field::Status, "lost") | (Field::LostReason, _) => Status::Lost,
                    _ => {
                        out.skip(
                            location,
                            "unmapped_value",
                            format!("deal {deal}: status `{value}` is neither won nor lost"),
                        );
                        continue;
                    }
                };
                if !matches!(state.status, Status::Open(_)) {
                    out.skip(
                        location,
                        "already_closed",
                        format!("deal {deal}: `{key}` on a deal already closed"),
                    );
                    continue;
                }
                let e = if outcome == Status::Won {
                    base("won")
                } else {
                    let mut e = base("lost");
                    let reason = labels.get(&value).cloned().unwrap_or_else(|| format!("{key} {value}"));
                    e["reason"] = reason.into();
                    e
                };
                emit(e);
                state.status = outcome;
            }
            Field::Amount => {
                let mut e = base("amount_changed");
                e["amount"] = value.into();
                emit(e);
            }
            Field::CloseDate => {
                let Some(date) = iso_date(&value) else {
                    out.skip(location, "no_date", format!("deal {deal}: close date `{value}` is not a date"));
                    continue;
                };
                let mut e = base("close_date_changed");
                e["close_date"] = date.into();
                emit(e);
            }
        }
    }
    for table in activities {
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
                out.skip(location, "not_done", format!("activity {activity}: not done"));
                continue;
            }
            let Some(state) = deals.get(deal) else {
                out.skip(
                    location,
                    "unknown_deal",
                    format!("activity {activity}: deal {deal} is not in the change log"),
                );
                continue;
            };
            let text = cell(record, due);
            let Some((at, time)) = instant(text) else {
                out.skip(location, "no_date", format!("activity {activity}: no valid time (`{text}`)"));
                continue;
            };
            if time < state.opened_at {
                out.skip(
                    location,
                    "before_creation",
                    format!("activity {activity}: dated before deal {deal} was created"),
                );
                continue;
            }
            let type_key = cell(record, kind);
            let type_name = activity_types.get(type_key).map_or(type_key, String::as_str).to_lowercase();
            let channel = if type_name.contains("call") {
                "call"
            } else if type_name.contains("meeting") {
                "meeting"
            } else if type_name.contains("email") {
                "email"
            } else if type_name.contains("demo") {
                "demo"
            } else {
                "other"
            };
            let mut e = json!({"deal": deal, "type": "touch", "at": at, "channel": channel, "direction": "outbound", "source_id": format!("activity:{activity}")});
            if let Some(user) = user.map(|u| cell(record, u)).filter(|u| !u.is_empty()) {
                e["actor"] = user.into();
            }
            let order = events.len();
            events.push((time, 1, order, location, e));
        }
    }
    events.sort_by_key(|e| (e.0, e.1, e.2));
    for (_, _, _, location, event) in events {
        out.push(location, event);
    }
    Ok(out)
}

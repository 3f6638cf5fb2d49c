//! Salesforce activities on opportunities as touches: Tasks, Events and EmailMessages, from Data
//! Loader CSV exports (`ingest --format salesforce-activities`) and from the REST API (`sync
//! salesforce`). One mapping ([`touch`]) serves both, so an activity is one event with one
//! `source_id` (`salesforce:task:ID`, `salesforce:event:ID`, `salesforce:email:ID`) whichever
//! path brought it first.
//!
//! Mapping (docs/importers.md):
//! - a completed Task is a touch at its completion (`CompletedDateTime`, else its `ActivityDate`
//!   at 00:00 UTC): channel `call` for the `Call` subtype, `email` for `Email` and `ListEmail`,
//!   `social` for `LinkedIn`, else `other`; inbound when its `CallType` is `Inbound`, else
//!   outbound; minutes from `CallDurationInSeconds`;
//! - an Event is an outbound meeting at its `StartDateTime`, `DurationInMinutes` long;
//! - an EmailMessage is an email at its `MessageDate`, inbound when `Incoming`.
//!
//! `recorded_at` is when Salesforce learnt of it: its `CreatedDate`, never before it happened.
//! Skipped and counted by kind: `deleted`, `no_opportunity` (its `WhatId` / `RelatedToId` is no
//! opportunity), `open_task`, `no_time`, `all_day`, `email_not_sent` (a draft), `too_long`,
//! `invalid`, and for files `not_yet` (dated after now; the sync reads it again when due).

use crate::{cell, read_all, ImportError, Imported, Table};
use dealledger_events::Timestamp;
use serde_json::json;
use std::path::PathBuf;

/// The longest touch the ledger takes (a day).
const TOUCH_MINUTES_MAX: i64 = 1440;
/// Opportunity ids start so (Salesforce's key prefix of the Opportunity object).
pub const OPPORTUNITY_PREFIX: &str = "006";

/// The activity objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Activity {
    Task,
    Event,
    EmailMessage,
}

impl Activity {
    pub const ALL: [Activity; 3] = [Activity::Task, Activity::Event, Activity::EmailMessage];

    /// The object's API name.
    pub fn name(self) -> &'static str {
        match self {
            Activity::Task => "Task",
            Activity::Event => "Event",
            Activity::EmailMessage => "EmailMessage",
        }
    }

    /// The fields the mapping reads (a query's select list; a CSV's header has them).
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Activity::Task => &[
                "Id",
                "WhatId",
                "WhoId",
                "OwnerId",
                "Status",
                "IsClosed",
                "TaskSubtype",
                "CallType",
                "CallDurationInSeconds",
                "ActivityDate",
                "CompletedDateTime",
                "CreatedDate",
                "SystemModstamp",
                "IsDeleted",
            ],
            Activity::Event => &[
                "Id",
                "WhatId",
                "WhoId",
                "OwnerId",
                "StartDateTime",
                "EndDateTime",
                "DurationInMinutes",
                "IsAllDayEvent",
                "CreatedDate",
                "SystemModstamp",
                "IsDeleted",
            ],
            Activity::EmailMessage => &[
                "Id",
                "RelatedToId",
                "Incoming",
                "Status",
                "MessageDate",
                "CreatedById",
                "CreatedDate",
                "SystemModstamp",
                "IsDeleted",
            ],
        }
    }

    /// Which object a CSV holds, by the headers only it has.
    pub fn of_header(has: impl Fn(&str) -> bool) -> Option<Activity> {
        if has("TaskSubtype") || has("CallType") || has("CompletedDateTime") {
            Some(Activity::Task)
        } else if has("StartDateTime") || has("DurationInMinutes") {
            Some(Activity::Event)
        } else if has("MessageDate") || has("Incoming") {
            Some(Activity::EmailMessage)
        } else {
            None
        }
    }

    fn source_kind(self) -> &'static str {
        match self {
            Activity::Task => "task",
            Activity::Event => "event",
            Activity::EmailMessage => "email",
        }
    }
}

/// What one activity is.
#[derive(Clone, Debug, PartialEq)]
pub enum Touched {
    /// The touch, as an event line of the contract.
    Now(serde_json::Value),
    /// Dated after now (a meeting booked ahead): to be read again at this moment.
    Later(Timestamp),
}

/// A Salesforce boolean as the API or Data Loader writes it.
fn truthy(text: &str) -> bool {
    matches!(text, "true" | "True" | "TRUE" | "1")
}

/// An instant as the API (`2025-01-05T10:00:00.000+0000`) or Data Loader (`2025-01-05T10:00:00.000Z`,
/// `2025-01-05 10:00:00`) writes it.
fn instant(text: &str) -> Option<Timestamp> {
    crate::salesforce::instant(text).map(|(_, at)| at)
}

/// One activity as a touch, or why none (a kind of docs/importers.md, and the detail). `field`
/// gives a field's text by API name (None or empty: not set).
pub fn touch(
    kind: Activity,
    field: &dyn Fn(&str) -> Option<String>,
    now: Timestamp,
) -> Result<Touched, (&'static str, String)> {
    let text = |name: &str| field(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let id = text("Id").ok_or(("invalid", "no Id".to_string()))?;
    if text("IsDeleted").is_some_and(|d| truthy(&d)) {
        return Err(("deleted", "deleted in Salesforce".into()));
    }
    let on = if kind == Activity::EmailMessage { "RelatedToId" } else { "WhatId" };
    let deal = text(on).filter(|d| d.starts_with(OPPORTUNITY_PREFIX)).ok_or_else(|| {
        ("no_opportunity", format!("{on} `{}` is no opportunity", text(on).unwrap_or_default()))
    })?;
    dealledger_events::DealId::parse(&deal).map_err(|why| ("invalid", format!("{on}: {why}")))?;
    let fields = Fields(&text);
    let Parts { at, channel, direction, minutes } = match kind {
        Activity::Task => task(&fields)?,
        Activity::Event => event(&fields)?,
        Activity::EmailMessage => email(&fields)?,
    };
    let at = at.ok_or(("no_time", format!("{} has no time", kind.name())))?;
    if at > now {
        return Ok(Touched::Later(at));
    }
    if let Some(m) = minutes.filter(|m| !(0..=TOUCH_MINUTES_MAX).contains(m)) {
        return Err(("too_long", format!("{m} minutes; a touch is 0 to {TOUCH_MINUTES_MAX}")));
    }
    let recorded = fields.time("CreatedDate")?.map_or(at, |c| c.max(at));
    let actor = text("OwnerId").or_else(|| text("CreatedById")).unwrap_or_else(|| "salesforce".into());
    let mut event = json!({
        "deal": deal, "type": "touch", "at": at.to_string(), "recorded_at": recorded.to_string(),
        "actor": actor, "channel": channel, "direction": direction,
        "source_id": format!("salesforce:{}:{id}", kind.source_kind()),
    });
    if let Some(minutes) = minutes {
        crate::set(&mut event, "minutes", minutes.into());
    }
    if let Some(who) = text("WhoId") {
        crate::set(&mut event, "contact", format!("salesforce-{who}").into());
    }
    Ok(Touched::Now(event))
}

/// Why an activity is no touch: a kind of docs/importers.md, and the detail.
type Why = (&'static str, String);

/// An activity's fields by API name, trimmed, empty as none.
struct Fields<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Fields<'_> {
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    fn is(&self, name: &str) -> bool {
        self.text(name).is_some_and(|t| truthy(&t))
    }

    fn time(&self, name: &str) -> Result<Option<Timestamp>, Why> {
        match self.text(name) {
            None => Ok(None),
            Some(t) => {
                instant(&t).map(Some).ok_or_else(|| ("invalid", format!("{name} `{t}` is no date and time")))
            }
        }
    }

    fn number(&self, name: &str) -> Result<Option<i64>, Why> {
        match self.text(name) {
            None => Ok(None),
            // The API writes numbers as JSON does (`1800`, or `1800.0` for a double field).
            Some(t) => match (t.parse::<i64>(), t.parse::<f64>()) {
                (Ok(n), _) => Ok(Some(n)),
                (_, Ok(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 => Ok(Some(f as i64)),
                _ => Err(("invalid", format!("{name} `{t}` is no whole number"))),
            },
        }
    }
}

/// What a touch is made of, before its deal and times are added.
struct Parts {
    at: Option<Timestamp>,
    channel: &'static str,
    direction: &'static str,
    minutes: Option<i64>,
}

fn task(fields: &Fields<'_>) -> Result<Parts, Why> {
    let closed = match fields.text("IsClosed") {
        Some(_) => fields.is("IsClosed"),
        None => fields.text("Status").as_deref() == Some("Completed"),
    };
    if !closed {
        return Err(("open_task", format!("status {}", fields.text("Status").unwrap_or_default())));
    }
    let channel = match fields.text("TaskSubtype").as_deref() {
        Some("Call") => "call",
        Some("Email" | "ListEmail") => "email",
        Some("LinkedIn") => "social",
        _ => "other",
    };
    let direction =
        if fields.text("CallType").as_deref() == Some("Inbound") { "inbound" } else { "outbound" };
    let minutes = fields.number("CallDurationInSeconds")?.map(|s| s.saturating_add(30).div_euclid(60));
    let at = match (fields.time("CompletedDateTime")?, fields.text("ActivityDate")) {
        (Some(at), _) => Some(at),
        (None, Some(d)) => Some(
            dealledger_events::Date::parse(d.get(..10).unwrap_or(&d))
                .map(|d| d.start())
                .map_err(|_| ("invalid", format!("ActivityDate `{d}` is no date")))?,
        ),
        (None, None) => None,
    };
    Ok(Parts { at, channel, direction, minutes })
}

fn event(fields: &Fields<'_>) -> Result<Parts, Why> {
    if fields.is("IsAllDayEvent") {
        return Err(("all_day", "an all-day event has no time of its own".into()));
    }
    let start = fields.time("StartDateTime")?;
    let minutes = match (fields.number("DurationInMinutes")?, start, fields.time("EndDateTime")?) {
        (Some(m), _, _) => Some(m),
        (None, Some(s), Some(e)) if e >= s => {
            Some(e.0.saturating_sub(s.0).saturating_add(30_000_000).div_euclid(60_000_000))
        }
        _ => None,
    };
    Ok(Parts { at: start, channel: "meeting", direction: "outbound", minutes })
}

fn email(fields: &Fields<'_>) -> Result<Parts, Why> {
    if fields.text("Status").as_deref() == Some("5") {
        return Err(("email_not_sent", "a draft (Status 5)".into()));
    }
    let direction = if fields.is("Incoming") { "inbound" } else { "outbound" };
    Ok(Parts { at: fields.time("MessageDate")?, channel: "email", direction, minutes: None })
}

/// `ingest --format salesforce-activities Task.csv Event.csv EmailMessage.csv`: each file told
/// apart by its header, each row mapped by [`touch`] at `now`.
pub fn import(files: &[PathBuf], now: Timestamp) -> Result<Imported, ImportError> {
    import_tables(read_all(files)?, now)
}

/// [`import`] of files already read.
pub(crate) fn import_tables(tables: Vec<Table>, now: Timestamp) -> Result<Imported, ImportError> {
    let mut out = Imported::default();
    for table in tables {
        let kind = Activity::of_header(|h| table.has(h)).ok_or_else(|| ImportError::Invalid {
            location: format!("{}:1", table.path),
            why: format!(
                "neither a Task, an Event nor an EmailMessage export (a Task has TaskSubtype or CallType, an Event StartDateTime, an EmailMessage MessageDate); the header has {}",
                table.headers.join(", ")
            ),
        })?;
        import_table(&mut out, &table, kind, now);
    }
    Ok(out)
}

fn import_table(out: &mut Imported, table: &Table, kind: Activity, now: Timestamp) {
    for (line, record) in &table.records {
        let location = table.location(*line);
        let field = |name: &str| {
            // Data Loader writes API names; some exports upper-case them.
            let column = table.headers.iter().position(|h| h == name || h.eq_ignore_ascii_case(name))?;
            Some(cell(record, column).to_string())
        };
        match touch(kind, &field, now) {
            Ok(Touched::Now(event)) => out.push(location, event),
            Ok(Touched::Later(at)) => out.skip(
                location,
                "not_yet",
                format!("dated {at}, after now: import it again once it is past"),
            ),
            Err((kind, reason)) => out.skip(location, kind, reason),
        }
    }
}

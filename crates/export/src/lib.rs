//! dealledger-export: the log and the timeline's derived tables as files a warehouse reads
//! directly (DuckDB, pandas, Spark, BI tools): `events`, `deals`, `stage_visits` and `touches`,
//! as Parquet or CSV (docs/export.md has the schema).
//!
//! The tables are the ledger's own figures, not a second computation: `deals` and
//! `stage_visits` are the folds every report reads (`Folded` under the view), `touches` the
//! timeline's touches, `events` the log as stored. Types are real in Parquet: instants are
//! TIMESTAMP(MICROS, UTC), dates DATE, money DECIMAL(38, 4) beside its currency; in CSV,
//! RFC 3339, YYYY-MM-DD and the amount in its currency's digits. Rows come in a stable order
//! (seq; deal order, then time), so exporting the same ledger twice gives the same bytes.
//!
//! Boundary: reads a `Log` and a `Timeline`, writes files; nothing here knows sled, clap or the
//! daemon.

mod write;

use dealledger_events::{Body, Currency, Date, FieldValue, Timestamp};
use dealledger_log::{BlockStore, Log, LogError};
use dealledger_projections::{Timeline, View};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use write::Format;

/// The tables, in the order `--table` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Events,
    Deals,
    StageVisits,
    Touches,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Events, Table::Deals, Table::StageVisits, Table::Touches];

    pub fn name(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Deals => "deals",
            Table::StageVisits => "stage_visits",
            Table::Touches => "touches",
        }
    }

    pub fn parse(text: &str) -> Result<Table, ExportError> {
        Table::ALL
            .into_iter()
            .find(|t| t.name() == text)
            .ok_or_else(|| ExportError::UnknownTable(text.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{path}: {why}")]
    Write { path: String, why: String },
    #[error("`{0}` is not a table (events, deals, stage_visits, touches)")]
    UnknownTable(String),
    #[error("`{0}` is not an export format (parquet, csv)")]
    UnknownFormat(String),
}

/// A column's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Time,
    Date,
    /// An amount in minor units of the row's currency.
    Money,
}

#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub nullable: bool,
}

const fn col(name: &'static str, kind: Kind, nullable: bool) -> Column {
    Column { name, kind, nullable }
}

/// One cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Time(Timestamp),
    Date(Date),
    Money { minor: i64, currency: Currency },
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn opt_text(s: Option<&str>) -> Value {
    s.map_or(Value::Null, text)
}

fn opt_time(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, Value::Time)
}

use Kind::*;

const EVENTS: &[Column] = &[
    col("seq", Int, false),
    col("deal", Text, false),
    col("type", Text, false),
    col("at", Time, false),
    col("recorded_at", Time, false),
    col("appended_at", Time, true),
    col("actor", Text, true),
    col("source_id", Text, true),
    col("owner", Text, true),
    col("stage", Text, true),
    col("amount", Money, true),
    col("currency", Text, false),
    col("close_date", Kind::Date, true),
    col("name", Text, true),
    col("channel", Text, true),
    col("direction", Text, true),
    col("minutes", Int, true),
    col("contact", Text, true),
    col("field", Text, true),
    col("value", Text, true),
    col("reason", Text, true),
    col("note", Text, true),
    col("appended_by", Text, true),
];

const DEALS: &[Column] = &[
    col("deal", Text, false),
    col("currency", Text, false),
    col("status", Text, false),
    col("stage", Text, false),
    col("owner", Text, false),
    col("amount", Money, false),
    col("opened_amount", Money, false),
    col("won_amount", Money, true),
    col("opened_at", Time, false),
    col("status_at", Time, false),
    col("requalified_at", Time, true),
    col("close_date", Kind::Date, true),
];

const STAGE_VISITS: &[Column] = &[
    col("deal", Text, false),
    col("visit", Int, false),
    col("stage", Text, false),
    col("start", Time, false),
    col("end", Time, true),
];

const TOUCHES: &[Column] = &[
    col("deal", Text, false),
    col("at", Time, false),
    col("recorded_at", Time, false),
    col("channel", Text, false),
    col("direction", Text, false),
    col("minutes", Int, true),
    col("minutes_counted", Int, false),
    col("contact_key", Text, true),
];

/// A table's columns, in file order.
pub fn columns(table: Table) -> &'static [Column] {
    match table {
        Table::Events => EVENTS,
        Table::Deals => DEALS,
        Table::StageVisits => STAGE_VISITS,
        Table::Touches => TOUCHES,
    }
}

/// What one table's export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub table: Table,
    pub path: PathBuf,
    pub rows: u64,
}

/// Writes each of `tables` to `dir` (created if missing) as `NAME.parquet` or `NAME.csv`, as
/// `view` sees the ledger. A file is written beside its final name and renamed into place once
/// complete: a failed export leaves no partial table behind.
pub fn export<S: BlockStore>(
    log: &Log<S>,
    timeline: &Timeline,
    view: View,
    tables: &[Table],
    format: Format,
    dir: &Path,
) -> Result<Vec<Written>, ExportError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ExportError::Write { path: dir.display().to_string(), why: e.to_string() })?;
    let mut written = Vec::new();
    for &table in tables {
        let path = dir.join(format!("{}.{}", table.name(), format.extension()));
        let mut out = write::TableWriter::create(&path, columns(table), format)?;
        match table {
            Table::Events => events(log, view, &mut out)?,
            Table::Deals => deals(timeline, view, &mut out)?,
            Table::StageVisits => stage_visits(timeline, view, &mut out)?,
            Table::Touches => touches(timeline, view, &mut out)?,
        }
        let rows = out.finish()?;
        written.push(Written { table, path, rows });
    }
    Ok(written)
}

fn events<S: BlockStore>(log: &Log<S>, view: View, out: &mut write::TableWriter) -> Result<(), ExportError> {
    let mut currencies: HashMap<String, Currency> = HashMap::new();
    let mut failed = None;
    log.scan(1, |stored| {
        let event = &stored.event;
        let recorded_at = stored.recorded_at();
        if let Body::Opened { currency, .. } = &event.body {
            currencies.insert(event.deal.as_str().to_string(), *currency);
        }
        if !view.sees(event.at, recorded_at) {
            return Ok(true);
        }
        // A valid log opens every deal before its other events; USD only stands in for the impossible.
        let currency = currencies.get(event.deal.as_str()).copied().unwrap_or(Currency::USD);
        let money = |minor: i64| Value::Money { minor, currency };
        let mut row = vec![Value::Null; EVENTS.len()];
        row[0] = Value::Int(i64::try_from(stored.seq).unwrap_or(i64::MAX));
        row[1] = text(event.deal.as_str());
        row[2] = text(event.body.kind().as_str());
        row[3] = Value::Time(event.at);
        row[4] = Value::Time(recorded_at);
        row[5] = opt_time(event.appended_at);
        row[6] = opt_text(event.actor.as_deref());
        row[7] = opt_text(event.source_id.as_deref());
        row[22] = opt_text(event.appended_by.as_deref());
        row[11] = text(currency.as_str());
        match &event.body {
            Body::Opened { owner, amount, stage, close_date, name, .. } => {
                row[8] = text(owner);
                row[9] = opt_text(stage.as_deref());
                row[10] = money(amount.minor());
                row[12] = close_date.map_or(Value::Null, Value::Date);
                row[13] = opt_text(name.as_deref());
            }
            Body::Touch { channel, direction, minutes, contact } => {
                row[14] = text(channel.as_str());
                row[15] = text(direction.as_str());
                row[16] = minutes.map_or(Value::Null, |m| Value::Int(i64::from(m)));
                row[17] = opt_text(contact.as_deref());
            }
            Body::StageMoved { to } => row[9] = text(to),
            Body::AmountChanged { amount } => row[10] = money(amount.minor()),
            Body::CloseDateChanged { close_date } => row[12] = Value::Date(*close_date),
            Body::OwnerChanged { owner } => row[8] = text(owner),
            Body::FieldSet { field, value } => {
                row[18] = text(field);
                row[19] = match value {
                    FieldValue::Clear => Value::Null,
                    FieldValue::Bool(b) => text(if *b { "true" } else { "false" }),
                    FieldValue::Number(n) | FieldValue::Text(n) => text(n),
                };
            }
            Body::Disqualified { reason, note } => {
                row[20] = text(reason.as_str());
                row[21] = opt_text(note.as_deref());
            }
            Body::Requalified { stage, note } => {
                row[9] = opt_text(stage.as_deref());
                row[21] = opt_text(note.as_deref());
            }
            Body::Won { amount } => row[10] = amount.as_ref().map_or(Value::Null, |a| money(a.minor())),
            Body::Lost { reason, note } => {
                row[20] = text(reason);
                row[21] = opt_text(note.as_deref());
            }
        }
        match out.push(row) {
            Ok(()) => Ok(true),
            Err(e) => {
                failed = Some(e);
                Ok(false)
            }
        }
    })?;
    failed.map_or(Ok(()), Err)
}

fn deals(timeline: &Timeline, view: View, out: &mut write::TableWriter) -> Result<(), ExportError> {
    let mut failed = None;
    timeline.each_folded(view, false, |deal, folded| {
        if failed.is_some() {
            return;
        }
        let currency = deal.currency;
        let money = |minor: i64| Value::Money { minor, currency };
        let status = folded.status();
        let row = vec![
            text(deal.id),
            text(currency.as_str()),
            text(status.as_str()),
            text(timeline.names.resolve(folded.stage)),
            text(timeline.names.resolve(folded.owner)),
            money(folded.amount_minor),
            money(folded.opened_amount_minor),
            match status {
                dealledger_projections::Status::Won => money(folded.won_amount_minor),
                _ => Value::Null,
            },
            Value::Time(folded.opened_at),
            Value::Time(folded.status_at),
            opt_time(folded.requalified_at),
            folded.close_date.map_or(Value::Null, Value::Date),
        ];
        failed = out.push(row).err();
    });
    failed.map_or(Ok(()), Err)
}

fn stage_visits(timeline: &Timeline, view: View, out: &mut write::TableWriter) -> Result<(), ExportError> {
    let mut failed = None;
    timeline.each_folded(view, false, |deal, folded| {
        for (i, visit) in folded.visits.iter().enumerate() {
            if failed.is_some() {
                return;
            }
            let row = vec![
                text(deal.id),
                Value::Int(i64::try_from(i).unwrap_or(i64::MAX)),
                text(timeline.names.resolve(visit.stage)),
                Value::Time(visit.start),
                opt_time(visit.end),
            ];
            failed = out.push(row).err();
        }
    });
    failed.map_or(Ok(()), Err)
}

fn touches(timeline: &Timeline, view: View, out: &mut write::TableWriter) -> Result<(), ExportError> {
    let mut failed = None;
    timeline.each_folded(view, false, |deal, _| {
        for touch in deal.touches_in(view) {
            if failed.is_some() {
                return;
            }
            let row = vec![
                text(deal.id),
                Value::Time(touch.at),
                Value::Time(touch.recorded_at),
                text(touch.channel.as_str()),
                text(touch.direction.as_str()),
                touch.minutes.map_or(Value::Null, |m| Value::Int(i64::from(m))),
                Value::Int(touch.minutes_or_default()),
                touch.contact.map_or(Value::Null, |key| Value::Text(format!("{key:016x}"))),
            ];
            failed = out.push(row).err();
        }
    });
    failed.map_or(Ok(()), Err)
}

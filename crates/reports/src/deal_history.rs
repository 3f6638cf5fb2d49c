//! One deal's history as `audit deal` prints it: every stored event with its seq, version, both
//! times and its details.

use crate::output::{Cell, Format, Table};
use dealledger_events::{json, Currency, StoredEvent};

/// The events (of one deal, in seq order) in `format`; amounts in the deal's `currency`.
pub fn render(events: &[StoredEvent], currency: Currency, format: Format) -> String {
    match format {
        Format::Json => {
            let mut out = String::from("[\n");
            for (i, stored) in events.iter().enumerate() {
                let comma = if i + 1 < events.len() { "," } else { "" };
                out.push_str(&format!("  {}{comma}\n", json::stored_event_json(stored, currency)));
            }
            out.push_str("]\n");
            out
        }
        Format::Csv => table(events, currency, true).to_csv(),
        Format::Table => table(events, currency, false).render(),
    }
}

/// A deal's history as a table. CSV puts `appended_at` and then `appended_by` last (columns are
/// only ever added at the end) and leaves them empty where they are not known; the table for
/// people puts them beside `recorded_at` and shows `-` (`appended_at` is not kept before record
/// format 2, `appended_by` before format 3 nor for what a command appended).
fn table(events: &[StoredEvent], currency: Currency, for_csv: bool) -> Table {
    let mut columns = vec!["seq", "version", "at", "recorded_at", "type", "details", "actor", "source_id"];
    let appended_column = if for_csv { columns.len() } else { 4 };
    columns.insert(appended_column, "appended_at");
    columns.insert(appended_column + 1, "appended_by");
    let mut table = Table::new("", &columns);
    for stored in events {
        let e = &stored.event;
        let mut row = vec![
            Cell::Figure(stored.seq.to_string()),
            Cell::Figure(stored.version.to_string()),
            Cell::Text(e.at.to_string()),
            Cell::Text(stored.recorded_at().to_string()),
            Cell::Text(e.body.kind().as_str().to_string()),
            Cell::Text(json::details(&e.body, currency)),
            Cell::Text(e.actor.clone().unwrap_or_default()),
            Cell::Text(e.source_id.clone().unwrap_or_default()),
        ];
        let unknown = if for_csv { "" } else { "-" };
        row.insert(appended_column, Cell::Text(e.appended_at.map_or(unknown.to_string(), |a| a.to_string())));
        row.insert(
            appended_column + 1,
            Cell::Text(e.appended_by.clone().unwrap_or_else(|| unknown.to_string())),
        );
        table.push(row);
    }
    table
}

/// One deal as the view folds it, for pictures (the dashboard's deal page): its stage visits,
/// its touches and its other changes, each with `at` and `recorded_at`; None when the view does
/// not see the deal. The figures are the fold's (`Folded`), the one every report reads.
pub fn timeline_json(
    timeline: &dealledger_projections::Timeline,
    id: &str,
    view: dealledger_projections::View,
) -> Option<serde_json::Value> {
    use dealledger_projections::{Change, Folded};
    use serde_json::json;
    let deal = timeline.deal(id)?;
    let mut folded = Folded::default();
    if !folded.fold(&deal, view) {
        return None;
    }
    let name = |n| timeline.names.resolve(n);
    let money = |minor: i64| crate::output::Money::new(i128::from(minor), deal.currency);
    let visits: Vec<_> = folded
        .visits
        .iter()
        .map(|v| json!({"stage": name(v.stage), "start": v.start.to_string(), "end": v.end.map(|e| e.to_string())}))
        .collect();
    let touches: Vec<_> = deal
        .touches_in(view)
        .map(|t| {
            json!({"at": t.at.to_string(), "recorded_at": t.recorded_at.to_string(), "channel": t.channel.as_str(),
                   "direction": t.direction.as_str(), "minutes": t.minutes_or_default()})
        })
        .collect();
    let changes: Vec<_> = deal
        .entries(view)
        .map(|e| {
            let (kind, detail) = match e.change {
                Change::Opened { stage, owner, amount_minor, .. } => {
                    ("opened", json!({"stage": name(stage), "owner": name(owner), "amount": money(amount_minor)}))
                }
                Change::Moved { to } => ("stage_moved", json!({"to": name(to)})),
                Change::Won { amount_minor } => ("won", json!({"amount": amount_minor.map(money)})),
                Change::Lost => ("lost", json!({})),
                Change::Disqualified { reason } => ("disqualified", json!({"reason": reason.as_str()})),
                Change::Requalified { stage } => ("requalified", json!({"stage": stage.map(name)})),
                Change::Amount { amount_minor } => ("amount_changed", json!({"amount": money(amount_minor)})),
                Change::CloseDate { close_date } => ("close_date_changed", json!({"close_date": close_date.to_string()})),
                Change::Owner { owner } => ("owner_changed", json!({"owner": name(owner)})),
                Change::Field { field, set } => ("field_set", json!({"field": name(field), "set": set})),
            };
            json!({"at": e.at.to_string(), "recorded_at": e.recorded_at.to_string(), "type": kind, "detail": detail})
        })
        .collect();
    Some(json!({
        "deal": deal.id,
        "currency": deal.currency.as_str(),
        "as_of": view.as_of.to_string(),
        "known_at": view.known_at.to_string(),
        "status": folded.status().as_str(),
        "stage": name(folded.stage),
        "owner": name(folded.owner),
        "amount": money(folded.amount_minor),
        "visits": visits,
        "touches": touches,
        "changes": changes,
    }))
}

/// The deal on a time axis (the dashboard's deal page, `GET /v1/charts/deal/{id}`): its stage
/// visits, its touches (outbound above the line, inbound below) and its lifecycle, amount,
/// close-date and owner changes as marks. An open deal's axis runs to the view's moment, a
/// closed one's to its last event. None when the view does not see the deal.
pub fn timeline_chart(
    timeline: &dealledger_projections::Timeline,
    id: &str,
    view: dealledger_projections::View,
) -> Option<crate::chart::Chart> {
    use dealledger_projections::{Change, Folded, Status};
    let deal = timeline.deal(id)?;
    let mut folded = Folded::default();
    if !folded.fold(&deal, view) {
        return None;
    }
    let name = |n| timeline.names.resolve(n).to_string();
    let touches: Vec<(i64, bool, String)> = deal
        .touches_in(view)
        .map(|t| {
            let outbound = t.direction == dealledger_events::Direction::Outbound;
            (t.at.0, outbound, format!("{} {} {}", t.direction.as_str(), t.channel.as_str(), t.at))
        })
        .collect();
    let marks: Vec<(i64, usize, String)> = deal
        .entries(view)
        .filter_map(|e| {
            let (kind, colour) = match e.change {
                Change::Won { .. } => ("won", 0),
                Change::Lost => ("lost", 1),
                Change::Disqualified { .. } => ("disqualified", 1),
                Change::Requalified { .. } => ("requalified", 2),
                Change::Amount { .. } => ("amount_changed", 2),
                Change::CloseDate { .. } => ("close_date_changed", 2),
                Change::Owner { .. } => ("owner_changed", 2),
                _ => return None,
            };
            Some((e.at.0, colour, format!("{kind} {} (recorded {})", e.at, e.recorded_at)))
        })
        .collect();
    let times = folded
        .visits
        .iter()
        .flat_map(|v| [Some(v.start.0), v.end.map(|e| e.0)])
        .flatten()
        .chain(touches.iter().map(|t| t.0))
        .chain(marks.iter().map(|m| m.0));
    let (from, last) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let to = if folded.status() == Status::Open { last.max(view.as_of.0) } else { last };
    Some(crate::chart::Chart::Deal(crate::chart::DealPicture {
        title: format!("Deal {}: stage visits, touches and changes over time", deal.id),
        from_us: from.min(to),
        to_us: to,
        visits: folded.visits.iter().map(|v| (name(v.stage), v.start.0, v.end.map(|e| e.0))).collect(),
        touches,
        marks,
    }))
}

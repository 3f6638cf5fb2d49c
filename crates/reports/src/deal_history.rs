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

/// A deal's history as a table. CSV puts `appended_at` last (columns are only ever added at the
/// end) and leaves it empty where it is not known; the table for people puts it beside
/// `recorded_at` and shows `-` (it is not kept before record format 2).
fn table(events: &[StoredEvent], currency: Currency, for_csv: bool) -> Table {
    let mut columns = vec!["seq", "version", "at", "recorded_at", "type", "details", "actor", "source_id"];
    let appended_column = if for_csv { columns.len() } else { 4 };
    columns.insert(appended_column, "appended_at");
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
        table.push(row);
    }
    table
}

//! One row per opportunity, as CRM report exports give them (the Maven "CRM Sales
//! Opportunities" layout by default): opened at the engage date, won or lost at the close date
//! with the close value. A row without an engage date (a prospect never engaged) is skipped and
//! reported: its opening moment is unknown, and the ledger does not guess.

use crate::{cell, deal_id, read_all, ImportError, Imported, Options, Table, Target};
use serde_json::json;
use std::path::PathBuf;

/// `M/D/YYYY` (US exports) or `YYYY-MM-DD` (anything after the tenth character is ignored), as
/// `YYYY-MM-DD`.
pub(crate) fn iso_date(text: &str) -> Option<String> {
    let iso = if let Some((m, rest)) = text.split_once('/') {
        let (d, y) = rest.split_once('/')?;
        let (m, d, y): (u32, u32, i32) = (m.parse().ok()?, d.parse().ok()?, y.parse().ok()?);
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        text.get(..10)?.to_string()
    };
    dealledger_events::Date::parse(&iso).ok()?;
    Some(iso)
}

/// The same date as an RFC 3339 midnight UTC.
pub(crate) fn date_start(text: &str) -> Option<String> {
    iso_date(text).map(|iso| format!("{iso}T00:00:00Z"))
}

pub fn import(files: &[PathBuf], options: &Options) -> Result<Imported, ImportError> {
    import_tables(read_all(files)?, options)
}

/// [`import`] of files already read.
pub(crate) fn import_tables(tables: Vec<Table>, options: &Options) -> Result<Imported, ImportError> {
    let mut out = Imported::default();
    for table in tables {
        let id = table.column(options, "deal_id", "opportunity_id")?;
        let owner = table.column(options, "owner", "sales_agent")?;
        let stage = table.column(options, "stage", "deal_stage")?;
        let opened_at = table.column(options, "opened_at", "engage_date")?;
        let closed_at = table.column(options, "closed_at", "close_date")?;
        let value = table.column(options, "close_value", "close_value")?;
        let account = table.column(options, "account", "account").ok();
        let product = table.column(options, "product", "product").ok();
        for (line, record) in &table.records {
            let location = table.location(*line);
            let invalid = |why: String| ImportError::Invalid { location: location.clone(), why };
            let deal = deal_id(cell(record, id)).map_err(invalid)?;
            let status = cell(record, stage);
            let Some(target) = out.target(options, status, &location, |s| match s {
                "Won" => Some(Target::Won),
                "Lost" => Some(Target::Lost),
                // Any other status is a deal still open (Engaging, Prospecting, ...).
                _ => Some(Target::Stage(options.pipeline.first().to_string())),
            }) else {
                continue;
            };
            let engage = cell(record, opened_at);
            if engage.is_empty() {
                out.skip(
                    location,
                    "no_date",
                    format!("deal {deal} ({status}): no engage date, so no opening moment"),
                );
                continue;
            }
            let Some(at) = date_start(engage) else {
                return Err(invalid(format!("engage date `{engage}` is neither M/D/YYYY nor YYYY-MM-DD")));
            };
            let amount = match cell(record, value) {
                "" => "0",
                v => v,
            };
            // A snapshot has no time of its own for a fact: each event's date column is when
            // the CRM recorded it (docs/importers.md).
            let mut opened = json!({
                "deal": deal, "type": "opened", "at": at, "recorded_at": at, "owner": cell(record, owner),
                "amount": amount, "source_id": format!("{deal}:opened"),
            });
            let name: Vec<&str> = [account, product]
                .into_iter()
                .flatten()
                .map(|c| cell(record, c))
                .filter(|v| !v.is_empty())
                .collect();
            if !name.is_empty() {
                crate::set(&mut opened, "name", name.join(" / ").into());
            }
            if let Target::Stage(stage) = &target {
                crate::set(&mut opened, "stage", stage.clone().into());
            }
            out.push(location.clone(), opened);
            if matches!(target, Target::Stage(_)) {
                continue;
            }
            let close = cell(record, closed_at);
            let Some(closed) = date_start(close) else {
                out.skip(
                    location,
                    "no_date",
                    format!("deal {deal} ({status}): no valid close date (`{close}`), so no outcome"),
                );
                continue;
            };
            let event = match target {
                Target::Won => {
                    json!({"deal": deal, "type": "won", "at": closed, "recorded_at": closed, "amount": amount, "source_id": format!("{deal}:won")})
                }
                _ => {
                    json!({"deal": deal, "type": "lost", "at": closed, "recorded_at": closed, "reason": format!("{status} (no reason in the export)"), "source_id": format!("{deal}:lost")})
                }
            };
            out.push(location, event);
        }
    }
    out.finish(&options.pipeline)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date_start("3/1/2017").as_deref(), Some("2017-03-01T00:00:00Z"));
        assert_eq!(super::date_start("2017-03-01").as_deref(), Some("2017-03-01T00:00:00Z"));
        assert_eq!(super::date_start("13/1/2017"), None);
        assert_eq!(super::date_start("soon"), None);
    }
}

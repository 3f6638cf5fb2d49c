//! `audit quarantine` and `quarantine retry`: the HubSpot notifications the daemon could not
//! admit yet (docs/daemon.md, HubSpot).

use crate::data::DataDir;
use crate::{Exit, Format};
use anyhow::Result;
use dealledger_events::Clock;
use dealledger_reports::output::{Cell, Table};
use dealledger_server::quarantine::{listing, Quarantine};
use std::io::Write;

/// Characters of a reason shown in the table (the JSON has all of it).
const REASON_SHOWN_CHARS_MAX: usize = 100;

pub fn list(data: &DataDir, format: Format) -> Result<()> {
    // Read-only and without the writer lock: the daemon may be appending; a torn last line
    // (a write in progress) is left out, as on open.
    let quarantine = Quarantine::read(&data.quarantine_path())?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(out, "{}", listing(&quarantine))?,
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(Vec::new());
            csv.write_record([
                "key",
                "deal",
                "rule",
                "reason",
                "first_seen",
                "last_tried",
                "attempts",
                "notification",
            ])?;
            for e in quarantine.entries() {
                csv.write_record([
                    e.key.clone(),
                    deal(&e.notification),
                    e.reason.rule.clone(),
                    e.reason.message.clone(),
                    e.first_seen.to_string(),
                    e.last_tried.to_string(),
                    e.attempts.to_string(),
                    e.notification.to_string(),
                ])?;
            }
            out.write_all(&csv.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
        }
        Format::Table => {
            if quarantine.is_empty() {
                writeln!(out, "the quarantine is empty ({})", data.quarantine_path().display())?;
                return Ok(());
            }
            let mut table =
                Table::new("", &["deal", "notification", "rule", "reason", "first seen", "attempts"]);
            for e in quarantine.entries() {
                let n = &e.notification;
                let what = match (n["subscriptionType"].as_str(), n["propertyName"].as_str()) {
                    (Some(kind), Some(name)) if !name.is_empty() => {
                        format!("{kind} {name}={}", n["propertyValue"].as_str().unwrap_or(""))
                    }
                    (Some(kind), _) => kind.to_string(),
                    (None, _) => "(not a notification)".to_string(),
                };
                let mut reason = e.reason.message.clone();
                if reason.chars().count() > REASON_SHOWN_CHARS_MAX {
                    reason = reason.chars().take(REASON_SHOWN_CHARS_MAX).collect::<String>() + "...";
                }
                table.push(vec![
                    Cell::Text(deal(n)),
                    Cell::Text(what),
                    Cell::Text(e.reason.rule.clone()),
                    Cell::Text(reason),
                    Cell::Text(e.first_seen.to_string()),
                    Cell::Figure(e.attempts.to_string()),
                ]);
            }
            write!(out, "{}", table.render())?;
            writeln!(out, "{} held; after fixing the cause: dealledger quarantine retry", quarantine.len())?;
        }
    }
    Ok(())
}

fn deal(notification: &serde_json::Value) -> String {
    notification["objectId"].as_u64().map_or_else(|| "?".to_string(), dealledger_server::hubspot::deal_id)
}

/// Retries every quarantined notification with `[hubspot]` as dealledger.toml says now: through
/// the daemon when it holds the ledger, else here.
pub fn retry(data: &DataDir, clock: &dyn Clock, format: Format) -> Result<()> {
    let config = data.serve_config()?.hubspot.ok_or_else(|| Exit {
        code: 1,
        message: format!(
            "no [hubspot] section in {}: nothing to retry with",
            data.path.join(crate::data::CONFIG_FILE).display()
        ),
    })?;
    let summary = match data.lock_writer("dealledger quarantine retry") {
        Ok(_lock) => {
            let mut quarantine = Quarantine::open(&data.quarantine_path())?;
            let mut ledger = data.open_ledger()?;
            let mut batch = ledger.batch(clock);
            let admitted = dealledger_server::hubspot::retry_quarantine(&mut batch, &quarantine, &config);
            let committed = batch.commit()?;
            quarantine.record(&admitted.holds, &admitted.releases, clock.now())?;
            serde_json::json!({
                "admitted": committed.appended,
                "duplicates": committed.duplicates,
                "released": admitted.releases.len(),
                "quarantined": quarantine.len(),
                "remaining": quarantine.len(),
            })
        }
        Err(locked) => match data.daemon_url() {
            // The daemon holds the ledger: it retries (and reads [hubspot] again itself).
            Some(url) => {
                let text = crate::client::post(&url, data, "/v1/quarantine/retry", "{}")?;
                serde_json::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("the daemon's answer is not JSON ({e}): {text}"))?
            }
            None => return Err(locked),
        },
    };
    match format {
        Format::Json => println!("{summary}"),
        _ => println!(
            "{} events admitted; {} notifications still quarantined (dealledger audit quarantine)",
            summary["admitted"], summary["remaining"]
        ),
    }
    Ok(())
}

//! `audit quarantine` and `quarantine retry`: the HubSpot notifications the daemon could not
//! admit yet (docs/daemon.md, HubSpot).

use crate::data::{DataDir, Settings as _};
use crate::{Exit, Format};
use anyhow::Result;
use dealledger_events::Clock;
use dealledger_server::quarantine::{csv_table, listing, table, Quarantine};
use std::io::Write;

pub fn list(data: &DataDir, format: Format) -> Result<()> {
    // Read-only and without the writer lock: the daemon may be appending; a torn last line
    // (a write in progress) is left out, as on open.
    let quarantine = Quarantine::read(&data.quarantine_path())?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(out, "{}", listing(&quarantine))?,
        Format::Csv => write!(out, "{}", csv_table(&quarantine).to_csv())?,
        Format::Table if quarantine.is_empty() => {
            writeln!(out, "the quarantine is empty ({})", data.quarantine_path().display())?
        }
        Format::Table => {
            write!(out, "{}", table(&quarantine).render())?;
            writeln!(out, "{} held; after fixing the cause: dealledger quarantine retry", quarantine.len())?;
        }
    }
    Ok(())
}

/// Retries every quarantined notification with `[hubspot]` as dealledger.toml says now: through
/// the daemon when it holds the ledger, else here.
pub fn retry(data: &DataDir, clock: &dyn Clock, format: Format) -> Result<()> {
    let config = data.serve_config()?.hubspot.ok_or_else(|| Exit {
        code: 1,
        message: format!(
            "no [hubspot] section in {}: nothing to retry with",
            data.path.join(dealledger_config::CONFIG_FILE).display()
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
            None => return Err(locked.into()),
        },
    };
    match format {
        Format::Json => outln!("{summary}"),
        _ => outln!(
            "{} events admitted; {} notifications still quarantined (dealledger audit quarantine)",
            summary["admitted"],
            summary["remaining"]
        ),
    }
    Ok(())
}

//! `stats`, `replay` and `audit`: reading and proving the log.

use crate::data::DataDir;
use crate::{Exit, Format};
use anyhow::{Context, Result};
use dealledger_datadir::{Acceptance, Recovered};
use dealledger_events::Currency;
use dealledger_log::{BlockStore, Head, LogError};
use dealledger_projections::{catch_up, rebuild, Timeline};
use dealledger_reports::output::thousands;
use std::io::Write;
use std::path::Path;

pub fn stats(data: &DataDir, format: Format) -> Result<()> {
    let log = data.open_log()?;
    // The deal count from the deal index's header and the log's tail; the timeline only without
    // a usable index (none saved yet, or one of an older layout until the next checkpoint).
    let deals = match dealledger_projections::deal_index::deal_count(&log)? {
        Some(deals) => deals,
        None => catch_up::<Timeline, _>(&log)?.0.deals().len() as u64,
    };
    let head = log.head();
    let bytes = log.store().bytes_on_disk()?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::json!({
                "events": head.seq,
                "deals": deals,
                "head_seq": head.seq,
                "bytes_on_disk": bytes,
                "chain": head.chain_hex(),
            })
        )?,
        Format::Csv => {
            writeln!(out, "events,deals,head_seq,bytes_on_disk,chain")?;
            writeln!(out, "{},{},{},{},{}", head.seq, deals, head.seq, bytes, head.chain_hex())?;
        }
        Format::Table => {
            let per_event = if head.seq > 0 { bytes as f64 / head.seq as f64 } else { 0.0 };
            writeln!(out, "events         {}", thousands(head.seq))?;
            writeln!(out, "deals          {}", thousands(deals))?;
            writeln!(out, "head seq       {}", thousands(head.seq))?;
            writeln!(out, "bytes on disk  {} ({per_event:.1} bytes/event)", thousands(bytes))?;
            writeln!(out, "chain          {}", head.chain_hex())?;
        }
    }
    Ok(())
}

pub fn replay(data: &DataDir) -> Result<()> {
    let log = data.open_log()?;
    let (timeline, stats) = rebuild::<Timeline, _>(&log)?;
    let deals = timeline.deals().len() as u64;
    outln!(
        "rebuilt projection `timeline` from {} events in {:.3} s ({} events/s): {} deals; \
         of which {:.3} s saving its checkpoint",
        thousands(stats.events),
        stats.seconds,
        thousands(stats.events_per_second() as u64),
        thousands(deals),
        stats.save_seconds
    );
    Ok(())
}

pub fn deal(data: &DataDir, id: &str, format: Format) -> Result<()> {
    dealledger_events::DealId::parse(id)
        .map_err(|why| Exit { code: 1, message: format!("deal id {why}") })?;
    let log = data.open_log()?;
    let events = dealledger_projections::deal_index::events(&log, id)?;
    if events.is_empty() {
        return Err(Exit {
            code: 1,
            message: format!("deal `{id}` is not in the ledger ({} events searched)", log.head().seq),
        }
        .into());
    }
    let currency = match &events[0].event.body {
        dealledger_events::Body::Opened { currency, .. } => *currency,
        _ => Currency::USD,
    };
    write!(
        std::io::stdout().lock(),
        "{}",
        dealledger_reports::deal_history::render(&events, currency, format)
    )?;
    Ok(())
}

fn read_digest(path: &Path) -> Result<Head> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read digest {}", path.display()))?;
    let bad =
        |why: &str| Exit { code: 1, message: format!("{}: not a dealledger digest ({why})", path.display()) };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad("not JSON"))?;
    let seq = value.get("head_seq").and_then(|v| v.as_u64()).ok_or_else(|| bad("no head_seq"))?;
    let chain = value
        .get("chain")
        .and_then(|v| v.as_str())
        .and_then(Head::parse_chain_hex)
        .ok_or_else(|| bad("no 64-hex-digit chain"))?;
    Ok(Head { seq, chain })
}

pub fn verify(data: &DataDir, digest: Option<&Path>) -> Result<()> {
    let digest = digest.map(read_digest).transpose()?;
    // Read the raw files before sled opens them: when sled's recovery meets corruption it
    // rewrites the damaged segment, and the evidence would be gone.
    let store = data.store_path();
    let salvage = (data.is_sled()? && store.exists())
        .then(|| dealledger_log::SledStore::salvage_scan(&store))
        .transpose()?;
    let log = match (data.open_log(), salvage) {
        (Ok(log), _) => log,
        // The storage engine's own recovery refused the files: find our blocks in them.
        (Err(dealledger_datadir::DataError::Log(LogError::Store(why))), Some(salvage)) => {
            return Err(failed(salvage.failure(&store, &why)))
        }
        (Err(error), _) => return Err(error.into()),
    };
    let started = std::time::Instant::now();
    let verified = match log.verify(digest, |_| {}).map_err(|e| log.locate_failure(e)) {
        Ok(verified) => verified,
        Err(e) if e.is_verification_failure() => return Err(failed(e)),
        Err(e) => return Err(e.into()),
    };
    outln!(
        "ok: {} events in {} blocks, head seq {}, chain {}{} ({:.2} s)",
        thousands(verified.events),
        thousands(verified.blocks),
        verified.head.seq,
        verified.head.chain_hex(),
        if digest.is_some() { "; digest matches" } else { "" },
        started.elapsed().as_secs_f64()
    );
    let losses = data.losses();
    if !losses.is_empty() {
        outln!(
            "note: {} loss(es) were accepted with `dealledger recover`; see {}",
            losses.len(),
            data.losses_path().display()
        );
    }
    Ok(())
}

/// A verification failure, with its exit code.
fn failed(error: LogError) -> anyhow::Error {
    let message = match error {
        LogError::Corrupt { seq, why } => format!("first bad seq {seq}: {why}"),
        other => other.to_string(),
    };
    Exit { code: 5, message: format!("log failed verification: {message}") }.into()
}

pub fn digest(data: &DataDir) -> Result<()> {
    let log = data.open_log()?;
    let head = log.head();
    outln!("{}", serde_json::json!({ "head_seq": head.seq, "chain": head.chain_hex() }));
    Ok(())
}

/// `dealledger recover`: a person accepts, on the record, that the store lost acknowledged
/// events (or was replaced), so that the ledger writes again. Never automatic.
pub fn recover(data: &DataDir, clock: &dyn dealledger_events::Clock, accept: Acceptance<'_>) -> Result<()> {
    match data.recover(clock.now(), accept)? {
        Recovered::Nothing { head_seq } => {
            outln!("nothing to recover: the log reaches its high-water mark (head seq {head_seq})");
        }
        Recovered::Accepted { record, head_seq } => {
            tracing::warn!(%record, "a loss was accepted; the high-water mark now is the log's head");
            outln!(
                "accepted: {record}\nthe high-water mark is now head seq {head_seq}; recorded in {}",
                data.losses_path().display()
            );
        }
    }
    Ok(())
}

//! `stats`, `replay` and `audit`: reading and proving the log.

use crate::data::DataDir;
use crate::{Exit, Format};
use anyhow::{Context, Result};
use dealledger_events::{json, Currency, StoredEvent};
use dealledger_log::{BlockStore, Head, LogError};
use dealledger_projections::{catch_up, rebuild, Timeline};
use dealledger_reports::output::{thousands, Cell, Table};
use std::io::Write;
use std::path::Path;

pub fn stats(data: &DataDir, format: Format) -> Result<()> {
    let log = data.open_log()?;
    let (timeline, _) = catch_up::<Timeline, _>(&log)?;
    let deals = timeline.deals();
    let head = log.head();
    let bytes = log.store().bytes_on_disk()?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::json!({
                "events": head.seq,
                "deals": deals.len(),
                "head_seq": head.seq,
                "bytes_on_disk": bytes,
                "chain": head.chain_hex(),
            })
        )?,
        Format::Csv => {
            writeln!(out, "events,deals,head_seq,bytes_on_disk,chain")?;
            writeln!(out, "{},{},{},{},{}", head.seq, deals.len(), head.seq, bytes, head.chain_hex())?;
        }
        Format::Table => {
            let per_event = if head.seq > 0 { bytes as f64 / head.seq as f64 } else { 0.0 };
            writeln!(out, "events         {}", thousands(head.seq))?;
            writeln!(out, "deals          {}", thousands(deals.len() as u64))?;
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
    let deals = timeline.deals();
    println!(
        "rebuilt projection `timeline` from {} events in {:.3} s ({} events/s): {} deals; \
         of which {:.3} s saving its checkpoint",
        thousands(stats.events),
        stats.seconds,
        thousands(stats.events_per_second() as u64),
        thousands(deals.len() as u64),
        stats.save_seconds
    );
    Ok(())
}

/// Every event of one deal, in seq order: by the deal index saved with the timeline's
/// checkpoint and a scan of the events after it, or, without a usable index, by a scan of the
/// whole log.
fn deal_events<S: BlockStore>(log: &dealledger_log::Log<S>, id: &str) -> Result<Vec<StoredEvent>> {
    use dealledger_projections::deal_index::{lookup, Lookup};
    match lookup(log, id)? {
        Lookup::Found { through, mut seqs, mut offsets } => {
            if through < log.head().seq {
                log.scan_refs(through + 1, |event| {
                    if event.deal == id {
                        seqs.push(event.seq);
                        offsets.push(event.offset);
                    }
                    Ok(true)
                })?;
            }
            let mut events = Vec::with_capacity(seqs.len());
            match log.read_deal(id, &seqs, &offsets, |stored| {
                events.push(stored);
                Ok(())
            }) {
                Ok(()) => return Ok(events),
                // The scan below names the seq if the log itself is at fault.
                Err(e) => {
                    tracing::warn!(error = %e, "the deal index disagrees with the log; scanning the log")
                }
            }
        }
        Lookup::Unusable(why) => tracing::info!(why, "no usable deal index; scanning the log"),
    }
    let mut events = Vec::new();
    log.scan(1, |stored| {
        if stored.event.deal.as_str() == id {
            events.push(stored);
        }
        Ok(true)
    })?;
    Ok(events)
}

pub fn deal(data: &DataDir, id: &str, format: Format) -> Result<()> {
    dealledger_events::DealId::parse(id)
        .map_err(|why| Exit { code: 1, message: format!("deal id {why}") })?;
    let log = data.open_log()?;
    let events = deal_events(&log, id)?;
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
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            writeln!(out, "[")?;
            for (i, stored) in events.iter().enumerate() {
                let comma = if i + 1 < events.len() { "," } else { "" };
                writeln!(out, "  {}{comma}", json::stored_event_json(stored, currency))?;
            }
            writeln!(out, "]")?;
        }
        Format::Csv => write!(out, "{}", history_table(&events, currency, true).to_csv())?,
        Format::Table => {
            let table = history_table(&events, currency, false);
            write!(out, "{}", table.render())?;
        }
    }
    Ok(())
}

/// A deal's history as a table. CSV puts `appended_at` last (columns are only ever added at the
/// end) and leaves it empty where it is not known; the table for people puts it beside
/// `recorded_at` and shows `-` (it is not kept before record format 2).
fn history_table(events: &[StoredEvent], currency: Currency, for_csv: bool) -> Table {
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
    let salvage = match data.store_path().exists() {
        true => Some(dealledger_log::SledStore::salvage_scan(&data.store_path())?),
        false => None,
    };
    let log = match data.open_log() {
        Ok(log) => log,
        Err(error) => match error.downcast_ref::<LogError>() {
            // The storage engine's own recovery refused the files: find our blocks in them.
            Some(LogError::Store(why)) => {
                let Some(salvage) = salvage else { return Err(error) };
                let seq = salvage.intact_through + 1;
                let acknowledged = match dealledger_log::SledStore::read_mark(&data.store_path()) {
                    Ok(Some(mark)) => format!("; seqs 1..={} were acknowledged", mark.seq),
                    Ok(None) => String::new(),
                    Err(e) => format!("; {e}"),
                };
                return Err(Exit {
                    code: 5,
                    message: format!(
                        "log failed verification: first bad seq {seq}: the store cannot be opened ({why}); {}{acknowledged}",
                        match salvage.intact_through {
                            0 => "no intact block precedes it in its files".to_string(),
                            n => format!("events 1..={n} are intact in its files"),
                        }
                    ),
                }
                .into());
            }
            _ => return Err(error),
        },
    };
    let started = std::time::Instant::now();
    match log.verify(digest, |_| {}) {
        Ok(verified) => {
            println!(
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
                println!(
                    "note: {} loss(es) were accepted with `dealledger recover`; see {}",
                    losses.len(),
                    data.losses_path().display()
                );
            }
            Ok(())
        }
        Err(LogError::Corrupt { seq, why }) => {
            Err(Exit { code: 5, message: format!("log failed verification: first bad seq {seq}: {why}") }
                .into())
        }
        Err(e @ (LogError::LostTail { .. } | LogError::MarkMismatch { .. })) => {
            Err(Exit { code: 5, message: format!("log failed verification: {e}") }.into())
        }
        Err(LogError::Store(why)) => {
            // The storage engine's own checks failed while reading: report where reading stopped.
            let seq = first_unreadable(&log).unwrap_or(1);
            Err(Exit {
                code: 5,
                message: format!(
                    "log failed verification: first bad seq {seq}: the store cannot read it ({why})"
                ),
            }
            .into())
        }
        Err(other) => Err(other.into()),
    }
}

/// The first seq whose block the store cannot hand back.
fn first_unreadable<S: BlockStore>(log: &dealledger_log::Log<S>) -> Option<u64> {
    let mut next = 1;
    let _ = log.store().scan(1, &mut |key, value| {
        if dealledger_log::block::header(key, value).is_err() {
            return Ok(false);
        }
        next = dealledger_log::block::header(key, value).map(|h| h.last_seq() + 1).unwrap_or(next);
        Ok(true)
    });
    Some(next)
}

pub fn digest(data: &DataDir) -> Result<()> {
    let log = data.open_log()?;
    let head = log.head();
    println!("{}", serde_json::json!({ "head_seq": head.seq, "chain": head.chain_hex() }));
    Ok(())
}

/// `dealledger recover`: a person accepts, on the record, that the store lost acknowledged
/// events (or was replaced), so that the ledger writes again. Never automatic.
pub fn recover(
    data: &DataDir,
    clock: &dyn dealledger_events::Clock,
    accept_loss: Option<&str>,
    accept_replaced_store: bool,
) -> Result<()> {
    let _lock = data.lock_writer("dealledger recover")?;
    let log = data.open_log()?;
    let head = log.head();
    let record = match log.check_mark() {
        Ok(()) => {
            println!("nothing to recover: the log reaches its high-water mark (head seq {})", head.seq);
            return Ok(());
        }
        Err(LogError::LostTail { ends_at, acknowledged, mark }) => {
            let lost = format!("{}..{acknowledged}", ends_at + 1);
            match accept_loss {
                Some(range) if range == lost => {}
                Some(range) => {
                    return Err(Exit {
                        code: 2,
                        message: format!(
                            "--accept-loss {range}: the missing range is {lost}; name it exactly"
                        ),
                    }
                    .into())
                }
                None => {
                    return Err(Exit {
                        code: 2,
                        message: format!(
                            "seqs {lost} are missing; to go on without them pass --accept-loss {lost} \
                             (new events will be numbered from {} again)",
                            ends_at + 1
                        ),
                    }
                    .into())
                }
            }
            serde_json::json!({
                "accepted_at": clock.now().to_string(),
                "kind": "lost_tail",
                "lost_first_seq": ends_at + 1,
                "lost_last_seq": acknowledged,
                "head_seq": head.seq,
                "head_chain": head.chain_hex(),
                "mark": mark,
            })
        }
        Err(LogError::MarkMismatch { seq, mark }) => {
            if !accept_replaced_store {
                return Err(Exit {
                    code: 2,
                    message: format!(
                        "the store's chain at seq {seq} is not the one acknowledged there; to take this store as the \
                         ledger's from now on, pass --accept-replaced-store"
                    ),
                }
                .into());
            }
            serde_json::json!({
                "accepted_at": clock.now().to_string(),
                "kind": "replaced_store",
                "mismatch_at_seq": seq,
                "head_seq": head.seq,
                "head_chain": head.chain_hex(),
                "mark": mark,
            })
        }
        Err(other) => return Err(other.into()),
    };
    // The record first: if the mark were moved and the record then failed, the loss would be
    // accepted with no trace of it.
    data.record_loss(&record)?;
    log.store().reset_mark(head)?;
    tracing::warn!(%record, "a loss was accepted; the high-water mark now is the log's head");
    println!(
        "accepted: {record}\nthe high-water mark is now head seq {}; recorded in {}",
        head.seq,
        data.losses_path().display()
    );
    Ok(())
}

//! `dealledger migrate --to URL`: the whole log copied block by block to another store (sled to
//! a JetStream stream, or back), then the copy verified end to end against the source's head.
//! Blocks are copied as they are (same bytes, same chain), so the copy's `audit digest` is the
//! source's. A migration that stopped part way goes on where it stopped: the destination must
//! be empty or hold a prefix of this very log.

use crate::data::{DataDir, Store, WriterGuard};
use crate::Exit;
use anyhow::Result;
use dealledger_log::{block, BlockStore, Head, Log, LogError};
use std::sync::Arc;

/// Blocks per append to the destination (each at most 96 KiB): well inside one atomic write
/// on JetStream, and a bounded amount of memory.
const MIGRATE_BLOCKS_PER_APPEND: usize = 256;

pub fn run(data: &DataDir, to: &str) -> Result<()> {
    // Writers stay out of the source while it is copied: the copy ends at one head.
    let _guard = data.lock_existing_writer("dealledger migrate")?;
    let source = data.open_log()?;
    source.check_mark()?;
    let source_head = source.head();
    // The destination's own lock or lease: nothing else writes to it while it is filled.
    let (destination, _destination_guard) = open_destination(data, to)?;
    let started = std::time::Instant::now();
    let copy_from = Log::open(destination.clone())?.head();
    if copy_from.seq > source_head.seq
        || source.chain_after(copy_from.seq)? != Some(copy_from.chain) && copy_from.seq > 0
    {
        return Err(Exit {
            code: 1,
            message: format!(
                "{to} holds a log that is not a prefix of this one (it ends at seq {} with chain {}); migrate to an empty store",
                copy_from.seq,
                copy_from.chain_hex()
            ),
        }
        .into());
    }
    let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut head = copy_from;
    let mut copied = 0u64;
    let flush = |pending: &mut Vec<(u64, Vec<u8>)>, head: Head| -> Result<(), LogError> {
        destination.append(pending, head)?;
        pending.clear();
        Ok(())
    };
    source.store().scan(copy_from.seq + 1, &mut |key, bytes| {
        let header = block::header(key, bytes)?;
        if header.first_seq != head.seq + 1 || header.prev_chain != head.chain {
            return Err(LogError::Corrupt {
                seq: key,
                why: "the source's blocks do not follow one another".into(),
            });
        }
        head = Head { seq: header.last_seq(), chain: header.chain };
        pending.push((key, bytes.to_vec()));
        copied += 1;
        if pending.len() >= MIGRATE_BLOCKS_PER_APPEND {
            flush(&mut pending, head)?;
            eprint!("\rcopied {copied} blocks, up to seq {}", head.seq);
        }
        Ok(head.seq < source_head.seq)
    })?;
    if !pending.is_empty() {
        flush(&mut pending, head)?;
    }
    if copied > 0 {
        eprintln!();
    }
    // End to end: every block's checksum, numbering and the chain, up to the source's head.
    let copy = Log::open(destination.clone())?;
    let verified = copy
        .verify(Some(source_head), |_| {})
        .map_err(|e| Exit { code: 5, message: format!("the copy at {to} failed verification: {e}") })?;
    if verified.head != source_head {
        return Err(Exit {
            code: 5,
            message: format!(
                "the copy at {to} ends at seq {}, the source at {}",
                verified.head.seq, source_head.seq
            ),
        }
        .into());
    }
    outln!(
        "{}",
        serde_json::json!({
            "to": to,
            "blocks_copied": copied,
            "events": verified.events,
            "head_seq": verified.head.seq,
            "chain": verified.head.chain_hex(),
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

/// `nats://...`/`tls://...` (with `[store]`'s credentials and settings), or `sled:DIR` (a data
/// directory, its store in `DIR/store`, whatever `DIR/dealledger.toml` says), with what keeps
/// other writers out of it.
fn open_destination(data: &DataDir, to: &str) -> Result<(Store, WriterGuard)> {
    if let Some(dir) = to.strip_prefix("sled:") {
        if dir.is_empty() {
            return Err(
                Exit { code: 2, message: "--to sled:DIR: the data directory is missing".into() }.into()
            );
        }
        let target = DataDir::new(dir.into(), None);
        if target.path == data.path && data.is_sled()? {
            return Err(Exit { code: 2, message: "--to names the ledger's own data directory".into() }.into());
        }
        let guard = target.lock_sled_writer("dealledger migrate")?;
        return Ok((Arc::new(target.open_sled(true)?), guard));
    }
    let target = dealledger_jetstream::Target::parse(to)
        .map_err(|why| Exit { code: 2, message: format!("--to {why}") })?;
    let (options, lease_ttl) = data.jetstream_options()?;
    let store = dealledger_jetstream::JetStreamStore::open(&target, &options, true)?;
    let lease = store.lease(
        crate::data::holder_description("dealledger migrate", None),
        lease_ttl,
        options.replicas,
    )?;
    let guard = WriterGuard::Lease(dealledger_log::lease::Kept::take(Arc::new(lease))?);
    Ok((Arc::new(store), guard))
}

//! `dealledger migrate --to URL`: the whole log copied block by block to another store (sled to
//! a JetStream stream, or back), then the copy verified end to end against the source's head.
//! Blocks are copied as they are (same bytes, same chain), so the copy's `audit digest` is the
//! source's. A migration that stopped part way goes on where it stopped: the destination must
//! be empty or hold a prefix of this very log.

use crate::data::{DataDir, Store, WriterGuard};
use crate::Exit;
use anyhow::Result;
use dealledger_log::{copy_log, CopyError};
use std::sync::Arc;

pub fn run(data: &DataDir, to: &str) -> Result<()> {
    // Writers stay out of the source while it is copied: the copy ends at one head.
    let _guard = data.lock_existing_writer("dealledger migrate")?;
    let source = data.open_log()?;
    source.check_mark()?;
    // The destination's own lock or lease: nothing else writes to it while it is filled.
    let (destination, _destination_guard) = open_destination(data, to)?;
    let started = std::time::Instant::now();
    let progress = |blocks, seq| eprint!("\rcopied {blocks} blocks, up to seq {seq}");
    // A clone: the destination's lease is released through its connection, which must outlive
    // the guard (dropped first, at the end of this function).
    let copied = copy_log(&source, destination.clone(), progress).map_err(|e| match e {
        CopyError::Log(e) => anyhow::Error::from(e),
        CopyError::NotAPrefix { .. } => Exit { code: 1, message: format!("{to}: {e}") }.into(),
        CopyError::Verification(_) => Exit { code: 5, message: format!("{to}: {e}") }.into(),
    })?;
    if copied.blocks > 0 {
        eprintln!();
    }
    let verified = copied.verified;
    outln!(
        "{}",
        serde_json::json!({
            "to": to,
            "blocks_copied": copied.blocks,
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

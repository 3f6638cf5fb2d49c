//! Replay: folding the log into projections, from scratch or from a checkpoint.

use dealledger_events::codec::{decode_value, encode_value};
use dealledger_events::EventRef;
use dealledger_log::{BlockStore, Head, Log, LogError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Instant;

/// A fold over the log. `apply` is called once per event in seq order and cannot fail.
pub trait Projection: Serialize + DeserializeOwned + Default {
    /// Names the checkpoint in the store.
    const NAME: &'static str;
    /// Bump when the state's layout or meaning changes: older checkpoints are then rebuilt.
    const VERSION: u32;

    fn apply(&mut self, event: &EventRef<'_>);

    /// Called once after a checkpoint is decoded: rebuild what is not stored (indexes).
    fn loaded(&mut self) {}
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Log(#[from] LogError),
}

/// What a replay did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplayStats {
    pub events: u64,
    /// Loading the checkpoint, folding and saving, all told.
    pub seconds: f64,
    /// Of which saving the new checkpoint (encoding and a flushed write).
    pub save_seconds: f64,
    /// True when a checkpoint was used (only the tail was replayed).
    pub from_checkpoint: bool,
}

impl ReplayStats {
    pub fn events_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.events as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Checkpoint value: projection version (u32 LE), seq (u64 LE), the chain hash at seq (32
/// bytes), then the encoded state.
const CHECKPOINT_HEADER_BYTES: usize = 4 + 8 + 32;

fn key<P: Projection>() -> String {
    format!("checkpoint/{}", P::NAME)
}

/// Folds every event from seq 1 into a fresh projection, and stores its checkpoint.
pub fn rebuild<P: Projection, S: BlockStore>(log: &Log<S>) -> Result<(P, ReplayStats), ReplayError> {
    let started = Instant::now();
    let mut projection = P::default();
    let events = fold(log, 1, &mut projection)?;
    let saving = Instant::now();
    save_checkpoint(log, &projection)?;
    let stats = ReplayStats {
        events,
        seconds: started.elapsed().as_secs_f64(),
        save_seconds: saving.elapsed().as_secs_f64(),
        from_checkpoint: false,
    };
    Ok((projection, stats))
}

/// Loads the checkpoint (if it is of the current version and belongs to this log), folds only
/// the tail, and stores a new checkpoint when the tail was not empty.
pub fn catch_up<P: Projection, S: BlockStore>(log: &Log<S>) -> Result<(P, ReplayStats), ReplayError> {
    let started = Instant::now();
    let Some((mut projection, seq)) = load::<P, S>(log)? else {
        return rebuild(log);
    };
    let events = fold(log, seq + 1, &mut projection)?;
    let saving = Instant::now();
    if events > 0 {
        save_checkpoint(log, &projection)?;
    }
    let stats = ReplayStats {
        events,
        seconds: started.elapsed().as_secs_f64(),
        save_seconds: saving.elapsed().as_secs_f64(),
        from_checkpoint: true,
    };
    Ok((projection, stats))
}

fn fold<P: Projection, S: BlockStore>(
    log: &Log<S>,
    from: u64,
    projection: &mut P,
) -> Result<u64, ReplayError> {
    let mut events = 0;
    log.scan_refs(from, |event| {
        projection.apply(event);
        events += 1;
        Ok(true)
    })?;
    Ok(events)
}

/// Stores `projection` as the checkpoint at the log's head: the caller vouches that it has folded
/// exactly the events up to that head (the daemon, whose writer folds every commit).
pub fn save_checkpoint<P: Projection, S: BlockStore>(
    log: &Log<S>,
    projection: &P,
) -> Result<(), ReplayError> {
    let head = log.head();
    let mut bytes = Vec::with_capacity(CHECKPOINT_HEADER_BYTES);
    bytes.extend_from_slice(&P::VERSION.to_le_bytes());
    bytes.extend_from_slice(&head.seq.to_le_bytes());
    bytes.extend_from_slice(&head.chain);
    bytes.extend(encode_value(projection));
    log.store().put_meta(&key::<P>(), &bytes)?;
    Ok(())
}

/// A checkpoint is used only if its version is current and the log still has, at its seq, the
/// chain hash it was taken at: a restored or replaced store invalidates it. A checkpoint that
/// cannot be used is not an error (the log is the truth, the projection is rebuilt), but it is
/// logged for whoever wonders why a report was slow.
fn load<P: Projection, S: BlockStore>(log: &Log<S>) -> Result<Option<(P, u64)>, ReplayError> {
    let Some(bytes) = log.store().get_meta(&key::<P>())? else {
        return Ok(None);
    };
    if bytes.len() < CHECKPOINT_HEADER_BYTES {
        tracing::warn!(projection = P::NAME, "checkpoint too short; rebuilding from the log");
        return Ok(None);
    }
    let version = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let seq = u64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes"));
    let chain: [u8; 32] = bytes[12..44].try_into().expect("32 bytes");
    if version != P::VERSION || seq > log.head().seq {
        tracing::info!(projection = P::NAME, version, seq, "checkpoint is stale; rebuilding from the log");
        return Ok(None);
    }
    if chain_at(log, seq)? != Some(chain) {
        tracing::warn!(projection = P::NAME, seq, "checkpoint does not belong to this log; rebuilding");
        return Ok(None);
    }
    match decode_value::<P>(&bytes[CHECKPOINT_HEADER_BYTES..]) {
        Ok(mut projection) => {
            projection.loaded();
            Ok(Some((projection, seq)))
        }
        Err(e) => {
            tracing::warn!(projection = P::NAME, error = %e, "unreadable checkpoint; rebuilding from the log");
            Ok(None)
        }
    }
}

/// The chain hash after `seq`, if `seq` ends a block (checkpoints are always taken at a head).
fn chain_at<S: BlockStore>(log: &Log<S>, seq: u64) -> Result<Option<[u8; 32]>, ReplayError> {
    if seq == 0 {
        return Ok(Some(Head::EMPTY.chain));
    }
    match log.store().block_at_or_before(seq)? {
        Some((key, value)) => {
            let header = dealledger_log::block::header(key, &value)?;
            Ok((header.last_seq() == seq).then_some(header.chain))
        }
        None => Ok(None),
    }
}

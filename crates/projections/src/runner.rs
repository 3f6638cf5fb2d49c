//! Replay: folding the log into projections, from scratch or from a checkpoint.

use dealledger_events::EventRef;
use dealledger_log::{BlockStore, Head, Log, LogError, MetaBytes};
use std::time::Instant;

/// A fold over the log. `apply` is called once per event in seq order. An event the fold
/// cannot take (one that only a corrupt log holds: an event of a deal never opened) is an
/// error saying why, which the runner reports as corruption at that seq: never a panic.
pub trait Projection: Default + Sized {
    /// Names the checkpoint in the store.
    const NAME: &'static str;
    /// Bump when the state's layout or meaning changes: older checkpoints are then rebuilt.
    /// A golden test pins the state's bytes for a fixed history next to this number, so a
    /// change to the fold that leaves it unbumped fails the tests.
    const VERSION: u32;

    fn apply(&mut self, event: &EventRef<'_>) -> Result<(), String>;

    /// The state as a checkpoint stores it: the same bytes for the same events, however they
    /// were folded (from nothing, or a checkpoint plus a tail).
    fn encode(&self) -> Vec<u8>;

    /// The state back from [`Projection::encode`]'s bytes (`checkpoint[state]`, the value kept
    /// so that parts of it can be decoded later, when first read), checked to be one a fold could have
    /// produced, so that readers can index and compare without checks of their own. The bytes
    /// are untrusted (their checksum only rules out damage): an error, never a panic, rejects
    /// the checkpoint, which is then rebuilt from the log.
    fn decode(checkpoint: dealledger_log::MetaBytes, state: std::ops::Range<usize>) -> Result<Self, String>;

    /// A second value saved with each checkpoint, for readers that must not load the
    /// checkpoint (the timeline's deal index): its name among the store's metadata values and
    /// its bytes, which say themselves which `head` they were taken at.
    fn beside(&self, _head: &Head) -> Option<(&'static str, Vec<u8>)> {
        None
    }
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
/// bytes), the state's length (u64 LE) and crc32c (u32 LE), then the encoded state. The
/// checksum makes a torn or altered checkpoint a rebuild, never a wrong report.
const CHECKPOINT_HEADER_BYTES: usize = 4 + 8 + 32 + 8 + 4;

fn key<P: Projection>() -> String {
    format!("checkpoint/{}", P::NAME)
}

/// Folds every event from seq 1 into a fresh projection, and stores its checkpoint: a failure
/// to store it is this call's failure (`dealledger replay` asked for the checkpoint).
pub fn rebuild<P: Projection, S: BlockStore>(log: &Log<S>) -> Result<(P, ReplayStats), ReplayError> {
    rebuild_saving(log, |log, projection| save_checkpoint(log, projection))
}

/// [`rebuild`], saving the checkpoint with `save`.
fn rebuild_saving<P: Projection, S: BlockStore>(
    log: &Log<S>,
    save: impl FnOnce(&Log<S>, &P) -> Result<(), ReplayError>,
) -> Result<(P, ReplayStats), ReplayError> {
    let started = Instant::now();
    let mut projection = P::default();
    let events = fold(log, 1, &mut projection)?;
    let saving = Instant::now();
    save(log, &projection)?;
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
        return rebuild_saving(log, |log, projection| {
            save_or_warn(log, projection);
            Ok(())
        });
    };
    let events = fold(log, seq + 1, &mut projection)?;
    let saving = Instant::now();
    if events > 0 {
        save_or_warn(log, &projection);
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
        projection.apply(event).map_err(|why| LogError::Corrupt { seq: event.seq, why })?;
        events += 1;
        Ok(true)
    })?;
    Ok(events)
}

/// The checkpoint only saves time: where a command did not ask for it, a failure to save it is
/// a warning, not the command's failure.
fn save_or_warn<P: Projection, S: BlockStore>(log: &Log<S>, projection: &P) {
    if let Err(e) = save_checkpoint(log, projection) {
        tracing::warn!(projection = P::NAME, error = %e, "could not save the checkpoint; the next run replays more");
    }
}

/// Stores `projection` as the checkpoint at the log's head: the caller vouches that it has folded
/// exactly the events up to that head (the daemon, whose writer folds every commit).
pub fn save_checkpoint<P: Projection, S: BlockStore>(
    log: &Log<S>,
    projection: &P,
) -> Result<(), ReplayError> {
    let head = log.head();
    let state = projection.encode();
    let mut bytes = Vec::with_capacity(CHECKPOINT_HEADER_BYTES + state.len());
    bytes.extend_from_slice(&P::VERSION.to_le_bytes());
    bytes.extend_from_slice(&head.seq.to_le_bytes());
    bytes.extend_from_slice(&head.chain);
    bytes.extend_from_slice(&(state.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&state).to_le_bytes());
    bytes.extend(state);
    log.store().put_meta(&key::<P>(), &bytes)?;
    if let Some((name, value)) = projection.beside(&head) {
        log.store().put_meta(name, &value)?;
    }
    Ok(())
}

/// A checkpoint is used only if its version is current and the log still has, at its seq, the
/// chain hash it was taken at: a restored or replaced store invalidates it. A checkpoint that
/// cannot be used is not an error (the log is the truth, the projection is rebuilt), but it is
/// logged for whoever wonders why a report was slow.
fn load<P: Projection, S: BlockStore>(log: &Log<S>) -> Result<Option<(P, u64)>, ReplayError> {
    let Some(bytes) = log.store().read_meta(&key::<P>())? else {
        return Ok(None);
    };
    let checkpoint = match parse_checkpoint::<P>(&bytes) {
        Ok(checkpoint) => checkpoint,
        Err(Unusable::Stale(version)) => {
            tracing::info!(
                projection = P::NAME,
                version,
                "checkpoint of another version; rebuilding from the log"
            );
            return Ok(None);
        }
        Err(Unusable::Damaged(why)) => {
            tracing::warn!(projection = P::NAME, why, "damaged checkpoint; rebuilding from the log");
            return Ok(None);
        }
    };
    let (seq, chain) = (checkpoint.seq, checkpoint.chain);
    if seq > log.head().seq {
        tracing::warn!(projection = P::NAME, seq, "checkpoint is ahead of the log; rebuilding");
        return Ok(None);
    }
    if log.chain_after(seq)? != Some(chain) {
        tracing::warn!(projection = P::NAME, seq, "checkpoint does not belong to this log; rebuilding");
        return Ok(None);
    }
    let state = CHECKPOINT_HEADER_BYTES..bytes.len();
    match P::decode(bytes, state) {
        Ok(projection) => Ok(Some((projection, seq))),
        Err(why) => {
            tracing::warn!(projection = P::NAME, why, "unusable checkpoint state; rebuilding from the log");
            Ok(None)
        }
    }
}

/// A checkpoint's header, checked against its state (not yet against the log). The state is
/// the rest of the value, from [`CHECKPOINT_HEADER_BYTES`].
struct Checkpoint {
    seq: u64,
    chain: [u8; 32],
}

enum Unusable {
    /// Written by another version of the projection.
    Stale(u32),
    Damaged(String),
}

fn parse_checkpoint<P: Projection>(bytes: &MetaBytes) -> Result<Checkpoint, Unusable> {
    let field = |at: usize, len: usize| {
        bytes
            .get(at..at + len)
            .ok_or_else(|| Unusable::Damaged(format!("{} bytes, shorter than its header", bytes.len())))
    };
    let u32_at = |at| field(at, 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let u64_at = |at| field(at, 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let version = u32_at(0)?;
    if version != P::VERSION {
        return Err(Unusable::Stale(version));
    }
    let seq = u64_at(4)?;
    let chain: [u8; 32] = field(12, 32)?.try_into().expect("32 bytes");
    let len = u64_at(44)?;
    let crc = u32_at(52)?;
    let state = bytes.get(CHECKPOINT_HEADER_BYTES.min(bytes.len())..).unwrap_or_default();
    if state.len() as u64 != len {
        return Err(Unusable::Damaged(format!("state of {} bytes where {len} were written", state.len())));
    }
    if checksum(bytes, CHECKPOINT_HEADER_BYTES) != crc {
        return Err(Unusable::Damaged("checksum mismatch".into()));
    }
    Ok(Checkpoint { seq, chain })
}

/// crc32c of `bytes[from..]`, a slab at a time, giving each slab's pages back once summed: a
/// mapped checkpoint of hundreds of MB is not resident all at once just to be checked (its
/// decoding maps in again what it reads, and gives that back as it goes).
fn checksum(bytes: &MetaBytes, from: usize) -> u32 {
    const SLAB_BYTES: usize = 8 << 20;
    let mut crc = 0;
    let mut at = from.min(bytes.len());
    while at < bytes.len() {
        let end = at.saturating_add(SLAB_BYTES).min(bytes.len());
        crc = crc32c::crc32c_append(crc, bytes.get(at..end).unwrap_or_default());
        bytes.release_pages(at..end);
        at = end;
    }
    crc
}

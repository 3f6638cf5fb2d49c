//! A log copied block by block to another store (`dealledger migrate`): the same bytes and the
//! same chain, so the copy's digest is the source's; a copy that stopped part way goes on where
//! it stopped. The destination must be empty or hold a prefix of this very log, and the copy is
//! verified end to end against the source's head before it is called done.

use crate::block;
use crate::error::LogError;
use crate::log::{Head, Log, Verified};
use crate::store::BlockStore;

/// Blocks per append to the destination (each at most 96 KiB): well inside one atomic write
/// on JetStream, and a bounded amount of memory.
pub const COPY_BLOCKS_PER_APPEND: usize = 256;

/// What a finished copy holds.
#[derive(Clone, Debug)]
pub struct Copied {
    /// Blocks written by this copy (the rest were there from a copy that stopped).
    pub blocks: u64,
    /// The copy, verified: its head is the source's.
    pub verified: Verified,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the destination holds a log that is not a prefix of this one (it ends at seq {seq} with chain {chain}); copy to an empty store")]
    NotAPrefix { seq: u64, chain: String },
    /// The copy does not verify, or ends short of the source: it is not to be used.
    #[error("the copy failed verification: {0}")]
    Verification(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Copies `source` up to its head into `destination` (a store nothing else writes to), telling
/// `progress` (blocks copied, seq reached) after each append, then verifies the copy.
pub fn copy_log<S: BlockStore, D: BlockStore + Clone>(
    source: &Log<S>,
    destination: D,
    mut progress: impl FnMut(u64, u64),
) -> Result<Copied, CopyError> {
    let source_head = source.head();
    let from = Log::open(destination.clone())?.head();
    if from.seq > source_head.seq || from.seq > 0 && source.chain_after(from.seq)? != Some(from.chain) {
        return Err(CopyError::NotAPrefix { seq: from.seq, chain: from.chain_hex() });
    }
    let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
    let (mut head, mut blocks) = (from, 0u64);
    source.store().scan(from.seq + 1, &mut |key, bytes| {
        let header = block::header(key, bytes)?;
        if header.first_seq != head.seq + 1 || header.prev_chain != head.chain {
            let why = "the source's blocks do not follow one another".into();
            return Err(LogError::Corrupt { seq: key, why });
        }
        head = Head { seq: header.last_seq(), chain: header.chain };
        pending.push((key, bytes.to_vec()));
        blocks += 1;
        let last = head.seq >= source_head.seq;
        if pending.len() >= COPY_BLOCKS_PER_APPEND || last {
            destination.append(&pending, head)?;
            pending.clear();
            progress(blocks, head.seq);
        }
        Ok(!last)
    })?;
    if !pending.is_empty() {
        destination.append(&pending, head)?;
    }
    // End to end: every block's checksum, numbering and the chain, up to the source's head.
    let verified = Log::open(destination)?
        .verify(Some(source_head), |_| {})
        .map_err(|e| CopyError::Verification(e.to_string()))?;
    if verified.head != source_head {
        let why = format!("it ends at seq {}, the source at {}", verified.head.seq, source_head.seq);
        return Err(CopyError::Verification(why));
    }
    Ok(Copied { blocks, verified })
}

use thiserror::Error;

/// Everything that can go wrong below the event contract.
///
/// The variants of a failed write say what the caller may tell its client: [`LogError::Store`]
/// means nothing was stored (certain); [`LogError::Uncertain`] means the write may or may not
/// have been kept, so the truthful answer is "unknown, retry with the same `source_id`s".
#[derive(Debug, Error)]
pub enum LogError {
    /// The storage engine failed before anything of this write reached it (I/O, out of space,
    /// a store that failed earlier and refuses writes): nothing of the write was stored.
    #[error("storage error: {0}")]
    Store(String),
    /// The write reached the store but did not complete (its flush or fsync failed, or the
    /// error came after the data was handed over): it may or may not be durable. A retry with
    /// the same `source_id`s is safe; idempotency turns what was kept into duplicates.
    #[error("storage error, outcome unknown (the write may or may not be stored; a retry with the same source_id values is safe): {0}")]
    Uncertain(String),
    /// Another writer appended to the log since this one last read it (a shared store, such as
    /// a JetStream stream, refused the write's condition on the log's end): this writer's
    /// state is stale. Nothing of this write was stored. The writer must not write again
    /// before it has rebuilt its state from the store, and only if it still holds the lease.
    #[error("fenced off: another writer appended to the log ({0}); nothing of this write was stored")]
    Fenced(String),
    /// Another process holds the data directory.
    #[error("the data directory {path} is in use by another process (a running `dealledger serve` or `dealledger ingest`?); stop it or point --data elsewhere")]
    Locked { path: String },
    /// Stored bytes are not what was written. `seq` is the first event of the bad block (or the
    /// bad event itself when known).
    #[error("log is corrupt at seq {seq}: {why}")]
    Corrupt { seq: u64, why: String },
    /// The log ends below its high-water mark: events that were acknowledged are gone.
    #[error("the log ends at seq {ends_at}, but seqs {}..={acknowledged} were acknowledged (high-water mark {mark}): the store lost its tail. Nothing is written until a person decides: restore the store from a backup that has them, or accept the loss with `dealledger recover --accept-loss {}..{acknowledged}` (see README, Durability)", ends_at + 1, ends_at + 1)]
    LostTail { ends_at: u64, acknowledged: u64, mark: String },
    /// The log's chain at the mark's seq is not the one the mark recorded: this store is not
    /// the one the mark was written for (replaced or restored from elsewhere).
    #[error("the log's chain at seq {seq} differs from the high-water mark {mark}: this store is not the one that acknowledged those events (replaced or restored from another ledger?). Nothing is written until a person decides (see README, Durability)")]
    MarkMismatch { seq: u64, mark: String },
}

/// What a failed write left in the store: the one distinction every layer passes on, from this
/// error to the daemon's HTTP answer (`store_failed` or `outcome_unknown`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Certainty {
    /// Nothing of the write was stored: a retry is new.
    NothingStored,
    /// The write may or may not be stored: a retry with the same `source_id`s is all duplicates
    /// or all new, and the writer's state must be rebuilt from the store before it writes again.
    Unknown,
}

impl LogError {
    /// What a failed write left in the store.
    pub fn certainty(&self) -> Certainty {
        match self {
            LogError::Uncertain(_) => Certainty::Unknown,
            _ => Certainty::NothingStored,
        }
    }

    /// True when the log is damaged or shorter than acknowledged: `audit verify` fails on these.
    pub fn is_verification_failure(&self) -> bool {
        matches!(self, LogError::Corrupt { .. } | LogError::LostTail { .. } | LogError::MarkMismatch { .. })
    }
}

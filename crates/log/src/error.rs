use thiserror::Error;

/// Everything that can go wrong below the event contract.
#[derive(Debug, Error)]
pub enum LogError {
    /// The storage engine failed (I/O, out of space, ...).
    #[error("storage error: {0}")]
    Store(String),
    /// Another process holds the data directory.
    #[error("the data directory {path} is in use by another process (a running `dealledger serve` or `dealledger ingest`?); stop it or point --data elsewhere")]
    Locked { path: String },
    /// Stored bytes are not what was written. `seq` is the first event of the bad block (or the
    /// bad event itself when known).
    #[error("log is corrupt at seq {seq}: {why}")]
    Corrupt { seq: u64, why: String },
}

//! dealledger's log: the append-only, hash-chained, durable home of every event.
//!
//! Boundary: this is the only crate that knows sled, and only [`sled_store`] does. Above the
//! [`BlockStore`] trait everything speaks in events and sealed blocks, so that another backend
//! (NATS JetStream for teams that outgrow one machine) is one more implementation of a
//! small trait. It knows nothing of tokio, clap, JSON files or projections.
//!
//! - [`block`]: the sealed block format (zstd records, crc32c, blake3 chain).
//! - [`Log`]: numbered events over a store: append sealed blocks, scan, read, verify.
//! - [`Ledger`]: the writer. Rebuilds validity and idempotency state from the log on open,
//!   admits events in atomic [`Batch`]es, and acknowledges only after the store's barrier.
//! - [`SledStore`]: the sled backend, whose barrier is fsync (of `db`, of new files and of
//!   changed directories), proven with `strace` and simulated power cuts.
//! - [`faults`]: a seeded fault-injecting store for the tests above the store.
//! - [`writer_lock`]: the one-writer lock of a data directory, naming its holder.
//! - [`lease`]: the writer lease of a store several processes share (JetStream), and
//!   [`LogError::Fenced`] for the append another writer beat.
//! - `conformance` (hidden): the one ledger suite every backend passes.
//!
//! Invariants: sequence numbers start at 1 and have no gap; a block is never rewritten; what
//! `append` returned Ok for survives a power cut; a log shorter than its high-water mark (the
//! head last acknowledged) is never written to, so no acknowledged seq is given out twice; a
//! failed write says whether nothing was stored or the outcome is unknown; corrupt bytes are an
//! error naming the seq, never skipped and never a panic.

pub mod block;
#[doc(hidden)]
pub mod conformance;
mod copy;
mod error;
pub mod faults;
pub mod files;
pub mod lease;
mod ledger;
mod log;
mod seen;
mod sled_store;
mod store;
pub mod writer_lock;

pub use copy::{copy_log, Copied, CopyError, COPY_BLOCKS_PER_APPEND};
pub use error::{Certainty, LogError};
pub use ledger::{Batch, Committed, Ledger, Outcome};
pub use log::{BlockWriter, Head, Log, Sealed, Verified};
pub use sled_store::{Salvage, SledStore};
pub use store::{BlockStore, BlockVisitor, MemStore, MetaBytes};

//! dealledger's second log backend: the log on a replicated NATS JetStream stream.
//!
//! sled on one disk is the default; a team that wants its log on several machines, a standby
//! writer and read replicas points the ledger at `nats://HOST:PORT/LEDGER` instead. This crate
//! is the only code that knows NATS: above [`dealledger_log::BlockStore`] nothing changes.
//!
//! - [`Target`]: the store URL (`nats://` or `tls://`, one ledger per stream) and [`Options`]
//!   (credentials from a file or the environment, replicas, monitoring URLs).
//! - [`JetStreamStore`]: the `BlockStore`: one message per sealed block, every append
//!   conditional on the stream's last sequence (a stale writer is fenced off, never forks the
//!   chain), several blocks in one atomic batch, the mark in a KV bucket, checkpoints in an
//!   object store.
//! - [`JetStreamLease`]: the writer lease, a KV entry with a time to live, renewed by revision.
//!
//! Boundary: depends on `dealledger-log` (the trait and the block format) and the NATS client;
//! nothing of events, projections, HTTP or clap. Its runtime is its own: callers are
//! synchronous (the `BlockStore` contract), possibly threads of another runtime.

mod lease;
mod store;
mod target;
#[doc(hidden)]
pub mod testkit;

pub use lease::{JetStreamLease, LEASE_TTL_MS_MIN};
pub use store::{check_stream, stream_config, JetStreamStore, APPEND_BLOCKS_MAX};
pub use target::{
    check_ledger_name, LedgerNameError, Options, Target, TargetError, TargetProblem, REPLICAS_DEFAULT,
};

//! dealledger's read side: the replay runner, the [`Projection`] trait and the [`Timeline`]
//! every report reads.
//!
//! Boundary: projections see events, never storage. They are folds over
//! [`dealledger_events::EventRef`]s (borrowed, no allocation) that cannot fail and never read the
//! clock; the runner feeds them from a [`dealledger_log::Log`] and keeps their checkpoints
//! through the log's metadata, with the [`deal_index`] beside the timeline's. Nothing here knows
//! sled, clap or JSON files.
//!
//! Business time: a deal's events are folded in (`at`, seq) order. Events arrive in seq order,
//! and a backdated one may land before events already folded, so the timeline inserts each
//! event at its place instead of assuming arrival order.

pub mod deal_index;
mod fold;
mod runner;
#[doc(hidden)]
pub mod testkit;
mod timeline;

pub use fold::{Folded, Status, TouchFacts, Visit};
pub use runner::{catch_up, rebuild, save_checkpoint, Projection, ReplayError, ReplayStats};
pub use timeline::{
    contact_key, force_parallel_parts, Change, DealHistory, Deals, DealsIter, Entry, Name, Names, StateError,
    Timeline, Touch, View,
};

//! dealledger's read side: the replay runner, the [`Projection`] trait and the standard
//! projections every report reads.
//!
//! Boundary: projections see events, never storage. They are folds over [`dealledger_events::EventRef`]s (borrowed, no allocation) that
//! cannot fail and never read the clock; the runner feeds them from a [`Log`] and keeps their
//! checkpoints through the log's metadata. Nothing here knows sled, clap or JSON files.
//!
//! Business time: a deal's events are folded in (`at`, seq) order. Events arrive in seq order,
//! and a backdated one may land before events already folded, so projections keep what they
//! need to re-fold a deal (its lifecycle is short) instead of assuming arrival order.

mod deals;
mod runner;

pub use deals::{DealState, DealStatus, Deals, PipelineSummary, StageRow};
pub use runner::{catch_up, rebuild, Projection, ReplayError, ReplayStats};

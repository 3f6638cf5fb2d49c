//! dealledger's event contract: what a fact about a deal is, how it is written in JSON, which
//! histories are valid, and how an event is encoded on disk.
//!
//! Boundary: this crate is pure. It knows nothing of sled, tokio, clap or the file system; it
//! never reads the clock (callers pass `now`). Everything else in dealledger depends on it and it
//! depends on none of them but `dealledger-config` (the schema of dealledger.toml, itself
//! dependency-free), so the contract can be tested, fuzzed and reused on its own.
//!
//! - [`event`]: [`Event`] (what the source said) and [`StoredEvent`] (numbered and versioned);
//!   [`event_ref`]: [`EventRef`], a stored event borrowed from its block, for replay.
//! - [`json`]: JSON Lines in ([`parse_line`]) and out ([`write_event_json`]).
//! - [`lifecycle`]: the deal's status machine (open, won, lost, disqualified, requalified), the one
//!   place its rules live: admission, the projection fold and the what-if walk all use it.
//! - [`validate`]: [`Deals`], the per-deal rules checked on append, with undo for atomic batches.
//! - [`codec`]: the versioned binary record format, the one place that knows bincode.
//! - [`pipeline`]: stages and probabilities (`[pipeline]` of dealledger.toml, from `dealledger_config`).
//! - [`money`], [`time`]: exact amounts in minor units and UTC microseconds; never f64.

pub mod codec;
pub mod event;
pub mod event_ref;
pub mod json;
pub mod lifecycle;
pub mod money;
pub mod pipeline;
pub mod rejection;
pub mod time;
pub mod validate;

pub use event::{
    Amount, Body, Channel, DealId, Direction, DqReason, Event, FieldValue, Kind, StoredEvent, Submission,
};
pub use event_ref::{BodyRef, EventRef, FieldValueRef};
pub use json::{parse_line, stored_event_json, write_event_json};
pub use lifecycle::{Lifecycle, Status};
pub use money::Currency;
pub use pipeline::{Pipeline, Stage};
pub use rejection::{Rejection, Rule, ValueError};
pub use time::{Clock, Date, FixedClock, SystemClock, Timestamp};
pub use validate::{Deals, Savepoint};

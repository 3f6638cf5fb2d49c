//! What the importer tests share: the project's own fixtures, and a census of what an import
//! produced.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test code: a panic is a failing test"
)]
#![allow(dead_code)] // Each test crate uses its own part.

use dealledger_events::{Deals, Pipeline, Timestamp};
use dealledger_import::{options_from_config, Imported, Options};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// A file of `tests/fixtures`: small hand-made exports in each format, part of the project.
pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

/// The options of `docs/examples/pipedrive.toml`: its pipeline and its `[import.stages]`.
pub fn pipedrive_options() -> Options {
    let toml = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/pipedrive.toml"),
    )
    .unwrap();
    options_of(&toml).unwrap()
}

/// The importers' options from the text of a dealledger.toml, as the binary reads them.
pub fn options_of(toml: &str) -> Result<Options, String> {
    let config = dealledger_config::Config::parse(toml, "dealledger.toml").map_err(|e| e.to_string())?;
    let pipeline = dealledger_events::pipeline::pipeline_from_config(&config).map_err(|e| e.reason())?;
    options_from_config(&config, pipeline).map_err(|e| e.reason())
}

/// Events by type, distinct deals, and skipped rows by kind.
pub struct Census {
    pub types: BTreeMap<String, usize>,
    pub deals: usize,
    pub skipped: BTreeMap<String, usize>,
}

/// Counts what `imported` holds; every row must be a valid event.
pub fn census(imported: &Imported) -> Census {
    let mut types = BTreeMap::new();
    let mut deals = BTreeSet::new();
    for row in &imported.rows {
        let submission = row.result.as_ref().unwrap_or_else(|e| panic!("{}: {e}", row.location));
        *types.entry(submission.event.body.kind().as_str().to_string()).or_default() += 1;
        deals.insert(submission.event.deal.as_str().to_string());
    }
    let mut skipped = BTreeMap::new();
    for s in &imported.skipped {
        *skipped.entry(s.kind.to_string()).or_default() += 1;
    }
    Census { types, deals: deals.len(), skipped }
}

pub fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Admits every event, in order, as the ledger would on ingest: each deal's history must obey
/// the contract's rules (docs/events.md), so the batch would be stored whole.
pub fn admit_all(imported: &Imported, pipeline: &Pipeline) {
    let mut deals = Deals::default();
    for (seq, row) in imported.rows.iter().enumerate() {
        let mut submission = row.result.clone().unwrap_or_else(|e| panic!("{}: {e}", row.location));
        let now = Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        if let Err(rejection) = deals.admit(&mut submission, seq as u64 + 1, now, pipeline) {
            panic!("{}: {rejection}", row.location);
        }
    }
}

/// The event types of one deal, in import order.
pub fn history(imported: &Imported, deal: &str) -> Vec<&'static str> {
    imported
        .rows
        .iter()
        .filter_map(|row| row.result.as_ref().ok())
        .filter(|s| s.event.deal.as_str() == deal)
        .map(|s| s.event.body.kind().as_str())
        .collect()
}

/// One event as the ledger prints it (JSON), to check its fields.
pub fn json(imported: &Imported, deal: &str, kind: &str) -> serde_json::Value {
    let submission = imported
        .rows
        .iter()
        .filter_map(|row| row.result.as_ref().ok())
        .find(|s| s.event.deal.as_str() == deal && s.event.body.kind().as_str() == kind)
        .unwrap_or_else(|| panic!("no {kind} for {deal}"));
    event_json(&submission.event)
}

/// An event as the contract's JSON (amounts in USD).
pub fn event_json(event: &dealledger_events::Event) -> serde_json::Value {
    let mut text = String::new();
    dealledger_events::json::write_event_json(&mut text, event, dealledger_events::Currency::USD, "");
    serde_json::from_str(&text).unwrap()
}

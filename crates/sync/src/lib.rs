//! dealledger's CRM sync: a CRM's history pulled through its API as ledger events, run after
//! run, each run asking only for what changed since the last.
//!
//! - [`http`]: the one HTTP client (token, bounded answers, rate limits, retries).
//! - [`salesforce`]: Salesforce's REST API: opportunities with their stage and owner history,
//!   tasks, events and email messages.
//! - [`reconcile`]: each deal's current values in the CRM against the ledger's, with causes.
//! - [`state`]: what a run leaves for the next: per object type, the modification time up to
//!   which every record is stored (the cursor), and activities dated after the run.
//! - [`hubspot`]: HubSpot's CRM API v3: deals with property history, calls, emails, meetings.
//! - [`testkit`]: a local HubSpot that answers as the API reference says, for the tests.
//!
//! A run reads a page, maps it to events, hands them to a [`Sink`] that stores them durably,
//! and only then moves the cursor and writes the state file: a run killed anywhere resumes from
//! the last page stored, and what it reads again is stored once (every event has a `source_id`
//! the ledger deduplicates on). The next run asks from the cursor less an overlap, because a
//! CRM's search index shows a change a few moments after it is made.
//!
//! Nothing is invented: a record that maps to no event is counted and named by kind; a change the
//! ledger refuses (an unmapped stage) is held by the sink where a person can retry it.
//!
//! Boundary: depends on `events`, `import` (the mapping a CRM change shares with the importers
//! and webhooks) and `log` (its file writing); not on the store, the daemon or clap. The caller
//! supplies the clock, the sink and the pause.

pub mod http;
pub mod hubspot;
pub mod reconcile;
pub mod salesforce;
pub mod state;
pub mod testkit;

use dealledger_events::Timestamp;
use dealledger_import::{Row, Skipped};
use std::collections::BTreeMap;

/// What a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steps {
    /// Changes since the cursor, due activities, then the reconciliation.
    All,
    /// The reconciliation alone (`report reconcile`): the state is read, never written.
    Reconcile,
}

/// A run's outcome: what it did, and the error that stopped it, if one did (all it stored before
/// that stays stored, and the state says so).
#[derive(Debug)]
pub struct Ran {
    pub summary: Summary,
    pub result: Result<(), SyncError>,
}

/// Where a run's events go.
pub trait Sink {
    /// When the ledger opened `deal` (with everything this run stored so far), if it did.
    fn opened_at(&self, deal: &str) -> Option<Timestamp>;
    /// Stores `rows` durably before returning. A row the ledger refuses is held where a person
    /// can retry it when it carries a notification; else it is returned as skipped.
    fn store(&mut self, rows: Vec<Row>) -> Result<Stored, BoxError>;
    /// Every deal as the ledger sees it now, with everything stored so far, by deal id.
    fn deals_now(&mut self) -> Result<BTreeMap<String, reconcile::LedgerDeal>, BoxError>;
}

/// A sink's error: whatever its store says.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a sink did with one page's rows.
#[derive(Debug, Default)]
pub struct Stored {
    pub appended: u64,
    pub duplicates: u64,
    /// Refused and held (the quarantine).
    pub held: u64,
    /// Refused, with nothing to hold them by: skipped, with why.
    pub refused: Vec<Skipped>,
}

/// Why a run stopped. Everything stored before it stays stored, and the state says so.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error("storing what the CRM gave failed: {0}")]
    Store(#[source] BoxError),
    #[error("cannot {what} the sync state {}: {source}", path.display())]
    State { what: &'static str, path: std::path::PathBuf, source: std::io::Error },
    #[error("the sync state {} is damaged ({why}); move it aside to sync again from the start (what is stored is stored once)", path.display())]
    StateDamaged { path: std::path::PathBuf, why: String },
    /// An answer the API reference does not describe.
    #[error("{0}")]
    Unexpected(String),
    /// A setting that cannot work.
    #[error("{0}")]
    Settings(String),
    /// The run's share of the CRM's daily API allocation is spent: it stops cleanly, and the next
    /// run goes on from the cursor.
    #[error("{0}")]
    Budget(String),
}

/// What a run did: `sync --format json` prints it, the daemon keeps the last one.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    pub crm: &'static str,
    #[serde(flatten)]
    pub http: http::Counts,
    /// Pages of search or list results read.
    pub pages: u64,
    /// Records read, by object type.
    pub records: BTreeMap<String, u64>,
    /// Events stored now, already stored before, and refused into the quarantine.
    pub events_stored: u64,
    pub duplicates: u64,
    pub held: u64,
    pub skipped_by_kind: BTreeMap<String, u64>,
    /// Up to `SKIPPED_SHOWN_MAX` skipped records, with why.
    pub skipped_examples: Vec<String>,
    /// Per object type, the modification time up to which everything is stored.
    pub cursor: BTreeMap<String, String>,
    /// Activities dated after this run, to be read again when due.
    pub pending: u64,
    /// The reconciliation after the run, when it got that far.
    pub reconciled: Option<reconcile::Reconciled>,
    pub seconds: f64,
}

/// Differences a summary for people shows, at most.
pub const DIFFERENCES_SHOWN_MAX: usize = 20;

/// Skipped records named in a summary, at most.
pub const SKIPPED_SHOWN_MAX: usize = 10;

impl Summary {
    /// The summary as JSON (`--format json`), else for people ([`Summary::lines`]).
    pub fn text(&self, json: bool) -> String {
        match json {
            true => serde_json::to_string(self).unwrap_or_default(),
            false => self.lines().join("\n"),
        }
    }

    /// The summary for people: what was stored, read and skipped, and where the next run starts.
    pub fn lines(&self) -> Vec<String> {
        let counts = |map: &BTreeMap<String, u64>| {
            map.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
        };
        let mut lines = vec![format!(
            "stored {} events, {} already stored, {} held in the quarantine; read {} in {} pages, {} requests ({} throttled, {} failed and retried) in {:.1} s",
            self.events_stored,
            self.duplicates,
            self.held,
            counts(&self.records),
            self.pages,
            self.http.requests,
            self.http.throttled,
            self.http.failed,
            self.seconds
        )];
        if !self.skipped_by_kind.is_empty() {
            lines.push(format!("skipped ({}):", counts(&self.skipped_by_kind)));
            lines.extend(self.skipped_examples.iter().map(|e| format!("  {e}")));
        }
        if self.held > 0 {
            lines.push(
                "held changes: dealledger audit quarantine; after fixing the cause: dealledger quarantine retry".into(),
            );
        }
        if !self.cursor.is_empty() {
            let cursor: Vec<String> = self.cursor.iter().map(|(k, at)| format!("{k} {at}")).collect();
            lines.push(format!("next run asks for changes since: {}", cursor.join(", ")));
        }
        if let Some(reconciled) = &self.reconciled {
            lines.push(format!(
                "reconciled {} deals with the CRM: {} differed, {} events stored from their history, {} differences left",
                reconciled.compared,
                reconciled.differed,
                reconciled.stored_from_history,
                reconciled.differences_total
            ));
            let shown = reconciled.differences.iter().take(DIFFERENCES_SHOWN_MAX);
            lines.extend(shown.map(|d| format!("  {}", d.line())));
            if reconciled.differences_total > DIFFERENCES_SHOWN_MAX as u64 {
                lines.push(format!(
                    "  ... {} more (--format json lists the first {})",
                    reconciled.differences_total - DIFFERENCES_SHOWN_MAX as u64,
                    reconciled.differences.len()
                ));
            }
        }
        lines
    }

    /// What a run of `steps` leaves: its requests, and (when it synced) the activities pending and
    /// where the next run starts.
    pub(crate) fn closed(&mut self, counts: http::Counts, state: &state::State, steps: Steps) {
        self.http = counts;
        if steps == Steps::All {
            self.pending = state.pending.len() as u64;
            self.cursor = state
                .cursors
                .iter()
                .map(|(k, ms)| (k.clone(), Timestamp(ms.saturating_mul(1000)).to_string()))
                .collect();
        }
    }

    pub(crate) fn skipped(&mut self, skipped: &[Skipped]) {
        for s in skipped {
            *self.skipped_by_kind.entry(s.kind.to_string()).or_default() += 1;
            if self.skipped_examples.len() < SKIPPED_SHOWN_MAX {
                self.skipped_examples.push(format!("{}: {} [{}]", s.location, s.reason, s.kind));
            }
        }
    }

    pub(crate) fn stored(&mut self, stored: &Stored) {
        self.events_stored += stored.appended;
        self.duplicates += stored.duplicates;
        self.held += stored.held;
        self.skipped(&stored.refused);
    }
}

/// Where a run is, for a progress bar: the object type, records done and the total the CRM
/// reported for the current query.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    pub object: &'a str,
    pub done: u64,
    pub total: u64,
}

/// A progress bar on standard error when it is a terminal and `wanted`: records read of the
/// current object type against the total the CRM reported.
pub fn progress_bar(wanted: bool) -> impl FnMut(Progress<'_>) {
    let shown = wanted && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = if shown { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} records ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    move |progress: Progress<'_>| {
        bar.set_message(progress.object.to_string());
        bar.set_length(progress.total);
        bar.set_position(progress.done);
        if progress.done >= progress.total {
            bar.finish_and_clear();
            bar.reset();
        }
    }
}

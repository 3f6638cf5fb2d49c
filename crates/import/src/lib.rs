//! dealledger's CRM importers: a team's history, exported from its CRM, as ledger events.
//!
//! - [`salesforce`]: Salesforce OpportunityHistory (and optionally Opportunity) CSV exports.
//! - [`salesforce_activities`]: Salesforce Tasks, Events and EmailMessages as touches (Data
//!   Loader CSVs, and the sync's API records: one mapping).
//! - [`field_changes`]: field-change logs (Pipedrive's deal_changes, with stages and activities).
//! - [`opportunities`]: one row per opportunity (CRM report exports; the Maven layout).
//! - [`hubspot`]: HubSpot's CRM v3 deals with property history (the backfill), and the mapping
//!   of one HubSpot change to an event that the daemon's webhooks share, so both store a change
//!   once.
//!
//! Each importer turns files into events in the contract of docs/events.md (built as JSON and
//! parsed by the contract's own parser, so an importer cannot produce what ingest would refuse),
//! each with the file and line it came from. Rows that cannot become an event without guessing
//! (no date, a deal never created) are reported as skipped with the reason, never invented.
//! The caller admits the events as one all-or-nothing batch, exactly like JSON Lines.
//!
//! Boundary: depends only on `events` (and csv, serde_json, sha2 for HubSpot's source ids); no storage, no clock, no clap. Mapping rules
//! are documented in docs/importers.md and are the contract of these functions.

pub mod field_changes;
pub mod hubspot;
pub mod opportunities;
pub mod salesforce;
pub mod salesforce_activities;

#[cfg(test)]
mod fuzz;

use dealledger_config::{Config, ConfigError};
use dealledger_events::{parse_line, Pipeline, Rejection, Submission};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One event and where it came from (`FILE:LINE`).
#[derive(Debug)]
pub struct Row {
    pub location: String,
    pub result: Result<Submission, Rejection>,
    /// A HubSpot change as the webhook notification that says the same (`deal.creation`,
    /// `deal.propertyChange`): what the sync holds in the quarantine when the ledger refuses
    /// the row, to be retried like a webhook's. None for every other source.
    pub notification: Option<serde_json::Value>,
}

/// A row that maps to no event, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub location: String,
    /// A stable name for the kind of row (docs/importers.md lists them), for counting.
    pub kind: &'static str,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Imported {
    /// In the order to admit them.
    pub rows: Vec<Row>,
    pub skipped: Vec<Skipped>,
    /// CRM stage names no map takes, in the order first met, with where and how many rows: the
    /// import goes on past them so that one error names them all ([`Imported::finish`]).
    unmapped: Vec<(String, String, u64)>,
}

impl Imported {
    /// The skipped rows for people: a count, then up to `shown_max` of them with where, why
    /// and their kind. None when nothing was skipped.
    pub fn skipped_summary(&self, shown_max: usize) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let kinds: Vec<String> =
            self.skipped_by_kind().iter().map(|(kind, n)| format!("{kind} {n}")).collect();
        let mut text =
            format!("{} rows map to no event and were skipped ({}):", self.skipped.len(), kinds.join(", "));
        // The first ones by file name and line, whatever order the importer met them in.
        let mut shown: Vec<&Skipped> = self.skipped.iter().collect();
        shown.sort_by_cached_key(|s| {
            let (file, line) = s.location.rsplit_once(':').unwrap_or((s.location.as_str(), ""));
            (file.to_string(), line.parse::<u64>().unwrap_or(0))
        });
        for skipped in shown.into_iter().take(shown_max) {
            text.push_str(&format!("\n  {}: {} [{}]", skipped.location, skipped.reason, skipped.kind));
        }
        if self.skipped.len() > shown_max {
            text.push_str(&format!("\n  ... and {} more", self.skipped.len() - shown_max));
        }
        Some(text)
    }

    fn push(&mut self, location: String, event: serde_json::Value) {
        let result = parse_line(&event.to_string());
        self.rows.push(Row { location, result, notification: None });
    }

    fn skip(&mut self, location: String, kind: &'static str, reason: impl Into<String>) {
        self.skipped.push(Skipped { location, kind, reason: reason.into() });
    }

    /// A CRM stage's target (see [`Options::target`]); None for a stage no map takes, which is
    /// noted, for [`Imported::finish`] to name with the others.
    fn target(
        &mut self,
        options: &Options,
        name: &str,
        location: &str,
        fallback: impl Fn(&str) -> Option<Target>,
    ) -> Option<Target> {
        let target = options.target(name, fallback);
        if target.is_none() {
            match self.unmapped.iter_mut().find(|(stage, _, _)| stage == name) {
                Some((_, _, rows)) => *rows += 1,
                None => self.unmapped.push((name.to_string(), location.to_string(), 1)),
            }
        }
        target
    }

    /// The import, or one error naming every stage no map took, as the `[import.stages]` block
    /// that maps them, each target left for a person to choose (the importers never guess).
    fn finish(self, pipeline: &Pipeline) -> Result<Imported, ImportError> {
        if self.unmapped.is_empty() {
            return Ok(self);
        }
        let n = self.unmapped.len();
        let (stages, are) = if n == 1 { ("stage", "is") } else { ("stages", "are") };
        let mut text = format!(
            "{n} {stages} of the export {are} not mapped to the pipeline ({}): add this to dealledger.toml, \
             each target a pipeline stage, `won` or `lost`, and import again (nothing was stored)\n\n[import.stages]",
            pipeline.names()
        );
        for (stage, location, rows) in &self.unmapped {
            let more = if *rows > 1 { format!(" and {} more rows", rows - 1) } else { String::new() };
            text.push_str(&format!("\n{} = \"\"  # first at {location}{more}", toml_string(stage)));
        }
        Err(ImportError::Unmapped(text))
    }
}

/// A TOML basic string (a table key or value) of `text`.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A file, a column or a value the importer cannot work with: the import stops, nothing stored.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {why}")]
    Read { path: String, why: String },
    #[error("{location}: {why}")]
    Invalid { location: String, why: String },
    /// An option of the importers (a stage's target, a column override) they do not take.
    #[error("{0}")]
    Option(String),
    /// Stages of the export that no map takes: every one, as the block that maps them.
    #[error("{0}")]
    Unmapped(String),
}

/// Where a CRM stage leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Stage(String),
    Won,
    Lost,
}

impl Target {
    /// A stage map's value (`[import.stages]`, `[hubspot.stages]`): `won`, `lost` or a stage of
    /// `pipeline`.
    pub fn parse(text: &str, pipeline: &Pipeline) -> Result<Target, ImportError> {
        match text {
            "won" => Ok(Target::Won),
            "lost" => Ok(Target::Lost),
            stage if pipeline.index(stage).is_some() => Ok(Target::Stage(stage.to_string())),
            _ => Err(ImportError::Option(format!(
                "not a pipeline stage, `won` or `lost` (the pipeline: {})",
                pipeline.names()
            ))),
        }
    }
}

/// What every importer needs beside its files.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub pipeline: Pipeline,
    /// CRM stage names to targets (`[import.stages]` of dealledger.toml).
    pub stages: BTreeMap<String, Target>,
    /// Column overrides: the importer's key (e.g. `deal_id`) to the file's header.
    pub columns: BTreeMap<String, String>,
}

impl Options {
    /// A column override as `KEY=HEADER` (`ingest --column`).
    pub fn set_column(&mut self, pair: &str) -> Result<(), ImportError> {
        let (key, header) = pair
            .split_once('=')
            .ok_or_else(|| ImportError::Option(format!("`{pair}`: expected KEY=HEADER")))?;
        self.columns.insert(key.to_string(), header.to_string());
        Ok(())
    }
}

/// The importers' options from `[import]` of a dealledger.toml: `stages` (CRM stage name to a
/// pipeline stage, `won` or `lost`) and `columns` (importer key to header). Stages are checked
/// against `pipeline`.
pub fn options_from_config(config: &Config, pipeline: Pipeline) -> Result<Options, ConfigError> {
    let mut options = Options { pipeline, ..Options::default() };
    if let Some(section) = config.import.clone() {
        for (name, target) in section.stages {
            let target = Target::parse(&target, &options.pipeline)
                .map_err(|why| config.refused(format!("[import.stages] `{name}` = `{target}`: {why}")))?;
            options.stages.insert(name, target);
        }
        options.columns = section.columns;
    }
    Ok(options)
}

impl Options {
    /// A CRM stage name's target: the configured map first, then a pipeline stage of that name,
    /// then `fallback` (the importer's standard names); None when none takes it.
    fn target(&self, name: &str, fallback: impl Fn(&str) -> Option<Target>) -> Option<Target> {
        if let Some(target) = self.stages.get(name) {
            return Some(target.clone());
        }
        if self.pipeline.index(name).is_some() {
            return Some(Target::Stage(name.to_string()));
        }
        fallback(name)
    }
}

/// A CSV file read whole, with its header, and the columns an importer asked for.
struct Table {
    path: String,
    headers: Vec<String>,
    /// (line number, fields).
    records: Vec<(u64, csv::StringRecord)>,
}

impl Table {
    fn read(path: &Path) -> Result<Table, ImportError> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path)
            .map_err(|e| ImportError::Read { path: name.clone(), why: e.to_string() })?;
        Table::from_reader(name, file)
    }

    /// A CSV read from `reader`, called `name` in messages. Files are read through here; the
    /// property tests feed it bytes, with no file in between.
    fn from_reader(name: String, reader: impl std::io::Read) -> Result<Table, ImportError> {
        let read_error = |why: String| ImportError::Read { path: name.clone(), why };
        let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(reader);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| read_error(e.to_string()))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_string())
            .collect();
        let mut records = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| read_error(e.to_string()))?;
            let line = record.position().map_or(0, |p| p.line());
            records.push((line, record));
        }
        Ok(Table { path: name, headers, records })
    }

    fn has(&self, header: &str) -> bool {
        self.headers.iter().any(|h| h == header)
    }

    /// The index of the column for `key` (its override, else `default`).
    fn column(&self, options: &Options, key: &str, default: &str) -> Result<usize, ImportError> {
        let header = options.columns.get(key).map_or(default, String::as_str);
        self.headers.iter().position(|h| h == header).ok_or_else(|| ImportError::Invalid {
            location: format!("{}:1", self.path),
            why: format!(
                "no column `{header}` (for {key}); the header has {}. Set [import.columns] {key} = \"...\" or --column {key}=HEADER",
                self.headers.join(", ")
            ),
        })
    }

    fn location(&self, line: u64) -> String {
        format!("{}:{line}", self.path)
    }
}

/// The files of `ingest`'s inputs: CRM exports are read from files (an importer tells them
/// apart by header, reading each whole), never from standard input.
pub fn files_of(inputs: &[String]) -> Result<Vec<PathBuf>, ImportError> {
    if inputs.iter().any(|i| i == "-") {
        return Err(ImportError::Option("CRM exports are read from files, not standard input".into()));
    }
    Ok(inputs.iter().map(PathBuf::from).collect())
}

/// Reads every file, so an importer can tell them apart by header.
fn read_all(files: &[PathBuf]) -> Result<Vec<Table>, ImportError> {
    files.iter().map(|f| Table::read(f)).collect()
}

/// Where an error about the inputs as a whole points: the first file.
fn first_location(tables: &[Table]) -> String {
    tables.first().map_or("(no file)".into(), |t| t.path.clone())
}

/// Sets `key` of an event line under construction (always an object: `json!({...})`).
fn set(event: &mut serde_json::Value, key: &str, value: serde_json::Value) {
    if let Some(object) = event.as_object_mut() {
        object.insert(key.to_string(), value);
    }
}

fn cell(record: &csv::StringRecord, column: usize) -> &str {
    record.get(column).unwrap_or("").trim()
}

/// A valid deal id from a CRM id: the id if it is valid, else an error naming it.
fn deal_id(raw: &str) -> Result<String, String> {
    dealledger_events::DealId::parse(raw).map(|_| raw.to_string()).map_err(|why| format!("deal id {why}"))
}

impl Imported {
    /// The skipped rows counted by kind (the kinds docs/importers.md lists), in name order.
    pub fn skipped_by_kind(&self) -> BTreeMap<&'static str, u64> {
        let mut by_kind = BTreeMap::new();
        for skipped in &self.skipped {
            *by_kind.entry(skipped.kind).or_default() += 1;
        }
        by_kind
    }
}

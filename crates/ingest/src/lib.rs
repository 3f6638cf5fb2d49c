//! dealledger's ingest: event lines into the ledger, as one batch, all or nothing by default.
//! JSON Lines files ([`run`]) or the rows an importer made ([`run_rows`]); with `skip_invalid`,
//! what is refused is kept in a rejects file of JSON lines (location, rule, field, reason, and
//! for JSON Lines the line itself), synced like the events, for a person to fix and retry.
//!
//! Two threads: a reader reads each input in large chunks and parses its lines (the JSON work),
//! the caller's thread admits them in order and seals blocks (the rules and compression). The
//! channel between them is bounded, so memory stays flat whatever the input size; what does grow
//! is the sealed, compressed blocks of an all-or-nothing batch, about 10 to 30 bytes an event.
//!
//! Boundary: knows files and the ledger; not flags, exit codes or the data directory (the binary
//! wires those).

use dealledger_events::{parse_line, Clock, Rejection, Rule, Submission};
use dealledger_log::files::NewFile;
use dealledger_log::{BlockStore, Ledger};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

/// Bytes read from an input at a time.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Parsed chunks waiting for the admitting thread, at most.
const CHUNKS_IN_FLIGHT_MAX: usize = 4;

/// Bytes of the rejects file, at most, by default: a record is about 100 bytes plus its line,
/// so a file of nothing but bad lines (the wrong file, the wrong format) would otherwise write
/// tens of times its own size. Past it the ingest stops and stores nothing.
pub const REJECTS_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;

pub struct Options {
    /// Paths, or `-` for standard input.
    pub inputs: Vec<String>,
    pub skip_invalid: bool,
    pub rejects: Option<PathBuf>,
    /// The rejects file's size, at most (`--rejects-bytes-max`).
    pub rejects_bytes_max: u64,
    pub progress: bool,
}

impl Options {
    /// One file, all or nothing, no rejects file, no progress bar: what the demo and the bench
    /// ingest.
    pub fn one_file(path: &std::path::Path) -> Options {
        Options {
            inputs: vec![path.display().to_string()],
            skip_invalid: false,
            rejects: None,
            rejects_bytes_max: REJECTS_BYTES_MAX_DEFAULT,
            progress: false,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    pub ingested: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub lines: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub head_seq: u64,
    /// Import rows that map to no event (reported, never guessed).
    pub skipped: u64,
}

impl Report {
    pub fn events_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            (self.ingested + self.duplicates) as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The report as `ingest --output csv` prints it: a header and one row.
    pub fn to_csv(&self) -> String {
        format!(
            "ingested,duplicates,rejected,seconds,events_per_second,head_seq\n{},{},{},{:.3},{:.0},{}\n",
            self.ingested,
            self.duplicates,
            self.rejected,
            self.seconds,
            self.events_per_second(),
            self.head_seq
        )
    }

    /// The report as `ingest --output json` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ingested": self.ingested,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "seconds": self.seconds,
            "events_per_second": self.events_per_second().round(),
            "head_seq": self.head_seq,
            "skipped": self.skipped,
        })
    }
}

/// An invalid line in an all-or-nothing ingest: nothing was stored.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {rejection}{}", hint(rejection))]
pub struct InvalidLine {
    pub location: String,
    pub rejection: Rejection,
}

/// What a rejection most often means when a file is ingested.
fn hint(rejection: &Rejection) -> &'static str {
    match rejection.rule {
        // A file loaded again is all duplicates; an opening that is refused differs from the
        // stored one, which is what a second export of the same deals looks like.
        Rule::AlreadyOpened => {
            "; was this file loaded before? An event sent again is a duplicate only when it is \
             the same event (the same source_id, or without one the same deal, type, time and \
             fields), and this opening differs from the stored one"
        }
        _ => "",
    }
}

/// Why an ingest stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot open {name}")]
    Open { name: String, source: std::io::Error },
    #[error("cannot read {name}")]
    Read { name: String, source: std::io::Error },
    #[error("{location}: line is longer than {} bytes [too_large]", dealledger_events::json::LINE_BYTES_MAX)]
    LineTooLong { location: String },
    #[error(transparent)]
    Invalid(#[from] InvalidLine),
    #[error("cannot create rejects file {path}")]
    CreateRejects { path: String, source: std::io::Error },
    #[error("cannot write the rejects file")]
    WriteRejects { source: std::io::Error },
    #[error("{location}: the rejects file would pass {bytes_max} bytes (--rejects-bytes-max) after {rejected} rejected lines; nothing was stored. Is this the file and --format you meant? If so, raise --rejects-bytes-max")]
    RejectsFull { location: String, rejected: u64, bytes_max: u64 },
    #[error("{0}")]
    Thread(String),
    #[error(transparent)]
    Log(#[from] dealledger_log::LogError),
}

type Result<T, E = IngestError> = std::result::Result<T, E>;

/// The record of one rejected line or row in the rejects file.
fn reject_record(location: &str, rejection: &Rejection, line: Option<&str>) -> serde_json::Value {
    let mut record = serde_json::json!({
        "location": location,
        "rule": rejection.rule.as_str(),
        "field": rejection.field,
        "reason": rejection.to_string(),
    });
    if let Some(line) = line {
        record["line"] = line.into();
    }
    record
}

/// The rejects file, being written: at its path only once the batch is about to commit (a
/// failed ingest leaves none), and never through a link planted there; at most `bytes_max`.
struct Rejects {
    out: std::io::BufWriter<NewFile>,
    bytes: u64,
    bytes_max: u64,
}

fn create_rejects(options: &Options) -> Result<Option<Rejects>> {
    let Some(path) = &options.rejects else { return Ok(None) };
    let file = NewFile::create(path)
        .map_err(|source| IngestError::CreateRejects { path: path.display().to_string(), source })?;
    Ok(Some(Rejects { out: std::io::BufWriter::new(file), bytes: 0, bytes_max: options.rejects_bytes_max }))
}

/// Writes the record of the `rejected`th rejected line, at `location`, unless the file would
/// then pass its limit.
fn write_reject(
    rejects: &mut Rejects,
    record: &serde_json::Value,
    location: &str,
    rejected: u64,
) -> Result<()> {
    let text = record.to_string();
    let bytes = rejects.bytes.saturating_add(text.len() as u64 + 1);
    if bytes > rejects.bytes_max {
        return Err(IngestError::RejectsFull {
            location: location.to_string(),
            rejected,
            bytes_max: rejects.bytes_max,
        });
    }
    rejects.bytes = bytes;
    writeln!(rejects.out, "{text}").map_err(|source| IngestError::WriteRejects { source })
}

/// A parsed line: its number, its bytes in the chunk, and what the parser made of it.
type Line = (u64, std::ops::Range<usize>, Result<Submission, Rejection>);

struct Parsed {
    input: usize,
    /// The raw chunk, for writing rejected lines out as they were.
    chunk: Vec<u8>,
    lines: Vec<Line>,
}

/// The chunk's lines parsed, and the number of the line after its last.
fn parse_chunk(input: usize, chunk: Vec<u8>, first_line: u64) -> (Parsed, u64) {
    let mut lines = Vec::with_capacity(chunk.len() / 128);
    let mut start = 0;
    let mut number = first_line;
    while start < chunk.len() {
        let end = memchr::memchr(b'\n', &chunk[start..]).map_or(chunk.len(), |i| start + i);
        let mut text_end = end;
        if text_end > start && chunk[text_end - 1] == b'\r' {
            text_end -= 1;
        }
        let bytes = &chunk[start..text_end];
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            let result = match std::str::from_utf8(bytes) {
                Ok(text) => parse_line(text),
                Err(e) => Err(Rejection::new(Rule::MalformedJson, format!("line is not UTF-8 ({e})"))),
            };
            lines.push((number, start..text_end, result));
        }
        number += 1;
        start = end + 1;
    }
    (Parsed { input, chunk, lines }, number)
}

fn open_input(name: &str) -> Result<Box<dyn Read + Send>> {
    if name == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let file =
        std::fs::File::open(name).map_err(|source| IngestError::Open { name: name.to_string(), source })?;
    Ok(Box::new(file))
}

/// Reads every input in order, sending parsed chunks; ends at the first I/O error.
fn read_inputs(
    inputs: &[String],
    sender: mpsc::SyncSender<Result<Parsed>>,
    progress: Option<indicatif::ProgressBar>,
) {
    for (index, name) in inputs.iter().enumerate() {
        let mut reader = match open_input(name) {
            Ok(reader) => reader,
            Err(e) => {
                let _ = sender.send(Err(e));
                return;
            }
        };
        let mut carry: Vec<u8> = Vec::new();
        let mut line = 1u64;
        loop {
            let mut chunk = std::mem::take(&mut carry);
            let filled = chunk.len();
            chunk.resize(filled + CHUNK_BYTES, 0);
            let n = match read_full(&mut reader, &mut chunk[filled..]) {
                Ok(n) => n,
                Err(e) => {
                    let _ = sender.send(Err(IngestError::Read { name: name.to_string(), source: e }));
                    return;
                }
            };
            chunk.truncate(filled + n);
            if let Some(bar) = &progress {
                bar.inc(n as u64);
            }
            let eof = n == 0;
            if !eof {
                // Keep the partial last line for the next chunk.
                match memchr::memrchr(b'\n', &chunk) {
                    Some(last) => carry = chunk.split_off(last + 1),
                    None => {
                        carry = chunk;
                        if carry.len() > dealledger_events::json::LINE_BYTES_MAX * 2 {
                            let location = format!("{name}:{line}");
                            let _ = sender.send(Err(IngestError::LineTooLong { location }));
                            return;
                        }
                        continue;
                    }
                }
            }
            let (parsed, next_line) = parse_chunk(index, chunk, line);
            line = next_line;
            if sender.send(Ok(parsed)).is_err() {
                return;
            }
            if eof {
                break;
            }
        }
    }
}

fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut total = 0;
    while total < buf.len() {
        match reader.read(&mut buf[total..]) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

fn location(inputs: &[String], input: usize, line: u64) -> String {
    let name = if inputs[input] == "-" { "<stdin>" } else { inputs[input].as_str() };
    format!("{name}:{line}")
}

/// Ingests the inputs as one batch. All or nothing unless `skip_invalid`; durable on return.
pub fn run<S: BlockStore>(ledger: &mut Ledger<S>, clock: &dyn Clock, options: &Options) -> Result<Report> {
    let started = Instant::now();
    let total_bytes: u64 = options
        .inputs
        .iter()
        .filter(|name| *name != "-")
        .filter_map(|name| std::fs::metadata(name).ok())
        .map(|m| m.len())
        .sum();
    let progress = (options.progress && total_bytes > 8 * 1024 * 1024).then(|| {
        let bar = indicatif::ProgressBar::new(total_bytes);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec} eta {eta}",
            )
            .expect("valid template"),
        );
        bar
    });
    let mut rejects = create_rejects(options)?;
    let (sender, receiver) = mpsc::sync_channel(CHUNKS_IN_FLIGHT_MAX);
    let inputs = options.inputs.clone();
    let reader_bar = progress.clone();
    let reader = std::thread::Builder::new()
        .name("ingest-reader".into())
        .spawn(move || read_inputs(&inputs, sender, reader_bar))
        .map_err(|e| IngestError::Thread(format!("cannot start the reader thread: {e}")))?;

    let mut report = Report::default();
    let mut batch = ledger.batch(clock);
    let mut failure: Option<IngestError> = None;
    'chunks: for parsed in receiver.iter() {
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        report.bytes += parsed.chunk.len() as u64;
        for (line, range, result) in parsed.lines {
            report.lines += 1;
            let outcome = result.and_then(|submission| batch.push(submission));
            match outcome {
                Ok(dealledger_log::Outcome::Appended { .. }) => {}
                Ok(dealledger_log::Outcome::Duplicate { .. }) => {}
                Err(rejection) => {
                    let location = location(&options.inputs, parsed.input, line);
                    if !options.skip_invalid {
                        failure = Some(InvalidLine { location, rejection }.into());
                        break 'chunks;
                    }
                    report.rejected += 1;
                    if let Some(out) = rejects.as_mut() {
                        let text = String::from_utf8_lossy(&parsed.chunk[range]);
                        let record = reject_record(&location, &rejection, Some(&text));
                        if let Err(e) = write_reject(out, &record, &location, report.rejected) {
                            failure = Some(e);
                            break 'chunks;
                        }
                    }
                }
            }
        }
    }
    drop(receiver);
    reader.join().map_err(|_| IngestError::Thread("the reader thread panicked".into()))?;
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    if let Some(e) = failure {
        // Dropping the batch undoes everything it admitted: nothing is stored.
        drop(batch);
        return Err(e);
    }
    finish(batch, rejects, report, started)
}

/// Admits what an importer produced as one batch: all or nothing unless `skip_invalid`, exactly
/// like JSON Lines; durable on return.
pub fn run_rows<S: BlockStore>(
    ledger: &mut Ledger<S>,
    clock: &dyn Clock,
    imported: dealledger_import::Imported,
    options: &Options,
) -> Result<Report> {
    let started = Instant::now();
    let mut rejects = create_rejects(options)?;
    let mut report = Report { skipped: imported.skipped.len() as u64, ..Report::default() };
    let mut batch = ledger.batch(clock);
    for row in imported.rows {
        report.lines += 1;
        if let Err(rejection) = row.result.and_then(|submission| batch.push(submission)) {
            if !options.skip_invalid {
                // Dropping the batch undoes everything it admitted: nothing is stored.
                return Err(InvalidLine { location: row.location, rejection }.into());
            }
            report.rejected += 1;
            if let Some(out) = rejects.as_mut() {
                write_reject(
                    out,
                    &reject_record(&row.location, &rejection, None),
                    &row.location,
                    report.rejected,
                )?;
            }
        }
    }
    finish(batch, rejects, report, started)
}

/// Flushes and syncs the rejects file, commits the batch (durable on return) and completes the report.
fn finish<S: BlockStore>(
    batch: dealledger_log::Batch<'_, S>,
    rejects: Option<Rejects>,
    mut report: Report,
    started: Instant,
) -> Result<Report> {
    if let Some(out) = rejects {
        // The rejected lines are what a person retries from: kept as durably as the events.
        out.out
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(NewFile::commit)
            .map_err(|source| IngestError::WriteRejects { source })?;
    }
    let committed = batch.commit()?;
    report.ingested = committed.appended;
    report.duplicates = committed.duplicates;
    report.head_seq = committed.head.seq;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

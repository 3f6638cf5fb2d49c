//! `dealledger`: the command line. Thin by design: parses flags, opens the data directory, calls
//! the libraries, prints, and maps errors to exit codes. No rule of the ledger lives here.
//!
//! Exit codes: 0 success; 1 error (I/O, usage of the data directory, ...); 2 bad flags;
//! 3 invalid input (nothing stored); 4 conflict (version or idempotency; nothing stored);
//! 5 the log failed verification (corrupt, or shorter than what was acknowledged).

/// `print!` that returns its error instead of panicking: a closed pipe (`report ... | head -1`)
/// comes back to `main` as an error, which makes it a clean exit. Every command's output goes
/// through these two.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        write!(stdout, $($arg)*).and_then(|()| stdout.flush())?
    }};
}

/// `println!` that returns its error: see [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, $($arg)*).and_then(|()| stdout.flush())?
    }};
}

mod audit;
mod client;
mod data;
use data::Settings as _;
mod demo;
mod export;
mod html;
mod migrate;
mod quarantine;
mod report;
mod sync;
mod whatif;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use data::DataDir;
use dealledger_ingest::IngestError;
use std::io::Write;
use std::path::PathBuf;

// Why not the system allocator: reports fold millions of deals into fresh per-core buffers, and
// glibc hands large blocks back to the kernel on free, so each report paid the page faults again
// (a cold time-in-stage on 10 M events: 76 ms with glibc, 27 ms with mimalloc; warm runs equal).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dealledger",
    version,
    about = "An event-sourced deal ledger for B2B sales teams",
    long_about = "An event-sourced deal ledger for B2B sales teams.\n\n\
        Every fact about a deal is an immutable event in an append-only, hash-chained log; \
        pipeline, time in stage, KPIs and audits are derived by replaying it.\n\n\
        First look: `dealledger demo`. Event format: docs/events.md.",
    after_help = "Exit codes: 0 ok, 1 error, 2 bad flags, 3 invalid input (nothing stored), \
        4 conflict (nothing stored), 5 log failed verification or lost acknowledged events.\nLogs: RUST_LOG=info (or debug) to stderr."
)]
struct Cli {
    /// Data directory (holds store/ and dealledger.toml)
    #[arg(long, global = true, env = "DEALLEDGER_DATA", value_name = "DIR")]
    data: Option<PathBuf>,

    /// Pretend it is this moment (RFC 3339): the default --as-of / --known-at and the default
    /// recorded_at of ingested events. For tests and reproducible reports.
    #[arg(long, global = true, env = "DEALLEDGER_NOW", value_name = "TIME", hide_short_help = true)]
    now: Option<String>,

    /// Ask a running daemon instead of opening the data directory (report, whatif --rule): its URL, e.g.
    /// http://127.0.0.1:7878. The token comes from DEALLEDGER_TOKEN or [serve] token
    #[arg(long, global = true, env = "DEALLEDGER_SERVER", value_name = "URL")]
    server: Option<String>,

    /// Where the log lives, when not in the data directory: a NATS JetStream cluster,
    /// nats://HOST:PORT[,HOST:PORT...]/LEDGER (tls://... for TLS). Default: [store] url of
    /// dealledger.toml, else sled in DIR/store. Credentials: [store] credentials,
    /// DEALLEDGER_NATS_CREDS or DEALLEDGER_NATS_TOKEN (docs/scale-out.md)
    #[arg(long, global = true, env = "DEALLEDGER_STORE", value_name = "URL")]
    store: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Append JSON Lines events, all or nothing (docs/events.md)
    Ingest(IngestArgs),
    /// Size of the ledger: events, deals, head sequence, bytes on disk
    Stats {
        #[arg(long, value_parser = crate::format_parser(), default_value = "table")]
        format: Format,
    },
    /// Rebuild every projection from the log from scratch
    Replay,
    /// Run the ingest daemon: HTTP events with group commit, live tail, reports, HubSpot
    /// webhooks ([serve] and [hubspot] in dealledger.toml; docs/daemon.md)
    Serve(ServeArgs),
    /// Reports on the pipeline, time in stage, KPIs, cost of bad deals, flags (docs/metrics.md)
    Report {
        #[command(subcommand)]
        command: report::ReportCommand,
    },
    /// The log and the timeline's tables (events, deals, stage_visits, touches) as Parquet or
    /// CSV files for a warehouse (docs/export.md)
    Export(export::ExportArgs),
    /// Pull a CRM's history through its API, since the last run (docs/importers.md)
    Sync {
        #[command(subcommand)]
        command: sync::SyncCommand,
    },
    /// Backtest a disqualification policy on the real history: what it saves, which wins it
    /// throws away (docs/whatif.md)
    Whatif(whatif::WhatIfArgs),
    /// HubSpot notifications that could not be admitted yet (docs/daemon.md, HubSpot)
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// Inspect and prove the log
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// After the store lost acknowledged events (a disk that ignored fsync, a restore from an
    /// old copy): accept the loss, on the record, so that the ledger writes again. Never
    /// automatic (README, Durability)
    Recover(RecoverArgs),
    /// Print a realistic synthetic history as JSON Lines
    Gen {
        /// Deals to generate
        #[arg(long, default_value_t = 1000)]
        deals: u64,
        /// Random seed: the same seed gives the same history, byte for byte
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Write to this file instead of standard output
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Generate a sample, ingest it, and print the pipeline: the one-command first look
    Demo {
        /// Deals in the sample
        #[arg(long, default_value_t = 2000)]
        deals: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Measure ingest, replay and bytes on disk on generated logs (not a test: prints figures)
    Bench(BenchArgs),
    /// Copy the whole log to another store (sled to a JetStream stream, or back), block by
    /// block, then verify the copy's chain end to end against the source's head
    /// (docs/scale-out.md)
    Migrate(MigrateArgs),
}

#[derive(Args)]
struct MigrateArgs {
    /// The store to copy to: nats://HOST:PORT/LEDGER (or tls://...), or sled:DIR for a data
    /// directory. It must be empty, or hold a prefix of this log (a migration that stopped
    /// part way goes on where it stopped)
    #[arg(long, value_name = "URL")]
    to: String,
}

#[derive(Args)]
struct BenchArgs {
    /// Log sizes to measure, in events (approximate: whole deals are generated)
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000u64, 10_000_000])]
    events: Vec<u64>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where to put the generated files and stores (default: a temporary directory)
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print the figures as JSON
    #[arg(long)]
    json: bool,
    /// Measure the daemon instead, over real HTTP on loopback: 32 clients sending batches of
    /// 100 events, then 1 client sending one event per request, then (with --daemon-history)
    /// 32 clients again while a what-if sweep runs on a long history, and deal lookups on it
    #[arg(long)]
    daemon: bool,
    /// With --daemon: events of the history the third phase runs on (0 skips it)
    #[arg(long, default_value_t = 1_000_000, value_name = "EVENTS")]
    daemon_history: u64,
    /// With --daemon: the first two phases on sled and on a 3-node NATS JetStream cluster (R3,
    /// syncing before acknowledging) started from nats-server on PATH, alternating, side by side
    #[arg(long, requires = "daemon")]
    jetstream: bool,
    /// Measure `sync hubspot` of DEALS deals against a local HubSpot at HubSpot's limits
    #[arg(long, value_name = "DEALS")]
    sync: Option<u64>,
}

impl From<BenchArgs> for dealledger_bench::Options {
    fn from(a: BenchArgs) -> Self {
        let BenchArgs { events, seed, dir, json, daemon, daemon_history, jetstream, sync } = a;
        dealledger_bench::Options { events, seed, dir, json, daemon, daemon_history, jetstream, sync }
    }
}

#[derive(Args)]
struct IngestArgs {
    /// JSON Lines files; `-` or nothing reads standard input
    #[arg(value_name = "FILE|-")]
    inputs: Vec<String>,
    /// Store the valid lines and write the invalid ones to --rejects (default: all or nothing)
    #[arg(long, requires = "rejects")]
    skip_invalid: bool,
    /// With --skip-invalid: file receiving each rejected line with its location and reason (JSON Lines)
    #[arg(long, value_name = "FILE", requires = "skip_invalid")]
    rejects: Option<PathBuf>,
    /// With --rejects: the rejects file's size, at most; past it the ingest stops and stores
    /// nothing (a file of nothing but bad lines is usually the wrong file or --format)
    #[arg(long, value_name = "BYTES", requires = "rejects", default_value_t = dealledger_ingest::REJECTS_BYTES_MAX_DEFAULT)]
    rejects_bytes_max: u64,
    /// Input format: JSON Lines, or a CRM export (docs/importers.md)
    #[arg(long, value_enum, default_value_t = InputFormat::Jsonl)]
    format: InputFormat,
    /// For CRM exports: read the importer's KEY from the column HEADER (repeatable; also
    /// [import.columns] in dealledger.toml)
    #[arg(long = "column", value_name = "KEY=HEADER")]
    columns: Vec<String>,
    /// Summary format
    #[arg(long = "output", value_parser = crate::format_parser(), default_value = "table")]
    output: Format,
    /// No progress bar even on a terminal
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct RecoverArgs {
    /// Go on without the missing events: the range exactly as the error named it (FIRST..LAST).
    /// New events will be given those sequence numbers again; the loss is recorded in
    /// DATA/losses.jsonl
    #[arg(long, value_name = "FIRST..LAST")]
    accept_loss: Option<String>,
    /// The store is not the one that acknowledged the mark's events (restored from another
    /// ledger): take it as this ledger's store from now on, on the record
    #[arg(long, conflicts_with = "accept_loss")]
    accept_replaced_store: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (default: [serve] listen, else 127.0.0.1:7878; port 0 picks one)
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// File holding the bearer token clients must send (default: [serve] token). Required to
    /// listen on anything but a loopback address
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum InputFormat {
    /// JSON Lines in the event contract of docs/events.md
    Jsonl,
    /// Salesforce OpportunityHistory CSV (plus Opportunity.csv for owners and names)
    SalesforceHistory,
    /// Salesforce Task, Event and EmailMessage CSVs (Data Loader exports, told apart by header):
    /// activities on opportunities as touches, the same as `sync salesforce` gives
    SalesforceActivities,
    /// A field-change log (Pipedrive deal_changes.csv with stages.csv, fields.csv, activity.csv)
    FieldChanges,
    /// One row per opportunity (a CRM report export; the Maven sales_pipeline.csv layout)
    OpportunitiesCsv,
    /// HubSpot's CRM v3 deals pages with propertiesWithHistory (the backfill; stages through
    /// [hubspot.stages], the same events as the webhooks)
    HubspotDeals,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// A deal's full history: seq, version, at, recorded_at, appended_at, appended_by, type, details, actor, source_id
    Deal {
        /// The deal id
        id: String,
        #[arg(long, value_parser = crate::format_parser(), default_value = "table")]
        format: Format,
    },
    /// Prove the log whole and unaltered (checksums, numbering, hash chain); exit 5 if not
    Verify {
        /// Also check the chain against a digest saved earlier by `audit digest`
        #[arg(long, value_name = "FILE")]
        digest: Option<PathBuf>,
    },
    /// Print (head sequence, chain hash) as JSON, to keep elsewhere and check with `verify --digest`
    Digest,
    /// The HubSpot notifications held back (deal never seen, stage not mapped, ...), with why
    Quarantine {
        #[arg(long, value_parser = crate::format_parser(), default_value = "table")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// Admit every quarantined HubSpot notification that can be admitted now (after adding a
    /// stage mapping or backfilling the deal); asks the daemon when it holds the ledger
    Retry {
        #[arg(long, value_parser = crate::format_parser(), default_value = "table")]
        format: Format,
    },
}

pub use dealledger_reports::Format;

/// `--format` (and `ingest --output`): the names of [`Format::as_str`].
fn format_parser() -> impl clap::builder::TypedValueParser<Value = Format> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Format::ALL.map(Format::as_str))
        .map(|name: String| Format::parse(&name).expect("one of the possible values"))
}

/// An error with its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

/// The documented exit code of an error: the one place where the libraries' error kinds become
/// codes (an [`Exit`] is the binary's own, with its code: a flag the binary checked). The first
/// error of the chain (an error, then its sources) that has a code of its own gives it.
fn exit_code(error: &anyhow::Error) -> i32 {
    error.chain().find_map(code_of).unwrap_or(1)
}

fn code_of(error: &(dyn std::error::Error + 'static)) -> Option<i32> {
    use dealledger_datadir::DataError;
    use dealledger_import::ImportError;
    use dealledger_log::LogError;
    let log = |e: &LogError| match e {
        LogError::Fenced(_) => 4,
        e if e.is_verification_failure() => 5,
        _ => 1,
    };
    if let Some(exit) = error.downcast_ref::<Exit>() {
        Some(exit.code)
    } else if let Some(e) = error.downcast_ref::<IngestError>() {
        Some(match e {
            IngestError::Invalid(invalid) if invalid.rejection.rule.is_conflict() => 4,
            IngestError::Invalid(_) => 3,
            IngestError::Log(e) if e.is_verification_failure() => 5,
            _ => 1,
        })
    } else if let Some(e) = error.downcast_ref::<ImportError>() {
        Some(match e {
            ImportError::Option(_) => 2,
            ImportError::Read { .. } | ImportError::Invalid { .. } | ImportError::Unmapped(_) => 3,
        })
    } else if error.downcast_ref::<dealledger_whatif::WhatIfError>().is_some() {
        Some(2)
    } else if let Some(e) = error.downcast_ref::<DataError>() {
        match e {
            DataError::Usage(_) => Some(2),
            DataError::Log(e) => Some(log(e)),
            _ => None,
        }
    } else if let Some(dealledger_export::ExportError::Log(e)) = error.downcast_ref() {
        Some(if e.is_verification_failure() { 5 } else { 1 })
    } else {
        error.downcast_ref::<LogError>().map(log)
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("dealledger-data")
}

fn run(cli: Cli) -> Result<()> {
    let explicit_data = cli.data.is_some();
    let mut data = DataDir::new(cli.data.unwrap_or_else(default_data_dir), cli.store.clone());
    let asks_daemon = match &cli.command {
        Command::Report { .. } => true,
        Command::Whatif(args) => args.can_ask_daemon(),
        _ => false,
    };
    if asks_daemon {
        data.server_retry = Some(dealledger_datadir::command_line_with_server(std::env::args_os().skip(1)));
    }
    let clock: std::sync::Arc<dyn dealledger_events::Clock + Send + Sync> = match &cli.now {
        None => std::sync::Arc::new(dealledger_events::SystemClock),
        Some(text) => std::sync::Arc::new(dealledger_events::FixedClock(
            dealledger_events::Timestamp::parse_instant_or_date(text)
                .map_err(|why| Exit { code: 2, message: format!("--now `{text}`: {why}") })?,
        )),
    };
    if cli.server.is_some() && !matches!(cli.command, Command::Report { .. } | Command::Whatif(_)) {
        return Err(Exit { code: 2, message: "--server applies to `report` and `whatif` only".into() }.into());
    }
    let shared_clock = clock.clone();
    let clock: &dyn dealledger_events::Clock = &*clock;
    match cli.command {
        Command::Ingest(args) => ingest(&data, clock, args),
        Command::Stats { format } => audit::stats(&data, format),
        Command::Replay => audit::replay(&data),
        Command::Report { command } => report::run(&data, clock, cli.server.as_deref(), &command),
        Command::Serve(args) => serve(&data, shared_clock, args),
        Command::Whatif(args) => whatif::run(&data, clock.now(), cli.server.as_deref(), &args),
        Command::Export(args) => export::run(&data, clock, &args),
        Command::Sync { command } => sync::command(&data, clock, &command),
        Command::Audit { command } => match command {
            AuditCommand::Deal { id, format } => audit::deal(&data, &id, format),
            AuditCommand::Verify { digest } => audit::verify(&data, digest.as_deref()),
            AuditCommand::Digest => audit::digest(&data),
            AuditCommand::Quarantine { format } => quarantine::list(&data, format),
        },
        Command::Quarantine { command: QuarantineCommand::Retry { format } } => {
            quarantine::retry(&data, clock, format)
        }
        Command::Recover(args) => {
            let accept = dealledger_datadir::Acceptance {
                loss: args.accept_loss.as_deref(),
                replaced_store: args.accept_replaced_store,
            };
            audit::recover(&data, clock, accept)
        }
        Command::Gen { deals, seed, out } => {
            let config = dealledger_gen::Config::new(seed, deals);
            match &out {
                Some(path) => {
                    let failed = |e: std::io::Error| anyhow::anyhow!("cannot write {}: {e}", path.display());
                    let mut file = dealledger_log::files::NewFile::create(path).map_err(failed)?;
                    dealledger_gen::write_jsonl(&config, &mut file).map_err(failed)?;
                    file.commit().map_err(failed)?;
                }
                None => {
                    dealledger_gen::write_jsonl(&config, std::io::stdout().lock())?;
                }
            }
            Ok(())
        }
        Command::Demo { deals, seed } => demo::run(&data, clock, explicit_data, deals, seed),
        Command::Bench(args) => dealledger_bench::run(&args.into()),
        Command::Migrate(args) => migrate::run(&data, &args.to),
    }
}

/// `dealledger ingest`: JSON Lines, or a CRM export through its importer, into the ledger.
fn ingest(data: &DataDir, clock: &dyn dealledger_events::Clock, args: IngestArgs) -> Result<()> {
    let inputs = if args.inputs.is_empty() { vec!["-".to_string()] } else { args.inputs };
    let _lock = data.lock_writer("dealledger ingest")?;
    let options = dealledger_ingest::Options {
        inputs,
        skip_invalid: args.skip_invalid,
        rejects: args.rejects,
        rejects_bytes_max: args.rejects_bytes_max,
        progress: !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let mut skipped_by_kind = std::collections::BTreeMap::new();
    let report = match args.format {
        InputFormat::Jsonl => {
            let mut ledger = data.open_ledger()?;
            dealledger_ingest::run(&mut ledger, clock, &options)?
        }
        format => {
            let imported = import(data, format, &options.inputs, &args.columns, clock.now())?;
            skipped_by_kind =
                imported.skipped_by_kind().into_iter().map(|(k, n)| (k.to_string(), n)).collect();
            let mut ledger = data.open_ledger()?;
            dealledger_ingest::run_rows(&mut ledger, clock, imported, &options)?
        }
    };
    print_ingest(&report, &skipped_by_kind, args.output)?;
    if report.rejected > 0 {
        eprintln!(
            "{} invalid lines were not stored; see {}",
            report.rejected,
            options.rejects.as_ref().map_or("the rejects file".into(), |p| p.display().to_string())
        );
    }
    Ok(())
}

/// Reads a CRM export with its importer; reports the rows it skipped on stderr.
fn import(
    data: &DataDir,
    format: InputFormat,
    inputs: &[String],
    columns: &[String],
    now: dealledger_events::Timestamp,
) -> Result<dealledger_import::Imported> {
    let mut options = data.import_options()?;
    for pair in columns {
        options.set_column(pair).map_err(|why| Exit { code: 2, message: format!("--column {why}") })?;
    }
    let files = dealledger_import::files_of(inputs)?;
    let imported = match format {
        InputFormat::SalesforceHistory => dealledger_import::salesforce::import(&files, &options),
        InputFormat::FieldChanges => dealledger_import::field_changes::import(&files, &options),
        InputFormat::OpportunitiesCsv => dealledger_import::opportunities::import(&files, &options),
        InputFormat::SalesforceActivities => dealledger_import::salesforce_activities::import(&files, now),
        InputFormat::HubspotDeals => {
            let hubspot = data.hubspot("the HubSpot backfill")?;
            dealledger_import::hubspot::import(&files, &options.pipeline, &hubspot.mapping())
        }
        InputFormat::Jsonl => unreachable!("JSON Lines does not go through an importer"),
    }?;
    if let Some(summary) = imported.skipped_summary(10) {
        eprintln!("{summary}");
    }
    Ok(imported)
}

fn serve(
    data: &DataDir,
    clock: std::sync::Arc<dyn dealledger_events::Clock + Send + Sync>,
    args: ServeArgs,
) -> Result<()> {
    let mut config = data.serve_config()?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(path) = &args.token_file {
        let token = dealledger_server::config::token_from_file(path);
        config.token = Some(token.map_err(|e| Exit { code: 2, message: e.to_string() })?);
    }
    config.quarantine_path = Some(data.quarantine_path());
    config.sync.hubspot_state_path = Some(data.sync_state_path("hubspot"));
    config.sync.salesforce_state_path = Some(data.sync_state_path("salesforce"));
    config.config_path = Some(data.config_path());
    let pipeline = data.pipeline()?;
    let settings = data.settings()?;
    // sled: this daemon is the only writer (the data directory's lock). A shared store: the
    // daemon that holds the lease writes, the others stand by; the lease names the holder by
    // the address it listens on (known once bound, for port 0).
    let (mut lock, writing) = match data.is_sled()? {
        true => (Some(data.lock_writer("dealledger serve")?), dealledger_server::Writing::Sole),
        false => {
            let lease = data
                .lease(data::holder_description("dealledger serve", None), true)?
                .ok_or_else(|| anyhow::anyhow!("a shared store has a lease"))?;
            let holder = Box::new(|addr: std::net::SocketAddr| {
                data::holder_description("dealledger serve", Some(&format!("http://{addr}")))
            });
            (None, dealledger_server::Writing::Leased { lease: std::sync::Arc::new(lease), holder })
        }
    };
    // The quarantine file goes here: the directory is made durably, like every file the ledger
    // makes (sled: the writer lock made it already).
    data.ensure()?;
    let store = data.open_store(true)?;
    let mut described = Ok(());
    let stopped = dealledger_server::run(
        store,
        writing,
        pipeline,
        settings,
        config,
        clock,
        |addr| {
            let url = format!("http://{addr}");
            if let Some(lock) = lock.as_mut() {
                described = lock.describe(Some(&url));
            }
            // Scripts and tests read this line to learn the port when listening on port 0.
            let _ =
                writeln!(std::io::stdout(), "listening on {url}").and_then(|()| std::io::stdout().flush());
        },
        dealledger_server::signal(),
    )?;
    described?;
    eprintln!("stopped; head seq {}", stopped.head.seq);
    Ok(())
}

/// The summary of an ingest; `skipped_by_kind`: an importer's skipped rows by kind (JSON
/// `skipped_by_kind`; the table's words are on stderr already, with examples).
fn print_ingest(
    report: &dealledger_ingest::Report,
    skipped_by_kind: &std::collections::BTreeMap<String, u64>,
    format: Format,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let mut json = report.to_json();
            json["skipped_by_kind"] = serde_json::json!(skipped_by_kind);
            writeln!(out, "{json}")?
        }
        Format::Csv => write!(out, "{}", report.to_csv())?,
        Format::Table => writeln!(
            out,
            "ingested {} events, {} duplicates skipped, {} rejected in {:.2} s ({} events/s); head seq {}",
            dealledger_reports::output::thousands(report.ingested),
            dealledger_reports::output::thousands(report.duplicates),
            dealledger_reports::output::thousands(report.rejected),
            report.seconds,
            dealledger_reports::output::thousands(report.events_per_second() as u64),
            dealledger_reports::output::thousands(report.head_seq)
        )?,
    }
    Ok(())
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(error) = run(cli) {
        // A closed pipe (`dealledger gen | head`) is a normal end, not an error.
        if error.chain().any(|cause| {
            cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        }) {
            std::process::exit(0);
        }
        let code = exit_code(&error);
        let mut message = format!("error: {error}");
        for cause in error.chain().skip(1) {
            message.push_str(&format!(": {cause}"));
        }
        eprintln!("{message}");
        if code == 3 || code == 4 {
            eprintln!("nothing was stored");
        }
        std::process::exit(code);
    }
}

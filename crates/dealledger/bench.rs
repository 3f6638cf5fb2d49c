//! `dealledger bench`: ingest, replay and size figures on generated logs. A measurement, not a
//! test: it prints what this machine does and asserts nothing about speed.

use crate::data::DataDir;
use crate::table::{thousands, Align, Table};
use anyhow::{Context, Result};
use clap::Args;
use dealledger_log::BlockStore;
use dealledger_projections::{rebuild, Timeline};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct BenchArgs {
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
}

#[derive(serde::Serialize)]
struct Figures {
    events: u64,
    deals: u64,
    jsonl_bytes: u64,
    ingest_seconds: f64,
    ingest_events_per_second: f64,
    open_seconds: f64,
    scan_events_per_second: f64,
    replay_events_per_second: f64,
    verify_events_per_second: f64,
    bytes_on_disk: u64,
    bytes_per_event: f64,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let temp = tempfile::tempdir()?;
    let root = args.dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let mut all = Vec::new();
    for &target in &args.events {
        let deals = (target / dealledger_gen::EVENTS_PER_DEAL_APPROX).max(1);
        let dir = root.join(format!("bench-{target}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("events.jsonl");
        eprintln!(
            "generating ~{} events ({} deals) into {}",
            thousands(target),
            thousands(deals),
            file.display()
        );
        let events = crate::demo::write_jsonl(
            &dealledger_gen::Config::new(args.seed, deals),
            Box::new(std::fs::File::create(&file)?),
        )?;
        let jsonl_bytes = std::fs::metadata(&file)?.len();
        let data = DataDir::new(dir.join("data"));

        eprintln!("ingesting {}", thousands(events));
        let mut ledger = data.open_ledger()?;
        let options = crate::ingest::Options {
            inputs: vec![file.display().to_string()],
            skip_invalid: false,
            rejects: None,
            progress: false,
        };
        let report = crate::ingest::run(&mut ledger, &dealledger_events::SystemClock, &options)?;
        drop(ledger);

        eprintln!("reopening the writer, scanning, replaying, verifying");
        let started = Instant::now();
        let ledger = data.open_ledger()?;
        let open_seconds = started.elapsed().as_secs_f64();
        drop(ledger);
        let log = data.open_log()?;
        let started = Instant::now();
        let mut scanned = 0u64;
        log.scan(1, |_| {
            scanned += 1;
            Ok(true)
        })?;
        let scan_seconds = started.elapsed().as_secs_f64();
        let (_, replay) = rebuild::<Timeline, _>(&log)?;
        let started = Instant::now();
        log.verify(None, |_| {})?;
        let verify_seconds = started.elapsed().as_secs_f64();
        let bytes_on_disk = log.store().bytes_on_disk()?;
        all.push(Figures {
            events,
            deals,
            jsonl_bytes,
            ingest_seconds: report.seconds,
            ingest_events_per_second: report.events_per_second(),
            open_seconds,
            scan_events_per_second: scanned as f64 / scan_seconds,
            replay_events_per_second: replay.events_per_second(),
            verify_events_per_second: events as f64 / verify_seconds,
            bytes_on_disk,
            bytes_per_event: bytes_on_disk as f64 / events as f64,
        });
        drop(log);
        if args.dir.is_none() {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let mut table = Table::new(&[
        ("events", Align::Right),
        ("ingest ev/s", Align::Right),
        ("writer open s", Align::Right),
        ("scan ev/s", Align::Right),
        ("replay ev/s", Align::Right),
        ("verify ev/s", Align::Right),
        ("bytes/event", Align::Right),
        ("jsonl bytes/event", Align::Right),
    ]);
    for f in &all {
        table.row(vec![
            thousands(f.events),
            thousands(f.ingest_events_per_second as u64),
            format!("{:.2}", f.open_seconds),
            thousands(f.scan_events_per_second as u64),
            thousands(f.replay_events_per_second as u64),
            thousands(f.verify_events_per_second as u64),
            format!("{:.1}", f.bytes_per_event),
            format!("{:.0}", f.jsonl_bytes as f64 / f.events as f64),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

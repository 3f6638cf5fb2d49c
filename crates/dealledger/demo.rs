//! `demo`: the one-command first look.

use crate::data::{DataDir, Settings as _};
use anyhow::{Context, Result};
use dealledger_events::Clock;
use dealledger_projections::{catch_up, Timeline, View};
use dealledger_reports::output::thousands;

/// `dealledger demo`: a generated sample ingested into a fresh ledger (a temporary one unless
/// `--data` names an empty one), its pipeline printed and its log verified.
pub fn run(data: &DataDir, clock: &dyn Clock, explicit_data: bool, deals: u64, seed: u64) -> Result<()> {
    let temp;
    let data = if explicit_data {
        if std::fs::read_dir(data.store_path()).is_ok_and(|mut entries| entries.next().is_some()) {
            let log = data.open_log()?;
            if log.head().seq > 0 {
                anyhow::bail!(
                    "{} already holds {} events; the demo needs an empty data directory (or no --data, for a temporary one)",
                    data.path.display(),
                    log.head().seq
                );
            }
        }
        DataDir::new(data.path.clone(), None)
    } else {
        temp = tempfile::tempdir().context("cannot create a temporary directory")?;
        DataDir::new(temp.path().to_path_buf(), None)
    };
    std::fs::create_dir_all(&data.path)?;
    let sample = data.path.join("demo-sample.jsonl");
    let config = dealledger_gen::Config::new(seed, deals);
    let mut file = dealledger_log::files::NewFile::create(&sample)?;
    let events = dealledger_gen::write_jsonl(&config, &mut file)?;
    file.commit()?;
    outln!(
        "Generated {} deals ({} events, seed {seed}) into {}",
        thousands(deals),
        thousands(events),
        sample.display()
    );

    let mut ledger = data.open_ledger()?;
    let options = dealledger_ingest::Options::one_file(&sample);
    let report = dealledger_ingest::run(&mut ledger, clock, &options)?;
    drop(ledger);
    outln!(
        "Ingested {} events in {:.2} s ({} events/s), head seq {}\n",
        thousands(report.ingested),
        report.seconds,
        thousands(report.events_per_second() as u64),
        thousands(report.head_seq)
    );
    let log = data.open_log()?;
    let (timeline, _) = catch_up::<Timeline, _>(&log)?;
    let settings = data.settings()?;
    let now = clock.now();
    let view = View { as_of: now, known_at: now };
    let report = dealledger_reports::pipeline::pipeline(&timeline, &settings, view, None)?;
    outln!("{}", dealledger_reports::render(&report, dealledger_reports::Format::Table));
    let verified = log.verify(None, |_| {})?;
    outln!(
        "audit verify: ok, {} events in {} blocks, chain {}",
        thousands(verified.events),
        verified.blocks,
        verified.head.chain_hex()
    );
    if explicit_data {
        let dir = data.path.display();
        outln!("\nTry next:\n  dealledger --data {dir} stats\n  dealledger --data {dir} audit deal D-0000001\n  dealledger --data {dir} report kpis --from 2025-01-01 --to 2026-01-01\n  dealledger --data {dir} report flags\n  dealledger --data {dir} audit verify");
    } else {
        outln!("\nThis demo used a temporary directory, now removed. To keep the ledger: dealledger --data ./demo-data demo");
    }
    Ok(())
}

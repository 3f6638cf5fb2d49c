//! `gen` and `demo`.

use crate::data::{is_empty_dir, DataDir};
use crate::table::{money, thousands, Align, Table};
use anyhow::{Context, Result};
use dealledger_events::{json, Body, Currency, DealId, Pipeline};
use dealledger_projections::{catch_up, Deals, PipelineSummary};
use std::collections::HashMap;
use std::io::Write;

/// Writes the generated history as JSON Lines; returns the number of events.
pub fn write_jsonl(config: &dealledger_gen::Config, sink: Box<dyn Write>) -> Result<u64> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, sink);
    let mut currencies: HashMap<DealId, Currency> = HashMap::new();
    let mut line = String::with_capacity(512);
    let mut events = 0u64;
    let mut error = None;
    dealledger_gen::generate(config, |event| {
        if error.is_some() {
            return;
        }
        if let Body::Opened { currency, .. } = &event.body {
            currencies.insert(event.deal.clone(), *currency);
        }
        let currency = currencies.get(&event.deal).copied().unwrap_or(Currency::USD);
        line.clear();
        json::write_event_json(&mut line, event, currency, "");
        line.push('\n');
        if let Err(e) = out.write_all(line.as_bytes()) {
            error = Some(e);
        }
        events += 1;
    });
    if let Some(e) = error {
        return Err(e.into());
    }
    out.flush()?;
    Ok(events)
}

/// Weighted amount (minor units x basis points) to a decimal in currency units, rounded half
/// away from zero to the minor unit.
fn weighted_text(currency: Currency, weighted_minor_bp: i128) -> String {
    let minor = (weighted_minor_bp + 5_000) / 10_000;
    money(&currency.format_minor(minor as i64))
}

pub fn pipeline_table(summaries: &[PipelineSummary], pipeline: &Pipeline) -> String {
    let mut out = String::new();
    for summary in summaries {
        let c = summary.currency;
        let mut table = Table::new(&[
            ("stage", Align::Left),
            ("probability", Align::Right),
            ("deals", Align::Right),
            (&format!("amount ({c})"), Align::Right),
            (&format!("weighted ({c})"), Align::Right),
        ]);
        let (mut deals, mut amount, mut weighted) = (0u64, 0i64, 0i128);
        for row in &summary.stages {
            let probability = pipeline.index(&row.stage).map_or("-".to_string(), |i| {
                format!("{}%", pipeline.stages()[i].probability_bp as f64 / 100.0)
            });
            table.row(vec![
                row.stage.clone(),
                probability,
                thousands(row.deals),
                money(&c.format_minor(row.amount_minor)),
                weighted_text(c, row.weighted_minor_bp),
            ]);
            deals += row.deals;
            amount += row.amount_minor;
            weighted += row.weighted_minor_bp;
        }
        table.row(vec![
            "total open".into(),
            String::new(),
            thousands(deals),
            money(&c.format_minor(amount)),
            weighted_text(c, weighted),
        ]);
        out.push_str(&format!("Open pipeline in {c}\n"));
        out.push_str(&table.render());
        out.push_str(&format!(
            "closed: {} won, {} lost, {} disqualified\n\n",
            thousands(summary.won),
            thousands(summary.lost),
            thousands(summary.disqualified)
        ));
    }
    out
}

pub fn run(data: &DataDir, explicit_data: bool, deals: u64, seed: u64) -> Result<()> {
    let temp;
    let data = if explicit_data {
        if data.store_path().exists() && !is_empty_dir(&data.store_path()) {
            let log = data.open_log()?;
            if log.head().seq > 0 {
                anyhow::bail!(
                    "{} already holds {} events; the demo needs an empty data directory (or no --data, for a temporary one)",
                    data.path.display(),
                    log.head().seq
                );
            }
        }
        DataDir::new(data.path.clone())
    } else {
        temp = tempfile::tempdir().context("cannot create a temporary directory")?;
        DataDir::new(temp.path().to_path_buf())
    };
    std::fs::create_dir_all(&data.path)?;
    let sample = data.path.join("demo-sample.jsonl");
    let config = dealledger_gen::Config::new(seed, deals);
    let events = write_jsonl(&config, Box::new(std::fs::File::create(&sample)?))?;
    println!(
        "Generated {} deals ({} events, seed {seed}) into {}",
        thousands(deals),
        thousands(events),
        sample.display()
    );

    let mut ledger = data.open_ledger()?;
    let options = crate::ingest::Options {
        inputs: vec![sample.display().to_string()],
        skip_invalid: false,
        rejects: None,
        progress: false,
    };
    let report = crate::ingest::run(&mut ledger, &dealledger_events::SystemClock, &options)?;
    let pipeline = ledger.pipeline().clone();
    drop(ledger);
    println!(
        "Ingested {} events in {:.2} s ({} events/s), head seq {}\n",
        thousands(report.ingested),
        report.seconds,
        thousands(report.events_per_second() as u64),
        thousands(report.head_seq)
    );
    let log = data.open_log()?;
    let (projection, _) = catch_up::<Deals, _>(&log)?;
    print!("{}", pipeline_table(&projection.pipeline_summary(&pipeline), &pipeline));
    let verified = log.verify(None, |_| {})?;
    println!(
        "audit verify: ok, {} events in {} blocks, chain {}",
        thousands(verified.events),
        verified.blocks,
        verified.head.chain_hex()
    );
    if explicit_data {
        let dir = data.path.display();
        println!("\nTry next:\n  dealledger --data {dir} stats\n  dealledger --data {dir} audit deal D-0000001\n  dealledger --data {dir} audit verify");
    } else {
        println!("\nThis demo used a temporary directory, now removed. To keep the ledger: dealledger --data ./demo-data demo");
    }
    Ok(())
}

//! `dealledger sync hubspot`: the portal's deals, calls, emails and meetings since the last run,
//! into the ledger (docs/importers.md, "sync hubspot").

use crate::data::{DataDir, Settings as _};
use crate::{Exit, Format};
use anyhow::Result;
use clap::{Args, Subcommand};
use dealledger_events::Clock;
use dealledger_server::sync_sink::sync_hubspot;
pub use dealledger_sync::hubspot::Steps;
use std::path::PathBuf;

/// The environment variable that may hold the HubSpot token (a command line shows in `ps`).
const TOKEN_ENV: &str = "DEALLEDGER_HUBSPOT_TOKEN";

#[derive(Subcommand)]
pub enum SyncCommand {
    /// HubSpot's deals with their stage, amount, close date and owner history, and the calls,
    /// emails and meetings on them, changed since the last run (the first run reads
    /// everything). Settings: [hubspot] of dealledger.toml (stages, api_url, pipelines). The
    /// token: a private app's, with crm.objects.deals.read and crm.objects.contacts.read.
    Hubspot(HubSpotArgs),
}

#[derive(Args)]
pub struct HubSpotArgs {
    /// A file holding the private app token (else the environment variable
    /// DEALLEDGER_HUBSPOT_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// table: a summary for people; json: requests, pages, events stored, duplicates, skipped by
    /// kind, cursor.
    #[arg(long, value_parser = crate::format_parser(), default_value = "table")]
    format: Format,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// `sync hubspot` (`steps`: sync then reconcile), or `report reconcile` (reconcile alone).
pub fn run(data: &DataDir, clock: &dyn Clock, args: &HubSpotArgs, steps: Steps) -> Result<()> {
    let what = if steps == Steps::Reconcile { "report reconcile" } else { "sync hubspot" };
    let hubspot = data.hubspot(what)?;
    let token = dealledger_sync::http::Secret::read((args.token_file.as_deref(), "--token-file"), TOKEN_ENV)
        .map_err(|why| Exit { code: 2, message: format!("{what}: {why}") })?;
    let _lock = data.lock_writer(&format!("dealledger {what}"))?;
    data.ensure()?;
    let mut ledger = data.open_ledger()?;
    let mut progress = dealledger_sync::progress_bar(!args.quiet);
    let paths = (data.quarantine_path(), data.sync_state_path("hubspot"));
    let ran = sync_hubspot(&mut ledger, &paths, &hubspot, token, clock, &mut progress, steps)?;
    outln!("{}", ran.summary.text(args.format == Format::Json));
    Ok(ran.result?)
}

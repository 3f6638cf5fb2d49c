//! `dealledger sync hubspot`: the portal's deals, calls, emails and meetings since the last run,
//! into the ledger (docs/importers.md, "sync hubspot").

use crate::data::{DataDir, Settings as _};
use crate::{Exit, Format};
use anyhow::Result;
use clap::{Args, Subcommand};
use dealledger_events::Clock;
use dealledger_server::sync_sink::sync_hubspot;
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

pub fn run(data: &DataDir, clock: &dyn Clock, command: &SyncCommand) -> Result<()> {
    let SyncCommand::Hubspot(args) = command;
    let hubspot = data.hubspot("sync hubspot")?;
    let token = dealledger_sync::http::Secret::read(args.token_file.as_deref(), TOKEN_ENV)
        .map_err(|why| Exit { code: 2, message: format!("sync hubspot: {why}") })?;
    let _lock = data.lock_writer("dealledger sync hubspot")?;
    data.ensure()?;
    let mut ledger = data.open_ledger()?;
    let mut progress = dealledger_sync::progress_bar(!args.quiet);
    let state = data.sync_state_path("hubspot");
    let ran =
        sync_hubspot(&mut ledger, &data.quarantine_path(), &hubspot, token, clock, &state, &mut progress)?;
    match args.format {
        Format::Json => outln!("{}", serde_json::to_value(&ran.summary)?),
        _ => outln!("{}", ran.summary.lines().join("\n")),
    }
    Ok(ran.result?)
}

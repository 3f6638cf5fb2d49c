//! `dealledger sync hubspot` and `sync salesforce`: the CRM's deals and activities since the last
//! run, into the ledger, then the reconciliation (docs/importers.md, "sync hubspot", "sync
//! salesforce"); `report reconcile` runs the reconciliation alone.

use crate::data::{DataDir, Settings as _};
use crate::{Exit, Format};
use anyhow::Result;
use clap::{Args, Subcommand};
use dealledger_events::Clock;
use dealledger_server::sync_sink::{sync_crm, Crm};
pub use dealledger_sync::Steps;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum SyncCommand {
    /// HubSpot's deals with their stage, amount, close date and owner history, and the calls,
    /// emails and meetings on them, changed since the last run (the first run reads
    /// everything). Settings: [hubspot] of dealledger.toml (stages, api_url, pipelines). The
    /// token: a private app's, with crm.objects.deals.read and crm.objects.contacts.read; from
    /// --token-file or DEALLEDGER_HUBSPOT_TOKEN.
    Hubspot(CrmArgs),
    /// Salesforce's opportunities with their stage, amount, close date and owner history, and
    /// the tasks, events and email messages on them, changed since the last run. Settings:
    /// [salesforce] instance_url (api_version, api_share_max, batch_size) and [import.stages].
    /// The token: an access token (`sf org auth show-access-token --target-org ALIAS --json`),
    /// from --token-file or DEALLEDGER_SALESFORCE_TOKEN.
    Salesforce(CrmArgs),
}

#[derive(Args)]
pub struct CrmArgs {
    /// A file holding the token (else DEALLEDGER_HUBSPOT_TOKEN or DEALLEDGER_SALESFORCE_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// table: a summary for people; json: requests, pages, events stored, duplicates, skipped by
    /// kind, cursor, reconciled.
    #[arg(long, value_parser = crate::format_parser(), default_value = "table")]
    format: Format,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
pub struct ReconcileArgs {
    /// The CRM to reconcile with
    #[arg(long, value_parser = ["hubspot", "salesforce"], default_value = "hubspot")]
    crm: String,
    #[command(flatten)]
    args: CrmArgs,
}

/// `sync CRM`.
pub fn command(data: &DataDir, clock: &dyn Clock, command: &SyncCommand) -> Result<()> {
    match command {
        SyncCommand::Hubspot(args) => run(data, clock, args, Steps::All, "hubspot"),
        SyncCommand::Salesforce(args) => run(data, clock, args, Steps::All, "salesforce"),
    }
}

/// A sync of `crm` (`steps`: sync then reconcile), or `report reconcile` (reconcile alone).
pub fn run(data: &DataDir, clock: &dyn Clock, args: &CrmArgs, steps: Steps, crm: &str) -> Result<()> {
    let what = if steps == Steps::Reconcile { "report reconcile".into() } else { format!("sync {crm}") };
    let crm = Crm::of(&data.serve_config()?, crm, &what, &data.config_path())
        .map_err(|e| Exit { code: 2, message: e.to_string() })?;
    let token =
        dealledger_sync::http::Secret::read((args.token_file.as_deref(), "--token-file"), crm.token_env())
            .map_err(|why| Exit { code: 2, message: format!("{what}: {why}") })?;
    let _lock = data.lock_writer(&format!("dealledger {what}"))?;
    data.ensure()?;
    let mut ledger = data.open_ledger()?;
    let mut progress = dealledger_sync::progress_bar(!args.quiet);
    let paths = (data.quarantine_path(), data.sync_state_path(crm.name()));
    let ran = sync_crm(&mut ledger, &paths, &crm, token, clock, &mut progress, steps)?;
    outln!("{}", ran.summary.text(args.format == Format::Json));
    Ok(ran.result?)
}

/// `report reconcile`: the CRM `--crm` names (HubSpot by default).
pub fn reconcile(data: &DataDir, clock: &dyn Clock, args: &ReconcileArgs) -> Result<()> {
    run(data, clock, &args.args, Steps::Reconcile, &args.crm)
}

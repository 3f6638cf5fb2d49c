//! `dealledger report NAME`: reads the timeline projection (catching its checkpoint up with the
//! log first) and prints one report.

use crate::data::{DataDir, Settings as _};
use crate::Format;
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use dealledger_events::Clock;
use dealledger_projections::{catch_up, Timeline};
use dealledger_reports::{answer, ParamError, Params, ReportName, Settings};

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Open deals by stage with amounts and weighted amounts, and closed counts, as of a moment
    Pipeline {
        #[command(flatten)]
        when: When,
        /// Lead with this currency (default: the only one present, else [costs] currency)
        #[arg(long, value_name = "CODE")]
        currency: Option<String>,
        #[arg(long, value_parser = crate::format_parser(), default_value = "table")]
        format: Format,
    },
    /// Completed stage visits per stage (count, mean, median, p90, max in days) and open deals
    TimeInStage {
        #[command(flatten)]
        when: When,
        /// Also break down by the deals' owners
        #[arg(long, value_enum, value_name = "KEY")]
        by: Option<By>,
        /// Also list every deal's cumulative days in each stage
        #[arg(long)]
        deals: bool,
        #[arg(long, value_parser = crate::format_parser(), default_value = "table")]
        format: Format,
    },
    /// Won, lost, disqualified, close and win rate, revenue, cycle, created pipeline, first
    /// response, stage conversion, sales velocity and CAC over [--from, --to); per owner win rate,
    /// quota attainment and selling time ([costs] in dealledger.toml; docs/metrics.md)
    Kpis {
        #[command(flatten)]
        period: Period,
        /// Forecast revenue for the period, to report forecast accuracy (percent error)
        #[arg(long, value_name = "AMOUNT")]
        forecast: Option<String>,
        #[arg(long, value_name = "CODE")]
        currency: Option<String>,
        #[arg(long, value_parser = crate::format_parser(), default_value = "table")]
        format: Format,
    },
    /// Selling time spent on deals lost or disqualified in [--from, --to), priced from quota and
    /// selling hours ([costs] in dealledger.toml), the costliest owner first
    BadDealCost {
        #[command(flatten)]
        period: Period,
        /// Also list every bad deal, the costliest first
        #[arg(long)]
        deals: bool,
        #[arg(long, value_parser = crate::format_parser(), default_value = "table")]
        format: Format,
    },
    /// The dashboard's pages as one self-contained HTML file (data inlined, no server, no
    /// network): for a pipeline review or an email (docs/dashboard.md). With --server, made
    /// from a running daemon's answers
    Html(crate::html::HtmlArgs),
    /// Each open deal's stage, amount, close date and owner in the CRM now (HubSpot, or
    /// Salesforce with --crm salesforce) against the ledger, each difference with its likely
    /// cause; what the CRM's history shows is stored at its own time (as every sync run does
    /// after it syncs), nothing else is changed
    Reconcile(crate::sync::ReconcileArgs),
    /// Open deals that need a decision: gone dark, no activity, stalled, past close date, not
    /// enough contacts, missing exit criteria, late-stage pile-up ([flags] in dealledger.toml)
    Flags {
        #[command(flatten)]
        when: When,
        #[arg(long, value_parser = crate::format_parser(), default_value = "table")]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum By {
    Owner,
}

#[derive(Args)]
pub struct When {
    /// Business time: fold only events with `at` <= this (RFC 3339, or a date for 00:00:00Z);
    /// default now
    #[arg(long, value_name = "TIME")]
    as_of: Option<String>,
    /// Recorded time: also drop events recorded after this ("what did we know then"); default now
    #[arg(long, value_name = "TIME")]
    known_at: Option<String>,
}

impl When {
    pub fn params(&self) -> Params {
        Params { as_of: self.as_of.clone(), known_at: self.known_at.clone(), ..Params::default() }
    }
}

#[derive(Args)]
pub struct Period {
    /// Start of the period, inclusive (RFC 3339, or a date for 00:00:00Z)
    #[arg(long, value_name = "TIME")]
    from: String,
    /// End of the period, exclusive
    #[arg(long, value_name = "TIME")]
    to: String,
    /// Drop events recorded after this; default now
    #[arg(long, value_name = "TIME")]
    known_at: Option<String>,
}

/// The command's name and parameters, as the daemon's query string would carry them.
fn request(command: &ReportCommand) -> Option<(ReportName, Params, Format)> {
    let when = When::params;
    let period = |p: &Period| Params {
        from: Some(p.from.clone()),
        to: Some(p.to.clone()),
        known_at: p.known_at.clone(),
        ..Params::default()
    };
    Some(match command {
        ReportCommand::Html(_) | ReportCommand::Reconcile(_) => return None,
        ReportCommand::Pipeline { when: w, currency, format } => {
            (ReportName::Pipeline, Params { currency: currency.clone(), ..when(w) }, *format)
        }
        ReportCommand::TimeInStage { when: w, by, deals, format } => (
            ReportName::TimeInStage,
            Params { by: by.map(|_| "owner".to_string()), deals: *deals, ..when(w) },
            *format,
        ),
        ReportCommand::Kpis { period: p, forecast, currency, format } => (
            ReportName::Kpis,
            Params { forecast: forecast.clone(), currency: currency.clone(), ..period(p) },
            *format,
        ),
        ReportCommand::BadDealCost { period: p, deals, format } => {
            (ReportName::BadDealCost, Params { deals: *deals, ..period(p) }, *format)
        }
        ReportCommand::Flags { when: w, format } => (ReportName::Flags, when(w), *format),
    })
}

/// A parameter error as the flag the user typed.
pub fn flag_error(e: ParamError) -> anyhow::Error {
    crate::Exit { code: 2, message: format!("--{} `{}`: {}", e.param.replace('_', "-"), e.value, e.reason) }
        .into()
}

/// The timeline, caught up with the log.
pub fn timeline(data: &DataDir) -> Result<Timeline> {
    let log = data.open_log()?;
    let (timeline, stats) = catch_up::<Timeline, _>(&log)?;
    tracing::info!(
        events = stats.events,
        seconds = stats.seconds,
        from_checkpoint = stats.from_checkpoint,
        "timeline"
    );
    Ok(timeline)
}

pub fn run(data: &DataDir, clock: &dyn Clock, server: Option<&str>, command: &ReportCommand) -> Result<()> {
    let Some((name, params, format)) = request(command) else {
        return match command {
            ReportCommand::Reconcile(_) if server.is_some() => Err(crate::Exit { code: 2, message: "report reconcile talks to the CRM, not to a daemon: drop --server (a daemon with [sync] reconciles after every run: GET /v1/sync)".into() }.into()),
            ReportCommand::Reconcile(args) => crate::sync::reconcile(data, clock, args),
            ReportCommand::Html(args) => crate::html::run(data, clock, server, args),
            _ => unreachable!("only html and reconcile are not queries"),
        };
    };
    let now = clock.now();
    // Flags are checked before anything is opened or asked, so a typo never waits on a load.
    dealledger_reports::query::check(name, &params, now).map_err(flag_error)?;
    let answered = match server {
        Some(url) => crate::client::report(url, data, name, &params, format)?,
        None => {
            let settings: Settings = data.settings()?;
            answer(name, &params, &timeline(data)?, &settings, now, format).map_err(flag_error)?
        }
    };
    print_answered(&answered, format)
}

/// A report's text on standard output; for CSV, which has no room for them, its notes on
/// standard error (the table and JSON carry them in the text).
pub fn print_answered(answered: &dealledger_reports::Answered, format: Format) -> Result<()> {
    out!("{}", answered.text);
    if format == Format::Csv {
        for note in &answered.notes {
            eprintln!("{note}");
        }
    }
    Ok(())
}

//! `dealledger report NAME`: reads the timeline projection (catching its checkpoint up with the
//! log first) and prints one report.

use crate::data::DataDir;
use crate::Format;
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use dealledger_events::money::Decimal;
use dealledger_events::{Clock, Currency, Timestamp};
use dealledger_projections::{catch_up, Timeline, View};
use dealledger_reports::{cost, flags, kpis, pipeline, render, stages, Settings};

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Open deals by stage with amounts and weighted amounts, and closed counts, as of a moment
    Pipeline {
        #[command(flatten)]
        when: When,
        /// Lead with this currency (default: the only one present, else [costs] currency)
        #[arg(long, value_name = "CODE")]
        currency: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
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
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Won, lost, disqualified, close rate, revenue, cycle, created pipeline, first response,
    /// stage conversion over [--from, --to)
    Kpis {
        #[command(flatten)]
        period: Period,
        /// Forecast revenue for the period, to report forecast accuracy (percent error)
        #[arg(long, value_name = "AMOUNT")]
        forecast: Option<String>,
        #[arg(long, value_name = "CODE")]
        currency: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Selling time spent on deals lost or disqualified in [--from, --to), priced from quota and
    /// selling hours ([costs] in dealledger.toml)
    BadDealCost {
        #[command(flatten)]
        period: Period,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Open deals that need a decision: gone dark, no activity, stalled, past close date, not
    /// enough contacts, missing exit criteria, late-stage pile-up ([flags] in dealledger.toml)
    Flags {
        #[command(flatten)]
        when: When,
        #[arg(long, value_enum, default_value_t = Format::Table)]
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

fn instant(flag: &str, text: Option<&str>, now: Timestamp) -> Result<Timestamp> {
    match text {
        None => Ok(now),
        Some(text) => Timestamp::parse_instant_or_date(text)
            .map_err(|why| crate::Exit { code: 2, message: format!("--{flag} `{text}`: {why}") }.into()),
    }
}

fn currency(text: Option<&str>) -> Result<Option<Currency>> {
    text.map(|t| {
        Currency::parse(t)
            .map_err(|why| crate::Exit { code: 2, message: format!("--currency: {why}") }.into())
    })
    .transpose()
}

fn period(p: &Period, now: Timestamp) -> Result<(Timestamp, Timestamp, Timestamp)> {
    let from = instant("from", Some(&p.from), now)?;
    let to = instant("to", Some(&p.to), now)?;
    if from >= to {
        return Err(crate::Exit {
            code: 2,
            message: format!("--from {} must be before --to {}", p.from, p.to),
        }
        .into());
    }
    Ok((from, to, instant("known-at", p.known_at.as_deref(), now)?))
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

pub fn run(data: &DataDir, clock: &dyn Clock, command: &ReportCommand) -> Result<()> {
    let settings: Settings = data.settings()?;
    let now = clock.now();
    let when = |w: &When| -> Result<View> {
        Ok(View {
            as_of: instant("as-of", w.as_of.as_deref(), now)?,
            known_at: instant("known-at", w.known_at.as_deref(), now)?,
        })
    };
    let text = match command {
        ReportCommand::Pipeline { when: w, currency: c, format } => {
            let (view, c) = (when(w)?, currency(c.as_deref())?);
            render(&pipeline::pipeline(&timeline(data)?, &settings, view, c), (*format).into())
        }
        ReportCommand::TimeInStage { when: w, by, deals, format } => {
            let view = when(w)?;
            let report = stages::time_in_stage(&timeline(data)?, &settings, view, by.is_some(), *deals);
            render(&report, (*format).into())
        }
        ReportCommand::Kpis { period: p, forecast, currency: c, format } => {
            let (from, to, known_at) = period(p, now)?;
            let c = currency(c.as_deref())?;
            let timeline = timeline(data)?;
            let forecast = forecast
                .as_deref()
                .map(|text| {
                    Decimal::parse(text).map_err(|why| crate::Exit {
                        code: 2,
                        message: format!("--forecast `{text}`: {why}"),
                    })
                })
                .transpose()?;
            render(&kpis::kpis(&timeline, &settings, from, to, known_at, c, forecast), (*format).into())
        }
        ReportCommand::BadDealCost { period: p, format } => {
            let (from, to, known_at) = period(p, now)?;
            render(&cost::bad_deal_cost(&timeline(data)?, &settings, from, to, known_at), (*format).into())
        }
        ReportCommand::Flags { when: w, format } => {
            let view = when(w)?;
            render(&flags::flags(&timeline(data)?, &settings, view), (*format).into())
        }
    };
    print!("{text}");
    Ok(())
}

impl From<Format> for dealledger_reports::Format {
    fn from(format: Format) -> Self {
        match format {
            Format::Table => dealledger_reports::Format::Table,
            Format::Json => dealledger_reports::Format::Json,
            Format::Csv => dealledger_reports::Format::Csv,
        }
    }
}

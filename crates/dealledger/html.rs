//! `dealledger report html`: the dashboard's pages as one self-contained HTML file, their
//! reports computed here (the same answers as the API's) and inlined (docs/dashboard.md).

use crate::data::{DataDir, Settings as _};
use crate::report::{flag_error, When};
use anyhow::{Context, Result};
use clap::Args;
use dealledger_events::time::MICROS_PER_DAY;
use dealledger_events::{Clock, Timestamp};
use dealledger_reports::{answer, Format, Params, ReportName};
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Args)]
pub struct HtmlArgs {
    /// The file to write
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    when: When,
    /// Start of the KPI and cost period (default: 90 days before --to)
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End of the KPI and cost period, exclusive (default: today, 00:00Z)
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
}

fn instant(flag: &str, text: &Option<String>, default: Timestamp) -> Result<Timestamp> {
    match text {
        None => Ok(default),
        Some(text) => Timestamp::parse_instant_or_date(text)
            .map_err(|why| crate::Exit { code: 2, message: format!("--{flag} `{text}`: {why}") }.into()),
    }
}

/// Where the reports come from.
enum Source<'a> {
    /// The ledger of this data directory, read here.
    Here(Box<(dealledger_projections::Timeline, dealledger_reports::Settings)>),
    /// A running daemon at this URL.
    Daemon(&'a str),
}

impl Source<'_> {
    /// A report's JSON, or its chart, from here or from the daemon: the same answers.
    fn ask(
        &self,
        data: &DataDir,
        now: Timestamp,
        name: ReportName,
        params: &Params,
        chart: bool,
    ) -> Result<String> {
        match (self, chart) {
            (Source::Here(here), false) => {
                let (timeline, settings) = &**here;
                Ok(answer(name, params, timeline, settings, now, Format::Json).map_err(flag_error)?.text)
            }
            (Source::Here(here), true) => {
                let (timeline, settings) = &**here;
                Ok(dealledger_reports::chart(name, params, timeline, settings, now).map_err(flag_error)?)
            }
            (Source::Daemon(url), false) => {
                Ok(crate::client::report(url, data, name, params, Format::Json)?.text)
            }
            (Source::Daemon(url), true) => crate::client::chart(url, data, name, params),
        }
    }
}

/// What a report's JSON says of its figures (its notes), and the flags that would make it again
/// for the moment or period that ends at the last event (its offer).
fn said(report: &Value) -> Vec<String> {
    let offer = match &report["offer"] {
        Value::Object(o) if o.contains_key("as_of") => {
            Some(format!("offer: --as-of {}", o["as_of"].as_str().unwrap_or("")))
        }
        Value::Object(o) => Some(format!(
            "offer: --from {} --to {}",
            o.get("from").and_then(Value::as_str).unwrap_or(""),
            o.get("to").and_then(Value::as_str).unwrap_or("")
        )),
        _ => None,
    };
    let notes = report["notes"].as_array().into_iter().flatten().filter_map(Value::as_str);
    notes.map(|n| format!("note: {n}")).chain(offer).collect()
}

/// Makes the file from this data directory's ledger, or with `server` from a running daemon's
/// answers (the daemon holds the ledger while it runs; its answers are the same bytes).
pub fn run(data: &DataDir, clock: &dyn Clock, server: Option<&str>, args: &HtmlArgs) -> Result<()> {
    let now = clock.now();
    let view = dealledger_reports::query::view_of(&args.when.params(), now).map_err(flag_error)?;
    // The dashboard's default period: the 90 days up to today, in whole UTC days.
    let today = now.date().start();
    let to = instant("to", &args.to, today)?;
    let from = instant("from", &args.from, Timestamp(to.0.saturating_sub(90 * MICROS_PER_DAY)))?;
    if from >= to {
        anyhow::bail!(crate::Exit { code: 2, message: format!("--from {from} is not before --to {to}") });
    }
    // The period of the same length before it, beside it on the KPI page.
    let before = Timestamp(from.0.saturating_sub(to.0 - from.0));
    let source = match server {
        None => Source::Here(Box::new((crate::report::timeline(data)?, data.settings()?))),
        Some(url) => Source::Daemon(url),
    };
    let known_at = view.known_at.to_string();
    let (as_of, period) = (
        Params { as_of: Some(view.as_of.to_string()), known_at: Some(known_at.clone()), ..Params::default() },
        |from: Timestamp, to: Timestamp| Params {
            from: Some(from.to_string()),
            to: Some(to.to_string()),
            known_at: Some(known_at.clone()),
            ..Params::default()
        },
    );
    let ask = |name: ReportName, params: &Params, chart: bool| source.ask(data, now, name, params, chart);
    let mut reports = serde_json::Map::new();
    let mut notes: Vec<String> = Vec::new();
    for (key, name, params) in [
        ("pipeline", ReportName::Pipeline, as_of.clone()),
        ("time-in-stage", ReportName::TimeInStage, as_of.clone()),
        ("flags", ReportName::Flags, as_of.clone()),
        ("kpis", ReportName::Kpis, period(from, to)),
        ("kpis-previous", ReportName::Kpis, period(before, from)),
        ("bad-deal-cost", ReportName::BadDealCost, period(from, to)),
    ] {
        let value: Value = serde_json::from_str(&ask(name, &params, false)?).context("a report's JSON")?;
        for line in said(&value) {
            if key != "kpis-previous" && !notes.contains(&line) {
                notes.push(line);
            }
        }
        reports.insert(key.to_string(), value);
    }
    // The pages' pictures: one per currency where a page shows one block per currency.
    let mut charts = serde_json::Map::new();
    let currencies = |key: &str| -> Vec<String> {
        reports[key]["currencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    for (key, name, params) in
        [("pipeline", ReportName::Pipeline, as_of.clone()), ("kpis", ReportName::Kpis, period(from, to))]
    {
        for currency in currencies(key) {
            let params = Params { currency: Some(currency.clone()), ..params.clone() };
            charts.insert(format!("{key}:{currency}"), ask(name, &params, true)?.into());
        }
    }
    charts.insert("time-in-stage".into(), ask(ReportName::TimeInStage, &as_of, true)?.into());
    charts.insert("bad-deal-cost".into(), ask(ReportName::BadDealCost, &period(from, to), true)?.into());
    let page = dealledger_server::dashboard::one_file(&json!({
        "generated": now.to_string(),
        "params": {
            "as_of": view.as_of.to_string(),
            "known_at": known_at,
            "kpis": {"from": from.to_string(), "to": to.to_string(), "before": before.to_string()},
            "cost": {"from": from.to_string(), "to": to.to_string()},
        },
        "reports": reports,
        "charts": charts,
    }));
    dealledger_log::files::write_new(&args.out, page.as_bytes())
        .with_context(|| format!("writing {}", args.out.display()))?;
    outln!("wrote {} ({} bytes)", args.out.display(), page.len());
    // What the reports say of their figures (a period with nothing in it, say), where the
    // person who made the file sees it.
    for line in notes {
        eprintln!("{line}");
    }
    Ok(())
}

//! `dealledger whatif`: backtest disqualification policies on the ledger's history.

use crate::data::DataDir;
use crate::{Exit, Format};
use anyhow::Result;
use clap::Args;
use dealledger_events::Timestamp;
use dealledger_reports::output::{Cell, Instant, Table};
use dealledger_reports::{render, Report};
use dealledger_whatif::{log_end, Policy, Prepared, Scope, WhatIfReport};
use serde::Serialize;
use std::path::PathBuf;

/// Values in one sweep, at most.
const SWEEP_VALUES_MAX: usize = 10_000;

#[derive(Args)]
pub struct WhatIfArgs {
    /// A policy file (TOML: gone_dark, no_activity, stalled, unanswered_touches,
    /// past_close_date, [[missing_field]]); see docs/whatif.md
    #[arg(long, value_name = "FILE", conflicts_with = "compare")]
    policy: Option<PathBuf>,
    /// A numeric rule, e.g. gone_dark=14 (repeatable; adds to --policy)
    #[arg(long = "rule", value_name = "RULE=VALUE")]
    rules: Vec<String>,
    /// Sweep one numeric rule over a range, e.g. gone_dark=7..60 (step 1) or stalled=1..3:0.25
    #[arg(long, value_name = "RULE=FROM..TO[:STEP]", conflicts_with = "compare")]
    sweep: Option<String>,
    /// Compare policy files side by side
    #[arg(long, value_name = "FILE", num_args = 2.., conflicts_with_all = ["policy", "rules"])]
    compare: Vec<PathBuf>,
    /// Only deals opened at or after this moment
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Only deals opened before this moment
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// History up to this moment (default: the end of the log)
    #[arg(long, value_name = "TIME")]
    as_of: Option<String>,
    /// Simulate in order of knowledge: events count from when they were logged (recorded_at),
    /// as a policy running at the time would have seen them. Default: business time
    #[arg(long)]
    as_logged: bool,
    /// Also break the outcome down by the deals' owners
    #[arg(long, value_enum, value_name = "KEY")]
    by: Option<crate::report::By>,
    /// Also list every cut deal with the rule, the cut moment and its real outcome
    #[arg(long)]
    deals: bool,
    /// Draw the sweep (net value, revenue at risk, effort value saved) into this SVG file
    #[arg(long, value_name = "FILE.svg", requires = "sweep")]
    plot: Option<PathBuf>,
    #[arg(long, value_parser = crate::format_parser(), default_value = "table")]
    format: Format,
}

fn flag_error(flag: &str, why: impl std::fmt::Display) -> anyhow::Error {
    Exit { code: 2, message: format!("--{flag}: {why}") }.into()
}

fn instant(flag: &str, text: &Option<String>) -> Result<Option<Timestamp>> {
    text.as_deref()
        .map(|t| Timestamp::parse_instant_or_date(t).map_err(|why| flag_error(flag, format!("`{t}`: {why}"))))
        .transpose()
}

fn read_policy(path: &PathBuf) -> Result<Policy> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Policy::parse_toml(&text, &path.display().to_string()).map_err(|message| Exit { code: 2, message }.into())
}

/// `RULE=FROM..TO[:STEP]` as the rule and its values.
fn sweep_values(text: &str) -> Result<(String, Vec<f64>)> {
    let bad = |why: &str| flag_error("sweep", format!("`{text}`: {why}"));
    let (rule, range) = text.split_once('=').ok_or_else(|| bad("expected RULE=FROM..TO[:STEP]"))?;
    let (range, step) = range.split_once(':').map_or((range, "1"), |(r, s)| (r, s));
    let (from, to) = range.split_once("..").ok_or_else(|| bad("expected FROM..TO"))?;
    let number = |s: &str| s.trim().parse::<f64>().map_err(|_| bad(&format!("`{s}` is not a number")));
    let (from, to, step) = (number(from)?, number(to)?, number(step)?);
    if !from.is_finite() || !to.is_finite() || !step.is_finite() || step <= 0.0 || from > to {
        return Err(bad("needs FROM <= TO and a positive STEP"));
    }
    let count = ((to - from) / step + 1e-9).floor() as usize + 1;
    if count > SWEEP_VALUES_MAX {
        return Err(bad(&format!("{count} values; at most {SWEEP_VALUES_MAX}")));
    }
    // Values as from + i * step, rounded to 9 decimals so 0.1 steps print as written.
    let values = (0..count).map(|i| ((from + i as f64 * step) * 1e9).round() / 1e9).collect();
    Ok((rule.trim().to_string(), values))
}

#[derive(Serialize)]
struct Comparison {
    as_of: Instant,
    policies: Vec<WhatIfReport>,
}

impl Report for Comparison {
    fn tables(&self) -> Vec<Table> {
        let mut table = Table::new(
            format!("Policies compared, history to {}", self.as_of.0),
            &[
                "policy",
                "cut",
                "cut won",
                "cut bad",
                "cut open",
                "revenue at risk",
                "effort value saved",
                "calendar value saved",
                "precision",
                "recall",
                "net value",
            ],
        );
        for r in &self.policies {
            let o = &r.outcome;
            let ratio = |v: Option<f64>| v.map_or(Cell::Null, |v| Cell::Num(v, 3));
            table.push(vec![
                Cell::Text(serde_json::to_string(&r.policy).expect("policies serialize")),
                Cell::Int(o.cut as i64),
                Cell::Int(o.cut_won as i64),
                Cell::Int(o.cut_bad as i64),
                Cell::Int(o.cut_open as i64),
                Cell::Money(o.revenue_at_risk),
                Cell::Money(o.effort_value_saved),
                Cell::Money(o.calendar_value_saved),
                ratio(o.precision),
                ratio(o.recall),
                Cell::Money(o.net_value),
            ]);
        }
        vec![table]
    }
}

pub fn run(data: &DataDir, server: Option<&str>, args: &WhatIfArgs) -> Result<()> {
    let (from, to) = (instant("from", &args.from)?, instant("to", &args.to)?);
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(flag_error("from", "must be before --to"));
        }
    }
    let as_of_flag = instant("as-of", &args.as_of)?;
    let mut policy = match &args.policy {
        Some(path) => read_policy(path)?,
        None => Policy::default(),
    };
    for rule in &args.rules {
        policy.set_text(rule).map_err(|why| flag_error("rule", why))?;
    }
    let sweep = args.sweep.as_deref().map(sweep_values).transpose()?;
    let compare: Vec<Policy> = args.compare.iter().map(read_policy).collect::<Result<_>>()?;
    if compare.is_empty() && sweep.is_none() && policy.is_empty() {
        return Err(Exit {
            code: 2,
            message:
                "no policy: give --policy FILE, --rule RULE=VALUE, --sweep or --compare (see docs/whatif.md)"
                    .into(),
        }
        .into());
    }
    if let Some(url) = server {
        // The daemon takes numeric rules (GET /v1/whatif); files, sweeps and comparisons run
        // here, on a data directory this process can open.
        if args.policy.is_some() || sweep.is_some() || !compare.is_empty() || args.plot.is_some() {
            return Err(flag_error("server", "the daemon backtests --rule policies only; run --policy, --sweep and --compare where the data directory is not held"));
        }
        let mut query: Vec<(&str, String)> = args.rules.iter().map(|r| ("rule", r.clone())).collect();
        for (key, value) in [("from", &args.from), ("to", &args.to), ("as_of", &args.as_of)] {
            if let Some(v) = value {
                query.push((key, v.clone()));
            }
        }
        if args.as_logged {
            query.push(("as_logged", "true".into()));
        }
        if args.by.is_some() {
            query.push(("by", "owner".into()));
        }
        if args.deals {
            query.push(("deals", "true".into()));
        }
        query.push(("format", args.format.as_str().into()));
        print!("{}", crate::client::whatif(url, data, query)?);
        return Ok(());
    }
    let settings = data.settings()?;
    let timeline = crate::report::timeline(data)?;
    let scope = Scope {
        from,
        to,
        as_of: as_of_flag.unwrap_or_else(|| log_end(&timeline)),
        as_logged: args.as_logged,
    };
    let prepared = Prepared::new(&timeline, &settings, scope);
    let format = args.format;
    let text = if let Some((rule, values)) = sweep {
        let report = prepared.sweep(&policy, &rule, &values).map_err(|why| flag_error("sweep", why))?;
        if let Some(path) = &args.plot {
            std::fs::write(path, crate::plot::sweep_svg(&report))
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        }
        render(&report, format)
    } else if !compare.is_empty() {
        let policies = compare
            .iter()
            .map(|p| prepared.run(p, false, false))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|why| flag_error("compare", why))?;
        render(&Comparison { as_of: Instant(scope.as_of), policies }, format)
    } else {
        let report =
            prepared.run(&policy, args.by.is_some(), args.deals).map_err(|why| flag_error("policy", why))?;
        render(&report, format)
    };
    print!("{text}");
    Ok(())
}

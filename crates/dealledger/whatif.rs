//! `dealledger whatif`: backtest disqualification policies on the ledger's history.

use crate::data::{DataDir, Settings as _};
use crate::{Exit, Format};
use anyhow::Result;
use clap::Args;
use dealledger_events::Timestamp;
use dealledger_whatif::{Answer, Ask, Policy, Question, WhatIfError};
use std::path::PathBuf;

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
    /// History up to this moment (default: now; where the history ended a week or more before,
    /// the answer says so and offers its last event)
    #[arg(long, value_name = "TIME")]
    as_of: Option<String>,
    /// The deals' currency: amounts of two currencies are never added (default: the only one,
    /// else [costs] currency)
    #[arg(long, value_name = "CODE")]
    currency: Option<String>,
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

impl WhatIfArgs {
    /// Whether a running daemon could be asked this instead (`--policy` and `--plot` run where
    /// the data directory is).
    pub fn can_ask_daemon(&self) -> bool {
        self.policy.is_none() && self.plot.is_none()
    }
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
    Policy::parse_toml(&text, &path.display().to_string()).map_err(Into::into)
}

pub fn run(data: &DataDir, now: Timestamp, server: Option<&str>, args: &WhatIfArgs) -> Result<()> {
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
    let sweep = args
        .sweep
        .as_deref()
        .map(|text| dealledger_whatif::compare::sweep_values(text).map_err(|why| flag_error("sweep", why)))
        .transpose()?;
    let compare: Vec<(String, Policy)> = args
        .compare
        .iter()
        .map(|path| Ok((path.display().to_string(), read_policy(path)?)))
        .collect::<Result<_>>()?;
    let currency = args
        .currency
        .as_deref()
        .map(|c| {
            dealledger_events::Currency::parse(c)
                .map_err(|why| flag_error("currency", format!("`{c}`: {why}")))
        })
        .transpose()?;
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
        return ask_daemon(url, data, args, &compare);
    }
    let ask = match (sweep, compare.is_empty()) {
        (Some((rule, values)), _) => Ask::Sweep(policy, rule, values),
        (None, false) => Ask::Compare(compare),
        (None, true) => Ask::Run(policy),
    };
    let (by_owner, deals, as_logged, as_of) = (args.by.is_some(), args.deals, args.as_logged, as_of_flag);
    let question = Question { ask, from, to, as_of, as_logged, currency, by_owner, deals };
    let answer = question
        .answer(&crate::report::timeline(data)?, &data.settings()?, now, dealledger_whatif::UNWATCHED)
        .map_err(|e| match e {
            WhatIfError::Policy(why) => flag_error("policy", why),
            WhatIfError::Sweep(why) => flag_error("sweep", why),
            WhatIfError::Compare(why) => flag_error("compare", why),
            WhatIfError::Currency(why) => flag_error("currency", why),
            WhatIfError::Stopped(why) => anyhow::anyhow!("the what-if stopped: {why}"),
        })?;
    if let (Answer::Sweep(report), Some(path)) = (&answer, &args.plot) {
        dealledger_log::files::write_new(path, dealledger_whatif::plot::sweep_svg(report).as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    crate::report::print_answered(&answer.render(args.format), args.format)
}

/// The same question asked of the daemon (`GET /v1/whatif`): rules, a sweep, or policies
/// compared, when they are numeric rules (`missing_field` rules need the data directory: its
/// policy file is not sent), and no chart (it is drawn where the file is written).
fn ask_daemon(url: &str, data: &DataDir, args: &WhatIfArgs, compare: &[(String, Policy)]) -> Result<()> {
    if args.policy.is_some() || args.plot.is_some() {
        return Err(flag_error(
            "server",
            "the daemon takes --rule, --sweep and --compare of numeric rules; run --policy and --plot where the data directory is not held",
        ));
    }
    let mut query: Vec<(&str, String)> = args.rules.iter().map(|r| ("rule", r.clone())).collect();
    for (path, (label, policy)) in args.compare.iter().zip(compare) {
        let rules = policy.rules_text().ok_or_else(|| {
            flag_error(
                "server",
                format!("{} has missing_field rules, which the daemon cannot be sent; compare it where the data directory is not held", path.display()),
            )
        })?;
        query.push(("policy", rules));
        query.push(("label", label.clone()));
    }
    let texts = [
        ("sweep", &args.sweep),
        ("from", &args.from),
        ("to", &args.to),
        ("as_of", &args.as_of),
        ("currency", &args.currency),
    ];
    query.extend(texts.into_iter().filter_map(|(key, value)| value.clone().map(|v| (key, v))));
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
    crate::report::print_answered(&crate::client::whatif(url, data, query)?, args.format)
}

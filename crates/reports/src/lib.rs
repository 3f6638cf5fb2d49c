//! dealledger's reports: pipeline as of any moment (bitemporal), time in stage, KPIs, the cost of
//! bad deals and the flags on open deals, each as JSON, an aligned table or CSV.
//!
//! Boundary: reports read a [`Timeline`] and [`Settings`] and nothing else: no storage, no clock
//! (every moment is an argument), no files. The definitions are the contract of docs/metrics.md.

pub mod basis;
pub mod chart;
pub mod cost;
pub mod deal_history;
pub mod flags;
pub mod kpis;
pub mod output;
pub mod pipeline;
pub mod query;
pub mod settings;
pub mod stages;

use dealledger_events::Currency;
use dealledger_projections::{Name, Timeline};

pub use output::{render, Format, Report};
pub use query::{answer, chart, Answered, ParamError, Params, ReportName};
pub use settings::{settings_from_config, Settings};

/// Each interned name's place in the pipeline (None: not a pipeline stage, or not a stage at
/// all), so that a report resolves a stage with an index instead of a string search.
pub fn stage_indexes(timeline: &Timeline, settings: &Settings) -> Vec<Option<usize>> {
    let mut indexes = vec![None; timeline.names.len()];
    for (i, stage) in settings.pipeline.stages().iter().enumerate() {
        if let Some(name) = timeline.names.get(&stage.name) {
            indexes[name as usize] = Some(i);
        }
    }
    indexes
}

/// A currency asked for that no deal of the view has.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no deal in this view is in {asked} (there are {})", list(present))]
pub struct NoSuchCurrency {
    pub asked: Currency,
    pub present: Vec<Currency>,
}

fn list(present: &[Currency]) -> String {
    match present {
        [] => "none".to_string(),
        _ => present.iter().map(Currency::to_string).collect::<Vec<_>>().join(", "),
    }
}

/// The currency a report leads with: the one asked for (which some deal of the view must have:
/// a report of a currency nobody uses would be all zeros), else the only one the deals have,
/// else the configured one.
pub fn report_currency(
    present: &[Currency],
    asked: Option<Currency>,
    settings: &Settings,
) -> Result<Currency, NoSuchCurrency> {
    match (asked, present) {
        (Some(c), _) if present.contains(&c) => Ok(c),
        (Some(asked), _) => Err(NoSuchCurrency { asked, present: present.to_vec() }),
        (None, [only]) => Ok(*only),
        _ => Ok(settings.currency),
    }
}

/// Stage names in report order: the pipeline's stages in order, then any other stage in `seen`
/// (one the pipeline no longer has) by name. Each with its interned name, if the log has it.
pub fn stage_order(timeline: &Timeline, settings: &Settings, seen: &[Name]) -> Vec<(String, Option<Name>)> {
    let mut order: Vec<(String, Option<Name>)> =
        settings.pipeline.stages().iter().map(|s| (s.name.clone(), timeline.names.get(&s.name))).collect();
    let mut others: Vec<(String, Option<Name>)> = seen
        .iter()
        .map(|&n| (timeline.names.resolve(n).to_string(), Some(n)))
        .filter(|(s, _)| settings.pipeline.index(s).is_none())
        .collect();
    others.sort();
    order.extend(others);
    order
}

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

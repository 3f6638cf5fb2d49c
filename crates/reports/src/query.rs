//! One report asked by name with text parameters: the single place where the CLI's flags and the
//! daemon's query string become a report, so both answer with the same bytes.

use crate::chart::Chart;
use crate::{cost, flags, kpis, pipeline, render, stages, Format, Report, Settings};
use dealledger_events::money::Decimal;
use dealledger_events::{Currency, Timestamp};
use dealledger_projections::{Timeline, View};

/// The reports, by the names of `dealledger report NAME` and `GET /v1/reports/{name}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportName {
    Pipeline,
    TimeInStage,
    Kpis,
    BadDealCost,
    Flags,
}

impl ReportName {
    pub const ALL: [ReportName; 5] = [
        ReportName::Pipeline,
        ReportName::TimeInStage,
        ReportName::Kpis,
        ReportName::BadDealCost,
        ReportName::Flags,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportName::Pipeline => "pipeline",
            ReportName::TimeInStage => "time-in-stage",
            ReportName::Kpis => "kpis",
            ReportName::BadDealCost => "bad-deal-cost",
            ReportName::Flags => "flags",
        }
    }

    pub fn parse(text: &str) -> Option<ReportName> {
        ReportName::ALL.into_iter().find(|name| name.as_str() == text)
    }

    /// The parameters this report takes (names as in the query string).
    pub fn params(self) -> &'static [&'static str] {
        match self {
            ReportName::Pipeline => &["as_of", "known_at", "currency"],
            ReportName::TimeInStage => &["as_of", "known_at", "by", "deals"],
            ReportName::Kpis => &["from", "to", "known_at", "currency", "forecast"],
            ReportName::BadDealCost => &["from", "to", "known_at", "deals"],
            ReportName::Flags => &["as_of", "known_at"],
        }
    }
}

/// Parameters as text, unparsed; `None` is "not given".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pub as_of: Option<String>,
    pub known_at: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `owner` is the only breakdown.
    pub by: Option<String>,
    pub deals: bool,
    pub currency: Option<String>,
    pub forecast: Option<String>,
}

/// Where a text parameter lives in [`Params`].
type Field = fn(&mut Params) -> &mut Option<String>;

/// The text parameters by query-string name: the one list of them (with `deals`, a flag).
const TEXT_PARAMS: [(&str, Field); 7] = [
    ("as_of", |p| &mut p.as_of),
    ("known_at", |p| &mut p.known_at),
    ("from", |p| &mut p.from),
    ("to", |p| &mut p.to),
    ("by", |p| &mut p.by),
    ("currency", |p| &mut p.currency),
    ("forecast", |p| &mut p.forecast),
];

impl Params {
    /// The parameters given, as query-string pairs, by the names of [`ReportName::params`]:
    /// what `--server` sends for the flags it was given.
    pub fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut taken = self.clone();
        let mut pairs: Vec<(&'static str, String)> = TEXT_PARAMS
            .iter()
            .filter_map(|(name, field)| field(&mut taken).take().map(|v| (*name, v)))
            .collect();
        if self.deals {
            pairs.push(("deals", "true".to_string()));
        }
        pairs
    }

    /// The parameters of a query string, `get` giving a name's value: what the daemon reads
    /// from `GET /v1/reports/{name}`, the inverse of [`Params::to_query`].
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Result<Params, ParamError> {
        let deals = match get("deals").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") | Some("") => true,
            Some(other) => {
                return Err(ParamError {
                    param: "deals",
                    value: other.to_string(),
                    reason: "must be true or false".into(),
                })
            }
        };
        let mut params = Params { deals, ..Params::default() };
        for (name, field) in TEXT_PARAMS {
            *field(&mut params) = get(name);
        }
        Ok(params)
    }
}

/// A parameter that cannot be used: which one (query-string name) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{param} `{value}`: {reason}")]
pub struct ParamError {
    pub param: &'static str,
    pub value: String,
    pub reason: String,
}

fn instant(param: &'static str, text: Option<&str>, now: Timestamp) -> Result<Timestamp, ParamError> {
    match text {
        None => Ok(now),
        Some(text) => Timestamp::parse_instant_or_date(text).map_err(|reason| ParamError {
            param,
            value: text.to_string(),
            reason: reason.to_string(),
        }),
    }
}

fn required<'a>(param: &'static str, text: &'a Option<String>) -> Result<&'a str, ParamError> {
    text.as_deref().ok_or_else(|| ParamError {
        param,
        value: String::new(),
        reason: "is required by this report".to_string(),
    })
}

fn currency(text: &Option<String>) -> Result<Option<Currency>, ParamError> {
    text.as_deref()
        .map(|t| {
            Currency::parse(t).map_err(|reason| ParamError {
                param: "currency",
                value: t.into(),
                reason: reason.to_string(),
            })
        })
        .transpose()
}

fn period(params: &Params, now: Timestamp) -> Result<(Timestamp, Timestamp, Timestamp), ParamError> {
    let from = instant("from", Some(required("from", &params.from)?), now)?;
    let to_text = required("to", &params.to)?;
    let to = instant("to", Some(to_text), now)?;
    if from >= to {
        return Err(ParamError {
            param: "from",
            value: params.from.clone().unwrap_or_default(),
            reason: format!("must be before to ({to_text})"),
        });
    }
    Ok((from, to, instant("known_at", params.known_at.as_deref(), now)?))
}

/// Checks the parameters of `name` (a parameter the report does not take is an error, so a typo
/// never silently changes the answer) without computing anything.
pub fn check(name: ReportName, params: &Params, now: Timestamp) -> Result<(), ParamError> {
    let given: [(&'static str, bool); 8] = [
        ("as_of", params.as_of.is_some()),
        ("known_at", params.known_at.is_some()),
        ("from", params.from.is_some()),
        ("to", params.to.is_some()),
        ("by", params.by.is_some()),
        ("deals", params.deals),
        ("currency", params.currency.is_some()),
        ("forecast", params.forecast.is_some()),
    ];
    for (param, is_given) in given {
        if is_given && !name.params().contains(&param) {
            return Err(ParamError {
                param,
                value: String::new(),
                reason: format!(
                    "is not a parameter of {} (it takes {})",
                    name.as_str(),
                    name.params().join(", ")
                ),
            });
        }
    }
    if let Some(by) = &params.by {
        if by != "owner" {
            return Err(ParamError {
                param: "by",
                value: by.clone(),
                reason: "the only breakdown is `owner`".into(),
            });
        }
    }
    if let Some(text) = &params.forecast {
        Decimal::parse(text).map_err(|reason| ParamError {
            param: "forecast",
            value: text.clone(),
            reason: reason.to_string(),
        })?;
    }
    currency(&params.currency)?;
    match name {
        ReportName::Kpis | ReportName::BadDealCost => period(params, now).map(|_| ()),
        _ => instant("as_of", params.as_of.as_deref(), now)
            .and_then(|_| instant("known_at", params.known_at.as_deref(), now))
            .map(|_| ()),
    }
}

/// The view of `as_of` and `known_at` (each `now` when not given): what every as-of report and
/// the export read.
pub fn view_of(params: &Params, now: Timestamp) -> Result<View, ParamError> {
    Ok(View {
        as_of: instant("as_of", params.as_of.as_deref(), now)?,
        known_at: instant("known_at", params.known_at.as_deref(), now)?,
    })
}

/// A report rendered, and what it says of its own figures: the same notes as its JSON `notes`
/// and table lines, for a format that has no room for them (CSV: the CLI prints them on
/// standard error, the daemon in `Dealledger-Note` headers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    pub text: String,
    pub notes: Vec<String>,
}

impl Answered {
    pub fn of<R: Report>(report: &R, format: Format) -> Answered {
        Answered { text: render(report, format), notes: report.note_lines() }
    }
}

/// A report computed, before it is rendered or drawn. (One at a time, on its way out: the
/// sizes of its variants do not matter.)
#[allow(clippy::large_enum_variant)]
enum Computed {
    Pipeline(pipeline::PipelineReport),
    TimeInStage(stages::TimeInStageReport),
    Kpis(kpis::KpiReport),
    BadDealCost(cost::CostReport),
    Flags(flags::FlagReport),
}

impl Computed {
    fn answered(&self, format: Format) -> Answered {
        match self {
            Computed::Pipeline(r) => Answered::of(r, format),
            Computed::TimeInStage(r) => Answered::of(r, format),
            Computed::Kpis(r) => Answered::of(r, format),
            Computed::BadDealCost(r) => Answered::of(r, format),
            Computed::Flags(r) => Answered::of(r, format),
        }
    }

    fn chart(&self) -> Option<Chart> {
        match self {
            Computed::Pipeline(r) => r.chart(),
            Computed::TimeInStage(r) => r.chart(),
            Computed::Kpis(r) => r.chart(),
            Computed::BadDealCost(r) => r.chart(),
            Computed::Flags(r) => r.chart(),
        }
    }
}

/// The report `name` on `timeline`. `now` is the default of every moment.
fn compute(
    name: ReportName,
    params: &Params,
    timeline: &Timeline,
    settings: &Settings,
    now: Timestamp,
) -> Result<Computed, ParamError> {
    check(name, params, now)?;
    let view = || view_of(params, now);
    let absent = |e: crate::NoSuchCurrency| ParamError {
        param: "currency",
        value: e.asked.to_string(),
        reason: e.to_string(),
    };
    Ok(match name {
        ReportName::Pipeline => Computed::Pipeline(
            pipeline::pipeline(timeline, settings, view()?, currency(&params.currency)?).map_err(absent)?,
        ),
        ReportName::TimeInStage => Computed::TimeInStage(stages::time_in_stage(
            timeline,
            settings,
            view()?,
            params.by.is_some(),
            params.deals,
        )),
        ReportName::Kpis => {
            let (from, to, known_at) = period(params, now)?;
            let forecast = params.forecast.as_deref().map(|t| Decimal::parse(t).expect("checked"));
            Computed::Kpis(
                kpis::kpis(timeline, settings, from, to, known_at, currency(&params.currency)?, forecast)
                    .map_err(absent)?,
            )
        }
        ReportName::BadDealCost => {
            let (from, to, known_at) = period(params, now)?;
            Computed::BadDealCost(cost::bad_deal_cost(timeline, settings, from, to, known_at, params.deals))
        }
        ReportName::Flags => Computed::Flags(flags::flags(timeline, settings, view()?)),
    })
}

/// The report `name` on `timeline`, rendered in `format`. `now` is the default of every moment.
pub fn answer(
    name: ReportName,
    params: &Params,
    timeline: &Timeline,
    settings: &Settings,
    now: Timestamp,
    format: Format,
) -> Result<Answered, ParamError> {
    compute(name, params, timeline, settings, now).map(|report| report.answered(format))
}

/// The picture of the report `name` (`GET /v1/charts/{name}`), as SVG: the same report as
/// [`answer`] gives, drawn.
pub fn chart(
    name: ReportName,
    params: &Params,
    timeline: &Timeline,
    settings: &Settings,
    now: Timestamp,
) -> Result<String, ParamError> {
    let report = compute(name, params, timeline, settings, now)?;
    report.chart().map(|chart| chart.svg()).ok_or_else(|| ParamError {
        param: "name",
        value: name.as_str().to_string(),
        reason: "has no chart (charts: pipeline, time-in-stage, kpis, bad-deal-cost)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_go_to_a_query_string_and_back_unchanged() {
        let text = |s: &str| Some(s.to_string());
        let all = Params {
            as_of: text("2024-01-01"),
            known_at: text("2024-02-01T00:00:00Z"),
            from: text("a"),
            to: text("b"),
            by: text("owner"),
            deals: true,
            currency: text("EUR"),
            forecast: text("100"),
        };
        for params in [Params::default(), all, Params { deals: true, ..Params::default() }] {
            let query: std::collections::HashMap<_, _> = params.to_query().into_iter().collect();
            let back = Params::from_query(|name| query.get(name).cloned()).unwrap();
            assert_eq!(back, params);
            // Every name sent is one some report takes.
            for name in query.keys() {
                assert!(ReportName::ALL.iter().any(|r| r.params().contains(name)), "{name}");
            }
        }
        let e = Params::from_query(|name| (name == "deals").then(|| "maybe".to_string())).unwrap_err();
        assert_eq!(e.to_string(), "deals `maybe`: must be true or false");
    }
}

//! One report asked by name with text parameters: the single place where the CLI's flags and the
//! daemon's query string become a report, so both answer with the same bytes.

use crate::{cost, flags, kpis, pipeline, render, stages, Format, Settings};
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
            ReportName::BadDealCost => &["from", "to", "known_at"],
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
            reason,
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
            Currency::parse(t).map_err(|reason| ParamError { param: "currency", value: t.into(), reason })
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
            reason,
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

/// The report `name` on `timeline`, rendered in `format`. `now` is the default of every moment.
pub fn answer(
    name: ReportName,
    params: &Params,
    timeline: &Timeline,
    settings: &Settings,
    now: Timestamp,
    format: Format,
) -> Result<String, ParamError> {
    check(name, params, now)?;
    let view = || -> Result<View, ParamError> {
        Ok(View {
            as_of: instant("as_of", params.as_of.as_deref(), now)?,
            known_at: instant("known_at", params.known_at.as_deref(), now)?,
        })
    };
    Ok(match name {
        ReportName::Pipeline => {
            render(&pipeline::pipeline(timeline, settings, view()?, currency(&params.currency)?), format)
        }
        ReportName::TimeInStage => {
            let report =
                stages::time_in_stage(timeline, settings, view()?, params.by.is_some(), params.deals);
            render(&report, format)
        }
        ReportName::Kpis => {
            let (from, to, known_at) = period(params, now)?;
            let forecast = params.forecast.as_deref().map(|t| Decimal::parse(t).expect("checked"));
            let report =
                kpis::kpis(timeline, settings, from, to, known_at, currency(&params.currency)?, forecast);
            render(&report, format)
        }
        ReportName::BadDealCost => {
            let (from, to, known_at) = period(params, now)?;
            render(&cost::bad_deal_cost(timeline, settings, from, to, known_at), format)
        }
        ReportName::Flags => render(&flags::flags(timeline, settings, view()?), format),
    })
}

//! Reports and their charts: `GET /v1/reports/{name}` (the JSON, table or CSV of
//! `dealledger report NAME`) and `GET /v1/charts/{name}` (its picture as SVG).

use super::read::{blocking, caught_up};
use super::{only_params, Answer, ApiError, SharedState};
use crate::Shared;
use axum::extract::{Path, Query, Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use dealledger_events::Timestamp;
use dealledger_projections::Timeline;
use dealledger_reports::{Format, ParamError, Params, ReportName, Settings};
use std::collections::HashMap;
use std::sync::Arc;

/// The header of a CSV answer's notes.
pub const NOTE_HEADER: &str = "dealledger-note";
/// The media type of a chart.
pub(super) const SVG_TYPE: &str = "image/svg+xml";

pub(super) async fn get_report(
    State(shared): SharedState,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let (report, params) = report_request(&name, &query, &["format"])?;
    let format = format_of(query.get("format"))?;
    let answered = answer_report(&shared, move |timeline, settings, now| {
        dealledger_reports::answer(report, &params, timeline, settings, now, format)
    })
    .await?;
    Ok(rendered(format, answered))
}

/// `format=`: json (by default), table or csv.
pub(super) fn format_of(text: Option<&String>) -> Result<Format, ApiError> {
    match text {
        None => Ok(Format::Json),
        Some(text) => Format::parse(text)
            .ok_or_else(|| ApiError::bad_param("format", format!("`{text}` is not json, table or csv"))),
    }
}

/// `GET /v1/charts/{name}` (a report's parameters, or `whatif` and a sweep's): the picture the
/// dashboard shows, as SVG (the one chart module's, `dealledger_reports::chart`).
pub(super) async fn get_chart(
    State(shared): SharedState,
    Path(name): Path<String>,
    request: Request,
) -> Answer {
    if name == "whatif" {
        return super::whatif::get_whatif_chart(shared, request.uri().query().unwrap_or("")).await;
    }
    let Ok(Query(query)) = Query::<HashMap<String, String>>::try_from_uri(request.uri()) else {
        return Err(ApiError::bad_param("query", "the query string is not form-encoded"));
    };
    let (report, params) = report_request(&name, &query, &[])?;
    let svg = answer_report(&shared, move |timeline, settings, now| {
        dealledger_reports::chart(report, &params, timeline, settings, now)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, SVG_TYPE)], svg).into_response())
}

/// The report and its parameters of `GET /v1/reports/{name}` and `/v1/charts/{name}` (which
/// also takes `more`).
fn report_request(
    name: &str,
    query: &HashMap<String, String>,
    more: &[&str],
) -> Result<(ReportName, Params), ApiError> {
    let Some(report) = ReportName::parse(name) else {
        let names: Vec<&str> = ReportName::ALL.iter().map(|n| n.as_str()).collect();
        return Err(ApiError::UnknownReport(format!("no report `{name}` (reports: {})", names.join(", "))));
    };
    let mut allowed: Vec<&str> = report.params().to_vec();
    allowed.extend(more);
    only_params(query, &allowed)?;
    Ok((report, Params::from_query(|name| query.get(name).cloned())?))
}

/// Asks `ask` of the timeline on a reader thread, once it has folded every durable event (and
/// its folds of now are fresh).
async fn answer_report<T: Send + 'static>(
    shared: &Arc<Shared>,
    ask: impl FnOnce(&Timeline, &Settings, Timestamp) -> Result<T, ParamError> + Send + 'static,
) -> Result<T, ApiError> {
    caught_up(shared).await?;
    let now = shared.clock.now();
    let shared = shared.clone();
    let read = move || {
        let timeline = shared.live.read_fresh();
        Ok(ask(&timeline, &shared.settings, now)?)
    };
    blocking(read, ApiError::ReportFailed).await
}

/// A report or what-if as rendered: its text, and for CSV, which has no room for them, what it
/// says of its own figures as `Dealledger-Note` headers (one a note, non-ASCII as `?`: a header
/// holds visible ASCII).
pub(super) fn rendered(format: Format, answered: dealledger_reports::Answered) -> axum::response::Response {
    let mut response = ([(header::CONTENT_TYPE, format.content_type())], answered.text).into_response();
    if format == Format::Csv {
        for note in &answered.notes {
            let ascii: String =
                note.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' }).collect();
            if let Ok(value) = header::HeaderValue::from_str(&ascii) {
                response.headers_mut().append(NOTE_HEADER, value);
            }
        }
    }
    response
}

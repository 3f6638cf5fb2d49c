//! What-ifs: `GET /v1/whatif` (the JSON, table or CSV of `dealledger whatif`: one policy, a
//! sweep or a comparison) and a sweep's chart, each bounded in slots, time and its client's
//! patience.

use super::read::{blocking, caught_up};
use super::reports::{format_of, rendered, SVG_TYPE};
use super::{only_params, Answer, ApiError, SharedState};
use crate::Shared;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use dealledger_reports::Format;
use dealledger_whatif::{Ask, WhatIfError};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

/// `GET /v1/whatif?rule=gone_dark=14&rule=...&from=&to=&as_of=&by=owner&deals=true&format=`:
/// the JSON of `dealledger whatif --rule ...`; with `sweep=RULE=FROM..TO[:STEP]` that of
/// `--sweep`, with `policy=RULE=VALUE,...` given twice or more that of `--compare`.
pub(super) async fn get_whatif(State(shared): SharedState, request: Request) -> Answer {
    let (question, format) = whatif_request(request.uri().query().unwrap_or(""))?;
    let answered = answer_whatif(&shared, question, move |answer| Some(answer.render(format))).await?;
    Ok(rendered(format, answered))
}

/// `GET /v1/charts/whatif?sweep=...` (the parameters of `GET /v1/whatif`): the sweep's chart.
pub(super) async fn get_whatif_chart(shared: Arc<Shared>, query: &str) -> Answer {
    let (question, _) = whatif_request(query)?;
    if !matches!(question.ask, Ask::Sweep(..)) {
        return Err(ApiError::bad_param("sweep", "a chart is of a sweep: sweep=RULE=FROM..TO[:STEP]"));
    }
    let svg = answer_whatif(&shared, question, |answer| answer.chart().map(|chart| chart.svg())).await?;
    Ok(([(header::CONTENT_TYPE, SVG_TYPE)], svg).into_response())
}

/// Answers a what-if question on a reader thread, once the timeline has folded every durable
/// event; `then` turns the answer into what is sent (None: it has nothing to send, a bug).
///
/// A what-if can take seconds to minutes, so it is bounded three ways: it waits for one of
/// `[serve] whatifs_max` slots (503 `whatif_busy` past request_timeout_ms); it reads a copy of
/// the timeline, never holding the lock the folder and the readers need; and it stops when its
/// client goes (this future dropped), when `[serve] whatif_timeout_ms` passes, or as soon as
/// its progress shows it cannot finish in time (503 `whatif_timeout`, saying how long it would
/// take).
async fn answer_whatif<T: Send + 'static>(
    shared: &Arc<Shared>,
    question: dealledger_whatif::Question,
    then: impl FnOnce(dealledger_whatif::Answer) -> Option<T> + Send + 'static,
) -> Result<T, ApiError> {
    caught_up(shared).await?;
    let target = shared.live.head().seq;
    let wait = Duration::from_millis(shared.config.request_timeout_ms);
    let Ok(Ok(slot)) = tokio::time::timeout(wait, shared.whatifs.clone().acquire_owned()).await else {
        return Err(ApiError::WhatIfBusy(format!(
            "{} what-if(s) running ([serve] whatifs_max) and none finished within {} ms (request_timeout_ms); retry",
            shared.config.whatifs_max, shared.config.request_timeout_ms
        )));
    };
    let gone = GoneOnDrop(Arc::new(AtomicBool::new(false)));
    let (shared, client_gone) = (shared.clone(), gone.0.clone());
    let now = shared.clock.now();
    let limit = Duration::from_millis(shared.config.whatif_timeout_ms);
    let answer = move || {
        let _slot = slot;
        let _running = Running::new(&shared.metrics.whatifs_running);
        let timeline = shared.live.whatif_copy(target);
        let deadline = WhatIfDeadline::new(limit, client_gone);
        let answered =
            question.answer(&timeline, &shared.settings, now, &|progress| deadline.check(progress));
        let param = match &answered {
            Ok(_) | Err(WhatIfError::Stopped(_)) => "",
            Err(WhatIfError::Policy(_)) => "rule",
            Err(WhatIfError::Sweep(_)) => "sweep",
            Err(WhatIfError::Compare(_)) => "policy",
            Err(WhatIfError::Currency(_)) => "currency",
        };
        match answered {
            Ok(answer) => {
                then(answer).ok_or_else(|| ApiError::WhatIfFailed("the answer has nothing to send".into()))
            }
            Err(WhatIfError::Stopped(why)) => Err(ApiError::WhatIfTimeout(why)),
            Err(e) => Err(ApiError::bad_param(param, e.to_string())),
        }
    };
    let answered = blocking(answer, ApiError::WhatIfFailed).await;
    drop(gone);
    answered
}

/// Sets its flag when dropped: a handler's future is dropped when its client goes, and the
/// what-if it started sees the flag at its next deal and stops.
struct GoneOnDrop(Arc<AtomicBool>);

impl Drop for GoneOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// Counts one in a gauge while it lives.
struct Running<'g>(&'g AtomicU64);

impl<'g> Running<'g> {
    fn new(gauge: &'g AtomicU64) -> Running<'g> {
        gauge.fetch_add(1, Relaxed);
        Running(gauge)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// When a what-if must stop: its client gone, its time up, or its progress so far showing it
/// cannot finish in time.
struct WhatIfDeadline {
    started: std::time::Instant,
    /// When the first deal walk began: the preparation before it (folds, stage histories) is
    /// not a walk, and counting it as one made a slow start look like a slow whole.
    walks_started: std::sync::OnceLock<std::time::Instant>,
    limit: Duration,
    client_gone: Arc<AtomicBool>,
}

impl WhatIfDeadline {
    /// Walks measured for at least this long before they are projected: the first deals of a
    /// walk say little of the rest.
    const PROJECT_AFTER: Duration = Duration::from_millis(500);

    fn new(limit: Duration, client_gone: Arc<AtomicBool>) -> WhatIfDeadline {
        WhatIfDeadline {
            started: std::time::Instant::now(),
            walks_started: std::sync::OnceLock::new(),
            limit,
            client_gone,
        }
    }

    fn check(&self, progress: dealledger_whatif::Progress) -> Result<(), String> {
        if self.client_gone.load(Relaxed) {
            return Err("its client went away".into());
        }
        let walks_started = *self.walks_started.get_or_init(std::time::Instant::now);
        let spent = self.started.elapsed();
        let walking = walks_started.elapsed();
        let limit_ms = self.limit.as_millis();
        // The preparation, then the walks at their rate so far: a sweep's deals cost alike, so
        // this is close.
        let projected = (progress.done > 0).then(|| {
            let preparing = spent.saturating_sub(walking).as_secs_f64();
            preparing + walking.as_secs_f64() * progress.total as f64 / progress.done as f64
        });
        let says = |projected: Option<f64>| {
            let eta = projected.map_or(String::new(), |p| format!(", and would take about {p:.0} s in all"));
            format!(
                "stopped after {:.1} s with {} of {} deal walks done{eta}: past [serve] whatif_timeout_ms ({limit_ms} ms); ask less (a shorter sweep range or a larger step, a narrower from..to) or run `dealledger whatif` on the data directory",
                spent.as_secs_f64(),
                progress.done,
                progress.total,
            )
        };
        if spent > self.limit {
            return Err(says(projected));
        }
        // Stopped early only when clearly too long: half again the limit.
        match projected {
            Some(p) if walking >= Self::PROJECT_AFTER && p > self.limit.as_secs_f64() * 1.5 => {
                Err(says(Some(p)))
            }
            _ => Ok(()),
        }
    }
}

/// The what-if question and format of a query string.
fn whatif_request(query: &str) -> Result<(dealledger_whatif::Question, Format), ApiError> {
    // Repeated `rule`, `policy` and `label` parameters: the map extractor keeps one value per
    // key, so the pairs are read here (form-decoded: `+` and `%XX`).
    let (mut rules, mut compared, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    let mut single: HashMap<String, String> = HashMap::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match &*key {
            "rule" => rules.push(value),
            "policy" => compared.push(value),
            "label" => labels.push(value),
            _ => {
                single.insert(key.into_owned(), value);
            }
        }
    }
    only_params(
        &single,
        &["from", "to", "as_of", "as_logged", "by", "deals", "format", "sweep", "currency"],
    )?;
    let mut policy = dealledger_whatif::Policy::default();
    for rule in &rules {
        policy.set_text(rule).map_err(|why| ApiError::bad_param("rule", why.to_string()))?;
    }
    let ask = whatif_question(policy, &compared, &labels, single.get("sweep"))
        .map_err(|(param, why)| ApiError::bad_param(param, why))?;
    let moment = |name: &'static str| -> Result<Option<dealledger_events::Timestamp>, ApiError> {
        single
            .get(name)
            .map(|t| {
                dealledger_events::Timestamp::parse_instant_or_date(t)
                    .map_err(|why| ApiError::bad_param(name, why.to_string()))
            })
            .transpose()
    };
    let (from, to, as_of) = (moment("from")?, moment("to")?, moment("as_of")?);
    let by_owner = match single.get("by").map(String::as_str) {
        None => false,
        Some("owner") => true,
        Some(other) => {
            return Err(ApiError::bad_param("by", format!("`{other}`: the only breakdown is owner")))
        }
    };
    let flag = |name: &str| matches!(single.get(name).map(String::as_str), Some("true" | "1" | ""));
    let (deals, as_logged) = (flag("deals"), flag("as_logged"));
    let format = format_of(single.get("format"))?;
    let currency = single
        .get("currency")
        .map(|c| {
            dealledger_events::Currency::parse(c)
                .map_err(|why| ApiError::bad_param("currency", why.to_string()))
        })
        .transpose()?;
    let question = dealledger_whatif::Question { ask, from, to, as_of, as_logged, currency, by_owner, deals };
    Ok((question, format))
}

/// The question from `rule=` (the policy), `policy=` (each a compared policy, shown under the
/// `label=` of the same place, else its rules) and `sweep=`, or the parameter that is wrong and
/// why.
fn whatif_question(
    policy: dealledger_whatif::Policy,
    compared: &[String],
    labels: &[String],
    sweep: Option<&String>,
) -> Result<Ask, (&'static str, String)> {
    use dealledger_whatif::compare::{sweep_values, COMPARED_POLICIES_MAX};
    if !labels.is_empty() && labels.len() != compared.len() {
        return Err((
            "label",
            format!("{} labels for {} policies: one each, or none", labels.len(), compared.len()),
        ));
    }
    if !compared.is_empty() {
        if !policy.is_empty() || sweep.is_some() {
            return Err(("policy", "a comparison takes policy= parameters only, not rule= or sweep=".into()));
        }
        if compared.len() > COMPARED_POLICIES_MAX {
            return Err(("policy", format!("{} policies; at most {COMPARED_POLICIES_MAX}", compared.len())));
        }
        let policies = compared.iter().enumerate().map(|(i, text)| {
            let label = labels.get(i).unwrap_or(text).clone();
            dealledger_whatif::Policy::parse_rules(text).map(|policy| (label, policy))
        });
        return policies
            .collect::<Result<Vec<_>, _>>()
            .map(Ask::Compare)
            .map_err(|why| ("policy", why.to_string()));
    }
    if let Some(text) = sweep {
        let (rule, values) = sweep_values(text).map_err(|why| ("sweep", why.to_string()))?;
        return Ok(Ask::Sweep(policy, rule, values));
    }
    if policy.is_empty() {
        let why = "at least one rule=NAME=VALUE is required, e.g. rule=gone_dark=14 (or sweep=RULE=FROM..TO, or policy=RULE=VALUE,... twice to compare)";
        return Err(("rule", why.into()));
    }
    Ok(Ask::Run(policy))
}

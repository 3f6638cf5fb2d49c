//! `--server URL`: asking a running daemon instead of opening the data directory (which the
//! daemon holds). The daemon answers with the same bytes the local command would print.

use crate::data::{DataDir, Settings as _};
use crate::Format;
use anyhow::{Context, Result};
use dealledger_reports::{Answered, Params, ReportName};

/// Bytes of a report answer read, at most.
const ANSWER_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// The token: DEALLEDGER_TOKEN, else `[serve] token` of the data directory's dealledger.toml.
fn token(data: &DataDir) -> Option<String> {
    if let Ok(token) = std::env::var("DEALLEDGER_TOKEN") {
        return Some(token.trim().to_string());
    }
    data.serve_config().ok().and_then(|c| c.token)
}

/// GET `path` with `query` from the daemon at `url`: the answer's text and its notes (the
/// `Dealledger-Note` headers of a CSV answer), or the daemon's reason.
fn get(url: &str, data: &DataDir, path: &str, query: &[(&str, String)]) -> Result<Answered> {
    let base = url.trim_end_matches('/');
    let mut request = ureq::get(&format!("{base}{path}"));
    for (key, value) in query {
        request = request.query(key, value);
    }
    let response = authorized(request, data).call();
    let notes = match &response {
        Ok(r) => r.all(dealledger_server::NOTE_HEADER).into_iter().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    };
    Ok(Answered { text: answer(base, response)?, notes })
}

/// POST `body` (JSON) to `path` of the daemon at `url`: the answer's text, or the daemon's reason.
pub fn post(url: &str, data: &DataDir, path: &str, body: &str) -> Result<String> {
    let base = url.trim_end_matches('/');
    let request = ureq::post(&format!("{base}{path}")).set("Content-Type", "application/json");
    answer(base, authorized(request, data).send_string(body))
}

fn authorized(request: ureq::Request, data: &DataDir) -> ureq::Request {
    match token(data) {
        Some(token) => request.set("Authorization", &format!("Bearer {token}")),
        None => request,
    }
}

/// The text of an answer (at most [`ANSWER_BYTES_MAX`]), or the daemon's reason for refusing.
fn answer(base: &str, result: Result<ureq::Response, ureq::Error>) -> Result<String> {
    match result {
        Ok(response) => {
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(response.into_reader(), ANSWER_BYTES_MAX),
                &mut text,
            )
            .with_context(|| format!("reading the answer of {base}"))?;
            Ok(text)
        }
        Err(ureq::Error::Status(code, response)) => {
            let body = response.into_string().unwrap_or_default();
            let reason = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_string))
                .unwrap_or(body);
            anyhow::bail!("the daemon at {base} answered {code}: {}", reason.trim())
        }
        Err(e) => Err(anyhow::anyhow!("cannot reach the daemon at {base}: {e}")),
    }
}

pub fn report(
    url: &str,
    data: &DataDir,
    name: ReportName,
    params: &Params,
    format: Format,
) -> Result<Answered> {
    let mut query = vec![("format", format.as_str().to_string())];
    query.extend(params.to_query());
    get(url, data, &format!("/v1/reports/{}", name.as_str()), &query)
}

/// `dealledger whatif --rule ...` asked of the daemon (`GET /v1/whatif`).
pub fn whatif(url: &str, data: &DataDir, query: Vec<(&str, String)>) -> Result<Answered> {
    get(url, data, "/v1/whatif", &query)
}

/// A report's chart (`GET /v1/charts/{name}`), as SVG.
pub fn chart(url: &str, data: &DataDir, name: ReportName, params: &Params) -> Result<String> {
    Ok(get(url, data, &format!("/v1/charts/{}", name.as_str()), &params.to_query())?.text)
}

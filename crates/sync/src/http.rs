//! One HTTP JSON client for every CRM API: the bearer token, bounded answers, the vendor's rate
//! limits obeyed and transient failures retried, each request counted.
//!
//! What is retried, and how long it waits first:
//! - `429 Too Many Requests`: the answer's `Retry-After` (seconds), else the limit's interval;
//! - `500`, `502`, `503`, `504`, and a cut or refused connection, a timeout, a truncated body:
//!   1 s, 2 s, 4 s ... (at most [`BACKOFF_MAX_MS`]), no jitter (one client; runs reproduce).
//!
//! Up to `retries_max` attempts in a row fail that way; then the run stops with the last
//! failure, having stored everything before it. Any other answer (400, 401, 403, 404) is not
//! retried: it is the caller's mistake, and says so with the vendor's own message.
//!
//! Pacing: each answer's rate-limit headers say how many requests are left in the current window
//! ([`Budget`]); with none left, the next request waits for the window to pass, so a 429 is
//! met only when something else spends the same limit, and never twice in a row for one window.
//! Endpoints with a stricter limit of their own and no headers (HubSpot's search) are spaced by
//! a minimum interval instead ([`Lane`]).
//!
//! The token never appears in an error, a log line or `Debug` output.

use std::io::Read;
use std::time::{Duration, Instant};

/// Bytes of one answer, at most: a page of 100 records with history is well under 8 MiB.
pub const ANSWER_BYTES_MAX: u64 = 32 * 1024 * 1024;
/// The longest wait between two attempts of one request.
pub const BACKOFF_MAX_MS: u64 = 30_000;
/// The longest `Retry-After` obeyed: a longer one is a daily limit, which a run does not wait out.
pub const RETRY_AFTER_MAX_MS: u64 = 120_000;
/// Retries of one request in a row, by default.
pub const RETRIES_MAX_DEFAULT: u32 = 6;

/// A token that prints as `***`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(token: String) -> Secret {
        Secret(token)
    }

    /// The token in `file` (named `file_setting` in errors: a flag or a setting), else in the
    /// environment variable `env`; never from a command line (which `ps` shows).
    pub fn read(
        (file, file_setting): (Option<&std::path::Path>, &'static str),
        env: &'static str,
    ) -> Result<Secret, TokenError> {
        let (text, from) = match file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => (text, format!("{file_setting} {}", path.display())),
                Err(source) => {
                    return Err(TokenError::Unreadable { file_setting, path: path.to_path_buf(), source })
                }
            },
            None => match std::env::var(env) {
                Ok(text) => (text, env.to_string()),
                Err(_) => return Err(TokenError::Missing { file_setting, env }),
            },
        };
        let token = text.trim();
        if token.is_empty() {
            return Err(TokenError::Empty { from });
        }
        Ok(Secret(token.to_string()))
    }
}

/// Why there is no token to use.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read {file_setting} {}: {source}", path.display())]
    Unreadable { file_setting: &'static str, path: std::path::PathBuf, source: std::io::Error },
    #[error("no token: give {file_setting} FILE or set {env}")]
    Missing { file_setting: &'static str, env: &'static str },
    #[error("{from} is empty")]
    Empty { from: String },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Why a request failed for good.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The API answered no, for a reason a retry cannot change.
    #[error("{method} {path}: {status} from the API: {message}")]
    Refused { method: &'static str, path: String, status: u16, message: String },
    /// Transient failures, `retries_max` in a row.
    #[error("{method} {path}: gave up after {attempts} attempts; the last: {last}")]
    GaveUp { method: &'static str, path: String, attempts: u32, last: String },
    /// The API asked to wait longer than a run waits (a daily limit spent).
    #[error("{method} {path}: the API asks to wait {wait_ms} ms ({why}); run again later")]
    TooLong { method: &'static str, path: String, wait_ms: u64, why: String },
    /// A 200 whose body is not the JSON the reference describes.
    #[error("{method} {path}: the answer is not what the API reference describes: {why}")]
    Unexpected { method: &'static str, path: String, why: String },
}

/// What a client did, for the run's summary and the daemon's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Requests sent, retries included.
    pub requests: u64,
    /// Of them, answered 429.
    pub throttled: u64,
    /// Of them, answered 5xx or cut.
    pub failed: u64,
    /// Milliseconds spent waiting for a limit or a backoff.
    pub waited_ms: u64,
}

/// How long to wait: real time in a run, recorded in tests that check the waits.
pub trait Pause: Send {
    fn pause(&mut self, wait: Duration);
    /// Milliseconds of a monotonic clock.
    fn now_ms(&self) -> u64;
}

/// Sleeps the thread.
pub struct RealPause {
    started: Instant,
}

impl Default for RealPause {
    fn default() -> RealPause {
        RealPause { started: Instant::now() }
    }
}

impl Pause for RealPause {
    fn pause(&mut self, wait: Duration) {
        std::thread::sleep(wait);
    }
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The general limit, as the last answer's headers gave it.
#[derive(Clone, Copy, Debug, Default)]
struct Budget {
    /// Requests left in the window, and when (monotonic ms) that window ends at the latest.
    left: Option<(u64, u64)>,
}

/// Requests that share a stricter limit with no headers: at most one per `interval_ms`; a 429
/// there waits `window_ms` (the limit's own window, not the general one).
#[derive(Clone, Copy, Debug)]
pub struct Lane {
    pub interval_ms: u64,
    pub window_ms: u64,
    last_ms: Option<u64>,
}

impl Lane {
    pub fn every(interval_ms: u64, window_ms: u64) -> Lane {
        Lane { interval_ms, window_ms, last_ms: None }
    }
}

/// The names of one vendor's rate-limit headers.
impl LimitHeaders {
    /// An API that sends no per-window headers (Salesforce: a daily allocation, watched apart).
    pub const NONE: LimitHeaders = LimitHeaders { remaining: "", interval_ms: "", interval_ms_default: 1000 };
}

#[derive(Clone, Copy, Debug)]
pub struct LimitHeaders {
    /// Requests left in the current window.
    pub remaining: &'static str,
    /// The window's length in milliseconds.
    pub interval_ms: &'static str,
    /// The window's length when the answer does not say.
    pub interval_ms_default: u64,
}

pub struct Client {
    /// Headers sent with every request besides the token's (Salesforce's query options).
    pub request_headers: Vec<(&'static str, String)>,
    /// A response header the caller reads after each answer (Salesforce's `Sforce-Limit-Info`),
    /// and its value in the last answer that had it.
    pub watched_header: Option<&'static str>,
    pub watched: Option<String>,
    agent: ureq::Agent,
    base: String,
    token: Secret,
    headers: LimitHeaders,
    budget: Budget,
    /// The general limit's window, as the last answer that said it.
    interval_ms: Option<u64>,
    pause: Box<dyn Pause>,
    pub retries_max: u32,
    pub counts: Counts,
}

pub enum Method<'a> {
    Get,
    Post(&'a serde_json::Value),
}

impl Method<'_> {
    fn name(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post(_) => "POST",
        }
    }
}

/// One attempt's outcome.
enum Attempt {
    Done(serde_json::Value),
    /// Retry, after this long (ms; None: the backoff of the failures so far): why.
    Again(Option<u64>, String),
}

impl Client {
    /// A client of the API at `base` (`https://api.hubapi.com`), without a trailing slash.
    pub fn new(base: &str, token: Secret, headers: LimitHeaders, pause: Box<dyn Pause>) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("dealledger/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            request_headers: Vec::new(),
            watched_header: None,
            watched: None,
            agent,
            base: base.trim_end_matches('/').to_string(),
            token,
            headers,
            budget: Budget::default(),
            interval_ms: None,
            pause,
            retries_max: RETRIES_MAX_DEFAULT,
            counts: Counts::default(),
        }
    }

    /// `path_and_query` (from `/`) with `method`, retried as the module says; `lane` spaces the
    /// requests of an endpoint with a limit of its own.
    pub fn call(
        &mut self,
        method: Method<'_>,
        path_and_query: &str,
        mut lane: Option<&mut Lane>,
    ) -> Result<serde_json::Value, HttpError> {
        let mut failures = 0u32;
        loop {
            self.wait_for_budget(lane.as_deref_mut());
            let window_ms = lane.as_deref().map(|l| l.window_ms);
            match self.attempt(&method, path_and_query, window_ms)? {
                Attempt::Done(value) => return Ok(value),
                Attempt::Again(wait_ms, why) => {
                    let wait_ms = wait_ms.unwrap_or_else(|| backoff_ms(failures));
                    failures += 1;
                    if failures > self.retries_max {
                        return Err(HttpError::GaveUp {
                            method: method.name(),
                            path: path_only(path_and_query),
                            attempts: failures,
                            last: why,
                        });
                    }
                    if wait_ms > RETRY_AFTER_MAX_MS {
                        return Err(HttpError::TooLong {
                            method: method.name(),
                            path: path_only(path_and_query),
                            wait_ms,
                            why,
                        });
                    }
                    tracing::info!(path = %path_only(path_and_query), wait_ms, %why, "retrying");
                    self.wait(wait_ms);
                }
            }
        }
    }

    fn wait(&mut self, wait_ms: u64) {
        self.counts.waited_ms = self.counts.waited_ms.saturating_add(wait_ms);
        self.pause.pause(Duration::from_millis(wait_ms));
    }

    /// Waits while the last answer said no request is left in its window, and for the lane.
    fn wait_for_budget(&mut self, lane: Option<&mut Lane>) {
        let now = self.pause.now_ms();
        if let Some((0, until)) = self.budget.left {
            if until > now {
                self.wait(until - now);
            }
            self.budget.left = None;
        }
        if let Some(lane) = lane {
            let now = self.pause.now_ms();
            if let Some(last) = lane.last_ms {
                let next = last.saturating_add(lane.interval_ms);
                if next > now {
                    self.wait(next - now);
                }
            }
            lane.last_ms = Some(self.pause.now_ms());
        }
    }

    /// One request; `window_ms`: the lane's window, what a 429 there waits without `Retry-After`.
    fn attempt(
        &mut self,
        method: &Method<'_>,
        path_and_query: &str,
        window_ms: Option<u64>,
    ) -> Result<Attempt, HttpError> {
        let url = format!("{}{}", self.base, path_and_query);
        let request = match method {
            Method::Get => self.agent.get(&url),
            Method::Post(_) => self.agent.post(&url),
        }
        .set("Authorization", &format!("Bearer {}", self.token.0))
        .set("Accept", "application/json");
        let request = self.request_headers.iter().fold(request, |r, (name, value)| r.set(name, value));
        self.counts.requests += 1;
        let sent = match method {
            Method::Get => request.call(),
            Method::Post(body) => {
                request.set("Content-Type", "application/json").send_string(&body.to_string())
            }
        };
        let path = || path_only(path_and_query);
        let response = match sent {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                self.note_budget(&response);
                let retry_after_ms = retry_after_ms(&response);
                let message = error_message(response);
                return match status {
                    429 => {
                        self.counts.throttled += 1;
                        let wait = retry_after_ms.or(window_ms).unwrap_or(self.interval_ms_now());
                        Ok(Attempt::Again(Some(wait), format!("429: {message}")))
                    }
                    500 | 502 | 503 | 504 => {
                        self.counts.failed += 1;
                        Ok(Attempt::Again(retry_after_ms, format!("{status}: {message}")))
                    }
                    _ => Err(HttpError::Refused { method: method.name(), path: path(), status, message }),
                };
            }
            Err(ureq::Error::Transport(transport)) => {
                self.counts.failed += 1;
                // The transport error names the URL (no token: it is a header) and the cause.
                let why = format!("{}: {}", transport.kind(), transport.message().unwrap_or("no detail"));
                return Ok(Attempt::Again(None, why));
            }
        };
        self.note_budget(&response);
        let mut body = Vec::new();
        let read = response.into_reader().take(ANSWER_BYTES_MAX + 1).read_to_end(&mut body);
        if let Err(e) = read {
            self.counts.failed += 1;
            return Ok(Attempt::Again(None, format!("the answer was cut: {e}")));
        }
        if body.len() as u64 > ANSWER_BYTES_MAX {
            return Err(HttpError::Unexpected {
                method: method.name(),
                path: path(),
                why: format!("more than {ANSWER_BYTES_MAX} bytes"),
            });
        }
        match serde_json::from_slice(&body) {
            Ok(value) => Ok(Attempt::Done(value)),
            // A body cut short by a dropped connection that still ended cleanly at a chunk.
            Err(e) if e.is_eof() => {
                self.counts.failed += 1;
                Ok(Attempt::Again(None, format!("the answer was cut: {e}")))
            }
            Err(e) => Err(HttpError::Unexpected { method: method.name(), path: path(), why: e.to_string() }),
        }
    }

    fn interval_ms_now(&self) -> u64 {
        self.interval_ms.unwrap_or(self.headers.interval_ms_default)
    }

    fn note_budget(&mut self, response: &ureq::Response) {
        if let Some(value) = self.watched_header.and_then(|name| response.header(name)) {
            self.watched = Some(value.to_string());
        }
        let number = |name: &str| response.header(name).and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(interval) = number(self.headers.interval_ms) {
            self.interval_ms = Some(interval.min(RETRY_AFTER_MAX_MS));
        }
        if let Some(left) = number(self.headers.remaining) {
            let until = self.pause.now_ms().saturating_add(self.interval_ms_now());
            self.budget.left = Some((left, until));
        }
    }
}

/// 1 s, 2 s, 4 s ... by the failures in a row so far.
fn backoff_ms(failures: u32) -> u64 {
    1000u64.saturating_mul(1u64 << failures.min(16)).min(BACKOFF_MAX_MS)
}

/// `Retry-After` in seconds (HTTP's delay-seconds; a date is not what these APIs send).
fn retry_after_ms(response: &ureq::Response) -> Option<u64> {
    let seconds: f64 = response.header("Retry-After")?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).ceil() as u64)
}

/// The vendor's message from an error body (`message`, HubSpot's and Salesforce's key), with
/// its category and correlation id when there are; the status text when the body says nothing.
fn error_message(response: ureq::Response) -> String {
    let status_text = response.status_text().to_string();
    let mut body = Vec::new();
    let _ = response.into_reader().take(64 * 1024).read_to_end(&mut body);
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    // Salesforce answers a list of errors; HubSpot one object.
    let first = match &json {
        Some(serde_json::Value::Array(list)) => list.first(),
        other => other.as_ref(),
    };
    let Some(first) = first else { return status_text };
    let text = |key: &str| first.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let mut message = text("message").unwrap_or(status_text);
    for key in ["category", "errorCode", "errorType", "policyName", "correlationId"] {
        if let Some(value) = text(key) {
            message.push_str(&format!(" ({key} {value})"));
        }
    }
    message
}

/// The path without its query, for errors (a query may carry values a log need not hold).
fn path_only(path_and_query: &str) -> String {
    path_and_query.split('?').next().unwrap_or_default().to_string()
}

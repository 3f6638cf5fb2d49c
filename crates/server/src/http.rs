//! Routes, authentication, limits and the JSON of every answer.

use crate::budget::Reserved;
use crate::config::STREAM_BUFFER_BYTES_MAX;
use crate::decode::{decode_events, Decoded};
use crate::hubspot;
use crate::writer::{Answer, Job, Message, Work};
use crate::Shared;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use dealledger_events::{stored_event_json, Currency, Rejection};
use dealledger_log::{Certainty, Log, Outcome};
use dealledger_reports::{Format, Params, ReportName};
use dealledger_whatif::{Ask, WhatIfError};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

/// Events in one page of `GET /v1/events`, by default and at most.
const PAGE_EVENTS_DEFAULT: usize = 1_000;
const PAGE_EVENTS_MAX: usize = 10_000;
/// Bytes of event JSON in one page, about, at most (events are up to 64 KiB each).
const PAGE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Events the live tail reads from the log at a time.
const STREAM_PAGE_EVENTS: usize = 1_000;
/// Bytes of a sign-in body (`{"token": ...}`), at most.
const SIGN_IN_BYTES_MAX: usize = 4096;
/// Seconds a client is asked to wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

type SharedState = State<Arc<Shared>>;

pub fn router(shared: Arc<Shared>) -> Router {
    let authenticated = Router::new()
        .route("/v1/events", post(post_events).get(get_events))
        .route("/v1/deals/{id}", get(get_deal))
        .route("/v1/deals/{id}/timeline", get(get_deal_timeline))
        .route("/v1/deals/{id}/proof", get(get_deal_proof))
        .route("/v1/reports/{name}", get(get_report))
        .route("/v1/charts/{name}", get(get_chart))
        .route("/v1/charts/deal/{id}", get(get_deal_chart))
        .route("/v1/stream", get(get_stream))
        .route("/v1/whatif", get(get_whatif))
        .route("/metrics", get(get_metrics))
        .route("/v1/quarantine", get(get_quarantine))
        .route("/v1/quarantine/retry", post(post_quarantine_retry))
        .route_layer(axum::middleware::from_fn_with_state(shared.clone(), require_token));
    Router::new()
        .merge(authenticated)
        // HubSpot cannot send our token: its deliveries are authenticated by their signature.
        .route("/v1/hooks/hubspot", post(post_hubspot))
        // The dashboard's page, script and style hold no data: every figure it shows comes
        // from the endpoints above, behind the token.
        .route("/", get(crate::dashboard::index))
        .route("/assets/app.js", get(crate::dashboard::script))
        .route("/assets/app.css", get(crate::dashboard::style))
        .route("/v1/session", post(post_session).get(get_session))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(get_ready))
        .fallback(|| async {
            error(StatusCode::NOT_FOUND, "not_found", "no such endpoint (see docs/daemon.md)".into(), None)
        })
        .layer(axum::middleware::from_fn_with_state(shared.clone(), require_json_posts))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), require_own_host))
        .with_state(shared)
}

/// Whether the bytes are equal, in time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// What a request presents to the token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Credentials {
    /// The right token, or no token is configured (loopback only).
    Token,
    /// A live session cookie of the right token: not a guess (its HMAC cannot be guessed), so
    /// never throttled.
    Session,
    /// A token that is not the right one: a guess, counted by the throttle.
    Wrong,
    /// Neither (a session cookie that has ended or is of another token counts as none: a
    /// dashboard left open overnight is not guessing).
    Absent,
}

fn credentials(shared: &Shared, headers: &HeaderMap) -> Credentials {
    let Some(token) = &shared.config.token else { return Credentials::Token };
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let given = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("").trim();
        return match same_secret(token.as_bytes(), given.as_bytes()) {
            true => Credentials::Token,
            false => Credentials::Wrong,
        };
    }
    // The dashboard's session (docs/dashboard.md): the cookie `POST /v1/session` set.
    let now_s = shared.clock.now().0.div_euclid(1_000_000);
    match crate::dashboard::session_cookie(headers) {
        Some(value) if crate::dashboard::session_valid(token, value, now_s) => Credentials::Session,
        _ => Credentials::Absent,
    }
}

/// True when the request may see internal detail: no token is configured (loopback only), or
/// it carries the right one.
fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    matches!(credentials(shared, headers), Credentials::Token | Credentials::Session)
}

/// The client's address, as the accept loop saw it (None in a test that calls the router).
fn peer(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions.get::<crate::listen::Peer>().map(|peer| peer.0)
}

/// 429 `too_many_attempts` when `peer` presents a token (right or wrong) after too many wrong
/// ones of late (crate::throttle); else, when `presented` is wrong, counts it.
// The error is the handler's answer, returned at once: boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn throttled(
    shared: &Shared,
    peer: Option<std::net::IpAddr>,
    presented: Credentials,
) -> Result<(), Response> {
    let guess = matches!(presented, Credentials::Token | Credentials::Wrong);
    let (Some(peer), true) = (peer, guess) else { return Ok(()) };
    let now_ms = shared.clock.now().0.div_euclid(1_000);
    if let Some(seconds) = shared.throttle.wait_seconds(peer, now_ms) {
        shared.metrics.reject("too_many_attempts");
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "{} wrong tokens from this address within {} s; retry in {seconds} s",
                crate::throttle::FAILURES_MAX,
                crate::throttle::WINDOW_MS / 1000
            ),
            None,
        );
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Err(response);
    }
    if presented == Credentials::Wrong {
        shared.throttle.failed(peer, now_ms);
    }
    Ok(())
}

/// `GET /v1/session`: whether this daemon wants a token and whether the request carries one
/// (bearer or session cookie): what the dashboard asks before anything else, so that it shows
/// its sign-in instead of a failed request.
async fn get_session(State(shared): SharedState, headers: HeaderMap) -> Response {
    // `now`: the daemon's clock (which a test or a replay may set), so that the dashboard's
    // default periods are the ones the reports take.
    let body = json!({
        "token_required": shared.config.token.is_some(),
        "signed_in": authorized(&shared, &headers),
        "now": shared.clock.now().to_string(),
    });
    axum::Json(body).into_response()
}

/// `POST /v1/session` `{"token": "..."}`: the dashboard's sign-in. With the right token, a
/// session cookie (HttpOnly, SameSite=Strict) that the endpoints behind the token accept; with
/// no token configured there is nothing to sign in to.
async fn post_session(State(shared): SharedState, request: Request) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SignIn {
        token: String,
    }
    let Some(token) = shared.config.token.clone() else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let peer = peer(request.extensions());
    // A sign-in is small: a larger body is not one.
    let body = match axum::body::to_bytes(request.into_body(), SIGN_IN_BYTES_MAX).await {
        Ok(body) => body,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "a sign-in is at most 4 KiB".into(),
                None,
            )
        }
    };
    let given = match serde_json::from_slice::<SignIn>(&body) {
        Ok(sign_in) => sign_in.token,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the body must be {{\"token\": \"...\"}}: {e}"),
                None,
            )
        }
    };
    let presented = match same_secret(token.as_bytes(), given.as_bytes()) {
        true => Credentials::Token,
        false => Credentials::Wrong,
    };
    if let Err(response) = throttled(&shared, peer, presented) {
        return response;
    }
    if presented == Credentials::Wrong {
        shared.metrics.reject("unauthorized");
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "wrong token".into(), None);
    }
    let now_s = shared.clock.now().0.div_euclid(1_000_000);
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, crate::dashboard::set_cookie(&token, now_s));
    response
}

/// On a loopback address, the Host header must name that address, `localhost`, or a name of
/// `[serve] allowed_hosts`: a web page that rebinds its own name to 127.0.0.1 still sends its
/// own name, and is refused. (On other addresses the token is the door.)
async fn require_own_host(State(shared): SharedState, request: Request, next: Next) -> Response {
    // Two Host headers: the proxy in front may route by one and this check read the other.
    if request.headers().get_all(header::HOST).iter().nth(1).is_some() {
        shared.metrics.reject("bad_request");
        return error(StatusCode::BAD_REQUEST, "bad_request", "more than one Host header".into(), None);
    }
    if shared.bound.ip().is_loopback() {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if !own_host(host, shared.bound, &shared.config.allowed_hosts) {
            shared.metrics.reject("wrong_host");
            return error(
                StatusCode::MISDIRECTED_REQUEST,
                "wrong_host",
                format!(
                    "Host `{}` is not this daemon ({} or localhost; a reverse proxy's name goes in [serve] allowed_hosts)",
                    host.chars().take(100).collect::<String>(),
                    shared.bound
                ),
                None,
            );
        }
    }
    next.run(request).await
}

/// Whether `host` (a Host header: name, optional port) names `bound`.
fn own_host(host: &str, bound: std::net::SocketAddr, allowed: &[String]) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        // `[::1]:7878`, `127.0.0.1:7878`, `localhost:7878`; a bare IPv6 literal has no port.
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            (name, Some(port))
        }
        _ => (host, None),
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
        return true;
    }
    let port_ok = port.is_none_or(|p| p.parse::<u16>() == Ok(bound.port()));
    let name_ok =
        name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>() == Ok(bound.ip());
    port_ok && name_ok
}

/// POSTs must say they carry JSON or NDJSON: a browser sends text/plain or a form encoding
/// across sites without asking first (a "simple request"), never these.
async fn require_json_posts(State(shared): SharedState, request: Request, next: Next) -> Response {
    if request.method() == Method::POST {
        let content_type =
            request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if essence != "application/json" && essence != "application/x-ndjson" {
            shared.metrics.reject("unsupported_media_type");
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type `{}`: send application/json or application/x-ndjson",
                    content_type.chars().take(100).collect::<String>()
                ),
                None,
            );
        }
    }
    next.run(request).await
}

fn error(status: StatusCode, code: &str, reason: String, index: Option<usize>) -> Response {
    (status, axum::Json(json!({"error": code, "index": index, "reason": reason}))).into_response()
}

fn unavailable(code: &str, reason: String) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, code, reason, None);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    response
}

/// A write whose outcome nobody knows: the truthful answer, and what makes a retry safe.
fn outcome_unknown(shared: &Shared, why: String) -> Response {
    shared.metrics.reject("outcome_unknown");
    unavailable(
        "outcome_unknown",
        format!(
            "the events may or may not be stored ({why}); retry with the same source_id values: \
             what was stored comes back as duplicates"
        ),
    )
}

fn refused(shared: &Shared, index: Option<usize>, rejection: &Rejection) -> Response {
    shared.metrics.reject(rejection.rule.as_str());
    let status = if rejection.rule.is_conflict() { StatusCode::CONFLICT } else { StatusCode::BAD_REQUEST };
    let mut body = json!({"error": rejection.rule.as_str(), "index": index, "reason": rejection.to_string()});
    if let Some(field) = rejection.field {
        set(&mut body, "field", field);
    }
    (status, axum::Json(body)).into_response()
}

async fn require_token(State(shared): SharedState, request: Request, next: Next) -> Response {
    let presented = credentials(&shared, request.headers());
    if let Err(response) = throttled(&shared, peer(request.extensions()), presented) {
        return response;
    }
    if !matches!(presented, Credentials::Token | Credentials::Session) {
        shared.metrics.reject("unauthorized");
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token (Authorization: Bearer TOKEN)".into(),
            None,
        );
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

/// The whole body, within `limit` bytes (counted as it arrives: a larger body is refused before
/// it is all read, `limit_name` says which setting) and the body-read timeout.
/// Why a body could not be read.
enum ReadFailure {
    TooLarge,
    Busy,
    Broken(String),
}

/// Reads a body of at most `limit` bytes within `body_read_timeout_ms`, holding its bytes in the
/// memory budget as they arrive (all at once when the client announced its length).
async fn read_body(
    shared: &Shared,
    pool: Pool,
    body: Body,
    announced_bytes: Option<usize>,
    limit: usize,
    limit_name: &str,
) -> Result<(axum::body::Bytes, Reserved), Response> {
    use futures_util::StreamExt;
    let mut reserved = match pool {
        Pool::Authenticated => shared.budget.reserve(),
        Pool::Unsigned => shared.unsigned.reserve(),
    };
    let read = async {
        let mut bytes = Vec::new();
        let mut stream = body.into_data_stream();
        if let Some(announced) = announced_bytes {
            if announced > limit {
                return Err(ReadFailure::TooLarge);
            }
            if !reserved.grow(announced) {
                return Err(drain(&mut stream, limit).await);
            }
            bytes.reserve_exact(announced);
        }
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ReadFailure::Broken(e.to_string()))?;
            let total = bytes.len().saturating_add(chunk.len());
            if total > limit {
                return Err(ReadFailure::TooLarge);
            }
            if total > reserved.bytes() && !reserved.grow(total - reserved.bytes()) {
                return Err(drain(&mut stream, limit).await);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let timeout = Duration::from_millis(shared.config.body_read_timeout_ms);
    match tokio::time::timeout(timeout, read).await {
        Err(_) => {
            shared.metrics.reject("timeout");
            Err(error(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "the body did not arrive within {} ms (body_read_timeout_ms)",
                    shared.config.body_read_timeout_ms
                ),
                None,
            ))
        }
        Ok(Err(ReadFailure::TooLarge)) => {
            shared.metrics.reject("too_large");
            Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body is larger than {limit} bytes ({limit_name})"),
                None,
            ))
        }
        Ok(Err(ReadFailure::Busy)) => Err(match pool {
            Pool::Authenticated => busy(shared),
            Pool::Unsigned => busy_unsigned(shared),
        }),
        Ok(Err(ReadFailure::Broken(why))) => {
            shared.metrics.reject("bad_body");
            Err(error(StatusCode::BAD_REQUEST, "bad_body", format!("cannot read the body: {why}"), None))
        }
        Ok(Ok(bytes)) => Ok((bytes.into(), reserved)),
    }
}

/// Reads the rest of a body that will be refused for the budget, holding none of it, so that the
/// client (still sending) reads the 503 instead of a broken connection. At most `limit` bytes.
async fn drain(stream: &mut axum::body::BodyDataStream, limit: usize) -> ReadFailure {
    use futures_util::StreamExt;
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            break;
        }
    }
    ReadFailure::Busy
}

/// The memory budget is spent: 503, retry.
fn busy(shared: &Shared) -> Response {
    shared.metrics.reject("queue_full");
    unavailable(
        "queue_full",
        format!(
            "{} bytes of requests are in memory, the most this daemon holds ([serve] queue_bytes_max = {}); retry",
            shared.budget.used_bytes(),
            shared.budget.max_bytes()
        ),
    )
}

/// Which budget a body is read against.
#[derive(Clone, Copy)]
enum Pool {
    /// The shared one (`[serve] queue_bytes_max`): requests already authenticated.
    Authenticated,
    /// HubSpot deliveries before their signature is checked (`[hubspot] unsigned_bytes_max`).
    Unsigned,
}

/// The unsigned deliveries' budget is spent: 503 (HubSpot retries), and nothing else waits.
fn busy_unsigned(shared: &Shared) -> Response {
    shared.metrics.reject("unsigned_full");
    unavailable(
        "unsigned_full",
        format!(
            "{} bytes of deliveries whose signature is not checked yet are being read, the most this daemon \
             reads at once ([hubspot] unsigned_bytes_max = {}); retry",
            shared.unsigned.used_bytes(),
            shared.unsigned.max_bytes()
        ),
    )
}

/// The length a request announced, if it announced one that parses.
fn announced_bytes(headers: &HeaderMap) -> Option<usize> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

async fn post_events(State(shared): SharedState, request: Request) -> Response {
    let announced = announced_bytes(request.headers());
    let limit = shared.config.body_bytes_max;
    let (body, mut reserved) = match read_body(
        &shared,
        Pool::Authenticated,
        request.into_body(),
        announced,
        limit,
        "[serve] body_bytes_max",
    )
    .await
    {
        Ok(read) => read,
        Err(response) => return response,
    };
    let decoded = decode_events(&body, shared.config.request_events_max);
    // The events' text is in their strings now (at most the body's bytes, which stay counted);
    // the body itself goes.
    drop(body);
    match decoded {
        Decoded::Events(submissions) => {
            if !reserved
                .grow(submissions.len().saturating_mul(std::mem::size_of::<dealledger_events::Submission>()))
            {
                return busy(&shared);
            }
            submit(&shared, Work::Events(submissions), reserved).await
        }
        Decoded::Bad(bad) => refused(&shared, bad.index, &bad.rejection),
        Decoded::TooMany(t) => {
            shared.metrics.reject("too_many_events");
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                format!("more than {} events in one request (request_events_max)", t.events_max),
                None,
            )
        }
    }
}

async fn post_hubspot(State(shared): SharedState, headers: HeaderMap, request: Request) -> Response {
    let Some(config) = shared.hubspot_config() else {
        return error(
            StatusCode::NOT_FOUND,
            "not_configured",
            "HubSpot webhooks need a [hubspot] section with app_secret in dealledger.toml".into(),
            None,
        );
    };
    let path = request.uri().path_and_query().map_or("/v1/hooks/hubspot".to_string(), |p| p.to_string());
    let uri = match &config.public_url {
        Some(base) => format!("{base}{path}"),
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            format!("http://{host}{path}")
        }
    };
    let announced = announced_bytes(request.headers());
    let (body, unsigned) = match read_body(
        &shared,
        Pool::Unsigned,
        request.into_body(),
        announced,
        config.body_bytes_max,
        "[hubspot] body_bytes_max",
    )
    .await
    {
        Ok(read) => read,
        Err(response) => return response,
    };
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(why) = hubspot::verify_v3(
        &config.app_secret,
        Method::POST.as_str(),
        &uri,
        &body,
        header_text("x-hubspot-request-timestamp"),
        header_text("x-hubspot-signature-v3"),
        shared.clock.now(),
    ) {
        shared.metrics.reject("bad_signature");
        return error(StatusCode::UNAUTHORIZED, "bad_signature", why.to_string(), None);
    }
    // Signed: from here the delivery is HubSpot's, and its bytes count against the shared
    // budget like any authenticated request's.
    let mut reserved = shared.budget.reserve();
    if !reserved.grow(body.len()) {
        return busy(&shared);
    }
    drop(unsigned);
    match hubspot::parse_deliveries(&body) {
        Ok(notifications) => {
            // A JSON tree of the body (about its size again) and one Notification each.
            let tree = body.len().saturating_add(
                notifications.len().saturating_mul(std::mem::size_of::<hubspot::Notification>()),
            );
            drop(body);
            if !reserved.grow(tree) {
                return busy(&shared);
            }
            submit(&shared, Work::HubSpot(notifications), reserved).await
        }
        Err(rejection) => refused(&shared, None, &rejection),
    }
}

/// The quarantined HubSpot notifications, oldest first.
async fn get_quarantine(
    State(shared): SharedState,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = only_params(&query, &[]) {
        return response;
    }
    let Some(quarantine) = shared.quarantine.as_ref() else {
        return error(
            StatusCode::NOT_FOUND,
            "not_configured",
            "no [hubspot] section: nothing is quarantined".into(),
            None,
        );
    };
    let quarantine = quarantine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    axum::Json(crate::quarantine::listing(&quarantine)).into_response()
}

/// Reads `[hubspot]` of dealledger.toml again (a stage mapping added since the start), then
/// retries every quarantined notification.
async fn post_quarantine_retry(State(shared): SharedState, request: Request) -> Response {
    // The body is not used; it is read (bounded) so the connection stays usable.
    let announced = announced_bytes(request.headers());
    let reserved = match read_body(
        &shared,
        Pool::Authenticated,
        request.into_body(),
        announced,
        64 * 1024,
        "the retry's body limit",
    )
    .await
    {
        Ok((_, reserved)) => reserved,
        Err(response) => return response,
    };
    if let Some(path) = &shared.config.config_path {
        let reread = dealledger_config::Config::read(path).map_err(|e| e.to_string()).and_then(|file| {
            crate::config::serve_config_from(&file, &shared.settings.pipeline).map_err(|e| e.to_string())
        });
        match reread {
            Ok(config) => match config.hubspot {
                Some(hubspot) => {
                    *shared.hubspot.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(Arc::new(hubspot))
                }
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_config",
                        format!("{}: no [hubspot] section", path.display()),
                        None,
                    )
                }
            },
            Err(why) => return error(StatusCode::BAD_REQUEST, "bad_config", why, None),
        }
    }
    submit(&shared, Work::RetryQuarantine, reserved).await
}

/// Queues work for the writer and waits for its answer.
async fn submit(shared: &Arc<Shared>, work: Work, reserved: Reserved) -> Response {
    let hubspot = !matches!(work, Work::Events(_));
    // No short cut when the writer has failed: it answers (and retries its recovery) itself.
    let (reply, answer) = tokio::sync::oneshot::channel();
    shared.metrics.queue_depth.fetch_add(1, Relaxed);
    if let Err(e) = shared.queue.try_send(Message::Job(Job { work, reply, reserved })) {
        shared.metrics.queue_depth.fetch_sub(1, Relaxed);
        return match e {
            std::sync::mpsc::TrySendError::Full(_) => {
                shared.metrics.reject("queue_full");
                unavailable(
                    "queue_full",
                    format!(
                        "{} requests are waiting for the writer (queue_requests_max); retry",
                        shared.config.queue_requests_max
                    ),
                )
            }
            std::sync::mpsc::TrySendError::Disconnected(_) => {
                unavailable("writer_stopped", "the writer has stopped".into())
            }
        };
    }
    let timeout = Duration::from_millis(shared.config.request_timeout_ms);
    match tokio::time::timeout(timeout, answer).await {
        Err(_) => {
            shared.metrics.reject("timeout");
            unavailable(
                "timeout",
                format!(
                    "not acknowledged within {} ms; the batch may still be stored: retry with the same source_id values",
                    shared.config.request_timeout_ms
                ),
            )
        }
        // The writer dropped the reply: it panicked, or could not fold what it had stored.
        Ok(Err(_)) => outcome_unknown(shared, "the writer failed before answering".into()),
        Ok(Ok(Answer::Refused { index, rejection })) => refused(shared, Some(index), &rejection),
        Ok(Ok(Answer::Failed { certainty: Certainty::NothingStored, why })) => {
            shared.metrics.reject("store_failed");
            unavailable("store_failed", format!("nothing was stored: {why}"))
        }
        Ok(Ok(Answer::Failed { certainty: Certainty::Unknown, why })) => outcome_unknown(shared, why),
        Ok(Ok(Answer::Unavailable { code, why })) => {
            shared.metrics.reject(code);
            unavailable(code, why)
        }
        Ok(Ok(Answer::Acked { outcomes, ignored, quarantined, remaining })) => {
            let mut events = Vec::with_capacity(outcomes.len());
            let (mut first, mut last, mut duplicates) = (None::<u64>, None::<u64>, 0u64);
            for (deal, outcome) in &outcomes {
                let (seq, version, duplicate) = match *outcome {
                    Outcome::Appended { seq, version } => {
                        first = Some(first.map_or(seq, |f| f.min(seq)));
                        last = Some(last.map_or(seq, |l| l.max(seq)));
                        (seq, version, false)
                    }
                    Outcome::Duplicate { seq, version } => {
                        duplicates += 1;
                        (seq, version, true)
                    }
                };
                events.push(json!({"seq": seq, "deal": deal, "version": version, "duplicate": duplicate}));
            }
            let mut body =
                json!({"first_seq": first, "last_seq": last, "duplicates": duplicates, "events": events});
            if ignored > 0 {
                set(&mut body, "ignored", ignored);
            }
            if hubspot {
                let held: Vec<serde_json::Value> = quarantined
                    .iter()
                    .map(|(index, r)| json!({"index": index, "rule": r.rule.as_str(), "field": r.field, "reason": r.detail}))
                    .collect();
                set(&mut body, "quarantined", held.len());
                set(&mut body, "quarantine", held);
            }
            if let Some(remaining) = remaining {
                set(&mut body, "admitted", outcomes.len() as u64 - duplicates);
                set(&mut body, "remaining", remaining);
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
    }
}

/// How much lower than the daemon's the priority of the threads that run readers is (reports,
/// what-ifs, deal lookups, event pages), in nice steps. On a machine of two cores a what-if folds
/// on both; below the writer's priority it cannot delay the writer's or the HTTP workers'
/// wakeups, and still has every idle cycle.
const READER_NICE_INCREMENT: i32 = 10;

/// Moves this thread (a blocking-pool thread about to run a reader) below the writer's
/// priority, once: the pool runs only readers, and threads a reader spawns inherit it.
fn as_reader() {
    thread_local!(static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if LOWERED.with(|lowered| lowered.replace(true)) {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: nice(2) takes an integer and touches no memory of ours. On Linux it changes
        // the calling thread only. Lowering priority needs no privilege; a failure leaves the
        // thread at the writer's priority, which is slower for the writer, never wrong.
        let nice = unsafe { libc::nice(READER_NICE_INCREMENT) };
        if nice == -1 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower a reader's priority");
        }
    }
}

/// A reader that sees the log up to the last durable head.
pub(crate) fn reader(shared: &Shared) -> Log<crate::Store> {
    Log::at_head(shared.store.clone(), *shared.head.borrow())
}

/// Waits until the timeline has folded every event durable now. The writer answers without
/// waiting for the folder; a reader that must reflect every acknowledgement waits here instead.
// The error is the handler's answer, returned at once: boxing it would buy nothing.
#[allow(clippy::result_large_err)]
async fn caught_up(shared: &Shared) -> Result<(), Response> {
    let target = shared.head.borrow().seq;
    let mut folded = shared.folded.subscribe();
    let timeout = Duration::from_millis(shared.config.request_timeout_ms);
    let reached =
        tokio::time::timeout(timeout, folded.wait_for(|seq| *seq >= target)).await.is_ok_and(|r| r.is_ok());
    match reached {
        true => Ok(()),
        false => Err(unavailable(
            "timeline_behind",
            format!(
                "the timeline has not folded seq {target} within {} ms (request_timeout_ms); retry",
                shared.config.request_timeout_ms
            ),
        )),
    }
}

/// Events with seq in [from, ..] up to `limit` and about `bytes_max` of JSON (always at least
/// one), as JSON objects: a page of large events is cut short, and `next_seq` says where the
/// next one starts.
fn read_events(
    shared: &Shared,
    from: u64,
    limit: usize,
    bytes_max: usize,
) -> Result<Vec<(u64, String)>, String> {
    let log = reader(shared);
    let timeline = shared.timeline.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut page: Vec<(u64, String)> = Vec::new();
    let mut bytes = 0usize;
    log.scan(from.max(1), |stored| {
        let currency = timeline.deal(stored.event.deal.as_str()).map_or(Currency::USD, |d| d.currency);
        let json = stored_event_json(&stored, currency);
        bytes = bytes.saturating_add(json.len() + 1);
        page.push((stored.seq, json));
        Ok(page.len() < limit && bytes < bytes_max)
    })
    .map_err(|e| e.to_string())?;
    Ok(page)
}

fn bad_param(param: &str, reason: String) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_parameter", format!("{param}: {reason}"), None)
}

// The error is the handler's answer, returned at once: boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn only_params(query: &HashMap<String, String>, allowed: &[&str]) -> Result<(), Response> {
    match query.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => {
            Err(bad_param(unknown, format!("unknown parameter (this endpoint takes {})", allowed.join(", "))))
        }
        None => Ok(()),
    }
}

// The error is the handler's answer, returned at once: boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn number(query: &HashMap<String, String>, name: &str, default: u64) -> Result<u64, Response> {
    match query.get(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| bad_param(name, format!("`{text}` is not a whole number"))),
    }
}

async fn get_events(State(shared): SharedState, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Err(response) = only_params(&query, &["from_seq", "limit"]) {
        return response;
    }
    let from = match number(&query, "from_seq", 1) {
        Ok(n) => n,
        Err(response) => return response,
    };
    let limit = match number(&query, "limit", PAGE_EVENTS_DEFAULT as u64) {
        Ok(n) if (1..=PAGE_EVENTS_MAX as u64).contains(&n) => n as usize,
        Ok(n) => return bad_param("limit", format!("{n} is not in 1..={PAGE_EVENTS_MAX}")),
        Err(response) => return response,
    };
    if let Err(response) = caught_up(&shared).await {
        return response;
    }
    let head = shared.head.borrow().seq;
    let task_shared = shared.clone();
    let read = tokio::task::spawn_blocking(move || {
        as_reader();
        read_events(&task_shared, from, limit, PAGE_BYTES_MAX)
    })
    .await;
    match read {
        Ok(Ok(events)) => {
            let next = events.last().map_or(from.max(1).min(head + 1), |(seq, _)| seq + 1);
            let mut body = String::with_capacity(events.iter().map(|(_, e)| e.len() + 2).sum::<usize>() + 64);
            body.push_str("{\"events\":[");
            for (i, (_, event)) in events.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(event);
            }
            body.push_str(&format!("],\"next_seq\":{next},\"head_seq\":{head}}}\n"));
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Ok(Err(why)) => error(StatusCode::INTERNAL_SERVER_ERROR, "read_failed", why, None),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "read_failed", e.to_string(), None),
    }
}

/// Deal `id`'s stored events, each with the header of its block, read on a reader thread by the
/// timeline's index (its lock held only to copy the seqs), and the deal's currency; the answer
/// to send instead when the deal is unknown or the read fails.
async fn deal_events(
    shared: &Arc<Shared>,
    id: &str,
) -> Result<(Vec<(dealledger_events::StoredEvent, dealledger_log::block::Header)>, Currency), Response> {
    let unknown =
        || error(StatusCode::NOT_FOUND, "unknown_deal", format!("deal `{id}` is not in the ledger"), None);
    if dealledger_events::DealId::parse(id).is_err() {
        return Err(unknown());
    }
    caught_up(shared).await?;
    let task_shared = shared.clone();
    let wanted = id.to_string();
    let read = tokio::task::spawn_blocking(move || {
        as_reader();
        let log = reader(&task_shared);
        let (seqs, offsets, currency) = {
            let timeline = task_shared.timeline.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(deal) = timeline.deal(&wanted) else { return Ok(None) };
            (deal.seqs().to_vec(), deal.offsets().to_vec(), deal.currency)
        };
        let mut events = Vec::with_capacity(seqs.len());
        log.read_deal_in_blocks(&wanted, &seqs, &offsets, |stored, header| {
            events.push((stored, *header));
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok::<_, String>(Some((events, currency)))
    })
    .await;
    match read {
        Ok(Ok(Some(found))) => Ok(found),
        Ok(Ok(None)) => Err(unknown()),
        Ok(Err(why)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "read_failed", why, None)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "read_failed", e.to_string(), None)),
    }
}

async fn get_deal(State(shared): SharedState, Path(id): Path<String>) -> Response {
    match deal_events(&shared, &id).await {
        Ok((events, currency)) => {
            let parts: Vec<String> =
                events.iter().map(|(stored, _)| stored_event_json(stored, currency)).collect();
            ([(header::CONTENT_TYPE, "application/json")], format!("[{}]\n", parts.join(","))).into_response()
        }
        Err(response) => response,
    }
}

/// `GET /v1/deals/{id}/proof`: each of the deal's events with the block that holds it (its first
/// and last seq) and the chain hashes before and after that block: where the event sits in the
/// hash chain, which `audit verify` recomputes. What the dashboard's deal page shows a click away.
async fn get_deal_proof(State(shared): SharedState, Path(id): Path<String>) -> Response {
    let (events, _) = match deal_events(&shared, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let hex = |hash: &[u8; 32]| hash.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let proof: Vec<_> = events
        .iter()
        .map(|(stored, block)| {
            json!({
                "seq": stored.seq,
                "type": stored.event.body.kind().as_str(),
                "block_first_seq": block.first_seq,
                "block_last_seq": block.last_seq(),
                "prev_chain": hex(&block.prev_chain),
                "chain": hex(&block.chain),
            })
        })
        .collect();
    axum::Json(json!({"deal": id, "events": proof})).into_response()
}

/// `GET /v1/deals/{id}/timeline?as_of=&known_at=`: the deal as the view folds it (stage visits,
/// touches, changes), what the dashboard's deal page lists.
async fn get_deal_timeline(
    State(shared): SharedState,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    deal_view_answer(&shared, &id, &query, |timeline, view| {
        dealledger_reports::deal_history::timeline_json(timeline, &id, view)
            .map(|body| axum::Json(body).into_response())
    })
    .await
}

/// `GET /v1/charts/deal/{id}?as_of=&known_at=`: the deal on a time axis.
async fn get_deal_chart(
    State(shared): SharedState,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    deal_view_answer(&shared, &id, &query, |timeline, view| {
        dealledger_reports::deal_history::timeline_chart(timeline, &id, view)
            .map(|chart| ([(header::CONTENT_TYPE, SVG_TYPE)], chart.svg()).into_response())
    })
    .await
}

/// One deal as a view sees it, answered by `answer` once the timeline has folded every durable
/// event; 404 when the view does not see the deal.
async fn deal_view_answer(
    shared: &Shared,
    id: &str,
    query: &HashMap<String, String>,
    answer: impl FnOnce(&dealledger_projections::Timeline, dealledger_projections::View) -> Option<Response>,
) -> Response {
    let view = match deal_view(shared, query) {
        Ok(view) => view,
        Err(response) => return response,
    };
    if let Err(response) = caught_up(shared).await {
        return response;
    }
    let timeline = shared.timeline.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    answer(&timeline, view).unwrap_or_else(|| unknown_deal(id))
}

/// The view of a deal's page (`as_of`, `known_at`), or the answer to a parameter that is wrong.
// The error is the handler's answer, returned at once: boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn deal_view(
    shared: &Shared,
    query: &HashMap<String, String>,
) -> Result<dealledger_projections::View, Response> {
    only_params(query, &["as_of", "known_at"])?;
    let params = Params::from_query(|name| query.get(name).cloned())
        .map_err(|e| bad_param(e.param, format!("`{}`: {}", e.value, e.reason)))?;
    dealledger_reports::query::view_of(&params, shared.clock.now())
        .map_err(|e| bad_param(e.param, format!("`{}`: {}", e.value, e.reason)))
}

fn unknown_deal(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "unknown_deal", format!("deal `{id}` is not in the ledger as of then"), None)
}

async fn get_report(
    State(shared): SharedState,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (report, params) = match report_request(&name, &query, &["format"]) {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    let format = match query.get("format").map(String::as_str) {
        None => Format::Json,
        Some(text) => match Format::parse(text) {
            Some(format) => format,
            None => return bad_param("format", format!("`{text}` is not json, table or csv")),
        },
    };
    let answered = answer_report(&shared, move |timeline, settings, now| {
        dealledger_reports::answer(report, &params, timeline, settings, now, format)
    })
    .await;
    match answered {
        Ok(answered) => rendered(format, answered),
        Err(response) => response,
    }
}

/// `GET /v1/charts/{name}` (a report's parameters, or `whatif` and a sweep's): the picture the
/// dashboard shows, as SVG (the one chart module's, `dealledger_reports::chart`).
async fn get_chart(State(shared): SharedState, Path(name): Path<String>, request: Request) -> Response {
    let raw = request.uri().query().unwrap_or("");
    if name == "whatif" {
        return get_whatif_chart(shared, raw).await;
    }
    let Ok(Query(query)) = Query::<HashMap<String, String>>::try_from_uri(request.uri()) else {
        return bad_param("query", "the query string is not form-encoded".into());
    };
    let (report, params) = match report_request(&name, &query, &[]) {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    let svg = answer_report(&shared, move |timeline, settings, now| {
        dealledger_reports::chart(report, &params, timeline, settings, now)
    })
    .await;
    match svg {
        Ok(svg) => ([(header::CONTENT_TYPE, SVG_TYPE)], svg).into_response(),
        Err(response) => response,
    }
}

/// The report and its parameters of `GET /v1/reports/{name}` and `/v1/charts/{name}` (which
/// also takes `more`), or the answer to a name or parameter that is wrong.
// The error is the handler's answer, returned at once: boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn report_request(
    name: &str,
    query: &HashMap<String, String>,
    more: &[&str],
) -> Result<(ReportName, Params), Response> {
    let Some(report) = ReportName::parse(name) else {
        let names: Vec<&str> = ReportName::ALL.iter().map(|n| n.as_str()).collect();
        return Err(error(
            StatusCode::NOT_FOUND,
            "unknown_report",
            format!("no report `{name}` (reports: {})", names.join(", ")),
            None,
        ));
    };
    let mut allowed: Vec<&str> = report.params().to_vec();
    allowed.extend(more);
    only_params(query, &allowed)?;
    let params = Params::from_query(|name| query.get(name).cloned())
        .map_err(|e| bad_param(e.param, format!("`{}`: {}", e.value, e.reason)))?;
    Ok((report, params))
}

/// Asks `ask` of the timeline on a reader thread, once it has folded every durable event (and
/// its folds of now are fresh).
async fn answer_report<T: Send + 'static>(
    shared: &Arc<Shared>,
    ask: impl FnOnce(
            &dealledger_projections::Timeline,
            &dealledger_reports::Settings,
            dealledger_events::Timestamp,
        ) -> Result<T, dealledger_reports::ParamError>
        + Send
        + 'static,
) -> Result<T, Response> {
    caught_up(shared).await?;
    let now = shared.clock.now();
    let task_shared = shared.clone();
    let answered = tokio::task::spawn_blocking(move || {
        as_reader();
        let shared = task_shared;
        if !shared.timeline.read().unwrap_or_else(std::sync::PoisonError::into_inner).is_fresh() {
            shared.timeline.write().unwrap_or_else(std::sync::PoisonError::into_inner).refresh();
        }
        let timeline = shared.timeline.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        ask(&timeline, &shared.settings, now)
    })
    .await;
    match answered {
        Ok(Ok(sent)) => Ok(sent),
        Ok(Err(e)) => Err(bad_param(e.param, format!("`{}`: {}", e.value, e.reason))),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "report_failed", e.to_string(), None)),
    }
}

/// A report or what-if as rendered: its text, and for CSV, which has no room for them, what it
/// says of its own figures as `Dealledger-Note` headers (one a note, non-ASCII as `?`: a header
/// holds visible ASCII).
fn rendered(format: Format, answered: dealledger_reports::Answered) -> Response {
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

/// The header of a CSV answer's notes.
pub const NOTE_HEADER: &str = "dealledger-note";

/// The live tail: every event from `from_seq` (or after `Last-Event-ID`), then each new one as
/// it becomes durable. Ends when the daemon shuts down.
///
/// A tail costs bytes, never a thread: it is a future polled as its client takes what it was
/// sent, reading ahead at most about [`STREAM_BUFFER_BYTES_MAX`] of events, and its pages are
/// read on the blocking pool [`crate::STREAM_READS_MAX`] tails at a time. At most
/// `[serve] streams_max` are open at once (503 `too_many_streams` past it).
async fn get_stream(
    State(shared): SharedState,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = only_params(&query, &["from_seq"]) {
        return response;
    }
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let from = match resume {
        Some(text) => match text.trim().parse::<u64>().ok().and_then(|seq| seq.checked_add(1)) {
            Some(next) => next,
            None => return bad_param("Last-Event-ID", format!("`{text}` is not a sequence number")),
        },
        None => match number(&query, "from_seq", shared.head.borrow().seq + 1) {
            Ok(n) => n.max(1),
            Err(response) => return response,
        },
    };
    let Ok(place) = shared.streams.clone().try_acquire_owned() else {
        shared.metrics.reject("too_many_streams");
        return unavailable(
            "too_many_streams",
            format!("{} live tails are open ([serve] streams_max); retry shortly", shared.config.streams_max),
        );
    };
    /// One client's tail; its place and its count in the gauge go with it.
    struct Tail {
        shared: Arc<Shared>,
        next: u64,
        pending: VecDeque<(u64, String)>,
        head: tokio::sync::watch::Receiver<dealledger_log::Head>,
        shutdown: tokio::sync::watch::Receiver<bool>,
        _place: tokio::sync::OwnedSemaphorePermit,
    }
    impl Drop for Tail {
        fn drop(&mut self) {
            self.shared.metrics.streams_open.fetch_sub(1, Relaxed);
        }
    }
    shared.metrics.streams_open.fetch_add(1, Relaxed);
    let tail = Tail {
        head: shared.head.subscribe(),
        shutdown: shared.shutdown.subscribe(),
        shared,
        next: from,
        pending: VecDeque::new(),
        _place: place,
    };
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        loop {
            if let Some((seq, data)) = tail.pending.pop_front() {
                let event = SseEvent::default().id(seq.to_string()).event("event").data(data);
                return Some((Ok::<_, std::convert::Infallible>(event), tail));
            }
            if *tail.shutdown.borrow() {
                return None;
            }
            let head = tail.head.borrow_and_update().seq;
            if tail.next <= head {
                let (shared, from) = (tail.shared.clone(), tail.next);
                // Amounts are printed in their deal's currency, which the timeline knows once
                // it has folded the deal's opening.
                let _ = caught_up(&shared).await;
                let reading = tokio::select! {
                    reading = shared.stream_reads.acquire() => reading,
                    _ = tail.shutdown.changed() => return None,
                };
                let Ok(_reading) = reading else { return None };
                let page = tokio::task::spawn_blocking({
                    let shared = shared.clone();
                    move || {
                        as_reader();
                        read_events(&shared, from, STREAM_PAGE_EVENTS, STREAM_BUFFER_BYTES_MAX)
                    }
                })
                .await;
                match page {
                    Ok(Ok(events)) if !events.is_empty() => {
                        tail.next = events.last().expect("not empty").0 + 1;
                        tail.pending.extend(events);
                        continue;
                    }
                    Ok(Ok(_)) => tail.next = head + 1,
                    // A read error ends the stream; the client resumes with Last-Event-ID.
                    _ => return None,
                }
                continue;
            }
            tokio::select! {
                changed = tail.head.changed() => if changed.is_err() { return None },
                _ = tail.shutdown.changed() => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// `GET /v1/whatif?rule=gone_dark=14&rule=...&from=&to=&as_of=&by=owner&deals=true&format=`:
/// the JSON of `dealledger whatif --rule ...`; with `sweep=RULE=FROM..TO[:STEP]` that of
/// `--sweep`, with `policy=RULE=VALUE,...` given twice or more that of `--compare`.
async fn get_whatif(State(shared): SharedState, request: Request) -> Response {
    let (question, format) = match whatif_request(request.uri().query().unwrap_or("")) {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    let answered = answer_whatif(&shared, question, move |answer| Some(answer.render(format))).await;
    match answered {
        Ok(answered) => rendered(format, answered),
        Err(response) => response,
    }
}

/// `GET /v1/charts/whatif?sweep=...` (the parameters of `GET /v1/whatif`): the sweep's chart.
async fn get_whatif_chart(shared: Arc<Shared>, query: &str) -> Response {
    let (question, _) = match whatif_request(query) {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    if !matches!(question.ask, Ask::Sweep(..)) {
        return bad_param("sweep", "a chart is of a sweep: sweep=RULE=FROM..TO[:STEP]".into());
    }
    let svg = answer_whatif(&shared, question, |answer| answer.chart().map(|chart| chart.svg())).await;
    match svg {
        Ok(svg) => ([(header::CONTENT_TYPE, SVG_TYPE)], svg).into_response(),
        Err(response) => response,
    }
}

/// The media type of a chart.
const SVG_TYPE: &str = "image/svg+xml";

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
) -> Result<T, Response> {
    caught_up(shared).await?;
    let target = shared.head.borrow().seq;
    let wait = Duration::from_millis(shared.config.request_timeout_ms);
    let slot = match tokio::time::timeout(wait, shared.whatifs.clone().acquire_owned()).await {
        Ok(Ok(slot)) => slot,
        _ => {
            shared.metrics.reject("whatif_busy");
            return Err(unavailable(
                "whatif_busy",
                format!(
                    "{} what-if(s) running ([serve] whatifs_max) and none finished within {} ms (request_timeout_ms); retry",
                    shared.config.whatifs_max, shared.config.request_timeout_ms
                ),
            ));
        }
    };
    let gone = GoneOnDrop(Arc::new(AtomicBool::new(false)));
    let (task_shared, client_gone) = (shared.clone(), gone.0.clone());
    let now = shared.clock.now();
    let limit = Duration::from_millis(shared.config.whatif_timeout_ms);
    let answered = tokio::task::spawn_blocking(move || {
        as_reader();
        let _slot = slot;
        let _running = Running::new(&task_shared.metrics.whatifs_running);
        let timeline = whatif_timeline(&task_shared, target);
        let deadline = WhatIfDeadline::new(limit, client_gone);
        question.answer(&timeline, &task_shared.settings, now, &|progress| deadline.check(progress)).map(then)
    })
    .await;
    drop(gone);
    match answered {
        Ok(Ok(Some(sent))) => Ok(sent),
        Ok(Ok(None)) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "whatif_failed",
            "the answer has nothing to send".into(),
            None,
        )),
        Ok(Err(WhatIfError::Stopped(why))) => {
            shared.metrics.reject("whatif_timeout");
            Err(error(StatusCode::SERVICE_UNAVAILABLE, "whatif_timeout", why, None))
        }
        Ok(Err(e)) => {
            let param = match e {
                WhatIfError::Policy(_) => "rule",
                WhatIfError::Sweep(_) => "sweep",
                WhatIfError::Compare(_) => "policy",
                WhatIfError::Currency(_) => "currency",
                WhatIfError::Stopped(_) => unreachable!("answered above"),
            };
            Err(bad_param(param, e.to_string()))
        }
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "whatif_failed", e.to_string(), None)),
    }
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

/// The copy of the timeline what-ifs read, folded at least to `target`: the one a running
/// what-if reads when it is far enough, else a fresh copy (the lock held only to copy).
fn whatif_timeline(shared: &Shared, target: u64) -> Arc<dealledger_projections::Timeline> {
    let mut kept = shared.whatif_timeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(timeline) = kept.1.upgrade().filter(|_| kept.0 >= target) {
        return timeline;
    }
    let timeline = shared.timeline.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Read under the lock: the timeline has folded at least this far (the folder says so only
    // after it lets the lock go).
    let folded = *shared.folded.borrow();
    let copy = Arc::new(timeline.snapshot());
    drop(timeline);
    *kept = (folded, Arc::downgrade(&copy));
    copy
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

/// The what-if question and format of a query string, or the answer to a parameter that is
/// wrong.
// The error is the handler's answer, returned at once: boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn whatif_request(query: &str) -> Result<(dealledger_whatif::Question, Format), Response> {
    // Repeated `rule`, `policy` and `label` parameters: parsed by hand, the map extractor keeps
    // one value per key.
    let (mut rules, mut compared, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    let mut single: HashMap<String, String> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match key {
            "rule" => rules.push(value),
            "policy" => compared.push(value),
            "label" => labels.push(value),
            _ => {
                single.insert(key.to_string(), value);
            }
        }
    }
    only_params(
        &single,
        &["from", "to", "as_of", "as_logged", "by", "deals", "format", "sweep", "currency"],
    )?;
    let mut policy = dealledger_whatif::Policy::default();
    for rule in &rules {
        policy.set_text(rule).map_err(|why| bad_param("rule", why.to_string()))?;
    }
    let ask = whatif_question(policy, &compared, &labels, single.get("sweep"))
        .map_err(|(param, why)| bad_param(param, why))?;
    let moment = |name: &'static str| -> Result<Option<dealledger_events::Timestamp>, Response> {
        single
            .get(name)
            .map(|t| {
                dealledger_events::Timestamp::parse_instant_or_date(t)
                    .map_err(|why| bad_param(name, why.to_string()))
            })
            .transpose()
    };
    let (from, to, as_of) = (moment("from")?, moment("to")?, moment("as_of")?);
    let by_owner = match single.get("by").map(String::as_str) {
        None => false,
        Some("owner") => true,
        Some(other) => return Err(bad_param("by", format!("`{other}`: the only breakdown is owner"))),
    };
    let deals = matches!(single.get("deals").map(String::as_str), Some("true" | "1" | ""));
    let as_logged = matches!(single.get("as_logged").map(String::as_str), Some("true" | "1" | ""));
    let format = match single.get("format").map(String::as_str) {
        None => Format::Json,
        Some(text) => Format::parse(text)
            .ok_or_else(|| bad_param("format", format!("`{text}` is not json, table or csv")))?,
    };
    let currency = single
        .get("currency")
        .map(|c| dealledger_events::Currency::parse(c).map_err(|why| bad_param("currency", why.to_string())))
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

/// Sets `key` of a JSON object built by `json!` (a no-op on anything else, which it never is).
fn set(body: &mut serde_json::Value, key: &str, value: impl Into<serde_json::Value>) {
    if let Some(object) = body.as_object_mut() {
        object.insert(key.to_string(), value.into());
    }
}

/// `%XX` and `+` of a query-string value.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex_at = |at: usize| bytes.get(at).and_then(|&c| hex(c));
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => match (hex_at(i + 1), hex_at(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn get_metrics(State(shared): SharedState) -> Response {
    let head = shared.head.borrow().seq;
    let body = shared.metrics.render(
        head,
        shared.budget.used_bytes(),
        (shared.unsigned.used_bytes(), shared.unsigned.max_bytes()),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn get_ready(State(shared): SharedState, headers: HeaderMap) -> Response {
    if let Some(why) = shared.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone() {
        // Store error text is for the operator, not for whoever can reach the port.
        let reason = match authorized(&shared, &headers) {
            true => format!("the writer cannot write: {why}"),
            false => "not ready: the writer cannot write (details with the token)".into(),
        };
        return unavailable("writer_failed", reason);
    }
    if *shared.shutdown.borrow() {
        return unavailable("shutting_down", "the daemon is shutting down".into());
    }
    "ready\n".into_response()
}

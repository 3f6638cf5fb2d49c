//! The doors: the bearer token and the dashboard's session, the throttle on wrong tokens, the
//! Host check on loopback, and POSTs that must say they carry JSON.

use super::{ApiError, SharedState};
use crate::config::{Role, ScopedToken};
use crate::Shared;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Bytes of a sign-in body (`{"token": ...}`), at most.
const SIGN_IN_BYTES_MAX: usize = 4096;

/// Whether the bytes are equal, in time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// What a request presents to the tokens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Credentials {
    /// A token the daemon takes (its role), or no token is configured (loopback only: admin).
    Token(Role),
    /// A live session cookie of a token: not a guess (its HMAC cannot be guessed), so never
    /// throttled.
    Session(Role),
    /// A token the daemon does not take: a guess, counted by the throttle.
    Wrong,
    /// Neither (a session cookie that has ended or is of no token counts as none: a dashboard
    /// left open overnight is not guessing).
    Absent,
}

impl Credentials {
    fn role(self) -> Option<Role> {
        match self {
            Credentials::Token(role) | Credentials::Session(role) => Some(role),
            Credentials::Wrong | Credentials::Absent => None,
        }
    }
}

/// The token among `tokens` that `given` is, compared with every one in constant time.
fn token_of<'t>(tokens: &'t [ScopedToken], given: &str) -> Option<&'t ScopedToken> {
    let mut found = None;
    for scoped in tokens {
        if same_secret(scoped.token.as_bytes(), given.as_bytes()) {
            found = Some(scoped);
        }
    }
    found
}

fn credentials(shared: &Shared, headers: &HeaderMap) -> Credentials {
    presented(shared, headers).0
}

/// What `headers` present, and the name of the token when the daemon takes it: one pass over the
/// tokens per request.
fn presented<'s>(shared: &'s Shared, headers: &HeaderMap) -> (Credentials, Option<&'s str>) {
    if !shared.config.wants_token() {
        return (Credentials::Token(Role::Admin), None);
    }
    let tokens = &shared.tokens;
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let given = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("").trim();
        return match token_of(tokens, given) {
            Some(scoped) => (Credentials::Token(scoped.role), Some(scoped.name.as_str())),
            None => (Credentials::Wrong, None),
        };
    }
    // The dashboard's session (docs/dashboard.md): the cookie `POST /v1/session` set.
    let now_s = shared.clock.now().0.div_euclid(1_000_000);
    match crate::dashboard::session_cookie(headers)
        .and_then(|v| crate::dashboard::session_of(tokens, v, now_s))
    {
        Some(scoped) => (Credentials::Session(scoped.role), Some(scoped.name.as_str())),
        None => (Credentials::Absent, None),
    }
}

/// True when the request may see internal detail: no token is configured (loopback only), or
/// it carries one the daemon takes.
pub(super) fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    credentials(shared, headers).role().is_some()
}

/// The client's address, as the accept loop saw it (None in a test that calls the router).
fn peer(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions.get::<crate::listen::Peer>().map(|peer| peer.0)
}

/// `too_many_attempts` when `peer` presents a token (right or wrong) after too many wrong ones
/// of late (crate::throttle); else, when `presented` is wrong, counts it.
fn throttled(
    shared: &Shared,
    peer: Option<std::net::IpAddr>,
    presented: Credentials,
) -> Result<(), ApiError> {
    let guess = matches!(presented, Credentials::Token(_) | Credentials::Wrong);
    let (Some(peer), true) = (peer, guess) else { return Ok(()) };
    let now_ms = shared.clock.now().0.div_euclid(1_000);
    if let Some(retry_after_s) = shared.throttle.wait_seconds(peer, now_ms) {
        return Err(ApiError::TooManyAttempts { retry_after_s });
    }
    if presented == Credentials::Wrong {
        shared.throttle.failed(peer, now_ms);
    }
    Ok(())
}

/// `GET /v1/session`: whether this daemon wants a token and whether the request carries one
/// (bearer or session cookie): what the dashboard asks before anything else, so that it shows
/// its sign-in instead of a failed request.
pub(super) async fn get_session(State(shared): SharedState, headers: HeaderMap) -> Response {
    // `now`: the daemon's clock (which a test or a replay may set), so that the dashboard's
    // default periods are the ones the reports take.
    let body = json!({
        "token_required": shared.config.wants_token(),
        "signed_in": authorized(&shared, &headers),
        "now": shared.clock.now().to_string(),
    });
    axum::Json(body).into_response()
}

/// `POST /v1/session` `{"token": "..."}`: the dashboard's sign-in. With the right token, a
/// session cookie (HttpOnly, SameSite=Strict) that the endpoints behind the token accept; with
/// no token configured there is nothing to sign in to.
pub(super) async fn post_session(State(shared): SharedState, request: Request) -> super::Answer {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SignIn {
        token: String,
    }
    if !shared.config.wants_token() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let peer = peer(request.extensions());
    // A sign-in is small: a larger body is not one.
    let body = axum::body::to_bytes(request.into_body(), SIGN_IN_BYTES_MAX)
        .await
        .map_err(|_| ApiError::TooLarge("a sign-in is at most 4 KiB".into()))?;
    let given = serde_json::from_slice::<SignIn>(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body must be {{\"token\": \"...\"}}: {e}")))?
        .token;
    let scoped = token_of(&shared.tokens, &given);
    let presented = match scoped {
        Some(scoped) => Credentials::Token(scoped.role),
        None => Credentials::Wrong,
    };
    throttled(&shared, peer, presented)?;
    let Some(scoped) = scoped else {
        return Err(ApiError::Unauthorized { why: "wrong token", bearer: false });
    };
    let now_s = shared.clock.now().0.div_euclid(1_000_000);
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, crate::dashboard::set_cookie(scoped, now_s));
    Ok(response)
}

/// On a loopback address, the Host header must name that address, `localhost`, or a name of
/// `[serve] allowed_hosts`: a web page that rebinds its own name to 127.0.0.1 still sends its
/// own name, and is refused. (On other addresses the token is the door.)
pub(super) async fn require_own_host(
    State(shared): SharedState,
    request: Request,
    next: Next,
) -> super::Answer {
    // Two Host headers: the proxy in front may route by one and this check read the other.
    if request.headers().get_all(header::HOST).iter().nth(1).is_some() {
        return Err(ApiError::BadRequest("more than one Host header".into()));
    }
    if shared.bound.ip().is_loopback() {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if !own_host(host, shared.bound, &shared.config.allowed_hosts) {
            return Err(ApiError::WrongHost(format!(
                "Host `{}` is not this daemon ({} or localhost; a reverse proxy's name goes in [serve] allowed_hosts)",
                host.chars().take(100).collect::<String>(),
                shared.bound
            )));
        }
    }
    Ok(next.run(request).await)
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
pub(super) async fn require_json_posts(request: Request, next: Next) -> super::Answer {
    if request.method() == Method::POST {
        let content_type =
            request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if essence != "application/json" && essence != "application/x-ndjson" {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type `{}`: send application/json or application/x-ndjson",
                content_type.chars().take(100).collect::<String>()
            )));
        }
    }
    Ok(next.run(request).await)
}

/// The name of the token a request came with, which the door put in its extensions (None with
/// no token configured).
#[derive(Clone)]
struct Caller(Option<String>);

pub(super) fn caller_name(extensions: &axum::http::Extensions) -> Option<String> {
    extensions.get::<Caller>().and_then(|c| c.0.clone())
}

/// The door of an endpoint behind the tokens: a token (or session) the daemon takes, of a role
/// that allows `needed` (403 naming the role needed, else).
pub(super) async fn require_role(
    State((shared, needed)): State<(std::sync::Arc<Shared>, Role)>,
    request: Request,
    next: Next,
) -> super::Answer {
    let (presented, name) = presented(&shared, request.headers());
    let caller = Caller(name.map(str::to_string));
    throttled(&shared, peer(request.extensions()), presented)?;
    let Some(role) = presented.role() else {
        let why = "missing or wrong bearer token (Authorization: Bearer TOKEN)";
        return Err(ApiError::Unauthorized { why, bearer: true });
    };
    if !role.allows(needed) {
        return Err(ApiError::Forbidden { role, needed });
    }
    let mut request = request;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

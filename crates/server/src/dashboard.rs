//! The dashboard (`GET /`): one page and its script and style, embedded in the binary (it works
//! with no network), each view a picture of what `GET /v1/reports/...` returns, with the table
//! beside it (docs/dashboard.md).
//!
//! The token, once: `POST /v1/session` with `{"token": ...}` sets an HttpOnly, SameSite=Strict
//! cookie holding an HMAC of the token (never the token itself), which [`authorized_by_cookie`]
//! takes wherever the bearer token is taken. A cross-site page can neither read it nor send it,
//! and the daemon takes POST bodies only as JSON, which no cross-site form can send.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

/// The cookie's name.
pub const SESSION_COOKIE: &str = "dealledger_session";

/// Only this origin's script, style and requests: no inline script, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// The cookie's value for `token`: HMAC-SHA256 of a fixed label under the token, in hex.
pub fn session_value(token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"dealledger dashboard session 1");
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` of a session for `token`.
pub fn set_cookie(token: &str) -> HeaderValue {
    let cookie = format!("{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", session_value(token));
    HeaderValue::from_str(&cookie).expect("hex and ASCII")
}

/// The dashboard as one self-contained HTML file: its style and script inlined, and `data`
/// (`{"generated", "params", "reports"}`, what `dealledger report html` gathers) in the page, so
/// that it opens from a file with no server and no network (docs/dashboard.md).
pub fn one_file(data: &serde_json::Value) -> String {
    // Inside <script>, `</script` or `<!--` in a string would end or change the element: every
    // `<` of the JSON (only ever inside its strings) is written as the escape `\u003c`.
    let data = data.to_string().replace('<', "\\u003c");
    debug_assert!(!APP_JS.contains("</script"), "the script cannot be inlined as it is");
    let script = APP_JS;
    INDEX_HTML
        .replace(
            r#"<link rel="stylesheet" href="/assets/app.css">"#,
            &format!("<style>\n{APP_CSS}</style>"),
        )
        .replace(
            r#"<script src="/assets/app.js"></script>"#,
            &format!(
                "<script type=\"application/json\" id=\"dealledger-data\">{data}</script>\n<script>\n{script}</script>"
            ),
        )
}

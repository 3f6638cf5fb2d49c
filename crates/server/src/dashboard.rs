//! The dashboard (`GET /`): one page and its script and style, embedded in the binary (it works
//! with no network), each view a picture of what `GET /v1/reports/...` returns, with the table
//! beside it (docs/dashboard.md).
//!
//! The token, once: `POST /v1/session` with `{"token": ...}` sets an HttpOnly, SameSite=Strict
//! cookie holding its expiry and an HMAC of it under the token (never the token itself), which
//! the daemon takes wherever the bearer token is taken until it expires ([`SESSION_SECONDS`]). A cross-site page can neither read it nor send it,
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

/// How long a session lasts: a working day. Then the dashboard asks for the token again.
pub const SESSION_SECONDS: i64 = 12 * 3600;

/// The cookie's value for the token `scoped`, ending at `expires` (Unix seconds):
/// `NAME.EXPIRES.MAC`, the MAC HMAC-SHA256 under the token of a fixed label, its name and the
/// expiry, in hex. The daemon keeps no sessions: the expiry travels in the cookie, the name
/// says which token's role it has, and the MAC keeps both from being changed.
pub fn session_value(scoped: &crate::config::ScopedToken, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(scoped.token.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"dealledger dashboard session 3\0");
    mac.update(scoped.name.as_bytes());
    mac.update(b"\0");
    mac.update(expires.to_string().as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("{}.{expires}.{hex}", scoped.name)
}

/// The token whose session `value` is, if it has not ended at `now` (Unix seconds).
pub fn session_of<'t>(
    tokens: &'t [crate::config::ScopedToken],
    value: &str,
    now: i64,
) -> Option<&'t crate::config::ScopedToken> {
    use subtle::ConstantTimeEq;
    let mut parts = value.splitn(3, '.');
    let (name, expires) = (parts.next()?, parts.next()?.parse::<i64>().ok()?);
    let scoped = tokens.iter().find(|t| t.name == name)?;
    let expected = session_value(scoped, expires);
    (now < expires && bool::from(expected.as_bytes().ct_eq(value.as_bytes()))).then_some(scoped)
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

/// The `Set-Cookie` of a session for the token `scoped` that starts at `now` (Unix seconds).
pub fn set_cookie(scoped: &crate::config::ScopedToken, now: i64) -> HeaderValue {
    let value = session_value(scoped, now.saturating_add(SESSION_SECONDS));
    let cookie =
        format!("{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_SECONDS}");
    HeaderValue::from_str(&cookie).expect("digits, hex and ASCII")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_and_its_expiry_and_name_cannot_be_moved() {
        use crate::config::{Role, ScopedToken};
        let scoped =
            |name: &str, token: &str, role| ScopedToken { name: name.into(), token: token.into(), role };
        let tokens = [
            scoped("board", "a-token-for-the-session-test", Role::Read),
            scoped("operator", "another-token-entirely-here", Role::Admin),
        ];
        let valid = |value: &str, now| session_of(&tokens, value, now).map(|t| t.name.clone());
        let now = 1_700_000_000;
        let value = session_value(&tokens[0], now + SESSION_SECONDS);
        assert_eq!(valid(&value, now).as_deref(), Some("board"));
        assert!(valid(&value, now + SESSION_SECONDS - 1).is_some());
        assert!(valid(&value, now + SESSION_SECONDS).is_none(), "past its end");
        let (_, rest) = value.split_once('.').unwrap();
        let (_, mac) = rest.split_once('.').unwrap();
        let moved = format!("board.{}.{mac}", now + 10 * SESSION_SECONDS);
        assert!(valid(&moved, now + 2 * SESSION_SECONDS).is_none(), "an expiry moved by hand");
        let renamed = format!("operator.{rest}");
        assert!(valid(&renamed, now).is_none(), "a read session passed off as the admin's");
        let unknown = [scoped("board", "a-third-token-nobody-has", Role::Read)];
        assert!(session_of(&unknown, &value, now).is_none(), "another token's");
        for junk in ["", ".", "x.y", "board.99999999999999999999.00", mac] {
            assert!(valid(junk, now).is_none(), "{junk}");
        }
    }
}

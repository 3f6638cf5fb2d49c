//! Doors the daemon must keep shut: an empty token, a cross-site
//! "simple request" (text/plain POST), a page reaching the daemon by DNS rebinding (a foreign
//! Host), internal text on /readyz, and an overflowing Last-Event-ID. Requests are written by
//! hand on a TCP socket, so that every header is exactly what a browser or an attacker sends.

use crate::daemon::{serve_refuses, Daemon, TOKEN};
use crate::harness::Ledger as Sandbox;
use std::io::{Read, Write};
use std::time::Duration;

/// Sends one HTTP/1.1 request and returns (status, body).
fn raw(url: &str, request: &str) -> (u16, String) {
    let (status, _, body) = answer(url, request);
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn post(url: &str, host: &str, content_type: Option<&str>, body: &str) -> (u16, String) {
    let content_type = content_type.map_or(String::new(), |t| format!("Content-Type: {t}\r\n"));
    raw(
        url,
        &format!(
            "POST /v1/events HTTP/1.1\r\nHost: {host}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn get(url: &str, host: &str, path: &str, extra: &str) -> (u16, String) {
    raw(url, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"))
}

const EVENT: &str = r#"{"deal":"D","type":"opened","at":"2025-01-10T09:00:00Z","owner":"o","amount":1}"#;

#[test]
fn an_empty_token_is_a_startup_error() {
    for token in ["", "   "] {
        let stderr = serve_refuses(&Sandbox::new(), &format!("[serve]\ntoken = \"{token}\"\n"), &[]);
        assert!(stderr.contains("token"), "{stderr}");
    }
}

#[test]
fn a_cross_site_simple_request_cannot_write() {
    // No token on loopback: a web page's form or fetch without preflight sends text/plain.
    let l = Sandbox::new();
    let d = Daemon::start(&l, "");
    let host = d.url.strip_prefix("http://").unwrap().to_string();
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let (status, body) = post(&d.url, &host, content_type, EVENT);
        assert_eq!(status, 415, "{content_type:?}: {body}");
    }
    let (status, body) = get(&d.url, &host, "/v1/events", "");
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("\"deal\""), "something was stored: {body}");
    for content_type in ["application/json", "application/x-ndjson", "application/json; charset=utf-8"] {
        let (status, body) = post(
            &d.url,
            &host,
            Some(content_type),
            &format!("[{}]", EVENT.replace("\"D\"", &format!("\"D{}\"", content_type.len()))),
        );
        assert_eq!(status, 200, "{content_type}: {body}");
    }
}

#[test]
fn a_rebinding_host_cannot_read() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, "");
    let port = d.url.rsplit(':').next().unwrap().to_string();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), "localhost".to_string()] {
        let (status, body) = get(&d.url, &host, "/v1/reports/pipeline", "");
        assert_eq!(status, 200, "{host}: {body}");
    }
    for host in
        [format!("attacker.example:{port}"), "attacker.example".to_string(), format!("127.0.0.2:{port}")]
    {
        let (status, body) = get(&d.url, &host, "/v1/reports/pipeline", "");
        assert_eq!(status, 421, "{host}: {body}");
    }
}

#[test]
fn an_overflowing_last_event_id_is_a_bad_request() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, &format!("[serve]\ntoken = \"{TOKEN}\"\n"));
    let host = d.url.strip_prefix("http://").unwrap().to_string();
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let (status, body) =
        get(&d.url, &host, "/v1/stream", &format!("{auth}Last-Event-ID: 18446744073709551615\r\n"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Last-Event-ID"), "{body}");
    // The daemon is still there.
    assert_eq!(get(&d.url, &host, "/healthz", "").0, 200);
}

#[test]
fn readyz_tells_strangers_only_ready_or_not() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, &format!("[serve]\ntoken = \"{TOKEN}\"\n"));
    let host = d.url.strip_prefix("http://").unwrap().to_string();
    let (status, body) = get(&d.url, &host, "/readyz", "");
    assert_eq!((status, body.trim()), (200, "ready"));
}

/// Opens `count` connections that send a request's headers one byte a second, forever.
fn slow_clients(
    url: &str,
    count: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let addr = url.strip_prefix("http://").unwrap().to_string();
    std::thread::spawn(move || {
        let mut streams: Vec<std::net::TcpStream> =
            (0..count).filter_map(|_| std::net::TcpStream::connect(&addr).ok()).collect();
        let header =
            b"POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Slow: ";
        let mut at = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let byte = [header.get(at).copied().unwrap_or(b' ')];
            // A closed connection (the daemon timed it out) is what we want; keep the others.
            streams.retain_mut(|s| s.write_all(&byte).is_ok());
            at += 1;
            std::thread::sleep(Duration::from_secs(1));
        }
    })
}

#[test]
fn slow_clients_neither_hold_the_daemon_nor_its_shutdown() {
    let l = Sandbox::new();
    // Every client here comes from one address: this test is about slowness (holes.rs has
    // one_address_cannot_take_every_connection for addresses).
    let d = Daemon::start(&l, &format!("[serve]\ntoken = \"{TOKEN}\"\nconnections_per_address_max = 1024\n"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = slow_clients(&d.url, 500, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    // A normal client is answered as usual.
    let started = std::time::Instant::now();
    let (status, body) = d.post("/v1/events", EVENT);
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(2), "answered in {:?}", started.elapsed());
    // SIGTERM ends the daemon in bounded time, cleanly, with the checkpoint saved.
    let started = std::time::Instant::now();
    let code = d.terminate_within(Duration::from_secs(20));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    slow.join().unwrap();
    assert_eq!(
        code,
        Some(0),
        "the daemon did not exit cleanly within 20 s of SIGTERM ({:?})",
        started.elapsed()
    );
    assert!(
        l.data().join("store.meta").read_dir().is_ok_and(|mut d| d.next().is_some()),
        "no checkpoint saved"
    );
}

/// Bytes the daemon sends on `stream` until it closes it, or None if it is still open after
/// `limit`.
fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> Option<String> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Some(String::from_utf8_lossy(&got).into_owned())
        }
        Err(_) => None,
    }
}

#[test]
fn trickled_headers_idle_connections_and_the_connection_cap() {
    let l = Sandbox::new();
    let d = Daemon::start(
        &l,
        "[serve]\nheader_read_timeout_ms = 500\nidle_timeout_ms = 800\nbody_read_timeout_ms = 30000\nconnections_max = 3\n",
    );
    let addr = d.url.strip_prefix("http://").unwrap().to_string();
    // Headers that never finish: closed at the header-read timeout.
    let mut trickle = std::net::TcpStream::connect(&addr).unwrap();
    trickle.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    assert!(closed_within(&mut trickle, Duration::from_secs(5)).is_some(), "trickled headers kept open");
    // A body that stops: closed at the idle timeout, long before the body-read timeout.
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    stalled
        .write_all(format!("POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[").as_bytes())
        .unwrap();
    assert!(closed_within(&mut stalled, Duration::from_secs(5)).is_some(), "a stalled body kept open");
    // Three open connections; the fourth is told to come back.
    let held: Vec<_> = (0..3).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut fourth = std::net::TcpStream::connect(&addr).unwrap();
    let refused =
        closed_within(&mut fourth, Duration::from_secs(5)).expect("the fourth connection is closed");
    assert!(refused.starts_with("HTTP/1.1 503") && refused.contains("too_many_connections"), "{refused}");
    // Written by hand before hyper sees the connection: its length must be its body's, exactly
    // (it said 81 for 82 bytes, and a strict client read the JSON without its closing brace).
    let (head, body) = refused.split_once("\r\n\r\n").unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("a Content-Length")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "{refused}");
    assert!(serde_json::from_str::<serde_json::Value>(body).is_ok(), "{body}");
    drop(held);
    // Once they are gone (closed by the timeouts or by us), the daemon takes connections again.
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(get(&d.url, &addr, "/healthz", "").0, 200);
}

#[test]
fn numbers_from_requests_at_their_limits_are_clear_errors() {
    // Item 8: every number a request carries is checked, never wrapped or trusted.
    let l = Sandbox::new();
    let d = Daemon::start(&l, &format!("[serve]\ntoken = \"{TOKEN}\"\n"));
    let (code, ack) = d.post("/v1/events", EVENT);
    assert_eq!(code, 200, "{ack}");
    // Page positions and sizes.
    let page = d.get_json("/v1/events?from_seq=18446744073709551615");
    assert_eq!(
        (page["events"].as_array().map(Vec::len), page["next_seq"].as_u64()),
        (Some(0), Some(2)),
        "{page}"
    );
    for (query, param) in [
        ("limit=18446744073709551616", "limit"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("from_seq=18446744073709551616", "from_seq"),
        ("from_seq=1e3", "from_seq"),
    ] {
        let (code, text) = d.get(&format!("/v1/events?{query}"));
        assert!(code == 400 && text.contains(param), "{query}: {code} {text}");
    }
    // Amounts, minutes, versions and instants past their ranges: one clear 400 each.
    let touch = |extra: &str| {
        format!(
            r#"{{"deal":"D","type":"touch","at":"2025-01-11T09:00:00Z","channel":"call","direction":"outbound"{extra}}}"#
        )
    };
    let cases = [
        (r#"{"deal":"D2","type":"opened","at":"2025-01-10T09:00:00Z","owner":"o","amount":"184467440737095516160000"}"#.to_string(), "invalid_value"),
        (r#"{"deal":"D2","type":"opened","at":"2025-01-10T09:00:00Z","owner":"o","amount":1e400}"#.to_string(), "invalid_value"),
        (touch(r#","minutes":4294967296"#), "invalid_value"),
        (touch(r#","minutes":-1"#), "invalid_value"),
        (touch(r#","expected_version":4294967296"#), "malformed_json"),
        (r#"{"deal":"D","type":"touch","at":"9999-12-31T23:59:59Z","channel":"call","direction":"outbound"}"#.to_string(), "in_future"),
        (r#"{"deal":"D","type":"touch","at":"2025-01-11T09:00:00+23:59","channel":"call","direction":"outbound"}"#.to_string(), ""),
        (touch(r#","recorded_at":"0000-01-01T00:00:00Z""#), "recorded_before_at"),
    ];
    for (line, rule) in cases {
        let (code, err) = d.post("/v1/events", &line);
        if rule.is_empty() {
            assert!(code == 200 || code == 400, "{line}: {code} {err}");
            continue;
        }
        assert_eq!((code, err["error"].as_str()), (400, Some(rule)), "{line}: {err}");
    }
    assert_eq!(get(&d.url, d.url.strip_prefix("http://").unwrap(), "/healthz", "").0, 200);
}

/// One raw answer: status, the Content-Length it announced, its body's bytes.
fn answer(url: &str, request: &str) -> (u16, Option<usize>, Vec<u8>) {
    let (head, body) = exchange(url, request);
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: ").map(str::to_string))
        .and_then(|n| n.trim().parse().ok());
    (status, length, body)
}

/// Sends one HTTP/1.1 request on its own connection: the answer's head (header names in lower
/// case) and its body's bytes.
fn exchange(url: &str, request: &str) -> (String, Vec<u8>) {
    let addr = url.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A refusal may come before the request is all written.
    let _ = stream.write_all(request.as_bytes());
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |at| at + 4);
    let head = String::from_utf8_lossy(&response[..end])
        .lines()
        .map(|l| match l.split_once(": ") {
            Some((name, value)) => format!("{}: {value}", name.to_ascii_lowercase()),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    (head, response[end..].to_vec())
}

/// `dealledger_rejects_total` by reason, read with a session cookie (which the throttle on
/// wrong tokens never slows).
fn rejects(url: &str, host: &str, cookie: &str) -> std::collections::BTreeMap<String, u64> {
    let (status, text) = get(url, host, "/metrics", &format!("Cookie: {cookie}\r\n"));
    assert_eq!(status, 200, "{text}");
    parse_rejects(&text)
}

fn parse_rejects(metrics: &str) -> std::collections::BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("dealledger_rejects_total{reason=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(reason, n)| (reason.to_string(), n.trim().parse().unwrap()))
        .collect()
}

/// Every error answer the doors, the bodies, the writes and the reads give: its Content-Length
/// is its body's exact length (a strict client reads the whole JSON), its body names its code,
/// and `dealledger_rejects_total` counts it once under that code, and nothing else.
#[test]
fn every_error_answer_is_exact_and_counted_once() {
    let l = Sandbox::new();
    let d = Daemon::start(
        &l,
        &format!("[serve]\ntoken = \"{TOKEN}\"\nrequest_events_max = 2\nconnections_per_address_max = 8\n"),
    );
    let host = d.url.strip_prefix("http://").unwrap().to_string();
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let json = "Content-Type: application/json\r\n";
    let post = |path: &str, headers: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let get = |path: &str, headers: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n")
    };
    let event = |deal: &str, kind: &str| match kind {
        "opened" => format!(
            r#"{{"deal":"{deal}","type":"opened","at":"2025-01-10T09:00:00Z","owner":"o","amount":1}}"#
        ),
        _ => format!(
            r#"{{"deal":"{deal}","type":"touch","at":"2025-01-10T09:00:00Z","channel":"call","direction":"outbound"}}"#
        ),
    };
    let cases: Vec<(&str, u16, String)> = vec![
        ("unauthorized", 401, get("/v1/events", "")),
        (
            "wrong_host",
            421,
            get("/healthz", "Host: attacker.example\r\n").replacen(&format!("Host: {host}\r\n"), "", 1),
        ),
        ("bad_request", 400, get("/healthz", "Host: localhost\r\n")),
        (
            "unsupported_media_type",
            415,
            post("/v1/events", &format!("{auth}Content-Type: text/plain\r\n"), "[]"),
        ),
        ("not_found", 404, get("/nowhere", "")),
        ("too_large", 413, post("/v1/session", json, &"x".repeat(5_000))),
        ("bad_request", 400, post("/v1/session", json, "{}")),
        ("bad_parameter", 400, get("/v1/events?limit=0", &auth)),
        ("bad_parameter", 400, get("/v1/whatif", &auth)),
        ("unknown_deal", 404, get("/v1/deals/NOPE", &auth)),
        ("unknown_report", 404, get("/v1/reports/nope", &auth)),
        (
            "too_many_events",
            413,
            post(
                "/v1/events",
                &format!("{auth}{json}"),
                &format!("[{},{},{}]", event("A", "opened"), event("B", "opened"), event("C", "opened")),
            ),
        ),
        (
            "not_opened",
            400,
            post("/v1/events", &format!("{auth}{json}"), &format!("[{}]", event("Z", "touch"))),
        ),
        ("not_configured", 404, post("/v1/hooks/hubspot", json, "[]")),
    ];
    let cookie = {
        let (signed_in, _) =
            exchange(&d.url, &post("/v1/session", json, &format!("{{\"token\":\"{TOKEN}\"}}")));
        let line = signed_in.lines().find_map(|l| l.strip_prefix("set-cookie: ")).expect("a session cookie");
        line.split(';').next().unwrap().to_string()
    };
    for (code, status, request) in &cases {
        let before = rejects(&d.url, &host, &cookie);
        let (got, length, body) = answer(&d.url, request);
        let text = String::from_utf8_lossy(&body);
        assert_eq!(got, *status, "{code}: {text}");
        assert_eq!(
            length,
            Some(body.len()),
            "{code}: Content-Length against the body's {} bytes: {text}",
            body.len()
        );
        let parsed: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{code}: {e}: {text}"));
        assert_eq!(parsed["error"].as_str(), Some(*code), "{text}");
        let mut expected = before.clone();
        *expected.entry(code.to_string()).or_default() += 1;
        assert_eq!(rejects(&d.url, &host, &cookie), expected, "{code} counted once, nothing else: {text}");
    }
    // Past connections_per_address_max the accept loop answers before any router runs.
    let before = rejects(&d.url, &host, &cookie);
    // Connections held open one by one, each followed by a probe, until a probe is refused
    // (a connection just closed may still count for a moment, so the cap is found, not assumed).
    let mut held = Vec::new();
    let (got, length, body) = loop {
        held.push(std::net::TcpStream::connect(&host).unwrap());
        let (got, length, body) = answer(&d.url, &get("/healthz", ""));
        if got == 503 || held.len() > 20 {
            break (got, length, body);
        }
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!((got, length), (503, Some(body.len())), "{text}");
    assert!(text.ends_with('}') && text.contains("\"too_many_connections\""), "{text}");
    // A held connection may have been refused too: it holds the refusal.
    let mut refused = 1;
    for mut connection in held {
        connection.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut start = [0u8; 12];
        if connection.read_exact(&mut start).is_ok() && &start == b"HTTP/1.1 503" {
            refused += 1;
        }
    }
    // The held connections close as the daemon notices: until then a request may be refused,
    // and is counted too.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, text) = answer(&d.url, &get("/metrics", &format!("Cookie: {cookie}\r\n")));
        let text = String::from_utf8_lossy(&text).into_owned();
        match status {
            503 => refused += 1,
            200 => {
                let mut expected = before.clone();
                *expected.entry("too_many_connections".into()).or_default() += refused;
                assert_eq!(parse_rejects(&text), expected, "each refusal counted once");
                break;
            }
            other => panic!("{other}: {text}"),
        }
        assert!(std::time::Instant::now() < deadline, "{text} against {before:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Wrong tokens from one address, past the throttle's limit: 429, counted once each.
    for _ in 0..10 {
        let (got, _, _) = answer(&d.url, &get("/v1/events", "Authorization: Bearer wrong\r\n"));
        assert_eq!(got, 401);
    }
    let (got, length, body) = answer(&d.url, &get("/v1/events", "Authorization: Bearer wrong\r\n"));
    assert_eq!((got, length), (429, Some(body.len())), "{}", String::from_utf8_lossy(&body));
    let counted = rejects(&d.url, &host, &cookie);
    assert_eq!(counted.get("too_many_attempts"), Some(&1), "{counted:?}");
    assert_eq!(counted.get("unauthorized"), Some(&11), "{counted:?}");
}

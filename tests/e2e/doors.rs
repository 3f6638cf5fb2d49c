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
    let addr = url.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
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

//! Holes a red team found in the daemon and the CLI (issue 25), each reproduced as the probe
//! found it, then held shut.

use crate::daemon::{Daemon, TOKEN};
use crate::harness::Ledger as Sandbox;
use std::io::Write;
use std::time::{Duration, Instant};

/// A gauge of the daemon's /metrics, 0 when it has none of that name.
fn gauge(daemon: &Daemon, name: &str) -> u64 {
    let (_, text) = daemon.get("/metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

#[test]
fn unsigned_webhook_bodies_cannot_block_the_writes() {
    let sandbox = Sandbox::new();
    let toml = format!("[serve]\ntoken = \"{TOKEN}\"\n[hubspot]\napp_secret = \"hs-secret\"\n");
    let daemon = Daemon::start(&sandbox, &toml);
    let addr = daemon.url.strip_prefix("http://").unwrap().to_string();
    // 130 sockets announce a 1 MiB delivery each and send none of it: 130 MiB asked for by
    // nobody who can sign.
    let mut sockets = Vec::new();
    for _ in 0..130 {
        let mut socket = std::net::TcpStream::connect(&addr).unwrap();
        let head = format!(
            "POST /v1/hooks/hubspot HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
        );
        socket.write_all(head.as_bytes()).unwrap();
        sockets.push(socket);
    }
    // Until the daemon has read their headers (the shared budget full, or the unsigned
    // bodies' own), at most a few seconds.
    let started = Instant::now();
    while gauge(&daemon, "dealledger_queue_bytes") < 128 << 20
        && gauge(&daemon, "dealledger_unsigned_bytes") < gauge(&daemon, "dealledger_unsigned_bytes_max")
        && started.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // An authenticated write is answered, and soon.
    let event = r#"{"deal":"D","type":"opened","at":"2025-01-10T09:00:00Z","owner":"o","amount":1}"#;
    let asked = Instant::now();
    let (code, body) = daemon.post("/v1/events", event);
    assert_eq!(code, 200, "{body}");
    assert!(asked.elapsed() < Duration::from_secs(1), "answered after {:?}", asked.elapsed());
    drop(sockets);
    daemon.terminate();
}

/// A symbolic link at `link` to `target`.
fn plant(link: &std::path::Path, target: &std::path::Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn files_are_never_written_through_a_link_planted_in_their_way() {
    let l = Sandbox::new();
    let history = l.run(&["gen", "--deals", "30", "--seed", "3"]).ok().stdout;
    let path = l.dir.path().join("history.jsonl");
    std::fs::write(&path, &history).unwrap();
    l.run(&["ingest", "--quiet", path.to_str().unwrap()]).ok();
    let dir = l.dir.path();
    let precious = dir.join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let intact = |what: &str| {
        let text = std::fs::read_to_string(&precious).unwrap();
        assert!(
            text == "keep me",
            "{what} wrote through a link: {}",
            text.chars().take(60).collect::<String>()
        );
    };
    // At the temporary name a command used to write first (predictable, beside the target).
    plant(&dir.join("victim.html.tmp"), &precious);
    let victim = dir.join("victim.html");
    l.run(&["report", "html", "--out", victim.to_str().unwrap()]).ok();
    intact("report html");
    assert!(victim.symlink_metadata().unwrap().file_type().is_file(), "the page is a file of its own");
    let out = dir.join("export");
    std::fs::create_dir_all(&out).unwrap();
    plant(&out.join("deals.csv.tmp"), &precious);
    l.run(&["export", "--format", "csv", "--out", out.to_str().unwrap()]).ok();
    intact("export");
    // At the target itself: the command makes a file there, it does not open the link's.
    let linked = dir.join("linked.jsonl");
    plant(&linked, &precious);
    l.run(&["gen", "--deals", "2", "--out", linked.to_str().unwrap()]).ok();
    intact("gen --out");
    let plot = dir.join("sweep.svg");
    plant(&plot, &precious);
    l.run(&["whatif", "--sweep", "gone_dark=5..10", "--plot", plot.to_str().unwrap()]).ok();
    intact("whatif --plot");
    let rejects = dir.join("rejects.jsonl");
    plant(&rejects, &precious);
    let bad = l.file("bad.jsonl", &["{}"]);
    l.run(&["ingest", "--skip-invalid", "--rejects", rejects.to_str().unwrap(), bad.to_str().unwrap()]).ok();
    intact("ingest --rejects");
    assert!(std::fs::read_to_string(&rejects).unwrap().contains("missing_field"), "the rejects are written");
}

#[test]
fn a_cell_a_spreadsheet_would_run_is_written_as_text() {
    let l = Sandbox::new();
    let owner = "=cmd|' /C calc'!A0";
    let contact = r#"=HYPERLINK("http://x.example","click")"#;
    let events = [
        serde_json::json!({"deal": "F-1", "type": "opened", "at": "2025-01-01T00:00:00Z", "owner": owner, "amount": 100}),
        serde_json::json!({"deal": "F-1", "type": "touch", "at": "2025-01-02T00:00:00Z", "channel": "call", "direction": "outbound", "contact": contact}),
        serde_json::json!({"deal": "F-1", "type": "lost", "at": "2025-01-03T00:00:00Z", "reason": "+price"}),
    ]
    .map(|e| e.to_string());
    l.ingest("events.jsonl", &events.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    let out = l.dir.path().join("export");
    l.run(&["export", "--format", "csv", "--out", out.to_str().unwrap()]).ok();
    let csvs = [
        std::fs::read_to_string(out.join("deals.csv")).unwrap(),
        std::fs::read_to_string(out.join("events.csv")).unwrap(),
        l.run(&["report", "bad-deal-cost", "--from", "2025-01-01", "--to", "2025-02-01", "--format", "csv"])
            .ok()
            .stdout,
        l.run(&["audit", "deal", "F-1", "--format", "csv"]).ok().stdout,
    ];
    for text in &csvs {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
        for record in reader.records() {
            for cell in record.unwrap().iter() {
                assert!(!cell.starts_with(['=', '+', '@']), "a formula in a cell: {cell}\n{text}");
            }
        }
    }
    // Written as text, and readable back: the owner behind a quote.
    assert!(csvs[0].contains(&format!("'{owner}")), "{}", csvs[0]);
}

/// CPU seconds the process `pid` has used (user and system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command's name in parentheses: state, then 10 fields, then utime and stime.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// A daemon on a generated history of `deals` deals, with `serve` more lines of `[serve]`.
fn daemon_on_history(deals: &str, serve: &str) -> (Sandbox, Daemon) {
    let sandbox = Sandbox::new();
    let history = sandbox.run(&["gen", "--deals", deals, "--seed", "5"]).ok().stdout;
    let path = sandbox.dir.path().join("history.jsonl");
    std::fs::write(&path, history).unwrap();
    sandbox.run(&["ingest", "--quiet", path.to_str().unwrap()]).ok();
    let daemon = Daemon::start(&sandbox, &format!("[serve]\ntoken = \"{TOKEN}\"\n{serve}"));
    (sandbox, daemon)
}

#[test]
fn a_what_if_stops_when_its_client_goes() {
    let (_sandbox, daemon) = daemon_on_history("3000", "");
    let addr = daemon.url.strip_prefix("http://").unwrap().to_string();
    // A sweep of many values, and the client gone before it is answered.
    let mut socket = std::net::TcpStream::connect(&addr).unwrap();
    let ask = format!(
        "GET /v1/whatif?sweep=gone_dark%3D0..1999 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    socket.write_all(ask.as_bytes()).unwrap();
    // Until the daemon is at work on it (its CPU moves), at most a few seconds.
    let pid = daemon.child.id();
    let started = Instant::now();
    let before = cpu_seconds(pid);
    while cpu_seconds(pid) < before + 0.3 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(socket);
    // Its work stops with it: the daemon is idle within a second or two.
    let left = cpu_seconds(pid);
    let idle_by = Instant::now() + Duration::from_secs(4);
    let mut last = left;
    let idle = loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = cpu_seconds(pid);
        if now - last < 0.1 {
            break true;
        }
        last = now;
        if Instant::now() > idle_by {
            break false;
        }
    };
    assert!(
        idle,
        "the daemon kept working for its gone client: {:.1} CPU s since it left",
        cpu_seconds(pid) - left
    );
    daemon.terminate();
}

/// A 2,000-value sweep asked on its own thread: seconds of work on a 3,000-deal history.
fn long_sweep(url: String) -> std::thread::JoinHandle<Result<u16, String>> {
    std::thread::spawn(move || {
        ureq::get(&format!("{url}/v1/whatif?sweep=gone_dark%3D0..1999"))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .call()
            .map(|r| r.status())
            .map_err(|e| e.to_string())
    })
}

#[test]
fn readers_never_wait_for_a_what_if() {
    let (_sandbox, daemon) = daemon_on_history("3000", "");
    let url = daemon.url.clone();
    // A long sweep, running.
    let sweep = long_sweep(url);
    let pid = daemon.child.id();
    let before = cpu_seconds(pid);
    let started = Instant::now();
    while cpu_seconds(pid) < before + 0.3 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A write, then a report that must reflect it: answered at once, the sweep or not.
    let event = r#"{"deal":"R-1","type":"opened","at":"2025-06-01T00:00:00Z","owner":"o","amount":1}"#;
    let asked = Instant::now();
    let (code, body) = daemon.post("/v1/events", event);
    assert_eq!(code, 200, "{body}");
    let report = daemon.get_json("/v1/reports/pipeline?as_of=2025-06-02");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "the report waited {:?} for the what-if",
        asked.elapsed()
    );
    assert!(report["totals"]["deals"].as_u64().unwrap() > 0);
    let _ = sweep.join();
    daemon.terminate();
}

#[test]
fn a_what_if_that_cannot_finish_in_time_says_how_long_it_would_take() {
    // The whole sweep takes minutes here; one run a second or two in a debug build on a busy
    // machine, which the limit leaves room for.
    let (_sandbox, daemon) = daemon_on_history("3000", "whatif_timeout_ms = 5000\n");
    let asked = Instant::now();
    let (code, text) = daemon.get("/v1/whatif?sweep=gone_dark%3D0..9999");
    let waited = asked.elapsed();
    assert_eq!(code, 503, "{text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], "whatif_timeout", "{text}");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("would take about") && reason.contains("whatif_timeout_ms"), "{reason}");
    // Stopped at its deadline or before, not after the whole sweep.
    assert!(waited < Duration::from_secs(9), "answered after {waited:?}");
    // A question that fits is answered.
    let run = daemon.get_json("/v1/whatif?rule=gone_dark%3D14");
    assert!(run["cut"].as_u64().is_some(), "{run}");
    daemon.terminate();
}

#[test]
fn what_ifs_past_the_limit_wait_for_a_slot_then_are_refused() {
    let serve = "whatifs_max = 1\nrequest_timeout_ms = 300\n";
    let (_sandbox, daemon) = daemon_on_history("3000", serve);
    let url = daemon.url.clone();
    let sweep = long_sweep(url);
    // Until the sweep holds the only slot.
    let started = Instant::now();
    while gauge(&daemon, "dealledger_whatifs_running") < 1 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(gauge(&daemon, "dealledger_whatifs_running"), 1);
    let (code, text) = daemon.get("/v1/whatif?rule=gone_dark%3D14");
    assert_eq!(code, 503, "{text}");
    assert!(text.contains("whatif_busy") && text.contains("whatifs_max"), "{text}");
    let _ = sweep.join();
    // Its slot free again, the same question is answered.
    daemon.get_json("/v1/whatif?rule=gone_dark%3D14");
    assert_eq!(gauge(&daemon, "dealledger_whatifs_running"), 0);
    daemon.terminate();
}

/// A /proc/PID/status figure in kB (VmRSS, Threads...).
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field).and_then(|rest| rest.strip_prefix(':')))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap()
}

/// Until the daemon's resident memory has stopped growing for a second (at most 30 s): kB.
fn settled_rss_kb(pid: u32) -> u64 {
    let started = Instant::now();
    let (mut last, mut since) = (proc_status(pid, "VmRSS"), Instant::now());
    while since.elapsed() < Duration::from_secs(1) && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
        let now = proc_status(pid, "VmRSS");
        if now > last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

/// Opens the live tail from the first event and never reads a byte of it.
fn stalled_stream(addr: &str) -> std::net::TcpStream {
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "GET /v1/stream?from_seq=1 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).unwrap();
    socket
}

#[test]
fn stream_readers_that_never_read_cost_bytes_not_threads() {
    // About 40,000 events: megabytes of tail for each client, more than a socket holds.
    let (_sandbox, daemon) = daemon_on_history("2000", "");
    let addr = daemon.url.strip_prefix("http://").unwrap().to_string();
    let pid = daemon.child.id();
    daemon.get_json("/v1/reports/pipeline");
    let (rss_before, threads_before) = (settled_rss_kb(pid), proc_status(pid, "Threads"));
    const CLIENTS: u64 = 200;
    let sockets: Vec<_> = (0..CLIENTS).map(|_| stalled_stream(&addr)).collect();
    // A write in the burst is answered, and soon.
    let event = r#"{"deal":"S-1","type":"opened","at":"2025-06-01T00:00:00Z","owner":"o","amount":1}"#;
    let asked = Instant::now();
    let (code, body) = daemon.post("/v1/events", event);
    assert_eq!(code, 200, "{body}");
    assert!(asked.elapsed() < Duration::from_secs(1), "a write answered after {:?}", asked.elapsed());
    let (rss_after, threads_after) = (settled_rss_kb(pid), proc_status(pid, "Threads"));
    let per_client_kb = rss_after.saturating_sub(rss_before) / CLIENTS;
    eprintln!(
        "{CLIENTS} stalled streams: RSS {rss_before} -> {rss_after} kB ({per_client_kb} kB each), threads {threads_before} -> {threads_after}"
    );
    assert!(per_client_kb < 512, "each stalled stream holds {per_client_kb} kB");
    assert!(threads_after <= threads_before + 8, "threads {threads_before} -> {threads_after}");
    drop(sockets);
    daemon.terminate();
}

#[test]
fn streams_past_the_limit_are_refused() {
    let (_sandbox, daemon) = daemon_on_history("20", "streams_max = 2\n");
    let addr = daemon.url.strip_prefix("http://").unwrap().to_string();
    let open: Vec<_> = (0..2).map(|_| stalled_stream(&addr)).collect();
    let started = Instant::now();
    while gauge(&daemon, "dealledger_streams_open") < 2 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A third: what arrives within two seconds (a stream would never end).
    let mut third = stalled_stream(&addr);
    third.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut text = Vec::new();
    let _ = std::io::Read::read_to_end(&mut third, &mut text);
    let text = String::from_utf8_lossy(&text);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("too_many_streams") && text.contains("streams_max"), "{text}");
    drop(open);
    // Their places free again once they are gone (the next write finds them closed).
    daemon.post("/v1/events", r#"{"deal":"S-2","type":"opened","at":"2025-06-01T00:00:00Z","owner":"o"}"#);
    let started = Instant::now();
    while gauge(&daemon, "dealledger_streams_open") > 0 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(gauge(&daemon, "dealledger_streams_open"), 0);
    daemon.terminate();
}

#[test]
fn a_daemon_refuses_settings_it_could_not_honour() {
    let serve = |lines: &str| format!("[serve]\ntoken = \"{TOKEN}\"\n{lines}");
    let cases = [
        ("[serve]\ntoken = \"short-token\"\n".to_string(), "16 bytes"),
        ("[serve]\ntoken = \" a-token-long-enough-for-this \"\n".to_string(), "space"),
        (serve("request_timeout_ms = 0\n"), "request_timeout_ms"),
        (serve("header_read_timeout_ms = 0\n"), "header_read_timeout_ms"),
        (serve("shutdown_timeout_ms = 100000000000\n"), "shutdown_timeout_ms"),
        (serve("connections_max = 100000000\n"), "connections_max"),
        (serve("whatif_timeout_ms = 1\n"), "whatif_timeout_ms"),
        (serve("allowed_hosts = [\"\"]\n"), "allowed_hosts"),
        (serve("allowed_hosts = [\"http://proxy.example\"]\n"), "allowed_hosts"),
        (serve("[[pipeline.stages]]\nname = \"qualifying\"\nprobability = 0.2\n[[pipeline.stages]]\nname = \"won\"\nprobability = 1.0\n"), "`won`"),
    ];
    for (toml, says) in cases {
        let stderr = crate::daemon::serve_refuses(&Sandbox::new(), &toml, &[]);
        assert!(stderr.contains(says), "{toml}: expected `{says}` in {stderr}");
    }
    let sandbox = Sandbox::new();
    let file = sandbox.dir.path().join("token");
    std::fs::write(&file, "tiny\n").unwrap();
    let stderr = crate::daemon::serve_refuses(&sandbox, "", &["--token-file", file.to_str().unwrap()]);
    assert!(stderr.contains("16 bytes"), "{stderr}");
}

/// Sends `request` on a connection from `source` (any 127.0.0.0/8 address reaches a daemon on
/// 127.0.0.1): what arrives before the daemon closes it or two seconds pass.
fn request_from(source: &str, addr: &str, request: &str) -> String {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let source: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&source.into()).unwrap();
    socket.connect(&addr.parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    let mut stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut got);
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn one_address_cannot_take_every_connection() {
    let sandbox = Sandbox::new();
    let daemon = Daemon::start(&sandbox, &format!("[serve]\ntoken = \"{TOKEN}\"\nconnections_max = 64\n"));
    let addr = daemon.url.strip_prefix("http://").unwrap().to_string();
    // From one address, more half-sent headers than the daemon takes connections.
    let held: Vec<_> = (0..70)
        .map(|_| {
            let mut socket = std::net::TcpStream::connect(&addr).unwrap();
            socket.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
            socket
        })
        .collect();
    let refused = request_from("127.0.0.1", &addr, &format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n"));
    assert!(
        refused.starts_with("HTTP/1.1 503") && refused.contains("connections_per_address_max"),
        "{refused}"
    );
    // Another address is served.
    let other = request_from(
        "127.0.0.2",
        &addr,
        &format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    );
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    drop(held);
    daemon.terminate();
}

#[test]
fn sign_in_is_throttled_per_address_and_the_session_expires() {
    let sandbox = Sandbox::new();
    let daemon = Daemon::start(&sandbox, &format!("[serve]\ntoken = \"{TOKEN}\"\n"));
    let addr = daemon.url.strip_prefix("http://").unwrap().to_string();
    let sign_in = |source: &str, token: &str| {
        let body = serde_json::json!({ "token": token }).to_string();
        request_from(
            source,
            &addr,
            &format!(
                "POST /v1/session HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let answers: Vec<String> =
        (0..30).map(|i| sign_in("127.0.0.1", &format!("guess-number-{i:04}"))).collect();
    assert!(answers[0].starts_with("HTTP/1.1 401"), "{}", answers[0]);
    let throttled = answers.iter().filter(|a| a.starts_with("HTTP/1.1 429")).count();
    assert!(throttled >= 15, "{throttled} of 30 wrong guesses throttled:\n{}", answers.join("\n"));
    let last = answers.last().unwrap();
    assert!(
        last.contains("too_many_attempts") && last.to_ascii_lowercase().contains("retry-after:"),
        "{last}"
    );
    // While throttled, the right token is no answer either (it would tell a guess from a hit).
    assert!(sign_in("127.0.0.1", TOKEN).starts_with("HTTP/1.1 429"));
    // Another address signs in, and its session says when it ends.
    let welcome = sign_in("127.0.0.2", TOKEN);
    assert!(welcome.starts_with("HTTP/1.1 204"), "{welcome}");
    let cookie = welcome.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap();
    let max_age: u64 = cookie
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Max-Age="))
        .unwrap_or_else(|| panic!("no Max-Age: {cookie}"))
        .parse()
        .unwrap();
    assert!(max_age > 0 && max_age <= 24 * 3600, "{cookie}");
    // A live session is no guess: it works from the throttled address too.
    let session = cookie.split_once(':').unwrap().1.split(';').next().unwrap().trim();
    let read = |source: &str, cookie: &str| {
        request_from(source, &addr, &format!("GET /v1/events?limit=1 HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"))
    };
    let answer = read("127.0.0.1", session);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A session that is not one (ended, or of an old token) is no session, and no guess either:
    // a dashboard left open overnight does not lock its address out.
    for _ in 0..20 {
        let answer = read("127.0.0.3", "dealledger_session=1.00");
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    daemon.terminate();
}

#[test]
fn two_host_headers_are_refused() {
    let sandbox = Sandbox::new();
    let daemon = Daemon::start(&sandbox, "");
    let addr = daemon.url.strip_prefix("http://").unwrap().to_string();
    for hosts in
        [format!("Host: {addr}\r\nHost: evil.example"), format!("Host: evil.example\r\nHost: {addr}")]
    {
        let answer = request_from(
            "127.0.0.1",
            &addr,
            &format!("GET /v1/session HTTP/1.1\r\n{hosts}\r\nConnection: close\r\n\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 400"), "{hosts}: {answer}");
    }
    daemon.terminate();
}

#[test]
fn rejects_are_bounded_in_bytes() {
    let l = Sandbox::new();
    let lines: Vec<&str> = vec!["{}"; 20_000];
    let input = l.file("junk.jsonl", &lines);
    let rejects = l.dir.path().join("rejects.jsonl");
    let out = l.run(&[
        "ingest",
        "--skip-invalid",
        "--rejects",
        rejects.to_str().unwrap(),
        "--rejects-bytes-max",
        "100000",
        input.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("rejects-bytes-max") && out.stderr.contains("line"), "{}", out.stderr);
    // Nothing stored, and no rejects file larger than asked (none at all: the ingest failed).
    if let Ok(meta) = std::fs::metadata(&rejects) {
        assert!(meta.len() <= 100_000, "rejects file {} bytes", meta.len());
    }
    assert_eq!(l.run(&["stats", "--format", "json"]).ok().json()["events"], 0);
}

/// Why python3 cannot run here, if it cannot (the hostile probes are a Python script).
fn python3_missing() -> Option<String> {
    match std::process::Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!("python3 --version failed: {}", String::from_utf8_lossy(&out.stderr))),
        Err(e) => Some(format!("python3 is not installed ({e})")),
    }
}

#[test]
fn the_hostile_probes_find_no_hole_in_the_daemon() {
    let test = "the_hostile_probes_find_no_hole_in_the_daemon";
    if !crate::harness::tool_available(test, "python3", python3_missing()) {
        return;
    }
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    // The probes' own test first: each finds the hole of a naive server that has them all.
    let own = std::process::Command::new("python3").arg(scripts.join("probe_test.py")).output().unwrap();
    assert!(own.status.success(), "scripts/probe_test.py:\n{}", String::from_utf8_lossy(&own.stderr));
    // Then the daemon, every door configured: a token, the HubSpot hook, a history to stream.
    let sandbox = Sandbox::new();
    let history = sandbox.run(&["gen", "--deals", "300", "--seed", "5"]).ok().stdout;
    let path = sandbox.dir.path().join("history.jsonl");
    std::fs::write(&path, history).unwrap();
    sandbox.run(&["ingest", "--quiet", path.to_str().unwrap()]).ok();
    let toml = format!("[serve]\ntoken = \"{TOKEN}\"\n[hubspot]\napp_secret = \"hs-secret\"\n");
    let daemon = Daemon::start(&sandbox, &toml);
    let token = sandbox.dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let out = std::process::Command::new("python3")
        .arg(scripts.join("probe.py"))
        .args([daemon.url.as_str(), "--token-file", token.to_str().unwrap(), "--hubspot", "--json"])
        .env_remove("DEALLEDGER_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<serde_json::Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    let not_ok: Vec<&serde_json::Value> = results.iter().filter(|r| r["verdict"] != "ok").collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    assert!(results.len() >= 15, "{} probes ran", results.len());
    assert!(out.status.success());
    daemon.terminate();
}

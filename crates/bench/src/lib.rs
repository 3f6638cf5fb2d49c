//! `dealledger bench`: the speed and memory figures of README, measured on generated histories
//! by the release binary as a user runs it. Two benchmarks: [`run`] generates, ingests, reopens,
//! scans, replays and verifies a log of each size and times every report and the what-if engine
//! on its checkpoint; with `daemon` it measures the daemon over real HTTP on loopback (group
//! commit under 32 clients, one client's round trips, and acknowledgements during a what-if
//! sweep on a long history).
//!
//! Boundary: a harness over the library crates; no flags (the binary maps its own onto
//! [`Options`]) and no data directory (each size gets a store of its own under `dir`, with the
//! default pipeline and settings). Its errors are only ever printed, so they are `anyhow`'s.

mod sync;

use anyhow::{Context, Result};
use dealledger_events::{Pipeline, Timestamp};
use dealledger_log::{BlockStore, Ledger, Log, SledStore};
use dealledger_projections::{catch_up, rebuild, Timeline, View};
use dealledger_reports::output::{thousands, Cell, Table};
use dealledger_reports::Settings;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct Options {
    /// Log sizes to measure, in events (approximate: whole deals are generated).
    pub events: Vec<u64>,
    pub seed: u64,
    /// Where to put the generated files and stores; None: a temporary directory, removed after.
    pub dir: Option<PathBuf>,
    /// Print the figures as JSON instead of tables.
    pub json: bool,
    /// Measure the daemon instead.
    pub daemon: bool,
    /// With `daemon`: events of the history the third phase runs on (0 skips it).
    pub daemon_history: u64,
    /// With `daemon`: the first two phases on sled and then on a 3-node JetStream cluster (R3,
    /// every node syncing before it acknowledges) started here from `nats-server` on PATH.
    pub jetstream: bool,
    /// Measure `sync hubspot` of this many deals against a local HubSpot instead.
    pub sync: Option<u64>,
}

/// Where a benchmark daemon keeps its log.
#[derive(Clone, Copy)]
enum Backend<'a> {
    Sled,
    JetStream(&'a dealledger_jetstream::testkit::Cluster),
}

/// A store of its own for one benchmark, under `dir`.
fn store_path(dir: &Path) -> PathBuf {
    dir.join("store")
}

/// The daemon benchmark's shape.
const DAEMON_CLIENTS: usize = 32;
const DAEMON_BATCH_EVENTS: usize = 100;
const DAEMON_BATCHES_PER_CLIENT: usize = 100;
const DAEMON_SINGLE_REQUESTS: usize = 3_000;
const DEAL_LOOKUPS: usize = 1_000;
/// Phase three's batches per client: long enough (about 4 s here) for several what-ifs to run
/// under the clients.
const DURING_WHATIF_BATCHES_PER_CLIENT: usize = 500;

#[derive(serde::Serialize)]
struct DaemonFigures {
    clients: usize,
    batch_events: usize,
    batched_events: u64,
    batched_events_per_second: f64,
    batched_p50_ms: f64,
    batched_p99_ms: f64,
    /// Server side: group commits, and the histogram bucket holding their 99th percentile
    /// (admit, seal, write, flush), in ms.
    group_commits: u64,
    commit_p99_ms_at_most: f64,
    single_requests: usize,
    single_requests_per_second: f64,
    single_p50_ms: f64,
    single_p99_ms: f64,
    /// The third phase, on a long history (None when skipped).
    during_whatif: Option<DuringWhatIf>,
}

/// 32 clients sending batches while a what-if sweep runs on `history_events`, and deal lookups.
#[derive(serde::Serialize)]
struct DuringWhatIf {
    history_events: u64,
    /// The control: the same clients on the same history just before, with no sweep.
    alone_events_per_second: f64,
    alone_p50_ms: f64,
    alone_p99_ms: f64,
    batched_events_per_second: f64,
    batched_p50_ms: f64,
    batched_p99_ms: f64,
    whatifs: usize,
    whatif_median_ms: f64,
    deal_lookups: usize,
    deal_lookup_p50_ms: f64,
    deal_lookup_p99_ms: f64,
}

/// The value at rank ceil(q n) of sorted durations, in ms.
fn quantile_ms(sorted: &[std::time::Duration], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// From the daemon's /metrics: the number of group commits and the upper bound (ms) of the
/// first histogram bucket holding the `q` quantile.
fn commit_quantile(metrics_url: &str, q: f64) -> Result<(u64, f64)> {
    let text = ureq::get(metrics_url)
        .call()
        .map_err(|e| anyhow::anyhow!("GET {metrics_url}: {e}"))?
        .into_string()?;
    let mut buckets = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("dealledger_commit_seconds_bucket{le=\"") {
            let (bound, count) = rest.split_once("\"} ").context("histogram line")?;
            buckets.push((bound.parse::<f64>().unwrap_or(f64::INFINITY), count.parse::<u64>()?));
        }
    }
    let total = buckets.last().map_or(0, |b| b.1);
    let bound = buckets.iter().find(|b| b.1 as f64 >= q * total as f64).map_or(f64::INFINITY, |b| b.0);
    Ok((total, bound * 1000.0))
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> Result<std::time::Duration> {
    let started = Instant::now();
    let response = agent
        .post(url)
        .set("Content-Type", "application/x-ndjson")
        .send_string(body)
        .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
    let _ = response.into_string()?;
    Ok(started.elapsed())
}

/// A daemon on the store in `dir/store`: its base URL, a stop switch, and its thread.
type Daemon = (
    String,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<Result<dealledger_server::Stopped, dealledger_server::ServeError>>,
);

fn start_daemon(dir: &std::path::Path, backend: Backend<'_>) -> Result<Daemon> {
    let (store, writing): (dealledger_server::Store, _) = match backend {
        Backend::Sled => {
            (std::sync::Arc::new(SledStore::open(&store_path(dir))?), dealledger_server::Writing::Sole)
        }
        Backend::JetStream(cluster) => {
            // A ledger of its own per run.
            static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let ledger = format!("bench{}-{run}", std::process::id());
            let target =
                dealledger_jetstream::Target::parse(&cluster.url(&ledger)).map_err(anyhow::Error::msg)?;
            let store = dealledger_jetstream::JetStreamStore::open(&target, &cluster.options(), true)?;
            let lease =
                store.lease("the benchmark's daemon".into(), std::time::Duration::from_secs(10), 3)?;
            let writing = dealledger_server::Writing::Leased {
                lease: std::sync::Arc::new(lease),
                holder: Box::new(|addr| format!("the benchmark's daemon at {addr}")),
            };
            (std::sync::Arc::new(store), writing)
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (address, bound) = std::sync::mpsc::channel();
    let config = dealledger_server::ServeConfig { listen: "127.0.0.1:0".parse()?, ..Default::default() };
    let server = std::thread::spawn(move || {
        dealledger_server::run(
            store,
            writing,
            dealledger_events::Pipeline::default(),
            Settings::default(),
            config,
            std::sync::Arc::new(dealledger_events::SystemClock),
            |addr| {
                let _ = address.send(addr);
            },
            async move {
                let _ = stopped.await;
            },
        )
    });
    let base = format!("http://{}", bound.recv().context("the daemon did not start")?);
    Ok((base, stop, server))
}

/// Bodies of `batches` batches of [`DAEMON_BATCH_EVENTS`] events per client, deal ids from `tag`.
fn batch_bodies(tag: &str, clients: usize, batches: usize) -> Vec<Vec<String>> {
    (0..clients)
        .map(|c| {
            (0..batches)
                .map(|b| {
                    let deal = format!("{tag}{c}-{b}");
                    let mut lines = vec![format!(
                        r#"{{"deal":"{deal}","type":"opened","at":"2025-01-01T00:00:00Z","owner":"o","amount":100}}"#
                    )];
                    lines.extend((1..DAEMON_BATCH_EVENTS).map(|i| {
                        format!(
                            r#"{{"deal":"{deal}","type":"touch","at":"2025-01-02T00:00:00Z","channel":"email","direction":"outbound","minutes":5,"source_id":"{deal}-{i}"}}"#
                        )
                    }));
                    lines.join("\n")
                })
                .collect()
        })
        .collect()
}

/// Posts every client's bodies from its own thread: the latencies, sorted, and the seconds taken.
fn run_clients(url: &str, bodies: Vec<Vec<String>>) -> Result<(Vec<std::time::Duration>, f64)> {
    let started = Instant::now();
    let clients: Vec<_> = bodies
        .into_iter()
        .map(|bodies| {
            let url = url.to_string();
            std::thread::spawn(move || -> Result<Vec<std::time::Duration>> {
                let agent = ureq::AgentBuilder::new().build();
                bodies.iter().map(|body| post(&agent, &url, body)).collect()
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.join().map_err(|_| anyhow::anyhow!("a client panicked"))??);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    Ok((latencies, seconds))
}

/// Ingests the JSON Lines `file` into the store in `dir` as `dealledger ingest` does, all or
/// nothing.
fn ingest_file(dir: &Path, file: &Path) -> Result<dealledger_ingest::Report> {
    let mut ledger = Ledger::open(SledStore::open(&store_path(dir))?, Pipeline::default())?;
    let options = dealledger_ingest::Options::one_file(file);
    Ok(dealledger_ingest::run(&mut ledger, &dealledger_events::SystemClock, &options)?)
}

/// Phase three: a history of about `events` events, a daemon on it, 32 clients posting while one
/// client runs a what-if sweep (gone_dark 7 to 60 days, one request per value, round after
/// round), then deal lookups.
fn during_whatif(root: &std::path::Path, events: u64, seed: u64) -> Result<DuringWhatIf> {
    let dir = root.join("bench-daemon-history");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let deals = (events / dealledger_gen::EVENTS_PER_DEAL_APPROX).max(1);
    let file = dir.join("events.jsonl");
    eprintln!("daemon: generating and ingesting a history of ~{} events", thousands(events));
    let history_events = dealledger_gen::write_jsonl(
        &dealledger_gen::Config::new(seed, deals),
        Box::new(std::fs::File::create(&file)?),
    )?;
    let data = dir.join("data");
    ingest_file(&data, &file)?;
    std::fs::remove_file(&file)?;
    eprintln!("daemon: starting on it (the timeline catches up first)");
    let (base, stop, server) = start_daemon(&data, Backend::Sled)?;
    // The control first: on a long history the folder has more to do per event than on an empty
    // one, so the sweep's cost is what it adds to this, not to phase one.
    eprintln!("daemon: {DAEMON_CLIENTS} clients on the history, no sweep");
    let (alone, alone_seconds) = run_clients(
        &format!("{base}/v1/events"),
        batch_bodies("A", DAEMON_CLIENTS, DURING_WHATIF_BATCHES_PER_CLIENT),
    )?;
    let bodies = batch_bodies("W", DAEMON_CLIENTS, DURING_WHATIF_BATCHES_PER_CLIENT);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sweep = {
        let (base, done) = (base.clone(), done.clone());
        std::thread::spawn(move || -> Result<Vec<std::time::Duration>> {
            let agent = ureq::AgentBuilder::new().build();
            let mut spans = Vec::new();
            'rounds: loop {
                for days in 7..=60 {
                    if done.load(std::sync::atomic::Ordering::Relaxed) && !spans.is_empty() {
                        break 'rounds;
                    }
                    let started = Instant::now();
                    let url = format!("{base}/v1/whatif?rule=gone_dark={days}");
                    agent.get(&url).call().map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?.into_string()?;
                    spans.push(started.elapsed());
                }
            }
            spans.sort();
            Ok(spans)
        })
    };
    // The sweep's first what-if is under way before the clients start.
    std::thread::sleep(std::time::Duration::from_millis(200));
    eprintln!("daemon: {DAEMON_CLIENTS} clients while the what-if sweep runs");
    let (batched, seconds) = run_clients(&format!("{base}/v1/events"), bodies)?;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let whatifs = sweep.join().map_err(|_| anyhow::anyhow!("the sweep panicked"))??;
    eprintln!("daemon: deal lookups");
    let agent = ureq::AgentBuilder::new().build();
    let mut rng = seed.max(1);
    let mut lookups = Vec::new();
    for _ in 0..DEAL_LOOKUPS {
        // xorshift: a spread of deals, the same for a seed.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let url = format!("{base}/v1/deals/D-{:07}", rng % deals + 1);
        let started = Instant::now();
        agent.get(&url).call().map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?.into_string()?;
        lookups.push(started.elapsed());
    }
    lookups.sort();
    let _ = stop.send(());
    server.join().map_err(|_| anyhow::anyhow!("the daemon panicked"))??;
    let batched_events = batched.len() as u64 * DAEMON_BATCH_EVENTS as u64;
    let alone_events = alone.len() as u64 * DAEMON_BATCH_EVENTS as u64;
    Ok(DuringWhatIf {
        history_events,
        alone_events_per_second: alone_events as f64 / alone_seconds,
        alone_p50_ms: quantile_ms(&alone, 0.5),
        alone_p99_ms: quantile_ms(&alone, 0.99),
        batched_events_per_second: batched_events as f64 / seconds,
        batched_p50_ms: quantile_ms(&batched, 0.5),
        batched_p99_ms: quantile_ms(&batched, 0.99),
        whatifs: whatifs.len(),
        whatif_median_ms: quantile_ms(&whatifs, 0.5),
        deal_lookups: lookups.len(),
        deal_lookup_p50_ms: quantile_ms(&lookups, 0.5),
        deal_lookup_p99_ms: quantile_ms(&lookups, 0.99),
    })
}

fn daemon_bench(
    root: &std::path::Path,
    history_events: u64,
    seed: u64,
    backend: Backend<'_>,
) -> Result<DaemonFigures> {
    let dir = root.join("bench-daemon");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let (base, stop, server) = start_daemon(&dir, backend)?;
    let url = format!("{base}/v1/events");
    let opened = |deal: &str| {
        format!(r#"{{"deal":"{deal}","type":"opened","at":"2025-01-01T00:00:00Z","owner":"o","amount":100}}"#)
    };
    let touch = |deal: &str, i: usize| {
        format!(
            r#"{{"deal":"{deal}","type":"touch","at":"2025-01-02T00:00:00Z","channel":"email","direction":"outbound","minutes":5,"source_id":"{deal}-{i}"}}"#
        )
    };
    eprintln!(
        "daemon: {DAEMON_CLIENTS} clients x {DAEMON_BATCHES_PER_CLIENT} batches of {DAEMON_BATCH_EVENTS} events"
    );
    // Bodies are built before the clock starts: the figure is the daemon's, not the clients'.
    let bodies = batch_bodies("P", DAEMON_CLIENTS, DAEMON_BATCHES_PER_CLIENT);
    let (batched, batched_seconds) = run_clients(&url, bodies)?;
    let (group_commits, commit_p99_ms_at_most) =
        commit_quantile(&url.replace("/v1/events", "/metrics"), 0.99)?;
    let batched_events = (DAEMON_CLIENTS * DAEMON_BATCHES_PER_CLIENT * DAEMON_BATCH_EVENTS) as u64;

    eprintln!("daemon: 1 client x {DAEMON_SINGLE_REQUESTS} requests of one event");
    let agent = ureq::AgentBuilder::new().build();
    post(&agent, &url, &opened("S"))?;
    let started = Instant::now();
    let mut single = (1..=DAEMON_SINGLE_REQUESTS)
        .map(|i| post(&agent, &url, &touch("S", i)))
        .collect::<Result<Vec<_>>>()?;
    let single_seconds = started.elapsed().as_secs_f64();
    single.sort();
    let _ = stop.send(());
    server.join().map_err(|_| anyhow::anyhow!("the daemon panicked"))??;
    let during_whatif = match history_events {
        0 => None,
        events => Some(during_whatif(root, events, seed)?),
    };
    Ok(DaemonFigures {
        clients: DAEMON_CLIENTS,
        batch_events: DAEMON_BATCH_EVENTS,
        batched_events,
        batched_events_per_second: batched_events as f64 / batched_seconds,
        batched_p50_ms: quantile_ms(&batched, 0.5),
        batched_p99_ms: quantile_ms(&batched, 0.99),
        group_commits,
        commit_p99_ms_at_most,
        single_requests: DAEMON_SINGLE_REQUESTS,
        single_requests_per_second: DAEMON_SINGLE_REQUESTS as f64 / single_seconds,
        single_p50_ms: quantile_ms(&single, 0.5),
        single_p99_ms: quantile_ms(&single, 0.99),
        during_whatif,
    })
}

#[derive(serde::Serialize)]
struct Figures {
    events: u64,
    deals: u64,
    jsonl_bytes: u64,
    ingest_seconds: f64,
    ingest_events_per_second: f64,
    open_seconds: f64,
    scan_events_per_second: f64,
    replay_events_per_second: f64,
    verify_events_per_second: f64,
    bytes_on_disk: u64,
    bytes_per_event: f64,
    /// The sealed blocks themselves (compressed records, header, crc), summed: what the store
    /// holds, against what it takes on disk (`bytes_on_disk`).
    block_bytes: u64,
    /// The timeline checkpoint: its size, and the time to read and decode it (a current one).
    checkpoint_bytes: u64,
    checkpoint_load_ms: f64,
    /// Each report on the loaded timeline, folding every deal's history (what a one-off CLI
    /// report does after the load, and any report on a past moment).
    report_fold_ms: BTreeMap<&'static str, f64>,
    /// Folding every deal under "now" once, on both cores (what the daemon does at start).
    refresh_ms: f64,
    /// Each report on "now" from the kept folds: the daemon's latency.
    report_ms: BTreeMap<&'static str, f64>,
    whatif: WhatIfFigures,
    /// Peak resident memory of this process so far (VmHWM).
    peak_rss_bytes: u64,
}

/// Values in the what-if benchmark's sweep.
const WHATIF_SWEEP_VALUES: usize = 50;

#[derive(serde::Serialize)]
struct WhatIfFigures {
    /// Preparing (every deal folded once, the stages' p90 history) and one policy
    /// (gone_dark = 14), as `dealledger whatif --rule gone_dark=14` does after the load.
    single_ms: f64,
    single_events_per_second: f64,
    /// Preparing once and a sweep of gone_dark over 50 values.
    sweep_ms: f64,
    sweep_over_single: f64,
    /// The copy of the timeline a daemon's what-if reads (the timeline's lock held meanwhile).
    snapshot_ms: f64,
}

fn time_whatif(timeline: &Timeline, events: u64) -> Result<WhatIfFigures> {
    let settings = Settings::default();
    let scope = dealledger_whatif::Scope {
        from: None,
        to: None,
        as_of: timeline.latest_at(),
        as_logged: false,
        currency: None,
    };
    let mut policy = dealledger_whatif::Policy::default();
    policy.set("gone_dark", 14.0).map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let prepared =
        dealledger_whatif::Prepared::new(timeline, &settings, scope).map_err(anyhow::Error::msg)?;
    std::hint::black_box(prepared.run(&policy, false, false).map_err(anyhow::Error::msg)?);
    let single_ms = started.elapsed().as_secs_f64() * 1000.0;
    let values: Vec<f64> = (0..WHATIF_SWEEP_VALUES).map(|i| 7.0 + i as f64).collect();
    let started = Instant::now();
    let prepared =
        dealledger_whatif::Prepared::new(timeline, &settings, scope).map_err(anyhow::Error::msg)?;
    std::hint::black_box(
        prepared
            .sweep(&dealledger_whatif::Policy::default(), "gone_dark", &values)
            .map_err(anyhow::Error::msg)?,
    );
    let sweep_ms = started.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    std::hint::black_box(timeline.snapshot());
    let snapshot_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(WhatIfFigures {
        snapshot_ms,
        single_ms,
        single_events_per_second: events as f64 / (single_ms / 1000.0),
        sweep_ms,
        sweep_over_single: sweep_ms / single_ms,
    })
}

/// Peak resident set size from /proc (Linux); 0 where there is none.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// Times each report on `timeline` as of its last event (KPIs and costs over the last year).
fn time_reports(timeline: &Timeline, settings: &Settings) -> BTreeMap<&'static str, f64> {
    let end = timeline.latest_at();
    let start = Timestamp(end.0 - 365 * dealledger_events::time::MICROS_PER_DAY);
    // Periods end after the last event, as a period "to date" does.
    let end_exclusive = Timestamp(end.0 + 1);
    let view = View { as_of: end, known_at: Timestamp::MAX };
    let mut out = BTreeMap::new();
    let mut time = |name: &'static str, run: &mut dyn FnMut() -> usize| {
        let started = Instant::now();
        let size = run();
        out.insert(name, started.elapsed().as_secs_f64() * 1000.0);
        tracing::debug!(name, size, "report");
    };
    use dealledger_reports::*;
    time("pipeline", &mut || {
        render(&pipeline::pipeline(timeline, settings, view, None).expect("no currency asked"), Format::Json)
            .len()
    });
    time("time_in_stage", &mut || {
        render(&stages::time_in_stage(timeline, settings, view, false, false), Format::Json).len()
    });
    time("kpis", &mut || {
        let report = kpis::kpis(timeline, settings, start, end_exclusive, Timestamp::MAX, None, None)
            .expect("no currency asked");
        render(&report, Format::Json).len()
    });
    time("bad_deal_cost", &mut || {
        let report = cost::bad_deal_cost(timeline, settings, start, end_exclusive, Timestamp::MAX, false);
        render(&report, Format::Json).len()
    });
    time("flags", &mut || render(&flags::flags(timeline, settings, view), Format::Json).len());
    out
}

/// Runs the benchmark `args` asks for and prints its figures.
pub fn run(args: &Options) -> Result<()> {
    let temp = tempfile::tempdir()?;
    let root = args.dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
    if let Some(deals) = args.sync {
        let figures = sync::sync_bench(&root, deals)?;
        println!("{}", if args.json { serde_json::to_string_pretty(&figures)? } else { figures.to_string() });
        return Ok(());
    }
    if args.daemon && args.jetstream {
        if let Some(why) = dealledger_jetstream::testkit::nats_server_missing() {
            anyhow::bail!("bench --daemon --jetstream: {why}");
        }
        let nats = root.join("bench-nats");
        if nats.exists() {
            std::fs::remove_dir_all(&nats)?;
        }
        let cluster = dealledger_jetstream::testkit::Cluster::start(&nats, 3);
        // Alternating, so that the machine's noise falls on both alike.
        let mut runs = Vec::new();
        for round in 0..2 {
            for (name, backend) in [("sled", Backend::Sled), ("jetstream_r3", Backend::JetStream(&cluster))] {
                eprintln!("daemon on {name}, round {}", round + 1);
                runs.push((name, daemon_bench(&root, 0, args.seed, backend)?));
            }
        }
        if args.json {
            let all: Vec<_> =
                runs.iter().map(|(name, f)| serde_json::json!({"store": name, "figures": f})).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        } else {
            for (name, f) in &runs {
                println!("{name}:");
                print_daemon(f);
            }
        }
        return Ok(());
    }
    if args.daemon {
        let f = daemon_bench(&root, args.daemon_history, args.seed, Backend::Sled)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&f)?);
        } else {
            print_daemon(&f);
        }
        return Ok(());
    }
    let mut all = Vec::new();
    for &target in &args.events {
        let dir = root.join(format!("bench-{target}"));
        all.push(measure(&dir, target, args.seed)?);
        if args.dir.is_none() {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    print_tables(&all);
    Ok(())
}

fn print_daemon(f: &DaemonFigures) {
    println!(
        "{} clients x batches of {}: {} events/s acknowledged, p50 {:.1} ms, p99 {:.1} ms \
             (clients' clocks); {} group commits, 99% within {} ms (daemon's histogram)",
        f.clients,
        f.batch_events,
        thousands(f.batched_events_per_second as u64),
        f.batched_p50_ms,
        f.batched_p99_ms,
        f.group_commits,
        f.commit_p99_ms_at_most
    );
    println!(
        "1 client x 1 event per request: {} requests/s, p50 {:.2} ms, p99 {:.2} ms",
        thousands(f.single_requests_per_second as u64),
        f.single_p50_ms,
        f.single_p99_ms
    );
    if let Some(w) = &f.during_whatif {
        println!(
            "{} clients on {} events, no sweep: {} events/s, p50 {:.1} ms, p99 {:.1} ms",
            f.clients,
            thousands(w.history_events),
            thousands(w.alone_events_per_second as u64),
            w.alone_p50_ms,
            w.alone_p99_ms
        );
        println!(
            "{} clients during a what-if sweep on {} events: {} events/s, p50 {:.1} ms, p99 {:.1} ms; \
                 {} what-ifs, median {:.0} ms; {} deal lookups p50 {:.2} ms, p99 {:.2} ms",
            f.clients,
            thousands(w.history_events),
            thousands(w.batched_events_per_second as u64),
            w.batched_p50_ms,
            w.batched_p99_ms,
            w.whatifs,
            w.whatif_median_ms,
            w.deal_lookups,
            w.deal_lookup_p50_ms,
            w.deal_lookup_p99_ms
        );
    }
}

/// One size: generate about `target` events into `dir`, ingest, reopen, scan, replay, verify,
/// then time the reports and the what-if engine on the checkpoint.
fn measure(dir: &std::path::Path, target: u64, seed: u64) -> Result<Figures> {
    let deals = (target / dealledger_gen::EVENTS_PER_DEAL_APPROX).max(1);
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let file = dir.join("events.jsonl");
    eprintln!(
        "generating ~{} events ({} deals) into {}",
        thousands(target),
        thousands(deals),
        file.display()
    );
    let events = dealledger_gen::write_jsonl(
        &dealledger_gen::Config::new(seed, deals),
        Box::new(std::fs::File::create(&file)?),
    )?;
    let jsonl_bytes = std::fs::metadata(&file)?.len();
    let data = dir.join("data");
    let open_log = || -> Result<Log<SledStore>> { Ok(Log::open(SledStore::open(&store_path(&data))?)?) };

    eprintln!("ingesting {}", thousands(events));
    let report = ingest_file(&data, &file)?;

    eprintln!("reopening the writer, scanning, replaying, verifying");
    let started = Instant::now();
    let ledger = Ledger::open(SledStore::open(&store_path(&data))?, Pipeline::default())?;
    let open_seconds = started.elapsed().as_secs_f64();
    drop(ledger);
    let log = open_log()?;
    let started = Instant::now();
    let mut scanned = 0u64;
    log.scan_refs(1, |_| {
        scanned += 1;
        Ok(true)
    })?;
    let scan_seconds = started.elapsed().as_secs_f64();
    // The log's own size, before the replay below stores the timeline's checkpoint.
    let bytes_on_disk = log.store().bytes_on_disk()?;
    let mut block_bytes = 0u64;
    log.store().scan(1, &mut |_, value| {
        block_bytes += value.len() as u64;
        Ok(true)
    })?;
    let (_, replay) = rebuild::<Timeline, _>(&log)?;
    let started = Instant::now();
    log.verify(None, |_| {})?;
    let verify_seconds = started.elapsed().as_secs_f64();
    let checkpoint_bytes = log.store().get_meta("checkpoint/timeline")?.map_or(0, |v| v.len() as u64);
    drop(log);

    eprintln!("loading the checkpoint, timing reports");
    let log = open_log()?;
    let started = Instant::now();
    let (timeline, loaded) = catch_up::<Timeline, _>(&log)?;
    let checkpoint_load_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert!(loaded.from_checkpoint && loaded.events == 0, "the checkpoint is current");
    let mut timeline = timeline;
    let report_fold_ms = time_reports(&timeline, &Settings::default());
    let started = Instant::now();
    timeline.refresh();
    let refresh_ms = started.elapsed().as_secs_f64() * 1000.0;
    let report_ms = time_reports(&timeline, &Settings::default());
    eprintln!("what-if: one policy, and a sweep of {WHATIF_SWEEP_VALUES} values");
    let whatif = time_whatif(&timeline, events)?;
    drop(timeline);
    let figures = Figures {
        events,
        deals,
        jsonl_bytes,
        ingest_seconds: report.seconds,
        ingest_events_per_second: report.events_per_second(),
        open_seconds,
        scan_events_per_second: scanned as f64 / scan_seconds,
        replay_events_per_second: replay.events_per_second(),
        verify_events_per_second: events as f64 / verify_seconds,
        bytes_on_disk,
        bytes_per_event: bytes_on_disk as f64 / events as f64,
        block_bytes,
        checkpoint_bytes,
        checkpoint_load_ms,
        report_fold_ms,
        refresh_ms,
        report_ms,
        whatif,
        peak_rss_bytes: peak_rss_bytes(),
    };
    drop(log);
    Ok(figures)
}

fn print_tables(all: &[Figures]) {
    let mut table = Table::new(
        "",
        &[
            "events",
            "ingest ev/s",
            "writer open s",
            "scan ev/s",
            "replay ev/s",
            "verify ev/s",
            "bytes/event",
            "of it blocks",
            "jsonl bytes/event",
        ],
    );
    for f in all {
        let row = [
            thousands(f.events),
            thousands(f.ingest_events_per_second as u64),
            format!("{:.2}", f.open_seconds),
            thousands(f.scan_events_per_second as u64),
            thousands(f.replay_events_per_second as u64),
            thousands(f.verify_events_per_second as u64),
            format!("{:.1}", f.bytes_per_event),
            format!("{:.1}", f.block_bytes as f64 / f.events as f64),
            format!("{:.0}", f.jsonl_bytes as f64 / f.events as f64),
        ];
        table.push(row.into_iter().map(Cell::Figure).collect());
    }
    print!("{}", table.render());
    let mut table = Table::new(
        "",
        &[
            "events",
            "checkpoint MB",
            "load ms",
            "refresh ms",
            "pipeline ms (kept / fold)",
            "time-in-stage ms (kept / fold)",
            "kpis ms (kept / fold)",
            "bad-deal-cost ms (kept / fold)",
            "flags ms (kept / fold)",
            "what-if ms (ev/s)",
            "50-value sweep ms (x single)",
            "what-if copy ms",
            "peak RSS MB",
        ],
    );
    for f in all {
        let mut row = vec![
            thousands(f.events),
            format!("{:.1}", f.checkpoint_bytes as f64 / 1e6),
            format!("{:.0}", f.checkpoint_load_ms),
            format!("{:.0}", f.refresh_ms),
        ];
        for name in ["pipeline", "time_in_stage", "kpis", "bad_deal_cost", "flags"] {
            // Kept folds (the daemon), then folding (a one-off report after the load).
            row.push(format!("{:.1} / {:.1}", f.report_ms[name], f.report_fold_ms[name]));
        }
        row.push(format!(
            "{:.0} ({})",
            f.whatif.single_ms,
            thousands(f.whatif.single_events_per_second as u64)
        ));
        row.push(format!("{:.0} ({:.1}x)", f.whatif.sweep_ms, f.whatif.sweep_over_single));
        row.push(format!("{:.0}", f.whatif.snapshot_ms));
        row.push(format!("{:.0}", f.peak_rss_bytes as f64 / 1e6));
        table.push(row.into_iter().map(Cell::Figure).collect());
    }
    print!("\n{}", table.render());
}

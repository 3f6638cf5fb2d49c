//! dealledger's ingest daemon: `dealledger serve`.
//!
//! HTTP (axum on tokio) in front of one writer thread that group-commits: every request is its
//! own atomic unit, everything waiting is appended as one store write made durable by one fsync
//! barrier, and a request is answered once its events are durable. A folder thread folds them
//! into the live timeline; readers that must reflect every acknowledgement (reports, what-ifs,
//! deal histories) wait for it, the writer never waits for a reader. Readers (event pages, the
//! SSE live tail, deal histories, reports) see the log only up to the last durable head.
//!
//! On a store several daemons share ([`Writing::Leased`]), the one holding the writer lease
//! writes; the others are standbys that follow the store for their readers and answer writes
//! 503 naming the writer, and take over when the lease lapses (`leadership`).
//!
//! Boundary: depends on the ledger's libraries (events, log, projections, reports) through
//! their public APIs, and on the store only through `BlockStore`. It knows nothing of clap or of
//! files other than what its caller hands it; it never reads the wall clock (the clock is
//! injected, so tests pin `now`).

mod budget;
pub mod config;
pub mod dashboard;
mod decode;
mod folder;
mod http;
pub mod hubspot;
mod leadership;
mod listen;
mod live;
mod metrics;
pub mod quarantine;
mod scheduled;
pub mod sync_sink;
mod throttle;
mod writer;

pub use config::{serve_config_from, HubSpotConfig, ServeConfig, StageTarget};

use dealledger_events::{Clock, Pipeline};
use dealledger_log::{Head, Ledger};
use dealledger_projections::{catch_up, save_checkpoint, Timeline};
use dealledger_reports::Settings;
pub use http::{route_roles, NOTE_HEADER};
use metrics::Metrics;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex, RwLock};
use tokio::sync::watch;
pub use writer::Store;

/// Live tails reading a page of the log at once, at most (each on a blocking-pool thread).
const STREAM_READS_MAX: usize = 2;

/// What the request handlers share: the HTTP side's state. The writer and the folder are
/// handed only their own parts ([`writer::Parts`], [`live::LiveTimeline`]).
pub(crate) struct Shared {
    config: ServeConfig,
    /// The address actually bound (the port when `listen` asked for 0): what a Host header
    /// must name on loopback.
    bound: SocketAddr,
    /// `[hubspot]`, swapped when a quarantine retry reads dealledger.toml again.
    hubspot: Arc<HubSpotSetting>,
    /// Open when `[hubspot]` is configured; the writer records in it, readers list it.
    quarantine: Option<Arc<Mutex<quarantine::Quarantine>>>,
    settings: Settings,
    metrics: Arc<Metrics>,
    /// The timeline with every durable event folded in, and the durable head.
    live: Arc<live::LiveTimeline>,
    /// Slots for what-ifs computing at once (`[serve] whatifs_max`).
    whatifs: Arc<tokio::sync::Semaphore>,
    /// Wrong tokens by address: sign-in and bearer guesses slowed down.
    throttle: throttle::Throttle,
    /// Places for live tails (`[serve] streams_max`).
    streams: Arc<tokio::sync::Semaphore>,
    /// Live tails reading a page from the log at once: they read on the blocking pool, and a
    /// burst of tails must not become a burst of threads.
    stream_reads: tokio::sync::Semaphore,
    /// Why the writer cannot write, while it cannot: what `/readyz` names.
    failed: Arc<Readiness>,
    queue: mpsc::SyncSender<writer::Message>,
    /// Bytes of requests in memory (`[serve] queue_bytes_max`).
    budget: Arc<budget::Budget>,
    /// Bytes of HubSpot deliveries read before their signature is checked
    /// (`[hubspot] unsigned_bytes_max`): a budget of their own, never the shared one.
    unsigned: Arc<budget::Budget>,
    clock: Arc<dyn Clock + Send + Sync>,
    /// True once a shutdown signal arrived: live tails end, readiness fails.
    shutdown: watch::Sender<bool>,
    /// The scheduled CRM syncs' standing (`GET /v1/sync`).
    syncs: Arc<scheduled::Status>,
    /// Every token the daemon takes, with its name and role (`ServeConfig::all_tokens`).
    tokens: Vec<config::ScopedToken>,
}

/// `[hubspot]` as the daemon uses it now: read at the start, read again by a quarantine retry.
#[derive(Default)]
pub(crate) struct HubSpotSetting(RwLock<Option<Arc<HubSpotConfig>>>);

impl HubSpotSetting {
    fn get(&self) -> Option<Arc<HubSpotConfig>> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set(&self, config: HubSpotConfig) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(config));
    }
}

/// Why the writer cannot write, while it cannot: set by the writer from its role alone, read by
/// `/readyz` and at the end of a run.
#[derive(Default)]
pub(crate) struct Readiness(Mutex<Option<String>>);

impl Readiness {
    fn failure(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set(&self, failure: Option<String>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = failure;
    }
}

/// How this daemon comes to write.
pub enum Writing {
    /// It is the store's only writer (sled: the data directory's lock keeps others out).
    Sole,
    /// Several daemons share the store: the one holding this lease writes, the others stand
    /// by, following the store for reads and answering writes 503 naming the writer. `holder`
    /// names this daemon for the others, given the address it listens on.
    Leased {
        lease: Arc<dyn dealledger_log::lease::Lease>,
        holder: Box<dyn FnOnce(SocketAddr) -> String + Send>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to listen on {0} without a token: set [serve] token in dealledger.toml or pass --token-file (only loopback addresses may go without)")]
    NoToken(SocketAddr),
    #[error(transparent)]
    BadToken(#[from] config::TokenError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Log(#[from] dealledger_log::LogError),
    #[error(transparent)]
    Replay(#[from] dealledger_projections::ReplayError),
    #[error(transparent)]
    Quarantine(#[from] quarantine::QuarantineError),
    #[error("[hubspot] is configured but no quarantine file was given (ServeConfig::quarantine_path): notifications that cannot be admitted would have nowhere to go")]
    NoQuarantine,
    #[error("[sync] {crm} needs the token: {why}")]
    SyncToken { crm: &'static str, why: dealledger_sync::http::TokenError },
    #[error("[sync] schedules a CRM but no sync state path was given (SyncConfig)")]
    NoSyncState,
    #[error("{0}")]
    Runtime(String),
}

/// What a finished daemon did.
#[derive(Clone, Copy, Debug)]
pub struct Stopped {
    pub head: Head,
}

/// Runs the daemon until `stop` resolves (the binary passes [`signal`]: SIGTERM or SIGINT):
/// stops accepting, finishes the requests in flight, flushes, checkpoints the timeline and
/// returns. `listening` is called once with the bound address (port 0 picks one) before the
/// first request is accepted.
#[allow(clippy::too_many_arguments, reason = "the daemon's parts, each from its own source")]
pub fn run(
    store: Store,
    writing: Writing,
    pipeline: Pipeline,
    settings: Settings,
    config: ServeConfig,
    clock: Arc<dyn Clock + Send + Sync>,
    listening: impl FnOnce(SocketAddr),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Stopped, ServeError> {
    let quarantine = check_start(&config)?;
    let schedules = sync_schedules(&config)?;
    let ledger = Ledger::open(store.clone(), pipeline)?;
    let (mut timeline, stats) = catch_up::<Timeline, _>(ledger.log())?;
    timeline.refresh();
    tracing::info!(events = stats.events, seconds = stats.seconds, "timeline caught up");
    let head = ledger.log().head();
    let (runtime, listener, bound) = bind(config.listen)?;
    let (queue_tx, queue_rx) = mpsc::sync_channel(config.queue_requests_max);
    // Unbounded, but one small message per commit, and the folder takes them all at once.
    let (fold_tx, fold_rx) = mpsc::channel();
    let metrics = Metrics::default();
    if let Some(quarantine) = &quarantine {
        metrics.quarantined.store(quarantine.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
    let budget = budget::Budget::new(config.queue_bytes_max);
    let unsigned = budget::Budget::new(config.hubspot.as_ref().map_or(0, |h| h.unsigned_bytes_max));
    let leadership = lead(writing, bound);
    let hubspot = Arc::new(HubSpotSetting::default());
    if let Some(config) = config.hubspot.clone() {
        hubspot.set(config);
    }
    let parts = writer::Parts {
        live: Arc::new(live::LiveTimeline::new(timeline, head, store, fold_tx)),
        metrics: Arc::new(metrics),
        leadership: leadership.clone(),
        quarantine: quarantine.map(|q| Arc::new(Mutex::new(q))),
        hubspot,
        failed: Arc::new(Readiness::default()),
    };
    let tokens = config.all_tokens();
    let shared = Arc::new(Shared {
        whatifs: Arc::new(tokio::sync::Semaphore::new(config.whatifs_max)),
        streams: Arc::new(tokio::sync::Semaphore::new(config.streams_max)),
        config,
        bound,
        hubspot: parts.hubspot.clone(),
        quarantine: parts.quarantine.clone(),
        settings,
        metrics: parts.metrics.clone(),
        live: parts.live.clone(),
        throttle: throttle::Throttle::default(),
        stream_reads: tokio::sync::Semaphore::new(STREAM_READS_MAX),
        failed: parts.failed.clone(),
        queue: queue_tx,
        budget,
        unsigned,
        clock: clock.clone(),
        shutdown: watch::Sender::new(false),
        syncs: Arc::new(scheduled::Status::default()),
        tokens,
    });
    let stopping = Arc::new(scheduled::Stopping::default());
    let syncing = start_syncs(schedules, &shared, &parts, ledger.pipeline(), &stopping)?;
    let keeper = match leadership.clone() {
        Some(leadership) => Some(spawn("dealledger-lease", move || leadership.keep())?),
        None => None,
    };
    let folder_live = parts.live.clone();
    let writer = spawn("dealledger-writer", move || writer::run(ledger, clock, queue_rx, parts))?;
    let folder = spawn("dealledger-folder", move || folder::run(fold_rx, &folder_live))?;
    listening(bound);
    tracing::info!(%bound, "listening");
    let router = http::router(shared.clone());
    let signal_shared = shared.clone();
    let config = shared.config.clone();
    let counted_shared = shared.clone();
    let counted: listen::Counter = Arc::new(move |code| counted_shared.metrics.reject(code));
    let sync_stopping = stopping.clone();
    let on_stop = move || {
        tracing::info!("shutting down: finishing requests in flight");
        signal_shared.shutdown.send_replace(true);
        // A sync run stops at its next page or wait; what it stored stays stored.
        sync_stopping.stop();
    };
    runtime.block_on(listen::serve(listener, router, &config, stop, on_stop, counted));
    stopping.stop();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(scheduled::STOP_WAIT_MS_MAX);
    for thread in syncing {
        join_within(thread, deadline.saturating_duration_since(std::time::Instant::now()));
    }
    finish(&shared, runtime, writer, folder, (leadership, keeper))
}

/// The scheduled syncs' thread, when `[sync]` schedules one: it submits to the writer as the
/// request handlers do.
fn start_syncs(
    schedules: Vec<scheduled::Schedule>,
    shared: &Shared,
    parts: &writer::Parts,
    pipeline: &Pipeline,
    stopping: &Arc<scheduled::Stopping>,
) -> Result<Vec<std::thread::JoinHandle<()>>, ServeError> {
    let mut threads = Vec::new();
    for schedule in schedules {
        let context = scheduled::Context {
            queue: shared.queue.clone(),
            live: parts.live.clone(),
            metrics: parts.metrics.clone(),
            budget: shared.budget.clone(),
            hubspot: parts.hubspot.clone(),
            leadership: parts.leadership.clone(),
            pipeline: pipeline.clone(),
            clock: shared.clock.clone(),
            status: shared.syncs.clone(),
            stopping: stopping.clone(),
        };
        let name = format!("dealledger-sync-{}", schedule.crm.name());
        threads.push(spawn(&name, move || scheduled::run_schedule(schedule, context))?);
    }
    Ok(threads)
}

/// Joins `thread` if it ends within `wait`; else leaves it (a sync in the middle of a request
/// to its CRM), saying so: the writer stops next, and the run can store nothing after it.
fn join_within(thread: std::thread::JoinHandle<()>, wait: std::time::Duration) {
    let deadline = std::time::Instant::now() + wait;
    while !thread.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    match thread.is_finished() {
        true => {
            let _ = thread.join();
        }
        false => tracing::warn!(
            "a sync run is still waiting for its CRM; it is left to end on its own and stores nothing more"
        ),
    }
}

/// The CRM syncs `[sync]` schedules, their tokens read now, so that a daemon that cannot sync
/// says so at its start rather than at its first run.
fn sync_schedules(config: &ServeConfig) -> Result<Vec<scheduled::Schedule>, ServeError> {
    let sync = &config.sync;
    let wanted = [
        ("hubspot", sync.hubspot_every_ms, &sync.hubspot_token_file, &sync.hubspot_state_path),
        ("salesforce", sync.salesforce_every_ms, &sync.salesforce_token_file, &sync.salesforce_state_path),
    ];
    let mut schedules = Vec::new();
    for (name, every_ms, token_file, state_path) in wanted {
        let Some(every_ms) = every_ms else { continue };
        let path = config.config_path.clone().unwrap_or_default();
        let crm = sync_sink::Crm::of(config, name, "[sync]", &path)
            .map_err(|e| ServeError::Runtime(e.to_string()))?;
        let setting =
            if name == "hubspot" { "[sync] hubspot_token_file" } else { "[sync] salesforce_token_file" };
        let token = dealledger_sync::http::Secret::read((token_file.as_deref(), setting), crm.token_env())
            .map_err(|why| ServeError::SyncToken { crm: name, why })?;
        let state_path = state_path.clone().ok_or(ServeError::NoSyncState)?;
        schedules.push(scheduled::Schedule {
            crm,
            every_ms,
            token,
            state_path,
            retries_max: sync.retries_max,
        });
    }
    Ok(schedules)
}

/// The writer lease, when several daemons share the store: claimed once before the first
/// request (a daemon alone on its store writes from the start), then kept by its own thread.
fn lead(writing: Writing, bound: SocketAddr) -> Option<Arc<leadership::Leadership>> {
    match writing {
        Writing::Sole => None,
        Writing::Leased { lease, holder } => {
            lease.set_holder(holder(bound));
            let leadership = Arc::new(leadership::Leadership::new(lease));
            leadership.claim();
            Some(leadership)
        }
    }
}

/// One of the daemon's own threads, named.
fn spawn<T: Send + 'static>(
    name: &str,
    run: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, ServeError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(run)
        .map_err(|e| ServeError::Runtime(format!("cannot start the thread {name}: {e}")))
}

/// What must hold before anything is opened: a usable token where one is needed, and the
/// quarantine a HubSpot hook writes to.
fn check_start(config: &ServeConfig) -> Result<Option<quarantine::Quarantine>, ServeError> {
    if let Some(token) = &config.token {
        config::check_token(token)?;
    }
    if !config.wants_token() && !config.listen.ip().is_loopback() {
        return Err(ServeError::NoToken(config.listen));
    }
    match (&config.hubspot, &config.quarantine_path) {
        (_, Some(path)) => Ok(Some(quarantine::Quarantine::open(path)?)),
        (Some(_), None) => Err(ServeError::NoQuarantine),
        (None, None) => Ok(None),
    }
}

/// The runtime and the bound listener (port 0 picks one).
fn bind(
    addr: SocketAddr,
) -> Result<(tokio::runtime::Runtime, tokio::net::TcpListener, SocketAddr), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dealledger-http")
        .build()
        .map_err(|e| ServeError::Runtime(e.to_string()))?;
    let std_listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    std_listener.set_nonblocking(true).map_err(|source| ServeError::Bind { addr, source })?;
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(std_listener).map_err(|source| ServeError::Bind { addr, source })?
    };
    let bound = listener.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
    Ok((runtime, listener, bound))
}

/// After the last request: the writer finishes what is queued, the folder what the writer
/// handed it, and the timeline is checkpointed at the head.
fn finish(
    shared: &Shared,
    runtime: tokio::runtime::Runtime,
    writer: std::thread::JoinHandle<Ledger<writer::Store>>,
    folder: std::thread::JoinHandle<()>,
    (leadership, keeper): (Option<Arc<leadership::Leadership>>, Option<std::thread::JoinHandle<()>>),
) -> Result<Stopped, ServeError> {
    // Every request has been answered; the writer finishes what is queued and stops.
    let _ = shared.queue.send(writer::Message::Stop);
    let ledger = writer.join().map_err(|_| ServeError::Runtime("the writer thread panicked".into()))?;
    // The writer has stopped acknowledging: the lease goes, and a standby takes over now.
    if let (Some(leadership), Some(keeper)) = (leadership, keeper) {
        leadership.stop();
        let _ = keeper.join();
    }
    // The writer has handed over its last range: the folder folds it, then stops.
    shared.live.stop_folding();
    folder.join().map_err(|_| ServeError::Runtime("the folder thread panicked".into()))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Some(why) = shared.failed.failure() {
        return Err(ServeError::Runtime(format!("the store failed: {why}")));
    }
    // Only saves the next start time: a failure is worth a warning, not a failed shutdown.
    if let Err(e) = save_checkpoint(ledger.log(), &*shared.live.read()) {
        tracing::warn!(error = %e, "could not save the timeline's checkpoint; the next start replays more");
    }
    Ok(Stopped { head: ledger.log().head() })
}

/// Resolves at SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

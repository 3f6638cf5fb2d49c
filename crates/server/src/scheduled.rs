//! The daemon's scheduled CRM syncs (`[sync]`): the same run as `dealledger sync hubspot`, on a
//! thread of its own, once at the start and then a period after each run ends. Its pages go
//! through the writer like any other batch (each one group commit; refused changes into the
//! quarantine), and its cursor moves only after the writer said they are durable. The last
//! run's outcome is kept for `GET /v1/sync` and the dashboard, and counted in `/metrics`.
//!
//! A CRM that cannot be reached fails the run, never the daemon: readiness says nothing of it,
//! and the next run starts from the cursor. On a shared store only the daemon holding the writer
//! lease syncs. At shutdown the run stops at its next page or wait; what it stored stays stored.

use crate::budget::Budget;
use crate::live::LiveTimeline;
use crate::metrics::Metrics;
use crate::sync_sink::Crm;
use crate::writer::{Answer, Job, Message, Work};
use crate::HubSpotSetting;
use dealledger_events::{Body, Clock, Pipeline, Timestamp};
use dealledger_import::Row;
use dealledger_sync::http::{Pause, Secret};
use dealledger_sync::reconcile::{ledger_deals, LedgerDeal};
use dealledger_sync::{BoxError, Sink, Stored, Summary};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a sync waits for the timeline to fold what is durable before it asks it anything.
const FOLD_WAIT_MS_MAX: u64 = 30_000;
/// Bytes held in the memory budget per row of a page (a row is well under this).
const ROW_BYTES: usize = 1024;
/// How long shutdown waits for a run to reach its next page or wait.
pub const STOP_WAIT_MS_MAX: u64 = 5_000;

/// Set once at shutdown: waits end early, and a run stores nothing more.
#[derive(Default)]
pub struct Stopping {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stopping {
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits `wait` or until stopped; true if stopped.
    fn wait(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        while !*stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            stopped = self.wake.wait_timeout(stopped, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

/// Each scheduled CRM's standing, by CRM: what `GET /v1/sync` answers.
#[derive(Default)]
pub struct Status(Mutex<BTreeMap<&'static str, CrmStatus>>);

#[derive(Clone, Debug, serde::Serialize)]
pub struct CrmStatus {
    pub every_seconds: u64,
    /// `running`, `waiting`, or `standby` (another daemon holds the writer lease and syncs).
    pub state: &'static str,
    pub runs: u64,
    pub failed_runs: u64,
    pub next_at: Option<String>,
    pub last: Option<LastRun>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LastRun {
    pub started_at: String,
    pub finished_at: String,
    /// `ok` or `failed`.
    pub outcome: &'static str,
    /// Why it stopped, when it failed (never the token).
    pub error: Option<String>,
    pub summary: Summary,
}

impl Status {
    fn update(&self, crm: &'static str, change: impl FnOnce(&mut CrmStatus)) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(status) = all.get_mut(crm) {
            change(status);
        }
    }

    /// Every scheduled CRM's standing, as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        serde_json::to_value(&*all).unwrap_or_default()
    }
}

/// What a scheduled sync needs of the daemon.
pub struct Context {
    pub queue: mpsc::SyncSender<Message>,
    pub live: Arc<LiveTimeline>,
    pub metrics: Arc<Metrics>,
    pub budget: Arc<Budget>,
    pub hubspot: Arc<HubSpotSetting>,
    pub leadership: Option<Arc<crate::leadership::Leadership>>,
    pub pipeline: Pipeline,
    pub clock: Arc<dyn Clock + Send + Sync>,
    pub status: Arc<Status>,
    pub stopping: Arc<Stopping>,
}

/// A CRM sync's schedule: read from `[sync]` and checked before the daemon starts.
pub struct Schedule {
    pub crm: Crm,
    pub every_ms: u64,
    pub token: Secret,
    pub state_path: PathBuf,
    pub retries_max: u32,
}

/// Runs a CRM's sync on its schedule until stopped.
pub fn run_schedule(schedule: Schedule, context: Context) {
    let every = Duration::from_millis(schedule.every_ms);
    let crm = schedule.crm.name();
    context.status.0.lock().unwrap_or_else(PoisonError::into_inner).insert(
        crm,
        CrmStatus {
            every_seconds: schedule.every_ms / 1000,
            state: "waiting",
            runs: 0,
            failed_runs: 0,
            next_at: Some(context.clock.now().to_string()),
            last: None,
        },
    );
    loop {
        let standby = context.leadership.as_ref().is_some_and(|l| !l.holds());
        if standby {
            context.status.update("hubspot", |s| s.state = "standby");
        } else {
            run_once(&schedule, &context);
        }
        let next = Timestamp(
            context.clock.now().0.saturating_add(i64::try_from(every.as_micros()).unwrap_or(i64::MAX)),
        );
        context.status.update("hubspot", |s| s.next_at = Some(next.to_string()));
        if context.stopping.wait(every) {
            return;
        }
    }
}

fn run_once(schedule: &Schedule, context: &Context) {
    let name = schedule.crm.name();
    // HubSpot's settings as a quarantine retry last read them (a stage mapped since the start).
    let crm = match (&schedule.crm, context.hubspot.get()) {
        (Crm::HubSpot(_), Some(now)) => Crm::HubSpot((*now).clone()),
        (crm, _) => crm.clone(),
    };
    let started_at = context.clock.now();
    context.status.update(name, |s| s.state = "running");
    let pause = Box::new(StopPause { stopping: context.stopping.clone(), started: Instant::now() });
    let mut sink = QueueSink { context, crm: name, opened: BTreeMap::new() };
    let ran = crm.run(
        &context.pipeline,
        schedule.token.clone(),
        pause,
        started_at,
        &schedule.state_path,
        &mut sink,
        &mut |_| {},
        (dealledger_sync::Steps::All, Some(schedule.retries_max)),
    );
    let error = ran.result.err().map(|e| e.to_string());
    let summary = ran.summary;
    context.metrics.observe_sync(name, error.is_none(), summary.events_stored);
    match &error {
        None => tracing::info!(
            crm = name,
            stored = summary.events_stored,
            duplicates = summary.duplicates,
            held = summary.held,
            differences = summary.reconciled.as_ref().map_or(0, |r| r.differences_total),
            seconds = summary.seconds,
            "sync run done"
        ),
        Some(error) => tracing::warn!(
            crm = name,
            stored = summary.events_stored,
            %error,
            "sync run failed; the next run starts from the cursor"
        ),
    }
    let last = LastRun {
        started_at: started_at.to_string(),
        finished_at: context.clock.now().to_string(),
        outcome: if error.is_none() { "ok" } else { "failed" },
        error: error.clone(),
        summary,
    };
    context.status.update(name, |s| {
        s.state = "waiting";
        s.runs += 1;
        s.failed_runs += u64::from(error.is_some());
        s.last = Some(last);
    });
}

/// The client's waits (a rate limit, a backoff), cut short at shutdown.
struct StopPause {
    stopping: Arc<Stopping>,
    started: Instant,
}

impl Pause for StopPause {
    fn pause(&mut self, wait: Duration) {
        self.stopping.wait(wait);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A sync's pages to the writer, as batches of their own.
struct QueueSink<'a> {
    context: &'a Context,
    /// The CRM it syncs: the events are appended by `sync-CRM`.
    crm: &'static str,
    /// Deals this run opened, and when: the timeline may not have folded them yet.
    opened: BTreeMap<String, Timestamp>,
}

impl QueueSink<'_> {
    /// Waits until the timeline holds everything durable now; false past the bound.
    fn folded(&self) -> bool {
        let live = &self.context.live;
        let target = live.head().seq;
        let deadline = Instant::now() + Duration::from_millis(FOLD_WAIT_MS_MAX);
        while live.folded() < target {
            if Instant::now() >= deadline || self.context.stopping.is_stopped() {
                return false;
            }
            // The folder folds a commit in milliseconds; this thread has nothing else to do.
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    fn opened_in_timeline(&self, deal: &str) -> Option<Timestamp> {
        self.context.live.read().deal(deal).and_then(|d| d.entries.first().map(|e| e.at))
    }
}

impl Sink for QueueSink<'_> {
    fn opened_at(&self, deal: &str) -> Option<Timestamp> {
        if let Some(at) = self.opened.get(deal) {
            return Some(*at);
        }
        // A deal opened by a webhook a moment ago may not be folded yet: wait, then ask again.
        self.opened_in_timeline(deal).or_else(|| {
            if self.folded() {
                self.opened_in_timeline(deal)
            } else {
                None
            }
        })
    }

    fn store(&mut self, rows: Vec<Row>) -> Result<Stored, BoxError> {
        if self.context.stopping.is_stopped() {
            return Err("the daemon is stopping; the next run resumes from the cursor".into());
        }
        let opened: Vec<(String, Timestamp)> = rows
            .iter()
            .filter_map(|row| row.result.as_ref().ok())
            .filter(|s| matches!(s.event.body, Body::Opened { .. }))
            .map(|s| (s.event.deal.as_str().to_string(), s.event.at))
            .collect();
        let mut reserved = self.context.budget.reserve();
        if !reserved.grow(rows.len().saturating_mul(ROW_BYTES)) {
            return Err("the daemon's request memory (queue_bytes_max) is full; the next run retries".into());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.context.metrics.queue_depth.fetch_add(1, Relaxed);
        let by = Some(format!("sync-{}", self.crm));
        let job = Job { work: Work::Sync(rows), reply, reserved, by };
        if self.context.queue.send(Message::Job(job)).is_err() {
            self.context.metrics.queue_depth.fetch_sub(1, Relaxed);
            return Err("the writer has stopped".into());
        }
        match answer.blocking_recv() {
            Ok(Answer::Synced(stored)) => {
                self.opened.extend(opened);
                Ok(stored)
            }
            Ok(Answer::Failed { why, .. } | Answer::Unavailable { why, .. }) => Err(why.into()),
            Ok(_) => Err("the writer answered a sync's page as something else".into()),
            Err(_) => Err("the writer failed before answering; the next run reads the page again".into()),
        }
    }

    fn deals_now(&mut self) -> Result<BTreeMap<String, LedgerDeal>, BoxError> {
        if !self.folded() {
            return Err(
                format!("the timeline did not fold the durable events within {FOLD_WAIT_MS_MAX} ms").into()
            );
        }
        Ok(ledger_deals(&self.context.live.read_fresh()))
    }
}

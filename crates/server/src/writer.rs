//! The one writer: group commit.
//!
//! Requests queue (bounded) to this thread. It takes everything waiting, admits each request as
//! its own atomic unit inside one batch (a bad request is refused alone and never fails its
//! neighbours), appends the whole group as one store write, flushes once, hands the new events to
//! the folder (which folds them into the live timeline, waiting for readers so this thread never
//! does), and answers every request of the group.
//!
//! Every answer is true. A failed write is answered "nothing stored" only when the store says
//! so with certainty; otherwise "outcome unknown" (a retry with the same `source_id`s is safe).
//! After an unknown outcome or a panic on this thread, the writer does not go on with state
//! that may disagree with the store: it reopens the ledger (a barrier, then the state rebuilt
//! from the store) and brings the timeline up to the store's head before it writes again.
//! Until that succeeds, `/readyz` answers 503 naming the failure, requests are answered
//! "nothing stored", and recovery is retried every [`RECOVER_RETRY_MS`].

use crate::hubspot;
use crate::metrics::Metrics;
use crate::quarantine::{Hold, QuarantineError, Release};
use crate::Shared;
use dealledger_events::{Clock, Rejection, Submission};
use dealledger_log::{Ledger, Outcome};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// Events admitted into one group commit, at most: bounds a block write and the wait of the
/// requests behind it.
const GROUP_EVENTS_MAX: usize = 100_000;
/// While the writer cannot write, it tries to recover this often, traffic or not, so that
/// readiness comes back by itself once the store does.
pub const RECOVER_RETRY_MS: u64 = 1_000;
/// A standby reads the store's end this often, to serve what the writer acknowledged.
pub const FOLLOW_INTERVAL_MS: u64 = 100;

pub enum Work {
    Events(Vec<Submission>),
    HubSpot(Vec<hubspot::Notification>),
    /// Every quarantined notification, again.
    RetryQuarantine,
}

impl Work {
    fn len(&self) -> usize {
        match self {
            Work::Events(v) => v.len(),
            Work::HubSpot(v) => v.len(),
            // Bounded by the quarantine's own limit; counted as one request.
            Work::RetryQuarantine => 1,
        }
    }
}

pub struct Job {
    pub work: Work,
    pub reply: oneshot::Sender<Answer>,
    /// The request's bytes in the memory budget, given back when the writer is done with it.
    pub reserved: crate::budget::Reserved,
}

pub enum Message {
    Job(Job),
    /// Finish what is queued before it, then stop.
    Stop,
}

/// What the writer says to one request.
pub enum Answer {
    /// Durable. One outcome per submitted event, with its deal id; `ignored` counts HubSpot
    /// changes that map to no event, `quarantined` the notifications held back (by index),
    /// durably, and `remaining` what the quarantine holds after a retry.
    Acked {
        outcomes: Vec<(String, Outcome)>,
        ignored: u64,
        quarantined: Vec<(usize, Rejection)>,
        remaining: Option<usize>,
    },
    /// A condition that is not the store's: nothing of the request is lost, but it is not done
    /// (a full quarantine, HubSpot not configured); `code` names it.
    Unavailable { code: &'static str, why: String },
    /// The request's event `index` broke a rule; nothing of the request was stored.
    Refused { index: usize, rejection: Rejection },
    /// The store failed and certainly stored nothing of the request.
    Failed(String),
    /// The store failed while writing: the request's events may or may not be stored.
    Unknown(String),
}

/// Records the group's holds and releases in the quarantine, durably, before anyone is told. A
/// request whose holds cannot be recorded (a full quarantine, a failed write) is answered 503:
/// what it stored is durable, and HubSpot's retry of it is all duplicates and the same holds.
fn record_quarantine(
    shared: &Shared,
    answers: &mut [(oneshot::Sender<Answer>, Answer)],
    holds: Vec<(usize, Vec<Hold>)>,
    releases: Vec<(String, Release)>,
    now: dealledger_events::Timestamp,
) {
    let Some(quarantine) = shared.quarantine.as_ref() else { return };
    let mut quarantine = quarantine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let all: Vec<Hold> = holds.iter().flat_map(|(_, h)| h.iter().cloned()).collect();
    let mut new = 0;
    let failed = match quarantine.record(&all, &releases, now) {
        Ok(entries) => {
            new = entries;
            None
        }
        // One request's holds alone may still fit when all of them do not.
        Err(QuarantineError::Full { .. }) => {
            let mut failed = Vec::new();
            for (index, request_holds) in &holds {
                match quarantine.record(request_holds, &[], now) {
                    Ok(entries) => new += entries,
                    Err(e) => failed.push((*index, e.to_string())),
                }
            }
            let _ = quarantine.record(&[], &releases, now);
            Some(failed)
        }
        Err(e) => {
            Some(holds.iter().filter(|(_, h)| !h.is_empty()).map(|(i, _)| (*i, e.to_string())).collect())
        }
    };
    shared.metrics.quarantined.store(quarantine.len() as u64, Relaxed);
    shared.metrics.hubspot_quarantined_total.fetch_add(new as u64, Relaxed);
    for (index, why) in failed.into_iter().flatten() {
        if let Some((_, answer)) = answers.get_mut(index) {
            if holds.iter().any(|(i, h)| *i == index && !h.is_empty()) {
                *answer = Answer::Unavailable { code: "quarantine_unavailable", why };
            }
        }
    }
}

/// What the writer must do before it writes again.
enum Health {
    Healthy,
    /// A write failed and stored nothing: a barrier proves the store writable again.
    Refused(String),
    /// A write's outcome is unknown, or the thread panicked: reopen and catch up.
    Unsure(String),
}

pub type Store = Arc<dyn dealledger_log::BlockStore>;

/// Runs until `Stop` or until the queue's senders are gone. Returns the ledger so the caller
/// can checkpoint the timeline at its head, and whether it ended healthy.
pub fn run(
    mut ledger: Ledger<Store>,
    clock: std::sync::Arc<dyn Clock + Send + Sync>,
    queue: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
) -> Ledger<Store> {
    let metrics: &Metrics = &shared.metrics;
    let mut health = Health::Healthy;
    let mut stopping = false;
    // With a lease: whether this daemon writes now (its ledger rebuilt at the store's end).
    let mut writing = shared.leadership.is_none();
    // A standby's last look at the store's end (the last block's key): it reads the new
    // blocks only when that moved.
    let mut followed: Option<Option<u64>> = None;
    while !stopping {
        if let Some(leadership) = &shared.leadership {
            match (leadership.holds(), writing) {
                (false, _) => {
                    if writing {
                        tracing::warn!("the writer lease is no longer held: standing by");
                        writing = false;
                    }
                    stopping = stand_by(&mut ledger, &queue, &shared, &leadership.writer(), &mut followed);
                    continue;
                }
                (true, false) => match take_over(&mut ledger, &shared) {
                    Ok(()) => {
                        writing = true;
                        followed = None;
                        health = Health::Healthy;
                        *shared.failed.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    }
                    Err(why) => health = Health::Unsure(why),
                },
                (true, true) => {}
            }
        }
        if !matches!(health, Health::Healthy) {
            health = recover(&mut ledger, health, &shared);
        }
        let first = match &health {
            // With a lease, the writer wakes up to look at it even without traffic: a writer
            // that lost it must stand by (and follow) before anyone asks it anything.
            Health::Healthy if shared.leadership.is_some() => {
                match queue.recv_timeout(std::time::Duration::from_millis(FOLLOW_INTERVAL_MS)) {
                    Ok(message) => message,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            Health::Healthy => match queue.recv() {
                Ok(message) => message,
                Err(_) => break,
            },
            _ => match queue.recv_timeout(std::time::Duration::from_millis(RECOVER_RETRY_MS)) {
                Ok(message) => message,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
        };
        let mut group = Vec::new();
        let mut events = 0;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Job(job) => {
                    events += job.work.len();
                    group.push(job);
                }
                Message::Stop => {
                    stopping = true;
                    break;
                }
            }
            if events < GROUP_EVENTS_MAX {
                next = queue.try_recv().ok();
            }
        }
        metrics.queue_depth.fetch_sub(group.len() as u64, Relaxed);
        if group.is_empty() {
            continue;
        }
        if let Some(leadership) = shared.leadership.as_ref().filter(|l| !l.holds()) {
            // The lease lapsed while the group gathered: nothing is admitted on what may be
            // stale state; the next turn stands by.
            let why = format!(
                "this daemon's writer lease lapsed; the writer is {}. Retrying with the same source_id values is safe",
                leadership.writer()
            );
            for job in group {
                let _ = job.reply.send(Answer::Unavailable { code: "not_the_writer", why: why.clone() });
            }
            continue;
        }
        if let Health::Refused(why) | Health::Unsure(why) = &health {
            // Recovery failed just now: nothing is attempted, so nothing is stored.
            let why = format!("the writer cannot write until the store recovers: {why}");
            for job in group {
                let _ = job.reply.send(Answer::Failed(why.clone()));
            }
            continue;
        }
        // A panic below (a bug, or in a backend) must not take the daemon's writer with it:
        // the requests of the group lose their reply senders, which their handlers answer as
        // "outcome unknown", and the ledger and timeline are rebuilt from the store.
        let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            commit_group(&mut ledger, &*clock, group, &shared)
        }));
        health = match committed {
            Ok(Ok(())) => Health::Healthy,
            Ok(Err(GroupFailure::Fenced(why))) => {
                // Another daemon wrote: this one gives the lease up and follows it (with no
                // lease, a store that fences is one the ledger must be reopened on).
                match &shared.leadership {
                    Some(leadership) => {
                        leadership.step_down(&why);
                        writing = false;
                        continue;
                    }
                    None => Health::Unsure(why),
                }
            }
            Ok(Err(GroupFailure::NothingStored(why))) => Health::Refused(why),
            Ok(Err(GroupFailure::Unknown(why))) => Health::Unsure(why),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                Health::Unsure(format!("the writer panicked: {what}"))
            }
        };
        if let Health::Refused(why) | Health::Unsure(why) = &health {
            tracing::error!(error = %why, "a write failed; the writer recovers before it writes again");
            *shared.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        }
    }
    ledger
}

/// Brings the writer back after a failure, or says why it cannot yet.
fn recover(ledger: &mut Ledger<Store>, health: Health, shared: &Shared) -> Health {
    // A panic below (a bug, or in a backend) is caught here as in a commit: the writer must
    // outlive it. Its outcome is unknown, so the next try reopens.
    let mut panicked = false;
    let result = match &health {
        Health::Healthy => return Health::Healthy,
        // Nothing was stored and the state is as before: a barrier proves the store writable.
        Health::Refused(_) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ledger.log().sync()))
            .unwrap_or_else(|_| {
                panicked = true;
                Err(dealledger_log::LogError::Uncertain("the barrier panicked".into()))
            })
            .map_err(|e| e.to_string()),
        Health::Unsure(_) => {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reopen(ledger, shared)))
                .unwrap_or_else(|_| Err("recovering panicked".into()))
        }
    };
    match result {
        Ok(()) => {
            tracing::info!(head = ledger.log().head().seq, "the writer recovered");
            *shared.failed.lock().unwrap_or_else(|p| p.into_inner()) = None;
            Health::Healthy
        }
        Err(why) => {
            let why = match health {
                Health::Refused(first) | Health::Unsure(first) => {
                    format!("{first}; recovering failed: {why}")
                }
                Health::Healthy => why,
            };
            *shared.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
            match ledger.unsure() {
                Some(_) => Health::Unsure(why),
                None if panicked => Health::Unsure(why),
                None => Health::Refused(why),
            }
        }
    }
}

/// A standby's turn: reads the store's end and publishes what the writer appended (readers see
/// it, the folder folds it), then answers what is queued with a 503 naming the writer, for at
/// most [`FOLLOW_INTERVAL_MS`]. Returns true when asked to stop.
fn stand_by(
    ledger: &mut Ledger<Store>,
    queue: &mpsc::Receiver<Message>,
    shared: &Shared,
    writer: &str,
    followed: &mut Option<Option<u64>>,
) -> bool {
    let end = shared.store.last_key();
    let moved = end.as_ref().map_or(true, |end| *followed != Some(*end));
    if moved {
        match ledger.follow() {
            Ok(head) => {
                if let Ok(end) = end {
                    *followed = Some(end);
                }
                publish_head(shared, head);
            }
            Err(e) => tracing::warn!(error = %e, "following the store failed; trying again"),
        }
    }
    let deadline = Instant::now() + std::time::Duration::from_millis(FOLLOW_INTERVAL_MS);
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        match queue.recv_timeout(wait) {
            Ok(Message::Job(job)) => {
                shared.metrics.queue_depth.fetch_sub(1, Relaxed);
                let why = format!(
                    "this daemon is a standby and does not write; the writer is {writer}. Send writes there (a standby does not forward them: the answer would then depend on two daemons); retrying with the same source_id values is safe"
                );
                let _ = job.reply.send(Answer::Unavailable { code: "not_the_writer", why });
            }
            Ok(Message::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return true,
            Err(mpsc::RecvTimeoutError::Timeout) => return false,
        }
    }
}

/// A standby that took the lease: brings the deciding state (validity, idempotency) to the
/// store as it is now (the events since it last followed), so that a retried request is a
/// duplicate, and publishes its end.
fn take_over(ledger: &mut Ledger<Store>, shared: &Shared) -> Result<(), String> {
    let started = Instant::now();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ledger.resume()))
        .map_err(|_| "taking over panicked".to_string())?
        .map_err(|e| e.to_string())?;
    let head = ledger.log().head();
    publish_head(shared, head);
    tracing::info!(head = head.seq, seconds = started.elapsed().as_secs_f64(), "took over as the writer");
    Ok(())
}

/// Makes `head`, read from the store, the one readers see, and has the folder fold what it adds
/// (or rebuild the timeline, if the store holds another log than the one folded).
fn publish_head(shared: &Shared, head: dealledger_log::Head) {
    let seen = *shared.head.borrow();
    if head == seen {
        return;
    }
    shared.head.send_replace(head);
    let _ = shared.fold.send(if head.seq > seen.seq {
        crate::folder::Fold::Range { first: seen.seq + 1, last: head.seq }
    } else {
        crate::folder::Fold::Rebuild
    });
}

/// Reopens the ledger (barrier, then state from the store) and rebuilds the live timeline at
/// the store's head: after an unknown outcome the store may hold a group nobody was told of,
/// and after a panic the timeline may hold half of one.
fn reopen(ledger: &mut Ledger<Store>, shared: &Shared) -> Result<(), String> {
    ledger.reopen().map_err(|e| e.to_string())?;
    shared.head.send_replace(ledger.log().head());
    // The folder rebuilds the timeline from the store at that head (it may hold half a group,
    // or miss one nobody was told of).
    let _ = shared.fold.send(crate::folder::Fold::Rebuild);
    Ok(())
}

enum GroupFailure {
    /// Another writer appended (nothing of the group was stored).
    Fenced(String),
    NothingStored(String),
    Unknown(String),
}

/// A HubSpot delivery, or a retry of the quarantine, admitted into `batch`: its answer, and what
/// the quarantine must record once the batch is durable (`outcomes` and the counts already
/// moved into the answer).
fn admit_hubspot(
    batch: &mut dealledger_log::Batch<'_, Store>,
    work: &Work,
    config: &crate::HubSpotConfig,
    quarantine: &std::sync::Mutex<crate::quarantine::Quarantine>,
) -> (Answer, hubspot::Admitted) {
    let quarantine = quarantine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut admitted = match work {
        Work::HubSpot(notifications) => {
            hubspot::admit_delivery(batch, notifications, config, |key| quarantine.contains(key))
        }
        _ => hubspot::retry_quarantine(batch, &quarantine, config),
    };
    let remaining = matches!(work, Work::RetryQuarantine)
        .then(|| quarantine.len().saturating_sub(admitted.releases.len()));
    let answer = Answer::Acked {
        outcomes: std::mem::take(&mut admitted.outcomes),
        ignored: admitted.ignored,
        quarantined: std::mem::take(&mut admitted.quarantined),
        remaining,
    };
    (answer, admitted)
}

fn commit_group(
    ledger: &mut Ledger<Store>,
    clock: &dyn Clock,
    group: Vec<Job>,
    shared: &Shared,
) -> Result<(), GroupFailure> {
    let metrics = &shared.metrics;
    let started = Instant::now();
    let mut answers: Vec<(oneshot::Sender<Answer>, Answer)> = Vec::with_capacity(group.len());
    let hubspot = shared.hubspot_config();
    let mut batch = ledger.batch(clock);
    // What the quarantine must record once the batch is durable, per answer.
    let mut holds: Vec<(usize, Vec<Hold>)> = Vec::new();
    let mut releases: Vec<(String, Release)> = Vec::new();
    // The requests' bytes stay in the memory budget until the group is committed.
    let mut held = Vec::with_capacity(group.len());
    for job in group {
        held.push(job.reserved);
        let (submissions, ignored) = match job.work {
            Work::Events(submissions) => (submissions, 0),
            Work::HubSpot(_) | Work::RetryQuarantine if hubspot.is_none() || shared.quarantine.is_none() => {
                let why = "HubSpot webhooks need a [hubspot] section in dealledger.toml".to_string();
                answers.push((job.reply, Answer::Unavailable { code: "not_configured", why }));
                continue;
            }
            work => {
                let (Some(config), Some(quarantine)) = (hubspot.as_deref(), shared.quarantine.as_ref())
                else {
                    unreachable!("checked above")
                };
                let (answer, admitted) = admit_hubspot(&mut batch, &work, config, quarantine);
                holds.push((answers.len(), admitted.holds));
                releases.extend(admitted.releases);
                answers.push((job.reply, answer));
                continue;
            }
        };
        let deals: Vec<String> = submissions.iter().map(|s| s.event.deal.as_str().to_string()).collect();
        let answer = match batch.push_all(submissions) {
            Ok(outcomes) => Answer::Acked {
                outcomes: deals.into_iter().zip(outcomes).collect(),
                ignored,
                quarantined: Vec::new(),
                remaining: None,
            },
            Err((index, rejection)) => Answer::Refused { index, rejection },
        };
        answers.push((job.reply, answer));
    }
    let committed = batch.commit();
    // The requests' bytes leave the budget before anyone is answered: a client that posts again
    // as soon as it has its answer must find them free.
    drop(held);
    let committed = match committed {
        Ok(committed) => committed,
        Err(e) => {
            let why = e.to_string();
            let certain = e.nothing_stored();
            for (reply, answer) in answers {
                let answer = match answer {
                    Answer::Acked { .. } if certain => Answer::Failed(why.clone()),
                    Answer::Acked { .. } => Answer::Unknown(why.clone()),
                    other => other,
                };
                let _ = reply.send(answer);
            }
            return Err(match e {
                dealledger_log::LogError::Fenced(_) => GroupFailure::Fenced(why),
                _ if certain => GroupFailure::NothingStored(why),
                _ => GroupFailure::Unknown(why),
            });
        }
    };
    if committed.seqs.is_some() {
        // Only writes count: a group of refusals and duplicates flushes nothing.
        metrics.observe_commit(started.elapsed().as_secs_f64());
        metrics.events_appended.fetch_add(committed.appended, Relaxed);
        metrics.batches_appended.fetch_add(1, Relaxed);
    }
    metrics.duplicates.fetch_add(committed.duplicates, Relaxed);
    shared.head.send_replace(committed.head);
    if let Some((first, last)) = committed.seqs {
        // After the head moved (the folder reads the log up to it): the folder folds them into
        // the timeline; readers that must see them wait for it, the writer does not (a report
        // or a what-if may hold the timeline for a second).
        let _ = shared.fold.send(crate::folder::Fold::Range { first, last });
    }
    record_quarantine(shared, &mut answers, holds, releases, clock.now());
    for (reply, answer) in answers {
        if let Answer::Acked { ignored, .. } = &answer {
            metrics.requests_acknowledged.fetch_add(1, Relaxed);
            metrics.hubspot_ignored.fetch_add(*ignored, Relaxed);
        }
        // A client that went away still had its events stored; nothing to undo.
        let _ = reply.send(answer);
    }
    Ok(())
}

//! The one writer: group commit.
//!
//! Requests queue (bounded) to this thread. It takes everything waiting, admits each request as
//! its own atomic unit inside one batch (a bad request is refused alone and never fails its
//! neighbours), appends the whole group as one store write, flushes once, folds the new events
//! into the live timeline, and only then answers every request of the group.

use crate::hubspot;
use crate::metrics::Metrics;
use crate::Shared;
use dealledger_events::{Clock, Rejection, Submission};
use dealledger_log::{Ledger, Outcome};
use dealledger_projections::Projection;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// Events admitted into one group commit, at most: bounds a block write and the wait of the
/// requests behind it.
const GROUP_EVENTS_MAX: usize = 100_000;

pub enum Work {
    Events(Vec<Submission>),
    HubSpot(Vec<hubspot::Delivery>),
}

impl Work {
    fn len(&self) -> usize {
        match self {
            Work::Events(v) => v.len(),
            Work::HubSpot(v) => v.len(),
        }
    }
}

pub struct Job {
    pub work: Work,
    pub reply: oneshot::Sender<Answer>,
}

pub enum Message {
    Job(Job),
    /// Finish what is queued before it, then stop.
    Stop,
}

/// What the writer says to one request.
pub enum Answer {
    /// Durable. One outcome per submitted event, with its deal id; `ignored` counts HubSpot
    /// changes that map to no event.
    Acked { outcomes: Vec<(String, Outcome)>, ignored: u64 },
    /// The request's event `index` broke a rule; nothing of the request was stored.
    Refused { index: usize, rejection: Rejection },
    /// The store failed; nothing of the request was stored and the writer has stopped.
    Failed(String),
}

pub type Store = Arc<dyn dealledger_log::BlockStore>;

/// Runs until `Stop` or until the queue's senders are gone. Returns the ledger so the caller
/// can checkpoint the timeline at its head.
pub fn run(
    mut ledger: Ledger<Store>,
    clock: std::sync::Arc<dyn Clock + Send + Sync>,
    queue: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
) -> Ledger<Store> {
    let metrics: &Metrics = &shared.metrics;
    let mut stopping = false;
    while !stopping {
        let Ok(first) = queue.recv() else { break };
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
        if let Err(why) = commit_group(&mut ledger, &*clock, group, &shared) {
            tracing::error!(error = %why, "the store failed; the writer stops");
            *shared.failed.lock().expect("not poisoned") = Some(why);
            break;
        }
    }
    ledger
}

fn commit_group(
    ledger: &mut Ledger<Store>,
    clock: &dyn Clock,
    group: Vec<Job>,
    shared: &Shared,
) -> Result<(), String> {
    let metrics = &shared.metrics;
    let started = Instant::now();
    let mut answers: Vec<(oneshot::Sender<Answer>, Answer)> = Vec::with_capacity(group.len());
    let opened_stage = ledger.pipeline().stages()[0].name.clone();
    let mut batch = ledger.batch(clock);
    for job in group {
        let (submissions, ignored) = match job.work {
            Work::Events(submissions) => (submissions, 0),
            Work::HubSpot(deliveries) => {
                match hubspot::to_submissions(
                    &deliveries,
                    batch.deals(),
                    &opened_stage,
                    shared.hubspot.as_ref(),
                ) {
                    Ok(mapped) => (mapped.submissions, mapped.ignored),
                    Err((index, rejection)) => {
                        answers.push((job.reply, Answer::Refused { index, rejection }));
                        continue;
                    }
                }
            }
        };
        let deals: Vec<String> = submissions.iter().map(|s| s.event.deal.as_str().to_string()).collect();
        let answer = match batch.push_all(submissions) {
            Ok(outcomes) => Answer::Acked { outcomes: deals.into_iter().zip(outcomes).collect(), ignored },
            Err((index, rejection)) => Answer::Refused { index, rejection },
        };
        answers.push((job.reply, answer));
    }
    let committed = match batch.commit() {
        Ok(committed) => committed,
        Err(e) => {
            let why = e.to_string();
            for (reply, answer) in answers {
                let answer = match answer {
                    Answer::Acked { .. } => Answer::Failed(why.clone()),
                    other => other,
                };
                let _ = reply.send(answer);
            }
            return Err(why);
        }
    };
    if let Some((first, _)) = committed.seqs {
        // Only writes count: a group of refusals and duplicates flushes nothing.
        metrics.observe_commit(started.elapsed().as_secs_f64());
        metrics.events_appended.fetch_add(committed.appended, Relaxed);
        metrics.batches_appended.fetch_add(1, Relaxed);
        // Fold the new events before anyone hears of them: a report asked right after an
        // acknowledgement reflects it.
        // On this thread (no read-ahead thread): the blocks were just written and are few.
        let mut timeline = shared.timeline.write().expect("not poisoned");
        ledger
            .log()
            .scan_blocks(first, |header, raw| {
                dealledger_log::block::decode_event_refs(header, raw, |event| {
                    if event.seq >= first {
                        timeline.apply(event);
                    }
                    Ok(())
                })?;
                Ok(true)
            })
            .map_err(|e| format!("reading back the events just committed: {e}"))?;
    }
    metrics.duplicates.fetch_add(committed.duplicates, Relaxed);
    shared.head.send_replace(committed.head);
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

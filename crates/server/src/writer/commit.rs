//! One group commit: every request admitted as its own atomic unit into one batch, the batch
//! stored as one write made durable by one barrier, the quarantine's holds recorded, and every
//! request answered truthfully.

use super::role::{Failure, Input};
use super::{Answer, Job, Parts, Store, Work};
use crate::hubspot;
use crate::quarantine::{Hold, QuarantineError, Release};
use dealledger_events::Clock;
use dealledger_log::Ledger;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tokio::sync::oneshot;

/// Records the group's holds and releases in the quarantine, durably, before anyone is told. A
/// request whose holds cannot be recorded (a full quarantine, a failed write) is answered 503:
/// what it stored is durable, and HubSpot's retry of it is all duplicates and the same holds.
fn record_quarantine(
    parts: &Parts,
    answers: &mut [(oneshot::Sender<Answer>, Answer)],
    holds: Vec<(usize, Vec<Hold>)>,
    releases: Vec<(String, Release)>,
    now: dealledger_events::Timestamp,
) {
    let Some(quarantine) = parts.quarantine.as_ref() else { return };
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
    parts.metrics.quarantined.store(quarantine.len() as u64, Relaxed);
    parts.metrics.hubspot_quarantined_total.fetch_add(new as u64, Relaxed);
    for (index, why) in failed.into_iter().flatten() {
        if let Some((_, answer)) = answers.get_mut(index) {
            if holds.iter().any(|(i, h)| *i == index && !h.is_empty()) {
                *answer = Answer::Unavailable { code: "quarantine_unavailable", why };
            }
        }
    }
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

/// A request's events admitted into `batch` as one atomic unit: acknowledged, or refused whole.
fn admit_events(
    batch: &mut dealledger_log::Batch<'_, Store>,
    submissions: Vec<dealledger_events::Submission>,
) -> Answer {
    let deals: Vec<String> = submissions.iter().map(|s| s.event.deal.as_str().to_string()).collect();
    match batch.push_all(submissions) {
        Ok(outcomes) => Answer::Acked {
            outcomes: deals.into_iter().zip(outcomes).collect(),
            ignored: 0,
            quarantined: Vec::new(),
            remaining: None,
        },
        Err((index, rejection)) => Answer::Refused { index, rejection },
    }
}

/// A sync's page admitted into `batch`, each row on its own: its answer, and what the quarantine
/// must record once the batch is durable.
fn admit_sync(
    batch: &mut dealledger_log::Batch<'_, Store>,
    rows: Vec<dealledger_import::Row>,
    parts: &Parts,
) -> (Answer, crate::sync_sink::Admitted) {
    let Some(quarantine) = parts.quarantine.as_ref() else {
        let why = "a sync needs the quarantine ([hubspot] configured)".to_string();
        return (Answer::Unavailable { code: "not_configured", why }, Default::default());
    };
    let mut admitted = {
        let quarantine = quarantine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        crate::sync_sink::admit_rows(batch, rows, |key| quarantine.contains(key))
    };
    let stored = dealledger_sync::Stored {
        appended: admitted.appended,
        duplicates: admitted.duplicates,
        held: admitted.holds.len() as u64,
        refused: std::mem::take(&mut admitted.refused),
    };
    (Answer::Synced(stored), admitted)
}

/// Admits every request of the group into one batch, commits it (one store write, one barrier),
/// hands the new events to the folder and puts every request's answer in `replies`: `Done`, or
/// how it failed. The answers are sent by the loop once the writer's role (and readiness) says
/// what this commit did: a client told `outcome_unknown` must find `/readyz` saying so.
pub(super) fn commit_group(
    ledger: &mut Ledger<Store>,
    clock: &dyn Clock,
    group: Vec<Job>,
    parts: &Parts,
    replies: &mut Vec<(oneshot::Sender<Answer>, Answer)>,
) -> Input<Vec<Job>> {
    let metrics = &parts.metrics;
    let started = Instant::now();
    let mut answers: Vec<(oneshot::Sender<Answer>, Answer)> = Vec::with_capacity(group.len());
    let hubspot = parts.hubspot.get();
    let mut batch = ledger.batch(clock);
    // What the quarantine must record once the batch is durable, per answer.
    let mut holds: Vec<(usize, Vec<Hold>)> = Vec::new();
    let mut releases: Vec<(String, Release)> = Vec::new();
    // The requests' bytes stay in the memory budget until the group is committed.
    let mut held = Vec::with_capacity(group.len());
    for job in group {
        held.push(job.reserved);
        batch.set_appended_by(job.by.as_deref());
        let (answer, (new_holds, new_releases)) = match job.work {
            Work::Events(submissions) => (admit_events(&mut batch, submissions), (Vec::new(), Vec::new())),
            Work::Sync(rows) => {
                let (answer, admitted) = admit_sync(&mut batch, rows, parts);
                (answer, (admitted.holds, admitted.releases))
            }
            Work::HubSpot(_) | Work::RetryQuarantine if hubspot.is_none() || parts.quarantine.is_none() => {
                let why = "HubSpot webhooks need a [hubspot] section in dealledger.toml".to_string();
                answers.push((job.reply, Answer::Unavailable { code: "not_configured", why }));
                continue;
            }
            work => {
                let (Some(config), Some(quarantine)) = (hubspot.as_deref(), parts.quarantine.as_ref()) else {
                    unreachable!("checked above")
                };
                let (answer, admitted) = admit_hubspot(&mut batch, &work, config, quarantine);
                (answer, (admitted.holds, admitted.releases))
            }
        };
        holds.push((answers.len(), new_holds));
        releases.extend(new_releases);
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
            let certainty = e.certainty();
            for (reply, answer) in answers {
                let answer = match answer {
                    Answer::Acked { .. } | Answer::Synced(_) => {
                        Answer::Failed { certainty, why: why.clone() }
                    }
                    other => other,
                };
                replies.push((reply, answer));
            }
            return match e {
                dealledger_log::LogError::Fenced(_) => Input::Fenced(why),
                _ => Input::Failed(Failure::new(certainty, why)),
            };
        }
    };
    if committed.seqs.is_some() {
        // Only writes count: a group of refusals and duplicates flushes nothing.
        metrics.observe_commit(started.elapsed().as_secs_f64());
        metrics.events_appended.fetch_add(committed.appended, Relaxed);
        metrics.batches_appended.fetch_add(1, Relaxed);
    }
    metrics.duplicates.fetch_add(committed.duplicates, Relaxed);
    // The folder folds them into the timeline; readers that must see them wait for it, the
    // writer does not (a report or a what-if may hold the timeline for a second).
    parts.live.committed(committed.head, committed.seqs);
    record_quarantine(parts, &mut answers, holds, releases, clock.now());
    for (reply, answer) in answers {
        if let Answer::Acked { ignored, .. } = &answer {
            metrics.requests_acknowledged.fetch_add(1, Relaxed);
            metrics.hubspot_ignored.fetch_add(*ignored, Relaxed);
        }
        replies.push((reply, answer));
    }
    Input::Done
}

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

mod commit;
mod role;

use crate::hubspot;
use crate::live::LiveTimeline;
use crate::metrics::Metrics;
use crate::{HubSpotSetting, Readiness};
use dealledger_events::{Clock, Rejection, Submission};
use dealledger_log::{Certainty, Ledger, Outcome};
pub use role::FOLLOW_INTERVAL_MS;
use role::{step, Do, Failure, Input, Lease, Refusal, Role, StoreEnd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Events admitted into one group commit, at most: bounds a block write and the wait of the
/// requests behind it.
const GROUP_EVENTS_MAX: usize = 100_000;

pub enum Work {
    Events(Vec<Submission>),
    HubSpot(Vec<hubspot::Notification>),
    /// Every quarantined notification, again.
    RetryQuarantine,
    /// A page of a scheduled CRM sync: each row admitted on its own, refused changes held.
    Sync(Vec<dealledger_import::Row>),
}

impl Work {
    fn len(&self) -> usize {
        match self {
            Work::Events(v) => v.len(),
            Work::HubSpot(v) => v.len(),
            Work::Sync(v) => v.len(),
            // Bounded by the quarantine's own limit; counted as one request.
            Work::RetryQuarantine => 1,
        }
    }
}

pub struct Job {
    pub work: Work,
    /// Who appends it: the request's token's name (`[[serve.tokens]]`), the hook's or a sync's
    /// own; `Event::appended_by` of what it stores.
    pub by: Option<String>,
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
    /// A sync's page is durable: what was stored, already stored, held and refused.
    Synced(dealledger_sync::Stored),
    /// The request's event `index` broke a rule; nothing of the request was stored.
    Refused { index: usize, rejection: Rejection },
    /// The store failed: nothing of the request was stored, or that is not known.
    Failed { certainty: Certainty, why: String },
}

pub type Store = Arc<dyn dealledger_log::BlockStore>;

/// What the writer is handed besides its ledger and queue: the handles of what it tells.
pub struct Parts {
    /// Where it publishes each durable head and hands over what it committed.
    pub live: Arc<LiveTimeline>,
    pub metrics: Arc<Metrics>,
    /// With a shared store: the writer lease, and whether this daemon holds it.
    pub leadership: Option<Arc<crate::leadership::Leadership>>,
    /// Open when `[hubspot]` is configured: the writer records holds and releases in it.
    pub quarantine: Option<Arc<std::sync::Mutex<crate::quarantine::Quarantine>>>,
    pub hubspot: Arc<HubSpotSetting>,
    /// What readiness names: set from the role alone.
    pub failed: Arc<Readiness>,
}

/// The writer thread's own: the ledger (the only one that writes the store) and its queue.
struct Writer {
    ledger: Ledger<Store>,
    clock: Arc<dyn Clock + Send + Sync>,
    queue: mpsc::Receiver<Message>,
    parts: Parts,
    /// A commit's answers, sent once the role says what the commit did.
    replies: Vec<(oneshot::Sender<Answer>, Answer)>,
}

/// Runs until `Stop` or until the queue's senders are gone. Returns the ledger so the caller
/// can checkpoint the timeline at its head. The role decides each next thing to do
/// ([`role::step`]); this loop only does it.
pub fn run(
    ledger: Ledger<Store>,
    clock: Arc<dyn Clock + Send + Sync>,
    queue: mpsc::Receiver<Message>,
    parts: Parts,
) -> Ledger<Store> {
    let mut role = Role::first(parts.leadership.is_some());
    let mut writer = Writer { ledger, clock, queue, parts, replies: Vec::new() };
    let mut input = Input::Turn;
    loop {
        let (next, action) = step(&role, input, writer.lease());
        if next != role {
            writer.announce(&role, &next);
            role = next;
        }
        writer.deliver();
        input = match action {
            Do::Stop => break,
            action => writer.perform(action, &role),
        };
    }
    writer.ledger
}

impl Writer {
    fn lease(&self) -> Lease {
        match &self.parts.leadership {
            None => Lease::Sole,
            Some(leadership) if leadership.holds() => Lease::Held,
            Some(_) => Lease::NotHeld,
        }
    }

    /// The one place a role change is told: the log, and readiness (which names the failure
    /// while there is one).
    fn announce(&self, before: &Role, after: &Role) {
        if let (Role::Writing | Role::Recovering(_), Role::Standby { .. }) = (before, after) {
            tracing::warn!("the writer lease is no longer held: standing by");
        }
        let why = |role: &Role| role.failure().map(|f| f.why.clone());
        match (after.failure(), why(before) == why(after)) {
            // A new failure (not a recovery's next try): said once, wherever the role went.
            (Some(failure), false) => {
                tracing::error!(error = %failure, "a write failed; the writer recovers before it writes again");
            }
            (None, false) => tracing::info!(head = self.ledger.log().head().seq, "the writer recovered"),
            _ => {}
        }
        if before.failure() != after.failure() {
            self.parts.failed.set(after.failure().map(Failure::to_string));
        }
    }

    fn perform(&mut self, action: Do<Vec<Job>>, role: &Role) -> Input<Vec<Job>> {
        match action {
            Do::StandBy => {
                let followed = match role {
                    Role::Standby { followed, .. } => *followed,
                    _ => None,
                };
                self.stand_by(followed)
            }
            Do::TakeOver => self.take_over(),
            Do::Recover(certainty) => self.recover(certainty),
            Do::Gather { wait_ms } => self.gather(wait_ms),
            // A panic below (a bug, or in a backend) must not take the daemon's writer with
            // it: the requests of the group lose their reply senders, which their handlers
            // answer as "outcome unknown", and the ledger and timeline are rebuilt from the store.
            Do::Commit(group) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                commit::commit_group(&mut self.ledger, &*self.clock, group, &self.parts, &mut self.replies)
            }))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                Input::Failed(Failure::new(Certainty::Unknown, format!("the writer panicked: {what}")))
            }),
            Do::Refuse(group, refusal) => {
                self.refuse(group, refusal);
                Input::Turn
            }
            Do::StepDown(why) => {
                if let Some(leadership) = &self.parts.leadership {
                    leadership.step_down(&why);
                }
                Input::Turn
            }
            Do::Stop => Input::Stop,
        }
    }

    /// Sends the last commit's answers. A client that went away still had its events stored;
    /// nothing to undo.
    fn deliver(&mut self) {
        for (reply, answer) in self.replies.drain(..) {
            let _ = reply.send(answer);
        }
    }

    /// Waits for a request (at most `wait_ms`), then takes everything queued behind it, up to
    /// [`GROUP_EVENTS_MAX`] events.
    fn gather(&mut self, wait_ms: Option<u64>) -> Input<Vec<Job>> {
        let first = match wait_ms {
            None => self.queue.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(ms) => self.queue.recv_timeout(Duration::from_millis(ms)),
        };
        let first = match first {
            Ok(message) => message,
            Err(mpsc::RecvTimeoutError::Timeout) => return Input::Turn,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Input::Stop,
        };
        let (mut group, mut events, mut then_stop) = (Vec::new(), 0, false);
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Job(job) => {
                    events += job.work.len();
                    group.push(job);
                }
                Message::Stop => {
                    then_stop = true;
                    break;
                }
            }
            if events < GROUP_EVENTS_MAX {
                next = self.queue.try_recv().ok();
            }
        }
        self.parts.metrics.queue_depth.fetch_sub(group.len() as u64, Relaxed);
        match (group.is_empty(), then_stop) {
            (true, true) => Input::Stop,
            (true, false) => Input::Turn,
            (false, _) => Input::Group { group, then_stop },
        }
    }

    /// Answers every request of the group without trying it: nothing of it is stored.
    fn refuse(&self, group: Vec<Job>, refusal: Refusal) {
        let writer = self.parts.leadership.as_ref().map_or_else(String::new, |l| l.writer());
        let answer = |refusal: &Refusal| {
            match refusal {
            Refusal::NotTheWriter => Answer::Unavailable {
                code: "not_the_writer",
                why: format!(
                    "this daemon's writer lease lapsed; the writer is {writer}. Retrying with the same source_id values is safe"
                ),
            },
            // Nothing is attempted, so nothing is stored.
            Refusal::CannotWrite(failure) => Answer::Failed {
                certainty: Certainty::NothingStored,
                why: format!("the writer cannot write until the store recovers: {failure}"),
            },
        }
        };
        for job in group {
            let _ = job.reply.send(answer(&refusal));
        }
    }

    /// Brings the writer back after a failure: a barrier when nothing was stored (the state
    /// is as before), a reopen when the outcome is unknown.
    fn recover(&mut self, certainty: Certainty) -> Input<Vec<Job>> {
        // A panic below (a bug, or in a backend) is caught here as in a commit: the writer must
        // outlive it. Its outcome is unknown, so the next try reopens.
        // The ledger's own standing has the last word: a ledger in doubt is reopened, whatever
        // the failure said.
        let certainty = if self.ledger.in_doubt() { Certainty::Unknown } else { certainty };
        let tried = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match certainty {
            Certainty::NothingStored => self.ledger.log().sync().map_err(|e| e.to_string()),
            Certainty::Unknown => reopen(&mut self.ledger, &self.parts.live),
        }));
        match tried {
            Ok(Ok(())) => Input::Done,
            Ok(Err(why)) => {
                let certainty = match self.ledger.unsure() {
                    Some(_) => Certainty::Unknown,
                    None => Certainty::NothingStored,
                };
                Input::Failed(Failure::new(certainty, why))
            }
            Err(_) => Input::Failed(Failure::new(Certainty::Unknown, "recovering panicked")),
        }
    }

    /// A standby's turn: reads the store's end and publishes what the writer appended (readers
    /// see it, the folder folds it), then answers what is queued with a 503 naming the writer,
    /// for at most [`FOLLOW_INTERVAL_MS`].
    fn stand_by(&mut self, followed: Option<StoreEnd>) -> Input<Vec<Job>> {
        let end = self.parts.live.store_end().map(StoreEnd);
        let mut read = None;
        if end.as_ref().map_or(true, |end| followed != Some(*end)) {
            match self.ledger.follow() {
                Ok(head) => {
                    read = end.ok();
                    self.parts.live.published(head);
                }
                Err(e) => tracing::warn!(error = %e, "following the store failed; trying again"),
            }
        }
        let writer = self.parts.leadership.as_ref().map_or_else(String::new, |l| l.writer());
        let deadline = Instant::now() + Duration::from_millis(FOLLOW_INTERVAL_MS);
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.queue.recv_timeout(wait) {
                Ok(Message::Job(job)) => {
                    self.parts.metrics.queue_depth.fetch_sub(1, Relaxed);
                    let why = format!(
                        "this daemon is a standby and does not write; the writer is {writer}. Send writes there (a standby does not forward them: the answer would then depend on two daemons); retrying with the same source_id values is safe"
                    );
                    let _ = job.reply.send(Answer::Unavailable { code: "not_the_writer", why });
                }
                Ok(Message::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return Input::Stop,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return read.map_or(Input::Turn, Input::Followed);
                }
            }
        }
    }

    /// A standby that took the lease: brings the deciding state (validity, idempotency) to the
    /// store as it is now (the events since it last followed), so that a retried request is a
    /// duplicate, and publishes its end.
    fn take_over(&mut self) -> Input<Vec<Job>> {
        let started = Instant::now();
        let resumed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.ledger.resume()));
        let why = match resumed {
            Ok(Ok(())) => {
                let head = self.ledger.log().head();
                self.parts.live.published(head);
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(head = head.seq, seconds, "took over as the writer");
                return Input::Done;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "taking over panicked".to_string(),
        };
        Input::Failed(Failure::new(Certainty::Unknown, why))
    }
}

/// Reopens the ledger (barrier, then state from the store) and has the live timeline rebuilt at
/// the store's head: after an unknown outcome the store may hold a group nobody was told of,
/// and after a panic the timeline may hold half of one.
fn reopen(ledger: &mut Ledger<Store>, live: &LiveTimeline) -> Result<(), String> {
    ledger.reopen().map_err(|e| e.to_string())?;
    live.reopened(ledger.log().head());
    Ok(())
}

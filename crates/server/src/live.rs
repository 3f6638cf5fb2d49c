//! The live timeline: the one owner of the timeline readers share, and of the two marks that
//! say what it holds. The writer publishes each durable head and hands over what it committed
//! ([`LiveTimeline::committed`], [`LiveTimeline::published`], [`LiveTimeline::reopened`]); the
//! folder folds it in ([`LiveTimeline::fold`], [`LiveTimeline::rebuild`]); readers wait until
//! it holds every durable event ([`LiveTimeline::caught_up`]) and read it. Nothing else
//! touches the timeline or its lock.
//!
//! Invariants: `folded <= head.seq` once the folder has caught up (it never folds past the
//! durable head); a reader never sees the log past `head` ([`LiveTimeline::reader`]).

use crate::folder::Fold;
use crate::writer::Store;
use dealledger_log::{Head, Log};
use dealledger_projections::{Projection, Timeline};
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// Why the folder could not bring the timeline to the durable head (readers keep the timeline
/// as it was; the next commit tries again).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FoldError {
    #[error("reading back the events just committed: {0}")]
    ReadBack(#[source] dealledger_log::LogError),
    #[error("rebuilding the timeline from the log: {0}")]
    Rebuild(#[source] dealledger_projections::ReplayError),
}

pub(crate) struct LiveTimeline {
    timeline: RwLock<Timeline>,
    /// The last durable head; readers never look past it.
    head: watch::Sender<Head>,
    /// The last seq folded into `timeline` (the folder runs behind the writer, never ahead of
    /// `head`): readers that must reflect every acknowledged event wait for it to reach `head`.
    folded: watch::Sender<u64>,
    /// The folder's queue: what the writer committed, for it to fold.
    fold: Mutex<mpsc::Sender<Fold>>,
    store: Store,
    /// The copy of the timeline the running what-ifs read, and the seq it has folded to: a
    /// what-if holds the timeline's lock only to copy it, so the folder and the readers never
    /// wait for one. Dropped with the last what-if that reads it.
    whatif_copy: Mutex<(u64, Weak<Timeline>)>,
}

impl LiveTimeline {
    pub fn new(timeline: Timeline, head: Head, store: Store, fold: mpsc::Sender<Fold>) -> LiveTimeline {
        LiveTimeline {
            timeline: RwLock::new(timeline),
            head: watch::Sender::new(head),
            folded: watch::Sender::new(head.seq),
            fold: Mutex::new(fold),
            store,
            whatif_copy: Mutex::new((0, Weak::new())),
        }
    }

    fn to_folder(&self, fold: Fold) {
        // The folder gone means the daemon is stopping: nothing is left to fold for.
        let _ = self.fold.lock().unwrap_or_else(PoisonError::into_inner).send(fold);
    }

    // The writer's side.

    /// A group is durable: readers may see `head`, and the folder folds `seqs` (none when
    /// everything was a duplicate). After the head moved: the folder reads the log up to it.
    pub fn committed(&self, head: Head, seqs: Option<(u64, u64)>) {
        self.head.send_replace(head);
        if let Some((first, last)) = seqs {
            self.to_folder(Fold::Range { first, last });
        }
    }

    /// `head`, read from the store by a standby or a new writer, is the one readers see; the
    /// folder folds what it adds (or rebuilds, if the store holds another log than the one
    /// folded).
    pub fn published(&self, head: Head) {
        let seen = *self.head.borrow();
        if head == seen {
            return;
        }
        self.head.send_replace(head);
        self.to_folder(match head.seq > seen.seq {
            true => Fold::Range { first: seen.seq + 1, last: head.seq },
            false => Fold::Rebuild,
        });
    }

    /// The ledger was reopened at `head`: the timeline is rebuilt from the store (it may hold
    /// half a group, or miss one nobody was told of).
    pub fn reopened(&self, head: Head) {
        self.head.send_replace(head);
        self.to_folder(Fold::Rebuild);
    }

    /// The folder folds what it was handed, then stops.
    pub fn stop_folding(&self) {
        self.to_folder(Fold::Stop);
    }

    /// The store's end as it is now (its last block's key): a standby reads the log again only
    /// when it moved.
    pub fn store_end(&self) -> Result<Option<u64>, dealledger_log::LogError> {
        self.store.last_key()
    }

    // The folder's side.

    pub fn folded(&self) -> u64 {
        *self.folded.borrow()
    }

    /// Folds events `folded + 1..=upto` from the log into the timeline, and says so.
    pub fn fold(&self, upto: u64) -> Result<(), FoldError> {
        let log = self.reader();
        let from = self.folded() + 1;
        let mut timeline = self.timeline.write().unwrap_or_else(PoisonError::into_inner);
        log.scan_blocks(from, |header, raw| {
            dealledger_log::block::decode_event_refs(header, raw, |event| {
                if (from..=upto).contains(&event.seq) {
                    timeline
                        .apply(event)
                        .map_err(|why| dealledger_log::LogError::Corrupt { seq: event.seq, why })?;
                }
                Ok(())
            })?;
            Ok(header.first_seq.saturating_add(u64::from(header.count)) <= upto)
        })
        .map_err(FoldError::ReadBack)?;
        drop(timeline);
        // After the lock is let go: a what-if's copy taken under the lock has folded this far.
        self.folded.send_replace(upto);
        Ok(())
    }

    /// Replaces the timeline with one of the log at the durable head, and says so.
    pub fn rebuild(&self) -> Result<(), FoldError> {
        let log = self.reader();
        let head = log.head().seq;
        let (mut timeline, _) =
            dealledger_projections::catch_up::<Timeline, _>(&log).map_err(FoldError::Rebuild)?;
        timeline.refresh();
        *self.timeline.write().unwrap_or_else(PoisonError::into_inner) = timeline;
        self.timeline.clear_poison();
        self.folded.send_replace(head);
        Ok(())
    }

    // The readers' side.

    pub fn head(&self) -> Head {
        *self.head.borrow()
    }

    pub fn subscribe_head(&self) -> watch::Receiver<Head> {
        self.head.subscribe()
    }

    /// A reader of the log up to the last durable head.
    pub fn reader(&self) -> Log<Store> {
        Log::at_head(self.store.clone(), self.head())
    }

    /// Waits at most `timeout` until the timeline has folded every event durable now; else the
    /// seq it was waiting for. The writer answers without waiting for the folder; a reader
    /// that must reflect every acknowledgement waits here instead.
    pub async fn caught_up(&self, timeout: Duration) -> Result<(), u64> {
        let target = self.head().seq;
        let mut folded = self.folded.subscribe();
        let reached = tokio::time::timeout(timeout, folded.wait_for(|seq| *seq >= target)).await;
        match reached.is_ok_and(|r| r.is_ok()) {
            true => Ok(()),
            false => Err(target),
        }
    }

    /// The timeline, read-locked: hold it only as long as the read.
    pub fn read(&self) -> RwLockReadGuard<'_, Timeline> {
        self.timeline.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The timeline with its folds of now fresh (the clock moves, and "gone dark" with it).
    pub fn read_fresh(&self) -> RwLockReadGuard<'_, Timeline> {
        if !self.read().is_fresh() {
            self.timeline.write().unwrap_or_else(PoisonError::into_inner).refresh();
        }
        self.read()
    }

    /// The copy of the timeline what-ifs read, folded at least to `target`: the one a running
    /// what-if reads when it is far enough, else a fresh copy (the lock held only to copy).
    pub fn whatif_copy(&self, target: u64) -> Arc<Timeline> {
        let mut kept = self.whatif_copy.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(timeline) = kept.1.upgrade().filter(|_| kept.0 >= target) {
            return timeline;
        }
        let timeline = self.read();
        // Read under the lock: the timeline has folded at least this far (the folder says so
        // only after it lets the lock go).
        let folded = self.folded();
        let copy = Arc::new(timeline.snapshot());
        drop(timeline);
        *kept = (folded, Arc::downgrade(&copy));
        copy
    }
}

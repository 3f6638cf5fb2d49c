//! The folder: one thread that folds committed events into the live timeline, so that the writer
//! never waits for a reader. The writer appends, makes the group durable, publishes the new head,
//! hands the folder the range of seqs and answers. The folder takes the timeline's write lock
//! (waiting, if it must, for a report or a what-if to finish: readers hold the read lock for
//! their whole run), folds the range and publishes how far it has folded. A reader that must
//! reflect every acknowledged event (reports, what-ifs, deal histories) first waits until the
//! folder has reached the durable head it saw when it started.
//!
//! If folding fails (a block that does not read back), the folder rebuilds the timeline from the
//! log at the durable head rather than serve a timeline that may miss events.

use crate::live::LiveTimeline;
use std::sync::mpsc;

pub enum Fold {
    /// Events `first..=last` are durable: fold them.
    Range { first: u64, last: u64 },
    /// The ledger was reopened: rebuild the timeline from the log at the durable head.
    Rebuild,
    /// Fold what came before, then stop.
    Stop,
}

pub fn run(queue: mpsc::Receiver<Fold>, live: &LiveTimeline) {
    let mut stopping = false;
    while !stopping {
        let Ok(first) = queue.recv() else { break };
        // Everything waiting is folded at once: one lock for many commits.
        let mut upto = 0u64;
        let mut lowest = u64::MAX;
        let mut rebuild = false;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Fold::Range { first, last } => {
                    lowest = lowest.min(first);
                    upto = upto.max(last);
                }
                Fold::Rebuild => rebuild = true,
                Fold::Stop => stopping = true,
            }
            if !stopping {
                next = queue.try_recv().ok();
            }
        }
        let folded = live.folded();
        if !rebuild && upto <= folded {
            continue;
        }
        // Ranges come in order and without gaps; one that starts beyond what was folded means a
        // range went missing, and only the log can say what it held.
        rebuild |= lowest != u64::MAX && lowest > folded.saturating_add(1);
        if !rebuild {
            match live.fold(upto) {
                Ok(()) => continue,
                Err(why) => {
                    tracing::error!(error = %why, "folding committed events failed; rebuilding the timeline from the log")
                }
            }
        }
        if let Err(why) = live.rebuild() {
            // Readers keep the timeline as it was; the next commit tries again.
            tracing::error!(error = %why, "rebuilding the timeline failed");
        }
    }
}

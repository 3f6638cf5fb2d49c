//! The writer lease: which of several processes sharing one store (a JetStream stream) may
//! write. A lease is held for a time to live and renewed while its holder is healthy; when the
//! holder dies, it expires and another process takes it.
//!
//! The lease is for liveness, not for safety: two processes that both believe they hold it
//! (a paused holder whose lease expired) still cannot both write, because every append is
//! conditional on the log's end ([`crate::LogError::Fenced`]). The lease only decides who
//! should try, so that a standby does not fight a healthy writer.
//!
//! A store that excludes other writers by itself (sled's file lock, with `writer.lock`) has
//! no lease: [`Lease`] is implemented by the backends that share a store.

use crate::error::LogError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a try to take or renew the lease found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This process holds the lease until at least the instant the try started plus the TTL.
    Held,
    /// Another process holds it; its description (who, and where to send writes).
    Other(String),
}

pub trait Lease: Send + Sync {
    /// Takes the lease if it is free, renews it if this process holds it. A lease this process
    /// held and lost (it expired, another took it) answers [`Claim::Other`].
    fn claim(&self) -> Result<Claim, LogError>;
    /// Gives the lease up, if held, so that a standby takes over without waiting for the TTL.
    fn release(&self);
    /// How long a lease lasts without renewal.
    fn ttl(&self) -> Duration;
    /// Where the lease is kept, for messages.
    fn location(&self) -> String;
    /// Who this process is, as the next claim writes it for others to read (a daemon names
    /// itself once it knows the address it listens on).
    fn set_holder(&self, holder: String);
}

/// Renew a lease this many times per time to live: two renewals can fail before it lapses.
pub const RENEWALS_PER_TTL: u32 = 3;

/// A lease taken and kept by a thread of its own, renewing it [`RENEWALS_PER_TTL`] times per
/// TTL, for a command that writes for a while (ingest, recover): dropping it releases the lease.
/// A command whose lease lapses (renewals failed for a TTL) is not stopped by it: once another
/// writer has appended, the command's next append is fenced and stores nothing.
pub struct Kept {
    lease: Arc<dyn Lease>,
    state: Arc<KeptState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct KeptState {
    stop: AtomicBool,
    wake: std::sync::Condvar,
    wake_lock: Mutex<()>,
}

impl Kept {
    /// Takes `lease` (Err naming the holder when another holds it) and keeps it renewed.
    pub fn take(lease: Arc<dyn Lease>) -> Result<Kept, LogError> {
        match lease.claim()? {
            Claim::Held => {}
            Claim::Other(holder) => {
                return Err(LogError::Store(format!(
                "another process holds the writer lease ({holder}; {}): send events to it, or stop it first",
                lease.location()
            )))
            }
        }
        let state = Arc::new(KeptState {
            stop: AtomicBool::new(false),
            wake: std::sync::Condvar::new(),
            wake_lock: Mutex::new(()),
        });
        let (renewing, kept) = (lease.clone(), state.clone());
        let thread = std::thread::Builder::new()
            .name("dealledger-lease".into())
            .spawn(move || renew(&*renewing, &kept))
            .map_err(|e| LogError::Store(format!("cannot start the lease's thread: {e}")))?;
        Ok(Kept { lease, state, thread: Some(thread) })
    }
}

fn renew(lease: &dyn Lease, state: &KeptState) {
    let every = lease.ttl() / RENEWALS_PER_TTL;
    loop {
        let guard = state.wake_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // `stop` is set under the same lock, so a wake-up cannot fall between this check and
        // the wait.
        if state.stop.load(Ordering::Acquire) {
            return;
        }
        let guard =
            state.wake.wait_timeout(guard, every).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        drop(guard);
        if state.stop.load(Ordering::Acquire) {
            return;
        }
        match lease.claim() {
            Ok(Claim::Held) => {}
            Ok(Claim::Other(holder)) => {
                tracing::error!(%holder, "the writer lease was lost; this command's next append is fenced if another writer appended");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "renewing the writer lease failed; trying again"),
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        {
            let _guard = self.state.wake_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.state.stop.store(true, Ordering::Release);
        }
        self.state.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.lease.release();
    }
}

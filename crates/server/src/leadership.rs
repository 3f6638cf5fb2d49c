//! Which daemon writes, when several serve one shared store (a JetStream stream): the one that
//! holds the writer lease. A keeper thread claims the lease every TTL / [`RENEWALS_PER_TTL`]
//! (taking it when it is free, renewing it while held); the writer thread acknowledges only
//! while the lease is certainly held ([`Leadership::holds`]: the last successful claim started
//! less than a TTL ago). Every other daemon is a standby: it follows the stream, serves reads,
//! and answers writes 503 naming the writer.
//!
//! Safety does not rest on the lease: an append is conditional on the log's end, so a daemon
//! that still believes it holds a lease another has taken is fenced off by its first append
//! and steps down ([`Leadership::step_down`]).

use dealledger_log::lease::{Claim, Lease, RENEWALS_PER_TTL};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Leadership {
    lease: Arc<dyn Lease>,
    /// Until when the lease is certainly held (the start of the last successful claim plus the
    /// TTL); in the past while another daemon holds it.
    valid_until: Mutex<Instant>,
    /// The holder as the last claim found it, when it is another daemon.
    writer: Mutex<Option<String>>,
    /// Set by a fenced append: the lease is not claimed again until `retry_after`.
    stepped_down: Mutex<Option<Instant>>,
    stop: AtomicBool,
}

impl Leadership {
    pub fn new(lease: Arc<dyn Lease>) -> Leadership {
        Leadership {
            lease,
            valid_until: Mutex::new(Instant::now()),
            writer: Mutex::new(None),
            stepped_down: Mutex::new(None),
            stop: AtomicBool::new(false),
        }
    }

    /// Whether this daemon certainly holds the lease now.
    pub fn holds(&self) -> bool {
        Instant::now() < *lock(&self.valid_until)
    }

    /// The writer, as far as this daemon knows, for the 503 a standby answers.
    pub fn writer(&self) -> String {
        lock(&self.writer)
            .clone()
            .unwrap_or_else(|| "not known yet (the lease is free or being taken)".into())
    }

    /// After a fenced append: another daemon wrote, so this one stops acknowledging, gives
    /// the lease up and does not claim it for one TTL.
    pub fn step_down(&self, why: &str) {
        tracing::warn!(%why, "stepping down: another writer appended to the log");
        *lock(&self.valid_until) = Instant::now();
        *lock(&self.stepped_down) = Some(Instant::now() + self.lease.ttl());
        self.lease.release();
    }

    /// One claim: takes or renews the lease, or learns who holds it.
    pub fn claim(&self) {
        if lock(&self.stepped_down).is_some_and(|until| Instant::now() < until) {
            return;
        }
        let started = Instant::now();
        match self.lease.claim() {
            // A step-down while the claim was in flight wins: the lease was released.
            Ok(Claim::Held) if lock(&self.stepped_down).is_some_and(|until| Instant::now() < until) => {
                self.lease.release();
            }
            Ok(Claim::Held) => {
                let was = self.holds();
                *lock(&self.valid_until) = started + self.lease.ttl();
                *lock(&self.writer) = None;
                if !was {
                    tracing::info!(lease = %self.lease.location(), "holding the writer lease");
                }
            }
            Ok(Claim::Other(holder)) => {
                if self.holds() {
                    tracing::error!(%holder, "the writer lease was taken by another daemon; standing by");
                }
                *lock(&self.valid_until) = started;
                *lock(&self.writer) = Some(holder);
            }
            Err(e) => tracing::warn!(error = %e, "claiming the writer lease failed; trying again"),
        }
    }

    /// Runs the keeper until [`Leadership::stop`]; releases the lease on the way out, so that a
    /// standby takes over at once after a clean shutdown.
    pub fn keep(&self) {
        let every = self.lease.ttl() / RENEWALS_PER_TTL;
        while !self.stop.load(Ordering::Acquire) {
            self.claim();
            let until = Instant::now() + every;
            while Instant::now() < until && !self.stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20).min(every));
            }
        }
        *lock(&self.valid_until) = Instant::now();
        self.lease.release();
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

//! The daemon's memory budget for requests, in bytes: bodies being read, and requests waiting
//! for the writer or in its hands, share `[serve] queue_bytes_max`. A reservation is taken as a
//! body arrives (all of it at once when Content-Length says how much), grows by the decoded
//! events' size, travels with the request to the writer, and is given back when the writer is
//! done with it (or the request fails). Past the budget a request is answered 503 `queue_full`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Budget {
    used_bytes: AtomicUsize,
    max_bytes: usize,
}

impl Budget {
    pub fn new(max_bytes: usize) -> Arc<Budget> {
        Arc::new(Budget { used_bytes: AtomicUsize::new(0), max_bytes })
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes.load(Ordering::Relaxed)
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// An empty reservation, to grow.
    pub fn reserve(self: &Arc<Budget>) -> Reserved {
        Reserved { budget: self.clone(), bytes: 0 }
    }

    fn take(&self, bytes: usize) -> bool {
        self.used_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.max_bytes)
            })
            .is_ok()
    }
}

/// Bytes held for one request; given back on drop.
pub struct Reserved {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Reserved {
    /// Holds `bytes` more, if the budget has them.
    #[must_use]
    pub fn grow(&mut self, bytes: usize) -> bool {
        if !self.budget.take(bytes) {
            return false;
        }
        self.bytes += bytes;
        true
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.budget.used_bytes.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_add_up_and_give_back() {
        let budget = Budget::new(100);
        let mut a = budget.reserve();
        assert!(a.grow(60));
        let mut b = budget.reserve();
        assert!(!b.grow(41), "past the budget");
        assert!(b.grow(40));
        assert!(!a.grow(1));
        drop(a);
        assert_eq!(budget.used_bytes(), 40);
        assert!(!b.grow(usize::MAX), "no overflow");
        drop(b);
        assert_eq!(budget.used_bytes(), 0);
    }
}

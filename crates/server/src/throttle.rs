//! Wrong tokens, counted by client address: past [`FAILURES_MAX`] in a window of [`WINDOW_MS`],
//! every request from that address that presents a token (a bearer header, a sign-in) is
//! answered 429 until the window ends, the right one too (else the answer would still tell a hit
//! from a miss). A live session cookie still works: it is no guess. A token of 16 random bytes
//! cannot be guessed anyway; this keeps a weak one from being guessed at thousands a second.
//!
//! Bounded: at most [`ADDRESSES_MAX`] addresses are remembered; past it, ended windows go first,
//! then the oldest. (Whoever holds that many addresses gains little: each gets its few guesses.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Wrong tokens from one address in one window, at most.
pub const FAILURES_MAX: u32 = 10;
/// The window, in milliseconds: it starts at an address's first failure.
pub const WINDOW_MS: i64 = 60_000;
/// Addresses remembered at once, at most.
pub const ADDRESSES_MAX: usize = 10_000;

#[derive(Clone, Copy)]
struct Window {
    start_ms: i64,
    failures: u32,
}

#[derive(Default)]
pub struct Throttle {
    windows: Mutex<HashMap<IpAddr, Window>>,
}

impl Throttle {
    /// Seconds until `address` may present a credential again; None when it may now.
    pub fn wait_seconds(&self, address: IpAddr, now_ms: i64) -> Option<u64> {
        let windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = windows.get(&address)?;
        let ends_ms = window.start_ms.saturating_add(WINDOW_MS);
        (window.failures >= FAILURES_MAX && now_ms < ends_ms)
            .then(|| u64::try_from(ends_ms.saturating_sub(now_ms)).unwrap_or(1).div_ceil(1000).max(1))
    }

    /// Counts a wrong credential from `address`.
    pub fn failed(&self, address: IpAddr, now_ms: i64) {
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let ended = |w: &Window| now_ms >= w.start_ms.saturating_add(WINDOW_MS);
        match windows.get_mut(&address) {
            Some(window) if !ended(window) => window.failures = window.failures.saturating_add(1),
            _ => {
                if windows.len() >= ADDRESSES_MAX {
                    windows.retain(|_, w| !ended(w));
                }
                if windows.len() >= ADDRESSES_MAX {
                    let oldest = windows.iter().min_by_key(|(_, w)| w.start_ms).map(|(a, _)| *a);
                    oldest.map(|a| windows.remove(&a));
                }
                windows.insert(address, Window { start_ms: now_ms, failures: 1 });
            }
        }
        debug_assert!(windows.len() <= ADDRESSES_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_waits_after_its_failures_until_the_window_ends() {
        let throttle = Throttle::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for i in 0..FAILURES_MAX {
            assert_eq!(throttle.wait_seconds(a, 1_000), None, "after {i} failures");
            throttle.failed(a, 1_000);
        }
        assert_eq!(throttle.wait_seconds(a, 1_000), Some(60));
        assert_eq!(throttle.wait_seconds(a, 60_500), Some(1));
        assert_eq!(throttle.wait_seconds(b, 1_000), None, "another address");
        assert_eq!(throttle.wait_seconds(a, 61_000), None, "the window ended");
        throttle.failed(a, 61_000);
        assert_eq!(throttle.wait_seconds(a, 61_000), None, "a new window, one failure");
    }

    #[test]
    fn it_remembers_a_bounded_number_of_addresses() {
        let throttle = Throttle::default();
        for i in 0..(ADDRESSES_MAX as u32 + 50) {
            throttle.failed(IpAddr::from(i.to_be_bytes()), i64::from(i));
        }
        assert_eq!(throttle.windows.lock().unwrap().len(), ADDRESSES_MAX);
    }
}

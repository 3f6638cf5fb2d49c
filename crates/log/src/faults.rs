//! A seeded fault-injecting store, for proving that every answer given above it is true.
//!
//! [`FaultStore`] models a store with a durable part and a volatile part, the way a disk with a
//! page cache is one: an `append` puts its blocks in the volatile part and its barrier moves
//! everything volatile to the durable part; [`FaultStore::crash`] (a power cut) forgets the
//! volatile part. Faults are drawn from a seeded generator at every call, so a seed reproduces
//! a failing run exactly:
//!
//! - [`Fault::AppendBefore`]: the append fails before anything reaches the store (disk full,
//!   a refused write). Nothing is stored; the error says so ([`LogError::Store`]).
//! - [`Fault::AppendAfter`]: the blocks are stored and durable, but the call fails afterwards
//!   (the acknowledgement is lost). The error says the outcome is unknown.
//! - [`Fault::Barrier`]: the blocks reach the volatile part but the barrier fails: they are
//!   visible, not durable, and a later crash drops them unless a later barrier succeeds.
//! - [`Fault::Read`]: a read fails.
//! - [`Fault::MetaWrite`]: a metadata write fails, storing nothing.
//! - [`Fault::Panic`]: the append panics (a bug below the writer), storing nothing.
//!
//! It holds blocks in memory and is for tests; it is public so that the daemon's tests drive
//! its writer through it.

use crate::error::LogError;
use crate::log::Head;
use crate::store::{BlockStore, BlockVisitor};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    AppendBefore,
    AppendAfter,
    Barrier,
    Read,
    MetaWrite,
    Panic,
}

/// How often each fault strikes, in parts per thousand of the calls it applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultRates {
    pub append_before_permille: u32,
    pub append_after_permille: u32,
    pub barrier_permille: u32,
    pub read_permille: u32,
    pub meta_write_permille: u32,
    pub panic_permille: u32,
}

#[derive(Default)]
struct State {
    durable: BTreeMap<u64, Vec<u8>>,
    volatile: BTreeMap<u64, Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
    mark: Option<Head>,
    rates: FaultRates,
    /// splitmix64 state: a seed reproduces every draw, and the log crate needs no RNG crate.
    rng: u64,
    injected: BTreeMap<Fault, u64>,
    /// Faults forced on the next calls they apply to, before any random draw.
    forced: Vec<Fault>,
}

impl State {
    fn draw_permille(&mut self) -> u32 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % 1000) as u32
    }

    /// Whether `fault` strikes this call: forced first, then at its rate.
    fn strikes(&mut self, fault: Fault, permille: u32) -> bool {
        if let Some(i) = self.forced.iter().position(|f| *f == fault) {
            self.forced.remove(i);
        } else if self.draw_permille() >= permille {
            return false;
        }
        *self.injected.entry(fault).or_default() += 1;
        true
    }

    fn last_key(&self) -> Option<u64> {
        let durable = self.durable.keys().next_back().copied();
        let volatile = self.volatile.keys().next_back().copied();
        durable.max(volatile)
    }

    /// The store as a reader sees it: durable and volatile blocks together.
    fn view(&self) -> BTreeMap<u64, Vec<u8>> {
        let mut all = self.durable.clone();
        all.extend(self.volatile.iter().map(|(k, v)| (*k, v.clone())));
        all
    }
}

pub struct FaultStore {
    state: Mutex<State>,
}

impl FaultStore {
    pub fn new(seed: u64, rates: FaultRates) -> FaultStore {
        FaultStore { state: Mutex::new(State { rng: seed, rates, ..State::default() }) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked on purpose (Fault::Panic) may have poisoned it; the state is
        // consistent at every await-free step, so go on.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_rates(&self, rates: FaultRates) {
        self.state().rates = rates;
    }

    /// Forces `fault` on the next call it applies to.
    pub fn force(&self, fault: Fault) {
        self.state().forced.push(fault);
    }

    /// A power cut: what no barrier made durable is gone.
    pub fn crash(&self) {
        self.state().volatile.clear();
    }

    /// How many times each fault struck.
    pub fn injected(&self) -> BTreeMap<Fault, u64> {
        self.state().injected.clone()
    }

    /// Keys of the durable blocks.
    pub fn durable_keys(&self) -> Vec<u64> {
        self.state().durable.keys().copied().collect()
    }

    /// The last key a reader would see, durable or not, without drawing a fault.
    pub fn last_key(&self) -> Option<u64> {
        self.state().last_key()
    }

    fn read_fault(&self) -> Result<(), LogError> {
        let mut state = self.state();
        let rate = state.rates.read_permille;
        if state.strikes(Fault::Read, rate) {
            return Err(LogError::Store("injected fault: read failed".into()));
        }
        Ok(())
    }
}

impl BlockStore for FaultStore {
    fn append(&self, blocks: &[(u64, Vec<u8>)], head: Head) -> Result<(), LogError> {
        let mut state = self.state();
        let rates = state.rates;
        if state.strikes(Fault::Panic, rates.panic_permille) {
            drop(state);
            panic!("injected fault: the store panicked in append");
        }
        if state.strikes(Fault::AppendBefore, rates.append_before_permille) {
            return Err(LogError::Store("injected fault: the write was refused".into()));
        }
        let mut last = state.last_key();
        for (key, _) in blocks {
            assert!(last.is_none_or(|last| *key > last), "block keys increase");
            last = Some(*key);
        }
        state.volatile.extend(blocks.iter().cloned());
        if state.strikes(Fault::Barrier, rates.barrier_permille) {
            return Err(LogError::Uncertain("injected fault: fsync failed".into()));
        }
        let volatile = std::mem::take(&mut state.volatile);
        state.durable.extend(volatile);
        state.mark = Some(head);
        if state.strikes(Fault::AppendAfter, rates.append_after_permille) {
            return Err(LogError::Uncertain(
                "injected fault: the write completed but its reply was lost".into(),
            ));
        }
        Ok(())
    }

    fn mark(&self) -> Result<Option<Head>, LogError> {
        self.read_fault()?;
        Ok(self.state().mark)
    }

    fn reset_mark(&self, head: Head) -> Result<(), LogError> {
        self.state().mark = Some(head);
        Ok(())
    }

    fn mark_location(&self) -> String {
        "(fault-injecting memory store)".into()
    }

    fn block_at_or_before(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        self.read_fault()?;
        let state = self.state();
        let durable = state.durable.range(..=seq).next_back();
        let volatile = state.volatile.range(..=seq).next_back();
        let found = match (durable, volatile) {
            (Some(d), Some(v)) => Some(if v.0 > d.0 { v } else { d }),
            (d, v) => d.or(v),
        };
        Ok(found.map(|(k, v)| (*k, v.clone())))
    }

    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        self.read_fault()?;
        let state = self.state();
        Ok(state.last_key().map(|key| {
            let value =
                state.volatile.get(&key).or_else(|| state.durable.get(&key)).expect("the last key exists");
            (key, value.clone())
        }))
    }

    fn scan(&self, from_key: u64, visit: &mut BlockVisitor<'_>) -> Result<(), LogError> {
        self.read_fault()?;
        let view = self.state().view();
        for (key, value) in view.range(from_key..) {
            if !visit(*key, value)? {
                break;
            }
        }
        Ok(())
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        self.read_fault()?;
        Ok(self.state().meta.get(name).cloned())
    }

    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), LogError> {
        let mut state = self.state();
        let rate = state.rates.meta_write_permille;
        if state.strikes(Fault::MetaWrite, rate) {
            return Err(LogError::Store("injected fault: the metadata write failed".into()));
        }
        state.meta.insert(name.to_string(), value.to_vec());
        Ok(())
    }

    fn bytes_on_disk(&self) -> Result<u64, LogError> {
        Ok(0)
    }
}

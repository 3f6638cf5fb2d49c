//! The storage interface under the log: a small trait any backend can implement.
//!
//! The log speaks in sealed blocks keyed by their first sequence number, plus a few named
//! metadata values (projection checkpoints) and the high-water mark (the head last made
//! durable, kept where losing the blocks cannot take it along). A backend stores bytes; it
//! knows nothing of events or compression, and keeps the mark as an opaque (seq, hash) pair.
//! sled implements it today ([`crate::SledStore`]); a NATS JetStream stream (one message per
//! block, `Nats-Expected-Last-Sequence` for the append condition, a KV bucket for metadata and
//! the mark) can implement the same methods.
//!
//! Durability is the backend's job and it is an operating-system fact: `append` returns Ok only
//! once every byte of the write (and everything stored before it) would survive a power cut.

use crate::error::LogError;
use crate::log::Head;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Called with each block's key and bytes; returns whether to go on.
pub type BlockVisitor<'a> = dyn FnMut(u64, &[u8]) -> Result<bool, LogError> + 'a;

pub trait BlockStore: Send + Sync {
    /// Stores every block, all or nothing; makes everything stored so far durable (the
    /// barrier); then records `head` durably as the high-water mark. With no blocks it is the
    /// barrier and the mark alone. Keys are strictly increasing and above every stored key.
    /// On error: [`LogError::Store`] only when nothing of the write was stored, else
    /// [`LogError::Uncertain`].
    fn append(&self, blocks: &[(u64, Vec<u8>)], head: Head) -> Result<(), LogError>;

    /// The high-water mark: the head recorded by the last successful `append`, if any.
    fn mark(&self) -> Result<Option<Head>, LogError>;

    /// Moves the mark to `head`, durably, whatever it was: only for the recovery a person
    /// decides on after a lost tail (`dealledger recover --accept-loss`).
    fn reset_mark(&self, head: Head) -> Result<(), LogError>;

    /// Where the mark is kept, for messages (a file path, a bucket key).
    fn mark_location(&self) -> String;

    /// The block with the greatest key <= `seq` (the one holding `seq`, if any).
    fn block_at_or_before(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>, LogError>;

    /// The last block.
    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, LogError>;

    /// The last block's key, without its bytes where the backend can: how a follower of a
    /// shared store looks for new blocks often and cheaply.
    fn last_key(&self) -> Result<Option<u64>, LogError> {
        Ok(self.last()?.map(|(key, _)| key))
    }

    /// Blocks with key >= `from_key`, in key order, to `visit` until it returns false.
    fn scan(&self, from_key: u64, visit: &mut BlockVisitor<'_>) -> Result<(), LogError>;

    /// A named metadata value (projection checkpoints and the like).
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, LogError>;

    /// Stores a metadata value durably.
    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), LogError>;

    /// Up to `len` bytes of a metadata value from byte `at` (fewer where it ends): a reader of
    /// one part of a large value (the deal index) reads that part only.
    fn get_meta_range(&self, name: &str, at: u64, len: usize) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.get_meta(name)?.map(|value| slice_of(&value, at, len).to_vec()))
    }

    /// A metadata value to read through once (a checkpoint): where the backend keeps it in a
    /// file of its own, mapped from that file rather than copied into memory, which at 10 M
    /// events saves a fresh page for every 4 KiB of a value of hundreds of MB.
    fn read_meta(&self, name: &str) -> Result<Option<MetaBytes>, LogError> {
        Ok(self.get_meta(name)?.map(MetaBytes::Owned))
    }

    /// Bytes the backend occupies on disk (0 for memory).
    fn bytes_on_disk(&self) -> Result<u64, LogError>;
}

/// A metadata value as [`BlockStore::read_meta`] gives it.
pub enum MetaBytes {
    Owned(Vec<u8>),
    /// The value's file, mapped read-only: the backend only ever replaces such a file by
    /// renaming a new one over it, so the bytes of the mapped one never change.
    Mapped(memmap2::Mmap),
}

impl MetaBytes {
    /// Gives the pages of `range` of a mapped value back to the system (they stay in its page
    /// cache), as a reader reading through the value leaves them behind: any it touches again
    /// are mapped in again from the file. Resident memory then counts what the reader decoded,
    /// not the value it read. A value in memory stays as it is.
    pub fn release_pages(&self, range: std::ops::Range<usize>) {
        if let MetaBytes::Mapped(map) = self {
            let start = range.start.min(map.len());
            let len = range.end.min(map.len()).saturating_sub(start);
            // SAFETY: MADV_DONTNEED on a shared, read-only mapping of a file only drops the
            // mapping's page table entries: the next read of a page maps the file's page again,
            // with the same bytes (the file is never changed in place, see `MetaBytes::Mapped`).
            // It is the private and anonymous mappings whose contents it discards, which this
            // is not. A failure only leaves the pages resident.
            let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) };
        }
    }
}

impl std::ops::Deref for MetaBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            MetaBytes::Owned(bytes) => bytes,
            MetaBytes::Mapped(map) => map,
        }
    }
}

/// `len` bytes of `value` from `at`, or fewer where it ends.
pub(crate) fn slice_of(value: &[u8], at: u64, len: usize) -> &[u8] {
    let start = usize::try_from(at).unwrap_or(usize::MAX).min(value.len());
    value.get(start..start.saturating_add(len).min(value.len())).unwrap_or_default()
}

/// A shared store: the daemon's writer and its readers hold one store between them.
impl<S: BlockStore + ?Sized> BlockStore for std::sync::Arc<S> {
    fn append(&self, blocks: &[(u64, Vec<u8>)], head: Head) -> Result<(), LogError> {
        (**self).append(blocks, head)
    }
    fn mark(&self) -> Result<Option<Head>, LogError> {
        (**self).mark()
    }
    fn reset_mark(&self, head: Head) -> Result<(), LogError> {
        (**self).reset_mark(head)
    }
    fn mark_location(&self) -> String {
        (**self).mark_location()
    }
    fn block_at_or_before(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        (**self).block_at_or_before(seq)
    }
    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        (**self).last()
    }
    fn last_key(&self) -> Result<Option<u64>, LogError> {
        (**self).last_key()
    }
    fn scan(&self, from_key: u64, visit: &mut BlockVisitor<'_>) -> Result<(), LogError> {
        (**self).scan(from_key, visit)
    }
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        (**self).get_meta(name)
    }
    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), LogError> {
        (**self).put_meta(name, value)
    }
    fn get_meta_range(&self, name: &str, at: u64, len: usize) -> Result<Option<Vec<u8>>, LogError> {
        (**self).get_meta_range(name, at, len)
    }
    fn read_meta(&self, name: &str) -> Result<Option<MetaBytes>, LogError> {
        (**self).read_meta(name)
    }
    fn bytes_on_disk(&self) -> Result<u64, LogError> {
        (**self).bytes_on_disk()
    }
}

/// An in-memory backend, for tests of everything above the storage engine.
#[derive(Default)]
pub struct MemStore {
    blocks: Mutex<BTreeMap<u64, Vec<u8>>>,
    meta: Mutex<BTreeMap<String, Vec<u8>>>,
    mark: Mutex<Option<Head>>,
}

impl MemStore {
    /// Overwrites a stored block's bytes, for corruption tests.
    pub fn tamper(&self, key: u64, edit: impl FnOnce(&mut Vec<u8>)) {
        let mut blocks = self.blocks.lock().expect("not poisoned");
        edit(blocks.get_mut(&key).expect("block exists"));
    }

    /// Drops a stored block, for gap and lost-tail tests.
    pub fn remove(&self, key: u64) {
        self.blocks.lock().expect("not poisoned").remove(&key);
    }

    /// Keys of the stored blocks, in order.
    pub fn keys(&self) -> Vec<u64> {
        self.blocks.lock().expect("not poisoned").keys().copied().collect()
    }
}

impl BlockStore for MemStore {
    fn append(&self, new: &[(u64, Vec<u8>)], head: Head) -> Result<(), LogError> {
        let mut blocks = self.blocks.lock().expect("not poisoned");
        let mut last = blocks.keys().next_back().copied();
        for (key, _) in new {
            assert!(last.is_none_or(|last| *key > last), "block keys increase");
            last = Some(*key);
        }
        for (key, value) in new {
            blocks.insert(*key, value.clone());
        }
        *self.mark.lock().expect("not poisoned") = Some(head);
        Ok(())
    }

    fn mark(&self) -> Result<Option<Head>, LogError> {
        Ok(*self.mark.lock().expect("not poisoned"))
    }

    fn reset_mark(&self, head: Head) -> Result<(), LogError> {
        *self.mark.lock().expect("not poisoned") = Some(head);
        Ok(())
    }

    fn mark_location(&self) -> String {
        "(memory)".into()
    }

    fn block_at_or_before(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        let blocks = self.blocks.lock().expect("not poisoned");
        Ok(blocks.range(..=seq).next_back().map(|(k, v)| (*k, v.clone())))
    }

    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        let blocks = self.blocks.lock().expect("not poisoned");
        Ok(blocks.iter().next_back().map(|(k, v)| (*k, v.clone())))
    }

    fn scan(&self, from_key: u64, visit: &mut BlockVisitor<'_>) -> Result<(), LogError> {
        let blocks = self.blocks.lock().expect("not poisoned").clone();
        for (key, value) in blocks.range(from_key..) {
            if !visit(*key, value)? {
                break;
            }
        }
        Ok(())
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.meta.lock().expect("not poisoned").get(name).cloned())
    }

    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), LogError> {
        self.meta.lock().expect("not poisoned").insert(name.to_string(), value.to_vec());
        Ok(())
    }

    fn bytes_on_disk(&self) -> Result<u64, LogError> {
        Ok(0)
    }
}

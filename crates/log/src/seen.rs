//! The idempotency index: every stored event's identity to its seq, its deal's version after it
//! and its body digest, rebuilt from the log on open.
//!
//! Two kinds of identity. A `source_id` is kept by its hash with the body's digest beside it (the
//! same id with another body is a conflict). An event without one is identified by its content,
//! which is its body: the identity is the digest. Content identities are most of a log's events
//! (two in three of a generated history's), so they are kept compact: the digest's low 64 bits as
//! the key and 32 more beside the seq and version, 24 bytes an entry against 48 for a
//! `source_id`'s. A false match needs two contents that agree in 96 bits (about one pair in 2^48
//! events); two contents that share the low 64 bits are kept whole in `overflow`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// 128 bits of blake3: ids and bodies are compared by hash; a collision would need ~2^64 events.
pub(crate) type Digest128 = u128;

/// Keys are already blake3 output, so any fast hash spreads them well.
type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// What the index holds of a stored event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub seq: u64,
    /// The deal's version after it.
    pub version: u32,
    /// The digest of its identity bytes (for a content identity, the identity itself).
    pub body: Digest128,
}

/// An event's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    /// The hash of its `source_id`.
    Source(Digest128),
    /// The keyed hash of its content (it has no `source_id`).
    Content(Digest128),
}

/// A content identity's entry: the digest's bits 64..96, and where the event is.
#[derive(Clone, Copy, Debug)]
struct Packed {
    check: u32,
    version: u32,
    seq: u64,
}

#[derive(Default)]
pub(crate) struct SeenIndex {
    sources: Map<Digest128, Seen>,
    contents: Map<u64, Packed>,
    /// Contents whose low 64 bits another content holds in `contents`: kept whole.
    overflow: Map<Digest128, (u64, u32)>,
}

/// A content digest as its key (the low 64 bits) and its check (the next 32).
fn split(digest: Digest128) -> (u64, u32) {
    (digest as u64, (digest >> 64) as u32)
}

impl SeenIndex {
    pub fn get(&self, id: Identity) -> Option<Seen> {
        match id {
            Identity::Source(key) => self.sources.get(&key).copied(),
            Identity::Content(digest) => {
                let (key, check) = split(digest);
                let (seq, version) = match self.contents.get(&key) {
                    Some(p) if p.check == check => (p.seq, p.version),
                    // Not here, or another content with these low bits: the overflow may hold it.
                    _ if self.overflow.is_empty() => return None,
                    _ => *self.overflow.get(&digest)?,
                };
                Some(Seen { seq, version, body: digest })
            }
        }
    }

    /// Records a stored event; an identity already held keeps its first event (a log written
    /// before content identities may hold one content twice: the first is the original).
    pub fn insert(&mut self, id: Identity, seen: Seen) {
        match id {
            Identity::Source(key) => {
                self.sources.insert(key, seen);
            }
            Identity::Content(digest) => {
                let (key, check) = split(digest);
                match self.contents.entry(key) {
                    Entry::Vacant(entry) => {
                        entry.insert(Packed { check, version: seen.version, seq: seen.seq });
                    }
                    Entry::Occupied(entry) if entry.get().check == check => {}
                    Entry::Occupied(_) => {
                        self.overflow.entry(digest).or_insert((seen.seq, seen.version));
                    }
                }
            }
        }
    }

    /// Forgets an identity a batch recorded and then dropped.
    pub fn remove(&mut self, id: Identity) {
        match id {
            Identity::Source(key) => {
                self.sources.remove(&key);
            }
            Identity::Content(digest) => {
                let (key, check) = split(digest);
                if self.contents.get(&key).is_some_and(|p| p.check == check) {
                    self.contents.remove(&key);
                } else {
                    self.overflow.remove(&digest);
                }
            }
        }
    }
}

/// The identities a batch recorded, to forget them if it is dropped: one list per kind, 16
/// bytes an identity (an `Identity` would take 32, and an ingest of millions of events holds one
/// per event until it commits).
#[derive(Default)]
pub(crate) struct Recorded {
    sources: Vec<Digest128>,
    contents: Vec<Digest128>,
}

/// How far [`Recorded`] went, to forget only what came after.
#[derive(Clone, Copy)]
pub(crate) struct Mark(usize, usize);

impl Recorded {
    pub fn push(&mut self, id: Identity) {
        match id {
            Identity::Source(key) => self.sources.push(key),
            Identity::Content(digest) => self.contents.push(digest),
        }
    }

    pub fn mark(&self) -> Mark {
        Mark(self.sources.len(), self.contents.len())
    }

    /// Forgets in `index` every identity recorded since `mark` (all of them from the default
    /// mark).
    pub fn forget_since(&mut self, mark: Mark, index: &mut SeenIndex) {
        for key in self.sources.drain(mark.0..) {
            index.remove(Identity::Source(key));
        }
        for digest in self.contents.drain(mark.1..) {
            index.remove(Identity::Content(digest));
        }
    }

    pub fn forget_all(&mut self, index: &mut SeenIndex) {
        self.forget_since(Mark(0, 0), index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_that_share_their_low_bits_are_both_kept_and_both_removed() {
        let mut index = SeenIndex::default();
        let (a, b) = ((1u128 << 64) | 7, (2u128 << 64) | 7);
        assert_eq!(split(a).0, split(b).0, "the same low 64 bits");
        let seen = |seq| Seen { seq, version: 1, body: 0 };
        index.insert(Identity::Content(a), seen(1));
        index.insert(Identity::Content(b), seen(2));
        assert_eq!(index.get(Identity::Content(a)).map(|s| s.seq), Some(1));
        assert_eq!(index.get(Identity::Content(b)).map(|s| (s.seq, s.body)), Some((2, b)));
        // The first is removed: the second is still found, in the overflow.
        index.remove(Identity::Content(a));
        assert_eq!(index.get(Identity::Content(a)), None);
        assert_eq!(index.get(Identity::Content(b)).map(|s| s.seq), Some(2));
        index.remove(Identity::Content(b));
        assert_eq!(index.get(Identity::Content(b)), None);
        // A content held keeps its first event; a source_id and a content never meet.
        index.insert(Identity::Content(a), seen(3));
        index.insert(Identity::Content(a), seen(4));
        assert_eq!(index.get(Identity::Content(a)).map(|s| s.seq), Some(3));
        assert_eq!(index.get(Identity::Source(a)), None);
    }
}

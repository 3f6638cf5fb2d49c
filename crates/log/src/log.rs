//! The log: numbered events in sealed blocks over any [`BlockStore`].

use crate::block::{
    self, Hash, Header, BLOCK_RAW_BYTES_TARGET, BLOCK_STORED_BYTES_MAX, ZERO_HASH, ZSTD_LEVEL,
};
use crate::error::LogError;
use crate::store::BlockStore;
use dealledger_events::codec::encode_record;
use dealledger_events::{Event, EventRef, StoredEvent};

/// Decompressed blocks waiting between the reading and the visiting thread of a scan, at most.
pub const SCAN_BLOCKS_IN_FLIGHT_MAX: usize = 8;
/// Bytes decompressed past a wanted record's offset to hold it: records are ~100 bytes; a
/// longer one is read by decompressing its whole block.
const RECORD_READ_AHEAD_BYTES: usize = 4 * 1024;
/// Blocks `Log::read_deal` holds at once, at most (each at most `BLOCK_STORED_BYTES_MAX`
/// compressed): a typical deal's ~17 blocks are one part.
const READ_DEAL_BLOCKS_MAX: usize = 64;

/// A visitor of checked, still-compressed blocks: returns false to stop.
type RawBlockVisitor<'a> = dyn FnMut(&Header, &[u8]) -> Result<bool, LogError> + 'a;

/// Where the log ends: the last sequence number and the chain hash after it. Printed by
/// `audit digest`, kept elsewhere, and checked later by `audit verify --digest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub chain: Hash,
}

impl Head {
    pub const EMPTY: Head = Head { seq: 0, chain: ZERO_HASH };

    pub fn chain_hex(&self) -> String {
        self.chain.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn parse_chain_hex(text: &str) -> Option<Hash> {
        if text.len() != 64 {
            return None;
        }
        let mut hash = ZERO_HASH;
        for (i, byte) in hash.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(hash)
    }
}

pub struct Log<S> {
    store: S,
    head: Head,
    /// How the log stands against its high-water mark, found on open.
    mark: MarkState,
}

/// The log against the head its store last acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
enum MarkState {
    /// No mark (a new store, or one written before marks existed), or the log reaches it with
    /// the same chain. A log ahead of its mark is normal: the mark lags by at most one barrier.
    Sound,
    /// The log ends below the mark: acknowledged events are gone.
    Lost { ends_at: u64, acknowledged: u64 },
    /// The log reaches the mark's seq with another chain: not the store that acknowledged it.
    Mismatch { seq: u64 },
}

/// What `verify` found on a whole log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub head: Head,
    pub blocks: u64,
    pub events: u64,
}

impl<S: BlockStore> Log<S> {
    /// Opens the log, reading where it ends from its last block (checked), and how that end
    /// stands against the store's high-water mark. Opening a log that lost acknowledged events
    /// succeeds (it can still be read and audited); [`Log::check_mark`] says why it must not be
    /// written, and the [`crate::Ledger`] refuses it.
    pub fn open(store: S) -> Result<Log<S>, LogError> {
        let (head, mark) = read_state(&store)?;
        Ok(Log { store, head, mark })
    }

    /// A reader that sees the log up to `head` and nothing after it, whatever the store holds
    /// beyond: how the daemon's readers see only what its writer has made durable.
    pub fn at_head(store: S, head: Head) -> Log<S> {
        Log { store, head, mark: MarkState::Sound }
    }

    /// Ok when the log reaches its high-water mark with the mark's chain (or has no mark);
    /// otherwise the error naming what is missing. Nothing may be appended to a log that fails
    /// this: its next sequence numbers were already given to acknowledged events.
    pub fn check_mark(&self) -> Result<(), LogError> {
        match self.mark {
            MarkState::Sound => Ok(()),
            MarkState::Lost { ends_at, acknowledged } => {
                Err(LogError::LostTail { ends_at, acknowledged, mark: self.store.mark_location() })
            }
            MarkState::Mismatch { seq } => {
                Err(LogError::MarkMismatch { seq, mark: self.store.mark_location() })
            }
        }
    }

    /// Makes everything the store holds durable and records the head as its mark: after a
    /// write whose outcome was unknown, what the store shows is then what it keeps.
    pub fn sync(&self) -> Result<(), LogError> {
        self.store.append(&[], self.head)
    }

    /// Reads the head and the mark again from the store: after a write whose outcome was
    /// unknown, the store may hold more than this handle knew.
    pub fn reload(&mut self) -> Result<(), LogError> {
        (self.head, self.mark) = read_state(&self.store)?;
        Ok(())
    }

    /// The chain hash after `seq`, if `seq` ends a block (where checkpoints are taken).
    pub fn chain_after(&self, seq: u64) -> Result<Option<Hash>, LogError> {
        chain_after(&self.store, seq)
    }

    pub fn head(&self) -> Head {
        self.head
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn into_store(self) -> S {
        self.store
    }

    /// A writer of new blocks that continue this log.
    pub fn block_writer(&self) -> BlockWriter {
        BlockWriter::new(self.head)
    }

    /// A writer of new blocks that continue this log, with `spare`'s compression context and
    /// buffers (whatever it held is dropped).
    pub fn block_writer_reusing(&self, spare: BlockWriter) -> BlockWriter {
        spare.continue_at(self.head)
    }

    /// Stores what a [`BlockWriter`] sealed; durable when this returns.
    pub fn append(&mut self, sealed: Sealed) -> Result<(), LogError> {
        if sealed.blocks.is_empty() {
            return Ok(());
        }
        assert_eq!(
            sealed.blocks.first().map(|b| b.0),
            Some(self.head.seq + 1),
            "sealed blocks continue the log"
        );
        // Assert around the disk: each block's header is re-read from its bytes before writing.
        let mut expected_first = self.head.seq + 1;
        let mut prev_chain = self.head.chain;
        for (key, value) in &sealed.blocks {
            let header = block::header(*key, value).expect("a block we sealed reads back");
            assert_eq!(header.first_seq, expected_first);
            assert_eq!(header.prev_chain, prev_chain);
            expected_first = header.last_seq() + 1;
            prev_chain = header.chain;
        }
        assert_eq!(Head { seq: expected_first - 1, chain: prev_chain }, sealed.head);
        self.store.append(&sealed.blocks, sealed.head)?;
        self.head = sealed.head;
        Ok(())
    }

    /// Every block holding events at or after `from_seq`, decompressed and checked, to `visit`
    /// with its header and raw records, until `visit` returns false.
    pub fn scan_blocks(
        &self,
        from_seq: u64,
        mut visit: impl FnMut(&Header, &[u8]) -> Result<bool, LogError>,
    ) -> Result<(), LogError> {
        let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd context");
        let mut raw = Vec::with_capacity(block::BLOCK_RAW_BYTES_MAX);
        self.scan_raw(from_seq, &mut |header, value| {
            block::records(&mut decompressor, header, value, &mut raw)?;
            visit(header, &raw)
        })
    }

    /// One deal's events by the index the timeline keeps for it (`DealHistory::seqs` and
    /// `offsets`): `seqs` are all of the deal's events, ascending, so the i-th is its version
    /// i + 1, and `offsets` (empty, or one per seq) say where each record starts in its block.
    /// Each block holding one is fetched once, then decompressed and decoded on two threads when
    /// there are several (a deal's events lie in a dozen or more blocks of 256 KiB). Where an
    /// offset holds the deal's record of that version, only that record is decoded; otherwise
    /// (no offset, or a wrong one) the block is decoded up to it. Either way each event is
    /// checked to be the deal's, of its version: an index that disagrees with the log is an
    /// error naming the seq, never a wrong answer.
    pub fn read_deal(
        &self,
        deal: &str,
        seqs: &[u64],
        offsets: &[u32],
        mut visit: impl FnMut(StoredEvent) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        self.read_deal_in_blocks(deal, seqs, offsets, |event, _| visit(event))
    }

    /// [`Log::read_deal`], each event with the header of the block that holds it: its seqs and
    /// the chain hashes before and after it, an event's place in the hash chain (its audit
    /// proof, which `audit verify` checks for every block).
    pub fn read_deal_in_blocks(
        &self,
        deal: &str,
        seqs: &[u64],
        offsets: &[u32],
        mut visit: impl FnMut(StoredEvent, &Header) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let pairs = seqs.windows(2).filter_map(|w| match w {
            &[a, b] => Some((a, b)),
            _ => None,
        });
        if let Some((before, after)) = pairs.into_iter().find(|(a, b)| a >= b) {
            return Err(LogError::Corrupt {
                seq: after,
                why: format!("asked for after seq {before}: seqs must ascend"),
            });
        }
        let offsets = if offsets.len() == seqs.len() { offsets } else { &[] };
        let mut next = 0;
        while next < seqs.len() {
            next = self.read_deal_part(deal, seqs, offsets, next, &mut visit)?;
        }
        Ok(())
    }

    /// Reads the deal's events from `seqs[next]` on, in the next at most
    /// [`READ_DEAL_BLOCKS_MAX`] blocks (the compressed blocks held at once stay a few MiB
    /// however long the deal's history); returns where the next part starts.
    fn read_deal_part(
        &self,
        deal: &str,
        seqs: &[u64],
        offsets: &[u32],
        mut next: usize,
        visit: &mut impl FnMut(StoredEvent, &Header) -> Result<(), LogError>,
    ) -> Result<usize, LogError> {
        let mut blocks: Vec<(Header, Vec<u8>, std::ops::Range<usize>)> = Vec::new();
        while let Some(&wanted) = seqs.get(next).filter(|_| blocks.len() < READ_DEAL_BLOCKS_MAX) {
            if wanted == 0 || wanted > self.head.seq {
                return Err(LogError::Corrupt {
                    seq: wanted,
                    why: format!("not in the log (head {})", self.head.seq),
                });
            }
            let missing = || LogError::Corrupt { seq: wanted, why: "no block holds it".into() };
            let (key, value) = self.store.block_at_or_before(wanted)?.ok_or_else(missing)?;
            let header = block::header(key, &value)?;
            if header.last_seq() < wanted {
                return Err(missing());
            }
            let count = seqs.iter().skip(next).take_while(|&&s| s <= header.last_seq()).count();
            blocks.push((header, value, next..next + count));
            next += count;
        }
        let read = |blocks: &[(Header, Vec<u8>, std::ops::Range<usize>)]| {
            let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd context");
            let mut decoder = zstd::stream::raw::Decoder::new().expect("zstd context");
            let mut raw = Vec::with_capacity(block::BLOCK_RAW_BYTES_MAX);
            let mut out = Vec::new();
            for (header, value, range) in blocks {
                // By offsets only the records up to the last wanted one are needed: decompress
                // through it and a margin for its length, and the whole block if that fails.
                if let Some(&last) = offsets.get(range.clone()).and_then(|o| o.iter().max()) {
                    let want = (last as usize).saturating_add(RECORD_READ_AHEAD_BYTES);
                    block::records_prefix(&mut decoder, header, value, want, &mut raw)?;
                    if read_by_offsets(deal, header, &raw, seqs, offsets, range.clone(), &mut out) {
                        continue;
                    }
                }
                block::records(&mut decompressor, header, value, &mut raw)?;
                if !read_by_offsets(deal, header, &raw, seqs, offsets, range.clone(), &mut out) {
                    read_by_decoding(deal, header, &raw, seqs, range.clone(), &mut out)?;
                }
            }
            Ok::<_, LogError>(out)
        };
        let (first, second) = blocks.split_at(blocks.len() / 2);
        let (mut events, rest) = if first.is_empty() {
            (read(second)?, Vec::new())
        } else {
            std::thread::scope(|scope| -> Result<_, LogError> {
                let other = scope.spawn(|| read(second));
                let mine = read(first)?;
                let theirs =
                    other.join().map_err(|_| LogError::Store("decoding a block panicked".into()))??;
                Ok((mine, theirs))
            })?
        };
        events.extend(rest);
        // Each block gave exactly the events of its range, in order.
        let mut events = events.into_iter();
        for (header, _, range) in &blocks {
            for event in events.by_ref().take(range.len()) {
                visit(event, header)?;
            }
        }
        Ok(next)
    }

    /// Every event with seq >= `from_seq`, borrowed, in order, until `visit` returns false: the
    /// replay path. A second thread reads, checks and decompresses blocks while this one decodes
    /// and visits, with at most [`SCAN_BLOCKS_IN_FLIGHT_MAX`] blocks between them.
    pub fn scan_refs(
        &self,
        from_seq: u64,
        mut visit: impl FnMut(&EventRef<'_>) -> Result<bool, LogError>,
    ) -> Result<(), LogError> {
        let (full_tx, full_rx) =
            std::sync::mpsc::sync_channel::<(Header, Vec<u8>)>(SCAN_BLOCKS_IN_FLIGHT_MAX);
        let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || -> Result<(), LogError> {
                let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd context");
                self.scan_raw(from_seq, &mut |header, value| {
                    let mut raw = empty_rx.try_recv().unwrap_or_default();
                    block::records(&mut decompressor, header, value, &mut raw)?;
                    // A closed channel means the visitor stopped early.
                    Ok(full_tx.send((*header, raw)).is_ok())
                })
            });
            let mut go_on = true;
            let mut result = Ok(());
            for (header, raw) in full_rx.iter() {
                if go_on {
                    let decoded = block::decode_event_refs(&header, &raw, |event| {
                        if go_on && event.seq >= from_seq {
                            go_on = visit(event)?;
                        }
                        Ok(())
                    });
                    if let Err(e) = decoded {
                        result = Err(e);
                        go_on = false;
                    }
                }
                if !go_on {
                    break;
                }
                let _ = empty_tx.send(raw);
            }
            drop(full_rx);
            let read = reader.join().expect("the scan reader does not panic");
            result.and(read)
        })
    }

    /// Checked blocks (header and crc, contiguous keys) holding seq >= `from_seq`, still
    /// compressed, to `visit` until it returns false.
    fn scan_raw(&self, from_seq: u64, visit: &mut RawBlockVisitor<'_>) -> Result<(), LogError> {
        let start = match self.store.block_at_or_before(from_seq.max(1))? {
            Some((key, value)) => {
                let header = block::header(key, &value)?;
                if header.last_seq() >= from_seq {
                    key
                } else {
                    header.last_seq() + 1
                }
            }
            None => 1,
        };
        let mut expected = start;
        let head = self.head.seq;
        self.store.scan(start, &mut |key, value| {
            if key > head {
                // Beyond the head this handle opened at: another writer's newer blocks.
                return Ok(false);
            }
            let header = block::header(key, value)?;
            if key != expected {
                return Err(LogError::Corrupt {
                    seq: expected,
                    why: format!("missing: the next block starts at {key}"),
                });
            }
            expected = header.last_seq() + 1;
            visit(&header, value)
        })
    }

    /// Every event with seq >= `from_seq`, in order, until `visit` returns false.
    pub fn scan(
        &self,
        from_seq: u64,
        mut visit: impl FnMut(StoredEvent) -> Result<bool, LogError>,
    ) -> Result<(), LogError> {
        let mut go_on = true;
        self.scan_blocks(from_seq, |header, raw| {
            block::decode_events(header, raw, |stored| {
                if go_on && stored.seq >= from_seq {
                    go_on = visit(stored)?;
                }
                Ok(())
            })?;
            Ok(go_on)
        })
    }

    /// Reads one event.
    pub fn read(&self, seq: u64) -> Result<Option<StoredEvent>, LogError> {
        let mut found = None;
        if seq == 0 || seq > self.head.seq {
            return Ok(None);
        }
        self.scan(seq, |stored| {
            found = Some(stored);
            Ok(false)
        })?;
        Ok(found)
    }

    /// A failure of [`Log::verify`] with a storage engine error (its own checks failed while
    /// reading) made a verification failure that names where reading stops: the first seq whose
    /// block the store cannot hand back. Other errors are returned as they are.
    pub fn locate_failure(&self, error: LogError) -> LogError {
        let LogError::Store(why) = error else { return error };
        let mut next = 1;
        let _ = self.store.scan(1, &mut |key, value| match crate::block::header(key, value) {
            Ok(header) => {
                next = header.last_seq().saturating_add(1);
                Ok(true)
            }
            Err(_) => Ok(false),
        });
        LogError::Corrupt { seq: next, why: format!("the store cannot read it ({why})") }
    }

    /// Proves the log whole and unaltered: every block's checksum, contiguous numbering from 1,
    /// every record decodes, every deal version counts up from 1, and the chain recomputed from
    /// the bytes matches every block's stored chain. With `digest`, the chain at the digest's
    /// head must also match the one recorded then. `progress` is called with events checked.
    pub fn verify(&self, digest: Option<Head>, mut progress: impl FnMut(u64)) -> Result<Verified, LogError> {
        let mut chain = ZERO_HASH;
        let mut expected = 1u64;
        let mut blocks = 0u64;
        let mut digest_seen = digest.is_none_or(|d| d.seq == 0);
        if let Some(d) = digest {
            if d.seq == 0 && d.chain != ZERO_HASH {
                return Err(LogError::Corrupt {
                    seq: 0,
                    why: "digest of an empty log must have a zero chain".into(),
                });
            }
            if d.seq > self.head.seq {
                return Err(LogError::Corrupt {
                    seq: self.head.seq + 1,
                    why: format!("the digest names seq {} but the log ends at {}", d.seq, self.head.seq),
                });
            }
        }
        let mut versions: std::collections::HashMap<dealledger_events::DealId, u32> = Default::default();
        let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd context");
        let mut raw = Vec::new();
        let head = self.head.seq;
        self.store.scan(1, &mut |key, value| {
            if key > head {
                // Beyond the head this handle opened at: another writer's newer blocks.
                return Ok(false);
            }
            if key != expected {
                return Err(LogError::Corrupt { seq: expected, why: format!("missing: the next block starts at {key}") });
            }
            let header = block::header(key, value)?;
            if header.prev_chain != chain {
                return Err(LogError::Corrupt { seq: key, why: "chain link does not match the previous block".into() });
            }
            block::records(&mut decompressor, &header, value, &mut raw)?;
            let computed = block::chain_hash(&chain, header.first_seq, header.count, &raw);
            if computed != header.chain {
                return Err(LogError::Corrupt { seq: key, why: "chain hash does not match the block's events".into() });
            }
            block::decode_events(&header, &raw, |stored| {
                let version = versions.entry(stored.event.deal.clone()).or_insert(0);
                *version += 1;
                if stored.version != *version {
                    return Err(LogError::Corrupt {
                        seq: stored.seq,
                        why: format!("deal `{}` version {} where {} was due", stored.event.deal, stored.version, version),
                    });
                }
                Ok(())
            })?;
            chain = computed;
            expected = header.last_seq() + 1;
            blocks += 1;
            if let Some(d) = digest {
                if d.seq >= header.first_seq && d.seq <= header.last_seq() {
                    if d.seq != header.last_seq() {
                        return Err(LogError::Corrupt {
                            seq: d.seq,
                            why: "the digest's seq is not the end of a block; it was not printed by this log".into(),
                        });
                    }
                    if d.chain != chain {
                        return Err(LogError::Corrupt {
                            seq: header.first_seq,
                            why: "the chain at the digest's seq differs from the digest: events up to it were altered".into(),
                        });
                    }
                    digest_seen = true;
                }
            }
            progress(header.last_seq());
            Ok(true)
        })?;
        if expected != head + 1 {
            return Err(LogError::Corrupt {
                seq: expected,
                why: format!("the log ends at {} but its head says {head}", expected - 1),
            });
        }
        assert!(digest_seen, "a digest within the head was checked");
        self.check_mark()?;
        Ok(Verified { head: Head { seq: head, chain }, blocks, events: head })
    }
}

/// Where the log in `store` ends (from its last block, checked) and how that end stands against
/// the store's high-water mark.
fn read_state<S: BlockStore>(store: &S) -> Result<(Head, MarkState), LogError> {
    // The mark first: it is written after its blocks, so a mark read before the last block can
    // never be ahead of it, even while a writer of a shared store appends between the reads.
    let stored_mark = store.mark()?;
    let head = match store.last()? {
        None => Head::EMPTY,
        Some((key, value)) => {
            let header = block::header(key, &value)?;
            Head { seq: header.last_seq(), chain: header.chain }
        }
    };
    let mark = match stored_mark {
        None => MarkState::Sound,
        Some(mark) if mark.seq > head.seq => MarkState::Lost { ends_at: head.seq, acknowledged: mark.seq },
        Some(mark) => match chain_after(store, mark.seq)? {
            Some(chain) if chain == mark.chain => MarkState::Sound,
            _ => MarkState::Mismatch { seq: mark.seq },
        },
    };
    if mark != MarkState::Sound {
        tracing::error!(mark = %store.mark_location(), ?mark, head = head.seq, "the log does not match its high-water mark");
    }
    Ok((head, mark))
}

/// The chain hash after `seq`, if `seq` ends a block of `store` (marks and checkpoints are
/// always taken at a head, so at the end of a block).
pub(crate) fn chain_after<S: BlockStore + ?Sized>(store: &S, seq: u64) -> Result<Option<Hash>, LogError> {
    if seq == 0 {
        return Ok(Some(ZERO_HASH));
    }
    match store.block_at_or_before(seq)? {
        Some((key, value)) => {
            let header = block::header(key, &value)?;
            Ok((header.last_seq() == seq).then_some(header.chain))
        }
        None => Ok(None),
    }
}

/// What a [`BlockWriter`] produced: blocks to store and the head after them.
pub struct Sealed {
    pub blocks: Vec<(u64, Vec<u8>)>,
    pub head: Head,
}

/// Encodes events into sealed blocks that continue a head. Pure computation: nothing is stored
/// until [`Log::append`].
pub struct BlockWriter {
    /// Made at the first seal: a writer that seals nothing costs no zstd context.
    compressor: Option<zstd::bulk::Compressor<'static>>,
    raw: Vec<u8>,
    /// Where each record of `raw` ends: a block too big once compressed is split between two.
    record_ends: Vec<usize>,
    first_seq: u64,
    count: u32,
    head: Head,
    sealed: Vec<(u64, Vec<u8>)>,
}

impl BlockWriter {
    /// Allocates nothing until events are pushed.
    pub(crate) fn new(head: Head) -> BlockWriter {
        BlockWriter {
            compressor: None,
            raw: Vec::new(),
            record_ends: Vec::new(),
            first_seq: head.seq + 1,
            count: 0,
            head,
            sealed: Vec::new(),
        }
    }

    /// This writer, emptied, continuing `head`: its context and buffers' capacity are kept.
    fn continue_at(mut self, head: Head) -> BlockWriter {
        self.raw.clear();
        self.record_ends.clear();
        self.sealed.clear();
        self.first_seq = head.seq + 1;
        self.count = 0;
        self.head = head;
        self
    }

    /// The seq the next pushed event gets.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count)
    }

    /// Adds the next event (numbered `next_seq()`).
    pub fn push(&mut self, version: u32, event: &Event) {
        assert!(event.recorded_at.is_some(), "recorded_at is resolved before storing");
        if self.raw.capacity() == 0 {
            self.raw.reserve(BLOCK_RAW_BYTES_TARGET + 4096);
            self.record_ends.reserve(8192);
        }
        encode_record(version, event, &mut self.raw);
        self.record_ends.push(self.raw.len());
        self.count += 1;
        if self.raw.len() >= BLOCK_RAW_BYTES_TARGET {
            self.seal();
        }
    }

    fn seal(&mut self) {
        if self.count == 0 {
            return;
        }
        let records = std::mem::take(&mut self.record_ends);
        self.seal_records(&records, 0);
        self.record_ends = records;
        self.record_ends.clear();
        self.first_seq = self.head.seq + 1;
        self.count = 0;
        self.raw.clear();
    }

    /// Seals the records whose ends are `ends` (the first starting at byte `start` of `raw`)
    /// as one block, or as two halves if it compresses to more than [`BLOCK_STORED_BYTES_MAX`].
    fn seal_records(&mut self, ends: &[usize], start: usize) {
        let end = *ends.last().expect("at least one record");
        let count = u32::try_from(ends.len()).expect("a block holds fewer than 2^32 events");
        let first_seq = self.head.seq + 1;
        let compressor = self
            .compressor
            .get_or_insert_with(|| zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd context"));
        let (value, chain) = block::seal(
            compressor,
            first_seq,
            count,
            &self.head.chain,
            self.raw.get(start..end).expect("records lie in raw"),
        );
        if value.len() > BLOCK_STORED_BYTES_MAX && ends.len() > 1 {
            let (left, right) = ends.split_at(ends.len() / 2);
            let middle = *left.last().expect("a non-empty half");
            self.seal_records(left, start);
            self.seal_records(right, middle);
            return;
        }
        self.sealed.push((first_seq, value));
        self.head = Head { seq: first_seq + u64::from(count) - 1, chain };
    }

    /// Seals what is pending and hands over every sealed block; the writer goes on from the
    /// head after them.
    pub fn finish(&mut self) -> Sealed {
        self.seal();
        Sealed { blocks: std::mem::take(&mut self.sealed), head: self.head }
    }
}

/// The i-th of a deal's events is its version i + 1.
fn version_of(i: usize) -> u32 {
    u32::try_from(i.saturating_add(1)).unwrap_or(u32::MAX)
}

/// The deal's events `seqs[range]`, all in this block (its records, or their first bytes, in
/// `raw`), onto `out` by their offsets: all of them if each offset holds the deal's record of
/// the right version (true), else none.
fn read_by_offsets(
    deal: &str,
    header: &Header,
    raw: &[u8],
    seqs: &[u64],
    offsets: &[u32],
    range: std::ops::Range<usize>,
    out: &mut Vec<StoredEvent>,
) -> bool {
    let start = out.len();
    for i in range.clone() {
        let Some(&offset) = offsets.get(i) else { break };
        let Some(&seq) = seqs.get(i) else { break };
        match block::decode_at(header, raw, seq, offset as usize) {
            Ok((event, _)) if event.deal == deal && event.version == version_of(i) => {
                out.push(event.to_stored())
            }
            _ => break,
        }
    }
    if out.len() - start == range.len() {
        return true;
    }
    out.truncate(start);
    false
}

/// The deal's events `seqs[range]`, all in this block (its records in `raw`), onto `out` by
/// decoding the block up to the last of them, each checked to be the deal's of its version.
fn read_by_decoding(
    deal: &str,
    header: &Header,
    raw: &[u8],
    seqs: &[u64],
    range: std::ops::Range<usize>,
    out: &mut Vec<StoredEvent>,
) -> Result<(), LogError> {
    let version = version_of;
    let wanted = seqs.get(range.clone()).unwrap_or_default();
    let Some(&through) = wanted.last() else { return Ok(()) };
    let mut found = 0;
    block::decode_event_refs_through(header, raw, through, |event| {
        if wanted.get(found) == Some(&event.seq) {
            let i = range.start + found;
            if event.deal != deal || event.version != version(i) {
                return Err(LogError::Corrupt {
                    seq: event.seq,
                    why: format!(
                        "the index says deal `{deal}`'s version {}; the log holds deal `{}`'s version {}",
                        version(i),
                        event.deal,
                        event.version
                    ),
                });
            }
            out.push(event.to_stored());
            found += 1;
        }
        Ok(())
    })?;
    if found != wanted.len() {
        return Err(LogError::Corrupt {
            seq: wanted.get(found).copied().unwrap_or(through),
            why: "not in the block that holds its seq".into(),
        });
    }
    Ok(())
}

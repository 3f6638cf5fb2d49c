//! The deal index: where each deal's events lie in the log (their seqs, and their records'
//! offsets in their blocks), saved beside the timeline's checkpoint so that `audit deal` reads
//! one deal without decoding the checkpoint (about 1 s at 10 M events) or scanning the log.
//!
//! It is derived data, like a checkpoint: taken at a head (seq and chain hash), used only while
//! the log still has that chain at that seq, and never trusted for an answer (`Log::read_deal`
//! checks every event it reads against it). A reader reads the header, the bucket table and one
//! bucket of about [`DEALS_PER_BUCKET_TARGET`] deals, never the whole value.
//!
//! Layout (integers little endian):
//!
//! ```text
//!  0  [u8; 8]  magic "DLDEALS2" (a layout change is a new magic: an old index is then unusable)
//!  8  u64      through: the head seq it was taken at
//! 16  [u8;32]  the chain hash after `through`
//! 48  u32      buckets B: a power of two, at most BUCKETS_MAX
//! 52  u32      crc32c of the table
//! 56  u64      deals: how many deals the timeline held at `through` (`stats` reads only this)
//! 64  u32      crc32c of bytes 0..64
//! 68  u32      zero
//! 72  B x 16   the table: per bucket its offset (u64), length (u32) and crc32c (u32)
//! ..  buckets: each the codec's encoding of its deals (id, seq deltas, offsets), in id order
//! ```
//!
//! A deal's bucket is FNV-1a of its id modulo B: stable across versions and platforms.

use crate::timeline::{contact_key, Timeline};
use dealledger_events::codec::{decode_value, encode_value};
use dealledger_events::StoredEvent;
use dealledger_log::{BlockStore, Head, Log, LogError};

/// The index's name among the store's metadata values.
pub const KEY: &str = "checkpoint/timeline.deals";
const MAGIC: [u8; 8] = *b"DLDEALS2";
const HEADER_BYTES: usize = 72;
/// The header's bytes its crc covers.
const HEADER_CRC_AT: usize = 64;
const SLOT_BYTES: usize = 16;
/// Deals per bucket the index aims at: a lookup reads one bucket (a few KiB).
pub const DEALS_PER_BUCKET_TARGET: usize = 32;
/// Buckets at most: the table a lookup reads stays at 1 MiB or less.
pub const BUCKETS_MAX: usize = 1 << 16;

#[derive(serde::Serialize)]
struct EntryRef<'a> {
    deal: &'a str,
    /// The first seq, then each seq's distance from the one before: small numbers, short varints.
    seq_deltas: Vec<u64>,
    offsets: &'a [u32],
}

/// The same encoding as [`EntryRef`], owned.
#[derive(serde::Deserialize)]
struct Entry {
    deal: String,
    seq_deltas: Vec<u64>,
    offsets: Vec<u32>,
}

fn bucket_of(deal: &str, buckets: usize) -> usize {
    // buckets is a power of two: the mask is the modulo.
    (contact_key(deal) as usize) & (buckets - 1)
}

/// The index of `timeline`, which has folded exactly the events up to `head`.
pub fn encode(timeline: &Timeline, head: &Head) -> Vec<u8> {
    let deals = timeline.deals();
    let buckets = (deals.len() / DEALS_PER_BUCKET_TARGET).next_power_of_two().clamp(1, BUCKETS_MAX);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); buckets];
    for (i, deal) in deals.iter().enumerate() {
        // bucket_of masks with buckets - 1: always below buckets.
        if let Some(bucket) = members.get_mut(bucket_of(deal.id, buckets)) {
            bucket.push(i);
        }
    }
    let mut table = Vec::with_capacity(buckets * SLOT_BYTES);
    let mut body = Vec::new();
    let body_at = (HEADER_BYTES + buckets * SLOT_BYTES) as u64;
    for mut member in members {
        member.sort_by_key(|&i| deals.get(i).map(|d| d.id));
        let entries: Vec<EntryRef<'_>> = member
            .iter()
            .map(|&i| {
                let deal = deals.get(i).expect("a member is a deal's index");
                let mut previous = 0;
                let seq_deltas = deal
                    .seqs()
                    .iter()
                    .map(|&seq| {
                        // Seqs ascend (the timeline checks it on load and on fold).
                        let delta = seq - previous;
                        previous = seq;
                        delta
                    })
                    .collect();
                EntryRef { deal: deal.id, seq_deltas, offsets: deal.offsets() }
            })
            .collect();
        let bytes = encode_value(&entries);
        table.extend_from_slice(&(body_at + body.len() as u64).to_le_bytes());
        table.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        table.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
        body.extend(bytes);
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + table.len() + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&head.seq.to_le_bytes());
    out.extend_from_slice(&head.chain);
    out.extend_from_slice(&(buckets as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&table).to_le_bytes());
    out.extend_from_slice(&(deals.len() as u64).to_le_bytes());
    let header_crc = crc32c::crc32c(&out);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    debug_assert_eq!(out.len(), HEADER_BYTES);
    out.extend(table);
    out.extend(body);
    out
}

/// What the index says of one deal.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The deal's events with seq <= `through` (none if it had none then); those after are not
    /// in the index.
    Found { through: u64, seqs: Vec<u64>, offsets: Vec<u32> },
    /// No index to use (none saved, another layout, damaged, or taken on another log): why.
    Unusable(String),
}

/// The little-endian u32 at `at`; 0 past the end (callers check the length first: a short
/// read is refused before any field is read).
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes.get(at..at.saturating_add(4)).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes)
}

/// The little-endian u64 at `at`; 0 past the end (as [`u32_at`]).
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at.saturating_add(8)).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// A saved index's header, checked: its crc, its layout and that the log has its chain.
struct Header {
    through: u64,
    buckets: usize,
    table_crc: u32,
    deals: u64,
}

/// The saved index's header, or why there is no usable one.
fn header<S: BlockStore>(log: &Log<S>) -> Result<Result<Header, &'static str>, LogError> {
    let Some(header) = log.store().get_meta_range(KEY, 0, HEADER_BYTES)? else {
        return Ok(Err("no deal index saved"));
    };
    if header.len() < HEADER_BYTES || header.get(..8) != Some(&MAGIC[..]) {
        return Ok(Err("a deal index of another layout, or shorter than its header"));
    }
    if crc32c::crc32c(header.get(..HEADER_CRC_AT).unwrap_or_default()) != u32_at(&header, HEADER_CRC_AT) {
        return Ok(Err("a deal index whose header is damaged"));
    }
    let through = u64_at(&header, 8);
    let Some(chain) = header.get(16..48).and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
        return Ok(Err("a deal index shorter than its header"));
    };
    let buckets = u32_at(&header, 48) as usize;
    if !buckets.is_power_of_two() || buckets > BUCKETS_MAX {
        return Ok(Err("a deal index with an impossible bucket count"));
    }
    if through > log.head().seq || log.chain_after(through)? != Some(chain) {
        return Ok(Err("a deal index taken on another log, or ahead of this one"));
    }
    Ok(Ok(Header { through, buckets, table_crc: u32_at(&header, 52), deals: u64_at(&header, 56) }))
}

/// How many deals the log holds, from the saved index's header and the `opened` events after it
/// (a scan of the log's tail only); None without a usable index. What `stats` asks, without
/// loading the timeline.
pub fn deal_count<S: BlockStore>(log: &Log<S>) -> Result<Option<u64>, LogError> {
    let Ok(header) = header(log)? else { return Ok(None) };
    let mut deals = header.deals;
    if header.through < log.head().seq {
        log.scan_refs(header.through + 1, |event| {
            if matches!(event.body, dealledger_events::BodyRef::Opened { .. }) {
                deals += 1;
            }
            Ok(true)
        })?;
    }
    Ok(Some(deals))
}

/// Looks `deal` up in the saved index, reading its header, table and one bucket.
pub fn lookup<S: BlockStore>(log: &Log<S>, deal: &str) -> Result<Lookup, LogError> {
    let unusable = |why: &str| Ok(Lookup::Unusable(why.to_string()));
    let store = log.store();
    let Header { through, buckets, table_crc, .. } = match header(log)? {
        Ok(header) => header,
        Err(why) => return unusable(why),
    };
    let table = store.get_meta_range(KEY, HEADER_BYTES as u64, buckets * SLOT_BYTES)?.unwrap_or_default();
    if table.len() != buckets * SLOT_BYTES || crc32c::crc32c(&table) != table_crc {
        return unusable("a deal index whose table is damaged");
    }
    let slot = bucket_of(deal, buckets) * SLOT_BYTES;
    let (at, len, crc) = (u64_at(&table, slot), u32_at(&table, slot + 8) as usize, u32_at(&table, slot + 12));
    let bytes = store.get_meta_range(KEY, at, len)?.unwrap_or_default();
    if bytes.len() != len || crc32c::crc32c(&bytes) != crc {
        return unusable("a deal index whose bucket is damaged");
    }
    let Ok(entries) = decode_value::<Vec<Entry>>(&bytes) else {
        return unusable("a deal index whose bucket does not decode");
    };
    let Some(entry) = entries.into_iter().find(|e| e.deal == deal) else {
        return Ok(Lookup::Found { through, seqs: Vec::new(), offsets: Vec::new() });
    };
    let mut seqs = Vec::with_capacity(entry.seq_deltas.len());
    let mut seq: u64 = 0;
    for delta in entry.seq_deltas {
        match seq.checked_add(delta) {
            Some(next) if delta > 0 && next <= through => seq = next,
            _ => return unusable("a deal index with seqs that do not ascend within the log"),
        }
        seqs.push(seq);
    }
    if entry.offsets.len() != seqs.len() {
        return unusable("a deal index with offsets that do not match its seqs");
    }
    Ok(Lookup::Found { through, seqs, offsets: entry.offsets })
}
/// Every event of one deal, in seq order: by the deal index saved with the timeline's
/// checkpoint and a scan of the events after it, or, without a usable index, by a scan of the
/// whole log.
pub fn events<S: BlockStore>(log: &Log<S>, id: &str) -> Result<Vec<StoredEvent>, LogError> {
    match lookup(log, id)? {
        Lookup::Found { through, mut seqs, mut offsets } => {
            if through < log.head().seq {
                log.scan_refs(through + 1, |event| {
                    if event.deal == id {
                        seqs.push(event.seq);
                        offsets.push(event.offset);
                    }
                    Ok(true)
                })?;
            }
            let mut events = Vec::with_capacity(seqs.len());
            match log.read_deal(id, &seqs, &offsets, |stored| {
                events.push(stored);
                Ok(())
            }) {
                Ok(()) => return Ok(events),
                // The scan below names the seq if the log itself is at fault.
                Err(e) => {
                    tracing::warn!(error = %e, "the deal index disagrees with the log; scanning the log")
                }
            }
        }
        Lookup::Unusable(why) => tracing::info!(why, "no usable deal index; scanning the log"),
    }
    let mut events = Vec::new();
    log.scan(1, |stored| {
        if stored.event.deal.as_str() == id {
            events.push(stored);
        }
        Ok(true)
    })?;
    Ok(events)
}

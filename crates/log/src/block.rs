//! One block: a run of consecutive events, compressed, checksummed and chained.
//!
//! Why blocks: sled pays ~330 bytes and ~11 µs per key, so one key per event would give ~456
//! bytes and ~89,000 inserts/s per event; values of tens of KiB amortise that to nothing, and
//! zstd over a block of similar records is what brings an event down to a few dozen bytes.
//!
//! Layout (all integers little endian):
//!
//! ```text
//!  0  u8      record format version (dealledger_events::codec::FORMAT_VERSION)
//!  1  u8      compression: 1 = zstd
//!  2  u64     first_seq
//! 10  u32     count (events)
//! 14  u32     raw_len (bytes of the uncompressed records)
//! 18  [u8;32] prev_chain: the chain hash after the previous block (zeros before the first)
//! 50  [u8;32] chain = blake3(prev_chain | first_seq | count | raw records)
//! 82  ...     zstd(records)
//! -4  u32     crc32c of every byte before it
//! ```
//!
//! The chain covers every byte of every event in order, so changing, dropping or reordering any
//! event changes every chain hash after it; the crc catches torn or flipped bytes on read without
//! the cost of a cryptographic hash.

use crate::error::LogError;
use dealledger_events::codec::{decode_record, decode_record_ref, FORMAT_VERSION};
use dealledger_events::EventRef;
use dealledger_events::StoredEvent;

pub const HEADER_BYTES: usize = 82;
pub const TRAILER_BYTES: usize = 4;
pub const COMPRESSION_ZSTD: u8 = 1;
/// A block is sealed once its uncompressed records reach this size (about 4,000 events,
/// ~70 KiB compressed). Measured on 1 M events: 96 KiB, 256 KiB and 1 MiB blocks all cost ~3x
/// their compressed size on disk in sled 0.34 (it keeps leaf versions until its space
/// amplification passes 5x); 256 KiB ingested fastest and keeps a random read to one small block.
pub const BLOCK_RAW_BYTES_TARGET: usize = 256 * 1024;
/// Upper bound on a block's uncompressed size: the target plus one maximal record.
pub const BLOCK_RAW_BYTES_MAX: usize = BLOCK_RAW_BYTES_TARGET + 128 * 1024;
/// Upper bound on a stored block holding more than one event: a block that compresses to more is
/// split in two. sled keeps a page inline in its `db` file only up to segment_size / 4 (2 MiB
/// with our 8 MiB segments) and writes bigger ones to blob files; a leaf holds at most 17
/// blocks, so 17 x 96 KiB (1.6 MiB) keeps every leaf inline. Typical blocks are ~70 KiB.
pub const BLOCK_STORED_BYTES_MAX: usize = 96 * 1024;
/// zstd level: 3 is zstd's default and measured best for size per CPU here (see README).
pub const ZSTD_LEVEL: i32 = 3;

pub type Hash = [u8; 32];
pub const ZERO_HASH: Hash = [0; 32];

/// The chain hash after a block.
pub fn chain_hash(prev_chain: &Hash, first_seq: u64, count: u32, raw: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev_chain);
    hasher.update(&first_seq.to_le_bytes());
    hasher.update(&count.to_le_bytes());
    hasher.update(raw);
    *hasher.finalize().as_bytes()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub format_version: u8,
    pub compression: u8,
    pub first_seq: u64,
    pub count: u32,
    pub raw_len: u32,
    pub prev_chain: Hash,
    pub chain: Hash,
}

impl Header {
    pub fn last_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count) - 1
    }
}

/// Seals raw records into a stored block value. Returns (value, chain hash after it).
pub fn seal(
    compressor: &mut zstd::bulk::Compressor<'_>,
    first_seq: u64,
    count: u32,
    prev_chain: &Hash,
    raw: &[u8],
) -> (Vec<u8>, Hash) {
    assert!(count > 0 && first_seq > 0, "a block holds at least one event, numbered from 1");
    assert!(raw.len() <= BLOCK_RAW_BYTES_MAX, "block of {} raw bytes", raw.len());
    let chain = chain_hash(prev_chain, first_seq, count, raw);
    let compressed = compressor.compress(raw).expect("zstd compresses any input into a Vec");
    let mut value = Vec::with_capacity(HEADER_BYTES + compressed.len() + TRAILER_BYTES);
    value.push(FORMAT_VERSION);
    value.push(COMPRESSION_ZSTD);
    value.extend_from_slice(&first_seq.to_le_bytes());
    value.extend_from_slice(&count.to_le_bytes());
    value.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    value.extend_from_slice(prev_chain);
    value.extend_from_slice(&chain);
    value.extend_from_slice(&compressed);
    let crc = crc32c::crc32c(&value);
    value.extend_from_slice(&crc.to_le_bytes());
    (value, chain)
}

/// The fields of a header's bytes, unchecked: little-endian at fixed places.
fn parse_header(head: &[u8; HEADER_BYTES]) -> Header {
    let (&[format_version, compression], rest) = head.split_first_chunk::<2>().expect("82 > 2");
    let (first_seq, rest) = rest.split_first_chunk::<8>().expect("80 > 8");
    let (count, rest) = rest.split_first_chunk::<4>().expect("72 > 4");
    let (raw_len, rest) = rest.split_first_chunk::<4>().expect("68 > 4");
    let (prev_chain, rest) = rest.split_first_chunk::<32>().expect("64 > 32");
    let chain = rest.first_chunk::<32>().expect("32 = 32");
    Header {
        format_version,
        compression,
        first_seq: u64::from_le_bytes(*first_seq),
        count: u32::from_le_bytes(*count),
        raw_len: u32::from_le_bytes(*raw_len),
        prev_chain: *prev_chain,
        chain: *chain,
    }
}

/// A block's compressed records: between its header and its checksum.
fn payload<'v>(header: &Header, value: &'v [u8]) -> Result<&'v [u8], LogError> {
    value.get(HEADER_BYTES..value.len().saturating_sub(TRAILER_BYTES)).ok_or_else(|| LogError::Corrupt {
        seq: header.first_seq,
        why: format!("block of {} bytes is shorter than its header", value.len()),
    })
}

/// Reads and checks a block's header and checksum, and that it sits under the right key.
/// Corruption here is an error naming the block, never a silent skip.
pub fn header(key_seq: u64, value: &[u8]) -> Result<Header, LogError> {
    let corrupt = |why: String| LogError::Corrupt { seq: key_seq, why };
    if value.len() < HEADER_BYTES + TRAILER_BYTES {
        return Err(corrupt(format!("block of {} bytes is shorter than its header", value.len())));
    }
    let (body, trailer) = value.split_at(value.len() - TRAILER_BYTES);
    let stored_crc = u32::from_le_bytes(trailer.try_into().expect("4 bytes"));
    let crc = crc32c::crc32c(body);
    if crc != stored_crc {
        return Err(corrupt(format!("checksum mismatch (stored {stored_crc:08x}, computed {crc:08x})")));
    }
    let Some(head) = value.first_chunk::<HEADER_BYTES>() else {
        return Err(corrupt(format!("block of {} bytes is shorter than its header", value.len())));
    };
    let header = parse_header(head);
    if header.first_seq != key_seq {
        return Err(corrupt(format!(
            "block stored under seq {key_seq} says it starts at {}",
            header.first_seq
        )));
    }
    if header.compression != COMPRESSION_ZSTD {
        return Err(corrupt(format!("unknown compression {}", header.compression)));
    }
    if header.count == 0 || header.raw_len as usize > BLOCK_RAW_BYTES_MAX {
        return Err(corrupt(format!(
            "implausible block: {} events, {} raw bytes",
            header.count, header.raw_len
        )));
    }
    Ok(header)
}

/// Decompresses a checked block's records into `raw` (cleared first).
pub fn records(
    decompressor: &mut zstd::bulk::Decompressor<'_>,
    header: &Header,
    value: &[u8],
    raw: &mut Vec<u8>,
) -> Result<(), LogError> {
    let payload = payload(header, value)?;
    raw.clear();
    raw.reserve(header.raw_len as usize);
    decompressor
        .decompress_to_buffer(payload, raw)
        .map_err(|e| LogError::Corrupt { seq: header.first_seq, why: format!("does not decompress: {e}") })?;
    if raw.len() != header.raw_len as usize {
        return Err(LogError::Corrupt {
            seq: header.first_seq,
            why: format!("decompressed to {} bytes, header says {}", raw.len(), header.raw_len),
        });
    }
    Ok(())
}

/// Decompresses a checked block's records into `raw` (cleared first) only until it holds
/// `want_bytes` (or all of them, if fewer): a reader that wants records near a block's start
/// stops there. The decoder is reset first, so one serves any number of blocks.
pub fn records_prefix(
    decoder: &mut zstd::stream::raw::Decoder<'_>,
    header: &Header,
    value: &[u8],
    want_bytes: usize,
    raw: &mut Vec<u8>,
) -> Result<(), LogError> {
    use zstd::stream::raw::Operation;
    let corrupt = |e: std::io::Error| LogError::Corrupt {
        seq: header.first_seq,
        why: format!("does not decompress: {e}"),
    };
    let payload = payload(header, value)?;
    let len = want_bytes.min(header.raw_len as usize);
    raw.clear();
    raw.resize(len, 0);
    decoder.reinit().map_err(corrupt)?;
    let (mut read, mut written) = (0, 0);
    while written < len {
        let (Some(input), Some(output)) = (payload.get(read..), raw.get_mut(written..)) else { break };
        let status = decoder.run_on_buffers(input, output).map_err(corrupt)?;
        read += status.bytes_read;
        written += status.bytes_written;
        if status.bytes_read == 0 && status.bytes_written == 0 {
            break;
        }
    }
    if written != len {
        return Err(LogError::Corrupt {
            seq: header.first_seq,
            why: format!("decompressed to {written} bytes, wanted {len} of {}", header.raw_len),
        });
    }
    Ok(())
}

/// Decodes a block's records borrowed from `raw` up to and including `last_seq`, calling `visit`
/// for each in order: a reader that wants a few events of a block stops at its last one.
pub fn decode_event_refs_through<'a>(
    header: &Header,
    raw: &'a [u8],
    last_seq: u64,
    mut visit: impl FnMut(&EventRef<'a>) -> Result<(), LogError>,
) -> Result<(), LogError> {
    if last_seq >= header.last_seq() {
        return decode_event_refs(header, raw, visit);
    }
    let mut offset = 0;
    let mut seq = header.first_seq;
    while seq <= last_seq {
        let (event, used) = decode_at(header, raw, seq, offset)?;
        offset += used;
        visit(&event)?;
        seq += 1;
    }
    Ok(())
}

/// Decodes the record that starts `offset` bytes into `raw` as event `seq`, with its offset.
pub fn decode_at<'a>(
    header: &Header,
    raw: &'a [u8],
    seq: u64,
    offset: usize,
) -> Result<(EventRef<'a>, usize), LogError> {
    let corrupt = |why: String| LogError::Corrupt { seq, why };
    let bytes = raw.get(offset..).ok_or_else(|| corrupt(format!("offset {offset} is past the block")))?;
    let (mut event, used) =
        decode_record_ref(header.format_version, seq, bytes).map_err(|e| corrupt(e.to_string()))?;
    event.offset = u32::try_from(offset).map_err(|_| corrupt(format!("offset {offset} over 4 GiB")))?;
    Ok((event, used))
}

/// Decodes every record of a block borrowed from `raw`, calling `visit` for each in order.
pub fn decode_event_refs<'a>(
    header: &Header,
    raw: &'a [u8],
    mut visit: impl FnMut(&EventRef<'a>) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut offset = 0;
    for i in 0..header.count {
        let seq = header.first_seq + u64::from(i);
        let (event, used) = decode_at(header, raw, seq, offset)?;
        offset += used;
        visit(&event)?;
    }
    if offset != raw.len() {
        return Err(LogError::Corrupt {
            seq: header.first_seq,
            why: format!("{} bytes left over after {} records", raw.len() - offset, header.count),
        });
    }
    Ok(())
}

/// Decodes every record of a block, calling `visit` for each in order.
pub fn decode_events(
    header: &Header,
    raw: &[u8],
    mut visit: impl FnMut(StoredEvent) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut offset = 0;
    for i in 0..header.count {
        let seq = header.first_seq + u64::from(i);
        let rest = raw.get(offset..).unwrap_or_default();
        let (version, event, used) = decode_record(header.format_version, rest)
            .map_err(|e| LogError::Corrupt { seq, why: e.to_string() })?;
        offset += used;
        visit(StoredEvent { seq, version, event })?;
    }
    if offset != raw.len() {
        return Err(LogError::Corrupt {
            seq: header.first_seq,
            why: format!("{} bytes left over after {} records", raw.len() - offset, header.count),
        });
    }
    Ok(())
}

/// Finds intact blocks in raw bytes that are not read through the store: the files of a store
/// the engine refuses to open. A candidate is a header followed by a zstd frame whose checksum
/// holds; anything else is skipped. Used to name the first bad seq (and to salvage events) when
/// the storage engine's own recovery fails.
pub fn find_intact(bytes: &[u8]) -> Vec<(Header, std::ops::Range<usize>)> {
    const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    let mut found = Vec::new();
    let mut at = 0;
    while at + HEADER_BYTES + TRAILER_BYTES <= bytes.len() {
        let rest = bytes.get(at..).unwrap_or_default();
        let (Some(head), Some(after_head)) = (rest.first_chunk::<HEADER_BYTES>(), rest.get(HEADER_BYTES..))
        else {
            break;
        };
        let candidate = dealledger_events::codec::is_known_version(head[0])
            && head[1] == COMPRESSION_ZSTD
            && after_head.starts_with(&ZSTD_MAGIC);
        if candidate {
            if let Ok(frame) = zstd::zstd_safe::find_frame_compressed_size(after_head) {
                let end = at + HEADER_BYTES + frame + TRAILER_BYTES;
                if let Some(value) = bytes.get(at..end) {
                    if let Ok(header) = header(parse_header(head).first_seq, value) {
                        found.push((header, at..end));
                        at = end;
                        continue;
                    }
                }
            }
        }
        at += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_intact_blocks_in_noise() {
        let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).unwrap();
        let raw: Vec<u8> = (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let (one, _) = seal(&mut compressor, 1, 10, &ZERO_HASH, &raw);
        let (two, _) = seal(&mut compressor, 11, 5, &ZERO_HASH, &raw[..999]);
        let mut bytes = vec![0x01u8; 100];
        bytes.extend(&one);
        bytes.extend([7u8; 33]);
        let at_two = bytes.len();
        bytes.extend(&two);
        bytes.extend([1u8; 10]);
        let found = find_intact(&bytes);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0.first_seq, 1);
        assert_eq!(found[1].1, at_two..at_two + two.len());
        bytes[at_two + 120] ^= 1;
        assert_eq!(find_intact(&bytes).len(), 1);
    }
}

//! The on-disk encoding of one event record. The only module that knows bincode.
//!
//! bincode 2.0.1 is pinned: 3.0.0 is a compile_error-only release and the crate is unmaintained
//! (RUSTSEC-2025-0141). Everything that touches bytes goes through `encode_record` and
//! `decode_record`, and every stored block carries [`FORMAT_VERSION`], so moving to a successor
//! codec is a change to this file plus a new version number, with the golden files proving
//! that old blocks still read.

use crate::event::Event;
use crate::event_ref::{BodyRef, EventRef};
use crate::time::{Timestamp, MICROS_PER_SECOND};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The record format written today, and the oldest one still read.
///
/// - Version 3: version 2's fields, then `appended_by` (the name of the daemon's token that
///   appended it, or none). Version 2 reads through [`upcast_v2`].
/// - Version 2: version 1's fields, then `appended_after_recorded` (the ledger's clock at append,
///   as its distance from `recorded_at`: zero when the source gave no `recorded_at`).
/// - Version 1: bincode 2 `standard()` (little endian, varint integers) of [`RecordV1`]'s fields
///   in order; the sequence number is implicit in the block. Read through [`upcast_v1`].
///
/// A format change is a new version here: a struct for its records, an upcaster from the one
/// before, golden files for both (tests/golden.rs), and a store of the old format that a test
/// opens (tests/e2e/migration.rs). Blocks say their version, so old and new blocks mix in a log.
pub const FORMAT_VERSION: u8 = 3;
pub const FORMAT_VERSION_OLDEST: u8 = 1;

/// Whether blocks of this record format can be read.
pub fn is_known_version(format_version: u8) -> bool {
    (FORMAT_VERSION_OLDEST..=FORMAT_VERSION).contains(&format_version)
}

/// One record as written (version 3). Instants are split into whole seconds and the
/// microseconds past them: CRM times are whole seconds or milliseconds, so the second part is one
/// byte and the seconds share their high bytes from record to record (a single microsecond varint
/// takes 9 bytes and compresses worse). `recorded_at` is stored as its distance from `at`, usually
/// seconds, and `appended_at` as its distance from `recorded_at`, usually zero.
#[derive(Serialize)]
struct RecordRef<'a> {
    version: u32,
    deal: &'a str,
    at_seconds: i64,
    at_micros: u32,
    recorded_after_at: Option<(i64, u32)>,
    actor: Option<&'a str>,
    source_id: Option<&'a str>,
    body: BodyRef<'a>,
    appended_after_recorded: Option<(i64, u32)>,
    appended_by: Option<&'a str>,
}

/// A version 2 record: a version 3 record without `appended_by`.
#[derive(Deserialize)]
struct RecordV2<'a> {
    version: u32,
    deal: &'a str,
    at_seconds: i64,
    at_micros: u32,
    recorded_after_at: Option<(i64, u32)>,
    #[serde(borrow)]
    actor: Option<&'a str>,
    #[serde(borrow)]
    source_id: Option<&'a str>,
    #[serde(borrow)]
    body: BodyRef<'a>,
    appended_after_recorded: Option<(i64, u32)>,
}

/// A version 1 record: a version 2 record without `appended_after_recorded`. Also the bytes of an
/// event's identity (what idempotency compares), which never included bookkeeping.
#[derive(Serialize, Deserialize)]
struct RecordV1<'a> {
    version: u32,
    #[serde(borrow)]
    deal: &'a str,
    at_seconds: i64,
    at_micros: u32,
    recorded_after_at: Option<(i64, u32)>,
    #[serde(borrow)]
    actor: Option<&'a str>,
    #[serde(borrow)]
    source_id: Option<&'a str>,
    #[serde(borrow)]
    body: BodyRef<'a>,
}

/// A version 3 record, borrowed from the block, as read.
#[derive(Deserialize)]
struct RecordView<'a> {
    version: u32,
    deal: &'a str,
    at_seconds: i64,
    at_micros: u32,
    recorded_after_at: Option<(i64, u32)>,
    #[serde(borrow)]
    actor: Option<&'a str>,
    #[serde(borrow)]
    source_id: Option<&'a str>,
    #[serde(borrow)]
    body: BodyRef<'a>,
    appended_after_recorded: Option<(i64, u32)>,
    #[serde(borrow)]
    appended_by: Option<&'a str>,
}

/// Version 2 to version 3: who appended it was not kept (`None`).
fn upcast_v2(record: RecordV2<'_>) -> RecordView<'_> {
    let RecordV2 {
        version,
        deal,
        at_seconds,
        at_micros,
        recorded_after_at,
        actor,
        source_id,
        body,
        appended_after_recorded,
    } = record;
    RecordView {
        version,
        deal,
        at_seconds,
        at_micros,
        recorded_after_at,
        actor,
        source_id,
        body,
        appended_after_recorded,
        appended_by: None,
    }
}

/// Version 1 to version 3: the append time was not kept, so it is unknown (`None`), never
/// guessed from `recorded_at`.
fn upcast_v1(record: RecordV1<'_>) -> RecordView<'_> {
    let RecordV1 { version, deal, at_seconds, at_micros, recorded_after_at, actor, source_id, body } = record;
    RecordView {
        version,
        deal,
        at_seconds,
        at_micros,
        recorded_after_at,
        actor,
        source_id,
        body,
        appended_after_recorded: None,
        appended_by: None,
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("record format version {0} is not known to this build (it reads {FORMAT_VERSION_OLDEST} to {FORMAT_VERSION})")]
    UnknownVersion(u8),
    #[error("record does not decode: {0}")]
    Corrupt(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Microseconds as (whole seconds, micros past them), flooring.
fn split(micros: i64) -> (i64, u32) {
    (micros.div_euclid(MICROS_PER_SECOND), micros.rem_euclid(MICROS_PER_SECOND) as u32)
}

fn join(seconds: i64, micros: u32) -> Result<Timestamp, CodecError> {
    if i64::from(micros) >= MICROS_PER_SECOND {
        return Err(CodecError::Corrupt(format!("{micros} microseconds past a second")));
    }
    seconds
        .checked_mul(MICROS_PER_SECOND)
        .and_then(|m| m.checked_add(i64::from(micros)))
        .map(Timestamp)
        .ok_or_else(|| CodecError::Corrupt(format!("instant {seconds} s out of range")))
}

/// Appends one record to `out`, in today's format.
pub fn encode_record(version: u32, event: &Event, out: &mut Vec<u8>) {
    let (at_seconds, at_micros) = split(event.at.0);
    let record = RecordRef {
        version,
        deal: event.deal.as_str(),
        at_seconds,
        at_micros,
        recorded_after_at: event.recorded_at.map(|r| split(r.0.wrapping_sub(event.at.0))),
        actor: event.actor.as_deref(),
        source_id: event.source_id.as_deref(),
        body: BodyRef::of(&event.body),
        appended_after_recorded: event
            .appended_at
            .map(|a| split(a.0.wrapping_sub(event.recorded_at.unwrap_or(event.at).0))),
        appended_by: event.appended_by.as_deref(),
    };
    bincode::serde::encode_into_std_write(record, out, config())
        .expect("writing to a Vec cannot fail and every event serializes");
}

/// Appends the bytes that identify an event for idempotency: the record without its version,
/// `recorded_at` and `appended_at` (bookkeeping a retry may fill in differently).
pub fn encode_identity(event: &Event, out: &mut Vec<u8>) {
    let body = BodyRef::of(&event.body);
    encode_identity_parts(
        event.deal.as_str(),
        event.at,
        event.actor.as_deref(),
        event.source_id.as_deref(),
        body,
        out,
    );
}

/// [`encode_identity`] of a stored event read back: the same bytes as for its owned form.
pub fn encode_identity_ref(event: &EventRef<'_>, out: &mut Vec<u8>) {
    encode_identity_parts(event.deal, event.at, event.actor, event.source_id, event.body, out);
}

fn encode_identity_parts(
    deal: &str,
    at: Timestamp,
    actor: Option<&str>,
    source_id: Option<&str>,
    body: BodyRef<'_>,
    out: &mut Vec<u8>,
) {
    let (at_seconds, at_micros) = split(at.0);
    // The version 1 layout with the bookkeeping left empty: the bytes idempotency has always
    // compared, whatever the record format.
    let record =
        RecordV1 { version: 0, deal, at_seconds, at_micros, recorded_after_at: None, actor, source_id, body };
    bincode::serde::encode_into_std_write(record, out, config())
        .expect("writing to a Vec cannot fail and every event serializes");
}

/// Decodes one record from the front of `bytes`: (deal version, event, bytes consumed).
pub fn decode_record(format_version: u8, bytes: &[u8]) -> Result<(u32, Event, usize), CodecError> {
    let (view, used) = decode_record_ref(format_version, 0, bytes)?;
    let stored = view.to_stored();
    Ok((stored.version, stored.event, used))
}

/// Decodes one record borrowed from `bytes`, as event `seq`: the replay path, no allocation.
pub fn decode_record_ref(
    format_version: u8,
    seq: u64,
    bytes: &[u8],
) -> Result<(EventRef<'_>, usize), CodecError> {
    let corrupt = |e: bincode::error::DecodeError| CodecError::Corrupt(e.to_string());
    let (record, used): (RecordView<'_>, usize) = match format_version {
        1 => {
            let (record, used) =
                bincode::serde::borrow_decode_from_slice(bytes, config()).map_err(corrupt)?;
            (upcast_v1(record), used)
        }
        2 => {
            let (record, used) =
                bincode::serde::borrow_decode_from_slice(bytes, config()).map_err(corrupt)?;
            (upcast_v2(record), used)
        }
        3 => bincode::serde::borrow_decode_from_slice(bytes, config()).map_err(corrupt)?,
        other => return Err(CodecError::UnknownVersion(other)),
    };
    let at = join(record.at_seconds, record.at_micros)?;
    let recorded_at = match record.recorded_after_at {
        Some((seconds, micros)) => {
            Timestamp(at.0.checked_add(join(seconds, micros)?.0).ok_or_else(|| {
                CodecError::Corrupt(format!("recorded_at {seconds} s after `at` is out of range"))
            })?)
        }
        None => return Err(CodecError::Corrupt("stored record without recorded_at".into())),
    };
    let appended_at = match record.appended_after_recorded {
        Some((seconds, micros)) => {
            Some(Timestamp(recorded_at.0.checked_add(join(seconds, micros)?.0).ok_or_else(|| {
                CodecError::Corrupt(format!("appended_at {seconds} s after recorded_at is out of range"))
            })?))
        }
        None => None,
    };
    let event = EventRef {
        seq,
        version: record.version,
        deal: record.deal,
        at,
        recorded_at,
        appended_at,
        appended_by: record.appended_by,
        actor: record.actor,
        source_id: record.source_id,
        body: record.body,
        offset: 0,
    };
    event.check_meaning().map_err(CodecError::Corrupt)?;
    Ok((event, used))
}

/// Encodes any serializable value (projection checkpoints) in the same format family.
pub fn encode_value<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, config()).expect("every checkpoint serializes")
}

/// Decodes a value written by [`encode_value`]; the whole input must be used.
///
/// bincode allocates a string's claimed length before it reads the string: without a limit,
/// damaged bytes claiming 2^60 bytes abort the process. bincode's limit counts what decoding
/// builds in memory (a string's bytes, and every integer's full width however few bytes its
/// varint took, at most 16 for one byte), so an honest input never claims more than 16 times
/// its size: that, rounded up to a power of four, is the limit (a compile-time constant in
/// bincode, hence one instantiation per size class). A damaged length can then cost an
/// allocation of at most that much before the read fails, never an abort.
pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    const CLAIM_PER_INPUT_BYTE_MAX: usize = 16;
    let claim_max = bytes.len().max(1).saturating_mul(CLAIM_PER_INPUT_BYTE_MAX);
    macro_rules! limited {
        ($($bits:literal)*) => {
            match claim_max.next_power_of_two().trailing_zeros() {
                $(b if b <= $bits => decode_limited::<T, { 1usize << $bits }>(bytes),)*
                _ => Err(CodecError::Corrupt(format!("a value of {} bytes is over the 2^40 limit", bytes.len()))),
            }
        };
    }
    limited!(10 12 14 16 18 20 22 24 26 28 30 32 34 36 38 40 42 44)
}

fn decode_limited<T: serde::de::DeserializeOwned, const LIMIT_BYTES: usize>(
    bytes: &[u8],
) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config().with_limit::<LIMIT_BYTES>())
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Corrupt(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_length_is_an_error_not_an_abort() {
        // A string claiming 2^60 bytes (varint marker 253, then a u64): before the limit this
        // aborted the process trying to allocate it.
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(decode_value::<String>(&bytes).is_err());
        assert!(decode_value::<Vec<String>>(&[1, 253, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert_eq!(decode_value::<String>(&encode_value(&"ok".to_string())).unwrap(), "ok");
    }
}

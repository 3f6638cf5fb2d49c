//! The on-disk encoding of one event record. The only module that knows bincode.
//!
//! bincode 2.0.1 is pinned: 3.0.0 is a compile_error-only release and the crate is unmaintained
//! (RUSTSEC-2025-0141). Everything that touches bytes goes through `encode_record` and
//! `decode_record`, and every stored block carries [`FORMAT_VERSION`], so moving to a successor
//! codec is a change to this file plus a new version number, with the golden files proving
//! that old blocks still read.

use crate::event::Event;
use thiserror::Error;

/// The record format written today. Version 1: bincode 2 `standard()` (little endian, varint
/// integers) of `(version: u32, event: Event)`; the sequence number is implicit in the block.
pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("record format version {0} is not known to this build (it reads {FORMAT_VERSION})")]
    UnknownVersion(u8),
    #[error("record does not decode: {0}")]
    Corrupt(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends one record to `out`.
pub fn encode_record(version: u32, event: &Event, out: &mut Vec<u8>) {
    bincode::serde::encode_into_std_write((version, event), out, config())
        .expect("writing to a Vec cannot fail and every event serializes");
}

/// Decodes one record from the front of `bytes`: (deal version, event, bytes consumed).
pub fn decode_record(format_version: u8, bytes: &[u8]) -> Result<(u32, Event, usize), CodecError> {
    if format_version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(format_version));
    }
    let ((version, event), used): ((u32, Event), usize) =
        bincode::serde::decode_from_slice(bytes, config())
            .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    Ok((version, event, used))
}

/// Encodes any serializable value (projection checkpoints) in the same format family.
pub fn encode_value<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, config()).expect("every checkpoint serializes")
}

/// Decodes a value written by [`encode_value`]; the whole input must be used.
pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Corrupt(format!(
            "{} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(value)
}

//! The sled backend: the only code in dealledger that knows sled.
//!
//! Two trees: `blocks` (first_seq as 8 big-endian bytes, so key order is sequence order, to the
//! sealed block) and `meta` (name to value). sled writes in the background only every 500 ms,
//! so `append` and `put_meta` flush before they return: an acknowledged write is on disk.
//! A multi-block append is one `sled::Batch`, which sled recovers atomically after a crash.

use crate::error::LogError;
use crate::store::{BlockStore, BlockVisitor};
use std::path::{Path, PathBuf};

pub struct SledStore {
    db: sled::Db,
    blocks: sled::Tree,
    meta: sled::Tree,
    path: PathBuf,
}

fn store_error(e: sled::Error) -> LogError {
    LogError::Store(e.to_string())
}

impl SledStore {
    /// Opens (creating if needed) the store at `path`. Only one process may have it open.
    pub fn open(path: &Path) -> Result<SledStore, LogError> {
        let db = sled::Config::new()
            .path(path)
            // A generous page cache: replay reads every block once, sequentially.
            .cache_capacity(256 * 1024 * 1024)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    LogError::Locked { path: path.display().to_string() }
                }
                other => store_error(other),
            })?;
        let blocks = db.open_tree("blocks").map_err(store_error)?;
        let meta = db.open_tree("meta").map_err(store_error)?;
        Ok(SledStore { db, blocks, meta, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn key_of(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn seq_of(key: &[u8]) -> Result<u64, LogError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| LogError::Corrupt { seq: 0, why: format!("block key of {} bytes", key.len()) })?;
    Ok(u64::from_be_bytes(bytes))
}

impl BlockStore for SledStore {
    fn append(&self, blocks: &[(u64, Vec<u8>)]) -> Result<(), LogError> {
        let mut batch = sled::Batch::default();
        for (seq, value) in blocks {
            batch.insert(&key_of(*seq), value.as_slice());
        }
        self.blocks.apply_batch(batch).map_err(store_error)?;
        self.db.flush().map_err(store_error)?;
        Ok(())
    }

    fn block_at_or_before(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        match self.blocks.range(..=key_of(seq)).next_back() {
            Some(entry) => {
                let (key, value) = entry.map_err(store_error)?;
                Ok(Some((seq_of(&key)?, value.to_vec())))
            }
            None => Ok(None),
        }
    }

    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        match self.blocks.last().map_err(store_error)? {
            Some((key, value)) => Ok(Some((seq_of(&key)?, value.to_vec()))),
            None => Ok(None),
        }
    }

    fn scan(&self, from_key: u64, visit: &mut BlockVisitor<'_>) -> Result<(), LogError> {
        for entry in self.blocks.range(key_of(from_key)..) {
            let (key, value) = entry.map_err(store_error)?;
            if !visit(seq_of(&key)?, &value)? {
                break;
            }
        }
        Ok(())
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.meta.get(name.as_bytes()).map_err(store_error)?.map(|v| v.to_vec()))
    }

    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), LogError> {
        self.meta.insert(name.as_bytes(), value).map_err(store_error)?;
        self.db.flush().map_err(store_error)?;
        Ok(())
    }

    fn bytes_on_disk(&self) -> Result<u64, LogError> {
        dir_size(&self.path).map_err(|e| LogError::Store(format!("{}: {e}", self.path.display())))
    }
}

/// Every file under `path`, recursively: what `du` would count, not sled's own estimate.
fn dir_size(path: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { dir_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

/// What a salvage scan found in a store's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Salvage {
    /// Events 1..=intact_through are all present in intact blocks.
    pub intact_through: u64,
    /// Intact blocks found beyond the first gap (first_seq, last_seq).
    pub beyond: Vec<(u64, u64)>,
}

impl SledStore {
    /// Reads every file of the store at `path` directly (no engine, no lock) and finds intact
    /// blocks: for naming the first bad seq of a store sled refuses to open.
    pub fn salvage_scan(path: &Path) -> Result<Salvage, LogError> {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        let mut files = Vec::new();
        collect_files(path, &mut files).map_err(|e| LogError::Store(format!("{}: {e}", path.display())))?;
        for file in files {
            let bytes =
                std::fs::read(&file).map_err(|e| LogError::Store(format!("{}: {e}", file.display())))?;
            for (header, _) in crate::block::find_intact(&bytes) {
                ranges.push((header.first_seq, header.last_seq()));
            }
        }
        ranges.sort_unstable();
        ranges.dedup();
        let mut intact_through = 0;
        let mut beyond = Vec::new();
        for (first, last) in ranges {
            if first <= intact_through + 1 && beyond.is_empty() {
                intact_through = intact_through.max(last);
            } else if first > intact_through + 1 {
                beyond.push((first, last));
            }
        }
        Ok(Salvage { intact_through, beyond })
    }
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            collect_files(&entry.path(), files)?;
        } else {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(())
}

//! The sled backend: the only code in dealledger that knows sled.
//!
//! A store at `PATH` is three things:
//! - `PATH/`: sled's directory (`db`, `conf`, `snap.*`, `blobs/`). One tree, `blocks`, maps
//!   first_seq (8 big-endian bytes, so key order is sequence order) to the sealed block.
//! - `PATH.mark`: the high-water mark, the head of the last acknowledged write. It sits beside
//!   sled's directory, not in it, so that a store directory restored from an old copy, or one
//!   that lost its tail, cannot take the mark back with it. Two slots of one page each, each a
//!   whole mark with a generation; a process writes the file whole once, then overwrites the
//!   older slot in place (`write_mark`).
//! - `PATH.meta/`: named metadata values (projection checkpoints), one file each. Stores made
//!   before this layout kept them in a sled tree `meta`, still read as a fallback.
//!
//! Why this is more than a thin wrapper: sled 0.34.7's `flush` makes its writes "stable" with
//! `sync_file_range`, which persists neither the drive's cache nor the file's size; it writes
//! pages over segment_size / 4 to blob files it never fsyncs, writes `conf` without fsync and
//! renames snapshots without fsyncing the directory. An acknowledgement here is an fsync: after
//! sled's flush, [`SledStore`]'s barrier fdatasyncs `db`, fsyncs every file that appeared since
//! the last barrier, and fsyncs every directory whose entries changed; only then is the mark
//! advanced (the first time in a process a temporary file, fdatasync, rename and fsync of the
//! directory; after that one slot overwritten in place and fdatasync'd). `strace -f -y` shows
//! it (`tests/e2e/durability.rs` checks the trace).
//!
//! Two settings make the barrier complete rather than best effort:
//! - sled's background flusher is off. Every 500 ms it would write, and rewrite pages during
//!   segment cleaning, between our barriers; a power cut could then find a page's only durable
//!   copy overwritten by a segment reused on the strength of `sync_file_range`. With it off,
//!   every byte sled writes is written inside an `append` or `put_meta` and covered by its
//!   barrier. Measured on 1 M events: the store is no larger (38.9 MB against 42.4 MB).
//! - New stores use 8 MiB segments, so that pages up to 2 MiB stay inline in `db`: a leaf holds
//!   at most 17 blocks of at most [`crate::block::BLOCK_STORED_BYTES_MAX`], so no block is ever
//!   in a blob file, and `db` is the one file the barrier has to sync. Older stores keep the
//!   segment size their `conf` records (sled cannot change it); their blobs are synced too.

use crate::error::LogError;
use crate::log::Head;
use crate::store::{BlockStore, BlockVisitor};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// sled's segment size for new stores: pages up to a quarter of it stay inline in `db`.
pub const SEGMENT_BYTES_NEW: usize = 8 * 1024 * 1024;
/// sled's page cache: replay reads every block once, sequentially.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// The mark file is [`MARK_SLOTS`] slots of this many bytes, each a whole mark with its
/// generation (one page each, so that a torn write of one cannot reach the other).
const MARK_SLOT_BYTES: usize = 4096;
const MARK_SLOTS: usize = 2;
/// Largest mark file read.
const MARK_BYTES_MAX: u64 = (MARK_SLOT_BYTES * MARK_SLOTS) as u64;
const MARK_MAGIC: &str = "dealledger high-water mark 2";
/// The first layout: one mark, four lines, always replaced by a rename. Still read.
const MARK_MAGIC_V1: &str = "dealledger high-water mark 1";

pub struct SledStore {
    db: sled::Db,
    blocks: sled::Tree,
    /// Where metadata lived before `PATH.meta/`: read when no file exists, emptied on write.
    legacy_meta: sled::Tree,
    path: PathBuf,
    mark_path: PathBuf,
    meta_dir: PathBuf,
    /// Barriers are serialized; this holds what they need between them.
    barrier: Mutex<Barrier>,
    /// The mark file as this process last wrote it; `None` until the first mark.
    mark_file: Mutex<Option<MarkFile>>,
    /// Set by the first write that failed after reaching sled. After a failed flush or fsync the
    /// page cache can no longer be trusted (a later fsync may succeed without writing the pages
    /// the failed one lost), so the store refuses every later write until a new process reopens
    /// it and sled recovers from what is really on disk.
    failed: Mutex<Option<String>>,
}

struct Barrier {
    /// Our own descriptor on `PATH/db`: fdatasync applies to the file, whichever descriptor.
    db_file: File,
    /// The entries each watched directory had at the last barrier, known durable.
    entries: BTreeMap<PathBuf, BTreeSet<OsString>>,
}

/// The open mark file and the generation last written to it.
struct MarkFile {
    file: File,
    generation: u64,
}

/// A mark as read: the head and the generation of the slot it came from (0 for the first
/// layout, which had none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mark {
    head: Head,
    generation: u64,
}

fn store_error(e: sled::Error) -> LogError {
    LogError::Store(e.to_string())
}

fn io_error(what: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", what.display())
}

/// `PATH` with `suffix` appended to its last component: `store` -> `store.mark`.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(OsString::from).unwrap_or_else(|| OsString::from("store"));
    name.push(suffix);
    path.with_file_name(name)
}

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

use crate::files::sync_dir;

/// Writes `bytes` to `path` so that after a crash `path` holds either its old content or all
/// of `bytes`: a temporary file, fdatasync, rename over `path`, fsync of the directory
/// ([`crate::files::write_new`], which never writes through a link).
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), String> {
    crate::files::write_new(path, bytes).map_err(|e| io_error(path, e))
}

/// Whether another process holds the store: sled takes an exclusive flock(2) on `PATH/db` for as
/// long as it has the store open, so a second try of the same lock says so (the error sled
/// returns says it only in its text).
fn held_by_another(path: &Path) -> bool {
    match File::open(path.join("db")).map(|db| db.try_lock()) {
        Ok(Err(std::fs::TryLockError::WouldBlock)) => true,
        Ok(Ok(())) | Ok(Err(std::fs::TryLockError::Error(_))) | Err(_) => false,
    }
}

/// The segment size a store was created with, from sled's `conf` (`segment_size: N` on a line).
fn recorded_segment_bytes(path: &Path) -> Option<usize> {
    let bytes = std::fs::read(path.join("conf")).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    text.lines().find_map(|line| line.strip_prefix("segment_size: ")?.trim().parse().ok())
}

/// A metadata name as a file name: names are ours (`checkpoint/timeline`), but a name must not
/// climb out of the directory whatever it holds.
fn meta_file_name(name: &str) -> String {
    let mut file: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '.' })
        .collect();
    if file.is_empty() || file.starts_with('.') {
        file.insert(0, '_');
    }
    file
}

impl SledStore {
    /// Opens (creating if needed) the store at `path`. Only one process may have it open.
    pub fn open(path: &Path) -> Result<SledStore, LogError> {
        let segment_bytes = recorded_segment_bytes(path).unwrap_or(SEGMENT_BYTES_NEW);
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .segment_size(segment_bytes)
            // No background writes: see the module documentation.
            .flush_every_ms(None)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(_) if held_by_another(path) => {
                    LogError::Locked { path: path.display().to_string() }
                }
                other => store_error(other),
            })?;
        let blocks = db.open_tree("blocks").map_err(store_error)?;
        let legacy_meta = db.open_tree("meta").map_err(store_error)?;
        let db_path = path.join("db");
        let db_file = File::open(&db_path).map_err(|e| LogError::Store(io_error(&db_path, e)))?;
        let store = SledStore {
            db,
            blocks,
            legacy_meta,
            path: path.to_path_buf(),
            mark_path: beside(path, ".mark"),
            meta_dir: beside(path, ".meta"),
            barrier: Mutex::new(Barrier { db_file, entries: BTreeMap::new() }),
            mark_file: Mutex::new(None),
            failed: Mutex::new(None),
        };
        // Whatever sled wrote while opening (a new conf, recovery's snapshot) is made durable
        // now, and so is the store directory's own entry.
        store.sync().map_err(|e| LogError::Store(e.to_string()))?;
        sync_dir(&parent_of(path)).map_err(|e| LogError::Store(io_error(&parent_of(path), e)))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn refuse_if_failed(&self) -> Result<(), LogError> {
        match &*self.failed.lock().expect("not poisoned") {
            Some(why) => Err(LogError::Store(format!(
                "the store failed earlier ({why}) and refuses writes until the process restarts"
            ))),
            None => Ok(()),
        }
    }

    /// Records the first failure; every later write is refused.
    fn fail(&self, why: String) -> LogError {
        let mut failed = self.failed.lock().expect("not poisoned");
        if failed.is_none() {
            tracing::error!(store = %self.path.display(), error = %why, "the store failed; it refuses writes from now on");
            *failed = Some(why.clone());
        }
        LogError::Uncertain(why)
    }

    /// The barrier: after it, every byte sled has written survives a power cut.
    fn sync(&self) -> Result<(), LogError> {
        self.db.flush().map_err(|e| LogError::Uncertain(format!("sled flush: {e}")))?;
        let mut barrier = self.barrier.lock().expect("not poisoned");
        let db_path = self.path.join("db");
        barrier.db_file.sync_data().map_err(|e| LogError::Uncertain(io_error(&db_path, e)))?;
        for dir in [self.path.clone(), self.path.join("blobs")] {
            sync_new_entries(&dir, &mut barrier.entries).map_err(LogError::Uncertain)?;
        }
        Ok(())
    }

    /// Advances the mark durably. The first mark of a process writes the whole file anew
    /// (temporary file, fdatasync, rename, directory fsync), whatever layout it had; every later
    /// one overwrites the older of its two slots in place and fdatasyncs it: one sync, and no
    /// journal commit for a rename. A power cut in the middle tears at most that slot; the
    /// other still holds the mark before, and the reader takes the valid slot of the highest
    /// generation.
    fn write_mark(&self, head: Head) -> Result<(), String> {
        let mut open = self.mark_file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(mark) = open.as_mut() {
            let generation = mark.generation.checked_add(1).ok_or("the mark's generation overflowed")?;
            let slot = usize::try_from(generation % MARK_SLOTS as u64).expect("below MARK_SLOTS");
            let offset = (slot * MARK_SLOT_BYTES) as u64;
            let written =
                std::os::unix::fs::FileExt::write_all_at(&mark.file, &mark_slot(head, generation), offset)
                    .and_then(|()| mark.file.sync_data());
            written.map_err(|e| io_error(&self.mark_path, e))?;
            mark.generation = generation;
            return Ok(());
        }
        // An unreadable mark is replaced: only `reset_mark` can get here with one (the log
        // refuses to write over it), and that is a person's decision.
        let before = std::fs::read(&self.mark_path).ok().and_then(|bytes| parse_mark_file(&bytes).ok());
        let generation = before.map_or(Some(1), |mark| mark.generation.checked_add(1));
        let generation = generation.ok_or("the mark's generation overflowed")?;
        write_durably(&self.mark_path, &mark_slot(head, generation).repeat(MARK_SLOTS))?;
        let file = crate::files::open_existing(&self.mark_path).map_err(|e| io_error(&self.mark_path, e))?;
        *open = Some(MarkFile { file, generation });
        Ok(())
    }

    fn meta_path(&self, name: &str) -> PathBuf {
        self.meta_dir.join(meta_file_name(name))
    }
}

/// fsyncs every file in `dir` that was not there at the last barrier, then `dir` itself if any
/// entry came or went. sled creates files (blobs, snapshots, `conf`) but never rewrites one
/// after creating it, except `db`, which the barrier syncs by itself.
fn sync_new_entries(dir: &Path, known: &mut BTreeMap<PathBuf, BTreeSet<OsString>>) -> Result<(), String> {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(dir, e)),
    };
    let mut now = BTreeSet::new();
    for entry in listing {
        now.insert(entry.map_err(|e| io_error(dir, e))?.file_name());
    }
    let before = known.entry(dir.to_path_buf()).or_default();
    if *before == now {
        return Ok(());
    }
    for name in now.difference(before) {
        let path = dir.join(name);
        match File::open(&path) {
            Ok(file) if file.metadata().is_ok_and(|m| m.is_file()) => {
                file.sync_data().map_err(|e| io_error(&path, e))?
            }
            Ok(_) => {}
            // Gone again before we looked (a blob sled removed): nothing to sync.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path, e)),
        }
    }
    sync_dir(dir).map_err(|e| io_error(dir, e))?;
    *before = now;
    Ok(())
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

/// One slot of the mark file: five lines, the last a crc32c of the others, padded with
/// newlines to [`MARK_SLOT_BYTES`].
fn mark_slot(head: Head, generation: u64) -> Vec<u8> {
    let mut text =
        format!("{MARK_MAGIC}\ngeneration {generation}\nseq {}\nchain {}\n", head.seq, head.chain_hex());
    let crc = crc32c::crc32c(text.as_bytes());
    text.push_str(&format!("crc32c {crc:08x}\n"));
    let mut bytes = text.into_bytes();
    assert!(bytes.len() <= MARK_SLOT_BYTES, "a mark fits its slot");
    bytes.resize(MARK_SLOT_BYTES, b'\n');
    bytes
}

/// Reads a mark file, either layout.
fn parse_mark(bytes: &[u8]) -> Result<Head, String> {
    parse_mark_file(bytes).map(|mark| mark.head)
}

/// The mark a file holds: the valid slot of the highest generation, or the one mark of the
/// first layout.
fn parse_mark_file(bytes: &[u8]) -> Result<Mark, String> {
    if bytes.starts_with(MARK_MAGIC_V1.as_bytes()) {
        return parse_mark_text(bytes, MARK_MAGIC_V1);
    }
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    let mut best: Option<Mark> = None;
    let mut damaged = Vec::new();
    for (index, slot) in bytes.chunks(MARK_SLOT_BYTES).enumerate() {
        if index >= MARK_SLOTS {
            damaged.push(format!("{} bytes past the last slot", bytes.len() - MARK_BYTES_MAX as usize));
            break;
        }
        match parse_mark_text(slot, MARK_MAGIC) {
            Ok(mark) if best.is_none_or(|best| mark.generation > best.generation) => best = Some(mark),
            Ok(_) => {}
            Err(why) => damaged.push(format!("slot {index}: {why}")),
        }
    }
    match best {
        Some(mark) => {
            if !damaged.is_empty() {
                // A torn write of the slot after it (a power cut before its fdatasync returned,
                // so never acknowledged): the mark before is the right one.
                tracing::warn!(damaged = %damaged.join("; "), "a slot of the high-water mark is damaged; using the other");
            }
            Ok(mark)
        }
        None => Err(damaged.join("; ")),
    }
}

/// One mark in text: the magic, `generation N` (not in the first layout), `seq N`, `chain HEX`,
/// then `crc32c HEX` of the lines before; trailing newlines are padding.
fn parse_mark_text(bytes: &[u8], magic: &str) -> Result<Mark, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let body_end = text.rfind("crc32c ").ok_or("no crc32c line")?;
    let (body, crc_line) = text.split_at(body_end);
    let stored = crc_line.trim_end_matches('\n').strip_prefix("crc32c ").ok_or("no crc32c line")?;
    let stored = u32::from_str_radix(stored, 16).map_err(|_| "the crc32c line is not hex".to_string())?;
    if crc32c::crc32c(body.as_bytes()) != stored {
        return Err("checksum mismatch".into());
    }
    let mut lines = body.lines();
    if lines.next() != Some(magic) {
        return Err(format!("the first line is not `{magic}`"));
    }
    let generation = if magic == MARK_MAGIC_V1 {
        0
    } else {
        lines
            .next()
            .and_then(|l| l.strip_prefix("generation "))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or("no `generation N` line")?
    };
    let seq = lines
        .next()
        .and_then(|l| l.strip_prefix("seq "))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("no `seq N` line")?;
    let chain = lines
        .next()
        .and_then(|l| l.strip_prefix("chain "))
        .and_then(Head::parse_chain_hex)
        .ok_or("no `chain HEX` line")?;
    Ok(Mark { head: Head { seq, chain }, generation })
}

impl BlockStore for SledStore {
    fn append(&self, blocks: &[(u64, Vec<u8>)], head: Head) -> Result<(), LogError> {
        self.refuse_if_failed()?;
        if !blocks.is_empty() {
            let mut batch = sled::Batch::default();
            for (seq, value) in blocks {
                batch.insert(&key_of(*seq), value.as_slice());
            }
            // From here on sled has the data: a failure leaves the outcome unknown.
            self.blocks.apply_batch(batch).map_err(|e| self.fail(format!("sled write: {e}")))?;
        }
        self.sync().map_err(|e| self.fail(e.to_string()))?;
        self.write_mark(head).map_err(|why| self.fail(format!("high-water mark: {why}")))
    }

    fn mark(&self) -> Result<Option<Head>, LogError> {
        let unreadable = |why: String| {
            LogError::Store(format!(
                "the high-water mark {} is unreadable ({why}); it records how far the log was acknowledged, \
                 so nothing is written without it: restore it from a backup, or see README, Durability",
                self.mark_path.display()
            ))
        };
        let file = match File::open(&self.mark_path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(e.to_string())),
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MARK_BYTES_MAX), &mut bytes)
            .map_err(|e| unreadable(e.to_string()))?;
        parse_mark(&bytes).map(Some).map_err(unreadable)
    }

    fn reset_mark(&self, head: Head) -> Result<(), LogError> {
        self.refuse_if_failed()?;
        self.sync()?;
        self.write_mark(head).map_err(LogError::Uncertain)
    }

    fn mark_location(&self) -> String {
        self.mark_path.display().to_string()
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
        let path = self.meta_path(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(self.legacy_meta.get(name.as_bytes()).map_err(store_error)?.map(|v| v.to_vec()))
            }
            Err(e) => Err(LogError::Store(io_error(&path, e))),
        }
    }

    fn get_meta_range(&self, name: &str, at: u64, len: usize) -> Result<Option<Vec<u8>>, LogError> {
        use std::io::{Read, Seek};
        let path = self.meta_path(name);
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let legacy = self.legacy_meta.get(name.as_bytes()).map_err(store_error)?;
                return Ok(legacy.map(|v| crate::store::slice_of(&v, at, len).to_vec()));
            }
            Err(e) => return Err(LogError::Store(io_error(&path, e))),
        };
        let mut part = Vec::new();
        file.seek(std::io::SeekFrom::Start(at))
            .and_then(|_| file.take(len as u64).read_to_end(&mut part))
            .map_err(|e| LogError::Store(io_error(&path, e)))?;
        Ok(Some(part))
    }

    fn read_meta(&self, name: &str) -> Result<Option<crate::MetaBytes>, LogError> {
        let path = self.meta_path(name);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(self.get_meta(name)?.map(crate::MetaBytes::Owned))
            }
            Err(e) => return Err(LogError::Store(io_error(&path, e))),
        };
        let len = file.metadata().map_err(|e| LogError::Store(io_error(&path, e)))?.len();
        if len == 0 {
            // Nothing to map (mmap(2) refuses a length of zero).
            return Ok(Some(crate::MetaBytes::Owned(Vec::new())));
        }
        // SAFETY: a mapped file must not change while mapped. dealledger never writes a metadata
        // file in place: `write_durably` writes a new file and renames it over the old one, whose
        // inode (and so this mapping) stays as it was. What is left is a person rewriting the
        // file in place while a command reads it, which any reader that maps files (ripgrep's,
        // say) also leaves to the person. The value is read once, front to back, so the
        // kernel is told to read ahead.
        let map = unsafe { memmap2::Mmap::map(&file) };
        match map {
            Ok(map) => {
                let _ = map.advise(memmap2::Advice::Sequential);
                Ok(Some(crate::MetaBytes::Mapped(map)))
            }
            Err(_) => self.get_meta(name).map(|value| value.map(crate::MetaBytes::Owned)),
        }
    }

    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), LogError> {
        self.refuse_if_failed()?;
        if !self.meta_dir.exists() {
            std::fs::create_dir_all(&self.meta_dir)
                .map_err(|e| LogError::Store(io_error(&self.meta_dir, e)))?;
            let parent = parent_of(&self.meta_dir);
            sync_dir(&parent).map_err(|e| LogError::Uncertain(io_error(&parent, e)))?;
        }
        // A metadata value is derived (a checkpoint), never an acknowledgement: a failure here
        // does not fail the store.
        write_durably(&self.meta_path(name), value).map_err(LogError::Uncertain)?;
        if self.legacy_meta.contains_key(name.as_bytes()).map_err(store_error)? {
            self.legacy_meta.remove(name.as_bytes()).map_err(|e| self.fail(format!("sled write: {e}")))?;
            self.sync().map_err(|e| self.fail(e.to_string()))?;
        }
        Ok(())
    }

    fn bytes_on_disk(&self) -> Result<u64, LogError> {
        let mut total = 0;
        for path in [&self.path, &self.meta_dir, &self.mark_path] {
            total += dir_size(path).map_err(|e| LogError::Store(io_error(path, e)))?;
        }
        Ok(total)
    }
}

/// Every file under `path`, recursively (or `path` itself if a file; 0 if absent): what `du`
/// would count, not sled's own estimate.
fn dir_size(path: &Path) -> std::io::Result<u64> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        total += dir_size(&entry?.path())?;
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
        collect_files(path, &mut files).map_err(|e| LogError::Store(io_error(path, e)))?;
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| LogError::Store(io_error(&file, e)))?;
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

    /// The high-water mark of the store at `path`, read without opening the store (for
    /// `audit verify` on a store sled refuses to open).
    pub fn read_mark(path: &Path) -> Result<Option<Head>, LogError> {
        let mark_path = beside(path, ".mark");
        match std::fs::read(&mark_path) {
            Ok(bytes) => parse_mark(&bytes).map(Some).map_err(|why| {
                LogError::Store(format!("the high-water mark {} is unreadable ({why})", mark_path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LogError::Store(io_error(&mark_path, e))),
        }
    }
}

impl Salvage {
    /// The verification failure of a store at `path` that sled refused to open with `why`:
    /// the first bad seq is the first one no intact block holds, and the message says what is
    /// intact in the files and what the high-water mark says was acknowledged.
    pub fn failure(&self, path: &Path, why: &str) -> LogError {
        let acknowledged = match SledStore::read_mark(path) {
            Ok(Some(mark)) => format!("; seqs 1..={} were acknowledged", mark.seq),
            Ok(None) => String::new(),
            Err(e) => format!("; {e}"),
        };
        let intact = match self.intact_through {
            0 => "no intact block precedes it in its files".to_string(),
            n => format!("events 1..={n} are intact in its files"),
        };
        LogError::Corrupt {
            seq: self.intact_through.saturating_add(1),
            why: format!("the store cannot be opened ({why}); {intact}{acknowledged}"),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("store")).unwrap();
        assert_eq!(store.mark().unwrap(), None);
        let head = Head { seq: 42, chain: [7; 32] };
        store.append(&[], head).unwrap();
        assert_eq!(store.mark().unwrap(), Some(head));
        assert_eq!(SledStore::read_mark(&dir.path().join("store")).unwrap(), Some(head));
        let text = std::fs::read_to_string(dir.path().join("store.mark")).unwrap();
        for damaged in [text.replace("seq 42", "seq 43"), text.replace("chain 07", "chain 08"), String::new()]
        {
            assert!(parse_mark(damaged.as_bytes()).is_err(), "{damaged}");
        }
        assert!(parse_mark(&[0xff, 0xfe, b'\n']).is_err());
    }

    fn head(seq: u64) -> Head {
        Head { seq, chain: [u8::try_from(seq % 251).unwrap(); 32] }
    }

    fn tear(path: &Path, at: usize, len: usize) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at..at + len].fill(0);
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn later_marks_overwrite_a_slot_in_place_and_a_torn_slot_leaves_the_mark_before() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let mark_path = dir.path().join("store.mark");
        let store = SledStore::open(&path).unwrap();
        store.append(&[], head(1)).unwrap();
        let inode = std::fs::metadata(&mark_path).unwrap().ino();
        store.append(&[], head(2)).unwrap();
        store.append(&[], head(3)).unwrap();
        // No rename after the first: the same file, two slots.
        assert_eq!(std::fs::metadata(&mark_path).unwrap().ino(), inode);
        assert_eq!(std::fs::metadata(&mark_path).unwrap().len(), MARK_BYTES_MAX);
        assert_eq!(store.mark().unwrap(), Some(head(3)));
        drop(store);
        let saved = std::fs::read(&mark_path).unwrap();
        // Generation 3 went to slot 1, generation 2 to slot 0: tearing either leaves the other.
        tear(&mark_path, MARK_SLOT_BYTES + 20, 100);
        assert_eq!(SledStore::read_mark(&path).unwrap(), Some(head(2)));
        std::fs::write(&mark_path, &saved).unwrap();
        tear(&mark_path, 0, 30);
        assert_eq!(SledStore::read_mark(&path).unwrap(), Some(head(3)));
        tear(&mark_path, MARK_SLOT_BYTES, 30);
        let err = SledStore::read_mark(&path).unwrap_err().to_string();
        assert!(err.contains("slot 0") && err.contains("slot 1"), "{err}");
        // A new process goes on from the highest generation, whichever slot holds it.
        std::fs::write(&mark_path, &saved).unwrap();
        let store = SledStore::open(&path).unwrap();
        store.append(&[], head(4)).unwrap();
        store.append(&[], head(5)).unwrap();
        assert_eq!(store.mark().unwrap(), Some(head(5)));
        assert_eq!(parse_mark_file(&std::fs::read(&mark_path).unwrap()).unwrap().generation, 5);
        // Moving the mark down (an accepted loss) is a later generation, not a lower seq lost.
        store.reset_mark(head(2)).unwrap();
        assert_eq!(store.mark().unwrap(), Some(head(2)));
        drop(store);
        assert_eq!(SledStore::read_mark(&path).unwrap(), Some(head(2)));
    }

    #[test]
    fn a_mark_of_the_first_layout_is_read_and_replaced_by_the_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let mark_path = dir.path().join("store.mark");
        let store = SledStore::open(&path).unwrap();
        let old = head(7);
        let mut text = format!("{MARK_MAGIC_V1}\nseq {}\nchain {}\n", old.seq, old.chain_hex());
        text.push_str(&format!("crc32c {:08x}\n", crc32c::crc32c(text.as_bytes())));
        std::fs::write(&mark_path, &text).unwrap();
        assert_eq!(store.mark().unwrap(), Some(old));
        assert!(parse_mark(text.replace("seq 7", "seq 8").as_bytes()).is_err());
        store.append(&[], head(8)).unwrap();
        assert_eq!(std::fs::metadata(&mark_path).unwrap().len(), MARK_BYTES_MAX);
        assert_eq!(store.mark().unwrap(), Some(head(8)));
        assert_eq!(parse_mark_file(&std::fs::read(&mark_path).unwrap()).unwrap().generation, 1);
    }

    #[test]
    fn metadata_lives_in_files_beside_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("store")).unwrap();
        store.put_meta("checkpoint/timeline", b"state").unwrap();
        assert_eq!(store.get_meta("checkpoint/timeline").unwrap().as_deref(), Some(&b"state"[..]));
        assert!(dir.path().join("store.meta/checkpoint.timeline").is_file());
        assert_eq!(meta_file_name("../../etc/passwd"), "_......etc.passwd");
        assert_eq!(meta_file_name(".."), "_..");
        assert_eq!(meta_file_name(""), "_");
    }
}

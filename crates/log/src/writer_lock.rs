//! The writer lock: an OS file lock on `writer.lock` in the data directory, held by the one
//! process that writes (`serve`, `ingest`, `recover`, `quarantine retry`) until it drops the
//! lock or dies (the OS releases it then). The file names the holder, so the next writer's error
//! can say who to stop, or, for a daemon, where to send events instead.

use crate::LogError;
use std::fs::File;
use std::io::{Seek, Write};
use std::path::Path;

pub const LOCK_FILE: &str = "writer.lock";

/// Who holds the lock, as its file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// `pid N, command C[, url U]`, or "a process starting up" before it has written that.
    pub description: String,
    /// The daemon's base URL, when the holder is a daemon that listens.
    pub url: Option<String>,
}

/// Who holds the lock in `dir`, as far as its file tells.
pub fn holder(dir: &Path) -> Holder {
    let text = std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap_or_default();
    let url = text.lines().find_map(|l| l.strip_prefix("url ")).map(str::to_string);
    let description = text.lines().collect::<Vec<_>>().join(", ");
    let description = if description.is_empty() { "a process starting up".to_string() } else { description };
    Holder { description, url }
}

/// The lock, held until dropped.
pub struct WriterLock {
    file: File,
    command: String,
}

impl WriterLock {
    /// Takes the lock in `dir` (which exists) for `command`; None when another process holds
    /// it. The lock file's entry is made durable like every file the ledger creates.
    pub fn take(dir: &Path, command: &str) -> Result<Option<WriterLock>, LogError> {
        let path = dir.join(LOCK_FILE);
        let store_error = |e: std::io::Error| LogError::Store(format!("{}: {e}", path.display()));
        let file = crate::files::open_or_create(&path).map_err(store_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(store_error(e)),
        }
        let mut lock = WriterLock { file, command: command.to_string() };
        lock.describe(None).map_err(store_error)?;
        crate::files::sync_dir(dir).map_err(store_error)?;
        Ok(Some(lock))
    }

    /// Writes who holds the lock (and the daemon's URL once it listens).
    pub fn describe(&mut self, url: Option<&str>) -> std::io::Result<()> {
        let mut text = format!("pid {}\ncommand {}\n", std::process::id(), self.command);
        if let Some(url) = url {
            text.push_str(&format!("url {url}\n"));
        }
        self.file.set_len(0)?;
        self.file.seek(std::io::SeekFrom::Start(0))?;
        self.file.write_all(text.as_bytes())?;
        // Nothing under the data directory is left written and not synced (the strace check).
        self.file.sync_data()
    }
}

//! dealledger's power-loss harness: a FUSE file system that forgets what was not synced.
//!
//! In the spirit of LazyFS and ALICE. A [`Volume`] is a backing directory; [`Volume::mount`]
//! exposes it at a mount point, passing every operation through. Meanwhile a volatile layer
//! remembers, per file, the writes since that file's last fsync or fdatasync, and per directory
//! the entries created, renamed or removed since that directory's last fsync. After the process
//! under test has been killed, [`Volume::cut`] unmounts and takes all of that back, so the
//! backing directory holds exactly what a strict POSIX file system guarantees after power loss.
//! [`Cut::KeepPrefix`] is the crueller, seeded variant: per file a random prefix of the unsynced
//! writes survives, the next one torn at a 4 KiB boundary of the file.
//!
//! Boundary: this crate knows nothing of dealledger's ledger, log or sled; it sees files. The
//! only FUSE code is in `fs`; everything it decides is in `layer` and `undo` on plain
//! paths, which is why the undo logic has unit tests that need no mount.
//!
//! Design: changes reach the backing directory at once (reads are plain pass-through) and the
//! volatile layer is an undo log, not a redo buffer. A write first saves the bytes and the size
//! it overwrites; an unlink moves the entry into a trash directory beside the backing one, where
//! it is deleted for good only when its directory is synced. The cut replays the logs backwards:
//! file contents first, then directory changes in reverse global order.
//!
//! Deliberate simplifications, each on the side of losing more rather than less:
//! - A rename across directories is logged in the destination directory only, and becomes
//!   durable when the destination is synced; the source directory's sync does not matter.
//! - Only contents, sizes and names are reverted: mode, owner and times stay as last set.
//! - No hard links, no symbolic links (EPERM, as a file system without them answers).
//! - sync_file_range never reaches FUSE (without the writeback cache there are no dirty pages),
//!   and it is not a sync in this model either. close is not a sync.
//! - fsync does not fsync the backing file: the host keeps its power, only the model loses it.
//!
//! Layout:
//! - `mount`: the FUSE session's life ([`Mount`]), reliable unmounting, [`unavailable`].
//! - `fs`: the fuser `Filesystem` adapter and its open handles.
//! - `layer`: each operation applied to the backing directory and logged.
//! - `undo`: the undo logs and the cut.
//! - `tree`: our inode numbers and where each node lives.

mod fs;
mod layer;
mod mount;
mod tree;
mod undo;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use mount::{unavailable, Mount};

use crate::fs::{lock, LiveGuard};
use crate::layer::Layer;

/// How long [`Volume::mount`] waits for an earlier session (say of a [`Mount`] dropped while
/// busy) to end before refusing.
const REMOUNT_WAIT_MS: u64 = 2_000;

/// What a power cut takes away.
#[derive(Clone, Copy, Debug)]
pub enum Cut {
    /// Every unsynced write and every unsynced directory change.
    DropAll,
    /// Per file, a random prefix of its unsynced writes survives and the next one is torn at a
    /// 4 KiB boundary of the file (or dropped whole if it spans none); per directory, a random
    /// prefix of its unsynced changes survives. The same seed on the same history cuts the same.
    KeepPrefix { seed: u64 },
}

/// What a cut took away. A size change counts as a write without data bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Writes and size changes taken back whole.
    pub writes_dropped: u64,
    /// Data bytes taken back, including the torn-off tails.
    pub bytes_dropped: u64,
    /// Writes that kept a head and lost a tail.
    pub writes_torn: u64,
    /// Directory changes taken back.
    pub entries_reverted: u64,
    /// Files whose content changed in the cut.
    pub files_touched: u64,
}

/// What went through the mounts since the volume was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// fsync and fdatasync calls on files.
    pub fsyncs: u64,
    /// fsync calls on directories.
    pub fsyncdirs: u64,
    /// Write requests (the kernel may split a large write(2)).
    pub writes: u64,
    pub bytes_written: u64,
}

/// A backing directory, its trash, and the volatile layer; it outlives its mounts.
#[derive(Debug)]
pub struct Volume {
    backing: PathBuf,
    layer: Arc<Mutex<Layer>>,
    /// Set while a FUSE session serves this volume: one mount at a time.
    live: Arc<AtomicBool>,
}

impl Volume {
    /// Uses (creating them) `root/backing` and `root/trash`. Whatever an earlier run left in the
    /// trash is deleted: it was removed, and nothing can bring it back any more.
    pub fn new(root: &Path) -> io::Result<Volume> {
        let backing = root.join("backing");
        let trash = root.join("trash");
        std::fs::create_dir_all(&backing)?;
        std::fs::create_dir_all(&trash)?;
        let mut layer = Layer::new(backing.clone(), trash);
        layer.forget()?;
        Ok(Volume { backing, layer: Arc::new(Mutex::new(layer)), live: Arc::new(AtomicBool::new(false)) })
    }

    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Mounts the pass-through at `mountpoint` (created if missing); returns when it is ready to
    /// use. The volatile layer starts empty: whatever is in the backing directory is durable.
    pub fn mount(&self, mountpoint: &Path) -> io::Result<Mount> {
        let deadline = Instant::now() + Duration::from_millis(REMOUNT_WAIT_MS);
        while self.live.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!("the volume of {} is still mounted", self.backing.display()),
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
        let live = LiveGuard(self.live.clone());
        lock(&self.layer).forget()?;
        Mount::start(self.layer.clone(), live, mountpoint)
    }

    /// Unmounts, then drops what was not synced (see [`Cut`]). The caller has killed every
    /// process using the mount. A mount point still busy after a grace period is an error that
    /// names it; the mount is then detached lazily and nothing is cut.
    pub fn cut(&self, mount: Mount, cut: Cut) -> io::Result<CutReport> {
        self.check_owns(&mount)?;
        mount.finish()?;
        lock(&self.layer).cut(cut)
    }

    /// Unmounts keeping everything (a clean shutdown; the volatile state is forgotten, i.e.
    /// treated as durable).
    pub fn unmount(&self, mount: Mount) -> io::Result<()> {
        self.check_owns(&mount)?;
        mount.finish()?;
        lock(&self.layer).forget()
    }

    /// Counters since the volume was created: fsyncs (files), fsyncdirs, writes, bytes written.
    pub fn counters(&self) -> Counters {
        lock(&self.layer).counters()
    }

    fn check_owns(&self, mount: &Mount) -> io::Result<()> {
        if Arc::ptr_eq(&self.layer, &mount.layer) {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a mount of the volume of {}", mount.path().display(), self.backing.display()),
        ))
    }
}

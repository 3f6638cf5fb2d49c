//! Mounting and unmounting: the FUSE session's life, and whether FUSE can be used at all.
//!
//! fuser mounts with mount(2) when run as root (through `fusermount3` otherwise) and serves the
//! kernel from a background thread. Unmounting is ours rather than fuser's: fuser's
//! `umount_and_join` gives up on the first EBUSY and leaves the thread running, while a process
//! that was just killed may still be letting go of its files, and the cut must not start before
//! the session has answered its last request.

use std::ffi::CString;
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, Config, MountOption};

use crate::fs::{LiveGuard, PowercutFs};
use crate::layer::Layer;

/// How long an unmount retries while the mount point is busy before it names the culprit.
const UNMOUNT_BUSY_WAIT_MS: u64 = 3_000;
/// How long the session may take to answer what the kernel still sends after the unmount.
const SESSION_END_WAIT_MS: u64 = 10_000;
/// How long dropping a [`Mount`] waits for its session before leaving the thread behind.
const DROP_SESSION_WAIT_MS: u64 = 1_000;
const POLL_INTERVAL_MS: u64 = 5;

const DEV_FUSE: &str = "/dev/fuse";
const FUSERMOUNT: &str = "fusermount3";

/// Why FUSE cannot be used on this machine (not root, no /dev/fuse, no fusermount3 on PATH), or
/// None.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(format!("not root (euid {euid}): powercut mounts with mount(2)"));
    }
    if let Err(e) = OpenOptions::new().read(true).write(true).open(DEV_FUSE) {
        return Some(format!("cannot open {DEV_FUSE}: {e} (is the fuse module loaded?)"));
    }
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(FUSERMOUNT))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    if !on_path {
        return Some(format!("no {FUSERMOUNT} on PATH (Debian package fuse3)"));
    }
    None
}

/// A mounted pass-through. Dropping it unmounts best-effort (lazily if busy) and treats what
/// was not synced as durable; [`Volume::cut`](crate::Volume::cut) and
/// [`Volume::unmount`](crate::Volume::unmount) say what happened.
pub struct Mount {
    mountpoint: PathBuf,
    session: Option<BackgroundSession>,
    pub(crate) layer: Arc<Mutex<Layer>>,
}

impl fmt::Debug for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mount").field("mountpoint", &self.mountpoint).finish_non_exhaustive()
    }
}

impl Mount {
    /// Mounts and returns once the kernel's INIT has been answered, i.e. the mount is usable.
    pub(crate) fn start(layer: Arc<Mutex<Layer>>, live: LiveGuard, mountpoint: &Path) -> io::Result<Mount> {
        std::fs::create_dir_all(mountpoint)?;
        let mountpoint = mountpoint.canonicalize()?;
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("powercut".into())];
        let fs = PowercutFs::new(layer.clone(), live);
        let session = fuser::spawn_mount(fs, &mountpoint, &config).map_err(|e| {
            io::Error::new(e.kind(), format!("mounting powercut at {}: {e}", mountpoint.display()))
        })?;
        Ok(Mount { mountpoint, session: Some(session), layer })
    }

    /// Where the pass-through is mounted (canonical).
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts, then waits until the session has answered its last request.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        unmount_retrying(&self.mountpoint)?;
        let Some(session) = self.session.take() else { return Ok(()) };
        let deadline = Instant::now() + Duration::from_millis(SESSION_END_WAIT_MS);
        while !session.guard.is_finished() {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the FUSE session of {} did not end within {SESSION_END_WAIT_MS} ms of unmounting",
                        self.mountpoint.display()
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
        match session.join() {
            Ok(()) => Ok(()),
            // The kernel ends a session whose mount is gone with ENODEV, or (seen once in
            // `.ci/run`, an_unsynced_unlink_comes_back) with ECONNABORTED when it tore the
            // connection down: after our own unmount, with every caller answered, both are the end.
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(()),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("the FUSE session of {} failed: {e}", self.mountpoint.display()),
            )),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else { return };
        if let Ok(c_path) = CString::new(self.mountpoint.as_os_str().as_bytes()) {
            // SAFETY: valid NUL-terminated path.
            unsafe {
                if libc::umount2(c_path.as_ptr(), 0) != 0
                    && io::Error::last_os_error().raw_os_error() == Some(libc::EBUSY)
                {
                    // Detach now; the session ends when the last user lets go.
                    libc::umount2(c_path.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_millis(DROP_SESSION_WAIT_MS);
        while !session.guard.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
        if session.guard.is_finished() {
            let _ = session.join();
        }
    }
}

/// umount(2), retried while the mount point is busy. A mount point that is no longer mounted
/// (someone ran `fusermount3 -u`) counts as unmounted.
fn unmount_retrying(mountpoint: &Path) -> io::Result<()> {
    let c_path = CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let deadline = Instant::now() + Duration::from_millis(UNMOUNT_BUSY_WAIT_MS);
    loop {
        // SAFETY: valid NUL-terminated path.
        if unsafe { libc::umount2(c_path.as_ptr(), 0) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINVAL) => return Ok(()),
            Some(libc::EINTR) => {}
            Some(libc::EBUSY) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
            }
            Some(libc::EBUSY) => {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "mount point {} is still busy after {UNMOUNT_BUSY_WAIT_MS} ms: a process has a file, \
                         a directory or its working directory in it",
                        mountpoint.display()
                    ),
                ))
            }
            _ => {
                return Err(io::Error::new(err.kind(), format!("unmounting {}: {err}", mountpoint.display())))
            }
        }
    }
}

//! The FUSE adapter: kernel requests in, [`Layer`] calls out.
//!
//! It owns what lives only as long as one mount: the open file and directory handles. Every
//! request that fails answers with the errno of the backing call, never a panic. fsync and
//! fsyncdir are always answered: a FUSE file system that says ENOSYS to fsync makes the kernel
//! treat every later fsync as a success without asking, which would make a power-loss test
//! worthless.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};

use crate::layer::Layer;
use crate::tree::Ino;

/// How long the kernel may cache attributes and entries. Every change goes through this file
/// system, so the kernel's cache is never stale; a short TTL only bounds the damage of a bug.
const ATTR_TTL: Duration = Duration::from_secs(1);

/// Our inode numbers are not recycled within a mount, so the generation is always 0.
const GENERATION: Generation = Generation(0);

pub(crate) fn lock(layer: &Mutex<Layer>) -> MutexGuard<'_, Layer> {
    // A panic elsewhere must not wedge the file system; the layer stays consistent per call.
    layer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Clears the volume's "mounted" flag when the session drops the file system, which happens
/// only once the kernel connection is gone.
#[derive(Debug)]
pub(crate) struct LiveGuard(pub(crate) Arc<AtomicBool>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

struct OpenFile {
    ino: Ino,
    file: Arc<File>,
    append: bool,
}

struct DirEntry {
    ino: Ino,
    name: OsString,
    kind: FileType,
}

#[derive(Default)]
struct Handles {
    fh_next: u64,
    files: HashMap<u64, OpenFile>,
    dirs: HashMap<u64, Vec<DirEntry>>,
}

impl Handles {
    fn next(&mut self) -> u64 {
        self.fh_next += 1;
        self.fh_next
    }
}

pub(crate) struct PowercutFs {
    layer: Arc<Mutex<Layer>>,
    /// Never held together with the layer's lock.
    handles: Mutex<Handles>,
    _live: LiveGuard,
}

impl PowercutFs {
    pub(crate) fn new(layer: Arc<Mutex<Layer>>, live: LiveGuard) -> PowercutFs {
        PowercutFs { layer, handles: Mutex::new(Handles::default()), _live: live }
    }

    fn layer(&self) -> MutexGuard<'_, Layer> {
        lock(&self.layer)
    }

    fn handles(&self) -> MutexGuard<'_, Handles> {
        self.handles.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn open_file(&self, fh: FileHandle) -> Result<(Ino, Arc<File>, bool), Errno> {
        let handles = self.handles();
        let open = handles.files.get(&fh.0).ok_or(Errno::EBADF)?;
        Ok((open.ino, open.file.clone(), open.append))
    }

    /// Any open handle of `ino`: the only way left to a file that was unlinked for good.
    fn any_file_of(&self, ino: Ino) -> Option<Arc<File>> {
        self.handles().files.values().find(|open| open.ino == ino).map(|open| open.file.clone())
    }

    fn add_file(&self, ino: Ino, file: File, append: bool) -> FileHandle {
        let mut handles = self.handles();
        let fh = handles.next();
        handles.files.insert(fh, OpenFile { ino, file: Arc::new(file), append });
        FileHandle(fh)
    }

    fn entry(&self, req: &Request, ino: Ino, reply: ReplyEntry) {
        let meta = {
            let layer = self.layer();
            layer.location(ino).and_then(|path| own(&path, req).and_then(|()| layer.metadata(ino)))
        };
        match meta {
            Ok(meta) => reply.entry(&ATTR_TTL, &attr(ino, &meta), GENERATION),
            Err(e) => reply.error(e.into()),
        }
    }

    /// Applies a setattr: to the node's path while it has one (a handle may be read-only),
    /// else through any open handle (a file unlinked for good).
    fn set_attrs(&self, ino: Ino, change: AttrChange, fh: Option<FileHandle>) -> io::Result<FileAttr> {
        let by_handle = fh.and_then(|fh| self.open_file(fh).ok()).map(|(_, file, _)| file);
        let handle = by_handle.or_else(|| self.any_file_of(ino));
        let mut layer = self.layer();
        let target = match layer.location(ino) {
            Ok(path) => Target::Path(path),
            Err(e) => Target::Handle(handle.ok_or(e)?),
        };
        if let Some(mode) = change.mode {
            let perms = std::fs::Permissions::from_mode(mode & 0o7777);
            match &target {
                Target::Path(path) => std::fs::set_permissions(path, perms)?,
                Target::Handle(file) => file.set_permissions(perms)?,
            }
        }
        if change.uid.is_some() || change.gid.is_some() {
            match &target {
                Target::Path(path) => std::os::unix::fs::lchown(path, change.uid, change.gid)?,
                Target::Handle(file) => std::os::unix::fs::fchown(file.as_ref(), change.uid, change.gid)?,
            }
        }
        if let Some(size) = change.size {
            let file = match &target {
                Target::Path(_) => Arc::new(layer.open(ino, true)?),
                Target::Handle(file) => file.clone(),
            };
            layer.set_len(ino, &file, size)?;
        }
        if change.atime.is_some() || change.mtime.is_some() {
            let times = [timespec(change.atime), timespec(change.mtime)];
            // SAFETY: a valid NUL-terminated path or an open fd, and a two-element array.
            let rc = match &target {
                Target::Path(path) => {
                    let path = c_path(path)?;
                    let flags = libc::AT_SYMLINK_NOFOLLOW;
                    unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), flags) }
                }
                Target::Handle(file) => unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) },
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let meta = match &target {
            Target::Path(path) => std::fs::symlink_metadata(path)?,
            Target::Handle(file) => file.metadata()?,
        };
        Ok(attr(ino, &meta))
    }
}

/// What a setattr asks to change (ctime and the macOS-only times cannot be set here).
struct AttrChange {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
}

enum Target {
    Path(PathBuf),
    Handle(Arc<File>),
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn timespec(time: Option<TimeOrNow>) -> libc::timespec {
    let (tv_sec, tv_nsec) = match time {
        None => (0, libc::UTIME_OMIT),
        Some(TimeOrNow::Now) => (0, libc::UTIME_NOW),
        Some(TimeOrNow::SpecificTime(at)) => match at.duration_since(UNIX_EPOCH) {
            Ok(since) => (
                libc::time_t::try_from(since.as_secs()).unwrap_or(libc::time_t::MAX),
                since.subsec_nanos() as libc::c_long,
            ),
            Err(before) => {
                let before = before.duration();
                let secs = 0 - libc::time_t::try_from(before.as_secs()).unwrap_or(libc::time_t::MAX);
                let nanos = before.subsec_nanos();
                if nanos == 0 {
                    (secs, 0)
                } else {
                    (secs - 1, (1_000_000_000 - nanos) as libc::c_long)
                }
            }
        },
    };
    libc::timespec { tv_sec, tv_nsec }
}

/// Gives a new entry to the requesting user, as a kernel file system would. Only root can, and
/// only root needs to: anyone else is the mount's owner, whom the session alone admits.
fn own(path: &Path, req: &Request) -> io::Result<()> {
    // SAFETY: geteuid and getegid cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if euid != 0 || (req.uid() == euid && req.gid() == egid) {
        return Ok(());
    }
    let meta = std::fs::symlink_metadata(path)?;
    if meta.uid() == req.uid() && meta.gid() == req.gid() {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(req.uid()), Some(req.gid()))
}

/// A stat time as a SystemTime; one that SystemTime cannot hold reads as the epoch.
fn system_time(secs: i64, nanos: i64) -> SystemTime {
    let nanos = Duration::from_nanos(nanos.clamp(0, 999_999_999) as u64);
    let whole = Duration::from_secs(secs.unsigned_abs());
    let at = if secs >= 0 { UNIX_EPOCH.checked_add(whole) } else { UNIX_EPOCH.checked_sub(whole) };
    at.and_then(|at| at.checked_add(nanos)).unwrap_or(UNIX_EPOCH)
}

fn kind(file_type: std::fs::FileType) -> FileType {
    FileType::from_std(file_type).unwrap_or(FileType::RegularFile)
}

/// The backing file's attributes under our inode number.
fn attr(ino: Ino, meta: &std::fs::Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: meta.len(),
        blocks: meta.blocks(),
        atime: system_time(meta.atime(), meta.atime_nsec()),
        mtime: system_time(meta.mtime(), meta.mtime_nsec()),
        ctime: system_time(meta.ctime(), meta.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: kind(meta.file_type()),
        perm: (meta.mode() & 0o7777) as u16,
        nlink: u32::try_from(meta.nlink()).unwrap_or(u32::MAX),
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: meta.rdev() as u32,
        blksize: u32::try_from(meta.blksize()).unwrap_or(4096),
        flags: 0,
    }
}

impl Filesystem for PowercutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.layer().lookup(parent.0, name) {
            Ok((ino, meta)) => reply.entry(&ATTR_TTL, &attr(ino, &meta), GENERATION),
            Err(e) => reply.error(e.into()),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let by_handle = fh.and_then(|fh| self.open_file(fh).ok()).map(|(_, file, _)| file);
        let meta = match by_handle.or_else(|| self.any_file_of(ino.0)) {
            Some(file) => file.metadata(),
            None => self.layer().metadata(ino.0),
        };
        match meta {
            Ok(meta) => reply.attr(&ATTR_TTL, &attr(ino.0, &meta)),
            Err(e) => reply.error(e.into()),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = AttrChange { mode, uid, gid, size, atime, mtime };
        match self.set_attrs(ino.0, change, fh) {
            Ok(attr) => reply.attr(&ATTR_TTL, &attr),
            Err(e) => reply.error(e.into()),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let made = self.layer().mknod(parent.0, name, mode, rdev);
        match made {
            Ok(ino) => self.entry(req, ino, reply),
            Err(e) => reply.error(e.into()),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _umask: u32, reply: ReplyEntry) {
        let made = self.layer().mkdir(parent.0, name, mode);
        match made {
            Ok(ino) => self.entry(req, ino, reply),
            Err(e) => reply.error(e.into()),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.layer().unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.into()),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.layer().rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.into()),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        // Exchange and whiteout have no undo here; an unknown flag is refused like the kernel would.
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            reply.error(Errno::EINVAL);
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        match self.layer().rename(parent.0, name, newparent.0, newname, no_replace) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.into()),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let opened = {
            let mut layer = self.layer();
            layer.open(ino.0, write).and_then(|file| {
                // Only with FUSE_ATOMIC_O_TRUNC, which is not requested: the kernel then sends
                // the truncation as a setattr instead. Handled anyway, it costs nothing.
                if write && flags.0 & libc::O_TRUNC != 0 {
                    layer.set_len(ino.0, &file, 0)?;
                }
                Ok(file)
            })
        };
        match opened {
            Ok(file) => {
                let fh = self.add_file(ino.0, file, flags.0 & libc::O_APPEND != 0);
                reply.opened(fh, FopenFlags::empty());
            }
            Err(e) => reply.error(e.into()),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let (_, file, _) = match self.open_file(fh) {
            Ok(open) => open,
            Err(errno) => return reply.error(errno),
        };
        let mut buf = vec![0; size as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(e.into()),
            }
        }
        reply.data(&buf[..filled]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (ino, file, append) = match self.open_file(fh) {
            Ok(open) => open,
            Err(errno) => return reply.error(errno),
        };
        let written = (|| {
            let offset = if append { file.metadata()?.len() } else { offset };
            self.layer().write(ino, &file, offset, data)
        })();
        match written {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e.into()),
        }
    }

    /// close(2) is not a sync.
    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles().files.remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // No fsync of the backing file: durability here is the model's, the host never loses power.
        self.layer().fsync(ino.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // A snapshot at opendir, so that offsets stay meaningful while the directory changes.
        let listed = {
            let mut layer = self.layer();
            let parent = layer.parent_of(ino.0);
            layer.list(ino.0).map(|children| {
                let dot = |ino, name: &str| DirEntry { ino, name: name.into(), kind: FileType::Directory };
                let mut entries = vec![dot(ino.0, "."), dot(parent, "..")];
                entries.extend(children.into_iter().map(|(ino, name, file_type)| DirEntry {
                    ino,
                    name,
                    kind: kind(file_type),
                }));
                entries
            })
        };
        match listed {
            Ok(entries) => {
                let mut handles = self.handles();
                let fh = handles.next();
                handles.dirs.insert(fh, entries);
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e.into()),
        }
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let handles = self.handles();
        let Some(entries) = handles.dirs.get(&fh.0) else { return reply.error(Errno::EBADF) };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (index, entry) in entries.iter().enumerate().skip(start) {
            // The offset of an entry is where the next readdir resumes.
            if reply.add(INodeNo(entry.ino), index as u64 + 1, entry.kind, &entry.name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles().dirs.remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        match self.layer().fsyncdir(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.into()),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let backing = self.layer().backing().to_path_buf();
        let stat = c_path(&backing).and_then(|c_path| {
            // SAFETY: statvfs is plain old data; the path is valid and NUL-terminated.
            let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(stat)
        });
        match stat {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(e.into()),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let path = self.layer().location(ino.0);
        let allowed = path.and_then(|path| {
            let c_path = c_path(&path)?;
            // SAFETY: valid NUL-terminated path.
            if unsafe { libc::access(c_path.as_ptr(), mask.bits()) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
        match allowed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.into()),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let created = {
            let mut layer = self.layer();
            layer.create(parent.0, name, mode, flags & libc::O_EXCL != 0).and_then(|(ino, file)| {
                own(&layer.location(ino)?, req)?;
                if flags & libc::O_TRUNC != 0 {
                    layer.set_len(ino, &file, 0)?;
                }
                let meta = file.metadata()?;
                Ok((ino, file, meta))
            })
        };
        match created {
            Ok((ino, file, meta)) => {
                let fh = self.add_file(ino, file, flags & libc::O_APPEND != 0);
                reply.created(&ATTR_TTL, &attr(ino, &meta), GENERATION, fh, FopenFlags::empty());
            }
            Err(e) => reply.error(e.into()),
        }
    }
}

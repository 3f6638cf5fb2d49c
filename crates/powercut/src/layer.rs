//! The file system's operations on plain paths: apply each change to the backing directory and
//! log how to take it back.
//!
//! Nothing here knows FUSE: the [`fs`](crate::fs) adapter turns kernel requests into these
//! calls, and the unit tests drive them directly on a temporary directory.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::tree::{Ino, Place, Tree, ROOT_INO};
use crate::undo::{remove_entry, DirUndo, Undo, Volatile};
use crate::{Counters, Cut, CutReport};

/// Permission bits of a mode (with set-uid, set-gid and sticky), without the file type.
const MODE_PERMISSION_MASK: u32 = 0o7777;

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

#[derive(Debug)]
pub(crate) struct Layer {
    backing: PathBuf,
    trash: PathBuf,
    tree: Tree,
    volatile: Volatile,
    counters: Counters,
    trash_seq: u64,
}

impl Layer {
    pub(crate) fn new(backing: PathBuf, trash: PathBuf) -> Layer {
        Layer {
            backing,
            trash,
            tree: Tree::new(),
            volatile: Volatile::default(),
            counters: Counters::default(),
            trash_seq: 0,
        }
    }

    pub(crate) fn backing(&self) -> &Path {
        &self.backing
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }

    /// Where a node's bytes are, or ENOENT once nothing names them.
    pub(crate) fn location(&self, ino: Ino) -> io::Result<PathBuf> {
        match self.tree.place(ino) {
            Some(Place::Linked(path)) => Ok(self.backing.join(path)),
            Some(Place::Trashed(path)) => Ok(path.clone()),
            Some(Place::Gone) | None => Err(errno(libc::ENOENT)),
        }
    }

    /// The path of `name` in directory `parent`, relative to the backing root.
    fn child(&self, parent: Ino, name: &OsStr) -> io::Result<PathBuf> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
            return Err(errno(libc::EINVAL));
        }
        let dir = self.tree.path(parent).ok_or_else(|| errno(libc::ENOENT))?;
        Ok(dir.join(name))
    }

    /// The parent directory of a linked node (the root is its own parent).
    pub(crate) fn parent_of(&mut self, ino: Ino) -> Ino {
        match self.tree.path(ino).and_then(Path::parent).map(Path::to_path_buf) {
            Some(parent) => self.tree.ino_at_or_insert(&parent),
            None => ROOT_INO,
        }
    }

    pub(crate) fn lookup(&mut self, parent: Ino, name: &OsStr) -> io::Result<(Ino, Metadata)> {
        let path = self.child(parent, name)?;
        let meta = fs::symlink_metadata(self.backing.join(&path))?;
        Ok((self.tree.ino_at_or_insert(&path), meta))
    }

    pub(crate) fn metadata(&self, ino: Ino) -> io::Result<Metadata> {
        fs::symlink_metadata(self.location(ino)?)
    }

    /// A directory's entries in name order, each with its inode number.
    pub(crate) fn list(&mut self, dir: Ino) -> io::Result<Vec<(Ino, OsString, fs::FileType)>> {
        let dir_path = self.tree.path(dir).ok_or_else(|| errno(libc::ENOENT))?.to_path_buf();
        let mut entries = Vec::new();
        for entry in fs::read_dir(self.backing.join(&dir_path))? {
            let entry = entry?;
            entries.push((entry.file_name(), entry.file_type()?));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries
            .into_iter()
            .map(|(name, kind)| (self.tree.ino_at_or_insert(&dir_path.join(&name)), name, kind))
            .collect())
    }

    /// Opens a node's backing file. Always readable, so that a write can first read what it
    /// overwrites; never blocking, so that a FIFO cannot stall the session.
    pub(crate) fn open(&self, ino: Ino, write: bool) -> io::Result<File> {
        OpenOptions::new().read(true).write(write).custom_flags(libc::O_NONBLOCK).open(self.location(ino)?)
    }

    /// Creates (or, unless `exclusive`, opens) a regular file.
    pub(crate) fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        exclusive: bool,
    ) -> io::Result<(Ino, File)> {
        let path = self.child(parent, name)?;
        let abs = self.backing.join(&path);
        match OpenOptions::new().read(true).write(true).create_new(true).mode(mode).open(&abs) {
            Ok(file) => {
                file.set_permissions(fs::Permissions::from_mode(mode & MODE_PERMISSION_MASK))?;
                self.volatile.push_dir(parent, DirUndo::Created { name: name.to_owned() });
                Ok((self.tree.ino_at_or_insert(&path), file))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !exclusive => {
                let file = OpenOptions::new().read(true).write(true).open(&abs)?;
                Ok((self.tree.ino_at_or_insert(&path), file))
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a file, FIFO, socket or device node.
    pub(crate) fn mknod(&mut self, parent: Ino, name: &OsStr, mode: u32, rdev: u32) -> io::Result<Ino> {
        let path = self.child(parent, name)?;
        let abs = self.backing.join(&path);
        let c_path = std::ffi::CString::new(abs.as_os_str().as_bytes()).map_err(|_| errno(libc::EINVAL))?;
        // SAFETY: c_path is a valid NUL-terminated string that outlives the call.
        if unsafe { libc::mknod(c_path.as_ptr(), mode as libc::mode_t, libc::dev_t::from(rdev)) } != 0 {
            return Err(io::Error::last_os_error());
        }
        fs::set_permissions(&abs, fs::Permissions::from_mode(mode & MODE_PERMISSION_MASK))?;
        self.volatile.push_dir(parent, DirUndo::Created { name: name.to_owned() });
        Ok(self.tree.ino_at_or_insert(&path))
    }

    pub(crate) fn mkdir(&mut self, parent: Ino, name: &OsStr, mode: u32) -> io::Result<Ino> {
        let path = self.child(parent, name)?;
        let abs = self.backing.join(&path);
        fs::create_dir(&abs)?;
        fs::set_permissions(&abs, fs::Permissions::from_mode(mode & MODE_PERMISSION_MASK))?;
        self.volatile.push_dir(parent, DirUndo::Created { name: name.to_owned() });
        Ok(self.tree.ino_at_or_insert(&path))
    }

    /// Moves the entry at `path` into the trash, where it waits until its removal is durable.
    fn move_to_trash(&mut self, path: &Path) -> io::Result<PathBuf> {
        self.trash_seq += 1;
        let trash = self.trash.join(format!("{:012}", self.trash_seq));
        fs::rename(self.backing.join(path), &trash)?;
        self.tree.move_to_trash(path, &trash);
        Ok(trash)
    }

    pub(crate) fn unlink(&mut self, parent: Ino, name: &OsStr) -> io::Result<()> {
        let path = self.child(parent, name)?;
        if fs::symlink_metadata(self.backing.join(&path))?.is_dir() {
            return Err(errno(libc::EISDIR));
        }
        let trash = self.move_to_trash(&path)?;
        self.volatile.push_dir(parent, DirUndo::Removed { name: name.to_owned(), trash });
        Ok(())
    }

    pub(crate) fn rmdir(&mut self, parent: Ino, name: &OsStr) -> io::Result<()> {
        let path = self.child(parent, name)?;
        let abs = self.backing.join(&path);
        if !fs::symlink_metadata(&abs)?.is_dir() {
            return Err(errno(libc::ENOTDIR));
        }
        if fs::read_dir(&abs)?.next().is_some() {
            return Err(errno(libc::ENOTEMPTY));
        }
        let trash = self.move_to_trash(&path)?;
        self.volatile.push_dir(parent, DirUndo::Removed { name: name.to_owned(), trash });
        Ok(())
    }

    pub(crate) fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        no_replace: bool,
    ) -> io::Result<()> {
        let from = self.child(parent, name)?;
        let to = self.child(new_parent, new_name)?;
        let from_meta = fs::symlink_metadata(self.backing.join(&from))?;
        if from == to {
            return Ok(());
        }
        let replaced = match fs::symlink_metadata(self.backing.join(&to)) {
            Ok(to_meta) => {
                if no_replace {
                    return Err(errno(libc::EEXIST));
                }
                match (from_meta.is_dir(), to_meta.is_dir()) {
                    (true, false) => return Err(errno(libc::ENOTDIR)),
                    (false, true) => return Err(errno(libc::EISDIR)),
                    (true, true) if fs::read_dir(self.backing.join(&to))?.next().is_some() => {
                        return Err(errno(libc::ENOTEMPTY))
                    }
                    _ => {}
                }
                Some(self.move_to_trash(&to)?)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Err(e) = fs::rename(self.backing.join(&from), self.backing.join(&to)) {
            if let Some(trash) = &replaced {
                // Put the target back, so that a failed rename changes nothing.
                fs::rename(trash, self.backing.join(&to))?;
                self.tree.move_from_trash(trash, &to);
            }
            return Err(e);
        }
        self.tree.move_linked(&from, &to);
        self.volatile.push_dir(
            new_parent,
            DirUndo::Renamed {
                from_dir: parent,
                from_name: name.to_owned(),
                to_name: new_name.to_owned(),
                replaced_trash: replaced,
            },
        );
        Ok(())
    }

    /// Whether a cut can still reach the node's bytes (else there is nothing to take back).
    fn tracked(&self, ino: Ino) -> bool {
        matches!(self.tree.place(ino), Some(Place::Linked(_) | Place::Trashed(_)))
    }

    /// Writes `data` at `offset` of `ino`'s open backing `file`, logging the old bytes first.
    pub(crate) fn write(&mut self, ino: Ino, file: &File, offset: u64, data: &[u8]) -> io::Result<()> {
        self.counters.writes += 1;
        self.counters.bytes_written += data.len() as u64;
        if self.tracked(ino) {
            self.volatile.push_file(ino, Undo::before_write(file, offset, data.len() as u64)?)?;
        }
        file.write_all_at(data, offset)
    }

    /// Sets the size of `ino` through its open backing `file`, logging the cut-off tail first.
    pub(crate) fn set_len(&mut self, ino: Ino, file: &File, size: u64) -> io::Result<()> {
        if file.metadata()?.len() == size {
            return Ok(());
        }
        if self.tracked(ino) {
            self.volatile.push_file(ino, Undo::before_set_len(file, size)?)?;
        }
        file.set_len(size)
    }

    /// fsync or fdatasync of a file (this model has no metadata a datasync could skip).
    pub(crate) fn fsync(&mut self, ino: Ino) {
        self.counters.fsyncs += 1;
        self.volatile.file_synced(ino);
    }

    pub(crate) fn fsyncdir(&mut self, ino: Ino) -> io::Result<()> {
        self.counters.fsyncdirs += 1;
        self.volatile.dir_synced(ino, &mut self.tree)
    }

    /// Power loss: takes back what was not synced, then starts over with an empty layer.
    pub(crate) fn cut(&mut self, cut: Cut) -> io::Result<CutReport> {
        let report = self.volatile.cut(&mut self.tree, &self.backing, cut)?;
        self.forget()?;
        Ok(report)
    }

    /// A clean shutdown: everything is treated as durable and the layer starts over empty.
    pub(crate) fn forget(&mut self) -> io::Result<()> {
        self.volatile.clear();
        self.tree.reset();
        for entry in fs::read_dir(&self.trash)? {
            remove_entry(&entry?.path())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The layer on a plain temporary directory, no FUSE: apply operations, cut, compare the
    //! backing directory with what a strict POSIX file system keeps.

    use std::collections::BTreeMap;

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        layer: Layer,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let (backing, trash) = (dir.path().join("backing"), dir.path().join("trash"));
            fs::create_dir(&backing).unwrap();
            fs::create_dir(&trash).unwrap();
            Fixture { layer: Layer::new(backing, trash), _dir: dir }
        }

        fn create(&mut self, parent: Ino, name: &str, data: &[u8]) -> Ino {
            let (ino, file) = self.layer.create(parent, name.as_ref(), 0o644, true).unwrap();
            self.layer.write(ino, &file, 0, data).unwrap();
            ino
        }

        fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) {
            let file = self.layer.open(ino, true).unwrap();
            self.layer.write(ino, &file, offset, data).unwrap();
        }

        /// Every file under the backing root with its content ("dir/" for directories).
        fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
            fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
                for entry in fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    if path.is_dir() {
                        out.insert(format!("{name}/"), Vec::new());
                        walk(root, &path, out);
                    } else {
                        out.insert(name, fs::read(&path).unwrap());
                    }
                }
            }
            let mut out = BTreeMap::new();
            walk(self.layer.backing(), self.layer.backing(), &mut out);
            out
        }
    }

    fn files(entries: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        entries.iter().map(|(name, data)| (name.to_string(), data.to_vec())).collect()
    }

    #[test]
    fn unsynced_creation_is_dropped_and_synced_creation_kept() {
        let mut fx = Fixture::new();
        let a = fx.create(ROOT_INO, "a", b"aaa");
        fx.layer.fsync(a);
        fx.create(ROOT_INO, "b", b"bbb");
        fx.layer.cut(Cut::DropAll).unwrap();
        assert_eq!(fx.snapshot(), files(&[]), "a's entry was never synced");

        let a = fx.create(ROOT_INO, "a", b"aaa");
        fx.layer.fsync(a);
        fx.layer.fsyncdir(ROOT_INO).unwrap();
        fx.create(ROOT_INO, "b", b"bbb");
        fx.layer.cut(Cut::DropAll).unwrap();
        assert_eq!(fx.snapshot(), files(&[("a", b"aaa")]));
    }

    #[test]
    fn atomic_replace_survives_only_with_the_directory_sync() {
        for dir_synced in [false, true] {
            let mut fx = Fixture::new();
            let old = fx.create(ROOT_INO, "final", b"old");
            fx.layer.fsync(old);
            fx.layer.fsyncdir(ROOT_INO).unwrap();
            let tmp = fx.create(ROOT_INO, "tmp", b"new");
            fx.layer.fsync(tmp);
            fx.layer.rename(ROOT_INO, "tmp".as_ref(), ROOT_INO, "final".as_ref(), false).unwrap();
            if dir_synced {
                fx.layer.fsyncdir(ROOT_INO).unwrap();
            }
            let report = fx.layer.cut(Cut::DropAll).unwrap();
            let expected = if dir_synced { files(&[("final", b"new")]) } else { files(&[("final", b"old")]) };
            assert_eq!(fx.snapshot(), expected, "dir synced: {dir_synced}, {report:?}");
            assert_eq!(fs::read_dir(&fx.layer.trash).unwrap().count(), 0, "the trash is emptied");
        }
    }

    #[test]
    fn unlink_rmdir_and_renamed_directories_come_back() {
        let mut fx = Fixture::new();
        let d = fx.layer.mkdir(ROOT_INO, "d".as_ref(), 0o755).unwrap();
        let f = fx.create(d, "f", b"content");
        fx.layer.fsync(f);
        fx.layer.fsyncdir(d).unwrap();
        fx.layer.fsyncdir(ROOT_INO).unwrap();
        let before = fx.snapshot();

        fx.layer.rename(ROOT_INO, "d".as_ref(), ROOT_INO, "e".as_ref(), false).unwrap();
        fx.write(f, 0, b"CONTENT and more");
        fx.layer.unlink(d, "f".as_ref()).unwrap();
        fx.layer.rmdir(ROOT_INO, "e".as_ref()).unwrap();
        let report = fx.layer.cut(Cut::DropAll).unwrap();
        assert_eq!(fx.snapshot(), before, "{report:?}");
        assert_eq!(report.entries_reverted, 3);
        assert_eq!(report.writes_dropped, 1);
    }

    #[test]
    fn a_removal_made_durable_cannot_be_undone() {
        let mut fx = Fixture::new();
        let f = fx.create(ROOT_INO, "f", b"x");
        fx.layer.fsync(f);
        fx.layer.fsyncdir(ROOT_INO).unwrap();
        let file = fx.layer.open(f, true).unwrap();
        fx.layer.unlink(ROOT_INO, "f".as_ref()).unwrap();
        fx.layer.fsyncdir(ROOT_INO).unwrap();
        // Writing to an unlinked, open file is still fine; nothing remains to revert.
        fx.layer.write(f, &file, 0, b"more").unwrap();
        assert_eq!(fx.layer.cut(Cut::DropAll).unwrap().writes_dropped, 0);
        assert_eq!(fx.snapshot(), files(&[]));
    }

    #[test]
    fn keep_prefix_is_deterministic_and_keeps_a_prefix() {
        let history = |fx: &mut Fixture| {
            let f = fx.create(ROOT_INO, "f", b"");
            fx.layer.fsync(f);
            fx.layer.fsyncdir(ROOT_INO).unwrap();
            let chunks: Vec<Vec<u8>> = (0..3u8).map(|i| vec![b'a' + i; 10 * 1024]).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                fx.write(f, (i * chunk.len()) as u64, chunk);
            }
            chunks.concat()
        };
        let mut sizes = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let (mut first, mut second) = (Fixture::new(), Fixture::new());
            let all = history(&mut first);
            history(&mut second);
            let report = first.layer.cut(Cut::KeepPrefix { seed }).unwrap();
            second.layer.cut(Cut::KeepPrefix { seed }).unwrap();
            let kept = first.snapshot().remove("f").unwrap();
            assert_eq!(second.snapshot().remove("f").unwrap(), kept, "seed {seed}");
            assert_eq!(kept[..], all[..kept.len()], "seed {seed}: a prefix of the writes");
            let len = kept.len();
            assert!(len % 4096 == 0 || len % (10 * 1024) == 0, "seed {seed}: length {len}, {report:?}");
            sizes.insert(len);
        }
        assert!(sizes.len() > 3, "64 seeds give a variety of outcomes: {sizes:?}");
    }
}

//! The volatile layer: undo logs of what is not yet durable, and the power cut that applies them.
//!
//! Every change reaches the backing directory at once, so reads need no overlay. What power
//! loss would take away is remembered as the means to take it back: per file, the old bytes and
//! the old size under each write and size change since the file's last fsync; per directory,
//! the entries created, removed or renamed since its last fsync, each with a global sequence
//! number. A cut reverts file contents first (newest change first, on each file's current path),
//! then directory changes in reverse global order, so every step sees the state right after the
//! change it undoes.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::tree::{Ino, Place, Tree};
use crate::{Cut, CutReport};

/// A torn write keeps its bytes up to a boundary of this many bytes in the file: the page size,
/// the unit in which a page cache writes back and most disks promise atomicity.
pub(crate) const TEAR_ALIGN_BYTES: u64 = 4096;

/// Memory the file undo logs may hold at once. A writer past it gets ENOSPC rather than the
/// test machine running out of memory; a test that writes this much between fsyncs is not a
/// power-loss test any more.
pub(crate) const RETAINED_BYTES_MAX: u64 = 1 << 30;

/// How to take back one change to a file's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Undo {
    /// `len` bytes were written at `offset` over `old_bytes` (the part of the range that
    /// existed) in a file of `old_size` bytes.
    Write { offset: u64, len: u64, old_size: u64, old_bytes: Vec<u8> },
    /// The size went from `old_size` to `new_size`; `old_tail` holds the bytes a shrink cut off.
    SetLen { new_size: u64, old_size: u64, old_tail: Vec<u8> },
}

impl Undo {
    /// Reads what a write of `len` bytes at `offset` is about to overwrite.
    pub(crate) fn before_write(file: &File, offset: u64, len: u64) -> io::Result<Undo> {
        let old_size = file.metadata()?.len();
        let old_end = offset.saturating_add(len).min(old_size);
        let old_bytes = read_range(file, offset, old_end.saturating_sub(offset))?;
        Ok(Undo::Write { offset, len, old_size, old_bytes })
    }

    /// Reads what setting the size to `new_size` is about to cut off.
    pub(crate) fn before_set_len(file: &File, new_size: u64) -> io::Result<Undo> {
        let old_size = file.metadata()?.len();
        let old_tail = read_range(file, new_size, old_size.saturating_sub(new_size))?;
        Ok(Undo::SetLen { new_size, old_size, old_tail })
    }

    /// Memory the entry holds: the saved bytes, plus the entry itself so that a flood of
    /// appends (which save nothing) is bounded too.
    pub(crate) fn retained_bytes(&self) -> u64 {
        let saved = match self {
            Undo::Write { old_bytes, .. } => old_bytes.len(),
            Undo::SetLen { old_tail, .. } => old_tail.len(),
        };
        (saved + std::mem::size_of::<Undo>()) as u64
    }

    /// Data bytes the change wrote (a size change writes none).
    fn written_bytes(&self) -> u64 {
        match self {
            Undo::Write { len, .. } => *len,
            Undo::SetLen { .. } => 0,
        }
    }

    /// Puts the file back as it was before the change. The file must be exactly as the change
    /// left it, which holds when the changes after it were reverted first.
    pub(crate) fn revert(&self, file: &File) -> io::Result<()> {
        match self {
            Undo::Write { offset, old_size, old_bytes, .. } => {
                file.write_all_at(old_bytes, *offset)?;
                file.set_len(*old_size)
            }
            Undo::SetLen { new_size, old_size, old_tail } => {
                file.set_len(*old_size)?;
                file.write_all_at(old_tail, *new_size)
            }
        }
    }

    /// The offsets a write may tear at: aligned, strictly inside the written range.
    fn tear_offsets(&self) -> Option<(u64, u64)> {
        let Undo::Write { offset, len, .. } = self else { return None };
        let end = offset.checked_add(*len)?;
        let first = (offset / TEAR_ALIGN_BYTES + 1) * TEAR_ALIGN_BYTES;
        let last = end.checked_sub(1)? / TEAR_ALIGN_BYTES * TEAR_ALIGN_BYTES;
        (first <= last).then_some((first, last))
    }

    /// Keeps the write's bytes before `at` and takes back the rest: the old bytes return where
    /// the file had them, and the size becomes the larger of the old size and `at`.
    fn tear(&self, file: &File, at: u64) -> io::Result<()> {
        let Undo::Write { offset, old_size, old_bytes, .. } = self else {
            return self.revert(file);
        };
        let kept = usize::try_from(at - offset).unwrap_or(usize::MAX).min(old_bytes.len());
        file.write_all_at(&old_bytes[kept..], at)?;
        file.set_len((*old_size).max(at))
    }
}

fn read_range(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    let mut bytes = vec![0; len];
    file.read_exact_at(&mut bytes, offset)?;
    Ok(bytes)
}

/// How to take back one change to a directory's entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DirUndo {
    /// `name` was created (file, node or directory).
    Created { name: OsString },
    /// `name` was removed; its backing entry waits at `trash`.
    Removed { name: OsString, trash: PathBuf },
    /// `from_dir/from_name` was renamed to `to_name` in this directory; the entry it replaced
    /// waits at `replaced_trash`.
    Renamed { from_dir: Ino, from_name: OsString, to_name: OsString, replaced_trash: Option<PathBuf> },
}

impl DirUndo {
    fn trash(&self) -> Option<&Path> {
        match self {
            DirUndo::Created { .. } => None,
            DirUndo::Removed { trash, .. } => Some(trash),
            DirUndo::Renamed { replaced_trash, .. } => replaced_trash.as_deref(),
        }
    }
}

#[derive(Clone, Debug)]
struct DirChange {
    seq: u64,
    undo: DirUndo,
}

/// Everything since the last syncs: the per-file and per-directory undo logs.
#[derive(Debug, Default)]
pub(crate) struct Volatile {
    files: HashMap<Ino, Vec<Undo>>,
    dirs: HashMap<Ino, Vec<DirChange>>,
    seq_next: u64,
    retained_bytes: u64,
}

impl Volatile {
    /// Logs a change to `ino`'s content; call it before making the change.
    pub(crate) fn push_file(&mut self, ino: Ino, undo: Undo) -> io::Result<()> {
        let retained = self.retained_bytes.saturating_add(undo.retained_bytes());
        if retained > RETAINED_BYTES_MAX {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.retained_bytes = retained;
        self.files.entry(ino).or_default().push(undo);
        Ok(())
    }

    pub(crate) fn push_dir(&mut self, dir: Ino, undo: DirUndo) {
        let seq = self.seq_next;
        self.seq_next += 1;
        self.dirs.entry(dir).or_default().push(DirChange { seq, undo });
    }

    /// fsync or fdatasync of a file: its content is durable.
    pub(crate) fn file_synced(&mut self, ino: Ino) {
        if let Some(log) = self.files.remove(&ino) {
            let retained: u64 = log.iter().map(Undo::retained_bytes).sum();
            self.retained_bytes = self.retained_bytes.saturating_sub(retained);
        }
    }

    /// fsync of a directory: its entries are durable, and what it removed is deleted for good.
    pub(crate) fn dir_synced(&mut self, dir: Ino, tree: &mut Tree) -> io::Result<()> {
        for change in self.dirs.remove(&dir).unwrap_or_default() {
            let Some(trash) = change.undo.trash() else { continue };
            remove_entry(trash)?;
            if let Some(ino) = tree.forget_trash(trash) {
                // No name reaches those bytes any more, so no cut can bring them back.
                self.file_synced(ino);
            }
        }
        Ok(())
    }

    pub(crate) fn clear(&mut self) {
        self.files.clear();
        self.dirs.clear();
        self.retained_bytes = 0;
    }

    /// Takes back what `cut` says power loss takes, then forgets everything.
    pub(crate) fn cut(&mut self, tree: &mut Tree, backing: &Path, cut: Cut) -> io::Result<CutReport> {
        let mut rng = match cut {
            Cut::DropAll => None,
            Cut::KeepPrefix { seed } => Some(ChaCha8Rng::seed_from_u64(seed)),
        };
        let mut report = CutReport::default();

        // Files in path order, so that a seed draws the same numbers for the same history
        // whatever inode numbers the kernel's lookups happened to allocate.
        let mut files: Vec<(PlaceKey, Ino)> = self
            .files
            .iter()
            .filter(|(_, log)| !log.is_empty())
            .filter_map(|(ino, _)| Some((PlaceKey::of(tree.place(*ino)?)?, *ino)))
            .collect();
        files.sort();
        for (key, ino) in files {
            let log = self.files.remove(&ino).unwrap_or_default();
            let keep = rng.as_mut().map_or(0, |rng| rng.gen_range(0..=log.len()));
            revert_file(&key.location(backing), &log, keep, rng.as_mut(), &mut report)?;
        }

        let mut dirs: Vec<(PlaceKey, Ino)> =
            self.dirs.keys().filter_map(|ino| Some((PlaceKey::of(tree.place(*ino)?)?, *ino))).collect();
        dirs.sort();
        let mut reverts: Vec<(DirChange, Ino)> = Vec::new();
        for (_, dir) in dirs {
            let mut changes = self.dirs.remove(&dir).unwrap_or_default();
            let keep = rng.as_mut().map_or(0, |rng| rng.gen_range(0..=changes.len()));
            reverts.extend(changes.drain(keep..).map(|change| (change, dir)));
        }
        reverts.sort_by_key(|(change, _)| Reverse(change.seq));
        for (change, dir) in reverts {
            if revert_dir_change(tree, backing, dir, &change.undo)? {
                report.entries_reverted += 1;
            }
        }

        self.clear();
        Ok(report)
    }
}

/// A stable order over the places a node can be in: linked paths, then trash paths.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PlaceKey {
    Linked(PathBuf),
    Trashed(PathBuf),
}

impl PlaceKey {
    fn of(place: &Place) -> Option<PlaceKey> {
        match place {
            Place::Linked(path) => Some(PlaceKey::Linked(path.clone())),
            Place::Trashed(path) => Some(PlaceKey::Trashed(path.clone())),
            Place::Gone => None,
        }
    }

    fn location(&self, backing: &Path) -> PathBuf {
        match self {
            PlaceKey::Linked(path) => backing.join(path),
            PlaceKey::Trashed(path) => path.clone(),
        }
    }
}

/// Keeps the first `keep` changes of `log`, tears the next one if `rng` allows, drops the rest.
fn revert_file(
    path: &Path,
    log: &[Undo],
    keep: usize,
    rng: Option<&mut ChaCha8Rng>,
    report: &mut CutReport,
) -> io::Result<()> {
    let Some(first_dropped) = log.get(keep) else { return Ok(()) };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cut: opening {}: {e}", path.display())))?;
    let context = |e: io::Error| io::Error::new(e.kind(), format!("cut: reverting {}: {e}", path.display()));
    for undo in log[keep + 1..].iter().rev() {
        undo.revert(&file).map_err(context)?;
        report.writes_dropped += 1;
        report.bytes_dropped += undo.written_bytes();
    }
    let tear_at = match (rng, first_dropped.tear_offsets()) {
        (Some(rng), Some((first, last))) => {
            Some(first + rng.gen_range(0..=(last - first) / TEAR_ALIGN_BYTES) * TEAR_ALIGN_BYTES)
        }
        _ => None,
    };
    match (tear_at, first_dropped) {
        (Some(at), Undo::Write { offset, len, .. }) => {
            first_dropped.tear(&file, at).map_err(context)?;
            report.writes_torn += 1;
            report.bytes_dropped += offset + len - at;
        }
        _ => {
            first_dropped.revert(&file).map_err(context)?;
            report.writes_dropped += 1;
            report.bytes_dropped += first_dropped.written_bytes();
        }
    }
    report.files_touched += 1;
    Ok(())
}

/// Undoes one directory change. Returns false when there is nothing to undo: the directory
/// itself is gone, or a change kept elsewhere moved the entry away or took its name (a rename
/// across directories is durable with its destination, see the crate documentation).
fn revert_dir_change(tree: &mut Tree, backing: &Path, dir: Ino, undo: &DirUndo) -> io::Result<bool> {
    let Some(dir_path) = tree.path(dir).map(Path::to_path_buf) else { return Ok(false) };
    let context = |e: io::Error| io::Error::new(e.kind(), format!("cut: in {}: {e}", dir_path.display()));
    match undo {
        DirUndo::Created { name } => {
            let path = dir_path.join(name);
            if !remove_entry(&backing.join(&path)).map_err(context)? {
                return Ok(false);
            }
            tree.remove_linked(&path);
        }
        DirUndo::Removed { name, trash } => {
            let path = dir_path.join(name);
            if !entry_exists(trash)? || entry_exists(&backing.join(&path))? {
                return Ok(false);
            }
            fs::rename(trash, backing.join(&path)).map_err(context)?;
            tree.move_from_trash(trash, &path);
        }
        DirUndo::Renamed { from_dir, from_name, to_name, replaced_trash } => {
            let Some(from_path) = tree.path(*from_dir).map(|p| p.join(from_name)) else { return Ok(false) };
            let to_path = dir_path.join(to_name);
            if !entry_exists(&backing.join(&to_path))? || entry_exists(&backing.join(&from_path))? {
                return Ok(false);
            }
            fs::rename(backing.join(&to_path), backing.join(&from_path)).map_err(context)?;
            tree.move_linked(&to_path, &from_path);
            if let Some(trash) = replaced_trash {
                if entry_exists(trash)? {
                    fs::rename(trash, backing.join(&to_path)).map_err(context)?;
                    tree.move_from_trash(trash, &to_path);
                }
            }
        }
    }
    Ok(true)
}

fn entry_exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// Deletes a file or a whole directory tree. Returns false if there was nothing there.
pub(crate) fn remove_entry(path: &Path) -> io::Result<bool> {
    let removed = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io::Error::new(e.kind(), format!("removing {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `writes` to a file holding `before`, logging each, then cuts with `keep` kept
    /// and (if given) the next write torn at `tear_at`; returns the file's bytes.
    fn check(before: &[u8], writes: &[(u64, &[u8])], keep: usize, tear_at: Option<u64>) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, before).unwrap();
        let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut log = Vec::new();
        for (offset, data) in writes {
            log.push(Undo::before_write(&file, *offset, data.len() as u64).unwrap());
            file.write_all_at(data, *offset).unwrap();
        }
        for undo in log[keep + 1..].iter().rev() {
            undo.revert(&file).unwrap();
        }
        match tear_at {
            Some(at) => log[keep].tear(&file, at).unwrap(),
            None => log[keep].revert(&file).unwrap(),
        }
        fs::read(&path).unwrap()
    }

    #[test]
    fn reverting_every_write_restores_the_old_bytes_and_size() {
        let before = b"0123456789".to_vec();
        assert_eq!(check(&before, &[(2, b"ab"), (8, b"xyzw"), (20, b"hole")], 0, None), before);
        assert_eq!(check(&before, &[(0, b"abcdefghijklmnop")], 0, None), before);
    }

    #[test]
    fn keeping_a_prefix_keeps_exactly_those_writes() {
        assert_eq!(check(b"0123456789", &[(2, b"ab"), (8, b"xyzw"), (0, b"Q")], 1, None), b"01ab456789");
    }

    #[test]
    fn a_torn_write_keeps_its_head_and_the_old_tail() {
        let before = vec![b'o'; 6000];
        let new = vec![b'n'; 5000];
        let after = check(&before, &[(3000, &new)], 0, Some(4096));
        assert_eq!(after.len(), 6000, "the old size is larger than the tear offset");
        assert!(after[..3000].iter().all(|b| *b == b'o'));
        assert!(after[3000..4096].iter().all(|b| *b == b'n'));
        assert!(after[4096..].iter().all(|b| *b == b'o'));
        let appended = check(b"", &[(0, &new)], 0, Some(4096));
        assert_eq!(appended, vec![b'n'; 4096], "an append torn at 4096 leaves 4096 bytes");
    }

    #[test]
    fn a_size_change_reverts_to_the_old_size_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"0123456789").unwrap();
        let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let shrink = Undo::before_set_len(&file, 3).unwrap();
        file.set_len(3).unwrap();
        let grow = Undo::before_set_len(&file, 100).unwrap();
        file.set_len(100).unwrap();
        grow.revert(&file).unwrap();
        shrink.revert(&file).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"0123456789");
    }

    #[test]
    fn tear_offsets_are_aligned_and_strictly_inside() {
        let write = |offset, len| Undo::Write { offset, len, old_size: 0, old_bytes: Vec::new() };
        assert_eq!(write(0, 4096).tear_offsets(), None, "a single aligned page cannot tear");
        assert_eq!(write(0, 4097).tear_offsets(), Some((4096, 4096)));
        assert_eq!(write(4096, 3 * 4096).tear_offsets(), Some((8192, 12288)));
        assert_eq!(write(100, 10 * 1024).tear_offsets(), Some((4096, 8192)));
        assert_eq!(write(5000, 100).tear_offsets(), None);
    }
}

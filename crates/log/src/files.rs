//! Files the project writes, all written one way, so that none is written through a link
//! someone planted in its way (a report's `--out`, an export's directory, the data directory).
//!
//! A new file ([`NewFile`]) is made exclusively under a random name in its target's directory
//! (`O_CREAT | O_EXCL`, which refuses any name that exists, a link included: `tempfile`),
//! written, synced, and renamed over its target, which replaces a link standing there instead of
//! writing through it; then the directory is synced, so the new name survives a power cut. A
//! file that is appended to ([`open_append`]) is opened with `O_NOFOLLOW`: a link there is an
//! error, never followed.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Permissions of a new file, before the process's umask: what `File::create` gives.
#[cfg(unix)]
const NEW_FILE_MODE: u32 = 0o644;

/// A file being written, put at its path by [`NewFile::commit`]; until then nothing is there,
/// and dropped uncommitted it leaves nothing behind.
pub struct NewFile {
    temporary: tempfile::NamedTempFile,
    path: PathBuf,
}

/// The directory a path's file is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

impl NewFile {
    /// Starts the file that [`NewFile::commit`] puts at `path`.
    pub fn create(path: &Path) -> io::Result<NewFile> {
        let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(NEW_FILE_MODE));
        }
        let temporary = builder.tempfile_in(parent_of(path))?;
        Ok(NewFile { temporary, path: path.to_path_buf() })
    }

    /// Where the file will be.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the file's data, renames it over its path and syncs the directory: on return the
    /// file is at its path, durably.
    pub fn commit(self) -> io::Result<()> {
        self.temporary.as_file().sync_data()?;
        let path = self.path;
        self.temporary.persist(&path).map_err(|e| e.error)?;
        sync_dir(parent_of(&path))
    }
}

impl Write for NewFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temporary.as_file_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temporary.as_file_mut().flush()
    }
}

/// Writes `bytes` as the file at `path`, as [`NewFile`] does: after a crash `path` holds its
/// old content or all of `bytes`.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = NewFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Opens the file at `path` to append to it (and read it); a link at `path` is refused, not
/// followed.
pub fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true);
    no_follow(&mut options);
    options.open(path)
}

/// [`open_append`], making the file if it is not there (empty).
pub fn open_append_or_create(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    no_follow(&mut options);
    options.open(path)
}

/// Opens the file at `path` to write in place (and read); a link at `path` is refused, not
/// followed.
pub fn open_existing(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    no_follow(&mut options);
    options.open(path)
}

/// [`open_existing`], making the file if it is not there (empty).
pub fn open_or_create(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    no_follow(&mut options);
    options.open(path)
}

fn no_follow(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(not(unix))]
    let _ = options;
}

/// fsync of a directory: makes the entries created, renamed or removed in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_replaces_a_link_at_its_path_and_never_writes_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let precious = dir.path().join("precious");
        std::fs::write(&precious, "keep").unwrap();
        let target = dir.path().join("out");
        std::os::unix::fs::symlink(&precious, &target).unwrap();
        write_new(&target, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep");
        assert!(target.symlink_metadata().unwrap().file_type().is_file());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        // Dropped before its commit: nothing at the path, nothing left beside it.
        let other = dir.path().join("other");
        let mut file = NewFile::create(&other).unwrap();
        file.write_all(b"x").unwrap();
        drop(file);
        assert!(!other.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        // Appending through a link is refused.
        let log = dir.path().join("log");
        std::os::unix::fs::symlink(&precious, &log).unwrap();
        assert!(open_append(&log).is_err() && open_append_or_create(&log).is_err());
        assert!(open_existing(&log).is_err() && open_or_create(&log).is_err());
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep");
    }
}

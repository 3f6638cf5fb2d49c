//! End-to-end through the kernel: std::fs on the mount point, a cut, then the backing directory
//! checked against what a strict POSIX file system keeps after power loss.
//!
//! These need root and FUSE; without them each test says why and passes, unless
//! DEALLEDGER_REQUIRE_TOOLS is set.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dealledger_powercut::{unavailable, Cut, Mount, Volume};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// False (after saying why) when FUSE cannot be used here.
fn fuse_available() -> bool {
    if let Some(why) = unavailable() {
        if std::env::var_os("DEALLEDGER_REQUIRE_TOOLS").is_some() {
            panic!("FUSE required: {why}")
        }
        eprintln!("skipped: {why}");
        return false;
    }
    true
}

struct Fixture {
    volume: Volume,
    mountpoint: PathBuf,
    // Last, so that the directory outlives any mount in it.
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let volume = Volume::new(dir.path()).unwrap();
        Fixture { volume, mountpoint: dir.path().join("mnt"), _dir: dir }
    }

    fn mount(&self) -> Mount {
        self.volume.mount(&self.mountpoint).unwrap()
    }

    fn at(&self, name: &str) -> PathBuf {
        self.mountpoint.join(name)
    }

    fn backing(&self, name: &str) -> PathBuf {
        self.volume.backing().join(name)
    }

    fn drop_all(&self, mount: Mount) -> dealledger_powercut::CutReport {
        self.volume.cut(mount, Cut::DropAll).unwrap()
    }

    /// Writes a file and makes it durable: file, then its directory.
    fn durable(&self, name: &str, data: &[u8]) {
        let mut file = File::create(self.at(name)).unwrap();
        file.write_all(data).unwrap();
        file.sync_all().unwrap();
        sync_dir(self.at(name).parent().unwrap());
    }
}

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

fn write_file(path: &Path, data: &[u8]) -> File {
    let mut file = File::create(path).unwrap();
    file.write_all(data).unwrap();
    file
}

#[test]
fn an_unsynced_new_file_is_gone() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let mount = fx.mount();
    write_file(&fx.at("new"), b"hello");
    assert_eq!(fs::read(fx.backing("new")).unwrap(), b"hello", "passed through at once");
    let report = fx.drop_all(mount);
    assert!(!fx.backing("new").exists(), "{report:?}");
    assert_eq!(report.entries_reverted, 1);
}

#[test]
fn a_new_file_needs_its_directory_synced_too() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let mount = fx.mount();
    write_file(&fx.at("file_only"), b"data").sync_all().unwrap();
    fx.drop_all(mount);
    assert!(!fx.backing("file_only").exists(), "fsync of the file does not persist its name");

    let mount = fx.mount();
    let before = fx.volume.counters();
    fx.durable("both", b"data");
    let counted = fx.volume.counters();
    fx.drop_all(mount);
    assert_eq!(fs::read(fx.backing("both")).unwrap(), b"data");
    assert_eq!(counted.fsyncs - before.fsyncs, 1);
    assert_eq!(counted.fsyncdirs - before.fsyncdirs, 1);
    assert_eq!(counted.bytes_written - before.bytes_written, 4);
}

#[test]
fn unsynced_overwrites_and_extensions_are_taken_back() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let mount = fx.mount();
    fx.durable("f", b"0123456789");
    let mut file = OpenOptions::new().write(true).open(fx.at("f")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"abc", 2).unwrap();
    file.flush().unwrap();
    drop(file);
    assert_eq!(fs::read(fx.at("f")).unwrap(), b"01abc56789");
    fx.drop_all(mount);
    assert_eq!(fs::read(fx.backing("f")).unwrap(), b"0123456789");

    let mount = fx.mount();
    let mut file = OpenOptions::new().append(true).open(fx.at("f")).unwrap();
    file.write_all(b" and a longer tail").unwrap();
    drop(file);
    assert_eq!(fs::metadata(fx.at("f")).unwrap().len(), 28);
    fx.drop_all(mount);
    assert_eq!(fs::read(fx.backing("f")).unwrap(), b"0123456789", "truncated back");
}

#[test]
fn an_unsynced_truncation_is_taken_back() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let mount = fx.mount();
    fx.durable("f", b"precious");
    let mut file = OpenOptions::new().write(true).truncate(true).open(fx.at("f")).unwrap();
    file.write_all(b"junk").unwrap();
    drop(file);
    assert_eq!(fs::read(fx.at("f")).unwrap(), b"junk");
    let report = fx.drop_all(mount);
    assert_eq!(fs::read(fx.backing("f")).unwrap(), b"precious", "{report:?}");
    assert_eq!(report.writes_dropped, 2, "the truncation and the write");
}

/// One run of the atomic-replace pattern: write tmp, fsync tmp, rename over final.
struct ReplaceCase {
    /// tmp's directory entry was synced before the rename.
    tmp_synced: bool,
    /// The directory was synced after the rename.
    dir_synced: bool,
    /// What the backing directory holds after the cut.
    survivors: &'static [(&'static str, &'static [u8])],
}

#[test]
fn atomic_replace_needs_the_directory_sync() {
    if !fuse_available() {
        return;
    }
    let cases = [
        ReplaceCase { tmp_synced: false, dir_synced: true, survivors: &[("final", b"new")] },
        ReplaceCase { tmp_synced: true, dir_synced: false, survivors: &[("final", b"old"), ("tmp", b"new")] },
        ReplaceCase { tmp_synced: false, dir_synced: false, survivors: &[("final", b"old")] },
    ];
    for case in cases {
        let fx = Fixture::new();
        let mount = fx.mount();
        fx.durable("final", b"old");
        let tmp = write_file(&fx.at("tmp"), b"new");
        tmp.sync_all().unwrap();
        if case.tmp_synced {
            sync_dir(&fx.mountpoint);
        }
        fs::rename(fx.at("tmp"), fx.at("final")).unwrap();
        if case.dir_synced {
            sync_dir(&fx.mountpoint);
        }
        drop(tmp);
        let report = fx.drop_all(mount);
        let expected: BTreeMap<String, Option<Vec<u8>>> =
            case.survivors.iter().map(|(name, data)| (name.to_string(), Some(data.to_vec()))).collect();
        let (tmp_synced, dir_synced) = (case.tmp_synced, case.dir_synced);
        assert_eq!(
            walk(fx.volume.backing()),
            expected,
            "tmp synced {tmp_synced}, dir synced {dir_synced}: {report:?}"
        );
    }
}

#[test]
fn an_unsynced_unlink_comes_back() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let mount = fx.mount();
    fx.durable("f", b"still here");
    fs::remove_file(fx.at("f")).unwrap();
    assert!(!fx.backing("f").exists());
    fx.drop_all(mount);
    assert_eq!(fs::read(fx.backing("f")).unwrap(), b"still here");

    let mount = fx.mount();
    fs::remove_file(fx.at("f")).unwrap();
    sync_dir(&fx.mountpoint);
    fx.drop_all(mount);
    assert!(!fx.backing("f").exists(), "a synced unlink is durable");
}

#[test]
fn an_unsynced_directory_takes_its_synced_files_along() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let mount = fx.mount();
    fs::create_dir(fx.at("d")).unwrap();
    fx.durable("d/f", b"in d");
    fs::create_dir(fx.at("d/e")).unwrap();
    let entries: Vec<_> = fs::read_dir(fx.at("d")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    fx.drop_all(mount);
    assert!(!fx.backing("d").exists(), "d's own entry in the root was never synced");
}

/// Three unsynced 10 KiB writes to a durable empty file, cut with `seed`; the file's bytes.
fn three_writes_cut(seed: u64) -> (Vec<u8>, Vec<u8>) {
    let fx = Fixture::new();
    let mount = fx.mount();
    fx.durable("f", b"");
    let chunks: Vec<Vec<u8>> = (0..3u8).map(|i| vec![b'a' + i; 10 * 1024]).collect();
    let mut file = OpenOptions::new().write(true).open(fx.at("f")).unwrap();
    for chunk in &chunks {
        file.write_all(chunk).unwrap();
    }
    drop(file);
    fx.volume.cut(mount, Cut::KeepPrefix { seed }).unwrap();
    (fs::read(fx.backing("f")).unwrap(), chunks.concat())
}

#[test]
fn keep_prefix_is_deterministic_and_tears_at_4_kib() {
    if !fuse_available() {
        return;
    }
    let mut lengths = std::collections::BTreeSet::new();
    for seed in 0..6 {
        let (kept, all) = three_writes_cut(seed);
        let (again, _) = three_writes_cut(seed);
        assert_eq!(kept, again, "seed {seed} cuts the same twice");
        assert_eq!(kept[..], all[..kept.len()], "seed {seed}: a prefix of the writes");
        let len = kept.len();
        assert!(len % 4096 == 0 || len % (10 * 1024) == 0, "seed {seed}: cut at {len}");
        lengths.insert(len);
    }
    assert!(lengths.len() > 1, "seeds differ: {lengths:?}");
}

#[test]
fn a_second_mount_after_a_cut_behaves_the_same() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let started = Instant::now();
    let mount = fx.mount();
    let mounted = started.elapsed();
    fx.durable("kept", b"1");
    write_file(&fx.at("lost"), b"2");
    let started = Instant::now();
    fx.drop_all(mount);
    eprintln!("mount took {mounted:?}, unmount and cut took {:?}", started.elapsed());

    let mount = fx.mount();
    assert_eq!(fs::read(fx.at("kept")).unwrap(), b"1");
    assert!(!fx.at("lost").exists());
    fx.durable("kept2", b"4");
    write_file(&fx.at("lost"), b"3");
    let names: Vec<_> = fs::read_dir(&fx.mountpoint).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let report = fx.drop_all(mount);
    assert!(!fx.backing("lost").exists(), "{report:?}");
    assert_eq!(fs::read(fx.backing("kept2")).unwrap(), b"4");

    let mount = fx.mount();
    write_file(&fx.at("clean"), b"5");
    fx.volume.unmount(mount).unwrap();
    assert_eq!(fs::read(fx.backing("clean")).unwrap(), b"5", "a clean unmount keeps everything");
}

#[test]
fn sync_file_range_is_not_a_sync() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let mount = fx.mount();
    fx.durable("f", b"");
    let file = write_file(&fx.at("f"), b"written, then sync_file_range'd");
    let flags =
        libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: a valid open fd.
    assert_eq!(unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, flags) }, 0);
    drop(file);
    fx.drop_all(mount);
    assert_eq!(fs::read(fx.backing("f")).unwrap(), b"");
}

#[test]
fn a_killed_writer_does_not_block_the_cut() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let mount = fx.mount();
    fx.durable("log", b"synced\n");
    let log = OpenOptions::new().append(true).open(fx.at("log")).unwrap();
    let mut child = Command::new("sh")
        .args(["-c", "echo unsynced; exec sleep 60"])
        .stdout(Stdio::from(log))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::metadata(fx.at("log")).unwrap().len() == 7 {
        assert!(Instant::now() < deadline, "the child never wrote");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let report = fx.drop_all(mount);
    assert_eq!(fs::read(fx.backing("log")).unwrap(), b"synced\n", "{report:?}");
}

#[test]
fn a_busy_mount_point_is_named_and_the_volume_mounts_again() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let mount = fx.mount();
    let open = File::create(fx.at("held")).unwrap();
    let err = fx.volume.cut(mount, Cut::DropAll).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy);
    let canonical = fx.mountpoint.canonicalize().unwrap();
    assert!(err.to_string().contains(&canonical.display().to_string()), "{err}");
    drop(open);
    let mount = fx.mount();
    fx.volume.unmount(mount).unwrap();
}

/// Every entry under `root`: files with their bytes, directories as None.
fn walk(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                out.insert(name, None);
                visit(root, &path, out);
            } else {
                out.insert(name, Some(fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(root, root, &mut out);
    out
}

/// fsync of every file and every directory under `root`, the root included.
fn sync_everything(root: &Path) {
    for (name, data) in walk(root) {
        let path = root.join(&name);
        match data {
            Some(_) => File::open(&path).unwrap().sync_all().unwrap(),
            None => sync_dir(&path),
        }
    }
    sync_dir(root);
}

/// `count` random operations on the tree under `root`: writes, truncations, renames of files
/// and directories (within and across directories, replacing or not), creations and removals.
/// Operations the file system refuses (say a directory into itself) are simply skipped.
fn random_ops(root: &Path, rng: &mut ChaCha8Rng, count: usize) {
    for _ in 0..count {
        let tree = walk(root);
        let files: Vec<String> = tree.iter().filter(|(_, d)| d.is_some()).map(|(n, _)| n.clone()).collect();
        let dirs: Vec<String> = std::iter::once(String::new())
            .chain(tree.iter().filter(|(_, d)| d.is_none()).map(|(n, _)| n.clone()))
            .collect();
        let dir = dirs.choose(rng).unwrap().clone();
        let target = root.join(&dir).join(format!("n{}", rng.gen_range(0..6)));
        let file = files.choose(rng).map(|name| root.join(name));
        let data: Vec<u8> = (0..rng.gen_range(0..20_000)).map(|_| rng.gen()).collect();
        let _ = match (rng.gen_range(0..9), file) {
            (0, _) => fs::write(&target, &data),
            (1, Some(file)) => {
                let len = fs::metadata(&file).unwrap().len();
                OpenOptions::new()
                    .write(true)
                    .open(&file)
                    .and_then(|f| std::os::unix::fs::FileExt::write_all_at(&f, &data, rng.gen_range(0..=len)))
            }
            (2, Some(file)) => {
                OpenOptions::new().append(true).open(&file).and_then(|mut f| f.write_all(&data))
            }
            (3, Some(file)) => {
                OpenOptions::new().write(true).open(&file).and_then(|f| f.set_len(data.len() as u64))
            }
            (4, Some(file)) => fs::rename(&file, &target),
            (5, Some(file)) => fs::remove_file(&file),
            (6, _) => fs::create_dir(&target),
            (7, _) if !dir.is_empty() => fs::remove_dir(root.join(&dir)),
            (8, _) if !dir.is_empty() => fs::rename(root.join(&dir), &target),
            _ => Ok(()),
        };
    }
}

#[test]
fn random_workloads_revert_to_exactly_the_synced_state() {
    if !fuse_available() {
        return;
    }
    for seed in 0..3 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fx = Fixture::new();
        let mount = fx.mount();
        random_ops(&fx.mountpoint, &mut rng, 40);
        sync_everything(&fx.mountpoint);
        let synced = walk(&fx.mountpoint);
        random_ops(&fx.mountpoint, &mut rng, 150);
        let report = fx.drop_all(mount);
        assert_eq!(walk(fx.volume.backing()), synced, "seed {seed}, nothing synced after: {report:?}");

        let mount = fx.mount();
        random_ops(&fx.mountpoint, &mut rng, 150);
        sync_everything(&fx.mountpoint);
        let synced = walk(&fx.mountpoint);
        let report = fx.drop_all(mount);
        assert_eq!(walk(fx.volume.backing()), synced, "seed {seed}, everything synced: {report:?}");
    }
}

#[test]
fn random_workloads_keep_prefix_deterministically() {
    if !fuse_available() {
        return;
    }
    let run = |seed: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fx = Fixture::new();
        let mount = fx.mount();
        random_ops(&fx.mountpoint, &mut rng, 40);
        sync_everything(&fx.mountpoint);
        random_ops(&fx.mountpoint, &mut rng, 150);
        let report = fx.volume.cut(mount, Cut::KeepPrefix { seed }).unwrap();
        (walk(fx.volume.backing()), report)
    };
    for seed in 0..3 {
        let (first, report) = run(seed);
        let (second, _) = run(seed);
        assert_eq!(first, second, "seed {seed}: {report:?}");
    }
}

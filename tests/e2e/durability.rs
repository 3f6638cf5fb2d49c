//! The syscall check: an acknowledgement is an fsync you can see. `ingest` and `serve` run
//! under `strace -f -y`; at the moment `ingest` writes its summary, and at every moment the
//! daemon writes an `HTTP/1.1 200`, every file under the data directory that was written has
//! been fsync'd or fdatasync'd after its last write, and the directory of every file created,
//! renamed or removed there has been fsync'd after that. A library's flush is not evidence;
//! `sync_file_range` is not a sync. Needs strace: skipped with the reason printed where it is
//! missing, required when `DEALLEDGER_REQUIRE_TOOLS` is set (`.ci/run` installs it).

use crate::harness::{binary, deal_batch, spawn_daemon};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The system calls the check reads (sync_file_range is traced to show it is not counted).
const TRACED: &str = "trace=open,openat,creat,write,pwrite64,writev,pwritev,pwritev2,ftruncate,truncate,\
fallocate,fsync,fdatasync,sync_file_range,rename,renameat,renameat2,mkdir,mkdirat,unlink,unlinkat,rmdir,\
sendto,sendmsg";

fn strace_available(test: &str) -> bool {
    let found = Command::new("strace").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
    let missing = match found {
        Ok(status) if status.success() => None,
        _ => Some("strace is not on PATH (Debian: apt-get install strace)".to_string()),
    };
    crate::harness::tool_available(test, "strace", missing)
}

/// One completed system call of the trace: its name, the text of its arguments and result,
/// and the lines where it started and ended (a call another thread interrupted is split over
/// an `<unfinished ...>` line and a `resumed>` line).
#[derive(Clone, Debug)]
struct Call {
    name: String,
    text: String,
    start: usize,
    end: usize,
}

/// Reads `strace -f -o` output: `PID name(args) = result`, joining unfinished calls.
fn parse_trace(trace: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut unfinished: BTreeMap<String, Call> = BTreeMap::new();
    for (line_no, line) in trace.lines().enumerate() {
        let Some((pid, rest)) = line.split_once(' ') else { continue };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((name, tail)) = resumed.split_once(" resumed>") else { continue };
            if let Some(mut call) = unfinished.remove(pid) {
                if call.name == name {
                    call.text.push_str(tail);
                    call.end = line_no;
                    calls.push(call);
                }
            }
            continue;
        }
        let Some(open) = rest.find('(') else { continue };
        let name = rest[..open].to_string();
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let call = Call { name, text: rest[open..].to_string(), start: line_no, end: line_no };
        if let Some(text) = call.text.strip_suffix(" <unfinished ...>") {
            unfinished.insert(pid.to_string(), Call { text: text.to_string(), ..call });
        } else {
            calls.push(call);
        }
    }
    calls
}

/// The path strace -y printed for the call's first argument (`(3</a/b>, ...`).
fn fd_path(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('(')?;
    let open = rest.find('<')?;
    if !rest[..open].chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let rest = &rest[open + 1..];
    Some(&rest[..rest.find('>')?])
}

/// The quoted path arguments of a call, in order.
fn quoted(text: &str) -> Vec<&str> {
    text.split('"').skip(1).step_by(2).collect()
}

/// The path strace -y printed for the descriptor a call returned (`= 3</a/b>`).
fn returned_path(text: &str) -> Option<&str> {
    let rest = &text[text.rfind(") = ")? + 4..];
    let open = rest.find('<')?;
    let rest = &rest[open + 1..];
    Some(&rest[..rest.find('>')?])
}

fn parent(path: &str) -> String {
    Path::new(path).parent().map_or_else(|| "/".to_string(), |p| p.display().to_string())
}

/// What has to be synced at a moment, by path: the end line of the last write (files) or of
/// the last entry change (directories) before it.
#[derive(Default)]
struct Owed {
    files: BTreeMap<String, usize>,
    dirs: BTreeMap<String, usize>,
}

/// Checks the trace at `moment` (a line): every file under `data` written before it has an
/// fsync or fdatasync that starts after its last write and ends before the moment, and so does
/// the directory of every entry created, renamed or removed there. Returns what is not.
fn unsynced_at(calls: &[Call], data: &str, moment: usize) -> Vec<String> {
    let under = |path: &str| path == data || path.starts_with(&format!("{data}/"));
    let mut owed = Owed::default();
    let mut syncs: Vec<(&str, usize, usize)> = Vec::new();
    for call in calls.iter().filter(|c| c.end < moment) {
        let text = call.text.as_str();
        match call.name.as_str() {
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" | "ftruncate" | "fallocate" => {
                if let Some(path) = fd_path(text).filter(|p| under(p)) {
                    owed.files.insert(path.to_string(), call.end);
                }
            }
            "truncate" => {
                if let Some(path) = quoted(text).first().filter(|p| under(p)) {
                    owed.files.insert(path.to_string(), call.end);
                }
            }
            "open" | "openat" | "creat" if call.name == "creat" || text.contains("O_CREAT") => {
                if let Some(path) = returned_path(text).filter(|p| under(p)) {
                    owed.dirs.insert(parent(path), call.end);
                }
            }
            "rename" | "renameat" | "renameat2" | "mkdir" | "mkdirat" | "unlink" | "unlinkat" | "rmdir" => {
                if text.contains(") = -1") {
                    continue;
                }
                for path in quoted(text) {
                    if under(path) {
                        owed.dirs.insert(parent(path), call.end);
                    }
                }
            }
            "fsync" | "fdatasync" if !text.contains(") = -1") => {
                if let Some(path) = fd_path(text) {
                    syncs.push((path, call.start, call.end));
                }
            }
            _ => {}
        }
    }
    let synced_after =
        |path: &str, after: usize| syncs.iter().any(|&(p, start, _)| p == path && start > after);
    let mut missing = Vec::new();
    for (path, last) in &owed.files {
        if !synced_after(path, *last) {
            missing.push(format!("file {path}: written (trace line {}) and not fsync'd after", last + 1));
        }
    }
    for (dir, last) in &owed.dirs {
        if !synced_after(dir, *last) {
            missing.push(format!(
                "directory {dir}: an entry changed (trace line {}) and it was not fsync'd after",
                last + 1
            ));
        }
    }
    missing
}

fn read_trace(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strace(trace: &Path) -> Command {
    let mut command = Command::new("strace");
    command.args(["-f", "-y", "-qq", "-s", "48", "-e", TRACED, "-o"]).arg(trace).arg(binary());
    command.env_remove("DEALLEDGER_DATA").env_remove("RUST_LOG");
    command
}

fn events(deal: &str, n: usize) -> String {
    deal_batch(deal, n).join("\n") + "\n"
}

fn canonical_data(dir: &Path) -> (PathBuf, String) {
    let data = dir.canonicalize().unwrap().join("data");
    let text = data.display().to_string();
    (data, text)
}

#[test]
fn ingest_summary_comes_after_every_fsync() {
    if !strace_available("ingest_summary_comes_after_every_fsync") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (data, data_text) = canonical_data(dir.path());
    // A fresh store, then a second run on it, then one big enough to seal many blocks.
    for (run, (deal, n)) in [("A", 50), ("B", 3_000), ("C", 60_000)].into_iter().enumerate() {
        let input = dir.path().join(format!("{deal}.jsonl"));
        std::fs::write(&input, events(deal, n)).unwrap();
        let trace = dir.path().join(format!("ingest-{run}.trace"));
        let out =
            strace(&trace).arg("--data").arg(&data).args(["ingest", "--quiet"]).arg(&input).output().unwrap();
        assert!(out.status.success(), "run {run}: {}", String::from_utf8_lossy(&out.stderr));
        let text = read_trace(&trace);
        let calls = parse_trace(&text);
        let summary = calls
            .iter()
            .find(|c| c.name == "write" && c.text.starts_with("(1<") && c.text.contains("ingested"))
            .unwrap_or_else(|| panic!("run {run}: no summary write in the trace"));
        let missing = unsynced_at(&calls, &data_text, summary.start);
        if !missing.is_empty() {
            let kept = dir.keep();
            panic!(
                "run {run}: when ingest printed its summary:\n{}\n(traces kept in {})",
                missing.join("\n"),
                kept.display()
            );
        }
        // The check can see syncs at all: there are some, on the store's own files.
        assert!(calls
            .iter()
            .any(|c| c.name == "fdatasync" && fd_path(&c.text).is_some_and(|p| p.ends_with("/store/db"))));
    }
}

#[test]
fn every_200_comes_after_every_fsync() {
    if !strace_available("every_200_comes_after_every_fsync") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (data, data_text) = canonical_data(dir.path());
    let trace = dir.path().join("serve.trace");
    let (mut daemon, url) =
        spawn_daemon(strace(&trace).arg("--data").arg(&data).args(["serve", "--listen", "127.0.0.1:0"]));
    for (i, n) in [1usize, 40, 5_000].into_iter().enumerate() {
        let response = ureq::post(&format!("{url}/v1/events"))
            .set("Content-Type", "application/x-ndjson")
            .send_string(&events(&format!("S{i}"), n))
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // The daemon is strace's child: SIGTERM goes to it, not to strace.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", daemon.id())).unwrap();
    let pid = children.split_whitespace().next().expect("strace runs the daemon").to_string();
    let signal = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(signal.success());
    daemon.wait().unwrap();
    let text = read_trace(&trace);
    let calls = parse_trace(&text);
    let answers: Vec<&Call> = calls
        .iter()
        .filter(|c| matches!(c.name.as_str(), "write" | "writev" | "sendto" | "sendmsg"))
        .filter(|c| c.text.contains("HTTP/1.1 200"))
        .collect();
    assert!(answers.len() >= 3, "{} answers of 200 in the trace", answers.len());
    for answer in answers {
        let missing = unsynced_at(&calls, &data_text, answer.start);
        if !missing.is_empty() {
            let kept = dir.keep();
            panic!(
                "when the daemon answered 200 (trace line {}):\n{}\n(trace kept in {})",
                answer.start + 1,
                missing.join("\n"),
                kept.display()
            );
        }
    }
}

#[test]
fn the_check_sees_an_unsynced_write() {
    // The checker itself, on a hand-written trace: a write with no fsync after it is caught, a
    // sync_file_range does not count, and a directory entry needs its directory's fsync.
    let trace = "\
10 openat(AT_FDCWD, \"/d/data/f\", O_RDWR|O_CREAT, 0644) = 3</d/data/f>
10 pwrite64(3</d/data/f>, \"x\", 1, 0) = 1
10 sync_file_range(3</d/data/f>, 0, 1, 7) = 0
11 write(1<pipe:[1]>, \"ingested\", 8) = 8
10 fdatasync(3</d/data/f>) = 0
11 write(1<pipe:[1]>, \"ingested\", 8) = 8
10 fsync(4</d/data>) = 0
11 write(1<pipe:[1]>, \"ingested\", 8) = 8
";
    let calls = parse_trace(trace);
    assert_eq!(unsynced_at(&calls, "/d/data", 3).len(), 2);
    assert_eq!(
        unsynced_at(&calls, "/d/data", 5),
        vec!["directory /d/data: an entry changed (trace line 1) and it was not fsync'd after"]
    );
    assert!(unsynced_at(&calls, "/d/data", 7).is_empty());
    // A write interrupted by another thread counts from where it ended.
    let split = "\
10 pwrite64(3</d/data/f>, \"x\", 1, 0 <unfinished ...>
12 fdatasync(3</d/data/f>) = 0
10 <... pwrite64 resumed>) = 1
11 write(1<pipe:[1]>, \"ingested\", 8) = 8
";
    assert_eq!(unsynced_at(&parse_trace(split), "/d/data", 3).len(), 1);
}

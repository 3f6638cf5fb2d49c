//! Runs the binary in a fresh data directory and captures what it says.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Ledger {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(output: std::process::Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Whether a test that needs a system tool runs: true when `missing` is None. Without the tool
/// the test fails where the tools are required (`DEALLEDGER_REQUIRE_TOOLS`, set by `.ci/run`),
/// and elsewhere prints that it was skipped and why: never a silent skip.
pub fn tool_available(test: &str, tool: &str, missing: Option<String>) -> bool {
    match missing {
        None => true,
        Some(why) if std::env::var_os("DEALLEDGER_REQUIRE_TOOLS").is_some() => {
            panic!("{test}: {tool} is required (DEALLEDGER_REQUIRE_TOOLS is set) but {why}")
        }
        Some(why) => {
            eprintln!("skipped {test}: {why}");
            false
        }
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_dealledger")
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger { dir: tempfile::tempdir().unwrap() }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes `lines` to a file in the ledger's temp dir and returns its path.
    pub fn file(&self, name: &str, lines: &[&str]) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut child = Command::new(binary())
            .arg("--data")
            .arg(self.data())
            .args(args)
            .env_remove("DEALLEDGER_DATA")
            .env_remove("RUST_LOG")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// Ingests lines from a file; returns the run.
    pub fn ingest(&self, name: &str, lines: &[&str]) -> Run {
        let path = self.file(name, lines);
        self.run(&["ingest", "--output", "json", path.to_str().unwrap()])
    }

    pub fn head(&self) -> u64 {
        if !self.data().join("store").exists() {
            return 0;
        }
        self.run(&["stats", "--format", "json"]).ok().json()["head_seq"].as_u64().unwrap()
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub const OPEN_A: &str = r#"{"deal":"A-1","type":"opened","at":"2024-01-10T09:00:00Z","owner":"ana","amount":"12000","close_date":"2024-03-31"}"#;

/// An event line for deal A-1 on 2024-01-DD at 10:00.
pub fn a(kind: &str, day: u32, extra: &str) -> String {
    format!(r#"{{"deal":"A-1","type":"{kind}","at":"2024-01-{day:02}T10:00:00Z"{extra}}}"#)
}

/// One deal's batch: its `opened` then `events - 1` touches, with source_ids `DEAL-0`,
/// `DEAL-1`, ...: what the durability tests write and then look for.
pub fn deal_batch(deal: &str, events: usize) -> Vec<String> {
    let mut lines = vec![format!(
        r#"{{"deal":"{deal}","type":"opened","at":"2025-01-01T00:00:00Z","owner":"o","amount":1,"source_id":"{deal}-0"}}"#
    )];
    lines.extend((1..events).map(|i| {
        format!(
            r#"{{"deal":"{deal}","type":"touch","at":"2025-01-02T00:00:00Z","channel":"call","direction":"outbound","source_id":"{deal}-{i}"}}"#
        )
    }));
    lines
}

/// Spawns a `serve` command (stdout piped) and reads the address it prints first.
pub fn spawn_daemon(command: &mut Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("no address: {line:?}"));
    (child, url.to_string())
}

/// The first number under `key` anywhere in `value`.
pub fn find_number(value: &serde_json::Value, key: &str) -> Option<f64> {
    match value {
        serde_json::Value::Object(map) => {
            map.get(key).and_then(|v| v.as_f64()).or_else(|| map.values().find_map(|v| find_number(v, key)))
        }
        serde_json::Value::Array(list) => list.iter().find_map(|v| find_number(v, key)),
        _ => None,
    }
}

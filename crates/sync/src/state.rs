//! The state a sync run leaves for the next, one JSON file per CRM in the data directory
//! (`sync/hubspot.json`), replaced whole and durably (a new file synced, renamed, the directory
//! synced) after each page's events are durable: after a crash it says what the last completed
//! page said, never more.

use crate::SyncError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The file's format.
pub const STATE_VERSION: u32 = 1;
/// Bytes of a state file, at most (pending activities dominate: about 60 bytes each).
pub const STATE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Activities dated after the run kept to be read again, at most.
pub const PENDING_MAX: usize = 100_000;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// Object type to the modification time (ms since the epoch) up to which every record of it
    /// is stored.
    #[serde(default)]
    pub cursors: BTreeMap<String, i64>,
    /// Activities dated after the run that read them, to be read again once due.
    #[serde(default)]
    pub pending: Vec<Pending>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// When it is due (ms since the epoch).
    pub due_ms: i64,
    pub object: String,
    pub id: String,
}

impl State {
    /// The state at `path`; a fresh one when there is no file.
    pub fn load(path: &Path) -> Result<State, SyncError> {
        let damaged = |why: String| SyncError::StateDamaged { path: path.to_path_buf(), why };
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State { version: STATE_VERSION, ..State::default() })
            }
            Err(source) => return Err(SyncError::State { what: "read", path: path.to_path_buf(), source }),
        };
        let mut bytes = Vec::new();
        file.take(STATE_BYTES_MAX + 1).read_to_end(&mut bytes).map_err(|source| SyncError::State {
            what: "read",
            path: path.to_path_buf(),
            source,
        })?;
        if bytes.len() as u64 > STATE_BYTES_MAX {
            return Err(damaged(format!("more than {STATE_BYTES_MAX} bytes")));
        }
        let state: State = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
        if state.version != STATE_VERSION {
            return Err(damaged(format!(
                "format version {}, this build reads {STATE_VERSION}",
                state.version
            )));
        }
        if state.pending.len() > PENDING_MAX {
            return Err(damaged(format!(
                "{} pending activities, at most {PENDING_MAX}",
                state.pending.len()
            )));
        }
        Ok(state)
    }

    /// Replaces the file at `path` with this state, durably (its directory made if missing).
    pub fn save(&self, path: &Path) -> Result<(), SyncError> {
        let failed = |what, source| SyncError::State { what, path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|e| failed("make the directory of", e))?;
                if let Some(up) = dir.parent() {
                    dealledger_log::files::sync_dir(up).map_err(|e| failed("make the directory of", e))?;
                }
            }
        }
        let mut bytes =
            serde_json::to_vec_pretty(self).map_err(|e| failed("encode", std::io::Error::other(e)))?;
        bytes.push(b'\n');
        dealledger_log::files::write_new(path, &bytes).map_err(|e| failed("write", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_survives_its_file_and_a_damaged_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync").join("hubspot.json");
        let fresh = State::load(&path).unwrap();
        assert_eq!(fresh.version, STATE_VERSION);
        let mut state = fresh.clone();
        state.cursors.insert("deals".into(), 1_736_500_000_000);
        state.pending.push(Pending { due_ms: 5, object: "meetings".into(), id: "9".into() });
        state.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), state);
        std::fs::write(&path, b"{\"version\": 1, \"cursors\": {\"deals\": \"x\"}}").unwrap();
        let error = State::load(&path).unwrap_err().to_string();
        assert!(error.contains("is damaged") && error.contains("move it aside"), "{error}");
        std::fs::write(&path, b"{\"version\": 7}").unwrap();
        let error = State::load(&path).unwrap_err().to_string();
        assert!(error.contains("format version 7"), "{error}");
    }
}

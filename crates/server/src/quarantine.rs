//! The quarantine: HubSpot notifications that could not be admitted yet, kept durably where a
//! person can see them and retry them once the cause is fixed (a stage mapping added, the deal
//! backfilled).
//!
//! One file of JSON Lines, append-only: a `held` line when a notification is quarantined (with
//! the notification), a small `tried` line each time one held is quarantined again (a
//! redelivery, a failed retry: it counts the attempt and updates the reason), a `released` line
//! when a retry admits it (or finds it already stored). The open entries are the fold of the
//! file. When the file grows past twice what its open entries take (and a MiB), it is rewritten
//! with them alone, so its size follows the entries, not the attempts. Every write is followed by fdatasync before anyone is told: a delivery is answered
//! 200 only once each of its notifications is stored or held here.
//!
//! A crash can leave a last line half written (nobody was told of it): it is cut off on open.
//! Any other line that does not parse is corruption, and opening fails naming the line.

use dealledger_events::{Rejection, Timestamp};
use dealledger_reports::output::{Cell, Table};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Open entries, at most: beyond it a delivery is answered 503 (HubSpot retries), never dropped.
pub const ENTRIES_MAX: usize = 100_000;
/// Bytes of notification JSON held open, at most (the same answer beyond it).
pub const NOTIFICATION_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes of one line of the file, at most, when reading it (a notification is at most the
/// hook's body limit).
const LINE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Released lines beyond which opening rewrites the file with the open entries only.
const COMPACT_RELEASED_MIN: usize = 1024;
/// Bytes of file below which it is never rewritten for its size.
const COMPACT_BYTES_MIN: u64 = 1024 * 1024;

/// One quarantined notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// What identifies the notification's change: the `source_id` its event gets (the content
    /// hash), or a hash of its JSON when it does not parse.
    pub key: String,
    /// The notification, as HubSpot sent it.
    pub notification: serde_json::Value,
    pub reason: Reason,
    pub first_seen: Timestamp,
    pub last_tried: Timestamp,
    /// Times it was quarantined: its deliveries, redeliveries and failed retries.
    pub attempts: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl Reason {
    pub fn of(rejection: &Rejection) -> Reason {
        Reason {
            rule: rejection.rule.as_str().to_string(),
            field: rejection.field.map(str::to_string),
            message: rejection.detail.clone(),
        }
    }
}

/// A notification to hold.
#[derive(Clone, Debug)]
pub struct Hold {
    pub key: String,
    pub notification: serde_json::Value,
    pub reason: Reason,
}

/// How a held notification left the quarantine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Release {
    /// Stored now.
    Admitted,
    /// Already in the ledger (a backfill stored the same change).
    Duplicate,
    /// It maps to no event any more (a change to the stage the deal is in).
    Ignored,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Line {
    Held {
        key: String,
        notification: serde_json::Value,
        reason: Reason,
        at: Timestamp,
    },
    /// A notification held already, quarantined again: no copy of it, only the attempt.
    Tried {
        key: String,
        reason: Reason,
        at: Timestamp,
    },
    Released {
        key: String,
        how: Release,
        at: Timestamp,
    },
    /// A whole entry, as compaction writes it.
    Entry {
        entry: Entry,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("cannot {what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: not a quarantine record ({why}); the file is damaged: move it aside to start an empty quarantine, and retry what it held from its text", path.display())]
    Corrupt { path: PathBuf, line: usize, why: String },
    #[error("the quarantine is full ({entries} notifications, {bytes} bytes; at most {ENTRIES_MAX} and {NOTIFICATION_BYTES_MAX}): fix the causes and run `dealledger quarantine retry`")]
    Full { entries: usize, bytes: usize },
    #[error("an earlier write to the quarantine failed ({0}); restart the daemon")]
    Broken(String),
}

/// The quarantine file and its open entries.
pub struct Quarantine {
    path: PathBuf,
    /// None when opened to read only.
    file: Option<std::fs::File>,
    /// Open entries by first appearance; `order` finds them by key.
    entries: BTreeMap<u64, Entry>,
    order: HashMap<String, u64>,
    next: u64,
    bytes: usize,
    /// Bytes of the file: what it held when opened and what was appended since.
    file_bytes: u64,
    released_lines: usize,
    /// Set after a failed write or fsync: what reached the file is unknown, so nothing more is
    /// written (as with the store).
    broken: Option<String>,
}

impl Quarantine {
    /// Opens (creating) the quarantine at `path` for writing; cuts a torn last line.
    pub fn open(path: &Path) -> Result<Quarantine, QuarantineError> {
        let io = |what, source| QuarantineError::Io { what, path: path.to_path_buf(), source };
        let created = !path.exists();
        let file = dealledger_log::files::open_append_or_create(path).map_err(|e| io("open", e))?;
        if created {
            sync_parent(path).map_err(|e| io("sync the directory of", e))?;
        }
        let text = std::fs::read(path).map_err(|e| io("read", e))?;
        let (mut quarantine, whole) = Quarantine::fold(path, &text)?;
        if whole < text.len() {
            file.set_len(whole as u64).map_err(|e| io("cut the torn last line of", e))?;
            file.sync_data().map_err(|e| io("sync", e))?;
        }
        quarantine.file = Some(file);
        if quarantine.released_lines >= COMPACT_RELEASED_MIN
            && quarantine.released_lines > quarantine.entries.len()
        {
            quarantine.compact()?;
        }
        Ok(quarantine)
    }

    /// Reads the quarantine at `path` without writing (an absent file is an empty quarantine).
    pub fn read(path: &Path) -> Result<Quarantine, QuarantineError> {
        match std::fs::read(path) {
            Ok(text) => Ok(Quarantine::fold(path, &text)?.0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Quarantine::fold(path, b"")?.0),
            Err(source) => Err(QuarantineError::Io { what: "read", path: path.to_path_buf(), source }),
        }
    }

    /// The open entries of `text`, and how many of its bytes are whole lines.
    fn fold(path: &Path, text: &[u8]) -> Result<(Quarantine, usize), QuarantineError> {
        let mut quarantine = Quarantine {
            path: path.to_path_buf(),
            file: None,
            entries: BTreeMap::new(),
            order: HashMap::new(),
            next: 0,
            bytes: 0,
            file_bytes: 0,
            released_lines: 0,
            broken: None,
        };
        let mut offset = 0;
        for (index, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
            let whole = line.ends_with(b"\n");
            let corrupt =
                |why: String| QuarantineError::Corrupt { path: path.to_path_buf(), line: index + 1, why };
            if !whole {
                // Written by a process that died before its fsync: nobody was told of it.
                break;
            }
            offset += line.len();
            if line.len() > LINE_BYTES_MAX {
                return Err(corrupt(format!("{} bytes, at most {LINE_BYTES_MAX}", line.len())));
            }
            if line.trim_ascii().is_empty() {
                continue;
            }
            let parsed: Line = serde_json::from_slice(line).map_err(|e| corrupt(e.to_string()))?;
            match parsed {
                Line::Held { key, notification, reason, at } => {
                    quarantine.apply_hold(key, notification, reason, at)
                }
                Line::Tried { key, reason, at } => quarantine.apply_try(&key, reason, at),
                Line::Released { key, .. } => {
                    quarantine.released_lines += 1;
                    quarantine.remove(&key);
                }
                Line::Entry { entry } => {
                    quarantine.remove(&entry.key);
                    quarantine.insert(entry);
                }
            }
        }
        quarantine.file_bytes = offset as u64;
        Ok((quarantine, offset))
    }

    /// One held already, quarantined again.
    fn apply_try(&mut self, key: &str, reason: Reason, at: Timestamp) {
        if let Some(entry) = self.order.get(key).and_then(|n| self.entries.get_mut(n)) {
            entry.reason = reason;
            entry.last_tried = at;
            entry.attempts = entry.attempts.saturating_add(1);
        }
    }

    fn apply_hold(&mut self, key: String, notification: serde_json::Value, reason: Reason, at: Timestamp) {
        match self.order.get(&key).and_then(|n| self.entries.get_mut(n)) {
            Some(entry) => {
                entry.reason = reason;
                entry.last_tried = at;
                entry.attempts = entry.attempts.saturating_add(1);
            }
            None => {
                self.insert(Entry { key, notification, reason, first_seen: at, last_tried: at, attempts: 1 })
            }
        }
    }

    fn insert(&mut self, entry: Entry) {
        self.bytes = self.bytes.saturating_add(json_bytes(&entry.notification));
        self.order.insert(entry.key.clone(), self.next);
        self.entries.insert(self.next, entry);
        self.next += 1;
    }

    fn remove(&mut self, key: &str) {
        if let Some(n) = self.order.remove(key) {
            if let Some(entry) = self.entries.remove(&n) {
                self.bytes = self.bytes.saturating_sub(json_bytes(&entry.notification));
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.order.contains_key(key)
    }

    /// Whether `holds` would fit (the new keys among them): checked before anything is written,
    /// so a full quarantine refuses a delivery instead of losing part of it.
    pub fn check_room(&self, holds: &[Hold]) -> Result<(), QuarantineError> {
        if let Some(why) = &self.broken {
            return Err(QuarantineError::Broken(why.clone()));
        }
        let new: Vec<&Hold> = holds.iter().filter(|h| !self.contains(&h.key)).collect();
        let entries = self.entries.len().saturating_add(new.len());
        let bytes = new.iter().fold(self.bytes, |sum, h| sum.saturating_add(json_bytes(&h.notification)));
        if entries > ENTRIES_MAX || bytes > NOTIFICATION_BYTES_MAX {
            return Err(QuarantineError::Full { entries, bytes });
        }
        Ok(())
    }

    /// Holds and releases, durably (one fdatasync), then in memory: the number of new entries
    /// (holds of notifications not held yet).
    pub fn record(
        &mut self,
        holds: &[Hold],
        releases: &[(String, Release)],
        at: Timestamp,
    ) -> Result<usize, QuarantineError> {
        if holds.is_empty() && releases.is_empty() {
            return Ok(0);
        }
        let new = holds.iter().filter(|h| !self.contains(&h.key)).count();
        self.check_room(holds)?;
        let mut text = Vec::new();
        let mut held_now: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for hold in holds {
            // The notification's copy is written once; an attempt is a small line.
            let line = if self.contains(&hold.key) || !held_now.insert(hold.key.as_str()) {
                Line::Tried { key: hold.key.clone(), reason: hold.reason.clone(), at }
            } else {
                Line::Held {
                    key: hold.key.clone(),
                    notification: hold.notification.clone(),
                    reason: hold.reason.clone(),
                    at,
                }
            };
            push_line(&mut text, &line);
        }
        for (key, how) in releases {
            push_line(&mut text, &Line::Released { key: key.clone(), how: *how, at });
        }
        let path = self.path.clone();
        let Some(file) = self.file.as_mut() else {
            return Err(QuarantineError::Broken("opened to read only".into()));
        };
        if let Err(source) = file.write_all(&text).and_then(|()| file.sync_data()) {
            self.broken = Some(source.to_string());
            return Err(QuarantineError::Io { what: "write", path, source });
        }
        for hold in holds {
            self.apply_hold(hold.key.clone(), hold.notification.clone(), hold.reason.clone(), at);
        }
        for (key, _) in releases {
            self.released_lines += 1;
            self.remove(key);
        }
        self.file_bytes = self.file_bytes.saturating_add(text.len() as u64);
        if self.file_bytes > self.live_bytes().saturating_mul(2).saturating_add(COMPACT_BYTES_MIN) {
            // What was recorded is durable already; a rewrite that fails leaves the file as it
            // is (the rename is atomic), to be tried again at the next record.
            if let Err(e) = self.compact() {
                tracing::warn!(error = %e, "the quarantine could not be rewritten; it keeps growing until it can");
            }
        }
        Ok(new)
    }

    /// About the bytes a rewrite would take: the open entries' notifications, and their
    /// bookkeeping.
    fn live_bytes(&self) -> u64 {
        /// An entry's line beside its notification: key, reason, times, attempts.
        const ENTRY_BYTES: u64 = 512;
        (self.bytes as u64).saturating_add((self.entries.len() as u64).saturating_mul(ENTRY_BYTES))
    }

    /// Rewrites the file with the open entries only: temporary file, fdatasync, rename, directory
    /// fsync, so a crash leaves the old file or the new one.
    fn compact(&mut self) -> Result<(), QuarantineError> {
        let path = self.path.clone();
        let io = |what, source| QuarantineError::Io { what, path: path.clone(), source };
        let mut text = Vec::new();
        for entry in self.entries.values() {
            push_line(&mut text, &Line::Entry { entry: entry.clone() });
        }
        dealledger_log::files::write_new(&path, &text).map_err(|e| io("rewrite", e))?;
        let file = dealledger_log::files::open_append(&path).map_err(|e| io("open", e))?;
        let (mut fresh, _) = Quarantine::fold(&path, &text)?;
        fresh.file = Some(file);
        *self = fresh;
        Ok(())
    }
}

/// The quarantine as `GET /v1/quarantine` and `audit quarantine --format json` show it.
pub fn listing(quarantine: &Quarantine) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = quarantine
        .entries()
        .map(|e| {
            serde_json::json!({
                "key": e.key,
                "notification": e.notification,
                "reason": e.reason,
                "first_seen": e.first_seen.to_string(),
                "last_tried": e.last_tried.to_string(),
                "attempts": e.attempts,
            })
        })
        .collect();
    serde_json::json!({"count": entries.len(), "entries": entries})
}

/// Characters of a reason shown in the table for people (the JSON and CSV have all of it).
const REASON_SHOWN_CHARS_MAX: usize = 100;

/// The quarantine for people (`audit quarantine`): per entry the deal, what the notification
/// says, the rule and reason (cut short) and when it was first seen.
pub fn table(quarantine: &Quarantine) -> Table {
    let mut table = Table::new("", &["deal", "notification", "rule", "reason", "first seen", "attempts"]);
    for e in quarantine.entries() {
        let n = &e.notification;
        let what = match (n["subscriptionType"].as_str(), n["propertyName"].as_str()) {
            (Some(kind), Some(name)) if !name.is_empty() => {
                format!("{kind} {name}={}", n["propertyValue"].as_str().unwrap_or(""))
            }
            (Some(kind), _) => kind.to_string(),
            (None, _) => "(not a notification)".to_string(),
        };
        let mut reason = e.reason.message.clone();
        if reason.chars().count() > REASON_SHOWN_CHARS_MAX {
            reason = reason.chars().take(REASON_SHOWN_CHARS_MAX).collect::<String>() + "...";
        }
        table.push(vec![
            Cell::Text(deal_of(n)),
            Cell::Text(what),
            Cell::Text(e.reason.rule.clone()),
            Cell::Text(reason),
            Cell::Text(e.first_seen.to_string()),
            Cell::Figure(e.attempts.to_string()),
        ]);
    }
    table
}

/// The quarantine for machines: every field of every entry, the notification as JSON.
pub fn csv_table(quarantine: &Quarantine) -> Table {
    let columns = ["key", "deal", "rule", "reason", "first_seen", "last_tried", "attempts", "notification"];
    let mut table = Table::new("", &columns);
    for e in quarantine.entries() {
        table.push(
            [
                e.key.clone(),
                deal_of(&e.notification),
                e.reason.rule.clone(),
                e.reason.message.clone(),
                e.first_seen.to_string(),
                e.last_tried.to_string(),
                e.attempts.to_string(),
                e.notification.to_string(),
            ]
            .into_iter()
            .map(Cell::Text)
            .collect(),
        );
    }
    table
}

/// The ledger's deal id of a notification's object, or `?`.
fn deal_of(notification: &serde_json::Value) -> String {
    notification["objectId"].as_u64().map_or_else(|| "?".to_string(), crate::hubspot::deal_id)
}

fn json_bytes(value: &serde_json::Value) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

fn push_line(text: &mut Vec<u8>, line: &Line) {
    // A Line of JSON values and strings always serializes.
    serde_json::to_writer(&mut *text, line).expect("a quarantine line serializes");
    text.push(b'\n');
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    dealledger_log::files::sync_dir(parent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dealledger_events::Rule;

    fn hold(key: &str, object: u64) -> Hold {
        Hold {
            key: key.into(),
            notification: serde_json::json!({"objectId": object}),
            reason: Reason::of(&Rejection::new(Rule::NotOpened, "no such deal")),
        }
    }

    #[test]
    fn retries_do_not_grow_the_file_without_bound() {
        // 500 notifications that cannot be admitted, retried 300 times: the entries, not the
        // attempts, size the file (a red team saw 73.5 MB from this).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarantine.jsonl");
        let mut q = Quarantine::open(&path).unwrap();
        let holds: Vec<Hold> = (0..500).map(|i| hold(&format!("k{i}"), i)).collect();
        assert_eq!(q.record(&holds, &[], Timestamp(0)).unwrap(), 500, "500 new entries");
        let one_copy = std::fs::metadata(&path).unwrap().len();
        for round in 1..=300 {
            assert_eq!(q.record(&holds, &[], Timestamp(round)).unwrap(), 0, "no new entry in a retry");
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 3 * one_copy + COMPACT_BYTES_MIN, "{size} bytes for {one_copy} bytes of entries");
        assert!(q.entries().all(|e| e.attempts == 301 && e.last_tried == Timestamp(300)));
        drop(q);
        let again = Quarantine::read(&path).unwrap();
        assert_eq!(again.len(), 500);
        assert!(again.entries().all(|e| e.attempts == 301 && e.last_tried == Timestamp(300)));
    }

    #[test]
    fn held_counted_released_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarantine.jsonl");
        let mut q = Quarantine::open(&path).unwrap();
        q.record(&[hold("a", 1), hold("b", 2)], &[], Timestamp(10)).unwrap();
        q.record(&[hold("a", 1)], &[], Timestamp(20)).unwrap();
        q.record(&[], &[("b".into(), Release::Admitted)], Timestamp(30)).unwrap();
        let entries: Vec<Entry> = q.entries().cloned().collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].attempts, entries[0].first_seen, entries[0].last_tried),
            (2, Timestamp(10), Timestamp(20))
        );
        drop(q);
        let again = Quarantine::read(&path).unwrap();
        assert_eq!(again.entries().cloned().collect::<Vec<_>>(), entries);
    }

    #[test]
    fn a_torn_last_line_is_cut_and_a_damaged_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarantine.jsonl");
        Quarantine::open(&path).unwrap().record(&[hold("a", 1)], &[], Timestamp(1)).unwrap();
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, [&whole[..], b"{\"op\":\"held\",\"ke"].concat()).unwrap();
        let mut q = Quarantine::open(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), whole, "the torn tail is cut");
        q.record(&[hold("b", 2)], &[], Timestamp(2)).unwrap();
        assert_eq!(Quarantine::read(&path).unwrap().len(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("{\"op\"", "{\"oq\"", 1)).unwrap();
        let err = Quarantine::open(&path).err().unwrap().to_string();
        assert!(err.contains("quarantine.jsonl:1: not a quarantine record"), "{err}");
    }

    #[test]
    fn full_refuses_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarantine.jsonl");
        let mut q = Quarantine::open(&path).unwrap();
        let big = Hold {
            key: "big".into(),
            notification: serde_json::Value::String("x".repeat(NOTIFICATION_BYTES_MAX)),
            reason: Reason::of(&Rejection::new(Rule::NotOpened, "no")),
        };
        assert!(matches!(q.record(&[big], &[], Timestamp(1)), Err(QuarantineError::Full { .. })));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn many_releases_compact_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarantine.jsonl");
        let mut q = Quarantine::open(&path).unwrap();
        q.record(&[hold("keep", 0)], &[], Timestamp(1)).unwrap();
        for n in 0..COMPACT_RELEASED_MIN as u64 {
            let key = format!("k{n}");
            q.record(&[hold(&key, n)], &[(key.clone(), Release::Duplicate)], Timestamp(2)).unwrap();
        }
        let before = std::fs::metadata(&path).unwrap().len();
        let q = Quarantine::open(&path).unwrap();
        assert_eq!(q.entries().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["keep"]);
        assert_eq!(q.entries().next().unwrap().first_seen, Timestamp(1));
        assert_eq!(q.released_lines, 0);
        assert!(std::fs::metadata(&path).unwrap().len() < before / 100);
    }
}

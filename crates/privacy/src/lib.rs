//! dealledger's personal data at rest: a data key per person (subject), fields sealed under it,
//! and erasure by destroying the key (crypto-shredding), so that a hash-chained, append-only log
//! can forget a person without a byte of it being rewritten.
//!
//! - [`Kek`]: the key-encryption key, 32 random bytes in a file (`dealledger key new FILE`,
//!   hex, mode 0600). It never leaves the process and prints as `***`.
//! - [`Subject`]: a person or a deal, named by a keyed hash of its kind and id (a pseudonym: the
//!   key store and the log never hold the id itself).
//! - [`KeyStore`]: the data keys, each sealed under the KEK, in one append-only file beside the
//!   log; an erasure rewrites the file without the key (a new file, synced, renamed over the old,
//!   the directory synced) and keeps only a tombstone, so the key's bytes are in no file after it.
//! - [`seal`] / [`open`]: a field under its subject's key (XChaCha20-Poly1305, the subject as
//!   associated data), as text (`enc1:` and URL-safe base64).
//!
//! This crate is the foundation of issue 29's item 1: the ledger's paths (events, importers,
//! webhooks, sync) do not use it yet.
//!
//! Boundary: depends on `log` only for its durable file writing; no events, no store, no clock.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Bytes of a key (the KEK, a data key).
pub const KEY_BYTES: usize = 32;
/// Bytes of a key file, at most (64 hex digits and a line break; more is not a key file).
const KEY_FILE_BYTES_MAX: u64 = 4096;
/// What a sealed field starts with.
pub const SEALED_PREFIX: &str = "enc1:";
/// What shows where a field's key is gone.
pub const ERASED: &str = "[erased]";
/// XChaCha20's nonce: random, so no counter needs to survive a crash.
const NONCE_BYTES: usize = 24;
/// Poly1305's tag.
const TAG_BYTES: usize = 16;
/// One key store record: kind, subject, then for a key its nonce and sealed key.
const RECORD_BYTES: usize = 1 + KEY_BYTES + NONCE_BYTES + KEY_BYTES + TAG_BYTES + 4;
const PUT: u8 = 1;
const ERASE: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the key file {} is not a key (64 hex digits: `dealledger key new FILE` writes one): {why}", path.display())]
    BadKeyFile { path: PathBuf, why: String },
    #[error("{} already exists: a key file is never overwritten (its data would be lost)", .0.display())]
    KeyFileExists(PathBuf),
    #[error("the key store {} is damaged at byte {offset}: {why}", path.display())]
    Damaged { path: PathBuf, offset: u64, why: String },
    #[error("the key store {} was sealed under another key-encryption key (a key of it does not open)", .0.display())]
    WrongKek(PathBuf),
    #[error("no such subject in the key store: nothing of it was ever stored sealed")]
    UnknownSubject,
}

/// The key-encryption key.
#[derive(Clone)]
pub struct Kek([u8; KEY_BYTES]);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(***)")
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Kek {
    /// Writes a new key file at `path`: 32 random bytes as hex, mode 0600, never over an
    /// existing file, synced with its directory.
    pub fn new_file(path: &Path) -> Result<(), PrivacyError> {
        let io = |what, source| PrivacyError::Io { what, path: path.to_path_buf(), source };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => PrivacyError::KeyFileExists(path.to_path_buf()),
            _ => io("cannot create the key file", e),
        })?;
        file.write_all(format!("{}\n", hex(&random::<KEY_BYTES>())).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io("cannot write the key file", e))?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        dealledger_log::files::sync_dir(dir).map_err(|e| io("cannot sync the key file's directory", e))
    }

    /// The key in `path` (64 hex digits, spaces around them allowed).
    pub fn read(path: &Path) -> Result<Kek, PrivacyError> {
        let bad = |why: &str| PrivacyError::BadKeyFile { path: path.to_path_buf(), why: why.to_string() };
        let file = std::fs::File::open(path).map_err(|source| PrivacyError::Io {
            what: "cannot read the key file",
            path: path.to_path_buf(),
            source,
        })?;
        let mut text = String::new();
        file.take(KEY_FILE_BYTES_MAX).read_to_string(&mut text).map_err(|_| bad("not text"))?;
        let digits = text.trim();
        if digits.len() != 2 * KEY_BYTES {
            return Err(bad("not 64 hex digits"));
        }
        let mut key = [0u8; KEY_BYTES];
        for (i, byte) in key.iter_mut().enumerate() {
            let pair = digits.get(2 * i..2 * i + 2).ok_or_else(|| bad("not hex"))?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad("not hex"))?;
        }
        Ok(Kek(key))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

/// A person or a deal whose fields are sealed under one key: a keyed hash of its kind and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(pub [u8; KEY_BYTES]);

impl Subject {
    /// `kind` (`contact`, `deal`) and `id` under `kek`: the same subject for the same id, and
    /// nothing of the id without the KEK.
    pub fn of(kek: &Kek, kind: &str, id: &str) -> Subject {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&kek.0).expect("HMAC takes any key length");
        mac.update(b"dealledger subject 1\0");
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(id.as_bytes());
        Subject(mac.finalize().into_bytes().into())
    }

    /// As text (hex): how an `erased` event names it.
    pub fn to_hex(self) -> String {
        hex(&self.0)
    }
}

/// The data keys, sealed under the KEK in one file.
pub struct KeyStore {
    path: PathBuf,
    kek: Kek,
    keys: HashMap<Subject, [u8; KEY_BYTES]>,
    erased: HashSet<Subject>,
    /// Keys added and not yet synced.
    unsynced: bool,
    file: std::fs::File,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyStore {{ path: {:?}, keys: {}, erased: {} }}",
            self.path,
            self.keys.len(),
            self.erased.len()
        )
    }
}

impl KeyStore {
    /// The key store at `path` (made empty when absent), its keys opened with `kek`.
    pub fn open(path: &Path, kek: Kek) -> Result<KeyStore, PrivacyError> {
        let io = |what, source| PrivacyError::Io { what, path: path.to_path_buf(), source };
        let mut file =
            dealledger_log::files::open_or_create(path).map_err(|e| io("cannot open the key store", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io("cannot read the key store", e))?;
        let mut store = KeyStore {
            path: path.to_path_buf(),
            kek,
            keys: HashMap::new(),
            erased: HashSet::new(),
            unsynced: false,
            file,
        };
        // A torn last record (a crash in the middle of an append that was never synced, so never
        // acknowledged) is dropped; anything else damaged is an error.
        let whole = bytes.len() - bytes.len() % RECORD_BYTES;
        for (i, record) in bytes.get(..whole).unwrap_or_default().chunks_exact(RECORD_BYTES).enumerate() {
            store.load(record, (i * RECORD_BYTES) as u64)?;
        }
        if whole != bytes.len() {
            store.file.set_len(whole as u64).map_err(|e| io("cannot cut the key store's torn end", e))?;
            store.file.sync_data().map_err(|e| io("cannot sync the key store", e))?;
        }
        Ok(store)
    }

    fn load(&mut self, record: &[u8], offset: u64) -> Result<(), PrivacyError> {
        let damaged =
            |why: &str| PrivacyError::Damaged { path: self.path.clone(), offset, why: why.to_string() };
        let (body, crc) = record.split_at(RECORD_BYTES - 4);
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return Err(damaged("checksum"));
        }
        let subject = Subject(
            body.get(1..1 + KEY_BYTES).and_then(|s| s.try_into().ok()).ok_or_else(|| damaged("short"))?,
        );
        match body.first() {
            Some(&PUT) => {
                let rest = body.get(1 + KEY_BYTES..).unwrap_or_default();
                let (nonce, sealed) = rest.split_at(NONCE_BYTES.min(rest.len()));
                let key = self
                    .kek
                    .cipher()
                    .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &subject.0 })
                    .map_err(|_| PrivacyError::WrongKek(self.path.clone()))?;
                let key: [u8; KEY_BYTES] = key.try_into().map_err(|_| damaged("key length"))?;
                self.keys.insert(subject, key);
            }
            Some(&ERASE) => {
                self.keys.remove(&subject);
                self.erased.insert(subject);
            }
            _ => return Err(damaged("record kind")),
        }
        Ok(())
    }

    fn record(kind: u8, subject: Subject, sealed: Option<([u8; NONCE_BYTES], Vec<u8>)>) -> Vec<u8> {
        let mut record = Vec::with_capacity(RECORD_BYTES);
        record.push(kind);
        record.extend_from_slice(&subject.0);
        match sealed {
            Some((nonce, key)) => {
                record.extend_from_slice(&nonce);
                record.extend_from_slice(&key);
            }
            None => record.resize(RECORD_BYTES - 4, 0),
        }
        let crc = crc32c::crc32c(&record);
        record.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(record.len(), RECORD_BYTES);
        record
    }

    /// `subject`'s data key, made (and appended, not yet synced: [`KeyStore::sync`]) if it has
    /// none. A subject erased before gets a new key: what is sealed from now on reads, what was
    /// sealed before stays unreadable.
    pub fn key_for(&mut self, subject: Subject) -> Result<[u8; KEY_BYTES], PrivacyError> {
        if let Some(key) = self.keys.get(&subject) {
            return Ok(*key);
        }
        let key = random::<KEY_BYTES>();
        let nonce = random::<NONCE_BYTES>();
        let sealed = self
            .kek
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &key, aad: &subject.0 })
            .expect("sealing 32 bytes cannot fail");
        let record = KeyStore::record(PUT, subject, Some((nonce, sealed)));
        self.file.write_all(&record).map_err(|source| PrivacyError::Io {
            what: "cannot append to the key store",
            path: self.path.clone(),
            source,
        })?;
        self.unsynced = true;
        self.keys.insert(subject, key);
        Ok(key)
    }

    /// Makes every key added so far durable (fdatasync): before the events sealed under them
    /// are acknowledged.
    pub fn sync(&mut self) -> Result<(), PrivacyError> {
        if self.unsynced {
            self.file.sync_data().map_err(|source| PrivacyError::Io {
                what: "cannot sync the key store",
                path: self.path.clone(),
                source,
            })?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// `subject`'s key, if it has one (None once erased).
    pub fn key(&self, subject: Subject) -> Option<[u8; KEY_BYTES]> {
        self.keys.get(&subject).copied()
    }

    pub fn is_erased(&self, subject: Subject) -> bool {
        self.erased.contains(&subject) && !self.keys.contains_key(&subject)
    }

    /// Destroys `subject`'s key durably: the file is written again without it (a new file,
    /// synced, renamed over the old, the directory synced), with a tombstone in its place. True
    /// when it had a key; false when it was erased already (erasure is idempotent); an error when
    /// the store never knew it.
    pub fn erase(&mut self, subject: Subject) -> Result<bool, PrivacyError> {
        if !self.keys.contains_key(&subject) {
            return match self.erased.contains(&subject) {
                true => Ok(false),
                false => Err(PrivacyError::UnknownSubject),
            };
        }
        let mut bytes = Vec::with_capacity((self.keys.len() + self.erased.len() + 1) * RECORD_BYTES);
        let mut erased: Vec<Subject> = self.erased.iter().copied().chain([subject]).collect();
        erased.sort_unstable();
        erased.dedup();
        for gone in &erased {
            bytes.extend_from_slice(&KeyStore::record(ERASE, *gone, None));
        }
        let mut kept: Vec<(&Subject, &[u8; KEY_BYTES])> =
            self.keys.iter().filter(|(s, _)| **s != subject).collect();
        kept.sort_unstable_by_key(|(s, _)| **s);
        for (kept_subject, key) in kept {
            let nonce = random::<NONCE_BYTES>();
            let sealed = self
                .kek
                .cipher()
                .encrypt(XNonce::from_slice(&nonce), Payload { msg: key, aad: &kept_subject.0 })
                .expect("sealing 32 bytes cannot fail");
            bytes.extend_from_slice(&KeyStore::record(PUT, *kept_subject, Some((nonce, sealed))));
        }
        let io = |what, source| PrivacyError::Io { what, path: self.path.clone(), source };
        dealledger_log::files::write_new(&self.path, &bytes)
            .map_err(|e| io("cannot write the key store", e))?;
        self.file =
            dealledger_log::files::open_append(&self.path).map_err(|e| io("cannot open the key store", e))?;
        self.keys.remove(&subject);
        self.erased.insert(subject);
        self.unsynced = false;
        Ok(true)
    }
}

fn cipher(key: &[u8; KEY_BYTES]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.into())
}

/// `text` sealed under `key` for `subject`: `enc1:` and base64 of the nonce and the ciphertext.
pub fn seal(key: &[u8; KEY_BYTES], subject: Subject, text: &str) -> String {
    let nonce = random::<NONCE_BYTES>();
    let sealed = cipher(key)
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: text.as_bytes(), aad: &subject.0 })
        .expect("sealing cannot fail");
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    format!("{SEALED_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The text sealed in `field` under `key` for `subject`; None when it does not open (another
/// key, a damaged field): shown as [`ERASED`].
pub fn open(key: &[u8; KEY_BYTES], subject: Subject, field: &str) -> Option<String> {
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(field.strip_prefix(SEALED_PREFIX)?).ok()?;
    if bytes.len() < NONCE_BYTES + TAG_BYTES {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
    let text =
        cipher(key).decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &subject.0 }).ok()?;
    String::from_utf8(text).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "a test: a panic is a failing test")]
    use super::*;

    #[test]
    fn a_field_reads_back_until_its_key_is_erased_and_the_key_leaves_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("kek");
        Kek::new_file(&key_file).unwrap();
        assert!(matches!(Kek::new_file(&key_file), Err(PrivacyError::KeyFileExists(_))), "never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let kek = Kek::read(&key_file).unwrap();
        assert_eq!(format!("{kek:?}"), "Kek(***)");
        let path = dir.path().join("keys");
        let mut store = KeyStore::open(&path, kek.clone()).unwrap();
        let (ana, bo) =
            (Subject::of(&kek, "contact", "ana@example.com"), Subject::of(&kek, "contact", "bo@example.com"));
        assert_ne!(ana, bo);
        let (ana_key, bo_key) = (store.key_for(ana).unwrap(), store.key_for(bo).unwrap());
        store.sync().unwrap();
        let sealed = seal(&ana_key, ana, "ana@example.com");
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("ana"));
        assert_eq!(open(&ana_key, ana, &sealed).as_deref(), Some("ana@example.com"));
        assert_eq!(open(&bo_key, bo, &sealed), None, "another subject's key does not open it");
        // Reopened: the same keys.
        let mut store = KeyStore::open(&path, kek.clone()).unwrap();
        assert_eq!(store.key(ana), Some(ana_key));
        let before = std::fs::read(&path).unwrap();
        assert!(before.windows(KEY_BYTES).all(|w| w != ana_key), "keys are stored sealed");
        // Erased: gone from memory, from the file, and after a reopen; idempotent; an unknown
        // subject is an error.
        let record_of = |bytes: &[u8], subject: Subject| -> Option<Vec<u8>> {
            bytes
                .chunks_exact(RECORD_BYTES)
                .find(|r| r[0] == PUT && r[1..1 + KEY_BYTES] == subject.0)
                .map(<[u8]>::to_vec)
        };
        let sealed_key = record_of(&before, ana).unwrap()[1 + KEY_BYTES..RECORD_BYTES - 4].to_vec();
        assert!(store.erase(ana).unwrap());
        let after = std::fs::read(&path).unwrap();
        assert!(after.windows(sealed_key.len()).all(|w| w != sealed_key), "the sealed key is in no file");
        assert!(!store.erase(ana).unwrap());
        assert!(matches!(
            store.erase(Subject::of(&kek, "contact", "nobody")),
            Err(PrivacyError::UnknownSubject)
        ));
        let store = KeyStore::open(&path, kek.clone()).unwrap();
        assert_eq!(store.key(ana), None);
        assert!(store.is_erased(ana));
        assert_eq!(store.key(bo), Some(bo_key));
        // A key sealed under another KEK is refused, not misread.
        let other = dir.path().join("other");
        Kek::new_file(&other).unwrap();
        assert!(matches!(KeyStore::open(&path, Kek::read(&other).unwrap()), Err(PrivacyError::WrongKek(_))));
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_a_damaged_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("kek");
        Kek::new_file(&key_file).unwrap();
        let kek = Kek::read(&key_file).unwrap();
        let path = dir.path().join("keys");
        let mut store = KeyStore::open(&path, kek.clone()).unwrap();
        let a = Subject::of(&kek, "deal", "D-1");
        store.key_for(a).unwrap();
        store.key_for(Subject::of(&kek, "deal", "D-2")).unwrap();
        store.sync().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(RECORD_BYTES + 10);
        std::fs::write(&path, &bytes).unwrap();
        let store = KeyStore::open(&path, kek.clone()).unwrap();
        assert!(store.key(a).is_some());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), RECORD_BYTES as u64);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(KeyStore::open(&path, kek), Err(PrivacyError::Damaged { offset: 0, .. })));
        for junk in ["", "zz", &"g".repeat(64)] {
            std::fs::write(&key_file, junk).unwrap();
            assert!(matches!(Kek::read(&key_file), Err(PrivacyError::BadKeyFile { .. })), "{junk}");
        }
    }
}

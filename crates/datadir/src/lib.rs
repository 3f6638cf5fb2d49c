//! The data directory every command opens: where `dealledger.toml` lives, where the log lives
//! (sled in `DATA/store`, or a JetStream stream named by `--store` or `[store] url`), what keeps
//! other writers out (the directory's file lock, or the ledger's lease), and the record of losses
//! a person accepted.
//!
//! Invariants: `dealledger.toml` is read once per process and a JetStream ledger is connected
//! once (lease and log share the connection); the directory and every record written in it are
//! made durable (the file fsync'd, then its directory) before a function returns.
//!
//! Boundary: depends on the settings schema (`dealledger-config`), the pipeline
//! (`dealledger-events`) and the two store backends (`dealledger-log`, `dealledger-jetstream`);
//! nothing of reports, importers, the daemon or clap. It prints nothing but one warning (a log
//! below its mark, still readable).

use dealledger_config::{Config, ConfigError};
use dealledger_events::Pipeline;
use dealledger_jetstream::{JetStreamLease, JetStreamStore};
use dealledger_log::lease::Kept;
use dealledger_log::writer_lock::{self, WriterLock};
use dealledger_log::{Ledger, Log, LogError, SledStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the data directory could not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A setting or a flag that cannot be used as given (the command line's fault: exit 2).
    #[error("{0}")]
    Usage(String),
    /// Another writer holds the ledger, or there is none where one is needed: says what to do.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Log(#[from] LogError),
    /// `what` failed; the cause is the error's source (printed after it, once).
    #[error("{what}")]
    Io { what: String, source: std::io::Error },
}

type Result<T> = std::result::Result<T, DataError>;

/// Every command's store: sled or JetStream behind the one trait.
pub type Store = Arc<dyn dealledger_log::BlockStore>;

/// The writer lease's time to live unless `[store] lease_ttl_ms` says otherwise.
const LEASE_TTL_MS_DEFAULT: u64 = 10_000;

/// Where the log lives.
pub enum Backend {
    /// sled in `DATA/store` (the default).
    Sled,
    /// A JetStream stream (docs/scale-out.md).
    JetStream {
        target: dealledger_jetstream::Target,
        options: dealledger_jetstream::Options,
        lease_ttl: std::time::Duration,
    },
}

/// What keeps other writers out while a command writes: the data directory's file lock for
/// sled, the ledger's lease (renewed by a thread of its own) for a shared store.
pub enum WriterGuard {
    File(WriterLock),
    Lease(#[allow(dead_code, reason = "held for its Drop, which releases the lease")] Kept),
}

impl WriterGuard {
    /// Names a daemon's URL in the lock file (sled: where other commands send events).
    pub fn describe(&mut self, url: Option<&str>) -> std::io::Result<()> {
        match self {
            WriterGuard::File(lock) => lock.describe(url),
            WriterGuard::Lease(_) => Ok(()),
        }
    }
}

pub use dealledger_config::CONFIG_FILE;
const STORE_DIR: &str = "store";
/// The record of every loss a person accepted with `dealledger recover`, one JSON line each.
const LOSSES_FILE: &str = "losses.jsonl";
/// HubSpot notifications the daemon could not admit yet (`dealledger audit quarantine`).
const QUARANTINE_FILE: &str = "quarantine.jsonl";

pub struct DataDir {
    pub path: PathBuf,
    /// `--store`, which wins over `[store] url`.
    store_url: Option<String>,
    config: std::sync::OnceLock<Config>,
    backend: std::sync::OnceLock<Backend>,
    /// One connection per process to a JetStream ledger, shared by the lease and the log.
    jetstream: std::sync::OnceLock<Arc<JetStreamStore>>,
    /// When the command can ask a running daemon instead (`--server`): the command line as
    /// typed with `--server URL` in it, the advice given when a daemon holds the ledger.
    pub server_retry: Option<String>,
}

impl DataDir {
    pub fn new(path: PathBuf, store_url: Option<String>) -> DataDir {
        DataDir {
            path,
            store_url,
            config: std::sync::OnceLock::new(),
            backend: std::sync::OnceLock::new(),
            jetstream: std::sync::OnceLock::new(),
            server_retry: None,
        }
    }

    /// Where the log lives: `--store`, else `[store] url`, else sled in the data directory.
    pub fn backend(&self) -> Result<&Backend> {
        if let Some(backend) = self.backend.get() {
            return Ok(backend);
        }
        let url = self.store_url.clone().or(self.config()?.store.as_ref().and_then(|s| s.url.clone()));
        let backend = match url {
            None => Backend::Sled,
            Some(url) => {
                let target = dealledger_jetstream::Target::parse(&url)
                    .map_err(|why| DataError::Usage(format!("--store (or [store] url): {why}")))?;
                let (options, lease_ttl) = self.jetstream_options()?;
                Backend::JetStream { target, options, lease_ttl }
            }
        };
        Ok(self.backend.get_or_init(|| backend))
    }

    /// How to reach a JetStream cluster, from `[store]` and the environment, and the lease's TTL.
    pub fn jetstream_options(&self) -> Result<(dealledger_jetstream::Options, std::time::Duration)> {
        let section = self.config()?.store.clone().unwrap_or_default();
        let mut options = dealledger_jetstream::Options::from_env();
        if options.credentials.is_none() {
            options.credentials = section.credentials.map(|c| self.path.join(c));
        }
        options.tls_ca = section.tls_ca.map(|c| self.path.join(c));
        options.monitor = section.monitor.unwrap_or_default();
        if let Some(replicas) = section.replicas {
            if replicas == 0 || replicas > 5 {
                return Err(DataError::Usage(format!(
                    "{}: [store] replicas = {replicas}: a JetStream stream has 1 to 5",
                    self.config_path().display()
                )));
            }
            options.replicas = replicas;
        }
        if let Some(ms) = section.request_timeout_ms {
            options.request_timeout = std::time::Duration::from_millis(ms.max(1));
        }
        let lease_ttl =
            std::time::Duration::from_millis(section.lease_ttl_ms.unwrap_or(LEASE_TTL_MS_DEFAULT));
        Ok((options, lease_ttl))
    }

    /// The ledger's JetStream store, connected once per process.
    fn jetstream(&self, create: bool) -> Result<Arc<JetStreamStore>> {
        if let Some(store) = self.jetstream.get() {
            return Ok(store.clone());
        }
        let Backend::JetStream { target, options, .. } = self.backend()? else {
            return Err(DataError::Usage("the ledger is not on JetStream".into()));
        };
        let store = Arc::new(JetStreamStore::open(target, options, create)?);
        Ok(self.jetstream.get_or_init(|| store).clone())
    }

    /// The writer lease of a ledger on JetStream, for `holder`; `create` makes the ledger where
    /// there is none (a command that only rewrites or copies an existing one does not).
    pub fn lease(&self, holder: String, create: bool) -> Result<Option<JetStreamLease>> {
        match self.backend()? {
            Backend::Sled => Ok(None),
            Backend::JetStream { options, lease_ttl, .. } => {
                Ok(Some(self.jetstream(create)?.lease(holder, *lease_ttl, options.replicas)?))
            }
        }
    }

    /// Whether the log is in the data directory (sled): what only sled has (the raw files
    /// `audit verify` salvages from) is done only then.
    pub fn is_sled(&self) -> Result<bool> {
        Ok(matches!(self.backend()?, Backend::Sled))
    }

    pub fn store_path(&self) -> PathBuf {
        self.path.join(STORE_DIR)
    }

    pub fn quarantine_path(&self) -> PathBuf {
        self.path.join(QUARANTINE_FILE)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join(CONFIG_FILE)
    }

    /// Where a CRM sync keeps its cursor (`sync/hubspot.json`).
    pub fn sync_state_path(&self, crm: &str) -> PathBuf {
        self.path.join("sync").join(format!("{crm}.json"))
    }

    /// The URL of the daemon holding the writer lock, if one does.
    pub fn daemon_url(&self) -> Option<String> {
        writer_lock::holder(&self.path).url
    }

    pub fn losses_path(&self) -> PathBuf {
        self.path.join(LOSSES_FILE)
    }

    /// Creates the data directory if needed, durably (its entry in the parent is fsync'd).
    pub fn ensure(&self) -> Result<()> {
        if self.path.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.path).map_err(|source| DataError::Io {
            what: format!("cannot create {}", self.path.display()),
            source,
        })?;
        let parent = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        sync_dir(&parent)
    }

    /// Appends one line to the losses record, durably.
    pub fn record_loss(&self, line: &serde_json::Value) -> Result<()> {
        use std::io::Write;
        let path = self.losses_path();
        let mut file = dealledger_log::files::open_append_or_create(&path)
            .map_err(|source| DataError::Io { what: format!("cannot open {}", path.display()), source })?;
        writeln!(file, "{line}")
            .and_then(|()| file.sync_data())
            .map_err(|source| DataError::Io { what: format!("cannot write {}", path.display()), source })?;
        sync_dir(&self.path)
    }

    /// The losses accepted so far, as recorded.
    pub fn losses(&self) -> Vec<String> {
        std::fs::read_to_string(self.losses_path())
            .map(|text| text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// dealledger.toml, read and parsed once per process; all defaults without one. Every
    /// setting below comes from it: one schema, nothing in it ignored.
    pub fn config(&self) -> Result<&Config> {
        if let Some(config) = self.config.get() {
            return Ok(config);
        }
        let config = Config::read(&self.config_path())?;
        Ok(self.config.get_or_init(|| config))
    }

    /// The pipeline (`[pipeline]`, `[ingest]`).
    pub fn pipeline(&self) -> Result<Pipeline> {
        Ok(dealledger_events::pipeline::pipeline_from_config(self.config()?)?)
    }

    /// Takes the writer lock (sled) or the writer lease (JetStream) for `command`, or says who
    /// holds it.
    pub fn lock_writer(&self, command: &str) -> Result<WriterGuard> {
        self.lock_writer_of(command, true)
    }

    /// As [`DataDir::lock_writer`], for a command that needs an existing ledger (`recover`,
    /// `migrate`): on JetStream, a ledger that does not exist is an error, not made empty.
    pub fn lock_existing_writer(&self, command: &str) -> Result<WriterGuard> {
        self.lock_writer_of(command, false)
    }

    fn lock_writer_of(&self, command: &str, create: bool) -> Result<WriterGuard> {
        if let Some(lease) = self.lease(holder_description(command, None), create)? {
            return Ok(WriterGuard::Lease(Kept::take(Arc::new(lease))?));
        }
        self.lock_sled_writer(command)
    }

    /// The data directory's own writer lock, whatever `dealledger.toml` says of the store: for
    /// a sled store made here by `migrate --to sled:DIR`.
    pub fn lock_sled_writer(&self, command: &str) -> Result<WriterGuard> {
        self.ensure()?;
        if let Some(lock) = WriterLock::take(&self.path, command)? {
            return Ok(WriterGuard::File(lock));
        }
        let holder = writer_lock::holder(&self.path);
        let advice = holder.url.map_or("wait for it to finish, or stop it first".to_string(), |url| {
            format!("send events to the daemon instead (POST {url}/v1/events), or stop it first")
        });
        Err(DataError::Unavailable(format!(
            "{} is in use by another writer ({}); {advice}",
            self.path.display(),
            holder.description
        )))
    }

    /// The store, on whichever backend: `create` makes a new ledger where there is none.
    pub fn open_store(&self, create: bool) -> Result<Store> {
        match self.backend()? {
            Backend::Sled => Ok(Arc::new(self.open_sled(create)?)),
            Backend::JetStream { .. } => Ok(self.jetstream(create)?),
        }
    }

    /// The sled store in `DIR/store`, whatever `dealledger.toml` says of the store.
    pub fn open_sled(&self, create: bool) -> Result<SledStore> {
        let store = self.store_path();
        if !create && !store.exists() {
            return Err(DataError::Unavailable(format!(
                "no ledger in {} (looked for {}); ingest events first, or pass --data DIR / set DEALLEDGER_DATA",
                self.path.display(),
                store.display()
            )));
        }
        self.ensure()?;
        match SledStore::open(&store) {
            Ok(store) => Ok(store),
            Err(dealledger_log::LogError::Locked { .. }) => {
                let holder = writer_lock::holder(&self.path);
                let advice = match (holder.url, &self.server_retry) {
                    (Some(url), Some(command)) => {
                        format!(
                            "ask the daemon instead: dealledger {}",
                            command.replace("--server URL", &format!("--server {url}"))
                        )
                    }
                    (Some(url), None) => format!("ask the daemon instead: GET {url}/v1/..."),
                    (None, _) => "wait for it to finish".to_string(),
                };
                Err(DataError::Unavailable(format!(
                    "the ledger in {} is open in another process ({}); {advice}",
                    self.path.display(),
                    holder.description
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The writer: validity and idempotency state rebuilt from the log.
    pub fn open_ledger(&self) -> Result<Ledger<Store>> {
        let pipeline = self.pipeline()?;
        Ok(Ledger::open(self.open_store(true)?, pipeline)?)
    }

    /// The log for reading (and projection checkpoints). A log that lost acknowledged events
    /// is still readable, with a warning: what it shows is not all that was acknowledged.
    pub fn open_log(&self) -> Result<Log<Store>> {
        let log = Log::open(self.open_store(false)?)?;
        if let Err(e) = log.check_mark() {
            eprintln!("warning: {e}");
        }
        Ok(log)
    }
}

/// What a person accepts with `dealledger recover`: the range of acknowledged seqs the store
/// lost (named exactly), or that the store was replaced.
#[derive(Clone, Copy, Debug, Default)]
pub struct Acceptance<'a> {
    pub loss: Option<&'a str>,
    pub replaced_store: bool,
}

/// What `recover` did.
#[derive(Debug)]
pub enum Recovered {
    /// The log reaches its high-water mark: nothing to accept.
    Nothing { head_seq: u64 },
    /// The loss was recorded (the record, as written), then the mark moved to the log's head.
    Accepted { record: serde_json::Value, head_seq: u64 },
}

impl DataDir {
    /// `dealledger recover`: a person accepts, on the record, that the store lost acknowledged
    /// events (or was replaced), so that the ledger writes again. Never automatic: what is
    /// accepted must be named exactly, else [`DataError::Usage`] says what to name.
    pub fn recover(&self, now: dealledger_events::Timestamp, accept: Acceptance<'_>) -> Result<Recovered> {
        let _lock = self.lock_existing_writer("dealledger recover")?;
        let log = self.open_log()?;
        let head = log.head();
        let record = match log.check_mark() {
            Ok(()) => return Ok(Recovered::Nothing { head_seq: head.seq }),
            Err(LogError::LostTail { ends_at, acknowledged, mark }) => {
                let lost = format!("{}..{acknowledged}", ends_at + 1);
                match accept.loss {
                    Some(range) if range == lost => {}
                    Some(range) => {
                        let why =
                            format!("--accept-loss {range}: the missing range is {lost}; name it exactly");
                        return Err(DataError::Usage(why));
                    }
                    None => {
                        return Err(DataError::Usage(format!(
                            "seqs {lost} are missing; to go on without them pass --accept-loss {lost} \
                             (new events will be numbered from {} again)",
                            ends_at + 1
                        )))
                    }
                }
                serde_json::json!({
                    "accepted_at": now.to_string(),
                    "kind": "lost_tail",
                    "lost_first_seq": ends_at + 1,
                    "lost_last_seq": acknowledged,
                    "head_seq": head.seq,
                    "head_chain": head.chain_hex(),
                    "mark": mark,
                })
            }
            Err(LogError::MarkMismatch { seq, mark }) => {
                if !accept.replaced_store {
                    return Err(DataError::Usage(format!(
                        "the store's chain at seq {seq} is not the one acknowledged there; to take this store as the \
                         ledger's from now on, pass --accept-replaced-store"
                    )));
                }
                serde_json::json!({
                    "accepted_at": now.to_string(),
                    "kind": "replaced_store",
                    "mismatch_at_seq": seq,
                    "head_seq": head.seq,
                    "head_chain": head.chain_hex(),
                    "mark": mark,
                })
            }
            Err(other) => return Err(other.into()),
        };
        // The record first: if the mark were moved and the record then failed, the loss would be
        // accepted with no trace of it.
        self.record_loss(&record)?;
        log.store().reset_mark(head)?;
        Ok(Recovered::Accepted { record, head_seq: head.seq })
    }
}

/// Who a writer is, as other processes read it from the lease: the process, the host, the
/// command and, for a daemon, where to send writes.
pub fn holder_description(command: &str, url: Option<&str>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "an unnamed host".into());
    // Two processes may share a pid and a host name (containers): the start instant tells
    // them apart, so that neither takes the other's lease entry for its own.
    static STARTED: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let started = STARTED.get_or_init(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    });
    let mut description =
        format!("pid {} on {host} (started {started:x}), command {command}", std::process::id());
    if let Some(url) = url {
        description.push_str(&format!(", url {url}"));
    }
    description
}

/// fsync of a directory: the entries created or renamed in it become durable.
fn sync_dir(dir: &Path) -> Result<()> {
    dealledger_log::files::sync_dir(dir).map_err(|source| DataError::Io {
        what: format!("cannot sync the directory {}", dir.display()),
        source,
    })
}

/// The command line as typed (`args`, the program's name left out), with `--server URL` put
/// before the subcommand (`URL` is left for the caller to fill in): the command to run against a
/// daemon that holds the ledger. Quoted
/// where an argument holds anything but plain characters.
pub fn command_line_with_server(args: impl Iterator<Item = std::ffi::OsString>) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    let mut words: Vec<String> = args
        .map(|arg| {
            let arg = arg.to_string_lossy().into_owned();
            if !arg.is_empty() && arg.chars().all(plain) {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect();
    let at = words.iter().position(|w| w == "report" || w == "whatif").unwrap_or(0);
    words.insert(at, "--server URL".to_string());
    words.join(" ")
}

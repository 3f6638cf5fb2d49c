//! The data directory: where `dealledger.toml` lives, and the store unless `--store` (or
//! `[store] url`) puts the log on a JetStream stream.

use anyhow::{Context, Result};
use dealledger_config::Config;
use dealledger_events::Pipeline;
use dealledger_jetstream::{JetStreamLease, JetStreamStore};
use dealledger_log::lease::Kept;
use dealledger_log::writer_lock::{self, WriterLock};
use dealledger_log::{Ledger, Log, SledStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Every command's store: sled or JetStream behind the one trait.
pub type Store = dealledger_server::Store;

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
                let target = dealledger_jetstream::Target::parse(&url).map_err(|why| crate::Exit {
                    code: 2,
                    message: format!("--store (or [store] url): {why}"),
                })?;
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
                return Err(crate::Exit {
                    code: 2,
                    message: format!(
                        "{}: [store] replicas = {replicas}: a JetStream stream has 1 to 5",
                        self.config_path().display()
                    ),
                }
                .into());
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
            anyhow::bail!("the ledger is not on JetStream");
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
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("cannot create {}", self.path.display()))?;
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
            .with_context(|| format!("cannot open {}", path.display()))?;
        writeln!(file, "{line}")
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot write {}", path.display()))?;
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

    /// Report settings (and the pipeline).
    pub fn settings(&self) -> Result<dealledger_reports::Settings> {
        Ok(dealledger_reports::settings_from_config(self.config()?)?)
    }

    /// The importers' options: the pipeline and `[import]`.
    pub fn import_options(&self) -> Result<dealledger_import::Options> {
        let pipeline = self.pipeline()?;
        Ok(dealledger_import::options_from_config(self.config()?, pipeline)?)
    }

    /// The daemon's settings: `[serve]` and `[hubspot]`.
    pub fn serve_config(&self) -> Result<dealledger_server::ServeConfig> {
        let pipeline = self.pipeline()?;
        Ok(dealledger_server::serve_config_from(self.config()?, &pipeline)?)
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
        anyhow::bail!(
            "{} is in use by another writer ({}); {advice}",
            self.path.display(),
            holder.description
        );
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
            anyhow::bail!(
                "no ledger in {} (looked for {}); ingest events first, or pass --data DIR / set DEALLEDGER_DATA",
                self.path.display(),
                store.display()
            );
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
                anyhow::bail!(
                    "the ledger in {} is open in another process ({}); {advice}",
                    self.path.display(),
                    holder.description
                )
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
    dealledger_log::files::sync_dir(dir)
        .with_context(|| format!("cannot sync the directory {}", dir.display()))
}

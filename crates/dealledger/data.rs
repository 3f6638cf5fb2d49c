//! The data directory: where the store and `dealledger.toml` live.

use anyhow::{Context, Result};
use dealledger_config::Config;
use dealledger_events::Pipeline;
use dealledger_log::writer_lock::{self, WriterLock};
use dealledger_log::{Ledger, Log, SledStore};
use std::path::{Path, PathBuf};

pub use dealledger_config::CONFIG_FILE;
const STORE_DIR: &str = "store";
/// The record of every loss a person accepted with `dealledger recover`, one JSON line each.
const LOSSES_FILE: &str = "losses.jsonl";
/// HubSpot notifications the daemon could not admit yet (`dealledger audit quarantine`).
const QUARANTINE_FILE: &str = "quarantine.jsonl";

pub struct DataDir {
    pub path: PathBuf,
    config: std::sync::OnceLock<Config>,
}

impl DataDir {
    pub fn new(path: PathBuf) -> DataDir {
        DataDir { path, config: std::sync::OnceLock::new() }
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
    fn ensure(&self) -> Result<()> {
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
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
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

    /// Takes the writer lock for `command`, or says who holds it.
    pub fn lock_writer(&self, command: &str) -> Result<WriterLock> {
        self.ensure()?;
        if let Some(lock) = WriterLock::take(&self.path, command)? {
            return Ok(lock);
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

    fn open_store(&self, create: bool) -> Result<SledStore> {
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
                let advice = holder.url.map_or("wait for it to finish".to_string(), |url| {
                    format!("ask the daemon instead: --server {url} (reports), or GET {url}/v1/...")
                });
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
    pub fn open_ledger(&self) -> Result<Ledger<SledStore>> {
        let pipeline = self.pipeline()?;
        Ok(Ledger::open(self.open_store(true)?, pipeline)?)
    }

    /// The log for reading (and projection checkpoints). A log that lost acknowledged events
    /// is still readable, with a warning: what it shows is not all that was acknowledged.
    pub fn open_log(&self) -> Result<Log<SledStore>> {
        let log = Log::open(self.open_store(false)?)?;
        if let Err(e) = log.check_mark() {
            eprintln!("warning: {e}");
        }
        Ok(log)
    }
}

/// fsync of a directory: the entries created or renamed in it become durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the directory {}", dir.display()))
}

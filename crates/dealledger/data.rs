//! The data directory: where the store and `dealledger.toml` live.

use anyhow::{Context, Result};
use dealledger_events::Pipeline;
use dealledger_log::{Ledger, Log, SledStore};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "dealledger.toml";
const STORE_DIR: &str = "store";

pub struct DataDir {
    pub path: PathBuf,
}

impl DataDir {
    pub fn new(path: PathBuf) -> DataDir {
        DataDir { path }
    }

    pub fn store_path(&self) -> PathBuf {
        self.path.join(STORE_DIR)
    }

    /// The pipeline from `dealledger.toml`, or the default one when there is no such file.
    pub fn pipeline(&self) -> Result<Pipeline> {
        let path = self.path.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => dealledger_events::pipeline::parse_pipeline_toml(&text)
                .map_err(|why| anyhow::anyhow!("{}: {why}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pipeline::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Report settings (and the pipeline) from `dealledger.toml`; the defaults without one.
    pub fn settings(&self) -> Result<dealledger_reports::Settings> {
        let path = self.path.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => dealledger_reports::parse_settings_toml(&text)
                .map_err(|why| anyhow::anyhow!("{}: {why}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(dealledger_reports::Settings::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
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
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("cannot create {}", self.path.display()))?;
        Ok(SledStore::open(&store)?)
    }

    /// The writer: validity and idempotency state rebuilt from the log.
    pub fn open_ledger(&self) -> Result<Ledger<SledStore>> {
        let pipeline = self.pipeline()?;
        Ok(Ledger::open(self.open_store(true)?, pipeline)?)
    }

    /// The log for reading (and projection checkpoints).
    pub fn open_log(&self) -> Result<Log<SledStore>> {
        Ok(Log::open(self.open_store(false)?)?)
    }
}

pub fn is_empty_dir(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => !path.exists(),
    }
}

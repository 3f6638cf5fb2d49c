//! The data directory (`dealledger-datadir`), and what the commands read from its settings file
//! beyond the pipeline: report settings, the importers' options, the daemon's settings.

pub use dealledger_datadir::{holder_description, DataDir, Store, WriterGuard};

/// The settings each command reads from `dealledger.toml`, beside the pipeline.
pub trait Settings {
    /// Report settings (and the pipeline).
    fn settings(&self) -> anyhow::Result<dealledger_reports::Settings>;
    /// The importers' options: the pipeline and `[import]`.
    fn import_options(&self) -> anyhow::Result<dealledger_import::Options>;
    /// The daemon's settings: `[serve]` and `[hubspot]`.
    fn serve_config(&self) -> anyhow::Result<dealledger_server::ServeConfig>;
    /// `[hubspot]`, which `what` (a command that maps HubSpot's stages) needs: exit 2 without it.
    fn hubspot(&self, what: &str) -> anyhow::Result<dealledger_server::HubSpotConfig>;
}

impl Settings for DataDir {
    fn settings(&self) -> anyhow::Result<dealledger_reports::Settings> {
        Ok(dealledger_reports::settings_from_config(self.config()?)?)
    }

    fn import_options(&self) -> anyhow::Result<dealledger_import::Options> {
        Ok(dealledger_import::options_from_config(self.config()?, self.pipeline()?)?)
    }

    fn serve_config(&self) -> anyhow::Result<dealledger_server::ServeConfig> {
        Ok(dealledger_server::serve_config_from(self.config()?, &self.pipeline()?)?)
    }

    fn hubspot(&self, what: &str) -> anyhow::Result<dealledger_server::HubSpotConfig> {
        let path = self.config_path();
        let message = format!("{what} maps HubSpot's deal stages through [hubspot.stages] of {}, which has no [hubspot] section", path.display());
        Ok(self.serve_config()?.hubspot.ok_or(crate::Exit { code: 2, message })?)
    }
}

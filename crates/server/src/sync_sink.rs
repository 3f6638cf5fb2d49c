//! Where a CRM sync's events go: a page into the ledger as one durable batch, and a change the
//! ledger refuses (an unmapped stage, a move out of a closed deal) into the quarantine, under
//! the key a webhook of the same change would have, so that one `quarantine retry` serves both
//! and a change held by either path is released when the other stores it.

use crate::hubspot::Notification;
use crate::quarantine::{Hold, Quarantine, Reason, Release};
use dealledger_events::{Clock, DealId, Rule, Timestamp};
use dealledger_import::{Row, Skipped};
use dealledger_log::{BlockStore, Ledger, Outcome};
use dealledger_sync::reconcile::{ledger_deals, LedgerDeal};
use dealledger_sync::{BoxError, Sink, Stored};
use std::collections::BTreeMap;

pub struct LedgerSink<'a, S: BlockStore> {
    pub ledger: &'a mut Ledger<S>,
    pub quarantine: &'a mut Quarantine,
    pub clock: &'a dyn Clock,
}

impl<S: BlockStore> Sink for LedgerSink<'_, S> {
    fn opened_at(&self, deal: &str) -> Option<Timestamp> {
        let id = DealId::parse(deal).ok()?;
        self.ledger.deals().get(&id).map(|line| line.opened_at)
    }

    fn store(&mut self, rows: Vec<Row>) -> Result<Stored, BoxError> {
        let now = self.clock.now();
        let mut batch = self.ledger.batch(self.clock);
        let quarantine = &*self.quarantine;
        let admitted = admit_rows(&mut batch, rows, |key| quarantine.contains(key));
        // Room first: a full quarantine stops the run before anything of the page is stored.
        self.quarantine.check_room(&admitted.holds)?;
        let committed = batch.commit()?;
        // After the events: a crash between the two leaves the holds to the next run, which
        // reads the page again (the cursor moves only after this returns).
        self.quarantine.record(&admitted.holds, &admitted.releases, now)?;
        Ok(Stored {
            appended: committed.appended,
            duplicates: committed.duplicates,
            held: admitted.holds.len() as u64,
            refused: admitted.refused,
        })
    }

    fn deals_now(&mut self) -> Result<BTreeMap<String, LedgerDeal>, BoxError> {
        let (timeline, _) =
            dealledger_projections::catch_up::<dealledger_projections::Timeline, _>(self.ledger.log())?;
        Ok(ledger_deals(&timeline))
    }
}

/// One page of a sync admitted into a batch: what the quarantine must hold and release once the
/// batch is durable, the rows refused with nothing to hold them by, and the outcomes' counts.
#[derive(Default)]
pub struct Admitted {
    pub holds: Vec<Hold>,
    pub releases: Vec<(String, Release)>,
    pub refused: Vec<Skipped>,
    pub appended: u64,
    pub duplicates: u64,
}

/// Admits `rows` into `batch`, each on its own (a refused row never fails the page): the one
/// admission of a sync's page, for the command's ledger and the daemon's writer alike.
/// `quarantined` says whether the quarantine holds a key now.
pub fn admit_rows<S: BlockStore>(
    batch: &mut dealledger_log::Batch<'_, S>,
    rows: Vec<Row>,
    quarantined: impl Fn(&str) -> bool,
) -> Admitted {
    let mut admitted = Admitted::default();
    for row in rows {
        let key = row.notification.as_ref().map(|n| Notification::from_json(n.clone()).key());
        match row.result.and_then(|submission| batch.push(submission)) {
            Ok(outcome) => {
                let how = match outcome {
                    Outcome::Appended { .. } => {
                        admitted.appended += 1;
                        Release::Admitted
                    }
                    Outcome::Duplicate { .. } => {
                        admitted.duplicates += 1;
                        Release::Duplicate
                    }
                };
                if let Some(key) = key.filter(|k| quarantined(k)) {
                    admitted.releases.push((key, how));
                }
            }
            // A move to the stage the deal is in already (a webhook moved it first): the
            // ledger says it all, as the webhook path decides.
            Err(rejection) if rejection.rule == Rule::SameStage => admitted.refused.push(Skipped {
                location: row.location,
                kind: "same_stage",
                reason: "the stage the deal is already in".into(),
            }),
            Err(rejection) => match (row.notification, key) {
                (Some(notification), Some(key)) => {
                    admitted.holds.push(Hold { key, notification, reason: Reason::of(&rejection) })
                }
                _ => admitted.refused.push(Skipped {
                    location: row.location,
                    kind: "refused",
                    reason: rejection.to_string(),
                }),
            },
        }
    }
    admitted
}

/// A HubSpot sync's settings from `[hubspot]`.
pub fn settings_of(
    config: &crate::HubSpotConfig,
    pipeline: &dealledger_events::Pipeline,
) -> dealledger_sync::hubspot::Settings {
    let mut settings = dealledger_sync::hubspot::Settings::new(config.mapping(), pipeline.clone());
    settings.api_url = config.api_url.clone();
    settings.pipelines = config.pipelines.clone();
    settings
}

/// A CRM a sync reads, with its settings.
#[derive(Clone, Debug)]
pub enum Crm {
    HubSpot(crate::HubSpotConfig),
    Salesforce(crate::config::SalesforceConfig),
}

/// A CRM named on a command line or in `[sync]` that the settings file does not set up.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    #[error("{what} needs a [{crm}] section in {}: {needs}", path.display())]
    NotConfigured { what: String, crm: &'static str, path: std::path::PathBuf, needs: &'static str },
}

impl Crm {
    /// `crm` (`hubspot`, `salesforce`) as `config` sets it up, for `what` (a command, in errors);
    /// `path` names the settings file.
    pub fn of(
        config: &crate::ServeConfig,
        crm: &str,
        what: &str,
        path: &std::path::Path,
    ) -> Result<Crm, CrmError> {
        let missing = |crm, needs| CrmError::NotConfigured {
            what: what.to_string(),
            crm,
            path: path.to_path_buf(),
            needs,
        };
        match crm {
            "salesforce" => {
                config.salesforce.clone().map(Crm::Salesforce).ok_or_else(|| {
                    missing("salesforce", "instance_url, and the stages through [import.stages]")
                })
            }
            _ => config
                .hubspot
                .clone()
                .map(Crm::HubSpot)
                .ok_or_else(|| missing("hubspot", "its deal stages through [hubspot.stages]")),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Crm::HubSpot(_) => "hubspot",
            Crm::Salesforce(_) => "salesforce",
        }
    }

    /// The environment variable that may hold its token.
    pub fn token_env(&self) -> &'static str {
        match self {
            Crm::HubSpot(_) => "DEALLEDGER_HUBSPOT_TOKEN",
            Crm::Salesforce(_) => "DEALLEDGER_SALESFORCE_TOKEN",
        }
    }

    /// One run into `sink` at `now`.
    #[allow(clippy::too_many_arguments, reason = "a run's parts, each from its own source")]
    pub fn run(
        &self,
        pipeline: &dealledger_events::Pipeline,
        token: dealledger_sync::http::Secret,
        pause: Box<dyn dealledger_sync::http::Pause>,
        now: dealledger_events::Timestamp,
        state_path: &std::path::Path,
        sink: &mut dyn Sink,
        progress: &mut dyn FnMut(dealledger_sync::Progress<'_>),
        (steps, retries_max): (dealledger_sync::Steps, Option<u32>),
    ) -> dealledger_sync::Ran {
        match self {
            Crm::HubSpot(config) => {
                let mut settings = settings_of(config, pipeline);
                settings.retries_max = retries_max.unwrap_or(settings.retries_max);
                dealledger_sync::hubspot::sync(
                    &settings, token, pause, now, state_path, sink, progress, steps,
                )
            }
            Crm::Salesforce(config) => {
                let mut settings = config.settings();
                settings.retries_max = retries_max.unwrap_or(settings.retries_max);
                dealledger_sync::salesforce::sync(
                    &settings, token, pause, now, state_path, sink, progress, steps,
                )
            }
        }
    }
}

/// One sync run of `crm` (or its reconciliation alone, by `steps`) into `ledger`, refused changes
/// into the quarantine at `quarantine_path`, the cursor at `state_path`: what the commands run
/// (the daemon's schedule runs the same through its writer).
pub fn sync_crm<S: BlockStore>(
    ledger: &mut Ledger<S>,
    (quarantine_path, state_path): &(std::path::PathBuf, std::path::PathBuf),
    crm: &Crm,
    token: dealledger_sync::http::Secret,
    clock: &dyn Clock,
    progress: &mut dyn FnMut(dealledger_sync::Progress<'_>),
    steps: dealledger_sync::Steps,
) -> Result<dealledger_sync::Ran, crate::quarantine::QuarantineError> {
    let mut quarantine = Quarantine::open(quarantine_path)?;
    let pipeline = ledger.pipeline().clone();
    let mut sink = LedgerSink { ledger, quarantine: &mut quarantine, clock };
    let pause = Box::new(dealledger_sync::http::RealPause::default());
    Ok(crm.run(&pipeline, token, pause, clock.now(), state_path, &mut sink, progress, (steps, None)))
}

//! Where a CRM sync's events go: a page into the ledger as one durable batch, and a change the
//! ledger refuses (an unmapped stage, a move out of a closed deal) into the quarantine, under
//! the key a webhook of the same change would have, so that one `quarantine retry` serves both
//! and a change held by either path is released when the other stores it.

use crate::hubspot::Notification;
use crate::quarantine::{Hold, Quarantine, Reason, Release};
use dealledger_events::{Clock, DealId, Rule, Timestamp};
use dealledger_import::{Row, Skipped};
use dealledger_log::{BlockStore, Ledger, Outcome};
use dealledger_sync::{Sink, Stored};

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

    fn store(&mut self, rows: Vec<Row>) -> Result<Stored, Box<dyn std::error::Error + Send + Sync>> {
        let now = self.clock.now();
        let mut batch = self.ledger.batch(self.clock);
        let (mut holds, mut releases, mut refused) = (Vec::new(), Vec::new(), Vec::new());
        for row in rows {
            let key = row.notification.as_ref().map(|n| Notification::from_json(n.clone()).key());
            match row.result.and_then(|submission| batch.push(submission)) {
                Ok(outcome) => {
                    if let Some(key) = key.filter(|k| self.quarantine.contains(k)) {
                        let how = match outcome {
                            Outcome::Appended { .. } => Release::Admitted,
                            Outcome::Duplicate { .. } => Release::Duplicate,
                        };
                        releases.push((key, how));
                    }
                }
                // A move to the stage the deal is in already (a webhook moved it first): the
                // ledger says it all, as the webhook path decides.
                Err(rejection) if rejection.rule == Rule::SameStage => refused.push(Skipped {
                    location: row.location,
                    kind: "same_stage",
                    reason: "the stage the deal is already in".into(),
                }),
                Err(rejection) => match (row.notification, key) {
                    (Some(notification), Some(key)) => {
                        holds.push(Hold { key, notification, reason: Reason::of(&rejection) })
                    }
                    _ => refused.push(Skipped {
                        location: row.location,
                        kind: "refused",
                        reason: rejection.to_string(),
                    }),
                },
            }
        }
        // Room first: a full quarantine stops the run before anything of the page is stored.
        self.quarantine.check_room(&holds)?;
        let committed = batch.commit()?;
        // After the events: a crash between the two leaves the holds to the next run, which
        // reads the page again (the cursor moves only after this returns).
        self.quarantine.record(&holds, &releases, now)?;
        Ok(Stored {
            appended: committed.appended,
            duplicates: committed.duplicates,
            held: holds.len() as u64,
            refused,
        })
    }
}

/// One `sync hubspot` run into `ledger` with `[hubspot]` as `config` says, refused changes into
/// the quarantine at `quarantine_path`, the cursor at `state_path`: what the command runs, and
/// what the daemon's schedule will.
pub fn sync_hubspot<S: BlockStore>(
    ledger: &mut Ledger<S>,
    quarantine_path: &std::path::Path,
    config: &crate::HubSpotConfig,
    token: dealledger_sync::http::Secret,
    clock: &dyn Clock,
    state_path: &std::path::Path,
    progress: &mut dyn FnMut(dealledger_sync::Progress<'_>),
) -> Result<dealledger_sync::hubspot::Ran, crate::quarantine::QuarantineError> {
    let mut quarantine = Quarantine::open(quarantine_path)?;
    let mut settings = dealledger_sync::hubspot::Settings::new(config.mapping(), ledger.pipeline().clone());
    settings.api_url = config.api_url.clone();
    settings.pipelines = config.pipelines.clone();
    let mut sink = LedgerSink { ledger, quarantine: &mut quarantine, clock };
    let pause = Box::new(dealledger_sync::http::RealPause::default());
    Ok(dealledger_sync::hubspot::sync(&settings, token, pause, clock.now(), state_path, &mut sink, progress))
}

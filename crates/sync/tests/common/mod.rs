//! What the sync tests share: a ledger in memory as the sink.
#![allow(dead_code, clippy::unwrap_used, reason = "test code: a panic is a failing test")]

use dealledger_events::{Currency, DealId, Pipeline, Timestamp};
use dealledger_import::Row;
use dealledger_log::{Ledger, MemStore};
use dealledger_projections::{catch_up, Timeline};
use dealledger_sync::reconcile::{ledger_deals, LedgerDeal};
use dealledger_sync::{BoxError, Sink, Stored};
use serde_json::Value;
use std::collections::BTreeMap;

/// A ledger in memory; refused rows are held here (the daemon's quarantine in production).
pub struct MemSink {
    pub ledger: Ledger<MemStore>,
    pub held: Vec<Value>,
    pub now: Timestamp,
}

impl MemSink {
    pub fn new(now: &str) -> MemSink {
        let ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
        MemSink { ledger, held: Vec::new(), now: Timestamp::parse_rfc3339(now).unwrap() }
    }

    /// Every stored event as JSON, in order.
    pub fn events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        self.ledger
            .log()
            .scan(1, |stored| {
                let currency = self.ledger.deals().currency(&stored.event.deal).unwrap_or(Currency(*b"USD"));
                out.push(
                    serde_json::from_str(&dealledger_events::stored_event_json(&stored, currency)).unwrap(),
                );
                Ok(true)
            })
            .unwrap();
        out
    }

    pub fn touches(&self) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["type"] == "touch").collect()
    }
}

impl Sink for MemSink {
    fn opened_at(&self, deal: &str) -> Option<Timestamp> {
        self.ledger.deals().get(&DealId::parse(deal).ok()?).map(|line| line.opened_at)
    }

    fn store(&mut self, rows: Vec<Row>) -> Result<Stored, BoxError> {
        let clock = dealledger_events::FixedClock(self.now);
        let mut batch = self.ledger.batch(&clock);
        let mut held = Vec::new();
        let mut refused = Vec::new();
        for row in rows {
            if let Err(rejection) = row.result.and_then(|s| batch.push(s)) {
                match row.notification {
                    Some(n) => held.push(n),
                    None => refused.push(dealledger_import::Skipped {
                        location: row.location,
                        kind: "refused",
                        reason: rejection.to_string(),
                    }),
                }
            }
        }
        let committed = batch.commit()?;
        let stored = Stored {
            appended: committed.appended,
            duplicates: committed.duplicates,
            held: held.len() as u64,
            refused,
        };
        self.held.extend(held);
        Ok(stored)
    }

    fn deals_now(&mut self) -> Result<BTreeMap<String, LedgerDeal>, BoxError> {
        let (timeline, _) = catch_up::<Timeline, _>(self.ledger.log())?;
        Ok(ledger_deals(&timeline))
    }
}

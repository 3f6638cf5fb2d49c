//! `bench --sync`: `sync hubspot` into a sled ledger against the local HubSpot of the sync
//! crate's testkit, which holds the client to HubSpot's documented limits (100 requests per ten
//! seconds, the Free and Starter limit; five searches a second). The figures are what a run costs
//! at those limits: deals and activities per second, and requests per 1,000 deals.

use anyhow::Result;
use dealledger_events::{FixedClock, Pipeline, Timestamp};
use dealledger_log::{Ledger, SledStore};
use dealledger_sync::testkit::{FakeActivity, FakeDeal, FakeHubSpot, Portal};

/// The portal's start: 2025-01-01T00:00:00Z.
const T0_MS: i64 = 1_735_689_600_000;

/// `deals` deals, each with a stage move, an amount and an owner, and three activities (a call,
/// an email, a meeting) on it.
fn portal(deals: u64) -> Portal {
    let mut portal = Portal::default();
    for id in 1..=deals {
        let at = T0_MS + id as i64 * 60_000;
        let mut deal = FakeDeal::new(at, "appointmentscheduled");
        deal.set("amount", "1000", at);
        deal.set("hubspot_owner_id", &(id % 50).to_string(), at + 1000);
        deal.set("dealstage", "qualifiedtobuy", at + 86_400_000);
        portal.deals.insert(id, deal);
        for (n, (kind, property, value)) in [
            ("calls", "hs_call_duration", "300000"),
            ("emails", "hs_email_direction", "EMAIL"),
            ("meetings", "hs_meeting_outcome", "COMPLETED"),
        ]
        .into_iter()
        .enumerate()
        {
            let when = at + 3_600_000 * (n as i64 + 1);
            let mut activity =
                FakeActivity { created_ms: when, modified_ms: when, deals: vec![id], ..Default::default() };
            activity.properties.insert("hs_timestamp".into(), when.to_string());
            activity.properties.insert(property.into(), value.into());
            portal.activities.insert((kind.to_string(), id * 10 + n as u64), activity);
        }
    }
    portal
}

/// One full sync of `deals` deals (and three activities each) into a fresh ledger under `root`.
pub fn sync_bench(root: &std::path::Path, deals: u64) -> Result<serde_json::Value> {
    let dir = root.join("bench-sync");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let fake = FakeHubSpot::start(portal(deals));
    let token = fake.portal().token.clone();
    let mut ledger = Ledger::open(SledStore::open(&dir.join("store"))?, Pipeline::default())?;
    let config = dealledger_server::HubSpotConfig {
        app_secret: None,
        stages: [
            ("appointmentscheduled", dealledger_server::StageTarget::Stage("prospecting".into())),
            ("qualifiedtobuy", dealledger_server::StageTarget::Stage("qualifying".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        public_url: None,
        default_owner: "hubspot".into(),
        body_bytes_max: 1,
        unsigned_bytes_max: 1,
        open_unknown: false,
        api_url: fake.url.clone(),
        pipelines: None,
    };
    let clock = FixedClock(Timestamp((T0_MS + 400 * 86_400_000) * 1000));
    let started = std::time::Instant::now();
    let ran = dealledger_server::sync_sink::sync_crm(
        &mut ledger,
        &(dir.join("quarantine.jsonl"), dir.join("sync.json")),
        &dealledger_server::sync_sink::Crm::HubSpot(config),
        dealledger_sync::http::Secret::new(token),
        &clock,
        &mut |_| {},
        dealledger_sync::Steps::All,
    )?;
    ran.result?;
    let seconds = started.elapsed().as_secs_f64();
    let s = &ran.summary;
    let activities: u64 = s.records.iter().filter(|(k, _)| k.as_str() != "deals").map(|(_, n)| n).sum();
    Ok(serde_json::json!({
        "deals": deals,
        "activities": activities,
        "events_stored": s.events_stored,
        "requests": s.http.requests,
        "throttled": s.http.throttled,
        "waited_ms": s.http.waited_ms,
        "seconds": (seconds * 100.0).round() / 100.0,
        "deals_per_second": (deals as f64 / seconds).round(),
        "activities_per_second": (activities as f64 / seconds).round(),
        "requests_per_1000_deals": (s.http.requests as f64 * 1000.0 / deals as f64).round(),
        "reconciled_differences": s.reconciled.as_ref().map_or(0, |r| r.differences_total),
    }))
}

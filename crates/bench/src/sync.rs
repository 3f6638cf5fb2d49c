//! `bench --sync`: `sync hubspot` and `sync salesforce` into a sled ledger against the local
//! CRMs of the sync crate's testkit. The local HubSpot holds the client to HubSpot's documented
//! limits (100 requests per ten seconds, the Free and Starter limit; five searches a second);
//! Salesforce has no rate limit but the daily allocation, so its run shows the client's and the
//! ledger's own pace. The figures: deals and activities per second, and requests per 1,000 deals.

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

/// Both CRMs' figures.
pub fn sync_bench(root: &std::path::Path, deals: u64) -> Result<serde_json::Value> {
    Ok(
        serde_json::json!({"hubspot": hubspot_bench(root, deals)?, "salesforce": salesforce_bench(root, deals)?}),
    )
}

/// An org of `deals` opportunities, each opened, moved on a day later with a new amount, and a
/// call, an email and a meeting on it.
fn org(deals: u64) -> dealledger_sync::testkit::salesforce::Org {
    use dealledger_sync::testkit::salesforce::{Org, Record};
    // As the API writes times: `2025-01-01T00:01:00.000+0000`.
    let time = |ms: i64| Timestamp(ms * 1000).to_string().replace('Z', ".000+0000");
    let mut org = Org::default();
    org.api_usage = (0, 100_000_000);
    let mut add = |object: &str, fields: serde_json::Value| {
        let record: Record = serde_json::from_value(fields).unwrap_or_default();
        org.insert(object, record);
    };
    for n in 1..=deals {
        let at = T0_MS + n as i64 * 60_000;
        let (id, owner) = (format!("006B{n:014}"), format!("005B{:014}", n % 50));
        let day = at + 86_400_000;
        add(
            "Opportunity",
            serde_json::json!({"Id": id, "OwnerId": owner, "Name": format!("Deal {n}"),
            "StageName": "Needs Analysis", "Amount": 1500, "CloseDate": "2025-06-30", "SystemModstamp": time(day)}),
        );
        for (h, (stage, amount, when)) in
            [("Prospecting", 1000, at), ("Needs Analysis", 1500, day)].into_iter().enumerate()
        {
            add(
                "OpportunityHistory",
                serde_json::json!({"Id": format!("008B{n:013}{h}"), "OpportunityId": id,
                "CreatedById": owner, "CreatedDate": time(when), "StageName": stage, "Amount": amount,
                "CloseDate": "2025-06-30", "SystemModstamp": time(when), "IsDeleted": false}),
            );
        }
        let (call, email, meeting) = (time(at + 3_600_000), time(at + 7_200_000), time(at + 10_800_000));
        add(
            "Task",
            serde_json::json!({"Id": format!("00TB{n:014}"), "WhatId": id, "OwnerId": owner,
            "Status": "Completed", "IsClosed": true, "TaskSubtype": "Call", "CallType": "Outbound",
            "CallDurationInSeconds": 300, "CompletedDateTime": call, "CreatedDate": call, "SystemModstamp": call,
            "IsDeleted": false, "IsArchived": false}),
        );
        add(
            "EmailMessage",
            serde_json::json!({"Id": format!("02sB{n:014}"), "RelatedToId": id, "Incoming": false,
            "Status": "3", "MessageDate": email, "CreatedDate": email, "SystemModstamp": email, "IsDeleted": false}),
        );
        add(
            "Event",
            serde_json::json!({"Id": format!("00UB{n:014}"), "WhatId": id, "OwnerId": owner,
            "StartDateTime": meeting, "DurationInMinutes": 30, "IsAllDayEvent": false, "CreatedDate": meeting,
            "SystemModstamp": meeting, "IsDeleted": false, "IsArchived": false}),
        );
    }
    org
}

/// One full `sync salesforce` of `deals` opportunities into a fresh ledger under `root`.
fn salesforce_bench(root: &std::path::Path, deals: u64) -> Result<serde_json::Value> {
    let dir = root.join("bench-sync-salesforce");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let fake = dealledger_sync::testkit::salesforce::FakeSalesforce::start(org(deals));
    let token = fake.org().token.clone();
    let mut ledger = Ledger::open(SledStore::open(&dir.join("store"))?, Pipeline::default())?;
    let options = dealledger_import::Options { pipeline: Pipeline::default(), ..Default::default() };
    let config = dealledger_server::config::SalesforceConfig {
        instance_url: fake.url.clone(),
        api_version: dealledger_sync::salesforce::API_VERSION_DEFAULT.into(),
        api_share_max: 1.0,
        batch_size: dealledger_sync::salesforce::BATCH_SIZE_DEFAULT,
        options,
    };
    timed(
        &mut ledger,
        &dir,
        dealledger_server::sync_sink::Crm::Salesforce(config),
        token,
        deals,
        &["Task", "Event", "EmailMessage"],
    )
}

/// One full sync of `crm` into `ledger`, timed: its figures.
fn timed(
    ledger: &mut Ledger<SledStore>,
    dir: &std::path::Path,
    crm: dealledger_server::sync_sink::Crm,
    token: String,
    deals: u64,
    activities: &[&str],
) -> Result<serde_json::Value> {
    let clock = FixedClock(Timestamp((T0_MS + 400 * 86_400_000) * 1000));
    let started = std::time::Instant::now();
    let ran = dealledger_server::sync_sink::sync_crm(
        ledger,
        &(dir.join("quarantine.jsonl"), dir.join("sync.json")),
        &crm,
        dealledger_sync::http::Secret::new(token),
        &clock,
        &mut |_| {},
        dealledger_sync::Steps::All,
    )?;
    ran.result?;
    figures(deals, &ran.summary, started.elapsed().as_secs_f64(), activities)
}

/// What a run's summary says per second and per 1,000 deals; `activities` names the record
/// kinds that are activities.
fn figures(
    deals: u64,
    s: &dealledger_sync::Summary,
    seconds: f64,
    activities: &[&str],
) -> Result<serde_json::Value> {
    let activities: u64 =
        s.records.iter().filter(|(k, _)| activities.contains(&k.as_str())).map(|(_, n)| n).sum();
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

/// One full sync of `deals` deals (and three activities each) into a fresh ledger under `root`.
fn hubspot_bench(root: &std::path::Path, deals: u64) -> Result<serde_json::Value> {
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
    timed(
        &mut ledger,
        &dir,
        dealledger_server::sync_sink::Crm::HubSpot(config),
        token,
        deals,
        &["calls", "emails", "meetings"],
    )
}

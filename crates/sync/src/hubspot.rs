//! HubSpot's CRM API v3, built to its published reference: deals with the history of the
//! properties the ledger follows, and the calls, emails and meetings associated with them.
//!
//! A run, for deals, then calls, emails and meetings (deals first: a touch needs its deal):
//! 1. `POST /crm/v3/objects/{type}/search`, records modified from the cursor less the overlap
//!    up to the run's start (`GTE`, `LT` on `hs_lastmodifieddate`), oldest first, 200 a page
//!    (the reference's maximum). Search stops at 10,000 results a query: past that the window
//!    starts again at the last modification time read. Search has its own limit (five requests a
//!    second per account) and sends no rate-limit headers, so its requests are spaced 210 ms.
//! 2. Deals: `POST /crm/v3/objects/deals/batch/read` with `propertiesWithHistory`, 50 a request
//!    (HubSpot reads fewer records a request when history is asked; 100 without). Each deal maps
//!    as the `hubspot-deals` backfill maps it ([`dealledger_import::hubspot::import_deal`]), with
//!    the same `source_id`s as the webhooks.
//! 3. Activities: `POST /crm/v4/associations/{type}/{deals|contacts}/batch/read`, 1,000 a
//!    request, for the deals and the contact of each; then one touch per associated deal.
//! 4. The page's events to the sink (durable), then the cursor and the state file.
//!
//! Activities dated after the run (a meeting booked for next week) are kept in the state and
//! read again (`batch/read`) once due, so a meeting nobody edits after it happens still counts.
//!
//! Then the run reconciles ([`crate::reconcile`]): `GET /crm/v3/objects/deals`, 100 a page
//! (the list's maximum), every deal's current stage, amount, close date, owner and pipeline
//! against the ledger; the deals that differ are read with their history (step 2) and what it
//! shows is stored; what still differs is listed with its likely cause.

use crate::http::{Client, HttpError, Lane, LimitHeaders, Method, Pause, Secret};
use crate::reconcile::{compare, CrmDeal, Difference, Reconciled, Terms};
use crate::state::{Pending, State, PENDING_MAX};
use crate::{Progress, Sink, Summary, SyncError};
pub use crate::{Ran, Steps};
use dealledger_events::{parse_line, Pipeline, Timestamp};
use dealledger_import::hubspot::{deal_id, import_deal, instant_ms, Deal, Mapping, PROPERTIES};
use dealledger_import::{Imported, Row, Skipped};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub const API_URL_DEFAULT: &str = "https://api.hubapi.com";
/// Results of one search request, at most (the reference's maximum).
pub const SEARCH_PAGE_MAX: u64 = 200;
/// Results one search query pages through, at most; past it HubSpot answers 400.
pub const SEARCH_RESULTS_MAX: u64 = 10_000;
/// Search's own limit: five requests a second per account. Spaced a little over a fifth of a
/// second, so that the servers' rolling second never counts six whatever the network's jitter.
pub const SEARCH_INTERVAL_MS: u64 = 210;
/// Search's window: what a search answered 429 waits (it carries no headers to say).
pub const SEARCH_WINDOW_MS: u64 = 1000;
/// Records of one list page, at most (the reference: "up to 100").
pub const LIST_PAGE_MAX: u64 = 100;
/// Differences a reconciliation lists, at most (the count says how many there were).
pub const DIFFERENCES_MAX: usize = 1000;
/// Records of one batch read, at most: 100, and 50 when property history is asked.
pub const BATCH_READ_MAX: usize = 100;
pub const HISTORY_BATCH_MAX: usize = 50;
/// Ids of one associations batch read, at most.
pub const ASSOCIATIONS_BATCH_MAX: usize = 1000;
/// Association pages followed for one batch, at most (a record with more than this many pages
/// of associations is not an activity).
const ASSOCIATION_PAGES_MAX: usize = 100;
/// How far before the cursor the next run asks again: search shows a change some moments after
/// it is made, and what is read twice is stored once.
pub const OVERLAP_MS_DEFAULT: i64 = 10 * 60 * 1000;
/// The general limit's headers (the search endpoints send none).
pub const LIMIT_HEADERS: LimitHeaders = LimitHeaders {
    remaining: "X-HubSpot-RateLimit-Remaining",
    interval_ms: "X-HubSpot-RateLimit-Interval-Milliseconds",
    interval_ms_default: 10_000,
};
/// The longest touch the ledger takes (a day).
const TOUCH_MINUTES_MAX: i64 = 1440;

/// The object types a run reads, in the order it reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    Deals,
    Calls,
    Emails,
    Meetings,
}

impl Object {
    pub const ALL: [Object; 4] = [Object::Deals, Object::Calls, Object::Emails, Object::Meetings];

    pub fn name(self) -> &'static str {
        match self {
            Object::Deals => "deals",
            Object::Calls => "calls",
            Object::Emails => "emails",
            Object::Meetings => "meetings",
        }
    }

    /// What a search asks for: for deals only what decides whether to read them; for
    /// activities everything the touch needs.
    fn properties(self) -> &'static [&'static str] {
        match self {
            Object::Deals => &["hs_lastmodifieddate", "pipeline"],
            Object::Calls => &[
                "hs_lastmodifieddate",
                "hs_createdate",
                "hs_timestamp",
                "hs_call_direction",
                "hs_call_duration",
                "hs_call_status",
                "hubspot_owner_id",
            ],
            Object::Emails => &[
                "hs_lastmodifieddate",
                "hs_createdate",
                "hs_timestamp",
                "hs_email_direction",
                "hs_email_status",
                "hubspot_owner_id",
            ],
            Object::Meetings => &[
                "hs_lastmodifieddate",
                "hs_createdate",
                "hs_timestamp",
                "hs_meeting_start_time",
                "hs_meeting_end_time",
                "hs_meeting_outcome",
                "hubspot_owner_id",
            ],
        }
    }

    fn channel(self) -> &'static str {
        match self {
            Object::Deals => "other",
            Object::Calls => "call",
            Object::Emails => "email",
            Object::Meetings => "meeting",
        }
    }
}

/// How a run talks to HubSpot and maps what it reads.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `[hubspot] api_url`.
    pub api_url: String,
    pub mapping: Mapping,
    pub pipeline: Pipeline,
    /// `[hubspot] pipelines`: the HubSpot pipelines synced; None for all.
    pub pipelines: Option<BTreeSet<String>>,
    pub overlap_ms: i64,
    /// Search's cap on one query's results: the reference's 10,000; lower in tests.
    pub search_results_max: u64,
    /// Transient failures of one request in a row before the run stops.
    pub retries_max: u32,
}

impl Settings {
    pub fn new(mapping: Mapping, pipeline: Pipeline) -> Settings {
        Settings {
            api_url: API_URL_DEFAULT.to_string(),
            mapping,
            pipeline,
            pipelines: None,
            overlap_ms: OVERLAP_MS_DEFAULT,
            search_results_max: SEARCH_RESULTS_MAX,
            retries_max: crate::http::RETRIES_MAX_DEFAULT,
        }
    }
}

/// One sync run at `now`, with the state at `state_path`.
#[allow(clippy::too_many_arguments, reason = "a run's parts, each from its own source")]
pub fn sync(
    settings: &Settings,
    token: Secret,
    pause: Box<dyn Pause>,
    now: Timestamp,
    state_path: &Path,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(Progress<'_>),
    steps: Steps,
) -> Ran {
    let started = std::time::Instant::now();
    let mut summary = Summary { crm: "hubspot", ..Summary::default() };
    let result = State::load(state_path).and_then(|state| {
        let mut client = Client::new(&settings.api_url, token, LIMIT_HEADERS, pause);
        client.retries_max = settings.retries_max;
        let mut run = Run {
            settings,
            client,
            search_lane: Lane::every(SEARCH_INTERVAL_MS, SEARCH_WINDOW_MS),
            now_ms: now.0.div_euclid(1000),
            state,
            state_path,
            sink,
            summary: &mut summary,
            progress,
        };
        let result = match steps {
            Steps::All => run.all().and_then(|()| run.reconcile()),
            Steps::Reconcile => run.reconcile(),
        };
        run.summary.closed(run.client.counts, &run.state, steps);
        result
    });
    summary.seconds = started.elapsed().as_secs_f64();
    Ran { summary, result }
}

struct Run<'a> {
    settings: &'a Settings,
    client: Client,
    search_lane: Lane,
    now_ms: i64,
    state: State,
    state_path: &'a Path,
    sink: &'a mut dyn Sink,
    summary: &'a mut Summary,
    progress: &'a mut dyn FnMut(Progress<'_>),
}

/// A record of a search or batch read: its id and properties.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    id: String,
    #[serde(default)]
    properties: BTreeMap<String, Option<String>>,
}

impl Record {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref()).filter(|v| !v.trim().is_empty())
    }

    fn modified_ms(&self) -> Option<i64> {
        self.property("hs_lastmodifieddate").and_then(instant_ms)
    }
}

#[derive(Debug, Deserialize)]
struct SearchPage {
    #[serde(default)]
    total: u64,
    results: Vec<Record>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    next: Option<Next>,
}

#[derive(Debug, Deserialize)]
struct Next {
    after: String,
}

#[derive(Debug, Deserialize)]
struct ListPage {
    results: Vec<Record>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct BatchDeals {
    results: Vec<Deal>,
}

#[derive(Debug, Deserialize)]
struct BatchRecords {
    results: Vec<Record>,
}

#[derive(Debug, Deserialize)]
struct BatchAssociations {
    results: Vec<Associations>,
}

#[derive(Debug, Deserialize)]
struct Associations {
    from: From,
    #[serde(default)]
    to: Vec<To>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct From {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct To {
    /// A number in the reference's examples, a string in its schema: either is read.
    to_object_id: IdText,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IdText {
    Number(u64),
    Text(String),
}

impl IdText {
    fn id(&self) -> Option<u64> {
        match self {
            IdText::Number(n) => Some(*n),
            IdText::Text(t) => t.trim().parse().ok(),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, SyncError> {
    serde_json::from_value(value).map_err(|e| {
        SyncError::Unexpected(format!(
            "HubSpot's answer to {what} is not what the API reference describes: {e}"
        ))
    })
}

impl Run<'_> {
    fn all(&mut self) -> Result<(), SyncError> {
        for object in Object::ALL {
            self.object(object)?;
        }
        self.pending()
    }

    fn call(&mut self, method: Method<'_>, path: &str, search: bool) -> Result<Value, SyncError> {
        let lane = if search { Some(&mut self.search_lane) } else { None };
        self.client.call(method, path, lane).map_err(|e| match e {
            HttpError::Refused { status: 401 | 403, message, .. } => SyncError::Settings(format!(
                "HubSpot refused the token ({message}): give a private app token with the scopes crm.objects.deals.read and crm.objects.contacts.read, by --token-file or DEALLEDGER_HUBSPOT_TOKEN"
            )),
            other => other.into(),
        })
    }

    /// Every record of `object` modified since the cursor (less the overlap), page by page.
    fn object(&mut self, object: Object) -> Result<(), SyncError> {
        let name = object.name();
        let cursor = self.state.cursors.get(name).copied();
        let mut from = cursor.map_or(0, |c| c.saturating_sub(self.settings.overlap_ms).max(0));
        let mut after: u64 = 0;
        let mut done: u64 = 0;
        loop {
            let page = self.search(object, from, after)?;
            self.summary.pages += 1;
            let read = page.results.len() as u64;
            *self.summary.records.entry(name.to_string()).or_default() += read;
            let last_ms = page.results.iter().filter_map(Record::modified_ms).max();
            let rows = match object {
                Object::Deals => self.deals(&page.results)?,
                _ => self.activities(object, page.results)?,
            };
            self.store(rows)?;
            if let Some(ms) = last_ms {
                let cursor = self.state.cursors.entry(name.to_string()).or_insert(ms);
                *cursor = (*cursor).max(ms);
                self.state.save(self.state_path)?;
            }
            done += read;
            (self.progress)(Progress { object: name, done, total: page.total.max(done) });
            let Some(next) = page.paging.and_then(|p| p.next) else { return Ok(()) };
            let next: u64 = next.after.trim().parse().map_err(|_| {
                SyncError::Unexpected(format!(
                    "HubSpot's search paging `after` is `{}`, not an offset",
                    next.after
                ))
            })?;
            if next < self.settings.search_results_max {
                after = next;
                continue;
            }
            // The query's cap: the same window again, from the last modification time read.
            match last_ms {
                Some(ms) if ms > from => {
                    from = ms;
                    after = 0;
                }
                _ => {
                    return Err(SyncError::Unexpected(format!(
                        "more than {} {name} were modified at {}: HubSpot's search cannot page through them",
                        self.settings.search_results_max,
                        Timestamp(from.saturating_mul(1000))
                    )))
                }
            }
        }
    }

    fn search(&mut self, object: Object, from_ms: i64, after: u64) -> Result<SearchPage, SyncError> {
        let body = json!({
            "filterGroups": [{"filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": from_ms.to_string()},
                {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": self.now_ms.to_string()},
            ]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": object.properties(),
            "limit": SEARCH_PAGE_MAX,
            "after": after.to_string(),
        });
        let path = format!("/crm/v3/objects/{}/search", object.name());
        let value = self.call(Method::Post(&body), &path, true)?;
        parse(value, &path)
    }

    /// The events of these deals, read with their history.
    fn deals(&mut self, found: &[Record]) -> Result<Vec<Row>, SyncError> {
        let mut imported = Imported::default();
        let mut ids = Vec::new();
        for record in found {
            let pipeline = record.property("pipeline").unwrap_or("default");
            match &self.settings.pipelines {
                Some(synced) if !synced.contains(pipeline) => imported.skipped.push(Skipped {
                    location: format!("hubspot deal {}", record.id),
                    kind: "unmapped_pipeline",
                    reason: format!("pipeline `{pipeline}` is not in [hubspot] pipelines"),
                }),
                _ => ids.push(record.id.as_str()),
            }
        }
        let mut properties: Vec<&str> = PROPERTIES.to_vec();
        properties.push("createdate");
        for chunk in ids.chunks(HISTORY_BATCH_MAX) {
            let body = json!({
                "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
                "properties": ["createdate", "pipeline"],
                "propertiesWithHistory": properties,
            });
            let path = "/crm/v3/objects/deals/batch/read";
            let read: BatchDeals = parse(self.call(Method::Post(&body), path, false)?, path)?;
            let mut by_id: BTreeMap<&str, &Deal> = read.results.iter().map(|d| (d.id.as_str(), d)).collect();
            for id in chunk {
                let location = format!("hubspot deal {id}");
                let Some(deal) = by_id.remove(id) else {
                    // Deleted (archived) between the search and the read.
                    imported.skipped.push(Skipped {
                        location,
                        kind: "not_found",
                        reason: "gone when read".into(),
                    });
                    continue;
                };
                if let Err(e) = import_deal(
                    &mut imported,
                    &location,
                    deal,
                    &self.settings.pipeline,
                    &self.settings.mapping,
                ) {
                    imported.skipped.push(Skipped { location, kind: "invalid_deal", reason: e.to_string() });
                }
            }
        }
        self.summary.skipped(&imported.skipped);
        Ok(imported.rows)
    }

    /// The touches of these activities.
    fn activities(&mut self, object: Object, records: Vec<Record>) -> Result<Vec<Row>, SyncError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let deals = self.associations(object, "deals", &ids)?;
        let contacts = self.associations(object, "contacts", &ids)?;
        let mut rows = Vec::new();
        let mut skipped = Vec::new();
        for record in &records {
            let no_ids = Vec::new();
            let on = deals.get(record.id.as_str()).unwrap_or(&no_ids);
            let contact = contacts.get(record.id.as_str()).and_then(|c| c.first().copied());
            let location = format!("hubspot {} {}", object.name().trim_end_matches('s'), record.id);
            match touch(object, record, self.now_ms) {
                Err((kind, reason)) => skipped.push(Skipped { location, kind, reason }),
                Ok(Touch::Later(due_ms)) => self.later(object, &record.id, due_ms),
                Ok(Touch::Now(event)) => {
                    if on.is_empty() {
                        let reason = "associated with no deal".to_string();
                        skipped.push(Skipped { location: location.clone(), kind: "no_deal", reason });
                    }
                    for deal in on {
                        let deal = deal_id(*deal);
                        match self.on_deal(&deal, &event) {
                            Err((kind, reason)) => {
                                let location = format!("{location} on {deal}");
                                skipped.push(Skipped { location, kind, reason });
                            }
                            Ok(()) => {
                                let event = touch_event(object, &record.id, &deal, contact, &event);
                                let result = parse_line(&event.to_string());
                                rows.push(Row {
                                    location: format!("{location} on {deal}"),
                                    result,
                                    notification: None,
                                });
                            }
                        }
                    }
                }
            }
        }
        self.summary.skipped(&skipped);
        Ok(rows)
    }

    /// Whether a touch at `event.at_ms` can go on `deal`: the ledger has it, opened by then.
    fn on_deal(&self, deal: &str, event: &TouchAt) -> Result<(), (&'static str, String)> {
        let Some(opened) = self.sink.opened_at(deal) else {
            return Err((
                "unknown_deal",
                "the ledger has no such deal (not synced: an unmapped pipeline?)".into(),
            ));
        };
        if event.at_ms.saturating_mul(1000) < opened.0 {
            return Err(("before_creation", format!("dated before the deal was opened ({opened})")));
        }
        Ok(())
    }

    fn later(&mut self, object: Object, id: &str, due_ms: i64) {
        self.state.pending.retain(|p| !(p.object == object.name() && p.id == id));
        if self.state.pending.len() >= PENDING_MAX {
            // The furthest one waits for its next edit instead (the cursor reads it then).
            self.state.pending.sort();
            self.state.pending.pop();
        }
        self.state.pending.push(Pending { due_ms, object: object.name().to_string(), id: id.to_string() });
    }

    /// Object id to the ids of `to` associated with it, ascending.
    fn associations(
        &mut self,
        object: Object,
        to: &str,
        ids: &[&str],
    ) -> Result<BTreeMap<String, Vec<u64>>, SyncError> {
        let mut found: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let path = format!("/crm/v4/associations/{}/{to}/batch/read", object.name());
        for chunk in ids.chunks(ASSOCIATIONS_BATCH_MAX) {
            let mut inputs: Vec<Value> = chunk.iter().map(|id| json!({"id": id})).collect();
            for _ in 0..ASSOCIATION_PAGES_MAX {
                if inputs.is_empty() {
                    break;
                }
                let body = json!({ "inputs": inputs });
                let read: BatchAssociations = parse(self.call(Method::Post(&body), &path, false)?, &path)?;
                inputs = Vec::new();
                for result in read.results {
                    let list = found.entry(result.from.id.clone()).or_default();
                    list.extend(result.to.iter().filter_map(|t| t.to_object_id.id()));
                    if let Some(next) = result.paging.and_then(|p| p.next) {
                        inputs.push(json!({"id": result.from.id, "after": next.after}));
                    }
                }
            }
        }
        for list in found.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        Ok(found)
    }

    /// Activities dated after an earlier run that are due now: read again and stored.
    fn pending(&mut self) -> Result<(), SyncError> {
        let (due, waiting): (Vec<Pending>, Vec<Pending>) =
            std::mem::take(&mut self.state.pending).into_iter().partition(|p| p.due_ms < self.now_ms);
        self.state.pending = waiting;
        for object in Object::ALL {
            let ids: Vec<&str> =
                due.iter().filter(|p| p.object == object.name()).map(|p| p.id.as_str()).collect();
            for chunk in ids.chunks(BATCH_READ_MAX) {
                let body = json!({
                    "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
                    "properties": object.properties(),
                });
                let path = format!("/crm/v3/objects/{}/batch/read", object.name());
                let read: BatchRecords = parse(self.call(Method::Post(&body), &path, false)?, &path)?;
                let rows = self.activities(object, read.results)?;
                self.store(rows)?;
            }
        }
        self.state.save(self.state_path)
    }

    /// Every deal the CRM lists now, page by page.
    fn list_deals(&mut self) -> Result<Vec<Record>, SyncError> {
        let properties = "dealstage,amount,closedate,hubspot_owner_id,pipeline";
        let mut deals = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path =
                format!("/crm/v3/objects/deals?limit={LIST_PAGE_MAX}&properties={properties}&archived=false");
            if let Some(after) = &after {
                path.push_str("&after=");
                path.push_str(&url_escape(after));
            }
            let page: ListPage = parse(self.call(Method::Get, &path, false)?, "/crm/v3/objects/deals")?;
            self.summary.pages += 1;
            let read = page.results.len() as u64;
            deals.extend(page.results);
            (self.progress)(Progress {
                object: "reconcile",
                done: deals.len() as u64,
                total: deals.len() as u64 + u64::from(read > 0),
            });
            match page.paging.and_then(|p| p.next) {
                Some(next) if read > 0 && after.as_deref() != Some(next.after.as_str()) => {
                    after = Some(next.after)
                }
                _ => return Ok(deals),
            }
        }
    }

    /// The CRM's deals of the synced pipelines against the ledger: the deals that differ read
    /// again with their history and what it shows stored, then what still differs listed.
    fn reconcile(&mut self) -> Result<(), SyncError> {
        let listed = self.list_deals()?;
        let ids: BTreeSet<String> = listed.iter().map(crm_deal_id).collect();
        let synced: Vec<Record> = listed
            .into_iter()
            .filter(|r| {
                let pipeline = r.property("pipeline").unwrap_or("default");
                self.settings.pipelines.as_ref().is_none_or(|p| p.contains(pipeline))
            })
            .collect();
        let crm: Vec<CrmDeal> = synced.iter().map(crm_deal).collect();
        let terms = Terms {
            stages: &self.settings.mapping.stages,
            default_owner: &self.settings.mapping.default_owner,
        };
        let ledger = self.sink.deals_now().map_err(SyncError::Store)?;
        let (compared, first) = compare(&crm, &ids, &ledger, &terms, "hubspot-");
        // Read again: the deals whose history may hold what the ledger lacks. Not a stage with no
        // mapping (storing it would be refused and held again) nor a deal the CRM no longer has.
        let differing: BTreeSet<String> = first
            .iter()
            .filter(|d| !matches!(d.cause, "not_in_crm" | "unmapped_stage"))
            .map(|d| d.deal.clone())
            .collect();
        let mut reconciled = Reconciled { compared, differed: count_deals(&first), ..Reconciled::default() };
        let mut differences = first;
        if !differing.is_empty() {
            let reread: Vec<Record> =
                synced.into_iter().filter(|r| differing.contains(&crm_deal_id(r))).collect();
            let before = self.summary.events_stored;
            let rows = self.deals(&reread)?;
            self.store(rows)?;
            reconciled.stored_from_history = self.summary.events_stored.saturating_sub(before);
            let ledger = self.sink.deals_now().map_err(SyncError::Store)?;
            differences = compare(&crm, &ids, &ledger, &terms, "hubspot-").1;
        }
        reconciled.differences_total = differences.len() as u64;
        differences.truncate(DIFFERENCES_MAX);
        reconciled.differences = differences;
        self.summary.reconciled = Some(reconciled);
        Ok(())
    }

    fn store(&mut self, rows: Vec<Row>) -> Result<(), SyncError> {
        if rows.is_empty() {
            return Ok(());
        }
        let stored = self.sink.store(rows).map_err(SyncError::Store)?;
        self.summary.stored(&stored);
        Ok(())
    }
}

/// The ledger's id of a listed deal.
fn crm_deal_id(record: &Record) -> String {
    record.id.trim().parse().map_or_else(|_| format!("hubspot-{}", record.id), deal_id)
}

/// A listed deal's current values.
fn crm_deal(record: &Record) -> CrmDeal {
    let text = |name: &str| record.property(name).map(str::to_string);
    CrmDeal {
        deal: crm_deal_id(record),
        stage: text("dealstage"),
        amount: text("amount"),
        close_date: record.property("closedate").and_then(dealledger_import::hubspot::close_date),
        owner: text("hubspot_owner_id"),
    }
}

/// Deals named in `differences`.
fn count_deals(differences: &[Difference]) -> u64 {
    differences.iter().map(|d| d.deal.as_str()).collect::<BTreeSet<_>>().len() as u64
}

/// A paging token as a query value: HubSpot's are digits and letters, but nothing it sends is
/// put into a URL unescaped.
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// An activity's moment and what the touch says, before its deal is known.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TouchAt {
    at_ms: i64,
    recorded_ms: i64,
    direction: &'static str,
    minutes: Option<i64>,
}

#[derive(Debug)]
enum Touch {
    Now(TouchAt),
    /// Dated after the run: read again at this moment (ms).
    Later(i64),
}

/// What an activity is as a touch (mapping table: docs/importers.md), or why it is none.
fn touch(object: Object, record: &Record, now_ms: i64) -> Result<Touch, (&'static str, String)> {
    let time = |name: &str| record.property(name).and_then(instant_ms);
    let at_ms = match object {
        Object::Meetings => time("hs_meeting_start_time").or_else(|| time("hs_timestamp")),
        _ => time("hs_timestamp"),
    }
    .ok_or(("no_time", "no hs_timestamp".to_string()))?;
    let mut direction = "outbound";
    let mut minutes = None;
    match object {
        Object::Calls => {
            let status = record.property("hs_call_status").unwrap_or("COMPLETED");
            if matches!(
                status,
                "CANCELED" | "QUEUED" | "RINGING" | "CONNECTING" | "IN_PROGRESS" | "CALLING_CRM_USER"
            ) {
                return Err(("call_not_made", format!("hs_call_status {status}")));
            }
            if record.property("hs_call_direction") == Some("INBOUND") {
                direction = "inbound";
            }
            if let Some(ms) = record.property("hs_call_duration") {
                let ms: i64 =
                    ms.trim().parse().map_err(|_| ("invalid", format!("hs_call_duration `{ms}`")))?;
                minutes = Some(rounded_minutes(ms));
            }
        }
        Object::Emails => {
            let status = record.property("hs_email_status").unwrap_or("SENT");
            if matches!(status, "FAILED" | "SCHEDULED" | "SENDING") && at_ms <= now_ms {
                return Err(("email_not_sent", format!("hs_email_status {status}")));
            }
            if record.property("hs_email_direction") == Some("INCOMING_EMAIL") {
                direction = "inbound";
            }
        }
        Object::Meetings => {
            if let Some(outcome @ ("NO_SHOW" | "CANCELED")) = record.property("hs_meeting_outcome") {
                return Err(("meeting_not_held", format!("hs_meeting_outcome {outcome}")));
            }
            if let (Some(start), Some(end)) = (time("hs_meeting_start_time"), time("hs_meeting_end_time")) {
                minutes = (end >= start).then(|| rounded_minutes(end - start));
            }
        }
        Object::Deals => {}
    }
    if at_ms >= now_ms {
        return Ok(Touch::Later(at_ms));
    }
    if let Some(m) = minutes.filter(|m| *m > TOUCH_MINUTES_MAX) {
        return Err(("too_long", format!("{m} minutes; a touch is at most {TOUCH_MINUTES_MAX}")));
    }
    // When HubSpot learnt of it: its creation, but never before it happened.
    let recorded_ms = time("hs_createdate").map_or(at_ms, |c| c.max(at_ms));
    Ok(Touch::Now(TouchAt { at_ms, recorded_ms, direction, minutes }))
}

/// Milliseconds as whole minutes, half a minute up.
fn rounded_minutes(ms: i64) -> i64 {
    ms.max(0).saturating_add(30_000) / 60_000
}

/// The touch event of an activity on one deal.
fn touch_event(object: Object, id: &str, deal: &str, contact: Option<u64>, touch: &TouchAt) -> Value {
    let at = |ms: i64| Timestamp(ms.saturating_mul(1000)).to_string();
    let mut event = json!({
        "deal": deal, "type": "touch", "at": at(touch.at_ms), "recorded_at": at(touch.recorded_ms),
        "channel": object.channel(), "direction": touch.direction, "actor": "hubspot",
        "source_id": format!("hubspot:{}:{id}:{deal}", object.name().trim_end_matches('s')),
    });
    if let Some(minutes) = touch.minutes {
        set(&mut event, "minutes", minutes);
    }
    if let Some(contact) = contact {
        set(&mut event, "contact", format!("hubspot-contact-{contact}"));
    }
    event
}

/// Sets `key` of a JSON object (one built just above: never another kind of value).
fn set(value: &mut Value, key: &str, to: impl Into<Value>) {
    if let Some(map) = value.as_object_mut() {
        map.insert(key.to_string(), to.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(properties: &[(&str, &str)]) -> Record {
        Record {
            id: "7".into(),
            properties: properties.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect(),
        }
    }

    const NOW: i64 = 1_750_000_000_000;

    #[test]
    fn activities_as_touches() {
        let call = record(&[
            ("hs_timestamp", "2025-01-10T09:00:00.000Z"),
            ("hs_call_direction", "INBOUND"),
            ("hs_call_duration", "95000"),
            ("hs_createdate", "2025-01-10T10:00:00Z"),
        ]);
        let Ok(Touch::Now(t)) = touch(Object::Calls, &call, NOW) else { panic!() };
        assert_eq!((t.direction, t.minutes), ("inbound", Some(2)));
        assert_eq!(t.recorded_ms - t.at_ms, 3_600_000);
        let no_show = record(&[("hs_timestamp", "2025-01-10T09:00:00Z"), ("hs_meeting_outcome", "NO_SHOW")]);
        assert_eq!(touch(Object::Meetings, &no_show, NOW).unwrap_err().0, "meeting_not_held");
        let meeting = record(&[
            ("hs_timestamp", "2025-01-10T09:00:00Z"),
            ("hs_meeting_start_time", "2025-01-10T09:00:00Z"),
            ("hs_meeting_end_time", "2025-01-10T09:45:00Z"),
            ("hs_meeting_outcome", "COMPLETED"),
        ]);
        let Ok(Touch::Now(t)) = touch(Object::Meetings, &meeting, NOW) else { panic!() };
        assert_eq!((t.direction, t.minutes, t.recorded_ms), ("outbound", Some(45), t.at_ms));
        let ahead = record(&[("hs_meeting_start_time", "2099-01-01T00:00:00Z")]);
        assert!(matches!(touch(Object::Meetings, &ahead, NOW), Ok(Touch::Later(_))));
        let email = record(&[("hs_timestamp", "1736500000000"), ("hs_email_direction", "INCOMING_EMAIL")]);
        let Ok(Touch::Now(t)) = touch(Object::Emails, &email, NOW) else { panic!() };
        assert_eq!((t.direction, t.minutes), ("inbound", None));
        assert_eq!(touch(Object::Calls, &record(&[]), NOW).unwrap_err().0, "no_time");
        let long = record(&[("hs_timestamp", "2025-01-10T09:00:00Z"), ("hs_call_duration", "90000000")]);
        assert_eq!(touch(Object::Calls, &long, NOW).unwrap_err().0, "too_long");
    }
}

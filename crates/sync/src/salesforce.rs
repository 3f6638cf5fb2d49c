//! Salesforce's REST API, built to the REST API Developer Guide: SOQL through
//! `/services/data/vNN.N/query` (and `queryAll` for tasks and events, which `query` leaves out
//! once Salesforce archives them), each result followed through `nextRecordsUrl` until `done`,
//! pages of `Sforce-Query-Options: batchSize`.
//!
//! A run, oldest change first, a cursor per object:
//! 1. The opportunities whose history changed: `OpportunityHistory` by `SystemModstamp`, and
//!    `OpportunityFieldHistory` rows of the `Owner` field by `CreatedDate` (that object has no
//!    `SystemModstamp`), from the cursor less the overlap up to the run's start. For each page's
//!    opportunities, their whole OpportunityHistory and Opportunity row are read and mapped by
//!    the `salesforce-history` importer itself (the same events and `source_id`s as the files),
//!    and their owner changes by `import::salesforce::owner_changes`.
//! 2. `Task`, `Event` (`queryAll`) and `EmailMessage` by `SystemModstamp`, mapped by
//!    `import::salesforce_activities::touch` (the same as `ingest --format
//!    salesforce-activities`). One dated after the run waits in the state and is read again by
//!    its Id once due.
//! 3. Each page's events to the sink (durable), then the cursor and the state file.
//! 4. The reconciliation: every opportunity's `StageName`, `Amount`, `CloseDate` and `OwnerId`
//!    against the ledger; the ones that differ are read again as in step 1.
//!
//! Every answer's `Sforce-Limit-Info: api-usage=USED/MAX` is read. The run takes at most
//! `api_share_max` (0.2) of what the org had left at its first answer, and stops cleanly when it
//! has (the next run goes on from the cursor), so a sync never spends the allocation the team's
//! other integrations need.

use crate::http::{Client, HttpError, LimitHeaders, Method, Pause, Secret};
use crate::reconcile::{compare, CrmDeal, Reconciled, Terms};
use crate::state::{Pending, State, PENDING_MAX};
use crate::{Progress, Ran, Sink, Steps, Summary, SyncError};
use dealledger_events::Timestamp;
use dealledger_import::salesforce::{import_records, stage_target, Record};
use dealledger_import::salesforce_activities::{touch, Activity, Touched, OPPORTUNITY_PREFIX};
use dealledger_import::{Imported, Options, Row, Skipped, Target};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub const API_VERSION_DEFAULT: &str = "v62.0";
/// The share of the org's daily API requests left that one run may take.
pub const API_SHARE_MAX_DEFAULT: f64 = 0.2;
/// Records of one query page asked for (the guide: 200 to 2,000, 2,000 by default).
pub const BATCH_SIZE_DEFAULT: u32 = 2000;
/// Opportunity ids one query names, at most: a URL stays far under Salesforce's 16,384 bytes.
pub const IDS_PER_QUERY_MAX: usize = 200;
/// How far before the cursor the next run asks again (what is read twice is stored once).
pub const OVERLAP_MS_DEFAULT: i64 = 10 * 60 * 1000;
/// Query pages followed for one query, at most (2,000 records each: 20 M records).
const PAGES_MAX: usize = 10_000;

/// How a run talks to Salesforce and maps what it reads.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `[salesforce] instance_url` (`https://MyDomain.my.salesforce.com`).
    pub instance_url: String,
    /// `[salesforce] api_version` (`v62.0`).
    pub api_version: String,
    pub api_share_max: f64,
    pub batch_size: u32,
    /// The importers' stage map and pipeline (`[import.stages]`).
    pub options: Options,
    pub overlap_ms: i64,
    pub retries_max: u32,
}

impl Settings {
    pub fn new(instance_url: &str, options: Options) -> Settings {
        Settings {
            instance_url: instance_url.trim_end_matches('/').to_string(),
            api_version: API_VERSION_DEFAULT.to_string(),
            api_share_max: API_SHARE_MAX_DEFAULT,
            batch_size: BATCH_SIZE_DEFAULT,
            // Records read through the API carry the API names: no column overrides.
            options: Options { columns: BTreeMap::new(), ..options },
            overlap_ms: OVERLAP_MS_DEFAULT,
            retries_max: crate::http::RETRIES_MAX_DEFAULT,
        }
    }
}

/// The cursors' names in the state file.
const HISTORY: &str = "OpportunityHistory";
const OWNERS: &str = "OpportunityFieldHistory";

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
    let mut summary = Summary { crm: "salesforce", ..Summary::default() };
    let result = State::load(state_path).and_then(|state| {
        let mut client = Client::new(&settings.instance_url, token, LimitHeaders::NONE, pause);
        client.retries_max = settings.retries_max;
        client.request_headers.push(("Sforce-Query-Options", format!("batchSize={}", settings.batch_size)));
        client.watched_header = Some("Sforce-Limit-Info");
        let mut run = Run {
            settings,
            client,
            now,
            state,
            state_path,
            sink,
            summary: &mut summary,
            progress,
            allowed: None,
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

/// What a query does with each page of its records.
type PageFn<'f, T> = &'f mut dyn FnMut(&mut T, Vec<Record>) -> Result<(), SyncError>;

struct Run<'a> {
    settings: &'a Settings,
    client: Client,
    now: Timestamp,
    state: State,
    state_path: &'a Path,
    sink: &'a mut dyn Sink,
    summary: &'a mut Summary,
    progress: &'a mut dyn FnMut(Progress<'_>),
    /// Requests this run may send: its share of what the org had left at its first answer.
    allowed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryPage {
    #[serde(default)]
    total_size: u64,
    done: bool,
    #[serde(default)]
    next_records_url: Option<String>,
    records: Vec<Value>,
}

/// A record's fields as text (numbers and booleans as JSON writes them; null as absent).
fn record(value: &Value) -> Record {
    let mut out = Record::new();
    if let Some(map) = value.as_object() {
        for (key, value) in map {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            out.insert(key.clone(), text);
        }
    }
    out
}

/// A SOQL datetime literal (unquoted, whole seconds, UTC).
fn literal(ms: i64) -> String {
    let at = Timestamp(ms.div_euclid(1000).saturating_mul(1_000_000)).to_string();
    at.get(..19).map_or(at.clone(), |t| format!("{t}Z"))
}

/// Ids as a SOQL list; ids are checked to be Salesforce ids first (letters and digits only).
fn id_list(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
    format!("({})", quoted.join(", "))
}

fn is_id(text: &str) -> bool {
    (15..=18).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A query string value, percent-encoded but for the unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

impl Run<'_> {
    fn all(&mut self) -> Result<(), SyncError> {
        self.changed(HISTORY, "OpportunityId", "SystemModstamp", "")?;
        self.changed(OWNERS, "OpportunityId", "CreatedDate", "Field = 'Owner' AND ")?;
        for activity in Activity::ALL {
            self.activities(activity)?;
        }
        self.pending()
    }

    /// One request, within the run's share of the org's daily allocation.
    fn call(&mut self, path: &str) -> Result<Value, SyncError> {
        if let Some(allowed) = self.allowed.filter(|a| self.client.counts.requests >= *a) {
            return Err(SyncError::Budget(format!(
                "stopped after {allowed} requests: [salesforce] api_share_max ({}) of the org's daily API requests left at the start; the next run goes on from the cursor",
                self.settings.api_share_max
            )));
        }
        let answer = self.client.call(Method::Get, path, None).map_err(|e| match e {
            HttpError::Refused { status: 401, message, .. } => SyncError::Settings(format!(
                "Salesforce refused the token ({message}): get one with `sf org auth show-access-token --target-org ALIAS --json` and give it by --token-file or DEALLEDGER_SALESFORCE_TOKEN"
            )),
            other => other.into(),
        });
        if self.allowed.is_none() {
            if let Some((used, max)) = self.client.watched.as_deref().and_then(api_usage) {
                let left = max.saturating_sub(used);
                let share = (left as f64 * self.settings.api_share_max).floor() as u64;
                tracing::info!(used, max, allowed = share, "Salesforce API usage at the start of the run");
                self.allowed = Some(share.max(1));
            }
        }
        answer
    }

    /// Every record `soql` selects (`all`: through `queryAll`), page by page to `each`.
    fn query(&mut self, soql: &str, all: bool, each: PageFn<'_, Self>) -> Result<(), SyncError> {
        let resource = if all { "queryAll" } else { "query" };
        let mut path = format!("/services/data/{}/{resource}?q={}", self.settings.api_version, encode(soql));
        for _ in 0..PAGES_MAX {
            let value = self.call(&path)?;
            let page: QueryPage = serde_json::from_value(value).map_err(|e| {
                SyncError::Unexpected(format!(
                    "Salesforce's answer to a query is not what the REST API guide describes: {e}"
                ))
            })?;
            self.summary.pages += 1;
            each(self, page.records.iter().map(record).collect())?;
            if page.done {
                return Ok(());
            }
            path = match page.next_records_url {
                Some(next) if next.starts_with("/services/data/") && !next.contains("://") => next,
                other => {
                    return Err(SyncError::Unexpected(format!(
                        "a query page of {} records is not done but its nextRecordsUrl is {other:?}",
                        page.total_size
                    )))
                }
            };
        }
        Err(SyncError::Unexpected(format!("a query went on past {PAGES_MAX} pages")))
    }

    /// The opportunities with a row of `object` changed since its cursor (`time` the field the
    /// cursor follows), each page of them read whole and stored, then the cursor moved.
    fn changed(&mut self, object: &str, id_field: &str, time: &str, filter: &str) -> Result<(), SyncError> {
        let from =
            self.state.cursors.get(object).map_or(0, |c| c.saturating_sub(self.settings.overlap_ms).max(0));
        let soql = format!(
            "SELECT Id, {id_field}, {time} FROM {object} WHERE {filter}{time} >= {} AND {time} < {} ORDER BY {time}, Id",
            literal(from),
            literal(self.now.0.div_euclid(1000))
        );
        let mut done = 0u64;
        self.query(&soql, false, &mut |run, records| {
            *run.summary.records.entry(object.to_string()).or_default() += records.len() as u64;
            let ids: BTreeSet<String> =
                records.iter().filter_map(|r| r.get(id_field)).filter(|id| is_id(id)).cloned().collect();
            run.opportunities(&ids.into_iter().collect::<Vec<_>>())?;
            let last = records.iter().filter_map(|r| r.get(time)).filter_map(|t| api_ms(t)).max();
            if let Some(ms) = last {
                let cursor = run.state.cursors.entry(object.to_string()).or_insert(ms);
                *cursor = (*cursor).max(ms);
                run.state.save(run.state_path)?;
            }
            done += records.len() as u64;
            (run.progress)(Progress { object, done, total: done });
            Ok(())
        })
    }

    /// These opportunities' whole stage history and owner changes, stored.
    fn opportunities(&mut self, ids: &[String]) -> Result<(), SyncError> {
        for chunk in ids.chunks(IDS_PER_QUERY_MAX) {
            let list = id_list(chunk);
            let history = self.collect(&format!(
                "SELECT Id, OpportunityId, CreatedById, CreatedDate, StageName, Amount, CloseDate, IsDeleted FROM OpportunityHistory WHERE OpportunityId IN {list} ORDER BY CreatedDate, Id"
            ))?;
            let opportunities =
                self.collect(&format!("SELECT Id, OwnerId, Name FROM Opportunity WHERE Id IN {list}"))?;
            let owners = self.collect(&format!(
                "SELECT Id, OpportunityId, CreatedById, CreatedDate, Field, DataType, OldValue, NewValue FROM OpportunityFieldHistory WHERE Field = 'Owner' AND OpportunityId IN {list} ORDER BY CreatedDate, Id"
            ))?;
            let imported =
                import_records("salesforce", &history, &opportunities, &owners, &self.settings.options)
                    .map_err(|e| SyncError::Settings(e.to_string()))?;
            self.summary.skipped(&imported.skipped);
            self.store(imported.rows)?;
        }
        Ok(())
    }

    /// Every record of one query.
    fn collect(&mut self, soql: &str) -> Result<Vec<Record>, SyncError> {
        let mut all = Vec::new();
        self.query(soql, false, &mut |_, records| {
            all.extend(records);
            Ok(())
        })?;
        Ok(all)
    }

    /// Tasks, events or email messages changed since the cursor, as touches.
    fn activities(&mut self, activity: Activity) -> Result<(), SyncError> {
        let name = activity.name();
        let from =
            self.state.cursors.get(name).map_or(0, |c| c.saturating_sub(self.settings.overlap_ms).max(0));
        let soql = format!(
            "SELECT {} FROM {name} WHERE SystemModstamp >= {} AND SystemModstamp < {} ORDER BY SystemModstamp, Id",
            activity.fields().join(", "),
            literal(from),
            literal(self.now.0.div_euclid(1000))
        );
        // Tasks and events are archived after a while, and only queryAll reads them then.
        let all = activity != Activity::EmailMessage;
        let mut done = 0u64;
        self.query(&soql, all, &mut |run, records| {
            *run.summary.records.entry(name.to_string()).or_default() += records.len() as u64;
            let last = records.iter().filter_map(|r| r.get("SystemModstamp")).filter_map(|t| api_ms(t)).max();
            done += records.len() as u64;
            let rows = run.touches(activity, &records);
            run.store(rows)?;
            if let Some(ms) = last {
                let cursor = run.state.cursors.entry(name.to_string()).or_insert(ms);
                *cursor = (*cursor).max(ms);
                run.state.save(run.state_path)?;
            }
            (run.progress)(Progress { object: name, done, total: done });
            Ok(())
        })
    }

    /// The touches of these activities; the ones dated ahead kept for later.
    fn touches(&mut self, activity: Activity, records: &[Record]) -> Vec<Row> {
        let mut imported = Imported::default();
        for record in records {
            let id = record.get("Id").cloned().unwrap_or_default();
            let location = format!("salesforce {} {id}", activity.name());
            let field = |name: &str| record.get(name).cloned();
            let skip = |kind, reason| Skipped { location: location.clone(), kind, reason };
            match touch(activity, &field, self.now) {
                Err((kind, reason)) => imported.skipped.push(skip(kind, reason)),
                Ok(Touched::Later(at)) => self.later(activity, &id, at),
                Ok(Touched::Now(event)) => {
                    let text =
                        |key: &str| event.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
                    let deal = text("deal");
                    let at = Timestamp::parse_rfc3339(&text("at")).ok();
                    match (self.sink.opened_at(&deal), at) {
                        (None, _) => imported.skipped.push(skip(
                            "unknown_deal",
                            format!("the ledger has no opportunity {deal} (its history not synced yet?)"),
                        )),
                        (Some(opened), Some(at)) if at < opened => imported.skipped.push(skip(
                            "before_creation",
                            format!("dated before the opportunity opened ({opened})"),
                        )),
                        _ => imported.rows.push(Row {
                            location,
                            result: dealledger_events::parse_line(&event.to_string()),
                            notification: None,
                        }),
                    }
                }
            }
        }
        self.summary.skipped(&imported.skipped);
        imported.rows
    }

    fn later(&mut self, activity: Activity, id: &str, due: Timestamp) {
        let object = activity.name();
        self.state.pending.retain(|p| !(p.object == object && p.id == id));
        if self.state.pending.len() >= PENDING_MAX {
            self.state.pending.sort();
            self.state.pending.pop();
        }
        let due_ms = due.0.div_euclid(1000);
        self.state.pending.push(Pending { due_ms, object: object.to_string(), id: id.to_string() });
    }

    /// Activities dated after an earlier run that are due now: read again and stored.
    fn pending(&mut self) -> Result<(), SyncError> {
        let now_ms = self.now.0.div_euclid(1000);
        let (due, waiting): (Vec<Pending>, Vec<Pending>) =
            std::mem::take(&mut self.state.pending).into_iter().partition(|p| p.due_ms < now_ms);
        self.state.pending = waiting;
        for activity in Activity::ALL {
            let ids: Vec<String> = due
                .iter()
                .filter(|p| p.object == activity.name() && is_id(&p.id))
                .map(|p| p.id.clone())
                .collect();
            for chunk in ids.chunks(IDS_PER_QUERY_MAX) {
                let soql = format!(
                    "SELECT {} FROM {} WHERE Id IN {}",
                    activity.fields().join(", "),
                    activity.name(),
                    id_list(chunk)
                );
                let mut records = Vec::new();
                self.query(&soql, activity != Activity::EmailMessage, &mut |_, page| {
                    records.extend(page);
                    Ok(())
                })?;
                let rows = self.touches(activity, &records);
                self.store(rows)?;
            }
        }
        self.state.save(self.state_path)
    }

    /// Every opportunity now against the ledger; the ones that differ read again.
    fn reconcile(&mut self) -> Result<(), SyncError> {
        let listed =
            self.collect("SELECT Id, StageName, Amount, CloseDate, OwnerId FROM Opportunity ORDER BY Id")?;
        let ids: BTreeSet<String> = listed.iter().filter_map(|r| r.get("Id").cloned()).collect();
        let mut stages: BTreeMap<String, Target> = BTreeMap::new();
        for stage in listed.iter().filter_map(|r| r.get("StageName")) {
            if let Some(target) = stage_target(stage, &self.settings.options) {
                stages.insert(stage.clone(), target);
            }
        }
        let crm: Vec<CrmDeal> = listed
            .iter()
            .map(|r| CrmDeal {
                deal: r.get("Id").cloned().unwrap_or_default(),
                stage: r.get("StageName").cloned(),
                amount: r.get("Amount").cloned(),
                close_date: r.get("CloseDate").and_then(|d| d.get(..10)).map(str::to_string),
                owner: r.get("OwnerId").cloned(),
            })
            .collect();
        let terms = Terms { stages: &stages, default_owner: "" };
        let ledger = self.sink.deals_now().map_err(SyncError::Store)?;
        let (compared, first) = compare(&crm, &ids, &ledger, &terms, OPPORTUNITY_PREFIX);
        let differing: Vec<String> = first
            .iter()
            .filter(|d| !matches!(d.cause, "not_in_crm" | "unmapped_stage"))
            .map(|d| d.deal.clone())
            .filter(|id| is_id(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut reconciled = Reconciled {
            compared,
            differed: first.iter().map(|d| &d.deal).collect::<BTreeSet<_>>().len() as u64,
            ..Reconciled::default()
        };
        let mut differences = first;
        if !differing.is_empty() {
            let before = self.summary.events_stored;
            self.opportunities(&differing)?;
            reconciled.stored_from_history = self.summary.events_stored.saturating_sub(before);
            let ledger = self.sink.deals_now().map_err(SyncError::Store)?;
            differences = compare(&crm, &ids, &ledger, &terms, OPPORTUNITY_PREFIX).1;
        }
        reconciled.differences_total = differences.len() as u64;
        differences.truncate(crate::hubspot::DIFFERENCES_MAX);
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

/// `api-usage=USED/MAX` of a `Sforce-Limit-Info` header (other parts ignored; USED may pass MAX).
fn api_usage(header: &str) -> Option<(u64, u64)> {
    let usage = header.split(';').find_map(|part| part.trim().strip_prefix("api-usage="))?;
    let (used, max) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

/// Milliseconds of a datetime as the API writes it.
fn api_ms(text: &str) -> Option<i64> {
    dealledger_import::hubspot::instant_ms(&text.replace("+0000", "Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_info_and_literals() {
        assert_eq!(api_usage("api-usage=10018/100000"), Some((10018, 100000)));
        assert_eq!(api_usage("api-usage=110018/100000; api-bursts=1/750"), Some((110018, 100000)));
        assert_eq!(api_usage("api-bursts=1/750"), None);
        assert_eq!(literal(1_735_689_600_500), "2025-01-01T00:00:00Z");
        assert_eq!(api_ms("2018-10-13T17:16:45.000+0000"), Some(1_539_451_005_000));
        assert!(is_id("0064600000J5S5TAAV") && !is_id("006') OR ('1") && !is_id("006"));
    }
}

//! A local Salesforce for the tests: the REST API's query resources as the REST API Developer
//! Guide describes them. `GET /services/data/vNN.N/query?q=SOQL` and `/queryAll` answer
//! `totalSize`, `done`, `nextRecordsUrl` (always under `/query/`, as Salesforce writes it for
//! queryAll too) and `records` with their `attributes`; pages of `Sforce-Query-Options:
//! batchSize` (200 to 2,000; 2,000 by default); every answer carries `Sforce-Limit-Info:
//! api-usage=USED/MAX`; errors are Salesforce's JSON arrays (`INVALID_SESSION_ID` 401,
//! `MALFORMED_QUERY` and `INVALID_FIELD` 400, `REQUEST_LIMIT_EXCEEDED` 403). `query` leaves out
//! deleted and archived rows, `queryAll` keeps them.
//!
//! The SOQL it reads is the subset a sync sends: `SELECT f, ... FROM Object [WHERE c AND c ...]
//! [ORDER BY f, ...]`, each condition `Field OP value` with OP one of `= != < <= > >=` and the
//! value a datetime literal (unquoted), a quoted string or `null`, or `Field IN ('a', 'b')`.
//! Anything else is a `MALFORMED_QUERY`, as a field the object does not have is an
//! `INVALID_FIELD`: a client that asks for something else fails here as it would there.

use super::{listen, plain, stop_listening, Answer, Api, Fault};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

/// A record: its fields as the API gives them (datetimes as `2018-10-13T17:16:45.000+0000`).
pub type Record = BTreeMap<String, Value>;

/// The fields of the objects a sync reads.
const FIELDS: [(&str, &[&str]); 6] = [
    (
        "Opportunity",
        &[
            "Id",
            "Name",
            "StageName",
            "Amount",
            "CloseDate",
            "OwnerId",
            "CreatedDate",
            "SystemModstamp",
            "IsDeleted",
            "IsClosed",
            "IsWon",
        ],
    ),
    (
        "OpportunityHistory",
        &[
            "Id",
            "OpportunityId",
            "CreatedById",
            "CreatedDate",
            "StageName",
            "Amount",
            "CloseDate",
            "Probability",
            "ForecastCategory",
            "SystemModstamp",
            "IsDeleted",
        ],
    ),
    (
        "OpportunityFieldHistory",
        &[
            "Id",
            "OpportunityId",
            "CreatedById",
            "CreatedDate",
            "Field",
            "DataType",
            "OldValue",
            "NewValue",
            "IsDeleted",
        ],
    ),
    (
        "Task",
        &[
            "Id",
            "WhatId",
            "WhoId",
            "OwnerId",
            "Subject",
            "Status",
            "IsClosed",
            "TaskSubtype",
            "CallType",
            "CallDurationInSeconds",
            "ActivityDate",
            "CompletedDateTime",
            "CreatedDate",
            "SystemModstamp",
            "IsDeleted",
            "IsArchived",
        ],
    ),
    (
        "Event",
        &[
            "Id",
            "WhatId",
            "WhoId",
            "OwnerId",
            "Subject",
            "StartDateTime",
            "EndDateTime",
            "DurationInMinutes",
            "IsAllDayEvent",
            "ActivityDateTime",
            "CreatedDate",
            "SystemModstamp",
            "IsDeleted",
            "IsArchived",
        ],
    ),
    (
        "EmailMessage",
        &[
            "Id",
            "RelatedToId",
            "ParentId",
            "Incoming",
            "Status",
            "MessageDate",
            "FromAddress",
            "ToAddress",
            "CreatedById",
            "CreatedDate",
            "SystemModstamp",
            "IsDeleted",
        ],
    ),
];

/// One query as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `query`, `queryAll` or `more` (a `nextRecordsUrl`).
    pub resource: String,
    pub soql: String,
    pub status: u16,
    /// Records answered.
    pub records: usize,
}

/// The org and how the fake behaves.
pub struct Org {
    pub token: String,
    /// Object name to its records.
    pub objects: BTreeMap<String, Vec<Record>>,
    /// The daily API allocation: used so far, the org's maximum. Each request uses one.
    pub api_usage: (u64, u64),
    /// Records of one page, at most, whatever the batch size asked (Salesforce may return fewer).
    pub page_max: usize,
    /// Faults by request number (1 is the first request).
    pub faults: HashMap<u64, Fault>,
    /// A query whose text has this is answered `MALFORMED_QUERY` (a field an org hides, a
    /// syntax an API version refuses).
    pub malformed: Option<String>,
    /// From this request number on, every request is answered 503.
    pub down_from: Option<u64>,
    pub delay_ms: u64,
    pub seen: Vec<Seen>,
    requests: u64,
    /// Query locators to the rest of their results.
    cursors: HashMap<String, (Vec<Value>, usize, usize)>,
}

impl Default for Org {
    fn default() -> Org {
        Org {
            token: "00Dfake!session-token".into(),
            objects: BTreeMap::new(),
            api_usage: (1000, 15_000),
            page_max: 2000,
            faults: HashMap::new(),
            malformed: None,
            down_from: None,
            delay_ms: 0,
            seen: Vec::new(),
            requests: 0,
            cursors: HashMap::new(),
        }
    }
}

impl Org {
    /// Adds `record` (its `Id` set) to `object`.
    pub fn insert(&mut self, object: &str, record: Record) {
        self.objects.entry(object.to_string()).or_default().push(record);
    }

    /// The record of `object` with `id`, to change.
    pub fn record(&mut self, object: &str, id: &str) -> Option<&mut Record> {
        self.objects.get_mut(object)?.iter_mut().find(|r| r.get("Id").and_then(Value::as_str) == Some(id))
    }
}

pub struct FakeSalesforce {
    /// The instance URL.
    pub url: String,
    org: Arc<Mutex<Org>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeSalesforce {
    pub fn start(org: Org) -> FakeSalesforce {
        let org = Arc::new(Mutex::new(org));
        let (url, stop, thread) = listen(org.clone());
        FakeSalesforce { url, org, stop, thread: Some(thread) }
    }

    /// The org; do not hold it while a sync runs (the fake needs it to answer).
    pub fn org(&self) -> MutexGuard<'_, Org> {
        self.org.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FakeSalesforce {
    fn drop(&mut self) {
        stop_listening(&self.url, &self.stop, self.thread.take());
    }
}

/// A datetime as Salesforce's JSON writes it.
pub fn sf_time(iso: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(iso)
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string())
        .unwrap_or_default()
}

/// Salesforce's error body: a list of one error.
fn sf_error(status: u16, code: &str, message: &str) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: json!([{"message": message, "errorCode": code}]),
        fault: None,
    }
}

impl Api for Org {
    fn answer(
        &mut self,
        method: &str,
        target: &str,
        headers: &BTreeMap<String, String>,
        _body: &[u8],
    ) -> Answer {
        self.requests += 1;
        let number = self.requests;
        let mut answer = self.route(method, target, headers);
        if let Some(fault) = self.faults.remove(&number) {
            match fault {
                Fault::Status(status) => {
                    answer = sf_error(status, "SERVER_UNAVAILABLE", "an error the test asked for")
                }
                Fault::Cut => answer.fault = Some(Fault::Cut),
            }
        }
        if let Some(seen) = self.seen.last_mut().filter(|_| answer.status != 200) {
            seen.status = answer.status;
        }
        let (used, max) = self.api_usage;
        answer.headers.push(("Sforce-Limit-Info".into(), format!("api-usage={used}/{max}")));
        answer
    }

    fn delay_ms(&self) -> u64 {
        self.delay_ms
    }
}

impl Org {
    fn route(&mut self, method: &str, target: &str, headers: &BTreeMap<String, String>) -> Answer {
        if self.down_from.is_some_and(|from| self.requests >= from) {
            return plain(
                503,
                json!([{"message": "Service Unavailable", "errorCode": "SERVER_UNAVAILABLE"}]),
            );
        }
        if headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {}", self.token)) {
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid");
        }
        if self.api_usage.0 >= self.api_usage.1 {
            return sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.");
        }
        self.api_usage.0 += 1;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let batch = headers
            .get("sforce-query-options")
            .and_then(|o| o.trim().strip_prefix("batchSize="))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(2000)
            .clamp(200, 2000)
            .min(self.page_max.max(1));
        match (method, segments.as_slice()) {
            ("GET", ["services", "data", version, resource @ ("query" | "queryAll")]) => {
                let Some(soql) = query.split('&').find_map(|p| p.strip_prefix("q=")).map(decode) else {
                    return sf_error(400, "MALFORMED_QUERY", "no q parameter");
                };
                self.seen.push(Seen {
                    resource: resource.to_string(),
                    soql: soql.clone(),
                    status: 200,
                    records: 0,
                });
                if self.malformed.as_deref().is_some_and(|m| soql.contains(m)) {
                    let message =
                        format!("unexpected token: '{}'", self.malformed.clone().unwrap_or_default());
                    return sf_error(400, "MALFORMED_QUERY", &message);
                }
                match run(&self.objects, &soql, *resource == "queryAll") {
                    Ok(records) => self.page(version, records, 0, batch),
                    Err((code, message)) => sf_error(400, code, &message),
                }
            }
            ("GET", ["services", "data", version, "query" | "queryAll", locator]) => {
                self.seen.push(Seen {
                    resource: "more".into(),
                    soql: String::new(),
                    status: 200,
                    records: 0,
                });
                let Some((key, _)) = locator.rsplit_once('-') else {
                    return sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
                };
                match self.cursors.remove(key) {
                    Some((records, offset, _)) => self.page(version, records, offset, batch),
                    None => sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator"),
                }
            }
            _ => sf_error(404, "NOT_FOUND", "The requested resource does not exist"),
        }
    }

    /// The page of `records` from `offset`, its locator kept for the rest.
    fn page(&mut self, version: &str, records: Vec<Value>, offset: usize, batch: usize) -> Answer {
        let total = records.len();
        let end = (offset + batch).min(total);
        let page: Vec<Value> = records.get(offset..end).unwrap_or_default().to_vec();
        if let Some(seen) = self.seen.last_mut() {
            seen.records = page.len();
        }
        let mut body = json!({"totalSize": total, "done": end >= total, "records": page});
        if end < total {
            let key = format!("01gFAKE{:08}", self.requests);
            if let Some(map) = body.as_object_mut() {
                map.insert(
                    "nextRecordsUrl".into(),
                    format!("/services/data/{version}/query/{key}-{end}").into(),
                );
            }
            self.cursors.insert(key, (records, end, batch));
        }
        Answer { status: 200, headers: Vec::new(), body, fault: None }
    }
}

/// A query string's value: `+` and `%XX` decoded.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

type Failure = (&'static str, String);

/// One condition of a WHERE clause.
enum Condition {
    Compare { field: String, op: String, value: Option<String> },
    In { field: String, values: Vec<String> },
}

/// Runs `soql` on `objects`: the selected fields of the matching records, in order.
fn run(objects: &BTreeMap<String, Vec<Record>>, soql: &str, all: bool) -> Result<Vec<Value>, Failure> {
    let malformed = |why: &str| ("MALFORMED_QUERY", format!("{why}: {soql}"));
    let rest = soql.trim().strip_prefix("SELECT ").ok_or_else(|| malformed("no SELECT"))?;
    let (fields, rest) = rest.split_once(" FROM ").ok_or_else(|| malformed("no FROM"))?;
    let fields: Vec<&str> = fields.split(',').map(str::trim).collect();
    let (object, rest) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
    let known = FIELDS
        .iter()
        .find(|(o, _)| *o == object)
        .map(|(_, f)| *f)
        .ok_or_else(|| ("INVALID_TYPE", format!("sObject type '{object}' is not supported.")))?;
    let check = |field: &str| -> Result<(), Failure> {
        match known.contains(&field) {
            true => Ok(()),
            false => Err(("INVALID_FIELD", format!("No such column '{field}' on entity '{object}'"))),
        }
    };
    for field in &fields {
        check(field)?;
    }
    let (condition, order) = match rest.split_once("ORDER BY ") {
        Some((c, o)) => (c.trim(), o.trim()),
        None => (rest.trim(), ""),
    };
    let conditions = match condition.strip_prefix("WHERE ") {
        Some(c) => parse_conditions(c).ok_or_else(|| malformed("a condition this fake does not read"))?,
        None if condition.is_empty() => Vec::new(),
        None => return Err(malformed("unexpected text")),
    };
    for c in &conditions {
        match c {
            Condition::Compare { field, .. } | Condition::In { field, .. } => check(field)?,
        }
    }
    let order: Vec<&str> = order.split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
    for field in &order {
        check(field)?;
    }
    let mut found: Vec<&Record> = objects
        .get(object)
        .into_iter()
        .flatten()
        .filter(|r| all || !(truthy(r.get("IsDeleted")) || truthy(r.get("IsArchived"))))
        .filter(|r| conditions.iter().all(|c| holds(c, r)))
        .collect();
    found.sort_by(|a, b| {
        order
            .iter()
            .map(|f| compare(a.get(*f), b.get(*f)))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(found
        .into_iter()
        .map(|r| {
            let mut out = serde_json::Map::new();
            let id = r.get("Id").and_then(Value::as_str).unwrap_or_default();
            out.insert(
                "attributes".into(),
                json!({"type": object, "url": format!("/services/data/v62.0/sobjects/{object}/{id}")}),
            );
            for field in &fields {
                out.insert(field.to_string(), r.get(*field).cloned().unwrap_or(Value::Null));
            }
            Value::Object(out)
        })
        .collect())
}

fn truthy(value: Option<&Value>) -> bool {
    value.and_then(Value::as_bool).unwrap_or(false)
}

fn parse_conditions(text: &str) -> Option<Vec<Condition>> {
    text.split(" AND ")
        .map(|part| {
            let part = part.trim();
            if let Some((field, values)) = part.split_once(" IN ") {
                let values = values.trim().strip_prefix('(')?.strip_suffix(')')?;
                let values = values.split(',').map(|v| unquote(v.trim())).collect::<Option<Vec<_>>>()?;
                return Some(Condition::In { field: field.trim().to_string(), values });
            }
            let mut words = part.splitn(3, ' ');
            let (field, op, value) = (words.next()?, words.next()?, words.next()?.trim());
            if !matches!(op, "=" | "!=" | "<" | "<=" | ">" | ">=") {
                return None;
            }
            let value = match value {
                "null" => None,
                v if v.starts_with('\'') => Some(unquote(v)?),
                v if chrono::DateTime::parse_from_rfc3339(v).is_ok() => Some(v.to_string()),
                _ => return None,
            };
            Some(Condition::Compare { field: field.to_string(), op: op.to_string(), value })
        })
        .collect()
}

fn unquote(text: &str) -> Option<String> {
    text.strip_prefix('\'')?.strip_suffix('\'').map(|t| t.replace("\\'", "'"))
}

/// A field's value as an instant when it is one (either of Salesforce's forms), else its text.
fn key(value: Option<&Value>) -> Option<Result<i64, String>> {
    let text = match value? {
        Value::String(s) => s.clone(),
        Value::Null => return None,
        other => other.to_string(),
    };
    let instant = chrono::DateTime::parse_from_rfc3339(&text)
        .or_else(|_| chrono::DateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| t.timestamp_millis());
    Some(instant.map_err(|_| text))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (key(a), key(b)) {
        (Some(Ok(a)), Some(Ok(b))) => a.cmp(&b),
        (Some(Err(a)), Some(Err(b))) => a.cmp(&b),
        // Nulls first, as SOQL orders them by default.
        (None, None) => std::cmp::Ordering::Equal,
        (None, _) => std::cmp::Ordering::Less,
        (_, None) => std::cmp::Ordering::Greater,
        (Some(Ok(_)), _) => std::cmp::Ordering::Less,
        (_, Some(Ok(_))) => std::cmp::Ordering::Greater,
    }
}

fn holds(condition: &Condition, record: &Record) -> bool {
    match condition {
        // Ids and other text, compared as text.
        Condition::In { field, values } => {
            record.get(field).and_then(Value::as_str).is_some_and(|text| values.iter().any(|v| v == text))
        }
        Condition::Compare { field, op, value } => {
            let left = record.get(field).filter(|v| !v.is_null());
            let Some(value) = value else {
                return match op.as_str() {
                    "=" => left.is_none(),
                    "!=" => left.is_some(),
                    _ => false,
                };
            };
            let right = Value::String(value.clone());
            if left.is_none() {
                return op == "!=";
            }
            let order = compare(left, Some(&right));
            match op.as_str() {
                "=" => order.is_eq(),
                "!=" => order.is_ne(),
                "<" => order.is_lt(),
                "<=" => order.is_le(),
                ">" => order.is_gt(),
                _ => order.is_ge(),
            }
        }
    }
}

/// The records of a Data Loader CSV export, as the API would give them: empty cells null,
/// `Is*` flags booleans, amounts and durations numbers, dates `YYYY-MM-DD`, datetimes in the
/// API's `+0000` form.
pub fn records_from_csv(text: &str) -> Vec<Record> {
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers: Vec<String> =
        reader.headers().map(|h| h.iter().map(str::to_string).collect()).unwrap_or_default();
    let mut out = Vec::new();
    for row in reader.records().flatten() {
        let mut record = Record::new();
        for (header, cell) in headers.iter().zip(row.iter()) {
            if cell.is_empty() {
                continue;
            }
            let value = match header.as_str() {
                h if h.starts_with("Is") => Value::Bool(matches!(cell, "1" | "true" | "True")),
                "Amount"
                | "Probability"
                | "ExpectedRevenue"
                | "CallDurationInSeconds"
                | "DurationInMinutes" => cell
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::String(cell.into()), Value::Number),
                "CloseDate" | "ActivityDate" => Value::String(cell.get(..10).unwrap_or(cell).to_string()),
                _ => Value::String(api_time(cell).unwrap_or_else(|| cell.to_string())),
            };
            record.insert(header.clone(), value);
        }
        out.push(record);
    }
    out
}

/// A datetime cell (`2018-10-13 17:16:45`, or ISO with a zone) as the API writes it.
fn api_time(cell: &str) -> Option<String> {
    if cell.len() < 19 || cell.as_bytes().get(10).is_none_or(|b| *b != b' ' && *b != b'T') {
        return None;
    }
    let iso = cell.replacen(' ', "T", 1);
    let parsed = chrono::DateTime::parse_from_rfc3339(&iso)
        .or_else(|_| chrono::DateTime::parse_from_str(&iso, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(&format!("{iso}Z")))
        .ok()?;
    Some(parsed.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string())
}

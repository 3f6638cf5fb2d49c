//! Local CRMs for the tests: HubSpot here, Salesforce in [`salesforce`]; both on the same plain
//! HTTP/1.1 server on std threads.
//!
//! A local HubSpot for the tests: the endpoints a sync calls, answering as HubSpot's API
//! reference describes them (shapes, page-size limits, search's 10,000-result cap and its own
//! rate limit without headers, the ten-second limit with its headers, 207 for ids not found,
//! the error body), plus faults a test asks for: a status for a request, a connection cut in the
//! middle of an answer, the whole API down.
//!
//! Plain HTTP/1.1 on std threads, so that a test controls every byte (a cut is a cut). Times
//! are HubSpot's: ISO 8601 with milliseconds for property values and history; search filters
//! take milliseconds as text.

pub mod salesforce;

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A deal of the fake portal: its creation, pipeline and each property's history (oldest first;
/// served newest first, as HubSpot lists it).
#[derive(Clone, Debug, Default)]
pub struct FakeDeal {
    pub created_ms: i64,
    pub modified_ms: i64,
    pub pipeline: String,
    /// Property to (value, ms) entries, oldest first.
    pub history: BTreeMap<String, Vec<(String, i64)>>,
    /// Current values written with no history entry (what an import with history off, or a
    /// property HubSpot keeps no history of, leaves): served as the value, never as history.
    pub silent: BTreeMap<String, String>,
}

impl FakeDeal {
    /// A deal created at `created_ms` in `stage` (HubSpot records the first stage as history).
    pub fn new(created_ms: i64, stage: &str) -> FakeDeal {
        let mut deal = FakeDeal {
            created_ms,
            modified_ms: created_ms,
            pipeline: "default".into(),
            history: BTreeMap::new(),
            silent: BTreeMap::new(),
        };
        deal.set("dealstage", stage, created_ms);
        deal
    }

    /// A change of `property` to `value` at `ms`, as HubSpot records it.
    pub fn set(&mut self, property: &str, value: &str, ms: i64) {
        self.history.entry(property.to_string()).or_default().push((value.to_string(), ms));
        self.modified_ms = self.modified_ms.max(ms);
    }

    fn current(&self, property: &str) -> Option<&str> {
        if let Some(value) = self.silent.get(property) {
            return Some(value);
        }
        self.history.get(property).and_then(|h| h.last()).map(|(v, _)| v.as_str())
    }
}

/// A call, email or meeting: its properties as HubSpot stores them (times as ms text is fine:
/// they are served as ISO), and its associations.
#[derive(Clone, Debug, Default)]
pub struct FakeActivity {
    pub created_ms: i64,
    pub modified_ms: i64,
    pub properties: BTreeMap<String, String>,
    pub deals: Vec<u64>,
    pub contacts: Vec<u64>,
}

/// What a request gets instead of its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// This status, with HubSpot's error body.
    Status(u16),
    /// The answer's headers and half its body, then the connection closed.
    Cut,
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: Value,
    pub at: Instant,
}

/// The portal and how the fake behaves.
pub struct Portal {
    pub token: String,
    pub deals: BTreeMap<u64, FakeDeal>,
    /// `(object type, id)` to the activity.
    pub activities: BTreeMap<(String, u64), FakeActivity>,
    /// The ten-second limit: requests per window, and the window (ms).
    pub limit: (usize, u64),
    /// `Retry-After` seconds on a 429 (the reference does not promise one).
    pub retry_after_s: Option<u64>,
    /// Searches a second, at most (the reference: five per account).
    pub searches_per_second: usize,
    /// Results one search query pages through (the reference: 10,000).
    pub search_results_max: usize,
    /// Associations of one id per page of a v4 batch read.
    pub associations_page: usize,
    /// Faults by request number (1 is the first request the fake receives).
    pub faults: HashMap<u64, Fault>,
    /// From this request number on, every request is answered 503 (the API down).
    pub down_from: Option<u64>,
    /// Milliseconds each answer waits before it is sent (a slow API, for a test to kill a run in
    /// the middle).
    pub delay_ms: u64,
    /// Every request so far.
    pub seen: Vec<Seen>,
    general: VecDeque<Instant>,
    searches: VecDeque<Instant>,
}

impl Default for Portal {
    fn default() -> Portal {
        Portal {
            token: "test-token".into(),
            deals: BTreeMap::new(),
            activities: BTreeMap::new(),
            limit: (100, 10_000),
            retry_after_s: None,
            searches_per_second: 5,
            search_results_max: 10_000,
            associations_page: 500,
            faults: HashMap::new(),
            down_from: None,
            delay_ms: 0,
            seen: Vec::new(),
            general: VecDeque::new(),
            searches: VecDeque::new(),
        }
    }
}

impl Portal {
    /// Requests answered 429 so far, and the most in a row.
    pub fn throttled(&self) -> (usize, usize) {
        let (mut all, mut run, mut most) = (0, 0, 0);
        for seen in &self.seen {
            if seen.status == 429 {
                all += 1;
                run += 1;
                most = most.max(run);
            } else {
                run = 0;
            }
        }
        (all, most)
    }
}

pub struct FakeHubSpot {
    pub url: String,
    portal: Arc<Mutex<Portal>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHubSpot {
    pub fn start(portal: Portal) -> FakeHubSpot {
        let portal = Arc::new(Mutex::new(portal));
        let (url, stop, thread) = listen(portal.clone());
        FakeHubSpot { url, portal, stop, thread: Some(thread) }
    }

    pub fn portal(&self) -> MutexGuard<'_, Portal> {
        self.portal.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FakeHubSpot {
    fn drop(&mut self) {
        stop_listening(&self.url, &self.stop, self.thread.take());
    }
}

/// What a fake answers, on the shared server.
pub(crate) trait Api: Send + 'static {
    fn answer(
        &mut self,
        method: &str,
        target: &str,
        headers: &BTreeMap<String, String>,
        body: &[u8],
    ) -> Answer;
    /// Milliseconds each answer waits before it is sent.
    fn delay_ms(&self) -> u64;
}

impl Api for Portal {
    fn answer(
        &mut self,
        method: &str,
        target: &str,
        headers: &BTreeMap<String, String>,
        body: &[u8],
    ) -> Answer {
        answer(self, method, target, headers, body)
    }

    fn delay_ms(&self) -> u64 {
        self.delay_ms
    }
}

/// Serves `api` on a local port: its URL, the stop flag and the accepting thread.
pub(crate) fn listen<A: Api>(api: Arc<Mutex<A>>) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        for stream in listener.incoming() {
            if s.load(Ordering::SeqCst) {
                return;
            }
            let Ok(stream) = stream else { continue };
            let api = api.clone();
            std::thread::spawn(move || serve(stream, &api));
        }
    });
    (url, stop, thread)
}

/// Stops the server at `url` [`listen`] started.
pub(crate) fn stop_listening(url: &str, stop: &AtomicBool, thread: Option<std::thread::JoinHandle<()>>) {
    stop.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect(url.trim_start_matches("http://"));
    if let Some(thread) = thread {
        let _ = thread.join();
    }
}

/// HubSpot's times: ISO 8601, milliseconds, `Z`.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// Milliseconds of an ISO instant, for building portals.
pub fn ms(iso: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso).map(|t| t.timestamp_millis()).unwrap_or(0)
}

fn serve<A: Api>(stream: TcpStream, api: &Mutex<A>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    loop {
        let Some((method, target, headers, body)) = read_request(&mut reader) else { return };
        let (answer, delay_ms) = {
            let mut api = api.lock().unwrap_or_else(|e| e.into_inner());
            (api.answer(&method, &target, &headers, &body), api.delay_ms())
        };
        std::thread::sleep(Duration::from_millis(delay_ms));
        let Answer { status, headers, body, fault } = answer;
        let text = body.to_string();
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        head.push_str("Content-Type: application/json;charset=utf-8\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", text.len()));
        if fault == Some(Fault::Cut) {
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(text.as_bytes().get(..text.len() / 2).unwrap_or_default());
            let _ = writer.flush();
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return;
        }
        if writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(text.as_bytes())).is_err() {
            return;
        }
    }
}

type Request = (String, String, BTreeMap<String, String>, Vec<u8>);

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (k, v) = header.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, target, headers, body))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        207 => "Multi-Status",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Value,
    pub(crate) fault: Option<Fault>,
}

/// An answer of `status` with `body`.
pub(crate) fn plain(status: u16, body: Value) -> Answer {
    Answer { status, headers: Vec::new(), body, fault: None }
}

/// HubSpot's error body.
fn error(status: u16, category: &str, message: &str) -> Answer {
    let body = json!({
        "status": "error", "message": message, "category": category,
        "correlationId": "00000000-0000-4000-8000-000000000000",
    });
    Answer { status, headers: Vec::new(), body, fault: None }
}

fn answer(
    portal: &mut Portal,
    method: &str,
    target: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Answer {
    let number = portal.seen.len() as u64 + 1;
    let now = Instant::now();
    let path = target.split('?').next().unwrap_or_default().to_string();
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let mut answer = route(portal, method, (&path, query), headers, &request, number, now);
    if answer.fault.is_none() {
        if let Some(fault) = portal.faults.remove(&number) {
            match fault {
                Fault::Status(status) => {
                    answer = error(status, "INTERNAL_ERROR", "an error the test asked for");
                }
                Fault::Cut => answer.fault = Some(Fault::Cut),
            }
        }
    }
    portal.seen.push(Seen { method: method.into(), path, status: answer.status, body: request, at: now });
    answer
}

fn route(
    portal: &mut Portal,
    method: &str,
    (path, query): (&str, &str),
    headers: &BTreeMap<String, String>,
    request: &Value,
    number: u64,
    now: Instant,
) -> Answer {
    if portal.down_from.is_some_and(|from| number >= from) {
        return error(503, "SERVICE_UNAVAILABLE", "Service Unavailable");
    }
    if headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {}", portal.token)) {
        return error(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
        );
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let search = matches!(segments.as_slice(), ["crm", "v3", "objects", _, "search"]);
    if let Some(limited) = throttle(portal, search, now) {
        return limited;
    }
    let mut answer = match (method, segments.as_slice()) {
        ("GET", ["crm", "v3", "objects", "deals"]) => list_deals(portal, query),
        ("POST", ["crm", "v3", "objects", object, "search"]) => search_answer(portal, object, request),
        ("POST", ["crm", "v3", "objects", "deals", "batch", "read"]) => read_deals(portal, request),
        ("POST", ["crm", "v3", "objects", object, "batch", "read"]) => {
            read_activities(portal, object, request)
        }
        ("POST", ["crm", "v4", "associations", from, to, "batch", "read"]) => {
            associations(portal, from, to, request)
        }
        _ => error(404, "OBJECT_NOT_FOUND", "no such endpoint in this fake"),
    };
    if !search {
        let (max, interval) = portal.limit;
        let remaining = max.saturating_sub(portal.general.len());
        answer.headers.push(("X-HubSpot-RateLimit-Max".into(), max.to_string()));
        answer.headers.push(("X-HubSpot-RateLimit-Remaining".into(), remaining.to_string()));
        answer.headers.push(("X-HubSpot-RateLimit-Interval-Milliseconds".into(), interval.to_string()));
    }
    answer
}

/// The rolling limits: searches a second, others per interval. A 429 when spent.
fn throttle(portal: &mut Portal, search: bool, now: Instant) -> Option<Answer> {
    let (window, max, policy, message) = if search {
        (
            Duration::from_secs(1),
            portal.searches_per_second,
            "SECONDLY",
            "You have reached your secondly limit.",
        )
    } else {
        (
            Duration::from_millis(portal.limit.1),
            portal.limit.0,
            "TEN_SECONDLY_ROLLING",
            "You have reached your ten_secondly_rolling limit.",
        )
    };
    let retry_after = portal.retry_after_s;
    let times = if search { &mut portal.searches } else { &mut portal.general };
    while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
        times.pop_front();
    }
    if times.len() >= max {
        let body = json!({
            "status": "error", "message": message, "errorType": "RATE_LIMIT",
            "correlationId": "00000000-0000-4000-8000-000000000000", "policyName": policy,
        });
        let mut headers = Vec::new();
        if let Some(seconds) = retry_after {
            headers.push(("Retry-After".to_string(), seconds.to_string()));
        }
        return Some(Answer { status: 429, headers, body, fault: None });
    }
    times.push_back(now);
    None
}

/// `hs_lastmodifieddate` filters: GTE, GT, LT, LTE, EQ, values in ms.
fn matches(filters: &[Value], modified: i64) -> Result<bool, String> {
    for filter in filters {
        let property = filter["propertyName"].as_str().unwrap_or_default();
        if property != "hs_lastmodifieddate" {
            return Err(format!("this fake filters on hs_lastmodifieddate only, not `{property}`"));
        }
        let value: i64 = filter["value"].as_str().and_then(|v| v.parse().ok()).ok_or("a value in ms")?;
        let ok = match filter["operator"].as_str().unwrap_or_default() {
            "GTE" => modified >= value,
            "GT" => modified > value,
            "LT" => modified < value,
            "LTE" => modified <= value,
            "EQ" => modified == value,
            other => return Err(format!("operator `{other}`")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn properties_of(request: &Value, all: &BTreeMap<String, String>) -> Value {
    let mut out = serde_json::Map::new();
    for name in request["properties"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
        out.insert(name.to_string(), all.get(name).map_or(Value::Null, |v| Value::String(v.clone())));
    }
    Value::Object(out)
}

fn deal_properties(id: u64, deal: &FakeDeal) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    all.insert("hs_object_id".to_string(), id.to_string());
    all.insert("createdate".to_string(), iso(deal.created_ms));
    all.insert("hs_lastmodifieddate".to_string(), iso(deal.modified_ms));
    all.insert("pipeline".to_string(), deal.pipeline.clone());
    for property in deal.history.keys().chain(deal.silent.keys()) {
        if let Some(value) = deal.current(property) {
            let value =
                if property == "closedate" { iso(value.parse().unwrap_or(0)) } else { value.to_string() };
            all.insert(property.clone(), value);
        }
    }
    all
}

fn activity_properties(id: u64, activity: &FakeActivity) -> BTreeMap<String, String> {
    let mut all = activity.properties.clone();
    for value in all.values_mut() {
        // Times are stored as ms; HubSpot serves them as ISO text.
        if value.len() == 13 && value.bytes().all(|b| b.is_ascii_digit()) {
            *value = iso(value.parse().unwrap_or(0));
        }
    }
    all.insert("hs_object_id".to_string(), id.to_string());
    all.insert("hs_createdate".to_string(), iso(activity.created_ms));
    all.insert("hs_lastmodifieddate".to_string(), iso(activity.modified_ms));
    all
}

fn search_answer(portal: &Portal, object: &str, request: &Value) -> Answer {
    let limit = request["limit"].as_u64().unwrap_or(10);
    if limit > 200 {
        return error(400, "VALIDATION_ERROR", "limit must be at most 200");
    }
    let after: usize = match request["after"].as_str().map(str::parse).unwrap_or(Ok(0)) {
        Ok(after) => after,
        Err(_) => return error(400, "VALIDATION_ERROR", "after must be an integer"),
    };
    if after >= portal.search_results_max {
        return error(400, "VALIDATION_ERROR", "Paging beyond 10,000 results is not supported.");
    }
    let filters: Vec<Value> = request["filterGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["filters"].as_array().cloned().unwrap_or_default())
        .collect();
    let mut found: Vec<(i64, u64, BTreeMap<String, String>)> = Vec::new();
    let everything: Vec<(u64, i64, BTreeMap<String, String>)> = if object == "deals" {
        portal.deals.iter().map(|(id, d)| (*id, d.modified_ms, deal_properties(*id, d))).collect()
    } else {
        portal
            .activities
            .iter()
            .filter(|((o, _), _)| o == object)
            .map(|((_, id), a)| (*id, a.modified_ms, activity_properties(*id, a)))
            .collect()
    };
    for (id, modified, all) in everything {
        match matches(&filters, modified) {
            Ok(true) => found.push((modified, id, all)),
            Ok(false) => {}
            Err(why) => return error(400, "VALIDATION_ERROR", &why),
        }
    }
    found.sort_by_key(|(modified, id, _)| (*modified, *id));
    let total = found.len();
    let end = (after + limit as usize).min(total);
    let results: Vec<Value> = found
        .get(after..end)
        .unwrap_or_default()
        .iter()
        .map(|(_, id, all)| {
            json!({"id": id.to_string(), "properties": properties_of(request, all),
                   "createdAt": all.get("createdate").or(all.get("hs_createdate")),
                   "updatedAt": all.get("hs_lastmodifieddate"), "archived": false})
        })
        .collect();
    let mut body = json!({"total": total, "results": results});
    if end < total {
        set(&mut body, "paging", json!({"next": {"after": end.to_string()}}));
    }
    Answer { status: 200, headers: Vec::new(), body, fault: None }
}

fn ids(request: &Value) -> Vec<(String, Option<String>)> {
    request["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| Some((i["id"].as_str()?.to_string(), i["after"].as_str().map(str::to_string))))
        .collect()
}

/// 200 with the results, or 207 naming the ids not found.
fn batch(results: Vec<Value>, missing: Vec<String>, what: &str) -> Answer {
    let mut body = json!({"status": "COMPLETE", "results": results,
                          "startedAt": iso(0), "completedAt": iso(0)});
    let status = if missing.is_empty() {
        200
    } else {
        set(&mut body, "numErrors", json!(1));
        let message = format!(
            "Could not get some {what} objects, they may be deleted or not exist. Check that ids are valid."
        );
        let error = json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": message,
                           "context": {"ids": missing}});
        set(&mut body, "errors", json!([error]));
        207
    };
    Answer { status, headers: Vec::new(), body, fault: None }
}

fn read_deals(portal: &Portal, request: &Value) -> Answer {
    let inputs = ids(request);
    let history: Vec<&str> = request["propertiesWithHistory"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    let max = if history.is_empty() { 100 } else { 50 };
    if inputs.len() > max {
        return error(400, "VALIDATION_ERROR", &format!("at most {max} inputs"));
    }
    let (mut results, mut missing) = (Vec::new(), Vec::new());
    for (id, _) in inputs {
        let Some(deal) = id.parse().ok().and_then(|n: u64| portal.deals.get(&n).map(|d| (n, d))) else {
            missing.push(id);
            continue;
        };
        let (n, deal) = deal;
        let mut with_history = serde_json::Map::new();
        for name in &history {
            let entries: Vec<(String, i64)> = if *name == "createdate" {
                vec![(iso(deal.created_ms), deal.created_ms)]
            } else {
                deal.history.get(*name).cloned().unwrap_or_default()
            };
            let listed: Vec<Value> = entries
                .iter()
                .rev()
                .map(|(value, ms)| {
                    let value =
                        if *name == "closedate" { iso(value.parse().unwrap_or(0)) } else { value.clone() };
                    json!({"value": value, "timestamp": iso(*ms), "sourceType": "CRM_UI",
                           "sourceId": "userId:1", "updatedByUserId": 1})
                })
                .collect();
            with_history.insert(name.to_string(), Value::Array(listed));
        }
        results.push(
            json!({"id": n.to_string(), "properties": properties_of(request, &deal_properties(n, deal)),
            "propertiesWithHistory": with_history, "createdAt": iso(deal.created_ms),
            "updatedAt": iso(deal.modified_ms), "archived": false}),
        );
    }
    batch(results, missing, "DEAL")
}

/// `GET /crm/v3/objects/deals`: `limit` (default 10, at most 100), `after` (the id of the next
/// deal: the list is in id order), `properties` (comma separated or repeated), `archived`.
fn list_deals(portal: &Portal, query: &str) -> Answer {
    let mut limit = 10usize;
    let mut after = 0u64;
    let mut properties = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" => match value.parse() {
                Ok(n) if n <= 100 => limit = n,
                _ => return error(400, "VALIDATION_ERROR", "limit must be a number of at most 100"),
            },
            "after" => match value.parse() {
                Ok(n) => after = n,
                Err(_) => return error(400, "VALIDATION_ERROR", "after is not a paging token"),
            },
            "properties" => properties.extend(value.split(',').map(|p| Value::String(p.to_string()))),
            "propertiesWithHistory" => {
                return error(400, "VALIDATION_ERROR", "this fake lists without history");
            }
            _ => {}
        }
    }
    let asked = json!({ "properties": properties });
    let mut deals = portal.deals.range(after..);
    let results: Vec<Value> = deals
        .by_ref()
        .take(limit)
        .map(|(id, deal)| {
            json!({"id": id.to_string(), "properties": properties_of(&asked, &deal_properties(*id, deal)),
                   "createdAt": iso(deal.created_ms), "updatedAt": iso(deal.modified_ms), "archived": false})
        })
        .collect();
    let mut body = json!({ "results": results });
    if let Some((next, _)) = deals.next() {
        let link = format!("https://api.hubapi.com/crm/v3/objects/deals?after={next}");
        set(&mut body, "paging", json!({"next": {"after": next.to_string(), "link": link}}));
    }
    Answer { status: 200, headers: Vec::new(), body, fault: None }
}

fn read_activities(portal: &Portal, object: &str, request: &Value) -> Answer {
    let inputs = ids(request);
    if inputs.len() > 100 {
        return error(400, "VALIDATION_ERROR", "at most 100 inputs");
    }
    let (mut results, mut missing) = (Vec::new(), Vec::new());
    for (id, _) in inputs {
        let found = id
            .parse()
            .ok()
            .and_then(|n: u64| portal.activities.get(&(object.to_string(), n)).map(|a| (n, a)));
        let Some((n, activity)) = found else {
            missing.push(id);
            continue;
        };
        let all = activity_properties(n, activity);
        results.push(json!({"id": n.to_string(), "properties": properties_of(request, &all),
            "createdAt": iso(activity.created_ms), "updatedAt": iso(activity.modified_ms), "archived": false}));
    }
    batch(results, missing, &object.to_uppercase())
}

fn associations(portal: &Portal, from: &str, to: &str, request: &Value) -> Answer {
    let inputs = ids(request);
    if inputs.len() > 1000 {
        return error(400, "VALIDATION_ERROR", "at most 1000 inputs");
    }
    let (mut results, mut missing) = (Vec::new(), Vec::new());
    for (id, after) in inputs {
        let activity = id.parse().ok().and_then(|n: u64| portal.activities.get(&(from.to_string(), n)));
        let all = match (activity, to) {
            (Some(a), "deals") => a.deals.clone(),
            (Some(a), "contacts") => a.contacts.clone(),
            _ => Vec::new(),
        };
        if all.is_empty() {
            missing.push(id);
            continue;
        }
        let start: usize = after.and_then(|a| a.parse().ok()).unwrap_or(0);
        let end = (start + portal.associations_page).min(all.len());
        let type_id = match (from, to) {
            ("calls", "deals") => 206,
            ("emails", "deals") => 210,
            ("meetings", "deals") => 212,
            ("calls", _) => 194,
            ("meetings", _) => 200,
            _ => 198,
        };
        let listed: Vec<Value> = all
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|to| json!({"toObjectId": to, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": null}]}))
            .collect();
        let mut result = json!({"from": {"id": id}, "to": listed});
        if end < all.len() {
            set(&mut result, "paging", json!({"next": {"after": end.to_string(), "link": null}}));
        }
        results.push(result);
    }
    batch(results, missing, "ASSOCIATION")
}

/// Sets `key` of a JSON object (one built just above: never another kind of value).
fn set(value: &mut Value, key: &str, to: impl Into<Value>) {
    if let Some(map) = value.as_object_mut() {
        map.insert(key.to_string(), to.into());
    }
}

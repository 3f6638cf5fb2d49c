//! Events in and out: `POST /v1/events` (queued to the writer, answered once durable), pages of
//! `GET /v1/events`, and the live tail `GET /v1/stream`.

use super::body::{announced_bytes, busy, read_body, Pool};
use super::read::{blocking, caught_up};
use super::{number, only_params, set, Answer, ApiError, SharedState};
use crate::budget::Reserved;
use crate::config::STREAM_BUFFER_BYTES_MAX;
use crate::decode::{decode_events, Decoded};
use crate::writer::{self, Job, Message, Work};
use crate::Shared;
use axum::extract::{Query, Request, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use dealledger_events::{stored_event_json, Currency};
use dealledger_log::Outcome;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Events in one page of `GET /v1/events`, by default and at most.
const PAGE_EVENTS_DEFAULT: usize = 1_000;
const PAGE_EVENTS_MAX: usize = 10_000;
/// Bytes of event JSON in one page, about, at most (events are up to 64 KiB each).
const PAGE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Events the live tail reads from the log at a time.
const STREAM_PAGE_EVENTS: usize = 1_000;

pub(super) async fn post_events(State(shared): SharedState, request: Request) -> Answer {
    let caller = super::auth::caller_name(request.extensions());
    let announced = announced_bytes(request.headers());
    let limit = shared.config.body_bytes_max;
    let body = request.into_body();
    let (body, mut reserved) =
        read_body(&shared, Pool::Authenticated, body, announced, limit, "[serve] body_bytes_max").await?;
    let decoded = decode_events(&body, shared.config.request_events_max);
    // The events' text is in their strings now (at most the body's bytes, which stay counted);
    // the body itself goes.
    drop(body);
    match decoded {
        Decoded::Events(submissions) => {
            let bytes =
                submissions.len().saturating_mul(std::mem::size_of::<dealledger_events::Submission>());
            if !reserved.grow(bytes) {
                return Err(busy(&shared));
            }
            submit(&shared, Work::Events(submissions), reserved, caller).await
        }
        Decoded::Bad(bad) => Err(ApiError::Rejected { index: bad.index, rejection: bad.rejection }),
        Decoded::TooMany(t) => Err(ApiError::TooManyEvents { max: t.events_max }),
    }
}

/// Queues work for the writer and waits for its answer.
pub(super) async fn submit(
    shared: &Arc<Shared>,
    work: Work,
    reserved: Reserved,
    by: Option<String>,
) -> Answer {
    let hubspot = !matches!(work, Work::Events(_));
    // No short cut when the writer has failed: it answers (and retries its recovery) itself.
    let (reply, answer) = tokio::sync::oneshot::channel();
    shared.metrics.queue_depth.fetch_add(1, Relaxed);
    if let Err(e) = shared.queue.try_send(Message::Job(Job { work, reply, reserved, by })) {
        shared.metrics.queue_depth.fetch_sub(1, Relaxed);
        return Err(match e {
            std::sync::mpsc::TrySendError::Full(_) => ApiError::QueueFull(format!(
                "{} requests are waiting for the writer (queue_requests_max); retry",
                shared.config.queue_requests_max
            )),
            std::sync::mpsc::TrySendError::Disconnected(_) => ApiError::WriterStopped,
        });
    }
    let ms = shared.config.request_timeout_ms;
    match tokio::time::timeout(Duration::from_millis(ms), answer).await {
        Err(_) => Err(ApiError::WriteTimeout { ms }),
        // The writer dropped the reply: it panicked, or could not fold what it had stored.
        Ok(Err(_)) => Err(ApiError::Store {
            certainty: dealledger_log::Certainty::Unknown,
            why: "the writer failed before answering".into(),
        }),
        Ok(Ok(writer::Answer::Refused { index, rejection })) => {
            Err(ApiError::Rejected { index: Some(index), rejection })
        }
        Ok(Ok(writer::Answer::Failed { certainty, why })) => Err(ApiError::Store { certainty, why }),
        Ok(Ok(writer::Answer::Unavailable { code, why })) => Err(ApiError::WriterUnavailable { code, why }),
        // Only the scheduled sync sends a sync's page, and it waits for its own answer.
        Ok(Ok(writer::Answer::Synced(_))) => Err(ApiError::Store {
            certainty: dealledger_log::Certainty::Unknown,
            why: "a sync's answer reached a request".into(),
        }),
        Ok(Ok(writer::Answer::Acked { outcomes, ignored, quarantined, remaining })) => {
            let mut body = acknowledged(&outcomes);
            if ignored > 0 {
                set(&mut body, "ignored", ignored);
            }
            if hubspot {
                let held: Vec<serde_json::Value> = quarantined
                    .iter()
                    .map(|(index, r)| json!({"index": index, "rule": r.rule.as_str(), "field": r.field, "reason": r.detail}))
                    .collect();
                set(&mut body, "quarantined", held.len());
                set(&mut body, "quarantine", held);
            }
            if let Some(remaining) = remaining {
                let duplicates = body.get("duplicates").and_then(serde_json::Value::as_u64).unwrap_or(0);
                set(&mut body, "admitted", (outcomes.len() as u64).saturating_sub(duplicates));
                set(&mut body, "remaining", remaining);
            }
            Ok(axum::Json(body).into_response())
        }
    }
}

/// The acknowledgement of stored events: each one's seq, deal, version and whether it was a
/// duplicate, the first and last seq appended, and how many were duplicates.
fn acknowledged(outcomes: &[(String, Outcome)]) -> serde_json::Value {
    let mut events = Vec::with_capacity(outcomes.len());
    let (mut first, mut last, mut duplicates) = (None::<u64>, None::<u64>, 0u64);
    for (deal, outcome) in outcomes {
        let (seq, version, duplicate) = match *outcome {
            Outcome::Appended { seq, version } => {
                first = Some(first.map_or(seq, |f| f.min(seq)));
                last = Some(last.map_or(seq, |l| l.max(seq)));
                (seq, version, false)
            }
            Outcome::Duplicate { seq, version } => {
                duplicates += 1;
                (seq, version, true)
            }
        };
        events.push(json!({"seq": seq, "deal": deal, "version": version, "duplicate": duplicate}));
    }
    json!({"first_seq": first, "last_seq": last, "duplicates": duplicates, "events": events})
}

/// Events with seq in [from, ..] up to `limit` and about `bytes_max` of JSON (always at least
/// one), as JSON objects: a page of large events is cut short, and `next_seq` says where the
/// next one starts.
fn read_events(
    shared: &Shared,
    from: u64,
    limit: usize,
    bytes_max: usize,
) -> Result<Vec<(u64, String)>, ApiError> {
    let log = shared.live.reader();
    let timeline = shared.live.read();
    let mut page: Vec<(u64, String)> = Vec::new();
    let mut bytes = 0usize;
    log.scan(from.max(1), |stored| {
        let currency = timeline.deal(stored.event.deal.as_str()).map_or(Currency::USD, |d| d.currency);
        let json = stored_event_json(&stored, currency);
        bytes = bytes.saturating_add(json.len() + 1);
        page.push((stored.seq, json));
        Ok(page.len() < limit && bytes < bytes_max)
    })
    .map_err(|e| ApiError::ReadFailed(e.to_string()))?;
    Ok(page)
}

pub(super) async fn get_events(
    State(shared): SharedState,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    only_params(&query, &["from_seq", "limit"])?;
    let from = number(&query, "from_seq", 1)?;
    let limit = match number(&query, "limit", PAGE_EVENTS_DEFAULT as u64)? {
        n if (1..=PAGE_EVENTS_MAX as u64).contains(&n) => n as usize,
        n => return Err(ApiError::bad_param("limit", format!("{n} is not in 1..={PAGE_EVENTS_MAX}"))),
    };
    caught_up(&shared).await?;
    let head = shared.live.head().seq;
    let task_shared = shared.clone();
    let events =
        blocking(move || read_events(&task_shared, from, limit, PAGE_BYTES_MAX), ApiError::ReadFailed)
            .await?;
    let next = events.last().map_or(from.max(1).min(head + 1), |(seq, _)| seq + 1);
    let mut body = String::with_capacity(events.iter().map(|(_, e)| e.len() + 2).sum::<usize>() + 64);
    body.push_str("{\"events\":[");
    for (i, (_, event)) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(event);
    }
    body.push_str(&format!("],\"next_seq\":{next},\"head_seq\":{head}}}\n"));
    Ok(super::json_text(body))
}

/// One client's live tail; its place and its count in the gauge go with it.
struct Tail {
    shared: Arc<Shared>,
    next: u64,
    pending: VecDeque<(u64, String)>,
    head: tokio::sync::watch::Receiver<dealledger_log::Head>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    _place: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.shared.metrics.streams_open.fetch_sub(1, Relaxed);
    }
}

impl Tail {
    /// The next event to send, reading a page from the log when none is pending; None when the
    /// tail ends (shutdown, or a read error: the client resumes with Last-Event-ID).
    async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some((seq, data)) = self.pending.pop_front() {
                return Some(SseEvent::default().id(seq.to_string()).event("event").data(data));
            }
            if *self.shutdown.borrow() {
                return None;
            }
            let head = self.head.borrow_and_update().seq;
            if self.next > head {
                tokio::select! {
                    changed = self.head.changed() => changed.ok()?,
                    _ = self.shutdown.changed() => return None,
                }
                continue;
            }
            let (shared, from) = (self.shared.clone(), self.next);
            // Amounts are printed in their deal's currency, which the timeline knows once it has
            // folded the deal's opening.
            let _ = caught_up(&shared).await;
            let reading = tokio::select! {
                reading = shared.stream_reads.acquire() => reading,
                _ = self.shutdown.changed() => return None,
            };
            let _reading = reading.ok()?;
            let task_shared = shared.clone();
            let read = move || read_events(&task_shared, from, STREAM_PAGE_EVENTS, STREAM_BUFFER_BYTES_MAX);
            let events = blocking(read, ApiError::ReadFailed).await.ok()?;
            match events.last() {
                Some((last, _)) => self.next = last + 1,
                None => self.next = head + 1,
            }
            self.pending.extend(events);
        }
    }
}

/// The live tail: every event from `from_seq` (or after `Last-Event-ID`), then each new one as
/// it becomes durable. Ends when the daemon shuts down.
///
/// A tail costs bytes, never a thread: it is a future polled as its client takes what it was
/// sent, reading ahead at most about [`STREAM_BUFFER_BYTES_MAX`] of events, and its pages are
/// read on the blocking pool [`crate::STREAM_READS_MAX`] tails at a time. At most
/// `[serve] streams_max` are open at once (503 `too_many_streams` past it).
pub(super) async fn get_stream(
    State(shared): SharedState,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    only_params(&query, &["from_seq"])?;
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let from = match resume {
        Some(text) => {
            text.trim().parse::<u64>().ok().and_then(|seq| seq.checked_add(1)).ok_or_else(|| {
                ApiError::bad_param("Last-Event-ID", format!("`{text}` is not a sequence number"))
            })?
        }
        None => number(&query, "from_seq", shared.live.head().seq + 1)?.max(1),
    };
    let place = shared
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyStreams { max: shared.config.streams_max })?;
    shared.metrics.streams_open.fetch_add(1, Relaxed);
    let tail = Tail {
        head: shared.live.subscribe_head(),
        shutdown: shared.shutdown.subscribe(),
        shared,
        next: from,
        pending: VecDeque::new(),
        _place: place,
    };
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        let event = tail.next_event().await?;
        Some((Ok::<_, std::convert::Infallible>(event), tail))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

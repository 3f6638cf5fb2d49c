//! Every error answer of the daemon, in one closed type: its code, its status, its reason, and
//! one conversion to a response. The conversion marks the response with its code, and one
//! middleware ([`super::count_errors`]) counts each marked response in
//! `dealledger_rejects_total{reason}`: an error is counted once, wherever it was made.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dealledger_events::Rejection;
use dealledger_log::Certainty;
use serde_json::json;

/// Seconds a client is asked to wait before retrying a 503.
const RETRY_AFTER_SECONDS: u64 = 1;

#[derive(Debug)]
pub enum ApiError {
    // The doors.
    /// No token, or the wrong one; `bearer`: the answer names the scheme.
    Unauthorized {
        why: &'static str,
        bearer: bool,
    },
    /// A token the daemon takes, of a role that does not allow the endpoint.
    Forbidden {
        role: crate::config::Role,
        needed: crate::config::Role,
    },
    TooManyAttempts {
        retry_after_s: u64,
    },
    WrongHost(String),
    BadRequest(String),
    UnsupportedMediaType(String),
    NotFound,
    // Bodies.
    TooLarge(String),
    BodyTimeout {
        ms: u64,
    },
    BadBody(String),
    TooManyEvents {
        max: usize,
    },
    /// The memory budget is spent (or the writer's queue is full).
    QueueFull(String),
    /// The budget of deliveries whose signature is not checked yet is spent.
    UnsignedFull(String),
    BadSignature(String),
    /// A connection over `connections_max` or `connections_per_address_max`.
    TooManyConnections(String),
    // Writes.
    /// An event broke a rule: nothing of the request was stored.
    Rejected {
        index: Option<usize>,
        rejection: Rejection,
    },
    /// The store failed: nothing was stored, or nobody knows.
    Store {
        certainty: Certainty,
        why: String,
    },
    /// Not acknowledged in time (it may still be stored).
    WriteTimeout {
        ms: u64,
    },
    WriterStopped,
    /// The writer's own refusal that is not the store's: `not_the_writer`,
    /// `quarantine_unavailable`, `not_configured`.
    WriterUnavailable {
        code: &'static str,
        why: String,
    },
    NotConfigured(String),
    BadConfig(String),
    // Reads.
    BadParameter {
        param: String,
        why: String,
    },
    /// Says which deal, and as of when it is unknown.
    UnknownDeal(String),
    UnknownReport(String),
    ReadFailed(String),
    ReportFailed(String),
    TimelineBehind {
        seq: u64,
        ms: u64,
    },
    TooManyStreams {
        max: usize,
    },
    WhatIfBusy(String),
    WhatIfTimeout(String),
    WhatIfFailed(String),
    // Operations.
    WriterFailed(String),
    ShuttingDown,
}

impl ApiError {
    pub fn bad_param(param: impl Into<String>, why: impl Into<String>) -> ApiError {
        ApiError::BadParameter { param: param.into(), why: why.into() }
    }

    /// The `error` of the JSON body, and the label of the metric.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::WrongHost(_) => "wrong_host",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::NotFound => "not_found",
            ApiError::TooLarge(_) => "too_large",
            ApiError::BodyTimeout { .. } | ApiError::WriteTimeout { .. } => "timeout",
            ApiError::BadBody(_) => "bad_body",
            ApiError::TooManyEvents { .. } => "too_many_events",
            ApiError::QueueFull(_) => "queue_full",
            ApiError::UnsignedFull(_) => "unsigned_full",
            ApiError::BadSignature(_) => "bad_signature",
            ApiError::TooManyConnections(_) => "too_many_connections",
            ApiError::Rejected { rejection, .. } => rejection.rule.as_str(),
            ApiError::Store { certainty: Certainty::NothingStored, .. } => "store_failed",
            ApiError::Store { certainty: Certainty::Unknown, .. } => "outcome_unknown",
            ApiError::WriterStopped => "writer_stopped",
            ApiError::WriterUnavailable { code, .. } => code,
            ApiError::NotConfigured(_) => "not_configured",
            ApiError::BadConfig(_) => "bad_config",
            ApiError::BadParameter { .. } => "bad_parameter",
            ApiError::UnknownDeal(_) => "unknown_deal",
            ApiError::UnknownReport(_) => "unknown_report",
            ApiError::ReadFailed(_) => "read_failed",
            ApiError::ReportFailed(_) => "report_failed",
            ApiError::TimelineBehind { .. } => "timeline_behind",
            ApiError::TooManyStreams { .. } => "too_many_streams",
            ApiError::WhatIfBusy(_) => "whatif_busy",
            ApiError::WhatIfTimeout(_) => "whatif_timeout",
            ApiError::WhatIfFailed(_) => "whatif_failed",
            ApiError::WriterFailed(_) => "writer_failed",
            ApiError::ShuttingDown => "shutting_down",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized { .. } | ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::WrongHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::BadRequest(_)
            | ApiError::BadBody(_)
            | ApiError::BadConfig(_)
            | ApiError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound
            | ApiError::NotConfigured(_)
            | ApiError::UnknownDeal(_)
            | ApiError::UnknownReport(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) | ApiError::TooManyEvents { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Rejected { rejection, .. } if rejection.rule.is_conflict() => StatusCode::CONFLICT,
            ApiError::Rejected { .. } => StatusCode::BAD_REQUEST,
            ApiError::ReadFailed(_) | ApiError::ReportFailed(_) | ApiError::WhatIfFailed(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::QueueFull(_)
            | ApiError::UnsignedFull(_)
            | ApiError::TooManyConnections(_)
            | ApiError::Store { .. }
            | ApiError::WriteTimeout { .. }
            | ApiError::WriterStopped
            | ApiError::WriterUnavailable { .. }
            | ApiError::TimelineBehind { .. }
            | ApiError::TooManyStreams { .. }
            | ApiError::WhatIfBusy(_)
            | ApiError::WhatIfTimeout(_)
            | ApiError::WriterFailed(_)
            | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Seconds to wait before a retry, where one is worth making soon.
    fn retry_after_s(&self) -> Option<u64> {
        match self {
            ApiError::TooManyAttempts { retry_after_s } => Some(*retry_after_s),
            // Asking the same again soon would stop the same way.
            ApiError::WhatIfTimeout(_) => None,
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_AFTER_SECONDS),
            _ => None,
        }
    }

    fn reason(&self) -> String {
        match self {
            ApiError::Unauthorized { why, .. } => (*why).to_string(),
            ApiError::Forbidden { role, needed } => format!(
                "this token's role is {}; this endpoint needs {} (or admin): use a token with that role ([[serve.tokens]])",
                role.as_str(),
                needed.as_str()
            ),
            ApiError::TooManyAttempts { retry_after_s } => format!(
                "{} wrong tokens from this address within {} s; retry in {retry_after_s} s",
                crate::throttle::FAILURES_MAX,
                crate::throttle::WINDOW_MS / 1000
            ),
            ApiError::BodyTimeout { ms } => {
                format!("the body did not arrive within {ms} ms (body_read_timeout_ms)")
            }
            ApiError::TooManyEvents { max } => {
                format!("more than {max} events in one request (request_events_max)")
            }
            ApiError::Rejected { rejection, .. } => rejection.to_string(),
            ApiError::Store { certainty: Certainty::NothingStored, why } => format!("nothing was stored: {why}"),
            ApiError::Store { certainty: Certainty::Unknown, why } => format!(
                "the events may or may not be stored ({why}); retry with the same source_id values: \
                 what was stored comes back as duplicates"
            ),
            ApiError::WriteTimeout { ms } => format!(
                "not acknowledged within {ms} ms; the batch may still be stored: retry with the same source_id values"
            ),
            ApiError::WriterStopped => "the writer has stopped".into(),
            ApiError::NotFound => "no such endpoint (see docs/daemon.md)".into(),
            ApiError::BadParameter { param, why } => format!("{param}: {why}"),
            ApiError::TimelineBehind { seq, ms } => {
                format!("the timeline has not folded seq {seq} within {ms} ms (request_timeout_ms); retry")
            }
            ApiError::TooManyStreams { max } => {
                format!("{max} live tails are open ([serve] streams_max); retry shortly")
            }
            ApiError::ShuttingDown => "the daemon is shutting down".into(),
            ApiError::WrongHost(why)
            | ApiError::BadRequest(why)
            | ApiError::UnsupportedMediaType(why)
            | ApiError::TooLarge(why)
            | ApiError::BadBody(why)
            | ApiError::QueueFull(why)
            | ApiError::UnsignedFull(why)
            | ApiError::BadSignature(why)
            | ApiError::TooManyConnections(why)
            | ApiError::WriterUnavailable { why, .. }
            | ApiError::NotConfigured(why)
            | ApiError::BadConfig(why)
            | ApiError::UnknownDeal(why)
            | ApiError::UnknownReport(why)
            | ApiError::ReadFailed(why)
            | ApiError::ReportFailed(why)
            | ApiError::WhatIfBusy(why)
            | ApiError::WhatIfTimeout(why)
            | ApiError::WhatIfFailed(why)
            | ApiError::WriterFailed(why) => why.clone(),
        }
    }

    /// The JSON body: `error` (the code), `index` (the event of a request, where one is to
    /// blame), `reason`, and `field` for a rule's rejection.
    pub fn body(&self) -> String {
        let index = match self {
            ApiError::Rejected { index, .. } => *index,
            _ => None,
        };
        let mut body = json!({"error": self.code(), "index": index, "reason": self.reason()});
        if let (ApiError::Rejected { rejection, .. }, Some(object)) = (self, body.as_object_mut()) {
            if let Some(field) = rejection.field {
                object.insert("field".into(), field.into());
            }
        }
        body.to_string()
    }

    /// The whole HTTP/1.1 answer, for the accept loop, which answers before any router
    /// runs. Its `Content-Length` is the body's: one rendering, so the two cannot drift.
    pub fn http1_bytes(&self) -> Vec<u8> {
        let body = self.body();
        let status = self.status();
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        );
        if let Some(seconds) = self.retry_after_s() {
            head.push_str(&format!("Retry-After: {seconds}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(&body);
        head.into_bytes()
    }
}

/// What [`super::count_errors`] finds on an error answer: its code, counted once.
#[derive(Clone, Copy, Debug)]
pub struct Counted(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status(), [(header::CONTENT_TYPE, "application/json")], self.body()).into_response();
        let headers = response.headers_mut();
        if let Some(value) = self.retry_after_s().and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            headers.insert(header::RETRY_AFTER, value);
        }
        if let ApiError::Unauthorized { bearer: true, .. } = self {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(Counted(self.code()));
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "a test: a panic is a failing test")]

    use super::*;
    use dealledger_events::Rule;

    /// Each variant's place in [`every`]: a match without a wildcard, so that a new variant
    /// does not compile until it is placed, and [`every`] must then hold it.
    fn place(e: &ApiError) -> usize {
        match e {
            ApiError::Unauthorized { .. } => 0,
            ApiError::TooManyAttempts { .. } => 1,
            ApiError::WrongHost(_) => 2,
            ApiError::BadRequest(_) => 3,
            ApiError::UnsupportedMediaType(_) => 4,
            ApiError::NotFound => 5,
            ApiError::TooLarge(_) => 6,
            ApiError::BodyTimeout { .. } => 7,
            ApiError::BadBody(_) => 8,
            ApiError::TooManyEvents { .. } => 9,
            ApiError::QueueFull(_) => 10,
            ApiError::UnsignedFull(_) => 11,
            ApiError::BadSignature(_) => 12,
            ApiError::TooManyConnections(_) => 13,
            ApiError::Rejected { .. } => 14,
            ApiError::Store { .. } => 15,
            ApiError::WriteTimeout { .. } => 16,
            ApiError::WriterStopped => 17,
            ApiError::WriterUnavailable { .. } => 18,
            ApiError::NotConfigured(_) => 19,
            ApiError::BadConfig(_) => 20,
            ApiError::BadParameter { .. } => 21,
            ApiError::UnknownDeal(_) => 22,
            ApiError::UnknownReport(_) => 23,
            ApiError::ReadFailed(_) => 24,
            ApiError::ReportFailed(_) => 25,
            ApiError::TimelineBehind { .. } => 26,
            ApiError::TooManyStreams { .. } => 27,
            ApiError::WhatIfBusy(_) => 28,
            ApiError::WhatIfTimeout(_) => 29,
            ApiError::WhatIfFailed(_) => 30,
            ApiError::WriterFailed(_) => 31,
            ApiError::ShuttingDown => 32,
            ApiError::Forbidden { .. } => 33,
        }
    }

    const VARIANTS: usize = 34;

    /// One of each, with text that needs escaping and is not ASCII.
    fn every() -> Vec<ApiError> {
        let why = || "a \"quoted\" reason, ünïcode, a\nnewline".to_string();
        let rejection = Rejection { rule: Rule::NotOpened, field: Some("stage"), detail: why() };
        vec![
            ApiError::Unauthorized { why: "wrong token", bearer: true },
            ApiError::TooManyAttempts { retry_after_s: 42 },
            ApiError::WrongHost(why()),
            ApiError::BadRequest(why()),
            ApiError::UnsupportedMediaType(why()),
            ApiError::NotFound,
            ApiError::TooLarge(why()),
            ApiError::BodyTimeout { ms: 5 },
            ApiError::BadBody(why()),
            ApiError::TooManyEvents { max: 2 },
            ApiError::QueueFull(why()),
            ApiError::UnsignedFull(why()),
            ApiError::BadSignature(why()),
            ApiError::TooManyConnections(why()),
            ApiError::Rejected { index: Some(3), rejection },
            ApiError::Store { certainty: Certainty::Unknown, why: why() },
            ApiError::WriteTimeout { ms: 7 },
            ApiError::WriterStopped,
            ApiError::WriterUnavailable { code: "not_the_writer", why: why() },
            ApiError::NotConfigured(why()),
            ApiError::BadConfig(why()),
            ApiError::bad_param("limit", why()),
            ApiError::UnknownDeal(why()),
            ApiError::UnknownReport(why()),
            ApiError::ReadFailed(why()),
            ApiError::ReportFailed(why()),
            ApiError::TimelineBehind { seq: 9, ms: 10 },
            ApiError::TooManyStreams { max: 4 },
            ApiError::WhatIfBusy(why()),
            ApiError::WhatIfTimeout(why()),
            ApiError::WhatIfFailed(why()),
            ApiError::WriterFailed(why()),
            ApiError::ShuttingDown,
            ApiError::Forbidden { role: crate::config::Role::Read, needed: crate::config::Role::Write },
        ]
    }

    #[test]
    fn every_variant_is_tried() {
        let mut places: Vec<usize> = every().iter().map(place).collect();
        places.sort_unstable();
        assert_eq!(places, (0..VARIANTS).collect::<Vec<_>>());
    }

    #[test]
    fn every_answer_says_its_length_its_code_and_is_marked_to_be_counted_once() {
        for error in every() {
            let (code, status, body) = (error.code(), error.status(), error.body());
            let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(parsed["error"], code, "{body}");
            assert!(status.is_client_error() || status.is_server_error(), "{code}: {status}");
            // The accept loop's bytes: the head's length is the body's.
            let bytes = String::from_utf8(error.http1_bytes()).unwrap();
            let (head, sent) = bytes.split_once("\r\n\r\n").unwrap();
            let announced: usize =
                head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
            assert_eq!((announced, sent), (sent.len(), body.as_str()), "{code}");
            assert!(head.starts_with(&format!("HTTP/1.1 {} ", status.as_u16())), "{head}");
            // The router's answer: one mark, the code.
            let response = error.into_response();
            assert_eq!(response.status(), status);
            assert_eq!(response.extensions().get::<Counted>().map(|c| c.0), Some(code));
            let length =
                response.headers().get(header::CONTENT_LENGTH).map(|v| v.to_str().unwrap().to_string());
            assert!(length.is_none() || length == Some(body.len().to_string()), "{code}: {length:?}");
        }
    }

    #[test]
    fn the_two_certainties_are_two_codes() {
        let code = |certainty| ApiError::Store { certainty, why: String::new() }.code();
        assert_eq!(code(Certainty::NothingStored), "store_failed");
        assert_eq!(code(Certainty::Unknown), "outcome_unknown");
    }
}

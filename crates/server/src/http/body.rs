//! Request bodies, read within their limit, their time and a memory budget: a body's bytes are
//! held in the budget as they arrive (all at once when the client announced its length), so a
//! burst of large requests is refused with 503 instead of exhausting memory.

use super::ApiError;
use crate::budget::Reserved;
use crate::Shared;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use std::time::Duration;

/// Which budget a body is read against.
#[derive(Clone, Copy)]
pub(super) enum Pool {
    /// The shared one (`[serve] queue_bytes_max`): requests already authenticated.
    Authenticated,
    /// HubSpot deliveries before their signature is checked (`[hubspot] unsigned_bytes_max`).
    Unsigned,
}

/// Why a body could not be read.
enum ReadFailure {
    TooLarge,
    Busy,
    Broken(String),
}

/// The length a request announced, if it announced one that parses.
pub(super) fn announced_bytes(headers: &HeaderMap) -> Option<usize> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Reads a body of at most `limit` bytes (`limit_name` says which setting) within
/// `body_read_timeout_ms`, holding its bytes in `pool`'s budget.
pub(super) async fn read_body(
    shared: &Shared,
    pool: Pool,
    body: Body,
    announced_bytes: Option<usize>,
    limit: usize,
    limit_name: &str,
) -> Result<(axum::body::Bytes, Reserved), ApiError> {
    use futures_util::StreamExt;
    let mut reserved = match pool {
        Pool::Authenticated => shared.budget.reserve(),
        Pool::Unsigned => shared.unsigned.reserve(),
    };
    let read = async {
        let mut bytes = Vec::new();
        let mut stream = body.into_data_stream();
        if let Some(announced) = announced_bytes {
            if announced > limit {
                return Err(ReadFailure::TooLarge);
            }
            if !reserved.grow(announced) {
                return Err(drain(&mut stream, limit).await);
            }
            bytes.reserve_exact(announced);
        }
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ReadFailure::Broken(e.to_string()))?;
            let total = bytes.len().saturating_add(chunk.len());
            if total > limit {
                return Err(ReadFailure::TooLarge);
            }
            if total > reserved.bytes() && !reserved.grow(total - reserved.bytes()) {
                return Err(drain(&mut stream, limit).await);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let ms = shared.config.body_read_timeout_ms;
    match tokio::time::timeout(Duration::from_millis(ms), read).await {
        Err(_) => Err(ApiError::BodyTimeout { ms }),
        Ok(Err(ReadFailure::TooLarge)) => {
            Err(ApiError::TooLarge(format!("the body is larger than {limit} bytes ({limit_name})")))
        }
        Ok(Err(ReadFailure::Busy)) => Err(match pool {
            Pool::Authenticated => busy(shared),
            Pool::Unsigned => busy_unsigned(shared),
        }),
        Ok(Err(ReadFailure::Broken(why))) => Err(ApiError::BadBody(format!("cannot read the body: {why}"))),
        Ok(Ok(bytes)) => Ok((bytes.into(), reserved)),
    }
}

/// Reads the rest of a body that will be refused for the budget, holding none of it, so that the
/// client (still sending) reads the 503 instead of a broken connection. At most `limit` bytes.
async fn drain(stream: &mut axum::body::BodyDataStream, limit: usize) -> ReadFailure {
    use futures_util::StreamExt;
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            break;
        }
    }
    ReadFailure::Busy
}

/// The memory budget is spent: 503, retry.
pub(super) fn busy(shared: &Shared) -> ApiError {
    ApiError::QueueFull(format!(
        "{} bytes of requests are in memory, the most this daemon holds ([serve] queue_bytes_max = {}); retry",
        shared.budget.used_bytes(),
        shared.budget.max_bytes()
    ))
}

/// The unsigned deliveries' budget is spent: 503 (HubSpot retries), and nothing else waits.
fn busy_unsigned(shared: &Shared) -> ApiError {
    ApiError::UnsignedFull(format!(
        "{} bytes of deliveries whose signature is not checked yet are being read, the most this daemon \
         reads at once ([hubspot] unsigned_bytes_max = {}); retry",
        shared.unsigned.used_bytes(),
        shared.unsigned.max_bytes()
    ))
}

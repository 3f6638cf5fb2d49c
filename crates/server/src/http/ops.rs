//! Operations: `GET /metrics` (Prometheus text), `GET /v1/sync` (the scheduled syncs) and `GET /readyz` (503 naming why, while the
//! writer cannot write or the daemon is shutting down; the store's words only to who has the
//! token).

use super::auth::authorized;
use super::{Answer, ApiError, SharedState};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

pub(super) async fn get_metrics(State(shared): SharedState) -> Response {
    let head = shared.live.head().seq;
    let body = shared.metrics.render(
        head,
        shared.budget.used_bytes(),
        (shared.unsigned.used_bytes(), shared.unsigned.max_bytes()),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The scheduled CRM syncs (`[sync]`): each one's period, state, runs, next start and last
/// outcome with its summary and reconciliation; `{}` when none is scheduled.
pub(super) async fn get_sync(State(shared): SharedState) -> Response {
    axum::Json(shared.syncs.to_json()).into_response()
}

pub(super) async fn get_ready(State(shared): SharedState, headers: HeaderMap) -> Answer {
    if let Some(why) = shared.failed.failure() {
        // Store error text is for the operator, not for whoever can reach the port.
        return Err(ApiError::WriterFailed(match authorized(&shared, &headers) {
            true => format!("the writer cannot write: {why}"),
            false => "not ready: the writer cannot write (details with the token)".into(),
        }));
    }
    if *shared.shutdown.borrow() {
        return Err(ApiError::ShuttingDown);
    }
    Ok("ready\n".into_response())
}

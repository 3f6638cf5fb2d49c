//! HubSpot: its webhook deliveries (`POST /v1/hooks/hubspot`, authenticated by their v3
//! signature, read against a budget of their own until it is checked), and the quarantine of
//! notifications that could not be admitted yet (`GET /v1/quarantine`, `POST .../retry`).

use super::body::{announced_bytes, busy, read_body, Pool};
use super::events::submit;
use super::{only_params, Answer, ApiError, SharedState};
use crate::hubspot;
use crate::writer::Work;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::IntoResponse;
use std::collections::HashMap;

/// Bytes of a retry's body, at most: it carries nothing.
const RETRY_BODY_BYTES_MAX: usize = 64 * 1024;
/// Who appends what HubSpot's signed deliveries carry (`Event::appended_by`).
pub const HOOK_NAME: &str = "hubspot-webhook";

pub(super) async fn post_hubspot(State(shared): SharedState, headers: HeaderMap, request: Request) -> Answer {
    let not_configured = || {
        ApiError::NotConfigured(
            "HubSpot webhooks need a [hubspot] section with app_secret in dealledger.toml".into(),
        )
    };
    let config = shared.hubspot.get().ok_or_else(not_configured)?;
    let app_secret = config.app_secret.as_deref().ok_or_else(not_configured)?;
    let path = request.uri().path_and_query().map_or("/v1/hooks/hubspot".to_string(), |p| p.to_string());
    let uri = match &config.public_url {
        Some(base) => format!("{base}{path}"),
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            format!("http://{host}{path}")
        }
    };
    let announced = announced_bytes(request.headers());
    let body = request.into_body();
    let limit = config.body_bytes_max;
    let (body, unsigned) =
        read_body(&shared, Pool::Unsigned, body, announced, limit, "[hubspot] body_bytes_max").await?;
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    hubspot::verify_v3(
        app_secret,
        Method::POST.as_str(),
        &uri,
        &body,
        header_text("x-hubspot-request-timestamp"),
        header_text("x-hubspot-signature-v3"),
        shared.clock.now(),
    )
    .map_err(|why| ApiError::BadSignature(why.to_string()))?;
    // Signed: from here the delivery is HubSpot's, and its bytes count against the shared
    // budget like any authenticated request's.
    let mut reserved = shared.budget.reserve();
    if !reserved.grow(body.len()) {
        return Err(busy(&shared));
    }
    drop(unsigned);
    let notifications = hubspot::parse_deliveries(&body)
        .map_err(|rejection| ApiError::Rejected { index: None, rejection })?;
    // A JSON tree of the body (about its size again) and one Notification each.
    let tree = body
        .len()
        .saturating_add(notifications.len().saturating_mul(std::mem::size_of::<hubspot::Notification>()));
    drop(body);
    if !reserved.grow(tree) {
        return Err(busy(&shared));
    }
    // Signed by HubSpot, not by a token of ours: the hook's own name.
    submit(&shared, Work::HubSpot(notifications), reserved, Some(HOOK_NAME.to_string())).await
}

/// The quarantined HubSpot notifications, oldest first.
pub(super) async fn get_quarantine(
    State(shared): SharedState,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    only_params(&query, &[])?;
    let quarantine = shared
        .quarantine
        .as_ref()
        .ok_or_else(|| ApiError::NotConfigured("no [hubspot] section: nothing is quarantined".into()))?;
    let quarantine = quarantine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(axum::Json(crate::quarantine::listing(&quarantine)).into_response())
}

/// Reads `[hubspot]` of dealledger.toml again (a stage mapping added since the start), then
/// retries every quarantined notification.
pub(super) async fn post_quarantine_retry(State(shared): SharedState, request: Request) -> Answer {
    let caller = super::auth::caller_name(request.extensions());
    // The body is not used; it is read (bounded) so the connection stays usable.
    let announced = announced_bytes(request.headers());
    let body = request.into_body();
    let limit_name = "the retry's body limit";
    let (_, reserved) =
        read_body(&shared, Pool::Authenticated, body, announced, RETRY_BODY_BYTES_MAX, limit_name).await?;
    if let Some(path) = &shared.config.config_path {
        let reread = dealledger_config::Config::read(path).map_err(|e| e.to_string()).and_then(|file| {
            crate::config::serve_config_from(&file, &shared.settings.pipeline).map_err(|e| e.to_string())
        });
        let hubspot = reread
            .map_err(ApiError::BadConfig)?
            .hubspot
            .ok_or_else(|| ApiError::BadConfig(format!("{}: no [hubspot] section", path.display())))?;
        shared.hubspot.set(hubspot);
    }
    submit(&shared, Work::RetryQuarantine, reserved, caller).await
}

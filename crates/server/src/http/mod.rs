//! The daemon's HTTP API, by resource: the doors (`auth`: tokens, sessions, Host, media
//! types), bodies within their budgets (`body`), events in and out (`events`: submission,
//! pages, the live tail), deals, reports and charts, what-ifs, HubSpot's hook and quarantine,
//! and operations (`ops`: metrics, readiness, readers' priority). Every error answer is an
//! [`ApiError`], counted once by [`count_errors`].

mod auth;
mod body;
mod deals;
mod error;
mod events;
mod hubspot;
mod ops;
mod read;
mod reports;
mod whatif;

use crate::config::Role;
use crate::Shared;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
pub use error::ApiError;
pub use reports::NOTE_HEADER;
use std::collections::HashMap;
use std::sync::Arc;

type SharedState = State<Arc<Shared>>;

/// A handler's answer: what it sends, or the error it answers with.
type Answer = Result<Response, ApiError>;

/// Every endpoint behind the tokens, with the role it needs: the one list the router is built
/// from, so an endpoint cannot be added without saying who may use it (and the role test walks
/// it: `dealledger_server::routes`).
fn routes() -> Vec<(&'static str, Method, Role, MethodRouter<Arc<Shared>>)> {
    vec![
        ("/v1/events", Method::POST, Role::Write, post(events::post_events)),
        ("/v1/events", Method::GET, Role::Read, get(events::get_events)),
        ("/v1/deals/{id}", Method::GET, Role::Read, get(deals::get_deal)),
        ("/v1/deals/{id}/timeline", Method::GET, Role::Read, get(deals::get_deal_timeline)),
        ("/v1/deals/{id}/proof", Method::GET, Role::Read, get(deals::get_deal_proof)),
        ("/v1/reports/{name}", Method::GET, Role::Read, get(reports::get_report)),
        ("/v1/charts/{name}", Method::GET, Role::Read, get(reports::get_chart)),
        ("/v1/charts/deal/{id}", Method::GET, Role::Read, get(deals::get_deal_chart)),
        ("/v1/stream", Method::GET, Role::Read, get(events::get_stream)),
        ("/v1/whatif", Method::GET, Role::Read, get(whatif::get_whatif)),
        ("/metrics", Method::GET, Role::Read, get(ops::get_metrics)),
        ("/v1/sync", Method::GET, Role::Read, get(ops::get_sync)),
        ("/v1/quarantine", Method::GET, Role::Read, get(hubspot::get_quarantine)),
        ("/v1/quarantine/retry", Method::POST, Role::Admin, post(hubspot::post_quarantine_retry)),
    ]
}

/// The endpoints behind the tokens, as (path, method, role needed).
pub fn route_roles() -> Vec<(&'static str, &'static str, Role)> {
    routes().into_iter().map(|(path, method, role, _)| (path, method_name(&method), role)).collect()
}

fn method_name(method: &Method) -> &'static str {
    if method == Method::POST {
        "POST"
    } else {
        "GET"
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    let mut by_path: Vec<(&'static str, MethodRouter<Arc<Shared>>)> = Vec::new();
    for (path, _, role, handler) in routes() {
        let guarded = handler.route_layer(from_fn_with_state((shared.clone(), role), auth::require_role));
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(guarded),
            None => by_path.push((path, guarded)),
        }
    }
    let authenticated =
        by_path.into_iter().fold(Router::new(), |router, (path, methods)| router.route(path, methods));
    Router::new()
        .merge(authenticated)
        // HubSpot cannot send our token: its deliveries are authenticated by their signature.
        .route("/v1/hooks/hubspot", post(hubspot::post_hubspot))
        // The dashboard's page, script and style hold no data: every figure it shows comes
        // from the endpoints above, behind the token.
        .route("/", get(crate::dashboard::index))
        .route("/assets/app.js", get(crate::dashboard::script))
        .route("/assets/app.css", get(crate::dashboard::style))
        .route("/v1/session", post(auth::post_session).get(auth::get_session))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ops::get_ready))
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn(auth::require_json_posts))
        .layer(from_fn_with_state(shared.clone(), auth::require_own_host))
        // Outermost: it sees every answer, the doors' refusals too.
        .layer(from_fn_with_state(shared.clone(), count_errors))
        .with_state(shared)
}

/// Counts every error answer once, by its code (`dealledger_rejects_total{reason}`).
async fn count_errors(State(shared): SharedState, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(error::Counted(code)) = response.extensions().get::<error::Counted>() {
        shared.metrics.reject(code);
    }
    response
}

/// Refuses a parameter the endpoint does not take.
fn only_params(query: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match query.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::bad_param(
            unknown.as_str(),
            format!("unknown parameter (this endpoint takes {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// A whole-number parameter, or its default.
fn number(query: &HashMap<String, String>, name: &str, default: u64) -> Result<u64, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(text) => {
            text.parse().map_err(|_| ApiError::bad_param(name, format!("`{text}` is not a whole number")))
        }
    }
}

/// A parameter a report, a view or a what-if refused.
impl From<dealledger_reports::ParamError> for ApiError {
    fn from(e: dealledger_reports::ParamError) -> ApiError {
        ApiError::bad_param(e.param, format!("`{}`: {}", e.value, e.reason))
    }
}

/// Sets `key` of a JSON object built by `json!` (a no-op on anything else, which it never is).
fn set(body: &mut serde_json::Value, key: &str, value: impl Into<serde_json::Value>) {
    if let Some(object) = body.as_object_mut() {
        object.insert(key.to_string(), value.into());
    }
}

/// JSON text already rendered, sent as JSON.
fn json_text(body: String) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

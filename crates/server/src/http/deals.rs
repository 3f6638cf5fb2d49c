//! One deal: its stored events (`GET /v1/deals/{id}`), where each sits in the hash chain
//! (`/proof`), and the deal as a view folds it (`/timeline`, and its chart).

use super::read::{blocking, caught_up};
use super::reports::SVG_TYPE;
use super::{only_params, Answer, ApiError, SharedState};
use crate::Shared;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dealledger_events::{stored_event_json, Currency, StoredEvent};
use dealledger_log::block::Header;
use dealledger_projections::{Timeline, View};
use dealledger_reports::Params;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// Deal `id`'s stored events, each with the header of its block, read on a reader thread by the
/// timeline's index (its lock held only to copy the seqs), and the deal's currency.
async fn deal_events(
    shared: &Arc<Shared>,
    id: &str,
) -> Result<(Vec<(StoredEvent, Header)>, Currency), ApiError> {
    let unknown = || ApiError::UnknownDeal(format!("deal `{id}` is not in the ledger"));
    if dealledger_events::DealId::parse(id).is_err() {
        return Err(unknown());
    }
    caught_up(shared).await?;
    let task_shared = shared.clone();
    let wanted = id.to_string();
    let read = move || {
        let log = task_shared.live.reader();
        let (seqs, offsets, currency) = {
            let timeline = task_shared.live.read();
            let Some(deal) = timeline.deal(&wanted) else { return Ok(None) };
            (deal.seqs().to_vec(), deal.offsets().to_vec(), deal.currency)
        };
        let mut events = Vec::with_capacity(seqs.len());
        log.read_deal_in_blocks(&wanted, &seqs, &offsets, |stored, header| {
            events.push((stored, *header));
            Ok(())
        })
        .map_err(|e| ApiError::ReadFailed(e.to_string()))?;
        Ok(Some((events, currency)))
    };
    blocking(read, ApiError::ReadFailed).await?.ok_or_else(unknown)
}

pub(super) async fn get_deal(State(shared): SharedState, Path(id): Path<String>) -> Answer {
    let (events, currency) = deal_events(&shared, &id).await?;
    let parts: Vec<String> = events.iter().map(|(stored, _)| stored_event_json(stored, currency)).collect();
    Ok(super::json_text(format!("[{}]\n", parts.join(","))))
}

/// `GET /v1/deals/{id}/proof`: each of the deal's events with the block that holds it (its first
/// and last seq) and the chain hashes before and after that block: where the event sits in the
/// hash chain, which `audit verify` recomputes. What the dashboard's deal page shows a click away.
pub(super) async fn get_deal_proof(State(shared): SharedState, Path(id): Path<String>) -> Answer {
    let (events, _) = deal_events(&shared, &id).await?;
    let hex = |hash: &[u8; 32]| hash.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let proof: Vec<_> = events
        .iter()
        .map(|(stored, block)| {
            json!({
                "seq": stored.seq,
                "type": stored.event.body.kind().as_str(),
                "block_first_seq": block.first_seq,
                "block_last_seq": block.last_seq(),
                "prev_chain": hex(&block.prev_chain),
                "chain": hex(&block.chain),
            })
        })
        .collect();
    Ok(axum::Json(json!({"deal": id, "events": proof})).into_response())
}

/// `GET /v1/deals/{id}/timeline?as_of=&known_at=`: the deal as the view folds it (stage visits,
/// touches, changes), what the dashboard's deal page lists.
pub(super) async fn get_deal_timeline(
    State(shared): SharedState,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    deal_view_answer(&shared, &id, &query, |timeline, view| {
        dealledger_reports::deal_history::timeline_json(timeline, &id, view)
            .map(|body| axum::Json(body).into_response())
    })
    .await
}

/// `GET /v1/charts/deal/{id}?as_of=&known_at=`: the deal on a time axis.
pub(super) async fn get_deal_chart(
    State(shared): SharedState,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    deal_view_answer(&shared, &id, &query, |timeline, view| {
        dealledger_reports::deal_history::timeline_chart(timeline, &id, view)
            .map(|chart| ([(header::CONTENT_TYPE, SVG_TYPE)], chart.svg()).into_response())
    })
    .await
}

/// One deal as a view (`as_of`, `known_at`) sees it, answered by `answer` once the timeline has
/// folded every durable event; 404 when the view does not see the deal.
async fn deal_view_answer(
    shared: &Shared,
    id: &str,
    query: &HashMap<String, String>,
    answer: impl FnOnce(&Timeline, View) -> Option<Response>,
) -> Answer {
    only_params(query, &["as_of", "known_at"])?;
    let params = Params::from_query(|name| query.get(name).cloned())?;
    let view = dealledger_reports::query::view_of(&params, shared.clock.now())?;
    caught_up(shared).await?;
    let timeline = shared.live.read();
    answer(&timeline, view)
        .ok_or_else(|| ApiError::UnknownDeal(format!("deal `{id}` is not in the ledger as of then")))
}

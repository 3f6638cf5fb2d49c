//! Records with a valid checksum but an impossible meaning are corruption, named by seq: never
//! a panic, in the writer's rebuild or in any projection's. The blocks here are sealed by the
//! log's own writer (so every checksum and chain is right) around records no admission would
//! have let in.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test code: a panic is a failing test"
)]

use dealledger_events::{Amount, Body, Channel, Currency, DealId, Direction, Event, Pipeline, Timestamp};
use dealledger_log::{Ledger, Log, LogError, MemStore};
use dealledger_projections::{rebuild, ReplayError, Timeline};
use std::sync::Arc;

fn event(deal: &str, body: Body) -> Event {
    let at = Timestamp::parse_rfc3339("2024-01-01T00:00:00Z").unwrap();
    Event {
        deal: DealId::parse(deal).unwrap(),
        at,
        recorded_at: Some(at),
        appended_at: Some(at),
        appended_by: None,
        actor: None,
        source_id: None,
        body,
    }
}

fn opened(stage: Option<&str>, amount: Amount) -> Body {
    Body::Opened {
        owner: "o".into(),
        amount,
        currency: Currency::USD,
        stage: stage.map(str::to_string),
        close_date: None,
        name: None,
    }
}

fn touch() -> Body {
    Body::Touch { channel: Channel::Call, direction: Direction::Outbound, minutes: None, contact: None }
}

/// A store holding `records` (version, event) as one sealed block.
fn store_with(records: &[(u32, Event)]) -> Arc<MemStore> {
    let store = Arc::new(MemStore::default());
    let mut log = Log::open(store.clone()).unwrap();
    let mut writer = log.block_writer();
    for (version, event) in records {
        writer.push(*version, event);
    }
    log.append(writer.finish()).unwrap();
    store
}

/// Opening the writer and rebuilding the timeline both name `seq` as corrupt.
fn check_corrupt_at(records: &[(u32, Event)], seq: u64) {
    let store = store_with(records);
    match Ledger::open(store.clone(), Pipeline::default()) {
        Err(LogError::Corrupt { seq: at, .. }) => assert_eq!(at, seq),
        Err(other) => panic!("expected corruption at {seq}, got {other}"),
        Ok(_) => panic!("expected corruption at {seq}, the ledger opened"),
    }
    let log = Log::open(store).unwrap();
    match rebuild::<Timeline, _>(&log) {
        Err(ReplayError::Log(LogError::Corrupt { seq: at, .. })) => assert_eq!(at, seq),
        Err(other) => panic!("expected corruption at {seq}, got {other}"),
        Ok(_) => panic!("expected corruption at {seq}, the timeline was rebuilt"),
    }
}

#[test]
fn an_opened_without_its_stage_is_corrupt() {
    check_corrupt_at(&[(1, event("a", opened(None, Amount::Minor(5))))], 1);
}

#[test]
fn an_amount_not_in_minor_units_is_corrupt() {
    let written = Amount::Written(dealledger_events::event::DecimalRepr { mantissa: 15, scale: 1 });
    check_corrupt_at(&[(1, event("a", opened(Some("prospecting"), written)))], 1);
}

#[test]
fn an_event_of_a_deal_never_opened_is_corrupt() {
    check_corrupt_at(
        &[(1, event("a", opened(Some("prospecting"), Amount::Minor(5)))), (2, event("b", touch()))],
        2,
    );
}

#[test]
fn a_deal_opened_twice_is_corrupt() {
    let open = event("a", opened(Some("prospecting"), Amount::Minor(5)));
    check_corrupt_at(&[(1, open.clone()), (1, open)], 2);
}

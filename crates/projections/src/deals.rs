//! `deals`: every deal's current state (owner, amount, stage, status), in business time.
//!
//! Each field keeps the (at, seq) of the event that set it and only a later (at, seq) replaces
//! it, so a backdated `amount_changed` does not overwrite a newer amount. Status and stage
//! depend on the whole lifecycle (a requalified deal returns to the stage it was in), so the
//! lifecycle is kept in (at, seq) order and folded when asked.

use dealledger_events::{BodyRef, Currency, EventRef, Pipeline, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::Projection;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DealStatus {
    Open,
    Won,
    Lost,
    Disqualified,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Life {
    Opened(String),
    Moved(String),
    Won,
    Lost,
    Disqualified,
    Requalified(Option<String>),
}

/// A value and the (at, seq) of the event that set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Latest<T> {
    value: T,
    at: Timestamp,
    seq: u64,
}

impl<T> Latest<T> {
    fn offer(&mut self, value: T, at: Timestamp, seq: u64) {
        if (at, seq) > (self.at, self.seq) {
            *self = Latest { value, at, seq };
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealState {
    currency: Currency,
    owner: Latest<String>,
    amount: Latest<i64>,
    /// The won event's amount, when it named one.
    won_amount: Option<i64>,
    life: Vec<(Timestamp, u64, Life)>,
}

impl DealState {
    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn owner(&self) -> &str {
        &self.owner.value
    }

    /// The latest amount in minor units (the won amount for a deal won with one).
    pub fn amount_minor(&self) -> i64 {
        match (self.status().0, self.won_amount) {
            (DealStatus::Won, Some(amount)) => amount,
            _ => self.amount.value,
        }
    }

    /// The status now and the stage the deal is in (or was in when it closed).
    pub fn status(&self) -> (DealStatus, &str) {
        let mut status = DealStatus::Open;
        let mut stage = "";
        for (_, _, life) in &self.life {
            match life {
                Life::Opened(s) | Life::Moved(s) => {
                    stage = s;
                    status = DealStatus::Open;
                }
                Life::Requalified(s) => {
                    if let Some(s) = s {
                        stage = s;
                    }
                    status = DealStatus::Open;
                }
                Life::Won => status = DealStatus::Won,
                Life::Lost => status = DealStatus::Lost,
                Life::Disqualified => status = DealStatus::Disqualified,
            }
        }
        (status, stage)
    }
}

/// Every deal by id (ordered, so output is stable).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deals {
    deals: BTreeMap<String, DealState>,
}

impl Projection for Deals {
    const NAME: &'static str = "deals";
    const VERSION: u32 = 1;

    fn apply(&mut self, event: &EventRef<'_>) {
        let (at, seq) = (event.at, event.seq);
        if let BodyRef::Opened { owner, amount, currency, stage, .. } = event.body {
            let stage = stage.expect("stored opened events name their stage");
            self.deals.insert(
                event.deal.to_string(),
                DealState {
                    currency,
                    owner: Latest { value: owner.to_string(), at, seq },
                    amount: Latest { value: amount.minor(), at, seq },
                    won_amount: None,
                    life: vec![(at, seq, Life::Opened(stage.to_string()))],
                },
            );
            return;
        }
        let deal = self.deals.get_mut(event.deal).expect("stored events follow their deal's opened");
        let life = match event.body {
            BodyRef::StageMoved { to } => Life::Moved(to.to_string()),
            BodyRef::Won { amount } => {
                deal.won_amount = amount.map(|a| a.minor());
                Life::Won
            }
            BodyRef::Lost { .. } => Life::Lost,
            BodyRef::Disqualified { .. } => Life::Disqualified,
            BodyRef::Requalified { stage, .. } => Life::Requalified(stage.map(str::to_string)),
            BodyRef::AmountChanged { amount } => {
                deal.amount.offer(amount.minor(), at, seq);
                return;
            }
            BodyRef::OwnerChanged { owner } => {
                if (at, seq) > (deal.owner.at, deal.owner.seq) {
                    deal.owner = Latest { value: owner.to_string(), at, seq };
                }
                return;
            }
            _ => return,
        };
        let position = deal.life.partition_point(|(a, s, _)| (*a, *s) <= (at, seq));
        deal.life.insert(position, (at, seq, life));
    }
}

/// One row of the pipeline summary: open deals in a stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageRow {
    pub stage: String,
    pub deals: u64,
    pub amount_minor: i64,
    /// Sum of amount x probability, in minor units x basis points (exact).
    pub weighted_minor_bp: i128,
}

/// Open pipeline by stage plus closed counts, for one currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineSummary {
    pub currency: Currency,
    pub stages: Vec<StageRow>,
    pub won: u64,
    pub lost: u64,
    pub disqualified: u64,
}

impl Deals {
    pub fn len(&self) -> usize {
        self.deals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deals.is_empty()
    }

    pub fn get(&self, deal: &str) -> Option<&DealState> {
        self.deals.get(deal)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &DealState)> {
        self.deals.iter().map(|(id, state)| (id.as_str(), state))
    }

    /// The current pipeline, one summary per currency (ordered by code). Every pipeline stage
    /// is listed; open deals in a stage the pipeline no longer has are listed after it.
    pub fn pipeline_summary(&self, pipeline: &Pipeline) -> Vec<PipelineSummary> {
        let mut by_currency: BTreeMap<Currency, PipelineSummary> = BTreeMap::new();
        for state in self.deals.values() {
            let summary = by_currency.entry(state.currency).or_insert_with(|| PipelineSummary {
                currency: state.currency,
                stages: pipeline
                    .stages()
                    .iter()
                    .map(|s| StageRow {
                        stage: s.name.clone(),
                        deals: 0,
                        amount_minor: 0,
                        weighted_minor_bp: 0,
                    })
                    .collect(),
                won: 0,
                lost: 0,
                disqualified: 0,
            });
            let (status, stage) = state.status();
            match status {
                DealStatus::Won => summary.won += 1,
                DealStatus::Lost => summary.lost += 1,
                DealStatus::Disqualified => summary.disqualified += 1,
                DealStatus::Open => {
                    let probability_bp =
                        pipeline.index(stage).map_or(0, |i| pipeline.stages()[i].probability_bp);
                    let row = match summary.stages.iter_mut().position(|row| row.stage == stage) {
                        Some(i) => &mut summary.stages[i],
                        None => {
                            summary.stages.push(StageRow {
                                stage: stage.to_string(),
                                deals: 0,
                                amount_minor: 0,
                                weighted_minor_bp: 0,
                            });
                            summary.stages.last_mut().expect("pushed")
                        }
                    };
                    row.deals += 1;
                    row.amount_minor += state.amount.value;
                    row.weighted_minor_bp += i128::from(state.amount.value) * i128::from(probability_bp);
                }
            }
        }
        by_currency.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dealledger_events::{parse_line, BodyRef, Deals as Rules, EventRef, Timestamp};

    /// Admits the lines in order (as the ledger would) and folds them.
    fn fold(lines: &[&str]) -> Deals {
        let mut rules = Rules::default();
        let pipeline = Pipeline::default();
        let mut deals = Deals::default();
        for (i, line) in lines.iter().enumerate() {
            let mut s = parse_line(line).unwrap();
            let seq = i as u64 + 1;
            let version = rules.admit(&mut s, seq, Timestamp(0), &pipeline).unwrap();
            let e = &s.event;
            deals.apply(&EventRef {
                seq,
                version,
                deal: e.deal.as_str(),
                at: e.at,
                recorded_at: e.recorded_at.unwrap(),
                actor: e.actor.as_deref(),
                source_id: e.source_id.as_deref(),
                body: BodyRef::of(&e.body),
            });
        }
        deals
    }

    #[test]
    fn backdated_events_fold_in_business_time() {
        let deals = fold(&[
            r#"{"deal":"a","type":"opened","at":"2024-01-01T00:00:00Z","owner":"o","amount":100}"#,
            r#"{"deal":"a","type":"amount_changed","at":"2024-01-05T00:00:00Z","amount":300}"#,
            r#"{"deal":"a","type":"won","at":"2024-01-09T00:00:00Z"}"#,
            // Late-logged, earlier in business time than both.
            r#"{"deal":"a","type":"amount_changed","at":"2024-01-03T00:00:00Z","amount":200}"#,
            r#"{"deal":"a","type":"stage_moved","at":"2024-01-04T00:00:00Z","to":"quote"}"#,
        ]);
        let a = deals.get("a").unwrap();
        assert_eq!(a.status(), (DealStatus::Won, "quote"));
        assert_eq!(a.amount_minor(), 30_000);
    }

    #[test]
    fn requalified_deals_return_to_their_stage() {
        let deals = fold(&[
            r#"{"deal":"a","type":"opened","at":"2024-01-01T00:00:00Z","owner":"o","amount":100,"stage":"quote"}"#,
            r#"{"deal":"a","type":"disqualified","at":"2024-01-05T00:00:00Z","reason":"no_budget"}"#,
            r#"{"deal":"a","type":"requalified","at":"2024-02-05T00:00:00Z"}"#,
            r#"{"deal":"b","type":"opened","at":"2024-01-01T00:00:00Z","owner":"o","amount":50}"#,
            r#"{"deal":"b","type":"lost","at":"2024-01-02T00:00:00Z","reason":"price"}"#,
            r#"{"deal":"c","type":"opened","at":"2024-01-01T00:00:00Z","owner":"o","amount":10,"currency":"EUR"}"#,
        ]);
        assert_eq!(deals.get("a").unwrap().status(), (DealStatus::Open, "quote"));
        let summary = deals.pipeline_summary(&Pipeline::default());
        assert_eq!(summary.len(), 2);
        assert_eq!(summary[0].currency.as_str(), "EUR");
        let usd = &summary[1];
        assert_eq!((usd.won, usd.lost, usd.disqualified), (0, 1, 0));
        let quote = &usd.stages[2];
        assert_eq!(
            (quote.stage.as_str(), quote.deals, quote.amount_minor, quote.weighted_minor_bp),
            ("quote", 1, 10_000, 10_000 * 5000)
        );
    }
}

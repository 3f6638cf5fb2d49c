//! Seeded synthetic deal histories: the demo's data, and the input of tests and benchmarks.
//!
//! Boundary: pure; depends only on the event contract. The same (seed, deals) gives the same
//! events, byte for byte, on every machine: each deal draws from its own ChaCha8 stream keyed by
//! (seed, deal index), and output is ordered by (recorded_at, generation order).
//!
//! A history follows the sales process of docs/events.md: deals open across two years, move
//! through the pipeline, get touches of both directions (calls and meetings with minutes, emails
//! without), collect business-case fields, and end won, lost, disqualified (some requalified
//! later) or still open. One touch in ten is logged late (`recorded_at` hours after `at`), as
//! reps do. Deals the buyer loses interest in go dark: their inbound touches stop.
//!
//! Events are emitted in recorded order, so late-logged touches arrive after later events of the
//! same deal: exactly the backdated appends the ledger must accept.

use dealledger_events::{
    Amount, Body, Channel, Currency, Date, DealId, Direction, DqReason, Event, FieldValue, Timestamp,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

const HOUR_MICROS: i64 = 3_600_000_000;
const DAY_MICROS: i64 = 24 * HOUR_MICROS;

#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    pub deals: u64,
    /// Deals open uniformly in [start, start + window_days); nothing happens after `end`.
    pub start: Timestamp,
    pub window_days: i64,
    pub end: Timestamp,
}

impl Config {
    /// Two years of deals opened from 2024-01-01 on; the history stops at 2026-01-01, so the
    /// deals of the last weeks are still open.
    pub fn new(seed: u64, deals: u64) -> Config {
        let start = Timestamp::parse_rfc3339("2024-01-01T00:00:00Z").expect("valid");
        Config {
            seed,
            deals,
            start,
            window_days: 730,
            end: Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").expect("valid"),
        }
    }
}

/// Average events per generated deal (measured: see the unit test), for sizing benchmarks.
pub const EVENTS_PER_DEAL_APPROX: u64 = 21;

const STAGES: [&str; 4] = ["prospecting", "qualifying", "quote", "closing"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Won,
    Lost,
    Disqualified,
    /// Disqualified, then requalified and won.
    Requalified,
}

struct DealStory<'a> {
    rng: ChaCha8Rng,
    deal: DealId,
    owner: String,
    currency: Currency,
    contacts: Vec<String>,
    events: Vec<Event>,
    end: Timestamp,
    touch_counter: u32,
    _config: &'a Config,
}

impl DealStory<'_> {
    fn push(&mut self, at: Timestamp, body: Body) -> bool {
        // CRMs record whole seconds (HubSpot milliseconds): so does the generator.
        let at = Timestamp(at.0 - at.0.rem_euclid(1_000_000));
        if at > self.end {
            return false;
        }
        // Reps log one touch in ten hours or days late; everything else lands within a minute.
        let late = matches!(body, Body::Touch { .. }) && self.rng.gen_bool(0.1);
        // The opening is recorded as it happens: every other event of the deal is at or after
        // it in business time, so it is also at or after it in recorded order.
        let delay = if matches!(body, Body::Opened { .. }) {
            0
        } else if late {
            self.rng.gen_range(3_600..72 * 3_600) * 1_000_000
        } else {
            self.rng.gen_range(1..60) * 1_000_000
        };
        let source_id = match &body {
            Body::Touch { channel: Channel::Email, .. } => {
                self.touch_counter += 1;
                Some(format!("mail:{}:{}", self.deal, self.touch_counter))
            }
            _ => None,
        };
        self.events.push(Event {
            deal: self.deal.clone(),
            at,
            recorded_at: Some(at.plus_micros(delay)),
            appended_at: None,
            appended_by: None,
            actor: None,
            source_id,
            body,
        });
        true
    }

    fn touch(&mut self, at: Timestamp, direction: Direction) -> bool {
        let roll: f64 = self.rng.gen();
        let (channel, minutes) = match direction {
            Direction::Outbound if roll < 0.45 => (Channel::Email, None),
            Direction::Outbound if roll < 0.80 => (Channel::Call, Some(self.rng.gen_range(3..45))),
            Direction::Outbound if roll < 0.90 => (Channel::Social, None),
            Direction::Outbound => {
                (Channel::Meeting, Some(*[30, 45, 60].get(self.rng.gen_range(0..3)).expect("in range")))
            }
            Direction::Inbound if roll < 0.55 => (Channel::Email, None),
            Direction::Inbound if roll < 0.75 => (Channel::Call, Some(self.rng.gen_range(5..40))),
            Direction::Inbound if roll < 0.92 => {
                (Channel::Meeting, Some(*[30, 60].get(self.rng.gen_range(0..2)).expect("in range")))
            }
            Direction::Inbound => (Channel::Demo, Some(self.rng.gen_range(45..91))),
        };
        let contact = Some(self.contacts[self.rng.gen_range(0..self.contacts.len())].clone());
        self.push(at, Body::Touch { channel, direction, minutes, contact })
    }

    /// Touches over a stage visit of `days`; returns false once past the end of history.
    fn touches(&mut self, from: Timestamp, days: i64, engaged: bool) -> bool {
        let outbound = self.rng.gen_range(1..=3 + days as u32 / 4);
        let reply_rate = if engaged { 0.65 } else { 0.08 };
        let mut times: Vec<i64> =
            (0..outbound).map(|_| self.rng.gen_range(0..days.max(1) * DAY_MICROS)).collect();
        times.sort_unstable();
        for offset in times {
            let at = from.plus_micros(offset);
            if !self.touch(at, Direction::Outbound) {
                return false;
            }
            if self.rng.gen_bool(reply_rate) {
                let reply = at.plus_micros(self.rng.gen_range(HOUR_MICROS..48 * HOUR_MICROS));
                if !self.touch(reply, Direction::Inbound) {
                    return false;
                }
            }
        }
        true
    }
}

fn deal_rng(seed: u64, index: u64) -> ChaCha8Rng {
    // SplitMix64 of (seed, index): independent streams, stable across rand versions.
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

fn story(config: &Config, index: u64, opened_at: Timestamp, owners: u64) -> Vec<Event> {
    let mut rng = deal_rng(config.seed, index);
    let deal = DealId::parse(&format!("D-{:07}", index + 1)).expect("valid id");
    let owner = format!("rep-{:02}", rng.gen_range(0..owners) + 1);
    let currency = if rng.gen_bool(0.1) { Currency::parse("EUR").expect("valid") } else { Currency::USD };
    let contacts = (0..rng.gen_range(1..=4))
        .map(|c| format!("contact-{c}@{}.example", deal.as_str().to_lowercase()))
        .collect();
    let fate = match rng.gen_range(0..100) {
        0..=27 => Fate::Won,
        28..=59 => Fate::Lost,
        60..=89 => Fate::Disqualified,
        _ => Fate::Requalified,
    };
    let mut s = DealStory {
        rng,
        deal,
        owner,
        currency,
        contacts,
        events: Vec::new(),
        end: config.end,
        touch_counter: 0,
        _config: config,
    };
    let opening = s.open(index, opened_at);
    // Where the deal ends: the stage at which it is lost or disqualified.
    let exit_stage = match fate {
        Fate::Won => STAGES.len(),
        Fate::Lost => s.rng.gen_range(1..STAGES.len()),
        Fate::Disqualified | Fate::Requalified => s.rng.gen_range(0..2),
    };
    let mut walk = Walk { at: opened_at, stage: opening.stage, requalified: false };
    // Every step returns false once past the end of history: the story stops there.
    while s.visit(&mut walk, fate, exit_stage, owners, &opening) {}
    s.events
}

/// The opening's figures that later events refer to.
struct Opening {
    /// Whole units, before the currency's exponent.
    amount_units: i64,
    exponent: i64,
    close_date: Date,
    stage: usize,
}

/// Where a deal's story stands.
struct Walk {
    at: Timestamp,
    stage: usize,
    requalified: bool,
}

impl DealStory<'_> {
    /// The opening: an amount of 5,000 to 250,000 in hundreds (skewed small), the first or
    /// second stage, a close date 30 to 120 days out.
    fn open(&mut self, index: u64, opened_at: Timestamp) -> Opening {
        let amount_units = (5_000.0 * (50f64).powf(self.rng.gen::<f64>())) as i64 / 100 * 100;
        let exponent = 10i64.pow(self.currency.exponent());
        let stage = if self.rng.gen_bool(0.2) { 1 } else { 0 };
        let close_date = Date((opened_at.0 / DAY_MICROS) as i32 + self.rng.gen_range(30..120));
        let owner = self.owner.clone();
        self.push(
            opened_at,
            Body::Opened {
                owner,
                amount: Amount::Minor(amount_units * exponent),
                currency: self.currency,
                stage: Some(STAGES[stage].to_string()),
                close_date: Some(close_date),
                name: Some(format!("Synthetic deal {}", index + 1)),
            },
        );
        Opening { amount_units, exponent, close_date, stage }
    }

    /// One stage visit: its touches and fields, the changes between visits, then the deal's
    /// end or the next stage. False when the story is over.
    fn visit(
        &mut self,
        walk: &mut Walk,
        fate: Fate,
        exit_stage: usize,
        owners: u64,
        opening: &Opening,
    ) -> bool {
        let days = 2 + (-(1.0 - self.rng.gen::<f64>()).ln() * 12.0) as i64;
        let engaged = match fate {
            Fate::Won => true,
            Fate::Requalified => walk.requalified,
            _ => walk.stage < exit_stage && self.rng.gen_bool(0.7),
        };
        if !self.touches(walk.at, days, engaged) || !self.business_fields(walk, days, engaged) {
            return false;
        }
        walk.at = walk.at.plus_micros(days * DAY_MICROS);
        if !self.drift(walk, owners, opening) {
            return false;
        }
        let ending = walk.stage >= exit_stage.min(STAGES.len() - 1)
            && !(fate == Fate::Requalified && walk.requalified && walk.stage < 3);
        if ending {
            return self.end_visit(walk, fate);
        }
        walk.stage += 1;
        if walk.stage >= STAGES.len() {
            walk.stage = STAGES.len() - 1;
            return true;
        }
        self.push(walk.at, Body::StageMoved { to: STAGES[walk.stage].to_string() })
    }

    /// Business-case fields arrive during qualifying and quote for deals that are going well.
    fn business_fields(&mut self, walk: &Walk, days: i64, engaged: bool) -> bool {
        if !engaged || !(walk.stage == 1 || walk.stage == 2) {
            return true;
        }
        let fields: &[(&str, FieldValue)] = if walk.stage == 1 {
            &[
                ("budget_confirmed", FieldValue::Bool(true)),
                ("decision_maker", FieldValue::Text("VP Sales".into())),
            ]
        } else {
            &[
                ("compelling_event", FieldValue::Text("renewal deadline".into())),
                ("mutual_plan", FieldValue::Bool(true)),
            ]
        };
        for (field, value) in fields {
            if self.rng.gen_bool(0.75) {
                let when = walk.at.plus_micros(self.rng.gen_range(0..days * DAY_MICROS));
                if !self.push(when, Body::FieldSet { field: field.to_string(), value: value.clone() }) {
                    return false;
                }
            }
        }
        true
    }

    /// Between visits: now and then a new owner, a new amount in quote, a slipped close date.
    fn drift(&mut self, walk: &Walk, owners: u64, opening: &Opening) -> bool {
        let at = walk.at;
        if self.rng.gen_bool(0.03) {
            let owner = format!("rep-{:02}", self.rng.gen_range(0..owners) + 1);
            if owner != self.owner && !self.push(at, Body::OwnerChanged { owner: owner.clone() }) {
                return false;
            }
            self.owner = owner;
        }
        if walk.stage == 2 && self.rng.gen_bool(0.3) {
            let amount = opening.amount_units * self.rng.gen_range(80..=120) / 100 / 100 * 100;
            let body = Body::AmountChanged { amount: Amount::Minor(amount * opening.exponent) };
            if !self.push(at.plus_micros(-HOUR_MICROS), body) {
                return false;
            }
        }
        if self.rng.gen_bool(0.15) {
            let slipped = Date(opening.close_date.0 + self.rng.gen_range(7..60));
            if !self.push(at.plus_micros(-2 * HOUR_MICROS), Body::CloseDateChanged { close_date: slipped }) {
                return false;
            }
        }
        true
    }

    /// The deal's end as its fate says; a deal to be requalified is disqualified first, then
    /// requalified and walked on (true), any other ends the story (false).
    fn end_visit(&mut self, walk: &mut Walk, fate: Fate) -> bool {
        let body = match fate {
            Fate::Won => Body::Won { amount: None },
            Fate::Requalified if walk.requalified => Body::Won { amount: None },
            Fate::Lost => Body::Lost {
                reason: ["price", "competitor", "no decision", "timing"][self.rng.gen_range(0..4)]
                    .to_string(),
                note: None,
            },
            Fate::Disqualified | Fate::Requalified => Body::Disqualified {
                reason: [DqReason::GoneDark, DqReason::NoBudget, DqReason::NoDecisionMaker, DqReason::BadFit]
                    [self.rng.gen_range(0..4)],
                note: None,
            },
        };
        if !self.push(walk.at, body) {
            return false;
        }
        if fate == Fate::Requalified && !walk.requalified {
            walk.requalified = true;
            walk.at = walk.at.plus_micros(self.rng.gen_range(20..60) * DAY_MICROS);
            return self.push(walk.at, Body::Requalified { stage: None, note: Some("budget back".into()) });
        }
        false
    }
}

/// Generates the history and hands each event to `emit` in recorded order.
pub fn generate(config: &Config, mut emit: impl FnMut(&Event)) {
    let owners = (config.deals / 40).clamp(3, 50);
    let mut opened: Vec<Timestamp> = {
        let mut rng = deal_rng(config.seed, u64::MAX);
        (0..config.deals)
            .map(|_| config.start.plus_micros(rng.gen_range(0..config.window_days * DAY_MICROS)))
            .collect()
    };
    opened.sort_unstable();
    // Min-heap on (recorded_at, generation order). A later deal's events are all recorded at or
    // after its opening, so everything at or before that instant can be emitted: memory stays
    // bounded by the deals in flight.
    let mut heap: BinaryHeap<Reverse<(Timestamp, u64, usize)>> = BinaryHeap::new();
    let mut slots: Vec<Option<Event>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut order = 0u64;
    let mut drain = |heap: &mut BinaryHeap<Reverse<(Timestamp, u64, usize)>>,
                     slots: &mut Vec<Option<Event>>,
                     free: &mut Vec<usize>,
                     until: Timestamp| {
        while let Some(Reverse((recorded, _, _))) = heap.peek() {
            if *recorded > until {
                break;
            }
            let Reverse((_, _, slot)) = heap.pop().expect("peeked");
            let event = slots[slot].take().expect("slot filled");
            emit(&event);
            free.push(slot);
        }
    };
    for (index, opened_at) in opened.iter().enumerate() {
        drain(&mut heap, &mut slots, &mut free, *opened_at);
        for event in story(config, index as u64, *opened_at, owners) {
            let slot = match free.pop() {
                Some(slot) => {
                    slots[slot] = Some(event.clone());
                    slot
                }
                None => {
                    slots.push(Some(event.clone()));
                    slots.len() - 1
                }
            };
            heap.push(Reverse((event.recorded_at.expect("set"), order, slot)));
            order += 1;
        }
    }
    drain(&mut heap, &mut slots, &mut free, Timestamp::MAX);
}

/// Writes the generated history as JSON Lines (the input contract, so it ingests as it is);
/// returns the number of events. The first write error stops it.
pub fn write_jsonl(config: &Config, sink: impl std::io::Write) -> std::io::Result<u64> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, sink);
    let mut currencies: std::collections::HashMap<DealId, Currency> = std::collections::HashMap::new();
    let mut line = String::with_capacity(512);
    let mut events = 0u64;
    let mut error = None;
    generate(config, |event| {
        if error.is_some() {
            return;
        }
        if let Body::Opened { currency, .. } = &event.body {
            currencies.insert(event.deal.clone(), *currency);
        }
        let currency = currencies.get(&event.deal).copied().unwrap_or(Currency::USD);
        line.clear();
        dealledger_events::json::write_event_json(&mut line, event, currency, "");
        line.push('\n');
        if let Err(e) = out.write_all(line.as_bytes()) {
            error = Some(e);
        }
        events += 1;
    });
    if let Some(e) = error {
        return Err(e);
    }
    out.flush()?;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dealledger_events::{Deals, Pipeline, Submission};

    fn collect(seed: u64, deals: u64) -> Vec<Event> {
        let mut events = Vec::new();
        generate(&Config::new(seed, deals), |e| events.push(e.clone()));
        events
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        assert_eq!(collect(7, 50), collect(7, 50));
        assert_ne!(collect(7, 50), collect(8, 50));
    }

    #[test]
    fn every_event_is_admitted_in_output_order() {
        let events = collect(42, 5000);
        let mut deals = Deals::default();
        let pipeline = Pipeline::default();
        for (i, event) in events.iter().enumerate() {
            let mut submission = Submission { event: event.clone(), expected_version: None };
            deals
                .admit(&mut submission, i as u64 + 1, Timestamp(0), &pipeline)
                .unwrap_or_else(|e| panic!("event {i} {event:?}: {e}"));
        }
        let per_deal = events.len() as f64 / 5000.0;
        assert!((12.0..40.0).contains(&per_deal), "{per_deal} events per deal");
    }

    #[test]
    fn covers_the_whole_contract() {
        let events = collect(1, 300);
        let kinds: std::collections::BTreeSet<_> = events.iter().map(|e| e.body.kind()).collect();
        assert_eq!(kinds.len(), dealledger_events::Kind::ALL.len(), "{kinds:?}");
        let late = events.iter().filter(|e| e.recorded_at.unwrap().0 - e.at.0 > HOUR_MICROS).count();
        assert!(late > 0);
        // Recorded order, and some events arrive after later-dated events of the same deal.
        assert!(events.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));
        let inbound = events
            .iter()
            .filter(|e| matches!(e.body, Body::Touch { direction: Direction::Inbound, .. }))
            .count();
        assert!(inbound > 0);
    }
}

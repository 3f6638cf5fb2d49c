//! Admission, the projection fold and the what-if walk share one lifecycle state machine
//! (`dealledger_events::lifecycle`); this holds that they agree. Random events, in random order
//! of arrival (so many are backdated), go through the ledger's own rules; on the history they
//! accept, at every moment an event happens, the three say the same status and stage of every
//! deal.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "a test: a panic is a failure")]

use dealledger_events::lifecycle::Lifecycle;
use dealledger_events::time::MICROS_PER_DAY;
use dealledger_events::{parse_line, Deals, EventRef, Pipeline, StoredEvent, Timestamp};
use dealledger_projections::{Folded, Projection, Timeline, View};
use dealledger_whatif::history::StageHistory;
use dealledger_whatif::sim::{lifecycle_at, Scratch, World};
use proptest::prelude::*;

const STAGES: [&str; 4] = ["qualifying", "discovery", "proposal", "negotiation"];
const DEALS: [&str; 3] = ["a", "b", "c"];

/// One event: deal, kind, a stage, the day and hour it happened.
type Raw = (usize, u8, usize, i64, i64);

fn line((deal, kind, stage, day, hour): Raw) -> String {
    let at = Timestamp(1_735_689_600_000_000 + day * MICROS_PER_DAY + hour * 3_600_000_000);
    let stage = STAGES[stage];
    let body = match kind {
        0 => format!(r#""type":"opened","stage":"{stage}","owner":"ann","amount":100"#),
        1 => format!(r#""type":"stage_moved","to":"{stage}""#),
        2 => r#""type":"won""#.to_string(),
        3 => r#""type":"lost","reason":"price""#.to_string(),
        4 => r#""type":"disqualified","reason":"no_budget""#.to_string(),
        5 => r#""type":"requalified""#.to_string(),
        6 => format!(r#""type":"requalified","stage":"{stage}""#),
        _ => r#""type":"touch","channel":"call","direction":"inbound""#.to_string(),
    };
    format!(r#"{{"deal":"{}","at":"{at}",{body}}}"#, DEALS[deal])
}

/// Admits the lines in order, keeping what the rules accept (and the lines of it).
fn admit(lines: &[String]) -> (Deals, Vec<(StoredEvent, String)>) {
    let pipeline = Pipeline::default();
    let mut deals = Deals::default();
    let mut stored = Vec::new();
    for line in lines {
        let mut submission = parse_line(line).unwrap();
        let seq = stored.len() as u64 + 1;
        if let Ok(version) = deals.admit(&mut submission, seq, Timestamp(0), &pipeline) {
            deals.commit();
            stored.push((StoredEvent { seq, version, event: submission.event }, line.clone()));
        }
    }
    (deals, stored)
}

fn named(life: Option<Lifecycle<u32>>, timeline: &Timeline) -> Option<(String, String)> {
    life.map(|l| (l.status.as_str().to_string(), timeline.names.resolve(l.stage).to_string()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn admission_fold_and_walk_agree(
        raw in proptest::collection::vec((0..DEALS.len(), 0u8..9, 0..STAGES.len(), 0i64..20, 0i64..3), 1..60)
    ) {
        // Each deal's opening comes early enough that most later events can be admitted.
        let mut lines: Vec<String> = (0..DEALS.len()).map(|d| line((d, 0, 0, 0, 0))).collect();
        lines.extend(raw.iter().copied().map(line));
        let (_, stored) = admit(&lines);
        let mut timeline = Timeline::default();
        for (event, _) in &stored {
            timeline.apply(&EventRef::of(event)).unwrap();
        }
        let mut moments: Vec<Timestamp> = stored.iter().map(|(e, _)| e.event.at).collect();
        moments.sort_unstable();
        moments.dedup();
        let mut scratch = Scratch::default();
        let mut folded = Folded::default();
        for as_of in moments {
            // Admission as of `as_of`: the events up to then, which are a valid history too.
            let before: Vec<String> = stored
                .iter()
                .filter(|(e, _)| e.event.at <= as_of)
                .map(|(_, line)| line.clone())
                .collect();
            let (rules, kept) = admit(&before);
            prop_assert_eq!(kept.len(), before.len(), "a prefix of a valid history is valid");
            let view = View { as_of, known_at: Timestamp::MAX };
            let history = StageHistory::build(&timeline, view);
            let world = World { history: &history, stage_index: &[], as_of };
            for deal in timeline.deals() {
                let admitted = rules
                    .lifecycle(deal.id)
                    .map(|l| (l.status.as_str().to_string(), l.stage.to_string()));
                let fold = folded.fold(&deal, view).then(|| {
                    (folded.status().as_str().to_string(), timeline.names.resolve(folded.stage).to_string())
                });
                let walk = named(lifecycle_at(&deal, false, &world, &mut scratch), &timeline);
                prop_assert_eq!(&admitted, &fold, "deal {} as of {}: admission vs fold", &deal.id, as_of);
                prop_assert_eq!(&admitted, &walk, "deal {} as of {}: admission vs walk", &deal.id, as_of);
            }
        }
    }
}

//! The folds of "now" that [`Timeline::refresh`] keeps never change an answer: every report on
//! a refreshed timeline (built whole, then refreshed deal by deal after more events) equals the
//! same report folded from the histories, and a timeline with events past its last refresh
//! falls back to folding; deals folded in parts on several threads answer as one pass does.

use dealledger_events::time::MICROS_PER_DAY;
use dealledger_events::{Pipeline, Timestamp};
use dealledger_log::{Ledger, MemStore};
use dealledger_projections::testkit::append;
use dealledger_projections::{force_parallel_parts, Projection, Timeline, View};
use dealledger_reports::{settings_from_config, Settings};
use proptest::prelude::*;

fn fold_tail(ledger: &Ledger<MemStore>, from_seq: u64, timeline: &mut Timeline) {
    ledger
        .log()
        .scan_refs(from_seq, |event| {
            timeline.apply(event).unwrap();
            Ok(true)
        })
        .unwrap();
}

/// Every report, as JSON, over "now" (a view that sees every event).
fn all_reports(timeline: &Timeline, settings: &Settings, end: Timestamp) -> Vec<String> {
    use dealledger_reports::*;
    let now = View { as_of: Timestamp(end.0 + 30 * MICROS_PER_DAY), known_at: Timestamp::MAX };
    let from = Timestamp(end.0 - 400 * MICROS_PER_DAY);
    let to = Timestamp(end.0 + MICROS_PER_DAY);
    vec![
        render(&pipeline::pipeline(timeline, settings, now, None).unwrap(), Format::Json),
        render(&stages::time_in_stage(timeline, settings, now, true, true), Format::Json),
        render(&kpis::kpis(timeline, settings, from, to, Timestamp::MAX, None, None).unwrap(), Format::Json),
        render(&cost::bad_deal_cost(timeline, settings, from, to, Timestamp::MAX, false), Format::Json),
        render(&flags::flags(timeline, settings, now), Format::Json),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn refreshed_folds_answer_like_folding(seed in 0u64..1_000_000, deals in 3u64..40, cut in 0.0f64..1.0) {
        let config = dealledger_gen::Config::new(seed, deals);
        let mut events = Vec::new();
        dealledger_gen::generate(&config, |e| events.push(e.clone()));
        let settings = settings_of(
            "[flags]\nmin_contacts = 3\n[exit_criteria]\nqualifying = [\"budget_confirmed\", \"decision_maker\"]\n",
        )
        .unwrap();
        let split = ((events.len() as f64) * cut) as usize;
        let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
        append(&mut ledger, &events[..split]);
        let mut kept = Timeline::default();
        fold_tail(&ledger, 1, &mut kept);
        kept.refresh();
        append(&mut ledger, &events[split..]);
        fold_tail(&ledger, split as u64 + 1, &mut kept);

        let mut folding = Timeline::default();
        fold_tail(&ledger, 1, &mut folding);
        force_parallel_parts(1);
        let expected = all_reports(&folding, &settings, config.end);
        // Parts merged in order answer as one pass does.
        force_parallel_parts(3);
        prop_assert_eq!(&all_reports(&folding, &settings, config.end), &expected);
        prop_assert!(!kept.is_fresh() || split == events.len());
        // Stale (events since the refresh): the reports fold.
        prop_assert_eq!(&all_reports(&kept, &settings, config.end), &expected);
        // Refreshed deal by deal, then built whole: the reports read the kept folds.
        kept.refresh();
        prop_assert!(kept.is_fresh());
        prop_assert_eq!(&all_reports(&kept, &settings, config.end), &expected);
        folding.refresh();
        prop_assert_eq!(&all_reports(&folding, &settings, config.end), &expected);
        force_parallel_parts(0);
    }
}

/// Settings from the text of a dealledger.toml, as the binary reads them.
fn settings_of(text: &str) -> Result<Settings, String> {
    let config = dealledger_config::Config::parse(text, "dealledger.toml").map_err(|e| e.to_string())?;
    settings_from_config(&config).map_err(|e| e.reason())
}

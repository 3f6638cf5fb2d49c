//! Hand-built histories for every rule, with exact figures.

use super::*;

/// One JSON event on day `day` of 2025 (day 0 = 2025-01-01, midnight UTC).
fn e(deal: &str, kind: &str, day: i64, fields: &str) -> String {
    let at = Timestamp(t0().0 + day * MICROS_PER_DAY);
    let sep = if fields.is_empty() { "" } else { "," };
    format!(r#"{{"deal":"{deal}","type":"{kind}","at":"{at}"{sep}{fields}}}"#)
}

fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2025-01-01T00:00:00Z").unwrap()
}

fn day(d: i64) -> Timestamp {
    Timestamp(t0().0 + d * MICROS_PER_DAY)
}

fn opened(deal: &str, d: i64) -> String {
    e(deal, "opened", d, r#""owner":"ann","amount":10000"#)
}

fn touch(deal: &str, d: i64, direction: &str, extra: &str) -> String {
    e(deal, "touch", d, &format!(r#""channel":"call","direction":"{direction}","minutes":30{extra}"#))
}

use dealledger_projections::testkit::timeline;

fn run(lines: &[String], policy: &str, as_of: i64) -> WhatIfReport {
    let timeline = timeline(lines);
    let settings = Settings::default();
    let mut p = Policy::default();
    for rule in policy.split(',') {
        p.set_text(rule).unwrap();
    }
    Prepared::new(
        &timeline,
        &settings,
        Scope { from: None, to: None, as_of: day(as_of), as_logged: false, currency: None },
    )
    .unwrap()
    .run(&p, true, true)
    .unwrap()
}

fn cuts(report: &WhatIfReport) -> Vec<(String, String, Timestamp)> {
    report.deals.as_ref().unwrap().iter().map(|d| (d.deal.clone(), d.rule.clone(), d.cut_at.0)).collect()
}

#[test]
fn the_seeds_calculator_day_15_instead_of_day_45() {
    // Opened on day 0, the buyer answers on day 1 and then goes dark; the team disqualifies on
    // day 45. gone_dark = 14 cuts on day 15: 30 days earlier, at $4,000 a day.
    let lines = vec![
        opened("A", 0),
        touch("A", 1, "inbound", ""),
        touch("A", 20, "outbound", ""),
        e("A", "disqualified", 45, r#""reason":"gone_dark""#),
    ];
    let r = run(&lines, "gone_dark=14", 60);
    assert_eq!(cuts(&r), vec![("A".into(), "gone_dark".into(), day(15))]);
    let o = &r.outcome;
    assert_eq!((o.cut, o.cut_won, o.cut_bad, o.cut_open, o.bad_deals), (1, 0, 1, 0, 1));
    assert_eq!(o.calendar_days_saved, 30.0);
    assert_eq!(o.calendar_value_saved.decimal(), "120000.00");
    // The 30-minute call on day 20 was effort the cut would have freed: $1,000 at $2,000 an hour.
    assert_eq!(o.effort_hours_saved, 0.5);
    assert_eq!(o.effort_value_saved.decimal(), "1000.00");
    assert_eq!(o.revenue_at_risk.decimal(), "0.00");
    assert_eq!(o.net_value.unwrap().decimal(), "1000.00");
    assert_eq!((o.precision, o.recall), (Some(1.0), Some(1.0)));
}

#[test]
fn gone_dark_restarts_at_inbound_touches_and_late_logged_touches_come_too_late() {
    let on_time = vec![opened("B", 0), touch("B", 10, "inbound", "")];
    assert_eq!(cuts(&run(&on_time, "gone_dark=14", 60)), vec![("B".into(), "gone_dark".into(), day(24))]);
    // The same touch, logged on day 20: in business time it still happened on day 10 ...
    let late = vec![opened("B", 0), touch("B", 10, "inbound", &format!(r#","recorded_at":"{}""#, day(20)))];
    assert_eq!(cuts(&run(&late, "gone_dark=14", 60)), vec![("B".into(), "gone_dark".into(), day(24))]);
    // ... but as logged, on day 14 nobody knew of it, so the deal was cut then.
    let timeline = timeline(&late);
    let settings = Settings::default();
    let mut p = Policy::default();
    p.set("gone_dark", 14.0).unwrap();
    let scope = Scope { from: None, to: None, as_of: day(60), as_logged: true, currency: None };
    let r = Prepared::new(&timeline, &settings, scope).unwrap().run(&p, false, true).unwrap();
    assert_eq!(cuts(&r), vec![("B".into(), "gone_dark".into(), day(14))]);
    // A stage move logged late: as logged, the policy still saw the deal in its old stage.
    let moved = vec![
        opened("S", 0),
        e("S", "stage_moved", 1, r#""to":"qualifying""#),
        e("S", "stage_moved", 2, r#""to":"quote""#),
        opened("T", 5),
        e("T", "stage_moved", 6, &format!(r#""to":"qualifying","recorded_at":"{}""#, day(30))),
    ];
    let timeline = self::timeline(&moved);
    let mut p = Policy::default();
    p.set("stalled", 3.0).unwrap();
    // S's one-day visits are the history (p90 = 1 day in both stages). As logged, T sits in
    // prospecting until day 30 as far as anyone knew: cut 3 days after it opened.
    let r = Prepared::new(&timeline, &settings, scope).unwrap().run(&p, false, true).unwrap();
    assert_eq!(cuts(&r), vec![("T".into(), "stalled".into(), day(8))]);
    // In business time T entered qualifying on day 6: cut 3 days later.
    let r = Prepared::new(&timeline, &settings, Scope { as_logged: false, ..scope })
        .unwrap()
        .run(&p, false, true)
        .unwrap();
    assert_eq!(cuts(&r), vec![("T".into(), "stalled".into(), day(9))]);
    // Outbound touches do not restart it.
    let outbound = vec![opened("B", 0), touch("B", 10, "outbound", "")];
    assert_eq!(cuts(&run(&outbound, "gone_dark=14", 60))[0].2, day(14));
}

#[test]
fn requalified_deals_restart_the_clock_and_closed_periods_never_cut() {
    let lines = vec![
        opened("C", 0),
        touch("C", 3, "inbound", ""),
        e("C", "lost", 5, r#""reason":"budget""#),
        e("C", "requalified", 30, ""),
    ];
    // Lost from day 5 to day 30: no cut then; the clock restarts on day 30.
    assert_eq!(cuts(&run(&lines, "gone_dark=14", 60)), vec![("C".into(), "gone_dark".into(), day(44))]);
    // Once cut, a deal stays cut: cut on day 17 it is never requalified in the simulation.
    assert_eq!(cuts(&run(&lines, "gone_dark=2", 60)), vec![("C".into(), "gone_dark".into(), day(2))]);
    // Open at as-of: cut_open, with the days from the cut to as-of.
    let r = run(&lines, "gone_dark=14", 60);
    assert_eq!((r.outcome.cut_open, r.outcome.calendar_days_saved), (1, 16.0));
}

#[test]
fn a_deal_closed_at_exactly_the_cut_moment_counts_as_cut() {
    let lines = vec![opened("D", 0), e("D", "disqualified", 14, r#""reason":"gone_dark""#)];
    let r = run(&lines, "gone_dark=14", 60);
    assert_eq!(cuts(&r), vec![("D".into(), "gone_dark".into(), day(14))]);
    assert_eq!((r.outcome.cut_bad, r.outcome.calendar_days_saved), (1, 0.0));
    // One microsecond later it is not.
    assert!(cuts(&run(&lines, "gone_dark=14.0000001", 60)).is_empty());
}

#[test]
fn stalled_never_looks_into_the_future() {
    let lines = vec![
        // X: a 10-day visit of prospecting, over by day 10.
        opened("X", 0),
        e("X", "stage_moved", 10, r#""to":"qualifying""#),
        // Y: starts on day 5, when no prospecting visit had ended: nothing to compare with.
        opened("Y", 5),
        // L: a 100-day visit that ends on day 105, after Z started: it must not count for Z.
        opened("L", 5),
        e("L", "stage_moved", 105, r#""to":"qualifying""#),
        // Z: starts on day 20; the history then is X's 10 days: p90 = 10 days.
        opened("Z", 20),
    ];
    let r = run(&lines, "stalled=1.5", 200);
    assert_eq!(cuts(&r), vec![("Z".into(), "stalled".into(), day(35))]);
}

#[test]
fn unanswered_touches_count_outbound_in_a_row() {
    let lines = vec![
        opened("U", 0),
        touch("U", 1, "outbound", ""),
        touch("U", 2, "outbound", ""),
        touch("U", 3, "inbound", ""),
        touch("U", 4, "outbound", ""),
        touch("U", 5, "outbound", ""),
        touch("U", 6, "outbound", ""),
    ];
    assert_eq!(
        cuts(&run(&lines, "unanswered_touches=3", 60)),
        vec![("U".into(), "unanswered_touches".into(), day(6))]
    );
    assert_eq!(cuts(&run(&lines, "unanswered_touches=2", 60))[0].2, day(2));
}

#[test]
fn no_activity_and_past_close_date_and_the_earliest_rule_wins() {
    let lines = vec![
        e("P", "opened", 0, r#""owner":"ann","amount":10000,"close_date":"2025-01-31""#),
        touch("P", 8, "outbound", ""),
    ];
    assert_eq!(cuts(&run(&lines, "no_activity=10", 60)), vec![("P".into(), "no_activity".into(), day(18))]);
    // Past the end of the close date (day 31) by 7 days: day 38.
    assert_eq!(
        cuts(&run(&lines, "past_close_date=7", 60)),
        vec![("P".into(), "past_close_date".into(), day(38))]
    );
    assert_eq!(cuts(&run(&lines, "past_close_date=7,no_activity=10", 60))[0].1, "no_activity");
    // A later close date pushes the deadline.
    let mut moved = lines.clone();
    moved.push(e("P", "close_date_changed", 20, r#""close_date":"2025-03-01""#));
    // 2025-03-01 is day 59; its end is day 60.
    assert_eq!(cuts(&run(&moved, "past_close_date=7", 80))[0].2, day(67));
}

#[test]
fn missing_field_by_stage_with_grace() {
    let base = vec![opened("M", 0), e("M", "stage_moved", 10, r#""to":"quote""#)];
    let policy = |timeline: &Timeline, as_of: i64| {
        let settings = Settings::default();
        let p = Policy::parse_toml(
            "[[missing_field]]\nfield = \"budget\"\nby_stage = \"quote\"\ngrace_days = 5\n",
            "policy.toml",
        )
        .unwrap();
        Prepared::new(
            timeline,
            &settings,
            Scope { from: None, to: None, as_of: day(as_of), as_logged: false, currency: None },
        )
        .unwrap()
        .run(&p, false, true)
        .unwrap()
    };
    let r = policy(&timeline(&base), 60);
    assert_eq!(cuts(&r), vec![("M".into(), "missing_field:budget".into(), day(15))]);
    let mut set = base.clone();
    set.push(e("M", "field_set", 12, r#""field":"budget","value":true"#));
    assert!(cuts(&policy(&timeline(&set), 60)).is_empty());
    // Moving on to a later stage keeps the clock; the grace is counted from entering quote.
    let mut later = base.clone();
    later.push(e("M", "stage_moved", 12, r#""to":"closing""#));
    assert_eq!(cuts(&policy(&timeline(&later), 60))[0].2, day(15));
}

#[test]
fn false_cuts_put_revenue_at_risk_and_precision_and_recall() {
    let lines = vec![
        opened("W", 0),
        e("W", "won", 30, r#""amount":25000"#),
        opened("Q", 0),
        touch("Q", 1, "inbound", ""),
        e("Q", "lost", 20, r#""reason":"price""#),
        opened("R", 0),
        touch("R", 10, "inbound", ""),
        e("R", "lost", 20, r#""reason":"price""#),
    ];
    let r = run(&lines, "gone_dark=14", 60);
    let o = &r.outcome;
    // W is cut on day 14 (a false cut), Q on day 15; R is never 14 days dark before closing.
    assert_eq!((o.cut, o.cut_won, o.cut_bad, o.bad_deals), (2, 1, 1, 2));
    assert_eq!(o.revenue_at_risk.decimal(), "25000.00");
    assert_eq!((o.precision, o.recall), (Some(0.5), Some(0.5)));
    assert_eq!(o.calendar_days_saved, 5.0);
    assert_eq!(o.net_value.unwrap().decimal(), "-25000.00");
}

#[test]
fn a_sweep_equals_separate_runs() {
    let lines = vec![
        opened("A", 0),
        touch("A", 1, "inbound", ""),
        touch("A", 20, "outbound", ""),
        e("A", "disqualified", 45, r#""reason":"gone_dark""#),
        opened("W", 0),
        touch("W", 9, "inbound", ""),
        e("W", "won", 30, r#""amount":25000"#),
    ];
    let timeline = timeline(&lines);
    let settings = Settings::default();
    let prepared = Prepared::new(
        &timeline,
        &settings,
        Scope { from: None, to: None, as_of: day(60), as_logged: false, currency: None },
    )
    .unwrap();
    let values: Vec<f64> = (7..=30).map(f64::from).collect();
    let sweep = prepared.sweep(&Policy::default(), "gone_dark", &values).unwrap();
    for row in &sweep.rows {
        let mut p = Policy::default();
        p.set("gone_dark", row.value).unwrap();
        assert_eq!(row.outcome, prepared.run(&p, false, false).unwrap().outcome, "value {}", row.value);
    }
    // 7 to 21 days cut W (won on day 30; dark from day 9) and lose $25,000; 22 and more keep it.
    let best = sweep.best.unwrap();
    assert_eq!(best.value, 22.0);
    assert_eq!(best.outcome.cut_won, 0);
}

// ---- What a what-if stands on (issue 24) ----------------------------------------------------

fn prepared_sweep(lines: &[String], rule: &str, values: std::ops::RangeInclusive<i32>) -> SweepReport {
    let timeline = timeline(lines);
    let settings = Settings::default();
    let scope = Scope { from: None, to: None, as_of: day(90), as_logged: false, currency: None };
    let values: Vec<f64> = values.map(f64::from).collect();
    Prepared::new(&timeline, &settings, scope).unwrap().sweep(&Policy::default(), rule, &values).unwrap()
}

fn notes_of<R: serde::Serialize>(report: &R) -> String {
    serde_json::to_value(report).unwrap()["notes"].to_string()
}

#[test]
fn no_best_is_named_for_a_touch_rule_on_deals_without_touches() {
    // Deals from an export that has no calls or emails: gone_dark cuts every deal N days after
    // it opened, whatever happened. The sweep's rows are what the rule would do; the best
    // among them means nothing.
    let lines = vec![
        opened("A", 0),
        e("A", "lost", 40, r#""reason":"price""#),
        opened("W", 0),
        e("W", "won", 30, r#""amount":1"#),
        opened("B", 2),
        e("B", "disqualified", 50, r#""reason":"no_budget""#),
    ];
    let sweep = prepared_sweep(&lines, "gone_dark", 5..=20);
    assert_eq!(sweep.best, None);
    assert!(notes_of(&sweep).contains("0 of the 3 deals have a touch"), "{}", notes_of(&sweep));
    // A rule that counts no touches is not refused for want of them.
    let close_date = prepared_sweep(&lines, "past_close_date", 1..=3);
    assert!(!notes_of(&close_date).contains("have a touch"), "{}", notes_of(&close_date));
    assert!(close_date.best.is_some(), "{}", notes_of(&close_date));
}

#[test]
fn no_best_is_named_without_amounts_on_the_won_deals() {
    // Won deals without an amount: every cut win looks free, so the rule that cuts most looks
    // best.
    let lines = vec![
        opened("A", 0),
        touch("A", 1, "inbound", ""),
        touch("A", 20, "outbound", ""),
        e("A", "lost", 40, r#""reason":"price""#),
        e("W", "opened", 0, r#""owner":"ann","amount":0"#),
        touch("W", 1, "inbound", ""),
        e("W", "won", 30, ""),
    ];
    let sweep = prepared_sweep(&lines, "gone_dark", 5..=20);
    assert_eq!(sweep.best, None);
    assert!(notes_of(&sweep).contains("none of the 1 won deal has an amount"), "{}", notes_of(&sweep));
}

#[test]
fn no_best_is_named_where_it_cuts_every_win_and_a_range_that_never_pays_says_so() {
    // W won for 1.00 and went dark at once; L was lost after hours of calls. Every value cuts W
    // and saves L's hours: the greatest net value throws away every win.
    let lines = vec![
        e("W", "opened", 0, r#""owner":"ann","amount":1"#),
        touch("W", 0, "inbound", ""),
        e("W", "won", 60, ""),
        opened("L", 0),
        touch("L", 0, "inbound", ""),
        e("L", "touch", 30, r#""channel":"meeting","direction":"outbound","minutes":600"#),
        e("L", "lost", 60, r#""reason":"price""#),
    ];
    let sweep = prepared_sweep(&lines, "gone_dark", 5..=7);
    assert!(sweep.rows.iter().all(|r| r.outcome.cut_won == 1 && r.outcome.net_value.unwrap().minor > 0));
    assert_eq!(sweep.best, None);
    assert!(notes_of(&sweep).contains("every win"), "{}", notes_of(&sweep));
    // W worth 25,000, and V, won after an inbound touch every 3 days, never cut: every value
    // loses money. The best is the one that loses least, and the report says that none pays.
    let mut dear: Vec<String> =
        lines.iter().map(|l| l.replace(r#""amount":1"#, r#""amount":25000"#)).collect();
    dear.push(opened("V", 0));
    dear.extend((0..20).map(|d| touch("V", d * 3, "inbound", "")));
    dear.push(e("V", "won", 60, ""));
    let sweep = prepared_sweep(&dear, "gone_dark", 5..=7);
    assert!(sweep.best.is_some());
    assert!(notes_of(&sweep).contains("no value of the range pays"), "{}", notes_of(&sweep));
}

#[test]
fn currencies_are_never_added() {
    let lines = vec![
        opened("U", 0),
        touch("U", 1, "inbound", ""),
        e("U", "won", 40, r#""amount":1000"#),
        e("E", "opened", 0, r#""owner":"ann","amount":5000,"currency":"EUR""#),
        touch("E", 1, "inbound", ""),
        e("E", "won", 40, r#""amount":5000"#),
    ];
    let timeline = timeline(&lines);
    let settings = Settings::default();
    let mut policy = Policy::default();
    policy.set_text("gone_dark=14").unwrap();
    let scope = |currency| Scope { from: None, to: None, as_of: day(60), as_logged: false, currency };
    // By default the deals of [costs] currency, USD: the EUR win is left out, and said to be.
    let usd = Prepared::new(&timeline, &settings, scope(None)).unwrap().run(&policy, false, false).unwrap();
    assert_eq!((usd.outcome.cut_won, usd.outcome.revenue_at_risk.decimal()), (1, "1000.00".to_string()));
    assert!(notes_of(&usd).contains("1 deal in EUR"), "{}", notes_of(&usd));
    // The EUR deals alone: revenue at risk in EUR, and no net value against time priced in USD.
    let eur =
        Prepared::new(&timeline, &settings, scope(Some(dealledger_events::Currency::parse("EUR").unwrap())))
            .unwrap()
            .run(&policy, false, false)
            .unwrap();
    assert_eq!(eur.outcome.revenue_at_risk.human(), "5,000.00 EUR");
    assert_eq!(eur.outcome.net_value, None);
    assert!(notes_of(&eur).contains("priced in USD"), "{}", notes_of(&eur));
}

#[test]
fn a_what_if_long_after_the_last_event_says_so() {
    let lines = vec![opened("A", 0), touch("A", 1, "inbound", "")];
    let report = run(&lines, "gone_dark=14", 60);
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["notes"].to_string().contains("2025-01-02T00:00:00Z"), "{json}");
    assert_eq!(json["offer"], serde_json::json!({"as_of": "2025-01-02T00:00:00Z"}));
    assert_eq!(json["scope"]["deals"], 1);
    assert_eq!(json["scope"]["with_touches"], 1);
}

mod sweep_equals_single_runs {
    use super::*;
    use proptest::prelude::*;

    fn generated(seed: u64, deals: u64) -> Timeline {
        let mut lines = Vec::new();
        dealledger_gen::generate(&dealledger_gen::Config::new(seed, deals), |e| {
            let mut text = String::new();
            dealledger_events::json::write_event_json(&mut text, e, dealledger_events::Currency::USD, "");
            lines.push(text);
        });
        timeline(&lines)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        // For every numeric rule, with or without other rules fixed, in business time and as
        // logged: each sweep row is exactly the single run at that value.
        #[test]
        fn on_generated_histories(seed in 0u64..1_000_000, rule in 0usize..5, fixed in 0usize..3, as_logged in any::<bool>()) {
            let timeline = generated(seed, 40);
            let settings = Settings::default();
            let scope = Scope { from: None, to: None, as_of: timeline.latest_at(), as_logged, currency: None };
            let prepared = Prepared::new(&timeline, &settings, scope).unwrap();
            let rule = Swept::ALL[rule].name();
            let mut base = Policy::default();
            match fixed {
                1 => base.set_text("no_activity=12").unwrap(),
                2 => base.set_text("unanswered_touches=4").unwrap(),
                _ => {}
            }
            let values: Vec<f64> = match rule {
                "stalled" => (1..=12).map(|i| f64::from(i) * 0.25).collect(),
                "unanswered_touches" => (1..=8).map(f64::from).collect(),
                _ => (1..=30).map(f64::from).collect(),
            };
            let sweep = prepared.sweep(&base, rule, &values).unwrap();
            for row in &sweep.rows {
                let mut policy = base.clone();
                policy.set(rule, row.value).unwrap();
                let single = prepared.run(&policy, false, false).unwrap();
                prop_assert_eq!(&row.outcome, &single.outcome, "{} = {}", rule, row.value);
            }
        }
    }
}

// ---- A watched what-if stops (issue 25) -----------------------------------------------------

#[test]
fn a_watch_is_asked_before_every_deal_walk_and_stops_the_work() {
    let lines: Vec<String> = (0..5).map(|i| opened(&format!("D{i}"), i)).collect();
    let timeline = timeline(&lines);
    let settings = Settings::default();
    let scope = Scope { from: None, to: None, as_of: day(90), as_logged: false, currency: None };
    let policy = Policy::parse_rules("gone_dark=14").unwrap();
    let asked = std::cell::RefCell::new(Vec::new());
    let record = |progress: Progress| {
        asked.borrow_mut().push((progress.done, progress.total));
        Ok(())
    };
    let prepared = Prepared::new(&timeline, &settings, scope).unwrap().watched(&record);
    prepared.run(&policy, false, false).unwrap();
    assert_eq!(*asked.borrow(), (0..5).map(|done| (done, 5)).collect::<Vec<_>>());
    // A comparison of two policies: one walk of ten, in order.
    asked.borrow_mut().clear();
    let policies = vec![("a".to_string(), policy.clone()), ("b".to_string(), policy.clone())];
    prepared.compare(&policies).unwrap();
    assert_eq!(*asked.borrow(), (0..10).map(|done| (done, 10)).collect::<Vec<_>>());
    asked.borrow_mut().clear();
    prepared.sweep(&Policy::default(), "gone_dark", &[7.0, 14.0]).unwrap();
    assert_eq!(*asked.borrow(), (0..5).map(|done| (done, 5)).collect::<Vec<_>>());

    // A watch that says stop at the third deal: every kind of question stops, with its words.
    let stop = |progress: Progress| match progress.done {
        3.. => Err(format!("stop at {}", progress.done)),
        _ => Ok(()),
    };
    let prepared = Prepared::new(&timeline, &settings, scope).unwrap().watched(&stop);
    let stopped = WhatIfError::Stopped("stop at 3".into());
    assert_eq!(prepared.run(&policy, false, false).unwrap_err(), stopped);
    assert_eq!(prepared.sweep(&Policy::default(), "gone_dark", &[7.0]).unwrap_err(), stopped);
    assert_eq!(prepared.compare(&policies).err().unwrap(), stopped);
}

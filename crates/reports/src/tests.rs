//! Every report on one hand-built history, with figures worked out by hand (docs/metrics.md
//! walks through the same history).

use crate::output::render;
use crate::testkit::{e, t, timeline};
use crate::{
    answer, cost, flags, kpis, pipeline, settings_from_config, stages, Format, Params, ReportName, Settings,
};
use dealledger_events::money::Decimal;
use dealledger_events::Timestamp;
use dealledger_projections::{Timeline, View};
use serde_json::{json, Value};

/// Five deals in January 2024 (owner bob unless said):
/// - A: opened 01-01 in prospecting at 1000, close date 01-12; moved to quote on 01-10, but that
///   move was only recorded on 01-20 (late-logged); amount 2000 from 01-15.
/// - B: opened 01-02 in qualifying at 500; disqualified 01-05, requalified 01-08 (back to
///   qualifying), closing 01-12, won 01-14 at 600.
/// - C: opened 01-03 at 100; moved to qualifying and to quote at the same instant 01-04 (a tie
///   in `at`: seq decides, it ends in quote); two contacts; budget confirmed.
/// - D: opened 01-01 at 300; qualifying from 01-05; no touches.
/// - E: opened 01-01 at 50 by ann, owner cat from 01-02; lost 01-03 after 60 minutes of touches
///   (30 call, 5 email default, 5 social default, 20 other); a call after the loss.
pub fn january() -> Vec<String> {
    vec![
        e("A", "opened", "2024-01-01", r#""owner":"bob","amount":1000,"close_date":"2024-01-12""#),
        e("B", "opened", "2024-01-02", r#""owner":"bob","amount":"500","stage":"qualifying""#),
        e("C", "opened", "2024-01-03", r#""owner":"bob","amount":100"#),
        e("C", "stage_moved", "2024-01-04", r#""to":"qualifying""#),
        e("C", "stage_moved", "2024-01-04", r#""to":"quote""#),
        e("D", "opened", "2024-01-01", r#""owner":"bob","amount":300"#),
        e("D", "stage_moved", "2024-01-05", r#""to":"qualifying""#),
        e("E", "opened", "2024-01-01", r#""owner":"ann","amount":50"#),
        e("E", "owner_changed", "2024-01-02", r#""owner":"cat""#),
        e("E", "lost", "2024-01-03", r#""reason":"price""#),
        e("B", "disqualified", "2024-01-05", r#""reason":"no_budget""#),
        e("B", "requalified", "2024-01-08", ""),
        e("B", "stage_moved", "2024-01-12", r#""to":"closing""#),
        e("B", "won", "2024-01-14", r#""amount":600"#),
        e("A", "amount_changed", "2024-01-15", r#""amount":2000"#),
        e("A", "stage_moved", "2024-01-10", r#""to":"quote","recorded_at":"2024-01-20T00:00:00Z""#),
        e("A", "touch", "2024-01-01T06:00:00Z", r#""channel":"email","direction":"outbound""#),
        e("B", "touch", "2024-01-02T01:00:00Z", r#""channel":"call","direction":"inbound""#),
        e("B", "touch", "2024-01-02T03:00:00Z", r#""channel":"call","direction":"outbound""#),
        e("E", "touch", "2024-01-01T10:00:00Z", r#""channel":"call","direction":"inbound","minutes":30"#),
        e("E", "touch", "2024-01-02T00:00:00Z", r#""channel":"email","direction":"outbound""#),
        e("E", "touch", "2024-01-02T06:00:00Z", r#""channel":"social","direction":"outbound""#),
        e("E", "touch", "2024-01-02T08:00:00Z", r#""channel":"other","direction":"outbound","minutes":20"#),
        e("E", "touch", "2024-01-04", r#""channel":"call","direction":"outbound","minutes":15"#),
        e("C", "touch", "2024-01-05", r#""channel":"email","direction":"inbound","contact":"x@c""#),
        e("C", "touch", "2024-01-06", r#""channel":"email","direction":"outbound","contact":"y@c""#),
        e("C", "field_set", "2024-01-04", r#""field":"budget_confirmed","value":true"#),
    ]
}

fn json_of<R: crate::Report>(report: &R) -> Value {
    serde_json::from_str(&render(report, Format::Json)).unwrap()
}

fn view(as_of: &str, known_at: Option<&str>) -> View {
    View { as_of: t(as_of), known_at: known_at.map_or(Timestamp::MAX, t) }
}

fn stage_rows(report: &Value) -> Vec<(String, u64, f64, f64)> {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_string(),
                s["deals"].as_u64().unwrap(),
                s["amount"].as_f64().unwrap(),
                s["weighted_amount"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn rows(expected: &[(&str, u64, f64, f64)]) -> Vec<(String, u64, f64, f64)> {
    expected.iter().map(|&(s, d, a, w)| (s.to_string(), d, a, w)).collect()
}

#[test]
fn pipeline_as_of_and_known_at() {
    let tl = timeline(&january());
    let s = Settings::default();
    let now_text =
        render(&pipeline::pipeline(&tl, &s, view("2024-01-16", None), None).unwrap(), Format::Json);
    // Money is an exact decimal in the JSON text, never a float.
    assert!(now_text.contains(r#""weighted_amount": 1050.00"#), "{now_text}");
    let now: Value = serde_json::from_str(&now_text).unwrap();
    assert_eq!(
        stage_rows(&now),
        rows(&[
            ("prospecting", 0, 0.00, 0.00),
            ("qualifying", 1, 300.00, 75.00),
            ("quote", 2, 2100.00, 1050.00),
            ("closing", 0, 0.00, 0.00),
        ])
    );
    assert_eq!(now["totals"], json!({"deals": 3, "amount": 2400.00, "weighted_amount": 1125.00}));
    assert_eq!(now["closed"], json!({"won": 1, "lost": 1, "disqualified": 0}));
    assert_eq!(now["as_of"], "2024-01-16T00:00:00Z");
    assert_eq!(now["currency"], "USD");
    assert!(now.get("by_currency").is_none());

    // What we knew on 01-16: A's move to quote was recorded on 01-20.
    let then = json_of(&pipeline::pipeline(&tl, &s, view("2024-01-16", Some("2024-01-16")), None).unwrap());
    assert_eq!(
        stage_rows(&then),
        rows(&[
            ("prospecting", 1, 2000.00, 200.00),
            ("qualifying", 1, 300.00, 75.00),
            ("quote", 1, 100.00, 50.00),
            ("closing", 0, 0.00, 0.00),
        ])
    );
    assert_eq!(then["totals"], json!({"deals": 3, "amount": 2400.00, "weighted_amount": 325.00}));
    // Known once recorded: known-at after 01-20 answers like now.
    let later = json_of(&pipeline::pipeline(&tl, &s, view("2024-01-16", Some("2024-01-21")), None).unwrap());
    assert_eq!(stage_rows(&later), stage_rows(&now));

    // As of 01-09 B is requalified (back in qualifying) and A has not moved yet.
    let jan9 = json_of(&pipeline::pipeline(&tl, &s, view("2024-01-09", None), None).unwrap());
    assert_eq!(
        stage_rows(&jan9),
        rows(&[
            ("prospecting", 1, 1000.00, 100.00),
            ("qualifying", 2, 800.00, 200.00),
            ("quote", 1, 100.00, 50.00),
            ("closing", 0, 0.00, 0.00),
        ])
    );
    assert_eq!(jan9["closed"], json!({"won": 0, "lost": 1, "disqualified": 0}));
    // As of 01-06 B is disqualified.
    let jan6 = json_of(&pipeline::pipeline(&tl, &s, view("2024-01-06", None), None).unwrap());
    assert_eq!(jan6["closed"], json!({"won": 0, "lost": 1, "disqualified": 1}));
    assert_eq!(jan6["totals"], json!({"deals": 3, "amount": 1400.00, "weighted_amount": 225.00}));
}

#[test]
fn pipeline_groups_by_currency() {
    let mut lines = january();
    lines.push(e("F", "opened", "2024-01-02", r#""owner":"bob","amount":"99.5","currency":"EUR""#));
    let tl = timeline(&lines);
    let report =
        json_of(&pipeline::pipeline(&tl, &Settings::default(), view("2024-01-16", None), None).unwrap());
    assert_eq!(report["currency"], "USD");
    let all = report["by_currency"].as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["currency"], "EUR");
    assert_eq!(all[0]["totals"], json!({"deals": 1, "amount": 99.50, "weighted_amount": 9.95}));
    assert_eq!(all[1]["totals"]["deals"], 3);
}

#[test]
fn time_in_stage_statistics() {
    let tl = timeline(&january());
    let s = Settings::default();
    let report = json_of(&stages::time_in_stage(&tl, &s, view("2024-01-16", None), false, false));
    // prospecting: A 9 days, C 1, D 4, E 2 (ended by the loss): an even count.
    assert_eq!(
        report["stages"][0],
        json!({"stage": "prospecting", "completed": 4, "mean_days": 4.0, "median_days": 3.0,
               "p90_days": 9.0, "max_days": 9.0, "open": 0})
    );
    // qualifying: B 3 days then 4 (after requalification), C 0 (the tie); D still there.
    assert_eq!(
        report["stages"][1],
        json!({"stage": "qualifying", "completed": 3, "mean_days": 2.333333, "median_days": 3.0,
               "p90_days": 4.0, "max_days": 4.0, "open": 1})
    );
    assert_eq!(
        report["stages"][2],
        json!({"stage": "quote", "completed": 0, "mean_days": null, "median_days": null,
               "p90_days": null, "max_days": null, "open": 2})
    );
    assert_eq!(report["stages"][3]["completed"], 1);
    assert_eq!(report["stages"][3]["mean_days"], 2.0);

    // Known on 01-16, A is still in prospecting: its 9-day visit is open, not completed.
    let then = json_of(&stages::time_in_stage(&tl, &s, view("2024-01-16", Some("2024-01-16")), false, false));
    assert_eq!(then["stages"][0]["completed"], 3);
    assert_eq!(then["stages"][0]["open"], 1);

    let detail = stages::time_in_stage(&tl, &s, view("2024-01-16", None), true, true);
    let detail = json_of(&detail);
    let b = detail["deals"].as_array().unwrap().iter().find(|d| d["deal"] == "B").unwrap();
    assert_eq!(b["stages"], json!([{"stage": "qualifying", "days": 7.0}, {"stage": "closing", "days": 2.0}]));
    let a = detail["deals"].as_array().unwrap().iter().find(|d| d["deal"] == "A").unwrap();
    // The open visit counts up to as-of: quote from 01-10 to 01-16.
    assert_eq!(a["stages"], json!([{"stage": "prospecting", "days": 9.0}, {"stage": "quote", "days": 6.0}]));
    let owners = detail["by_owner"].as_array().unwrap();
    assert_eq!(owners.iter().map(|o| o["owner"].as_str().unwrap()).collect::<Vec<_>>(), ["bob", "cat"]);
    assert_eq!(owners[1]["stages"][0]["completed"], 1);
}

#[test]
fn kpis_over_a_period() {
    let tl = timeline(&january());
    let s = Settings::default();
    let report = kpis::kpis(
        &tl,
        &s,
        t("2024-01-01"),
        t("2024-02-01"),
        Timestamp::MAX,
        None,
        Some(Decimal::parse("540").unwrap()),
    )
    .unwrap();
    let k = json_of(&report);
    let expected = json!({
        "from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z", "known_at": k["known_at"],
        "currency": "USD", "currencies": ["USD"],
        // Touches and amounts under every figure, a period inside the history: nothing to say.
        "notes": [], "offer": null,
        "won": 1, "lost": 1, "disqualified": 0, "close_rate": 0.5,
        "revenue": 600.00, "avg_deal_size": 600.00, "avg_cycle_days": 12.0,
        "opportunities_created": 5, "pipeline_generated": 1950.00,
        // First outbound touch: A 6 h, B 3 h, C 72 h, E 24 h.
        "avg_first_response_hours": 26.25,
        "stage_conversion": [
            {"stage": "prospecting", "entered": 4, "advanced": 3, "rate": 0.75},
            {"stage": "qualifying", "entered": 3, "advanced": 2, "rate": 0.666667},
            {"stage": "quote", "entered": 2, "advanced": 0, "rate": 0.0},
            {"stage": "closing", "entered": 1, "advanced": 1, "rate": 1.0},
        ],
        // Sorted 3, 6, 24, 72: the median is the mean of 6 and 24; the p90 is rank ceil(3.6) = 4.
        "first_response_hours_median": 15.0, "first_response_hours_p90": 72.0,
        // Won 1, lost 1 (the disqualification of B was undone and does not count).
        "win_rate": 0.5,
        // 5 opportunities x 0.5 x 600.00 / 12 days.
        "sales_velocity": 125.00,
        // No [costs.spend]: no spend, no CAC.
        "spend": null, "cac": null,
        // |600 - 540| / 600 x 100.
        "forecast_accuracy": 10.0,
        // Owners as of 02-01: E went to cat on 01-02. The default quota of 1,000,000.00 over 31
        // of 365 days is 84,931.51; 250 days of 8 hours over 31 of 365 days are 169.863014 h.
        // bob's touches: A 5 (email), B 15 + 15 (calls), C 5 + 5 (emails); cat's (E's): 30 + 5 +
        // 5 + 20 + 15.
        "by_owner_currency": "USD",
        "by_owner": [
            {"owner": "bob", "won": 1, "lost": 0, "win_rate": 1.0, "revenue": 600.00,
             "quota": 84931.51, "quota_attainment": 0.007065, "touch_minutes": 45,
             "working_hours": 169.863014, "selling_time_share": 0.004415},
            {"owner": "cat", "won": 0, "lost": 1, "win_rate": 0.0, "revenue": 0.00,
             "quota": 84931.51, "quota_attainment": 0.0, "touch_minutes": 75,
             "working_hours": 169.863014, "selling_time_share": 0.007359},
        ],
    });
    assert_eq!(k, expected);
    // A forecast with more decimals than the currency has is compared exactly, not rounded.
    let fine = kpis::kpis(
        &tl,
        &s,
        t("2024-01-01"),
        t("2024-02-01"),
        Timestamp::MAX,
        None,
        Decimal::parse("540.005").ok(),
    )
    .unwrap();
    assert_eq!(json_of(&fine)["forecast_accuracy"], 9.999167);

    // Up to 01-14 (exclusive) B is not won yet: only E closed, so the close rate is 0.
    let early =
        json_of(&kpis::kpis(&tl, &s, t("2024-01-01"), t("2024-01-14"), Timestamp::MAX, None, None).unwrap());
    assert_eq!(
        (early["won"].clone(), early["lost"].clone(), early["close_rate"].clone()),
        (json!(0), json!(1), json!(0.0))
    );
    assert_eq!(early["avg_deal_size"], Value::Null);
    assert_eq!(early["avg_cycle_days"], Value::Null);
    assert!(early.get("forecast_accuracy").is_none());
    // A period with nothing in it: every ratio is null.
    let empty =
        json_of(&kpis::kpis(&tl, &s, t("2023-01-01"), t("2023-02-01"), Timestamp::MAX, None, None).unwrap());
    assert_eq!(empty["close_rate"], Value::Null);
    assert_eq!(empty["avg_first_response_hours"], Value::Null);
    assert_eq!(empty["stage_conversion"][0]["rate"], Value::Null);
    for key in ["first_response_hours_median", "first_response_hours_p90", "win_rate", "sales_velocity"] {
        assert_eq!(empty[key], Value::Null, "{key}");
    }
}

#[test]
fn kpis_with_spend_and_owner_rates() {
    let tl = timeline(&january());
    let s = settings_of(
        "[costs]\nworking_hours = 8\n[costs.owners.cat]\nquota = 365000\nworking_hours = 6\n\
         [costs.owners.dan]\nquota = 730000\n[costs.spend]\n\"2024-01\" = 3100\n\"2024-03\" = 9999\n",
    )
    .unwrap();
    let k =
        json_of(&kpis::kpis(&tl, &s, t("2024-01-01"), t("2024-02-01"), Timestamp::MAX, None, None).unwrap());
    // January's spend whole, over the 1 deal won in it. March does not overlap the period.
    assert_eq!((k["spend"].clone(), k["cac"].clone()), (json!(3100.00), json!(3100.00)));
    let owners: Vec<Value> = k["by_owner"].as_array().unwrap().clone();
    // dan has rates but no deals: a row of zeros, his quota prorated all the same.
    assert_eq!(
        owners.iter().map(|o| o["owner"].as_str().unwrap()).collect::<Vec<_>>(),
        ["bob", "cat", "dan"]
    );
    // cat: 365,000.00 over 31 of 365 days is 31,000.00; 250 days of 6 hours over 31 days are
    // 127.39726 h, and her 75 minutes are 75 / (127.39726 x 60) of them.
    assert_eq!(
        (
            owners[1]["quota"].clone(),
            owners[1]["working_hours"].clone(),
            owners[1]["selling_time_share"].clone()
        ),
        (json!(31000.00), json!(127.39726), json!(0.009812))
    );
    assert_eq!(
        (
            owners[2]["quota"].clone(),
            owners[2]["quota_attainment"].clone(),
            owners[2]["touch_minutes"].clone()
        ),
        (json!(62000.00), json!(0.0), json!(0))
    );
    assert_eq!(owners[2]["win_rate"], Value::Null);
    // From 01-16: 16 of January's 31 days of spend (1,600.00), and no deal won (B was won on
    // 01-14): a spend, but no CAC.
    let late =
        json_of(&kpis::kpis(&tl, &s, t("2024-01-16"), t("2024-02-01"), Timestamp::MAX, None, None).unwrap());
    assert_eq!((late["spend"].clone(), late["cac"].clone()), (json!(1600.00), Value::Null));
    // Every touch was before 01-16: none counts toward the later period's selling time.
    assert_eq!(late["by_owner"][0]["touch_minutes"], 0);
    assert_eq!(late["by_owner"][0]["selling_time_share"], 0.0);
    // A period no month of spend overlaps: no spend at all, not a spend of zero.
    let feb =
        json_of(&kpis::kpis(&tl, &s, t("2024-02-01"), t("2024-03-01"), Timestamp::MAX, None, None).unwrap());
    assert_eq!(feb["spend"], Value::Null);
}

#[test]
fn bad_deal_cost_uses_the_seed_rates() {
    let tl = timeline(&january());
    let report = cost::bad_deal_cost(
        &tl,
        &Settings::default(),
        t("2024-01-01"),
        t("2024-02-01"),
        Timestamp::MAX,
        false,
    );
    let c = json_of(&report);
    // E: 60 minutes before its loss (the call after it does not count), owner cat at the end:
    // one hour at $1,000,000 / 500 h = $2,000, 10% commission.
    assert_eq!(
        c["by_owner"],
        json!([{"owner": "cat", "bad_deals": 1, "effort_hours": 1.0, "time_cost": 2000.00,
                "commission_cost": 200.00, "hourly_value": 2000.00}])
    );
    assert_eq!(
        c["totals"],
        json!({"bad_deals": 1, "effort_hours": 1.0, "time_cost": 2000.00, "commission_cost": 200.00})
    );
    // Per-owner rates: cat's quota is half, her hour is $1,000; the commission rate 8%.
    let settings =
        settings_of("[costs]\ncommission_rate = 0.08\n[costs.owners.cat]\nquota = 500000\n").unwrap();
    let c = json_of(&cost::bad_deal_cost(
        &tl,
        &settings,
        t("2024-01-01"),
        t("2024-02-01"),
        Timestamp::MAX,
        false,
    ));
    assert_eq!(
        c["totals"],
        json!({"bad_deals": 1, "effort_hours": 1.0, "time_cost": 1000.00, "commission_cost": 80.00})
    );
    // A period that ends before the loss: nothing.
    let c = json_of(&cost::bad_deal_cost(
        &tl,
        &settings,
        t("2024-01-01"),
        t("2024-01-03"),
        Timestamp::MAX,
        false,
    ));
    assert_eq!(c["totals"]["bad_deals"], 0);
    assert_eq!(c["by_owner"], json!([]));
}

#[test]
fn flags_on_open_deals() {
    let tl = timeline(&january());
    let settings = settings_of(
        "[flags]\nlate_stage_deals_max = 1\n[exit_criteria]\nqualifying = [\"budget_confirmed\"]\n",
    )
    .unwrap();
    let report = json_of(&flags::flags(&tl, &settings, view("2024-01-16", None)));
    let got: Vec<(String, String, String, f64)> = report["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["deal"].as_str().unwrap_or("-").to_string(),
                f["rule"].as_str().unwrap().to_string(),
                f["since"].as_str().unwrap().to_string(),
                f["figure"].as_f64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, String, f64)> = [
        ("A", "gone_dark", "2024-01-15T00:00:00Z", 15.0),
        ("A", "missing_exit_criteria", "2024-01-10T00:00:00Z", 1.0),
        ("A", "no_activity", "2024-01-11T06:00:00Z", 14.75),
        ("A", "not_enough_contacts", "2024-01-10T00:00:00Z", 0.0),
        ("A", "past_close_date", "2024-01-13T00:00:00Z", 3.0),
        // Exactly 10 days without a touch: the limit is reached.
        ("C", "no_activity", "2024-01-16T00:00:00Z", 10.0),
        ("D", "gone_dark", "2024-01-15T00:00:00Z", 15.0),
        ("D", "no_activity", "2024-01-11T00:00:00Z", 15.0),
        // 11 days in qualifying against a p90 of 4 days (B's 3 and 4, C's 0).
        ("D", "stalled", "2024-01-09T00:00:00Z", 11.0),
        // bob has A and C in quote; the second arrived on 01-10.
        ("-", "late_stage_pileup", "2024-01-10T00:00:00Z", 2.0),
    ]
    .iter()
    .map(|&(d, r, s, f)| (d.to_string(), r.to_string(), s.to_string(), f))
    .collect();
    assert_eq!(got, want);
    assert_eq!(report["flags"][9]["owner"], "bob");
    assert_eq!(report["flags"][9]["deal"], Value::Null);
    assert_eq!(report["flags"][1]["detail"], "left qualifying without budget_confirmed");
}

#[test]
fn every_report_renders_in_every_format() {
    let tl: Timeline = timeline(&january());
    let s = Settings::default();
    let v = view("2024-01-16", None);
    let (from, to) = (t("2024-01-01"), t("2024-02-01"));
    let outputs = |f: Format| {
        [
            render(&pipeline::pipeline(&tl, &s, v, None).unwrap(), f),
            render(&stages::time_in_stage(&tl, &s, v, false, false), f),
            render(&kpis::kpis(&tl, &s, from, to, Timestamp::MAX, None, None).unwrap(), f),
            render(&cost::bad_deal_cost(&tl, &s, from, to, Timestamp::MAX, false), f),
            render(&flags::flags(&tl, &s, v), f),
        ]
    };
    let csv = outputs(Format::Csv);
    assert_eq!(
        csv[0].lines().take(3).collect::<Vec<_>>(),
        [
            "currency,stage,deals,amount,weighted_amount",
            "USD,prospecting,0,0.00,0.00",
            "USD,qualifying,1,300.00,75.00"
        ]
    );
    assert_eq!(csv[1].lines().next(), Some("stage,completed,mean_days,median_days,p90_days,max_days,open"));
    assert_eq!(csv[1].lines().nth(3), Some("quote,0,,,,,2"));
    assert!(csv[2].starts_with("currency,won,lost,disqualified,close_rate,revenue,"));
    assert_eq!(
        csv[3],
        "owner,bad_deals,effort_hours,hourly_value,time_cost,commission_cost\n\
         cat,1,1,2000.00,2000.00,200.00\n(total),1,1,,2000.00,200.00\n"
    );
    assert!(
        csv[4].starts_with("deal,owner,rule,since,figure,detail\nA,bob,gone_dark,2024-01-15T00:00:00Z,15,")
    );
    let table = outputs(Format::Table);
    assert!(table[0].contains("quote            2  2,100.00 USD"), "{}", table[0]);
    assert!(table[3].contains("cat              1            1.00  2,000.00 USD"), "{}", table[3]);
    for json in outputs(Format::Json) {
        serde_json::from_str::<Value>(&json).unwrap();
    }
}

/// Settings from the text of a dealledger.toml, as the binary reads them.
fn settings_of(text: &str) -> Result<Settings, String> {
    let config = dealledger_config::Config::parse(text, "dealledger.toml").map_err(|e| e.to_string())?;
    settings_from_config(&config).map_err(|e| e.reason())
}

// ---- What a figure stands on (issue 24) ------------------------------------------------------

/// The cells of a CSV text, every line.
fn csv_cells(text: &str) -> Vec<String> {
    text.lines().flat_map(|line| line.split(',').map(str::to_string).collect::<Vec<_>>()).collect()
}

#[test]
fn a_period_without_bad_deals_has_no_negative_zero_and_totals_are_exact() {
    let tl = timeline(&january());
    let s = Settings::default();
    let empty = cost::bad_deal_cost(&tl, &s, t("2023-01-01"), t("2023-02-01"), Timestamp::MAX, false);
    assert_eq!(json_of(&empty)["totals"]["effort_hours"].to_string(), "0.0");
    let table = render(&empty, Format::Table);
    assert!(!table.contains("-0.0"), "{table}");
    let csv = render(&empty, Format::Csv);
    assert!(!csv_cells(&csv).iter().any(|c| c.starts_with("-0")), "{csv}");
    // Three owners with a minute each: the total is 3 minutes (0.05 h), not the sum of three
    // rounded 0.016667 h.
    let mut lines = Vec::new();
    for owner in ["x", "y", "z"] {
        lines.push(e(owner, "opened", "2024-01-01", &format!(r#""owner":"{owner}","amount":1"#)));
        lines.push(e(owner, "touch", "2024-01-02", r#""channel":"call","direction":"outbound","minutes":1"#));
        lines.push(e(owner, "lost", "2024-01-03", r#""reason":"price""#));
    }
    let three = json_of(&cost::bad_deal_cost(
        &timeline(&lines),
        &s,
        t("2024-01-01"),
        t("2024-02-01"),
        Timestamp::MAX,
        false,
    ));
    assert_eq!(three["by_owner"][0]["effort_hours"], 0.016667);
    assert_eq!(three["totals"]["effort_hours"], 0.05);
}

#[test]
fn the_flags_report_counts_the_deals_it_flags() {
    let tl = timeline(&january());
    let report = json_of(&flags::flags(&tl, &Settings::default(), view("2024-01-16", None)));
    let deals: std::collections::BTreeSet<&str> =
        report["flags"].as_array().unwrap().iter().filter_map(|f| f["deal"].as_str()).collect();
    assert_eq!(report["deals_flagged"], deals.len());
    assert_eq!(deals.len(), 3, "A, C and D");
    // A count of one is said in the singular, in every detail.
    let text = render(&flags::flags(&tl, &Settings::default(), view("2024-01-16", None)), Format::Table);
    assert!(!text.contains(" 1 contacts"), "{text}");
    let one_contact = vec![
        e("A", "opened", "2024-01-01", r#""owner":"bob","amount":1,"stage":"quote""#),
        e("A", "touch", "2024-01-02", r#""channel":"email","direction":"inbound","contact":"x@a""#),
    ];
    let report = render(
        &flags::flags(&timeline(&one_contact), &Settings::default(), view("2024-01-03", None)),
        Format::Table,
    );
    assert!(report.contains("1 contact by quote (minimum 2)"), "{report}");
    assert!(report.contains(": 1 open deal needs a decision"), "{report}");
}

#[test]
fn a_currency_asked_is_the_only_one_shown_and_one_not_there_is_refused() {
    let mut lines = january();
    lines.push(e("F", "opened", "2024-01-02", r#""owner":"bob","amount":"99.5","currency":"EUR""#));
    let tl = timeline(&lines);
    let s = Settings::default();
    let asked = |currency: &str| Params { currency: Some(currency.into()), ..Params::default() };
    let now = t("2024-01-16");
    for name in [ReportName::Pipeline, ReportName::Kpis] {
        let period = |p: Params| match name {
            ReportName::Kpis => {
                Params { from: Some("2024-01-01".into()), to: Some("2024-02-01".into()), ..p }
            }
            _ => p,
        };
        let eur = answer(name, &period(asked("EUR")), &tl, &s, now, Format::Json).unwrap();
        let eur: Value = serde_json::from_str(&eur.text).unwrap();
        assert_eq!(eur["currency"], "EUR");
        assert!(eur.get("by_currency").is_none(), "{eur}");
        assert_eq!(eur["currencies"], json!(["EUR", "USD"]));
        let table = answer(name, &period(asked("EUR")), &tl, &s, now, Format::Table).unwrap().text;
        assert!(table.contains("(EUR)") && !table.contains("(USD)"), "{table}");
        let refused = answer(name, &period(asked("ZZZ")), &tl, &s, now, Format::Json).unwrap_err();
        assert_eq!(refused.param, "currency");
        assert!(refused.reason.contains("EUR, USD"), "{}", refused.reason);
        // Not asked: every currency, the configured one leading.
        let all: Value = serde_json::from_str(
            &answer(name, &period(Params::default()), &tl, &s, now, Format::Json).unwrap().text,
        )
        .unwrap();
        assert_eq!(all["currency"], "USD");
        assert_eq!(all["by_currency"].as_array().unwrap().len(), 2);
    }
}

#[test]
fn stage_conversion_follows_the_order_of_entry_at_one_instant() {
    // Into quote and back to qualifying at one instant: qualifying was entered after quote, so
    // the deal did not advance from qualifying (docs/metrics.md: events at one instant apply in
    // the order they were appended).
    let lines = vec![
        e("Q", "opened", "2024-01-01", r#""owner":"bob","amount":1"#),
        e("Q", "stage_moved", "2024-01-05", r#""to":"quote""#),
        e("Q", "stage_moved", "2024-01-05", r#""to":"qualifying""#),
    ];
    let k = json_of(
        &kpis::kpis(
            &timeline(&lines),
            &Settings::default(),
            t("2024-01-01"),
            t("2024-02-01"),
            Timestamp::MAX,
            None,
            None,
        )
        .unwrap(),
    );
    let conversion: Vec<(u64, u64)> = k["stage_conversion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["entered"].as_u64().unwrap(), s["advanced"].as_u64().unwrap()))
        .collect();
    assert_eq!(conversion, [(1, 1), (1, 0), (1, 0), (0, 0)]);
}

#[test]
fn a_moment_long_after_the_last_event_says_so_and_offers_the_last_event() {
    // January's last event is at 2024-01-15 (A's amount change).
    let tl = timeline(&january());
    let s = Settings::default();
    let late = view("2024-03-01", None);
    for report in [
        json_of(&flags::flags(&tl, &s, late)),
        json_of(&pipeline::pipeline(&tl, &s, late, None).unwrap()),
        json_of(&stages::time_in_stage(&tl, &s, late, false, false)),
    ] {
        let notes = report["notes"].to_string();
        assert!(notes.contains("2024-01-15T00:00:00Z"), "{notes}");
        assert_eq!(report["offer"], json!({"as_of": "2024-01-15T00:00:00Z"}));
    }
    // A day after the last event: nothing to say.
    let near = json_of(&flags::flags(&tl, &s, view("2024-01-16", None)));
    assert_eq!((near["notes"].clone(), near["offer"].clone()), (json!([]), Value::Null));
    // A period after the history: the period of the same length that ends with the last
    // event's day.
    for report in [
        json_of(&kpis::kpis(&tl, &s, t("2024-03-01"), t("2024-04-01"), Timestamp::MAX, None, None).unwrap()),
        json_of(&cost::bad_deal_cost(&tl, &s, t("2024-03-01"), t("2024-04-01"), Timestamp::MAX, false)),
    ] {
        assert!(report["notes"].to_string().contains("2024-01-15T00:00:00Z"), "{report}");
        assert_eq!(report["offer"], json!({"from": "2023-12-16T00:00:00Z", "to": "2024-01-16T00:00:00Z"}));
    }
    // The table says it too, with the flags to type.
    let text = render(&flags::flags(&tl, &s, late), Format::Table);
    assert!(text.contains("--as-of 2024-01-15T00:00:00Z"), "{text}");
}

/// Deals with neither touches nor amounts: what an opportunities export often gives.
fn bare() -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..4 {
        let deal = format!("N{i}");
        lines.push(e(&deal, "opened", "2024-01-01", r#""owner":"bob","amount":0,"stage":"quote""#));
        match i {
            0 => lines.push(e(&deal, "won", "2024-01-10", "")),
            1 => lines.push(e(&deal, "lost", "2024-01-10", r#""reason":"price""#)),
            _ => {}
        }
    }
    lines
}

#[test]
fn figures_with_nothing_under_them_say_so() {
    let tl = timeline(&bare());
    let s = Settings::default();
    let v = view("2024-01-12", None);
    let notes = |report: &Value| report["notes"].to_string();
    let pipeline = json_of(&pipeline::pipeline(&tl, &s, v, None).unwrap());
    assert!(notes(&pipeline).contains("none of the 2 open deals"), "{}", notes(&pipeline));
    let kpis =
        json_of(&kpis::kpis(&tl, &s, t("2024-01-01"), t("2024-02-01"), Timestamp::MAX, None, None).unwrap());
    assert!(notes(&kpis).contains("no touches"), "{}", notes(&kpis));
    assert!(notes(&kpis).contains("won deal"), "{}", notes(&kpis));
    // Selling time is not 0 % where nothing was recorded: it is unknown.
    assert_eq!(kpis["by_owner"][0]["selling_time_share"], Value::Null);
    let cost =
        json_of(&cost::bad_deal_cost(&tl, &s, t("2024-01-01"), t("2024-02-01"), Timestamp::MAX, false));
    assert!(notes(&cost).contains("no touches"), "{}", notes(&cost));
    // Flags that count touches are not raised on a history that has none: every deal would be
    // "gone dark" for want of data.
    let flags = json_of(&flags::flags(&tl, &s, v));
    assert!(notes(&flags).contains("no touches"), "{}", notes(&flags));
    let rules: Vec<&str> =
        flags["flags"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    for rule in ["gone_dark", "no_activity", "not_enough_contacts"] {
        assert!(!rules.contains(&rule), "{rule}: {rules:?}");
    }
    // Every format says it: the table beside the figures, JSON in `notes`.
    let text = render(
        &cost::bad_deal_cost(&tl, &s, t("2024-01-01"), t("2024-02-01"), Timestamp::MAX, false),
        Format::Table,
    );
    assert!(text.contains("note: ") && text.contains("no touches"), "{text}");
}

#[test]
fn bad_deal_cost_leads_with_the_costliest_owner_and_lists_the_costliest_deals() {
    let mut lines = january();
    lines.push(e("G", "opened", "2024-01-01", r#""owner":"zed","amount":10"#));
    lines.push(e("G", "touch", "2024-01-02", r#""channel":"meeting","direction":"outbound","minutes":120"#));
    lines.push(e("G", "disqualified", "2024-01-05", r#""reason":"no_budget""#));
    let tl = timeline(&lines);
    let report = json_of(&cost::bad_deal_cost(
        &tl,
        &Settings::default(),
        t("2024-01-01"),
        t("2024-02-01"),
        Timestamp::MAX,
        true,
    ));
    let owners: Vec<&str> =
        report["by_owner"].as_array().unwrap().iter().map(|o| o["owner"].as_str().unwrap()).collect();
    assert_eq!(owners, ["zed", "cat"], "by time cost, the costliest first");
    assert_eq!(
        report["deals"],
        json!([
            {"deal": "G", "owner": "zed", "outcome": "disqualified", "ended_at": "2024-01-05T00:00:00Z", "effort_hours": 2.0, "time_cost": 4000.00},
            {"deal": "E", "owner": "cat", "outcome": "lost", "ended_at": "2024-01-03T00:00:00Z", "effort_hours": 1.0, "time_cost": 2000.00},
        ])
    );
}

#[test]
fn headings_and_titles_read_as_people_write() {
    let tl = timeline(&january());
    let s = Settings::default();
    let stages =
        render(&stages::time_in_stage(&tl, &s, view("2024-01-09", None), false, false), Format::Table);
    assert!(!stages.contains("open now"), "a column under --as-of is not `now`: {stages}");
    // Rates shown as percentages say so.
    let kpis = render(
        &kpis::kpis(&tl, &s, t("2024-01-01"), t("2024-02-01"), Timestamp::MAX, None, None).unwrap(),
        Format::Table,
    );
    assert!(kpis.contains("close rate (%, won / closed)") && kpis.contains("50.0"), "{kpis}");
    // Counts in titles are grouped like every figure.
    let mut many = Vec::new();
    for i in 0..1200 {
        many.push(e(&format!("W{i}"), "opened", "2024-01-01", r#""owner":"bob","amount":1"#));
        many.push(e(&format!("W{i}"), "won", "2024-01-02", ""));
    }
    let title = render(
        &pipeline::pipeline(&timeline(&many), &s, view("2024-01-09", None), None).unwrap(),
        Format::Table,
    );
    assert!(title.contains("won 1,200"), "{title}");
}

//! The importers on the project's own fixtures (tests/fixtures, one folder per format, a few
//! dozen hand-made rows each): exact counts of deals, events and skipped rows of each kind, the
//! events that carry the interesting cases, and that every history is one the ledger admits.
//! They always run; datasets.rs runs the same importers on the real exports when they are there.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test code: a panic is a failing test"
)]

mod common;

use common::{admit_all, census, counts, fixture, history, json, options_of, pipedrive_options};
use dealledger_events::Pipeline;
use dealledger_import::{field_changes, opportunities, salesforce, Options};

#[test]
fn opportunities_csv_fixture() {
    // Starts with a BOM, as spreadsheet exports do.
    let imported =
        opportunities::import(&[fixture("opportunities-csv/sales_pipeline.csv")], &Options::default())
            .unwrap();
    let c = census(&imported);
    // 25 rows: 8 Won, 6 Lost, 5 Engaging (open), 4 Prospecting without dates (skipped), a Won
    // row without a close date and a Lost row with `TBD` (opened, their outcome skipped).
    assert_eq!(c.deals, 21);
    assert_eq!(c.types, counts(&[("opened", 21), ("won", 8), ("lost", 6)]));
    assert_eq!(c.skipped, counts(&[("no_date", 6)]));
    admit_all(&imported, &Pipeline::default());
    // M/D/YYYY and YYYY-MM-DD dates; the name is "account / product", or the product alone.
    let opened = json(&imported, "MVW00005", "opened");
    assert_eq!(
        (opened["at"].as_str(), opened["name"].as_str()),
        (Some("2023-12-04T00:00:00Z"), Some("Oakfield Dental / MG Advanced"))
    );
    assert_eq!(json(&imported, "MVW00006", "opened")["name"], "GTX Plus Pro");
    assert_eq!(json(&imported, "MVW00007", "won")["at"], "2024-02-29T00:00:00Z");
    // An empty close value is an amount of 0; cents are kept.
    assert_eq!(json(&imported, "MVW00007", "won")["amount"].as_f64(), Some(0.0));
    assert_eq!(json(&imported, "MVW00008", "won")["amount"].as_f64(), Some(4750.5));
    assert_eq!(history(&imported, "MVE00001"), ["opened"]);
    let reasons: Vec<&str> = imported.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert!(
        reasons.contains(&"deal MVX00002 (Lost): no valid close date (`TBD`), so no outcome"),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"deal MVP00001 (Prospecting): no engage date, so no opening moment"),
        "{reasons:?}"
    );
}

#[test]
fn salesforce_history_fixture() {
    let files =
        [fixture("salesforce-history/OpportunityHistory.csv"), fixture("salesforce-history/Opportunity.csv")];
    let imported = salesforce::import(&files, &Options::default()).unwrap();
    let c = census(&imported);
    // 29 rows of 12 opportunities; one row is deleted (IsDeleted 1) and left out, two change
    // only the probability.
    assert_eq!(c.deals, 12);
    assert_eq!(
        c.types,
        counts(&[
            ("opened", 12),
            ("stage_moved", 4),
            ("amount_changed", 3),
            ("close_date_changed", 9),
            ("won", 5),
            ("lost", 3),
            ("requalified", 2),
        ])
    );
    assert_eq!(c.skipped, counts(&[("probability_only", 2)]));
    admit_all(&imported, &Pipeline::default());
    let deal = |n: u32| format!("006Fx00000O{n:04}AAV");
    // The whole journey: Qualification maps to the same stage as Prospecting (probability
    // only); a won row with a new amount carries it on the won event.
    assert_eq!(
        history(&imported, &deal(1)),
        ["opened", "stage_moved", "stage_moved", "amount_changed", "won", "close_date_changed"]
    );
    assert_eq!(json(&imported, &deal(1), "won")["amount"].as_f64(), Some(25500.0));
    // First seen Closed Won (API timestamp): opened in the last stage and won at once; the
    // owner and the name come from Opportunity.csv.
    assert_eq!(history(&imported, &deal(2)), ["opened", "won"]);
    let opened = json(&imported, &deal(2), "opened");
    assert_eq!(opened["stage"], "closing");
    assert_eq!(opened["at"], "2024-01-10T08:15:00Z");
    assert_eq!(opened["owner"], "005Fx00000U0004AAQ");
    assert_eq!(opened["name"], "Bluebird Clinics Scheduling Add-on");
    // Lost, requalified into the stage of the row that reopened it, then won.
    assert_eq!(
        history(&imported, &deal(3)),
        [
            "opened",
            "lost",
            "close_date_changed",
            "requalified",
            "amount_changed",
            "close_date_changed",
            "won",
            "close_date_changed"
        ]
    );
    assert_eq!(json(&imported, &deal(3), "lost")["reason"], "Closed Lost");
    assert_eq!(json(&imported, &deal(3), "requalified")["stage"], "closing");
    // Rows that move only the close date.
    assert_eq!(history(&imported, &deal(4)), ["opened", "close_date_changed", "close_date_changed"]);
    // The deleted row would have been a stage move.
    assert_eq!(history(&imported, &deal(6)), ["opened"]);
    // First seen Closed Lost with no amount: opened with 0.
    assert_eq!(json(&imported, &deal(7), "opened")["amount"].as_f64(), Some(0.0));
    // Ties in CreatedDate keep the file's order; the first row has no close date.
    assert_eq!(history(&imported, &deal(8)), ["opened", "stage_moved", "close_date_changed"]);
    assert!(json(&imported, &deal(8), "opened").get("close_date").is_none());
    // Rows out of order in the file are taken in time order.
    assert_eq!(history(&imported, &deal(9)), ["opened", "won", "close_date_changed"]);
    assert_eq!(json(&imported, &deal(9), "opened")["stage"], "prospecting");
    // Not in Opportunity.csv: the creator is the owner, and there is no name.
    let opened = json(&imported, &deal(10), "opened");
    assert_eq!((opened["owner"].as_str(), opened.get("name")), (Some("005Fx00000U0003AAQ"), None));
    // Closed Lost, then Closed Won: requalified into the last stage, then won.
    assert_eq!(history(&imported, &deal(11)), ["opened", "lost", "requalified", "won", "close_date_changed"]);
    // Offsets: -05:00 on the 8th is before 01:00Z on the 9th, whatever the file order.
    assert_eq!(history(&imported, &deal(12)), ["opened", "stage_moved"]);
    assert_eq!(json(&imported, &deal(12), "opened")["at"], "2024-02-08T23:30:00Z");
}

#[test]
fn salesforce_unmapped_stage_is_a_clear_error() {
    let path = fixture("salesforce-history-unmapped-stage/OpportunityHistory.csv");
    let err = salesforce::import(std::slice::from_ref(&path), &Options::default()).unwrap_err().to_string();
    assert!(err.contains("1 stage of the export is not mapped"), "{err}");
    assert!(err.contains("\n[import.stages]\n\"Pitching\" = \"\""), "{err}");
    assert!(err.contains("OpportunityHistory.csv:3"), "{err}");
    let options = options_of("[import.stages]\nPitching = \"quote\"\n").unwrap();
    let imported = salesforce::import(&[path], &options).unwrap();
    assert_eq!(census(&imported).types, counts(&[("opened", 1), ("stage_moved", 1)]));
}

fn field_change_files() -> Vec<std::path::PathBuf> {
    // In no particular order: each file is told apart by its header.
    ["activity.csv", "stages.csv", "deal_changes.csv", "activity_types.csv", "fields.csv"]
        .iter()
        .map(|f| fixture(&format!("field-changes/{f}")))
        .collect()
}

#[test]
fn field_changes_fixture() {
    let options = pipedrive_options();
    let imported = field_changes::import(&field_change_files(), &options).unwrap();
    let c = census(&imported);
    // 41 changes of 6 deals and 12 activities.
    assert_eq!(c.deals, 6);
    assert_eq!(
        c.types,
        counts(&[
            ("opened", 6),
            ("owner_changed", 4),
            ("stage_moved", 6),
            ("amount_changed", 2),
            ("close_date_changed", 2),
            ("won", 3),
            ("lost", 3),
            ("requalified", 1),
            ("touch", 6),
        ])
    );
    assert_eq!(
        c.skipped,
        counts(&[
            ("after_won", 1),
            ("already_closed", 4),
            ("before_creation", 2),
            ("no_date", 2),
            ("not_done", 3),
            ("owner_unchanged", 2),
            ("same_stage", 2),
            ("second_creation", 1),
            ("unknown_deal", 1),
            ("unmapped_field", 1),
            ("unmapped_value", 1),
        ])
    );
    admit_all(&imported, &options.pipeline);
    // Won through a stage mapped to won; later stage and lost_reason rows are skipped.
    assert_eq!(
        history(&imported, "700101"),
        ["opened", "owner_changed", "stage_moved", "touch", "stage_moved", "amount_changed", "touch", "won"]
    );
    // Lost with a label from fields.csv, requalified by a stage row, lost again.
    assert_eq!(
        history(&imported, "700102"),
        ["opened", "owner_changed", "stage_moved", "lost", "requalified", "stage_moved", "lost"]
    );
    assert_eq!(json(&imported, "700102", "lost")["reason"], "Pricing Issues");
    assert_eq!(json(&imported, "700102", "requalified")["stage"], "qualified");
    // Close dates as YYYY-MM-DD and M/D/YYYY; `status won`; a touch after the win.
    assert_eq!(
        history(&imported, "700103"),
        [
            "opened",
            "owner_changed",
            "amount_changed",
            "close_date_changed",
            "close_date_changed",
            "won",
            "touch"
        ]
    );
    assert_eq!(json(&imported, "700104", "lost")["reason"], "status lost");
    // Touches: the channel from the activity type's name, the user as actor (when given).
    let touches: Vec<(String, Option<String>)> = imported
        .rows
        .iter()
        .filter_map(|r| r.result.as_ref().ok())
        .filter(|s| s.event.body.kind().as_str() == "touch")
        .map(|s| {
            let mut text = String::new();
            dealledger_events::json::write_event_json(
                &mut text,
                &s.event,
                dealledger_events::Currency::USD,
                "",
            );
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            (v["channel"].as_str().unwrap().to_string(), v["actor"].as_str().map(str::to_string))
        })
        .collect();
    let touch = |channel: &str, actor: Option<&str>| (channel.to_string(), actor.map(str::to_string));
    assert_eq!(
        touches,
        [
            touch("call", Some("1202")),
            touch("meeting", Some("1202")),
            touch("demo", Some("1201")),
            touch("email", None),
            touch("other", Some("1201")),
            touch("other", Some("1203")),
        ]
    );
    assert_eq!(history(&imported, "700106"), ["opened", "won"]);
}

#[test]
fn field_changes_without_a_stage_map_names_every_unmapped_stage_at_once() {
    let err = field_changes::import(&field_change_files(), &Options::default()).unwrap_err().to_string();
    // One error, every stage of the export in it, as a block to paste into dealledger.toml.
    assert!(err.contains("9 stages of the export are not mapped"), "{err}");
    assert!(err.contains("[import.stages]"), "{err}");
    for stage in [
        "Lead Generation",
        "Qualified lead",
        "Needs Assessment",
        "Proposal/Quote Preparation",
        "Negotiation",
        "Closing",
        "Implementation/Onboarding",
        "Follow-up/Customer Success",
        "Renewal/Expansion",
    ] {
        assert!(err.contains(&format!("\n\"{stage}\" = \"\"")), "{stage}: {err}");
    }
    // Where each was first met, to look at.
    assert!(err.contains("deal_changes.csv:3"), "{err}");
    // The block, filled in as docs/examples/pipedrive.toml does, is taken.
    assert!(field_changes::import(&field_change_files(), &pipedrive_options()).is_ok());
}

#[test]
fn every_importer_says_when_the_source_recorded_each_fact() {
    // `recorded_at` is the source's time (the change log's, a snapshot's date column), never the
    // import's: "what we knew then" on an imported history is what the CRM knew then.
    let at_of = |imported: &dealledger_import::Imported| -> Vec<(String, Option<String>, String)> {
        imported
            .rows
            .iter()
            .map(|r| {
                let e = &r.result.as_ref().unwrap().event;
                (r.location.clone(), e.recorded_at.map(|t| t.to_string()), e.at.to_string())
            })
            .collect()
    };
    let opportunities =
        opportunities::import(&[fixture("opportunities-csv/sales_pipeline.csv")], &Options::default())
            .unwrap();
    for (location, recorded, at) in at_of(&opportunities) {
        assert_eq!(recorded.as_deref(), Some(at.as_str()), "{location}: a snapshot's date column");
    }
    let changes = field_changes::import(&field_change_files(), &pipedrive_options()).unwrap();
    let rows = at_of(&changes);
    assert!(rows.iter().all(|(_, recorded, _)| recorded.is_some()), "{rows:?}");
    // deal_changes.csv:4: `700101,2024-03-05 10:00:00,user_id,1201`: recorded at its change time.
    let owner = rows.iter().find(|(l, _, _)| l.ends_with("deal_changes.csv:4")).unwrap();
    assert_eq!(owner.1.as_deref(), Some("2024-03-05T10:00:00Z"));
    // activity.csv:2: due 2024-03-16T09:30:00, the only time the export gives an activity.
    let touch = rows.iter().find(|(l, _, _)| l.ends_with("activity.csv:2")).unwrap();
    assert_eq!(touch.1.as_deref(), Some("2024-03-16T09:30:00Z"));
    let files =
        [fixture("salesforce-history/OpportunityHistory.csv"), fixture("salesforce-history/Opportunity.csv")];
    for (location, recorded, at) in at_of(&salesforce::import(&files, &Options::default()).unwrap()) {
        assert_eq!(recorded.as_deref(), Some(at.as_str()), "{location}: CreatedDate");
    }
}

#[test]
fn skipped_rows_are_counted_by_kind() {
    let imported = field_changes::import(&field_change_files(), &pipedrive_options()).unwrap();
    let by_kind = imported.skipped_by_kind();
    assert_eq!(by_kind.get("already_closed"), Some(&4));
    assert_eq!(by_kind.values().sum::<u64>(), imported.skipped.len() as u64);
}

#[test]
fn salesforce_activities_fixture() {
    use dealledger_import::salesforce_activities;
    let dir = "salesforce-sample-activities";
    let files = ["Task.csv", "Event.csv", "EmailMessage.csv"].map(|f| fixture(&format!("{dir}/{f}")));
    let now = dealledger_events::Timestamp::parse_rfc3339("2018-12-01T00:00:00Z").unwrap();
    let imported = salesforce_activities::import(&files, now).unwrap();
    let c = census(&imported);
    // Tasks: two calls and a plain task; a meeting; two emails.
    assert_eq!(c.types, counts(&[("touch", 6)]));
    assert_eq!(
        c.skipped,
        counts(&[
            ("all_day", 1),
            ("deleted", 1),
            ("email_not_sent", 1),
            ("no_opportunity", 1),
            ("not_yet", 1),
            ("open_task", 1)
        ])
    );
    let touches: Vec<serde_json::Value> =
        imported.rows.iter().map(|row| common::event_json(&row.result.as_ref().unwrap().event)).collect();
    let by_source = |id: &str| touches.iter().find(|t| t["source_id"] == id).unwrap().clone();
    let call = by_source("salesforce:task:00T4600000Aa001AAA");
    assert_eq!(
        (&call["deal"], &call["at"], &call["channel"], &call["direction"], &call["minutes"]),
        (
            &"0064600000J5S5TAAV".into(),
            &"2018-10-14T17:16:45Z".into(),
            &"call".into(),
            &"outbound".into(),
            &30.into()
        )
    );
    // Logged half an hour after the call: that is when Salesforce knew of it.
    assert_eq!(call["recorded_at"], "2018-10-14T17:50:00Z");
    assert_eq!(call["contact"], "salesforce-0034600000Cc001AAA");
    // A plain task on its ActivityDate (no completion time), an `other` touch.
    let task = by_source("salesforce:task:00T4600000Aa006AAA");
    assert_eq!((&task["at"], &task["channel"]), (&"2018-10-26T00:00:00Z".into(), &"other".into()));
    assert_eq!(task["recorded_at"], "2018-10-26T16:00:00Z");
    let meeting = by_source("salesforce:event:00U4600000Bb001AAA");
    assert_eq!((&meeting["channel"], &meeting["minutes"]), (&"meeting".into(), &60.into()));
    // Booked before it happened: recorded when it happened, never before.
    assert_eq!(meeting["recorded_at"], "2018-10-25T14:00:00Z");
    assert_eq!(by_source("salesforce:email:02s4600000Dd001AAA")["direction"], "inbound");
    assert_eq!(by_source("salesforce:email:02s4600000Dd002AAA")["direction"], "outbound");
}

#[test]
fn salesforce_activities_need_a_known_header() {
    let err = dealledger_import::salesforce_activities::import(
        &[fixture("salesforce-history/Opportunity.csv")],
        dealledger_events::Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("Opportunity.csv:1") && err.contains("neither a Task, an Event nor an EmailMessage"),
        "{err}"
    );
}

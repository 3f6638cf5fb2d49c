//! `dealledger ingest --format CRM-EXPORT` through the binary: the shared datasets, all or
//! nothing, idempotent re-imports.

use crate::harness::Ledger;

fn dataset(path: &str) -> String {
    format!("{}/../shared/datasets/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn maven_export_imports_and_reimports_as_duplicates() {
    let l = Ledger::new();
    let file = dataset("maven-crm/sales_pipeline.csv");
    let run = l.run(&["ingest", "--format", "opportunities-csv", "--output", "json", &file]).ok();
    let summary = run.json();
    assert_eq!((summary["ingested"].as_u64(), summary["skipped"].as_u64()), (Some(15_011), Some(500)));
    assert!(run.stderr.contains("500 rows map to no event and were skipped"), "{}", run.stderr);
    assert!(run.stderr.contains("no engage date, so no opening moment [no_date]"), "{}", run.stderr);
    let stats = l.run(&["stats", "--format", "json"]).ok().json();
    assert_eq!((stats["events"].as_u64(), stats["deals"].as_u64()), (Some(15_011), Some(8_300)));
    let pipeline = l.run(&["report", "pipeline", "--as-of", "2018-01-01", "--format", "json"]).ok().json();
    assert_eq!(pipeline["closed"], serde_json::json!({"won": 4238, "lost": 2473, "disqualified": 0}));
    // The same export again: every event is a duplicate of itself.
    let again = l.run(&["ingest", "--format", "opportunities-csv", "--output", "json", &file]).ok().json();
    assert_eq!((again["ingested"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(15_011)));
}

#[test]
fn a_bad_row_stores_nothing_and_names_file_and_line() {
    let l = Ledger::new();
    let path = l.file(
        "pipeline.csv",
        &[
            "opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value",
            "A1,Ann,X,Acme,Won,1/2/2024,2/3/2024,100",
            "A2,Bob,X,Acme,Won,1/2/2024,2/3/2024,lots",
        ],
    );
    let run = l.run(&["ingest", "--format", "opportunities-csv", path.to_str().unwrap()]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("pipeline.csv:3: "), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was stored"), "{}", run.stderr);
    assert_eq!(l.head(), 0);
    // A missing column names what it looked for and how to map it.
    let path = l.file("other.csv", &["id,owner", "A1,Ann"]);
    let run = l.run(&["ingest", "--format", "opportunities-csv", path.to_str().unwrap()]);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("no column `opportunity_id` (for deal_id)"), "{}", run.stderr);
    let run = l.run(&[
        "ingest",
        "--format",
        "opportunities-csv",
        "--column",
        "deal_id=id",
        "--column",
        "owner=owner",
        path.to_str().unwrap(),
    ]);
    assert!(run.stderr.contains("no column `deal_stage` (for stage)"), "{}", run.stderr);
}

#[test]
fn salesforce_history_through_the_binary() {
    let l = Ledger::new();
    let summary = l
        .run(&[
            "ingest",
            "--format",
            "salesforce-history",
            "--output",
            "json",
            &dataset("salesforce-sample/OpportunityHistory.csv"),
            &dataset("salesforce-sample/Opportunity.csv"),
        ])
        .ok()
        .json();
    assert_eq!(summary["ingested"].as_u64(), Some(80));
    let history = l.run(&["audit", "deal", "0064600000J5S5VAAV", "--format", "json"]).ok().json();
    let types: Vec<&str> = history.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["opened", "won", "close_date_changed"]);
    assert_eq!(history[0]["name"], "Express Logistics Standby Generator");
    assert_eq!(history[2]["close_date"], "2018-07-06");
}

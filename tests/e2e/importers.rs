//! `dealledger ingest --format CRM-EXPORT` through the binary: the project's fixtures in every
//! format (always), the real exports of shared/datasets (when `DEALLEDGER_DATASETS` names that
//! folder), all or nothing, idempotent re-imports.

use crate::harness::find_number;
use crate::harness::Ledger;
use std::path::PathBuf;

/// The variable naming the folder of the shared CRM exports.
const DATASETS_VAR: &str = "DEALLEDGER_DATASETS";

/// A file of crates/import/tests/fixtures, the importers' own small exports.
pub(crate) fn fixture(path: &str) -> String {
    format!("{}/crates/import/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// The files `paths` (in the datasets folder) when `DEALLEDGER_DATASETS` is set; `None`, after
/// a note on stderr, when it is not. Set to a folder that is not there, or that lacks a file, it
/// fails naming the path: a mistyped variable must not pass as a skip.
pub(crate) fn datasets<const N: usize>(paths: [&str; N]) -> Option<[String; N]> {
    let Some(root) = std::env::var_os(DATASETS_VAR) else {
        eprintln!(
            "skipped: {DATASETS_VAR} is not set (point it at shared/datasets to run the tests on the real CRM exports)"
        );
        return None;
    };
    // A relative path is taken from the workspace root.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(root);
    assert!(root.is_dir(), "{DATASETS_VAR}={}: no such folder", root.display());
    Some(paths.map(|path| {
        let file = root.join(path);
        assert!(file.is_file(), "{DATASETS_VAR}: {} is missing", file.display());
        file.display().to_string()
    }))
}

/// What an import of `files` must store: events, skipped rows, deals, and the closed counts of
/// the pipeline report.
struct Expected<'a> {
    events: u64,
    skipped: u64,
    deals: u64,
    won: u64,
    lost: u64,
    /// Lines stderr must hold (the skipped rows' summary and examples).
    stderr: &'a [&'a str],
}

/// Ingests `files` as `format`, checks the summary, the ledger's counts and the pipeline report,
/// then ingests them again: every event is a duplicate, nothing new is stored.
fn check_import(l: &Ledger, format: &str, files: &[&str], expected: Expected<'_>) {
    let mut args = vec!["ingest", "--format", format, "--output", "json"];
    args.extend_from_slice(files);
    let run = l.run(&args).ok();
    let summary = run.json();
    assert_eq!(
        (summary["ingested"].as_u64(), summary["skipped"].as_u64(), summary["rejected"].as_u64()),
        (Some(expected.events), Some(expected.skipped), Some(0)),
        "{}",
        run.stderr
    );
    for line in expected.stderr {
        assert!(run.stderr.contains(line), "stderr lacks {line:?}:\n{}", run.stderr);
    }
    let stats = l.run(&["stats", "--format", "json"]).ok().json();
    assert_eq!(
        (stats["events"].as_u64(), stats["deals"].as_u64()),
        (Some(expected.events), Some(expected.deals))
    );
    let pipeline = l.run(&["report", "pipeline", "--as-of", "2030-01-01", "--format", "json"]).ok().json();
    assert_eq!(
        pipeline["closed"],
        serde_json::json!({"won": expected.won, "lost": expected.lost, "disqualified": 0})
    );
    let again = l.run(&args).ok().json();
    assert_eq!(
        (again["ingested"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(expected.events)),
        "a re-import stores nothing new"
    );
    let stats = l.run(&["stats", "--format", "json"]).ok().json();
    assert_eq!(stats["events"].as_u64(), Some(expected.events));
}

#[test]
fn opportunities_fixture_imports_and_reimports_as_duplicates() {
    let l = Ledger::new();
    let file = fixture("opportunities-csv/sales_pipeline.csv");
    check_import(
        &l,
        "opportunities-csv",
        &[&file],
        Expected {
            events: 35,
            skipped: 6,
            deals: 21,
            won: 8,
            lost: 6,
            stderr: &[
                "6 rows map to no event and were skipped",
                "sales_pipeline.csv:17: deal MVX00002 (Lost): no valid close date (`TBD`), so no outcome [no_date]",
                "sales_pipeline.csv:23: deal MVP00001 (Prospecting): no engage date, so no opening moment [no_date]",
            ],
        },
    );
}

#[test]
fn salesforce_fixture_imports_and_reimports_as_duplicates() {
    let l = Ledger::new();
    let (history, opportunities) =
        (fixture("salesforce-history/OpportunityHistory.csv"), fixture("salesforce-history/Opportunity.csv"));
    check_import(
        &l,
        "salesforce-history",
        &[&history, &opportunities],
        Expected {
            events: 38,
            skipped: 2,
            deals: 12,
            won: 5,
            lost: 1,
            stderr: &[
                "2 rows map to no event and were skipped",
                "OpportunityHistory.csv:3: 008Fx00000H0002AAA: only probability or forecast category changed (derived from the stage) [probability_only]",
            ],
        },
    );
    // Lost, requalified, won: the audit shows the whole history in business-time order.
    let history = l.run(&["audit", "deal", "006Fx00000O0003AAV", "--format", "json"]).ok().json();
    let types: Vec<&str> = history.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
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
    assert_eq!(history[0]["name"], "Halvorsen Marine Dock Sensors");
    assert_eq!(history[3]["stage"], "closing");
    // An unmapped stage stops the import, naming the file, the line and the stage.
    let l = Ledger::new();
    let run = l.run(&[
        "ingest",
        "--format",
        "salesforce-history",
        &fixture("salesforce-history-unmapped-stage/OpportunityHistory.csv"),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("\"Pitching\" = \"\"  # first at "), "{}", run.stderr);
    assert!(run.stderr.contains("OpportunityHistory.csv:3"), "{}", run.stderr);
    assert_eq!(l.head(), 0);
}

#[test]
fn field_changes_fixture_imports_and_reimports_as_duplicates() {
    let l = Ledger::new();
    let dir = |f: &str| fixture(&format!("field-changes/{f}"));
    let files = [
        dir("deal_changes.csv"),
        dir("stages.csv"),
        dir("fields.csv"),
        dir("activity.csv"),
        dir("activity_types.csv"),
    ];
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    // Without a stage map, one error names every stage at once, as the block to paste.
    let mut args = vec!["ingest", "--format", "field-changes"];
    args.extend_from_slice(&files);
    let run = l.run(&args);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("9 stages of the export are not mapped"), "{}", run.stderr);
    assert!(
        run.stderr.contains("\n[import.stages]\n\"Lead Generation\" = \"\"  # first at "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("\n\"Renewal/Expansion\" = \"\""), "{}", run.stderr);
    assert_eq!(l.head(), 0);
    // With the pipeline and [import.stages] of docs/examples/pipedrive.toml.
    std::fs::create_dir_all(l.data()).unwrap();
    std::fs::copy(
        format!("{}/docs/examples/pipedrive.toml", env!("CARGO_MANIFEST_DIR")),
        l.data().join("dealledger.toml"),
    )
    .unwrap();
    check_import(
        &l,
        "field-changes",
        &files,
        Expected {
            events: 33,
            skipped: 20,
            deals: 6,
            won: 3,
            lost: 2,
            stderr: &[
                "20 rows map to no event and were skipped (after_won 1, already_closed 4, before_creation 2, ",
                // The first ones by file name and line: activity.csv, then deal_changes.csv.
                "field-changes/activity.csv:6: activity 900005: not done [not_done]",
                "... and 10 more",
            ],
        },
    );
    // The summary counts the skipped rows by kind.
    let mut args = vec!["ingest", "--format", "field-changes", "--output", "json"];
    args.extend_from_slice(&files);
    let again = l.run(&args).ok().json();
    assert_eq!(again["skipped_by_kind"]["already_closed"], 4, "{again}");
    // Every fact was recorded when the change log says: what we knew on a day is what was
    // true that day (the import's own day has nothing to do with it).
    let pipeline = |extra: &[&str]| {
        let args = [&["report", "pipeline", "--as-of", "2024-03-20", "--format", "json"][..], extra].concat();
        l.run(&args).ok().json()["stages"].clone()
    };
    assert_eq!(pipeline(&["--known-at", "2024-03-20"]), pipeline(&[]));
}

#[test]
fn the_pipedrive_export_what_we_knew_then_and_what_it_cannot_say() {
    let Some(files) = datasets([
        "pipedrive-changes/deal_changes.csv",
        "pipedrive-changes/stages.csv",
        "pipedrive-changes/fields.csv",
        "pipedrive-changes/activity.csv",
    ]) else {
        return;
    };
    let l = Ledger::new();
    let mut args = vec!["ingest", "--format", "field-changes", "--output", "json"];
    args.extend(files.iter().map(String::as_str));
    // Nine stages, one error, one run.
    let run = l.run(&args);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("9 stages of the export are not mapped"), "{}", run.stderr);
    // With docs/examples/pipedrive.toml, the map the docs ship.
    std::fs::create_dir_all(l.data()).unwrap();
    std::fs::copy(
        format!("{}/docs/examples/pipedrive.toml", env!("CARGO_MANIFEST_DIR")),
        l.data().join("dealledger.toml"),
    )
    .unwrap();
    let summary = l.run(&args).ok().json();
    assert_eq!(summary["ingested"], 12_002, "{summary}");
    assert_eq!(summary["skipped_by_kind"]["same_stage"], 1_996, "{summary}");
    // What we knew on 2024-09-30 is what was true then: the deals open that day, not none.
    let pipeline = |extra: &[&str]| {
        let args = [&["report", "pipeline", "--as-of", "2024-09-30", "--format", "json"][..], extra].concat();
        l.run(&args).ok().json()
    };
    let known = pipeline(&["--known-at", "2024-09-30"]);
    assert!(known["totals"]["deals"].as_u64().unwrap() > 0, "{known}");
    assert_eq!(known["stages"], pipeline(&[])["stages"]);
    // The export has no amounts: said beside the figures.
    assert!(known["notes"].to_string().contains("has an amount"), "{known}");
    // A what-if on it names no best: 3 touches and no amounts for 1,995 deals.
    let sweep = l
        .run(&["whatif", "--sweep", "gone_dark=5..60:5", "--as-of", "2025-03-01", "--format", "json"])
        .ok()
        .json();
    assert_eq!(sweep["best"], serde_json::Value::Null, "{sweep}");
    let notes = sweep["notes"].to_string();
    assert!(notes.contains("have a touch") && notes.contains("has an amount"), "{notes}");
}

#[test]
fn maven_export_imports_and_reimports_as_duplicates() {
    let Some([file]) = datasets(["maven-crm/sales_pipeline.csv"]) else { return };
    let l = Ledger::new();
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
    // What the export cannot say is said beside the figures: no amounts for the open deals,
    // no touches at all, and a history that ended years before the default moment.
    let notes = |args: &[&str]| {
        let report = l.run(&[args, &["--format", "json"][..]].concat()).ok().json();
        (report["notes"].to_string(), report)
    };
    let (pipeline, _) = notes(&["report", "pipeline", "--as-of", "2018-01-01"]);
    assert!(pipeline.contains("none of the 1,589 open deals in USD has an amount"), "{pipeline}");
    let (flags, report) = notes(&["report", "flags"]);
    assert!(flags.contains("no touches") && flags.contains("the ledger's last event is at"), "{flags}");
    assert!(report["flags"].as_array().unwrap().iter().all(|f| f["rule"] != "gone_dark"), "{report}");
    let (whatif, report) = notes(&["whatif", "--rule", "gone_dark=14", "--as-of", "2018-01-01"]);
    assert!(whatif.contains("0 of the 8,300 deals have a touch"), "{whatif}");
    assert_eq!(report["scope"]["with_touches"], 0);
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
    let Some([history, opportunities]) =
        datasets(["salesforce-sample/OpportunityHistory.csv", "salesforce-sample/Opportunity.csv"])
    else {
        return;
    };
    let l = Ledger::new();
    let summary = l
        .run(&["ingest", "--format", "salesforce-history", "--output", "json", &history, &opportunities])
        .ok()
        .json();
    assert_eq!(summary["ingested"].as_u64(), Some(80));
    let history = l.run(&["audit", "deal", "0064600000J5S5VAAV", "--format", "json"]).ok().json();
    let types: Vec<&str> = history.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["opened", "won", "close_date_changed"]);
    assert_eq!(history[0]["name"], "Express Logistics Standby Generator");
    assert_eq!(history[2]["close_date"], "2018-07-06");
}

/// The shared Salesforce sample with the project's own activity fixture (and one later history
/// row: an opportunity lost): the figures built on touches, each against a hand count.
#[test]
fn salesforce_activities_carry_the_figures_on_the_shared_sample() {
    let Some([history, opportunities]) =
        datasets(["salesforce-sample/OpportunityHistory.csv", "salesforce-sample/Opportunity.csv"])
    else {
        return;
    };
    let l = Ledger::new();
    let own = |f: &str| fixture(&format!("salesforce-sample-activities/{f}"));
    let later = own("OpportunityHistory-later.csv");
    l.run(&["ingest", "--format", "salesforce-history", &history, &opportunities, &later]).ok();
    let (tasks, events, emails) = (own("Task.csv"), own("Event.csv"), own("EmailMessage.csv"));
    let now = "2018-11-01T00:00:00Z";
    let args = ["--now", now, "ingest", "--format", "salesforce-activities", "--output", "json"];
    let run = l.run(&[&args[..], &[tasks.as_str(), events.as_str(), emails.as_str()]].concat()).ok();
    // Six touches; six rows skipped, each of its own kind (one dated after --now).
    assert_eq!(
        (run.json()["ingested"].as_u64(), run.json()["skipped"].as_u64()),
        (Some(6), Some(6)),
        "{}",
        run.stderr
    );
    let report = |args: &[&str]| {
        l.run(&[&["--now", now, "report"][..], args, &["--format", "json"]].concat()).ok().json()
    };
    // T (…5TAAV), lost on Oct 30: a 30-minute call, an inbound email (5 minutes, the channel's
    // default), a 60-minute meeting and a plain task (10): 105 minutes.
    let cost = report(&["bad-deal-cost", "--from", "2018-10-01", "--to", "2018-11-01", "--deals"]);
    assert_eq!(find_number(&cost, "effort_hours"), Some(1.75), "{cost}");
    // First responses from the opening (2018-10-13 17:16:45): T's call 24 h later, U's 72 h.
    let kpis = report(&["kpis", "--from", "2018-10-01", "--to", "2018-11-01"]);
    assert_eq!(find_number(&kpis, "first_response_hours_median"), Some(48.0), "{kpis}");
    // Flags on Nov 1: U (…5UAAV) has had no inbound touch since it opened (18.3 days) and no
    // touch since its email of Oct 17 (14.6 days); the 11 other open deals none at all.
    let flags = report(&["flags"]);
    let flags = flags["flags"].as_array().unwrap();
    let flagged = |rule: &str| -> Vec<&str> {
        flags.iter().filter(|f| f["rule"] == rule).map(|f| f["deal"].as_str().unwrap()).collect()
    };
    let u = "0064600000J5S5UAAV";
    assert!(flagged("gone_dark").contains(&u) && flagged("no_activity").contains(&u), "{flags:?}");
    assert_eq!((flagged("gone_dark").len(), flagged("no_activity").len()), (12, 12), "{flags:?}");
    let detail = flags.iter().find(|f| f["deal"] == u && f["rule"] == "no_activity").unwrap();
    assert_eq!(detail["figure"], 14.625, "{detail}");
}

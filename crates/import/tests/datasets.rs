//! The importers on the real CRM exports of ../shared/datasets: exact counts of deals, events,
//! outcomes and skipped rows. The expected figures were cross-checked against the files with an
//! independent script (see docs/importers.md).

use dealledger_import::{field_changes, opportunities, parse_import_toml, salesforce, Imported, Options};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn dataset(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets").join(path)
}

/// Events by type, distinct deals, and skipped rows by kind.
fn census(imported: &Imported) -> (BTreeMap<String, usize>, usize, BTreeMap<String, usize>) {
    let mut types = BTreeMap::new();
    let mut deals = BTreeSet::new();
    for row in &imported.rows {
        let submission = row.result.as_ref().unwrap_or_else(|e| panic!("{}: {e}", row.location));
        *types.entry(submission.event.body.kind().as_str().to_string()).or_default() += 1;
        deals.insert(submission.event.deal.as_str().to_string());
    }
    let mut skipped = BTreeMap::new();
    for s in &imported.skipped {
        *skipped.entry(s.kind.to_string()).or_default() += 1;
    }
    (types, deals.len(), skipped)
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn maven_opportunities() {
    let imported =
        opportunities::import(&[dataset("maven-crm/sales_pipeline.csv")], &Options::default()).unwrap();
    let (types, deals, skipped) = census(&imported);
    // 8,800 rows: 500 Prospecting rows carry no date; 4,238 Won, 2,473 Lost, 1,589 Engaging.
    assert_eq!(deals, 8_300);
    assert_eq!(types, counts(&[("opened", 8_300), ("won", 4_238), ("lost", 2_473)]));
    assert_eq!(skipped, counts(&[("no_date", 500)]));
    let first = imported.rows[0].result.as_ref().unwrap();
    assert_eq!(first.event.deal.as_str(), "1C1I7A6R");
    assert_eq!(first.event.at.to_string(), "2016-10-20T00:00:00Z");
}

#[test]
fn salesforce_history_with_standard_stages() {
    let files =
        [dataset("salesforce-sample/OpportunityHistory.csv"), dataset("salesforce-sample/Opportunity.csv")];
    let imported = salesforce::import(&files, &Options::default()).unwrap();
    let (types, deals, skipped) = census(&imported);
    // 31 opportunities of two rows each: the second row changes only the close date; 18 are
    // Closed Won from their first row.
    assert_eq!(deals, 31);
    assert_eq!(types, counts(&[("opened", 31), ("close_date_changed", 31), ("won", 18)]));
    assert!(skipped.is_empty(), "{skipped:?}");
    // Owner and name come from Opportunity.csv; Id, CreatedById and CreatedDate are kept.
    let first = imported.rows[0].result.as_ref().unwrap();
    assert_eq!(first.event.source_id.as_deref(), Some("0084600000iqknnAAA:opened"));
    assert_eq!(first.event.actor.as_deref(), Some("00546000001l1cJAAQ"));
    assert_eq!(first.event.at.to_string(), "2018-10-13T17:16:45Z");
    let json = dealledger_events::json::write_event_json;
    let mut text = String::new();
    json(&mut text, &first.event, dealledger_events::Currency::USD, "");
    assert!(text.contains("\"name\":\"Dickenson Mobile Generators\""), "{text}");
    assert!(text.contains("\"owner\":\"00546000001l1cJAAQ\""), "{text}");
    assert!(text.contains("\"stage\":\"prospecting\""), "{text}");
}

#[test]
fn salesforce_unmapped_stage_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("OpportunityHistory.csv");
    std::fs::write(
        &path,
        "Id,OpportunityId,CreatedById,CreatedDate,StageName,Amount,CloseDate\n\
         h1,O1,u1,2024-01-01 10:00:00,Prospecting,100,2024-03-01\n\
         h2,O1,u1,2024-01-02 10:00:00,Pitching,100,2024-03-01\n",
    )
    .unwrap();
    let err = salesforce::import(std::slice::from_ref(&path), &Options::default()).unwrap_err().to_string();
    assert!(err.ends_with("OpportunityHistory.csv:3: stage `Pitching` is not a pipeline stage; map it in [import.stages] of dealledger.toml"), "{err}");
    let options =
        parse_import_toml("[import.stages]\nPitching = \"quote\"\n", dealledger_events::Pipeline::default())
            .unwrap();
    let imported = salesforce::import(&[path], &options).unwrap();
    let (types, _, _) = census(&imported);
    assert_eq!(types, counts(&[("opened", 1), ("stage_moved", 1)]));
}

#[test]
fn pipedrive_change_log() {
    let toml =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pipedrive.toml"))
            .unwrap();
    let pipeline = dealledger_events::pipeline::parse_pipeline_toml(&toml).unwrap();
    let options = parse_import_toml(&toml, pipeline).unwrap();
    let dir = dataset("pipedrive-changes");
    let files: Vec<PathBuf> =
        ["deal_changes.csv", "stages.csv", "fields.csv", "activity.csv", "activity_types.csv"]
            .iter()
            .map(|f| dir.join(f))
            .collect();
    let imported = field_changes::import(&files, &options).unwrap();
    let (types, deals, skipped) = census(&imported);
    assert_eq!(deals, 1_995);
    assert_eq!(
        types,
        counts(&[
            ("opened", 1_995),
            ("owner_changed", 2_500),
            ("stage_moved", 5_507),
            ("won", 1_081),
            ("lost", 915),
            ("requalified", 1),
            ("touch", 3),
        ])
    );
    // Every deal of this log ends with a lost_reason row, also those that reached a stage mapped
    // to won (those rows are already_closed); most activities belong to deals the log never
    // created.
    assert_eq!(
        skipped,
        counts(&[
            ("after_won", 10),
            ("already_closed", 1_396),
            ("before_creation", 3),
            ("not_done", 2_289),
            ("same_stage", 1_996),
            ("second_creation", 5),
            ("unknown_deal", 2_284),
        ])
    );
}

//! The importers on the real CRM exports of shared/datasets: exact counts of deals, events,
//! outcomes and skipped rows. The expected figures were cross-checked against the files with an
//! independent script (see docs/importers.md).
//!
//! The exports are not part of the project: these tests run when `DEALLEDGER_DATASETS` names
//! their folder (`DEALLEDGER_DATASETS=path/to/shared/datasets cargo test`), and say so and pass
//! when it is unset. fixtures.rs covers the same cases on the project's own files, always.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test code: a panic is a failing test"
)]

mod common;

use common::{census, counts, pipedrive_options};
use dealledger_import::{field_changes, opportunities, salesforce, Options};
use std::path::PathBuf;

/// The variable naming the folder of the shared CRM exports.
const DATASETS_VAR: &str = "DEALLEDGER_DATASETS";

/// The files `paths` (in the datasets folder) when `DEALLEDGER_DATASETS` is set; `None`,
/// after a note on stderr, when it is not. Set to a folder that is not there, or that lacks a
/// file, it fails naming the path: a mistyped variable must not pass as a skip.
fn datasets<const N: usize>(paths: [&str; N]) -> Option<[PathBuf; N]> {
    let Some(root) = std::env::var_os(DATASETS_VAR) else {
        eprintln!(
            "skipped: {DATASETS_VAR} is not set (point it at shared/datasets to run the tests on the real CRM exports)"
        );
        return None;
    };
    // A relative path is taken from the workspace root, as from the root's tests.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(root);
    assert!(root.is_dir(), "{DATASETS_VAR}={}: no such folder", root.display());
    Some(paths.map(|path| {
        let file = root.join(path);
        assert!(file.is_file(), "{DATASETS_VAR}: {} is missing", file.display());
        file
    }))
}

#[test]
fn maven_opportunities() {
    let Some(files) = datasets(["maven-crm/sales_pipeline.csv"]) else { return };
    let imported = opportunities::import(&files, &Options::default()).unwrap();
    let c = census(&imported);
    // 8,800 rows: 500 Prospecting rows carry no date; 4,238 Won, 2,473 Lost, 1,589 Engaging.
    assert_eq!(c.deals, 8_300);
    assert_eq!(c.types, counts(&[("opened", 8_300), ("won", 4_238), ("lost", 2_473)]));
    assert_eq!(c.skipped, counts(&[("no_date", 500)]));
    let first = imported.rows[0].result.as_ref().unwrap();
    assert_eq!(first.event.deal.as_str(), "1C1I7A6R");
    assert_eq!(first.event.at.to_string(), "2016-10-20T00:00:00Z");
}

#[test]
fn salesforce_history_with_standard_stages() {
    let Some(files) =
        datasets(["salesforce-sample/OpportunityHistory.csv", "salesforce-sample/Opportunity.csv"])
    else {
        return;
    };
    let imported = salesforce::import(&files, &Options::default()).unwrap();
    let c = census(&imported);
    // 31 opportunities of two rows each: the second row changes only the close date; 18 are
    // Closed Won from their first row.
    assert_eq!(c.deals, 31);
    assert_eq!(c.types, counts(&[("opened", 31), ("close_date_changed", 31), ("won", 18)]));
    assert!(c.skipped.is_empty(), "{:?}", c.skipped);
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
fn pipedrive_change_log() {
    let Some(files) = datasets([
        "pipedrive-changes/deal_changes.csv",
        "pipedrive-changes/stages.csv",
        "pipedrive-changes/fields.csv",
        "pipedrive-changes/activity.csv",
        "pipedrive-changes/activity_types.csv",
    ]) else {
        return;
    };
    let imported = field_changes::import(&files, &pipedrive_options()).unwrap();
    let c = census(&imported);
    assert_eq!(c.deals, 1_995);
    assert_eq!(
        c.types,
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
        c.skipped,
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

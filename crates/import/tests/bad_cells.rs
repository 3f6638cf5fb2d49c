//! Cells an importer cannot read: each one stops the import, or skips its row, with one message
//! naming the file, the line and the cell; never a panic. Non-ASCII text in a date cell used to
//! panic the importers (a byte slice through a multi-byte character).

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test code: a panic is a failing test"
)]

use dealledger_import::{field_changes, salesforce, ImportError, Imported, Options};
use std::path::PathBuf;

const HISTORY_HEADER: &str = "Id,OpportunityId,CreatedById,CreatedDate,StageName,Amount,CloseDate";
const CHANGES_HEADER: &str = "deal_id,change_time,changed_field_key,new_value";

/// Writes `files` (name, text) to a fresh directory; the directory lives as long as the paths.
fn files(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = files
        .iter()
        .map(|(name, text)| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    (dir, paths)
}

fn salesforce_history(rows: &[&str]) -> Result<Imported, ImportError> {
    let text = format!("{HISTORY_HEADER}\n{}\n", rows.join("\n"));
    let (_dir, paths) = files(&[("OpportunityHistory.csv", &text)]);
    salesforce::import(&paths, &Options::default())
}

fn change_log(changes: &[&str], activities: &[&str]) -> Result<Imported, ImportError> {
    let changes = format!("{CHANGES_HEADER}\n{}\n", changes.join("\n"));
    let activities =
        format!("activity_id,type,assigned_to_user,deal_id,done,due_to\n{}\n", activities.join("\n"));
    let (_dir, paths) = files(&[("deal_changes.csv", &changes), ("activity.csv", &activities)]);
    field_changes::import(&paths, &Options::default())
}

/// The error's text, which must end with `FILE:LINE: why`.
#[track_caller]
fn check_error(result: Result<Imported, ImportError>, expected_suffix: &str) {
    match result {
        Ok(imported) => panic!("expected an error ending with {expected_suffix:?}, got {imported:?}"),
        Err(e) => {
            let text = e.to_string();
            assert!(text.ends_with(expected_suffix), "{text:?} should end with {expected_suffix:?}");
        }
    }
}

fn check_created_date(created: &str) {
    let row = format!("h1,O1,u1,{created},Prospecting,100,2018-12-01");
    check_error(
        salesforce_history(&[&row]),
        &format!("OpportunityHistory.csv:2: CreatedDate `{created}` is not a date and time"),
    );
}

#[test]
fn salesforce_created_date_non_ascii_in_the_date() {
    check_created_date("2018-10-1é 17:16:45");
}

#[test]
fn salesforce_created_date_non_ascii_in_the_time() {
    check_created_date("2018-10-13 17:16:4é");
}

#[test]
fn salesforce_created_date_non_ascii_in_the_zone() {
    check_created_date("2018-10-13 17:16:45a€0");
}

/// Nineteen bytes, like `2024-04-09 21:32:09`.
fn check_change_time(time: &str) {
    assert_eq!(time.len(), 19);
    let row = format!("881836,{time},add_time,{time}");
    check_error(
        change_log(&[&row], &[]),
        &format!("deal_changes.csv:2: change time `{time}` is not a date and time"),
    );
}

#[test]
fn field_changes_change_time_non_ascii_in_the_date() {
    check_change_time("2024-04-0é 21:32:0");
}

#[test]
fn field_changes_change_time_non_ascii_between_date_and_time() {
    check_change_time("2024-04-09é21:32:0");
}

#[test]
fn field_changes_activity_time_non_ascii_is_skipped() {
    let imported = change_log(
        &["881836,2024-04-09 21:32:09,add_time,2024-04-09T21:32:09"],
        &["807438,call,637,881836,True,2024-07-2é 06:47:1"],
    )
    .unwrap();
    assert_eq!(imported.rows.len(), 1, "only the opening: {imported:?}");
    let skipped: Vec<(&str, &str)> =
        imported.skipped.iter().map(|s| (s.kind, s.location.rsplit('/').next().unwrap())).collect();
    assert_eq!(skipped, [("no_date", "activity.csv:2")]);
    assert_eq!(imported.skipped[0].reason, "activity 807438: no valid time (`2024-07-2é 06:47:1`)");
}

fn check_close_date(close: &str) {
    let row = format!("h1,O1,u1,2018-10-13 17:16:45,Prospecting,100,{close}");
    check_error(
        salesforce_history(&[&row]),
        &format!("OpportunityHistory.csv:2: CloseDate `{close}` is not a date (YYYY-MM-DD)"),
    );
}

// A CloseDate that is not a date was dropped without a word (the deal then had no close date).
#[test]
fn salesforce_close_date_that_is_not_a_date_is_an_error() {
    check_close_date("soon");
}

#[test]
fn salesforce_close_date_non_ascii_is_an_error() {
    check_close_date("2018-12-0é 00:00:00");
}

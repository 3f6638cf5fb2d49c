//! Property tests: the importers are total. Whatever a file holds (arbitrary bytes; or a valid
//! header over cells that are empty, non-ASCII, quoted, multi-line, up to 1 MiB, after a BOM), an
//! import ends in an error naming a file, or in rows and skipped rows whose events the ledger
//! admits or refuses; never in a panic.
//!
//! Per format: `_bytes` (arbitrary bytes, bare or after a valid header), `_cells` (well-formed
//! exports with odd cells, misshapen rows, missing columns; most cases get deep into the
//! importer) and `_dates` (well-formed exports with an odd date cell in most cases: cut,
//! spliced with multi-byte characters, impossible). Files are fed as bytes through
//! `Table::from_reader`, the reader every file goes through, so a case costs no disk. The number
//! of cases is proptest's (256; `PROPTEST_CASES` sets it): a soak is
//! `PROPTEST_CASES=1000000 cargo test --release -p dealledger-import fuzz_`.

mod generate;

use crate::{field_changes, opportunities, salesforce, ImportError, Imported, Options, Table};
use dealledger_events::{Deals, Timestamp};
use generate::{
    column, files, instant, pick, random_file, table, wild, File, Format, Kind, Noise, DATES, DEEP,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

type Import = fn(Vec<Table>, &Options) -> Result<Imported, ImportError>;

/// The skip kinds docs/importers.md lists.
const SKIP_KINDS: [&str; 22] = [
    "no_date",
    "probability_only",
    "unmapped_field",
    "unmapped_value",
    "before_creation",
    "second_creation",
    "owner_unchanged",
    "same_stage",
    "after_won",
    "already_closed",
    "not_done",
    "unknown_deal",
    "deleted",
    "no_opportunity",
    "open_task",
    "no_time",
    "all_day",
    "email_not_sent",
    "too_long",
    "invalid",
    "not_yet",
    "owner_names",
];

/// Reads `files` as the importers do and imports them; then checks what must hold of any
/// outcome: every error, row and skipped row names one of the files; every skip has a
/// documented kind; admitting the events one by one (as ingest does) accepts or refuses each.
fn check(files: &[File], import: Import, options: &Options) -> Result<(), TestCaseError> {
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    let names_a_file = |location: &str| names.iter().any(|n| location.starts_with(&format!("{n}:")));
    let read: Result<Vec<Table>, ImportError> =
        files.iter().map(|(name, bytes)| Table::from_reader(name.clone(), bytes.as_slice())).collect();
    let imported = match read.and_then(|tables| import(tables, options)) {
        Ok(imported) => imported,
        Err(ImportError::Read { path, .. }) => {
            prop_assert!(names.contains(&path.as_str()), "{path}");
            return Ok(());
        }
        Err(ImportError::Invalid { location, why }) => {
            prop_assert!(names_a_file(&location) || names.contains(&location.as_str()), "{location}: {why}");
            return Ok(());
        }
        // Every stage no map takes, each named with the row it was first met on.
        Err(ImportError::Unmapped(text)) => {
            prop_assert!(text.contains("[import.stages]"), "{text}");
            for line in text.lines().filter(|l| l.contains("# first at ")) {
                let location = line.rsplit("# first at ").next().unwrap_or("");
                let location = location.split(" and ").next().unwrap_or("");
                prop_assert!(names_a_file(location), "{line}");
            }
            return Ok(());
        }
        // Options are checked before any file is read.
        Err(e @ ImportError::Option(_)) => return Err(TestCaseError::fail(format!("an option error: {e}"))),
    };
    let now = Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").expect("valid");
    let mut deals = Deals::default();
    for (seq, row) in imported.rows.into_iter().enumerate() {
        prop_assert!(names_a_file(&row.location), "{}", row.location);
        if let Ok(mut submission) = row.result {
            let _ = deals.admit(&mut submission, seq as u64 + 1, now, &options.pipeline);
        }
    }
    for skipped in &imported.skipped {
        prop_assert!(names_a_file(&skipped.location), "{}", skipped.location);
        prop_assert!(SKIP_KINDS.contains(&skipped.kind), "{}", skipped.kind);
    }
    Ok(())
}

/// The pipeline and stage map of docs/examples/pipedrive.toml (the field-change log needs a map to get
/// past its first stage row), or the default pipeline with a small map.
fn options(pipedrive: bool) -> Options {
    let toml = if pipedrive {
        include_str!("../../../../docs/examples/pipedrive.toml")
    } else {
        "[import.stages]\nPitching = \"quote\"\nSigned = \"won\"\n"
    };
    let config = dealledger_config::Config::parse(toml, "dealledger.toml").expect("valid");
    let pipeline = dealledger_events::pipeline::pipeline_from_config(&config).expect("valid");
    crate::options_from_config(&config, pipeline).expect("valid")
}

const AMOUNTS: &[&str] =
    &["", "0", "100", "750", "2500.50", "100", "1e3", "-5", "12.345", "99999999999999999999", " 7 "];

const HISTORY_HEADERS: &[&str] = &[
    "Id,OpportunityId,CreatedById,CreatedDate,StageName,Amount,CloseDate,IsDeleted",
    "\"Id\",\"OpportunityId\",\"CreatedById\",\"CreatedDate\",\"StageName\",\"Amount\",\"CloseDate\"",
];

fn history(noise: Noise) -> BoxedStrategy<File> {
    let stages = pick(&[
        "Prospecting",
        "Qualification",
        "Needs Analysis",
        "Value Proposition",
        "Id. Decision Makers",
        "Perception Analysis",
        "Proposal/Price Quote",
        "Negotiation/Review",
        "Closed Won",
        "Closed Lost",
        "Pitching",
        "quote",
    ]);
    let columns = vec![
        column("Id", Kind::Loose, "h[0-9]{1,2}".boxed()),
        column("OpportunityId", Kind::Strict, pick(&["O1", "O2", "O3", "O-4"])),
        column("CreatedById", Kind::Loose, pick(&["u1", "u2"])),
        column(
            "CreatedDate",
            Kind::Date,
            instant(&[Format::DataLoader, Format::Api, Format::Iso, Format::Rfc3339]),
        ),
        column("StageName", Kind::Strict, stages),
        column("Amount", Kind::Loose, pick(AMOUNTS)),
        column(
            "CloseDate",
            Kind::Date,
            prop_oneof![4 => instant(&[Format::IsoDate, Format::DataLoader]), 1 => Just(String::new())]
                .boxed(),
        ),
        column("IsDeleted", Kind::Loose, pick(&["0", "0", "0", "1", "true", ""])),
    ];
    table("OpportunityHistory.csv", columns, noise)
}

fn opportunity(noise: Noise) -> BoxedStrategy<File> {
    let columns = vec![
        column("Id", Kind::Loose, pick(&["O1", "O2", "O3"])),
        column("OwnerId", Kind::Loose, pick(&["ann", "bo", ""])),
        column("Name", Kind::Loose, wild()),
    ];
    table("Opportunity.csv", columns, noise)
}

const CHANGES_HEADERS: &[&str] = &["deal_id,change_time,changed_field_key,new_value"];

fn changes(noise: Noise) -> BoxedStrategy<File> {
    let fields = pick(&[
        "add_time",
        "add_time",
        "created",
        "user_id",
        "owner_id",
        "stage_id",
        "stage_id",
        "StageName",
        "lost_reason",
        "status",
        "value",
        "Amount",
        "expected_close_date",
        "CloseDate",
        "label",
    ]);
    let values = pick(&[
        "1",
        "2",
        "3",
        "6",
        "7",
        "9",
        "Closing",
        "Negotiation",
        "won",
        "lost",
        "open",
        "1201",
        "1202",
        "5000",
        "12.5",
        "-1",
        "2024-06-30",
        "7/31/2024",
        "someday",
    ]);
    let columns = vec![
        column("deal_id", Kind::Strict, pick(&["100", "101", "102"])),
        column("change_time", Kind::Date, instant(&[Format::DataLoader, Format::Iso, Format::Rfc3339])),
        column("changed_field_key", Kind::Loose, fields),
        column(
            "new_value",
            Kind::Loose,
            prop_oneof![3 => values, 1 => instant(&[Format::IsoDate, Format::UsDate, Format::Iso])].boxed(),
        ),
    ];
    table("deal_changes.csv", columns, noise)
}

fn stages(noise: Noise) -> BoxedStrategy<File> {
    let names = pick(&["Lead Generation", "Qualified lead", "Closing", "Renewal/Expansion", "Bogus"]);
    let columns = vec![
        column("stage_id", Kind::Loose, pick(&["1", "2", "3", "6", "7", "9"])),
        column("stage_name", Kind::Loose, names),
    ];
    table("stages.csv", columns, noise)
}

fn fields(noise: Noise) -> BoxedStrategy<File> {
    let options = prop_oneof![
        Just(r#"[{"id": "1", "label": "Pricing"},{"id": "2", "label": "Timing"}]"#.to_string()),
        Just(r#"[{"id": 1, "label": null}, 3, "x", {"id": "2"}]"#.to_string()),
        (1usize..400).prop_map(|depth| "[".repeat(depth) + &"]".repeat(depth)),
        (1usize..400).prop_map(|depth| "[{\"id\":".repeat(depth)),
    ];
    let columns = vec![
        column("ID", Kind::Loose, "[0-9]{1,2}".boxed()),
        column("FIELD_KEY", Kind::Loose, pick(&["lost_reason", "stage_id", "add_time"])),
        column("NAME", Kind::Loose, wild()),
        column("FIELD_VALUE_OPTIONS", Kind::Loose, options.boxed()),
    ];
    table("fields.csv", columns, noise)
}

fn activities(noise: Noise) -> BoxedStrategy<File> {
    let columns = vec![
        column("activity_id", Kind::Loose, "a[0-9]{1,2}".boxed()),
        column("type", Kind::Loose, pick(&["call_1", "kickoff", "demo", "email", "whatsapp"])),
        column("assigned_to_user", Kind::Loose, pick(&["1201", ""])),
        column("deal_id", Kind::Loose, pick(&["100", "101", "102", "999"])),
        column("done", Kind::Loose, pick(&["True", "True", "False", "1", ""])),
        column("due_to", Kind::Date, instant(&[Format::DataLoader, Format::Iso, Format::Rfc3339])),
    ];
    table("activity.csv", columns, noise)
}

fn activity_types(noise: Noise) -> BoxedStrategy<File> {
    let columns = vec![
        column("id", Kind::Loose, "[0-9]".boxed()),
        column("name", Kind::Loose, pick(&["Sales Call 1", "Kick-off meeting", "Product demo", "Email"])),
        column("active", Kind::Loose, pick(&["Yes", "No"])),
        column("type", Kind::Loose, pick(&["call_1", "kickoff", "demo", "email"])),
    ];
    table("activity_types.csv", columns, noise)
}

/// The change log and some of its companions.
fn change_log(noise: Noise) -> BoxedStrategy<Vec<File>> {
    files(vec![changes(noise)], vec![stages(noise), fields(noise), activities(noise), activity_types(noise)])
}

const PIPELINE_HEADERS: &[&str] =
    &["opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value"];

fn pipeline(name: &'static str, noise: Noise) -> BoxedStrategy<File> {
    let stages = pick(&["Won", "Lost", "Engaging", "Prospecting", "closing", "Signed"]);
    let dates =
        prop_oneof![6 => instant(&[Format::UsDate, Format::IsoDate]), 1 => Just(String::new())].boxed();
    let columns = vec![
        column("opportunity_id", Kind::Strict, pick(&["A1", "A2", "A3", "A4", "A5"])),
        column("sales_agent", Kind::Loose, pick(&["Ann", "Bo", ""])),
        column("product", Kind::Loose, pick(&["GTX Pro", ""])),
        column("account", Kind::Loose, pick(&["Acme", ""])),
        column("deal_stage", Kind::Strict, stages),
        column("engage_date", Kind::Date, dates.clone()),
        column("close_date", Kind::Date, dates),
        column("close_value", Kind::Loose, pick(AMOUNTS)),
    ];
    table(name, columns, noise)
}

fn pipelines(noise: Noise) -> BoxedStrategy<Vec<File>> {
    files(vec![pipeline("sales_pipeline.csv", noise)], vec![pipeline("more_pipeline.csv", noise)])
}

/// Salesforce activities at a fixed now (half of the generated times are after it).
fn activities_import(tables: Vec<Table>, _options: &Options) -> Result<Imported, ImportError> {
    let now = Timestamp::parse_rfc3339("2024-06-01T00:00:00Z").expect("valid");
    crate::salesforce_activities::import_tables(tables, now)
}

fn salesforce_activity(name: &'static str, noise: Noise) -> BoxedStrategy<File> {
    let when = || instant(&[Format::DataLoader, Format::Api, Format::Iso, Format::Rfc3339, Format::IsoDate]);
    let bools = || pick(&["true", "false", "1", "0", "", "yes"]);
    let columns = vec![
        column("Id", Kind::Loose, "00T[0-9]{1,2}".boxed()),
        column("WhatId", Kind::Loose, pick(&["006A", "006B", "001X", "", "006 bad id"])),
        column("RelatedToId", Kind::Loose, pick(&["006A", "500C", ""])),
        column("WhoId", Kind::Loose, pick(&["003P", ""])),
        column("Status", Kind::Loose, pick(&["Completed", "Not Started", "3", "5", ""])),
        column("IsClosed", Kind::Loose, bools()),
        column("TaskSubtype", Kind::Loose, pick(&["Call", "Email", "ListEmail", "LinkedIn", "Task", ""])),
        column("CallType", Kind::Loose, pick(&["Inbound", "Outbound", "Internal", ""])),
        column("CallDurationInSeconds", Kind::Loose, pick(&["0", "60", "89", "-5", "999999999", "x", ""])),
        column("ActivityDate", Kind::Date, when()),
        column("CompletedDateTime", Kind::Date, when()),
        column("StartDateTime", Kind::Date, when()),
        column("EndDateTime", Kind::Date, when()),
        column("DurationInMinutes", Kind::Loose, pick(&["30", "1440", "1441", "-1", "x", ""])),
        column("IsAllDayEvent", Kind::Loose, bools()),
        column("Incoming", Kind::Loose, bools()),
        column("MessageDate", Kind::Date, when()),
        column("CreatedDate", Kind::Date, when()),
        column("IsDeleted", Kind::Loose, bools()),
    ];
    table(name, columns, noise)
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn fuzz_salesforce_activities_cells(
        files in files(vec![salesforce_activity("Task.csv", DEEP)], vec![salesforce_activity("Event.csv", DATES)]),
    ) {
        check(&files, activities_import, &options(false))?;
    }

    #[test]
    fn fuzz_salesforce_activities_bytes(
        files in files(vec![random_file("Task.csv", &["Id,WhatId,Status,IsClosed,TaskSubtype,CallType,CompletedDateTime,ActivityDate", "Id,RelatedToId,Incoming,MessageDate"])], vec![]),
    ) {
        check(&files, activities_import, &options(false))?;
    }

    #[test]
    fn fuzz_salesforce_bytes(
        files in files(
            vec![random_file("OpportunityHistory.csv", HISTORY_HEADERS)],
            vec![random_file("Opportunity.csv", &["Id,OwnerId,Name"])],
        ),
        pipedrive in any::<bool>(),
    ) {
        check(&files, salesforce::import_tables, &options(pipedrive))?;
    }

    #[test]
    fn fuzz_salesforce_cells(files in files(vec![history(DEEP)], vec![opportunity(DEEP)]), pipedrive in any::<bool>()) {
        check(&files, salesforce::import_tables, &options(pipedrive))?;
    }

    #[test]
    fn fuzz_salesforce_dates(files in files(vec![history(DATES)], vec![])) {
        check(&files, salesforce::import_tables, &options(false))?;
    }

    #[test]
    fn fuzz_field_changes_bytes(
        files in files(
            vec![random_file("deal_changes.csv", CHANGES_HEADERS)],
            vec![
                random_file("stages.csv", &["stage_id,stage_name"]),
                random_file("fields.csv", &["ID,FIELD_KEY,NAME,FIELD_VALUE_OPTIONS"]),
                random_file("activity.csv", &["activity_id,type,assigned_to_user,deal_id,done,due_to"]),
                random_file("activity_types.csv", &["id,name,active,type"]),
            ],
        ),
        pipedrive in any::<bool>(),
    ) {
        check(&files, field_changes::import_tables, &options(pipedrive))?;
    }

    #[test]
    fn fuzz_field_changes_cells(files in change_log(DEEP), pipedrive in prop::bool::weighted(0.9)) {
        check(&files, field_changes::import_tables, &options(pipedrive))?;
    }

    #[test]
    fn fuzz_field_changes_dates(files in change_log(DATES)) {
        check(&files, field_changes::import_tables, &options(true))?;
    }

    #[test]
    fn fuzz_opportunities_bytes(
        files in files(
            vec![random_file("sales_pipeline.csv", PIPELINE_HEADERS)],
            vec![random_file("more_pipeline.csv", PIPELINE_HEADERS)],
        ),
    ) {
        check(&files, opportunities::import_tables, &Options::default())?;
    }

    #[test]
    fn fuzz_opportunities_cells(files in pipelines(DEEP), pipedrive in any::<bool>()) {
        check(&files, opportunities::import_tables, &options(pipedrive))?;
    }

    #[test]
    fn fuzz_opportunities_dates(files in pipelines(DATES)) {
        check(&files, opportunities::import_tables, &Options::default())?;
    }
}

//! The exported files read back to the reports' figures: the open pipeline from `deals`, time
//! in stage from `stage_visits`, every event once from `events`, every touch from `touches`, in
//! Parquet (read with parquet's own record reader) and in CSV; and an export is deterministic.

use dealledger_events::{Pipeline, Timestamp};
use dealledger_export::{export, Format, Table};
use dealledger_log::{Ledger, MemStore};
use dealledger_projections::testkit::append;
use dealledger_projections::{catch_up, Timeline, View};
use dealledger_reports::{render, Settings};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn ledger() -> Ledger<MemStore> {
    let mut events = Vec::new();
    dealledger_gen::generate(&dealledger_gen::Config::new(11, 300), |e| events.push(e.clone()));
    let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
    append(&mut ledger, &events);
    ledger
}

fn rows(path: &Path) -> Vec<Row> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader.get_row_iter(None).unwrap().map(|row| row.unwrap()).collect()
}

fn field<'a>(row: &'a Row, name: &str) -> &'a Field {
    row.get_column_iter().find(|(n, _)| n.as_str() == name).map(|(_, f)| f).unwrap()
}

fn text(row: &Row, name: &str) -> String {
    match field(row, name) {
        Field::Str(s) => s.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

fn micros(row: &Row, name: &str) -> Option<i64> {
    match field(row, name) {
        Field::TimestampMicros(t) => Some(*t),
        Field::Null => None,
        other => panic!("{name}: {other:?}"),
    }
}

/// A DECIMAL(38, 4) as its exact decimal text, trailing zeros trimmed to the cents.
fn money(row: &Row, name: &str) -> String {
    match field(row, name) {
        Field::Decimal(d) => {
            let bytes: [u8; 16] = d.data().try_into().unwrap();
            let scaled = i128::from_be_bytes(bytes);
            assert_eq!(scaled % 100, 0, "generated amounts have cents at most");
            format!("{:.2}", scaled as f64 / 10_000.0)
        }
        other => panic!("{name}: {other:?}"),
    }
}

fn report(timeline: &Timeline, name: &str, view: View) -> Value {
    let settings = Settings::default();
    let text = match name {
        "pipeline" => render(
            &dealledger_reports::pipeline::pipeline(timeline, &settings, view, None)
                .expect("no currency asked"),
            dealledger_reports::Format::Json,
        ),
        _ => render(
            &dealledger_reports::stages::time_in_stage(timeline, &settings, view, false, false),
            dealledger_reports::Format::Json,
        ),
    };
    serde_json::from_str(&text).unwrap()
}

#[test]
fn parquet_and_csv_read_back_to_the_reports() {
    let ledger = ledger();
    let (timeline, _) = catch_up::<Timeline, _>(ledger.log()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (as_of, name) in
        [(Timestamp::MAX, "now"), (Timestamp::parse_rfc3339("2024-09-30T00:00:00Z").unwrap(), "past")]
    {
        let view = View { as_of, known_at: Timestamp::MAX };
        let out = dir.path().join(name);
        let parquet = export(ledger.log(), &timeline, view, &Table::ALL, Format::Parquet, &out).unwrap();
        let csv = export(ledger.log(), &timeline, view, &Table::ALL, Format::Csv, &out).unwrap();
        for (p, c) in parquet.iter().zip(&csv) {
            assert_eq!(p.rows, c.rows, "{:?}: Parquet and CSV rows", p.table);
        }

        // The open pipeline, per currency and stage, from `deals`.
        let mut open: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
        for row in rows(&out.join("deals.parquet")) {
            if text(&row, "status") == "open" {
                let sum = open.entry((text(&row, "currency"), text(&row, "stage"))).or_default();
                sum.0 += 1;
                sum.1 += money(&row, "amount").parse::<f64>().unwrap();
            }
        }
        let pipeline = report(&timeline, "pipeline", view);
        let per = pipeline["by_currency"].as_array().cloned().unwrap_or_else(|| vec![pipeline.clone()]);
        let mut expected = BTreeMap::new();
        for c in &per {
            for s in c["stages"].as_array().unwrap() {
                if s["deals"].as_u64().unwrap() > 0 {
                    let key = (
                        c["currency"].as_str().unwrap().to_string(),
                        s["stage"].as_str().unwrap().to_string(),
                    );
                    expected.insert(key, (s["deals"].as_u64().unwrap(), s["amount"].as_f64().unwrap()));
                }
            }
        }
        assert!(!expected.is_empty());
        assert_eq!(open.len(), expected.len(), "{name}");
        for (key, (deals, amount)) in &expected {
            let got = open[key];
            assert_eq!(got.0, *deals, "{name} {key:?}");
            assert!((got.1 - amount).abs() < 0.005, "{name} {key:?}: {} vs {amount}", got.1);
        }

        // Time in stage from `stage_visits`: completed visits and open ones, per stage.
        let mut visits: BTreeMap<String, (u64, u64, i64)> = BTreeMap::new();
        for row in rows(&out.join("stage_visits.parquet")) {
            let v = visits.entry(text(&row, "stage")).or_default();
            match micros(&row, "end") {
                Some(end) => {
                    v.0 += 1;
                    v.2 = v.2.max(end - micros(&row, "start").unwrap());
                }
                None => v.1 += 1,
            }
        }
        let stages = report(&timeline, "time-in-stage", view);
        for s in stages["stages"].as_array().unwrap() {
            let stage = s["stage"].as_str().unwrap();
            let (completed, open, max) = visits.get(stage).copied().unwrap_or_default();
            assert_eq!(
                (completed, open),
                (s["completed"].as_u64().unwrap(), s["open"].as_u64().unwrap()),
                "{name} {stage}"
            );
            if completed > 0 {
                let max_days = (max as f64 / 86_400e6 * 1e6).round() / 1e6;
                assert_eq!(max_days, s["max_days"].as_f64().unwrap(), "{name} {stage}");
            }
        }

        // Every event the view sees, once, in seq order; every touch.
        let events = rows(&out.join("events.parquet"));
        let seqs: Vec<i64> = events
            .iter()
            .map(|r| match field(r, "seq") {
                Field::Long(s) => *s,
                f => panic!("{f:?}"),
            })
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        let seen = |at: Option<i64>| at.is_some_and(|at| at <= as_of.0);
        assert!(events.iter().all(|r| seen(micros(r, "at"))));
        let touch_events = events.iter().filter(|r| text(r, "type") == "touch").count();
        assert_eq!(rows(&out.join("touches.parquet")).len(), touch_events, "{name}");
        if name == "now" {
            assert_eq!(events.len() as u64, ledger.log().head().seq);
        }

        // CSV: the same deals, amounts in their currency's digits.
        let mut reader = csv::Reader::from_path(out.join("deals.csv")).unwrap();
        let csv_amounts: Vec<String> = reader.records().map(|r| r.unwrap()[5].to_string()).collect();
        let parquet_amounts: Vec<String> =
            rows(&out.join("deals.parquet")).iter().map(|r| money(r, "amount")).collect();
        let cents = |s: &String| format!("{:.2}", s.parse::<f64>().unwrap());
        assert_eq!(csv_amounts.iter().map(cents).collect::<Vec<_>>(), parquet_amounts);
    }
}

#[test]
fn an_export_is_the_same_bytes_every_time() {
    let ledger = ledger();
    let (timeline, _) = catch_up::<Timeline, _>(ledger.log()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for format in [Format::Parquet, Format::Csv] {
        let [a, b] = [dir.path().join("a"), dir.path().join("b")];
        let first = export(ledger.log(), &timeline, View::ALL, &Table::ALL, format, &a).unwrap();
        export(ledger.log(), &timeline, View::ALL, &Table::ALL, format, &b).unwrap();
        for written in first {
            let name = written.path.file_name().unwrap();
            assert_eq!(
                std::fs::read(a.join(name)).unwrap(),
                std::fs::read(b.join(name)).unwrap(),
                "{name:?}"
            );
            assert!(!a.join(format!("{}.tmp", name.to_string_lossy())).exists());
        }
    }
}

//! `dealledger export`: the query of docs/export.md, run by DuckDB over the exported Parquet,
//! gives `report time-in-stage`'s figures, and the CSV export agrees with the Parquet one. Needs
//! python3 with DuckDB's package; skipped with the reason where it is missing, required when
//! `DEALLEDGER_REQUIRE_TOOLS` is set (`.ci/run` installs it).

use crate::harness::Ledger;
use std::path::Path;
use std::process::Command;

const NOW: &str = "2026-06-01T00:00:00Z";

/// The first ```sql block of docs/export.md: the query the docs promise.
fn documented_query() -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/export.md")).unwrap();
    let start = doc.find("```sql\n").expect("docs/export.md has a sql block") + "```sql\n".len();
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_string()
}

#[test]
fn duckdb_over_the_export_gives_the_time_in_stage_report() {
    let missing = match Command::new("python3").args(["-c", "import duckdb"]).output() {
        Ok(out) if out.status.success() => None,
        _ => Some("python3 cannot import duckdb (pip install duckdb==2.0.1)".to_string()),
    };
    if !crate::harness::tool_available(
        "duckdb_over_the_export_gives_the_time_in_stage_report",
        "DuckDB",
        missing,
    ) {
        return;
    }
    let l = Ledger::new();
    let history = l.run(&["gen", "--deals", "300", "--seed", "5"]).ok().stdout;
    let path = l.file("history.jsonl", &history.lines().collect::<Vec<_>>());
    l.run(&["--now", NOW, "ingest", "--quiet", path.to_str().unwrap()]).ok();
    let out = l.data().join("export");
    for as_of in ["2026-06-01", "2024-06-30"] {
        let args =
            ["--now", NOW, "export", "--format", "parquet", "--table", "stage_visits", "--as-of", as_of];
        l.run(&[&args[..], &["--out", out.to_str().unwrap()]].concat()).ok();
        let report = l
            .run(&["--now", NOW, "report", "time-in-stage", "--as-of", as_of, "--format", "json"])
            .ok()
            .json();
        let mut expected: Vec<serde_json::Value> = report["stages"].as_array().unwrap().clone();
        expected.sort_by_key(|s| s["stage"].as_str().unwrap().to_string());
        let script = "import duckdb, json, sys\n\
            con = duckdb.connect()\n\
            cols = ['stage', 'completed', 'mean_days', 'median_days', 'p90_days', 'max_days', 'open']\n\
            rows = con.execute(sys.stdin.read()).fetchall()\n\
            print(json.dumps([dict(zip(cols, [float(v) if isinstance(v, float) else v for v in r])) for r in rows]))\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .current_dir(&out)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(documented_query().as_bytes()).unwrap();
        let run = child.wait_with_output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let actual: Vec<serde_json::Value> = serde_json::from_slice(&run.stdout).unwrap();
        assert!(!actual.is_empty());
        assert_eq!(actual.len(), expected.len(), "as of {as_of}");
        for (a, e) in actual.iter().zip(&expected) {
            for key in ["stage", "completed", "mean_days", "median_days", "p90_days", "max_days", "open"] {
                assert_eq!(a[key], e[key], "as of {as_of}, stage {}, {key}", e["stage"]);
            }
        }
    }
}

#[test]
fn export_refuses_a_bad_table_or_format_and_writes_nothing() {
    let l = Ledger::new();
    let out = l.data().join("export");
    let bad_table =
        l.run(&["export", "--format", "csv", "--table", "opportunities", "--out", out.to_str().unwrap()]);
    assert_eq!(bad_table.code, 2, "{}", bad_table.stderr);
    assert!(
        bad_table.stderr.contains("`opportunities` is not a table (events, deals, stage_visits, touches)"),
        "{}",
        bad_table.stderr
    );
    let bad_format = l.run(&["export", "--format", "xlsx", "--out", out.to_str().unwrap()]);
    assert_eq!(bad_format.code, 2);
    assert!(
        bad_format.stderr.contains("`xlsx` is not an export format (parquet, csv)"),
        "{}",
        bad_format.stderr
    );
    let bad_moment =
        l.run(&["export", "--format", "csv", "--as-of", "yesterday", "--out", out.to_str().unwrap()]);
    assert_eq!(bad_moment.code, 2, "{}", bad_moment.stderr);
    assert!(bad_moment.stderr.contains("--as-of `yesterday`"), "{}", bad_moment.stderr);
    assert!(!out.exists(), "nothing is written for a refused export");
}

//! The side-by-side benchmark against DuckDB (`benches/versus_duckdb.py`) on a small history:
//! it refuses to print unless both sides give the same figures, so this holds that the ledger's
//! reports and the SQL of `benches/duckdb/` agree (time in stage and the pipeline, as of now and
//! as of a past date). Needs python3 with DuckDB's package; skipped with the reason where it is
//! missing, required when `DEALLEDGER_REQUIRE_TOOLS` is set (`.ci/run` installs it).

use std::path::Path;
use std::process::{Command, Stdio};

fn duckdb_available(test: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", "import duckdb"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let missing = match found {
        Ok(status) if status.success() => None,
        _ => Some("python3 cannot import duckdb (pip install duckdb==2.0.1)".to_string()),
    };
    crate::harness::tool_available(test, "DuckDB's Python package", missing)
}

#[test]
fn the_ledger_and_duckdb_give_the_same_figures() {
    if !duckdb_available("the_ledger_and_duckdb_give_the_same_figures") {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/versus_duckdb.py");
    let run = Command::new("python3")
        .arg(&script)
        .args(["--deals", "400", "--runs", "1", "--json", "--binary", crate::harness::binary()])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}\n{}", String::from_utf8_lossy(&run.stderr), stdout);
    let figures: serde_json::Value = serde_json::from_str(&stdout).expect("the figures as JSON");
    assert_eq!(figures["same_figures"], true);
    assert!(figures["events"].as_u64().unwrap() > 4000, "{figures}");
}

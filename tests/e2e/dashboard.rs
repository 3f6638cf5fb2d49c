//! The dashboard in a real browser: headless Chromium driven through chromedriver
//! (`tests/e2e/browser.rs`). Every page loads with no
//! console error, the figures shown are the JSON API's, the as-of picker changes the pipeline, a
//! new event appears on an open page without reload, the token is asked once and kept in an
//! HttpOnly, SameSite=Strict cookie, and a cross-site form post is refused. Screenshots of every
//! page, light and dark, go to `target/dashboard-screenshots/`. Needs `chromium` and `chromedriver`;
//! skipped with the reason where one is missing, required when `DEALLEDGER_REQUIRE_TOOLS` is set
//! (`.ci/run` installs both).

use crate::daemon::{Daemon, NOW, TOKEN};
use crate::harness::Ledger as Sandbox;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn tools_available(test: &str) -> bool {
    let works =
        |program: &str| Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
    let missing = if !works("chromium") {
        Some("`chromium` is not installed (apt-get install chromium)".to_string())
    } else if !works("chromedriver") {
        Some("`chromedriver` is not installed (apt-get install chromium-driver)".to_string())
    } else {
        None
    };
    crate::harness::tool_available(test, "Chromium and chromedriver", missing)
}

fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the steps in one browser; their results in order.
pub(crate) fn drive(url: &str, steps: Value) -> Vec<Value> {
    drive_plan(json!({"url": url, "shots": shots(), "steps": steps}))
}

/// Runs a whole plan (an `offline` one too) in a fresh browser.
fn drive_plan(plan: Value) -> Vec<Value> {
    crate::browser::Browser::start().run(&plan)
}

/// A table cell as a number (`1,419,400` -> 1419400.0), or None for text.
fn number(cell: &Value) -> Option<f64> {
    // A figure may carry its unit after it (`1,419,400 USD`, `39.2 %`).
    let text = cell.as_str()?.replace(',', "");
    text.split_whitespace().next()?.parse().ok()
}

/// The page's "Open deals by stage (CUR)" tables against the pipeline report's stages: the same
/// stages, deal counts and amounts (shown to 2 decimals at most).
fn same_pipeline(step: &Value, report: &Value) {
    let blocks = match report["by_currency"].as_array() {
        Some(blocks) if !blocks.is_empty() => blocks.clone(),
        _ => vec![report.clone()],
    };
    for block in blocks {
        let caption = format!("Open deals by stage ({})", block["currency"].as_str().unwrap());
        let table = step["tables"].as_array().unwrap().iter().find(|t| t["caption"] == caption.as_str());
        let rows = table
            .unwrap_or_else(|| panic!("no table `{caption}` on the page"))
            .get("rows")
            .unwrap()
            .as_array()
            .unwrap()
            .clone();
        for (row, stage) in rows.iter().zip(block["stages"].as_array().unwrap()) {
            assert_eq!(row[0], stage["stage"], "{caption}");
            for (i, key) in [(1, "deals"), (2, "amount"), (3, "weighted_amount")] {
                let shown = number(&row[i]).unwrap();
                let api = stage[key].as_f64().unwrap();
                assert!(
                    (shown - api).abs() <= 0.005,
                    "{caption} {}: {key} shown {shown}, API {api}",
                    stage["stage"]
                );
            }
        }
    }
}

/// A ledger holding a generated history of 200 deals (two currencies), ingested at [`NOW`].
fn with_history() -> Sandbox {
    let sandbox = Sandbox::new();
    let history = sandbox.run(&["gen", "--deals", "200", "--seed", "9"]).ok().stdout;
    let path = sandbox.file("history.jsonl", &history.lines().collect::<Vec<_>>());
    sandbox.run(&["--now", NOW, "ingest", "--quiet", path.to_str().unwrap()]).ok();
    sandbox
}

#[test]
fn the_dashboard_in_a_browser_shows_the_apis_figures() {
    if !tools_available("the_dashboard_in_a_browser_shows_the_apis_figures") {
        return;
    }
    let sandbox = with_history();
    let daemon = Daemon::start(&sandbox, &format!("[serve]\ntoken = \"{TOKEN}\"\n"));

    // The page holds no data and is open to all; the data is behind the token.
    let page = ureq::get(&format!("{}/", daemon.url)).call().unwrap();
    assert_eq!(page.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(page.header("Content-Security-Policy").unwrap().contains("script-src 'self'"));
    match ureq::get(&format!("{}/v1/reports/pipeline", daemon.url)).call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("a report without the token: {other:?}"),
    }

    let sign_in = format!(
        "(document.querySelector('input[name=token]').value = {}, document.querySelector('form').requestSubmit(), true)",
        json!(TOKEN)
    );
    let post_event = r#"fetch('/v1/events', {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({deal: 'LIVE-1', type: 'opened', at: '2026-01-10T00:00:00Z', owner: 'rep-live', amount: 5000, currency: 'JPY'})})
        .then((r) => r.status)"#;
    let slide_to_first = "(() => { const s = document.querySelector('input[type=range]'); s.value = 0; \
        s.dispatchEvent(new Event('input')); return true; })()";
    let has = |text: &str| format!("document.body.innerText.includes({})", json!(text));
    let steps = json!([
        {"page": "pipeline", "hash": "pipeline", "until": has("Sign in")},
        {"page": "pipeline", "hash": "pipeline", "navigate": false, "evaluate": sign_in, "until": has("Open deals by stage"), "shot": "pipeline-light"},
        {"page": "pipeline", "hash": "pipeline", "dark": true, "shot": "pipeline-dark"},
        {"page": "pipeline", "hash": "pipeline?as_of=2025-03-31", "until": has("2025-03-31")},
        {"page": "time-in-stage", "hash": "time-in-stage", "shot": "time-in-stage-light"},
        {"page": "time-in-stage", "hash": "time-in-stage", "dark": true, "shot": "time-in-stage-dark"},
        {"page": "kpis", "hash": "kpis?from=2025-01-01&to=2025-07-01", "shot": "kpis-light"},
        {"page": "kpis", "hash": "kpis?from=2025-01-01&to=2025-07-01", "dark": true, "shot": "kpis-dark"},
        {"page": "flags", "hash": "flags", "shot": "flags-light"},
        {"page": "flags", "hash": "flags", "dark": true, "shot": "flags-dark"},
        {"page": "cost", "hash": "cost?from=2025-01-01&to=2026-01-01", "shot": "cost-light"},
        {"page": "cost", "hash": "cost?from=2025-01-01&to=2026-01-01", "dark": true, "shot": "cost-dark"},
        {"page": "deal", "hash": "deal?id=D-0000001", "shot": "deal-light"},
        {"page": "deal", "hash": "deal?id=D-0000001", "dark": true, "shot": "deal-dark"},
        {"page": "whatif", "hash": "whatif?rule=gone_dark&from=5&to=40&step=5", "until": "!!document.querySelector('#threshold[data-value]')", "shot": "whatif-light"},
        {"page": "whatif", "hash": "whatif?rule=gone_dark&from=5&to=40&step=5", "dark": true, "until": "!!document.querySelector('#threshold[data-value]')", "shot": "whatif-dark"},
        {"page": "whatif", "hash": "whatif", "navigate": false, "evaluate": slide_to_first, "until": "document.querySelector('#threshold').dataset.value === '5'"},
        {"page": "time-in-stage", "hash": "time-in-stage?by=owner", "until": has("rep-01: completed visits")},
        {"page": "deal", "hash": "deal?id=D-0000001"},
        {"page": "deal", "hash": "deal?id=D-0000001", "navigate": false, "evaluate": "(document.querySelector('details summary').click(), true)", "until": "!!document.querySelector('#proof[data-loaded]')"},
        {"page": "kpis", "hash": "kpis?from=2025-01-01&to=2025-07-01&forecast=500000", "until": has("Forecast error")},
        {"page": "whatif", "hash": "whatif?rule=gone_dark&from=5&to=40&step=5&a=gone_dark=14&b=gone_dark=30,stalled=2", "until": has("Policy A (gone_dark=14)"), "shot": "whatif-compare-light"},
        {"page": "pipeline", "hash": "pipeline?currency=EUR", "until": has("Open deals by stage (EUR)")},
        {"page": "pipeline", "hash": "pipeline", "media": "print", "until": "getComputedStyle(document.querySelector('header nav')).display === 'none'", "print": "pipeline"},
    ]);
    let results = drive(&daemon.url, steps);
    for (i, step) in results.iter().enumerate() {
        assert_eq!(step["ready"], true, "step {i} ({}) never got ready: {}", step["page"], step["text"]);
        assert_eq!(step["errors"], json!([]), "step {i} ({}): console errors", step["page"]);
    }
    // The token was asked for once, then the pages showed the API's figures.
    assert!(results[0]["text"].as_str().unwrap().contains("Sign in"));
    let now = daemon.get_json("/v1/reports/pipeline");
    same_pipeline(&results[1], &now);
    let past = daemon.get_json("/v1/reports/pipeline?as_of=2025-03-31");
    same_pipeline(&results[3], &past);
    assert_ne!(past["totals"], now["totals"], "the as-of date changes the pipeline");
    let stages = daemon.get_json("/v1/reports/time-in-stage");
    let table = &results[4]["tables"][0]["rows"];
    for (row, stage) in table.as_array().unwrap().iter().zip(stages["stages"].as_array().unwrap()) {
        assert_eq!(row[0], stage["stage"]);
        for (i, key) in [(1, "completed"), (3, "median_days"), (4, "p90_days"), (6, "open")] {
            let (shown, api) = (number(&row[i]).unwrap(), stage[key].as_f64().unwrap());
            assert!(
                (shown - api).abs() <= 0.005,
                "time in stage {}: {key} shown {shown}, API {api}",
                stage["stage"]
            );
        }
    }
    // The what-if slider picks a threshold, and the page shows that row of the API's sweep.
    let sweep = daemon.get_json("/v1/whatif?sweep=gone_dark=5..40:5");
    let figure = |step: &Value, name: &str| -> f64 {
        let table = step["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["caption"].as_str().unwrap().starts_with("Threshold"))
            .unwrap();
        number(&table["rows"].as_array().unwrap().iter().find(|r| r[0] == name).unwrap()[1]).unwrap()
    };
    let (best, first) = (&sweep["best"], &sweep["rows"][0]);
    assert_ne!(best["value"], first["value"], "the slider moves off the best threshold");
    for (step, row) in [(&results[15], best), (&results[16], first)] {
        for (name, key) in [("cut", "cut"), ("cut won", "cut_won"), ("net value", "net_value")] {
            assert!(
                (figure(step, name) - row[key].as_f64().unwrap()).abs() <= 0.005,
                "{name} at {}",
                row["value"]
            );
        }
    }

    // The deal page draws the deal's fold: its visits, as the timeline endpoint gives them.
    let deal = daemon.get_json("/v1/deals/D-0000001/timeline");
    let visits =
        results[12]["tables"].as_array().unwrap().iter().find(|t| t["caption"] == "Stage visits").unwrap();
    let shown: Vec<&str> =
        visits["rows"].as_array().unwrap().iter().map(|r| r[0].as_str().unwrap()).collect();
    let api: Vec<&str> =
        deal["visits"].as_array().unwrap().iter().map(|v| v["stage"].as_str().unwrap()).collect();
    assert!(!api.is_empty());
    assert_eq!(shown, api);
    assert_eq!(daemon.get("/v1/deals/NO-SUCH-DEAL/timeline").0, 404);
    assert_eq!(daemon.get("/v1/deals/D-0000001/timeline?as_of=soon").0, 400);

    // The audit proof, a click away: each event's block and chain as the API gives them.
    let proof = daemon.get_json("/v1/deals/D-0000001/proof");
    let events = proof["events"].as_array().unwrap();
    for event in events {
        let seq = event["seq"].as_u64().unwrap();
        assert!(
            event["block_first_seq"].as_u64().unwrap() <= seq
                && seq <= event["block_last_seq"].as_u64().unwrap()
        );
    }
    let chain_table = results[19]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["caption"].as_str().unwrap().starts_with("The hash chain"))
        .unwrap();
    let rows = chain_table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), events.len());
    for (row, event) in rows.iter().zip(events) {
        assert_eq!((row[0].as_str().unwrap(), &row[3]), (event["seq"].to_string().as_str(), &event["chain"]));
    }

    // Time in stage by owner: a table per owner, each the API's.
    let by_owner = daemon.get_json("/v1/reports/time-in-stage?by=owner");
    let first_owner = &by_owner["by_owner"][0];
    let caption =
        format!("{}: completed visits (days) and deals open", first_owner["owner"].as_str().unwrap());
    let owner_table =
        results[17]["tables"].as_array().unwrap().iter().find(|t| t["caption"] == caption.as_str()).unwrap();
    assert_eq!(number(&owner_table["rows"][0][1]), first_owner["stages"][0]["completed"].as_f64());
    // A forecast entered on the KPI page gives the API's forecast accuracy.
    let kpis = daemon.get_json("/v1/reports/kpis?from=2025-01-01&to=2025-07-01&forecast=500000");
    let kpi_rows = table_of(&results[20], "KPIs in USD")["rows"].as_array().unwrap();
    let accuracy = kpi_rows.iter().find(|r| r[0] == "Forecast error (%)").unwrap();
    assert!((number(&accuracy[1]).unwrap() - kpis["forecast_accuracy"].as_f64().unwrap()).abs() <= 0.005);
    // Two policies compared: the API's figures for each.
    let compared = daemon.get_json("/v1/whatif?policy=gone_dark=14&policy=gone_dark=30,stalled=2");
    let compare = results[21]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["caption"].as_str().unwrap().starts_with("Policy A"))
        .unwrap();
    let net = compare["rows"].as_array().unwrap().iter().find(|r| r[0] == "net value").unwrap();
    for (i, policy) in [(1, &compared["policies"][0]), (2, &compared["policies"][1])] {
        assert!((number(&net[i]).unwrap() - policy["net_value"].as_f64().unwrap()).abs() <= 0.005);
    }
    // The currency selector shows one currency's pipeline.
    let captions: Vec<&str> =
        results[22]["tables"].as_array().unwrap().iter().map(|t| t["caption"].as_str().unwrap()).collect();
    assert!(
        captions.contains(&"Open deals by stage (EUR)") && !captions.contains(&"Open deals by stage (USD)"),
        "{captions:?}"
    );

    // Printed, the page drops its navigation and fields (the step waits for that) and prints.
    assert_eq!(results[23]["ready"], true);
    let pdf = std::fs::read(shots().join("pipeline.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF") && pdf.len() > 10_000, "pipeline.pdf");

    // An event posted from an open page arrives over /v1/stream and the page redraws itself.
    let live = drive(
        &daemon.url,
        json!([
            {"page": "pipeline", "hash": "pipeline", "until": has("Sign in")},
            {"page": "pipeline", "hash": "pipeline", "navigate": false, "evaluate": sign_in, "until": has("Open deals by stage")},
            {"page": "pipeline", "hash": "pipeline", "navigate": false, "evaluate": post_event, "until": has("JPY")},
        ]),
    );
    let last = &live[2];
    assert_eq!((last["ready"].clone(), last["errors"].clone()), (json!(true), json!([])), "{}", last["text"]);
    assert!(last["text"].as_str().unwrap().contains("live: 1 new event"), "{}", last["text"]);
    assert_eq!(
        daemon.get_json("/v1/reports/pipeline")["by_currency"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["currency"] == "JPY")
            .count(),
        1
    );
    for shot in [
        "pipeline-light",
        "pipeline-dark",
        "time-in-stage-dark",
        "kpis-light",
        "flags-light",
        "cost-light",
        "deal-dark",
    ] {
        let png = std::fs::read(shots().join(format!("{shot}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{shot}.png");
    }
    eprintln!("screenshots in {}", shots().display());
    daemon.terminate();
}

#[test]
fn the_session_cookie_is_httponly_strict_and_a_cross_site_form_post_is_refused() {
    let sandbox = Sandbox::new();
    let daemon = Daemon::start(&sandbox, &format!("[serve]\ntoken = \"{TOKEN}\"\n"));
    // The answer's status and Set-Cookie.
    let session = |token: &str| -> (u16, Option<String>) {
        match ureq::post(&format!("{}/v1/session", daemon.url))
            .set("Content-Type", "application/json")
            .send_string(&json!({"token": token}).to_string())
        {
            Ok(r) => (r.status(), r.header("Set-Cookie").map(str::to_string)),
            Err(ureq::Error::Status(code, _)) => (code, None),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(session("wrong"), (401, None));
    let (status, cookie) = session(TOKEN);
    assert_eq!(status, 204);
    let cookie = cookie.unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(TOKEN), "the cookie holds a MAC of the token, not the token");
    let pair = cookie.split(';').next().unwrap().to_string();
    // The cookie opens what the token opens.
    let report =
        ureq::get(&format!("{}/v1/reports/pipeline", daemon.url)).set("Cookie", &pair).call().unwrap();
    assert_eq!(report.status(), 200);
    // A form on another site, posting with the cookie (as a browser without SameSite would):
    // refused, and nothing stored.
    let form = ureq::post(&format!("{}/v1/events", daemon.url))
        .set("Cookie", &pair)
        .set("Origin", "https://evil.example")
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string("deal=X&type=opened");
    assert!(matches!(form, Err(ureq::Error::Status(415, _))), "{form:?}");
    let text_plain = ureq::post(&format!("{}/v1/events", daemon.url))
        .set("Cookie", &pair)
        .set("Content-Type", "text/plain")
        .send_string(r#"{"deal":"X","type":"opened","at":"2026-01-01T00:00:00Z","owner":"o","amount":1}"#);
    assert!(matches!(text_plain, Err(ureq::Error::Status(415, _))), "{text_plain:?}");
    assert_eq!(daemon.get_json("/v1/reports/pipeline")["totals"]["deals"], 0);
    // A made-up cookie opens nothing.
    let forged = ureq::get(&format!("{}/v1/reports/pipeline", daemon.url))
        .set("Cookie", "dealledger_session=00")
        .call();
    assert!(matches!(forged, Err(ureq::Error::Status(401, _))));
    daemon.terminate();
}

#[test]
fn the_one_file_report_opens_offline_from_a_file_with_the_reports_figures() {
    if !tools_available("the_one_file_report_opens_offline_from_a_file_with_the_reports_figures") {
        return;
    }
    let sandbox = with_history();
    let file = sandbox.dir.path().join("review.html");
    let when = ["--as-of", "2025-06-30", "--from", "2025-01-01", "--to", "2025-07-01"];
    sandbox
        .run(&[&["--now", NOW, "report", "html", "--out", file.to_str().unwrap()][..], &when].concat())
        .ok();
    // (The SVG namespace is a name, not a place the page goes to.)
    let html = std::fs::read_to_string(&file).unwrap().replace("http://www.w3.org/2000/svg", "");
    // Self-contained: nothing to fetch, from anywhere.
    for reference in ["src=\"", "href=\"/", "http://", "https://"] {
        assert!(!html.contains(reference), "the file refers to `{reference}...`");
    }
    let steps = json!([
        {"page": "pipeline", "hash": "pipeline", "shot": "one-file-pipeline"},
        {"page": "kpis", "hash": "kpis"},
        {"page": "time-in-stage", "hash": "time-in-stage"},
        {"page": "flags", "hash": "flags"},
        {"page": "cost", "hash": "cost"},
    ]);
    let plan = json!({"url": format!("file://{}", file.display()), "offline": true, "shots": shots(), "steps": steps});
    let results = drive_plan(plan);
    for step in &results {
        assert_eq!(
            (step["ready"].clone(), step["errors"].clone()),
            (json!(true), json!([])),
            "{}: {}",
            step["page"],
            step["text"]
        );
    }
    let cli = |args: &[&str]| {
        sandbox.run(&[&["--now", NOW, "report"][..], args, &["--format", "json"]].concat()).ok().json()
    };
    same_pipeline(&results[0], &cli(&["pipeline", "--as-of", "2025-06-30"]));
    // The KPI table: this period's figures as `report kpis` gives them.
    let kpis = cli(&["kpis", "--from", "2025-01-01", "--to", "2025-07-01"]);
    let rows = table_of(&results[1], "KPIs in USD")["rows"].as_array().unwrap();
    for (label, key) in [
        ("Won (deals)", "won"),
        ("Lost (deals)", "lost"),
        ("Disqualified (deals)", "disqualified"),
        ("Revenue", "revenue"),
        ("Opportunities created", "opportunities_created"),
    ] {
        let row = rows.iter().find(|r| r[0] == label).unwrap_or_else(|| panic!("no row {label}"));
        assert_eq!(number(&row[1]), kpis[key].as_f64(), "{key}");
    }
}

/// The dates (`YYYY-MM-DD`) in a text, in order.
fn dates_in(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(9))
        .filter(|&i| {
            let d = |j: usize| b[i + j].is_ascii_digit();
            d(0) && d(1)
                && d(2)
                && d(3)
                && b[i + 4] == b'-'
                && d(5)
                && d(6)
                && b[i + 7] == b'-'
                && d(8)
                && d(9)
                && (i == 0 || !b[i - 1].is_ascii_digit())
        })
        .map(|i| text[i..i + 10].to_string())
        .collect()
}

/// The first whole number in `text` after `marker`.
fn count_after(text: &str, marker: &str) -> Option<f64> {
    let rest = text.split_once(marker)?.1;
    let digits: String = rest
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits.parse().ok()
}

/// The table of a step whose caption starts with `caption`.
fn table_of<'a>(step: &'a Value, caption: &str) -> &'a Value {
    step["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["caption"].as_str().unwrap().starts_with(caption))
        .unwrap_or_else(|| panic!("{}: no table `{caption}...`: {}", step["page"], step["text"]))
}

/// The row of a table whose first cell is one of `names`, and its cells as numbers.
fn row_of(table: &Value, names: &[&str]) -> Vec<Option<f64>> {
    let row = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| names.iter().any(|n| r[0] == *n))
        .unwrap_or_else(|| panic!("no row {names:?} in {table}"));
    row.as_array().unwrap().iter().map(number).collect()
}

/// Each step of a plan opened as a person opens it: ready, no error shown (`role=alert`), no
/// error or rejected promise in the console.
fn all_clean(results: &[Value]) {
    for (i, step) in results.iter().enumerate() {
        assert_eq!(step["ready"], true, "step {i} ({}) was left loading: {}", step["page"], step["text"]);
        assert_eq!(step["errors"], json!([]), "step {i} ({}): console errors", step["page"]);
        assert_eq!(step["alerts"], json!([]), "step {i} ({}) shows an error: {}", step["page"], step["text"]);
    }
}

/// Every page as the menu opens it, with no parameters: on the daemon, then in the one-file
/// report. Each page must be ready with no error, and show one figure the API gives.
#[test]
fn every_page_opens_as_the_menu_opens_it() {
    if !tools_available("every_page_opens_as_the_menu_opens_it") {
        return;
    }
    let sandbox = with_history();
    let daemon = Daemon::start(&sandbox, &format!("[serve]\ntoken = \"{TOKEN}\"\n"));
    let sign_in = format!(
        "(document.querySelector('input[name=token]').value = {}, document.querySelector('form').requestSubmit(), true)",
        json!(TOKEN)
    );
    let has = |text: &str| format!("document.body.innerText.includes({})", json!(text));
    let menu = |page: &str| format!("(document.querySelector('nav a[href=\"#{page}\"]').click(), true)");
    let mut steps = vec![
        json!({"page": "pipeline", "hash": "", "until": has("Sign in")}),
        json!({"page": "pipeline", "hash": "", "navigate": false, "evaluate": sign_in, "until": has("Open deals by stage")}),
    ];
    let pages = ["pipeline", "time-in-stage", "kpis", "flags", "whatif", "cost"];
    for page in pages {
        steps.push(json!({"page": page, "hash": "", "navigate": false, "evaluate": menu(page)}));
    }
    let results = drive(&daemon.url, json!(steps));
    all_clean(&results);
    let by_page = |page: &str| &results[2 + pages.iter().position(|p| *p == page).unwrap()];
    // Pipeline: the total of the leading currency.
    let pipeline = daemon.get_json("/v1/reports/pipeline");
    let caption = format!("Open deals by stage ({})", pipeline["currency"].as_str().unwrap());
    let total = row_of(table_of(by_page("pipeline"), &caption), &["total"]);
    assert_eq!(total[1], pipeline["totals"]["deals"].as_f64(), "pipeline total");
    // Time in stage: the first stage's completed visits.
    let stages = daemon.get_json("/v1/reports/time-in-stage");
    let first = &stages["stages"][0];
    let shown =
        row_of(table_of(by_page("time-in-stage"), "Completed visits"), &[first["stage"].as_str().unwrap()]);
    assert_eq!(shown[1], first["completed"].as_f64(), "time in stage");
    // KPIs: the deals won in the period the page shows.
    let kpis_page = by_page("kpis");
    let kpi_table = kpis_page["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| dates_in(t["caption"].as_str().unwrap()).len() >= 2)
        .unwrap_or_else(|| panic!("no KPI table with its period: {}", kpis_page["text"]));
    let caption = kpi_table["caption"].as_str().unwrap();
    let period = dates_in(caption);
    // The table of one currency (`KPIs in EUR: ...`) is that currency's figures.
    let currency = caption.split_once("KPIs in ").map_or("", |(_, rest)| &rest[..3]);
    let kpis = daemon.get_json(&format!(
        "/v1/reports/kpis?from={}&to={}{}",
        period[0],
        period[1],
        if currency.is_empty() { String::new() } else { format!("&currency={currency}") }
    ));
    assert_eq!(row_of(kpi_table, &["won", "Won (deals)"])[1], kpis["won"].as_f64(), "KPIs won");
    // Flags: the number of deals that need a decision, not the number of flags.
    let flags = daemon.get_json("/v1/reports/flags");
    let caption = table_of(by_page("flags"), "Open deals that need a decision")["caption"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(count_after(&caption, "decision"), flags["deals_flagged"].as_f64(), "{caption}");
    // What-if: the first value of the default sweep.
    let sweep = daemon.get_json("/v1/whatif?sweep=gone_dark=5..60:5");
    let first = row_of(table_of(by_page("whatif"), "Sweep of gone_dark"), &["5"]);
    assert_eq!(first[1], sweep["rows"][0]["cut"].as_f64(), "what-if cut at 5");
    // Cost: the bad deals of the period the page shows.
    let cost_table = table_of(by_page("cost"), "Lost or disqualified");
    let period = dates_in(cost_table["caption"].as_str().unwrap());
    let cost = daemon.get_json(&format!("/v1/reports/bad-deal-cost?from={}&to={}", period[0], period[1]));
    assert_eq!(row_of(cost_table, &["total", "(total)"])[1], cost["totals"]["bad_deals"].as_f64(), "cost");
    daemon.terminate();

    // The one-file report made with no parameters, every page as its menu opens it.
    let file = sandbox.dir.path().join("first.html");
    sandbox.run(&["--now", NOW, "report", "html", "--out", file.to_str().unwrap()]).ok();
    let pages = ["pipeline", "time-in-stage", "kpis", "flags", "cost"];
    let steps: Vec<Value> = std::iter::once(json!({"page": "pipeline", "hash": ""}))
        .chain(
            pages
                .iter()
                .map(|page| json!({"page": page, "hash": "", "navigate": false, "evaluate": menu(page)})),
        )
        .collect();
    let plan = json!({"url": format!("file://{}", file.display()), "offline": true, "shots": shots(), "steps": steps});
    let results = drive_plan(plan);
    all_clean(&results);
    let flags = sandbox.run(&["--now", NOW, "report", "flags", "--format", "json"]).ok().json();
    let caption =
        table_of(&results[4], "Open deals that need a decision")["caption"].as_str().unwrap().to_string();
    assert_eq!(
        count_after(&caption, "decision"),
        flags["deals_flagged"].as_f64(),
        "one-file flags: {caption}"
    );
}

/// The KPI page as the menu opens it, on a history of two currencies that ended before the
/// daemon's now: a block per currency, labels for people, rates in %, no blank figure; and the
/// flags page's offer of the last event, followed.
#[test]
fn the_kpi_page_reads_as_people_write_and_an_offer_is_one_click_away() {
    if !tools_available("the_kpi_page_reads_as_people_write_and_an_offer_is_one_click_away") {
        return;
    }
    let sandbox = with_history();
    let daemon = Daemon::start(&sandbox, "");
    let follow = "(document.querySelector('a.offer-link').click(), true)";
    // The offer followed is done when the page shows the moment it offered, not when the
    // address changes: the page is fetched and drawn after that (a loaded machine read the
    // page before it was redrawn).
    let latest = daemon.get_json("/v1/reports/flags")["offer"]["as_of"].as_str().unwrap().to_string();
    let shown = format!("document.body.innerText.includes({})", json!(format!("As of {latest}")));
    let results = drive(
        &daemon.url,
        json!([
            {"page": "kpis", "hash": "kpis"},
            {"page": "flags", "hash": "flags"},
            {"page": "flags", "hash": "flags", "navigate": false, "evaluate": follow, "until": shown},
        ]),
    );
    all_clean(&results);
    let kpis = &results[0];
    for currency in ["EUR", "USD"] {
        let table = table_of(kpis, &format!("KPIs in {currency}"));
        for row in table["rows"].as_array().unwrap() {
            let label = row[0].as_str().unwrap();
            assert!(!label.contains('_'), "a raw key as a label: {label}");
            for cell in row.as_array().unwrap() {
                assert_ne!(cell, "", "a blank figure in {label}");
            }
        }
        let close = &row_of_text(table, "Close rate (won / closed)")[1];
        assert!(close.ends_with('%') || close == "—", "close rate `{close}`");
        let revenue = &row_of_text(table, "Revenue")[1];
        assert!(revenue.ends_with(currency), "revenue `{revenue}` says its currency");
    }
    // The history ends on 2025-12-31; the daemon's now is 2026-01-15: the flags say so, and the
    // offer shows them as of the last event.
    assert!(
        results[1]["text"].as_str().unwrap().contains("the ledger's last event is at"),
        "{}",
        results[1]["text"]
    );
    assert!(
        results[2]["text"].as_str().unwrap().contains(&format!("As of {latest}")),
        "{}",
        results[2]["text"]
    );
    daemon.terminate();
}

/// Every page as the menu opens it on a ledger with no deal yet (a first `serve`): an empty
/// page that says so, never an error.
#[test]
fn every_page_opens_on_an_empty_ledger() {
    if !tools_available("every_page_opens_on_an_empty_ledger") {
        return;
    }
    let sandbox = Sandbox::new();
    let daemon = Daemon::start(&sandbox, "");
    let menu = |page: &str| format!("(document.querySelector('nav a[href=\"#{page}\"]').click(), true)");
    let mut steps = vec![json!({"page": "pipeline", "hash": ""})];
    for page in ["pipeline", "time-in-stage", "kpis", "flags", "whatif", "cost"] {
        steps.push(json!({"page": page, "hash": "", "navigate": false, "evaluate": menu(page)}));
    }
    let results = drive(&daemon.url, json!(steps));
    all_clean(&results);
    assert!(
        results[1]["text"].as_str().unwrap().contains("the ledger holds no events"),
        "{}",
        results[1]["text"]
    );
    daemon.terminate();
}

/// The cells of the row of `table` whose first cell is `label`, as text.
fn row_of_text(table: &Value, label: &str) -> Vec<String> {
    let row = table["rows"].as_array().unwrap().iter().find(|r| r[0] == label);
    let row = row.unwrap_or_else(|| panic!("no row `{label}` in {table}"));
    row.as_array().unwrap().iter().map(|c| c.as_str().unwrap_or("").to_string()).collect()
}

/// The benchmark of README's page weight and speed (not part of the suite: `--ignored`): on the
/// data directory `DEALLEDGER_BENCH_DATA` (a large ledger, e.g. one `benches/versus_duckdb.py
/// --dir` left), the daemon's pipeline page from a cold load and two as-of dates picked on it.
///
/// `DEALLEDGER_BENCH_DATA=DIR cargo test --release --test e2e dashboard_speed -- --ignored --nocapture`
#[test]
#[ignore]
fn dashboard_speed() {
    let Some(data) = std::env::var_os("DEALLEDGER_BENCH_DATA") else {
        eprintln!("skipped dashboard_speed: DEALLEDGER_BENCH_DATA names no data directory");
        return;
    };
    let mut child = Command::new(crate::harness::binary())
        .arg("--data")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line)
        .unwrap();
    let url = line.trim().strip_prefix("listening on ").expect("the daemon's address").to_string();
    let weight: usize = ["/", "/assets/app.js", "/assets/app.css"]
        .iter()
        .map(|asset| ureq::get(&format!("{url}{asset}")).call().unwrap().into_string().unwrap().len())
        .sum();
    let has = |text: &str| format!("document.body.innerText.includes({})", json!(text));
    let steps = json!([
        {"page": "pipeline", "hash": "pipeline"},
        {"page": "pipeline", "hash": "pipeline?as_of=2025-06-30", "until": has("As of 2025-06-30")},
        {"page": "pipeline", "hash": "pipeline?as_of=2025-12-31", "until": has("As of 2025-12-31")},
    ]);
    let results = drive(&url, steps);
    println!("page weight: {weight} bytes (HTML, script and style, uncompressed)");
    for (label, step) in ["a cold load", "as of 2025-06-30 (every deal folded afresh)", "as of 2025-12-31"]
        .iter()
        .zip(&results)
    {
        println!(
            "pipeline page interactive in {} ms, {label} (ready {}, console errors {})",
            step["interactive_ms"],
            step["ready"],
            step["errors"].as_array().unwrap().len()
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

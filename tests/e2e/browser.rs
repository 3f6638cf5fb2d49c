//! Headless Chromium for the dashboard tests, through chromedriver (Debian's `chromium-driver`)
//! and its WebDriver HTTP API, spoken with ureq. A plan is a list of steps: open a page (or not),
//! evaluate an expression (it is returned, and a Promise it gives is waited for), wait until the page says it is ready (`#page[data-ready]` names it) and an
//! `until` expression holds, and record its tables, its text, its console errors and, with
//! `shot`, a PNG (with `print`, a PDF as printed).

use base64::Engine;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a step may wait for its page.
const STEP_WAIT_MAX: Duration = Duration::from_secs(20);

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Browser {
    /// chromedriver on a port of its choosing, and one headless session.
    pub fn start() -> Browser {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut port = None;
        for line in BufReader::new(driver.stdout.take().unwrap()).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                port = rest.trim().trim_end_matches('.').parse::<u16>().ok();
                break;
            }
        }
        let base = format!("http://127.0.0.1:{}", port.expect("chromedriver says its port"));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1400"]},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let created = ureq::post(&format!("{base}/session"))
            .set("Content-Type", "application/json")
            .send_string(&capabilities.to_string())
            .expect("a session");
        let created: Value = serde_json::from_str(&created.into_string().unwrap()).unwrap();
        let session = created["value"]["sessionId"].as_str().expect("a session id").to_string();
        Browser { driver, base, session }
    }

    fn call(&self, post: bool, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let answer = match post {
            true => ureq::post(&url).set("Content-Type", "application/json").send_string(&body.to_string()),
            false => ureq::get(&url).call(),
        };
        match answer {
            Ok(r) => serde_json::from_str::<Value>(&r.into_string().unwrap()).unwrap()["value"].clone(),
            Err(ureq::Error::Status(code, r)) => {
                panic!("WebDriver {path}: {code} {}", r.into_string().unwrap_or_default())
            }
            Err(e) => panic!("WebDriver {path}: {e}"),
        }
    }

    /// The value of a script's `return`; a Promise it returns is waited for.
    fn eval(&self, script: &str) -> Value {
        self.call(true, "/execute/sync", json!({"script": script, "args": []}))
    }

    fn cdp(&self, command: &str, params: Value) {
        self.call(true, "/goog/cdp/execute", json!({"cmd": command, "params": params}));
    }

    /// The console's errors (and failed loads) since the last call.
    fn errors(&self) -> Vec<Value> {
        let entries = self.call(true, "/se/log", json!({"type": "browser"}));
        entries
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].clone())
            .collect()
    }

    /// Runs `plan` (`url`, `shots`, `steps`, `offline`) and gives each step's record.
    pub fn run(&self, plan: &Value) -> Vec<Value> {
        let url = plan["url"].as_str().unwrap();
        if plan["offline"] == true {
            self.cdp("Network.enable", json!({}));
            let offline =
                json!({"offline": true, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1});
            self.cdp("Network.emulateNetworkConditions", offline);
        }
        let mut out = Vec::new();
        for step in plan["steps"].as_array().unwrap() {
            self.errors();
            let scheme = if step["dark"] == true { "dark" } else { "light" };
            // `media: "print"` shows the page as printing styles it.
            let media = step["media"].as_str().unwrap_or("");
            let features = json!([{"name": "prefers-color-scheme", "value": scheme}]);
            self.cdp("Emulation.setEmulatedMedia", json!({"media": media, "features": features}));
            // From before the navigation: a cold load counts the page's own loading too.
            let started = Instant::now();
            if step["navigate"] != false {
                // A served dashboard is URL/#page; a file is the file's URL and #page.
                let base = if url.starts_with("file:") { url.to_string() } else { format!("{url}/") };
                self.call(true, "/url", json!({"url": format!("{base}#{}", step["hash"].as_str().unwrap())}));
            }
            if let Some(script) = step["evaluate"].as_str() {
                self.eval(&format!("return {script}"));
            }
            let page = step["page"].as_str().unwrap();
            let until = step["until"].as_str().unwrap_or("true");
            let ready_check = format!(
                "const p = document.getElementById('page'); return !!(p && p.dataset.ready === {} && ({until}));",
                json!(page)
            );
            let ready = loop {
                if self.eval(&ready_check) == true {
                    break true;
                }
                if started.elapsed() > STEP_WAIT_MAX {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let interactive_ms = started.elapsed().as_millis() as u64;
            let tables = self.eval(
                "return [...document.querySelectorAll('#page table')].map((t) => ({ caption: t.caption ? \
                 t.caption.textContent : '', rows: [...t.tBodies[0].rows].map((r) => [...r.cells].map((c) => \
                 c.textContent)) }))",
            );
            let text = self.eval("return document.body.innerText");
            // Errors a page shows a person (the sign-in form's is empty until it has one).
            let alerts = self.eval(
                "return [...document.querySelectorAll('[role=alert]')].map((a) => a.textContent.trim()).filter((t) => t)",
            );
            if let Some(shot) = step["shot"].as_str() {
                let png = self.call(false, "/screenshot", Value::Null);
                let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
                let dir = std::path::Path::new(plan["shots"].as_str().unwrap());
                std::fs::write(dir.join(format!("{shot}.png")), bytes).unwrap();
            }
            if let Some(name) = step["print"].as_str() {
                let pdf = self.call(true, "/print", json!({}));
                let bytes = base64::engine::general_purpose::STANDARD.decode(pdf.as_str().unwrap()).unwrap();
                let dir = std::path::Path::new(plan["shots"].as_str().unwrap());
                std::fs::write(dir.join(format!("{name}.pdf")), bytes).unwrap();
            }
            let errors = self.errors();
            out.push(json!({"page": page, "ready": ready, "interactive_ms": interactive_ms, "tables": tables, "text": text, "errors": errors, "alerts": alerts}));
        }
        out
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

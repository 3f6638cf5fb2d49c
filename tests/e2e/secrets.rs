//! Secrets stay secret: a daemon logging at `RUST_LOG=trace` through a full run (tokens of every
//! role, a wrong one, HubSpot's signed deliveries and app secret, a scheduled sync with its
//! token, events with personal fields, reports, a live tail, the quarantine and its retry), and
//! the commands (`ingest`, `sync hubspot`) at the same level: no token, secret or personal field
//! in anything they print.

use crate::harness::Ledger as Sandbox;
use dealledger_sync::testkit::{FakeHubSpot, Portal};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const ADMIN: &str = "ADMIN-SECRET-TOKEN-7f3a9c";
const READER: &str = "READER-SECRET-TOKEN-2b8e1d";
const WRONG: &str = "WRONG-GUESSED-TOKEN-9d4c0a";
const APP_SECRET: &str = "HUBSPOT-APP-SECRET-5e6f7a";
const CONTACT: &str = "PERSONAL-CONTACT-4c2d@example.com";
const DEAL_NAME: &str = "PERSONAL-DEAL-NAME-Ana-Ortega";
const FIELD_VALUE: &str = "PERSONAL-FIELD-VALUE-home-phone";

fn get(url: &str, token: &str) -> u16 {
    match ureq::get(url).set("Authorization", &format!("Bearer {token}")).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(status, _)) => status,
        Err(e) => panic!("{url}: {e}"),
    }
}

fn post(url: &str, token: &str, body: &str) -> u16 {
    let request = ureq::post(url)
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json");
    match request.send_string(body) {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(status, _)) => status,
        Err(e) => panic!("{url}: {e}"),
    }
}

#[test]
fn no_secret_or_personal_field_is_printed_at_trace() {
    let mut portal = Portal::default();
    let hubspot_token = portal.token.clone();
    portal
        .deals
        .insert(7, dealledger_sync::testkit::FakeDeal::new(1_735_808_400_000, "appointmentscheduled"));
    let fake = FakeHubSpot::start(portal);
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.data()).unwrap();
    let token_file = sandbox.file("hubspot-token", &[&hubspot_token]);
    let toml = format!(
        "[serve]\ntoken = \"{ADMIN}\"\n[[serve.tokens]]\nname = \"board\"\ntoken = \"{READER}\"\nrole = \"read\"\n\
         [sync]\nhubspot = \"1h\"\nhubspot_token_file = \"{}\"\n\
         [hubspot]\napp_secret = \"{APP_SECRET}\"\napi_url = \"{}\"\n[hubspot.stages]\nappointmentscheduled = \"prospecting\"\n",
        token_file.display(),
        fake.url
    );
    std::fs::write(sandbox.data().join("dealledger.toml"), toml).unwrap();
    let mut child = Command::new(crate::harness::binary())
        .args([
            "--data",
            sandbox.data().to_str().unwrap(),
            "--now",
            "2026-01-15T12:00:00Z",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "trace")
        .env_remove("DEALLEDGER_DATA")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(sandbox.dir.path().join("trace.err")).unwrap()))
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").unwrap().to_string();
    let events = format!(
        "{{\"deal\":\"P-1\",\"type\":\"opened\",\"at\":\"2025-01-01T00:00:00Z\",\"owner\":\"o\",\"amount\":5,\"name\":\"{DEAL_NAME}\"}}\n\
         {{\"deal\":\"P-1\",\"type\":\"touch\",\"at\":\"2025-01-02T00:00:00Z\",\"channel\":\"email\",\"direction\":\"inbound\",\"contact\":\"{CONTACT}\"}}\n\
         {{\"deal\":\"P-1\",\"type\":\"field_set\",\"at\":\"2025-01-03T00:00:00Z\",\"field\":\"problem\",\"value\":\"{FIELD_VALUE}\"}}"
    );
    assert_eq!(post(&format!("{url}/v1/events"), ADMIN, &events), 200);
    // A refused event names the rule, not the value.
    let bad = format!("{{\"deal\":\"P-2\",\"type\":\"touch\",\"at\":\"2025-01-02T00:00:00Z\",\"channel\":\"email\",\"direction\":\"inbound\",\"contact\":\"{CONTACT}\"}}");
    assert_eq!(post(&format!("{url}/v1/events"), ADMIN, &bad), 400);
    for path in [
        "/v1/deals/P-1",
        "/v1/deals/P-1/timeline",
        "/v1/reports/pipeline",
        "/v1/reports/flags",
        "/metrics",
        "/v1/sync",
        "/v1/quarantine",
    ] {
        assert_eq!(get(&format!("{url}{path}"), READER,), 200, "{path}");
        assert_eq!(get(&format!("{url}{path}"), WRONG), 401, "{path}");
    }
    assert_eq!(post(&format!("{url}/v1/events"), READER, &events), 403);
    // A HubSpot delivery: one signed with the secret (a deal nobody knows: quarantined), one not.
    let body = format!(
        "[{}]",
        crate::hubspot::note(1, 1_768_478_000_000, 42, "deal.propertyChange", "dealname", DEAL_NAME)
    );
    let uri = format!("{url}/v1/hooks/hubspot");
    let ts = "1768478340000";
    let signature = dealledger_server::hubspot::sign_v3(APP_SECRET, "POST", &uri, body.as_bytes(), ts);
    let delivered = ureq::post(&uri)
        .set("Content-Type", "application/json")
        .set("X-HubSpot-Signature-v3", &signature)
        .set("X-HubSpot-Request-Timestamp", ts)
        .send_string(&body);
    assert!(delivered.is_ok(), "{delivered:?}");
    let forged = ureq::post(&uri)
        .set("Content-Type", "application/json")
        .set("X-HubSpot-Signature-v3", "AAAA")
        .set("X-HubSpot-Request-Timestamp", ts)
        .send_string(&body);
    assert!(matches!(forged, Err(ureq::Error::Status(401, _))), "{forged:?}");
    assert_eq!(post(&format!("{url}/v1/quarantine/retry"), ADMIN, "{}"), 200);
    // The live tail, read a little.
    let tail = ureq::get(&format!("{url}/v1/stream?from_seq=1"))
        .set("Authorization", &format!("Bearer {READER}"))
        .call()
        .unwrap();
    let mut first = String::new();
    BufReader::new(tail.into_reader()).read_line(&mut first).unwrap();
    // Wait for the scheduled sync's first run, then stop.
    let started = std::time::Instant::now();
    while !ureq::get(&format!("{url}/v1/sync"))
        .set("Authorization", &format!("Bearer {READER}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
        .contains("\"runs\":1")
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "no sync run");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    crate::daemon::signal(&child, "TERM");
    assert_eq!(crate::daemon::wait_exit(&mut child), 0);
    let mut printed = std::fs::read_to_string(sandbox.dir.path().join("trace.err")).unwrap();
    std::io::Read::read_to_string(&mut stdout, &mut printed).unwrap();
    // The commands too, at trace.
    let ingest = Command::new(crate::harness::binary())
        .args([
            "--data",
            sandbox.data().to_str().unwrap(),
            "sync",
            "hubspot",
            "--token-file",
            token_file.to_str().unwrap(),
        ])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    printed.push_str(&String::from_utf8_lossy(&ingest.stdout));
    printed.push_str(&String::from_utf8_lossy(&ingest.stderr));
    assert!(printed.lines().count() > 100, "trace logging is on: {} lines", printed.lines().count());
    for secret in [ADMIN, READER, WRONG, APP_SECRET, hubspot_token.as_str(), CONTACT, DEAL_NAME, FIELD_VALUE]
    {
        let found: Vec<&str> = printed.lines().filter(|l| l.contains(secret)).take(3).collect();
        assert!(found.is_empty(), "`{secret}` printed:\n{}", found.join("\n"));
    }
}

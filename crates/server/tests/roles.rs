//! Scoped tokens: every endpoint behind the tokens, with a token of every role, over HTTP. The
//! table is the router's own (`dealledger_server::route_roles`), so an endpoint added without a
//! role cannot exist, and one whose role changes shows here.
#![allow(clippy::unwrap_used, reason = "a test: a panic is a failing test")]

use dealledger_events::{FixedClock, Pipeline, Timestamp};
use dealledger_log::MemStore;
use dealledger_reports::Settings;
use dealledger_server::config::{Role, ScopedToken};
use dealledger_server::ServeConfig;
use std::sync::{mpsc, Arc};
use std::time::Duration;

const TOKENS: [(&str, &str, Role); 3] = [
    ("dashboard", "read-token-0123456789abcdef", Role::Read),
    ("integration", "write-token-0123456789abcdef", Role::Write),
    ("operator", "admin-token-0123456789abcdef", Role::Admin),
];

fn request(url: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let path = path.replace("{id}", "NO-SUCH-DEAL").replace("{name}", "pipeline");
    let mut request = ureq::request(method, &format!("{url}{path}")).timeout(Duration::from_secs(30));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let answer = match method {
        "POST" => request.set("Content-Type", "application/json").send_string("{}"),
        _ => request.call(),
    };
    match answer {
        // A live tail answers 200 and stays open: its status is the answer.
        Ok(r) => (r.status(), String::new()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

#[test]
fn every_endpoint_answers_each_role_as_its_table_says() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound) = mpsc::channel();
    let tokens = TOKENS.iter().map(|(name, token, role)| ScopedToken {
        name: name.to_string(),
        token: token.to_string(),
        role: *role,
    });
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tokens: tokens.collect(),
        ..ServeConfig::default()
    };
    let clock = Arc::new(FixedClock(Timestamp::parse_rfc3339("2026-01-15T12:00:00Z").unwrap()));
    let thread = std::thread::spawn(move || {
        dealledger_server::run(
            Arc::new(MemStore::default()),
            dealledger_server::Writing::Sole,
            Pipeline::default(),
            Settings::default(),
            config,
            clock,
            move |addr| bound_tx.send(addr).unwrap(),
            async move {
                let _ = stopped.await;
            },
        )
    });
    let url = format!("http://{}", bound.recv_timeout(Duration::from_secs(30)).unwrap());
    let table = dealledger_server::route_roles();
    assert!(table.len() >= 14, "{table:?}");
    for (path, method, needed) in &table {
        let (status, _) = request(&url, method, path, None);
        assert_eq!(status, 401, "{method} {path} without a token");
        for (name, token, role) in TOKENS {
            let (status, body) = request(&url, method, path, Some(token));
            if role == Role::Admin || role == *needed {
                assert!(
                    status != 401 && status != 403,
                    "{method} {path} with {name} ({role:?}): {status} {body}"
                );
            } else {
                assert_eq!(status, 403, "{method} {path} with {name} ({role:?}): {body}");
                assert!(body.contains(needed.as_str()) && body.contains("forbidden"), "{body}");
            }
        }
    }
    // Who appended each event is the name of the token that posted it.
    let event = r#"{"deal":"BY-1","type":"opened","at":"2025-01-01T00:00:00Z","owner":"o","amount":1,"appended_by":"forged"}"#;
    let posted = ureq::post(&format!("{url}/v1/events"))
        .set("Authorization", &format!("Bearer {}", TOKENS[1].1))
        .set("Content-Type", "application/json")
        .send_string(event);
    assert!(posted.is_ok(), "{posted:?}");
    let history = ureq::get(&format!("{url}/v1/deals/BY-1"))
        .set("Authorization", &format!("Bearer {}", TOKENS[0].1))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert_eq!(history[0]["appended_by"], "integration", "never what the input says: {history}");
    let _ = stop.send(());
    thread.join().unwrap().unwrap();
}

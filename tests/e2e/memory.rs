//! Memory bounded in bytes: request bodies being read and requests waiting
//! for the writer share one budget, `[serve] queue_bytes_max`; past it a request is answered 503
//! `queue_full` with Retry-After, nothing stored, and it goes through once the budget frees up.
//! A JSON array is counted as it streams, and pages of `GET /v1/events` are bounded in bytes.

use crate::daemon::{answer, Daemon, TOKEN};
use crate::harness::Ledger as Sandbox;
use std::io::Write;

/// A request of `events` events of about 3 KB each (an opening, then field changes of one deal):
/// many bytes for few events, so the budget is spent on bodies.
fn body(deal: &str, events: usize) -> String {
    let note = "n".repeat(3000);
    let mut lines = vec![format!(
        r#"{{"deal":"{deal}","type":"opened","at":"2025-01-10T09:00:00Z","owner":"ana","amount":"1000"}}"#
    )];
    lines.extend((1..events).map(|i| {
        format!(
            r#"{{"deal":"{deal}","type":"field_set","at":"2025-01-11T09:00:00Z","field":"problem","value":"{note}{i}"}}"#
        )
    }));
    lines.join("\n")
}

#[test]
fn requests_past_the_byte_budget_are_answered_503_and_go_through_later() {
    let l = Sandbox::new();
    let toml = format!("[serve]\ntoken = \"{TOKEN}\"\nbody_bytes_max = 262144\nqueue_bytes_max = 393216\n");
    let d = Daemon::start(&l, &toml);
    let slow = body("SLOW", 72);
    assert!(slow.len() > 200_000 && slow.len() < 262_144, "{}", slow.len());
    // A client that announces 200+ KB and sends half: its bytes are held for it.
    let mut stream = std::net::TcpStream::connect(d.url.strip_prefix("http://").unwrap()).unwrap();
    let host = d.url.strip_prefix("http://").unwrap();
    write!(
        stream,
        "POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        slow.len()
    )
    .unwrap();
    stream.write_all(&slow.as_bytes()[..slow.len() / 2]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // 200 KB more would pass the 384 KiB budget: refused, nothing stored.
    let second = body("SECOND", 66);
    let post = |text: &str| {
        answer(
            ureq::post(&format!("{}/v1/events", d.url))
                .set("Authorization", &format!("Bearer {TOKEN}"))
                .set("Content-Type", "application/x-ndjson")
                .send_string(text),
        )
    };
    let (code, err) = post(&second);
    assert_eq!((code, err["error"].as_str()), (503, Some("queue_full")), "{err}");
    assert!(err["reason"].as_str().unwrap().contains("queue_bytes_max"), "{err}");
    assert_eq!(d.get_json("/v1/events?limit=1")["head_seq"], 0);
    // The slow client finishes; both go through.
    stream.write_all(&slow.as_bytes()[slow.len() / 2..]).unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (code, ack) = post(&second);
    assert_eq!(code, 200, "{ack}");
    assert_eq!(d.get_json("/v1/events?limit=1")["head_seq"], 138);
    let metrics = d.get("/metrics").1;
    assert!(metrics.contains("dealledger_rejects_total{reason=\"queue_full\"} 1"), "{metrics}");
    assert!(metrics.contains("dealledger_queue_bytes 0"), "{metrics}");
}

#[test]
fn a_json_array_is_counted_as_it_streams() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, &format!("[serve]\ntoken = \"{TOKEN}\"\nrequest_events_max = 10\n"));
    // Five events and then what is not JSON at all: the sixth is named, the rest never read.
    let open10: Vec<String> = (0..5)
        .map(|n| {
            format!(r#"{{"deal":"B{n}","type":"opened","at":"2025-01-10T09:00:00Z","owner":"o","amount":1}}"#)
        })
        .collect();
    let (code, err) = d.post("/v1/events", &format!("[{},{}]", open10.join(","), "{".repeat(10)));
    assert_eq!((code, err["index"].as_u64()), (400, Some(5)), "{err}");
    // The first element is not an event: named, without reading the rest.
    let (code, err) = d.post("/v1/events", "[1, 2");
    assert_eq!(
        (code, err["index"].as_u64(), err["error"].as_str()),
        (400, Some(0), Some("malformed_json")),
        "{err}"
    );
    let open = |n: usize| {
        format!(r#"{{"deal":"A{n}","type":"opened","at":"2025-01-10T09:00:00Z","owner":"o","amount":1}}"#)
    };
    let many = format!("[{}]", (0..11).map(open).collect::<Vec<_>>().join(","));
    let (code, err) = d.post("/v1/events", &many);
    assert_eq!((code, err["error"].as_str()), (413, Some("too_many_events")), "{err}");
}

#[test]
fn pages_of_events_are_bounded_in_bytes() {
    let l = Sandbox::new();
    let d = Daemon::start(&l, &format!("[serve]\ntoken = \"{TOKEN}\"\n"));
    // 10,000 events with 3 KB notes: 30 MB if the page held them all.
    let note = "n".repeat(3000);
    for batch in 0..10 {
        let deal = format!("BIG{batch}");
        let mut lines = vec![format!(
            r#"{{"deal":"{deal}","type":"opened","at":"2025-01-10T09:00:00Z","owner":"ana","amount":"1000"}}"#
        )];
        lines.extend((1..1000).map(|i| {
            format!(r#"{{"deal":"{deal}","type":"field_set","at":"2025-01-11T09:00:00Z","field":"problem","value":"{note}{i}"}}"#)
        }));
        let (code, ack) = d.post("/v1/events", &lines.join("\n"));
        assert_eq!(code, 200, "{ack}");
    }
    let (code, text) = d.get("/v1/events?from_seq=1&limit=10000");
    assert_eq!(code, 200);
    assert!(text.len() <= 4 * 1024 * 1024 + 64 * 1024, "a page of {} bytes", text.len());
    let page: serde_json::Value = serde_json::from_str(&text).unwrap();
    let got = page["events"].as_array().unwrap().len() as u64;
    assert!((1..10_000).contains(&got), "{got}");
    assert_eq!(page["next_seq"].as_u64(), Some(got + 1), "the next page starts where this one stopped");
}

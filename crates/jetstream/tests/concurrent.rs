//! One store shared by a writer and readers at once, as the daemon shares it: every read of
//! what was appended finds it, whatever the writer does meanwhile.
#![allow(clippy::unwrap_used, reason = "test code: a panic is a failing test")]

use dealledger_events::{parse_line, FixedClock, Pipeline, Timestamp};
use dealledger_jetstream::testkit::{nats_server_missing, Cluster};
use dealledger_jetstream::{JetStreamStore, Target};
use dealledger_log::{Ledger, Log};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[test]
fn readers_see_every_append_while_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(why) = nats_server_missing() {
        assert!(std::env::var_os("DEALLEDGER_REQUIRE_TOOLS").is_none(), "nats-server is required: {why}");
        eprintln!("skipped readers_see_every_append_while_the_writer_goes_on: {why}");
        return;
    }
    let cluster = Cluster::start(dir.path(), 3);
    let target = Target::parse(&cluster.url("concurrent")).unwrap();
    let store = Arc::new(JetStreamStore::open(&target, &cluster.options(), true).unwrap());
    let mut ledger = Ledger::open(store.clone(), Pipeline::default()).unwrap();
    let head = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, head, done) = (store.clone(), head.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(Ordering::Acquire) {
                    let upto = head.load(Ordering::Acquire);
                    if upto == 0 {
                        continue;
                    }
                    let log = Log::open(store.clone()).unwrap();
                    let from = upto.saturating_sub(300).max(1);
                    let mut next = from;
                    log.scan(from, |e| {
                        assert_eq!(e.seq, next);
                        next += 1;
                        Ok(e.seq < upto)
                    })
                    .unwrap_or_else(|e| panic!("reading {from}..={upto}: {e}"));
                    assert!(next > upto);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let clock = FixedClock(Timestamp::parse_rfc3339("2024-06-01T00:00:00Z").unwrap());
    for b in 0..150 {
        let mut batch = ledger.batch(&clock);
        let deal = format!("D{b}");
        batch.push(parse_line(&format!(r#"{{"deal":"{deal}","type":"opened","at":"2024-01-01T00:00:00Z","owner":"o","amount":1}}"#)).unwrap()).unwrap();
        for i in 0..(b % 7) * 400 {
            batch
                .push(parse_line(&format!(r#"{{"deal":"{deal}","type":"touch","at":"2024-01-02T00:00:00Z","channel":"call","direction":"outbound","source_id":"{deal}-{i}"}}"#)).unwrap())
                .unwrap();
        }
        batch.commit().unwrap();
        head.store(ledger.log().head().seq, Ordering::Release);
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
}

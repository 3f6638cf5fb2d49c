//! The daemon under SIGKILL: 16 clients send batches while the daemon is killed at random
//! (seeded) moments; after every restart each event any client saw acknowledged is in the log
//! at the seq it was acknowledged with, there is no gap, and `audit verify` passes.

use crate::daemon::{Daemon, TOKEN};
use crate::harness::{deal_batch, Ledger as Sandbox};
use dealledger_log::{Log, SledStore};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CYCLES: usize = 10;
const CLIENTS: usize = 16;
const BATCH_EVENTS: usize = 20;

#[test]
fn acknowledged_events_survive_daemon_sigkill() {
    let l = Sandbox::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20_261_123);
    // source_id -> the seq it was acknowledged with.
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut cycles_with_acks = 0;
    for cycle in 0..CYCLES {
        let mut daemon = Daemon::start(&l, "[serve]\ntoken = \"t0ken-for-the-tests\"\n");
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (url, stop) = (daemon.url.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    for b in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let deal = format!("C{cycle}-{c}-{b}");
                        let lines = deal_batch(&deal, BATCH_EVENTS);
                        let result = ureq::post(&format!("{url}/v1/events"))
                            .set("Content-Type", "application/x-ndjson")
                            .set("Authorization", &format!("Bearer {TOKEN}"))
                            .timeout(Duration::from_secs(10))
                            .send_string(&lines.join("\n"));
                        let Ok(response) = result else { break };
                        let v: serde_json::Value =
                            serde_json::from_str(&response.into_string().unwrap()).unwrap();
                        for (i, event) in v["events"].as_array().unwrap().iter().enumerate() {
                            seen.push((format!("{deal}-{i}"), event["seq"].as_u64().unwrap()));
                        }
                    }
                    seen
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(50..400)));
        daemon.child.kill().unwrap(); // SIGKILL
        daemon.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        let mut cycle_acks = 0;
        for client in clients {
            for (source, seq) in client.join().unwrap() {
                cycle_acks += 1;
                assert!(acked.insert(source.clone(), seq).is_none(), "{source} acknowledged twice");
            }
        }
        if cycle_acks > 0 {
            cycles_with_acks += 1;
        }
        drop(daemon);

        let verify = l.run(&["audit", "verify"]);
        assert_eq!(verify.code, 0, "cycle {cycle}: {}{}", verify.stdout, verify.stderr);
        let log = Log::open(SledStore::open(&l.data().join("store")).unwrap()).unwrap();
        let mut found: HashMap<String, u64> = HashMap::new();
        let mut expected_seq = 1;
        log.scan(1, |stored| {
            assert_eq!(stored.seq, expected_seq, "cycle {cycle}: no gap");
            expected_seq += 1;
            found.insert(stored.event.source_id.clone().unwrap(), stored.seq);
            Ok(true)
        })
        .unwrap();
        for (source, seq) in &acked {
            assert_eq!(found.get(source), Some(seq), "cycle {cycle}: acknowledged {source} lost or moved");
        }
    }
    assert!(cycles_with_acks >= CYCLES / 2, "most kills should land mid-traffic: {cycles_with_acks}");
    assert!(acked.len() >= CYCLES * BATCH_EVENTS, "{} events acknowledged", acked.len());
}

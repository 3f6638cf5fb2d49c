//! Crash safety: a child process appends batches in a loop and prints `ack FIRST LAST` after
//! each commit returns; the parent kills it with SIGKILL at random moments (seeded), then checks
//! that every acknowledged event is present, the sequence has no gap and `audit verify` passes.
//! The child is this test binary itself, re-executed with an environment variable (the way
//! sled's crash tests work), driving the library exactly as `dealledger ingest` does.

use crate::harness::Ledger as Sandbox;
use dealledger_events::{parse_line, Pipeline, SystemClock};
use dealledger_log::{Ledger, Log, SledStore};
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHILD_ENV: &str = "DEALLEDGER_CRASH_CHILD_STORE";
const CYCLES: usize = 24;
const BATCH_EVENTS: u64 = 300;
/// The child stops by itself after this many batches if nobody kills it.
const CHILD_BATCHES_MAX: u64 = 2_000;

#[test]
fn crash_child() {
    let Some(store) = std::env::var_os(CHILD_ENV) else {
        return; // Only does something when re-executed by the crash test.
    };
    let mut ledger =
        Ledger::open(SledStore::open(std::path::Path::new(&store)).unwrap(), Pipeline::default()).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for _ in 0..CHILD_BATCHES_MAX {
        let first = ledger.log().head().seq + 1;
        let last = first + BATCH_EVENTS - 1;
        let deal = format!("K{first}");
        let mut batch = ledger.batch(&SystemClock);
        for seq in first..=last {
            let line = if seq == first {
                format!(
                    r#"{{"deal":"{deal}","type":"opened","at":"2024-01-01T00:00:00Z","owner":"o","amount":1}}"#
                )
            } else {
                format!(
                    r#"{{"deal":"{deal}","type":"touch","at":"2024-01-02T00:00:00Z","channel":"call","direction":"outbound","minutes":5,"source_id":"s{seq}"}}"#
                )
            };
            batch.push(parse_line(&line).unwrap()).unwrap();
        }
        let committed = batch.commit().unwrap();
        assert_eq!(committed.seqs, Some((first, last)));
        // Acknowledge only after commit returned, i.e. after the flush.
        writeln!(out, "ack {first} {last}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let l = Sandbox::new();
    let store = l.data().join("store");
    std::fs::create_dir_all(l.data()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20_261_122);
    let mut acked: Vec<(u64, u64)> = Vec::new();
    let mut killed_with_acks = 0;
    let mut previous_head = 0u64;
    for cycle in 0..CYCLES {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash::crash_child", "--nocapture", "--test-threads=1", "-q"])
            .env(CHILD_ENV, &store)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(l.dir.path().join(format!("child-{cycle}.log"))).unwrap(),
            ))
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = Arc::clone(&lines);
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            })
        };
        // Kill at a random moment: one cycle in four during start-up (recovery), the others at
        // a random moment after the child is ready, i.e. mid-append.
        if cycle % 4 != 3 {
            let started = std::time::Instant::now();
            while !lines.lock().unwrap().iter().any(|l| l.ends_with("ready")) {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "cycle {cycle}: child never got ready: {}",
                    std::fs::read_to_string(l.dir.path().join(format!("child-{cycle}.log")))
                        .unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..250)));
        child.kill().unwrap(); // SIGKILL on Unix.
        child.wait().unwrap();
        reader.join().unwrap();
        let cycle_acks: Vec<(u64, u64)> = lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| {
                // libtest may print its own text before ours on the same line.
                let mut parts = line[line.find("ack ")? + 4..].split(' ');
                Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
            })
            .collect();
        if !cycle_acks.is_empty() {
            killed_with_acks += 1;
        }
        acked.extend(cycle_acks);

        // After the crash: the CLI proves the log whole ...
        let verify = l.run(&["audit", "verify"]);
        assert_eq!(verify.code, 0, "cycle {cycle}: {}{}", verify.stdout, verify.stderr);
        // ... and every acknowledged batch is there, event for event.
        let log = Log::open(SledStore::open(&store).unwrap()).unwrap();
        let head = log.head().seq;
        let acked_through = acked.last().map_or(0, |(_, last)| *last);
        assert!(head >= acked_through, "cycle {cycle}: head {head} < acknowledged {acked_through}");
        // At most one unacknowledged batch (the one in flight) may have landed this cycle, on
        // top of what was acknowledged or found on disk after the previous one (a cycle killed
        // before its first acknowledgement may still have committed a batch).
        let durable = acked_through.max(previous_head);
        assert!(
            head == durable || head == durable + BATCH_EVENTS,
            "cycle {cycle}: head {head}, acked {acked_through}, previous head {previous_head}"
        );
        previous_head = head;
        let mut seen = 0u64;
        let mut expected_seq = 1;
        log.scan(1, |stored| {
            assert_eq!(stored.seq, expected_seq, "no gap");
            expected_seq += 1;
            if stored.event.source_id.is_some() {
                assert_eq!(stored.event.source_id.as_deref(), Some(format!("s{}", stored.seq).as_str()));
            }
            seen += 1;
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, head);
        for (first, last) in &acked {
            let opened = log.read(*first).unwrap().unwrap();
            assert_eq!(opened.event.deal.as_str(), format!("K{first}"), "cycle {cycle}");
            assert_eq!(log.read(*last).unwrap().unwrap().event.source_id, Some(format!("s{last}")));
        }
    }
    assert!(killed_with_acks >= CYCLES / 3, "most kills should land mid-append: {killed_with_acks}");
    assert!(acked.len() >= CYCLES, "{} batches acknowledged", acked.len());
}

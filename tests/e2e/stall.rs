//! Readers never stall the writer: while what-ifs run on the live timeline one
//! after another, acknowledgements keep coming. On the old code every commit waited for the
//! timeline's write lock, so an event posted during a what-if was answered only after it ended.

use crate::daemon::{Daemon, TOKEN};
use crate::harness::Ledger as Sandbox;
use std::time::{Duration, Instant};

#[test]
fn acknowledgements_do_not_wait_for_a_what_if() {
    let l = Sandbox::new();
    let history = l.run(&["gen", "--deals", "20000", "--seed", "9"]).ok().stdout;
    l.run_with_stdin(&["--now", "2026-01-15T12:00:00Z", "ingest", "--quiet"], Some(&history)).ok();
    let d = Daemon::start(&l, &format!("[serve]\ntoken = \"{TOKEN}\"\n"));
    let url = d.url.clone();
    let started = Instant::now();
    let run_for = Duration::from_secs(4);
    let whatifs = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut spans = Vec::new();
            while started.elapsed() < run_for {
                let t0 = Instant::now();
                let answer = ureq::get(&format!("{url}/v1/whatif?rule=gone_dark=14&deals=true"))
                    .set("Authorization", &format!("Bearer {TOKEN}"))
                    .call()
                    .unwrap();
                answer.into_string().unwrap();
                spans.push((t0, Instant::now()));
            }
            spans
        }
    });
    let mut acks = Vec::new();
    let mut n = 0;
    while started.elapsed() < run_for {
        std::thread::sleep(Duration::from_millis(15));
        n += 1;
        let event = format!(
            r#"{{"deal":"STALL-{n}","type":"opened","at":"2025-06-01T00:00:00Z","owner":"o","amount":1}}"#
        );
        let t0 = Instant::now();
        let answer = ureq::post(&format!("{url}/v1/events"))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .set("Content-Type", "application/x-ndjson")
            .send_string(&event)
            .unwrap();
        assert_eq!(answer.status(), 200);
        acks.push((t0, Instant::now()));
    }
    let whatifs = whatifs.join().unwrap();
    let mut durations: Vec<Duration> = whatifs.iter().map(|(a, b)| *b - *a).collect();
    durations.sort();
    let median = durations[durations.len() / 2];
    assert!(median >= Duration::from_millis(40), "what-ifs too short to tell ({median:?}): grow the history");
    // Acks that began while a what-if ran: did they take a good part of one? (On the old code
    // each waited for the rest of the what-if; its answer's transfer came after, so end times
    // do not tell, durations do.)
    let mut inside = 0;
    let mut stalled = 0;
    for &(a0, a1) in &acks {
        if whatifs.iter().any(|&(w0, w1)| a0 > w0 && a0 < w1) {
            inside += 1;
            if a1 - a0 > median / 3 {
                stalled += 1;
            }
        }
    }
    eprintln!(
        "inside {inside} stalled {stalled} median {median:?} whatifs {} acks {}",
        whatifs.len(),
        acks.len()
    );
    assert!(inside >= 10, "only {inside} acknowledgements began during a what-if");
    assert!(
        stalled * 4 <= inside,
        "{stalled} of {inside} acknowledgements waited for a what-if to end (median what-if {median:?})"
    );
    // And the readers ran below the writer's priority: the threads that ran what-ifs at nice 10,
    // the writer and the folder at the nice the daemon started with (this test's).
    let base = nice_of_threads(std::process::id())[0].1;
    let threads = nice_of_threads(d.child.id());
    let nice = |name: &str| threads.iter().find(|(comm, _)| comm.starts_with(name)).map(|t| t.1);
    assert_eq!(nice("dealledger-writ"), Some(base), "{threads:?}");
    assert_eq!(nice("dealledger-fold"), Some(base), "{threads:?}");
    let reader = (base + 10).min(19);
    assert!(
        threads.iter().any(|(_, nice)| *nice == reader),
        "no reader thread at nice {reader}: {threads:?}"
    );
}

/// (name, nice) of each thread of process `pid`, from /proc.
fn nice_of_threads(pid: u32) -> Vec<(String, i64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        // A thread that ended between the listing and this read is gone, not a failure.
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else { continue };
        // pid (comm) state ... : nice is the 19th field, the 17th after the comm's ')'.
        let (left, right) = stat.rsplit_once(')').unwrap();
        let comm = left.split_once('(').unwrap().1.to_string();
        let nice: i64 = right.split_whitespace().nth(16).unwrap().parse().unwrap();
        threads.push((comm, nice));
    }
    threads
}

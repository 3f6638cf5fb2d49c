use crate::harness::*;

fn history(l: &Ledger) {
    let lines = [
        OPEN_A.to_string(),
        a(
            "touch",
            11,
            r#","channel":"call","direction":"outbound","minutes":20,"actor":"ana","source_id":"c-1""#,
        ),
        a("stage_moved", 12, r#","to":"quote""#),
        a("amount_changed", 13, r#","amount":"15000.50""#),
        a("field_set", 13, r#","field":"budget_confirmed","value":true"#),
        // Late-logged: happened on the 11th, recorded on the 14th.
        a("touch", 11, r#","channel":"email","direction":"inbound","recorded_at":"2024-01-14T08:00:00Z""#)
            .replace("10:00:00Z\",\"channel", "11:00:00Z\",\"channel"),
        a("won", 20, ""),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    l.ingest("history.jsonl", &refs).ok();
}

#[test]
fn audit_deal_shows_the_full_history() {
    let l = Ledger::new();
    history(&l);
    let json = l.run(&["audit", "deal", "A-1", "--format", "json"]).ok().json();
    let events = json.as_array().unwrap();
    assert_eq!(events.len(), 7);
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[0]["version"], 1);
    assert_eq!(events[0]["stage"], "prospecting");
    assert_eq!(events[0]["amount"], serde_json::json!(12000.00));
    assert_eq!(events[1]["source_id"], "c-1");
    assert_eq!(events[1]["actor"], "ana");
    // Amounts print exactly, in the deal currency's minor unit.
    let raw = l.run(&["audit", "deal", "A-1", "--format", "json"]).ok().stdout;
    assert!(raw.contains(r#""type":"amount_changed","at":"2024-01-13T10:00:00Z","recorded_at""#), "{raw}");
    assert!(raw.contains(r#""amount":15000.50}"#), "{raw}");
    assert_eq!(events[5]["at"], "2024-01-11T11:00:00Z");
    assert_eq!(events[5]["recorded_at"], "2024-01-14T08:00:00Z");
    assert_eq!(events[6]["type"], "won");
    // The table names the columns and shows the details.
    let table = l.run(&["audit", "deal", "A-1"]).ok().stdout;
    let header = table.lines().next().unwrap();
    for column in ["seq", "version", "at", "recorded_at", "type", "details", "actor", "source_id"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(table.contains("to=quote"), "{table}");
    assert!(table.contains("channel=call direction=outbound minutes=20"), "{table}");
    let csv = l.run(&["audit", "deal", "A-1", "--format", "csv"]).ok().stdout;
    assert_eq!(csv.lines().count(), 8);
    let missing = l.run(&["audit", "deal", "NOPE"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("deal `NOPE` is not in the ledger"), "{}", missing.stderr);
}

#[test]
fn digest_then_verify_and_a_wrong_digest_fails() {
    let l = Ledger::new();
    history(&l);
    let digest = l.run(&["audit", "digest"]).ok().json();
    assert_eq!(digest["head_seq"], 7);
    assert_eq!(digest["chain"].as_str().unwrap().len(), 64);
    let file = l.dir.path().join("digest.json");
    std::fs::write(&file, digest.to_string()).unwrap();
    let run = l.run(&["audit", "verify", "--digest", file.to_str().unwrap()]).ok();
    assert!(run.stdout.starts_with("ok: 7 events in 1 blocks, head seq 7"), "{}", run.stdout);
    assert!(run.stdout.contains("digest matches"));
    // More events later: the old digest still checks the prefix.
    l.ingest(
        "more.jsonl",
        &[r#"{"deal":"B-1","type":"opened","at":"2024-02-01T00:00:00Z","owner":"bo","amount":5}"#],
    )
    .ok();
    l.run(&["audit", "verify", "--digest", file.to_str().unwrap()]).ok();
    // A digest whose chain differs: exit 5, naming the block.
    let mut wrong = digest.clone();
    wrong["chain"] = serde_json::json!("00".repeat(32));
    std::fs::write(&file, wrong.to_string()).unwrap();
    let run = l.run(&["audit", "verify", "--digest", file.to_str().unwrap()]);
    assert_eq!(run.code, 5);
    assert!(run.stderr.contains("first bad seq 1: the chain at the digest's seq differs"), "{}", run.stderr);
    // A digest from a longer log (events were lost since): exit 5.
    let mut longer = digest.clone();
    longer["head_seq"] = serde_json::json!(100);
    std::fs::write(&file, longer.to_string()).unwrap();
    let run = l.run(&["audit", "verify", "--digest", file.to_str().unwrap()]);
    assert_eq!(run.code, 5);
    assert!(
        run.stderr.contains("first bad seq 9: the digest names seq 100 but the log ends at 8"),
        "{}",
        run.stderr
    );
}

/// Positions of each block's zstd frame in a file, with the block's first seq.
fn blocks_in(bytes: &[u8]) -> Vec<(usize, u64)> {
    let magic = [0x28, 0xb5, 0x2f, 0xfd];
    (82..bytes.len().saturating_sub(4))
        .filter(|&i| {
            bytes[i..i + 4] == magic
                && bytes[i - 82] == dealledger_events::codec::FORMAT_VERSION
                && bytes[i - 81] == 1
        })
        .map(|i| (i, u64::from_le_bytes(bytes[i - 80..i - 72].try_into().unwrap())))
        .collect()
}

#[test]
fn verify_catches_a_flipped_byte_in_a_copy_of_the_store() {
    let l = Ledger::new();
    let sample = l.run(&["gen", "--deals", "1500", "--seed", "3"]).ok().stdout;
    l.run_with_stdin(&["ingest"], Some(&sample)).ok();
    l.run(&["audit", "verify"]).ok();
    let original = std::fs::read(l.data().join("store/db")).unwrap();
    let blocks = blocks_in(&original);
    assert!(blocks.len() >= 3, "{blocks:?}");
    for &(at, first_seq) in &blocks {
        let copy = Ledger::new();
        copy_dir(&l.data(), &copy.data());
        let mut bytes = original.clone();
        bytes[at + 300] ^= 0x10;
        std::fs::write(copy.data().join("store/db"), bytes).unwrap();
        let run = copy.run(&["audit", "verify"]);
        assert_eq!(run.code, 5, "{}", run.stderr);
        let want = format!("first bad seq {first_seq}:");
        assert!(run.stderr.contains(&want), "want {want}, got {}", run.stderr);
    }
    // The original is untouched and whole.
    l.run(&["audit", "verify"]).ok();
}

#[test]
fn replay_is_deterministic() {
    let one = Ledger::new();
    let two = Ledger::new();
    let sample = one.run(&["gen", "--deals", "300", "--seed", "5"]).ok().stdout;
    // Every generated event names its recorded_at, and the clock that stamps appended_at is
    // pinned, so two ledgers of the same input are identical to the last bit of the chain.
    let now = ["--now", "2026-01-01T00:00:00Z", "ingest"];
    one.run_with_stdin(&now, Some(&sample)).ok();
    two.run_with_stdin(&now, Some(&sample)).ok();
    assert_eq!(one.run(&["audit", "digest"]).ok().stdout, two.run(&["audit", "digest"]).ok().stdout);
    let first = one.run(&["replay"]).ok().stdout;
    let second = one.run(&["replay"]).ok().stdout;
    // Timings differ; what was rebuilt may not.
    let strip = |s: &str| {
        s.split(" in ").next().unwrap().to_string()
            + s.split("events/s)").nth(1).unwrap().split(';').next().unwrap()
    };
    assert_eq!(strip(&first), strip(&second));
    assert!(strip(&first).ends_with(": 300 deals"), "{first}");
    // Reports after each replay, and on the other ledger, are identical to the byte.
    let report = |l: &Ledger| {
        l.run(&["--now", "2099-01-01T00:00:00Z", "report", "time-in-stage", "--deals", "--format", "json"])
            .ok()
            .stdout
    };
    let before = report(&one);
    one.run(&["replay"]).ok();
    assert_eq!(report(&one), before);
    assert_eq!(report(&two), before);
    // sled's file sizes are its own business; everything else must match.
    let stats = |l: &Ledger| {
        let mut json = l.run(&["stats", "--format", "json"]).ok().json();
        json.as_object_mut().unwrap().remove("bytes_on_disk");
        json
    };
    assert_eq!(stats(&one), stats(&two));
    for deal in ["D-0000001", "D-0000150", "D-0000300"] {
        assert_eq!(
            one.run(&["audit", "deal", deal, "--format", "json"]).ok().stdout,
            two.run(&["audit", "deal", deal, "--format", "json"]).ok().stdout
        );
    }
}

/// `audit deal` with RUST_LOG=info, so that the stderr says whether it scanned the log.
fn audit_deal_logged(l: &Ledger) -> Run {
    std::process::Command::new(binary())
        .arg("--data")
        .arg(l.data())
        .args(["audit", "deal", "A-1", "--format", "json"])
        .env_remove("DEALLEDGER_DATA")
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
        .into()
}

#[test]
fn audit_deal_reads_by_the_deal_index_and_the_events_after_it() {
    let l = Ledger::new();
    history(&l);
    l.run(&["replay"]).ok();
    let index = l.data().join("store.meta").join("checkpoint.timeline.deals");
    assert!(index.exists(), "replay saves the deal index beside the checkpoint");
    // Events after the index was taken: read by a scan of the tail only.
    let later = a("touch", 21, r#","channel":"call","direction":"outbound","minutes":5,"source_id":"c-9""#);
    l.ingest("later.jsonl", &[&later]).ok();
    let by_index = audit_deal_logged(&l).ok();
    assert!(!by_index.stderr.contains("scanning the log"), "{}", by_index.stderr);
    let events = by_index.json();
    assert_eq!(events.as_array().unwrap().len(), 8);
    assert_eq!(events[7]["source_id"], "c-9");
    // Without the index: the same answer, by a scan of the whole log.
    std::fs::remove_file(&index).unwrap();
    let by_scan = audit_deal_logged(&l).ok();
    assert!(by_scan.stderr.contains("no usable deal index; scanning the log"), "{}", by_scan.stderr);
    assert_eq!(by_scan.stdout, by_index.stdout);
}

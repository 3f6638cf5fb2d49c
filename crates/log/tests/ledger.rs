#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test code: a panic is a failing test"
)]
use dealledger_events::{parse_line, FixedClock, Pipeline, Rule, Timestamp};
use dealledger_log::{BlockStore, Head, Ledger, LogError, MemStore, Outcome, SledStore};

fn clock() -> FixedClock {
    FixedClock(Timestamp::parse_rfc3339("2024-06-01T00:00:00Z").unwrap())
}

fn opened(deal: &str, day: u32) -> String {
    format!(
        r#"{{"deal":"{deal}","type":"opened","at":"2024-01-{day:02}T00:00:00Z","owner":"ana","amount":1000}}"#
    )
}

fn touch(deal: &str, day: u32, source_id: &str, minutes: u32) -> String {
    format!(
        r#"{{"deal":"{deal}","type":"touch","at":"2024-01-{day:02}T01:00:00Z","channel":"call","direction":"outbound","minutes":{minutes},"source_id":"{source_id}"}}"#
    )
}

fn append<S: BlockStore>(ledger: &mut Ledger<S>, lines: &[String]) -> Result<Vec<Outcome>, (usize, String)> {
    let clock = clock();
    let mut batch = ledger.batch(&clock);
    let mut outcomes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let submission = parse_line(line).map_err(|e| (i, e.to_string()))?;
        outcomes.push(batch.push(submission).map_err(|e| (i, e.to_string()))?);
    }
    batch.commit().map_err(|e| (usize::MAX, e.to_string()))?;
    Ok(outcomes)
}

fn all_seqs<S: BlockStore>(ledger: &Ledger<S>) -> Vec<u64> {
    let mut seqs = Vec::new();
    ledger
        .log()
        .scan(1, |e| {
            seqs.push(e.seq);
            Ok(true)
        })
        .unwrap();
    seqs
}

#[test]
fn numbering_versions_and_duplicates() {
    let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
    let out = append(&mut ledger, &[opened("a", 1), opened("b", 1), touch("a", 2, "s1", 5)]).unwrap();
    assert_eq!(
        out,
        vec![
            Outcome::Appended { seq: 1, version: 1 },
            Outcome::Appended { seq: 2, version: 1 },
            Outcome::Appended { seq: 3, version: 2 }
        ]
    );
    // The same source_id and body again: the original seq, nothing stored.
    let out = append(&mut ledger, &[touch("a", 2, "s1", 5), touch("b", 3, "s2", 5)]).unwrap();
    assert_eq!(
        out,
        vec![Outcome::Duplicate { seq: 3, version: 2 }, Outcome::Appended { seq: 4, version: 2 }]
    );
    // Same source_id, different body: a conflict, and the batch stores nothing.
    let err = append(&mut ledger, &[touch("b", 4, "s3", 5), touch("a", 2, "s1", 6)]).unwrap_err();
    assert_eq!(
        err,
        (
            1,
            "field `source_id`: `s1` was stored as seq 3 with a different body [idempotency_conflict]"
                .to_string()
        )
    );
    assert_eq!(ledger.log().head().seq, 4);
    // The rolled-back s3 is free again.
    let out = append(&mut ledger, &[touch("b", 4, "s3", 5)]).unwrap();
    assert_eq!(out, vec![Outcome::Appended { seq: 5, version: 3 }]);
    assert_eq!(all_seqs(&ledger), vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_dropped_batch_leaves_no_trace() {
    let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
    append(&mut ledger, &[opened("a", 1)]).unwrap();
    let err = append(&mut ledger, &[opened("b", 1), touch("b", 2, "x", 1), opened("a", 3)]).unwrap_err();
    assert_eq!(err.0, 2);
    assert!(err.1.ends_with("[already_opened]"));
    assert_eq!(ledger.log().head().seq, 1);
    assert!(ledger.deals().get(&dealledger_events::DealId::parse("b").unwrap()).is_none());
    // b can be opened now, and x is not a duplicate.
    let out = append(&mut ledger, &[opened("b", 1), touch("b", 2, "x", 1)]).unwrap();
    assert_eq!(out[1], Outcome::Appended { seq: 3, version: 2 });
}

#[test]
fn push_all_is_atomic_inside_a_batch() {
    let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
    let clock = clock();
    let mut batch = ledger.batch(&clock);
    let sub = |line: String| parse_line(&line).unwrap();
    let good = batch.push_all(vec![sub(opened("a", 1)), sub(touch("a", 2, "t1", 1))]).unwrap();
    assert_eq!(good[1], Outcome::Appended { seq: 2, version: 2 });
    let bad = batch.push_all(vec![sub(opened("b", 1)), sub(touch("c", 2, "t2", 1))]).unwrap_err();
    assert_eq!(bad.0, 1);
    assert_eq!(bad.1.rule, Rule::NotOpened);
    let next = batch.push_all(vec![sub(opened("b", 1)), sub(touch("b", 2, "t2", 1))]).unwrap();
    assert_eq!(
        next,
        vec![Outcome::Appended { seq: 3, version: 1 }, Outcome::Appended { seq: 4, version: 2 }]
    );
    let committed = batch.commit().unwrap();
    assert_eq!((committed.seqs, committed.appended), (Some((1, 4)), 4));
}

#[test]
fn state_survives_reopen_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let head;
    {
        let mut ledger = Ledger::open(SledStore::open(dir.path()).unwrap(), Pipeline::default()).unwrap();
        let mut lines = vec![opened("a", 1)];
        // Enough events for several blocks.
        for i in 0..20_000 {
            lines.push(touch("a", 2 + (i % 20), &format!("s{i}"), i % 90));
        }
        append(&mut ledger, &lines).unwrap();
        head = ledger.log().head();
        assert_eq!(head.seq, 20_001);
        // Another process cannot open it meanwhile.
        match SledStore::open(dir.path()) {
            Err(LogError::Locked { .. }) => {}
            other => panic!("expected Locked, got {:?}", other.map(|_| ())),
        }
    }
    let mut ledger = Ledger::open(SledStore::open(dir.path()).unwrap(), Pipeline::default()).unwrap();
    assert_eq!(ledger.log().head(), head);
    let verified = ledger.log().verify(Some(head), |_| {}).unwrap();
    assert!(verified.blocks >= 2, "{verified:?}");
    // Idempotency and validity state were rebuilt from the log.
    let out = append(&mut ledger, &[touch("a", 2, "s0", 0), opened("b", 1)]).unwrap();
    assert_eq!(
        out,
        vec![Outcome::Duplicate { seq: 2, version: 2 }, Outcome::Appended { seq: 20_002, version: 1 }]
    );
    // The same opening is a duplicate (identified by its content); another one is refused.
    assert_eq!(
        append(&mut ledger, &[opened("a", 1)]).unwrap(),
        vec![Outcome::Duplicate { seq: 1, version: 1 }]
    );
    assert!(append(&mut ledger, &[opened("a", 3)]).unwrap_err().1.contains("already_opened"));
    let read = ledger.log().read(777).unwrap().unwrap();
    assert_eq!((read.seq, read.version), (777, 777));
    assert_eq!(read.event.source_id.as_deref(), Some("s775"));
}

fn store_with_blocks() -> (Ledger<MemStore>, Vec<u64>) {
    let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
    for batch in 0..3 {
        let mut lines = vec![opened(&format!("d{batch}"), 1)];
        lines.extend((0..10).map(|i| touch(&format!("d{batch}"), 2, &format!("{batch}-{i}"), 1)));
        append(&mut ledger, &lines).unwrap();
    }
    let mut keys = Vec::new();
    ledger
        .log()
        .store()
        .scan(1, &mut |k, _| {
            keys.push(k);
            Ok(true)
        })
        .unwrap();
    (ledger, keys)
}

#[test]
fn verify_names_the_first_bad_seq() {
    let (ledger, keys) = store_with_blocks();
    assert_eq!(keys, vec![1, 12, 23]);
    let good = ledger.log().verify(None, |_| {}).unwrap();
    assert_eq!((good.events, good.blocks), (33, 3));

    // A flipped byte in the middle block's payload.
    ledger.log().store().tamper(12, |v| {
        let i = v.len() / 2 + 10;
        v[i] ^= 1;
    });
    match ledger.log().verify(None, |_| {}) {
        Err(LogError::Corrupt { seq: 12, why }) => assert!(why.contains("checksum"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn verify_catches_a_rewritten_block_with_a_valid_checksum() {
    let (ledger, _) = store_with_blocks();
    // Re-seal block 12 with different content but a correct crc: only the chain catches it.
    ledger.log().store().tamper(12, |v| {
        let n = v.len();
        v[20] ^= 0xff; // inside prev_chain
        let crc = crc32c::crc32c(&v[..n - 4]);
        v[n - 4..].copy_from_slice(&crc.to_le_bytes());
    });
    match ledger.log().verify(None, |_| {}) {
        Err(LogError::Corrupt { seq: 12, why }) => assert!(why.contains("chain"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn verify_catches_a_gap_and_a_wrong_digest() {
    let (ledger, _) = store_with_blocks();
    let head = ledger.log().head();
    let wrong = Head { seq: 22, chain: [7; 32] };
    match ledger.log().verify(Some(wrong), |_| {}) {
        Err(LogError::Corrupt { seq: 12, .. }) => {}
        other => panic!("{other:?}"),
    }
    ledger.log().store().remove(12);
    match ledger.log().verify(Some(head), |_| {}) {
        Err(LogError::Corrupt { seq: 12, why }) => assert!(why.contains("missing"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn retries_with_defaults_are_duplicates_after_a_reopen() {
    // Events whose stored form differs from what was sent: opened without a stage (the default
    // is stored), amounts written as decimals (stored in minor units).
    let lines = vec![
        r#"{"deal":"r","type":"opened","at":"2024-01-01T00:00:00Z","owner":"ana","amount":"10.5","source_id":"o"}"#
            .to_string(),
        r#"{"deal":"r","type":"amount_changed","at":"2024-01-02T00:00:00Z","amount":"12.25","source_id":"a"}"#
            .to_string(),
        r#"{"deal":"r","type":"won","at":"2024-01-03T00:00:00Z","amount":"12.30","source_id":"w"}"#.to_string(),
    ];
    let store = std::sync::Arc::new(MemStore::default());
    let mut ledger = Ledger::open(store.clone(), Pipeline::default()).unwrap();
    append(&mut ledger, &lines).unwrap();
    // In the same process, and after the state is rebuilt from the log: duplicates both times.
    let same = append(&mut ledger, &lines).unwrap();
    assert!(same.iter().all(|o| matches!(o, Outcome::Duplicate { .. })), "{same:?}");
    drop(ledger);
    let mut reopened = Ledger::open(store, Pipeline::default()).unwrap();
    let after = append(&mut reopened, &lines).unwrap();
    assert_eq!(
        after,
        vec![
            Outcome::Duplicate { seq: 1, version: 1 },
            Outcome::Duplicate { seq: 2, version: 2 },
            Outcome::Duplicate { seq: 3, version: 3 }
        ]
    );
    // A different amount is still a conflict.
    let changed = lines[1].replace("12.25", "12.26");
    let err = append(&mut reopened, &[changed]).unwrap_err();
    assert!(err.1.contains("idempotency_conflict"), "{err:?}");
}

#[test]
fn read_deal_reads_a_deals_events_by_seq_and_offset_across_blocks() {
    // Three blocks (one batch each), deals a and b interleaved in every one.
    let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
    for batch in 0..3u32 {
        let mut lines = Vec::new();
        if batch == 0 {
            lines.extend([opened("a", 1), opened("b", 1)]);
        }
        for i in 0..4 {
            lines.push(touch("a", 2, &format!("a-{batch}-{i}"), 1));
            lines.push(touch("b", 2, &format!("b-{batch}-{i}"), 1));
        }
        append(&mut ledger, &lines).unwrap();
    }
    let log = ledger.log();
    let mut index: std::collections::BTreeMap<String, (Vec<u64>, Vec<u32>)> = Default::default();
    log.scan_refs(1, |e| {
        let (seqs, offsets) = index.entry(e.deal.to_string()).or_default();
        seqs.push(e.seq);
        offsets.push(e.offset);
        Ok(true)
    })
    .unwrap();
    let read = |deal: &str, seqs: &[u64], offsets: &[u32]| -> Result<Vec<(u64, u32, String)>, String> {
        let mut got = Vec::new();
        log.read_deal(deal, seqs, offsets, |e| {
            got.push((e.seq, e.version, e.event.deal.as_str().to_string()));
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok(got)
    };
    for (deal, (seqs, offsets)) in &index {
        assert_eq!(seqs.len(), 13);
        assert!(offsets.iter().any(|&o| o > 0), "records after a block's first have offsets");
        let expected: Vec<_> = seqs.iter().zip(1..).map(|(&s, v)| (s, v, deal.clone())).collect();
        assert_eq!(read(deal, seqs, offsets).unwrap(), expected, "{deal} by its offsets");
        // Offsets are hints: none, all zero or all off by one give the same events.
        assert_eq!(read(deal, seqs, &[]).unwrap(), expected, "{deal} without offsets");
        assert_eq!(read(deal, seqs, &vec![0; seqs.len()]).unwrap(), expected, "{deal} zero offsets");
        let off: Vec<u32> = offsets.iter().map(|o| o + 1).collect();
        assert_eq!(read(deal, seqs, &off).unwrap(), expected, "{deal} offsets off by one");
    }
    // An index that disagrees with the log is an error naming the seq, never a wrong answer.
    let (b_seqs, b_offsets) = &index["b"];
    let err = read("a", b_seqs, b_offsets).unwrap_err();
    assert!(err.contains("deal `a`") && err.contains("deal `b`"), "{err}");
    let (a_seqs, _) = &index["a"];
    let err = read("a", &a_seqs[1..], &[]).unwrap_err();
    assert!(err.contains("version 1"), "{err}");
    // Seqs the log does not hold, or out of order, are errors naming them.
    for bad in [&[27u64][..], &[0], &[5, 3]] {
        let err = read("a", bad, &[]).unwrap_err();
        assert!(err.contains("seq"), "{bad:?}: {err}");
    }
    assert_eq!(read("a", &[], &[]).unwrap(), vec![]);
}

#[test]
fn read_deal_reads_a_deal_spread_over_more_blocks_than_it_holds_at_once() {
    // 150 blocks (one batch each) of deal a and deal b: more than one part of read_deal.
    let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
    append(&mut ledger, &[opened("a", 1), opened("b", 1)]).unwrap();
    for batch in 0..150 {
        append(
            &mut ledger,
            &[touch("a", 2, &format!("a-{batch}"), 1), touch("b", 2, &format!("b-{batch}"), 1)],
        )
        .unwrap();
    }
    let log = ledger.log();
    let seqs: Vec<u64> = (1..=log.head().seq).filter(|s| s % 2 == 1).collect();
    for offsets in [vec![], vec![0; seqs.len()]] {
        let mut got = Vec::new();
        log.read_deal("a", &seqs, &offsets, |e| {
            got.push((e.seq, e.version));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, seqs.iter().copied().zip(1..).collect::<Vec<_>>());
    }
}

#[test]
fn a_dropped_batch_leaves_nothing_in_the_next_one_that_reuses_its_writer() {
    let mut ledger = Ledger::open(MemStore::default(), Pipeline::default()).unwrap();
    // Enough events that the dropped batch had sealed whole blocks before its bad line.
    let mut lines = vec![opened("gone", 1)];
    lines.extend((0..20_000).map(|i| touch("gone", 2, &format!("g-{i}"), 1)));
    lines.push("not json".to_string());
    let err = append(&mut ledger, &lines).unwrap_err();
    assert_eq!(err.0, lines.len() - 1, "{err:?}");
    assert_eq!(ledger.log().head(), Head::EMPTY);
    append(&mut ledger, &[opened("kept", 1), touch("kept", 2, "k-1", 1)]).unwrap();
    let mut deals = Vec::new();
    ledger
        .log()
        .scan(1, |e| {
            deals.push((e.seq, e.event.deal.as_str().to_string()));
            Ok(true)
        })
        .unwrap();
    assert_eq!(deals, [(1, "kept".to_string()), (2, "kept".to_string())]);
    assert_eq!(ledger.log().verify(None, |_| {}).unwrap().events, 2);
}

#[test]
fn a_standby_follows_the_writer_and_takes_over_with_its_state() {
    use std::sync::Arc;
    let store = Arc::new(MemStore::default());
    let mut writer = Ledger::open(store.clone(), Pipeline::default()).unwrap();
    let mut standby = Ledger::open(store.clone(), Pipeline::default()).unwrap();
    append(&mut writer, &[opened("a", 1), touch("a", 2, "s1", 5)]).unwrap();
    assert_eq!(standby.follow().unwrap(), writer.log().head());
    // While following, the standby refuses to commit.
    assert!(append(&mut standby, &[opened("z", 1)]).is_err());
    append(&mut writer, &[opened("b", 1), touch("b", 2, "s2", 5)]).unwrap();
    standby.follow().unwrap();
    append(&mut writer, &[touch("a", 3, "s3", 5)]).unwrap();
    // The writer is gone; the standby resumes with the state it followed plus the tail.
    drop(writer);
    standby.resume().unwrap();
    let out = append(
        &mut standby,
        &[touch("a", 2, "s1", 5), touch("b", 2, "s2", 5), touch("a", 3, "s3", 5), opened("c", 1)],
    )
    .unwrap();
    assert_eq!(
        out,
        vec![
            Outcome::Duplicate { seq: 2, version: 2 },
            Outcome::Duplicate { seq: 4, version: 2 },
            Outcome::Duplicate { seq: 5, version: 3 },
            Outcome::Appended { seq: 6, version: 1 }
        ]
    );
    // What it followed also decides validity: b is open already.
    assert!(append(&mut standby, &[opened("b", 2)]).unwrap_err().1.contains("already_opened"));
}

#[test]
fn an_event_without_a_source_id_is_identified_by_its_content() {
    let touch = |minutes: u32, recorded: &str| {
        format!(
            r#"{{"deal":"c","type":"touch","at":"2024-01-02T00:00:00Z","recorded_at":"{recorded}","channel":"call","direction":"inbound","minutes":{minutes}}}"#
        )
    };
    let lines = vec![
        r#"{"deal":"c","type":"opened","at":"2024-01-01T00:00:00Z","owner":"ana","amount":"10.5"}"#.to_string(),
        touch(30, "2024-01-02T00:00:00Z"),
        r#"{"deal":"c","type":"field_set","at":"2024-01-03T00:00:00Z","field":"budget_confirmed","value":true}"#
            .to_string(),
    ];
    let store = std::sync::Arc::new(MemStore::default());
    let mut ledger = Ledger::open(store.clone(), Pipeline::default()).unwrap();
    append(&mut ledger, &lines).unwrap();
    // Sent again (a re-ingest of the same file): each is a duplicate of the original, also
    // after the state is rebuilt from the log, and when only its recorded_at differs.
    let originals = vec![
        Outcome::Duplicate { seq: 1, version: 1 },
        Outcome::Duplicate { seq: 2, version: 2 },
        Outcome::Duplicate { seq: 3, version: 3 },
    ];
    assert_eq!(append(&mut ledger, &lines).unwrap(), originals);
    drop(ledger);
    let mut reopened = Ledger::open(store, Pipeline::default()).unwrap();
    assert_eq!(append(&mut reopened, &lines).unwrap(), originals);
    let later = touch(30, "2024-02-01T00:00:00Z");
    assert_eq!(append(&mut reopened, &[later]).unwrap(), vec![Outcome::Duplicate { seq: 2, version: 2 }]);
    // A touch that differs in any field is another fact; twice in one batch, it is stored once.
    let other = touch(31, "2024-01-02T00:00:00Z");
    assert_eq!(
        append(&mut reopened, &[other.clone(), other]).unwrap(),
        vec![Outcome::Appended { seq: 4, version: 4 }, Outcome::Duplicate { seq: 4, version: 4 }]
    );
    assert_eq!(all_seqs(&reopened), vec![1, 2, 3, 4]);
}

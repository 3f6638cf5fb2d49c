//! A store that comes back without its tail (restored from an old copy, or cut short behind
//! the ledger's back) is never taken for a shorter valid log: writing to it is refused with the
//! missing range named, `audit verify` fails naming it, and no acknowledged seq is given out
//! again, until a person accepts the loss with `dealledger recover`, which is recorded.

use crate::harness::{copy_dir, deal_batch as batch, Ledger};

fn ingest(l: &Ledger, name: &str, lines: &[String]) -> crate::harness::Run {
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    l.ingest(name, &lines)
}

#[test]
fn a_store_restored_without_its_tail_is_refused_and_named() {
    let l = Ledger::new();
    ingest(&l, "a.jsonl", &batch("A", 100)).ok();
    let backup = l.dir.path().join("store-backup");
    copy_dir(&l.data().join("store"), &backup);
    ingest(&l, "b.jsonl", &batch("B", 50)).ok();
    assert_eq!(l.head(), 150);
    // The store comes back as it was after the first batch; the 50 acknowledged events of B
    // (seqs 101..150) are gone.
    std::fs::remove_dir_all(l.data().join("store")).unwrap();
    copy_dir(&backup, &l.data().join("store"));

    let refused = ingest(&l, "c.jsonl", &batch("C", 10));
    assert_eq!(refused.code, 5, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("seqs 101..=150 were acknowledged"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--accept-loss 101..150"), "{}", refused.stderr);
    let verify = l.run(&["audit", "verify"]);
    assert_eq!(verify.code, 5, "{}{}", verify.stdout, verify.stderr);
    assert!(verify.stderr.contains("seqs 101..=150 were acknowledged"), "{}", verify.stderr);
    // Nothing was written: seq 101 was not given to C.
    let stats = l.run(&["stats", "--format", "json"]).ok();
    assert_eq!(stats.json()["head_seq"], 100);
    assert!(stats.stderr.contains("warning: the log ends at seq 100"), "{}", stats.stderr);

    // Recovery is a person's explicit decision, naming the range; then writing goes on.
    let wrong = l.run(&["recover", "--accept-loss", "101..149"]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("the missing range is 101..150"), "{}", wrong.stderr);
    let accepted = l.run(&["recover", "--accept-loss", "101..150"]).ok();
    assert!(accepted.stdout.contains("\"lost_first_seq\":101"), "{}", accepted.stdout);
    let losses = std::fs::read_to_string(l.data().join("losses.jsonl")).unwrap();
    assert!(losses.contains("\"lost_last_seq\":150"), "{losses}");
    ingest(&l, "c.jsonl", &batch("C", 10)).ok();
    assert_eq!(l.head(), 110);
    let verify = l.run(&["audit", "verify"]).ok();
    assert!(verify.stdout.contains("1 loss(es) were accepted"), "{}", verify.stdout);
    let nothing = l.run(&["recover"]).ok();
    assert!(nothing.stdout.contains("nothing to recover"), "{}", nothing.stdout);
}

#[test]
fn a_store_from_another_ledger_is_refused() {
    let l = Ledger::new();
    ingest(&l, "a.jsonl", &batch("A", 20)).ok();
    let other = Ledger::new();
    ingest(&other, "x.jsonl", &batch("X", 30)).ok();
    // This ledger's store is replaced by another's, longer one: its chain at seq 20 differs.
    std::fs::remove_dir_all(l.data().join("store")).unwrap();
    copy_dir(&other.data().join("store"), &l.data().join("store"));
    let refused = ingest(&l, "b.jsonl", &batch("B", 5));
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(refused.stderr.contains("chain at seq 20 differs"), "{}", refused.stderr);
    let needs_flag = l.run(&["recover"]);
    assert_eq!(needs_flag.code, 2, "{}", needs_flag.stderr);
    l.run(&["recover", "--accept-replaced-store"]).ok();
    ingest(&l, "b.jsonl", &batch("B", 5)).ok();
    assert_eq!(l.head(), 35);
}

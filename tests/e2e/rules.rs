//! Every validity rule and every kind of bad input, through the binary: given a history, a file
//! of [a valid line, the bad line] is refused with `FILE:2: reason`, exit 3 (4 for conflicts),
//! and nothing of it is stored.

use crate::harness::*;

struct Case {
    given: Vec<String>,
    bad: String,
    /// The message after `FILE:2: `.
    expected: &'static str,
}

fn case(given: &[&str], bad: &str, expected: &'static str) -> Case {
    Case { given: given.iter().map(|s| s.to_string()).collect(), bad: bad.to_string(), expected }
}

fn check(cases: Vec<Case>) {
    for (i, case) in cases.into_iter().enumerate() {
        let l = Ledger::new();
        let given: Vec<&str> = case.given.iter().map(String::as_str).collect();
        if !given.is_empty() {
            l.ingest("given.jsonl", &given).ok();
        }
        let before = l.head();
        // A valid line first: it must not be stored either.
        let valid = r#"{"deal":"OTHER","type":"opened","at":"2024-01-01T00:00:00Z","owner":"x","amount":1}"#;
        let path = l.file("bad.jsonl", &[valid, &case.bad]);
        let run = l.run(&["ingest", path.to_str().unwrap()]);
        let expected_code = if case.expected.contains("_conflict]") { 4 } else { 3 };
        assert_eq!(run.code, expected_code, "case {i}: {}\n{}", case.bad, run.stderr);
        let located = run.stderr.contains("bad.jsonl:2: ") && run.stderr.contains(case.expected);
        assert!(located, "case {i}:\nwant: bad.jsonl:2: ...{}\ngot:  {}", case.expected, run.stderr);
        assert!(run.stderr.contains("nothing was stored"));
        assert_eq!(l.head(), before, "case {i}: nothing stored");
    }
}

#[test]
fn history_rules() {
    let won = a("won", 20, "");
    let dq = a("disqualified", 15, r#","reason":"gone_dark""#);
    let moved = a("stage_moved", 15, r#","to":"quote""#);
    check(vec![
        case(&[], &a("touch", 11, r#","channel":"call","direction":"outbound""#), "deal `A-1` has no `opened` event; open it first [not_opened]"),
        // The same opening again is a duplicate (an event without a source_id is identified by
        // its content); another one is refused.
        case(&[OPEN_A], &OPEN_A.replace("12000", "13000"), "deal `A-1` was already opened at 2024-01-10T09:00:00Z [already_opened]"),
        case(&[OPEN_A], &a("touch", 9, r#","channel":"call","direction":"outbound""#), "field `at`: 2024-01-09T10:00:00Z is before deal `A-1` was opened (2024-01-10T09:00:00Z) [before_opened]"),
        case(&[OPEN_A], &a("stage_moved", 11, r#","to":"prospecting""#), "field `to`: the deal is already in `prospecting` [same_stage]"),
        case(&[OPEN_A], &a("stage_moved", 11, r#","to":"negotiation""#), "field `to`: `negotiation` is not a stage of the pipeline (prospecting, qualifying, quote, closing) [unknown_stage]"),
        case(&[OPEN_A, &won], &a("stage_moved", 21, r#","to":"quote""#), "`stage_moved` needs an open deal; the deal is won then [not_open]"),
        case(&[OPEN_A, &won], &a("lost", 21, r#","reason":"price""#), "`lost` needs an open deal; the deal is won then [not_open]"),
        case(&[OPEN_A, &dq], &a("disqualified", 16, r#","reason":"bad_fit""#), "`disqualified` needs an open deal; the deal is disqualified then [not_open]"),
        case(&[OPEN_A, &dq], &a("won", 16, ""), "`won` needs an open deal; the deal is disqualified then [not_open]"),
        case(&[OPEN_A], &a("requalified", 16, ""), "`requalified` needs a lost or disqualified deal; the deal is open in `prospecting` then [not_closed]"),
        case(&[OPEN_A, &won], &a("requalified", 21, ""), "`requalified` needs a lost or disqualified deal; the deal is won then [not_closed]"),
        case(&[OPEN_A, &dq], &a("requalified", 16, r#","stage":"nowhere""#), "field `stage`: `nowhere` is not a stage of the pipeline"),
        // Late-logged events that would break what is already stored.
        case(&[OPEN_A, &won], &a("lost", 12, r#","reason":"x""#), "an event at 2024-01-12T10:00:00Z would make deal `A-1`'s later `won` at 2024-01-20T10:00:00Z (seq 2) invalid: `won` needs an open deal; the deal is lost then [breaks_later_event]"),
        case(&[OPEN_A, &moved], &a("stage_moved", 12, r#","to":"quote""#), "would make deal `A-1`'s later `stage_moved` at 2024-01-15T10:00:00Z (seq 2) invalid: the deal is already in `quote` [breaks_later_event]"),
        case(&[OPEN_A], &a("touch", 11, r#","channel":"call","direction":"outbound","expected_version":5"#), "field `expected_version`: deal `A-1` is at version 1, not 5 [version_conflict]"),
    ]);
}

#[test]
fn late_logged_events_are_accepted_where_the_rules_hold() {
    let l = Ledger::new();
    let won = a("won", 20, "");
    l.ingest("1.jsonl", &[OPEN_A, &won]).ok();
    // Backdated before the win: a stage move, a touch, a field: all valid in their place.
    let lines = [
        a("stage_moved", 12, r#","to":"quote""#),
        a("touch", 11, r#","channel":"meeting","direction":"inbound","minutes":45"#),
        a("field_set", 13, r#","field":"budget_confirmed","value":true"#),
        a("touch", 25, r#","channel":"email","direction":"outbound""#),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_eq!(l.ingest("2.jsonl", &refs).ok().json()["ingested"], 4);
}

#[test]
fn bad_input() {
    let open = |extra: &str| {
        format!(r#"{{"deal":"N-1","type":"opened","at":"2024-01-10T09:00:00Z","owner":"o"{extra}}}"#)
    };
    check(vec![
        case(&[], "{not json", "key must be a string at line 1 column 2 [malformed_json]"),
        case(&[], "[1,2]", "[malformed_json]"),
        case(
            &[],
            r#"{"deal":"N-1","type":"opened","at":"2024-01-10T09:00:00Z","owner":"o","amount":1,"colour":"red"}"#,
            "unknown field `colour` [unknown_field]",
        ),
        case(&[], r#"{"deal":"N-1","at":"2024-01-10T09:00:00Z"}"#, "field `type`: required [missing_field]"),
        case(
            &[],
            r#"{"deal":"N-1","type":"closed","at":"2024-01-10T09:00:00Z"}"#,
            "field `type`: `closed` is not an event type",
        ),
        case(&[], r#"{"type":"won","at":"2024-01-10T09:00:00Z"}"#, "field `deal`: required [missing_field]"),
        case(
            &[],
            r#"{"deal":"","type":"won","at":"2024-01-10T09:00:00Z"}"#,
            "field `deal`: `` must be 1..=64 bytes, it is 0 [invalid_value]",
        ),
        case(
            &[],
            &format!(r#"{{"deal":"{}","type":"won","at":"2024-01-10T09:00:00Z"}}"#, "x".repeat(65)),
            "must be 1..=64 bytes, it is 65 [invalid_value]",
        ),
        case(
            &[],
            r#"{"deal":"a/b","type":"won","at":"2024-01-10T09:00:00Z"}"#,
            "field `deal`: `a/b` has `/`; a deal id is made of [A-Za-z0-9._:-] [invalid_value]",
        ),
        case(&[], r#"{"deal":"N-1","type":"won"}"#, "field `at`: required [missing_field]"),
        case(
            &[],
            r#"{"deal":"N-1","type":"won","at":"10/01/2024"}"#,
            "field `at`: `10/01/2024` is not an RFC 3339 timestamp",
        ),
        case(
            &[],
            r#"{"deal":"N-1","type":"won","at":"2024-01-10T09:00:00Z","recorded_at":"soon"}"#,
            "field `recorded_at`: `soon` is not an RFC 3339 timestamp",
        ),
        case(&[], &open(""), "field `amount`: required on `opened` [missing_field]"),
        case(
            &[],
            &open(r#","amount":-5"#),
            "field `amount`: `-5` is negative; amounts must be >= 0 [invalid_value]",
        ),
        case(
            &[],
            &open(r#","amount":"12,000""#),
            "field `amount`: `12,000` is not a non-negative decimal amount [invalid_value]",
        ),
        case(
            &[],
            &open(r#","amount":10.001"#),
            "field `amount`: 10.001 has 3 decimal places; USD allows 2 [invalid_value]",
        ),
        case(
            &[],
            &open(r#","amount":1,"currency":"euro""#),
            "field `currency`: `euro` is not an ISO 4217 code (three capital letters) [invalid_value]",
        ),
        case(
            &[],
            &open(r#","amount":1,"close_date":"2024-02-30""#),
            "field `close_date`: `2024-02-30` is not a YYYY-MM-DD date",
        ),
        case(
            &[],
            &open(r#","amount":1,"channel":"call""#),
            "field `channel`: not a field of `opened` [field_not_allowed]",
        ),
        case(
            &[OPEN_A],
            &a("touch", 11, r#","channel":"call""#),
            "field `direction`: required on `touch` [missing_field]",
        ),
        case(
            &[OPEN_A],
            &a("touch", 11, r#","channel":"call","direction":"sideways""#),
            "field `direction`: `sideways` is not inbound or outbound [invalid_value]",
        ),
        case(
            &[OPEN_A],
            &a("touch", 11, r#","channel":"call","direction":"inbound","minutes":2000"#),
            "field `minutes`: 2000 is not within 0..=1440 [invalid_value]",
        ),
        case(
            &[OPEN_A],
            &a("touch", 11, r#","channel":"call","direction":"inbound","minutes":-1"#),
            "field `minutes`: -1 is not within 0..=1440 [invalid_value]",
        ),
        case(&[OPEN_A], &a("stage_moved", 11, ""), "field `to`: required on `stage_moved` [missing_field]"),
        case(
            &[OPEN_A],
            &a("field_set", 11, r#","field":"x","value":{"a":1}"#),
            "field `value`: must be a string, a boolean, a number or null [invalid_value]",
        ),
        case(
            &[OPEN_A],
            &a("field_set", 11, r#","field":"x""#),
            "field `value`: required on `field_set` [missing_field]",
        ),
        case(
            &[OPEN_A],
            &a("disqualified", 11, r#","reason":"boring""#),
            "field `reason`: `boring` is not a disqualification reason",
        ),
        case(&[OPEN_A], &a("lost", 11, ""), "field `reason`: required on `lost` [missing_field]"),
        case(
            &[OPEN_A],
            &a("owner_changed", 11, r#","owner":"  ""#),
            "field `owner`: must not be empty [invalid_value]",
        ),
        case(
            &[OPEN_A],
            &a("won", 11, r#","amount":"1.234""#),
            "field `amount`: 1.234 has 3 decimal places; USD allows 2 [invalid_value]",
        ),
    ]);
}

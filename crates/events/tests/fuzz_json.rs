//! Property tests: `parse_line` is total. Bytes from a request, a file or the disk are untrusted,
//! so whatever a line holds (arbitrary bytes, any text, a valid event with fields of the wrong
//! type, huge numbers, deep nesting, long or non-ASCII strings, odd dates, a damaged byte), the
//! parser returns a rejection or an event; never a panic. An event it returns is valid: printed
//! by `write_event_json` and parsed again, it is the same event.
//!
//! The number of cases is proptest's (256; `PROPTEST_CASES` sets it): a soak is
//! `PROPTEST_CASES=1000000 cargo test --release -p dealledger-events --test fuzz_json`.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "test code: a panic is a failing test"
)]

use dealledger_events::json::{write_event_json, LINE_BYTES_MAX};
use dealledger_events::{parse_line, Currency, Rule};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Valid lines, one per type and shape, that the mutations start from.
const TEMPLATES: [&str; 13] = [
    r#"{"deal":"D-1","type":"opened","at":"2024-01-02T09:00:00Z","owner":"ana","amount":"12000.50","currency":"EUR","stage":"qualifying","close_date":"2024-03-31","name":"Acme"}"#,
    r#"{"deal":"D-1","type":"touch","at":"2024-01-03T09:00:00Z","channel":"call","direction":"outbound","minutes":20,"contact":"bo@acme.test"}"#,
    r#"{"deal":"D-1","type":"stage_moved","at":"2024-01-04T09:00:00+02:00","to":"quote"}"#,
    r#"{"deal":"D-1","type":"amount_changed","at":"2024-01-05T09:00:00Z","amount":15000}"#,
    r#"{"deal":"D-1","type":"close_date_changed","at":"2024-01-05T09:00:00Z","close_date":"2024-04-30"}"#,
    r#"{"deal":"D-1","type":"owner_changed","at":"2024-01-05T09:00:00.250Z","owner":"bo"}"#,
    r#"{"deal":"D-1","type":"field_set","at":"2024-01-05T09:00:00Z","field":"budget_confirmed","value":true}"#,
    r#"{"deal":"D-1","type":"field_set","at":"2024-01-05T09:00:00Z","field":"seats","value":12.50}"#,
    r#"{"deal":"D-1","type":"disqualified","at":"2024-01-06T09:00:00Z","reason":"no_budget","note":"FY freeze"}"#,
    r#"{"deal":"D-1","type":"requalified","at":"2024-02-06T09:00:00Z","stage":"quote","note":"back"}"#,
    r#"{"deal":"D-1","type":"won","at":"2024-03-06T09:00:00Z","amount":"14000"}"#,
    r#"{"deal":"D-2","type":"lost","at":"2024-03-06T09:00:00Z","recorded_at":"2024-03-07T09:00:00Z","actor":"sync","source_id":"x-1","reason":"price","expected_version":3}"#,
    r#"{"deal":"D-3","type":"opened","at":"2024-01-02T09:00:00Z","owner":"ana","amount":0}"#,
];

/// Every field of the contract (the first 22), and names it does not know.
const KEYS: [&str; 28] = [
    "deal",
    "type",
    "at",
    "recorded_at",
    "actor",
    "source_id",
    "expected_version",
    "owner",
    "amount",
    "currency",
    "stage",
    "close_date",
    "name",
    "channel",
    "direction",
    "minutes",
    "contact",
    "to",
    "field",
    "value",
    "reason",
    "note",
    "chanel",
    "Deal",
    "",
    "type\u{0}",
    "é",
    "seq",
];

/// Parses `line`; an event it returns must print and parse back to itself.
fn check(line: &str) -> Result<(), TestCaseError> {
    let Ok(submission) = parse_line(line) else { return Ok(()) };
    let mut printed = String::new();
    write_event_json(&mut printed, &submission.event, Currency::USD, "");
    match parse_line(&printed) {
        Ok(again) => prop_assert_eq!(again.event, submission.event, "{} printed as {}", line, printed),
        // Escapes the printer writes longer than the line had them (`\b` as `\u0008`) can
        // take a line at the limit past it.
        Err(rejection) if rejection.rule == Rule::TooLarge && printed.len() > LINE_BYTES_MAX => {}
        Err(rejection) => {
            return Err(TestCaseError::fail(format!("{line}\nprinted as {printed}\nis refused: {rejection}")))
        }
    }
    Ok(())
}

/// A JSON string literal of `text`.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

fn pick(values: &'static [&'static str]) -> BoxedStrategy<String> {
    proptest::sample::select(values).prop_map(str::to_string).boxed()
}

/// Timestamp text around RFC 3339: years of any width and sign, fields out of range, leap
/// seconds, fractions too long, odd separators and zones.
fn odd_timestamp() -> BoxedStrategy<String> {
    let year = prop_oneof![
        6 => (0u32..10_000).prop_map(|y| format!("{y:04}")),
        1 => "[+-]?[0-9]{1,7}",
    ];
    // Mostly in range, so that many stamps are valid and the rest near misses.
    let two = |max: u32| {
        prop_oneof![
            6 => (0..=max).prop_map(|n| format!("{n:02}")),
            1 => (0u32..100).prop_map(|n| format!("{n:02}")),
            1 => "[0-9]{0,3}",
        ]
    };
    let fraction = prop_oneof![2 => Just(String::new()), 1 => "\\.[0-9]{0,12}"];
    let separator = prop_oneof![6 => Just("T".to_string()), 1 => pick(&["t", " ", "_"])];
    let zone = prop_oneof![
        6 => pick(&["Z", "+00:00", "-23:59", "+05:30"]),
        1 => pick(&["z", "+24:00", "+99:99", "+0000", "", "+00", "+00:60", "Z "]),
    ];
    (year, two(12), two(31), separator, two(23), two(59), two(60), fraction, zone)
        .prop_map(|(y, mo, d, sep, h, mi, s, f, z)| format!("{y}-{mo}-{d}{sep}{h}:{mi}:{s}{f}{z}"))
        .boxed()
}

/// Date text around `YYYY-MM-DD`.
fn odd_date() -> BoxedStrategy<String> {
    prop_oneof![
        (0u32..10_000, 0u32..14, 0u32..33).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        "[+-]?[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}",
        odd_timestamp(),
    ]
    .boxed()
}

/// Text for a string field: values the contract knows, any script, control characters, and
/// lengths around the limits (4,096 bytes of text, 64 KiB of line).
fn text() -> BoxedStrategy<String> {
    let repeated = |lengths: std::ops::Range<usize>| {
        (any::<char>(), lengths)
            .prop_map(|(c, n)| std::iter::repeat_n(c, n / c.len_utf8()).collect::<String>())
    };
    prop_oneof![
        4 => pick(&[
            "opened", "touch", "stage_moved", "won", "lost", "call", "inbound", "outbound", "quote", "USD",
            "JPY", "KWD", "usd", "no_budget", "other", "D-1", "a b", "", " ",
        ]),
        4 => "\\PC{0,24}",
        3 => "(?s).{0,24}",
        2 => odd_timestamp(),
        2 => odd_date(),
        1 => repeated(4090..4100),
        1 => repeated(0..5000),
        1 => repeated(60_000..70_000),
    ]
    .boxed()
}

/// Any JSON value, as text: every type, numbers beyond every range, escapes, deep nesting.
fn raw_value() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        4 => text().prop_map(|t| quoted(&t)),
        1 => pick(&["null", "true", "false", "[]", "{}", "0", "-0", "0.0", "1e400", "-1e400", "1E+2", "1.", ".5"]),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_filter_map("finite", |f| f.is_finite().then(|| format!("{f:e}"))),
        1 => "-?[0-9]{15,40}(\\.[0-9]{1,40})?",
        1 => "[0-9]{1,6}\\.[0-9]{1,25}",
        1 => "\"(\\\\u[0-9a-fA-F]{4}|\\\\[nrtbf\"/\\\\]|[a-z]){0,8}\"",
        1 => pick(&[r#""\ud800""#, r#""\udc00\ud800""#, r#""\uD83D\uDE00""#, r#""\x""#, r#""\u12""#]),
    ];
    prop_oneof![
        8 => leaf.boxed(),
        1 => (1usize..2000, any::<bool>()).prop_map(|(depth, objects)| if objects {
            "{\"a\":".repeat(depth) + "1" + &"}".repeat(depth)
        } else {
            "[".repeat(depth) + &"]".repeat(depth)
        }),
        1 => prop::collection::vec(text().prop_map(|t| quoted(&t)), 0..4).prop_map(|items| format!("[{}]", items.join(","))),
    ]
    .boxed()
}

/// A change to an event's fields, each `(key, raw JSON)`.
#[derive(Clone, Debug)]
enum FieldEdit {
    /// Gives a field (the template's, or another) a new value.
    Set(Place, &'static str, String),
    Remove(prop::sample::Index),
    /// Writes a field twice.
    Repeat(prop::sample::Index),
}

/// Where a set field goes.
#[derive(Clone, Debug)]
enum Place {
    /// In place of the field of that name (at the end if there is none).
    Replace,
    /// At a position, even if the line has the field already.
    Insert(prop::sample::Index),
}

/// A value of the type `key` takes (so that the parser gets past decoding to the value's own
/// rules), or of any type for the fields that take any.
fn typed_value(key: &'static str) -> BoxedStrategy<String> {
    let quote = |s: BoxedStrategy<String>| s.prop_map(|t| quoted(&t)).boxed();
    match key {
        "at" | "recorded_at" => quote(odd_timestamp()),
        "close_date" => quote(odd_date()),
        "amount" => prop_oneof![
            pick(&["0", "12.5", "12.345", "1e3", "-1", "0.000000000000000000001", "18446744073709551616"]),
            quote(pick(&["12.50", " 12", "", "1,000", "92233720368547758.07", "0.0000000000000000001"])),
            "[0-9]{1,20}(\\.[0-9]{1,20})?",
            quote("[0-9]{1,20}(\\.[0-9]{1,20})?".boxed()),
        ]
        .boxed(),
        "minutes" | "expected_version" => prop_oneof![
            (0u64..2000).prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            pick(&["-1", "4294967296", "1.5", "18446744073709551616"]),
        ]
        .boxed(),
        "value" => raw_value(),
        _ => quote(text()),
    }
}

/// The contract's fields a template has.
fn own_keys(template: &str) -> Vec<&'static str> {
    KEYS[..22].iter().copied().filter(|key| template.contains(&format!("\"{key}\":"))).collect()
}

/// Edits to a line whose fields are `own`: mostly new values of the right type for its own
/// fields (which reach each value's rules), else any field, any value.
fn field_edit(own: Vec<&'static str>) -> impl Strategy<Value = FieldEdit> {
    let place = || prop_oneof![Just(Place::Replace), any::<prop::sample::Index>().prop_map(Place::Insert)];
    let typed = |keys: BoxedStrategy<&'static str>| {
        keys.prop_flat_map(|key| (Just(key), typed_value(key)))
            .prop_map(|(key, value)| FieldEdit::Set(Place::Replace, key, value))
    };
    prop_oneof![
        4 => typed(proptest::sample::select(own).boxed()),
        2 => typed(proptest::sample::select(&KEYS[..22]).boxed()),
        3 => (place(), proptest::sample::select(&KEYS[..]), raw_value())
            .prop_map(|(place, key, value)| FieldEdit::Set(place, key, value)),
        2 => any::<prop::sample::Index>().prop_map(FieldEdit::Remove),
        1 => any::<prop::sample::Index>().prop_map(FieldEdit::Repeat),
    ]
}

/// A change to a line's bytes.
#[derive(Clone, Debug)]
enum ByteEdit {
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    Replace(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    let at = any::<prop::sample::Index>;
    prop_oneof![
        (at(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        at().prop_map(ByteEdit::Delete),
        (at(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Replace(i, b)),
        at().prop_map(ByteEdit::Truncate),
    ]
}

/// The template's fields with `edits` applied, written as a line; then its bytes edited.
fn mutated_line(template: &str, edits: &[FieldEdit], bytes: &[ByteEdit]) -> String {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(template).expect("templates are JSON objects");
    let mut fields: Vec<(String, String)> =
        object.into_iter().map(|(key, value)| (key, value.to_string())).collect();
    for edit in edits {
        match edit {
            FieldEdit::Set(Place::Replace, key, value) => match fields.iter_mut().find(|(k, _)| k == key) {
                Some(field) => field.1 = value.clone(),
                None => fields.push((key.to_string(), value.clone())),
            },
            FieldEdit::Set(Place::Insert(i), key, value) => {
                let at = i.index(fields.len() + 1);
                fields.insert(at, (key.to_string(), value.clone()));
            }
            FieldEdit::Remove(i) if !fields.is_empty() => {
                fields.remove(i.index(fields.len()));
            }
            FieldEdit::Repeat(i) if !fields.is_empty() => {
                let field = fields[i.index(fields.len())].clone();
                fields.push(field);
            }
            FieldEdit::Remove(_) | FieldEdit::Repeat(_) => {}
        }
    }
    let body: Vec<String> = fields.iter().map(|(key, value)| format!("{}:{value}", quoted(key))).collect();
    let mut line = format!("{{{}}}", body.join(",")).into_bytes();
    for edit in bytes {
        match *edit {
            ByteEdit::Insert(i, b) => line.insert(i.index(line.len() + 1), b),
            ByteEdit::Delete(i) if !line.is_empty() => {
                line.remove(i.index(line.len()));
            }
            ByteEdit::Replace(i, b) if !line.is_empty() => {
                let at = i.index(line.len());
                line[at] = b;
            }
            ByteEdit::Truncate(i) => line.truncate(i.index(line.len() + 1)),
            ByteEdit::Delete(_) | ByteEdit::Replace(..) => {}
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn fuzz_parse_line_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            check(text)?;
        }
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn fuzz_parse_line_text(
        line in prop_oneof![
            "(?s).{0,300}",
            "\\{(\"[a-z_]{1,12}\":(\"[^\"]{0,12}\"|[0-9.e-]{1,8}|true|null|\\[\\]),?){0,10}\\}",
        ],
    ) {
        check(&line)?;
    }

    #[test]
    fn fuzz_parse_line_mutated_events(
        (template, edits) in proptest::sample::select(&TEMPLATES[..])
            .prop_flat_map(|t| (Just(t), prop::collection::vec(field_edit(own_keys(t)), 0..4))),
        bytes in prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(byte_edit(), 1..3)],
    ) {
        check(&mutated_line(template, &edits, &bytes))?;
    }

    #[test]
    fn fuzz_parse_line_timestamps(
        template in proptest::sample::select(&TEMPLATES[..]),
        at in odd_timestamp(),
        recorded_at in proptest::option::of(odd_timestamp()),
        close_date in odd_date(),
    ) {
        let mut edits = vec![FieldEdit::Set(Place::Replace, "at", quoted(&at))];
        if let Some(recorded_at) = recorded_at {
            edits.push(FieldEdit::Set(Place::Replace, "recorded_at", quoted(&recorded_at)));
        }
        if template.contains("close_date") {
            edits.push(FieldEdit::Set(Place::Replace, "close_date", quoted(&close_date)));
        }
        check(&mutated_line(template, &edits, &[]))?;
    }

    #[test]
    fn fuzz_parse_line_deep_nesting(
        depth in 0usize..40_000,
        open in pick(&["[", "{\"a\":", "[{\"deal\":", "{\"value\":["]),
        key in proptest::sample::select(&KEYS[..]),
    ) {
        let line = format!("{{\"type\":\"field_set\",{}:{}1", quoted(key), open.repeat(depth));
        check(&line)?;
        check(&(line + "}"))?;
    }
}

//! Request bodies to submissions: a JSON array of events, or NDJSON (one event per line).
//! Total over any input: every failure is a [`BadEvent`] naming the event's index, never a panic.

use dealledger_events::{parse_line, Rejection, Rule, Submission};
use serde_json::value::RawValue;

/// Why a body was refused: the event's 0-based index in the request (None: the body as a
/// whole) and the rule it broke.
#[derive(Debug)]
pub struct BadEvent {
    pub index: Option<usize>,
    pub rejection: Rejection,
}

/// Too many events in one request.
#[derive(Debug)]
pub struct TooMany {
    pub events_max: usize,
}

pub enum Decoded {
    Events(Vec<Submission>),
    Bad(BadEvent),
    TooMany(TooMany),
}

/// Decodes a body of at most `events_max` events.
pub fn decode_events(body: &[u8], events_max: usize) -> Decoded {
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) => {
            return Decoded::Bad(BadEvent {
                index: None,
                rejection: Rejection::new(Rule::MalformedJson, format!("body is not UTF-8 ({e})")),
            })
        }
    };
    let trimmed = text.trim_start();
    let mut out = Vec::new();
    if trimmed.starts_with('[') {
        if let Err(stop) = decode_array(trimmed, events_max, &mut out) {
            return stop;
        }
    } else {
        for line in text.lines() {
            if line.trim().is_empty() {
                continue;
            }
            if out.len() == events_max {
                return Decoded::TooMany(TooMany { events_max });
            }
            match parse_line(line) {
                Ok(submission) => out.push(submission),
                Err(rejection) => return Decoded::Bad(BadEvent { index: Some(out.len()), rejection }),
            }
        }
    }
    if out.is_empty() {
        return Decoded::Bad(BadEvent {
            index: None,
            rejection: Rejection::new(Rule::MalformedJson, "the body holds no event"),
        });
    }
    Decoded::Events(out)
}

/// Decodes a JSON array of events element by element, stopping at the first bad one or at
/// `events_max + 1`: nothing beyond that is parsed or held (a body of a million tiny elements
/// costs no more than one of `events_max`).
fn decode_array(text: &str, events_max: usize, out: &mut Vec<Submission>) -> Result<(), Decoded> {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    struct Events<'o> {
        events_max: usize,
        out: &'o mut Vec<Submission>,
        stop: &'o mut Option<Decoded>,
    }
    impl<'de> Visitor<'de> for Events<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of events")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(item) = seq.next_element::<&'de RawValue>()? {
                if self.out.len() == self.events_max {
                    *self.stop = Some(Decoded::TooMany(TooMany { events_max: self.events_max }));
                    return Err(A::Error::custom("too many events"));
                }
                match parse_line(item.get()) {
                    Ok(submission) => self.out.push(submission),
                    Err(rejection) => {
                        *self.stop = Some(Decoded::Bad(BadEvent { index: Some(self.out.len()), rejection }));
                        return Err(A::Error::custom("a bad event"));
                    }
                }
            }
            Ok(())
        }
    }
    let mut stop = None;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = deserializer
        .deserialize_seq(Events { events_max, out: &mut *out, stop: &mut stop })
        .and_then(|()| deserializer.end());
    match (parsed, stop) {
        (_, Some(stop)) => Err(stop),
        (Ok(()), None) => Ok(()),
        // An element beyond the bound, even a broken one, is one too many.
        (Err(_), None) if out.len() >= events_max => Err(Decoded::TooMany(TooMany { events_max })),
        (Err(e), None) => {
            // An element that is not even JSON: named when events before it were fine; else it
            // is the body as a whole.
            let index = (!out.is_empty()).then_some(out.len());
            Err(Decoded::Bad(BadEvent {
                index,
                rejection: Rejection::new(
                    Rule::MalformedJson,
                    format!("body is not a JSON array of events: {e}"),
                ),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    const OPENED: &str =
        r#"{"deal":"d1","type":"opened","at":"2025-01-01T00:00:00Z","owner":"ann","amount":100}"#;

    #[test]
    fn array_and_ndjson() {
        let Decoded::Events(v) = decode_events(format!("[{OPENED},{OPENED}]").as_bytes(), 10) else {
            panic!()
        };
        assert_eq!(v.len(), 2);
        let Decoded::Events(v) = decode_events(format!("{OPENED}\n\n{OPENED}\n").as_bytes(), 10) else {
            panic!()
        };
        assert_eq!(v.len(), 2);
        let Decoded::Bad(bad) = decode_events(format!("{OPENED}\n{{\"deal\":1}}\n").as_bytes(), 10) else {
            panic!()
        };
        assert_eq!(bad.index, Some(1));
        let Decoded::TooMany(t) = decode_events(format!("[{OPENED},{OPENED}]").as_bytes(), 1) else {
            panic!()
        };
        assert_eq!(t.events_max, 1);
        let Decoded::Bad(bad) = decode_events(b"  ", 10) else { panic!() };
        assert_eq!(bad.index, None);
        let Decoded::Bad(bad) = decode_events(b"[1,", 10) else { panic!() };
        assert_eq!(bad.rejection.rule, Rule::MalformedJson);
    }

    /// What any outcome must satisfy: events within the bound, or a refusal naming an event
    /// within it (the bound is checked before each event is parsed).
    fn check(body: &[u8], events_max: usize) -> Result<(), TestCaseError> {
        match decode_events(body, events_max) {
            Decoded::Events(events) => {
                prop_assert!(!events.is_empty());
                prop_assert!(events.len() <= events_max);
            }
            Decoded::TooMany(too_many) => prop_assert_eq!(too_many.events_max, events_max),
            Decoded::Bad(BadEvent { index: Some(index), .. }) => prop_assert!(index < events_max),
            Decoded::Bad(BadEvent { index: None, .. }) => {}
        }
        Ok(())
    }

    /// Event lines to build bodies from: valid, damaged, or another JSON value.
    fn item() -> BoxedStrategy<String> {
        const LINES: [&str; 5] = [
            OPENED,
            r#"{"deal":"d1","type":"won","at":"2025-01-02T00:00:00Z"}"#,
            r#"{"deal":"d1","type":"touch","at":"2025-01-02T00:00:00Z","channel":"call","direction":"inbound"}"#,
            r#"{"deal":"d2","type":"lost","at":"2025-01-02T00:00:00+01:00","reason":"price"}"#,
            r#"{"deal":"d 3","type":"opened","at":"2025-13-01T00:00:00Z","owner":"","amount":-1}"#,
        ];
        let damaged = (proptest::sample::select(&LINES[..]), any::<prop::sample::Index>(), any::<u8>())
            .prop_map(|(line, at, byte)| {
                let mut bytes = line.as_bytes().to_vec();
                let at = at.index(bytes.len());
                bytes[at] = byte;
                String::from_utf8_lossy(&bytes).into_owned()
            });
        prop_oneof![
            6 => proptest::sample::select(&LINES[..]).prop_map(str::to_string),
            2 => damaged,
            1 => proptest::sample::select(&["1", "null", "[]", "\"x\"", "{}", "[[[[", "\u{feff}{}"][..])
                .prop_map(str::to_string),
            1 => "\\PC{0,40}",
        ]
        .boxed()
    }

    proptest! {
        #![proptest_config(ProptestConfig::default())]
        // The decoder is total: arbitrary bytes and mangled events decode or are refused.
        #[test]
        fn fuzz_decode_body_bytes(
            body in proptest::collection::vec(any::<u8>(), 0..4096),
            events_max in proptest::sample::select(&[0usize, 1, 2, 16, 1000][..]),
        ) {
            check(&body, events_max)?;
        }

        #[test]
        fn fuzz_decode_body_mangled(cut in 0usize..200, insert in any::<char>(), array in any::<bool>()) {
            let text = if array { format!("[{OPENED},{OPENED}]") } else { format!("{OPENED}\n{OPENED}") };
            let mut chars: Vec<char> = text.chars().collect();
            let at = cut.min(chars.len());
            chars.insert(at, insert);
            let mangled: String = chars.into_iter().collect();
            check(mangled.as_bytes(), 16)?;
        }

        #[test]
        fn fuzz_decode_body_events(
            items in proptest::collection::vec(item(), 0..24),
            array in any::<bool>(),
            separator in proptest::sample::select(&["\n", "\r\n", "\n\n", "\n  \t", ",", ""][..]),
            leading in proptest::sample::select(&["", " ", "\n", "\u{feff}", "\r\n  "][..]),
            events_max in proptest::sample::select(&[0usize, 1, 5, 16, 1000][..]),
        ) {
            let body = if array {
                format!("{leading}[{}]", items.join(if separator.contains(',') { "," } else { ",\n" }))
            } else {
                format!("{leading}{}", items.join(separator))
            };
            check(body.as_bytes(), events_max)?;
        }
    }
}

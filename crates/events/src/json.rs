//! JSON Lines in and out: the event contract of docs/events.md.

use crate::event::{
    Amount, Body, Channel, DealId, Direction, DqReason, Event, FieldValue, Kind, StoredEvent, Submission,
    TEXT_BYTES_MAX, TOUCH_MINUTES_MAX,
};
use crate::money::{format_scaled, Currency, Decimal};
use crate::rejection::{Rejection, Rule};
use crate::time::{Date, Timestamp};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt::Write;

/// Bytes one JSON line may have, at most.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// A JSON string borrowed from the line when it has no escapes, owned when it has. (serde's own
/// `Cow<str>` inside an `Option` always allocates, and that was a quarter of ingest's time.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Text<'a>, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(text.to_string())))
            }
            fn visit_string<E>(self, text: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(Visitor(std::marker::PhantomData))
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Every field of the contract; which ones a type takes is checked after decoding, so that the
/// error names the field and the type.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(borrow = "'a")]
    deal: Option<Text<'a>>,
    #[serde(borrow = "'a", rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow = "'a")]
    at: Option<Text<'a>>,
    #[serde(borrow = "'a")]
    recorded_at: Option<Text<'a>>,
    /// Printed on stored events; accepted (and checked) so that printed events ingest again,
    /// and replaced by this ledger's clock.
    #[serde(borrow = "'a")]
    appended_at: Option<Text<'a>>,
    /// Printed on stored events; accepted (as text) so that printed events ingest again, and
    /// replaced by what this ledger knows of who appended it.
    #[serde(borrow = "'a")]
    appended_by: Option<Text<'a>>,
    #[serde(borrow = "'a")]
    actor: Option<Text<'a>>,
    #[serde(borrow = "'a")]
    source_id: Option<Text<'a>>,
    expected_version: Option<u32>,
    #[serde(borrow = "'a")]
    owner: Option<Text<'a>>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    #[serde(borrow = "'a")]
    currency: Option<Text<'a>>,
    #[serde(borrow = "'a")]
    stage: Option<Text<'a>>,
    #[serde(borrow = "'a")]
    close_date: Option<Text<'a>>,
    #[serde(borrow = "'a")]
    name: Option<Text<'a>>,
    #[serde(borrow = "'a")]
    channel: Option<Text<'a>>,
    #[serde(borrow = "'a")]
    direction: Option<Text<'a>>,
    /// Raw, so that `-1` or `1.5` is an `invalid_value` naming the field, like `99999`.
    #[serde(borrow)]
    minutes: Option<&'a RawValue>,
    #[serde(borrow = "'a")]
    contact: Option<Text<'a>>,
    #[serde(borrow = "'a")]
    to: Option<Text<'a>>,
    #[serde(borrow = "'a")]
    field: Option<Text<'a>>,
    /// `null` is a value here (it clears the field), so it must not collapse into "absent".
    #[serde(borrow, default, deserialize_with = "present_raw")]
    value: Option<&'a RawValue>,
    #[serde(borrow = "'a")]
    reason: Option<Text<'a>>,
    #[serde(borrow = "'a")]
    note: Option<Text<'a>>,
}

fn present_raw<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// The type-specific fields, for the "not allowed on this type" check.
const TYPE_FIELDS: [&str; 15] = [
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
];

fn allowed(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Opened => &["owner", "amount", "currency", "stage", "close_date", "name"],
        Kind::Touch => &["channel", "direction", "minutes", "contact"],
        Kind::StageMoved => &["to"],
        Kind::AmountChanged => &["amount"],
        Kind::CloseDateChanged => &["close_date"],
        Kind::OwnerChanged => &["owner"],
        Kind::FieldSet => &["field", "value"],
        Kind::Disqualified => &["reason", "note"],
        Kind::Requalified => &["stage", "note"],
        Kind::Won => &["amount"],
        Kind::Lost => &["reason", "note"],
    }
}

impl Wire<'_> {
    fn present(&self, field: &str) -> bool {
        match field {
            "owner" => self.owner.is_some(),
            "amount" => self.amount.is_some(),
            "currency" => self.currency.is_some(),
            "stage" => self.stage.is_some(),
            "close_date" => self.close_date.is_some(),
            "name" => self.name.is_some(),
            "channel" => self.channel.is_some(),
            "direction" => self.direction.is_some(),
            "minutes" => self.minutes.is_some(),
            "contact" => self.contact.is_some(),
            "to" => self.to.is_some(),
            "field" => self.field.is_some(),
            "value" => self.value.is_some(),
            "reason" => self.reason.is_some(),
            "note" => self.note.is_some(),
            _ => unreachable!("not a type field: {field}"),
        }
    }
}

fn required<T>(value: Option<T>, field: &'static str, kind: Kind) -> Result<T, Rejection> {
    value.ok_or_else(|| {
        Rejection::field(Rule::MissingField, field, format!("required on `{}`", kind.as_str()))
    })
}

fn text(value: Option<Text<'_>>, field: &'static str) -> Result<Option<String>, Rejection> {
    match value {
        None => Ok(None),
        Some(text) if text.len() > TEXT_BYTES_MAX => Err(Rejection::field(
            Rule::InvalidValue,
            field,
            format!("{} bytes, at most {TEXT_BYTES_MAX}", text.len()),
        )),
        Some(text) => Ok(Some(text.0.into_owned())),
    }
}

fn nonempty(value: Option<String>, field: &'static str) -> Result<Option<String>, Rejection> {
    match value {
        Some(text) if text.trim().is_empty() => {
            Err(Rejection::field(Rule::InvalidValue, field, "must not be empty"))
        }
        other => Ok(other),
    }
}

fn invalid<E: std::fmt::Display>(field: &'static str) -> impl Fn(E) -> Rejection {
    move |why| Rejection::field(Rule::InvalidValue, field, why.to_string())
}

fn amount(raw: &RawValue) -> Result<Amount, Rejection> {
    let text = raw.get();
    let digits: Cow<'_, str> = if text.starts_with('"') {
        let parsed: String = serde_json::from_str(text)
            .map_err(|_| Rejection::field(Rule::InvalidValue, "amount", "not a string"))?;
        Cow::Owned(parsed)
    } else {
        Cow::Borrowed(text)
    };
    let decimal = Decimal::parse(digits.trim()).map_err(invalid("amount"))?;
    Ok(Amount::written(decimal))
}

fn field_value(raw: &RawValue) -> Result<FieldValue, Rejection> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'n') => Ok(FieldValue::Clear),
        Some(b't') => Ok(FieldValue::Bool(true)),
        Some(b'f') => Ok(FieldValue::Bool(false)),
        Some(b'"') => {
            let value: String = serde_json::from_str(text).map_err(|e| invalid("value")(e.to_string()))?;
            if value.len() > TEXT_BYTES_MAX {
                return Err(invalid("value")(format!("{} bytes, at most {TEXT_BYTES_MAX}", value.len())));
            }
            Ok(FieldValue::Text(value))
        }
        Some(b'-' | b'0'..=b'9') => Ok(FieldValue::Number(text.to_string())),
        _ => Err(invalid("value")("must be a string, a boolean, a number or null".to_string())),
    }
}

/// Parses one JSON line into an event and its write conditions. Pure: checks the line on its own;
/// the rules that need the deal's history are in [`crate::validate`]. Checks come in a fixed
/// order (size, JSON, type, fields allowed, the envelope, the body), so a line with several
/// faults always gets the same one.
pub fn parse_line(line: &str) -> Result<Submission, Rejection> {
    if line.len() > LINE_BYTES_MAX {
        return Err(Rejection::new(
            Rule::TooLarge,
            format!("line is {} bytes, at most {LINE_BYTES_MAX}", line.len()),
        ));
    }
    let mut wire = decode(line)?;
    let kind = kind_of(&wire)?;
    let deal = DealId::parse(
        wire.deal.as_deref().ok_or_else(|| Rejection::field(Rule::MissingField, "deal", "required"))?,
    )
    .map_err(invalid("deal"))?;
    let at = Timestamp::parse_rfc3339(
        wire.at.as_deref().ok_or_else(|| Rejection::field(Rule::MissingField, "at", "required"))?,
    )
    .map_err(invalid("at"))?;
    let recorded_at = match wire.recorded_at.as_deref() {
        Some(text) => Some(Timestamp::parse_rfc3339(text).map_err(invalid("recorded_at"))?),
        None => None,
    };
    if let Some(text) = wire.appended_at.as_deref() {
        Timestamp::parse_rfc3339(text).map_err(invalid("appended_at"))?;
    }
    let _ = text(wire.appended_by.take(), "appended_by")?;
    let actor = nonempty(text(wire.actor.take(), "actor")?, "actor")?;
    let source_id = nonempty(text(wire.source_id.take(), "source_id")?, "source_id")?;
    let expected_version = wire.expected_version;
    let body = body(kind, wire)?;
    Ok(Submission {
        event: Event { deal, at, recorded_at, appended_at: None, appended_by: None, actor, source_id, body },
        expected_version,
    })
}

/// The line as JSON, in the wire's shape. A line that does not decode is read again, as a
/// plain object, to tell a field the format does not have (`unknown_field`, naming it) from
/// anything else (`malformed_json`, with serde's account of it).
fn decode(line: &str) -> Result<Wire<'_>, Rejection> {
    serde_json::from_str(line).map_err(|e| match first_unknown_key(line) {
        Some(name) => Rejection::new(Rule::UnknownField, format!("unknown field `{name}`")),
        None => Rejection::new(Rule::MalformedJson, e.to_string()),
    })
}

/// The first key of the line's object, in the line's order, that the wire format does not have;
/// None when there is none or the line is not an object.
fn first_unknown_key(line: &str) -> Option<String> {
    struct Keys(Vec<String>);
    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Keys, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((key, serde::de::IgnoredAny)) = map.next_entry::<String, _>()? {
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            deserializer.deserialize_map(Visitor)
        }
    }
    let known = serde_aux::serde_introspection::serde_introspect::<Wire>();
    let Keys(keys) = serde_json::from_str(line).ok()?;
    keys.into_iter().find(|key| !known.contains(&key.as_str()))
}

/// The event type, and no field another type has.
fn kind_of(wire: &Wire<'_>) -> Result<Kind, Rejection> {
    let kind_text =
        wire.kind.as_deref().ok_or_else(|| Rejection::field(Rule::MissingField, "type", "required"))?;
    let kind = Kind::parse(kind_text).ok_or_else(|| {
        Rejection::field(
            Rule::UnknownType,
            "type",
            format!("`{kind_text}` is not an event type ({})", Kind::ALL.map(Kind::as_str).join(", ")),
        )
    })?;
    for field in TYPE_FIELDS {
        if wire.present(field) && !allowed(kind).contains(&field) {
            return Err(Rejection::field(
                Rule::FieldNotAllowed,
                field,
                format!("not a field of `{}`", kind.as_str()),
            ));
        }
    }
    Ok(kind)
}

fn date(value: Option<Text<'_>>, field: &'static str) -> Result<Option<Date>, Rejection> {
    value.map(|text| Date::parse(&text).map_err(invalid(field))).transpose()
}

/// A required text that must not be blank.
fn named(value: Option<Text<'_>>, field: &'static str, kind: Kind) -> Result<String, Rejection> {
    required(nonempty(text(value, field)?, field)?, field, kind)
}

/// The fields of the event's type.
fn body(kind: Kind, wire: Wire<'_>) -> Result<Body, Rejection> {
    Ok(match kind {
        Kind::Opened => opened(wire)?,
        Kind::Touch => touch(wire)?,
        Kind::StageMoved => Body::StageMoved { to: named(wire.to, "to", kind)? },
        Kind::AmountChanged => {
            Body::AmountChanged { amount: amount(required(wire.amount, "amount", kind)?)? }
        }
        Kind::CloseDateChanged => Body::CloseDateChanged {
            close_date: required(date(wire.close_date, "close_date")?, "close_date", kind)?,
        },
        Kind::OwnerChanged => Body::OwnerChanged { owner: named(wire.owner, "owner", kind)? },
        Kind::FieldSet => Body::FieldSet {
            field: named(wire.field, "field", kind)?,
            value: field_value(required(wire.value, "value", kind)?)?,
        },
        Kind::Disqualified => {
            let reason = required(wire.reason.as_deref(), "reason", kind)?;
            let reason =
                one_of(reason, DqReason::ALL, DqReason::as_str, "reason", "a disqualification reason")?;
            Body::Disqualified { reason, note: text(wire.note, "note")? }
        }
        Kind::Requalified => Body::Requalified {
            stage: nonempty(text(wire.stage, "stage")?, "stage")?,
            note: text(wire.note, "note")?,
        },
        Kind::Won => Body::Won { amount: wire.amount.map(amount).transpose()? },
        Kind::Lost => {
            Body::Lost { reason: named(wire.reason, "reason", kind)?, note: text(wire.note, "note")? }
        }
    })
}

fn opened(wire: Wire<'_>) -> Result<Body, Rejection> {
    let kind = Kind::Opened;
    let owner = named(wire.owner, "owner", kind)?;
    let mut amount = amount(required(wire.amount, "amount", kind)?)?;
    let currency = match wire.currency.as_deref() {
        Some(code) => Currency::parse(code).map_err(invalid("currency"))?,
        None => Currency::USD,
    };
    amount.resolve(currency).map_err(invalid("amount"))?;
    Ok(Body::Opened {
        owner,
        amount,
        currency,
        stage: nonempty(text(wire.stage, "stage")?, "stage")?,
        close_date: date(wire.close_date, "close_date")?,
        name: text(wire.name, "name")?,
    })
}

/// `text` as the one of `all` with that name, or an error in `field` listing the names.
fn one_of<T: Copy, const N: usize>(
    text: &str,
    all: [T; N],
    name: fn(T) -> &'static str,
    field: &'static str,
    what: &str,
) -> Result<T, Rejection> {
    all.into_iter()
        .find(|item| name(*item) == text)
        .ok_or_else(|| invalid(field)(format!("`{text}` is not {what} ({})", all.map(name).join(", "))))
}

fn touch(wire: Wire<'_>) -> Result<Body, Rejection> {
    let kind = Kind::Touch;
    let channel = required(wire.channel.as_deref(), "channel", kind)?;
    let channel = one_of(channel, Channel::ALL, Channel::as_str, "channel", "a channel")?;
    let direction = match required(wire.direction.as_deref(), "direction", kind)? {
        "outbound" => Direction::Outbound,
        "inbound" => Direction::Inbound,
        other => return Err(invalid("direction")(format!("`{other}` is not inbound or outbound"))),
    };
    let minutes = match wire.minutes.map(|raw| raw.get().trim()) {
        None | Some("null") => None,
        Some(m) => match m.parse::<u16>() {
            Ok(m) if m <= TOUCH_MINUTES_MAX => Some(m),
            _ => return Err(invalid("minutes")(format!("{m} is not within 0..={TOUCH_MINUTES_MAX}"))),
        },
    };
    Ok(Body::Touch { channel, direction, minutes, contact: text(wire.contact, "contact")? })
}

/// Appends `text` as a JSON string literal.
pub fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_amount(out: &mut String, amount: &Amount, currency: Currency) {
    let text = match amount {
        Amount::Minor(minor) => currency.format_minor(*minor),
        Amount::Written(repr) => format_scaled(i128::from(repr.mantissa), repr.scale),
    };
    out.push_str(&text);
}

/// Where an event's fields go: a JSON object, or the `key=value` text of a table.
trait Sink {
    /// A text value.
    fn str(&mut self, key: &str, value: &str);
    /// A value written as it is: a number, `true`, `null`.
    fn raw(&mut self, key: &str, value: &str);
    fn opt(&mut self, key: &str, value: &Option<String>) {
        if let Some(value) = value {
            self.str(key, value);
        }
    }
}

/// Fields appended to a JSON object after its first.
struct Fields<'a> {
    out: &'a mut String,
}

impl Sink for Fields<'_> {
    fn str(&mut self, key: &str, value: &str) {
        let _ = write!(self.out, ",\"{key}\":");
        push_json_string(self.out, value);
    }
    fn raw(&mut self, key: &str, value: &str) {
        let _ = write!(self.out, ",\"{key}\":{value}");
    }
}

/// Fields as `key=value` pairs, values as written.
#[derive(Default)]
struct Pairs(Vec<(String, String)>);

impl Sink for Pairs {
    fn str(&mut self, key: &str, value: &str) {
        self.0.push((key.to_string(), value.to_string()));
    }
    fn raw(&mut self, key: &str, value: &str) {
        self.0.push((key.to_string(), value.to_string()));
    }
}

/// Writes the event as one line of the input contract (no trailing newline), so that what the
/// ledger prints can be ingested again. `currency` is the deal's, for amounts in minor units.
/// `prefix` is written first inside the object (e.g. `"seq":1,"version":1,`).
pub fn write_event_json(out: &mut String, event: &Event, currency: Currency, prefix: &str) {
    out.push('{');
    out.push_str(prefix);
    out.push_str("\"deal\":");
    push_json_string(out, event.deal.as_str());
    let mut f = Fields { out };
    f.str("type", event.body.kind().as_str());
    f.str("at", &event.at.to_string());
    if let Some(recorded_at) = event.recorded_at {
        f.str("recorded_at", &recorded_at.to_string());
    }
    if let Some(appended_at) = event.appended_at {
        f.str("appended_at", &appended_at.to_string());
    }
    f.opt("appended_by", &event.appended_by);
    f.opt("actor", &event.actor);
    f.opt("source_id", &event.source_id);
    write_body(&mut f, &event.body, currency);
    out.push('}');
}

/// The type-specific fields of `body`. `currency` is the deal's, for amounts in minor units.
fn write_body(f: &mut impl Sink, body: &Body, currency: Currency) {
    match body {
        Body::Opened { owner, amount, currency, stage, close_date, name } => {
            f.str("owner", owner);
            let mut text = String::new();
            push_amount(&mut text, amount, *currency);
            f.raw("amount", &text);
            f.str("currency", currency.as_str());
            f.opt("stage", stage);
            if let Some(date) = close_date {
                f.str("close_date", &date.to_string());
            }
            f.opt("name", name);
        }
        Body::Touch { channel, direction, minutes, contact } => {
            f.str("channel", channel.as_str());
            f.str("direction", direction.as_str());
            if let Some(minutes) = minutes {
                f.raw("minutes", &minutes.to_string());
            }
            f.opt("contact", contact);
        }
        Body::StageMoved { to } => f.str("to", to),
        Body::AmountChanged { amount } => {
            let mut text = String::new();
            push_amount(&mut text, amount, currency);
            f.raw("amount", &text);
        }
        Body::CloseDateChanged { close_date } => f.str("close_date", &close_date.to_string()),
        Body::OwnerChanged { owner } => f.str("owner", owner),
        Body::FieldSet { field, value } => {
            f.str("field", field);
            match value {
                FieldValue::Clear => f.raw("value", "null"),
                FieldValue::Bool(b) => f.raw("value", if *b { "true" } else { "false" }),
                FieldValue::Number(n) => f.raw("value", n),
                FieldValue::Text(t) => f.str("value", t),
            }
        }
        Body::Disqualified { reason, note } => {
            f.str("reason", reason.as_str());
            f.opt("note", note);
        }
        Body::Requalified { stage, note } => {
            f.opt("stage", stage);
            f.opt("note", note);
        }
        Body::Won { amount } => {
            if let Some(amount) = amount {
                let mut text = String::new();
                push_amount(&mut text, amount, currency);
                f.raw("amount", &text);
            }
        }
        Body::Lost { reason, note } => {
            f.str("reason", reason);
            f.opt("note", note);
        }
    }
}

/// A stored event as one JSON object with its `seq` and `version` first.
pub fn stored_event_json(stored: &StoredEvent, currency: Currency) -> String {
    let mut out = String::with_capacity(256);
    let prefix = format!("\"seq\":{},\"version\":{},", stored.seq, stored.version);
    write_event_json(&mut out, &stored.event, currency, &prefix);
    out
}

/// The type-specific fields of an event as short `key=value` text, for tables.
pub fn details(body: &Body, currency: Currency) -> String {
    let mut pairs = Pairs::default();
    write_body(&mut pairs, body, currency);
    pairs.0.sort();
    pairs.0.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(line: &str) -> String {
        parse_line(line).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_type_and_round_trips() {
        let lines = [
            r#"{"deal":"D-1","type":"opened","at":"2024-01-02T09:00:00Z","owner":"ana","amount":"12000.50","currency":"EUR","stage":"qualifying","close_date":"2024-03-31","name":"Acme"}"#,
            r#"{"deal":"D-1","type":"touch","at":"2024-01-03T09:00:00Z","channel":"call","direction":"outbound","minutes":20,"contact":"bo@acme.test"}"#,
            r#"{"deal":"D-1","type":"stage_moved","at":"2024-01-04T09:00:00Z","to":"quote"}"#,
            r#"{"deal":"D-1","type":"amount_changed","at":"2024-01-05T09:00:00Z","amount":15000}"#,
            r#"{"deal":"D-1","type":"close_date_changed","at":"2024-01-05T09:00:00Z","close_date":"2024-04-30"}"#,
            r#"{"deal":"D-1","type":"owner_changed","at":"2024-01-05T09:00:00Z","owner":"bo"}"#,
            r#"{"deal":"D-1","type":"field_set","at":"2024-01-05T09:00:00Z","field":"budget_confirmed","value":true}"#,
            r#"{"deal":"D-1","type":"field_set","at":"2024-01-05T09:00:00Z","field":"seats","value":12.50}"#,
            r#"{"deal":"D-1","type":"field_set","at":"2024-01-05T09:00:00Z","field":"problem","value":null}"#,
            r#"{"deal":"D-1","type":"disqualified","at":"2024-01-06T09:00:00Z","reason":"no_budget","note":"FY freeze"}"#,
            r#"{"deal":"D-1","type":"requalified","at":"2024-02-06T09:00:00Z","stage":"quote"}"#,
            r#"{"deal":"D-1","type":"won","at":"2024-03-06T09:00:00Z","amount":"14000"}"#,
            r#"{"deal":"D-2","type":"lost","at":"2024-03-06T09:00:00Z","recorded_at":"2024-03-07T09:00:00Z","actor":"sync","source_id":"x-1","reason":"price"}"#,
        ];
        for line in lines {
            let submission = parse_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let mut out = String::new();
            write_event_json(&mut out, &submission.event, Currency::parse("EUR").unwrap(), "");
            let again = parse_line(&out).unwrap();
            assert_eq!(again.event.deal, submission.event.deal);
            assert_eq!(again.event.at, submission.event.at);
            assert_eq!(again.event.body.kind(), submission.event.body.kind());
        }
        let opened = parse_line(lines[0]).unwrap().event;
        match opened.body {
            Body::Opened { amount, currency, .. } => {
                assert_eq!(amount, Amount::Minor(1_200_050));
                assert_eq!(currency.as_str(), "EUR");
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn details_show_money_and_numbers_exactly_as_written() {
        let usd = Currency::USD;
        let body = |line: &str| parse_line(line).unwrap().event.body;
        let opened = body(
            r#"{"deal":"D-1","type":"opened","at":"2024-01-02T09:00:00Z","owner":"ana","amount":"183100.00","stage":"quote","name":"A \"big\" one"}"#,
        );
        let seats = body(
            r#"{"deal":"D-1","type":"field_set","at":"2024-01-05T09:00:00Z","field":"seats","value":12.50}"#,
        );
        let huge = body(
            r#"{"deal":"D-1","type":"field_set","at":"2024-01-05T09:00:00Z","field":"n","value":12345678901234567890123}"#,
        );
        let got = [details(&opened, usd), details(&seats, usd), details(&huge, usd)];
        let want = [
            r#"amount=183100.00 currency=USD name=A "big" one owner=ana stage=quote"#,
            "field=seats value=12.50",
            "field=n value=12345678901234567890123",
        ];
        assert_eq!(got, want, "money and numbers exactly as written");
    }

    #[test]
    fn defaults() {
        let s =
            parse_line(r#"{"deal":"a","type":"opened","at":"2024-01-02T09:00:00Z","owner":"o","amount":10}"#)
                .unwrap();
        assert_eq!(s.expected_version, None);
        assert_eq!(s.event.recorded_at, None);
        match s.event.body {
            Body::Opened { currency, stage, amount, .. } => {
                assert_eq!(currency, Currency::USD);
                assert_eq!(stage, None);
                assert_eq!(amount, Amount::Minor(1000));
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn clear_errors() {
        assert_eq!(reject("not json"), "expected ident at line 1 column 2 [malformed_json]");
        assert_eq!(
            reject(r#"{"deal":"a","type":"touch","at":"2024-01-02T09:00:00Z","chanel":"call"}"#),
            "unknown field `chanel` [unknown_field]"
        );
        assert_eq!(reject(r#"{"deal":"a","type":"meeting","at":"2024-01-02T09:00:00Z"}"#), "field `type`: `meeting` is not an event type (opened, touch, stage_moved, amount_changed, close_date_changed, owner_changed, field_set, disqualified, requalified, won, lost) [unknown_type]");
        assert_eq!(
            reject(
                r#"{"deal":"a","type":"touch","at":"2024-01-02T09:00:00Z","channel":"call","direction":"inbound","to":"quote"}"#
            ),
            "field `to`: not a field of `touch` [field_not_allowed]"
        );
        assert_eq!(
            reject(r#"{"deal":"a","type":"opened","at":"2024-01-02T09:00:00Z","amount":1}"#),
            "field `owner`: required on `opened` [missing_field]"
        );
        assert_eq!(
            reject(r#"{"deal":"a","type":"opened","at":"2024-01-02T09:00:00Z","owner":"o","amount":-1}"#),
            "field `amount`: `-1` is negative; amounts must be >= 0 [invalid_value]"
        );
        assert_eq!(
            reject(r#"{"deal":"a","type":"opened","at":"2024-01-02T09:00:00Z","owner":"o","amount":1.005}"#),
            "field `amount`: 1.005 has 3 decimal places; USD allows 2 [invalid_value]"
        );
        assert_eq!(
            reject(r#"{"deal":"a b","type":"won","at":"2024-01-02T09:00:00Z"}"#),
            "field `deal`: `a b` has ` `; a deal id is made of [A-Za-z0-9._:-] [invalid_value]"
        );
        assert!(reject(r#"{"deal":"a","type":"won","at":"2024-01-02"}"#)
            .contains("field `at`: `2024-01-02` is not an RFC 3339 timestamp"));
        assert_eq!(
            reject(
                r#"{"deal":"a","type":"touch","at":"2024-01-02T09:00:00Z","channel":"call","direction":"inbound","minutes":1441}"#
            ),
            "field `minutes`: 1441 is not within 0..=1440 [invalid_value]"
        );
        assert_eq!(reject(r#"{"deal":"a","type":"disqualified","at":"2024-01-02T09:00:00Z","reason":"meh"}"#), "field `reason`: `meh` is not a disqualification reason (gone_dark, no_budget, no_decision_maker, no_compelling_event, bad_fit, duplicate, other) [invalid_value]");
        assert_eq!(
            reject(r#"{"deal":"a","type":"field_set","at":"2024-01-02T09:00:00Z","field":"x","value":[1]}"#),
            "field `value`: must be a string, a boolean, a number or null [invalid_value]"
        );
        assert_eq!(
            reject(r#"{"deal":"a","type":"won","at":"2024-01-02T09:00:00Z","amount":"1e3"}"#),
            "field `amount`: `1e3` is not a non-negative decimal amount [invalid_value]"
        );
        let long = format!("{{\"deal\":\"{}\"}}", "x".repeat(LINE_BYTES_MAX));
        assert!(reject(&long).ends_with("[too_large]"));
    }

    #[test]
    fn escaped_strings_survive() {
        let s =
            parse_line(r#"{"deal":"a","type":"lost","at":"2024-01-02T09:00:00Z","reason":"said \"no\"\n"}"#)
                .unwrap();
        let mut out = String::new();
        write_event_json(&mut out, &s.event, Currency::USD, "");
        assert_eq!(parse_line(&out).unwrap().event, s.event);
    }
}

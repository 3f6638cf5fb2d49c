//! A stored event borrowed from its block's bytes: no allocation to read one.
//!
//! Replay reads every event of the log, and owned `String`s cost more than decompressing and
//! decoding together. Projections therefore fold [`EventRef`]s. The types mirror [`Body`] and
//! [`FieldValue`] variant for variant and field for field: serde gives `&str` and `String` the
//! same shape, so both decode (and encode) the same bytes; a unit test holds them together.

use crate::event::{Amount, Body, Channel, DealId, Direction, DqReason, Event, FieldValue, StoredEvent};
use crate::money::Currency;
use crate::time::{Date, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldValueRef<'a> {
    Clear,
    Bool(bool),
    Number(&'a str),
    Text(&'a str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyRef<'a> {
    Opened {
        owner: &'a str,
        amount: Amount,
        currency: Currency,
        #[serde(borrow)]
        stage: Option<&'a str>,
        close_date: Option<Date>,
        #[serde(borrow)]
        name: Option<&'a str>,
    },
    Touch {
        channel: Channel,
        direction: Direction,
        minutes: Option<u16>,
        #[serde(borrow)]
        contact: Option<&'a str>,
    },
    StageMoved {
        to: &'a str,
    },
    AmountChanged {
        amount: Amount,
    },
    CloseDateChanged {
        close_date: Date,
    },
    OwnerChanged {
        owner: &'a str,
    },
    FieldSet {
        field: &'a str,
        #[serde(borrow)]
        value: FieldValueRef<'a>,
    },
    Disqualified {
        reason: DqReason,
        #[serde(borrow)]
        note: Option<&'a str>,
    },
    Requalified {
        #[serde(borrow)]
        stage: Option<&'a str>,
        #[serde(borrow)]
        note: Option<&'a str>,
    },
    Won {
        amount: Option<Amount>,
    },
    Lost {
        reason: &'a str,
        #[serde(borrow)]
        note: Option<&'a str>,
    },
}

/// A stored event, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub seq: u64,
    /// The deal's version after this event.
    pub version: u32,
    pub deal: &'a str,
    pub at: Timestamp,
    pub recorded_at: Timestamp,
    /// The ledger's clock at append; `None` for records of format 1, which did not keep it.
    pub appended_at: Option<Timestamp>,
    /// The token that appended it; `None` for records of formats 1 and 2, and a command's.
    pub appended_by: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub source_id: Option<&'a str>,
    pub body: BodyRef<'a>,
    /// Where its record starts among its block's uncompressed records, in bytes, when it was
    /// decoded from a block (0 otherwise): a hint for reading it again (`Log::read_deal`),
    /// checked there, never trusted.
    pub offset: u32,
}

impl<'a> BodyRef<'a> {
    pub fn kind(&self) -> crate::event::Kind {
        use crate::event::Kind;
        match self {
            BodyRef::Opened { .. } => Kind::Opened,
            BodyRef::Touch { .. } => Kind::Touch,
            BodyRef::StageMoved { .. } => Kind::StageMoved,
            BodyRef::AmountChanged { .. } => Kind::AmountChanged,
            BodyRef::CloseDateChanged { .. } => Kind::CloseDateChanged,
            BodyRef::OwnerChanged { .. } => Kind::OwnerChanged,
            BodyRef::FieldSet { .. } => Kind::FieldSet,
            BodyRef::Disqualified { .. } => Kind::Disqualified,
            BodyRef::Requalified { .. } => Kind::Requalified,
            BodyRef::Won { .. } => Kind::Won,
            BodyRef::Lost { .. } => Kind::Lost,
        }
    }

    /// The borrowed view of an owned body.
    pub fn of(body: &'a Body) -> BodyRef<'a> {
        match body {
            Body::Opened { owner, amount, currency, stage, close_date, name } => BodyRef::Opened {
                owner,
                amount: *amount,
                currency: *currency,
                stage: stage.as_deref(),
                close_date: *close_date,
                name: name.as_deref(),
            },
            Body::Touch { channel, direction, minutes, contact } => BodyRef::Touch {
                channel: *channel,
                direction: *direction,
                minutes: *minutes,
                contact: contact.as_deref(),
            },
            Body::StageMoved { to } => BodyRef::StageMoved { to },
            Body::AmountChanged { amount } => BodyRef::AmountChanged { amount: *amount },
            Body::CloseDateChanged { close_date } => BodyRef::CloseDateChanged { close_date: *close_date },
            Body::OwnerChanged { owner } => BodyRef::OwnerChanged { owner },
            Body::FieldSet { field, value } => BodyRef::FieldSet {
                field,
                value: match value {
                    FieldValue::Clear => FieldValueRef::Clear,
                    FieldValue::Bool(b) => FieldValueRef::Bool(*b),
                    FieldValue::Number(n) => FieldValueRef::Number(n),
                    FieldValue::Text(t) => FieldValueRef::Text(t),
                },
            },
            Body::Disqualified { reason, note } => {
                BodyRef::Disqualified { reason: *reason, note: note.as_deref() }
            }
            Body::Requalified { stage, note } => {
                BodyRef::Requalified { stage: stage.as_deref(), note: note.as_deref() }
            }
            Body::Won { amount } => BodyRef::Won { amount: *amount },
            Body::Lost { reason, note } => BodyRef::Lost { reason, note: note.as_deref() },
        }
    }

    pub fn to_owned_body(&self) -> Body {
        let s = |t: &str| t.to_string();
        let o = |t: Option<&str>| t.map(str::to_string);
        match *self {
            BodyRef::Opened { owner, amount, currency, stage, close_date, name } => {
                Body::Opened { owner: s(owner), amount, currency, stage: o(stage), close_date, name: o(name) }
            }
            BodyRef::Touch { channel, direction, minutes, contact } => {
                Body::Touch { channel, direction, minutes, contact: o(contact) }
            }
            BodyRef::StageMoved { to } => Body::StageMoved { to: s(to) },
            BodyRef::AmountChanged { amount } => Body::AmountChanged { amount },
            BodyRef::CloseDateChanged { close_date } => Body::CloseDateChanged { close_date },
            BodyRef::OwnerChanged { owner } => Body::OwnerChanged { owner: s(owner) },
            BodyRef::FieldSet { field, value } => Body::FieldSet {
                field: s(field),
                value: match value {
                    FieldValueRef::Clear => FieldValue::Clear,
                    FieldValueRef::Bool(b) => FieldValue::Bool(b),
                    FieldValueRef::Number(n) => FieldValue::Number(s(n)),
                    FieldValueRef::Text(t) => FieldValue::Text(s(t)),
                },
            },
            BodyRef::Disqualified { reason, note } => Body::Disqualified { reason, note: o(note) },
            BodyRef::Requalified { stage, note } => Body::Requalified { stage: o(stage), note: o(note) },
            BodyRef::Won { amount } => Body::Won { amount },
            BodyRef::Lost { reason, note } => Body::Lost { reason: s(reason), note: o(note) },
        }
    }
}

impl<'a> EventRef<'a> {
    /// The borrowed view of an owned stored event (whose `recorded_at` is resolved).
    pub fn of(stored: &'a StoredEvent) -> EventRef<'a> {
        let event = &stored.event;
        EventRef {
            seq: stored.seq,
            version: stored.version,
            deal: event.deal.as_str(),
            at: event.at,
            recorded_at: event.recorded_at.expect("stored events have their recorded_at resolved"),
            appended_at: event.appended_at,
            appended_by: event.appended_by.as_deref(),
            actor: event.actor.as_deref(),
            source_id: event.source_id.as_deref(),
            body: BodyRef::of(&event.body),
            offset: 0,
        }
    }

    /// Checks what a stored event must mean, beyond decoding: the shape every admitted event
    /// has once stored (defaults resolved, amounts in minor units, texts and minutes within
    /// their limits, instants and dates in years 0000 to 9999, version 1 exactly for `opened`).
    /// A record that decodes but fails this is corruption (or a bug that wrote it), and every
    /// reader may rely on a checked record without further checks.
    pub(crate) fn check_meaning(&self) -> Result<(), String> {
        use crate::event::{TEXT_BYTES_MAX, TOUCH_MINUTES_MAX};
        let text = |field: &str, value: &str| {
            if value.len() > TEXT_BYTES_MAX {
                return Err(format!("`{field}` of {} bytes, at most {TEXT_BYTES_MAX}", value.len()));
            }
            Ok(())
        };
        let optional = |field: &str, value: Option<&str>| value.map_or(Ok(()), |v| text(field, v));
        let amount = |field: &str, amount: Amount| match amount {
            Amount::Minor(minor) if minor >= 0 => Ok(()),
            Amount::Minor(minor) => Err(format!("`{field}` is negative ({minor})")),
            Amount::Written(_) => Err(format!("`{field}` is not in minor units")),
        };
        let date = |field: &str, date: Date| match date.is_valid() {
            true => Ok(()),
            false => Err(format!("`{field}` is {} days from 1970, outside years 0000 to 9999", date.0)),
        };
        DealId::check(self.deal).map_err(|why| why.to_string())?;
        for (field, instant) in [("at", self.at), ("recorded_at", self.recorded_at)] {
            if !instant.is_valid() {
                return Err(format!("`{field}` is {} µs from 1970, outside years 0000 to 9999", instant.0));
            }
        }
        optional("actor", self.actor)?;
        optional("source_id", self.source_id)?;
        let opened = matches!(self.body, BodyRef::Opened { .. });
        if opened != (self.version == 1) {
            return Err(format!("`{}` as version {} of its deal", self.body.kind().as_str(), self.version));
        }
        match self.body {
            BodyRef::Opened { owner, amount: a, currency, stage, close_date, name } => {
                text("owner", owner)?;
                amount("amount", a)?;
                if !currency.0.iter().all(u8::is_ascii_uppercase) {
                    return Err(format!("currency bytes {:?} are not an ISO 4217 code", currency.0));
                }
                text("stage", stage.ok_or("a stored `opened` without its stage")?)?;
                close_date.map_or(Ok(()), |d| date("close_date", d))?;
                optional("name", name)?;
            }
            BodyRef::Touch { minutes, contact, .. } => {
                if minutes.is_some_and(|m| m > TOUCH_MINUTES_MAX) {
                    return Err(format!("`minutes` {minutes:?} over {TOUCH_MINUTES_MAX}"));
                }
                optional("contact", contact)?;
            }
            BodyRef::StageMoved { to } => text("to", to)?,
            BodyRef::AmountChanged { amount: a } => amount("amount", a)?,
            BodyRef::CloseDateChanged { close_date } => date("close_date", close_date)?,
            BodyRef::OwnerChanged { owner } => text("owner", owner)?,
            BodyRef::FieldSet { field, value } => {
                text("field", field)?;
                if let FieldValueRef::Number(v) | FieldValueRef::Text(v) = value {
                    text("value", v)?;
                }
            }
            BodyRef::Disqualified { note, .. } => optional("note", note)?,
            BodyRef::Requalified { stage, note } => {
                optional("stage", stage)?;
                optional("note", note)?;
            }
            BodyRef::Won { amount: a } => a.map_or(Ok(()), |a| amount("amount", a))?,
            BodyRef::Lost { reason, note } => {
                text("reason", reason)?;
                optional("note", note)?;
            }
        }
        Ok(())
    }

    /// An owned copy, for the few readers that keep events (audit, the HTTP history).
    pub fn to_stored(&self) -> StoredEvent {
        StoredEvent {
            seq: self.seq,
            version: self.version,
            event: Event {
                // Checked on decode (`check_meaning`): every EventRef from a block has a valid id.
                deal: DealId::parse(self.deal).expect("stored deal ids are valid"),
                at: self.at,
                recorded_at: Some(self.recorded_at),
                appended_at: self.appended_at,
                appended_by: self.appended_by.map(str::to_string),
                actor: self.actor.map(str::to_string),
                source_id: self.source_id.map(str::to_string),
                body: self.body.to_owned_body(),
            },
        }
    }
}

//! The event: one immutable fact about one deal.

use crate::money::{Currency, Decimal};
use crate::rejection::ValueError;
use crate::time::{Date, Timestamp};
use serde::{Deserialize, Serialize};

/// Bytes a deal id may have, at most.
pub const DEAL_ID_BYTES_MAX: usize = 64;
/// Bytes of any other free-text field (owner, actor, note, contact, field value, ...), at most.
pub const TEXT_BYTES_MAX: usize = 4096;
/// Minutes a single touch may last, at most: one day.
pub const TOUCH_MINUTES_MAX: u16 = 1440;

/// A deal id: 1..=64 bytes of `[A-Za-z0-9._:-]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DealId(String);

impl std::borrow::Borrow<str> for DealId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl DealId {
    pub fn parse(text: &str) -> Result<DealId, ValueError> {
        DealId::check(text)?;
        Ok(DealId(text.to_string()))
    }

    /// Checks the id rules without allocating.
    pub fn check(text: &str) -> Result<(), ValueError> {
        if text.is_empty() || text.len() > DEAL_ID_BYTES_MAX {
            return Err(ValueError::DealId(format!(
                "`{}` must be 1..={DEAL_ID_BYTES_MAX} bytes, it is {}",
                text.chars().take(80).collect::<String>(),
                text.len()
            )));
        }
        if let Some(bad) =
            text.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(ValueError::DealId(format!(
                "`{text}` has `{bad}`; a deal id is made of [A-Za-z0-9._:-]"
            )));
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DealId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An amount as written, resolved to minor units of the deal's currency on validation (the
/// currency of an `amount_changed` is the one its deal was opened with, which only the validator
/// knows). Stored events always hold `Minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Amount {
    Minor(i64),
    Written(DecimalRepr),
}

/// Serializable twin of [`Decimal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecimalRepr {
    pub mantissa: u64,
    pub scale: u32,
}

impl Amount {
    pub fn written(decimal: Decimal) -> Amount {
        Amount::Written(DecimalRepr { mantissa: decimal.mantissa, scale: decimal.scale })
    }

    /// Minor units; panics on an unresolved amount, which never reaches storage.
    pub fn minor(&self) -> i64 {
        match self {
            Amount::Minor(minor) => *minor,
            Amount::Written(_) => panic!("amount not resolved to minor units before use"),
        }
    }

    pub fn resolve(&mut self, currency: Currency) -> Result<(), ValueError> {
        if let Amount::Written(repr) = *self {
            let decimal = Decimal { mantissa: repr.mantissa, scale: repr.scale };
            *self = Amount::Minor(decimal.to_minor(currency)?);
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Channel {
    Call,
    Email,
    Meeting,
    Demo,
    Social,
    Other,
}

impl Channel {
    pub const ALL: [Channel; 6] =
        [Channel::Call, Channel::Email, Channel::Meeting, Channel::Demo, Channel::Social, Channel::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Call => "call",
            Channel::Email => "email",
            Channel::Meeting => "meeting",
            Channel::Demo => "demo",
            Channel::Social => "social",
            Channel::Other => "other",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// The rep's effort.
    Outbound,
    /// The buyer's engagement.
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DqReason {
    GoneDark,
    NoBudget,
    NoDecisionMaker,
    NoCompellingEvent,
    BadFit,
    Duplicate,
    Other,
}

impl DqReason {
    pub const ALL: [DqReason; 7] = [
        DqReason::GoneDark,
        DqReason::NoBudget,
        DqReason::NoDecisionMaker,
        DqReason::NoCompellingEvent,
        DqReason::BadFit,
        DqReason::Duplicate,
        DqReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DqReason::GoneDark => "gone_dark",
            DqReason::NoBudget => "no_budget",
            DqReason::NoDecisionMaker => "no_decision_maker",
            DqReason::NoCompellingEvent => "no_compelling_event",
            DqReason::BadFit => "bad_fit",
            DqReason::Duplicate => "duplicate",
            DqReason::Other => "other",
        }
    }
}

/// The value of a business-case field. Numbers keep their exact JSON text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldValue {
    /// `null`: the field is cleared.
    Clear,
    Bool(bool),
    Number(String),
    Text(String),
}

impl FieldValue {
    pub fn is_set(&self) -> bool {
        !matches!(self, FieldValue::Clear)
    }
}

/// What happened, with its type-specific fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Opened {
        owner: String,
        amount: Amount,
        currency: Currency,
        /// `None` in input means the pipeline's first stage; always `Some` once validated.
        stage: Option<String>,
        close_date: Option<Date>,
        name: Option<String>,
    },
    Touch {
        channel: Channel,
        direction: Direction,
        minutes: Option<u16>,
        contact: Option<String>,
    },
    StageMoved {
        to: String,
    },
    AmountChanged {
        amount: Amount,
    },
    CloseDateChanged {
        close_date: Date,
    },
    OwnerChanged {
        owner: String,
    },
    FieldSet {
        field: String,
        value: FieldValue,
    },
    Disqualified {
        reason: DqReason,
        note: Option<String>,
    },
    Requalified {
        stage: Option<String>,
        note: Option<String>,
    },
    Won {
        amount: Option<Amount>,
    },
    Lost {
        reason: String,
        note: Option<String>,
    },
}

/// The closed list of event types, in the order of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Opened,
    Touch,
    StageMoved,
    AmountChanged,
    CloseDateChanged,
    OwnerChanged,
    FieldSet,
    Disqualified,
    Requalified,
    Won,
    Lost,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Opened,
        Kind::Touch,
        Kind::StageMoved,
        Kind::AmountChanged,
        Kind::CloseDateChanged,
        Kind::OwnerChanged,
        Kind::FieldSet,
        Kind::Disqualified,
        Kind::Requalified,
        Kind::Won,
        Kind::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Opened => "opened",
            Kind::Touch => "touch",
            Kind::StageMoved => "stage_moved",
            Kind::AmountChanged => "amount_changed",
            Kind::CloseDateChanged => "close_date_changed",
            Kind::OwnerChanged => "owner_changed",
            Kind::FieldSet => "field_set",
            Kind::Disqualified => "disqualified",
            Kind::Requalified => "requalified",
            Kind::Won => "won",
            Kind::Lost => "lost",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl Body {
    pub fn kind(&self) -> Kind {
        match self {
            Body::Opened { .. } => Kind::Opened,
            Body::Touch { .. } => Kind::Touch,
            Body::StageMoved { .. } => Kind::StageMoved,
            Body::AmountChanged { .. } => Kind::AmountChanged,
            Body::CloseDateChanged { .. } => Kind::CloseDateChanged,
            Body::OwnerChanged { .. } => Kind::OwnerChanged,
            Body::FieldSet { .. } => Kind::FieldSet,
            Body::Disqualified { .. } => Kind::Disqualified,
            Body::Requalified { .. } => Kind::Requalified,
            Body::Won { .. } => Kind::Won,
            Body::Lost { .. } => Kind::Lost,
        }
    }
}

/// One event as written by its source, before the ledger numbers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub deal: DealId,
    /// Business time: when it happened.
    pub at: Timestamp,
    /// When the source recorded it; `None` in input means the ledger's append time.
    pub recorded_at: Option<Timestamp>,
    /// The ledger's own clock when it appended the event: set on admission, never taken from
    /// input. `None` on events stored before record format 2, which did not keep it.
    pub appended_at: Option<Timestamp>,
    /// The name of the daemon's token that appended it (`[[serve.tokens]]`; `token` for `[serve]
    /// token`, a sync's or the HubSpot hook's own name): set by the daemon, never taken from
    /// input. `None` on events stored before record format 3, and on those a command appended.
    pub appended_by: Option<String>,
    pub actor: Option<String>,
    /// The source system's idempotency key.
    pub source_id: Option<String>,
    pub body: Body,
}

/// An event as the log holds it: numbered, versioned, every default resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Global sequence number: 1, 2, 3, ... with no gap.
    pub seq: u64,
    /// The deal's version after this event: its 1-based position in the deal's arrival order.
    pub version: u32,
    pub event: Event,
}

impl StoredEvent {
    /// When the ledger learnt it; always set on a stored event.
    pub fn recorded_at(&self) -> Timestamp {
        self.event.recorded_at.expect("stored events have recorded_at resolved")
    }
}

/// An event with the write conditions that came with it (not stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    pub event: Event,
    /// Optimistic concurrency: the deal version the writer last saw.
    pub expected_version: Option<u32>,
}

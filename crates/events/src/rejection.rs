//! Why an event was refused: a closed list of rules, one name each, so every error has a name a
//! user can search for and a metric can count.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// The line is not a JSON object.
    MalformedJson,
    /// A field the contract does not know.
    UnknownField,
    /// A known field that this event type does not take.
    FieldNotAllowed,
    MissingField,
    /// A field whose value breaks its format or range.
    InvalidValue,
    UnknownType,
    /// A stage that is not in the pipeline.
    UnknownStage,
    /// An event for a deal that has no `opened`.
    NotOpened,
    /// A second `opened` for one deal.
    AlreadyOpened,
    /// An event dated before the deal's `opened`.
    BeforeOpened,
    /// `stage_moved`, `won`, `lost` or `disqualified` while the deal is not open.
    NotOpen,
    /// `requalified` while the deal is not lost or disqualified.
    NotClosed,
    /// `stage_moved` to the stage the deal is already in.
    SameStage,
    /// A backdated event that would make an event already in the log invalid.
    BreaksLaterEvent,
    /// `expected_version` is not the deal's version.
    VersionConflict,
    /// A `source_id` stored before with a different body.
    IdempotencyConflict,
    /// A line or request beyond its size limit.
    TooLarge,
    /// An `at` or `recorded_at` more than `[ingest] max_future` after the ledger's clock.
    InFuture,
    /// A `recorded_at` more than `[ingest] max_future` before the event's `at`: a source cannot
    /// have recorded a fact before it happened.
    RecordedBeforeAt,
}

impl Rule {
    pub const ALL: [Rule; 19] = [
        Rule::MalformedJson,
        Rule::UnknownField,
        Rule::FieldNotAllowed,
        Rule::MissingField,
        Rule::InvalidValue,
        Rule::UnknownType,
        Rule::UnknownStage,
        Rule::NotOpened,
        Rule::AlreadyOpened,
        Rule::BeforeOpened,
        Rule::NotOpen,
        Rule::NotClosed,
        Rule::SameStage,
        Rule::BreaksLaterEvent,
        Rule::VersionConflict,
        Rule::IdempotencyConflict,
        Rule::TooLarge,
        Rule::InFuture,
        Rule::RecordedBeforeAt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::MalformedJson => "malformed_json",
            Rule::UnknownField => "unknown_field",
            Rule::FieldNotAllowed => "field_not_allowed",
            Rule::MissingField => "missing_field",
            Rule::InvalidValue => "invalid_value",
            Rule::UnknownType => "unknown_type",
            Rule::UnknownStage => "unknown_stage",
            Rule::NotOpened => "not_opened",
            Rule::AlreadyOpened => "already_opened",
            Rule::BeforeOpened => "before_opened",
            Rule::NotOpen => "not_open",
            Rule::NotClosed => "not_closed",
            Rule::SameStage => "same_stage",
            Rule::BreaksLaterEvent => "breaks_later_event",
            Rule::VersionConflict => "version_conflict",
            Rule::IdempotencyConflict => "idempotency_conflict",
            Rule::TooLarge => "too_large",
            Rule::InFuture => "in_future",
            Rule::RecordedBeforeAt => "recorded_before_at",
        }
    }

    /// Conflicts are refusals of a well-formed event because of what is already stored
    /// (HTTP 409), as opposed to invalid input (HTTP 400).
    pub fn is_conflict(self) -> bool {
        matches!(self, Rule::VersionConflict | Rule::IdempotencyConflict)
    }
}

/// One refused event: the rule it broke, the field if one is to blame, and the particulars.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub rule: Rule,
    pub field: Option<&'static str>,
    pub detail: String,
}

impl Rejection {
    pub fn new(rule: Rule, detail: impl Into<String>) -> Rejection {
        Rejection { rule, field: None, detail: detail.into() }
    }

    pub fn field(rule: Rule, field: &'static str, detail: impl Into<String>) -> Rejection {
        Rejection { rule, field: Some(field), detail: detail.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "field `{field}`: {} [{}]", self.detail, self.rule.as_str()),
            None => write!(f, "{} [{}]", self.detail, self.rule.as_str()),
        }
    }
}

impl std::error::Error for Rejection {}

/// A value the contract does not take, by the kind of value; its text says what and why (the
/// wording of docs/events.md). An event line's parser turns it into a [`Rejection`] naming the
/// field; a flag's parser into a usage error naming the flag.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A deal id.
    #[error("{0}")]
    DealId(String),
    /// An instant, a date or a span of time.
    #[error("{0}")]
    Time(String),
    /// A currency code, a decimal amount, or an amount in a currency's minor units.
    #[error("{0}")]
    Money(String),
    /// A pipeline: its stages, their probabilities, `max_future`.
    #[error("{0}")]
    Pipeline(String),
}

//! Instants and calendar dates, exact and UTC.
//!
//! An instant is microseconds since the Unix epoch in UTC. Microseconds because CRMs give at most
//! milliseconds and the ledger must never round: input with sub-microsecond digits is rejected
//! rather than truncated.

use crate::rejection::ValueError;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// An instant in UTC, microseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    pub const MAX: Timestamp = Timestamp(i64::MAX);
    /// 0000-01-01T00:00:00Z: the earliest instant RFC 3339 can write, so the earliest stored.
    pub const EARLIEST_VALID: Timestamp = Timestamp(-62_167_219_200 * MICROS_PER_SECOND);
    /// 9999-12-31T23:59:59.999999Z: the latest instant RFC 3339 can write.
    pub const LATEST_VALID: Timestamp = Timestamp(253_402_300_800 * MICROS_PER_SECOND - 1);

    /// Whether this instant can be written in RFC 3339 (years 0000 to 9999): every stored one
    /// can, so a stored instant outside is corruption, and arithmetic on two valid instants
    /// cannot overflow.
    pub fn is_valid(self) -> bool {
        (Timestamp::EARLIEST_VALID..=Timestamp::LATEST_VALID).contains(&self)
    }

    /// Parses RFC 3339 (`2024-03-31T12:00:00Z`, any offset, up to 6 fractional digits).
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, ValueError> {
        if let Some(timestamp) = fast_rfc3339(text.as_bytes()) {
            return Ok(timestamp);
        }
        let parsed = DateTime::parse_from_rfc3339(text)
            .map_err(|e| ValueError::Time(format!("`{text}` is not an RFC 3339 timestamp ({e})")))?;
        let utc = parsed.with_timezone(&Utc);
        // chrono keeps a leap second (`23:59:60`) as nanoseconds past 1e9, and its micros then
        // name the next second: a different instant. The ledger's time has no leap seconds.
        if utc.timestamp_subsec_nanos() >= 1_000_000_000 {
            return Err(ValueError::Time(format!(
                "`{text}` is a leap second (:60), which the ledger's UTC does not count; write :59.999999 or the next second"
            )));
        }
        if utc.timestamp_subsec_nanos() % 1_000 != 0 {
            return Err(ValueError::Time(format!(
                "`{text}` has sub-microsecond digits; the ledger keeps microseconds"
            )));
        }
        Ok(Timestamp(utc.timestamp_micros()))
    }

    /// Parses RFC 3339, or a bare date `YYYY-MM-DD` meaning 00:00:00Z that day: what every
    /// flag and query parameter that asks for a moment takes. A person types these, so the
    /// error says what was expected, with an example, rather than where a parser stopped.
    pub fn parse_instant_or_date(text: &str) -> Result<Timestamp, ValueError> {
        if text.len() == 10 {
            return Date::parse(text).map(Date::start).map_err(|_| ValueError::Time(not_a_date(text)));
        }
        Timestamp::parse_rfc3339(text).map_err(|e| match e {
            // Sub-microsecond digits: that message already says what is wrong.
            ValueError::Time(why) if why.contains("sub-microsecond") || why.contains("leap second") => {
                ValueError::Time(why)
            }
            _ => ValueError::Time(not_a_time(text)),
        })
    }

    pub fn from_datetime(datetime: DateTime<Utc>) -> Timestamp {
        Timestamp(datetime.timestamp_micros())
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).expect("timestamps are validated on parse")
    }

    /// The calendar date (UTC) this instant falls on.
    pub fn date(self) -> Date {
        Date(self.0.div_euclid(MICROS_PER_DAY) as i32)
    }

    pub fn plus_micros(self, micros: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(micros))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with `Z`, with only as many fractional digits as needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::from_timestamp_micros(self.0) {
            Some(datetime) => f.write_str(&datetime.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => write!(f, "<invalid timestamp {}>", self.0),
        }
    }
}

/// The common shape `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)`, parsed without chrono (two of
/// these per JSON line were a tenth of ingest). `None` for anything else, including what is
/// invalid: chrono then decides and explains. A property test holds it equal to chrono.
fn fast_rfc3339(b: &[u8]) -> Option<Timestamp> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut value = 0i64;
        for &c in b.get(range)? {
            if !c.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(c - b'0');
        }
        Some(value)
    };
    let is = |i: usize, c: u8| b.get(i) == Some(&c);
    if b.len() < 20 || !is(4, b'-') || !is(7, b'-') || !is(10, b'T') || !is(13, b':') || !is(16, b':') {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut micros = 0i64;
    if is(at, b'.') {
        let start = at + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start || end - start > 6 {
            return None;
        }
        micros = digits(start..end)? * 10i64.pow(6 - (end - start) as u32);
        at = end;
    }
    let offset_seconds = match b.get(at..)? {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(at + 1..at + 3)?;
            let minutes = digits(at + 4..at + 6)?;
            let _ = (h1, h2, m1, m2);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(Timestamp(seconds * MICROS_PER_SECOND + micros))
}

/// Why a 10-character text is not a date: its calendar fault if it has the shape of one.
fn not_a_date(text: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse().ok()).flatten()
    };
    let shaped = text.as_bytes().get(4) == Some(&b'-') && text.as_bytes().get(7) == Some(&b'-');
    let fault = match (shaped, number(0..4), number(5..7), number(8..10)) {
        (true, Some(_), Some(month), Some(_)) if !(1..=12).contains(&month) => {
            format!(": there is no month {month}")
        }
        (true, Some(year), Some(month), Some(day)) if day < 1 || day > days_in_month(year, month) => {
            let name = usize::try_from(month - 1).ok().and_then(|i| MONTHS.get(i)).copied().unwrap_or("");
            format!(": {name} {year} has {} days", days_in_month(year, month))
        }
        _ => String::new(),
    };
    format!("`{text}` is not a date{fault} (expected YYYY-MM-DD, e.g. 2025-06-30, or a time such as 2025-06-30T12:00:00Z)")
}

/// Why a text is not an RFC 3339 time, with the forms that are.
fn not_a_time(text: &str) -> String {
    let date_first = text.len() > 10 && text.get(..10).is_some_and(|d| Date::parse(d).is_ok());
    if !date_first {
        return format!(
            "`{text}` is not a time: expected a date (2025-06-30) or an RFC 3339 time (2025-06-30T12:00:00Z)"
        );
    }
    let has_offset = text.ends_with('Z')
        || text.ends_with('z')
        || text.get(text.len().saturating_sub(6)..).is_some_and(|t| t.starts_with(['+', '-']));
    let hint = if has_offset { "" } else { " and an offset (Z for UTC, or +02:00)" };
    format!(
        "`{text}` is not an RFC 3339 time: expected YYYY-MM-DDTHH:MM:SS{hint}, e.g. 2025-06-30T12:00:00Z, \
         or a date alone, e.g. 2025-06-30 (midnight UTC)"
    )
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A calendar date, days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date(pub i32);

impl Date {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Result<Date, ValueError> {
        // The shape first: chrono's %Y takes a sign and more digits (`+10000-1-1` is 10 bytes),
        // which the ledger would then print in a form it refuses.
        let b = text.as_bytes();
        let shaped = b.len() == 10
            && b.get(4) == Some(&b'-')
            && b.get(7) == Some(&b'-')
            && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shaped {
            return Err(ValueError::Time(format!("`{text}` is not a YYYY-MM-DD date")));
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|e| ValueError::Time(format!("`{text}` is not a YYYY-MM-DD date ({e})")))?;
        let days = date.signed_duration_since(epoch_date()).num_days();
        Ok(Date(days as i32))
    }

    /// 00:00:00Z on this date.
    pub fn start(self) -> Timestamp {
        Timestamp(i64::from(self.0) * MICROS_PER_DAY)
    }

    /// Whether this date is in years 0000 to 9999, as every stored one is.
    pub fn is_valid(self) -> bool {
        Timestamp(i64::from(self.0).saturating_mul(MICROS_PER_DAY)).is_valid()
    }

    fn to_naive(self) -> Option<NaiveDate> {
        epoch_date().checked_add_signed(chrono::Duration::days(i64::from(self.0)))
    }
}

fn epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_naive() {
            Some(date) => write!(f, "{}", date.format("%Y-%m-%d")),
            None => write!(f, "<invalid date {}>", self.0),
        }
    }
}

/// The ledger never reads the wall clock itself: whoever appends passes a clock, so that tests
/// and replays are deterministic.
pub trait Clock {
    fn now(&self) -> Timestamp;
}

/// The real wall clock, for the binary.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(Utc::now())
    }
}

/// A clock that always says the same instant, for tests and reproducible runs.
pub struct FixedClock(pub Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_normalises_offsets() {
        let t = Timestamp::parse_rfc3339("2024-03-31T14:00:00+02:00").unwrap();
        assert_eq!(t.to_string(), "2024-03-31T12:00:00Z");
        let t = Timestamp::parse_rfc3339("2024-03-31T12:00:00.250Z").unwrap();
        assert_eq!(t.to_string(), "2024-03-31T12:00:00.250Z");
        assert_eq!(t.0 % MICROS_PER_SECOND, 250_000);
    }

    #[test]
    fn rejects_nanoseconds_and_garbage() {
        assert!(Timestamp::parse_rfc3339("2024-03-31T12:00:00.123456789Z").is_err());
        assert!(Timestamp::parse_rfc3339("2024-03-31").is_err());
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn a_date_is_exactly_yyyy_mm_dd() {
        // chrono's %Y alone takes these; the ledger would print them in a form it refuses.
        for bad in ["+10000-1-1", "-0001-01-01", "2024-1-015", "2024/01/01", "２０２４-01-01"] {
            assert!(Date::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Date::parse("1970-01-02"), Ok(Date(1)));
    }

    #[test]
    fn bare_dates_mean_midnight_utc() {
        let t = Timestamp::parse_instant_or_date("2024-03-31").unwrap();
        assert_eq!(t.to_string(), "2024-03-31T00:00:00Z");
        assert_eq!(t.date().to_string(), "2024-03-31");
        assert_eq!(Date::parse("1970-01-02").unwrap(), Date(1));
        assert!(Date::parse("2024-02-30").is_err());
        assert!(Date::parse("2024-2-3").is_err());
    }

    #[test]
    fn a_time_that_cannot_be_read_says_what_was_expected_with_an_example() {
        // A person types these at a flag: the error names the problem and shows the form.
        for (text, says) in [
            ("2025-04-31", "April 2025 has 30 days"),
            ("2025-02-29", "February 2025 has 28 days"),
            ("2025-13-01", "there is no month 13"),
            ("2025-06-30T12:00", "2025-06-30T12:00:00Z"),
            ("2025-06-30 12:00:00", "2025-06-30T12:00:00Z"),
            ("2025-06-30T12:00:00", "an offset"),
            ("soon", "a date (2025-06-30)"),
        ] {
            let why = Timestamp::parse_instant_or_date(text).unwrap_err().to_string();
            assert!(why.contains(says), "{text}: {why}");
            assert!(!why.contains("premature"), "{text}: {why}");
        }
        // Every form the error offers is one it takes.
        for good in ["2025-06-30", "2025-06-30T12:00:00Z", "2025-06-30T12:00:00+02:00", "2024-02-29"] {
            assert!(Timestamp::parse_instant_or_date(good).is_ok(), "{good}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_path_agrees_with_chrono(
            year in 0i64..10_000, month in 0i64..14, day in 0i64..33, hour in 0i64..25,
            minute in 0i64..61, second in 0i64..61, fraction in proptest::option::of(0u32..10_000_000),
            digits in 1usize..8, offset in proptest::option::of((proptest::bool::ANY, 0i64..25, 0i64..61)),
        ) {
            let mut text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
            if let Some(fraction) = fraction {
                let f = format!("{fraction:07}");
                text.push('.');
                text.extend(f.chars().take(digits.min(7)));
            }
            match offset {
                None => text.push('Z'),
                Some((plus, h, m)) => text.push_str(&format!("{}{h:02}:{m:02}", if plus { '+' } else { '-' })),
            }
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|d| d.with_timezone(&Utc));
            let expected = chrono.filter(|d| d.timestamp_subsec_nanos() % 1000 == 0 && d.timestamp_subsec_nanos() < 1_000_000_000).map(|d| Timestamp(d.timestamp_micros()));
            let fast = fast_rfc3339(text.as_bytes());
            if let Some(fast) = fast {
                proptest::prop_assert_eq!(Some(fast), expected, "{}", text);
            }
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&text).ok(), expected, "{}", text);
        }
    }

    #[test]
    fn a_leap_second_is_refused_not_moved() {
        // chrono reads 23:59:60 as the next day's 00:00:00: a different instant, silently.
        for text in ["2016-12-31T23:59:60Z", "2016-12-31T23:59:60.5Z", "2016-12-31T18:59:60-05:00"] {
            let e = Timestamp::parse_rfc3339(text).unwrap_err();
            assert!(e.to_string().contains("leap second"), "{text}: {e}");
        }
        assert!(Timestamp::parse_rfc3339("2016-12-31T23:59:59.999999Z").is_ok());
    }

    #[test]
    fn dates_before_the_epoch_floor_correctly() {
        let t = Timestamp::parse_rfc3339("1969-12-31T23:59:59Z").unwrap();
        assert_eq!(t.date(), Date(-1));
    }
}

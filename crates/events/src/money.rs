//! Money: exact decimal parsing into integer minor units of an ISO 4217 currency. Never f64.

use crate::rejection::ValueError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO 4217 code: three ASCII capital letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Currency(pub [u8; 3]);

impl Currency {
    pub const USD: Currency = Currency(*b"USD");

    pub fn parse(text: &str) -> Result<Currency, ValueError> {
        match <[u8; 3]>::try_from(text.as_bytes()) {
            Ok(code) if code.iter().all(u8::is_ascii_uppercase) => Ok(Currency(code)),
            _ => Err(ValueError::Money(format!("`{text}` is not an ISO 4217 code (three capital letters)"))),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("validated ASCII")
    }

    /// Digits after the decimal point of the minor unit (ISO 4217 exponent).
    pub fn exponent(&self) -> u32 {
        match &self.0 {
            // Currencies without a minor unit.
            b"BIF" | b"CLP" | b"DJF" | b"GNF" | b"ISK" | b"JPY" | b"KMF" | b"KRW" | b"PYG" | b"RWF"
            | b"UGX" | b"UYI" | b"VND" | b"VUV" | b"XAF" | b"XOF" | b"XPF" => 0,
            // Currencies with thousandths.
            b"BHD" | b"IQD" | b"JOD" | b"KWD" | b"LYD" | b"OMR" | b"TND" => 3,
            b"CLF" | b"UYW" => 4,
            _ => 2,
        }
    }

    /// Formats minor units as a decimal in this currency's units (`123456` USD is `1234.56`).
    pub fn format_minor(&self, minor: i64) -> String {
        format_scaled(i128::from(minor), self.exponent())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Formats `value / 10^scale` exactly, with `scale` fractional digits.
pub fn format_scaled(value: i128, scale: u32) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    if scale == 0 {
        return format!("{sign}{magnitude}");
    }
    let divisor = 10u128.pow(scale);
    format!("{sign}{}.{:0width$}", magnitude / divisor, magnitude % divisor, width = scale as usize)
}

/// A non-negative decimal exactly as written: `mantissa / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    pub mantissa: u64,
    pub scale: u32,
}

/// Decimal digits accepted after the point, before trailing zeros are dropped.
const DECIMAL_FRACTION_DIGITS_MAX: usize = 18;

impl Decimal {
    /// Parses `123`, `123.45`, `0.5`. No sign (amounts are >= 0), no exponent, no separators.
    pub fn parse(text: &str) -> Result<Decimal, ValueError> {
        let bad = || ValueError::Money(format!("`{text}` is not a non-negative decimal amount"));
        if text.starts_with('-') {
            return Err(ValueError::Money(format!("`{text}` is negative; amounts must be >= 0")));
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (text, ""),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if !fraction.bytes().all(|b| b.is_ascii_digit()) || (text.contains('.') && fraction.is_empty()) {
            return Err(bad());
        }
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > DECIMAL_FRACTION_DIGITS_MAX {
            return Err(bad());
        }
        let too_large = || ValueError::Money(format!("`{text}` is too large for an amount"));
        let mut mantissa: u64 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(b - b'0')))
                .ok_or_else(too_large)?;
        }
        Ok(Decimal { mantissa, scale: fraction.len() as u32 })
    }

    /// This amount in minor units of `currency`; an error if it has more decimals than the
    /// currency's minor unit or does not fit.
    pub fn to_minor(self, currency: Currency) -> Result<i64, ValueError> {
        let exponent = currency.exponent();
        if self.scale > exponent {
            return Err(ValueError::Money(format!(
                "{} has {} decimal places; {currency} allows {exponent}",
                format_scaled(i128::from(self.mantissa), self.scale),
                self.scale
            )));
        }
        let factor = 10u64.pow(exponent - self.scale);
        self.mantissa
            .checked_mul(factor)
            .and_then(|m| i64::try_from(m).ok())
            .ok_or_else(|| ValueError::Money("amount is too large".to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(Decimal::parse("1234.50").unwrap(), Decimal { mantissa: 12345, scale: 1 });
        assert_eq!(Decimal::parse("0").unwrap(), Decimal { mantissa: 0, scale: 0 });
        assert_eq!(Decimal::parse("0.1").unwrap().to_minor(Currency::USD), Ok(10));
        assert_eq!(Decimal::parse("19.99").unwrap().to_minor(Currency::USD), Ok(1999));
        assert_eq!(Decimal::parse("5000").unwrap().to_minor(Currency::parse("JPY").unwrap()), Ok(5000));
        assert_eq!(Decimal::parse("1.234").unwrap().to_minor(Currency::parse("KWD").unwrap()), Ok(1234));
    }

    #[test]
    fn decimals_reject_what_is_not_exact() {
        for bad in ["-1", "1e3", "", ".5", "5.", "1,000", "12a", "99999999999999999999"] {
            assert!(Decimal::parse(bad).is_err(), "{bad}");
        }
        let err = Decimal::parse("1.005").unwrap().to_minor(Currency::USD).unwrap_err();
        assert_eq!(err, ValueError::Money("1.005 has 3 decimal places; USD allows 2".into()));
        assert!(Decimal::parse("0.5").unwrap().to_minor(Currency::parse("JPY").unwrap()).is_err());
    }

    #[test]
    fn formats_minor_units() {
        assert_eq!(Currency::USD.format_minor(123456), "1234.56");
        assert_eq!(Currency::USD.format_minor(5), "0.05");
        assert_eq!(Currency::USD.format_minor(-5), "-0.05");
        assert_eq!(Currency::parse("JPY").unwrap().format_minor(5000), "5000");
    }

    #[test]
    fn currency_codes() {
        assert!(Currency::parse("usd").is_err());
        assert!(Currency::parse("US").is_err());
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
    }
}

//! Report output: exact JSON numbers for money, aligned tables for people, CSV for machines.

use dealledger_events::money::format_scaled;
use dealledger_events::{Currency, Timestamp};
use serde::{Serialize, Serializer};

/// A money amount in minor units, written as an exact JSON decimal (`1234.56`, never a float).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money {
    pub minor: i128,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i128, currency: Currency) -> Money {
        Money { minor, currency }
    }

    pub fn decimal(&self) -> String {
        format_scaled(self.minor, self.currency.exponent())
    }

    /// `1,234,567.89 USD`.
    pub fn human(&self) -> String {
        let text = self.decimal();
        let (sign, digits) = text.strip_prefix('-').map_or(("", text.as_str()), |d| ("-", d));
        let (whole, fraction) = digits.split_once('.').map_or((digits, None), |(w, f)| (w, Some(f)));
        let grouped = group_digits(whole);
        match fraction {
            Some(f) => format!("{sign}{grouped}.{f} {}", self.currency),
            None => format!("{sign}{grouped} {}", self.currency),
        }
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw =
            serde_json::value::RawValue::from_string(self.decimal()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// Rounds `numerator / denominator` half away from zero.
pub fn div_round(numerator: i128, denominator: i128) -> i128 {
    assert!(denominator > 0, "denominators are positive");
    let (q, r) = (numerator / denominator, numerator % denominator);
    if 2 * r.abs() >= denominator {
        q + numerator.signum()
    } else {
        q
    }
}

/// Writes a currency as its code (`"USD"`), for `#[serde(serialize_with)]`.
pub fn currency_code<S: Serializer>(currency: &Currency, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(currency.as_str())
}

/// Writes currencies as their codes (`["EUR", "USD"]`), for `#[serde(serialize_with)]`.
pub fn currency_codes<S: Serializer>(currencies: &[Currency], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(currencies.iter().map(Currency::as_str))
}

/// A time written as RFC 3339 in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(pub Timestamp);

impl Serialize for Instant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

pub fn days(micros: i64) -> f64 {
    micros as f64 / dealledger_events::time::MICROS_PER_DAY as f64
}

pub fn hours(micros: i64) -> f64 {
    micros as f64 / 3_600_000_000.0
}

/// Rounds for output: figures that are exact fractions (days, hours) keep 6 decimals, enough to
/// show a second, and no binary noise.
pub fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// How a report or a listing is written: for people, or for machines. The one set of names
/// (`--format`, `?format=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Table, Format::Json, Format::Csv];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }

    pub fn parse(text: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|format| format.as_str() == text)
    }

    /// The HTTP content type of the rendering.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Table => "text/plain; charset=utf-8",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    Money(Money),
    /// A figure with the decimals to show in a table (CSV keeps full precision).
    Num(f64, usize),
    /// A figure already written out (`12.3 / 4.5`, `1,234`): shown as it is, aligned right.
    Figure(String),
    Null,
}

impl Cell {
    fn human(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Int(i) => group_int(*i),
            Cell::Money(m) => m.human(),
            Cell::Num(v, decimals) => format!("{v:.decimals$}"),
            Cell::Figure(text) => text.clone(),
            Cell::Null => "-".into(),
        }
    }

    fn machine(&self) -> String {
        match self {
            Cell::Text(t) => csv_text(t).into_owned(),
            Cell::Int(i) => i.to_string(),
            Cell::Money(m) => m.decimal(),
            Cell::Num(v, _) => v.to_string(),
            Cell::Figure(text) => text.clone(),
            Cell::Null => String::new(),
        }
    }

    fn right_aligned(&self) -> bool {
        !matches!(self, Cell::Text(_))
    }
}

/// A text as a CSV cell that a spreadsheet reads as text: one that starts like a formula (`=`,
/// `+`, `-`, `@`, or a tab or carriage return before one) gets a `'` in front (OWASP's advice on
/// CSV injection). CRM fields are written by many hands, and a cell that runs when the file is
/// opened must not reach the person who opens it. Every CSV the project writes takes its text
/// cells through here; numbers and times are written as they are.
pub fn csv_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

pub fn opt_num(value: Option<f64>, decimals: usize) -> Cell {
    value.map_or(Cell::Null, |v| Cell::Num(v, decimals))
}

fn group_int(i: i64) -> String {
    let sign = if i < 0 { "-" } else { "" };
    format!("{sign}{}", group_digits(&i.unsigned_abs().to_string()))
}

/// A money figure in its currency's units, for a chart (charts draw, tables and JSON stay exact).
pub fn units(money: Money) -> f64 {
    money.minor as f64 / 10f64.powi(money.currency.exponent() as i32)
}

/// `1234567` as `1,234,567`: the one digit grouping of every table and message.
pub fn thousands(n: u64) -> String {
    group_digits(&n.to_string())
}

/// `1234567` to `1,234,567`.
fn group_digits(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (n, c) in digits.chars().enumerate() {
        if n > 0 && (digits.len() - n).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Rows under named columns. Column names carry their units (`mean (days)`).
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(title: impl Into<String>, columns: &[&str]) -> Table {
        Table {
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Cell>) {
        assert_eq!(row.len(), self.columns.len(), "a row has a cell per column");
        self.rows.push(row);
    }

    /// Aligned text: text left, figures right.
    pub fn render(&self) -> String {
        let cells: Vec<Vec<String>> = self.rows.iter().map(|r| r.iter().map(Cell::human).collect()).collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let right: Vec<bool> = (0..self.columns.len())
            .map(|i| {
                self.rows.iter().any(|r| r[i].right_aligned())
                    && self.rows.iter().all(|r| r[i].right_aligned())
            })
            .collect();
        let line = |texts: &[String]| -> String {
            let parts: Vec<String> = texts
                .iter()
                .zip(&widths)
                .zip(&right)
                .map(|((t, &w), &r)| if r { format!("{t:>w$}") } else { format!("{t:<w$}") })
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        let mut out = String::new();
        if !self.title.is_empty() {
            out.push_str(&self.title);
            out.push('\n');
        }
        out.push_str(&line(&self.columns));
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        out.push_str(&rule.join("  "));
        out.push('\n');
        for row in &cells {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    /// The table as CSV (machine cells, quoted where needed): the one CSV writer of every
    /// report and command.
    pub fn to_csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&self.columns).expect("writing to memory");
        for row in &self.rows {
            writer.write_record(row.iter().map(Cell::machine)).expect("writing to memory");
        }
        String::from_utf8(writer.into_inner().expect("writing to memory")).expect("UTF-8 cells")
    }
}

/// What every report gives: a JSON document and tables.
pub trait Report: Serialize {
    /// For people: one or more tables (and a heading).
    fn tables(&self) -> Vec<Table>;

    /// What the report says of its own figures, one line each: where the data cannot support
    /// a figure, and the moment or period to look at instead (the JSON's `notes` and `offer`).
    fn note_lines(&self) -> Vec<String> {
        Vec::new()
    }

    /// Its picture, if it has one (the dashboard's, `GET /v1/charts/{name}`).
    fn chart(&self) -> Option<crate::chart::Chart> {
        None
    }

    /// For machines: one flat table (the first of [`Report::tables`] unless overridden).
    fn csv_table(&self) -> Table {
        self.tables().into_iter().next().expect("reports have a table")
    }
}

pub fn render<R: Report>(report: &R, format: Format) -> String {
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(report).expect("reports serialize");
            text.push('\n');
            text
        }
        Format::Table => {
            let mut text = report.tables().iter().map(Table::render).collect::<Vec<_>>().join("\n");
            let notes = report.note_lines();
            if !notes.is_empty() {
                text.push('\n');
            }
            for note in notes {
                text.push_str(&note);
                text.push('\n');
            }
            text
        }
        Format::Csv => report.csv_table().to_csv(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact_and_grouped() {
        let m = Money::new(123_456_789, Currency::USD);
        assert_eq!(serde_json::to_string(&m).unwrap(), "1234567.89");
        assert_eq!(m.human(), "1,234,567.89 USD");
        assert_eq!(Money::new(-5, Currency::USD).human(), "-0.05 USD");
        assert_eq!(Money::new(1000, Currency::parse("JPY").unwrap()).human(), "1,000 JPY");
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
        assert_eq!(div_round(4, 3), 1);
        assert_eq!(div_round(-4, 3), -1);
    }

    #[test]
    fn a_text_a_spreadsheet_would_run_is_quoted_in_csv() {
        for (text, cell) in [
            ("=1+1", "'=1+1"),
            ("+price", "'+price"),
            ("-cmd", "'-cmd"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("rep-01", "rep-01"),
            ("", ""),
        ] {
            assert_eq!(csv_text(text), cell);
        }
        let mut t = Table::new("", &["owner", "figure"]);
        t.push(vec![Cell::Text("=cmd".into()), Cell::Num(-1.5, 1)]);
        assert_eq!(t.to_csv(), "owner,figure\n'=cmd,-1.5\n", "figures are figures");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new("", &["stage", "deals"]);
        t.push(vec![Cell::Text("quote".into()), Cell::Int(1200)]);
        t.push(vec![Cell::Text("closing".into()), Cell::Int(3)]);
        assert_eq!(t.render(), "stage    deals\n-------  -----\nquote    1,200\nclosing      3\n");
    }
}

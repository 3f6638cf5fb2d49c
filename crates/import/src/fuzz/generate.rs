//! Generated CSV files for the property tests: a header and cells drawn per column, with as
//! much noise (odd cells, misshapen rows, a column left out, bytes cut short, a BOM, a 1 MiB
//! cell) as a test asks for.

use proptest::prelude::*;
use proptest::strategy::Union;

/// A file: its name and its bytes.
pub type File = (String, Vec<u8>);

/// Bytes of an arbitrary file, at most.
const RANDOM_FILE_BYTES_MAX: usize = 2048;
/// Rows of a generated CSV, at most.
const ROWS_MAX: usize = 12;
/// Bytes of the very large cell some cases carry, at most: 1 MiB.
const HUGE_CELL_BYTES_MAX: usize = 1 << 20;

/// How much a generated table strays from a well-formed export. Odd cells are counted per
/// thousand, by kind of column: an odd cell where the import stops on one (an id, a stage, a
/// creation time) ends the case early, so those columns stay mostly readable.
#[derive(Clone, Copy, Debug)]
pub struct Noise {
    pub strict_per_mille: u32,
    pub loose_per_mille: u32,
    pub dates_per_mille: u32,
    /// Probabilities, per row or per file.
    pub misshapen_row: f64,
    pub dropped_column: f64,
    pub cut_short: f64,
    pub huge_cell: f64,
}

/// Mostly well-formed files that reach deep into an importer, with something odd in most cases.
pub const DEEP: Noise = Noise {
    strict_per_mille: 8,
    loose_per_mille: 150,
    dates_per_mille: 30,
    misshapen_row: 0.005,
    dropped_column: 0.01,
    cut_short: 0.02,
    huge_cell: 0.05,
};

/// Well-formed files with an odd date or time cell in most cases (one in seven: an import stops
/// at the first bad creation time, so the rows after it must get a chance too).
pub const DATES: Noise = Noise {
    strict_per_mille: 0,
    loose_per_mille: 0,
    dates_per_mille: 150,
    misshapen_row: 0.0,
    dropped_column: 0.0,
    cut_short: 0.0,
    huge_cell: 0.0,
};

/// What a column holds, which decides how often its cells are odd.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// The import stops on a bad one (ids, stage names).
    Strict,
    /// Anything goes (names, owners, amounts, values).
    Loose,
    /// A date or a time.
    Date,
}

pub struct Column {
    pub header: &'static str,
    pub kind: Kind,
    pub values: BoxedStrategy<String>,
}

pub fn column(header: &'static str, kind: Kind, values: BoxedStrategy<String>) -> Column {
    Column { header, kind, values }
}

pub fn pick(values: &'static [&'static str]) -> BoxedStrategy<String> {
    proptest::sample::select(values).prop_map(str::to_string).boxed()
}

/// A way CRM exports write dates and times.
#[derive(Clone, Copy, Debug)]
pub enum Format {
    /// `2024-03-04 09:00:00` (Salesforce's data loader, Pipedrive).
    DataLoader,
    /// `2024-03-04T09:00:00`, no zone.
    Iso,
    /// `2024-03-04T09:00:00.5+05:30`.
    Rfc3339,
    /// `2024-03-04T09:00:00.000+0000` (Salesforce's API).
    Api,
    /// `3/4/2024`.
    UsDate,
    /// `2024-03-04`.
    IsoDate,
}

/// Valid dates and times in `formats`: days up to 28 and seconds up to 59.
pub fn instant(formats: &'static [Format]) -> BoxedStrategy<String> {
    let parts = (2015i32..2027, 1u32..=12, 1u32..=28, 0u32..24, 0u32..60, 0u32..60);
    let zones = (pick(&["", ".000", ".5", ".123456"]), pick(&["Z", "+00:00", "-05:00", "+05:30"]));
    (proptest::sample::select(formats), parts, zones)
        .prop_map(|(format, (y, mo, d, h, mi, s), (fraction, zone))| {
            let (date, time) = (format!("{y}-{mo:02}-{d:02}"), format!("{h:02}:{mi:02}:{s:02}"));
            match format {
                Format::DataLoader => format!("{date} {time}"),
                Format::Iso => format!("{date}T{time}"),
                Format::Rfc3339 => format!("{date}T{time}{fraction}{zone}"),
                Format::Api => format!("{date}T{time}.000{}", zone.replace(':', "").replace('Z', "+0000")),
                Format::UsDate => format!("{mo}/{d}/{y}"),
                Format::IsoDate => date,
            }
        })
        .boxed()
}

/// Near misses: impossible days and seconds, odd zones, too many digits, random digits.
fn odd_instant() -> BoxedStrategy<String> {
    prop_oneof![
        (
            2015i32..2027,
            0u32..=13,
            0u32..=32,
            0u32..=25,
            0u32..=61,
            "(\\.[0-9]{1,9})?",
            pick(&["", "+2", "+99:99", "z", "-00:00", "+0000 "])
        )
            .prop_map(|(y, mo, d, h, s, f, z)| format!("{y}-{mo:02}-{d:02} {h:02}:00:{s:02}{f}{z}")),
        "[0-9]{1,6}[-/][0-9]{1,3}[-/][0-9]{1,6}([ T][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2})?",
        "-?[0-9]{1,20}",
        "[+-]?[0-9]{5,6}-[0-9]{2}-[0-9]{2}T00:00:00Z",
    ]
    .boxed()
}

/// A value of `values` with one character (any, mostly multi-byte) put into it, or put in
/// place of as many characters as it has bytes (so the text keeps its length in bytes, the one
/// check that byte-index slicing relies on).
fn spliced(values: BoxedStrategy<String>) -> BoxedStrategy<String> {
    (values, any::<char>(), any::<prop::sample::Index>(), any::<bool>())
        .prop_map(|(text, c, at, keep_length)| {
            let mut chars: Vec<char> = text.chars().collect();
            let at = at.index(chars.len() + 1);
            if keep_length {
                let end = (at + c.len_utf8()).min(chars.len());
                chars.splice(at..end, [c]);
            } else {
                chars.insert(at, c);
            }
            chars.into_iter().collect()
        })
        .boxed()
}

const ALL_FORMATS: &[Format] =
    &[Format::DataLoader, Format::Iso, Format::Rfc3339, Format::Api, Format::UsDate, Format::IsoDate];

/// A cell no column expects: empty, any script, control characters, CSV's own specials, a BOM,
/// long digit strings, a damaged date.
pub fn wild() -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just(String::new()),
        4 => "\\PC{0,16}",
        3 => "(?s).{0,16}",
        2 => "[\",;'\\r\\n\\t \u{feff}]{1,8}",
        3 => spliced(instant(ALL_FORMATS)),
        2 => odd_instant(),
        1 => "\u{feff}\\PC{0,8}",
        1 => "[0-9]{1,30}(\\.[0-9]{1,30})?",
    ]
    .boxed()
}

/// `values`, except `odd_per_mille` cells in a thousand from `odd`.
fn mix(
    values: BoxedStrategy<String>,
    odd: BoxedStrategy<String>,
    odd_per_mille: u32,
) -> BoxedStrategy<String> {
    match odd_per_mille {
        0 => values,
        1000.. => odd,
        n => Union::new_weighted(vec![(1000 - n, values), (n, odd)]).boxed(),
    }
}

fn cells(column: Column, noise: Noise) -> BoxedStrategy<String> {
    match column.kind {
        Kind::Strict => mix(column.values, wild(), noise.strict_per_mille),
        Kind::Loose => mix(column.values, wild(), noise.loose_per_mille),
        Kind::Date => {
            let odd =
                prop_oneof![2 => spliced(column.values.clone()), 1 => odd_instant(), 1 => wild()].boxed();
            mix(column.values, odd, noise.dates_per_mille)
        }
    }
}

/// `Some` value of `strategy` with `probability` (which may be 0: proptest's own `weighted`
/// takes only 0 < p < 1).
fn sometimes<T: std::fmt::Debug + Clone + 'static>(
    probability: f64,
    strategy: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    if probability > 0.0 {
        prop::option::weighted(probability, strategy).boxed()
    } else {
        Just(None).boxed()
    }
}

/// How a table is written out.
#[derive(Clone, Debug)]
enum Encoding {
    /// Quoted where needed (csv's writer).
    Csv,
    /// Every field quoted, as the Salesforce data loader writes.
    AlwaysQuoted,
    /// Fields joined by commas as they are: quotes, commas and newlines in cells break rows.
    Raw { crlf: bool },
}

/// A CSV file named `name` with `columns` in any order: up to [`ROWS_MAX`] rows, with the
/// `noise` asked for, sometimes after a BOM.
pub fn table(name: &'static str, columns: Vec<Column>, noise: Noise) -> BoxedStrategy<File> {
    let n = columns.len();
    let headers: Vec<&'static str> = columns.iter().map(|c| c.header).collect();
    let cells: Vec<BoxedStrategy<String>> = columns.into_iter().map(|c| cells(c, noise)).collect();
    let row = (cells, sometimes(noise.misshapen_row, wild()), any::<bool>());
    let encoding = prop_oneof![
        8 => Just(Encoding::Csv),
        3 => Just(Encoding::AlwaysQuoted),
        1 => any::<bool>().prop_map(|crlf| Encoding::Raw { crlf }),
    ];
    let huge = sometimes(
        noise.huge_cell,
        (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<char>(), 0..=HUGE_CELL_BYTES_MAX),
    );
    let layout = (
        Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
        sometimes(noise.dropped_column, any::<prop::sample::Index>()),
        sometimes(noise.cut_short, any::<prop::sample::Index>()),
        prop::bool::weighted(0.1),
    );
    (prop::collection::vec(row, 0..=ROWS_MAX), encoding, huge, layout)
        .prop_map(move |(rows, encoding, huge, (mut order, dropped, cut, bom))| {
            if let Some(i) = dropped {
                order.remove(i.index(order.len()));
            }
            let header: Vec<String> = order.iter().map(|&i| headers[i].to_string()).collect();
            let mut records: Vec<Vec<String>> = rows
                .into_iter()
                .map(|(cells, misshapen, shorter)| {
                    let mut record: Vec<String> = order.iter().map(|&i| cells[i].clone()).collect();
                    match (misshapen, shorter) {
                        (Some(_), true) => {
                            record.pop();
                        }
                        (Some(extra), false) => record.push(extra),
                        (None, _) => {}
                    }
                    record
                })
                .collect();
            if let (Some((row, cell, c, bytes)), false) = (huge, records.is_empty()) {
                let row = row.index(records.len());
                let record = &mut records[row];
                if !record.is_empty() {
                    let len = record.len();
                    record[cell.index(len)] = std::iter::repeat_n(c, bytes / c.len_utf8()).collect();
                }
            }
            let mut out = if bom { "\u{feff}".as_bytes().to_vec() } else { Vec::new() };
            out.extend(encode(&header, &records, &encoding));
            if let Some(cut) = cut {
                out.truncate(cut.index(out.len() + 1));
            }
            (name.to_string(), out)
        })
        .boxed()
}

fn encode(header: &[String], records: &[Vec<String>], encoding: &Encoding) -> Vec<u8> {
    let lines = std::iter::once(header).chain(records.iter().map(Vec::as_slice));
    let style = match encoding {
        Encoding::Raw { crlf } => {
            let end = if *crlf { "\r\n" } else { "\n" };
            return lines.map(|fields| fields.join(",") + end).collect::<String>().into_bytes();
        }
        Encoding::AlwaysQuoted => csv::QuoteStyle::Always,
        Encoding::Csv => csv::QuoteStyle::Necessary,
    };
    let mut writer = csv::WriterBuilder::new().flexible(true).quote_style(style).from_writer(Vec::new());
    for fields in lines {
        writer.write_record(fields).expect("writing to a Vec");
    }
    writer.into_inner().expect("writing to a Vec")
}

/// Arbitrary bytes, or a valid header line (one of `headers`) followed by arbitrary bytes.
pub fn random_file(name: &'static str, headers: &'static [&'static str]) -> BoxedStrategy<File> {
    let bytes = prop::collection::vec(any::<u8>(), 0..RANDOM_FILE_BYTES_MAX);
    prop_oneof![
        bytes.clone(),
        (proptest::sample::select(headers), bytes).prop_map(|(header, bytes)| {
            let mut out = format!("{header}\n").into_bytes();
            out.extend(bytes);
            out
        }),
    ]
    .prop_map(move |bytes| (name.to_string(), bytes))
    .boxed()
}

/// The `required` files and some of the `optional` ones, in any order.
pub fn files(
    required: Vec<BoxedStrategy<File>>,
    optional: Vec<BoxedStrategy<File>>,
) -> BoxedStrategy<Vec<File>> {
    let n = optional.len();
    (required, optional, prop::sample::subsequence((0..n).collect::<Vec<_>>(), 0..=n))
        .prop_map(|(mut files, optional, chosen)| {
            files.extend(chosen.into_iter().map(|i| optional[i].clone()));
            files
        })
        .prop_shuffle()
        .boxed()
}

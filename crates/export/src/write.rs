//! The two file formats behind one row writer: rows are buffered into row groups of
//! [`ROW_GROUP_ROWS`] (Parquet writes a group column by column; CSV writes them as they come),
//! and the file is written beside its name and renamed into place by [`TableWriter::finish`]
//! (`dealledger_log::files::NewFile`: never through a link planted in its way).

use crate::{Column, ExportError, Kind, Value};
use dealledger_log::files::NewFile;
use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{
    ByteArray, ByteArrayType, FixedLenByteArray, FixedLenByteArrayType, Int32Type, Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per Parquet row group (and per CSV flush): bounded memory however large the table.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Digits after the point of every Parquet money column: the most any ISO 4217 currency has
/// (CLF, UYW), so every currency's amounts are exact in one column type.
pub const MONEY_SCALE: u32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv,
}

impl Format {
    pub fn parse(text: &str) -> Result<Format, crate::ExportError> {
        match text {
            "parquet" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            other => Err(crate::ExportError::UnknownFormat(other.to_string())),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
        }
    }
}

enum Sink {
    Csv(csv::Writer<BufWriter<NewFile>>),
    Parquet(SerializedFileWriter<BufWriter<NewFile>>),
}

pub struct TableWriter {
    columns: &'static [Column],
    sink: Sink,
    rows: Vec<Vec<Value>>,
    written: u64,
    path: PathBuf,
}

fn failed(path: &Path, why: impl ToString) -> ExportError {
    ExportError::Write { path: path.display().to_string(), why: why.to_string() }
}

/// The Parquet schema of `columns`.
fn schema(columns: &[Column]) -> String {
    let mut fields = String::new();
    for c in columns {
        let repetition = if c.nullable { "OPTIONAL" } else { "REQUIRED" };
        let ty = match c.kind {
            Kind::Int => "INT64".to_string(),
            Kind::Text => "BYTE_ARRAY".to_string(),
            Kind::Time => "INT64".to_string(),
            Kind::Date => "INT32".to_string(),
            Kind::Money => "FIXED_LEN_BYTE_ARRAY (16)".to_string(),
        };
        let logical = match c.kind {
            Kind::Int => "",
            Kind::Text => " (STRING)",
            Kind::Time => " (TIMESTAMP(MICROS, true))",
            Kind::Date => " (DATE)",
            Kind::Money => " (DECIMAL(38, 4))",
        };
        fields.push_str(&format!("  {repetition} {ty} {}{logical};\n", c.name));
    }
    format!("message table {{\n{fields}}}")
}

impl TableWriter {
    pub fn create(
        path: &Path,
        columns: &'static [Column],
        format: Format,
    ) -> Result<TableWriter, ExportError> {
        let file = BufWriter::new(NewFile::create(path).map_err(|e| failed(path, e))?);
        let sink = match format {
            Format::Csv => {
                let mut writer = csv::Writer::from_writer(file);
                writer.write_record(columns.iter().map(|c| c.name)).map_err(|e| failed(path, e))?;
                Sink::Csv(writer)
            }
            Format::Parquet => {
                let schema = Arc::new(parse_message_type(&schema(columns)).map_err(|e| failed(path, e))?);
                let properties = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .set_created_by("dealledger".to_string())
                    .build();
                Sink::Parquet(
                    SerializedFileWriter::new(file, schema, Arc::new(properties))
                        .map_err(|e| failed(path, e))?,
                )
            }
        };
        Ok(TableWriter { columns, sink, rows: Vec::new(), written: 0, path: path.to_path_buf() })
    }

    pub fn push(&mut self, row: Vec<Value>) -> Result<(), ExportError> {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
        if self.rows.len() >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ExportError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let path = self.path.clone();
        match &mut self.sink {
            Sink::Csv(writer) => {
                for row in &rows {
                    writer.write_record(row.iter().map(csv_cell)).map_err(|e| failed(&path, e))?;
                }
            }
            Sink::Parquet(writer) => {
                write_group(writer, self.columns, &rows).map_err(|e| failed(&path, e))?
            }
        }
        self.written += rows.len() as u64;
        Ok(())
    }

    /// Writes what is buffered, closes the file, syncs it and renames it to its name: the rows
    /// written.
    pub fn finish(mut self) -> Result<u64, ExportError> {
        self.flush()?;
        let path = self.path.clone();
        let file = match self.sink {
            Sink::Csv(writer) => writer.into_inner().map_err(|e| failed(&path, e.error()))?,
            Sink::Parquet(writer) => writer.into_inner().map_err(|e| failed(&path, e))?,
        };
        let file = file.into_inner().map_err(|e| failed(&path, e.error()))?;
        file.commit().map_err(|e| failed(&path, e))?;
        Ok(self.written)
    }
}

fn csv_cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Int(i) => i.to_string(),
        Value::Text(s) => dealledger_reports::output::csv_text(s).into_owned(),
        Value::Time(t) => t.to_string(),
        Value::Date(d) => d.to_string(),
        Value::Money { minor, currency } => currency.format_minor(*minor),
    }
}

/// An amount at [`MONEY_SCALE`]: minor units times 10^(4 - the currency's digits), as the 16
/// big-endian bytes of an i128 (Parquet's DECIMAL in a fixed-length array).
fn money_bytes(minor: i64, currency: dealledger_events::Currency) -> FixedLenByteArray {
    let scale = MONEY_SCALE.saturating_sub(currency.exponent());
    let scaled = i128::from(minor) * 10i128.pow(scale);
    FixedLenByteArray::from(scaled.to_be_bytes().to_vec())
}

fn write_group(
    writer: &mut SerializedFileWriter<BufWriter<NewFile>>,
    columns: &[Column],
    rows: &[Vec<Value>],
) -> Result<(), parquet::errors::ParquetError> {
    let mut group = writer.next_row_group()?;
    for (i, column) in columns.iter().enumerate() {
        let Some(mut out) = group.next_column()? else {
            break;
        };
        let cells = rows.iter().map(|row| row.get(i).unwrap_or(&Value::Null));
        let levels: Vec<i16> = cells.clone().map(|v| i16::from(*v != Value::Null)).collect();
        let levels = column.nullable.then_some(&levels[..]);
        match column.kind {
            Kind::Int | Kind::Time => {
                let values: Vec<i64> = cells
                    .filter_map(|v| match v {
                        Value::Int(i) => Some(*i),
                        Value::Time(t) => Some(t.0),
                        _ => None,
                    })
                    .collect();
                out.typed::<Int64Type>().write_batch(&values, levels, None)?;
            }
            Kind::Date => {
                let values: Vec<i32> =
                    cells.filter_map(|v| if let Value::Date(d) = v { Some(d.0) } else { None }).collect();
                out.typed::<Int32Type>().write_batch(&values, levels, None)?;
            }
            Kind::Text => {
                let values: Vec<ByteArray> = cells
                    .filter_map(
                        |v| if let Value::Text(s) = v { Some(ByteArray::from(s.as_str())) } else { None },
                    )
                    .collect();
                out.typed::<ByteArrayType>().write_batch(&values, levels, None)?;
            }
            Kind::Money => {
                let values: Vec<FixedLenByteArray> = cells
                    .filter_map(|v| match v {
                        Value::Money { minor, currency } => Some(money_bytes(*minor, *currency)),
                        _ => None,
                    })
                    .collect();
                out.typed::<FixedLenByteArrayType>().write_batch(&values, levels, None)?;
            }
        }
        out.close()?;
    }
    group.close()?;
    Ok(())
}

//! `dealledger export`: the log and the timeline's tables as Parquet or CSV (docs/export.md).

use crate::data::DataDir;
use crate::report::{flag_error, When};
use anyhow::Result;
use clap::Args;
use dealledger_events::Clock;
use dealledger_export::{Format, Table};
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    /// File format: parquet or csv
    #[arg(long, value_parser = Format::parse)]
    format: Format,
    /// A table to write: events, deals, stage_visits or touches (repeat for several; default
    /// all four)
    #[arg(long = "table", value_name = "TABLE", value_parser = Table::parse)]
    tables: Vec<Table>,
    /// Directory to write TABLE.parquet or TABLE.csv into (created if missing; a table's file is
    /// replaced whole, never left half written)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    when: When,
}

pub fn run(data: &DataDir, clock: &dyn Clock, args: &ExportArgs) -> Result<()> {
    let view = dealledger_reports::query::view_of(&args.when.params(), clock.now()).map_err(flag_error)?;
    let mut tables = if args.tables.is_empty() { Table::ALL.to_vec() } else { args.tables.clone() };
    tables.sort();
    tables.dedup();
    let log = data.open_log()?;
    let (timeline, _) = dealledger_projections::catch_up::<dealledger_projections::Timeline, _>(&log)?;
    for written in dealledger_export::export(&log, &timeline, view, &tables, args.format, &args.out)? {
        outln!("{}: {} rows in {}", written.table.name(), written.rows, written.path.display());
    }
    Ok(())
}

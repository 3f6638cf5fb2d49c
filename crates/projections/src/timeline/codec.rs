//! The timeline's checkpoint state (version 7): flat columns of fixed-width records, read in one
//! sequential pass straight into the timeline's own columns (a handful of allocations, however
//! many deals), where bincode's encoding of the structs took one allocation and a varint walk
//! per field per deal.
//!
//! Layout (integers little endian):
//!
//! ```text
//! counts    names N, deals D, entries E, touches T, seqs S: u64 each
//! latest    the latest `at`, the latest `recorded_at`: i64 each
//! names     N x u32 byte length, then the N strings end to end
//! ids       D x u32 byte length, then the D ids end to end
//! deals     D x 15 bytes: currency [u8; 3], then its entries, touches and seqs: u32 each
//! entries   E x ENTRY_BYTES, deal after deal (see `put_entry`)
//! touches   T x TOUCH_BYTES, deal after deal (see `put_touch`)
//! seqs      deal after deal, each seq as a LEB128 varint of its distance from the one before
//!           (the first from 0); then the S offsets as LEB128 varints
//! ```
//!
//! Decoding is strict: every byte a field does not use is zero, every varint is minimal and no
//! byte follows the last, so a state that decodes encodes back to the same bytes, and one that
//! does not is rebuilt from the log (never misread). Everything a fold relies on is checked
//! here: names in range, one `opened` first, lists in `at` order, seqs ascending, ids valid and
//! distinct, the latest instants those of the lists.

use super::columns::{Columns, Deferred, ListColumns, Ranges, SeqColumns};
use super::{Change, Entry, Name, Names, Timeline, Touch, MOVED_NOT};
use dealledger_events::{Channel, Currency, Date, DealId, Direction, DqReason, Timestamp};
use dealledger_log::MetaBytes;
use std::ops::Range;

const ENTRY_BYTES: usize = 40;
const TOUCH_BYTES: usize = 28;
const DEAL_BYTES: usize = 15;
const COUNTS_BYTES: usize = 5 * 8 + 2 * 8;

/// Entry kinds, in [`Change`]'s order.
const OPENED: u8 = 0;
const MOVED: u8 = 1;
const WON: u8 = 2;
const LOST: u8 = 3;
const DISQUALIFIED: u8 = 4;
const REQUALIFIED: u8 = 5;
const AMOUNT: u8 = 6;
const CLOSE_DATE: u8 = 7;
const OWNER: u8 = 8;
const FIELD: u8 = 9;

/// Touch flags.
const INBOUND: u8 = 1;
const HAS_MINUTES: u8 = 2;
const HAS_CONTACT: u8 = 4;

pub(super) fn encode(timeline: &Timeline) -> Vec<u8> {
    let deals = timeline.deals();
    let (mut entries, mut touches, mut seqs) = (0usize, 0usize, 0usize);
    for deal in deals {
        entries += deal.entries.len();
        touches += deal.touches().len();
        seqs += deal.seqs().len();
    }
    let strings = &timeline.names.strings;
    let text: usize = strings.iter().map(String::len).sum::<usize>() + timeline.columns.ids.len();
    let capacity = COUNTS_BYTES
        + 4 * (strings.len() + deals.len())
        + text
        + DEAL_BYTES * deals.len()
        + ENTRY_BYTES * entries
        + TOUCH_BYTES * touches
        + 6 * seqs;
    let mut out = Vec::with_capacity(capacity);
    for count in [strings.len(), deals.len(), entries, touches, seqs] {
        out.extend_from_slice(&(count as u64).to_le_bytes());
    }
    out.extend_from_slice(&timeline.latest_at.0.to_le_bytes());
    out.extend_from_slice(&timeline.latest_recorded_at.0.to_le_bytes());
    put_strings(&mut out, strings.iter().map(String::as_str));
    put_strings(&mut out, deals.iter().map(|d| d.id));
    for deal in deals {
        out.extend_from_slice(&deal.currency.0);
        for count in [deal.entries.len(), deal.touches().len(), deal.seqs().len()] {
            out.extend_from_slice(&u32_of(count).to_le_bytes());
        }
    }
    for entry in deals.iter().flat_map(|d| d.entries) {
        put_entry(&mut out, entry);
    }
    for touch in deals.iter().flat_map(|d| d.touches()) {
        put_touch(&mut out, touch);
    }
    for deal in deals {
        let mut previous = 0;
        for &seq in deal.seqs() {
            // Ascending: apply and decode both check it.
            put_varint(&mut out, seq - previous);
            previous = seq;
        }
    }
    for deal in deals {
        for &offset in deal.offsets() {
            put_varint(&mut out, u64::from(offset));
        }
    }
    out
}

/// A count of one deal's items, or of names: each item takes memory, so 2^32 of them are not
/// reached before memory runs out.
fn u32_of(count: usize) -> u32 {
    u32::try_from(count).expect("fewer than 2^32 items of one deal fit in memory")
}

fn put_strings<'a>(out: &mut Vec<u8>, strings: impl Iterator<Item = &'a str> + Clone) {
    for s in strings.clone() {
        out.extend_from_slice(&u32_of(s.len()).to_le_bytes());
    }
    for s in strings {
        out.extend_from_slice(s.as_bytes());
    }
}

/// An entry's 40 bytes: `at` (i64), `recorded_at` (i64), kind (u8), flag (u8: an option's
/// presence, a field's `set`, a reason's index), zero (u16), `a` (u32: the stage, owner or field
/// name), `b` (u32: the owner of an `opened`), a date (i32: days), an amount (i64: minor units).
fn put_entry(out: &mut Vec<u8>, entry: &Entry) {
    out.extend_from_slice(&entry_bytes(entry));
}

fn entry_bytes(entry: &Entry) -> [u8; ENTRY_BYTES] {
    let (kind, flag, a, b, date, amount) = match entry.change {
        Change::Opened { stage, owner, amount_minor, close_date } => (
            OPENED,
            u8::from(close_date.is_some()),
            stage,
            owner,
            close_date.map_or(0, |d| d.0),
            amount_minor,
        ),
        Change::Moved { to } => (MOVED, 0, to, 0, 0, 0),
        Change::Won { amount_minor } => {
            (WON, u8::from(amount_minor.is_some()), 0, 0, 0, amount_minor.unwrap_or(0))
        }
        Change::Lost => (LOST, 0, 0, 0, 0, 0),
        Change::Disqualified { reason } => (DISQUALIFIED, reason as u8, 0, 0, 0, 0),
        Change::Requalified { stage } => {
            (REQUALIFIED, u8::from(stage.is_some()), stage.unwrap_or(0), 0, 0, 0)
        }
        Change::Amount { amount_minor } => (AMOUNT, 0, 0, 0, 0, amount_minor),
        Change::CloseDate { close_date } => (CLOSE_DATE, 0, 0, 0, close_date.0, 0),
        Change::Owner { owner } => (OWNER, 0, owner, 0, 0, 0),
        Change::Field { field, set } => (FIELD, u8::from(set), field, 0, 0, 0),
    };
    let mut record = [0u8; ENTRY_BYTES];
    record[0..8].copy_from_slice(&entry.at.0.to_le_bytes());
    record[8..16].copy_from_slice(&entry.recorded_at.0.to_le_bytes());
    record[16] = kind;
    record[17] = flag;
    record[20..24].copy_from_slice(&a.to_le_bytes());
    record[24..28].copy_from_slice(&b.to_le_bytes());
    record[28..32].copy_from_slice(&date.to_le_bytes());
    record[32..40].copy_from_slice(&amount.to_le_bytes());
    record
}

fn entry_of(record: &[u8]) -> Result<Entry, String> {
    let at = Timestamp(i64_at(record, 0));
    let recorded_at = Timestamp(i64_at(record, 8));
    let (kind, flag) = (u8_at(record, 16), u8_at(record, 17));
    let a = u32_at(record, 20);
    let b = u32_at(record, 24);
    let date = u32_at(record, 28) as i32;
    let amount = i64_at(record, 32);
    let option = |present: u8| match present {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(format!("an entry of kind {kind} with flag {present}")),
    };
    let change = match kind {
        OPENED => {
            let close_date = option(flag)?.then_some(Date(date));
            Change::Opened { stage: a, owner: b, amount_minor: amount, close_date }
        }
        MOVED => Change::Moved { to: a },
        WON => Change::Won { amount_minor: option(flag)?.then_some(amount) },
        LOST => Change::Lost,
        DISQUALIFIED => {
            let reason = DqReason::ALL.get(usize::from(flag)).ok_or_else(|| format!("reason {flag}"))?;
            Change::Disqualified { reason: *reason }
        }
        REQUALIFIED => Change::Requalified { stage: option(flag)?.then_some(a) },
        AMOUNT => Change::Amount { amount_minor: amount },
        CLOSE_DATE => Change::CloseDate { close_date: Date(date) },
        OWNER => Change::Owner { owner: a },
        FIELD => Change::Field { field: a, set: option(flag)? },
        _ => return Err(format!("an entry of kind {kind}")),
    };
    let entry = Entry { at, recorded_at, change };
    // Strict: the bytes are exactly what encoding this entry writes (unused fields zero).
    if entry_bytes(&entry) != record {
        return Err(format!("an entry of kind {kind} with bytes its kind does not use"));
    }
    Ok(entry)
}

/// A touch's 28 bytes: `at` (i64), `recorded_at` (i64), the contact's key (u64), minutes (u16),
/// the channel's index (u8), flags (u8: inbound, minutes given, contact given); what is not given
/// is zero.
fn put_touch(out: &mut Vec<u8>, touch: &Touch) {
    let mut record = [0u8; TOUCH_BYTES];
    record[0..8].copy_from_slice(&touch.at.0.to_le_bytes());
    record[8..16].copy_from_slice(&touch.recorded_at.0.to_le_bytes());
    record[16..24].copy_from_slice(&touch.contact.unwrap_or(0).to_le_bytes());
    record[24..26].copy_from_slice(&touch.minutes.unwrap_or(0).to_le_bytes());
    record[26] = touch.channel as u8;
    let mut flags = 0;
    if touch.direction == Direction::Inbound {
        flags |= INBOUND;
    }
    if touch.minutes.is_some() {
        flags |= HAS_MINUTES;
    }
    if touch.contact.is_some() {
        flags |= HAS_CONTACT;
    }
    record[27] = flags;
    out.extend_from_slice(&record);
}

fn touch_of(record: &[u8]) -> Result<Touch, String> {
    let flags = u8_at(record, 27);
    if flags & !(INBOUND | HAS_MINUTES | HAS_CONTACT) != 0 {
        return Err(format!("a touch with flags {flags:#x}"));
    }
    let channel_byte = u8_at(record, 26);
    let channel =
        *Channel::ALL.get(usize::from(channel_byte)).ok_or_else(|| format!("channel {channel_byte}"))?;
    let contact = i64_at(record, 16) as u64;
    let minutes = u16::from_le_bytes([u8_at(record, 24), u8_at(record, 25)]);
    let touch = Touch {
        at: Timestamp(i64_at(record, 0)),
        recorded_at: Timestamp(i64_at(record, 8)),
        channel,
        direction: if flags & INBOUND != 0 { Direction::Inbound } else { Direction::Outbound },
        minutes: (flags & HAS_MINUTES != 0).then_some(minutes),
        contact: (flags & HAS_CONTACT != 0).then_some(contact),
    };
    if touch.minutes.is_none() && minutes != 0 || touch.contact.is_none() && contact != 0 {
        return Err("a touch with bytes it does not use".into());
    }
    Ok(touch)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The LEB128 varint at `bytes[*at..]`, moving `at` past it; None where it is cut short, past
/// 64 bits or longer than it needs to be. The hot loop of a checkpoint's load (two varints per
/// event), so one byte, the usual case, is one comparison.
#[inline]
fn varint_at(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let first = *bytes.get(*at)?;
    *at += 1;
    if first < 0x80 {
        return Some(u64::from(first));
    }
    let mut value = u64::from(first & 0x7f);
    let mut shift = 7;
    loop {
        let byte = *bytes.get(*at)?;
        *at += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return (byte != 0).then_some(value);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

// Fields of a fixed-width record. Records are cut at their width (`Reader::records`, then
// `chunks_exact`), so every field is inside; a field past the end would read as 0.

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    bytes.get(at..at.saturating_add(8)).and_then(|b| b.try_into().ok()).map_or(0, i64::from_le_bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes.get(at..at.saturating_add(4)).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes)
}

fn u8_at(bytes: &[u8], at: usize) -> u8 {
    bytes.get(at).copied().unwrap_or(0)
}

/// Untrusted bytes, read front to back: every read is checked against what is left.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(len).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("the state ends inside its {what}"))?;
        let taken =
            self.bytes.get(self.at..end).ok_or_else(|| format!("the state ends inside its {what}"))?;
        self.at = end;
        Ok(taken)
    }

    /// `count` records of `width` bytes: the count is checked against the bytes there are before
    /// anything is allocated for it.
    fn records(&mut self, count: usize, width: usize, what: &str) -> Result<&'a [u8], String> {
        let len = count.checked_mul(width).ok_or_else(|| format!("{count} {what} cannot be there"))?;
        self.take(len, what)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }

    fn count(&mut self, what: &str) -> Result<usize, String> {
        let count = self.u64(what)?;
        usize::try_from(count).map_err(|_| format!("{count} {what} cannot be there"))
    }

    fn varint(&mut self, what: &str) -> Result<u64, String> {
        varint_at(self.bytes, &mut self.at)
            .ok_or_else(|| format!("a varint in the {what} is cut, too long or not minimal"))
    }

    /// `count` strings: their u32 lengths, then their bytes.
    fn strings(&mut self, count: usize, what: &str) -> Result<Vec<&'a str>, String> {
        let lens = self.records(count, 4, what)?;
        let mut strings = Vec::with_capacity(count);
        for len in lens.chunks_exact(4) {
            let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
            let bytes = self.take(len, what)?;
            strings.push(
                std::str::from_utf8(bytes).map_err(|_| format!("a string of the {what} is not UTF-8"))?,
            );
        }
        Ok(strings)
    }
}

/// The timeline in `checkpoint[state]`. Entries are decoded now; touches and seqs are checked
/// now and decoded when first read ([`touches_from`], [`seqs_from`]).
pub(super) fn decode(checkpoint: MetaBytes, state_at: Range<usize>) -> Result<Timeline, String> {
    let state = checkpoint.get(state_at.clone()).ok_or("the state is not inside the checkpoint")?;
    let mut r = Reader { bytes: state, at: 0 };
    let names_n = r.count("names")?;
    let deals_n = r.count("deals")?;
    let entries_n = r.count("entries")?;
    let touches_n = r.count("touches")?;
    let seqs_n = r.count("seqs")?;
    let latest_at = Timestamp(r.u64("latest instants")? as i64);
    let latest_recorded_at = Timestamp(r.u64("latest instants")? as i64);
    if deals_n >= MOVED_NOT as usize {
        return Err(format!("{deals_n} deals, more than a timeline holds"));
    }
    let strings = r.strings(names_n, "names")?.into_iter().map(str::to_string).collect();
    let mut names = Names { strings, ..Names::default() };
    names.reindex();
    let ids = r.strings(deals_n, "deal ids")?;
    let table = r.records(deals_n, DEAL_BYTES, "deals")?;
    let DealTable { mut columns, entry_ranges, touch_ranges, seq_ranges, sums } = deal_table(&ids, table)?;
    if sums != (entries_n, touches_n, seqs_n) {
        return Err("the deals' counts do not add up to the state's".into());
    }
    check_distinct(&ids)?;
    let base = state_at.start;
    let mut read = Read { checkpoint: &checkpoint, released: 0 };
    let entries_at = r.at;
    let records = r.records(entries_n, ENTRY_BYTES, "entries")?;
    let mut entries = Vec::with_capacity(entries_n);
    for (slab, records) in records.chunks(Read::SLAB_BYTES / ENTRY_BYTES * ENTRY_BYTES).enumerate() {
        for record in records.chunks_exact(ENTRY_BYTES) {
            entries.push(entry_of(record)?);
        }
        read.upto(base + entries_at + slab * (Read::SLAB_BYTES / ENTRY_BYTES * ENTRY_BYTES) + records.len());
    }
    let touches_at = r.at;
    let touches = r.records(touches_n, TOUCH_BYTES, "touches")?;
    let seqs_at = r.at;
    let (latest, end) = std::thread::scope(|scope| {
        // The seqs on the other core, while this one checks the entries and touches.
        let seqs = scope
            .spawn(|| check_seqs(&checkpoint, base, &ids, &seq_ranges, Reader { bytes: state, at: seqs_at }));
        let mut latest = check_entries(&ids, &entries, &entry_ranges, names.len())?;
        let mut read = Read { checkpoint: &checkpoint, released: base + touches_at };
        check_touches(&ids, touches, &touch_ranges, &mut latest, |end| read.upto(base + touches_at + end))?;
        read.finish(base + seqs_at);
        let end = seqs.join().map_err(|_| "checking the seqs failed".to_string())??;
        Ok::<_, String>((latest, end))
    })?;
    if end != state.len() {
        return Err(format!("{} bytes after the state", state.len() - end));
    }
    let expected = match deals_n {
        0 => (Timestamp::default(), Timestamp::default()),
        _ => latest,
    };
    if (latest_at, latest_recorded_at) != expected {
        return Err("the latest instants are not those of the history".into());
    }
    let deferred = Deferred {
        touches: base + touches_at..base + seqs_at,
        seqs: base + seqs_at..base + end,
        bytes: checkpoint,
    };
    columns.lists = ListColumns::deferred(entries, entry_ranges, touch_ranges, seq_ranges, deferred);
    Ok(Timeline {
        names,
        columns,
        moved: Vec::new(),
        lists: Vec::new(),
        latest_at,
        latest_recorded_at,
        index: std::sync::OnceLock::new(),
        current: Default::default(),
    })
}

/// The deals' table of a checkpoint: ids and currencies, and where each deal's entries, touches
/// and seqs are; `sums`: how many of each in all.
struct DealTable {
    columns: Columns,
    entry_ranges: Ranges,
    touch_ranges: Ranges,
    seq_ranges: Ranges,
    sums: (usize, usize, usize),
}

fn deal_table(ids: &[&str], table: &[u8]) -> Result<DealTable, String> {
    let deals_n = ids.len();
    let mut columns = Columns {
        ids: String::with_capacity(ids.iter().map(|id| id.len()).sum()),
        id_ranges: Ranges::with_capacity(deals_n),
        currencies: Vec::with_capacity(deals_n),
        lists: ListColumns::default(),
    };
    let (mut entry_ranges, mut touch_ranges, mut seq_ranges) =
        (Ranges::with_capacity(deals_n), Ranges::with_capacity(deals_n), Ranges::with_capacity(deals_n));
    let (mut entries_sum, mut touches_sum, mut seqs_sum) = (0usize, 0usize, 0usize);
    let add = |sum: &mut usize, n: u32| -> Result<usize, String> {
        *sum = sum.checked_add(n as usize).ok_or("the deals' counts overflow")?;
        Ok(*sum)
    };
    for (id, deal) in ids.iter().zip(table.chunks_exact(DEAL_BYTES)) {
        DealId::check(id).map_err(|why| why.to_string())?;
        let currency = Currency(
            deal.get(0..3)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("deal `{id}` has no currency"))?,
        );
        if !currency.0.iter().all(u8::is_ascii_uppercase) {
            return Err(format!("deal `{id}` has currency bytes {:?}", currency.0));
        }
        let (entries, touches, seqs) = (u32_at(deal, 3), u32_at(deal, 7), u32_at(deal, 11));
        if entries == 0 {
            return Err(format!("deal `{id}` has no entries"));
        }
        if (seqs as usize) < entries as usize + touches as usize {
            return Err(format!("deal `{id}` has fewer seqs than events"));
        }
        columns.ids.push_str(id);
        columns.id_ranges.push(columns.ids.len());
        columns.currencies.push(currency);
        entry_ranges.push(add(&mut entries_sum, entries)?);
        touch_ranges.push(add(&mut touches_sum, touches)?);
        seq_ranges.push(add(&mut seqs_sum, seqs)?);
    }
    let sums = (entries_sum, touches_sum, seqs_sum);
    Ok(DealTable { columns, entry_ranges, touch_ranges, seq_ranges, sums })
}

/// Every deal's touch records: each one valid, its instants taken into `latest`, in time order
/// within its deal. `done(end)`: the records before byte `end` are checked.
fn check_touches(
    ids: &[&str],
    touches: &[u8],
    ranges: &Ranges,
    latest: &mut (Timestamp, Timestamp),
    mut done: impl FnMut(usize),
) -> Result<(), String> {
    for (i, id) in ids.iter().enumerate() {
        let range = ranges.range(i);
        let records = touches.get(range.start * TOUCH_BYTES..range.end * TOUCH_BYTES);
        let mut previous = Timestamp::MIN;
        for record in records.unwrap_or_default().chunks_exact(TOUCH_BYTES) {
            let touch = touch_of(record)?;
            check_instants(id, touch.at, touch.recorded_at, latest)?;
            if touch.at < previous {
                return Err(format!("deal `{id}`'s touches are not in time order"));
            }
            previous = touch.at;
        }
        done(range.end * TOUCH_BYTES);
    }
    Ok(())
}

/// How far a decode has read through its checkpoint: the pages behind it are given back as it
/// goes, a slab at a time, so that a checkpoint of hundreds of MB is never resident all at once.
struct Read<'a> {
    checkpoint: &'a MetaBytes,
    released: usize,
}

impl Read<'_> {
    const SLAB_BYTES: usize = 8 << 20;

    /// Everything before `at` has been read; a slab of it or more is given back.
    fn upto(&mut self, at: usize) {
        if at >= self.released + Self::SLAB_BYTES {
            self.finish(at);
        }
    }

    /// Everything before `at` has been read, and is given back.
    fn finish(&mut self, at: usize) {
        self.checkpoint.release_pages(self.released..at);
        self.released = at;
    }
}

/// Checks the seqs (ascending per deal) and offsets (u32) from `r`, giving pages back as it
/// goes; returns where they end.
fn check_seqs(
    checkpoint: &MetaBytes,
    base: usize,
    ids: &[&str],
    ranges: &Ranges,
    mut r: Reader<'_>,
) -> Result<usize, String> {
    let mut read = Read { checkpoint, released: base + r.at };
    for (i, id) in ids.iter().enumerate() {
        let mut seq = 0u64;
        for _ in ranges.range(i) {
            let delta = r.varint("seqs")?;
            seq = match seq.checked_add(delta) {
                Some(next) if delta > 0 => next,
                _ => return Err(format!("deal `{id}`'s seqs are not ascending")),
            };
        }
        read.upto(base + r.at);
    }
    for _ in 0..ranges.total() {
        let offset = r.varint("offsets")?;
        u32::try_from(offset).map_err(|_| format!("offset {offset} past 2^32"))?;
        read.upto(base + r.at);
    }
    read.finish(base + r.at);
    Ok(r.at)
}

/// The touch records [`decode`] checked.
pub(super) fn touches_from(records: &[u8]) -> Vec<Touch> {
    records
        .chunks_exact(TOUCH_BYTES)
        .map(|r| touch_of(r).expect("checked when the checkpoint was loaded"))
        .collect()
}

/// The seqs and offsets [`decode`] checked, deal by deal as `ranges` counts them.
pub(super) fn seqs_from(bytes: &[u8], ranges: &Ranges) -> SeqColumns {
    let total = ranges.total();
    let mut r = Reader { bytes, at: 0 };
    let mut columns = SeqColumns { seqs: Vec::with_capacity(total), offsets: Vec::with_capacity(total) };
    let mut deal = 0;
    while columns.seqs.len() < total {
        let mut seq = 0u64;
        for _ in ranges.range(deal) {
            seq += r.varint("seqs").expect("checked when the checkpoint was loaded");
            columns.seqs.push(seq);
        }
        deal += 1;
    }
    for _ in 0..total {
        let offset = r.varint("offsets").expect("checked when the checkpoint was loaded");
        columns.offsets.push(offset as u32);
    }
    columns
}

fn check_instants(
    id: &str,
    at: Timestamp,
    recorded_at: Timestamp,
    latest: &mut (Timestamp, Timestamp),
) -> Result<(), String> {
    if !at.is_valid() || !recorded_at.is_valid() {
        return Err(format!("deal `{id}` has an instant outside years 0000 to 9999"));
    }
    latest.0 = latest.0.max(at);
    latest.1 = latest.1.max(recorded_at);
    Ok(())
}

/// Every id once: hashes sorted (ids compared only where hashes tie), not a set of strings.
fn check_distinct(ids: &[&str]) -> Result<(), String> {
    let mut keyed: Vec<(u64, &str)> = ids.iter().map(|id| (super::contact_key(id), *id)).collect();
    keyed.sort_unstable();
    match keyed.windows(2).find_map(|w| match w {
        [a, b] if a == b => Some(a.1),
        _ => None,
    }) {
        Some(id) => Err(format!("deal `{id}` appears twice")),
        None => Ok(()),
    }
}

/// What the entries must say of each deal: one `opened` first, names in range, `at` order,
/// valid instants. Returns the latest instants they hold.
fn check_entries(
    ids: &[&str],
    entries: &[Entry],
    ranges: &Ranges,
    names: usize,
) -> Result<(Timestamp, Timestamp), String> {
    let name = |name: Name, deal: &str| match (name as usize) < names {
        true => Ok(()),
        false => Err(format!("deal `{deal}` names string {name} of {names}")),
    };
    let mut latest = (Timestamp::MIN, Timestamp::MIN);
    for (deal, id) in ids.iter().enumerate() {
        let list = entries.get(ranges.range(deal)).unwrap_or_default();
        for (i, entry) in list.iter().enumerate() {
            match entry.change {
                Change::Opened { stage, owner, .. } if i == 0 => {
                    name(stage, id)?;
                    name(owner, id)?;
                }
                Change::Opened { .. } => return Err(format!("deal `{id}` is opened twice")),
                _ if i == 0 => return Err(format!("deal `{id}` does not start with its `opened`")),
                Change::Moved { to: n } | Change::Owner { owner: n } | Change::Field { field: n, .. } => {
                    name(n, id)?
                }
                Change::Requalified { stage: Some(n) } => name(n, id)?,
                _ => {}
            }
            check_instants(id, entry.at, entry.recorded_at, &mut latest)?;
        }
        if !list.is_sorted_by_key(|e| e.at) {
            return Err(format!("deal `{id}`'s history is not in time order"));
        }
    }
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_lists_are_stored_by_their_index_in_all() {
        // Encoding writes `as u8`, decoding reads `ALL[i]`: the two must agree.
        for (i, channel) in Channel::ALL.iter().enumerate() {
            assert_eq!(*channel as usize, i);
        }
        for (i, reason) in DqReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
            let entry = Entry {
                at: Timestamp(1),
                recorded_at: Timestamp(2),
                change: Change::Disqualified { reason: *reason },
            };
            assert_eq!(entry_of(&entry_bytes(&entry)), Ok(entry));
        }
    }

    #[test]
    fn varints_are_minimal_and_at_most_64_bits() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut bytes = Vec::new();
            put_varint(&mut bytes, value);
            let mut at = 0;
            assert_eq!((varint_at(&bytes, &mut at), at), (Some(value), bytes.len()));
        }
        for bad in [
            &[0x80, 0x00][..],
            &[0x80],
            &[0xff; 10],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            &[],
        ] {
            assert_eq!(varint_at(bad, &mut 0), None, "{bad:?}");
        }
    }
}

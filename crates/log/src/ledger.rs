//! The write side: decides which submitted events are stored, numbers them and appends them.
//!
//! On open the ledger replays its log once to rebuild what deciding needs: every deal's
//! lifecycle ([`Deals`]) and the idempotency index (each event's identity to its seq and body
//! hash). Both are derived from the log alone, so they can never disagree with it after a crash.
//!
//! An event's identity is its `source_id` when it has one. One without is identified by its
//! content: the deal, the type, the time and every field (everything but `recorded_at`), so a
//! file loaded twice, or a request retried after an unknown outcome, stores nothing twice. Two
//! facts with the same content at the same microsecond are one fact; a source that means two
//! gives them `source_id`s.
//!
//! A [`Batch`] admits events one by one in memory, then [`Batch::commit`] seals them into blocks
//! and appends them in one durable, atomic store write. Dropping a batch without committing (or
//! a failed commit) undoes every in-memory change, so a batch is all or nothing.
//!
//! A commit whose outcome is unknown ([`LogError::Uncertain`]: the store may have kept the
//! blocks) leaves the ledger unable to tell what its next seq is, so it refuses every later
//! commit until [`Ledger::reopen`] has made the store durable and rebuilt the state from it.
//! The ledger never goes on deciding with state that may disagree with its store.

use crate::error::{Certainty, LogError};
use crate::log::{BlockWriter, Head, Log};
use crate::store::BlockStore;
use dealledger_events::codec::{encode_identity, encode_identity_ref};
use dealledger_events::{
    Amount, Body, Clock, Deals, Event, Pipeline, Rejection, Rule, Savepoint, Submission,
};

use crate::seen::{Digest128, Identity, Recorded, Seen, SeenIndex};

fn digest128(bytes: &[u8]) -> Digest128 {
    let hash = blake3::hash(bytes);
    u128::from_le_bytes(hash.as_bytes()[..16].try_into().expect("16 bytes"))
}

/// The identity of an event without a `source_id`: its identity bytes under a key of their
/// own, so that no content can take the identity of a `source_id` (a plain hash of its text).
fn content_key(identity: &[u8]) -> Digest128 {
    const KEY: &[u8; 32] = b"dealledger: identity by content.";
    let hash = blake3::keyed_hash(KEY, identity);
    u128::from_le_bytes(hash.as_bytes()[..16].try_into().expect("16 bytes"))
}

/// An event's identity and body digest from its identity bytes: the `source_id`'s hash and the
/// body's, or for an event without one the content key for both (the content is the body).
fn identity(source_id: Option<&str>, identity: &[u8]) -> (Identity, Digest128) {
    match source_id {
        Some(source_id) => (Identity::Source(digest128(source_id.as_bytes())), digest128(identity)),
        None => {
            let key = content_key(identity);
            (Identity::Content(key), key)
        }
    }
}

/// The identity bytes of a submitted event in the form the log will store it (opened's default
/// stage filled in, written amounts in minor units), left in `scratch`: the identities of stored
/// events are rebuilt from the log on open, so a retry after a restart must hash the same bytes
/// as the original.
fn submitted_identity(event: &Event, deals: &Deals, pipeline: &Pipeline, scratch: &mut Vec<u8>) {
    scratch.clear();
    let differs = matches!(
        &event.body,
        Body::Opened { stage: None, .. }
            | Body::AmountChanged { amount: Amount::Written(_) }
            | Body::Won { amount: Some(Amount::Written(_)) }
    );
    if !differs {
        encode_identity(event, scratch);
        return;
    }
    let mut stored = event.clone();
    match &mut stored.body {
        Body::Opened { stage, .. } => *stage = Some(pipeline.first().to_string()),
        Body::AmountChanged { amount } | Body::Won { amount: Some(amount) } => {
            // An amount that does not resolve is refused by admit; its identity does not matter.
            if let Some(currency) = deals.currency(&stored.deal) {
                let _ = amount.resolve(currency);
            }
        }
        _ => {}
    }
    encode_identity(&stored, scratch);
}

/// What happened to one submitted event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored as `seq`; the deal is at `version` after it.
    Appended { seq: u64, version: u32 },
    /// It was stored before (its `source_id` with the same body, or without one the same
    /// content), as `seq`, the deal then at `version`.
    Duplicate { seq: u64, version: u32 },
}

/// What a committed batch stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// First and last seq appended by this batch; `None` when everything was a duplicate.
    pub seqs: Option<(u64, u64)>,
    pub appended: u64,
    pub duplicates: u64,
    pub head: Head,
}

pub struct Ledger<S> {
    log: Log<S>,
    deals: Deals,
    seen: SeenIndex,
    pipeline: Pipeline,
    /// Whether the deciding state may be written from.
    standing: Standing,
    /// The last batch's block writer, for the next: its zstd context (about a MiB of tables)
    /// and buffers are made once, not at every group commit.
    spare_writer: Option<BlockWriter>,
}

/// The deciding state, rebuilt from the log alone.
fn rebuild<S: BlockStore>(log: &Log<S>) -> Result<(Deals, SeenIndex), LogError> {
    let mut deals = Deals::default();
    let mut seen = SeenIndex::default();
    apply_from(log, 1, &mut deals, &mut seen)?;
    Ok((deals, seen))
}

/// Folds the log's events from `from` into the deciding state.
fn apply_from<S: BlockStore>(
    log: &Log<S>,
    from: u64,
    deals: &mut Deals,
    seen: &mut SeenIndex,
) -> Result<(), LogError> {
    let mut scratch = Vec::new();
    log.scan_refs(from, |event| {
        deals.replay(event).map_err(|r| LogError::Corrupt { seq: event.seq, why: r.detail })?;
        scratch.clear();
        encode_identity_ref(event, &mut scratch);
        let (id, body) = identity(event.source_id, &scratch);
        seen.insert(id, Seen { seq: event.seq, version: event.version, body });
        Ok(true)
    })?;
    deals.commit();
    Ok(())
}

/// Whether a ledger's deciding state is the store's, so that it may commit.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Standing {
    /// It is: commits are allowed.
    Current,
    /// A standby's: it follows another writer's appends, and [`Ledger::resume`] (a takeover)
    /// brings it to the store's end before it commits.
    Following,
    /// A commit's outcome is unknown, or following failed: only a whole rebuild
    /// ([`Ledger::reopen`]) makes it current again. Says why.
    InDoubt(String),
}

impl Standing {
    fn why(&self) -> Option<&str> {
        match self {
            Standing::Current => None,
            Standing::Following => Some("following another writer"),
            Standing::InDoubt(why) => Some(why),
        }
    }

    /// Doubt stays until a rebuild clears it; anything else becomes `to`.
    fn unless_in_doubt(&mut self, to: Standing) {
        if !matches!(self, Standing::InDoubt(_)) {
            *self = to;
        }
    }
}

impl<S: BlockStore> Ledger<S> {
    /// Opens the log and rebuilds the deciding state from it. A log that ends below its
    /// high-water mark (acknowledged events gone) is refused: writing to it would give their
    /// sequence numbers to other events.
    pub fn open(store: S, pipeline: Pipeline) -> Result<Ledger<S>, LogError> {
        let log = Log::open(store)?;
        log.check_mark()?;
        let (deals, seen) = rebuild(&log)?;
        Ok(Ledger { log, deals, seen, pipeline, standing: Standing::Current, spare_writer: None })
    }

    /// After a commit whose outcome was unknown (or any doubt about the state): makes whatever
    /// the store holds durable, then rebuilds the deciding state from it. On error the ledger
    /// stays refusing commits, and `reopen` may be tried again.
    pub fn reopen(&mut self) -> Result<(), LogError> {
        self.standing.unless_in_doubt(Standing::InDoubt("reopening".into()));
        self.log.reload()?;
        self.log.check_mark()?;
        self.log.sync()?;
        (self.deals, self.seen) = rebuild(&self.log)?;
        self.standing = Standing::Current;
        Ok(())
    }

    /// For a standby that follows another writer: reads where the log ends now, without
    /// writing, and folds what was appended since into the deciding state (a whole rebuild if
    /// the log no longer holds the head it had). Commits are refused until [`Ledger::resume`]
    /// (a standby's takeover).
    pub fn follow(&mut self) -> Result<Head, LogError> {
        self.standing.unless_in_doubt(Standing::Following);
        let before = self.log.head();
        let followed = (|| {
            self.log.reload()?;
            let head = self.log.head();
            if self.standing == Standing::Following && head != before {
                // The deciding state follows too, so that a takeover needs only the tail: the
                // events after the head it was built at, if the log still holds that head.
                let extends = head.seq > before.seq
                    && (before.seq == 0 || self.log.chain_after(before.seq)? == Some(before.chain));
                if extends {
                    apply_from(&self.log, before.seq + 1, &mut self.deals, &mut self.seen)?;
                } else {
                    (self.deals, self.seen) = rebuild(&self.log)?;
                }
            }
            Ok(head)
        })();
        if let Err(e) = &followed {
            // The head may have moved past events the state has not taken in: only a whole
            // rebuild (`reopen`) may make this ledger write again.
            self.standing = Standing::InDoubt(format!("following failed: {e}"));
        }
        followed
    }

    /// A standby's takeover: the deciding state brought to the store's end (only the events
    /// since it last followed, when it was only following), the store made durable and its
    /// mark checked; then commits are allowed. After any other doubt it is a full [`Ledger::reopen`].
    pub fn resume(&mut self) -> Result<(), LogError> {
        match self.standing {
            Standing::Current | Standing::Following => {
                self.standing = Standing::Following;
                self.follow()?;
                self.log.check_mark()?;
                self.log.sync()?;
                self.standing = Standing::Current;
                Ok(())
            }
            Standing::InDoubt(_) => self.reopen(),
        }
    }

    /// Why commits are refused, if they are: following another writer (until
    /// [`Ledger::resume`]), or in doubt (until [`Ledger::reopen`]).
    pub fn unsure(&self) -> Option<&str> {
        self.standing.why()
    }

    /// Whether only a whole rebuild ([`Ledger::reopen`]) lets this ledger commit again: a
    /// commit's outcome is unknown, or following failed.
    pub fn in_doubt(&self) -> bool {
        matches!(self.standing, Standing::InDoubt(_))
    }

    /// The log, giving up the writer (to reopen its store, as another process would).
    pub fn into_log(self) -> Log<S> {
        self.log
    }

    pub fn log(&self) -> &Log<S> {
        &self.log
    }

    pub fn deals(&self) -> &Deals {
        &self.deals
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Starts an atomic batch; `clock` gives the `recorded_at` of events that have none.
    pub fn batch(&mut self, clock: &dyn Clock) -> Batch<'_, S> {
        let now = clock.now();
        let writer = match self.spare_writer.take() {
            Some(spare) => self.log.block_writer_reusing(spare),
            None => self.log.block_writer(),
        };
        let savepoint = self.deals.savepoint();
        Batch {
            ledger: self,
            writer,
            savepoint,
            now,
            appended_by: None,
            new_ids: Recorded::default(),
            appended: 0,
            duplicates: 0,
            scratch: Vec::new(),
            done: false,
        }
    }
}

pub struct Batch<'l, S: BlockStore> {
    ledger: &'l mut Ledger<S>,
    writer: BlockWriter,
    savepoint: Savepoint,
    now: dealledger_events::Timestamp,
    /// Who the events pushed next are appended by (`Event::appended_by`).
    appended_by: Option<String>,
    new_ids: Recorded,
    appended: u64,
    duplicates: u64,
    scratch: Vec<u8>,
    done: bool,
}

impl<S: BlockStore> Batch<'_, S> {
    /// The name the events pushed from now on are appended by (the daemon's token of the
    /// request), never taken from their input.
    pub fn set_appended_by(&mut self, name: Option<&str>) {
        self.appended_by = name.map(str::to_string);
    }

    /// Admits one event. On `Err` the batch is as it was before the call and may go on (for
    /// `--skip-invalid`) or be dropped (all or nothing).
    pub fn push(&mut self, submission: Submission) -> Result<Outcome, Rejection> {
        let seq = self.writer.next_seq();
        let (outcome, admitted) = self.admit(submission, seq)?;
        if let Some((version, event)) = admitted {
            self.writer.push(version, &event);
        }
        Ok(outcome)
    }

    /// Admits a group of events as one atomic unit inside this batch (one request of a group
    /// commit): either every event is admitted, or none is and the error names the first bad
    /// one by its index in `group`.
    pub fn push_all(&mut self, group: Vec<Submission>) -> Result<Vec<Outcome>, (usize, Rejection)> {
        let deals_savepoint = self.ledger.deals.savepoint();
        let ids_before = self.new_ids.mark();
        let (appended_before, duplicates_before) = (self.appended, self.duplicates);
        let mut outcomes = Vec::with_capacity(group.len());
        let mut admitted = Vec::with_capacity(group.len());
        let mut seq = self.writer.next_seq();
        for (index, submission) in group.into_iter().enumerate() {
            match self.admit(submission, seq) {
                Ok((outcome, event)) => {
                    if let Some(event) = event {
                        admitted.push(event);
                        seq += 1;
                    }
                    outcomes.push(outcome);
                }
                Err(rejection) => {
                    self.ledger.deals.rollback(deals_savepoint);
                    self.new_ids.forget_since(ids_before, &mut self.ledger.seen);
                    (self.appended, self.duplicates) = (appended_before, duplicates_before);
                    return Err((index, rejection));
                }
            }
        }
        for (version, event) in &admitted {
            self.writer.push(*version, event);
        }
        Ok(outcomes)
    }

    fn admit(
        &mut self,
        mut submission: Submission,
        seq: u64,
    ) -> Result<(Outcome, Option<(u32, Event)>), Rejection> {
        submitted_identity(&submission.event, &self.ledger.deals, &self.ledger.pipeline, &mut self.scratch);
        let (id, body) = identity(submission.event.source_id.as_deref(), &self.scratch);
        if let Some(seen) = self.ledger.seen.get(id) {
            if seen.body == body {
                self.duplicates += 1;
                return Ok((Outcome::Duplicate { seq: seen.seq, version: seen.version }, None));
            }
            return Err(Rejection::field(
                Rule::IdempotencyConflict,
                "source_id",
                format!(
                    "`{}` was stored as seq {} with a different body",
                    submission.event.source_id.as_deref().unwrap_or_default(),
                    seen.seq
                ),
            ));
        }
        dealledger_events::validate::check_clock(&submission.event, self.now, &self.ledger.pipeline)?;
        let version = self.ledger.deals.admit(&mut submission, seq, self.now, &self.ledger.pipeline)?;
        // The ledger's own clock, whatever the source said: the audit's record of when it knew.
        submission.event.appended_at = Some(self.now);
        submission.event.appended_by.clone_from(&self.appended_by);
        self.ledger.seen.insert(id, Seen { seq, version, body });
        self.new_ids.push(id);
        self.appended += 1;
        Ok((Outcome::Appended { seq, version }, Some((version, submission.event))))
    }

    /// The deciding state, with what this batch admitted so far.
    pub fn deals(&self) -> &Deals {
        &self.ledger.deals
    }

    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Seals and stores everything admitted, durably, in one atomic write. On error nothing is
    /// kept in memory; [`LogError::Uncertain`] means the store may have kept it, and the ledger
    /// then refuses commits until [`Ledger::reopen`].
    pub fn commit(mut self) -> Result<Committed, LogError> {
        if let Some(why) = self.ledger.standing.why() {
            return Err(LogError::Store(format!(
                "an earlier write's outcome is unknown ({why}); the ledger must be reopened before it writes again"
            )));
        }
        let sealed = self.writer.finish();
        let first = self.ledger.log.head().seq + 1;
        let head = sealed.head;
        // Set while the store writes: a panic below (a bug in a backend) unwinds past the
        // clearing below and leaves the ledger refusing to write, as an unknown outcome must.
        self.ledger.standing = Standing::InDoubt("a write was interrupted".into());
        if let Err(e) = self.ledger.log.append(sealed) {
            self.ledger.standing = match e.certainty() {
                Certainty::NothingStored => Standing::Current,
                Certainty::Unknown => Standing::InDoubt(e.to_string()),
            };
            return Err(e);
        }
        self.ledger.standing = Standing::Current;
        self.ledger.deals.commit();
        self.done = true;
        let seqs = (self.appended > 0).then_some((first, head.seq));
        Ok(Committed { seqs, appended: self.appended, duplicates: self.duplicates, head })
    }

    fn undo(&mut self) {
        self.ledger.deals.rollback(self.savepoint);
        self.new_ids.forget_all(&mut self.ledger.seen);
    }
}

impl<S: BlockStore> Drop for Batch<'_, S> {
    fn drop(&mut self) {
        if !self.done {
            self.undo();
        }
        let writer = std::mem::replace(&mut self.writer, BlockWriter::new(Head::EMPTY));
        self.ledger.spare_writer = Some(writer);
    }
}

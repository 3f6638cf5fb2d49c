//! The writer lease on JetStream: one KV entry (`writer` in the bucket `dealledger_L_lease`)
//! whose bucket keeps entries for the lease's time to live (`max_age`). Taking it is a create
//! (refused while an unexpired entry exists); renewing is an update conditional on the
//! revision this process wrote last, so a holder whose lease expired and was taken by another
//! cannot renew it back. Safety does not rest on it: appends are fenced by the stream's last
//! sequence (see [`dealledger_log::lease`]).

use crate::store::{again_while, creation_may_pass, JetStreamStore, SETTLE_RETRY_MS, SETTLE_WAIT_MS};
use async_nats::jetstream::{kv, stream, ErrorCode};
use bytes::Bytes;
use dealledger_log::lease::{Claim, Lease};
use dealledger_log::LogError;
use std::sync::Mutex;
use std::time::Duration;

const LEASE_KEY: &str = "writer";
/// The shortest TTL a bucket is made with: renewals need a few round trips of slack.
pub const LEASE_TTL_MS_MIN: u64 = 1_000;

pub struct JetStreamLease {
    runtime: tokio::runtime::Handle,
    kv: kv::Store,
    location: String,
    ttl: Duration,
    /// Who this process is, as other processes will read it.
    holder: Mutex<String>,
    /// The revision of the entry this process wrote last, while it holds the lease.
    revision: Mutex<Option<u64>>,
}

impl JetStreamStore {
    /// The writer lease of this ledger, for `holder` (a description naming the process and,
    /// for a daemon, its URL). The bucket is made with `ttl` if it does not exist; an existing
    /// bucket's TTL is the lease's (every process of a ledger must agree on it).
    pub fn lease(&self, holder: String, ttl: Duration, replicas: usize) -> Result<JetStreamLease, LogError> {
        let ttl = ttl.max(Duration::from_millis(LEASE_TTL_MS_MIN));
        let bucket = self.target().lease_bucket();
        let location = format!("{} (KV bucket {bucket}, key {LEASE_KEY})", self.target().url());
        let js = self.context();
        let description = format!("dealledger {}: the writer lease", self.target().ledger);
        let asked = ttl;
        let (kv, ttl) = self.run(async move {
            let kv = match js.get_key_value(&bucket).await {
                Ok(kv) => kv,
                Err(_) => {
                    let config = kv::Config {
                        bucket: bucket.clone(),
                        description,
                        history: 1,
                        max_age: ttl,
                        storage: stream::StorageType::File,
                        num_replicas: replicas,
                        ..Default::default()
                    };
                    let wait = Duration::from_millis(SETTLE_WAIT_MS);
                    again_while(&bucket, creation_may_pass, wait, || js.create_key_value(config.clone()))
                        .await
                        .map_err(|e| LogError::Store(format!("cannot create the KV bucket {bucket}: {e}")))?
                }
            };
            let status =
                kv.status().await.map_err(|e| LogError::Store(format!("the KV bucket {bucket}: {e}")))?;
            let ttl = status.max_age();
            if ttl.is_zero() {
                return Err(LogError::Store(format!(
                    "the KV bucket {bucket} keeps entries forever (max_age 0): a lease would never expire"
                )));
            }
            Ok((kv, ttl))
        })?;
        if ttl != asked {
            tracing::warn!(
                bucket_ms = ttl.as_millis() as u64,
                asked_ms = asked.as_millis() as u64,
                "the writer lease's bucket was made with another TTL than [store] lease_ttl_ms asks: the bucket's holds, for every process of this ledger (docs/scale-out.md)"
            );
        }
        Ok(JetStreamLease {
            runtime: self.handle()?,
            kv,
            location,
            ttl,
            holder: Mutex::new(holder),
            revision: Mutex::new(None),
        })
    }
}

/// The lease's entry as the bucket's stream leader holds it.
struct LeaderEntry {
    /// Its revision: the stream sequence of the last message on the key.
    revision: u64,
    /// Who holds the lease; None when the last message is a release (a delete or a purge).
    holder: Option<Bytes>,
}

/// The last message on the lease's key, asked of the bucket's stream leader (`STREAM.MSG.GET`,
/// which only the leader answers); None when there is none (never written, or expired).
async fn leader_entry(kv: &kv::Store) -> Result<Option<LeaderEntry>, stream::LastRawMessageError> {
    let subject = format!("{}{LEASE_KEY}", kv.prefix);
    match kv.stream.get_last_raw_message_by_subject(&subject).await {
        Ok(message) => {
            let operation = message.headers.get(KV_OPERATION).map(|v| v.as_str().to_string());
            let released = matches!(operation.as_deref(), Some("DEL") | Some("PURGE"));
            Ok(Some(LeaderEntry {
                revision: message.sequence,
                holder: (!released).then_some(message.payload),
            }))
        }
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the servers answered that no stream holds the bucket: one just made that not every
/// server knows yet (its interest still spreading), or one being made again. Nothing was read or
/// written, so the claim asks again (the suite saw `ingest` fail on "no stream found for given
/// subject" right after it made the bucket).
fn bucket_unknown(error: &(dyn std::error::Error + 'static)) -> bool {
    use async_nats::jetstream::context::{PublishError, PublishErrorKind};
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<PublishError>().is_some_and(|e| e.kind() == PublishErrorKind::StreamNotFound) {
            return true;
        }
        if let Some(e) = e.downcast_ref::<stream::LastRawMessageError>() {
            if let stream::LastRawMessageErrorKind::JetStream(e) = e.kind() {
                return e.error_code() == ErrorCode::STREAM_NOT_FOUND;
            }
        }
        if e.downcast_ref::<async_nats::jetstream::Error>()
            .is_some_and(|e| e.error_code() == ErrorCode::STREAM_NOT_FOUND)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Whether a conditional write was refused because another write came first. The servers say
/// so with 10071, or, from a clustered stream's leader, 10164 (both "wrong last sequence");
/// async-nats calls only the first `WrongLastRevision` and leaves the second `Other`, which made
/// a lost race look like a failure (seen in a loop of the suite under load).
fn lost_to_another_write(error: &kv::UpdateError) -> bool {
    if error.kind() == kv::UpdateErrorKind::WrongLastRevision {
        return true;
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = next {
        if let Some(e) = e.downcast_ref::<async_nats::jetstream::Error>() {
            return [ErrorCode::STREAM_WRONG_LAST_SEQUENCE, ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT]
                .contains(&e.error_code());
        }
        next = e.source();
    }
    false
}

/// The header a KV bucket's message carries its operation in (absent on a put).
const KV_OPERATION: &str = "KV-Operation";

impl JetStreamLease {
    fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, LogError>> + Send + 'static,
    ) -> Result<T, LogError> {
        // A lease's claim that failed stored nothing this process relies on: the next one says.
        crate::store::wait(&self.runtime, work).map_err(LogError::Store)?
    }
}

impl Lease for JetStreamLease {
    fn claim(&self) -> Result<Claim, LogError> {
        let kv = self.kv.clone();
        let value =
            Bytes::from(self.holder.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone());
        let held = *self.revision.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let location = self.location.clone();
        let failed = move |e: &dyn std::fmt::Display| LogError::Store(format!("{location}: {e}"));
        // A claim that takes longer than a renewal's share of the TTL is given up (the lease is
        // still this process's if it was): a hung request must not outlast the lease. It
        // returns the claim and the revision to keep for the next one (kept through an error:
        // a lease whose renewal timed out is still this process's until it expires).
        let limit = self.ttl / dealledger_log::lease::RENEWALS_PER_TTL;
        let (claim, revision) = self.run(async move {
            // An unknown bucket is asked about again until half the bound, then named.
            let deadline = tokio::time::Instant::now() + limit / 2;
            let again = |e: &(dyn std::error::Error + 'static)| {
                bucket_unknown(e) && tokio::time::Instant::now() < deadline
            };
            let pause = || tokio::time::sleep(Duration::from_millis(SETTLE_RETRY_MS).min(limit / 8));
            let attempt = async move {
                type Claimed = Result<(Result<Claim, LogError>, Option<u64>), LogError>;
                if let Some(revision) = held {
                    if let Ok(revision) = kv.update(LEASE_KEY, value.clone(), revision).await {
                        return Claimed::Ok((Ok(Claim::Held), Some(revision)));
                    }
                }
                // Not renewed (not held, or the write failed, or its answer was lost): the entry
                // as the bucket's leader holds it says whose the lease is. Never a direct get
                // (what `kv.entry` and `kv.create` read), which any replica answers, one that
                // may not have seen the last claim or release yet: the suite saw a claim right
                // after a release answered with the released holder's name.
                // A read, so one that goes unanswered is asked again too: a request sent while
                // the bucket's stream is being made can go unanswered (tests/lease.rs, a_claim_waits_...).
                let entry = loop {
                    match tokio::time::timeout(limit / 4, leader_entry(&kv)).await {
                        Ok(Ok(entry)) => break entry,
                        Ok(Err(e)) if again(&e) => pause().await,
                        Ok(Err(e)) => return Ok((Err(failed(&e)), held)),
                        Err(_) if tokio::time::Instant::now() < deadline => {}
                        Err(_) => {
                            let why = format!(
                                "the lease's entry was not read within {} ms",
                                (limit / 4).as_millis()
                            );
                            return Ok((Err(failed(&why)), held));
                        }
                    }
                };
                // Written over exactly the revision read: if another process wrote since, the
                // write fails and the lease is theirs.
                let (over, whose) = match entry {
                    // This process's own entry (a write whose answer was lost): renew from it.
                    Some(LeaderEntry { revision, holder: Some(holder) }) if holder == value => {
                        (revision, None)
                    }
                    Some(LeaderEntry { holder: Some(holder), .. }) => {
                        return Ok((Ok(Claim::Other(String::from_utf8_lossy(&holder).into_owned())), None))
                    }
                    // Released (a delete marker): take it over the marker.
                    Some(LeaderEntry { revision, holder: None }) => {
                        (revision, Some("a process that took it just now"))
                    }
                    // Never written, or expired: take it.
                    None => (0, Some("a process that took it just now")),
                };
                let written = loop {
                    match kv.update(LEASE_KEY, value.clone(), over).await {
                        Err(e) if again(&e) => pause().await,
                        written => break written,
                    }
                };
                match written {
                    Ok(revision) => Ok((Ok(Claim::Held), Some(revision))),
                    Err(e) if lost_to_another_write(&e) => Ok((
                        Ok(Claim::Other(whose.unwrap_or("another process, since this one last read").into())),
                        None,
                    )),
                    Err(e) => Ok((Err(failed(&e)), held.or(Some(over).filter(|_| whose.is_none())))),
                }
            };
            match tokio::time::timeout(limit, attempt).await {
                Ok(claimed) => claimed,
                Err(_) => Ok((
                    Err(LogError::Store(format!(
                        "claiming the writer lease took more than {} ms",
                        limit.as_millis()
                    ))),
                    held,
                )),
            }
        })?;
        *self.revision.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = revision;
        claim
    }

    fn release(&self) {
        let Some(revision) = self.revision.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
        else {
            return;
        };
        let kv = self.kv.clone();
        // Only the entry this process wrote: a lease already taken by another stays theirs.
        if let Err(e) = self.run(async move {
            kv.delete_expect_revision(LEASE_KEY, Some(revision))
                .await
                .map_err(|e| LogError::Store(e.to_string()))
        }) {
            tracing::warn!(error = %e, "releasing the writer lease failed; it expires by itself");
        }
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn set_holder(&self, holder: String) {
        *self.holder.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = holder;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a panic is a failing test")]
    use super::*;
    use async_nats::jetstream::context::{PublishError, PublishErrorKind};

    #[test]
    fn a_write_that_lost_the_race_is_told_apart_whichever_code_says_so() {
        let server = |code: u64| -> async_nats::jetstream::Error {
            serde_json::from_str(&format!(
                r#"{{"code":400,"err_code":{code},"description":"wrong last sequence"}}"#
            ))
            .unwrap()
        };
        // As async-nats reports a publish refused by the servers, inside the update's error.
        let refused = |code| {
            kv::UpdateError::with_source(
                kv::UpdateErrorKind::Other,
                PublishError::with_source(PublishErrorKind::Other, server(code)),
            )
        };
        assert!(lost_to_another_write(&refused(10164)), "clustered: wrong last sequence (constant)");
        assert!(lost_to_another_write(&refused(10071)));
        assert!(lost_to_another_write(&kv::UpdateError::new(kv::UpdateErrorKind::WrongLastRevision)));
        assert!(!lost_to_another_write(&refused(10077)), "another refusal is a failure");
        assert!(!lost_to_another_write(&kv::UpdateError::new(kv::UpdateErrorKind::TimedOut)));
    }
}

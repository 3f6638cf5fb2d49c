//! [`JetStreamStore`]: the log's blocks as messages of one JetStream stream.
//!
//! Layout, per ledger `L` (names in [`Target`]):
//! - stream `DEALLEDGER_L`, subject `dealledger.L.blocks`: one message per sealed block, in log
//!   order (stream sequence n is the n-th block). Each carries `Dealledger-First` and
//!   `Dealledger-Last` (its first and last event seq) as headers, so that the store can index
//!   the stream by reading headers only. The stream denies deletes and purges: a block is never
//!   removed or rewritten.
//! - KV bucket `dealledger_L_mark`, key `mark`: the high-water mark.
//! - object store `dealledger_L_meta`: metadata values (checkpoints), chunked by the object
//!   store and replaced whole (its info message is written last, so a reader sees the old value
//!   or the new one).
//!
//! The append condition: every append carries `Nats-Expected-Last-Sequence`, the stream
//! sequence of the block that ends where the appended blocks begin, taken from the blocks this
//! process saw, never from the stream's current end. Two writers can therefore never interleave:
//! the second one's condition fails ([`LogError::Fenced`]) and nothing of its write is stored. An
//! append of several blocks is one atomic batch (`Nats-Batch-Id`, ADR-50): all of it or none.
//!
//! Durability is the servers': an acknowledgement from a stream of R replicas means a quorum
//! stored the message, and it is on their disks only if they sync before acknowledging
//! (`jetstream { sync_interval: always }`). [`JetStreamStore::open`] refuses a stream that
//! keeps messages in memory or persists them asynchronously, and servers whose monitoring
//! endpoint says they do not sync always (docs/scale-out.md).

use crate::target::{Options, Target};
use async_nats::jetstream::{self, kv, object_store, stream};
use bytes::Bytes;
use dealledger_log::{block, BlockStore, BlockVisitor, Head, LogError};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Headers every block message carries: its first and last event seq.
const HEADER_FIRST: &str = "Dealledger-First";
const HEADER_LAST: &str = "Dealledger-Last";
/// Blocks in one atomic append, at most (the servers take up to 1,000 messages in a batch).
pub const APPEND_BLOCKS_MAX: usize = 1_000;
/// Blocks fetched ahead of a scan's visitor, at most (each at most 96 KiB).
const SCAN_BLOCKS_IN_FLIGHT_MAX: usize = 16;
/// New blocks read one get each when the index catches up (a standby following a writer);
/// more are read through a consumer of headers only.
const REFRESH_BY_GET_MAX: u64 = 64;
/// Tries of a read through a consumer (its creation can fail while a leader is elected).
const READ_TRIES_MAX: u64 = 5;
/// Largest metadata value read (a checkpoint at 10 M events is ~400 MB).
const META_BYTES_MAX: u64 = 4 << 30;
/// The object store's chunk: large enough that a checkpoint of hundreds of MB is a few
/// thousand messages, small enough to stay far below the servers' payload limit.
const META_CHUNK_BYTES: usize = 512 * 1024;
/// How long making a ledger's stream or buckets, and the first read of a bucket just made, go
/// on while the servers give an answer that passes by itself: a peer offline (the meta leader
/// learns of a node that has just started or come back a few seconds after it joins), no answer
/// in time (a change of meta leader), nobody serving a bucket's reads yet. Each was seen on a
/// fresh cluster in CI or in a loop of the suite.
pub(crate) const SETTLE_WAIT_MS: u64 = 15_000;
pub(crate) const SETTLE_RETRY_MS: u64 = 250;
const MARK_KEY: &str = "mark";
/// An object never stored, asked for to learn that the object store answers.
const READY_PROBE: &str = "dealledger-ready-probe";
const MARK_MAGIC: &str = "dealledger high-water mark 1";

/// Where each block is: position i holds the (first, last) event seqs of stream sequence i + 1.
#[derive(Default)]
struct Index {
    blocks: Vec<(u64, u64)>,
}

impl Index {
    /// Stream sequences are 1-based positions in `blocks`.
    fn stream_seq(position: usize) -> u64 {
        position as u64 + 1
    }

    /// The position of the block holding `seq`, if the index reaches it.
    fn holding(&self, seq: u64) -> Option<usize> {
        let after = self.blocks.partition_point(|(first, _)| *first <= seq);
        after.checked_sub(1)
    }
}

struct Inner {
    target: Target,
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    mark: kv::Store,
    meta: object_store::ObjectStore,
    /// Held across an append's publish, so that appends of one process are ordered.
    index: tokio::sync::Mutex<Index>,
    /// The revision of the mark this process wrote or read last: the next mark is written
    /// only over it, so that a slow writer's mark never moves the mark back.
    mark_revision: std::sync::Mutex<Option<u64>>,
}

/// A [`BlockStore`] on a JetStream stream (see the module's documentation).
pub struct JetStreamStore {
    inner: Arc<Inner>,
    /// The store's own runtime: [`BlockStore`] is synchronous, and its callers may be threads of
    /// another runtime; every call is spawned here and waited for, so it works from any thread.
    runtime: Option<tokio::runtime::Runtime>,
}

/// Spawns `work` on the runtime of `handle` and waits for it from this thread, whatever it is
/// (a plain thread, or a thread of another runtime, where tokio's own blocking waits panic).
/// Err when the task failed (it panicked, or the runtime is shutting down).
pub(crate) fn wait<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    futures_executor::block_on(handle.spawn(work)).map_err(|e| format!("the NATS client's task failed: {e}"))
}

fn store_error<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> LogError + '_ {
    move |e| LogError::Store(format!("{what}: {e}"))
}

impl JetStreamStore {
    /// Connects to the ledger at `target`. With `create`, makes its stream and buckets where
    /// they do not exist (with `options.replicas`); without, a ledger that does not exist is an
    /// error. Refuses a stream or servers that would acknowledge what they have not synced.
    pub fn open(target: &Target, options: &Options, create: bool) -> Result<JetStreamStore, LogError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dealledger-nats")
            .enable_all()
            .build()
            .map_err(|e| LogError::Store(format!("cannot start the NATS client's runtime: {e}")))?;
        let connect = connect(target.clone(), options.clone(), create);
        // Waited for from outside the runtime, as every call is: a caller may be a thread of
        // another runtime, where `Runtime::block_on` would panic.
        let inner = wait(runtime.handle(), connect).map_err(LogError::Store)??;
        let store = JetStreamStore { inner: Arc::new(inner), runtime: Some(runtime) };
        check_servers(&store.inner.target, options)?;
        store.call(|inner| async move { refresh(&inner).await })?;
        Ok(store)
    }

    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    pub(crate) fn context(&self) -> jetstream::Context {
        self.inner.js.clone()
    }

    pub(crate) fn handle(&self) -> Result<tokio::runtime::Handle, LogError> {
        Ok(self
            .runtime
            .as_ref()
            .ok_or_else(|| LogError::Store("the store is closed".into()))?
            .handle()
            .clone())
    }

    /// Runs `work` on the store's runtime and waits for it, from any thread. A task that failed
    /// (it panicked) may have written: its outcome is unknown.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, LogError>> + Send + 'static,
    ) -> Result<T, LogError> {
        wait(&self.handle()?, work).map_err(LogError::Uncertain)?
    }

    /// [`JetStreamStore::run`] of work on the store's connection and streams.
    fn call<T, F>(&self, work: impl FnOnce(Arc<Inner>) -> F) -> Result<T, LogError>
    where
        F: std::future::Future<Output = Result<T, LogError>> + Send + 'static,
        T: Send + 'static,
    {
        self.run(work(self.inner.clone()))
    }

    /// The stream's bytes, its buckets' bytes, as the servers count them (one replica).
    async fn bytes(inner: Arc<Inner>) -> Result<u64, LogError> {
        let mut total = 0u64;
        for name in [
            inner.target.stream_name(),
            format!("KV_{}", inner.target.mark_bucket()),
            format!("OBJ_{}", inner.target.meta_bucket()),
        ] {
            // A stream asked again while it has no leader, rather than counted as none.
            let bytes = again_if(&name, settle(), || async {
                let mut stream = match inner.js.get_stream(&name).await {
                    Ok(stream) => stream,
                    Err(e) if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref e) if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) => {
                        return Ok(0)
                    }
                    Err(e) => return Err(judged(e, |e| LogError::Store(format!("{name}: {e}")))),
                };
                let info = stream.info().await.map_err(|e| judged(e, |e| LogError::Store(format!("{name}: {e}"))))?;
                Ok(info.state.bytes)
            })
            .await?;
            total = total.saturating_add(bytes);
        }
        Ok(total)
    }
}

impl Drop for JetStreamStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which a caller on another runtime's thread may not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A client of the servers of `target`, as `options` say (credentials, TLS, timeouts).
async fn client(target: &Target, options: &Options) -> Result<async_nats::Client, LogError> {
    let url = target.url();
    let mut connect = match &options.credentials {
        Some(path) => async_nats::ConnectOptions::with_credentials_file(path).await.map_err(|e| {
            LogError::Store(format!("cannot read the NATS credentials file {}: {e}", path.display()))
        })?,
        None => async_nats::ConnectOptions::new(),
    };
    if let Some(token) = &options.token {
        connect = connect.token(token.clone());
    }
    if let Some(ca) = &options.tls_ca {
        connect = connect.add_root_certificates(ca.clone());
    }
    connect = connect
        .name("dealledger")
        .require_tls(target.tls)
        .connection_timeout(options.request_timeout)
        .request_timeout(Some(options.request_timeout))
        .max_reconnects(None);
    let scheme = if target.tls { "tls" } else { "nats" };
    let addrs: Vec<async_nats::ServerAddr> = target
        .servers
        .iter()
        .map(|host| format!("{scheme}://{host}").parse())
        .collect::<Result<_, _>>()
        .map_err(|e| LogError::Store(format!("{url}: {e}")))?;
    connect.connect(addrs).await.map_err(|e| LogError::Store(format!("cannot connect to {url}: {e}")))
}

async fn connect(target: Target, options: Options, create: bool) -> Result<Inner, LogError> {
    let url = target.url();
    let client = client(&target, &options).await?;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(options.request_timeout);
    let stream = open_stream(&js, &target, &options, create).await?;
    let mark_config = kv::Config {
        bucket: target.mark_bucket(),
        description: format!("dealledger {}: the high-water mark", target.ledger),
        history: 8,
        storage: stream::StorageType::File,
        num_replicas: options.replicas,
        ..Default::default()
    };
    let wait = Duration::from_millis(SETTLE_WAIT_MS);
    let mark_bucket = target.mark_bucket();
    let mark = match again_while(&mark_bucket, request_may_pass, wait, || js.get_key_value(&mark_bucket))
        .await
    {
        Ok(kv) => kv,
        Err(_) if create => again_while(&mark_config.bucket, creation_may_pass, wait, || {
            js.create_key_value(mark_config.clone())
        })
        .await
        .map_err(|e| {
            LogError::Store(format!("{url}: cannot create the KV bucket {}: {e}", target.mark_bucket()))
        })?,
        Err(e) => return Err(LogError::Store(format!("{url}: the KV bucket {}: {e}", target.mark_bucket()))),
    };
    let meta_config = object_store::Config {
        bucket: target.meta_bucket(),
        description: Some(format!("dealledger {}: checkpoints", target.ledger)),
        storage: stream::StorageType::File,
        num_replicas: options.replicas,
        ..Default::default()
    };
    let meta_bucket = target.meta_bucket();
    let meta = match again_while(&meta_bucket, request_may_pass, wait, || js.get_object_store(&meta_bucket))
        .await
    {
        Ok(store) => store,
        Err(_) if create => again_while(&meta_config.bucket, creation_may_pass, wait, || {
            js.create_object_store(meta_config.clone())
        })
        .await
        .map_err(|e| {
            LogError::Store(format!("{url}: cannot create the object store {}: {e}", target.meta_bucket()))
        })?,
        Err(e) => {
            return Err(LogError::Store(format!("{url}: the object store {}: {e}", target.meta_bucket())))
        }
    };
    if create {
        // The buckets' replicas answer reads themselves, and subscribe to them a moment after a
        // bucket is made: until one has, a read gets "no responders". Wait for one, so that the
        // first read of a ledger just made finds it.
        again_while(&mark_config.bucket, request_may_pass, wait, || mark.get(MARK_KEY))
            .await
            .map_err(|e| LogError::Store(format!("{url}: the KV bucket {}: {e}", mark_config.bucket)))?;
        match again_while(&meta_config.bucket, request_may_pass, wait, || meta.info(READY_PROBE)).await {
            Err(e) if e.kind() != object_store::InfoErrorKind::NotFound => {
                return Err(LogError::Store(format!("{url}: the object store {}: {e}", meta_config.bucket)))
            }
            _ => {}
        }
    }
    Ok(Inner {
        target,
        client,
        js,
        stream,
        mark,
        meta,
        index: tokio::sync::Mutex::new(Index::default()),
        mark_revision: std::sync::Mutex::new(None),
    })
}

/// Whether `error` (a creation's, however wrapped: a bucket's error holds its stream's) may pass
/// if the creation is asked again: the servers' "no suitable peers for placement", which passes
/// once every peer is known again, or no answer in time (the request met a change of the meta
/// leader; the same settings asked again return what the first request may have made).
pub(crate) fn creation_may_pass(error: &(dyn std::error::Error + 'static)) -> bool {
    use jetstream::context::CreateStreamErrorKind;
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(e) = e.downcast_ref::<jetstream::context::CreateStreamError>() {
            return match e.kind() {
                CreateStreamErrorKind::JetStream(e) => {
                    e.error_code() == jetstream::ErrorCode::CLUSTER_NO_PEERS
                }
                CreateStreamErrorKind::TimedOut => true,
                _ => false,
            };
        }
        next = e.source();
    }
    false
}

/// Whether `error`, however wrapped, is a read that may be answered if asked again: no answer
/// in time (a change of leader), or nobody serving a bucket's reads (its replicas answer them
/// themselves, and subscribe to them a moment after the bucket is made).
fn request_may_pass(error: &(dyn std::error::Error + 'static)) -> bool {
    use async_nats::jetstream::context::RequestErrorKind as ApiErrorKind;
    // The servers' own answer while a stream or the cluster has no leader (a node lost, an
    // election under way): asked again, it is answered once one is elected.
    let between_leaders = |e: &jetstream::Error| {
        e.error_code() == jetstream::ErrorCode::CLUSTER_NOT_AVAILABLE
            || e.error_code() == jetstream::ErrorCode::CLUSTER_NOT_LEADER
    };
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(e) = e.downcast_ref::<stream::RawMessageError>() {
            if let stream::RawMessageErrorKind::JetStream(e) = e.kind() {
                return between_leaders(&e);
            }
        }
        if let Some(e) = e.downcast_ref::<jetstream::context::GetStreamError>() {
            if let jetstream::context::GetStreamErrorKind::JetStream(e) = e.kind() {
                return between_leaders(&e);
            }
        }
        if let Some(e) = e.downcast_ref::<std::io::Error>() {
            if e.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if let Some(e) = e.downcast_ref::<stream::DirectGetError>() {
            match e.kind() {
                stream::DirectGetErrorKind::ErrorResponse(status, _) => {
                    return status == async_nats::StatusCode::NO_RESPONDERS
                }
                stream::DirectGetErrorKind::TimedOut => return true,
                _ => {}
            }
        }
        // An API request nobody answers is a server without JetStream: an error at once.
        if let Some(e) = e.downcast_ref::<jetstream::context::RequestError>() {
            return e.kind() == ApiErrorKind::TimedOut;
        }
        if let Some(e) = e.downcast_ref::<async_nats::RequestError>() {
            return e.kind() == async_nats::RequestErrorKind::TimedOut;
        }
        next = e.source();
    }
    false
}

/// `work`, tried again every SETTLE_RETRY_MS while its error is one that `passing` says
/// passes by itself, until `wait` has passed. Any other answer is returned at once.
pub(crate) async fn again_while<T, E, F, Fut>(
    what: &str,
    passing: fn(&(dyn std::error::Error + 'static)) -> bool,
    wait: Duration,
    mut work: F,
) -> Result<T, E>
where
    E: std::error::Error + 'static,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    again_if(what, wait, || {
        let answer = work();
        async move {
            answer.await.map_err(|e| {
                let may_pass = passing(&e);
                (e, may_pass)
            })
        }
    })
    .await
}

/// `work`, tried again every SETTLE_RETRY_MS while it fails with an error it judged may pass
/// by itself (the `bool`: judged where the servers' typed error is at hand, before it becomes
/// text), until `wait` has passed; said once in the log. Any other answer is returned at once.
pub(crate) async fn again_if<T, E, F, Fut>(what: &str, wait: Duration, mut work: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, (E, bool)>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let mut warned = false;
    loop {
        match work().await {
            Err((e, true)) if tokio::time::Instant::now() < deadline => {
                if !warned {
                    tracing::warn!(what, error = %e, wait_ms = wait.as_millis() as u64, "the servers cannot answer yet (a node or a bucket is starting, or a leader is being elected): trying again");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(SETTLE_RETRY_MS)).await;
            }
            Ok(value) => return Ok(value),
            Err((e, _)) => return Err(e),
        }
    }
}

/// A read's error as `again_if` takes it: `error`, and whether `cause` (the servers' answer)
/// may pass if the read is asked again.
fn judged<E: std::error::Error + 'static>(cause: E, error: impl FnOnce(&E) -> LogError) -> (LogError, bool) {
    (error(&cause), request_may_pass(&cause))
}

/// How long a read goes on asking while the servers cannot answer yet (a node lost, its streams
/// electing leaders): as long as opening a ledger does.
fn settle() -> Duration {
    Duration::from_millis(SETTLE_WAIT_MS)
}

/// The stream's settings: what `open` creates, and what it requires of a stream it finds.
pub fn stream_config(target: &Target, replicas: usize) -> stream::Config {
    stream::Config {
        name: target.stream_name(),
        description: Some(format!("dealledger {}: sealed blocks of the event log, in order", target.ledger)),
        subjects: vec![target.subject()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: replicas,
        // A block is never removed: no limits, and deletes and purges refused by the servers.
        deny_delete: true,
        deny_purge: true,
        allow_atomic_publish: true,
        max_message_size: i32::try_from(block::BLOCK_STORED_BYTES_MAX + 4096).unwrap_or(i32::MAX),
        ..Default::default()
    }
}

async fn open_stream(
    js: &jetstream::Context,
    target: &Target,
    options: &Options,
    create: bool,
) -> Result<stream::Stream, LogError> {
    let url = target.url();
    let name = target.stream_name();
    let not_found = |e: &jetstream::context::GetStreamError| matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref e) if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND);
    let wait = Duration::from_millis(SETTLE_WAIT_MS);
    let stream = match again_while(&name, request_may_pass, wait, || js.get_stream(&name)).await {
        Ok(stream) => stream,
        Err(e) if not_found(&e) && create => {
            let config = stream_config(target, options.replicas);
            again_while(&name, creation_may_pass, wait, || js.create_stream(config.clone())).await.map_err(
                |e| {
                    LogError::Store(format!(
                        "{url}: cannot create the stream {name} with {} replicas ([store] replicas): {e}",
                        options.replicas
                    ))
                },
            )?
        }
        Err(e) if not_found(&e) => {
            return Err(LogError::Store(format!(
                "no ledger at {url} (the stream {name} does not exist): {e}"
            )))
        }
        Err(e) => return Err(LogError::Store(format!("{url}: cannot read the stream {name}: {e}"))),
    };
    // As the servers answered the get or the creation just now.
    let info = stream.cached_info();
    check_stream(target, &info.config, options.replicas)?;
    let state = &info.state;
    if state.messages > 0 && (state.first_sequence != 1 || state.deleted_count.unwrap_or(0) > 0) {
        return Err(LogError::Corrupt {
            seq: 0,
            why: format!(
                "the stream {name} does not hold every block since the first (its first message is {}, {} deleted): messages were removed",
                state.first_sequence,
                state.deleted_count.unwrap_or(0)
            ),
        });
    }
    Ok(stream)
}

/// Refuses a stream whose acknowledgements would not survive what a sled store survives, or
/// that could lose or rewrite blocks; warns where it is weaker than asked.
pub fn check_stream(target: &Target, config: &stream::Config, replicas: usize) -> Result<(), LogError> {
    let name = &config.name;
    let refuse = |why: String| {
        Err(LogError::Store(format!(
            "{}: refusing the stream {name}: {why} (docs/scale-out.md)",
            target.url()
        )))
    };
    if config.storage != stream::StorageType::File {
        return refuse("it keeps messages in memory, which a restart loses".into());
    }
    if config.persist_mode == Some(stream::PersistenceMode::Async) {
        return refuse("persist_mode is async: the servers acknowledge before they have stored".into());
    }
    if config.subjects != [target.subject()] {
        return refuse(format!("its subjects are {:?}, not [\"{}\"]", config.subjects, target.subject()));
    }
    if config.max_messages > 0 || config.max_bytes > 0 || config.max_age > std::time::Duration::ZERO {
        return refuse(
            "it has limits (max_msgs, max_bytes or max_age) under which the servers would remove blocks"
                .into(),
        );
    }
    if !config.allow_atomic_publish {
        return refuse("allow_atomic is off: an append of several blocks could be stored in part".into());
    }
    if !config.deny_delete || !config.deny_purge {
        tracing::warn!(stream = %name, "the stream allows deletes or purges: anyone with access could remove blocks (the chain would show it)");
    }
    if config.num_replicas < replicas {
        tracing::warn!(stream = %name, replicas = config.num_replicas, wanted = replicas, "the stream has fewer replicas than [store] replicas: losing one server may lose acknowledged events");
    }
    Ok(())
}

/// Reads each server's JetStream settings from its monitoring endpoint and refuses one that
/// acknowledges before it syncs. Without monitoring URLs nothing can be checked: a loud warning.
fn check_servers(target: &Target, options: &Options) -> Result<(), LogError> {
    if options.monitor.is_empty() {
        tracing::warn!(
            url = %target.url(),
            "cannot check that the NATS servers sync to disk before acknowledging: set [store] monitor to their monitoring URLs; a server without `jetstream {{ sync_interval: always }}` can lose acknowledged events in a power cut (docs/scale-out.md)"
        );
        return Ok(());
    }
    // A server that does not answer acknowledges nothing either: with a majority answering
    // (the stream's quorum), one node down is no reason to refuse, only to say so.
    let mut unreachable = Vec::new();
    for url in &options.monitor {
        let varz = format!("{}/varz", url.trim_end_matches('/'));
        let response = match ureq::get(&varz).timeout(options.request_timeout).call() {
            Ok(response) => response,
            Err(ureq::Error::Transport(e)) => {
                tracing::warn!(%varz, error = %e, "a NATS server does not answer: its sync setting is checked when it does");
                unreachable.push(varz);
                continue;
            }
            Err(e) => return Err(LogError::Store(format!("cannot read {varz} ([store] monitor): {e}"))),
        };
        let body: serde_json::Value = response
            .into_string()
            .map_err(|e| LogError::Store(format!("cannot read {varz} ([store] monitor): {e}")))
            .and_then(|text| {
                serde_json::from_str(&text).map_err(|e| LogError::Store(format!("{varz}: not JSON: {e}")))
            })?;
        let Some(config) = body.get("jetstream").and_then(|j| j.get("config")) else {
            return Err(LogError::Store(format!("{varz}: the server runs without JetStream")));
        };
        if config.get("sync_always") != Some(&serde_json::Value::Bool(true)) {
            return Err(LogError::Store(format!(
                "{varz}: the server does not sync to disk before acknowledging (sync_always is not true); set `jetstream {{ sync_interval: always }}` in its configuration: with the default it can lose acknowledged events in a power cut (docs/scale-out.md)"
            )));
        }
    }
    let answered = options.monitor.len() - unreachable.len();
    if answered < options.monitor.len() / 2 + 1 {
        return Err(LogError::Store(format!(
            "cannot check that the NATS servers sync before acknowledging: {} of {} ([store] monitor) do not answer: {}",
            unreachable.len(),
            options.monitor.len(),
            unreachable.join(", ")
        )));
    }
    Ok(())
}

fn header_u64(message_headers: &async_nats::HeaderMap, name: &str) -> Option<u64> {
    message_headers.get(name).and_then(|v| v.as_str().parse().ok())
}

/// An ephemeral pull consumer of the stream's headers from `start`, delivering each message
/// once, without acks: an exact read of a range. (An ordered consumer re-creates itself after a hiccup and
/// may then start again at the stream's first message; the reads here check the position of
/// every message, so a consumer that moves by itself is an error, not a gap.)
async fn header_reader(
    inner: &Inner,
    start: u64,
) -> Result<(jetstream::consumer::PullConsumer, jetstream::consumer::pull::Stream), LogError> {
    let url = inner.target.url();
    let consumer: jetstream::consumer::PullConsumer = inner
        .stream
        .create_consumer(jetstream::consumer::pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence: start },
            ack_policy: jetstream::consumer::AckPolicy::None,
            headers_only: true,
            inactive_threshold: std::time::Duration::from_secs(30),
            num_replicas: 1,
            memory_storage: true,
            ..Default::default()
        })
        .await
        .map_err(store_error(&url))?;
    let messages = consumer.messages().await.map_err(store_error(&url))?;
    Ok((consumer, messages))
}

/// Deletes a reader's consumer once its read is over (it would expire by itself).
fn drop_reader(inner: &Inner, consumer: jetstream::consumer::PullConsumer) {
    let stream = inner.stream.clone();
    // A read dropped while the runtime shuts down leaves the consumer to expire.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let name = consumer.cached_info().name.clone();
            let _ = stream.delete_consumer(&name).await;
        });
    }
}

/// Reads the headers of the blocks the index does not have yet. The stream is append-only:
/// what the index holds never changes, so only the end is read.
async fn refresh(inner: &Inner) -> Result<(), LogError> {
    let url = inner.target.url();
    let (have, prev_last) = {
        let index = inner.index.lock().await;
        (index.blocks.len(), index.blocks.last().map_or(0, |b| b.1))
    };
    // The servers are asked without holding the index: an append (which holds it across its
    // publish) and other readers go on meanwhile.
    let last = again_if("the stream's end", settle(), || async {
        let mut stream = inner.stream.clone();
        let info = stream.info().await.map_err(|e| judged(e, |e| LogError::Store(format!("{url}: {e}"))))?;
        Ok(info.state.last_sequence)
    })
    .await?;
    if last < have as u64 {
        return Err(LogError::Store(format!(
            "{url}: the stream {} ends at message {last}, but held {have} before: it lost blocks",
            inner.target.stream_name()
        )));
    }
    if last == have as u64 {
        return Ok(());
    }
    let mut tail = Tail { start: have, prev_last, blocks: Vec::new() };
    if last - have as u64 <= REFRESH_BY_GET_MAX {
        let positions = (have..usize::try_from(last).unwrap_or(usize::MAX)).map(|position| async move {
            let stream_seq = Index::stream_seq(position);
            let message = get_message(inner, stream_seq).await?;
            let first = header_u64(&message.headers, HEADER_FIRST);
            Ok::<_, LogError>((message.sequence, first, header_u64(&message.headers, HEADER_LAST)))
        });
        let mut headers = futures_util::stream::iter(positions).buffered(SCAN_BLOCKS_IN_FLIGHT_MAX);
        while let Some(read) = headers.next().await {
            let (at, first, last_seq) = read?;
            tail.push(inner, at, first, last_seq)?;
        }
    } else {
        // A long tail (a store opened for the first time): headers only, through a consumer.
        let mut tries = 0;
        loop {
            let start = (tail.start + tail.blocks.len()) as u64 + 1;
            let (consumer, mut messages) = match header_reader(inner, start).await {
                Ok(reader) => reader,
                Err(e) if tries < READ_TRIES_MAX => {
                    tries += 1;
                    tracing::debug!(error = %e, "reading the stream's headers failed; again");
                    tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let read = read_headers(inner, &mut tail, &mut messages, last).await;
            drop_reader(inner, consumer);
            match read {
                Err(LogError::Store(why)) if tries < READ_TRIES_MAX => {
                    tries += 1;
                    tracing::debug!(%why, "reading the stream's headers failed; again");
                    tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
                }
                other => break other?,
            }
        }
    }
    // Another refresh, or this process's append, may have indexed some of them meanwhile: what
    // both saw must agree (the stream is append-only), and the rest is added.
    let mut index = inner.index.lock().await;
    for (i, block) in tail.blocks.into_iter().enumerate() {
        match index.blocks.get(have + i) {
            Some(seen) if *seen == block => {}
            Some(seen) => {
                return Err(LogError::Corrupt {
                    seq: block.0,
                    why: format!("message {} of the stream read as {block:?} and as {seen:?}", have + i + 1),
                })
            }
            None if index.blocks.len() == have + i => index.blocks.push(block),
            None => {
                return Err(LogError::Store(format!(
                    "{url}: the index has a gap before message {}",
                    have + i + 1
                )))
            }
        }
    }
    Ok(())
}

/// Blocks read past the end of the index, before they join it.
struct Tail {
    /// How many blocks the index held when the read began.
    start: usize,
    /// The last seq of the index's last block then.
    prev_last: u64,
    blocks: Vec<(u64, u64)>,
}

impl Tail {
    /// One more block: `at` must be the next message, and the block must follow the last one.
    fn push(
        &mut self,
        inner: &Inner,
        at: u64,
        first: Option<u64>,
        last: Option<u64>,
    ) -> Result<(), LogError> {
        let expected = Index::stream_seq(self.start + self.blocks.len());
        let prev_last = self.blocks.last().map_or(self.prev_last, |b| b.1);
        match (first, last) {
            (Some(first), Some(last)) if at == expected && prev_last.checked_add(1) == Some(first) && last >= first => {
                self.blocks.push((first, last));
                Ok(())
            }
            _ => Err(LogError::Corrupt {
                seq: prev_last.saturating_add(1),
                why: format!(
                    "message {at} of the stream {} is not the block that follows seq {prev_last} (headers {HEADER_FIRST} {first:?}, {HEADER_LAST} {last:?})",
                    inner.target.stream_name()
                ),
            }),
        }
    }

    fn end(&self) -> u64 {
        (self.start + self.blocks.len()) as u64
    }
}

async fn read_headers(
    inner: &Inner,
    tail: &mut Tail,
    messages: &mut jetstream::consumer::pull::Stream,
    last: u64,
) -> Result<(), LogError> {
    let url = inner.target.url();
    while tail.end() < last {
        let message = messages
            .next()
            .await
            .ok_or_else(|| LogError::Store(format!("{url}: the stream ended while it was read")))?
            .map_err(store_error(&url))?;
        let at =
            message.info().map(|i| i.stream_sequence).map_err(|e| LogError::Store(format!("{url}: {e}")))?;
        let headers = message.headers.as_ref();
        let first = headers.and_then(|h| header_u64(h, HEADER_FIRST));
        let last_seq = headers.and_then(|h| header_u64(h, HEADER_LAST));
        tail.push(inner, at, first, last_seq)?;
    }
    Ok(())
}

/// The message at `stream_seq`, asked again while the stream has no leader to answer.
async fn get_message(inner: &Inner, stream_seq: u64) -> Result<jetstream::message::StreamMessage, LogError> {
    let what = format!("message {stream_seq}");
    again_if(&what, settle(), || async {
        inner.stream.get_raw_message(stream_seq).await.map_err(|e| {
            judged(e, |e| LogError::Store(format!("{}: message {stream_seq}: {e}", inner.target.url())))
        })
    })
    .await
}

/// The block at `position`, checked against the index.
async fn fetch(inner: &Inner, position: usize, first: u64) -> Result<(u64, Vec<u8>), LogError> {
    let stream_seq = Index::stream_seq(position);
    let message = get_message(inner, stream_seq).await?;
    let key = header_u64(&message.headers, HEADER_FIRST);
    if key != Some(first) || message.sequence != stream_seq {
        return Err(LogError::Corrupt {
            seq: first,
            why: format!(
                "message {stream_seq} of the stream is not the block that starts at seq {first} (read message {}, {HEADER_FIRST} {key:?})",
                message.sequence
            ),
        });
    }
    Ok((first, message.payload.to_vec()))
}

/// Tries of a mark write that another writer's mark raced.
const MARK_TRIES_MAX: usize = 4;

/// Moves the mark to `head`, never back: written over the revision this process knows, and
/// where another writer moved it since, over theirs only if `head` is further.
async fn advance_mark(inner: &Inner, head: Head) -> Result<(), String> {
    let value = encode_mark(head);
    let known = *inner.mark_revision.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let remember = |revision: u64| {
        *inner.mark_revision.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(revision);
    };
    if let Some(revision) = known {
        if let Ok(revision) = inner.mark.update(MARK_KEY, value.clone(), revision).await {
            remember(revision);
            return Ok(());
        }
    }
    let mut last_error = String::new();
    for _ in 0..MARK_TRIES_MAX {
        let entry = inner.mark.entry(MARK_KEY).await.map_err(|e| e.to_string())?;
        let written = match entry.filter(|e| e.operation == kv::Operation::Put) {
            Some(entry) => {
                if decode_mark(&entry.value).is_some_and(|mark| mark.seq >= head.seq) {
                    // A mark at or past this head stands (a later writer's).
                    remember(entry.revision);
                    return Ok(());
                }
                inner.mark.update(MARK_KEY, value.clone(), entry.revision).await.map_err(|e| e.to_string())
            }
            None => inner.mark.create(MARK_KEY, value.clone()).await.map_err(|e| e.to_string()),
        };
        match written {
            Ok(revision) => {
                remember(revision);
                return Ok(());
            }
            Err(e) => last_error = e,
        }
    }
    Err(format!("the mark kept changing under this write: {last_error}"))
}

fn encode_mark(head: Head) -> Bytes {
    Bytes::from(format!("{MARK_MAGIC}\n{}\n{}\n", head.seq, head.chain_hex()))
}

fn decode_mark(bytes: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.strip_suffix('\n')?.split('\n');
    if lines.next()? != MARK_MAGIC {
        return None;
    }
    let seq = lines.next()?.parse().ok()?;
    let chain = Head::parse_chain_hex(lines.next()?)?;
    lines.next().is_none().then_some(Head { seq, chain })
}

/// Publishes `blocks` after the block at stream sequence `expected` (0: the stream is empty),
/// one atomic batch when there are several. Returns the stream sequence of the last one; a
/// failure judged for `again_if`: only a write no stream took (its subject has no stream yet
/// on the server this client reached: one just made, or a leader being elected) is certainly
/// not stored and worth asking again, with a new batch.
async fn publish(
    inner: &Inner,
    blocks: &[(u64, u64, Bytes)],
    expected: u64,
) -> Result<u64, (LogError, bool)> {
    let url = inner.target.url();
    let subject = inner.target.subject();
    let count = blocks.len();
    let batch = (count > 1).then(nuid::next);
    let mut ack = None;
    for (i, (first, last, bytes)) in blocks.iter().cloned().enumerate() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(HEADER_FIRST, first.to_string().as_str());
        headers.insert(HEADER_LAST, last.to_string().as_str());
        if i == 0 {
            headers.insert("Nats-Expected-Last-Sequence", expected.to_string().as_str());
        }
        if let Some(id) = &batch {
            headers.insert("Nats-Batch-Id", id.as_str());
            headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
        }
        if i + 1 < count {
            // Not the last of a batch: the servers acknowledge only the commit, and a batch
            // that never commits is abandoned whole.
            inner
                .client
                .publish_with_headers(subject.clone(), headers, bytes)
                .await
                .map_err(|e| (LogError::Store(format!("{url}: publishing a block: {e}")), false))?;
            continue;
        }
        if batch.is_some() {
            headers.insert("Nats-Batch-Commit", "1");
        }
        let message = jetstream::message::PublishMessage::build().payload(bytes).headers(headers);
        let sent = inner.js.send_publish(subject.clone(), message).await;
        ack = Some(match sent {
            Ok(future) => future.await,
            Err(e) => Err(e),
        });
    }
    use jetstream::context::PublishErrorKind as Kind;
    match ack {
        Some(Ok(ack)) => Ok(ack.sequence),
        Some(Err(e)) => Err(match e.kind() {
            Kind::WrongLastSequence => (
                LogError::Fenced(format!(
                    "{url}: the stream's last block is not message {expected}, which this writer's log ends with"
                )),
                false,
            ),
            Kind::StreamNotFound => (
                LogError::Store(format!(
                    "{url}: no server took the write (a stream leader being elected, or the stream was deleted): {e}"
                )),
                true,
            ),
            Kind::MaxPayloadExceeded => (LogError::Store(format!("{url}: {e}")), false),
            _ => (LogError::Uncertain(format!("{url}: appending {count} blocks: {e}")), false),
        }),
        None => Err((LogError::Store("nothing to publish".into()), false)),
    }
}

/// Bytes `at..at + len` of the metadata value `name` (None when there is none); a failure
/// judged for `again_if`.
async fn read_meta(
    inner: &Inner,
    name: &str,
    at: u64,
    len: usize,
) -> Result<Option<Vec<u8>>, (LogError, bool)> {
    let url = inner.target.url();
    let reading = |e: &dyn std::fmt::Display| LogError::Store(format!("{url}: reading {name}: {e}"));
    let mut object = match inner.meta.get(name).await {
        Ok(object) => object,
        Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(judged(e, |e| reading(e))),
    };
    let size = object.info().size as u64;
    if size > META_BYTES_MAX {
        return Err((
            LogError::Store(format!("{url}: {name} is {size} bytes, more than {META_BYTES_MAX}")),
            false,
        ));
    }
    let start = at.min(size);
    let end = start.saturating_add(len as u64).min(size);
    let mut skip = start;
    let mut buffer = vec![0u8; 64 * 1024];
    while skip > 0 {
        let want = usize::try_from(skip).unwrap_or(usize::MAX).min(buffer.len());
        let read = object
            .read(buffer.get_mut(..want).unwrap_or_default())
            .await
            .map_err(|e| judged(e, |e| reading(e)))?;
        if read == 0 {
            return Err((LogError::Store(format!("{url}: {name} ended before its size")), false));
        }
        skip -= read as u64;
    }
    let mut value = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
    let mut limited = (&mut object).take(end - start);
    limited.read_to_end(&mut value).await.map_err(|e| judged(e, |e| reading(e)))?;
    if start == 0 && end == size {
        // Read to the end: the object store has checked its digest.
        let mut rest = Vec::new();
        object.read_to_end(&mut rest).await.map_err(|e| judged(e, |e| reading(e)))?;
    }
    Ok(Some(value))
}

impl BlockStore for JetStreamStore {
    fn append(&self, blocks: &[(u64, Vec<u8>)], head: Head) -> Result<(), LogError> {
        if blocks.len() > APPEND_BLOCKS_MAX {
            return Err(LogError::Store(format!(
                "one atomic write on JetStream holds at most {APPEND_BLOCKS_MAX} blocks (about {} M events); this one has {}: ingest the input in parts",
                APPEND_BLOCKS_MAX * block::BLOCK_RAW_BYTES_TARGET / 100 / 1_000_000,
                blocks.len()
            )));
        }
        let mut sealed = Vec::with_capacity(blocks.len());
        for (key, bytes) in blocks {
            let header = block::header(*key, bytes)?;
            sealed.push((header.first_seq, header.last_seq(), Bytes::from(bytes.clone())));
        }
        self.call(move |inner| async move {
            let url = inner.target.url();
            if let Some(&(first_key, _, _)) = sealed.first() {
                let mut index = inner.index.lock().await;
                // The block this write continues, as this process saw the stream: never the
                // stream's end as it is now, which another writer may have moved.
                let mut before = index.blocks.partition_point(|(_, last)| *last < first_key);
                let continues = |index: &Index, before: usize| {
                    before
                        .checked_sub(1)
                        .and_then(|p| index.blocks.get(p))
                        .map_or(first_key == 1, |b| b.1.checked_add(1) == Some(first_key))
                };
                if !continues(&index, before) {
                    drop(index);
                    refresh(&inner).await?;
                    index = inner.index.lock().await;
                    before = index.blocks.partition_point(|(_, last)| *last < first_key);
                    if !continues(&index, before) {
                        return Err(LogError::Store(format!(
                            "{url}: the stream has no block ending at seq {}, which this write continues",
                            first_key.saturating_sub(1)
                        )));
                    }
                }
                let expected = Index::stream_seq(before) - 1;
                let ranges: Vec<(u64, u64)> = sealed.iter().map(|(f, l, _)| (*f, *l)).collect();
                // A write no stream took is asked again within the bound reads use: a ledger
                // just made (its subject not yet known to every server) or a leader being
                // elected must not fail a write that nothing stored.
                let last_at = again_if("appending", settle(), || publish(&inner, &sealed, expected)).await?;
                // Assert around the store: the blocks are where the condition put them.
                if last_at != expected + ranges.len() as u64 {
                    return Err(LogError::Uncertain(format!(
                        "{url}: the servers stored the write's last block at message {last_at}, not {}",
                        expected + ranges.len() as u64
                    )));
                }
                for (i, range) in ranges.into_iter().enumerate() {
                    let position = before + i;
                    match index.blocks.get(position) {
                        Some(seen) if *seen == range => {}
                        Some(_) => {
                            return Err(LogError::Uncertain(format!(
                                "{url}: the index disagrees with the write"
                            )))
                        }
                        None => index.blocks.push(range),
                    }
                }
            }
            advance_mark(&inner, head).await.map_err(|e| {
                LogError::Uncertain(format!("{url}: the blocks are stored, the mark is not: {e}"))
            })
        })
    }

    fn mark(&self) -> Result<Option<Head>, LogError> {
        self.call(|inner| async move {
            let url = inner.target.url();
            let value = again_if(MARK_KEY, settle(), || async {
                inner
                    .mark
                    .get(MARK_KEY)
                    .await
                    .map_err(|e| judged(e, |e| LogError::Store(format!("{url}: {e}"))))
            })
            .await?;
            match value {
                None => Ok(None),
                Some(bytes) => decode_mark(&bytes).map(Some).ok_or_else(|| {
                    LogError::Store(format!(
                        "{}: the mark in {} is not a mark",
                        inner.target.url(),
                        inner.target.mark_bucket()
                    ))
                }),
            }
        })
    }

    fn reset_mark(&self, head: Head) -> Result<(), LogError> {
        self.call(move |inner| async move {
            // A person's decision (`recover`): the mark goes where it is told, back included.
            let revision = inner
                .mark
                .put(MARK_KEY, encode_mark(head))
                .await
                .map_err(store_error(&inner.target.url()))?;
            *inner.mark_revision.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(revision);
            Ok(())
        })
    }

    fn mark_location(&self) -> String {
        format!("{} (KV bucket {}, key {MARK_KEY})", self.inner.target.url(), self.inner.target.mark_bucket())
    }

    fn block_at_or_before(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        self.call(move |inner| async move {
            // The last block might have been followed by others since: read the end first.
            let at_end = {
                let index = inner.index.lock().await;
                index.holding(seq).is_none_or(|p| p + 1 == index.blocks.len())
            };
            if at_end {
                refresh(&inner).await?;
            }
            let found = {
                let index = inner.index.lock().await;
                index.holding(seq).and_then(|p| index.blocks.get(p).map(|b| (p, b.0)))
            };
            match found {
                Some((position, first)) => fetch(&inner, position, first).await.map(Some),
                None => Ok(None),
            }
        })
    }

    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        self.call(|inner| async move {
            refresh(&inner).await?;
            let found = {
                let index = inner.index.lock().await;
                index.blocks.len().checked_sub(1).and_then(|p| index.blocks.get(p).map(|b| (p, b.0)))
            };
            match found {
                Some((position, first)) => fetch(&inner, position, first).await.map(Some),
                None => Ok(None),
            }
        })
    }

    fn last_key(&self) -> Result<Option<u64>, LogError> {
        self.call(|inner| async move {
            refresh(&inner).await?;
            Ok(inner.index.lock().await.blocks.last().map(|b| b.0))
        })
    }

    fn scan(&self, from_key: u64, visit: &mut BlockVisitor<'_>) -> Result<(), LogError> {
        let runtime = self.runtime.as_ref().ok_or_else(|| LogError::Store("the store is closed".into()))?;
        let (sender, mut receiver) = tokio::sync::mpsc::channel(SCAN_BLOCKS_IN_FLIGHT_MAX);
        let inner = self.inner.clone();
        let task = runtime.spawn(async move {
            let read = async {
                refresh(&inner).await?;
                let wanted: Vec<(u64, u64)> = {
                    let index = inner.index.lock().await;
                    let start = index.blocks.partition_point(|(first, _)| *first < from_key);
                    index
                        .blocks
                        .iter()
                        .enumerate()
                        .skip(start)
                        .map(|(p, b)| (Index::stream_seq(p), b.0))
                        .collect()
                };
                // Gets of single messages, several in flight: each answered by the stream's
                // leader, so a read never misses what was acknowledged.
                let inner = &inner;
                let mut blocks = futures_util::stream::iter(wanted)
                    .map(|(stream_seq, first)| async move {
                        let position = usize::try_from(stream_seq - 1).unwrap_or(usize::MAX);
                        fetch(inner, position, first).await
                    })
                    .buffered(SCAN_BLOCKS_IN_FLIGHT_MAX);
                while let Some(block) = blocks.next().await {
                    if sender.send(Ok(block?)).await.is_err() {
                        // The visitor stopped.
                        return Ok(());
                    }
                }
                Ok(())
            };
            if let Err(e) = read.await {
                let _ = sender.send(Err(e)).await;
            }
        });
        let result = (|| {
            while let Some(next) = futures_executor::block_on(receiver.recv()) {
                let (key, bytes) = next?;
                if !visit(key, &bytes)? {
                    break;
                }
            }
            Ok(())
        })();
        drop(receiver);
        task.abort();
        result
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        self.get_meta_range(name, 0, usize::MAX)
    }

    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), LogError> {
        let name = name.to_string();
        let value = value.to_vec();
        self.call(move |inner| async move {
            let meta = object_store::ObjectMetadata {
                name: name.clone(),
                chunk_size: Some(META_CHUNK_BYTES),
                ..Default::default()
            };
            inner
                .meta
                .put(meta, &mut value.as_slice())
                .await
                .map_err(|e| LogError::Store(format!("{}: storing {name}: {e}", inner.target.url())))?;
            Ok(())
        })
    }

    fn get_meta_range(&self, name: &str, at: u64, len: usize) -> Result<Option<Vec<u8>>, LogError> {
        let name = name.to_string();
        self.call(move |inner| async move {
            // Read whole again from the start while the servers cannot answer yet.
            again_if(&name, settle(), || read_meta(&inner, &name, at, len)).await
        })
    }

    fn bytes_on_disk(&self) -> Result<u64, LogError> {
        self.call(JetStreamStore::bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a panic is a failing test")]
    use super::*;
    use jetstream::context::{
        CreateKeyValueErrorKind, CreateObjectStoreError, CreateStreamError, CreateStreamErrorKind,
    };

    fn server_error(code: u64) -> CreateStreamError {
        let answer = format!(r#"{{"code":400,"err_code":{code},"description":"from the server"}}"#);
        CreateStreamError::new(CreateStreamErrorKind::JetStream(serde_json::from_str(&answer).unwrap()))
    }

    /// Tries `create` under `again_while`, answering `answers` in turn (then Ok); returns the outcome
    /// and how many tries it took.
    fn tries(wait_ms: u64, answers: Vec<CreateObjectStoreError>) -> (Result<(), String>, usize) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut answers = answers.into_iter();
        let mut count = 0;
        let outcome = runtime.block_on(again_while(
            "a bucket",
            creation_may_pass,
            Duration::from_millis(wait_ms),
            || {
                count += 1;
                let answer = answers.next();
                async move { answer.map_or(Ok(()), Err) }
            },
        ));
        (outcome.map_err(|e| e.to_string()), count)
    }

    fn offline() -> CreateObjectStoreError {
        // As a bucket's creation reports it: the stream's error inside.
        CreateObjectStoreError::with_source(CreateKeyValueErrorKind::BucketCreate, server_error(10005))
    }

    #[test]
    fn a_placement_refused_for_an_offline_peer_is_tried_again() {
        assert!(creation_may_pass(&server_error(10005)));
        assert!(!creation_may_pass(&server_error(10023)));
        let timed_out = CreateStreamError::new(CreateStreamErrorKind::TimedOut);
        assert!(creation_may_pass(&CreateObjectStoreError::with_source(
            CreateKeyValueErrorKind::TimedOut,
            timed_out
        )));
        assert_eq!(tries(5_000, vec![offline(), offline()]), (Ok(()), 3));
    }

    #[test]
    fn a_read_nobody_answered_is_told_apart() {
        use jetstream::context::{GetStreamError, GetStreamErrorKind, RequestError, RequestErrorKind};
        // As getting a stream reports it: the API request's error inside.
        let get = |kind| GetStreamError::with_source(GetStreamErrorKind::Request, RequestError::new(kind));
        assert!(request_may_pass(&get(RequestErrorKind::TimedOut)));
        assert!(!request_may_pass(&get(RequestErrorKind::NoResponders)));
        assert!(!request_may_pass(&get(RequestErrorKind::Other)));
        let nobody = stream::DirectGetError::new(stream::DirectGetErrorKind::ErrorResponse(
            async_nats::StatusCode::NO_RESPONDERS,
            String::new(),
        ));
        // As the object store reports it: its info's error, holding the direct get's.
        let info = object_store::InfoError::with_source(object_store::InfoErrorKind::Other, nobody);
        assert!(request_may_pass(&object_store::GetError::with_source(
            object_store::GetErrorKind::Other,
            info
        )));
        let not_found = stream::DirectGetError::new(stream::DirectGetErrorKind::NotFound);
        assert!(!request_may_pass(&kv::EntryError::with_source(kv::EntryErrorKind::Other, not_found)));
        assert!(!request_may_pass(&server_error(10005)));
        assert!(!creation_may_pass(&object_store::InfoError::new(object_store::InfoErrorKind::NotFound)));
    }

    #[test]
    fn a_read_between_two_leaders_is_asked_again() {
        use jetstream::context::{GetStreamError, GetStreamErrorKind, RequestError, RequestErrorKind};
        let server = |code: u64| -> jetstream::Error {
            serde_json::from_str(&format!(
                r#"{{"code":503,"err_code":{code},"description":"from the server"}}"#
            ))
            .unwrap()
        };
        let get = |code| stream::RawMessageError::new(stream::RawMessageErrorKind::JetStream(server(code)));
        assert!(request_may_pass(&get(10008)), "JetStream system temporarily unavailable");
        assert!(request_may_pass(&get(10009)), "not the leader");
        assert!(!request_may_pass(&get(10037)), "no message found is an answer");
        let stream = |code| GetStreamError::new(GetStreamErrorKind::JetStream(server(code)));
        assert!(request_may_pass(&stream(10008)));
        assert!(!request_may_pass(&stream(10059)), "stream not found is an answer");
        // How a bucket's getter reports a stream that did not answer in time, and a read whose
        // answer did not come: both asked again.
        let timed_out = GetStreamError::with_source(
            GetStreamErrorKind::Request,
            RequestError::new(RequestErrorKind::TimedOut),
        );
        assert!(request_may_pass(&jetstream::context::ObjectStoreError::with_source(
            jetstream::context::ObjectStoreErrorKind::GetStore,
            timed_out
        )));
        let raw = stream::RawMessageError::with_source(
            stream::RawMessageErrorKind::Other,
            RequestError::new(RequestErrorKind::TimedOut),
        );
        assert!(request_may_pass(&raw));
        assert!(request_may_pass(&std::io::Error::new(std::io::ErrorKind::TimedOut, "a chunk did not come")));
    }

    #[test]
    fn any_other_refusal_is_returned_at_once_and_the_wait_is_bounded() {
        let other =
            CreateObjectStoreError::with_source(CreateKeyValueErrorKind::BucketCreate, server_error(10023));
        let (outcome, count) = tries(5_000, vec![other]);
        assert!(outcome.unwrap_err().contains("error code 10023"));
        assert_eq!(count, 1);
        let (outcome, count) = tries(600, (0..100).map(|_| offline()).collect());
        assert!(outcome.unwrap_err().contains("error code 10005"));
        assert!((2..=5).contains(&count), "{count} tries in 600 ms, one every {SETTLE_RETRY_MS} ms");
    }
}

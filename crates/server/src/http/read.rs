//! What every reader does: waits until the timeline reflects every acknowledged event, and
//! reads on the blocking pool at a priority below the writer's.

use super::ApiError;
use crate::Shared;
use std::time::Duration;

/// How much lower than the daemon's the priority of the threads that run readers is (reports,
/// what-ifs, deal lookups, event pages), in nice steps. On a machine of two cores a what-if folds
/// on both; below the writer's priority it cannot delay the writer's or the HTTP workers'
/// wakeups, and still has every idle cycle.
const READER_NICE_INCREMENT: i32 = 10;

/// Moves this thread (a blocking-pool thread about to run a reader) below the writer's
/// priority, once: the pool runs only readers, and threads a reader spawns inherit it.
fn as_reader() {
    thread_local!(static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if LOWERED.with(|lowered| lowered.replace(true)) {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: nice(2) takes an integer and touches no memory of ours. On Linux it changes
        // the calling thread only. Lowering priority needs no privilege; a failure leaves the
        // thread at the writer's priority, which is slower for the writer, never wrong.
        let nice = unsafe { libc::nice(READER_NICE_INCREMENT) };
        if nice == -1 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower a reader's priority");
        }
    }
}

/// Runs `read` on the blocking pool at a reader's priority. A read that panicked is answered
/// `failed` with what the join said.
pub(super) async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    failed: fn(String) -> ApiError,
) -> Result<T, ApiError> {
    let joined = tokio::task::spawn_blocking(move || {
        as_reader();
        read()
    })
    .await;
    joined.unwrap_or_else(|e| Err(failed(e.to_string())))
}

/// Waits until the timeline has folded every event durable now. The writer answers without
/// waiting for the folder; a reader that must reflect every acknowledgement waits here instead.
pub(super) async fn caught_up(shared: &Shared) -> Result<(), ApiError> {
    let ms = shared.config.request_timeout_ms;
    shared.live.caught_up(Duration::from_millis(ms)).await.map_err(|seq| ApiError::TimelineBehind { seq, ms })
}

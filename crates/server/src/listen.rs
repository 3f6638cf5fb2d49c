//! The accept loop: a cap on connections, timeouts on every way a client can stall, and a
//! shutdown that finishes in bounded time.
//!
//! Why not `axum::serve`: it has no connection cap, no header-read or idle timeout, and its
//! graceful shutdown waits for every connection however long it stalls, so a few hundred
//! clients trickling bodies held SIGTERM (and the checkpoint saved after it) for as long as
//! they liked. Here (the mini-redis shape): a semaphore bounds connections (past it, a 503
//! and close); hyper's HTTP/1 header-read timeout drops clients that trickle headers; an idle
//! timeout on the socket drops connections that neither send nor receive (a stalled body, a
//! keep-alive nobody uses); and shutdown stops accepting, asks every connection to finish,
//! and waits at most `shutdown_timeout_ms` before the rest are dropped.

use crate::config::ServeConfig;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// What a client over the connection cap hears before the connection closes.
const OVER_CAP_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Retry-After: 1\r\nConnection: close\r\nContent-Length: 81\r\n\r\n\
{\"error\":\"too_many_connections\",\"reason\":\"connections_max reached; retry shortly\"}";
/// After an accept error (out of file descriptors, say), wait this long before the next.
const ACCEPT_ERROR_PAUSE_MS: u64 = 50;

/// Serves `router` on `listener` until `stop` resolves, then shuts down within the configured
/// bound. `on_stop` runs once `stop` resolved, before connections are asked to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ServeConfig,
    stop: impl Future<Output = ()>,
    on_stop: impl FnOnce(),
) {
    let connections = Arc::new(Semaphore::new(config.connections_max));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(config.header_read_timeout_ms))
        .keep_alive(true);
    let idle = Duration::from_millis(config.idle_timeout_ms);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |request: axum::http::Request<hyper::body::Incoming>| {
                let mut router = router.clone();
                async move { tower_service::Service::call(&mut router, request.map(axum::body::Body::new)).await }
            },
        );
        let connection = http.serve_connection(TokioIo::new(IdleTimeout::new(stream, idle)), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    on_stop();
    let limit = Duration::from_millis(config.shutdown_timeout_ms);
    if tokio::time::timeout(limit, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            limit_ms = config.shutdown_timeout_ms,
            "connections still open at the shutdown limit are dropped"
        );
    }
}

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(OVER_CAP_RESPONSE)).await;
}

/// A socket that fails with `TimedOut` once nothing was read or written for `idle`.
struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, idle: Duration) -> IdleTimeout<S> {
        IdleTimeout { inner, idle, deadline: Box::pin(tokio::time::sleep(idle)) }
    }

    fn progressed(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// Pending as the inner socket was; an error once the deadline passed.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no data in either direction for idle_timeout_ms",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.check(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    self.progressed();
                }
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.check(cx).map(|r| r.map(|()| 0)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

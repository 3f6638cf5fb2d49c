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
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Counts an error answer by its code (`dealledger_rejects_total{reason}`).
pub type Counter = Arc<dyn Fn(&'static str) + Send + Sync>;

/// The client's address (an IPv6 client's /64), in every request's extensions: what
/// per-address limits count by.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub IpAddr);

/// Open connections by client address (an IPv6 client by its /64, which one host usually
/// holds whole): an entry lives while its address has a connection open, so there are at most
/// `connections_max` of them.
struct PerAddress {
    open: std::sync::Mutex<HashMap<IpAddr, usize>>,
    max: usize,
}

/// One connection's place in its address's count, given back when the connection ends.
struct AddressPlace {
    of: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
            },
            v4 => v4,
        }
    }

    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressPlace> {
        let key = PerAddress::key(ip);
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressPlace { of: self.clone(), key })
    }
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut open = self.of.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

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
    counted: Counter,
) {
    let connections = Arc::new(Semaphore::new(config.connections_max));
    let per_address = Arc::new(PerAddress {
        open: std::sync::Mutex::new(HashMap::new()),
        max: config.connections_per_address_max,
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(config.header_read_timeout_ms))
        .keep_alive(true);
    let idle = Duration::from_millis(config.idle_timeout_ms);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
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
            tokio::spawn(refuse(stream, "connections_max reached; retry shortly".into(), counted.clone()));
            continue;
        };
        let Some(place) = per_address.take(peer.ip()) else {
            let reason = format!(
                "{} connections open from your address (connections_per_address_max); close one, or retry shortly",
                per_address.max
            );
            tokio::spawn(refuse(stream, reason, counted.clone()));
            continue;
        };
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |request: axum::http::Request<hyper::body::Incoming>| {
                let mut router = router.clone();
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(Peer(PerAddress::key(peer.ip())));
                async move { tower_service::Service::call(&mut router, request).await }
            });
        let connection = http.serve_connection(TokioIo::new(IdleTimeout::new(stream, idle)), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop((permit, place));
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

/// What a client over a connection cap hears before the connection closes: 503 with a JSON
/// body saying which cap.
async fn refuse(mut stream: TcpStream, reason: String, counted: Counter) {
    let refusal = crate::http::ApiError::TooManyConnections(reason);
    counted(refusal.code());
    let answer = refusal.http1_bytes();
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&answer)).await;
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

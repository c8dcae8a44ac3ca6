//! The HTTP edge: varsel's own accept loop around hyper, so that what a client may hold is
//! bounded before any handler runs.
//!
//! HTTP/1.1 only: TLS and HTTP/2 belong to the proxy or load balancer in front.
//!
//! Per server: at most `max_connections` open connections (further ones wait in the kernel's
//! listen backlog). Per connection: a request header must arrive within `header_read_timeout`
//! of the connection opening or the previous answer (so this is also the idle time of a
//! keep-alive connection), and be at most `max_header_bytes` (431 above); a client that takes
//! no part of an answer for `body_read_timeout` is disconnected. Per request: the body must
//! arrive within `body_read_timeout` (408 after) and be at most `max_body_bytes` (413 above);
//! it is read only by the handler, after the credential was checked, so an unauthenticated
//! body is never read at all. hyper answers malformed and oversized request heads itself, with
//! an empty body; those answers are rewritten into problem details here.

use bytes::Bytes;
use futures::Stream;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one client may hold.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Time to send a request header; the idle time of a keep-alive connection.
    pub header_read_timeout: Duration,
    /// Time to send a request body once its header arrived.
    pub body_read_timeout: Duration,
    /// Largest request header block, bytes.
    pub max_header_bytes: usize,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
}

impl EdgeLimits {
    /// From the configuration.
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            max_connections: c.http.max_connections.max(1),
            header_read_timeout: Duration::from_secs(c.http.header_read_timeout_secs.max(1)),
            body_read_timeout: Duration::from_secs(c.http.body_read_timeout_secs.max(1)),
            max_header_bytes: c.http.max_header_bytes.max(8192),
            max_body_bytes: c.http.max_body_bytes,
        }
    }
}

/// Serves `ep` on `listener` until `shutdown` resolves, then lets requests in flight finish for
/// up to `grace`.
pub async fn serve<E>(
    listener: tokio::net::TcpListener,
    ep: E,
    limits: EdgeLimits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    grace: Duration,
) -> io::Result<()>
where
    E: Endpoint + 'static,
{
    let ep: Arc<dyn poem::endpoint::DynEndpoint<Output = Response>> =
        Arc::new(poem::endpoint::ToDynEndpoint(ep.map_to_response()));
    let local = listener.local_addr()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    // Once shut down, new requests get 503 for `drain` (a load balancer notices and stops
    // sending), then no connection is accepted and open ones finish within `grace`.
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let accepting = {
        let draining = draining.clone();
        async move {
            shutdown.await;
            draining.store(true, std::sync::atomic::Ordering::SeqCst);
            if drain.is_zero() {
                tracing::info!("shutting down: no new connections; open ones finish");
            } else {
                tracing::info!(?drain, "shutting down: new requests get 503 while draining");
            }
            tokio::time::sleep(drain).await;
        }
    };
    tokio::pin!(accepting);
    tracing::info!(addr = %local, "listening");
    loop {
        let permit = tokio::select! {
            () = &mut accepting => break,
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, remote) = tokio::select! {
            () = &mut accepting => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (ep, limits, stop) = (ep.clone(), limits.clone(), stop_rx.clone());
        let draining = Draining { flag: draining.clone(), retry_after: drain.as_secs().max(1) };
        conns.spawn(async move {
            serve_connection(stream, local, remote, ep, &limits, stop, draining).await;
            drop(permit);
        });
        // Reap finished connections so the set does not grow with every one ever served.
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    if tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            open = conns.len(),
            "connections still open after the grace period; closing them"
        );
        conns.shutdown().await;
    }
    Ok(())
}

/// A shutting-down server's state, for each connection: whether it drains, and the
/// `Retry-After` (seconds) its 503 answers carry.
#[derive(Clone)]
struct Draining {
    flag: Arc<std::sync::atomic::AtomicBool>,
    retry_after: u64,
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    ep: Arc<dyn poem::endpoint::DynEndpoint<Output = Response>>,
    limits: &EdgeLimits,
    mut stop: tokio::sync::watch::Receiver<bool>,
    draining: Draining,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let ep = ep.clone();
        let (retry_after, draining) =
            (draining.retry_after, draining.flag.load(std::sync::atomic::Ordering::SeqCst));
        async move {
            if draining && req.uri().path() != "/health/live" {
                // Requests that began before are answered as usual; new ones are told to come
                // back (to another instance).
                let mut resp = crate::error::problem_response(
                    503,
                    "The service is shutting down. Nothing was done; please retry.",
                );
                let headers = resp.headers_mut();
                headers.insert(poem::http::header::RETRY_AFTER, retry_after.into());
                headers.insert(
                    poem::http::header::CONNECTION,
                    poem::http::HeaderValue::from_static("close"),
                );
                let resp: hyper::Response<http_body_util::combinators::BoxBody<Bytes, io::Error>> =
                    resp.into();
                return Ok::<_, Infallible>(resp);
            }
            let req: Request = (
                req,
                poem::web::LocalAddr(local.into()),
                poem::web::RemoteAddr(remote.into()),
                poem::http::uri::Scheme::HTTP,
            )
                .into();
            let resp: hyper::Response<http_body_util::combinators::BoxBody<Bytes, io::Error>> =
                ep.get_response(req).await.into();
            Ok::<_, Infallible>(resp)
        }
    });
    let io = TokioIo::new(EdgeIo::new(stream, limits));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let stopping = tokio::select! {
        _ = conn.as_mut() => false,
        r = stop.wait_for(|s| *s) => r.is_ok(),
    };
    if stopping {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// How a request body went wrong while the handler read it.
#[derive(Debug, Clone, Copy)]
enum BodyFault {
    TooLarge,
    TooSlow,
}

/// A request body that may be at most `max` bytes and must arrive before `deadline`.
struct GuardedBody<S> {
    inner: S,
    read: usize,
    max: usize,
    deadline: Pin<Box<tokio::time::Sleep>>,
    fault: Arc<OnceLock<BodyFault>>,
}

impl<S: Stream<Item = io::Result<Bytes>> + Unpin> Stream for GuardedBody<S> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.read += chunk.len();
                if self.read > self.max {
                    let _ = self.fault.set(BodyFault::TooLarge);
                    return Poll::Ready(Some(Err(io::Error::other(
                        "the request body is too large",
                    ))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Pending => {
                if self.deadline.as_mut().poll(cx).is_ready() {
                    let _ = self.fault.set(BodyFault::TooSlow);
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request body arrived too slowly",
                    ))));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

/// Middleware: refuses a body that announces more than the limit with 413 before reading a
/// byte, and guards the rest as it is read (413 when it grows past the limit, 408 when it does
/// not arrive in time). Either answer closes the connection, as the rest of the body is unread.
pub async fn guard_body<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    limits: EdgeLimits,
) -> poem::Result<Response> {
    let announced = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Ok(body_fault_response(BodyFault::TooLarge, &limits));
    }
    let fault = Arc::new(OnceLock::new());
    let body = req.take_body();
    req.set_body(poem::Body::from_bytes_stream(GuardedBody {
        inner: body.into_bytes_stream(),
        read: 0,
        max: limits.max_body_bytes,
        deadline: Box::pin(tokio::time::sleep(limits.body_read_timeout)),
        fault: fault.clone(),
    }));
    let resp = ep.call(req).await;
    if let Some(f) = fault.get() {
        return Ok(body_fault_response(*f, &limits));
    }
    resp.map(IntoResponse::into_response)
}

fn body_fault_response(fault: BodyFault, limits: &EdgeLimits) -> Response {
    let (status, detail) = match fault {
        BodyFault::TooLarge => {
            (413, format!("The request body exceeds {} bytes.", limits.max_body_bytes))
        }
        BodyFault::TooSlow => (
            408,
            format!(
                "The request body did not arrive within {} seconds.",
                limits.body_read_timeout.as_secs()
            ),
        ),
    };
    let mut resp = crate::error::problem_response(status, detail);
    resp.headers_mut()
        .insert(poem::http::header::CONNECTION, poem::http::HeaderValue::from_static("close"));
    resp
}

/// The connection's socket as hyper sees it: hyper's own answers to unparseable request heads
/// (400, 414, 431 with an empty body) are rewritten into problem details, and a client that
/// takes none of an answer for `write_timeout` is cut off (hyper reads no further request, and
/// so runs no header timer, while an answer waits to be written). Writes are not vectored, so
/// each answer hyper writes starts a write of its own.
struct EdgeIo<T> {
    inner: T,
    max_header_bytes: usize,
    pending: Option<(Vec<u8>, usize)>,
    write_timeout: Duration,
    write_stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> EdgeIo<T> {
    fn new(inner: T, limits: &EdgeLimits) -> Self {
        Self {
            inner,
            max_header_bytes: limits.max_header_bytes,
            pending: None,
            write_timeout: limits.body_read_timeout,
            write_stalled: None,
        }
    }

    /// Passes on a write's outcome; a write that waits longer than the timeout in all is an
    /// error, which closes the connection.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match outcome {
            Poll::Pending => {
                let timeout = self.write_timeout;
                let stalled =
                    self.write_stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stalled.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client takes no part of its answer",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.write_stalled = None;
                ready
            }
        }
    }
}

/// The problem-details answer replacing an automatic one of hyper's, if `buf` is one: a head
/// with status 400, 414 or 431, `content-length: 0` and nothing after it. varsel's own answers
/// with these statuses always carry a body.
fn replacement_for(buf: &[u8], max_header_bytes: usize) -> Option<Vec<u8>> {
    let (status, reason, detail) = if buf.starts_with(b"HTTP/1.1 431 ") {
        (
            431,
            "Request Header Fields Too Large",
            format!("The request's header fields exceed {max_header_bytes} bytes or 100 fields."),
        )
    } else if buf.starts_with(b"HTTP/1.1 414 ") {
        (414, "URI Too Long", "The request's URI is too long.".to_owned())
    } else if buf.starts_with(b"HTTP/1.1 400 ") {
        (400, "Bad Request", "The request is not well-formed HTTP.".to_owned())
    } else {
        return None;
    };
    let head = std::str::from_utf8(buf).ok()?;
    let end = head.find("\r\n\r\n")?;
    if end + 4 != head.len() || !head[..end].to_ascii_lowercase().contains("\r\ncontent-length: 0")
    {
        return None;
    }
    let date = head[..end]
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("date:"))
        .map(|l| format!("{l}\r\n"))
        .unwrap_or_default();
    let body = crate::error::problem_body(status, detail);
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n{date}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl<T: AsyncWrite + Unpin> EdgeIo<T> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let written = match &self.pending {
                None => return Poll::Ready(Ok(())),
                Some((data, pos)) if *pos == data.len() => {
                    self.pending = None;
                    return Poll::Ready(Ok(()));
                }
                Some((data, pos)) => Pin::new(&mut self.inner).poll_write(cx, &data[*pos..]),
            };
            let n = ready!(self.watch(cx, written))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Some((_, pos)) = &mut self.pending {
                *pos += n;
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for EdgeIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EdgeIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        if let Some(replacement) = replacement_for(buf, self.max_header_bytes) {
            self.pending = Some((replacement, 0));
            // Written as far as the socket takes it now; flush and shutdown write the rest.
            if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::replacement_for;

    #[test]
    fn only_hypers_empty_error_answers_are_rewritten() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 12:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(replacement_for(hyper_431, 65536).expect("rewritten")).unwrap();
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out.contains("content-type: application/problem+json"), "{out}");
        assert!(out.contains("date: Sun, 29 Nov 2026"), "{out}");
        assert!(out.ends_with('}'), "{out}");
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 12\r\n\r\n{\"status\":1}";
        assert!(replacement_for(ours, 65536).is_none());
        assert!(replacement_for(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 65536).is_none());
    }
}

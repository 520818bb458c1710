//! Owns the limits on client connections that no handler can enforce: how long a client may take to
//! send request headers (slow-loris) and its request body ([`TimedBody`]), how large a request head
//! may grow, how long a new connection may stay silent, and the open-file limit that decides how
//! many connections rekeyd can hold at once. Called by [`crate::run`] and `app::Front`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum_server::accept::Accept;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Connections the kernel may hold for rekeyd before it accepts them (capped by
/// `net.core.somaxconn`). std's `TcpListener::bind` asks for 128: a burst of new connections
/// while the accept loop is busy then overflows it, and each dropped SYN costs its client a
/// retransmit (one second or more).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with [`LISTEN_BACKLOG`]; the listener is non-blocking, ready for axum-server.
pub fn listen(addr: std::net::SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std does on Unix: a restarted rekeyd can bind its port while old connections linger.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

/// Closes connections that send nothing for `timeout`. hyper's header-read timeout starts only once
/// the HTTP/1 parser runs; before that, the server reads the first bytes to tell HTTP/1 from
/// HTTP/2 with no deadline, so a client that connects and stays silent would hold its connection
/// (and a file descriptor) forever without this.
#[derive(Clone)]
pub struct FirstByteTimeout<A> {
    inner: A,
    timeout: Duration,
}

impl<A> FirstByteTimeout<A> {
    pub fn new(inner: A, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

impl<A, S> Accept<TcpStream, S> for FirstByteTimeout<A>
where
    A: Accept<TcpStream, S> + Clone + Send + Sync + 'static,
    A::Future: Send,
    S: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let inner = self.inner.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            // `peek` waits for a first byte without consuming it (or sees the peer close): either
            // way the connection moves on. (`readable()` may report readiness that is not there.)
            let mut first = [0u8; 1];
            tokio::time::timeout(timeout, stream.peek(&mut first))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client sent nothing"))??;
            inner.accept(stream, service).await
        })
    }
}

/// The smallest `--max-header-bytes`: hyper's HTTP/1 read buffer cannot be smaller.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

/// Applies the header-read timeout to HTTP/1 connections (hyper has a 30 s default but enforces
/// it only when given a timer, which axum-server does not install), and bounds a request head at
/// `max_header_bytes` on HTTP/1 and HTTP/2 alike. An HTTP/1 head is bounded by hyper's read buffer,
/// ~400 KB by default, which a client that never ends its head keeps filled for the whole header
/// timeout; past the bound hyper answers 431 and closes, as h2 answers 431 to a header list past
/// its bound. `max_header_bytes` must be at least [`MIN_HEADER_BYTES`].
pub fn configure_http<A>(
    server: &mut axum_server::Server<A>,
    header_read_timeout: Duration,
    max_header_bytes: usize,
) {
    let builder = server.http_builder();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(max_header_bytes);
    builder
        .http2()
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX));
}

/// How a request body's time limit is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyDeadline {
    /// The whole body must have arrived within the limit of the request's start: management
    /// bodies are small, so a client still sending one after that is stalling on purpose.
    Whole,
    /// Each piece of the body must arrive within the limit of the one before, as nginx's
    /// `client_body_timeout`: data-plane uploads may be large and take long in all, but a pause
    /// that long means the client has stalled.
    BetweenReads,
}

/// The error a [`TimedBody`] ends with when its client is too slow.
#[derive(Debug, thiserror::Error)]
#[error("the client did not send the request body in time")]
pub struct BodyTimedOut;

/// A request body that fails with [`BodyTimedOut`] once its [`BodyDeadline`] passes, so a client
/// that announces a body and then sends a byte now and then cannot hold its connection (and
/// whatever reads the body) forever. hyper has no such limit: its header timeout ends with the
/// head. [`TimedBody::timed_out`] tells the connection's service to answer 408 and close, whatever
/// the reader of the body made of the failure.
pub struct TimedBody {
    inner: Body,
    deadline_kind: BodyDeadline,
    limit: Duration,
    deadline: Instant,
    /// Made on the first read that has to wait; most bodies arrive with their head and need none.
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl TimedBody {
    pub fn new(inner: Body, deadline_kind: BodyDeadline, limit: Duration) -> Self {
        Self {
            inner,
            deadline_kind,
            limit,
            deadline: Instant::now() + limit,
            timer: None,
            timed_out: Default::default(),
        }
    }

    /// Set once the body has failed for its client's slowness.
    pub fn timed_out(&self) -> Arc<AtomicBool> {
        self.timed_out.clone()
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if this.timed_out.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if this.deadline_kind == BodyDeadline::BetweenReads {
                this.deadline = Instant::now() + this.limit;
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.timed_out.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(BodyTimedOut.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Raises the soft open-file limit to the hard limit: each connection holds a descriptor, and a
/// soft limit of 1,024 (a common default) would stop rekeyd accepting connections long before
/// memory runs short. Returns the limit in force.
#[cfg(unix)]
pub fn raise_open_file_limit() -> io::Result<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer, which lives
    // on this stack frame for the whole call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(io::Error::last_os_error());
            }
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

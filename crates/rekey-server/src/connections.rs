//! Owns the limits on client connections that no handler can enforce: how long a client may take to
//! send request headers (slow-loris), how long a new connection may stay silent, and the open-file
//! limit that decides how many connections rekeyd can hold at once. Called by [`crate::run`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::net::TcpStream;

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

/// Applies the header-read timeout to HTTP/1 connections. hyper has a 30 s default but enforces
/// it only when given a timer, which axum-server does not install.
pub fn configure_http<A>(server: &mut axum_server::Server<A>, header_read_timeout: Duration) {
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read_timeout);
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

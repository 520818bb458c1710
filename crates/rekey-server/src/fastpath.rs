//! Owns the plain-HTTP/1.1 fast path for data-plane calls: on each new connection, rekeyd first
//! answers the simple requests itself (a bodyless HTTP/1.1 request for `/data/…` of a resource
//! answered by rekeyd), parsing with `httparse` and writing the answer in one buffer, without
//! hyper's per-request machinery. The first request it does not take (any other path, a body, an
//! upgrade, `Connection` or `Expect` headers, a resource with an upstream, anything malformed or
//! unusual) hands the connection to hyper, with every byte not yet answered replayed first, and
//! hyper serves it from then on. So hyper stays the server for everything HTTP can express; this
//! only shortens the one call that dominates a data plane's load.
//!
//! Slow-loris defence is the same as hyper's: each request's headers must arrive within the header
//! timeout, which also closes connections idle for that long. A head that grows past what the fast
//! path buffers goes to hyper, whose own bound (`--max-header-bytes`) answers 431. When a graceful
//! shutdown starts, a connection waiting here is handed to hyper too, which finishes what it has and
//! closes it.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody as _};
use axum::http::{header, Method, Request, StatusCode};
use axum_server::accept::Accept;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::app::Front;
use crate::dataplane;
use crate::dataplane::{gateway, upstream};
use crate::state::AppState;

/// Most headers a fast-path request may have; one with more goes to hyper (whose limit is 100).
const MAX_HEADERS: usize = 32;
/// Largest request head the fast path buffers (less if `--max-header-bytes` is less); a longer one
/// goes to hyper, which enforces `--max-header-bytes` and answers 431 past it.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// An acceptor that serves a connection's simple data-plane calls itself before hyper sees it
/// (plain TCP only: over TLS, ALPN may have chosen HTTP/2).
#[derive(Clone)]
pub struct FastPath<A> {
    inner: A,
    header_timeout: Duration,
    max_head_bytes: usize,
    shutdown: Shutdown,
}

/// The server's graceful shutdown, as the fast path watches for it.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<ShutdownState>);

#[derive(Default)]
struct ShutdownState {
    started: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    /// Hands every connection waiting in the fast path to hyper, and each new one as it arrives.
    pub fn start(&self) {
        self.0.started.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    fn started(&self) -> bool {
        self.0.started.load(Ordering::SeqCst)
    }
}

impl<A> FastPath<A> {
    /// `max_header_bytes` is hyper's bound on a request head (`--max-header-bytes`): the fast path
    /// buffers no more than that either.
    pub fn new(
        inner: A,
        header_timeout: Duration,
        max_header_bytes: usize,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            inner,
            header_timeout,
            max_head_bytes: max_header_bytes.min(MAX_HEAD_BYTES),
            shutdown,
        }
    }

    /// The same fast path in front of the acceptor `f` makes of this one's (e.g. TLS over it).
    pub fn map<B>(self, f: impl FnOnce(A) -> B) -> FastPath<B> {
        FastPath {
            inner: f(self.inner),
            header_timeout: self.header_timeout,
            max_head_bytes: self.max_head_bytes,
            shutdown: self.shutdown,
        }
    }
}

impl<A> Accept<TcpStream, Front> for FastPath<A>
where
    A: Accept<TcpStream, Front, Service = Front> + Clone + Send + Sync + 'static,
    A::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A::Future: Send,
{
    type Stream = Rewind<A::Stream>;
    type Service = Front;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Front)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: Front) -> Self::Future {
        let inner = self.inner.clone();
        let header_timeout = self.header_timeout;
        let max_head_bytes = self.max_head_bytes;
        let shutdown = self.shutdown.clone();
        Box::pin(async move {
            let (stream, front) = inner.accept(stream, service).await?;
            let (state, remote) = front.data_plane();
            let leftover = serve(
                stream,
                state,
                remote,
                header_timeout,
                max_head_bytes,
                shutdown,
            )
            .await?;
            Ok((leftover, front))
        })
    }
}

/// Answers simple calls until one is not; returns the connection with the bytes hyper must read
/// first, or an error when the connection ended (closed, failed or timed out) here.
async fn serve<S>(
    mut io: S,
    state: Arc<AppState>,
    remote: IpAddr,
    header_timeout: Duration,
    max_head_bytes: usize,
    shutdown: Shutdown,
) -> io::Result<Rewind<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    // The head of the request being read must be complete by the timer's deadline, as with
    // hyper's header-read timeout: set when waiting for a request starts, kept while its bytes
    // trickle in. One timer and one shutdown registration for the connection's life, not one per
    // request: moving a registered timer's deadline later is a single atomic store in tokio.
    let mut deadline_set = false;
    let timer = tokio::time::sleep(header_timeout);
    tokio::pin!(timer);
    let notified = shutdown.0.notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    loop {
        // Every complete request already buffered (a client may pipeline), in order.
        let mut used = 0;
        // Set once a request asked for the connection to close after its answer (as every
        // request of a client opening a connection per call does): nothing after it is read.
        let mut closing = false;
        let handed_over = loop {
            // Left uninitialised: httparse writes the headers it finds.
            let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut []);
            let len = match parsed.parse_with_uninit_headers(&buf[used..], &mut headers) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => break false,
                // Malformed, or more headers than the fast path takes: hyper answers or serves it.
                Err(_) => break true,
            };
            let Some(Simple {
                method,
                path,
                close,
            }) = simple(&parsed)
            else {
                break true;
            };
            let head = method == Method::HEAD;
            let call = Head {
                method,
                target: parsed.path.unwrap_or(path),
                headers: parsed.headers,
            };
            let request_id = crate::state::next_request_id();
            match dataplane::answer(&state, remote, path, request_id, call).await {
                Some(dataplane::Answer::Json {
                    status,
                    body,
                    retry_after,
                }) => write_answer(
                    &mut out,
                    status,
                    &body,
                    retry_after,
                    request_id,
                    Framing { head, close },
                ),
                Some(forwarded @ (dataplane::Answer::Full(_) | dataplane::Answer::Upstream(_))) => {
                    // A forwarded answer streams: what is queued goes first, then its head and
                    // its body as the upstream sends it.
                    used += len;
                    let framing = Framing { head, close };
                    match forwarded {
                        dataplane::Answer::Upstream(answer) => {
                            write_upstream(&mut io, &mut out, answer, request_id, framing).await?
                        }
                        other => {
                            let response = axum::response::IntoResponse::into_response(other);
                            write_streamed(&mut io, &mut out, response, request_id, framing).await?
                        }
                    }
                    if close {
                        closing = true;
                        break false;
                    }
                    continue;
                }
                None => break true,
            }
            used += len;
            if close {
                closing = true;
                break false;
            }
        };
        buf.drain(..used);
        if used > 0 {
            deadline_set = false;
        }
        if !out.is_empty() {
            io.write_all(&out).await?;
            out.clear();
            // A TLS stream may hold the last record until flushed.
            io.flush().await?;
        }
        if closing {
            // As hyper ends a connection: the write side shut (a TLS close_notify first).
            io.shutdown().await?;
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed as the client asked",
            ));
        }
        if handed_over || buf.len() >= max_head_bytes || shutdown.started() {
            return Ok(Rewind::new(io, buf));
        }
        buf.reserve(4096);
        if !deadline_set {
            deadline_set = true;
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + header_timeout);
        }
        let read = tokio::select! {
            biased;
            read = io.read_buf(&mut buf) => read?,
            () = &mut timer => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "request headers too slow"));
            }
            () = &mut notified => return Ok(Rewind::new(io, buf)),
        };
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// A parsed request head, as the data plane reads a call.
struct Head<'b> {
    method: Method,
    /// The request target as sent: the path and any query.
    target: &'b str,
    headers: &'b [httparse::Header<'b>],
}

impl dataplane::Call for Head<'_> {
    fn method(&self) -> &Method {
        &self.method
    }

    fn header(&self, name: &str) -> Option<&str> {
        let header = self
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))?;
        visible_ascii(header.value)
    }

    fn header_lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| visible_ascii(h.value).unwrap_or(""))
    }

    fn can_forward(&self) -> bool {
        true
    }

    /// Straight from the parsed head onto a pooled upstream connection (`dataplane::upstream`).
    fn forward<'a>(
        self,
        client: &'a gateway::HttpClient,
        f: gateway::Forward<'a>,
    ) -> dataplane::Forwarding<'a>
    where
        Self: 'a,
    {
        Box::pin(async move {
            if f.upstream.target().is_none() {
                let request = self
                    .into_request()
                    .ok_or(gateway::NotForwarded::UpstreamFailed)?;
                return gateway::forward(client, f, request)
                    .await
                    .map(dataplane::Answer::Full);
            }
            let call = upstream::Outgoing {
                method: &self.method,
                rest: f.rest,
                query: self.target.split_once('?').map(|(_, query)| query),
                headers: self.headers,
                strip: f.strip,
                set: [
                    ("x-rekey-key-name", f.key_name),
                    ("x-rekey-resource-id", f.resource_id),
                    ("x-rekey-access", f.access),
                ],
            };
            upstream::forward(&client.pool, f.upstream, call)
                .await
                .map(dataplane::Answer::Upstream)
                .map_err(|failed| match failed {
                    upstream::Failed::Upstream(e) if gateway::untrusted(&e) => {
                        tracing::warn!(error = %e, upstream = f.upstream.url(), "upstream certificate not trusted");
                        gateway::NotForwarded::UpstreamUntrusted
                    }
                    failed => {
                        tracing::warn!(error = ?failed, upstream = f.upstream.url(), "upstream did not answer");
                        gateway::NotForwarded::UpstreamFailed
                    }
                })
        })
    }
}

impl Head<'_> {
    /// The call as a hyper request, bodyless; `None` for a header hyper would refuse too.
    fn into_request(self) -> Option<Request<Body>> {
        let mut request = Request::builder()
            .method(self.method)
            .uri(self.target)
            .body(Body::empty())
            .ok()?;
        let headers = request.headers_mut();
        headers.reserve(self.headers.len());
        for h in self.headers {
            headers.append(
                header::HeaderName::from_bytes(h.name.as_bytes()).ok()?,
                header::HeaderValue::from_bytes(h.value).ok()?,
            );
        }
        Some(request)
    }
}

/// As `HeaderValue::to_str`: visible ASCII (and tabs) only.
fn visible_ascii(value: &[u8]) -> Option<&str> {
    upstream::visible_ascii(value)
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

/// A request the fast path may answer.
struct Simple<'b> {
    method: Method,
    /// The path, without the query.
    path: &'b str,
    /// The client asked (`Connection: close`) for the connection to end after this answer.
    close: bool,
}

/// How an answer is framed for its request.
#[derive(Clone, Copy)]
struct Framing {
    /// The request was a HEAD: the answer's head only.
    head: bool,
    /// The answer says `connection: close`, and is the connection's last.
    close: bool,
}

/// The bytes a request target may hold for the fast path: those any URI parser accepts as they are
/// (letters, digits, `-._~!$&'()*+,;=:@/%?`); anything else is hyper's to judge. A table, as
/// every byte of every target is looked up.
static PLAIN_TARGET: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"-._~!$&'()*+,;=:@/%?";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// The request, when the fast path may answer it.
fn simple<'b>(parsed: &httparse::Request<'_, 'b>) -> Option<Simple<'b>> {
    // HTTP/1.0 has other connection rules; leave them to hyper.
    if parsed.version != Some(1) {
        return None;
    }
    let target = parsed.path?;
    if !target.bytes().all(|b| PLAIN_TARGET[usize::from(b)]) {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    dataplane::split_path(path)?;
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    if method == Method::CONNECT {
        return None;
    }
    let mut hosts = 0;
    let mut connection = 0;
    for header in parsed.headers.iter() {
        // A body, or a header that changes how the connection or the exchange goes: hyper's.
        let name = header.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            continue;
        }
        // `Connection: close` alone is the one connection option the fast path honours itself;
        // any other (keep-alive, upgrade, a list) is hyper's.
        if name.eq_ignore_ascii_case("connection") && header.value.eq_ignore_ascii_case(b"close") {
            connection += 1;
            continue;
        }
        let bodyless = if name.eq_ignore_ascii_case("content-length") {
            header.value == b"0"
        } else {
            !["transfer-encoding", "connection", "upgrade", "expect", "te"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
        };
        if !bodyless {
            return None;
        }
    }
    // An HTTP/1.1 request needs exactly one Host (RFC 9112 §3.2); `app::Front` refuses the rest.
    (hosts == 1 && connection <= 1).then_some(Simple {
        method,
        path,
        close: connection == 1,
    })
}

/// Appends a JSON answer as HTTP/1.1 to `out`, as hyper would write it: the status line, the
/// headers (`x-ms-request-id` added, and `connection: close` for the connection's last),
/// `content-length`, `date`, then the body (none for a HEAD request).
fn write_answer(
    out: &mut Vec<u8>,
    status: StatusCode,
    body: &[u8],
    retry_after: Option<u64>,
    request_id: uuid::Uuid,
    framing: Framing,
) {
    status_line(out, status);
    out.extend_from_slice(b"content-type: application/json\r\n");
    if let Some(seconds) = retry_after {
        out.extend_from_slice(b"retry-after: ");
        out.extend_from_slice(itoa(seconds as usize, &mut [0; 20]));
        out.extend_from_slice(b"\r\n");
    }
    write_request_id(out, request_id);
    if framing.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa(body.len(), &mut [0; 20]));
    out.extend_from_slice(b"\r\ndate: ");
    date::append(out);
    out.extend_from_slice(b"\r\n\r\n");
    if !framing.head {
        out.extend_from_slice(body);
    }
}

/// Largest stretch of a streamed body gathered with what precedes it into one write.
const GATHER_BYTES: usize = 16 * 1024;

/// How a streamed answer's body is written.
#[derive(Clone, Copy)]
struct BodyFraming {
    /// No body is written (a HEAD answer, 1xx, 204, 304).
    bodyless: bool,
    chunked: bool,
}

/// Appends a forwarded answer's head to `out` as hyper would write it: the status line, the header
/// lines `headers` appends (returning whether they held a `date` and a `content-length`), then
/// `x-ms-request-id`, `date` unless the lines had one, and the framing: `content-length` when the
/// body's length is known (`exact`), chunked otherwise.
fn write_forwarded_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    request_id: uuid::Uuid,
    framing: Framing,
    exact: Option<u64>,
    headers: impl FnOnce(&mut Vec<u8>) -> (bool, bool),
) -> BodyFraming {
    let head = framing.head;
    let bodyless = head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    status_line(out, status);
    let (dated, length_line) = headers(out);
    write_request_id(out, request_id);
    if framing.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        date::append(out);
        out.extend_from_slice(b"\r\n");
    }
    let chunked = !bodyless && exact.is_none();
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    } else if let Some(n) = exact {
        // 1xx, 204 and 304 answers carry no length; a HEAD answer keeps the upstream's, if any.
        let length = if head { !length_line } else { !bodyless };
        if length {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa(n as usize, &mut [0; 20]));
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    BodyFraming { bodyless, chunked }
}

/// Writes one stretch of a streamed body after what `out` holds, gathered with it when small; all
/// of it goes out now unless `last` (then the caller's final write sends it).
async fn write_body_data<S>(
    io: &mut S,
    out: &mut Vec<u8>,
    data: &[u8],
    framing: BodyFraming,
    last: bool,
) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    if data.is_empty() {
        return Ok(());
    }
    if framing.chunked {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    }
    if out.len() + data.len() <= GATHER_BYTES {
        out.extend_from_slice(data);
    } else {
        io.write_all(out).await?;
        out.clear();
        io.write_all(data).await?;
    }
    if framing.chunked {
        out.extend_from_slice(b"\r\n");
    }
    // What has come goes out before waiting for more.
    if !last {
        io.write_all(out).await?;
        out.clear();
        io.flush().await?;
    }
    Ok(())
}

/// Ends a streamed answer: the last chunk when chunked, then whatever `out` still holds.
async fn write_body_end<S>(io: &mut S, out: &mut Vec<u8>, framing: BodyFraming) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    if framing.chunked && !framing.bodyless {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    io.write_all(out).await?;
    out.clear();
    io.flush().await
}

/// Writes what `out` holds, then `response` as HTTP/1.1 as hyper would (see
/// [`write_forwarded_head`]), then the body frame by frame as it arrives, so a forwarded answer is
/// never held whole. A body that fails part way ends the connection, the only way left to tell
/// the client its answer is cut short.
async fn write_streamed<S>(
    io: &mut S,
    out: &mut Vec<u8>,
    response: axum::response::Response,
    request_id: uuid::Uuid,
    framing: Framing,
) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let head = framing.head;
    let (parts, mut body) = response.into_parts();
    let exact = body.size_hint().exact();
    let body_framing = write_forwarded_head(out, parts.status, request_id, framing, exact, |out| {
        let mut dated = false;
        for (name, value) in &parts.headers {
            // A HEAD answer keeps the length a GET would have had; other framing is written
            // by `write_forwarded_head`. The request id is this server's, as
            // `dataplane::handle` sets it over an upstream's.
            if (name == header::CONTENT_LENGTH && !head)
                || name == header::TRANSFER_ENCODING
                || name == header::CONNECTION
                || name == crate::state::REQUEST_ID
            {
                continue;
            }
            dated |= name == header::DATE;
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        (dated, parts.headers.contains_key(header::CONTENT_LENGTH))
    });
    if !body_framing.bodyless {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| io::Error::other(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                // Trailers: HTTP/1.1 clients of a gateway do not get them.
                continue;
            };
            let last = body.is_end_stream();
            write_body_data(io, out, &data, body_framing, last).await?;
        }
    }
    write_body_end(io, out, body_framing).await
}

/// As [`write_streamed`], for an upstream's answer read by `dataplane::upstream`: its header lines
/// are copied as read, and its body as it arrives, without building a response.
async fn write_upstream<S>(
    io: &mut S,
    out: &mut Vec<u8>,
    mut answer: upstream::Answer,
    request_id: uuid::Uuid,
    framing: Framing,
) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let exact = answer.body_length();
    let body_framing =
        write_forwarded_head(out, answer.status, request_id, framing, exact, |out| {
            out.extend_from_slice(answer.header_lines());
            (answer.dated(), answer.has_length_line())
        });
    if !body_framing.bodyless {
        while let Some(data) = answer.next_data().await {
            let (data, last) = data?;
            write_body_data(io, out, data, body_framing, last).await?;
        }
    }
    write_body_end(io, out, body_framing).await
}

fn write_request_id(out: &mut Vec<u8>, request_id: uuid::Uuid) {
    out.extend_from_slice(b"x-ms-request-id: ");
    let mut id = uuid::Uuid::encode_buffer();
    let id = request_id.hyphenated().encode_lower(&mut id);
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn itoa(mut n: usize, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[at..];
        }
    }
}

/// The `date` header's value (RFC 9110's IMF-fixdate), formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    use time::macros::format_description;
    use time::OffsetDateTime;

    thread_local! {
        static CACHED: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
    }

    /// The wall clock's second, from the kernel's coarse clock: the header names only the second,
    /// and the coarse clock (a few milliseconds behind at most) is read without the time stamp
    /// counter, several times cheaper on every answer.
    #[cfg(target_os = "linux")]
    fn now() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime only writes the timespec passed by pointer, which lives on this
        // stack frame for the whole call.
        let ok = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0;
        match u64::try_from(ts.tv_sec) {
            Ok(seconds) if ok => seconds,
            _ => precise_now(),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn now() -> u64 {
        precise_now()
    }

    fn precise_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    pub fn append(out: &mut Vec<u8>) {
        let now = now();
        CACHED.with_borrow_mut(|(second, text)| {
            if *second != now {
                *second = now;
                text.clear();
                let format = format_description!(
                    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
                );
                let when = OffsetDateTime::from_unix_timestamp(now as i64)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                // Formatting a valid date into a Vec cannot fail.
                let _ = when.format_into(text, format);
            }
            out.extend_from_slice(text);
        });
    }
}

/// A connection with bytes already read from it, which reads return first.
pub struct Rewind<S> {
    io: S,
    pre: Vec<u8>,
    at: usize,
}

impl<S> Rewind<S> {
    fn new(io: S, pre: Vec<u8>) -> Self {
        Self { io, pre, at: 0 }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.pre.len() {
            let n = buf.remaining().min(this.pre.len() - this.at);
            buf.put_slice(&this.pre[this.at..this.at + n]);
            this.at += n;
            if this.at == this.pre.len() {
                this.pre = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head's length and whether the fast path takes it; `None` while incomplete.
    fn parsed(raw: &str) -> Option<(usize, bool)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(raw.as_bytes()) {
            Ok(httparse::Status::Complete(len)) => Some((len, simple(&request).is_some())),
            Ok(httparse::Status::Partial) => None,
            Err(_) => Some((0, false)),
        }
    }

    #[test]
    fn a_bodyless_data_plane_call_is_simple_and_its_length_is_the_head() {
        let raw =
            "GET /data/abc/x?y=1 HTTP/1.1\r\nHost: h\r\nOcp-Apim-Subscription-Key: k\r\n\r\nGET";
        assert_eq!(parsed(raw), Some((raw.len() - 3, true)));
    }

    #[test]
    fn an_incomplete_head_waits_for_more() {
        assert_eq!(parsed("GET /data/abc HTTP/1.1\r\nHost: h\r\n"), None);
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for raw in [
            "GET /subscriptions HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /data/abc HTTP/1.0\r\nHost: h\r\n\r\n",
            "POST /data/abc HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}",
            "POST /data/abc HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /data/abc HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
            "GET /data/abc HTTP/1.1\r\nHost: h\r\nConnection: close, upgrade\r\n\r\n",
            "GET /data/abc HTTP/1.1\r\nHost: h\r\nConnection: close\r\nConnection: close\r\n\r\n",
            "GET /data/abc HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
            "PUT /data/abc HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
            "GET http://h/data/abc HTTP/1.1\r\nHost: h\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET /data/ HTTP/1.1\r\nHost: h\r\n\r\n",
            "G\0T /data/abc HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /data/abc/{x} HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /data/abc/\"x\" HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /data/abc HTTP/1.1\r\n\r\n",
            "GET /data/abc HTTP/1.1\r\nHost: h\r\nhost: i\r\n\r\n",
        ] {
            assert_eq!(
                parsed(raw).map(|(_, simple)| simple),
                Some(false),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn headers_are_found_by_any_case_and_only_as_visible_ascii() {
        use dataplane::Call as _;
        let headers = [
            httparse::Header {
                name: "Ocp-Apim-Subscription-Key",
                value: b"k1",
            },
            httparse::Header {
                name: "x-odd",
                value: b"caf\xc3\xa9",
            },
            httparse::Header {
                name: "ocp-apim-subscription-key",
                value: b"k2",
            },
        ];
        let head = Head {
            method: Method::GET,
            target: "/data/abc",
            headers: &headers,
        };
        assert_eq!(head.header("ocp-apim-subscription-key"), Some("k1"));
        assert_eq!(head.header("x-odd"), None);
        assert_eq!(head.header("x-missing"), None);
    }

    #[test]
    fn connection_close_alone_is_taken_and_marks_the_last_answer() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let raw = "GET /data/abc HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n";
        assert!(request.parse(raw.as_bytes()).unwrap().is_complete());
        assert!(simple(&request).is_some_and(|s| s.close));
        let mut out = Vec::new();
        let framing = Framing {
            head: false,
            close: true,
        };
        write_answer(
            &mut out,
            StatusCode::OK,
            b"{}",
            None,
            uuid::Uuid::nil(),
            framing,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    }

    #[test]
    fn content_length_zero_is_still_bodyless() {
        assert_eq!(
            parsed("DELETE /data/abc HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
                .map(|(_, s)| s),
            Some(true)
        );
    }

    #[test]
    fn the_date_is_an_imf_fixdate() {
        let mut out = Vec::new();
        date::append(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.len(), 29, "{text}");
        assert!(
            text.ends_with(" GMT") && text.as_bytes()[3] == b',',
            "{text}"
        );
    }
}

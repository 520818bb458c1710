//! Owns the fast path's forwarding to upstreams: a bodyless call read by `fastpath` is
//! written straight from its parsed head onto a kept-alive connection from a per-upstream pool, and
//! the upstream's answer is read back with `httparse` into an [`Answer`]: its status, the header
//! lines to pass on (already in the form `fastpath` writes them), and a body that reads the
//! connection as the client's side is written, returning the connection to the pool once the answer
//! is whole. No `Response` or `HeaderMap` is built for it on the way. All of it runs in the client connection's own task, as a reverse proxy's event loop
//! does; hyper's client ([`super::gateway`]) serves calls with bodies. `https://` upstreams are
//! reached with the same TLS settings as hyper's client, and their sessions resumed.
//!
//! A connection goes back to the pool only when its answer was read exactly to its end and the
//! upstream did not ask to close it; one found closed when taken from the pool is dropped. A call
//! that finds its pooled connection closed before any answer came is retried once on a new
//! connection when its method is idempotent, as nginx's `proxy_next_upstream` does.

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Idle connections kept per upstream; more are closed when returned.
const MAX_IDLE_PER_UPSTREAM: usize = 512;
/// An idle connection older than this is closed rather than reused (nginx's upstream
/// `keepalive_timeout` is 60 s; servers commonly close theirs sooner).
const IDLE_FOR: Duration = Duration::from_secs(30);
/// Largest answer head read from an upstream.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
const READ_CHUNK: usize = 16 * 1024;

/// Idle upstream connections by scheme and `host:port`, and how TLS ones are made.
pub struct Pool {
    lists: Mutex<HashMap<Box<str>, Arc<IdleList>>>,
    tls: TlsConnector,
    /// Tells this pool's lists apart from another's in an [`Upstream`]'s cache.
    id: u64,
}

/// The idle connections to one scheme and `host:port`. A connection in use holds its list, so
/// it goes back without a lookup.
#[derive(Default)]
struct IdleList(Mutex<Vec<Idle>>);

/// A connection back in the pool, and since when.
type Idle = (Stream, Instant);

impl Pool {
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            lists: Mutex::default(),
            tls: TlsConnector::from(tls),
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The list of idle connections to `upstream`'s scheme and authority: found once in the
    /// pool's map, then kept on the upstream, which every call to it shares.
    fn list(&self, upstream: &Upstream, key: &str) -> Arc<IdleList> {
        let (pool, list) = upstream.idle.get_or_init(|| (self.id, self.find(key)));
        if *pool == self.id {
            list.clone()
        } else {
            // Met first by another pool (each server has its own; tests run several in one
            // process): this one's list is looked up.
            self.find(key)
        }
    }

    fn find(&self, key: &str) -> Arc<IdleList> {
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        match lists.get(key) {
            Some(list) => list.clone(),
            None => lists.entry(key.into()).or_default().clone(),
        }
    }
}

impl IdleList {
    /// An idle connection that is still open, if there is one.
    fn take(&self) -> Option<Stream> {
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((stream, since)) = idle.pop() {
            if since.elapsed() < IDLE_FOR && stream.still_open() {
                return Some(stream);
            }
        }
        None
    }

    fn put(&self, stream: Stream) {
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_PER_UPSTREAM {
            idle.push((stream, Instant::now()));
        }
    }
}

impl Pool {
    async fn connect(&self, target: &Target<'_>) -> io::Result<Stream> {
        let tcp = TcpStream::connect(target.address().as_ref()).await?;
        // A forwarded call is one small write each way: Nagle's delay would only add latency.
        tcp.set_nodelay(true)?;
        if !target.tls {
            return Ok(Stream::Plain(tcp));
        }
        let name = rustls::pki_types::ServerName::try_from(target.host().to_string())
            .map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(self.tls.connect(name, tcp).await?)))
    }
}

/// An upstream connection.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether an idle connection is still open with nothing to read. The reactor's readiness
    /// answers without a system call while nothing happened on the connection; when it says
    /// something did, a plain connection is asked (a peer's close and stray bytes both rule it
    /// out), a TLS one is given up.
    fn still_open(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self {
            Stream::Plain(tcp) => {
                tcp.poll_read_ready(&mut cx).is_pending()
                    || {
                        let mut probe = [0u8; 1];
                        matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
                    }
            }
            Stream::Tls(tls) => tls.get_ref().0.poll_read_ready(&mut cx).is_pending(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A resource's upstream URL, split once when its index entry is made rather than on every call,
/// with its pool's list of idle connections once one was needed.
pub struct Upstream {
    url: Box<str>,
    /// Where the scheme and authority end (the base path starts); `None` for a URL the fast path's
    /// client does not reach (hyper's is given it instead).
    split: Option<usize>,
    /// The pool (by id) whose list of idle connections to this upstream was found, and that list.
    idle: OnceLock<(u64, Arc<IdleList>)>,
}

impl Upstream {
    pub fn new(url: impl Into<Box<str>>) -> Self {
        let url = url.into();
        let split = Target::parse(&url).map(|t| t.key.len());
        Self {
            url,
            split,
            idle: OnceLock::new(),
        }
    }

    /// The URL, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL split, when the fast path's client can reach it.
    pub fn target(&self) -> Option<Target<'_>> {
        let key_end = self.split?;
        let key = &self.url[..key_end];
        let tls = key.starts_with("https://");
        let authority = &key[if tls { 8 } else { 7 }..];
        Some(Target {
            key,
            tls,
            authority,
            base: &self.url[key_end..],
        })
    }
}

/// An `http(s)://host[:port][/base]` upstream, split.
pub struct Target<'a> {
    /// The scheme and authority: which pool the connections come from.
    key: &'a str,
    tls: bool,
    /// `host[:port]` as sent in `Host`.
    pub authority: &'a str,
    /// The base path (`/base`, or empty).
    pub base: &'a str,
}

impl<'a> Target<'a> {
    pub fn parse(upstream: &'a str) -> Option<Self> {
        let (tls, rest) = match upstream.strip_prefix("http://") {
            Some(rest) => (false, rest),
            None => (true, upstream.strip_prefix("https://")?),
        };
        let (authority, base) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let key = &upstream[..upstream.len() - base.len()];
        (!authority.is_empty() && !authority.contains('@')).then_some(Self {
            key,
            tls,
            authority,
            base,
        })
    }

    /// The host, without brackets around an IPv6 address.
    fn host(&self) -> &'a str {
        match self.authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => self.authority.split(':').next().unwrap_or(self.authority),
        }
    }

    /// Where to connect: the authority, with the scheme's port when it names none.
    fn address(&self) -> std::borrow::Cow<'a, str> {
        let has_port = match self.authority.rfind(']') {
            Some(end) => self.authority[end..].contains(':'),
            None => self.authority.contains(':'),
        };
        if has_port {
            self.authority.into()
        } else {
            let port = if self.tls { 443 } else { 80 };
            format!("{}:{port}", self.authority).into()
        }
    }
}

/// What to send: the call's method and headers as parsed, its path below the upstream's base, the
/// headers to drop, and the headers to set.
pub struct Outgoing<'a> {
    pub method: &'a Method,
    pub rest: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a [httparse::Header<'a>],
    /// Names (lower case) never forwarded besides `Host`, the hop-by-hop ones and those `set`
    /// replaces: the key material.
    pub strip: &'a [&'a str],
    pub set: [(&'static str, &'a str); 3],
}

/// Why a call was not forwarded.
#[derive(Debug)]
pub enum Failed {
    /// Nothing usable was sent or came back; the client gets 502.
    Upstream(io::Error),
    /// A header value to set is not a valid header value.
    BadHeader,
    /// The upstream's URL is not one this client reaches (`Upstream::target`).
    NotHttp,
}

/// Sends `call` to `upstream` and returns the upstream's answer, its body still to be read.
pub async fn forward(
    pool: &Pool,
    upstream: &Upstream,
    call: Outgoing<'_>,
) -> Result<Answer, Failed> {
    let target = upstream.target().ok_or(Failed::NotHttp)?;
    // The request's head goes first in the buffer its answer is read into after it: one
    // allocation for both. Most answers through a gateway are small: their head and body fit in
    // the first read.
    let mut buf = Vec::with_capacity(4096);
    request_head(&mut buf, &target, &call)?;
    let sent = buf.len();
    let idempotent = matches!(
        *call.method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    let is_head = *call.method == Method::HEAD;
    let idle = pool.list(upstream, target.key);
    if let Some(stream) = idle.take() {
        match exchange(stream, &mut buf, sent, is_head).await {
            Ok(answer) => return Ok(answer.finish(idle)),
            // The upstream closed the kept-alive connection before answering: the call may not
            // have been seen at all, and is sent again only if sending it twice is harmless.
            Err(Exchange::ClosedEarly(_)) if idempotent => {}
            Err(Exchange::ClosedEarly(e) | Exchange::Failed(e)) => return Err(Failed::Upstream(e)),
        }
    }
    let stream = pool.connect(&target).await.map_err(Failed::Upstream)?;
    match exchange(stream, &mut buf, sent, is_head).await {
        Ok(answer) => Ok(answer.finish(idle)),
        Err(Exchange::ClosedEarly(e) | Exchange::Failed(e)) => Err(Failed::Upstream(e)),
    }
}

/// Appends the request's head to `out`.
fn request_head(out: &mut Vec<u8>, target: &Target<'_>, call: &Outgoing<'_>) -> Result<(), Failed> {
    out.extend_from_slice(call.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.base.as_bytes());
    out.push(b'/');
    out.extend_from_slice(call.rest.as_bytes());
    if let Some(query) = call.query {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(target.authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in call.headers {
        let dropped = |d: &str| h.name.eq_ignore_ascii_case(d);
        if h.name.eq_ignore_ascii_case("host")
            || super::gateway::HOP_BY_HOP.iter().any(|d| dropped(d))
            || call.strip.iter().any(|d| dropped(d))
            || call.set.iter().any(|(d, _)| dropped(d))
        {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in call.set {
        // As `HeaderValue::from_str` checks them on the other path.
        if !visible_ascii(value.as_bytes()) {
            return Err(Failed::BadHeader);
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Whether a header value is visible ASCII and tabs only, as `HeaderValue::to_str` requires.
/// Folded without stopping early, so the compiler checks many bytes at once: a resource id is
/// checked on every forwarded call.
pub fn visible_ascii(value: &[u8]) -> bool {
    value.iter().fold(true, |ok, &b| {
        ok & ((b == b'\t') | (0x20..0x7f).contains(&b))
    })
}

enum Exchange {
    /// The connection ended before any byte of an answer.
    ClosedEarly(io::Error),
    Failed(io::Error),
}

/// An answer's head, read; its body follows in `buf` (from `at`) and on `stream`.
struct Read {
    status: StatusCode,
    head: Head,
    framing: Framing,
    keep_alive: bool,
    stream: Stream,
    buf: Vec<u8>,
    at: usize,
}

/// What an answer's head says to pass on.
struct Head {
    /// The header lines to pass on, each `name: value\r\n` with the name in lower case: every
    /// header but the hop-by-hop ones (and those `Connection` names), the framing ones
    /// (`content-length` except on a HEAD answer, `transfer-encoding`) and `x-ms-request-id`,
    /// which is the gateway's own.
    lines: Vec<u8>,
    /// Whether the lines hold a `date`.
    dated: bool,
    /// Whether the lines hold a `content-length` (only a HEAD answer's does).
    length_line: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// Sends the request head `buf[..sent]` on `stream` and reads the answer's head after it in `buf`,
/// which the answer then takes. On an error `buf` is left holding the request head, to send again.
async fn exchange(
    mut stream: Stream,
    buf: &mut Vec<u8>,
    sent: usize,
    is_head: bool,
) -> Result<Read, Exchange> {
    buf.truncate(sent);
    stream
        .write_all(&buf[..sent])
        .await
        .map_err(Exchange::ClosedEarly)?;
    loop {
        if buf.len() - sent >= MAX_HEAD_BYTES {
            return Err(Exchange::Failed(io::Error::other(
                "upstream answer head too large",
            )));
        }
        // Grown only when little room is left: reserving a full 4 KB more for the first read
        // would reallocate the buffer, as the request head already takes part of it.
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let read = tokio::io::AsyncReadExt::read_buf(&mut stream, buf).await;
        match read {
            Ok(0) if buf.len() == sent => {
                return Err(Exchange::ClosedEarly(io::ErrorKind::UnexpectedEof.into()))
            }
            Err(e) if buf.len() == sent => return Err(Exchange::ClosedEarly(e)),
            Ok(0) => return Err(Exchange::Failed(io::ErrorKind::UnexpectedEof.into())),
            Err(e) => return Err(Exchange::Failed(e)),
            Ok(_) => {}
        }
        // 1xx answers (e.g. 103 Early Hints) are skipped: the client gets the final one.
        loop {
            // Left uninitialised: httparse writes the headers it finds, and setting all 100
            // first would cost more than parsing a small answer's few.
            let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut []);
            let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut parsed,
                &buf[sent..],
                &mut headers,
            ) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => break,
                Err(e) => return Err(Exchange::Failed(io::Error::other(e))),
            };
            let code = parsed.code.unwrap_or(502);
            if (100..200).contains(&code) {
                buf.drain(sent..sent + len);
                continue;
            }
            let status =
                StatusCode::from_u16(code).map_err(|e| Exchange::Failed(io::Error::other(e)))?;
            let (head, framing, keep_alive) =
                read_head(&parsed, status, is_head).map_err(Exchange::Failed)?;
            return Ok(Read {
                status,
                head,
                framing,
                keep_alive,
                stream,
                buf: std::mem::take(buf),
                at: sent + len,
            });
        }
    }
}

/// Whether `list` (a comma-separated header value) names `token`, in any case.
fn names(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// The headers to pass on (hop-by-hop ones removed), the body's framing (RFC 9112 §6.3), and
/// whether the connection may carry another call.
fn read_head(
    parsed: &httparse::Response<'_, '_>,
    status: StatusCode,
    is_head: bool,
) -> io::Result<(Head, Framing, bool)> {
    let mut keep_alive = parsed.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    // `Connection`'s options other than close and keep-alive name more hop-by-hop headers.
    let mut connection: Option<&[u8]> = None;
    for h in parsed.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            for option in h.value.split(|&b| b == b',') {
                let option = option.trim_ascii();
                if option.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    if parsed.version == Some(0) {
                        keep_alive = true;
                    }
                } else if !option.is_empty() {
                    connection = Some(h.value);
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only chunked as the last coding frames a body; anything else runs to the close.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                keep_alive = false;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| io::Error::other("upstream sent a bad content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(io::Error::other(
                    "upstream sent conflicting content-lengths",
                ));
            }
            length = Some(n);
        }
    }
    let framing =
        if is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Empty
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            if n == 0 {
                Framing::Empty
            } else {
                Framing::Length(n)
            }
        } else {
            keep_alive = false;
            Framing::Close
        };
    let mut head = Head {
        lines: Vec::with_capacity(
            parsed
                .headers
                .iter()
                .map(|h| h.name.len() + h.value.len() + 4)
                .sum(),
        ),
        dated: false,
        length_line: false,
    };
    // Several `Connection` lines each name headers: rare enough to look them all up again.
    let named = |name: &str| {
        connection.is_some()
            && parsed
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("connection"))
                .any(|h| names(h.value, name.as_bytes()))
    };
    for h in parsed.headers.iter() {
        let name = h.name;
        let length_line = name.eq_ignore_ascii_case("content-length");
        // A HEAD answer keeps the length a GET would have had; other framing is the gateway's.
        if (length_line && !is_head)
            || HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
            || name.eq_ignore_ascii_case(crate::state::REQUEST_ID.as_str())
            || named(name)
        {
            continue;
        }
        head.length_line |= length_line;
        head.dated |= name.eq_ignore_ascii_case("date");
        // As `HeaderName` writes it: in lower case. httparse has checked the name is a token and
        // the value holds no control bytes but tabs.
        head.lines
            .extend(name.bytes().map(|b| b.to_ascii_lowercase()));
        head.lines.extend_from_slice(b": ");
        head.lines.extend_from_slice(h.value);
        head.lines.extend_from_slice(b"\r\n");
    }
    Ok((head, framing, keep_alive))
}

/// Headers never passed on, either way (RFC 9110 §7.6.1); as `gateway::HOP_BY_HOP`.
const HOP_BY_HOP: &[&str] = super::gateway::HOP_BY_HOP;

/// An upstream's answer to a forwarded call: its status, the header lines to pass on, and its
/// body, read from the upstream connection as it is asked for.
pub struct Answer {
    pub status: StatusCode,
    head: Head,
    body: UpstreamBody,
}

impl Read {
    /// The answer, its connection to go back to `idle` once its body is read.
    fn finish(self, idle: Arc<IdleList>) -> Answer {
        let mut body = UpstreamBody {
            state: match self.framing {
                Framing::Empty => State::Done,
                Framing::Length(n) => State::Length(n),
                Framing::Chunked => State::ChunkSize,
                Framing::Close => State::Close,
            },
            conn: Some(Conn {
                stream: self.stream,
                keep_alive: self.keep_alive,
                idle,
            }),
            end: self.buf.len(),
            buf: self.buf,
            at: self.at,
        };
        body.finish_if_done();
        Answer {
            status: self.status,
            head: self.head,
            body,
        }
    }
}

impl Answer {
    /// The header lines to pass on, each `name: value\r\n`: neither hop-by-hop nor framing ones
    /// (but a HEAD answer's `content-length`), nor `x-ms-request-id`.
    pub fn header_lines(&self) -> &[u8] {
        &self.head.lines
    }

    /// Whether the header lines hold a `date`.
    pub fn dated(&self) -> bool {
        self.head.dated
    }

    /// Whether the header lines hold a `content-length` (a HEAD answer's).
    pub fn has_length_line(&self) -> bool {
        self.head.length_line
    }

    /// The body's length, when it is known before it is read.
    pub fn body_length(&self) -> Option<u64> {
        hyper::body::Body::size_hint(&self.body).exact()
    }

    /// The next stretch of the body as the upstream sends it, and whether it is the last; `None`
    /// at the end. Each is valid until the next call. An error cuts the answer short: its
    /// connection is not reused.
    pub async fn next_data(&mut self) -> Option<io::Result<(&[u8], bool)>> {
        let body = &mut self.body;
        match std::future::poll_fn(|cx| body.poll_range(cx)).await {
            None => None,
            Some(Ok(range)) => Some(Ok((&self.body.buf[range], self.body.state == State::Done))),
            Some(Err(e)) => Some(Err(e)),
        }
    }

    /// The answer as a hyper response, for a server that writes it itself.
    pub fn into_response(self) -> Response<Body> {
        let mut headers = HeaderMap::new();
        for line in self.head.lines.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            // Every line was a valid header as the upstream sent it.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_bytes(line[colon + 1..].trim_ascii_start()),
            ) {
                headers.append(name, value);
            }
        }
        let mut response = Response::new(Body::new(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}

struct Conn {
    stream: Stream,
    keep_alive: bool,
    /// Where the connection goes back to.
    idle: Arc<IdleList>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk, up to the empty line.
    Trailers,
    Close,
    Done,
}

/// The answer's body, read from the upstream connection as it is polled.
struct UpstreamBody {
    state: State,
    conn: Option<Conn>,
    /// Bytes read and not yet passed on: `buf[at..end]`.
    buf: Vec<u8>,
    at: usize,
    end: usize,
}

impl UpstreamBody {
    /// Once the body has ended, its connection goes back to the pool if it can carry another
    /// call: the upstream kept it alive and sent nothing beyond the answer.
    fn finish_if_done(&mut self) {
        if self.state != State::Done {
            return;
        }
        if let Some(conn) = self.conn.take() {
            if conn.keep_alive && self.at == self.end {
                conn.idle.put(conn.stream);
            }
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.at..self.end]
    }

    /// Reads more from the upstream; `Ok(false)` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        if self.at == self.end {
            (self.at, self.end) = (0, 0);
        }
        if self.end == self.buf.len() {
            // Full: what is pending moves to the front, and the buffer grows if it still is.
            self.buf.copy_within(self.at..self.end, 0);
            (self.at, self.end) = (0, self.end - self.at);
            if self.end == self.buf.len() {
                self.buf.resize(self.end + READ_CHUNK, 0);
            }
        }
        let mut read = ReadBuf::new(&mut self.buf[self.end..]);
        ready!(Pin::new(&mut conn.stream).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        self.end += n;
        Poll::Ready(Ok(n > 0))
    }

    /// One CRLF-ended line at the front of what is pending, without its CRLF.
    fn take_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let pending = self.pending();
        match pending.windows(2).position(|w| w == b"\r\n") {
            Some(end) => {
                let line = pending[..end].to_vec();
                self.at += end + 2;
                Ok(Some(line))
            }
            None if pending.len() > 4096 => Err(io::Error::other("upstream chunk line too long")),
            None => Ok(None),
        }
    }

    /// Up to `left` more bytes of the body (where they lie in `buf`) and what is left after them,
    /// reading from the upstream when nothing is buffered; an upstream that closes first cuts the
    /// body short, and its connection is not reused.
    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
        left: u64,
    ) -> Poll<io::Result<(Range<usize>, u64)>> {
        if self.pending().is_empty() && !ready!(self.poll_fill(cx))? {
            self.conn = None;
            return Poll::Ready(Err(cut_short()));
        }
        let data = self.take_data(left);
        let left = left - data.len() as u64;
        Poll::Ready(Ok((data, left)))
    }

    fn take_data(&mut self, most: u64) -> Range<usize> {
        let n = (self.pending().len() as u64).min(most) as usize;
        let data = self.at..self.at + n;
        self.at += n;
        data
    }
}

fn cut_short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the upstream's answer was cut short",
    )
}

impl UpstreamBody {
    /// The next stretch of the body, as where it lies in `buf` (until the next poll); `None` at
    /// its end.
    fn poll_range(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Range<usize>>>> {
        let this = self;
        loop {
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) => {
                    let (data, left) = ready!(this.poll_data(cx, left))?;
                    this.state = if left == 0 {
                        State::Done
                    } else {
                        State::Length(left)
                    };
                    this.finish_if_done();
                    return Poll::Ready(Some(Ok(data)));
                }
                State::Close => {
                    if this.pending().is_empty() && !ready!(this.poll_fill(cx))? {
                        this.conn = None;
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                    let data = this.take_data(u64::MAX);
                    return Poll::Ready(Some(Ok(data)));
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let Some(line) = this.take_line()? else {
                        if !ready!(this.poll_fill(cx))? {
                            this.conn = None;
                            return Poll::Ready(Some(Err(cut_short())));
                        }
                        continue;
                    };
                    this.state = match this.state {
                        State::ChunkSize => {
                            let size = line.split(|&b| b == b';').next().unwrap_or_default();
                            let size = std::str::from_utf8(size)
                                .ok()
                                .map(str::trim)
                                .filter(|s| !s.is_empty() && s.len() <= 16)
                                .and_then(|s| u64::from_str_radix(s, 16).ok())
                                .ok_or_else(|| {
                                    io::Error::other("upstream sent a bad chunk size")
                                })?;
                            if size == 0 {
                                State::Trailers
                            } else {
                                State::ChunkData(size)
                            }
                        }
                        State::ChunkEnd if line.is_empty() => State::ChunkSize,
                        State::ChunkEnd => {
                            return Poll::Ready(Some(Err(io::Error::other(
                                "upstream sent a chunk longer than announced",
                            ))))
                        }
                        // Trailers are not passed on to HTTP/1.1 clients.
                        _ if line.is_empty() => State::Done,
                        other => other,
                    };
                    this.finish_if_done();
                }
                State::ChunkData(left) => {
                    let (data, left) = ready!(this.poll_data(cx, left))?;
                    this.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                    return Poll::Ready(Some(Ok(data)));
                }
            }
        }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let range = ready!(this.poll_range(cx));
        Poll::Ready(range.map(|range| Ok(Frame::data(Bytes::copy_from_slice(&this.buf[range?])))))
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_authority_and_base() {
        let t = Target::parse("http://127.0.0.1:9000/api/v1").unwrap();
        assert_eq!((t.authority, t.base), ("127.0.0.1:9000", "/api/v1"));
        assert_eq!(
            (t.key, t.host(), t.address().as_ref()),
            ("http://127.0.0.1:9000", "127.0.0.1", "127.0.0.1:9000")
        );
        let t = Target::parse("http://up").unwrap();
        assert_eq!(
            (t.authority, t.base, t.address().as_ref()),
            ("up", "", "up:80")
        );
        let t = Target::parse("https://[::1]/x").unwrap();
        assert_eq!(
            (t.key, t.host(), t.address().as_ref()),
            ("https://[::1]", "::1", "[::1]:443")
        );
        let t = Target::parse("https://[::1]:8443").unwrap();
        assert_eq!((t.host(), t.address().as_ref()), ("::1", "[::1]:8443"));
        assert!(Target::parse("ftp://up").is_none());
        assert!(Target::parse("http://user@up").is_none());
    }

    #[test]
    fn a_header_value_must_be_visible_ascii_or_tabs_wherever_a_bad_byte_lies() {
        let long = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/g\t x";
        assert!(visible_ascii(long.as_bytes()));
        assert!(visible_ascii(b""));
        for bad in [b'\r', b'\n', 0, 0x7f, 0x80, 0xff] {
            for at in [0, 17, long.len() - 1] {
                let mut value = long.as_bytes().to_vec();
                value[at] = bad;
                assert!(!visible_ascii(&value), "{bad:#x} at {at}");
            }
        }
    }

    #[test]
    fn an_upstream_split_once_gives_the_parts_parsing_gives() {
        for url in [
            "http://127.0.0.1:9000/api/v1",
            "http://up",
            "https://[::1]/x",
            "https://up:8443/a/b",
        ] {
            let (kept, parsed) = (Upstream::new(url), Target::parse(url).unwrap());
            let kept = kept.target().unwrap();
            assert_eq!(
                (kept.key, kept.tls, kept.authority, kept.base),
                (parsed.key, parsed.tls, parsed.authority, parsed.base),
                "{url}"
            );
        }
        for url in ["ftp://up", "http://user@up/x"] {
            let upstream = Upstream::new(url);
            assert!(upstream.target().is_none());
            assert_eq!(upstream.url(), url);
        }
    }

    /// The header lines an answer head passes on, its framing and whether its connection is kept.
    fn answer_head(raw: &str, is_head: bool) -> (String, bool, bool, Framing, bool) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        assert!(parsed.parse(raw.as_bytes()).unwrap().is_complete());
        let status = StatusCode::from_u16(parsed.code.unwrap()).unwrap();
        let (head, framing, keep_alive) = read_head(&parsed, status, is_head).unwrap();
        let lines = String::from_utf8(head.lines).unwrap();
        (lines, head.dated, head.length_line, framing, keep_alive)
    }

    #[test]
    fn an_answer_passes_on_its_own_headers_but_not_hop_by_hop_framing_or_request_id_ones() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Gone: 1\r\n\
                   Connection: keep-alive, X-Gone, x-also-gone\r\nKeep-Alive: timeout=5\r\n\
                   X-Also-Gone: 2\r\nTrailer: x\r\nUpgrade: h2c\r\nX-Ms-Request-Id: theirs\r\n\
                   Date: Sun, 06 Dec 2026 08:00:00 GMT\r\nContent-Length: 2\r\nX-Kept: a\tb\r\n\r\n";
        let (lines, dated, length_line, framing, keep_alive) = answer_head(raw, false);
        assert_eq!(
            lines,
            "content-type: application/json\r\ndate: Sun, 06 Dec 2026 08:00:00 GMT\r\n\
             x-kept: a\tb\r\n"
        );
        assert!(dated && !length_line && keep_alive);
        assert_eq!(framing, Framing::Length(2));
    }

    #[test]
    fn a_head_answer_keeps_its_length_and_a_chunked_one_loses_it() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n";
        let (lines, dated, length_line, framing, _) = answer_head(raw, true);
        assert_eq!(lines, "content-length: 42\r\n");
        assert!(!dated && length_line);
        assert_eq!(framing, Framing::Empty);
        let raw =
            "HTTP/1.1 200 OK\r\nContent-Length: 42\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        let (lines, _, length_line, framing, keep_alive) = answer_head(raw, false);
        assert_eq!(lines, "");
        assert!(!length_line && keep_alive);
        assert_eq!(framing, Framing::Chunked);
    }

    #[test]
    fn an_answer_asking_to_close_or_without_a_length_does_not_keep_its_connection() {
        let (_, _, _, framing, keep_alive) = answer_head(
            "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 1\r\n\r\n",
            false,
        );
        assert_eq!((framing, keep_alive), (Framing::Length(1), false));
        let (_, _, _, framing, keep_alive) = answer_head("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((framing, keep_alive), (Framing::Close, false));
        let (_, _, _, framing, keep_alive) = answer_head(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert_eq!((framing, keep_alive), (Framing::Empty, true));
    }

    #[test]
    fn an_answer_head_converts_to_a_response_with_the_same_headers() {
        let raw =
            "HTTP/1.1 201 Created\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 0\r\nX-B: c: d\r\n\r\n";
        let (lines, dated, length_line, _, _) = answer_head(raw, false);
        let head = Head {
            lines: lines.into_bytes(),
            dated,
            length_line,
        };
        let answer = Answer {
            status: StatusCode::CREATED,
            head,
            body: UpstreamBody {
                state: State::Done,
                conn: None,
                buf: Vec::new(),
                at: 0,
                end: 0,
            },
        };
        let response = answer.into_response();
        assert_eq!(response.status(), StatusCode::CREATED);
        let values: Vec<_> = response.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(response.headers()["x-b"], "c: d");
        assert_eq!(response.headers().len(), 3);
    }

    #[test]
    fn the_request_head_drops_what_it_must_and_sets_the_rest() {
        let headers = [
            httparse::Header {
                name: "Host",
                value: b"rekey",
            },
            httparse::Header {
                name: "Ocp-Apim-Subscription-Key",
                value: b"secret",
            },
            httparse::Header {
                name: "X-Rekey-Access",
                value: b"readWrite",
            },
            httparse::Header {
                name: "Accept",
                value: b"*/*",
            },
        ];
        let call = Outgoing {
            method: &Method::GET,
            rest: "a/b",
            query: Some("x=1"),
            headers: &headers,
            strip: &["ocp-apim-subscription-key"],
            set: [
                ("x-rekey-key-name", "key1"),
                ("x-rekey-resource-id", "/r"),
                ("x-rekey-access", "readOnly"),
            ],
        };
        let mut head = b"before".to_vec();
        request_head(
            &mut head,
            &Target::parse("http://up:1/base").unwrap(),
            &call,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "beforeGET /base/a/b?x=1 HTTP/1.1\r\nhost: up:1\r\nAccept: */*\r\nx-rekey-key-name: key1\r\n\
             x-rekey-resource-id: /r\r\nx-rekey-access: readOnly\r\n\r\n"
        );
    }
}

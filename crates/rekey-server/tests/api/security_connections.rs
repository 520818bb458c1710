//! Attacks on connections rather than on routes, each over a raw socket: bodies sent too slowly or
//! announced too large, request heads (HTTP/1) and header lists (HTTP/2) that grow without end, and
//! HTTP/1.1 requests without exactly one `Host`. Every route is covered by the same checks, so the
//! tests try the data plane and the management API alike.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dataplane::echo_upstream;
use crate::helpers::*;
use crate::limits::{host_port, read_until_closed};

crate::backend_tests!(
    bodies_sent_a_byte_a_second_get_408_and_their_connection_closed,
    a_stalled_data_plane_upload_is_cut_and_its_connection_closed,
    an_announced_oversize_body_gets_413_before_any_of_it_is_sent,
    unfinished_100_kb_request_heads_get_431_and_are_not_held,
    two_hundred_unfinished_290_kb_heads_do_not_hold_their_memory,
    http11_requests_without_exactly_one_host_header_get_400,
    http2_header_lists_are_bounded_as_http1_heads_and_need_no_host,
);

/// A resource with a key; forwarded to an echoing upstream when `forwarded`. Returns its data-plane
/// path (`/data/{id}/`) and key1.
async fn data_plane(s: &TestServer, forwarded: bool) -> (String, String) {
    s.create_group("rg").await;
    let account = s.create_account("rg", "acct").await;
    let endpoint = account["properties"]["endpoint"].as_str().unwrap();
    let path = endpoint.trim_start_matches(&s.base).to_string();
    if forwarded {
        s.forward_to("rg", "acct", &echo_upstream().await).await;
    }
    let (_, keys) = s.list_keys("rg", "acct").await;
    (path, keys["key1"].as_str().unwrap().to_string())
}

fn tenant(s: &TestServer) -> String {
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(s.data_dir().join("bootstrap.json")).unwrap(),
    )
    .unwrap();
    boot["tenantId"].as_str().unwrap().to_string()
}

/// The status of the first answer in `raw`, if one came.
fn status(raw: &str) -> Option<u16> {
    let rest = raw
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| raw.strip_prefix("HTTP/1.0 "))?;
    rest.get(..3)?.parse().ok()
}

/// The JSON body of the one answer in `raw`.
fn body(raw: &str) -> Value {
    let (_, body) = raw.split_once("\r\n\r\n").unwrap_or_default();
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// Sends `head`, then the body one byte a second (for as long as the server reads); returns what
/// came back and when the server closed the connection (`None`: still open after 10 s).
async fn dribble(address: String, head: String) -> (String, Option<Duration>) {
    let (mut from, mut to) = TcpStream::connect(address).await.unwrap().into_split();
    to.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        while to.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let outcome = read_until_closed(&mut from, Duration::from_secs(10)).await;
    writer.abort();
    outcome
}

async fn bodies_sent_a_byte_a_second_get_408_and_their_connection_closed() {
    let s = TestServer::start_with("info", &[("REKEY_BODY_READ_TIMEOUT_SECONDS", "2")]).await;
    let announced = "Content-Length: 100\r\n\r\n";
    let heads = [
        format!(
            "POST /web/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{announced}"
        ),
        format!(
            "PUT {}/resourcegroups/rg?api-version={RG_VERSION} HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n{announced}",
            s.sub_path(),
            s.token
        ),
        format!(
            "POST /{}/oauth2/v2.0/token HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n{announced}",
            tenant(&s)
        ),
    ];
    let started = Instant::now();
    let outcomes: Vec<_> = heads
        .iter()
        .map(|head| tokio::spawn(dribble(host_port(&s.base), head.clone())))
        .collect();
    for (head, outcome) in heads.iter().zip(outcomes) {
        let (answer, closed) = outcome.await.unwrap();
        let route = head.lines().next().unwrap();
        assert_eq!(status(&answer), Some(408), "{route}: {answer}");
        assert_eq!(
            body(&answer)["error"]["code"],
            "RequestTimeout",
            "{route}: {answer}"
        );
        let closed = closed.unwrap_or_else(|| panic!("{route}: the connection stayed open"));
        assert!(closed < Duration::from_secs(6), "{route}: {closed:?}");
    }
    eprintln!(
        "three bodies dribbled a byte a second, timeout 2 s: all answered 408 and closed after {:?}",
        started.elapsed()
    );
    // A client that sends its body at once is served as usual.
    s.create_group("rg").await;
}

async fn a_stalled_data_plane_upload_is_cut_and_its_connection_closed() {
    let s = TestServer::start_with("info", &[("REKEY_BODY_READ_TIMEOUT_SECONDS", "2")]).await;
    let (path, key) = data_plane(&s, true).await;
    let head = |length: usize| {
        format!(
            "POST {path}upload HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: {key}\r\n\
             Content-Length: {length}\r\n\r\n"
        )
    };
    // Ten bytes of a hundred, then nothing, with the connection left open.
    let mut stalled = TcpStream::connect(host_port(&s.base)).await.unwrap();
    stalled
        .write_all(format!("{}0123456789", head(100)).as_bytes())
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut stalled, Duration::from_secs(10)).await;
    let closed = closed.expect("the stalled upload's connection stayed open");
    eprintln!("a data-plane upload stalled after 10 bytes, timeout 2 s: closed after {closed:?}");
    assert!(closed < Duration::from_secs(6), "{closed:?}");
    assert_eq!(status(&answer), Some(408), "{answer}");
    assert_eq!(body(&answer)["error"]["code"], "RequestTimeout", "{answer}");

    // The limit is on the pause between reads, not on the whole upload: a body slower in total than
    // the timeout but never pausing that long still goes through.
    let mut steady = TcpStream::connect(host_port(&s.base)).await.unwrap();
    steady.write_all(head(6).as_bytes()).await.unwrap();
    for byte in b"steady" {
        tokio::time::sleep(Duration::from_millis(600)).await;
        steady.write_all(&[*byte]).await.unwrap();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\"body\":\"steady\"") {
        let n = tokio::time::timeout(Duration::from_secs(10), steady.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    assert_eq!(status(&String::from_utf8_lossy(&answer)), Some(200));
}

async fn an_announced_oversize_body_gets_413_before_any_of_it_is_sent() {
    let s = TestServer::start().await;
    let (path, key) = data_plane(&s, true).await;
    let announced = "Content-Length: 100000000\r\n\r\n";
    let heads = [
        format!(
            "PUT {}/resourcegroups/rg2?api-version={RG_VERSION} HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n{announced}",
            s.sub_path(),
            s.token
        ),
        format!(
            "POST /web/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{announced}"
        ),
        format!(
            "POST /{}/oauth2/v2.0/token HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n{announced}",
            tenant(&s)
        ),
        format!(
            "POST {path}upload HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: {key}\r\n{announced}"
        ),
    ];
    for head in heads {
        let route = head.lines().next().unwrap().to_string();
        let mut stream = TcpStream::connect(host_port(&s.base)).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(status(&answer), Some(413), "{route}: {answer}");
        assert_eq!(
            body(&answer)["error"]["code"],
            "RequestEntityTooLarge",
            "{route}: {answer}"
        );
        let closed = closed.unwrap_or_else(|| panic!("{route}: the connection stayed open"));
        assert!(closed < Duration::from_secs(2), "{route}: {closed:?}");
    }
}

/// `GET {target}` with `headers` and no end to its head.
fn unfinished_head(target: &str, headers: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\n{headers}")
}

/// One header of `len` bytes, unfinished.
fn long_header(len: usize) -> String {
    format!("X-Long: {}", "a".repeat(len))
}

/// Many 2 KB headers, `len` bytes in all, the last unfinished.
fn many_headers(len: usize) -> String {
    let one = format!("X-Filler: {}\r\n", "b".repeat(2000));
    let mut all = one.repeat(len / one.len() + 1);
    all.truncate(len);
    all
}

async fn unfinished_100_kb_request_heads_get_431_and_are_not_held() {
    // The header timeout is long: a close within the test's few seconds is the size limit's.
    let s = TestServer::start_with("info", &[("REKEY_HEADER_READ_TIMEOUT_SECONDS", "60")]).await;
    let (path, key) = data_plane(&s, false).await;
    let data = format!("{path}x");
    let management = format!("{}?api-version={RG_VERSION}", s.sub_path());
    for target in [&data, &management] {
        for headers in [long_header(100_000), many_headers(100_000)] {
            let mut stream = TcpStream::connect(host_port(&s.base)).await.unwrap();
            // The server may stop reading and close before all of it is written.
            let _ = stream
                .write_all(unfinished_head(target, &headers).as_bytes())
                .await;
            let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
            let shape = &headers[..10];
            let closed =
                closed.unwrap_or_else(|| panic!("{target} {shape}…: the connection stayed open"));
            assert!(
                answer.is_empty() || status(&answer) == Some(431),
                "{target} {shape}…: {answer}"
            );
            eprintln!(
                "100 KB unfinished head ({shape}…) to {target}: {:?} after {closed:?}",
                status(&answer)
            );
        }
    }
    // A 60 KB head that ends is within the limit, on both paths (the data-plane call is longer
    // than the fast path takes: hyper serves it).
    let big = format!("{}\r\n\r\n", long_header(60_000));
    let requests = [
        format!("GET {data} HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: {key}\r\n{big}"),
        format!(
            "GET {management} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n{big}",
            s.token
        ),
    ];
    for request in requests {
        let mut stream = TcpStream::connect(host_port(&s.base)).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut answer))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200", "{}", &request[..60]);
    }
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn two_hundred_unfinished_290_kb_heads_do_not_hold_their_memory() {
    let s = TestServer::start_with("info", &[("REKEY_HEADER_READ_TIMEOUT_SECONDS", "60")]).await;
    let (path, _) = data_plane(&s, false).await;
    let before = rss_kib(s.pid());
    let targets = [format!("{path}x"), format!("{}?x", s.sub_path())];
    let connections: Vec<_> = (0..200)
        .map(|i| {
            let head = unfinished_head(&targets[i % 2], &long_header(290_000));
            let address = host_port(&s.base);
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(address).await.unwrap();
                let _ = stream.write_all(head.as_bytes()).await;
                stream
            })
        })
        .collect();
    let mut held = Vec::new();
    for connection in connections {
        held.push(connection.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rss_kib(s.pid());
    drop(held);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(s.pid());
    eprintln!(
        "rekeyd RSS with 200 unfinished 290 KB heads: before {before} KiB, during {during} KiB, \
         after closing {after} KiB"
    );
    // Loose: 200 heads held whole would be 58 MB; bounded, they cannot add more than 13 MB.
    assert!(
        during.saturating_sub(before) < 40 * 1024,
        "before {before} KiB, during {during} KiB"
    );
    let resp = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// Sends `request` on a new connection and reads one answer: its status and JSON body.
async fn one_answer(s: &TestServer, request: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(host_port(&s.base)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                let json = serde_json::from_str(body).unwrap_or(Value::Null);
                return (status(&text).unwrap(), json);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed without an answer: {text}");
        raw.extend_from_slice(&buf[..n]);
    }
}

async fn http11_requests_without_exactly_one_host_header_get_400() {
    let s = TestServer::start().await;
    let (path, key) = data_plane(&s, false).await;
    let data = format!("GET {path}x HTTP/1.1\r\nOcp-Apim-Subscription-Key: {key}\r\n");
    let management = format!(
        "GET /subscriptions?api-version=2022-12-01 HTTP/1.1\r\nAuthorization: Bearer {}\r\n",
        s.token
    );
    for request in [&data, &management] {
        let route = request.lines().next().unwrap();
        for hosts in ["", "Host: x\r\nHost: y\r\n"] {
            let (status, body) = one_answer(&s, &format!("{request}{hosts}\r\n")).await;
            assert_eq!(status, 400, "{route} with {hosts:?}: {body}");
            assert_eq!(body["error"]["code"], "BadRequest", "{body}");
            assert!(
                body["error"]["message"].as_str().unwrap().contains("Host"),
                "{body}"
            );
        }
        let (status, body) = one_answer(&s, &format!("{request}Host: x\r\n\r\n")).await;
        assert_eq!(status, 200, "{route} with a Host: {body}");
    }
    // HTTP/1.0 predates Host.
    let (status, _) = one_answer(&s, "GET /healthz HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 200);
}

/// An HTTP/2 frame.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An HPACK integer with an `n`-bit prefix, `flags` in the first byte's other bits.
fn hpack_integer(out: &mut Vec<u8>, flags: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

fn hpack_string(out: &mut Vec<u8>, text: &str) {
    hpack_integer(out, 0, 7, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// `GET /healthz` over HTTP/2 with prior knowledge, its `:authority` but no `Host`, and one extra
/// header `x-long` of `len` bytes. Returns whether it was answered 200.
async fn h2_get_healthz(s: &TestServer, len: usize) -> bool {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http (HPACK's static table)
    for (index, value) in [(4u8, "/healthz"), (1, "x")] {
        // A literal with an indexed name (:path, :authority), not indexed.
        hpack_integer(&mut block, 0, 4, index as usize);
        hpack_string(&mut block, value);
    }
    block.push(0);
    hpack_string(&mut block, "x-long");
    hpack_string(&mut block, &"a".repeat(len));
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[]));
    let pieces: Vec<&[u8]> = block.chunks(16 * 1024).collect();
    for (i, piece) in pieces.iter().enumerate() {
        // HEADERS (END_STREAM) then CONTINUATIONs; the last has END_HEADERS.
        let (kind, mut flags) = if i == 0 { (0x1, 0x1) } else { (0x9, 0) };
        if i == pieces.len() - 1 {
            flags |= 0x4;
        }
        out.extend(h2_frame(kind, flags, 1, piece));
    }
    let mut stream = TcpStream::connect(host_port(&s.base)).await.unwrap();
    let _ = stream.write_all(&out).await;
    loop {
        let mut head = [0u8; 9];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
            .await
            .expect("an HTTP/2 frame or a close within 5 s");
        if read.is_err() {
            return false;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        if stream.read_exact(&mut payload).await.is_err() {
            return false;
        }
        let on_stream_1 = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) == 1;
        match head[3] {
            // HEADERS: `:status 200` is entry 8 of HPACK's static table.
            0x1 if on_stream_1 => return payload.first() == Some(&0x88),
            0x3 if on_stream_1 => return false,
            0x7 => return false,
            _ => {}
        }
    }
}

async fn http2_header_lists_are_bounded_as_http1_heads_and_need_no_host() {
    let s = TestServer::start().await;
    assert!(h2_get_healthz(&s, 10).await, "a small HTTP/2 request");
    assert!(h2_get_healthz(&s, 60_000).await, "60 KB of headers");
    assert!(!h2_get_healthz(&s, 100_000).await, "100 KB of headers");
}

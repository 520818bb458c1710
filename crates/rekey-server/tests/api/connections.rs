//! One client connection, as HTTP/1.1 clients use it: several calls in a row or pipelined, simple
//! data-plane calls (answered by rekeyd's fast path) mixed with everything else (served by hyper,
//! which takes the connection over mid-stream). Every call gets its own answer, in order.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dataplane::echo_upstream;
use crate::helpers::*;

/// One HTTP/1.1 response read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Reads `heads.len()` responses; `heads[i]` says whether the i-th request was a HEAD (no body).
async fn read_answers(stream: &mut TcpStream, heads: &[bool]) -> Vec<Answer> {
    let mut raw = Vec::new();
    let mut answers = Vec::new();
    let mut buf = [0u8; 8192];
    while answers.len() < heads.len() {
        // Parse whatever is complete.
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
            let headers: Vec<(String, String)> = lines
                .map(|l| {
                    let (n, v) = l.split_once(':').unwrap();
                    (n.trim().to_string(), v.trim().to_string())
                })
                .collect();
            let length = if heads[answers.len()] {
                0
            } else {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse::<usize>().unwrap())
            };
            if raw.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).to_string();
                raw.drain(..end + 4 + length);
                answers.push(Answer {
                    status,
                    headers,
                    body,
                });
                continue;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed after {} answers: {answers:?}", answers.len());
        raw.extend_from_slice(&buf[..n]);
    }
    answers
}

fn path_of(endpoint: &str) -> String {
    let after_scheme = endpoint.split_once("//").unwrap().1;
    after_scheme[after_scheme.find('/').unwrap()..].to_string()
}

async fn account(s: &TestServer, name: &str) -> (String, Value) {
    let account = s.create_account("rg", name).await;
    let endpoint = account["properties"]["endpoint"].as_str().unwrap();
    let (_, keys) = s.list_keys("rg", name).await;
    (path_of(endpoint), keys)
}

#[tokio::test]
async fn pipelined_calls_of_every_kind_are_answered_in_order_on_one_connection() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (path, keys) = account(&s, "acct").await;
    let (key1, key2) = (
        keys["key1"].as_str().unwrap(),
        keys["key2"].as_str().unwrap(),
    );
    let call = |method: &str, key: &str, extra: &str| {
        format!(
            "{method} {path}items?n=1 HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: {key}\r\n{extra}\r\n"
        )
    };
    let requests = [
        call("GET", key1, ""),
        call("GET", "not-a-key", ""),
        call("HEAD", key2, ""),
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        call("GET", key2, ""),
        call("POST", key1, "Content-Length: 7\r\n") + "payload",
        call("GET", key1, ""),
    ];
    let mut stream = TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    // All at once: the server sees them pipelined in one read.
    stream
        .write_all(requests.concat().as_bytes())
        .await
        .unwrap();
    let answers = read_answers(
        &mut stream,
        &[false, false, true, false, false, false, false],
    )
    .await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 401, 200, 200, 200, 200, 200], "{answers:?}");
    assert_eq!(answers[0].json()["keyName"], "key1");
    assert_eq!(answers[0].json()["path"], "/items");
    assert_eq!(
        answers[1].json()["error"]["code"],
        "401",
        "the type's own refusal: {}",
        answers[1].body
    );
    // HEAD: the GET's headers, no body.
    assert!(answers[2].body.is_empty());
    assert!(
        answers[2]
            .header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    assert_eq!(answers[4].json()["keyName"], "key2");
    assert_eq!(answers[5].json()["method"], "POST");
    assert_eq!(answers[6].json()["keyName"], "key1");
    for answer in &answers {
        assert!(
            answer.header("date").is_some_and(|d| d.ends_with(" GMT")),
            "{answer:?}"
        );
        assert!(answer.header("x-ms-request-id").is_some(), "{answer:?}");
    }
    assert_eq!(answers[0].header("content-type"), Some("application/json"));

    // The connection stays open after hyper took it over.
    stream
        .write_all(call("GET", key2, "").as_bytes())
        .await
        .unwrap();
    let again = read_answers(&mut stream, &[false]).await;
    assert_eq!(again[0].json()["keyName"], "key2", "{again:?}");
}

#[tokio::test]
async fn a_call_whose_head_arrives_in_pieces_is_answered() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (path, keys) = account(&s, "acct").await;
    let request = format!(
        "GET {path}x HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: {}\r\n\r\n",
        keys["key1"].as_str().unwrap()
    );
    let mut stream = TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    for piece in [&request[..10], &request[10..40], &request[40..]] {
        stream.write_all(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let answers = read_answers(&mut stream, &[false]).await;
    assert_eq!(answers[0].status, 200, "{answers:?}");
    assert_eq!(answers[0].json()["keyName"], "key1");
}

#[tokio::test]
async fn a_forwarded_call_and_a_self_answered_call_share_a_connection() {
    let s = TestServer::start().await;
    let upstream = echo_upstream().await;
    s.create_group("rg").await;
    let (proxied, proxied_keys) = account(&s, "proxied").await;
    let (local, local_keys) = account(&s, "local").await;
    s.forward_to("rg", "proxied", &upstream).await;
    let request = |path: &str, key: &Value| {
        format!(
            "GET {path}items/7 HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: {}\r\n\r\n",
            key.as_str().unwrap()
        )
    };
    let mut stream = TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    for _ in 0..2 {
        stream
            .write_all(request(&local, &local_keys["key1"]).as_bytes())
            .await
            .unwrap();
        let answers = read_answers(&mut stream, &[false]).await;
        assert_eq!(answers[0].json()["keyName"], "key1", "{answers:?}");
        stream
            .write_all(request(&proxied, &proxied_keys["key2"]).as_bytes())
            .await
            .unwrap();
        let answers = read_answers(&mut stream, &[false]).await;
        assert_eq!(answers[0].status, 200, "{answers:?}");
        let echoed = answers[0].json();
        assert_eq!(echoed["uri"], "/base/items/7", "{echoed}");
        assert_eq!(echoed["headers"]["x-rekey-key-name"], "key2", "{echoed}");
        assert!(
            echoed["headers"].get("ocp-apim-subscription-key").is_none(),
            "{echoed}"
        );
    }
}

#[tokio::test]
async fn a_graceful_shutdown_closes_idle_data_plane_connections_at_once() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (path, keys) = account(&s, "acct").await;
    let mut stream = TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let request = format!(
        "GET {path}x HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: {}\r\n\r\n",
        keys["key1"].as_str().unwrap()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_answers(&mut stream, &[false]).await[0].status, 200);
    // SAFETY: kill(2) takes plain integers; the pid is our own child, alive until `s` drops.
    let pid = libc::pid_t::try_from(s.pid()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(8), stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the idle connection stayed open: {read:?}"
    );
    // Not the 10 s a graceful shutdown waits for connections that ignore it.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_call_asking_to_close_gets_its_answer_then_the_connection_ends() {
    let s = TestServer::start().await;
    let upstream = echo_upstream().await;
    s.create_group("rg").await;
    let (local, local_keys) = account(&s, "local").await;
    let (proxied, proxied_keys) = account(&s, "proxied").await;
    s.forward_to("rg", "proxied", &upstream).await;
    for (path, keys) in [(&local, &local_keys), (&proxied, &proxied_keys)] {
        let mut stream = TcpStream::connect(s.base.trim_start_matches("http://"))
            .await
            .unwrap();
        let request = format!(
            "GET {path}items/7 HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: {}\r\nConnection: close\r\n\r\n",
            keys["key1"].as_str().unwrap()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let answers = read_answers(&mut stream, &[false]).await;
        assert_eq!(answers[0].status, 200, "{answers:?}");
        assert_eq!(
            answers[0].header("connection"),
            Some("close"),
            "{answers:?}"
        );
        let json = answers[0].json();
        if path == &local {
            assert_eq!(json["keyName"], "key1", "{json}");
        } else {
            // Hop-by-hop: the client's wish to close is not passed on to the upstream.
            assert_eq!(json["headers"]["x-rekey-key-name"], "key1", "{json}");
            assert!(json["headers"].get("connection").is_none(), "{json}");
        }
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .expect("the server ends the connection after the answer");
        assert!(
            matches!(read, Ok(0)) && rest.is_empty(),
            "{read:?} {rest:?}"
        );
    }
}

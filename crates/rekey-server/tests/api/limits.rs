//! Resource limits: oversize bodies get 413 (management and data plane, announced or streamed), and
//! clients that are too slow to send their headers, or silent, are disconnected.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dataplane::echo_upstream;
use crate::helpers::*;

pub(crate) fn host_port(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection or `limit` passes; returns what came and when.
pub(crate) async fn read_until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    limit: Duration,
) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&seen).into(),
                    Some(started.elapsed()),
                )
            }
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    (String::from_utf8_lossy(&seen).into(), None)
}

#[tokio::test]
async fn management_bodies_over_the_limit_get_413_with_an_arm_error() {
    let s = TestServer::start_with("info", &[("REKEY_MAX_BODY_BYTES", "1024")]).await;
    let url = s.url(&format!(
        "{}/resourcegroups/rg?api-version={RG_VERSION}",
        s.sub_path()
    ));
    let body = |len: usize| {
        let mut b = r#"{"location":"westus"}"#.to_string();
        b.push_str(&" ".repeat(len - b.len()));
        b
    };
    let send = |b: String| {
        s.client
            .put(&url)
            .bearer_auth(&s.token)
            .header("content-type", "application/json")
            .body(b)
            .send()
    };
    let resp = send(body(1025)).await.unwrap();
    assert_eq!(resp.status(), 413);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "RequestEntityTooLarge", "{answer}");
    assert_eq!(send(body(1024)).await.unwrap().status(), 201);
}

#[tokio::test]
async fn data_plane_bodies_over_the_limit_get_413_whether_announced_or_streamed() {
    let s = TestServer::start_with("info", &[("REKEY_MAX_DATA_PLANE_BODY_BYTES", "1000")]).await;
    let upstream = echo_upstream().await;
    s.create_group("rg").await;
    let account = s.create_account("rg", "acct").await;
    let endpoint = account["properties"]["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, keys) = s.list_keys("rg", "acct").await;
    let key = keys["key1"].as_str().unwrap().to_string();
    let (status, body) = s
        .call(
            Method::PATCH,
            &format!("{}?api-version={CS_VERSION}", s.account_path("rg", "acct")),
            Some(&json!({"properties": {"x-rekey-upstream": upstream}}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let post = |len: usize| {
        s.client
            .post(format!("{endpoint}upload"))
            .header("Ocp-Apim-Subscription-Key", &key)
            .body("x".repeat(len))
            .send()
    };
    assert_eq!(post(1000).await.unwrap().status(), 200, "at the limit");
    let resp = post(1001).await.unwrap();
    assert_eq!(resp.status(), 413, "announced over the limit");
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "RequestEntityTooLarge", "{answer}");

    // A chunked body announces nothing: it is cut off at the limit while it is forwarded.
    let path = endpoint.trim_start_matches(&s.base);
    let mut stream = TcpStream::connect(host_port(&s.base)).await.unwrap();
    let head = format!(
        "POST {path}upload HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: {key}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("258\r\n{}\r\n", "y".repeat(600));
    for _ in 0..2 {
        let _ = stream.write_all(chunk.as_bytes()).await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn clients_too_slow_to_send_headers_or_silent_are_disconnected() {
    let s = TestServer::start_with("info", &[("REKEY_HEADER_READ_TIMEOUT_SECONDS", "1")]).await;
    let mut dribbling = TcpStream::connect(host_port(&s.base)).await.unwrap();
    dribbling
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // The same on a data-plane path, which rekeyd's fast path reads before hyper does, with a
    // byte every 200 ms: the deadline is for the whole head, not for each read.
    let dribbled = TcpStream::connect(host_port(&s.base)).await.unwrap();
    let (mut from_data, mut to_data) = dribbled.into_split();
    to_data
        .write_all(b"GET /data/0123/x HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let dribbler = tokio::spawn(async move {
        while to_data.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let started = Instant::now();
    let mut sink = [0u8; 256];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(8), from_data.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => break None,
        }
    };
    dribbler.abort();
    let closed = closed.expect("the dribbling data-plane connection stayed open");
    assert!(
        closed < Duration::from_secs(5),
        "dribbling data-plane: {closed:?}"
    );
    let mut silent = TcpStream::connect(host_port(&s.base)).await.unwrap();
    for (name, stream) in [("dribbling", &mut dribbling), ("silent", &mut silent)] {
        let (_, closed) = read_until_closed(stream, Duration::from_secs(8)).await;
        let closed = closed.unwrap_or_else(|| panic!("the {name} connection stayed open"));
        assert!(closed < Duration::from_secs(5), "{name}: {closed:?}");
    }
    // A prompt client is served as usual.
    let resp = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// The idle-connection check (tests/reliability/limits.py) took 20 s to open 10,000 connections:
/// std's listener asks for a backlog of 128, so a burst of connections while the accept loop was
/// busy overflowed it and each dropped SYN waited for a retransmit. With rekeyd paused (SIGSTOP),
/// nothing is accepted and only the backlog decides how many connections complete.
#[tokio::test]
async fn a_burst_of_connections_completes_even_before_rekeyd_accepts_them() {
    let s = TestServer::start().await;
    let pid = libc::pid_t::try_from(s.pid()).unwrap();
    let signal = |sig: libc::c_int| {
        // SAFETY: kill(2) takes plain integers; `pid` is our own child, alive until `s` drops.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    };
    signal(libc::SIGSTOP);
    let address = host_port(&s.base);
    let connects = (0..600).map(|_| {
        let address = address.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(900), TcpStream::connect(address)).await
        })
    });
    let mut completed = 0;
    let mut held = Vec::new();
    for connect in connects.collect::<Vec<_>>() {
        if let Ok(Ok(stream)) = connect.await.unwrap() {
            completed += 1;
            held.push(stream);
        }
    }
    signal(libc::SIGCONT);
    assert_eq!(
        completed, 600,
        "connections beyond the backlog were dropped"
    );
    let resp = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

//! Gateway mode's transport: `https://` upstreams trusted through `--upstream-ca-file` (and refused,
//! without leaking anything, when their certificate is not trusted), upstream connections pooled
//! across calls, and bodies streamed both ways rather than held whole.

use std::future::Future as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::serve::{Listener as _, ListenerExt as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::dataplane::{cs_call, echo_upstream};
use crate::helpers::*;

crate::backend_tests!(
    an_https_upstream_trusted_by_the_ca_file_gets_the_call,
    an_https_upstream_with_an_untrusted_certificate_gets_nothing_and_the_client_a_clear_502,
    upstream_connections_are_reused_across_calls,
    a_large_answer_streams_to_the_client_before_the_upstream_has_finished,
    a_request_body_streams_to_the_upstream_before_the_client_has_finished,
    an_upstream_answers_hop_by_hop_headers_and_request_id_stay_behind_and_the_rest_pass,
    headers_a_client_names_in_connection_do_not_reach_the_upstream,
);

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA (`ca.pem`) and a certificate it signed for 127.0.0.1 (`server.pem`,
/// `server.key`), ECDSA P-256.
fn certificates(dir: &Path) {
    let ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
    openssl(dir, &[&["genpkey"][..], &ec, &["-out", "ca.key"]].concat());
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-sha256",
            "-days",
            "2",
            "-subj",
            "/CN=rekey gateway test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[&["genpkey"][..], &ec, &["-out", "server.key"]].concat(),
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "server.key",
            "-subj",
            "/CN=localhost",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// An upstream over HTTPS with the certificate in `dir` that answers with the path it was asked
/// for and whether the key header reached it; counts the calls it answered.
async fn https_upstream(dir: &Path) -> (String, Arc<AtomicUsize>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().fallback(move |request: Request| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            axum::Json(serde_json::json!({
                "uri": request.uri().to_string(),
                "key": request.headers().get("ocp-apim-subscription-key").is_some(),
                "keyName": request.headers().get("x-rekey-key-name").map(|v| v.to_str().unwrap().to_string()),
            }))
        }
    });
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(
        dir.join("server.pem"),
        dir.join("server.key"),
    )
    .await
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(listener, tls)
            .serve(app.into_make_service())
            .await
            .unwrap()
    });
    (format!("https://{addr}/base"), calls)
}

/// A Cognitive Services account in group `rg` forwarding to `upstream`: its endpoint and key1.
async fn forwarded_account(s: &TestServer, upstream: &str) -> (String, String) {
    s.create_group("rg").await;
    let account = s.create_account("rg", "acct").await;
    let endpoint = account["properties"]["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, keys) = s.list_keys("rg", "acct").await;
    s.forward_to("rg", "acct", upstream).await;
    (endpoint, keys["key1"].as_str().unwrap().to_string())
}

async fn an_https_upstream_trusted_by_the_ca_file_gets_the_call() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (upstream, calls) = https_upstream(dir.path()).await;
    let ca = dir.path().join("ca.pem");
    let s =
        TestServer::start_with("info", &[("REKEY_UPSTREAM_CA_FILE", ca.to_str().unwrap())]).await;
    let (endpoint, key) = forwarded_account(&s, &upstream).await;
    for _ in 0..3 {
        let (status, echo) = cs_call(&s, &format!("{endpoint}items/7?x=1"), &key).await;
        assert_eq!(status, 200, "{echo}");
        assert_eq!(echo["uri"], "/base/items/7?x=1");
        assert_eq!(echo["key"], false, "the key is not forwarded");
        assert_eq!(echo["keyName"], "key1");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

async fn an_https_upstream_with_an_untrusted_certificate_gets_nothing_and_the_client_a_clear_502() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (upstream, calls) = https_upstream(dir.path()).await;
    // No --upstream-ca-file: the upstream's CA is none of the built-in roots.
    let s = TestServer::start().await;
    let (endpoint, key) = forwarded_account(&s, &upstream).await;
    let (status, answer) = cs_call(&s, &format!("{endpoint}items/7"), &key).await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"]["code"], "BadGateway");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("certificate") && message.contains("--upstream-ca-file"),
        "{message}"
    );
    let text = answer.to_string();
    assert!(
        !text.contains(&key) && !text.contains("127.0.0.1") && !text.contains("gateway test CA"),
        "the answer names neither the key nor the upstream: {text}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "nothing reached the upstream"
    );
    assert!(!s.log().contains(&key), "the key is not logged");
}

async fn upstream_connections_are_reused_across_calls() {
    // The echo upstream, counting the connections it accepts.
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .tap_io(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        });
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = TestServer::start().await;
    let (endpoint, key) = forwarded_account(&s, &format!("http://{addr}/base")).await;
    // Calls one after another on new client connections each time, as separate clients would.
    for _ in 0..20 {
        let client = reqwest::Client::new();
        let resp = client
            .get(format!("{endpoint}x"))
            .header("Ocp-Apim-Subscription-Key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    let opened = connections.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&opened),
        "20 calls opened {opened} upstream connections"
    );
}

async fn a_large_answer_streams_to_the_client_before_the_upstream_has_finished() {
    // The upstream sends a first megabyte, then holds the rest until the client has seen bytes
    // of the answer: a gateway that held answers whole would never let it go on.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = Arc::new(std::sync::Mutex::new(Some(released)));
    let app = axum::Router::new().fallback(move || {
        let wait = released.lock().unwrap().take();
        async move { Body::new(TwoParts { sent: 0, wait }) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = TestServer::start().await;
    let (endpoint, key) = forwarded_account(&s, &format!("http://{addr}/base")).await;
    let mut resp = s
        .client
        .get(format!("{endpoint}big"))
        .header("Ocp-Apim-Subscription-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the first bytes arrive while the upstream still holds the rest")
        .unwrap()
        .unwrap();
    assert!(!first.is_empty());
    release.send(()).unwrap();
    let mut total = first.len();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        total += chunk.len();
    }
    assert_eq!(total, 2 << 20, "the whole answer arrives");
}

async fn an_upstream_answers_hop_by_hop_headers_and_request_id_stay_behind_and_the_rest_pass() {
    // A raw upstream, so its answer holds exactly these headers: hop-by-hop ones, one its
    // `Connection` names, its own request id, a date, and two of its own (one sent twice).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                                      X-Named: gone\r\nConnection: keep-alive, X-Named\r\n\
                                      Keep-Alive: timeout=5\r\nUpgrade: h2c\r\n\
                                      Proxy-Authenticate: Basic\r\nTrailer: x-t\r\n\
                                      X-Ms-Request-Id: the-upstream's\r\n\
                                      Date: Sun, 06 Dec 2026 08:00:00 GMT\r\n\
                                      X-Own: one\r\nX-Own: two\r\nContent-Length: 5\r\n\r\nhello";
                        conn.write_all(answer.as_bytes()).await.unwrap();
                    }
                }
            });
        }
    });
    let s = TestServer::start().await;
    let (endpoint, key) = forwarded_account(&s, &format!("http://{addr}/base")).await;
    // Twice: the second answer comes over the pooled connection.
    for _ in 0..2 {
        let resp = s
            .client
            .get(format!("{endpoint}x"))
            .header("Ocp-Apim-Subscription-Key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let headers = resp.headers().clone();
        for gone in [
            "x-named",
            "keep-alive",
            "upgrade",
            "proxy-authenticate",
            "trailer",
        ] {
            assert!(headers.get(gone).is_none(), "{gone} passed on: {headers:?}");
        }
        let own: Vec<_> = headers.get_all("x-own").iter().collect();
        assert_eq!(own, ["one", "two"]);
        assert_eq!(headers["content-type"], "text/plain");
        assert_eq!(headers["date"], "Sun, 06 Dec 2026 08:00:00 GMT");
        let ids: Vec<_> = headers.get_all("x-ms-request-id").iter().collect();
        assert_eq!(ids.len(), 1, "{headers:?}");
        assert_ne!(ids[0], "the-upstream's");
        assert_eq!(resp.text().await.unwrap(), "hello");
    }
    // The same over a raw connection, as rekeyd's own HTTP/1.1 loop reads such a call.
    let path = endpoint.splitn(4, '/').nth(3).unwrap();
    for _ in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
            .await
            .unwrap();
        let call = format!(
            "GET /{path}x HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: {key}\r\n\
             Connection: close\r\n\r\n"
        );
        conn.write_all(call.as_bytes()).await.unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let lines: Vec<String> = head.lines().map(str::to_ascii_lowercase).collect();
        let has = |name: &str| lines.iter().filter(|l| l.starts_with(name)).count();
        assert!(lines[0].starts_with("http/1.1 200"), "{head}");
        for gone in [
            "x-named",
            "keep-alive",
            "upgrade",
            "proxy-authenticate",
            "trailer",
        ] {
            assert_eq!(has(&format!("{gone}:")), 0, "{gone} passed on: {head}");
        }
        assert_eq!(has("x-own:"), 2, "{head}");
        assert_eq!(has("x-ms-request-id:"), 1, "{head}");
        assert!(!head.contains("the-upstream's"), "{head}");
        assert!(head.contains("Sun, 06 Dec 2026 08:00:00 GMT"), "{head}");
        assert_eq!(has("content-length: 5"), 1, "{head}");
        assert_eq!(body, "hello");
    }
}

async fn headers_a_client_names_in_connection_do_not_reach_the_upstream() {
    let upstream = echo_upstream().await;
    let s = TestServer::start().await;
    let (endpoint, key) = forwarded_account(&s, &upstream).await;
    let path = endpoint.splitn(4, '/').nth(3).unwrap();
    let mut conn = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let call = format!(
        "GET /{path}x HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: {key}\r\n\
         X-Hop-Secret: for this hop\r\nX-Kept: yes\r\nConnection: close, X-Hop-Secret\r\n\r\n"
    );
    conn.write_all(call.as_bytes()).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    // The echo upstream's answer may be chunked: its JSON lies between the braces.
    let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
    let echo: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(echo["headers"]["x-kept"], "yes", "{echo}");
    assert!(echo["headers"].get("x-hop-secret").is_none(), "{echo}");
    assert!(
        echo["headers"].get("ocp-apim-subscription-key").is_none(),
        "{echo}"
    );
}

/// A body of one megabyte, then (once `wait` fires) another.
struct TwoParts {
    sent: u8,
    wait: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl hyper::body::Body for TwoParts {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let part = |byte| {
            Poll::Ready(Some(Ok(hyper::body::Frame::data(
                vec![byte; 1 << 20].into(),
            ))))
        };
        match self.sent {
            0 => {
                self.sent = 1;
                part(b'a')
            }
            1 => {
                let Some(wait) = self.wait.as_mut() else {
                    return Poll::Ready(None);
                };
                match std::pin::Pin::new(wait).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(_) => {
                        self.sent = 2;
                        part(b'b')
                    }
                }
            }
            _ => Poll::Ready(None),
        }
    }
}

async fn a_request_body_streams_to_the_upstream_before_the_client_has_finished() {
    // The upstream reports the first bytes of the body it receives; the client sends the rest of
    // its body only once they were reported.
    let (seen, mut first_seen) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    let app = axum::Router::new().fallback(move |request: Request| {
        let seen = seen.clone();
        async move {
            use axum::body::HttpBody as _;
            let mut body = request.into_body();
            let mut all = Vec::new();
            while let Some(frame) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
            {
                if let Ok(data) = frame.unwrap().into_data() {
                    if all.is_empty() {
                        let _ = seen.send(data.to_vec()).await;
                    }
                    all.extend_from_slice(&data);
                }
            }
            String::from_utf8(all).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = TestServer::start().await;
    let (endpoint, key) = forwarded_account(&s, &format!("http://{addr}/base")).await;
    let path = endpoint.split_once("://").unwrap().1;
    let (host, path) = path.split_once('/').unwrap();
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    conn.write_all(
        format!(
            "PUT /{path}upload HTTP/1.1\r\nHost: {host}\r\nOcp-Apim-Subscription-Key: {key}\r\n\
             Transfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), first_seen.recv())
        .await
        .expect("the upstream sees the first bytes before the client has sent the rest")
        .unwrap();
    assert_eq!(first, b"first");
    conn.write_all(b"4\r\nrest\r\n0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("firstrest") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the answer arrives")
            .unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
}

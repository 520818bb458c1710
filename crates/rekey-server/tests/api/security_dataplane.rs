//! Attacks on the data plane from a hostile review, each tried against the real rekeyd: paths that
//! climb out of the upstream's base path, a Cosmos DB read-only key posing writes as queries,
//! refusals that left no trace, and a throttle that could not tell clients behind a proxy apart.

use std::time::{Duration, Instant};

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use reqwest::Method;
use serde_json::Value;

use crate::dataplane::{cosmos_account, cosmos_auth, echo_upstream, http_date};
use crate::helpers::*;

crate::backend_tests!(
    gateway_refuses_paths_that_climb_out_of_the_upstream_base_path,
    cosmos_read_only_key_cannot_write_by_posing_as_a_query,
    refusals_on_the_fast_path_are_logged_without_the_key_and_a_flood_is_bounded,
    data_plane_calls_are_logged_at_debug_without_the_key,
    a_client_behind_a_trusted_proxy_cannot_lock_out_the_others_nor_spoof_its_way_out,
);

const COSMOS: &str = "2026-03-15";

/// Sends a request with its path exactly as written (reqwest's URL parser would resolve `..` and
/// `%2e` before sending); without a body it is a bodyless GET that rekeyd's fast path answers, with
/// one it goes to hyper. Returns the status and the JSON body (Null when there is none).
async fn send_raw(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let mut request = axum::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = client.request(request.body(body).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(Body::new(response.into_body()), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A Cognitive Services account: its endpoint and first key.
async fn cs_account(s: &TestServer, name: &str) -> (String, String) {
    let account = s.create_account("rg", name).await;
    let endpoint = account["properties"]["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, keys) = s.list_keys("rg", name).await;
    (endpoint, keys["key1"].as_str().unwrap().to_string())
}

async fn gateway_refuses_paths_that_climb_out_of_the_upstream_base_path() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (endpoint, key) = cs_account(&s, "proxied").await;
    let upstream = echo_upstream().await.replace("/base", "/tenantA");
    s.forward_to("rg", "proxied", &upstream).await;
    let (answered, answered_key) = cs_account(&s, "answered").await;
    let with_key = [("Ocp-Apim-Subscription-Key", key.as_str())];

    for attack in [
        "../tenantB/secret",
        "items/../../tenantB/secret",
        "%2e%2e%2ftenantB/secret",
        "%2E%2E/tenantB/secret",
        ".%2e/tenantB/secret",
        "..%2ftenantB/secret",
        "..%5ctenantB%5csecret",
        "items%2f..%2f..%2ftenantB",
        "a%00/../..",
    ] {
        let url = format!("{endpoint}{attack}");
        // Forwarded calls go through hyper (bodyless or not).
        for body in [None, Some("{}")] {
            let method = if body.is_some() { "POST" } else { "GET" };
            let (status, answer) = send_raw(method, &url, &with_key, body).await;
            assert_eq!(
                status, 400,
                "{method} {attack} reached the upstream: {answer}"
            );
            assert_eq!(answer["error"]["code"], "BadRequest", "{attack}: {answer}");
        }
        // A self-answered resource refuses the same paths, on the fast path and in hyper.
        let url = format!("{answered}{attack}");
        let answered_key = [("Ocp-Apim-Subscription-Key", answered_key.as_str())];
        for body in [None, Some("{}")] {
            let method = if body.is_some() { "POST" } else { "GET" };
            let (status, answer) = send_raw(method, &url, &answered_key, body).await;
            assert_eq!(status, 400, "{method} {attack}: {answer}");
            assert_eq!(answer["error"]["code"], "BadRequest", "{attack}: {answer}");
        }
    }

    // Dot segments that stay below the resource resolve before forwarding, so the upstream never
    // sees one; encoded unreserved characters are decoded, other escapes kept.
    for (path, upstream_sees) in [
        ("items/x/../7", "/tenantA/items/7"),
        ("items/./%37", "/tenantA/items/7"),
        ("%69tems/a%20b", "/tenantA/items/a%20b"),
        ("items/7/..", "/tenantA/items/"),
    ] {
        let (status, echo) = send_raw("GET", &format!("{endpoint}{path}"), &with_key, None).await;
        assert_eq!(status, 200, "{path}: {echo}");
        assert_eq!(echo["uri"], upstream_sees, "{path}");
    }
    let answered_key = [("Ocp-Apim-Subscription-Key", answered_key.as_str())];
    let (status, answer) = send_raw(
        "GET",
        &format!("{answered}a/b/%2e%2e/c"),
        &answered_key,
        None,
    )
    .await;
    assert_eq!((status, answer["path"].as_str()), (200, Some("/a/c")));

    // Cosmos DB refuses in its own shape, before any signature is looked at.
    let (_, cosmos_endpoint, _) = cosmos_account(&s, "docdb1").await;
    let (status, answer) = send_raw(
        "GET",
        &format!("{cosmos_endpoint}dbs/%2e%2e/%2e%2e/x"),
        &[],
        None,
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("BadRequest")),
        "{answer}"
    );
}

/// A signed Cosmos call as an SDK sends it: `rest` below the endpoint, with the resource type and
/// link the SDK signs, and extra headers.
async fn cosmos_call(
    s: &TestServer,
    endpoint: &str,
    key: &str,
    method: Method,
    rest: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let (resource_type, link) = cosmos_parts(rest);
    let date = http_date(0);
    let mut request = s
        .client
        .request(method.clone(), format!("{endpoint}{rest}"))
        .header(
            "authorization",
            cosmos_auth(key, method.as_str(), &resource_type, &link, &date),
        )
        .header("x-ms-date", date)
        .header("x-ms-version", "2018-12-31");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if method == Method::POST {
        request = request.body(r#"{"query":"SELECT * FROM c"}"#);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The resource type and link an SDK signs for `rest` (Cosmos DB's rule).
fn cosmos_parts(rest: &str) -> (String, String) {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segments.len() {
        0 => (String::new(), String::new()),
        n if n % 2 == 1 => (segments[n - 1].to_string(), segments[..n - 1].join("/")),
        n => (segments[n - 2].to_string(), segments.join("/")),
    }
}

async fn cosmos_read_only_key_cannot_write_by_posing_as_a_query() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (path, endpoint, keys) = cosmos_account(&s, "docdb1").await;
    let read_only = keys["primaryReadonlyMasterKey"].as_str().unwrap();
    let primary = keys["primaryMasterKey"].as_str().unwrap();
    let query = [
        ("x-ms-documentdb-isquery", "True"),
        ("content-type", "application/query+json"),
    ];
    // Calls that pass every check are forwarded (without an upstream rekeyd serves only the
    // account read); the echo says what reached it.
    let upstream = echo_upstream().await;
    let (status, answer) = s
        .call(
            Method::PATCH,
            &format!("{path}?api-version={COSMOS}"),
            Some(&serde_json::json!({"properties": {"x-rekey-upstream": upstream}}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    for (rest, headers, what) in [
        (
            "dbs/d/colls/c/sprocs/s1",
            &query[..],
            "running a stored procedure flagged as a query",
        ),
        ("dbs/d/colls/c/sprocs", &query[..], "a query under sprocs"),
        (
            "dbs/d/colls/c/triggers/t1",
            &query[..],
            "a trigger flagged as a query",
        ),
        (
            "dbs/d/colls/c/docs",
            &[("content-type", "application/query+json-patch")][..],
            "a document created with a content type that starts like a query's",
        ),
        (
            "dbs/d/colls/c/docs",
            &[("content-type", "application/query+json")][..],
            "the query content type without the isquery flag",
        ),
        (
            "dbs/d/colls/c/docs",
            &[
                ("x-ms-documentdb-isquery", "true"),
                ("content-type", "application/json"),
            ][..],
            "the isquery flag on a document body",
        ),
        (
            "dbs/d/colls/c/docs/d1",
            &query[..],
            "a query at an item, not a feed",
        ),
    ] {
        let (status, answer) =
            cosmos_call(&s, &endpoint, read_only, Method::POST, rest, headers).await;
        assert_eq!(status, 403, "{what} went through with a read-only key");
        assert_eq!(answer["code"], "Forbidden", "{what}: {answer}");
        // The read-write key may do the same (its signature verifies on these paths).
        let (status, _) = cosmos_call(&s, &endpoint, primary, Method::POST, rest, headers).await;
        assert_eq!(status, 200, "{what} with the primary key");
    }

    // What Cosmos DB lets a read-only key do still works: reads, and queries at feeds.
    for (method, rest, headers) in [
        (Method::GET, "dbs/d/colls/c/docs/d1", &[][..]),
        (Method::POST, "dbs/d/colls/c/docs", &query[..]),
        (Method::POST, "dbs", &query[..]),
        (
            Method::POST,
            "dbs/d/colls/c/docs",
            &[
                ("x-ms-documentdb-isquery", "true"),
                ("content-type", "Application/Query+JSON; charset=utf-8"),
            ][..],
        ),
    ] {
        let (status, answer) =
            cosmos_call(&s, &endpoint, read_only, method.clone(), rest, headers).await;
        assert_eq!(status, 200, "{method} {rest}: {answer}");
        assert_eq!(answer["headers"]["x-rekey-access"], "readOnly", "{answer}");
    }

    // The upstream is told what the key may do, whatever the client claims.
    let claim = [("x-rekey-access", "readWrite")];
    for (key, access) in [(read_only, "readOnly"), (primary, "readWrite")] {
        let (status, echo) = cosmos_call(
            &s,
            &endpoint,
            key,
            Method::GET,
            "dbs/d/colls/c/docs/d1",
            &claim,
        )
        .await;
        assert_eq!(status, 200, "{echo}");
        assert_eq!(echo["headers"]["x-rekey-access"], access, "{echo}");
    }
    let (status, echo) = cosmos_call(
        &s,
        &endpoint,
        read_only,
        Method::POST,
        "dbs/d/colls/c/sprocs/s1",
        &query,
    )
    .await;
    assert_eq!(status, 403, "never forwarded: {echo}");
}

/// Log lines that mention `text`.
fn lines_with(log: &str, text: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(text))
        .map(str::to_string)
        .collect()
}

/// A well-formed Cognitive Services key that opens nothing: the valid key with one body character
/// changed (its checksum then fails, so it is refused before any lookup, as a guess would be).
fn wrong_key(key: &str) -> String {
    let mut wrong = key.to_string();
    let replacement = if &key[8..9] == "A" { "B" } else { "A" };
    wrong.replace_range(8..9, replacement);
    wrong
}

async fn refusals_on_the_fast_path_are_logged_without_the_key_and_a_flood_is_bounded() {
    let s = TestServer::start_with("info", &[("REKEY_AUTH_FAILURE_LIMIT", "1000000")]).await;
    s.create_group("rg").await;
    let (endpoint, key) = cs_account(&s, "acct").await;
    let wrong = wrong_key(&key);
    // Plain HTTP, bodyless GET: the fast path answers.
    let (status, _) = send_raw(
        "GET",
        &format!("{endpoint}text/analytics"),
        &[("Ocp-Apim-Subscription-Key", &wrong)],
        None,
    )
    .await;
    assert_eq!(status, 401);
    let log = s.log();
    let refused = lines_with(&log, "data-plane call refused");
    assert_eq!(refused.len(), 1, "{log}");
    let line = &refused[0];
    assert!(line.contains("/accounts/acct"), "the resource: {line}");
    assert!(line.contains("client=127.0.0.1"), "the client: {line}");
    assert!(
        line.contains("no valid key") && line.contains("status=401"),
        "{line}"
    );
    assert!(
        !log.contains(&wrong) && !log.contains(&key),
        "a key in the log"
    );
    let (status, _) = send_raw("GET", &format!("{endpoint}../x"), &[], None).await;
    assert_eq!(status, 400);
    let refused = lines_with(&s.log(), "data-plane call refused");
    assert!(
        refused.len() == 2 && refused[1].contains("climbs above the resource"),
        "{refused:?}"
    );

    // A flood of refusals writes a bounded number of lines, then says how many it left out.
    let started = Instant::now();
    let flood = (0..10).map(|_| {
        let (client, url, wrong) = (s.client.clone(), endpoint.clone(), wrong.clone());
        tokio::spawn(async move {
            for _ in 0..500 {
                let response = client
                    .get(&url)
                    .header("Ocp-Apim-Subscription-Key", &wrong)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 401);
            }
        })
    });
    for task in flood.collect::<Vec<_>>() {
        task.await.unwrap();
    }
    let seconds = started.elapsed().as_secs() + 1;
    let written = lines_with(&s.log(), "data-plane call refused").len() as u64;
    // 50 at once, then one a second.
    assert!(
        written <= 2 + 50 + seconds,
        "{written} refusal lines for 5,000 refusals in {seconds} s"
    );
    // Every refusal is either a line or counted in a summary (one comes every 10 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = s.log();
        let written = lines_with(&log, "data-plane call refused").len() as u64;
        let suppressed: u64 = lines_with(&log, "data-plane refusals not logged")
            .iter()
            .map(|line| {
                line.split("suppressed=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("{line}"))
            })
            .sum();
        if written + suppressed == 5002 {
            break;
        }
        assert!(
            Instant::now() < deadline && written + suppressed < 5002,
            "{written} lines and {suppressed} left out for 5,002 refusals:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn data_plane_calls_are_logged_at_debug_without_the_key() {
    let s = TestServer::start_with_log_level("info,rekey_server::dataplane=debug").await;
    s.create_group("rg").await;
    let (endpoint, key) = cs_account(&s, "acct").await;
    let wrong = wrong_key(&key);
    for (key, status) in [(&key, 200), (&wrong, 401)] {
        let (answered, _) = send_raw(
            "GET",
            &format!("{endpoint}text/analytics"),
            &[("Ocp-Apim-Subscription-Key", key)],
            None,
        )
        .await;
        assert_eq!(answered, status);
    }
    let log = s.log();
    let calls = lines_with(&log, "data-plane call ");
    let logged = |status: u16| {
        calls.iter().any(|l| {
            l.contains("DEBUG")
                && l.contains(&format!("status={status}"))
                && l.contains("/text/analytics")
                && l.contains("client=127.0.0.1")
        })
    };
    assert!(logged(200) && logged(401), "{log}");
    assert!(
        !log.contains(&wrong) && !log.contains(&key),
        "a key in the log"
    );
}

async fn a_client_behind_a_trusted_proxy_cannot_lock_out_the_others_nor_spoof_its_way_out() {
    let limit = [("REKEY_AUTH_FAILURE_LIMIT", "3")];
    let proxied = [
        ("REKEY_AUTH_FAILURE_LIMIT", "3"),
        ("REKEY_TRUSTED_PROXIES", "192.0.2.0/24, 127.0.0.1/32"),
    ];
    let s = TestServer::start_with("info", &proxied).await;
    s.create_group("rg").await;
    let (endpoint, key) = cs_account(&s, "acct").await;
    let wrong = wrong_key(&key);
    let call = |client: &'static str, key: String, body: Option<&'static str>| {
        let url = endpoint.clone();
        async move {
            let method = if body.is_some() { "POST" } else { "GET" };
            let headers = [
                ("Ocp-Apim-Subscription-Key", key.as_str()),
                ("X-Forwarded-For", client),
            ];
            send_raw(method, &url, &headers, body).await.0
        }
    };
    // The proxy (127.0.0.1) forwards one client's guesses.
    for _ in 0..3 {
        assert_eq!(call("10.9.9.9", wrong.clone(), None).await, 401);
    }
    assert_eq!(
        call("10.9.9.9", key.clone(), None).await,
        429,
        "the guesser is throttled"
    );
    assert_eq!(
        call("10.9.9.9", key.clone(), Some("{}")).await,
        429,
        "in hyper too"
    );
    assert_eq!(
        call("10.8.8.8", key.clone(), None).await,
        200,
        "another client behind the same proxy is not"
    );
    assert_eq!(call("10.8.8.8", key.clone(), Some("{}")).await, 200);
    // The client may write its own X-Forwarded-For; the proxy's entry, right-most, is believed.
    assert_eq!(call("10.8.8.8, 10.9.9.9", key.clone(), None).await, 429);
    let log = s.log();
    let refused = lines_with(&log, "data-plane call refused");
    assert!(
        refused
            .iter()
            .any(|l| l.contains("client=10.9.9.9") && l.contains("throttled")),
        "throttled and logged as the same client:\n{log}"
    );

    // Without trusted proxies, a client-sent X-Forwarded-For is ignored: a new one for each guess
    // does not escape the throttle.
    let s = TestServer::start_with("info", &limit).await;
    s.create_group("rg").await;
    let (endpoint, key) = cs_account(&s, "acct").await;
    let wrong = wrong_key(&key);
    for spoofed in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        let headers = [
            ("Ocp-Apim-Subscription-Key", wrong.as_str()),
            ("X-Forwarded-For", spoofed),
        ];
        assert_eq!(send_raw("GET", &endpoint, &headers, None).await.0, 401);
    }
    let headers = [
        ("Ocp-Apim-Subscription-Key", key.as_str()),
        ("X-Forwarded-For", "10.0.0.4"),
    ];
    assert_eq!(send_raw("GET", &endpoint, &headers, None).await.0, 429);
}

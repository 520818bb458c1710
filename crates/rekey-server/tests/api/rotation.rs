//! rekey's own rotation extensions (issue #18): per-slot usage, recognised old keys, guarded and
//! idempotent regenerations, overlaps and disabled slots, on one node and (PostgreSQL) on three.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::dataplane::{cosmos_account, cosmos_auth, http_date};
use crate::helpers::*;

const COSMOS: &str = "2026-03-15";

crate::backend_tests!(
    usage_shows_each_client_survives_a_restart_and_sums_over_every_node,
    an_old_key_is_refused_as_regenerated_counted_and_never_throttled,
    a_guarded_regeneration_is_refused_while_the_key_is_in_use,
    a_repeated_idempotency_key_replays_the_first_answer_and_rotates_once,
    a_resent_client_request_id_replays_the_first_answer_and_rotates_once,
    an_overlap_keeps_the_old_key_until_it_ends_on_every_node,
    a_disabled_key_is_refused_on_every_node_until_enabled,
    bad_rotation_headers_are_refused_naming_the_header_and_change_nothing,
    a_cosmos_key_in_its_overlap_still_signs_and_a_replayed_regeneration_keeps_its_operation,
    the_openapi_document_describes_the_rotation_extensions,
);

/// Lets data-plane calls name their client in `X-Forwarded-For` (they come from 127.0.0.1).
const PROXIED: (&str, &str) = ("REKEY_TRUSTED_PROXIES", "127.0.0.1/32");

/// The first node, and on PostgreSQL two more on its database (all with `env`).
async fn nodes(env: &[(&str, &str)]) -> Vec<TestServer> {
    let first = TestServer::start_with("info", env).await;
    let mut all = Vec::new();
    if Backend::current() == Backend::Postgres {
        all.push(first.join(env).await);
        all.push(first.join(env).await);
    }
    all.insert(0, first);
    all
}

/// Creates `rg/acct` on `s`; returns its data-plane path (`/data/…/`) and keys.
async fn account(s: &TestServer) -> (String, Value) {
    s.create_group("rg").await;
    let created = s.create_account("rg", "acct").await;
    let endpoint = created["properties"]["endpoint"].as_str().unwrap();
    let path = endpoint[endpoint.find("/data/").unwrap()..].to_string();
    let (_, keys) = s.list_keys("rg", "acct").await;
    (path, keys)
}

/// A data-plane call on `node` with `key`, from `client` (via X-Forwarded-For) if given.
async fn call(node: &TestServer, path: &str, key: &str, client: Option<&str>) -> (u16, Value) {
    let mut request = node
        .client
        .get(node.url(path))
        .header("Ocp-Apim-Subscription-Key", key);
    if let Some(client) = client {
        request = request.header("X-Forwarded-For", client);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls `node` until `key` gets `want`, for at most five seconds; returns the last status.
async fn until(node: &TestServer, path: &str, key: &str, want: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = call(node, path, key, None).await;
        if status == want || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post(s: &TestServer, action: &str, body: Option<&str>) -> (u16, Value) {
    s.call(
        Method::POST,
        &format!(
            "{}/{action}?api-version={CS_VERSION}",
            s.account_path("rg", "acct")
        ),
        body,
    )
    .await
}

async fn usage(s: &TestServer) -> Value {
    let (status, body) = post(s, "listKeyUsage", None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn slot<'a>(usage: &'a Value, key_name: &str) -> &'a Value {
    usage["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["keyName"] == key_name)
        .unwrap_or_else(|| panic!("no {key_name} in {usage}"))
}

/// A regenerate with extra headers: status, headers and body.
async fn regenerate(
    s: &TestServer,
    key_name: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = s
        .client
        .post(s.url(&format!(
            "{}/regenerateKey?api-version={CS_VERSION}",
            s.account_path("rg", "acct")
        )))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body(format!(r#"{{"keyName":"{key_name}"}}"#));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn usage_shows_each_client_survives_a_restart_and_sums_over_every_node() {
    let mut nodes = nodes(&[PROXIED]).await;
    let (path, keys) = account(&nodes[0]).await;
    let (key1, key2) = (
        keys["key1"].as_str().unwrap(),
        keys["key2"].as_str().unwrap(),
    );
    for _ in 0..3 {
        assert_eq!(
            call(&nodes[0], &path, key1, Some("192.0.2.10")).await.0,
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(
            call(&nodes[0], &path, key1, Some("192.0.2.20")).await.0,
            200
        );
    }
    assert_eq!(
        call(&nodes[0], &path, key2, Some("192.0.2.30")).await.0,
        200
    );

    let check = |usage: &Value, uses: u64, last_client: &str| {
        let key1 = slot(usage, "Key1");
        assert_eq!(key1["requests24h"], uses, "{usage}");
        assert_eq!(key1["lastClientAddress"], last_client, "{usage}");
        assert!(key1["lastUsed"].is_string(), "{usage}");
        let per_minute: u64 = key1["perMinute"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["count"].as_u64().unwrap())
            .sum();
        assert_eq!(per_minute, uses, "{usage}");
        assert_eq!(slot(usage, "Key2")["requests24h"], 1, "{usage}");
        assert_eq!(slot(usage, "Key2")["lastClientAddress"], "192.0.2.30");
        assert_eq!(key1["retired"]["presentations24h"], 0);
        assert!(key1["retired"]["regeneratedAt"].is_null());
    };
    check(&usage(&nodes[0]).await, 5, "192.0.2.20");

    nodes[0].kill_and_restart();
    check(&usage(&nodes[0]).await, 5, "192.0.2.20");

    if nodes.len() > 1 {
        for node in &nodes[1..] {
            assert_eq!(until(node, &path, key1, 200).await, 200);
            for _ in 0..4 {
                assert_eq!(call(node, &path, key1, Some("192.0.2.40")).await.0, 200);
            }
        }
        // Each node adds its own counts within its flush interval (a second).
        let want = 5 + 2 * 5; // four calls each, and the one `until` made
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = usage(&nodes[0]).await;
        while slot(&seen, "Key1")["requests24h"] != want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            seen = usage(&nodes[0]).await;
        }
        assert_eq!(slot(&seen, "Key1")["requests24h"], want, "{seen}");
        assert_eq!(slot(&seen, "Key1")["lastClientAddress"], "192.0.2.40");
    }
}

async fn an_old_key_is_refused_as_regenerated_counted_and_never_throttled() {
    // The default failed-key limit is 50 a minute: 100 old keys would exceed it twice over.
    let s = TestServer::start().await;
    let (path, keys) = account(&s).await;
    let old = keys["key1"].as_str().unwrap();
    let (status, regenerated) = s.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200, "{regenerated}");
    let new = regenerated["key1"].as_str().unwrap();
    for i in 0..100 {
        let (status, body) = call(&s, &path, old, None).await;
        assert_eq!(status, 401, "presentation {i}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("this key was regenerated at ")
                && message.contains("use the resource's current key"),
            "{message}"
        );
    }
    assert_eq!(call(&s, &path, new, None).await.0, 200);

    let usage = usage(&s).await;
    let retired = &slot(&usage, "Key1")["retired"];
    assert_eq!(retired["presentations24h"], 100, "{usage}");
    assert_eq!(retired["lastClientAddress"], "127.0.0.1");
    assert!(retired["regeneratedAt"].is_string() && retired["lastPresented"].is_string());
    assert_eq!(slot(&usage, "Key1")["requests24h"], 1);
    // A guess is still a guess: an unknown key is refused with Azure's own message.
    let (status, body) = call(&s, &path, "rkcs_wrong", None).await;
    assert_eq!(status, 401);
    assert!(!body.to_string().contains("regenerated"), "{body}");
}

async fn a_guarded_regeneration_is_refused_while_the_key_is_in_use() {
    let s = TestServer::start().await;
    let (path, keys) = account(&s).await;
    assert_eq!(
        call(&s, &path, keys["key1"].as_str().unwrap(), None)
            .await
            .0,
        200
    );

    let guard = [("x-rekey-if-unused-for", "60")];
    let (status, _, body) = regenerate(&s, "Key1", &guard).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "KeyInUse");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Key1") && message.contains("127.0.0.1"),
        "{message}"
    );
    let (_, after) = s.list_keys("rg", "acct").await;
    assert_eq!(after["key1"], keys["key1"], "nothing changed");

    // Key2 was never used: the guard lets it rotate.
    let (status, _, body) = regenerate(&s, "Key2", &guard).await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["key2"], keys["key2"]);
}

async fn a_repeated_idempotency_key_replays_the_first_answer_and_rotates_once() {
    let s = TestServer::start().await;
    let (_, before) = account(&s).await;
    let token = [("Idempotency-Key", "rotate-key1-once")];
    let (status, first_headers, first) = regenerate(&s, "Key1", &token).await;
    assert_eq!(status, 200, "{first}");
    assert!(first_headers.get("x-rekey-replayed").is_none());
    assert_ne!(first["key1"], before["key1"]);

    let (status, headers, again) = regenerate(&s, "Key1", &token).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, first, "the same answer, the same keys");
    assert_eq!(headers["x-rekey-replayed"], "true");
    let (_, listed) = s.list_keys("rg", "acct").await;
    assert_eq!(listed["key1"], first["key1"], "rotated once");
    assert_eq!(listed["key2"], before["key2"]);

    let (status, _, body) = regenerate(&s, "Key2", &token).await;
    assert_eq!(status, 422, "{body}");
    let (_, listed) = s.list_keys("rg", "acct").await;
    assert_eq!(listed["key2"], before["key2"], "nothing changed");
}

async fn a_resent_client_request_id_replays_the_first_answer_and_rotates_once() {
    let s = TestServer::start().await;
    let (_, before) = account(&s).await;
    let id = [(
        "x-ms-client-request-id",
        "5b0e4a8e-3c1f-4d5e-9f7a-2b6c8d9e0f1a",
    )];
    let (status, _, first) = regenerate(&s, "Key2", &id).await;
    assert_eq!(status, 200, "{first}");
    let (status, headers, again) = regenerate(&s, "Key2", &id).await;
    assert_eq!((status, &again), (200, &first));
    assert_eq!(headers["x-rekey-replayed"], "true");
    let (_, listed) = s.list_keys("rg", "acct").await;
    assert_eq!(listed["key2"], first["key2"], "rotated once");

    let (status, _, body) = regenerate(&s, "Key1", &id).await;
    assert_eq!(status, 422, "{body}");
    let (_, listed) = s.list_keys("rg", "acct").await;
    assert_eq!(listed["key1"], before["key1"]);
    // Another request id is another request.
    let (status, headers, _) = regenerate(&s, "Key2", &[("x-ms-client-request-id", "other")]).await;
    assert_eq!(status, 200);
    assert!(headers.get("x-rekey-replayed").is_none());
}

async fn an_overlap_keeps_the_old_key_until_it_ends_on_every_node() {
    let nodes = nodes(&[]).await;
    let s = &nodes[0];
    let (path, keys) = account(s).await;
    let (old1, old2) = (
        keys["key1"].as_str().unwrap(),
        keys["key2"].as_str().unwrap(),
    );
    for node in &nodes {
        assert_eq!(until(node, &path, old1, 200).await, 200);
    }

    // Key1: a three-second overlap, ended by the clock alone.
    let (status, _, body) = regenerate(s, "Key1", &[("x-rekey-grace-seconds", "3")]).await;
    assert_eq!(status, 200, "{body}");
    let new1 = body["key1"].as_str().unwrap().to_string();
    let ends = Instant::now() + Duration::from_secs(3);
    for node in &nodes {
        assert_eq!(call(node, &path, old1, None).await.0, 200, "in the overlap");
        assert_eq!(call(node, &path, &new1, None).await.0, 200);
    }
    let (_, listed) = s.list_keys("rg", "acct").await;
    assert!(
        listed["x-rekey-retiring"]["key1"]["until"].is_string(),
        "{listed}"
    );
    tokio::time::sleep_until((ends + Duration::from_millis(100)).into()).await;
    for node in &nodes {
        let (status, body) = call(node, &path, old1, None).await;
        assert_eq!(status, 401, "after the overlap: {body}");
        assert!(body.to_string().contains("regenerated"), "{body}");
    }
    let (_, listed) = s.list_keys("rg", "acct").await;
    assert!(listed.get("x-rekey-retiring").is_none(), "{listed}");

    // Key2: a long overlap, ended early.
    let (status, _, _) = regenerate(s, "Key2", &[("x-rekey-grace-seconds", "600")]).await;
    assert_eq!(status, 200);
    for node in &nodes {
        assert_eq!(call(node, &path, old2, None).await.0, 200);
    }
    let (status, body) = post(s, "endKeyGrace", Some(r#"{"keyName":"Key2"}"#)).await;
    assert_eq!(status, 204, "{body}");
    for node in &nodes {
        assert_eq!(call(node, &path, old2, None).await.0, 401, "ended at once");
    }

    // A second regeneration of the slot ends its overlap too.
    let (_, _, body) = regenerate(s, "Key1", &[("x-rekey-grace-seconds", "600")]).await;
    let middle = body["key1"].as_str().unwrap().to_string();
    assert_eq!(call(s, &path, &new1, None).await.0, 200);
    let (status, _, _) = regenerate(s, "Key1", &[]).await;
    assert_eq!(status, 200);
    for node in &nodes {
        assert_eq!(call(node, &path, &new1, None).await.0, 401);
        assert_eq!(
            call(node, &path, &middle, None).await.0,
            401,
            "no overlap asked"
        );
    }
}

async fn a_disabled_key_is_refused_on_every_node_until_enabled() {
    let nodes = nodes(&[]).await;
    let s = &nodes[0];
    let (path, keys) = account(s).await;
    let (key1, key2) = (
        keys["key1"].as_str().unwrap(),
        keys["key2"].as_str().unwrap(),
    );
    for node in &nodes {
        assert_eq!(until(node, &path, key2, 200).await, 200);
    }
    let (status, body) = post(s, "disableKey", Some(r#"{"keyName":"Key2"}"#)).await;
    assert_eq!(status, 204, "{body}");
    for node in &nodes {
        let (status, body) = call(node, &path, key2, None).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.to_string().contains("this key is disabled"), "{body}");
        assert_eq!(call(node, &path, key1, None).await.0, 200);
    }
    let (_, listed) = s.list_keys("rg", "acct").await;
    assert_eq!(
        listed["x-rekey-disabled"],
        serde_json::json!({"key2": true})
    );
    assert_eq!(listed["key2"], keys["key2"], "not rotated");

    let (status, _) = post(s, "enableKey", Some(r#"{"keyName":"Key2"}"#)).await;
    assert_eq!(status, 204);
    for node in &nodes {
        assert_eq!(call(node, &path, key2, None).await.0, 200);
    }
    let (_, listed) = s.list_keys("rg", "acct").await;
    assert!(listed.get("x-rekey-disabled").is_none(), "{listed}");
}

async fn bad_rotation_headers_are_refused_naming_the_header_and_change_nothing() {
    let s = TestServer::start().await;
    let (_, before) = account(&s).await;
    for (name, value) in [
        ("x-rekey-grace-seconds", "0"),
        ("x-rekey-grace-seconds", "604801"),
        ("x-rekey-grace-seconds", "soon"),
        ("x-rekey-if-unused-for", "-5"),
    ] {
        let (status, _, body) = regenerate(&s, "Key1", &[(name, value)]).await;
        assert_eq!(status, 400, "{name}: {value}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(name), "{message}");
    }
    let (status, body) = post(&s, "disableKey", Some(r#"{"keyName":"Key3"}"#)).await;
    assert_eq!(status, 400, "{body}");
    let (_, after) = s.list_keys("rg", "acct").await;
    assert_eq!(after, before);
}

async fn a_cosmos_key_in_its_overlap_still_signs_and_a_replayed_regeneration_keeps_its_operation() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (path, endpoint, keys) = cosmos_account(&s, "docdb1").await;
    let old = keys["primaryMasterKey"].as_str().unwrap().to_string();
    let read = |key: String| {
        let date = http_date(0);
        s.client
            .get(&endpoint)
            .header("authorization", cosmos_auth(&key, "GET", "", "", &date))
            .header("x-ms-date", date)
            .header("x-ms-version", "2018-12-31")
            .send()
    };
    assert_eq!(read(old.clone()).await.unwrap().status(), 200);

    let regenerate = || {
        s.client
            .post(s.url(&format!("{path}/regenerateKey?api-version={COSMOS}")))
            .bearer_auth(&s.token)
            .header("content-type", "application/json")
            .header("x-rekey-grace-seconds", "600")
            .header("Idempotency-Key", "cosmos-once")
            .body(r#"{"keyKind":"primary"}"#)
            .send()
    };
    let first = regenerate().await.unwrap();
    assert_eq!(first.status(), 202);
    let operation = first.headers()["azure-asyncoperation"].clone();
    let again = regenerate().await.unwrap();
    assert_eq!(again.status(), 202, "the first answer again");
    assert_eq!(again.headers()["azure-asyncoperation"], operation);
    assert_eq!(again.headers()["x-rekey-replayed"], "true");

    let (_, listed) = s
        .call(
            Method::POST,
            &format!("{path}/listKeys?api-version={COSMOS}"),
            None,
        )
        .await;
    let new = listed["primaryMasterKey"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(
        listed["x-rekey-retiring"]["primary"]["until"].is_string(),
        "{listed}"
    );
    assert_eq!(read(new).await.unwrap().status(), 200);
    assert_eq!(
        read(old.clone()).await.unwrap().status(),
        200,
        "signs in its overlap"
    );

    let (status, body) = s
        .call(
            Method::POST,
            &format!("{path}/endKeyGrace?api-version={COSMOS}"),
            Some(r#"{"keyKind":"primary"}"#),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(read(old).await.unwrap().status(), 401);
}

async fn the_openapi_document_describes_the_rotation_extensions() {
    let s = TestServer::start().await;
    let document: Value = s
        .client
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = document["paths"].as_object().unwrap();
    for action in ["listKeyUsage", "disableKey", "enableKey", "endKeyGrace"] {
        for ty in [
            "accounts/{accountName}",
            "workspaces/{workspaceName}",
            "databaseAccounts/{accountName}",
        ] {
            assert!(
                paths
                    .keys()
                    .any(|p| p.contains(ty) && p.ends_with(&format!("/{action}"))),
                "{ty}/{action} is not documented"
            );
        }
    }
    let usage = paths
        .iter()
        .find(|(p, _)| p.contains("/accounts/") && p.ends_with("/listKeyUsage"))
        .unwrap()
        .1;
    assert_eq!(
        usage["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/KeyUsageList"
    );
    let regenerate = paths
        .iter()
        .find(|(p, _)| p.contains("/accounts/") && p.ends_with("/regenerateKey"))
        .unwrap()
        .1;
    let headers: Vec<&str> = regenerate["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "header")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for header in [
        "Idempotency-Key",
        "x-rekey-if-unused-for",
        "x-rekey-grace-seconds",
    ] {
        assert!(headers.contains(&header), "{header} in {headers:?}");
    }
}

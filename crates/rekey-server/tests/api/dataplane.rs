//! The data plane keeps the seeds' promise: either key works, and a regenerated key stops working the
//! moment the regeneration answers.

use std::net::IpAddr;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

crate::backend_tests!(
    either_key_works_and_a_regenerated_key_fails_on_the_next_request,
    malformed_missing_and_foreign_keys_are_refused,
    disabling_local_auth_or_api_keys_makes_every_key_fail,
    deleting_the_group_stops_its_keys,
    cosmos_signatures_read_only_keys_and_stale_dates,
    verify_reports_the_slot_and_access,
    last_use_is_recorded_per_slot_off_the_request_path,
    failing_addresses_are_throttled_without_locking_out_others,
    authenticated_requests_are_forwarded_to_the_upstream,
    cosmos_calls_beyond_the_account_read_get_501_until_an_upstream_is_set,
);

const COSMOS: &str = "2026-03-15";
const QUANTUM: &str = "2023-11-13-preview";

async fn account_with_keys(s: &TestServer, group: &str, name: &str) -> (String, Value) {
    let account = s.create_account(group, name).await;
    let endpoint = account["properties"]["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, keys) = s.list_keys(group, name).await;
    (endpoint, keys)
}

/// A Cognitive Services data-plane GET with `key` in its key header: the status and the JSON body.
pub(crate) async fn cs_call(s: &TestServer, url: &str, key: &str) -> (u16, Value) {
    let resp = s
        .client
        .get(url)
        .header("Ocp-Apim-Subscription-Key", key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn either_key_works_and_a_regenerated_key_fails_on_the_next_request() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (endpoint, keys) = account_with_keys(&s, "rg", "acct").await;
    let url = format!("{endpoint}text/analytics/v3.1/languages?x=1");
    for slot in ["key1", "key2"] {
        let (status, body) = cs_call(&s, &url, keys[slot].as_str().unwrap()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["keyName"], slot);
        assert_eq!(body["path"], "/text/analytics/v3.1/languages");
    }
    // The whole self-answer, with the path decoded and written as JSON (escapes included).
    let resp = s
        .client
        .get(format!("{endpoint}a%20%22b%22/%C3%A9"))
        .header("Ocp-Apim-Subscription-Key", keys["key1"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["x-ms-request-id"].len(), 36);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "authenticated": true,
            "resourceId": format!(
                "/subscriptions/{}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/acct",
                s.subscription
            ),
            "keyName": "key1",
            "access": "readWrite",
            "method": "GET",
            "path": "/a \"b\"/\u{e9}",
        })
    );
    let (status, regenerated) = s.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200);
    // The very next request with the old key is refused, with Azure's body.
    let (status, body) = cs_call(&s, &url, keys["key1"].as_str().unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "401");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Access denied due to invalid subscription key"));
    assert_eq!(
        cs_call(&s, &url, keys["key2"].as_str().unwrap()).await.0,
        200,
        "the untouched key keeps working"
    );
    assert_eq!(
        cs_call(&s, &url, regenerated["key1"].as_str().unwrap())
            .await
            .0,
        200,
        "the new key works"
    );
}

async fn malformed_missing_and_foreign_keys_are_refused() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (endpoint, keys) = account_with_keys(&s, "rg", "a1").await;
    let (_, other_keys) = account_with_keys(&s, "rg", "a2").await;
    let good = keys["key1"].as_str().unwrap();
    let mut tampered = good.to_string();
    tampered.replace_range(8..9, if &good[8..9] == "A" { "B" } else { "A" });
    for key in [
        tampered.as_str(),
        "not-a-key",
        "",
        other_keys["key1"].as_str().unwrap(),
    ] {
        assert_eq!(cs_call(&s, &endpoint, key).await.0, 401, "{key}");
    }
    let resp = s.client.get(&endpoint).send().await.unwrap();
    assert_eq!(resp.status(), 401, "no key at all");
    let resp = s
        .client
        .get(format!("{}/data/00000000000040008000000000000000/", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "no such resource");
}

async fn disabling_local_auth_or_api_keys_makes_every_key_fail() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (endpoint, keys) = account_with_keys(&s, "rg", "acct").await;
    let patch = format!("{}?api-version={CS_VERSION}", s.account_path("rg", "acct"));
    let (status, _) = s
        .call(
            Method::PATCH,
            &patch,
            Some(r#"{"properties":{"disableLocalAuth":true}}"#),
        )
        .await;
    assert_eq!(status, 200);
    for slot in ["key1", "key2"] {
        let (status, body) = cs_call(&s, &endpoint, keys[slot].as_str().unwrap()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("AuthenticationTypeDisabled"))
        );
    }
    assert_eq!(
        s.list_keys("rg", "acct").await.0,
        200,
        "keys stay listable, as in Azure"
    );

    let ws_path = format!(
        "{}/resourceGroups/rg/providers/Microsoft.Quantum/workspaces/ws1",
        s.sub_path()
    );
    let (_, ws) = s
        .call(
            Method::PUT,
            &format!("{ws_path}?api-version={QUANTUM}"),
            Some(r#"{"location":"westus"}"#),
        )
        .await;
    let (_, qkeys) = s
        .call(
            Method::POST,
            &format!("{ws_path}/listKeys?api-version={QUANTUM}"),
            None,
        )
        .await;
    let qurl = format!(
        "{}v1.0/jobs",
        ws["properties"]["endpointUri"].as_str().unwrap()
    );
    let qkey = qkeys["primaryKey"]["key"].as_str().unwrap();
    let call = || {
        s.client
            .get(&qurl)
            .header("x-ms-quantum-api-key", qkey)
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    s.call(
        Method::PATCH,
        &format!("{ws_path}?api-version={QUANTUM}"),
        Some(r#"{"properties":{"apiKeyEnabled":false}}"#),
    )
    .await;
    assert_eq!(call().await.unwrap().status(), 403);
}

async fn deleting_the_group_stops_its_keys() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (endpoint, keys) = account_with_keys(&s, "rg", "acct").await;
    let key = keys["key1"].as_str().unwrap();
    assert_eq!(cs_call(&s, &endpoint, key).await.0, 200);
    s.call(
        Method::DELETE,
        &format!(
            "{}/resourcegroups/rg?api-version={RG_VERSION}",
            s.sub_path()
        ),
        None,
    )
    .await;
    assert_ne!(cs_call(&s, &endpoint, key).await.0, 200);
}

/// Signs a Cosmos request as the azure-cosmos SDK does.
pub(crate) fn cosmos_auth(
    key_b64: &str,
    verb: &str,
    resource_type: &str,
    link: &str,
    date: &str,
) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .unwrap();
    let to_sign = format!(
        "{}\n{}\n{}\n{}\n\n",
        verb.to_lowercase(),
        resource_type.to_lowercase(),
        link,
        date.to_lowercase()
    );
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
        to_sign.as_bytes(),
    );
    let sig = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    let raw = format!("type=master&ver=1.0&sig={sig}");
    raw.replace('%', "%25")
        .replace('&', "%26")
        .replace('=', "%3D")
        .replace('+', "%2B")
        .replace('/', "%2F")
}

pub(crate) fn http_date(offset_minutes: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::minutes(offset_minutes);
    t.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap()
}

async fn cosmos_signatures_read_only_keys_and_stale_dates() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (path, endpoint, keys) = cosmos_account(&s, "docdb1").await;
    let send = |method: Method,
                rest: &str,
                key: &str,
                rtype: &str,
                link: &str,
                date: String,
                query: bool| {
        let auth = cosmos_auth(key, method.as_str(), rtype, link, &date);
        let mut req = s
            .client
            .request(method, format!("{endpoint}{rest}"))
            .header("authorization", auth)
            .header("x-ms-date", date)
            .header("x-ms-version", "2018-12-31");
        if query {
            req = req
                .header("x-ms-documentdb-isquery", "True")
                .header("content-type", "application/query+json");
        }
        req.send()
    };
    let primary = keys["primaryMasterKey"].as_str().unwrap();
    let read_only = keys["primaryReadonlyMasterKey"].as_str().unwrap();

    let resp = send(Method::GET, "", primary, "", "", http_date(0), false)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(
        doc["writableLocations"][0]["databaseAccountEndpoint"], endpoint,
        "the account read points back here"
    );

    let write = |key| {
        send(
            Method::POST,
            "dbs/db1/colls/c1/docs",
            key,
            "docs",
            "dbs/db1/colls/c1",
            http_date(0),
            false,
        )
    };
    // Without an upstream only the account read is served; a call whose key passed every check
    // gets Cosmos DB's 501, which says what to set.
    let resp = write(primary).await.unwrap();
    assert_eq!(resp.status(), 501);
    let body = resp.json::<Value>().await.unwrap();
    assert_eq!(body["code"], "NotImplemented");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("properties.x-rekey-upstream"),
        "{body}"
    );
    let resp = write(read_only).await.unwrap();
    assert_eq!(
        resp.status(),
        403,
        "a read-only key cannot write, refused before the 501"
    );
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "Forbidden");
    let read = send(
        Method::GET,
        "dbs/db1/colls/c1/docs/d1",
        read_only,
        "docs",
        "dbs/db1/colls/c1/docs/d1",
        http_date(0),
        false,
    );
    assert_eq!(
        read.await.unwrap().status(),
        501,
        "a read-only key may read"
    );
    let query = send(
        Method::POST,
        "dbs/db1/colls/c1/docs",
        read_only,
        "docs",
        "dbs/db1/colls/c1",
        http_date(0),
        true,
    );
    assert_eq!(query.await.unwrap().status(), 501, "queries are reads");

    let stale = send(Method::GET, "", primary, "", "", http_date(-16), false)
        .await
        .unwrap();
    assert_eq!(stale.status(), 401, "x-ms-date more than 15 minutes off");
    let wrong_link = send(
        Method::GET,
        "dbs/db2",
        primary,
        "dbs",
        "dbs/db1",
        http_date(0),
        false,
    )
    .await
    .unwrap();
    assert_eq!(wrong_link.status(), 401);
    assert_eq!(
        wrong_link.json::<Value>().await.unwrap()["code"],
        "Unauthorized"
    );

    let (status, _) = s
        .call(
            Method::POST,
            &format!("{path}/regenerateKey?api-version={COSMOS}"),
            Some(r#"{"keyKind":"primary"}"#),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        send(Method::GET, "", primary, "", "", http_date(0), false)
            .await
            .unwrap()
            .status(),
        401,
        "the old key is refused at once"
    );
}

async fn verify_reports_the_slot_and_access() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (_, keys) = account_with_keys(&s, "rg", "acct").await;
    let verify = |key: String| {
        let (client, url, token) = (s.client.clone(), s.url("/verify"), s.token.clone());
        async move {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "key": key }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let answer = verify(keys["key2"].as_str().unwrap().to_string()).await;
    assert_eq!(answer["valid"], true);
    assert_eq!(answer["keyName"], "key2");
    assert_eq!(answer["access"], "readWrite");
    assert!(answer["resourceId"]
        .as_str()
        .unwrap()
        .ends_with("/accounts/acct"));
    assert_eq!(verify("rkcs_nope".into()).await, json!({"valid": false}));
    s.regenerate("rg", "acct", "Key2").await;
    assert_eq!(
        verify(keys["key2"].as_str().unwrap().to_string()).await,
        json!({"valid": false})
    );
    let anonymous = s
        .client
        .post(s.url("/verify"))
        .json(&json!({"key": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "verify needs a token");
}

async fn last_use_is_recorded_per_slot_off_the_request_path() {
    let s = TestServer::start_with("info", &[("REKEY_USAGE_FLUSH_MS", "50")]).await;
    s.create_group("rg").await;
    let (endpoint, keys) = account_with_keys(&s, "rg", "acct").await;
    let (other_endpoint, other_keys) = account_with_keys(&s, "rg", "other").await;
    assert_eq!(
        keys["x-rekey-lastUsed"],
        json!({"key1": null, "key2": null})
    );
    // Uses of several resources' keys, flushed together.
    assert_eq!(
        cs_call(&s, &endpoint, keys["key1"].as_str().unwrap())
            .await
            .0,
        200
    );
    assert_eq!(
        cs_call(&s, &other_endpoint, other_keys["key2"].as_str().unwrap())
            .await
            .0,
        200
    );
    let mut last_used = Value::Null;
    let mut other_used = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        last_used = s.list_keys("rg", "acct").await.1["x-rekey-lastUsed"].clone();
        other_used = s.list_keys("rg", "other").await.1["x-rekey-lastUsed"].clone();
        if !last_used["key1"].is_null() && !other_used["key2"].is_null() {
            break;
        }
    }
    assert!(
        other_used["key2"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{other_used}"
    );
    assert!(other_used["key1"].is_null(), "{other_used}");
    assert!(
        last_used["key1"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{last_used}"
    );
    assert!(last_used["key2"].is_null(), "key2 was never used");
    // Kept to the minute: another use a moment later does not rewrite the slot.
    assert_eq!(
        cs_call(&s, &endpoint, keys["key1"].as_str().unwrap())
            .await
            .0,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        s.list_keys("rg", "acct").await.1["x-rekey-lastUsed"]["key1"],
        last_used["key1"]
    );
    s.regenerate("rg", "acct", "Key1").await;
    assert!(
        s.list_keys("rg", "acct").await.1["x-rekey-lastUsed"]["key1"].is_null(),
        "a new key starts unused"
    );
}

async fn failing_addresses_are_throttled_without_locking_out_others() {
    let s = TestServer::start_with("info", &[("REKEY_AUTH_FAILURE_LIMIT", "5")]).await;
    s.create_group("rg").await;
    let (endpoint, keys) = account_with_keys(&s, "rg", "acct").await;
    let good = keys["key1"].as_str().unwrap();
    for _ in 0..5 {
        assert_eq!(cs_call(&s, &endpoint, "rkcs_wrong").await.0, 401);
    }
    let resp = s
        .client
        .get(&endpoint)
        .header("Ocp-Apim-Subscription-Key", good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    // Another client address (127.0.0.2 is loopback too) is not affected.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let resp = other
        .get(&endpoint)
        .header("Ocp-Apim-Subscription-Key", good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A tiny upstream that answers with what it received.
pub(crate) async fn echo_upstream() -> String {
    use axum::extract::Request;
    let app = axum::Router::new().fallback(|request: Request| async move {
        let (parts, body) = request.into_parts();
        // A body rekeyd cut short (a stalled client) arrives unfinished: echo none of it.
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        let headers: serde_json::Map<String, Value> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value::String(v.to_str().unwrap_or("").to_string()),
                )
            })
            .collect();
        axum::Json(json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/base")
}

async fn authenticated_requests_are_forwarded_to_the_upstream() {
    let s = TestServer::start().await;
    let upstream = echo_upstream().await;
    s.create_group("rg").await;
    let (endpoint, keys) = account_with_keys(&s, "rg", "acct").await;
    s.forward_to("rg", "acct", &upstream).await;
    let resp = s
        .client
        .put(format!("{endpoint}items/7?verbose=true"))
        .header("Ocp-Apim-Subscription-Key", keys["key2"].as_str().unwrap())
        .header("x-custom", "kept")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["uri"], "/base/items/7?verbose=true");
    assert_eq!(echo["body"], "payload");
    assert_eq!(echo["headers"]["x-custom"], "kept");
    assert_eq!(echo["headers"]["x-rekey-key-name"], "key2");
    // The path goes upstream as the client encoded it.
    let resp = s
        .client
        .get(format!("{endpoint}items/a%20b%3Bc"))
        .header("Ocp-Apim-Subscription-Key", keys["key1"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["uri"], "/base/items/a%20b%3Bc");
    assert!(echo["headers"]["x-rekey-resource-id"]
        .as_str()
        .unwrap()
        .ends_with("/accounts/acct"));
    assert!(
        echo["headers"].get("ocp-apim-subscription-key").is_none(),
        "the key is not forwarded"
    );
    // A bad key never reaches the upstream.
    assert_eq!(
        cs_call(&s, &format!("{endpoint}items/7"), "rkcs_wrong")
            .await
            .0,
        401
    );
    // Bad upstream values are refused.
    let patch = format!("{}?api-version={CS_VERSION}", s.account_path("rg", "acct"));
    let (status, _) = s
        .call(
            Method::PATCH,
            &patch,
            Some(r#"{"properties":{"x-rekey-upstream":"ftp://x"}}"#),
        )
        .await;
    assert_eq!(status, 400);
}

async fn cosmos_calls_beyond_the_account_read_get_501_until_an_upstream_is_set() {
    let s = TestServer::start().await;
    let upstream = echo_upstream().await;
    s.create_group("rg").await;
    let (path, endpoint, keys) = cosmos_account(&s, "docdb1").await;
    let key = keys["primaryMasterKey"].as_str().unwrap();
    let list_databases = || {
        let date = http_date(0);
        s.client
            .get(format!("{endpoint}dbs"))
            .header("authorization", cosmos_auth(key, "GET", "dbs", "", &date))
            .header("x-ms-date", date)
            .send()
    };
    let resp = list_databases().await.unwrap();
    assert_eq!(resp.status(), 501);
    let refused: Value = resp.json().await.unwrap();
    assert_eq!(refused["code"], "NotImplemented", "{refused}");

    let (status, _) = s
        .call(
            Method::PATCH,
            &format!("{path}?api-version={COSMOS}"),
            Some(&json!({"properties": {"x-rekey-upstream": upstream}}).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    let resp = list_databases().await.unwrap();
    assert_eq!(resp.status(), 200, "forwarded once an upstream is set");
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["uri"], "/base/dbs");
}

/// A Cosmos DB account in group `rg`: its management path, endpoint and keys.
pub(crate) async fn cosmos_account(s: &TestServer, name: &str) -> (String, String, Value) {
    let path = format!(
        "{}/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/{name}",
        s.sub_path()
    );
    let body = r#"{"location":"westus","properties":{"databaseAccountOfferType":"Standard","locations":[{"locationName":"westus"}]}}"#;
    let (status, account) = s
        .call(
            Method::PUT,
            &format!("{path}?api-version={COSMOS}"),
            Some(body),
        )
        .await;
    assert!(status == 200 || status == 201, "{account}");
    let endpoint = account["properties"]["documentEndpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, keys) = s
        .call(
            Method::POST,
            &format!("{path}/listKeys?api-version={COSMOS}"),
            None,
        )
        .await;
    (path, endpoint, keys)
}

//! Every error path of the contract for Cognitive Services: right status, ARM code, a message naming
//! the field, and nothing changed.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

crate::backend_tests!(
    missing_or_wrong_token_gets_401_with_a_challenge,
    api_version_is_required_and_checked,
    not_found_names_the_missing_level,
    bad_subscription_ids_and_names_get_400_and_create_nothing,
    malformed_bodies_get_400_naming_the_problem_and_change_nothing,
    responses_carry_arm_request_ids,
    unknown_paths_and_methods_get_arm_errors,
);

fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or("<no ARM error body>")
}

async fn missing_or_wrong_token_gets_401_with_a_challenge() {
    let s = TestServer::start().await;
    let url = s.url(&format!(
        "{}/resourcegroups?api-version={RG_VERSION}",
        s.sub_path()
    ));
    for auth in [None, Some("Bearer rkt_not-a-real-token"), Some("Basic abc")] {
        let mut req = s.client.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .expect("WWW-Authenticate")
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            ["AuthenticationFailed", "InvalidAuthenticationToken"].contains(&code(&body)),
            "{body}"
        );
    }
}

async fn api_version_is_required_and_checked() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let path = s.account_path("rg", "acct");
    let (status, body) = s.call(Method::GET, &path, None).await;
    assert_eq!((status, code(&body)), (400, "MissingApiVersionParameter"));
    let (status, body) = s
        .call(Method::GET, &format!("{path}?api-version=2099-01-01"), None)
        .await;
    assert_eq!((status, code(&body)), (400, "InvalidApiVersionParameter"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2023-05-01"),
        "lists supported versions"
    );
    for v in ["2023-05-01", "2025-09-01", "2026-05-15-preview"] {
        let (status, body) = s
            .call(Method::GET, &format!("{path}?api-version={v}"), None)
            .await;
        assert_eq!((status, code(&body)), (404, "ResourceNotFound"), "{v}");
    }
}

async fn not_found_names_the_missing_level() {
    let s = TestServer::start().await;
    let other_sub = "99999999-9999-9999-9999-999999999999";
    let (status, body) = s
        .call(
            Method::GET,
            &format!("/subscriptions/{other_sub}/resourcegroups/rg?api-version={RG_VERSION}"),
            None,
        )
        .await;
    assert_eq!((status, code(&body)), (404, "SubscriptionNotFound"));
    let (status, body) = s
        .call(
            Method::GET,
            &format!(
                "{}?api-version={CS_VERSION}",
                s.account_path("nogroup", "acct")
            ),
            None,
        )
        .await;
    assert_eq!((status, code(&body)), (404, "ResourceGroupNotFound"));
    // Creating an account in a missing group is refused the same way.
    let (status, body) = s
        .call(
            Method::PUT,
            &format!(
                "{}?api-version={CS_VERSION}",
                s.account_path("nogroup", "acct")
            ),
            Some(r#"{"location":"westus","kind":"TextAnalytics","sku":{"name":"S0"}}"#),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "ResourceGroupNotFound"));
    s.create_group("rg").await;
    let (status, body) = s.list_keys("rg", "missing").await;
    assert_eq!((status, code(&body)), (404, "ResourceNotFound"));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Microsoft.CognitiveServices/accounts/missing"));
}

async fn bad_subscription_ids_and_names_get_400_and_create_nothing() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let body = r#"{"location":"westus","kind":"TextAnalytics","sku":{"name":"S0"}}"#;
    let bad_sub = format!("/subscriptions/not-a-uuid/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/acct?api-version={CS_VERSION}");
    let (status, resp) = s.call(Method::PUT, &bad_sub, Some(body)).await;
    assert_eq!((status, code(&resp)), (400, "InvalidSubscriptionId"));
    for bad_name in ["-starts-with-dash", "a", "has%20space", &"x".repeat(65)] {
        let (status, resp) = s
            .call(
                Method::PUT,
                &format!(
                    "{}?api-version={CS_VERSION}",
                    s.account_path("rg", bad_name)
                ),
                Some(body),
            )
            .await;
        assert_eq!(
            (status, code(&resp)),
            (400, "InvalidResourceName"),
            "{bad_name}"
        );
    }
    let (status, resp) = s
        .call(
            Method::PUT,
            &format!(
                "{}/resourcegroups/bad.?api-version={RG_VERSION}",
                s.sub_path()
            ),
            Some(r#"{"location":"westus"}"#),
        )
        .await;
    assert_eq!((status, code(&resp)), (400, "InvalidResourceGroupName"));
    let (_, list) = s
        .call(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.CognitiveServices/accounts?api-version={CS_VERSION}",
                s.sub_path()
            ),
            None,
        )
        .await;
    assert_eq!(list["value"], serde_json::json!([]), "nothing was created");
}

async fn malformed_bodies_get_400_naming_the_problem_and_change_nothing() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let (_, before) = s.list_keys("rg", "acct").await;
    let regen = format!(
        "{}/regenerateKey?api-version={CS_VERSION}",
        s.account_path("rg", "acct")
    );
    for (body, expected_code, mentions) in [
        (Some("{not json"), "InvalidRequestContent", "deserialized"),
        (None, "InvalidRequestContent", "empty"),
        (Some("{}"), "InvalidRequestContent", "keyName"),
        (
            Some(r#"{"keyName":"Key3"}"#),
            "InvalidParameter",
            "Key1, Key2",
        ),
        (Some(r#"{"keyName":7}"#), "InvalidRequestContent", "keyName"),
        (Some("[1,2]"), "InvalidRequestContent", "object"),
    ] {
        let (status, resp) = s.call(Method::POST, &regen, body).await;
        assert_eq!(
            (status, code(&resp)),
            (400, expected_code),
            "{body:?}: {resp}"
        );
        assert!(
            resp["error"]["message"]
                .as_str()
                .unwrap()
                .contains(mentions),
            "{resp}"
        );
    }
    assert_eq!(
        s.list_keys("rg", "acct").await.1,
        before,
        "no bad request changed a key"
    );

    let put = format!("{}?api-version={CS_VERSION}", s.account_path("rg", "new"));
    for (body, field) in [
        (
            r#"{"kind":"TextAnalytics","sku":{"name":"S0"}}"#,
            "location",
        ),
        (r#"{"location":"westus","sku":{"name":"S0"}}"#, "kind"),
        (r#"{"location":"westus","kind":"TextAnalytics"}"#, "sku"),
        (
            r#"{"location":"westus","kind":"TextAnalytics","sku":{"name":"S0"},"properties":{"disableLocalAuth":"yes"}}"#,
            "disableLocalAuth",
        ),
    ] {
        let (status, resp) = s.call(Method::PUT, &put, Some(body)).await;
        assert_eq!(
            (status, code(&resp)),
            (400, "InvalidRequestContent"),
            "{resp}"
        );
        assert!(
            resp["error"]["message"].as_str().unwrap().contains(field),
            "{resp}"
        );
    }
    assert_eq!(
        s.call(Method::GET, &put, None).await.0,
        404,
        "the account was not created"
    );
}

async fn responses_carry_arm_request_ids() {
    let s = TestServer::start().await;
    let resp = s
        .client
        .get(s.url("/subscriptions?api-version=2022-12-01"))
        .bearer_auth(&s.token)
        .header("x-ms-correlation-request-id", "corr-1")
        .header("x-ms-client-request-id", "client-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert!(h.get("x-ms-request-id").is_some());
    assert_eq!(h["x-ms-correlation-request-id"], "corr-1");
    assert_eq!(h["x-ms-client-request-id"], "client-1");
    let resp = s
        .client
        .get(s.url("/subscriptions?api-version=2022-12-01"))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers().get("x-ms-correlation-request-id").is_some(),
        "made up when absent"
    );
}

async fn unknown_paths_and_methods_get_arm_errors() {
    let s = TestServer::start().await;
    let (status, body) = s.call(Method::GET, "/nothing-here", None).await;
    assert_eq!((status, code(&body)), (404, "NotFound"));
    let (status, body) = s
        .call(
            Method::POST,
            &format!("{}?api-version={RG_VERSION}", s.sub_path()),
            None,
        )
        .await;
    assert_eq!((status, code(&body)), (405, "MethodNotAllowed"));
}

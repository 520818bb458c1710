//! The Keys & Endpoint page's server side: its files and security headers, sign-in to a session
//! cookie, CSRF on cookie-authenticated writes, sign-out, `/rekey/permissions` and
//! `/rekey/keyActivity`. The page itself is driven in a real browser by `tests/web/`.

use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::Method;
use serde_json::{json, Value};

use crate::access::{call_as, token_with_role};
use crate::helpers::*;

crate::backend_tests!(key_activity_tells_key_ages_only_of_resources_whose_keys_the_caller_may_list);

pub(crate) struct Session {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

/// Signs in with `token` by JSON, as the page does.
pub(crate) async fn sign_in(s: &TestServer, token: &str) -> Session {
    let resp = s
        .client
        .post(s.url("/web/session"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let set_cookie = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    Session {
        cookie,
        csrf: body["csrfToken"].as_str().unwrap().to_string(),
    }
}

/// Calls with the session cookie (and the CSRF header when `csrf` is given); no bearer token.
async fn with_cookie(
    s: &TestServer,
    session: &Session,
    method: Method,
    path: &str,
    csrf: Option<&str>,
) -> (u16, Value) {
    let mut req = s
        .client
        .request(method, s.url(path))
        .header(COOKIE, &session.cookie);
    if let Some(csrf) = csrf {
        req = req.header("x-csrf-token", csrf);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn list_keys_path(s: &TestServer) -> String {
    format!(
        "{}/listKeys?api-version={CS_VERSION}",
        s.account_path("rg", "acct")
    )
}

fn assert_page_headers(headers: &HeaderMap) {
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn the_page_and_its_files_carry_strict_security_headers() {
    let s = TestServer::start().await;
    for (path, content_type) in [
        ("/web/", "text/html"),
        ("/web/app.js", "text/javascript"),
        ("/web/app.css", "text/css"),
        ("/web/favicon.svg", "image/svg+xml"),
    ] {
        let resp = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}"
        );
        assert_page_headers(resp.headers());
    }
    let page = s
        .client
        .get(s.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Keys &amp; Endpoint"), "/ leads to the page");
}

#[tokio::test]
async fn sign_in_sets_an_http_only_strict_cookie_that_authenticates_reads() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let resp = s
        .client
        .post(s.url("/web/session"))
        .json(&json!({ "token": s.token }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.starts_with("rekey_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(&s.token), "the cookie is not the token");
    assert_page_headers(resp.headers());
    let body: Value = resp.json().await.unwrap();
    assert!(!body.to_string().contains(&s.token), "{body}");
    let session = Session {
        cookie: cookie.split(';').next().unwrap().to_string(),
        csrf: body["csrfToken"].as_str().unwrap().to_string(),
    };
    let (status, account) = with_cookie(
        &s,
        &session,
        Method::GET,
        &format!("{}?api-version={CS_VERSION}", s.account_path("rg", "acct")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{account}");
    let (status, me) = with_cookie(&s, &session, Method::GET, "/web/session", None).await;
    assert_eq!(status, 200);
    assert_eq!(me["signedIn"], true);
    assert_eq!(me["csrfToken"], session.csrf.as_str());
    assert_eq!(me["isOwner"], true);
}

#[tokio::test]
async fn cookie_writes_without_the_csrf_token_are_refused() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let session = sign_in(&s, &s.token).await;
    let path = list_keys_path(&s);
    let (status, body) = with_cookie(&s, &session, Method::POST, &path, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "CsrfTokenMissing");
    let (status, body) = with_cookie(&s, &session, Method::POST, &path, Some("guess")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "InvalidCsrfToken");
    let (status, keys) = with_cookie(&s, &session, Method::POST, &path, Some(&session.csrf)).await;
    assert_eq!(status, 200, "{keys}");
    assert!(keys["key1"].as_str().unwrap().starts_with("rkcs_"));
}

#[tokio::test]
async fn bearer_calls_need_no_csrf_token_even_with_a_session_cookie() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let session = sign_in(&s, &s.token).await;
    let resp = s
        .client
        .post(s.url(&list_keys_path(&s)))
        .bearer_auth(&s.token)
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_invalid_token_gets_no_session() {
    let s = TestServer::start().await;
    let resp = s
        .client
        .post(s.url("/web/session"))
        .json(&json!({ "token": "rkt_not-a-token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get(SET_COOKIE).is_none());
    let resp = s
        .client
        .get(s.url("/subscriptions?api-version=2022-12-01"))
        .header(COOKIE, "rekey_session=guessed")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "an unknown session id is no session");
}

#[tokio::test]
async fn a_form_sign_in_sets_the_cookie_and_returns_to_the_page() {
    let s = TestServer::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .post(s.url("/web/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", s.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/web/");
    assert!(resp.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("HttpOnly"));
}

#[tokio::test]
async fn sign_in_from_another_site_is_refused() {
    let s = TestServer::start().await;
    let resp = s
        .client
        .post(s.url("/web/session"))
        .header("origin", "https://attacker.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", s.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn sign_out_ends_the_session_and_needs_the_csrf_token() {
    let s = TestServer::start().await;
    let session = sign_in(&s, &s.token).await;
    let (status, _) = with_cookie(&s, &session, Method::DELETE, "/web/session", None).await;
    assert_eq!(status, 403, "signing out is a write");
    let resp = s
        .client
        .delete(s.url("/web/session"))
        .header(COOKIE, &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let (status, me) = with_cookie(&s, &session, Method::GET, "/web/session", None).await;
    assert_eq!((status, &me["signedIn"]), (200, &json!(false)));
    let (status, _) = with_cookie(
        &s,
        &session,
        Method::GET,
        "/subscriptions?api-version=2022-12-01",
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn revoking_a_token_ends_its_sessions_at_once() {
    let s = TestServer::start().await;
    let (principal, token) = token_with_role(&s, "Reader", &s.sub_path()).await;
    let session = sign_in(&s, &token).await;
    let subs = "/subscriptions?api-version=2022-12-01";
    assert_eq!(
        with_cookie(&s, &session, Method::GET, subs, None).await.0,
        200
    );
    let (status, _) = call_as(
        &s,
        &s.token,
        Method::DELETE,
        &format!("/rekey/tokens/{principal}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        with_cookie(&s, &session, Method::GET, subs, None).await.0,
        401
    );
    let (_, me) = with_cookie(&s, &session, Method::GET, "/web/session", None).await;
    assert_eq!(me["signedIn"], false);
}

#[tokio::test]
async fn permissions_tell_a_reader_it_may_not_list_or_regenerate_keys() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let (_, reader) = token_with_role(&s, "Reader", &s.sub_path()).await;
    let scope = s.account_path("rg", "acct");
    let actions = [
        "Microsoft.CognitiveServices/accounts/read",
        "Microsoft.CognitiveServices/accounts/listKeys/action",
        "Microsoft.CognitiveServices/accounts/regenerateKey/action",
    ];
    let path = format!(
        "/rekey/permissions?scope={scope}&actions={}",
        actions.join(",")
    );
    let (status, body) = call_as(&s, &reader, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["actions"][actions[0]], true);
    assert_eq!(body["actions"][actions[1]], false);
    assert_eq!(body["actions"][actions[2]], false);
    let (_, body) = call_as(&s, &s.token, Method::GET, &path, None).await;
    assert!(actions.iter().all(|a| body["actions"][a] == true), "{body}");
    let (status, _) = call_as(&s, &reader, Method::GET, "/rekey/permissions", None).await;
    assert_eq!(status, 400);
    // Exactly the documented list: no empty names, no spaces around them.
    for actions in ["a,,b", "a,", "a, b"] {
        let path = format!("/rekey/permissions?scope={scope}&actions={actions}");
        let (status, body) = call_as(&s, &reader, Method::GET, &path, None).await;
        assert_eq!(status, 400, "{actions}: {body}");
    }
}

/// serde reads a struct from an array, so `["rkt_…"]` was taken for `{"token": "rkt_…"}`.
#[tokio::test]
async fn a_json_sign_in_body_must_be_an_object() {
    let s = TestServer::start().await;
    let resp = s
        .client
        .post(s.url("/web/session"))
        .json(&json!([s.token]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get(SET_COOKIE).is_none());
}

async fn key_activity_tells_key_ages_only_of_resources_whose_keys_the_caller_may_list() {
    let s = TestServer::start().await;
    s.create_group("rg1").await;
    s.create_group("rg2").await;
    s.create_account("rg1", "a1").await;
    s.create_account("rg2", "a2").await;
    let path = format!("/rekey/keyActivity?scope={}", s.sub_path());
    let (status, body) = call_as(&s, &s.token, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    let ids = |body: &Value| -> Vec<String> {
        let mut ids: Vec<String> = body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&body),
        [s.account_path("rg1", "a1"), s.account_path("rg2", "a2")]
    );
    let entry = &body["value"][0];
    assert!(entry["oldestKeyCreatedAt"].as_str().unwrap().contains('T'));
    assert_eq!(entry["lastUsedAt"], Value::Null);
    assert!(!body.to_string().contains("rkcs_"), "no key in the answer");

    // A Reader may not list keys, so it learns nothing of them; a Key Operator of rg2 only of rg2.
    let (_, reader) = token_with_role(&s, "Reader", &s.sub_path()).await;
    let (status, body) = call_as(&s, &reader, Method::GET, &path, None).await;
    assert_eq!((status, body["value"].as_array().unwrap().len()), (200, 0));
    let rg2 = format!("{}/resourceGroups/rg2", s.sub_path());
    let (_, operator) = token_with_role(&s, "Key Operator", &rg2).await;
    let (_, body) = call_as(&s, &operator, Method::GET, &path, None).await;
    assert_eq!(ids(&body), [s.account_path("rg2", "a2")]);

    // One resource: each slot's times. Outside the operator's scope, it answers as for nothing.
    let one = |group, name| format!("/rekey/keyActivity?scope={}", s.account_path(group, name));
    let (_, body) = call_as(&s, &operator, Method::GET, &one("rg2", "a2"), None).await;
    assert_eq!(ids(&body), [s.account_path("rg2", "a2")]);
    let slots = &body["value"][0]["keys"];
    assert!(
        slots["key1"]["createdAt"].as_str().unwrap().contains('T'),
        "{body}"
    );
    assert_eq!(slots["key2"]["lastUsedAt"], Value::Null);
    for path in [
        one("rg1", "a1"),
        one("rg2", "missing"),
        "/rekey/keyActivity?scope=/subscriptions/00000000-0000-0000-0000-000000000001".into(),
    ] {
        let (status, body) = call_as(&s, &operator, Method::GET, &path, None).await;
        assert_eq!(
            (status, body["value"].as_array().unwrap().len()),
            (200, 0),
            "{path}"
        );
    }
    let sub = s.sub_path();
    for scope in [
        "",
        "/",
        "/subscriptions",
        &format!("{sub}/resourceGroups/rg1"),
        &format!("{sub}/x"),
    ] {
        let path = format!("/rekey/keyActivity?scope={scope}");
        let (status, body) = call_as(&s, &s.token, Method::GET, &path, None).await;
        assert_eq!(status, 400, "{scope}: {body}");
        assert_eq!(body["error"]["code"], "InvalidParameter");
    }
}

//! rekey as the identity provider `az login --service-principal` talks to.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

fn boot(s: &TestServer) -> Value {
    serde_json::from_str(&std::fs::read_to_string(s.data_dir().join("bootstrap.json")).unwrap())
        .unwrap()
}

async fn get_token(s: &TestServer, tenant: &str, client_id: &str, secret: &str) -> (u16, Value) {
    let scope = format!("{}/.default", s.base);
    let resp = s
        .client
        .post(s.url(&format!("/{tenant}/oauth2/v2.0/token")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", &scope),
            ("client_info", "1"),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn list_subscriptions(s: &TestServer, bearer: &str) -> (u16, Value) {
    let resp = s
        .client
        .get(s.url("/subscriptions?api-version=2022-12-01"))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn discovery_documents_point_at_this_server() {
    let s = TestServer::start().await;
    let tenant = boot(&s)["tenantId"].as_str().unwrap().to_string();
    let meta: Value = s
        .client
        .get(s.url("/metadata/endpoints?api-version=2022-09-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resourceManager"], format!("{}/", s.base));
    assert_eq!(meta["authentication"]["loginEndpoint"], s.base);
    assert_eq!(
        meta["authentication"]["audiences"][0],
        format!("{}/", s.base)
    );
    let oidc: Value = s
        .client
        .get(s.url(&format!("/{tenant}/v2.0/.well-known/openid-configuration")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        oidc["token_endpoint"],
        format!("{}/{tenant}/oauth2/v2.0/token", s.base)
    );
    for field in [
        "issuer",
        "authorization_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(!oidc[field].is_null(), "{field}");
    }
    let jwks: Value = s
        .client
        .get(oidc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    let other = s
        .client
        .get(s.url(&format!(
            "/{}/v2.0/.well-known/openid-configuration",
            uuid::Uuid::new_v4()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 400, "another tenant is not this one");
}

#[tokio::test]
async fn client_credentials_give_a_jwt_accepted_with_the_principals_roles() {
    let s = TestServer::start().await;
    let b = boot(&s);
    let (tenant, principal) = (
        b["tenantId"].as_str().unwrap(),
        b["principalId"].as_str().unwrap(),
    );
    let (status, token) = get_token(&s, tenant, principal, &s.token).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["expires_in"].as_i64().unwrap() > 3000);
    let jwt = token["access_token"].as_str().unwrap();
    let payload: Value = {
        use base64::Engine as _;
        let part = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    for claim in ["tid", "oid", "appid", "aud", "iss", "exp"] {
        assert!(!payload[claim].is_null(), "{claim}: {payload}");
    }
    assert_eq!(payload["tid"], tenant);
    assert_eq!(payload["oid"], principal);
    let (status, subs) = list_subscriptions(&s, jwt).await;
    assert_eq!(status, 200, "{subs}");
    assert_eq!(subs["value"][0]["tenantId"], tenant);

    // A Reader's JWT carries the Reader's rights, no more.
    let (_, created) = s
        .call(Method::POST, "/rekey/tokens", Some(r#"{"name":"r"}"#))
        .await;
    let (rid, rtoken) = (
        created["principalId"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    let (_, reader_jwt) = get_token(&s, tenant, rid, rtoken).await;
    let (status, subs) = list_subscriptions(&s, reader_jwt["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, subs["value"].as_array().unwrap().len()),
        (200, 0),
        "no role, no subscription"
    );
    // Revoking the token ends its JWTs too.
    s.call(Method::DELETE, &format!("/rekey/tokens/{rid}"), None)
        .await;
    assert_eq!(
        list_subscriptions(&s, reader_jwt["access_token"].as_str().unwrap())
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn wrong_secrets_unknown_clients_and_tampered_tokens_are_refused() {
    let s = TestServer::start().await;
    let b = boot(&s);
    let (tenant, principal) = (
        b["tenantId"].as_str().unwrap(),
        b["principalId"].as_str().unwrap(),
    );
    let (status, body) = get_token(&s, tenant, principal, "rkt_wrong").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = get_token(&s, tenant, &uuid::Uuid::new_v4().to_string(), &s.token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "the secret belongs to another client"
    );
    let (_, good) = get_token(&s, tenant, principal, &s.token).await;
    let jwt = good["access_token"].as_str().unwrap();
    let mut parts: Vec<String> = jwt.split('.').map(String::from).collect();
    let flipped = if parts[1].ends_with('A') { 'B' } else { 'A' };
    parts[1].pop();
    parts[1].push(flipped);
    let (status, body) = list_subscriptions(&s, &parts.join(".")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationToken"))
    );
    // The key rotates by command; tokens signed before stay valid until they expire.
    let (status, rotated) = s
        .call(Method::POST, "/rekey/signing-keys/rotate", None)
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(list_subscriptions(&s, jwt).await.0, 200);
    let (_, fresh) = get_token(&s, tenant, principal, &s.token).await;
    assert_eq!(
        list_subscriptions(&s, fresh["access_token"].as_str().unwrap())
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn expired_tokens_and_tokens_for_another_audience_are_refused() {
    let mut s = TestServer::start_with("info", &[("REKEY_ACCESS_TOKEN_TTL_SECONDS", "1")]).await;
    let b = boot(&s);
    let (tenant, principal) = (
        b["tenantId"].as_str().unwrap().to_string(),
        b["principalId"].as_str().unwrap().to_string(),
    );
    let (_, token) = get_token(&s, &tenant, &principal, &s.token).await;
    let jwt = token["access_token"].as_str().unwrap().to_string();
    assert_eq!(list_subscriptions(&s, &jwt).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = list_subscriptions(&s, &jwt).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("ExpiredAuthenticationToken"))
    );
    // After a restart the server lives at another address: a token minted for the old audience,
    // though signed with the same key, is refused.
    let (_, token) = get_token(&s, &tenant, &principal, &s.token).await;
    let old_audience = token["access_token"].as_str().unwrap().to_string();
    s.kill_and_restart();
    assert_eq!(list_subscriptions(&s, &old_audience).await.0, 401);
}

/// axum answered a token request that was not a form with a plain-text 415, which neither OAuth
/// clients nor the document expect: it is OAuth's `invalid_request`, in OAuth's error shape.
#[tokio::test]
async fn a_token_request_that_is_not_a_form_gets_an_oauth_error() {
    let s = TestServer::start().await;
    let tenant = boot(&s)["tenantId"].as_str().unwrap().to_string();
    let url = s.url(&format!("/{tenant}/oauth2/v2.0/token"));
    let json_body = s
        .client
        .post(&url)
        .json(&serde_json::json!({"grant_type": "client_credentials"}));
    for request in [json_body, s.client.post(&url)] {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{body}");
    }
}

#[tokio::test]
async fn client_secret_basic_is_accepted_as_advertised_but_not_beside_form_credentials() {
    let s = TestServer::start().await;
    let b = boot(&s);
    let (tenant, principal) = (
        b["tenantId"].as_str().unwrap(),
        b["principalId"].as_str().unwrap(),
    );
    let (_, configuration) = {
        let resp = s
            .client
            .get(s.url(&format!("/{tenant}/v2.0/.well-known/openid-configuration")))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    assert!(configuration["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&Value::from("client_secret_basic")));
    let url = s.url(&format!("/{tenant}/oauth2/v2.0/token"));
    let scope = format!("{}/.default", s.base);
    let form = [("grant_type", "client_credentials"), ("scope", &scope)];
    let resp = s
        .client
        .post(&url)
        .basic_auth(principal, Some(&s.token))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token: Value = resp.json().await.unwrap();
    let jwt = token["access_token"].as_str().unwrap();
    assert_eq!(list_subscriptions(&s, jwt).await.0, 200);

    let resp = s
        .client
        .post(&url)
        .basic_auth(principal, Some("not-the-secret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    let both = [
        ("grant_type", "client_credentials"),
        ("scope", &scope),
        ("client_id", principal),
        ("client_secret", &s.token),
    ];
    let resp = s
        .client
        .post(&url)
        .basic_auth(principal, Some(&s.token))
        .form(&both)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    // A bearer token in Authorization is not client authentication: the form's credentials count.
    let resp = s
        .client
        .post(&url)
        .bearer_auth(&s.token)
        .form(&both)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

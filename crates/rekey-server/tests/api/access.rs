//! Roles, scopes, tokens and the audit log: who may read or rotate keys, and who did.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

crate::backend_tests!(
    each_role_at_each_scope_gets_exactly_its_rights_inside_and_none_outside,
    a_reader_sees_the_account_but_never_its_keys,
    revoked_and_expired_tokens_fail_on_their_next_call,
    role_assignments_follow_azures_shape_and_checks,
    the_audit_log_records_who_did_what_and_detects_tampering,
);

const AUTHZ: &str = "2022-04-01";
const ROLES: [&str; 6] = [
    "Owner",
    "Contributor",
    "Key Operator",
    "Reader",
    "Verifier",
    "Monitoring Reader",
];

/// Calls as `token`; returns status and body.
pub async fn call_as(
    s: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = s.client.request(method, s.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A new token (made by the owner) holding `role` at `scope`; returns (principal id, token).
pub async fn token_with_role(s: &TestServer, role: &str, scope: &str) -> (String, String) {
    let (status, created) = call_as(
        s,
        &s.token,
        Method::POST,
        "/rekey/tokens",
        Some(json!({"name": role})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let principal = created["principalId"].as_str().unwrap().to_string();
    let (_, roles) = s
        .call(Method::GET, &format!("{}/providers/Microsoft.Authorization/roleDefinitions?api-version={AUTHZ}&$filter=roleName eq '{role}'", s.sub_path()), None)
        .await;
    let role_id = roles["value"][0]["id"].as_str().unwrap().to_string();
    let path = format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignments/{}?api-version={AUTHZ}",
        uuid::Uuid::new_v4()
    );
    let body = json!({"properties": {"roleDefinitionId": role_id, "principalId": principal}});
    let (status, assigned) = call_as(s, &s.token, Method::PUT, &path, Some(body)).await;
    assert_eq!(status, 201, "{assigned}");
    (principal, created["token"].as_str().unwrap().to_string())
}

fn allowed(role: &str, op: &str) -> bool {
    match op {
        "read" => ["Owner", "Contributor", "Key Operator", "Reader"].contains(&role),
        "listKeys" | "regenerate" => ["Owner", "Contributor", "Key Operator"].contains(&role),
        "write" => ["Owner", "Contributor"].contains(&role),
        "assign" => role == "Owner",
        "verify" => ["Owner", "Contributor", "Verifier"].contains(&role),
        _ => unreachable!(),
    }
}

/// Runs one operation against account `name` in `group` as `token`; true if it was allowed.
async fn attempt(
    s: &TestServer,
    token: &str,
    op: &str,
    group: &str,
    name: &str,
    key_of_target: &str,
) -> bool {
    let acct = s.account_path(group, name);
    let (status, body) = match op {
        "read" => {
            call_as(
                s,
                token,
                Method::GET,
                &format!("{acct}?api-version={CS_VERSION}"),
                None,
            )
            .await
        }
        "listKeys" => {
            call_as(
                s,
                token,
                Method::POST,
                &format!("{acct}/listKeys?api-version={CS_VERSION}"),
                None,
            )
            .await
        }
        "regenerate" => {
            call_as(
                s,
                token,
                Method::POST,
                &format!("{acct}/regenerateKey?api-version={CS_VERSION}"),
                Some(json!({"keyName": "Key2"})),
            )
            .await
        }
        "write" => {
            call_as(
                s,
                token,
                Method::PATCH,
                &format!("{acct}?api-version={CS_VERSION}"),
                Some(json!({"tags": {"t": "1"}})),
            )
            .await
        }
        "assign" => {
            let path = format!(
                "{acct}/providers/Microsoft.Authorization/roleAssignments/{}?api-version={AUTHZ}",
                uuid::Uuid::new_v4()
            );
            let (_, me) = call_as(s, &s.token, Method::GET, "/rekey/tokens", None).await;
            let someone = me["value"][0]["principalId"].as_str().unwrap().to_string();
            let body = json!({"properties": {"roleDefinitionId": "acdd72a7-3385-48ef-bd42-f606fba81ae7", "principalId": someone}});
            call_as(s, token, Method::PUT, &path, Some(body)).await
        }
        "verify" => {
            let (status, body) = call_as(
                s,
                token,
                Method::POST,
                "/verify",
                Some(json!({"key": key_of_target})),
            )
            .await;
            // Verify rights elsewhere answer "not valid" for keys outside the caller's scopes.
            return status == 200 && body["valid"] == true;
        }
        _ => unreachable!(),
    };
    match status {
        200 | 201 => true,
        // Authorized, but an earlier attempt already made this principal a Reader there.
        409 if op == "assign" && body["error"]["code"] == "RoleAssignmentExists" => true,
        403 => {
            assert_eq!(body["error"]["code"], "AuthorizationFailed", "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("does not have authorization to perform action")
                    && message.contains("over scope"),
                "{message}"
            );
            false
        }
        other => panic!("{op} answered {other}: {body}"),
    }
}

async fn each_role_at_each_scope_gets_exactly_its_rights_inside_and_none_outside() {
    let s = TestServer::start().await;
    s.create_group("rg1").await;
    s.create_group("rg2").await;
    s.create_account("rg1", "a1").await;
    s.create_account("rg2", "b1").await;
    let key_of = |keys: Value| keys["key1"].as_str().unwrap().to_string();
    let (a1, b1) = (
        key_of(s.list_keys("rg1", "a1").await.1),
        key_of(s.list_keys("rg2", "b1").await.1),
    );
    let scopes = [
        ("subscription", s.sub_path()),
        ("group", format!("{}/resourceGroups/rg1", s.sub_path())),
        ("resource", s.account_path("rg1", "a1")),
    ];
    let mut checked = 0;
    for role in ROLES {
        for (level, scope) in &scopes {
            let (_, token) = token_with_role(&s, role, scope).await;
            for op in [
                "read",
                "listKeys",
                "regenerate",
                "write",
                "assign",
                "verify",
            ] {
                let inside = attempt(&s, &token, op, "rg1", "a1", &a1).await;
                assert_eq!(
                    inside,
                    allowed(role, op),
                    "{role} at {level} scope, {op} inside"
                );
                let outside_expected = *level == "subscription" && allowed(role, op);
                let outside = attempt(&s, &token, op, "rg2", "b1", &b1).await;
                assert_eq!(
                    outside, outside_expected,
                    "{role} at {level} scope, {op} on another group's account"
                );
                checked += 2;
            }
        }
    }
    assert_eq!(checked, ROLES.len() * 3 * 6 * 2);
}

async fn a_reader_sees_the_account_but_never_its_keys() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let cosmos = format!(
        "{}/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/docdb1",
        s.sub_path()
    );
    let body = r#"{"location":"westus","properties":{"databaseAccountOfferType":"Standard","locations":[{"locationName":"westus"}]}}"#;
    s.call(
        Method::PUT,
        &format!("{cosmos}?api-version=2026-03-15"),
        Some(body),
    )
    .await;
    let (_, reader) = token_with_role(&s, "Reader", &s.sub_path()).await;
    let acct = s.account_path("rg", "acct");
    assert_eq!(
        call_as(
            &s,
            &reader,
            Method::GET,
            &format!("{acct}?api-version={CS_VERSION}"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call_as(
            &s,
            &reader,
            Method::GET,
            &format!("{cosmos}?api-version=2026-03-15"),
            None
        )
        .await
        .0,
        200
    );
    for (method, path) in [
        (
            Method::POST,
            format!("{acct}/listKeys?api-version={CS_VERSION}"),
        ),
        (
            Method::POST,
            format!("{cosmos}/listKeys?api-version=2026-03-15"),
        ),
        (
            Method::GET,
            format!("{cosmos}/readonlykeys?api-version=2026-03-15"),
        ),
        (
            Method::POST,
            format!("{cosmos}/readonlykeys?api-version=2026-03-15"),
        ),
        (
            Method::POST,
            format!("{cosmos}/listConnectionStrings?api-version=2026-03-15"),
        ),
    ] {
        let (status, body) = call_as(&s, &reader, method.clone(), &path, None).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
    }
    // Lists show what the reader may read; the subscription list shows only where it has a role.
    let (_, list) = call_as(
        &s,
        &reader,
        Method::GET,
        "/subscriptions?api-version=2022-12-01",
        None,
    )
    .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
}

async fn revoked_and_expired_tokens_fail_on_their_next_call() {
    let s = TestServer::start().await;
    // The owner's token keeps the service reachable: revoking it is refused as a conflict.
    let (_, tokens) = call_as(&s, &s.token, Method::GET, "/rekey/tokens", None).await;
    let owner = tokens["value"][0]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = call_as(
        &s,
        &s.token,
        Method::DELETE,
        &format!("/rekey/tokens/{owner}"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("OwnerTokenProtected"))
    );
    let (principal, token) = token_with_role(&s, "Reader", &s.sub_path()).await;
    let path = format!("{}/resourcegroups?api-version={RG_VERSION}", s.sub_path());
    assert_eq!(call_as(&s, &token, Method::GET, &path, None).await.0, 200);
    assert_eq!(
        call_as(
            &s,
            &s.token,
            Method::DELETE,
            &format!("/rekey/tokens/{principal}"),
            None
        )
        .await
        .0,
        200
    );
    let (status, body) = call_as(&s, &token, Method::GET, &path, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationToken"))
    );

    let (_, created) = call_as(
        &s,
        &s.token,
        Method::POST,
        "/rekey/tokens",
        Some(json!({"name": "short", "expiresIn": "1s"})),
    )
    .await;
    let short = created["token"].as_str().unwrap();
    assert!(created["expiresAt"].is_string());
    // Without a role it may call, but sees nothing.
    let (status, list) = call_as(
        &s,
        short,
        Method::GET,
        "/subscriptions?api-version=2022-12-01",
        None,
    )
    .await;
    assert_eq!((status, list["value"].as_array().unwrap().len()), (200, 0));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status, body) = call_as(
        &s,
        short,
        Method::GET,
        "/subscriptions?api-version=2022-12-01",
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("ExpiredAuthenticationToken"))
    );
    let (_, tokens) = call_as(&s, &s.token, Method::GET, "/rekey/tokens", None).await;
    assert!(tokens.to_string().contains("\"revoked\":true"));
    assert!(
        !tokens.to_string().contains("rkt_"),
        "listed tokens never show the token"
    );
}

async fn role_assignments_follow_azures_shape_and_checks() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (principal, _) =
        token_with_role(&s, "Reader", &format!("{}/resourceGroups/rg", s.sub_path())).await;
    let (_, list) = s
        .call(Method::GET, &format!("{}/providers/Microsoft.Authorization/roleAssignments?api-version={AUTHZ}&$filter=principalId eq '{principal}'", s.sub_path()), None)
        .await;
    let a = &list["value"][0];
    assert_eq!(a["type"], "Microsoft.Authorization/roleAssignments");
    assert_eq!(a["properties"]["principalId"], principal);
    assert!(a["properties"]["roleDefinitionId"]
        .as_str()
        .unwrap()
        .ends_with("/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"));
    assert!(a["properties"]["scope"]
        .as_str()
        .unwrap()
        .ends_with("/resourceGroups/rg"));
    let (_, defs) = s
        .call(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Authorization/roleDefinitions?api-version={AUTHZ}",
                s.sub_path()
            ),
            None,
        )
        .await;
    let names: Vec<_> = defs["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["properties"]["roleName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ROLES);
    let base = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments",
        s.sub_path()
    );
    for (body, code) in [
        (
            json!({"properties": {"roleDefinitionId": uuid::Uuid::new_v4().to_string(), "principalId": principal}}),
            "RoleDefinitionDoesNotExist",
        ),
        (
            json!({"properties": {"roleDefinitionId": "acdd72a7-3385-48ef-bd42-f606fba81ae7", "principalId": uuid::Uuid::new_v4().to_string()}}),
            "PrincipalNotFound",
        ),
    ] {
        let (status, resp) = s
            .call(
                Method::PUT,
                &format!("{base}/{}?api-version={AUTHZ}", uuid::Uuid::new_v4()),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!((status, resp["error"]["code"].as_str()), (400, Some(code)));
    }
    let (status, resp) = s
        .call(
            Method::PUT,
            &format!("{base}/not-a-guid?api-version={AUTHZ}"),
            Some("{}"),
        )
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (400, Some("InvalidRoleAssignmentId"))
    );
    let id = a["name"].as_str().unwrap();
    let one = format!("{}/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/{id}?api-version={AUTHZ}", s.sub_path());
    assert_eq!(s.call(Method::GET, &one, None).await.0, 200);
    assert_eq!(s.call(Method::DELETE, &one, None).await.0, 200);
    assert_eq!(s.call(Method::GET, &one, None).await.0, 404);
}

async fn the_audit_log_records_who_did_what_and_detects_tampering() {
    let mut s = TestServer::start().await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let (_, keys) = s.list_keys("rg", "acct").await;
    let (_, regenerated) = s.regenerate("rg", "acct", "Key1").await;
    let (_, reader) = token_with_role(&s, "Reader", &s.sub_path()).await;
    let denied = call_as(
        &s,
        &reader,
        Method::POST,
        &format!(
            "{}/listKeys?api-version={CS_VERSION}",
            s.account_path("rg", "acct")
        ),
        None,
    )
    .await;
    assert_eq!(denied.0, 403);

    let since = "2000-01-01T00:00:00Z";
    let (status, log) = s
        .call(Method::GET, &format!("{}/providers/Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01&$filter=eventTimestamp ge '{since}'", s.sub_path()), None)
        .await;
    assert_eq!(status, 200, "{log}");
    let events = log["value"].as_array().unwrap();
    let has = |action: &str, result: &str| {
        events
            .iter()
            .any(|e| e["operationName"]["value"] == action && e["status"]["value"] == result)
    };
    assert!(has(
        "Microsoft.CognitiveServices/accounts/listKeys/action",
        "Succeeded"
    ));
    assert!(has(
        "Microsoft.CognitiveServices/accounts/regenerateKey/action",
        "Succeeded"
    ));
    assert!(has(
        "Microsoft.CognitiveServices/accounts/write",
        "Succeeded"
    ));
    assert!(has(
        "Microsoft.Authorization/roleAssignments/write",
        "Succeeded"
    ));
    assert!(has(
        "Microsoft.CognitiveServices/accounts/listKeys/action",
        "Denied"
    ));
    let e = &events[0];
    for field in ["caller", "correlationId", "eventTimestamp", "resourceId"] {
        assert!(e[field].is_string(), "{field}: {e}");
    }
    assert_eq!(e["httpRequest"]["clientIpAddress"], "127.0.0.1");
    let text = log.to_string();
    for secret in [&keys["key1"], &keys["key2"], &regenerated["key1"]] {
        assert!(
            !text.contains(secret.as_str().unwrap()),
            "no key in the audit log"
        );
    }
    assert!(
        !text.contains(&s.token) && !text.contains(&reader),
        "no token in the audit log"
    );

    let (_, check) = s.call(Method::GET, "/rekey/audit/verify", None).await;
    assert_eq!(check["intact"], true, "{check}");
    let records = check["records"].as_u64().unwrap();
    assert!(records >= 6);

    // Edit one record directly in the database; the chain check names it.
    s.stop();
    s.sql_execute("UPDATE audit_log SET result = 'Succeeded' WHERE result = 'Denied'")
        .await;
    let tampered = s
        .sql_i64(
            "SELECT seq FROM audit_log WHERE action LIKE '%listKeys%' ORDER BY seq DESC LIMIT 1",
        )
        .await;
    s.kill_and_restart();
    let (_, check) = s.call(Method::GET, "/rekey/audit/verify", None).await;
    assert_eq!(check["intact"], false, "{check}");
    assert_eq!(check["firstBrokenSeq"], tampered);
    // A reader may not check the chain.
    assert_eq!(
        call_as(&s, &reader, Method::GET, "/rekey/audit/verify", None)
            .await
            .0,
        403
    );
}

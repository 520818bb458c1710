//! Attacks on access control and on the data at rest, each stopped: assignments that outlive their
//! scope, rewritten assignments, existence oracles for callers without rights, web sign-ins that
//! push other people's sessions out, key switches sent in another letter case, and a database
//! that other local users can read.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::header::COOKIE;
use reqwest::Method;
use serde_json::{json, Value};

use crate::access::{call_as, token_with_role};
use crate::dataplane::{cosmos_auth, http_date};
use crate::helpers::*;
use crate::web::{sign_in, Session};

crate::backend_tests!(
    a_recreated_group_or_resource_is_not_covered_by_the_deleted_ones_assignments,
    an_assignment_id_cannot_be_rewritten_with_another_role_or_principal,
    a_caller_without_rights_gets_the_same_refusal_whether_a_scope_exists,
    signing_in_again_and_again_never_signs_another_principal_out,
    key_switches_sent_in_another_letter_case_turn_keys_off,
    the_data_directory_and_database_files_are_private_whatever_the_umask,
);

const AUTHZ: &str = "2022-04-01";
const QUANTUM: &str = "2023-11-13-preview";
const COSMOS: &str = "2026-03-15";
const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

fn group_path(s: &TestServer, group: &str) -> String {
    format!(
        "{}/resourcegroups/{group}?api-version={RG_VERSION}",
        s.sub_path()
    )
}

async fn a_recreated_group_or_resource_is_not_covered_by_the_deleted_ones_assignments() {
    let s = TestServer::start().await;
    s.create_group("doomed").await;
    s.create_account("doomed", "acct").await;
    s.create_group("keep").await;
    s.create_account("keep", "acct").await;
    let (reader_id, reader) = token_with_role(
        &s,
        "Reader",
        &format!("{}/resourceGroups/doomed", s.sub_path()),
    )
    .await;
    let (_, operator) =
        token_with_role(&s, "Key Operator", &s.account_path("doomed", "acct")).await;
    let (_, keeper) = token_with_role(&s, "Key Operator", &s.account_path("keep", "acct")).await;
    let list_keys = |group: &str, name: &str| {
        format!(
            "{}/listKeys?api-version={CS_VERSION}",
            s.account_path(group, name)
        )
    };
    assert_eq!(
        call_as(&s, &reader, Method::GET, &group_path(&s, "doomed"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call_as(
            &s,
            &operator,
            Method::POST,
            &list_keys("doomed", "acct"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call_as(&s, &keeper, Method::POST, &list_keys("keep", "acct"), None)
            .await
            .0,
        200
    );

    // The group goes, and with it its resource and every assignment at or below it.
    assert_eq!(
        s.call(Method::DELETE, &group_path(&s, "doomed"), None)
            .await
            .0,
        200
    );
    // So does a resource deleted on its own.
    assert_eq!(
        s.call(
            Method::DELETE,
            &format!(
                "{}?api-version={CS_VERSION}",
                s.account_path("keep", "acct")
            ),
            None
        )
        .await
        .0,
        200
    );
    let (_, left) = s
        .call(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments?api-version={AUTHZ}&$filter=principalId eq '{reader_id}'",
                s.sub_path()
            ),
            None,
        )
        .await;
    assert_eq!(left["value"], json!([]), "{left}");

    // Someone else creates the same names, in another letter case: the old assignees get nothing.
    s.create_group("DOOMED").await;
    s.create_account("DOOMED", "ACCT").await;
    s.create_account("keep", "Acct").await;
    let (status, body) = call_as(&s, &reader, Method::GET, &group_path(&s, "DOOMED"), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("AuthorizationFailed"))
    );
    let (status, _) = call_as(
        &s,
        &operator,
        Method::POST,
        &list_keys("DOOMED", "ACCT"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call_as(&s, &keeper, Method::POST, &list_keys("keep", "Acct"), None).await;
    assert_eq!(status, 403);
}

async fn an_assignment_id_cannot_be_rewritten_with_another_role_or_principal() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let scope = format!("{}/resourceGroups/rg", s.sub_path());
    let mut principals = Vec::new();
    let mut tokens = Vec::new();
    for name in ["first", "second"] {
        let (_, created) = call_as(
            &s,
            &s.token,
            Method::POST,
            "/rekey/tokens",
            Some(json!({ "name": name })),
        )
        .await;
        principals.push(created["principalId"].as_str().unwrap().to_string());
        tokens.push(created["token"].as_str().unwrap().to_string());
    }
    let role = |id: &str| {
        format!(
            "{}/providers/Microsoft.Authorization/roleDefinitions/{id}",
            s.sub_path()
        )
    };
    let body = |role_id: &str, principal: &str| json!({"properties": {"roleDefinitionId": role(role_id), "principalId": principal}});
    let path = |id: &uuid::Uuid| {
        format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{id}?api-version={AUTHZ}"
        )
    };
    let id = uuid::Uuid::new_v4();
    let (status, created) = s
        .call(
            Method::PUT,
            &path(&id),
            Some(&body(READER, &principals[0]).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    // The same assignment again is accepted and changes nothing.
    let (status, again) = s
        .call(
            Method::PUT,
            &path(&id),
            Some(&body(READER, &principals[0]).to_string()),
        )
        .await;
    assert_eq!((status, &again), (200, &created));

    // Escalating the reader to Owner, or handing the assignment to someone else, is refused.
    for (role_id, principal) in [(OWNER, &principals[0]), (READER, &principals[1])] {
        let (status, refused) = s
            .call(
                Method::PUT,
                &path(&id),
                Some(&body(role_id, principal).to_string()),
            )
            .await;
        assert_eq!(
            (status, &refused["error"]["code"], &refused["error"]["message"]),
            (
                400,
                &json!("RoleAssignmentUpdateNotPermitted"),
                &json!("Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
            )
        );
    }
    let (_, stored) = s.call(Method::GET, &path(&id), None).await;
    assert_eq!(stored, created);
    let (status, _) = call_as(&s, &tokens[0], Method::DELETE, &group_path(&s, "rg"), None).await;
    assert_eq!(status, 403, "the first principal is still only a Reader");
    let (status, _) = call_as(&s, &tokens[1], Method::GET, &group_path(&s, "rg"), None).await;
    assert_eq!(status, 403, "the second principal was given nothing");

    // The same principal, role and scope under another name already exists.
    let (status, duplicate) = s
        .call(
            Method::PUT,
            &path(&uuid::Uuid::new_v4()),
            Some(&body(READER, &principals[0]).to_string()),
        )
        .await;
    assert_eq!(
        (
            status,
            &duplicate["error"]["code"],
            &duplicate["error"]["message"]
        ),
        (
            409,
            &json!("RoleAssignmentExists"),
            &json!("The role assignment already exists.")
        )
    );
}

/// A path's answer with the names the caller itself sent replaced, so two answers can be compared.
fn masked(body: &Value, sent: &[&str]) -> String {
    let mut text = body.to_string();
    for name in sent {
        text = text.replace(name, "{sent}");
    }
    text
}

async fn a_caller_without_rights_gets_the_same_refusal_whether_a_scope_exists() {
    let s = TestServer::start().await;
    s.create_group("present-group").await;
    s.create_account("present-group", "present-acct").await;
    s.create_group("mine").await;
    // Two strangers: one with no role at all, one with a role elsewhere.
    let (_, none) = call_as(
        &s,
        &s.token,
        Method::POST,
        "/rekey/tokens",
        Some(json!({"name": "nobody"})),
    )
    .await;
    let none = none["token"].as_str().unwrap().to_string();
    let (_, elsewhere) = token_with_role(
        &s,
        "Owner",
        &format!("{}/resourceGroups/mine", s.sub_path()),
    )
    .await;
    let missing_sub = uuid::Uuid::new_v4().to_string();
    let sub = s.subscription.clone();
    let cs = "providers/Microsoft.CognitiveServices/accounts";
    let assignments = "providers/Microsoft.Authorization/roleAssignments";
    let assignment = uuid::Uuid::new_v4();
    // Each path with {g} (a group), {a} (an account) or {s} (a subscription) to fill in.
    let paths: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/subscriptions/{{s}}/resourceGroups/{{g}}/{assignments}?api-version={AUTHZ}"), None),
        (Method::GET, format!("/subscriptions/{{s}}/resourceGroups/{{g}}/{assignments}/{assignment}?api-version={AUTHZ}"), None),
        (Method::DELETE, format!("/subscriptions/{{s}}/resourceGroups/{{g}}/{assignments}/{assignment}?api-version={AUTHZ}"), None),
        (
            Method::PUT,
            format!("/subscriptions/{{s}}/resourceGroups/{{g}}/{assignments}/{assignment}?api-version={AUTHZ}"),
            Some(json!({"properties": {"roleDefinitionId": OWNER, "principalId": uuid::Uuid::new_v4().to_string()}})),
        ),
        (Method::GET, format!("/subscriptions/{{s}}/resourceGroups/{{g}}/{cs}/{{a}}/{assignments}?api-version={AUTHZ}"), None),
        (Method::GET, format!("/subscriptions/{{s}}/resourceGroups/{{g}}/{cs}?api-version={CS_VERSION}"), None),
        (Method::GET, format!("/subscriptions/{{s}}/resourceGroups/{{g}}/{cs}/{{a}}?api-version={CS_VERSION}"), None),
        (Method::POST, format!("/subscriptions/{{s}}/resourceGroups/{{g}}/{cs}/{{a}}/listKeys?api-version={CS_VERSION}"), None),
        (Method::GET, format!("/subscriptions/{{s}}/resourcegroups/{{g}}?api-version={RG_VERSION}"), None),
        (Method::GET, format!("/subscriptions/{{s}}/providers/Microsoft.Authorization/roleDefinitions?api-version={AUTHZ}"), None),
        (Method::GET, format!("/subscriptions/{{s}}/providers/Microsoft.Authorization/roleDefinitions/{READER}?api-version={AUTHZ}"), None),
        (Method::GET, format!("/subscriptions/{{s}}/{assignments}?api-version={AUTHZ}"), None),
        (Method::GET, format!("/subscriptions/{{s}}/resourcegroups?api-version={RG_VERSION}"), None),
        (Method::GET, format!("/subscriptions/{{s}}/{cs}?api-version={CS_VERSION}"), None),
        (Method::GET, format!("/subscriptions/{{s}}?api-version={RG_VERSION}"), None),
        (Method::GET, "/subscriptions/{s}/providers/Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01".to_string(), None),
    ];
    for token in [&none, &elsewhere] {
        for (method, template, body) in &paths {
            let fill = |s: &str, g: &str, a: &str| {
                template
                    .replace("{s}", s)
                    .replace("{g}", g)
                    .replace("{a}", a)
            };
            // The group and account exist or not; where the path names only a subscription, it
            // exists or not.
            let by_group = template.contains("{g}");
            if token == &elsewhere && !by_group {
                // A role in the subscription (below it) rightly shows that the subscription exists.
                continue;
            }
            let (present, absent) = if by_group {
                (
                    fill(&sub, "present-group", "present-acct"),
                    fill(&sub, "absent-group", "absent-acct"),
                )
            } else {
                (fill(&sub, "", ""), fill(&missing_sub, "", ""))
            };
            let (status_p, body_p) =
                call_as(&s, token, method.clone(), &present, body.clone()).await;
            let (status_a, body_a) =
                call_as(&s, token, method.clone(), &absent, body.clone()).await;
            assert_eq!(
                (status_p, status_a),
                (403, 403),
                "{method} {present}: {body_p} / {absent}: {body_a}"
            );
            let sent = [
                "present-group",
                "present-acct",
                "absent-group",
                "absent-acct",
                &sub,
                &missing_sub,
            ];
            assert_eq!(
                masked(&body_p, &sent),
                masked(&body_a, &sent),
                "{method} {template}"
            );
        }
    }
    // The owner is told what is missing.
    let (status, _) = s
        .call(
            Method::GET,
            &format!("/subscriptions/{sub}/resourceGroups/absent-group/{assignments}?api-version={AUTHZ}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

async fn signed_in(s: &TestServer, session: &Session) -> bool {
    let resp = s
        .client
        .get(s.url("/web/session"))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap();
    resp.json::<Value>().await.unwrap()["signedIn"] == true
}

/// The most web sessions one principal keeps (`web::session::MAX_SESSIONS_PER_PRINCIPAL`).
const SESSIONS_PER_PRINCIPAL: usize = 20;

async fn signing_in_again_and_again_never_signs_another_principal_out() {
    let s = TestServer::start().await;
    let a = sign_in(&s, &s.token).await;
    // B has no role at all; signing in needs none.
    let (_, b) = call_as(
        &s,
        &s.token,
        Method::POST,
        "/rekey/tokens",
        Some(json!({"name": "b"})),
    )
    .await;
    let b = b["token"].as_str().unwrap();
    let mut b_sessions = Vec::new();
    for _ in 0..SESSIONS_PER_PRINCIPAL + 5 {
        b_sessions.push(sign_in(&s, b).await);
    }
    assert!(signed_in(&s, &a).await, "A's session still works");
    let (oldest, newest) = b_sessions.split_at(5);
    for session in oldest {
        assert!(!signed_in(&s, session).await, "B's oldest sessions ended");
    }
    for session in newest {
        assert!(signed_in(&s, session).await, "B's newest sessions work");
    }
}

async fn key_switches_sent_in_another_letter_case_turn_keys_off() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let data_status = |resp: reqwest::Response| async move {
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    };

    // Cognitive Services: created with `DisableLocalAuth`.
    let acct = format!("{}?api-version={CS_VERSION}", s.account_path("rg", "acct"));
    let (status, created) = s
        .call(
            Method::PUT,
            &acct,
            Some(r#"{"location":"westus","kind":"TextAnalytics","sku":{"name":"S0"},"properties":{"DisableLocalAuth":true}}"#),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (_, keys) = s.list_keys("rg", "acct").await;
    let endpoint = created["properties"]["endpoint"].as_str().unwrap();
    let resp = s
        .client
        .get(endpoint)
        .header("Ocp-Apim-Subscription-Key", keys["key1"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let (status, body) = data_status(resp).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("AuthenticationTypeDisabled")),
        "{body}"
    );
    let (_, shown) = s.call(Method::GET, &acct, None).await;
    assert_eq!(shown["properties"]["disableLocalAuth"], true);
    assert!(
        shown["properties"].get("DisableLocalAuth").is_none(),
        "{shown}"
    );
    // Two spellings of one switch cannot be told apart: refused, nothing changes.
    let (status, refused) = s
        .call(
            Method::PATCH,
            &acct,
            Some(r#"{"properties":{"disableLocalAuth":false,"DISABLELOCALAUTH":true}}"#),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("InvalidRequestContent"))
    );
    assert_eq!(s.call(Method::GET, &acct, None).await.1, shown);

    // Quantum: patched with `ApiKeyEnabled`.
    let ws = format!(
        "{}/resourceGroups/rg/providers/Microsoft.Quantum/workspaces/ws1?api-version={QUANTUM}",
        s.sub_path()
    );
    let (_, workspace) = s
        .call(Method::PUT, &ws, Some(r#"{"location":"westus"}"#))
        .await;
    let (_, qkeys) = s
        .call(
            Method::POST,
            &ws.replace("?api-version", "/listKeys?api-version"),
            None,
        )
        .await;
    let qurl = format!(
        "{}v1.0/jobs",
        workspace["properties"]["endpointUri"].as_str().unwrap()
    );
    let qkey = qkeys["primaryKey"]["key"].as_str().unwrap();
    let quantum_call = || {
        s.client
            .get(&qurl)
            .header("x-ms-quantum-api-key", qkey)
            .send()
    };
    assert_eq!(quantum_call().await.unwrap().status(), 200);
    let (status, _) = s
        .call(
            Method::PATCH,
            &ws,
            Some(r#"{"properties":{"ApiKeyEnabled":false}}"#),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = data_status(quantum_call().await.unwrap()).await;
    assert_eq!(status, 403, "{body}");
    let (_, shown) = s.call(Method::GET, &ws, None).await;
    assert_eq!(shown["properties"]["apiKeyEnabled"], false, "{shown}");
    assert!(
        shown["properties"].get("ApiKeyEnabled").is_none(),
        "{shown}"
    );

    // Cosmos DB: created with `disablelocalauth`.
    let docdb = format!(
        "{}/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/docdb1?api-version={COSMOS}",
        s.sub_path()
    );
    let (status, account) = s
        .call(
            Method::PUT,
            &docdb,
            Some(r#"{"location":"westus","properties":{"databaseAccountOfferType":"Standard","locations":[{"locationName":"westus"}],"disablelocalauth":true}}"#),
        )
        .await;
    assert_eq!(status, 200, "{account}");
    let (_, ckeys) = s
        .call(
            Method::POST,
            &docdb.replace("?api-version", "/listKeys?api-version"),
            None,
        )
        .await;
    let date = http_date(0);
    let resp = s
        .client
        .get(account["properties"]["documentEndpoint"].as_str().unwrap())
        .header(
            "authorization",
            cosmos_auth(
                ckeys["primaryMasterKey"].as_str().unwrap(),
                "GET",
                "",
                "",
                &date,
            ),
        )
        .header("x-ms-date", date)
        .header("x-ms-version", "2018-12-31")
        .send()
        .await
        .unwrap();
    let (status, body) = data_status(resp).await;
    assert_eq!(status, 403, "{body}");
    let (_, shown) = s.call(Method::GET, &docdb, None).await;
    assert_eq!(shown["properties"]["disableLocalAuth"], true, "{shown}");
}

/// Starts rekeyd in `root` (data in `root/data`, log `root/rekeyd.log`) under umask 022 and waits
/// until it is ready; stopped when dropped (also when an assertion fails).
fn start_under_umask_022(root: &Path, database_url: Option<&str>) -> rekey_testkit::Rekeyd {
    let mut options = rekey_testkit::process::Options {
        umask: Some(0o022),
        ..Default::default()
    };
    if let Some(url) = database_url {
        options.env.push(("REKEY_DATABASE_URL".into(), url.into()));
    }
    rekey_testkit::Rekeyd::start(Path::new(env!("CARGO_BIN_EXE_rekeyd")), root, options)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

async fn the_data_directory_and_database_files_are_private_whatever_the_umask() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let log = root.path().join("rekeyd.log");
    let database = match Backend::current() {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create(&postgres_admin_url().unwrap()).await),
    };
    let url = database.as_ref().map(|d| d.url.as_str());
    let mut files = vec!["master.key", "bootstrap.json"];
    if database.is_none() {
        files.extend(["rekey.db", "rekey.db-wal", "rekey.db-shm"]);
    }
    let check = |when: &str| {
        assert_eq!(mode(&data), 0o700, "{when}: the data directory");
        for file in &files {
            assert_eq!(mode(&data.join(file)), 0o600, "{when}: {file}");
        }
    };

    let first = start_under_umask_022(root.path(), url);
    check("first start");
    drop(first);

    // A data directory left readable by others (by an older rekeyd, or by hand) is tightened.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in &files {
        let path = data.join(file);
        if file.starts_with("rekey.db") && path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let restarted = start_under_umask_022(root.path(), url);
    check("restart");
    drop(restarted);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("made the data directory accessible to rekeyd's user only"),
        "{text}"
    );
    drop(database);
}

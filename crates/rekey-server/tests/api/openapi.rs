//! `/openapi.json` describes exactly what is served.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

crate::backend_tests!(every_documented_operation_is_served,);

async fn every_documented_operation_is_served() {
    let s = TestServer::start().await;
    let doc: Value = s
        .client
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{subscriptionId}", &s.subscription)
            .replace("{resourceGroupName}", "rg")
            .replace("{accountName}", "acct")
            .replace("{workspaceName}", "ws1")
            .replace("{location}", "westus")
            .replace("{operationId}", "00000000-0000-4000-8000-000000000000");
        for method in item.as_object().unwrap().keys() {
            let m: Method = method.to_uppercase().parse().unwrap();
            let url = s.url(&format!("{concrete}?api-version=2000-01-01"));
            let resp = s
                .client
                .request(m.clone(), url)
                .bearer_auth(&s.token)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            // A route that exists answers with its own checks (here: the bad api-version), never the
            // router's fallbacks.
            assert!(
                body["error"]["code"] != "NotFound" && body["error"]["code"] != "MethodNotAllowed",
                "{method} {path} is documented but not served: {status} {body}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "checked {checked} operations");
    for op in [
        "Microsoft.CognitiveServices/accounts/{accountName}/regenerateKey",
        "resourcegroups/{resourceGroupName}",
    ] {
        assert!(paths.keys().any(|p| p.ends_with(op)), "{op} is documented");
    }
}

/// Quantum's regenerate body and Cognitive Services' keys were both called `ApiKeys`; the later one
/// replaced the other, so `listKeys` of an account was documented as `{"keys":[…]}`.
#[tokio::test]
async fn each_type_documents_its_own_key_bodies() {
    let s = TestServer::start().await;
    let doc: Value = s
        .client
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schema_of = |path_suffix: &str, status: &str| {
        let (_, item) = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(p, _)| p.ends_with(path_suffix))
            .unwrap_or_else(|| panic!("{path_suffix} is documented"));
        let reference = item["post"]["responses"][status]["content"]["application/json"]["schema"]
            ["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{path_suffix} {status} has a body schema"))
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        doc["components"]["schemas"][&reference].clone()
    };
    let cs = schema_of("accounts/{accountName}/listKeys", "200");
    assert_eq!(cs["required"], serde_json::json!(["key1", "key2"]), "{cs}");
    let regenerate_body = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(p, _)| p.ends_with("workspaces/{workspaceName}/regenerateKey"))
        .map(|(_, item)| {
            item["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].clone()
        })
        .unwrap();
    assert_eq!(regenerate_body, "#/components/schemas/WorkspaceApiKeys");
}

async fn fetch_document(s: &TestServer) -> Value {
    s.client
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Operation ids name one operation each (the page's three files once shared `Web_Asset`).
#[tokio::test]
async fn operation_ids_are_unique() {
    let s = TestServer::start().await;
    let doc = fetch_document(&s).await;
    let mut seen = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(seen.insert(id.to_string()), "{method} {path}: {id} again");
        }
    }
}

/// The access routes state what their handlers check: api-versions, the GUID of an assignment, the
/// rules of a token's body; the OAuth routes name this server's tenant and scope.
#[tokio::test]
async fn access_and_oauth_routes_document_what_they_check() {
    use rekey_server::rules;
    let s = TestServer::start().await;
    let doc = fetch_document(&s).await;
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();
    let param = |op: &Value, name: &str| {
        op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is documented"))
            .clone()
    };
    let put = op(
        "/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}",
        "put",
    );
    assert!(param(&put, "api-version")["schema"]["enum"]
        .as_array()
        .unwrap()
        .contains(&json!("2022-04-01")));
    assert_eq!(
        param(&put, "roleAssignmentName")["schema"]["pattern"],
        rules::GUID.pattern()
    );
    let token_body = &doc["components"]["schemas"]["TokenCreate"]["properties"];
    assert_eq!(token_body["name"]["pattern"], rules::TOKEN_NAME.pattern());
    assert_eq!(token_body["name"]["maxLength"], 100);
    assert_eq!(
        token_body["expiresIn"]["pattern"],
        rules::EXPIRES_IN.pattern()
    );

    let tenant: uuid::Uuid = serde_json::from_str::<Value>(
        &std::fs::read_to_string(s.data_dir().join("bootstrap.json")).unwrap(),
    )
    .unwrap()["tenantId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let token = op("/{tenantId}/oauth2/v2.0/token", "post");
    let tenant_rule = rules::Rule::new(
        param(&token, "tenantId")["schema"]["pattern"]
            .as_str()
            .unwrap(),
    );
    assert!(tenant_rule.matches(&tenant.to_string().to_uppercase()));
    assert!(!tenant_rule.matches(&uuid::Uuid::new_v4().to_string()));
    let scope = doc["components"]["schemas"]["OAuthTokenRequest"]["properties"]["scope"]["pattern"]
        .as_str()
        .unwrap();
    assert!(rules::Rule::new(scope).matches(&format!("{}/.default", s.base)));
    assert!(token["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
}

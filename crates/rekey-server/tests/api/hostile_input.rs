//! Regression tests for bugs the reliability tools found (schemathesis, cargo-fuzz, the crash and
//! linearizability checkers; see docs/reliability.md): each test replays the input that once broke
//! rekeyd and states what must happen instead.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

const COSMOS: &str = "2026-03-15";

fn cosmos_body(location: &str) -> String {
    json!({
        "location": location,
        "kind": "GlobalDocumentDB",
        "properties": {
            "databaseAccountOfferType": "Standard",
            "locations": [{"locationName": "westus", "failoverPriority": 0}]
        }
    })
    .to_string()
}

/// A control character in `location` used to reach the `Azure-AsyncOperation` header of a Cosmos DB
/// create, where building the header panicked: the client got no answer although the account had
/// been stored, and every later delete or regeneration of it panicked the same way.
#[tokio::test]
async fn a_location_that_cannot_go_into_a_url_is_refused_and_nothing_is_stored() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let path = format!(
        "{}/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/db1?api-version={COSMOS}",
        s.sub_path()
    );
    for location in ["west\u{1}us", "x\u{7f}", "a/b?c", "wést"] {
        let (status, body) = s
            .call(Method::PUT, &path, Some(&cosmos_body(location)))
            .await;
        assert_eq!(status, 400, "{location:?}: {body}");
        assert_eq!(body["error"]["code"], "InvalidResourceLocation", "{body}");
        let (status, _) = s.call(Method::GET, &path, None).await;
        assert_eq!(status, 404, "{location:?} must not have been stored");
    }
    let (status, body) = s
        .call(Method::PUT, &path, Some(&cosmos_body("West US")))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn every_type_and_resource_groups_refuse_a_bad_location() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let group = format!(
        "{}/resourcegroups/rg2?api-version={RG_VERSION}",
        s.sub_path()
    );
    let (status, body) = s
        .call(Method::PUT, &group, Some(r#"{"location":"west\u0001us"}"#))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("InvalidResourceLocation")),
        "{body}"
    );
    let account = format!("{}?api-version={CS_VERSION}", s.account_path("rg", "acct"));
    let (status, body) = s
        .call(
            Method::PUT,
            &account,
            Some(r#"{"location":"","kind":"TextAnalytics","sku":{"name":"S0"}}"#),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("LocationRequired")),
        "{body}"
    );
    let workspace = format!(
        "{}/resourceGroups/rg/providers/Microsoft.Quantum/workspaces/ws1?api-version=2023-11-13-preview",
        s.sub_path()
    );
    let (status, body) = s
        .call(Method::PUT, &workspace, Some(r#"{"location":"east/us"}"#))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("InvalidResourceLocation")),
        "{body}"
    );
}

/// schemathesis sent `failoverPriority` past 2^63 and it was stored as sent; Azure's is a 32-bit
/// integer, so anything else is refused.
#[tokio::test]
async fn a_failover_priority_that_is_not_a_32_bit_integer_is_refused() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let path = format!(
        "{}/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/db1?api-version={COSMOS}",
        s.sub_path()
    );
    for priority in ["9223372036854775808", "-1", "\"0\"", "0.5"] {
        let body = cosmos_body("westus").replace(
            r#""failoverPriority":0"#,
            &format!(r#""failoverPriority":{priority}"#),
        );
        let (status, answer) = s.call(Method::PUT, &path, Some(&body)).await;
        assert_eq!(status, 400, "{priority}: {answer}");
        assert_eq!(answer["error"]["code"], "InvalidParameter", "{answer}");
    }
    let (status, _) = s.call(Method::GET, &path, None).await;
    assert_eq!(status, 404, "nothing was stored");
}

/// schemathesis sent `[{}]` to PATCH a resource group: serde builds a struct from a JSON array (its
/// fields in order), so it was read as `{"tags":{}}` and wiped the group's tags with 200. A
/// create from `["westus"]` made a group.
#[tokio::test]
async fn array_bodies_are_refused_where_an_object_is_expected() {
    let s = TestServer::start().await;
    let group = format!(
        "{}/resourcegroups/rg?api-version={RG_VERSION}",
        s.sub_path()
    );
    let (status, _) = s
        .call(
            Method::PUT,
            &group,
            Some(r#"{"location":"westus","tags":{"keep":"me"}}"#),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = s.call(Method::PATCH, &group, Some("[{}]")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("InvalidRequestContent")),
        "{body}"
    );
    let (_, shown) = s.call(Method::GET, &group, None).await;
    assert_eq!(
        shown["tags"],
        json!({"keep": "me"}),
        "the tags are untouched"
    );

    let other = format!(
        "{}/resourcegroups/rg2?api-version={RG_VERSION}",
        s.sub_path()
    );
    let (status, _) = s.call(Method::PUT, &other, Some(r#"["westus"]"#)).await;
    assert_eq!(status, 400);
    let (status, _) = s.call(Method::GET, &other, None).await;
    assert_eq!(status, 404, "no group was made");

    let sub = format!(
        "/subscriptions/{}?api-version={RG_VERSION}",
        "00000000-0000-4000-8000-0000000000aa"
    );
    let (status, body) = s.call(Method::PUT, &sub, Some(r#"["name"]"#)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("InvalidRequestContent")),
        "{body}"
    );
}

/// Once `/openapi.json` stated the rules of `POST /rekey/tokens`, schemathesis sent what they
/// forbid: control characters in the name, a name of 101 characters whose first is a space (the
/// length was counted after trimming), lifetimes with a sign, a leading zero or surrounding space,
/// and the body as an array (read as the struct's fields in order). All were taken.
#[tokio::test]
async fn token_bodies_outside_the_documented_rules_are_refused() {
    let s = TestServer::start().await;
    let long = format!(" {}", "x".repeat(100));
    let refused = [
        json!({"name": ""}),
        json!({"name": " \u{3000} "}),
        json!({"name": "ci\ndeploy"}),
        json!({"name": "bell\u{7}"}),
        json!({"name": long}),
        json!({"name": "ci", "expiresIn": "+7d"}),
        json!({"name": "ci", "expiresIn": "07d"}),
        json!({"name": "ci", "expiresIn": " 7d"}),
        json!({"name": "ci", "expiresIn": "3651d"}),
        json!({"name": "ci", "expiresIn": "0s"}),
        json!(["ci", "7d"]),
    ];
    for body in refused {
        let (status, answer) = s
            .call(Method::POST, "/rekey/tokens", Some(&body.to_string()))
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let (_, listed) = s.call(Method::GET, "/rekey/tokens", None).await;
    assert_eq!(
        listed["value"].as_array().unwrap().len(),
        1,
        "only the owner"
    );

    for (body, name) in [
        (json!({"name": " spaced "}), "spaced"),
        (
            json!({"name": "ten years", "expiresIn": "3650d"}),
            "ten years",
        ),
        (
            json!({"name": "in seconds", "expiresIn": "315360000s"}),
            "in seconds",
        ),
    ] {
        let (status, answer) = s
            .call(Method::POST, "/rekey/tokens", Some(&body.to_string()))
            .await;
        assert_eq!((status, &answer["name"]), (201, &json!(name)), "{answer}");
    }
}

/// A role assignment's body `[{…properties…}]` was read as `{"properties": {…}}` and made the
/// assignment.
#[tokio::test]
async fn a_role_assignment_body_must_be_an_object() {
    let s = TestServer::start().await;
    let (_, tokens) = s.call(Method::GET, "/rekey/tokens", None).await;
    let owner = tokens["value"][0]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
        s.sub_path(),
        uuid::Uuid::new_v4()
    );
    let properties =
        json!({"roleDefinitionId": "acdd72a7-3385-48ef-bd42-f606fba81ae7", "principalId": owner});
    let (status, body) = s
        .call(Method::PUT, &path, Some(&json!([properties]).to_string()))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("InvalidRequestContent")),
        "{body}"
    );
    assert_eq!(
        s.call(Method::GET, &path, None).await.0,
        404,
        "nothing assigned"
    );
    let (status, _) = s
        .call(
            Method::PUT,
            &path,
            Some(&json!({ "properties": properties }).to_string()),
        )
        .await;
    assert_eq!(status, 201);
}

/// The activity log's `$filter` is read exactly as documented: the forms clients send are taken,
/// and a time that is no instant (29 February of a common year, a leap second) is refused.
#[tokio::test]
async fn the_activity_log_filter_takes_the_documented_forms_only() {
    let s = TestServer::start().await;
    let path = |filter: &str| {
        format!(
            "{}/providers/Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01&$filter={}",
            s.sub_path(),
            filter.replace(' ', "%20").replace('+', "%2B")
        )
    };
    for taken in [
        "eventTimestamp ge '2026-01-01T00:00:00Z'",
        "eventTimestamp ge '2026-01-01T00:00:00.1234567+01:00' and eventTimestamp le '2026-02-01T00:00:00Z'",
        "resourceGroupName eq 'rg' and eventTimestamp ge 2024-02-29T00:00:00Z",
    ] {
        let (status, body) = s.call(Method::GET, &path(taken), None).await;
        assert_eq!(status, 200, "{taken}: {body}");
    }
    for refused in [
        "eventTimestamp ge '2026-02-29T00:00:00Z'",
        "eventTimestamp ge '2026-12-31T23:59:60Z'",
        "eventTimestamp le '2026-01-01T00:00:00Z'",
        "eventTimestamp ge 'yesterday'",
    ] {
        let (status, body) = s.call(Method::GET, &path(refused), None).await;
        assert_eq!(status, 400, "{refused}: {body}");
    }
}

//! Quantum workspaces and Cosmos DB accounts: their own answers, and Cosmos DB's operations.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

crate::backend_tests!(
    cosmos_regenerate_is_an_operation_that_succeeded_before_the_answer,
    cosmos_read_only_keys_answer_get_and_post,
    cosmos_delete_answers_202_then_204,
    cosmos_locations_carry_the_data_plane_endpoint_as_in_azure,
    bad_cosmos_and_quantum_input_gets_400_and_changes_nothing,
    quantum_regenerate_answers_204_and_moves_only_the_named_created_at,
);

const COSMOS: &str = "2026-03-15";
const QUANTUM: &str = "2023-11-13-preview";
const COSMOS_BODY: &str = r#"{"location":"West US","kind":"GlobalDocumentDB","properties":{"databaseAccountOfferType":"Standard","locations":[{"locationName":"West US","failoverPriority":0}]}}"#;

fn cosmos_path(s: &TestServer, name: &str) -> String {
    format!(
        "{}/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/{name}",
        s.sub_path()
    )
}

fn quantum_path(s: &TestServer, name: &str) -> String {
    format!(
        "{}/resourceGroups/rg/providers/Microsoft.Quantum/workspaces/{name}",
        s.sub_path()
    )
}

/// Sends a request and returns status, headers and JSON body.
async fn raw(
    s: &TestServer,
    method: Method,
    url: &str,
    body: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = s.client.request(method, url).bearer_auth(&s.token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn cosmos_keys(s: &TestServer, name: &str) -> Value {
    let (status, body) = s
        .call(
            Method::POST,
            &format!("{}/listKeys?api-version={COSMOS}", cosmos_path(s, name)),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn cosmos_regenerate_is_an_operation_that_succeeded_before_the_answer() {
    let mut s = TestServer::start().await;
    s.create_group("rg").await;
    let (status, headers, body) = raw(
        &s,
        Method::PUT,
        &s.url(&format!(
            "{}?api-version={COSMOS}",
            cosmos_path(&s, "docdb1")
        )),
        Some(COSMOS_BODY),
    )
    .await;
    assert_eq!(
        status, 200,
        "azure-mgmt-cosmosdb accepts only 200 here: {body}"
    );
    assert!(headers.contains_key("azure-asyncoperation"));
    assert_eq!(body["properties"]["provisioningState"], "Succeeded");

    let before = cosmos_keys(&s, "docdb1").await;
    let regen = s.url(&format!(
        "{}/regenerateKey?api-version={COSMOS}",
        cosmos_path(&s, "docdb1")
    ));
    let (status, headers, accepted) =
        raw(&s, Method::POST, &regen, Some(r#"{"keyKind":"secondary"}"#)).await;
    assert_eq!(status, 202);
    assert_eq!(
        accepted,
        serde_json::json!({"status": "Enqueued"}),
        "Azure's body for a queued operation"
    );
    let status_url = headers["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string();
    let result_url = headers["location"].to_str().unwrap().to_string();
    assert!(
        status_url.contains("/providers/Microsoft.DocumentDB/locations/westus/operationsStatus/"),
        "{status_url}"
    );
    // Already committed when the 202 was sent.
    let after = cosmos_keys(&s, "docdb1").await;
    assert_ne!(after["secondaryMasterKey"], before["secondaryMasterKey"]);
    for kind in [
        "primaryMasterKey",
        "primaryReadonlyMasterKey",
        "secondaryReadonlyMasterKey",
    ] {
        assert_eq!(after[kind], before[kind], "{kind}");
    }
    let (status, _, op) = raw(&s, Method::GET, &status_url, None).await;
    assert_eq!(
        (status, op["status"].as_str()),
        (200, Some("Succeeded")),
        "{op}"
    );
    // @azure/arm-cosmosdb's poller reads the final result here and accepts only 200, 201 or 202.
    let (status, _, result) = raw(&s, Method::GET, &result_url, None).await;
    assert_eq!(
        (status, result),
        (200, serde_json::json!({"status": "Succeeded"}))
    );

    // Another subscription's path does not find it; neither does a made-up id.
    let other_sub = "11111111-2222-3333-4444-555555555555";
    let (status, _) = s
        .call(
            Method::PUT,
            &format!("/subscriptions/{other_sub}?api-version=2022-12-01"),
            Some(r#"{"displayName":"other"}"#),
        )
        .await;
    assert_eq!(status, 201);
    let foreign = status_url.replace(&s.subscription, other_sub);
    assert_eq!(raw(&s, Method::GET, &foreign, None).await.0, 404);
    let op_id = status_url
        .split("/operationsStatus/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(op_id).unwrap().get_version_num(),
        4,
        "random, unguessable ids"
    );
    let guessed = status_url.replace(op_id, &uuid::Uuid::new_v4().to_string());
    assert_eq!(raw(&s, Method::GET, &guessed, None).await.0, 404);

    // Survives a crash.
    s.kill_and_restart();
    let status_url =
        status_url.replace(status_url.split("/subscriptions/").next().unwrap(), &s.base);
    let (status, _, op) = raw(&s, Method::GET, &status_url, None).await;
    assert_eq!((status, op["status"].as_str()), (200, Some("Succeeded")));
}

async fn cosmos_read_only_keys_answer_get_and_post() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    s.call(
        Method::PUT,
        &format!("{}?api-version={COSMOS}", cosmos_path(&s, "docdb1")),
        Some(COSMOS_BODY),
    )
    .await;
    let all = cosmos_keys(&s, "docdb1").await;
    for method in [Method::GET, Method::POST] {
        let (status, ro) = s
            .call(
                method,
                &format!(
                    "{}/readonlykeys?api-version={COSMOS}",
                    cosmos_path(&s, "docdb1")
                ),
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            ro["primaryReadonlyMasterKey"],
            all["primaryReadonlyMasterKey"]
        );
        assert!(ro.get("primaryMasterKey").is_none(), "read-only keys only");
    }
}

async fn cosmos_delete_answers_202_then_204() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let url = s.url(&format!(
        "{}?api-version={COSMOS}",
        cosmos_path(&s, "docdb1")
    ));
    raw(&s, Method::PUT, &url, Some(COSMOS_BODY)).await;
    let (status, headers, body) = raw(&s, Method::DELETE, &url, None).await;
    assert_eq!(status, 202);
    assert_eq!(body, serde_json::json!({"status": "Enqueued"}));
    assert!(headers.contains_key("azure-asyncoperation") && headers.contains_key("location"));
    assert_eq!(raw(&s, Method::DELETE, &url, None).await.0, 204);
}

async fn cosmos_locations_carry_the_data_plane_endpoint_as_in_azure() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let url = s.url(&format!(
        "{}?api-version={COSMOS}",
        cosmos_path(&s, "docdb1")
    ));
    let body = r#"{"location":"westus","properties":{"databaseAccountOfferType":"Standard","locations":[
        {"locationName":"East US","failoverPriority":1},{"locationName":"West US","failoverPriority":0}]}}"#;
    let (status, _, account) = raw(&s, Method::PUT, &url, Some(body)).await;
    assert_eq!(status, 200, "{account}");
    let props = &account["properties"];
    let endpoint = props["documentEndpoint"].as_str().unwrap();
    assert!(endpoint.contains("/data/"), "{endpoint}");
    for list in ["locations", "readLocations"] {
        let names: Vec<_> = props[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["locationName"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["West US", "East US"], "{list} by failover priority");
    }
    for l in props["locations"].as_array().unwrap() {
        assert_eq!(l["documentEndpoint"], endpoint, "{l}");
        assert_eq!(l["provisioningState"], "Succeeded", "{l}");
        assert_eq!(l["isZoneRedundant"], false, "{l}");
    }
    assert_eq!(props["locations"][0]["id"], "docdb1-westus");
    let writes = props["writeLocations"].as_array().unwrap();
    assert_eq!(writes.len(), 1, "one write region");
    assert_eq!(writes[0]["locationName"], "West US");
    assert_eq!(
        props["failoverPolicies"][1],
        serde_json::json!({"id": "docdb1-eastus", "locationName": "East US", "failoverPriority": 1})
    );

    // Sending back what was read stores none of the computed fields: a changed endpoint would
    // otherwise outlive the change.
    let mut echoed = account.clone();
    echoed["properties"]["locations"][0]["documentEndpoint"] = "http://stale.example/".into();
    echoed["properties"]["writeLocations"] = serde_json::json!([]);
    let (status, _, again) = raw(&s, Method::PUT, &url, Some(&echoed.to_string())).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["properties"], account["properties"]);
}

async fn bad_cosmos_and_quantum_input_gets_400_and_changes_nothing() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    for name in ["Upper", "ab", "under_score"] {
        let (status, body) = s
            .call(
                Method::PUT,
                &format!("{}?api-version={COSMOS}", cosmos_path(&s, name)),
                Some(COSMOS_BODY),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("InvalidResourceName")),
            "{name}"
        );
    }
    for name in ["ws-", "w", "ws_1"] {
        let (status, body) = s
            .call(
                Method::PUT,
                &format!("{}?api-version={QUANTUM}", quantum_path(&s, name)),
                Some(r#"{"location":"westus"}"#),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("InvalidResourceName")),
            "{name}"
        );
    }
    s.call(
        Method::PUT,
        &format!("{}?api-version={COSMOS}", cosmos_path(&s, "docdb1")),
        Some(COSMOS_BODY),
    )
    .await;
    let before = cosmos_keys(&s, "docdb1").await;
    let regen = format!(
        "{}/regenerateKey?api-version={COSMOS}",
        cosmos_path(&s, "docdb1")
    );
    for body in [Some(r#"{"keyKind":"tertiary"}"#), Some("{}"), None] {
        let (status, resp) = s.call(Method::POST, &regen, body).await;
        assert_eq!(status, 400, "{body:?}: {resp}");
    }
    assert_eq!(cosmos_keys(&s, "docdb1").await, before);
    let (status, body) = s
        .call(
            Method::PUT,
            &format!("{}?api-version={COSMOS}", cosmos_path(&s, "docdb2")),
            Some(r#"{"location":"westus","properties":{"databaseAccountOfferType":"Standard"}}"#),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("locations"),
        "{body}"
    );
}

async fn quantum_regenerate_answers_204_and_moves_only_the_named_created_at() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (status, ws) = s
        .call(
            Method::PUT,
            &format!("{}?api-version={QUANTUM}", quantum_path(&s, "ws1")),
            Some(r#"{"location":"westus"}"#),
        )
        .await;
    assert_eq!(status, 201, "{ws}");
    assert_eq!(ws["properties"]["apiKeyEnabled"], true);
    let list = format!("{}/listKeys?api-version={QUANTUM}", quantum_path(&s, "ws1"));
    let (_, before) = s.call(Method::POST, &list, None).await;
    assert!(before["primaryKey"]["key"]
        .as_str()
        .unwrap()
        .starts_with("rkqw_"));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, body) = s
        .call(
            Method::POST,
            &format!(
                "{}/regenerateKey?api-version={QUANTUM}",
                quantum_path(&s, "ws1")
            ),
            Some(r#"{"keys":["secondary"]}"#),
        )
        .await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, after) = s.call(Method::POST, &list, None).await;
    assert_eq!(after["primaryKey"], before["primaryKey"]);
    assert_ne!(after["secondaryKey"]["key"], before["secondaryKey"]["key"]);
    assert_ne!(
        after["secondaryKey"]["createdAt"],
        before["secondaryKey"]["createdAt"]
    );
    assert!(after["secondaryConnectionString"]
        .as_str()
        .unwrap()
        .contains(after["secondaryKey"]["key"].as_str().unwrap()));
}

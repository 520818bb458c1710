//! Listing and regenerating Cognitive Services keys, and what deleting does to them.

use std::collections::HashSet;

use reqwest::Method;

use crate::helpers::*;

crate::backend_tests!(
    regenerate_key1_leaves_key2_unchanged,
    key_name_and_path_keywords_are_case_insensitive,
    fifty_concurrent_regenerations_all_commit_and_the_last_one_wins,
    deleting_the_group_deletes_its_accounts_and_keys,
    accounts_are_listed_by_group_and_subscription_and_deleted,
    put_on_an_existing_account_updates_it_and_keeps_its_keys,
    owner_creates_further_subscriptions,
);

async fn regenerate_key1_leaves_key2_unchanged() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let (_, before) = s.list_keys("rg", "acct").await;
    assert_ne!(before["key1"], before["key2"]);
    assert!(before["key1"].as_str().unwrap().starts_with("rkcs_"));

    let (status, after) = s.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200, "{after}");
    assert_ne!(after["key1"], before["key1"]);
    assert_eq!(after["key2"], before["key2"]);
    let (_, listed) = s.list_keys("rg", "acct").await;
    assert_eq!(
        (&listed["key1"], &listed["key2"]),
        (&after["key1"], &after["key2"])
    );
}

async fn key_name_and_path_keywords_are_case_insensitive() {
    let s = TestServer::start().await;
    s.create_group("MyGroup").await;
    s.create_account("MyGroup", "MyAcct").await;
    let (_, before) = s.list_keys("mygroup", "myacct").await;
    // az sends key names in lower case; PowerShell in title case.
    let path = format!(
        "/SUBSCRIPTIONS/{}/RESOURCEGROUPS/mygroup/PROVIDERS/microsoft.cognitiveservices/ACCOUNTS/MYACCT/REGENERATEKEY?api-version={CS_VERSION}",
        s.subscription
    );
    let (status, after) = s
        .call(Method::POST, &path, Some(r#"{"keyName":"key2"}"#))
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["key1"], before["key1"]);
    assert_ne!(after["key2"], before["key2"]);
    // The stored name keeps its casing in ids.
    let (_, got) = s
        .call(
            Method::GET,
            &format!(
                "{}?api-version={CS_VERSION}",
                s.account_path("mygroup", "myacct")
            ),
            None,
        )
        .await;
    assert_eq!(got["name"], "MyAcct");
    assert!(got["id"].as_str().unwrap().ends_with(
        "/resourceGroups/MyGroup/providers/Microsoft.CognitiveServices/accounts/MyAcct"
    ));
}

async fn fifty_concurrent_regenerations_all_commit_and_the_last_one_wins() {
    let s = TestServer::start().await;
    fifty_regenerations_over(&[&s]).await;
}

/// 50 concurrent regenerations of one slot, sent round-robin to `nodes` (which share a store): each
/// commits, makes its own key and leaves the other slot alone, and exactly one of them is the key
/// that stays.
pub async fn fifty_regenerations_over(nodes: &[&TestServer]) {
    let s = nodes[0];
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let (_, before) = s.list_keys("rg", "acct").await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let node = nodes[i % nodes.len()];
        let url = node.url(&format!(
            "{}/regenerateKey?api-version={CS_VERSION}",
            node.account_path("rg", "acct")
        ));
        let (client, token) = (node.client.clone(), node.token.clone());
        tasks.spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .body(r#"{"keyName":"Key1"}"#)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        });
    }
    let results = tasks.join_all().await;
    let mut seen = HashSet::new();
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["key2"], before["key2"], "key2 must never change");
        seen.insert(body["key1"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 50, "each regeneration made its own key");

    for node in nodes {
        let (_, after) = node.list_keys("rg", "acct").await;
        let final_key1 = after["key1"].as_str().unwrap();
        assert_eq!(
            results
                .iter()
                .filter(|(_, b)| b["key1"] == final_key1)
                .count(),
            1
        );
        assert_eq!(after["key2"], before["key2"]);
    }
}

async fn deleting_the_group_deletes_its_accounts_and_keys() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let (status, _) = s
        .call(
            Method::DELETE,
            &format!(
                "{}/resourcegroups/rg?api-version={RG_VERSION}",
                s.sub_path()
            ),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = s.list_keys("rg", "acct").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "ResourceGroupNotFound");
    // Re-creating the group does not bring the old account back.
    s.create_group("rg").await;
    let (status, body) = s.list_keys("rg", "acct").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "ResourceNotFound");
}

async fn accounts_are_listed_by_group_and_subscription_and_deleted() {
    let s = TestServer::start().await;
    s.create_group("rg1").await;
    s.create_group("rg2").await;
    s.create_account("rg1", "a1").await;
    s.create_account("rg2", "a2").await;
    let list_path = format!(
        "{}/providers/Microsoft.CognitiveServices/accounts?api-version={CS_VERSION}",
        s.sub_path()
    );
    let (_, all) = s.call(Method::GET, &list_path, None).await;
    assert_eq!(all["value"].as_array().unwrap().len(), 2);
    let (_, one) = s
        .call(Method::GET, &format!("{}/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts?api-version={CS_VERSION}", s.sub_path()), None)
        .await;
    assert_eq!(one["value"][0]["name"], "a1");
    assert_eq!(one["value"].as_array().unwrap().len(), 1);

    let acct = format!("{}?api-version={CS_VERSION}", s.account_path("rg1", "a1"));
    assert_eq!(s.call(Method::DELETE, &acct, None).await.0, 200);
    assert_eq!(s.call(Method::DELETE, &acct, None).await.0, 204);
    assert_eq!(s.call(Method::GET, &acct, None).await.0, 404);
}

async fn put_on_an_existing_account_updates_it_and_keeps_its_keys() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let (_, keys) = s.list_keys("rg", "acct").await;
    let path = format!("{}?api-version={CS_VERSION}", s.account_path("rg", "acct"));
    let (status, body) = s
        .call(Method::PUT, &path, Some(r#"{"location":"westus","kind":"TextAnalytics","sku":{"name":"S1"},"tags":{"env":"test"}}"#))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sku"]["name"], "S1");
    let (status, body) = s
        .call(
            Method::PATCH,
            &path,
            Some(r#"{"properties":{"disableLocalAuth":true}}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["disableLocalAuth"], true);
    assert_eq!(body["tags"]["env"], "test");
    assert_eq!(s.list_keys("rg", "acct").await.1, keys);
}

async fn owner_creates_further_subscriptions() {
    let s = TestServer::start().await;
    let id = "11111111-2222-3333-4444-555555555555";
    let path = format!("/subscriptions/{id}?api-version=2022-12-01");
    let (status, body) = s
        .call(Method::PUT, &path, Some(r#"{"displayName":"team b"}"#))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["displayName"], "team b");
    let (_, list) = s
        .call(Method::GET, "/subscriptions?api-version=2022-12-01", None)
        .await;
    let ids: Vec<_> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["subscriptionId"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id) && ids.contains(&s.subscription.as_str()));
    // Groups in the new subscription work.
    let (status, _) = s
        .call(
            Method::PUT,
            &format!("/subscriptions/{id}/resourcegroups/rg?api-version={RG_VERSION}"),
            Some(r#"{"location":"eastus"}"#),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn list_keys_says_when_each_slot_was_made() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let (_, before) = s.list_keys("rg", "acct").await;
    let created = &before["x-rekey-createdAt"];
    assert!(
        created["key1"].is_string() && created["key2"].is_string(),
        "{before}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    s.regenerate("rg", "acct", "Key1").await;
    let (_, after) = s.list_keys("rg", "acct").await;
    assert_ne!(after["x-rekey-createdAt"]["key1"], created["key1"]);
    assert_eq!(after["x-rekey-createdAt"]["key2"], created["key2"]);
}

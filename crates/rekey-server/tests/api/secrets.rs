//! Secrets stay secret: not in the database (its files, or a dump) in any readable form, not in logs
//! at trace level, in text or JSON.

use base64::Engine as _;
use reqwest::Method;

use crate::helpers::*;

crate::backend_tests!(
    the_database_holds_no_key_or_token,
    trace_level_logs_hold_no_key_or_token,
    trace_level_json_logs_hold_no_key_or_token,
);

/// Every form in which a leaked secret could be recognised in a byte dump.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = vec![
        secret.as_bytes().to_vec(),
        b64.encode(secret).into_bytes(),
        hex::encode(secret).into_bytes(),
    ];
    // Also a distinctive middle part, in case a prefix was stripped.
    out.push(secret.as_bytes()[secret.len() / 4..secret.len() * 3 / 4].to_vec());
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Creates two accounts, lists and regenerates keys; returns every key value seen.
async fn scenario(s: &TestServer) -> Vec<String> {
    s.create_group("rg").await;
    let mut keys = Vec::new();
    for name in ["acct1", "acct2"] {
        s.create_account("rg", name).await;
        let (_, listed) = s.list_keys("rg", name).await;
        let (_, regenerated) = s.regenerate("rg", name, "Key2").await;
        for body in [listed, regenerated] {
            keys.push(body["key1"].as_str().unwrap().to_string());
            keys.push(body["key2"].as_str().unwrap().to_string());
        }
    }
    // A refused token must not be logged either.
    let resp = s
        .client
        .get(s.url("/subscriptions?api-version=2022-12-01"))
        .bearer_auth("rkt_WrongTokenThatMustNotAppearInLogs0000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        6,
        "two accounts, two keys each, one regenerated"
    );
    keys
}

async fn the_database_holds_no_key_or_token() {
    let mut s = TestServer::start().await;
    let keys = scenario(&s).await;
    s.stop();
    let dump = s.database_dump();
    assert!(dump.len() > 4096, "the database files were read");
    for secret in keys.iter().chain([&s.token]) {
        for form in forms(secret) {
            assert!(
                !contains(&dump, &form),
                "a secret is readable in the database files"
            );
        }
    }
}

async fn trace_level_logs_hold_no_key_or_token() {
    logs_hold_no_key_or_token(&[]).await;
}

async fn trace_level_json_logs_hold_no_key_or_token() {
    let log = logs_hold_no_key_or_token(&[("REKEY_LOG_FORMAT", "json")]).await;
    for line in log.lines() {
        let parsed = serde_json::from_str::<serde_json::Value>(line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
    }
}

/// Drives the scenario and its error paths at trace level with `env`; checks no secret is in the
/// log, in any form, and returns the log.
async fn logs_hold_no_key_or_token(env: &[(&str, &str)]) -> String {
    let mut s = TestServer::start_with("trace", env).await;
    let mut keys = scenario(&s).await;
    // Exercise the error paths too.
    let (_, resp) = s.regenerate("rg", "acct1", "Key9").await;
    assert_eq!(resp["error"]["code"], "InvalidParameter");
    let (_, listed) = s.list_keys("rg", "acct1").await;
    keys.push(listed["key1"].as_str().unwrap().to_string());
    s.kill_and_restart();
    let _ = s
        .call(
            Method::POST,
            &format!(
                "{}/listKeys?api-version={CS_VERSION}",
                s.account_path("rg", "acct2")
            ),
            None,
        )
        .await;
    s.stop();
    let log = s.log();
    assert!(log.lines().count() > 50, "trace logging was on");
    assert!(
        log.contains("bootstrap.json"),
        "the bootstrap file's path is logged"
    );
    let refused = "rkt_WrongTokenThatMustNotAppearInLogs0000000000".to_string();
    for secret in keys.iter().chain([&s.token, &refused]) {
        for form in forms(secret) {
            assert!(
                !contains(log.as_bytes(), &form),
                "a secret appears in the trace log"
            );
        }
    }
    log
}

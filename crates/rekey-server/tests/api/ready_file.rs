//! The ready file (`--ready-file`, `REKEY_READY_FILE`): what a harness waiting for rekeyd reads
//! instead of its log. It must name an address and token that work, be private, and never be an
//! earlier run's.

use std::path::Path;

use serde_json::Value;

use crate::helpers::*;

crate::backend_tests!(
    the_ready_file_names_the_address_and_owner_token_and_only_its_owner_can_read_it,
    a_restart_rewrites_the_ready_file_with_the_new_address_and_the_same_token,
);

fn read_ready(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn the_ready_file_names_the_address_and_owner_token_and_only_its_owner_can_read_it() {
    let outside = tempfile::tempdir().unwrap();
    let path = outside.path().join("ready.json");
    let s = TestServer::start_with("info", &[("REKEY_READY_FILE", path.to_str().unwrap())]).await;
    let ready = read_ready(&path);
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(s.data_dir().join("bootstrap.json")).unwrap(),
    )
    .unwrap();
    for field in ["token", "subscriptionId", "tenantId", "principalId"] {
        assert_eq!(ready[field], boot[field], "{field}");
    }
    assert_eq!(ready["url"], s.base.as_str());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600,
            "the ready file holds the owner token"
        );
    }
    // Written whole and renamed into place: no temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ready.json"]);
    // What the file names is enough to use the API.
    let answer = s
        .client
        .get(format!(
            "{}/subscriptions?api-version=2022-12-01",
            ready["url"].as_str().unwrap()
        ))
        .bearer_auth(ready["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let subs: Value = answer.json().await.unwrap();
    assert_eq!(subs["value"][0]["subscriptionId"], ready["subscriptionId"]);
}

async fn a_restart_rewrites_the_ready_file_with_the_new_address_and_the_same_token() {
    let outside = tempfile::tempdir().unwrap();
    let path = outside.path().join("ready.json");
    let mut s =
        TestServer::start_with("info", &[("REKEY_READY_FILE", path.to_str().unwrap())]).await;
    let first = read_ready(&path);
    s.kill_and_restart();
    let second = read_ready(&path);
    assert_eq!(second["url"], s.base.as_str());
    assert_ne!(
        second["url"], first["url"],
        "the restart listens on a new port"
    );
    // The token comes from this node's bootstrap.json, checked against the store, not from a
    // bootstrap this start made.
    assert_eq!(second["token"], first["token"]);
    assert_eq!(second["subscriptionId"], first["subscriptionId"]);
}

/// No store is opened: the start fails on its master key, before anything backend-specific.
#[test]
fn a_start_that_fails_leaves_no_ready_file_from_an_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ready.json");
    std::fs::write(&path, r#"{"url":"http://127.0.0.1:1"}"#).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rekeyd"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--ready-file")
        .arg(&path)
        .env("REKEY_MASTER_KEY", "not a key")
        .env_remove("REKEY_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        !path.exists(),
        "a waiter must not take the earlier run's address for this one's"
    );
}

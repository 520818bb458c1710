//! What is acknowledged survives a crash.

use crate::helpers::*;

crate::backend_tests!(
    a_regenerated_key_survives_kill_9,
    restart_keeps_the_bootstrap_token_and_does_not_rewrite_it,
);

async fn a_regenerated_key_survives_kill_9() {
    let mut s = TestServer::start().await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let (status, regenerated) = s.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200);

    s.kill_and_restart();
    let (status, listed) = s.list_keys("rg", "acct").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        (&listed["key1"], &listed["key2"]),
        (&regenerated["key1"], &regenerated["key2"])
    );
}

async fn restart_keeps_the_bootstrap_token_and_does_not_rewrite_it() {
    let mut s = TestServer::start().await;
    let boot = s.data_dir().join("bootstrap.json");
    let first = std::fs::read_to_string(&boot).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&boot).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let key = s.data_dir().join("master.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    s.kill_and_restart();
    assert_eq!(std::fs::read_to_string(&boot).unwrap(), first);
    let (status, _) = s
        .call(
            reqwest::Method::GET,
            "/subscriptions?api-version=2022-12-01",
            None,
        )
        .await;
    assert_eq!(status, 200, "the same owner token still works");
}

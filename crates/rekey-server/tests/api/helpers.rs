//! Starts the real `rekeyd` binary (Cargo's own build of it) through `rekey_testkit`, on a free port
//! with a fresh data directory and a fresh database, once per backend ([`backend_tests!`]); adds the
//! calls the server's tests make again and again (groups, Cognitive Services accounts, keys).

use std::ops::{Deref, DerefMut};
use std::path::Path;

use serde_json::Value;

pub use rekey_testkit::{postgres_admin_url, postgres_wanted, Backend, TestDatabase};

pub const CS_VERSION: &str = "2025-09-01";
pub const RG_VERSION: &str = "2025-04-01";

/// The rekeyd Cargo built for these tests.
fn rekeyd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_rekeyd"))
}

/// A node started by [`rekey_testkit::TestServer`] from this package's rekeyd; everything the
/// testkit's handle offers (`base`, `token`, `call`, `join`, `kill_and_restart`, …) through `Deref`.
pub struct TestServer(rekey_testkit::TestServer);

impl Deref for TestServer {
    type Target = rekey_testkit::TestServer;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for TestServer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with_log_level("info").await
    }

    pub async fn start_with_log_level(level: &str) -> Self {
        Self::start_with(level, &[]).await
    }

    /// Starts with extra environment variables (rekeyd's settings), on the running test's backend.
    pub async fn start_with(level: &str, env: &[(&str, &str)]) -> Self {
        Self(rekey_testkit::TestServer::start_with(rekeyd(), level, env).await)
    }

    /// Starts a server on `database_url` (SQLite in the data directory when `None`); `database`, if
    /// given, is dropped with the server.
    pub async fn start_on(
        level: &str,
        env: &[(&str, &str)],
        database_url: Option<String>,
        database: Option<TestDatabase>,
    ) -> Self {
        Self(
            rekey_testkit::TestServer::start_on(rekeyd(), level, env, database_url, database).await,
        )
    }

    /// Another node on this server's PostgreSQL database (see [`rekey_testkit::TestServer::join`]).
    pub async fn join(&self, env: &[(&str, &str)]) -> TestServer {
        Self(self.0.join(env).await)
    }

    /// Points the account's data plane at `upstream` (the `x-rekey-upstream` extension).
    pub async fn forward_to(&self, group: &str, name: &str, upstream: &str) {
        let patch = format!(
            "{}?api-version={CS_VERSION}",
            self.account_path(group, name)
        );
        let body = serde_json::json!({"properties": {"x-rekey-upstream": upstream}}).to_string();
        let (status, answer) = self.call(reqwest::Method::PATCH, &patch, Some(&body)).await;
        assert_eq!(status, 200, "{answer}");
    }

    pub fn account_path(&self, group: &str, name: &str) -> String {
        format!(
            "{}/resourceGroups/{group}/providers/Microsoft.CognitiveServices/accounts/{name}",
            self.sub_path()
        )
    }

    pub async fn create_group(&self, group: &str) {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!(
                    "{}/resourcegroups/{group}?api-version={RG_VERSION}",
                    self.sub_path()
                ),
                Some(r#"{"location":"westus"}"#),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    pub async fn create_account(&self, group: &str, name: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("{}?api-version={CS_VERSION}", self.account_path(group, name)),
                Some(r#"{"location":"westus","kind":"TextAnalytics","sku":{"name":"S0"},"properties":{}}"#),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    pub async fn list_keys(&self, group: &str, name: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!(
                "{}/listKeys?api-version={CS_VERSION}",
                self.account_path(group, name)
            ),
            None,
        )
        .await
    }

    pub async fn regenerate(&self, group: &str, name: &str, key_name: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!(
                "{}/regenerateKey?api-version={CS_VERSION}",
                self.account_path(group, name)
            ),
            Some(&format!(r#"{{"keyName":"{key_name}"}}"#)),
        )
        .await
    }
}

/// Starts `count` nodes on one new PostgreSQL database at the same moment, sharing `master_key`
/// (hex), and waits until each is ready. None has been told which one is first.
pub async fn start_nodes_at_once(count: usize, master_key: &str) -> Vec<TestServer> {
    rekey_testkit::start_nodes_at_once(rekeyd(), count, master_key)
        .await
        .into_iter()
        .map(TestServer)
        .collect()
}

//! Starts the real `rekeyd` binary on a free port with a fresh data directory, and talks to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const CS_VERSION: &str = "2025-09-01";
pub const RG_VERSION: &str = "2025-04-01";

pub struct TestServer {
    pub base: String,
    pub token: String,
    pub subscription: String,
    pub dir: tempfile::TempDir,
    child: Child,
    pub client: reqwest::Client,
    log_level: String,
    env: Vec<(String, String)>,
}

fn wait_for_listen_line(log: &Path, skip: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text[skip.min(text.len())..]
            .lines()
            .find(|l| l.contains("rekeyd listening on "))
        {
            let url = line.rsplit("listening on ").next().unwrap().trim();
            return url.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "rekeyd did not start; log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with_log_level("info").await
    }

    pub async fn start_with_log_level(level: &str) -> Self {
        Self::start_with(level, &[]).await
    }

    /// Starts with extra environment variables (rekeyd's settings).
    pub async fn start_with(level: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, base) = spawn(dir.path(), level, &env);
        let boot: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("data/bootstrap.json")).unwrap(),
        )
        .unwrap();
        Self {
            base,
            token: boot["token"].as_str().unwrap().to_string(),
            subscription: boot["subscriptionId"].as_str().unwrap().to_string(),
            dir,
            child,
            client: reqwest::Client::new(),
            log_level: level.to_string(),
            env,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rekeyd.log")).unwrap_or_default()
    }

    /// SIGKILL, then start again on the same data directory (on a new port).
    pub fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let (child, base) = spawn(self.dir.path(), &self.log_level, &self.env);
        self.child = child;
        self.base = base;
    }

    /// The rekeyd process id (to pause it with SIGSTOP in tests).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn sub_path(&self) -> String {
        format!("/subscriptions/{}", self.subscription)
    }

    pub fn account_path(&self, group: &str, name: &str) -> String {
        format!(
            "{}/resourceGroups/{group}/providers/Microsoft.CognitiveServices/accounts/{name}",
            self.sub_path()
        )
    }

    /// Sends an authenticated request; returns status and parsed JSON body (Null when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, self.url(path_and_query))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
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

fn spawn(root: &Path, level: &str, env: &[(String, String)]) -> (Child, String) {
    let log_path = root.join("rekeyd.log");
    let skip = std::fs::metadata(&log_path)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rekeyd"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(root.join("data"))
        .env("RUST_LOG", level)
        .env_remove("REKEY_MASTER_KEY")
        .env_remove("REKEY_DATABASE_URL")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = wait_for_listen_line(&log_path, skip);
    (child, base)
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

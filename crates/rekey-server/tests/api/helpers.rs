//! Starts the real `rekeyd` binary on a free port with a fresh data directory and a fresh database,
//! and talks to it. Every test runs once per backend ([`backend_tests!`]): on SQLite (a file in the
//! data directory) always, and on PostgreSQL (a new database on the server `REKEY_TEST_POSTGRES_URL`
//! names, dropped afterwards) when that variable is set. Several nodes can share one database
//! ([`TestServer::join`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection as _;

/// The server that PostgreSQL tests create their databases on, e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_URL_VAR: &str = "REKEY_TEST_POSTGRES_URL";

/// The store a test's servers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

impl Backend {
    /// The backend of the running test.
    pub fn current() -> Backend {
        BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
    }

    /// Runs a test body with this backend. A PostgreSQL run needs a server ([`postgres_wanted`]).
    pub async fn run(self, test: impl Future<Output = ()>) {
        if self == Backend::Postgres && !postgres_wanted() {
            return;
        }
        BACKEND.scope(self, test).await
    }
}

/// Defines, for each named `async fn` test body in the module, a module of the same name with two
/// tests: `sqlite` and `postgres` (see [`Backend::run`]).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                $crate::helpers::Backend::Sqlite.run(super::$name()).await
            }
            #[tokio::test]
            async fn postgres() {
                $crate::helpers::Backend::Postgres.run(super::$name()).await
            }
        }
    )*};
}

/// Set to `sqlite` to leave every PostgreSQL run out on purpose (each says so).
pub const BACKENDS_VAR: &str = "REKEY_TEST_BACKENDS";

/// Whether a PostgreSQL run should go ahead: yes when [`POSTGRES_URL_VAR`] names a server. Without
/// one the test fails, so a missing server never passes as a silent skip, unless
/// `REKEY_TEST_BACKENDS=sqlite` asks for SQLite only (then it says it did nothing).
pub fn postgres_wanted() -> bool {
    if postgres_admin_url().is_some() {
        return true;
    }
    let sqlite_only = std::env::var(BACKENDS_VAR).is_ok_and(|v| v.trim() == "sqlite");
    assert!(
        sqlite_only,
        "{POSTGRES_URL_VAR} is not set: start a server with `scripts/pg-cluster start DIR` and set \
         it to the URL printed, or set {BACKENDS_VAR}=sqlite to leave PostgreSQL out on purpose \
         (scripts/test does the former by itself)"
    );
    eprintln!("{BACKENDS_VAR}=sqlite: the PostgreSQL run of this test did nothing");
    false
}

pub fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(base.len());
    format!("{}/{database}{query}", &base[..host_end])
}

/// A database of its own on the test PostgreSQL server, dropped with the value.
pub struct TestDatabase {
    admin: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create(admin: &str) -> Self {
        let name = format!("rekey_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        Self {
            admin: admin.to_string(),
            url: with_database(admin, &name),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

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
    /// The PostgreSQL database, when the backend is PostgreSQL; shared by joined nodes.
    database_url: Option<String>,
    /// Dropped after the server process is stopped (fields drop in declaration order after
    /// `Drop::drop`, which stops the process).
    _database: Option<TestDatabase>,
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

    /// Starts with extra environment variables (rekeyd's settings), on the running test's backend.
    pub async fn start_with(level: &str, env: &[(&str, &str)]) -> Self {
        let backend = Backend::current();
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                TestDatabase::create(
                    &postgres_admin_url().expect("a PostgreSQL test runs only with a server"),
                )
                .await,
            ),
        };
        let database_url = database.as_ref().map(|d| d.url.clone());
        Self::start_on(level, env, database_url, database).await
    }

    /// Starts a server on `database_url` (SQLite in the data directory when `None`); `database`, if
    /// given, is dropped with the server.
    pub async fn start_on(
        level: &str,
        env: &[(&str, &str)],
        database_url: Option<String>,
        database: Option<TestDatabase>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(url) = &database_url {
            env.push(("REKEY_DATABASE_URL".into(), url.clone()));
        }
        let (child, base) = spawn(dir.path(), level, &env);
        // A node on a database another node bootstrapped writes no bootstrap.json: the caller
        // fills in the token and subscription.
        let boot: Value = std::fs::read_to_string(dir.path().join("data/bootstrap.json"))
            .map(|text| serde_json::from_str(&text).unwrap())
            .unwrap_or(Value::Null);
        Self {
            base,
            token: boot["token"].as_str().unwrap_or_default().to_string(),
            subscription: boot["subscriptionId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            dir,
            child,
            client: reqwest::Client::new(),
            log_level: level.to_string(),
            env,
            database_url,
            _database: database,
        }
    }

    /// Another node on this server's PostgreSQL database, with its master key (from this node's
    /// key file) and its owner token (found in the database: the new node writes no
    /// bootstrap.json). Extra settings go to the new node only.
    pub async fn join(&self, env: &[(&str, &str)]) -> TestServer {
        let url = self
            .database_url
            .clone()
            .expect("only PostgreSQL servers share their database");
        let dir = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("REKEY_DATABASE_URL".into(), url.clone()));
        env.push((
            "REKEY_MASTER_KEY_FILE".into(),
            self.data_dir().join("master.key").display().to_string(),
        ));
        let (child, base) = spawn(dir.path(), &self.log_level, &env);
        assert!(
            !dir.path().join("data/bootstrap.json").exists(),
            "a joining node finds the bootstrap in the database"
        );
        TestServer {
            base,
            token: self.token.clone(),
            subscription: self.subscription.clone(),
            dir,
            child,
            client: reqwest::Client::new(),
            log_level: self.log_level.clone(),
            env,
            database_url: Some(url),
            _database: None,
        }
    }

    /// The PostgreSQL database URL, when the backend is PostgreSQL.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    /// Runs one statement directly on the store's database (this node stays up).
    pub async fn sql_execute(&self, sql: &str) {
        match &self.database_url {
            Some(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
                let _ = conn.close().await;
            }
            None => {
                let mut conn = sqlx::SqliteConnection::connect(&self.sqlite_url())
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
                let _ = conn.close().await;
            }
        }
    }

    /// The first column of the first row of `sql`, read directly from the store's database.
    pub async fn sql_i64(&self, sql: &str) -> i64 {
        match &self.database_url {
            Some(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
            None => {
                let mut conn = sqlx::SqliteConnection::connect(&self.sqlite_url())
                    .await
                    .unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
        }
    }

    fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.data_dir().join("rekey.db").display())
    }

    /// Every byte the store holds, as someone with a copy of the database would see it: the SQLite
    /// files, or `pg_dump` of the PostgreSQL database.
    pub fn database_dump(&self) -> Vec<u8> {
        match &self.database_url {
            Some(url) => {
                let out = Command::new("pg_dump")
                    .arg("--dbname")
                    .arg(url)
                    .output()
                    .expect("pg_dump runs (Debian package postgresql-client)");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            }
            None => {
                let mut dump = Vec::new();
                for entry in std::fs::read_dir(self.data_dir()).unwrap() {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().to_string();
                    if name.starts_with("rekey.db") {
                        dump.extend(std::fs::read(&path).unwrap());
                    }
                }
                dump
            }
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
    let (child, log_path, skip) = launch(root, level, env);
    let base = wait_for_listen_line(&log_path, skip);
    (child, base)
}

/// Starts rekeyd without waiting for it to listen; returns its log's path and how much of the log
/// came before this start.
fn launch(root: &Path, level: &str, env: &[(String, String)]) -> (Child, PathBuf, usize) {
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
    (child, log_path, skip)
}

/// Starts `count` nodes on one new PostgreSQL database at the same moment, sharing `master_key`
/// (hex), and waits until each listens. None has been told which one is first.
pub async fn start_nodes_at_once(count: usize, master_key: &str) -> Vec<TestServer> {
    let database = TestDatabase::create(
        &postgres_admin_url().expect("a PostgreSQL test runs only with a server"),
    )
    .await;
    let env = vec![
        ("REKEY_DATABASE_URL".to_string(), database.url.clone()),
        ("REKEY_MASTER_KEY".to_string(), master_key.to_string()),
    ];
    let launched: Vec<_> = (0..count)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let (child, log, skip) = launch(dir.path(), "info", &env);
            (dir, child, log, skip)
        })
        .collect();
    let mut database = Some(database);
    let mut nodes = Vec::new();
    for (dir, child, log, skip) in launched {
        let base = wait_for_listen_line(&log, skip);
        nodes.push(TestServer {
            base,
            token: String::new(),
            subscription: String::new(),
            dir,
            child,
            client: reqwest::Client::new(),
            log_level: "info".into(),
            env: env.clone(),
            database_url: Some(env[0].1.clone()),
            _database: None,
        });
    }
    // The database goes with the last node, after every node has stopped.
    if let Some(last) = nodes.last_mut() {
        last._database = database.take();
    }
    nodes
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

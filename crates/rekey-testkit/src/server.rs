//! Owns [`TestServer`]: a started rekeyd node for async tests, on the running test's backend, with
//! its owner token and subscription from the ready file, a management API client, direct access to
//! its database, restarts, and further nodes on the same PostgreSQL database.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sqlx::Connection as _;

use crate::backend::{postgres_admin_url, Backend, TestDatabase};
use crate::process::{Options, Rekeyd};

pub struct TestServer {
    pub base: String,
    pub token: String,
    pub subscription: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    process: Rekeyd,
    /// The PostgreSQL database, when the backend is PostgreSQL; shared by joined nodes.
    database_url: Option<String>,
    /// Dropped after the server process is stopped (fields drop in declaration order after
    /// `Drop::drop`, which stops the process).
    _database: Option<TestDatabase>,
}

fn options(level: &str, env: &[(&str, &str)]) -> Options {
    Options {
        log_level: level.to_string(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Options::default()
    }
}

impl TestServer {
    /// Starts `bin` with extra environment variables (rekeyd's settings), on the running test's
    /// backend.
    pub async fn start_with(bin: &Path, level: &str, env: &[(&str, &str)]) -> Self {
        let database = match Backend::current() {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                TestDatabase::create(
                    &postgres_admin_url().expect("a PostgreSQL test runs only with a server"),
                )
                .await,
            ),
        };
        let database_url = database.as_ref().map(|d| d.url.clone());
        Self::start_on(bin, level, env, database_url, database).await
    }

    /// Starts a server on `database_url` (SQLite in the data directory when `None`); `database`, if
    /// given, is dropped with the server. A node on a database another node bootstrapped has no
    /// owner token to give: `token` is empty, for the caller to fill in.
    pub async fn start_on(
        bin: &Path,
        level: &str,
        env: &[(&str, &str)],
        database_url: Option<String>,
        database: Option<TestDatabase>,
    ) -> Self {
        let mut options = options(level, env);
        if let Some(url) = &database_url {
            options.env.push(("REKEY_DATABASE_URL".into(), url.clone()));
        }
        let dir = tempfile::tempdir().unwrap();
        let process = Rekeyd::start(bin, dir.path(), options);
        Self::new(dir, process, database_url, database)
    }

    fn new(
        dir: tempfile::TempDir,
        process: Rekeyd,
        database_url: Option<String>,
        database: Option<TestDatabase>,
    ) -> Self {
        Self {
            base: process.ready.url.clone(),
            token: process.ready.token.clone().unwrap_or_default(),
            subscription: process.ready.subscription_id.clone(),
            dir,
            client: reqwest::Client::new(),
            process,
            database_url,
            _database: database,
        }
    }

    /// Another node on this server's PostgreSQL database, with its master key (from this node's
    /// key file) and its owner token (this node's: the new node finds the bootstrap in the database
    /// and writes no bootstrap.json). Extra settings go to the new node only.
    pub async fn join(&self, env: &[(&str, &str)]) -> TestServer {
        let url = self
            .database_url
            .clone()
            .expect("only PostgreSQL servers share their database");
        let mut options = options(&self.process.options().log_level, env);
        options.env.push(("REKEY_DATABASE_URL".into(), url.clone()));
        options.env.push((
            "REKEY_MASTER_KEY_FILE".into(),
            self.data_dir().join("master.key").display().to_string(),
        ));
        let dir = tempfile::tempdir().unwrap();
        let process = Rekeyd::start(&self.process_bin(), dir.path(), options);
        assert!(
            !dir.path().join("data/bootstrap.json").exists(),
            "a joining node finds the bootstrap in the database"
        );
        let mut node = Self::new(dir, process, Some(url), None);
        node.token = self.token.clone();
        node.subscription = self.subscription.clone();
        node
    }

    fn process_bin(&self) -> PathBuf {
        self.process.bin().to_path_buf()
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
        self.process.data_dir()
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// SIGKILL, then start again on the same data directory (on a new port).
    pub fn kill_and_restart(&mut self) {
        self.process.kill_and_restart();
        self.base = self.process.ready.url.clone();
    }

    /// The rekeyd process id (to pause it with SIGSTOP in tests).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn sub_path(&self) -> String {
        format!("/subscriptions/{}", self.subscription)
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
}

/// Starts `count` nodes of `bin` on one new PostgreSQL database at the same moment, sharing
/// `master_key` (hex), and waits until each is ready. None has been told which one is first.
pub async fn start_nodes_at_once(bin: &Path, count: usize, master_key: &str) -> Vec<TestServer> {
    let database = TestDatabase::create(
        &postgres_admin_url().expect("a PostgreSQL test runs only with a server"),
    )
    .await;
    let options = Options::default()
        .env("REKEY_DATABASE_URL", &database.url)
        .env("REKEY_MASTER_KEY", master_key);
    let launched: Vec<_> = (0..count)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let starting = Rekeyd::launch(bin, dir.path(), options.clone());
            (dir, starting)
        })
        .collect();
    let url = database.url.clone();
    let mut database = Some(database);
    let mut nodes: Vec<TestServer> = launched
        .into_iter()
        .map(|(dir, starting)| {
            let mut node = TestServer::new(dir, starting.wait(), Some(url.clone()), None);
            // As any node on a shared database: the caller finds the token and subscription.
            node.token.clear();
            node.subscription.clear();
            node
        })
        .collect();
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

//! Owns what every CLI test needs: a live `rekeyd` on a free port with a fresh data directory
//! ([`Rekeyd`]), the built `rekey` binary run with a private config directory ([`Cli`]), and a direct
//! HTTP line to rekeyd to check state changes without trusting the CLI.
//!
//! rekeyd is started by `rekey_testkit` (ready when its ready file appears), from the binary
//! [`rekey_testkit::rekeyd_bin`] builds once per test process; `REKEYD_BIN=/path/to/rekeyd` skips
//! the build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const CS_VERSION: &str = "2025-09-01";
pub const RG_VERSION: &str = "2025-04-01";
pub const COSMOS: (&str, &str) = ("Microsoft.DocumentDB/databaseAccounts", "2024-11-15");
pub const QUANTUM: (&str, &str) = ("Microsoft.Quantum/workspaces", "2023-11-13-preview");

/// A running rekeyd (SQLite in its data directory), killed on drop.
pub struct Rekeyd {
    pub base: String,
    pub token: String,
    pub subscription: String,
    /// Stopped on drop, before `dir` (fields drop in declaration order) is removed.
    _process: rekey_testkit::Rekeyd,
    pub dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

impl Rekeyd {
    pub fn start() -> Self {
        Self::start_with(tempfile::tempdir().unwrap(), &[])
    }

    /// Starts rekeyd in `dir` with extra flags (such as `--tls-cert`).
    pub fn start_with(dir: tempfile::TempDir, flags: &[&std::ffi::OsStr]) -> Self {
        let mut options = rekey_testkit::process::Options::default();
        options.args.extend(flags.iter().map(|f| f.to_os_string()));
        let process =
            rekey_testkit::Rekeyd::start(rekey_testkit::rekeyd_bin(), dir.path(), options);
        let ready = process.ready.clone();
        Self {
            base: ready.url,
            token: ready
                .token
                .expect("a rekeyd on a fresh database made the bootstrap"),
            subscription: ready.subscription_id,
            _process: process,
            dir,
            http: reqwest::blocking::Client::new(),
        }
    }

    /// A rekeyd with group `rg` holding Cognitive Services account `acct`, and a CLI logged in to it.
    pub fn with_account() -> (Self, Cli) {
        let server = Self::start();
        server.create_group("rg");
        server.create_account("rg", "acct");
        let cli = Cli::logged_in(&server);
        (server, cli)
    }

    pub fn bootstrap_file(&self) -> PathBuf {
        self.dir.path().join("data/bootstrap.json")
    }

    /// An authenticated request straight to rekeyd: status and JSON body (Null when empty).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn group_path(&self, group: &str) -> String {
        format!(
            "/subscriptions/{}/resourcegroups/{group}",
            self.subscription
        )
    }

    pub fn resource_path(&self, type_name: &str, group: &str, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{group}/providers/{type_name}/{name}",
            self.subscription
        )
    }

    pub fn account_path(&self, group: &str, name: &str) -> String {
        self.resource_path("Microsoft.CognitiveServices/accounts", group, name)
    }

    pub fn group_exists(&self, group: &str) -> bool {
        let (status, body) = self.call(
            "GET",
            &format!("{}?api-version={RG_VERSION}", self.group_path(group)),
            None,
        );
        assert!(status == 200 || status == 404, "{status} {body}");
        status == 200
    }

    pub fn create_group(&self, group: &str) {
        let (status, body) = self.call(
            "PUT",
            &format!("{}?api-version={RG_VERSION}", self.group_path(group)),
            Some(r#"{"location":"westus"}"#),
        );
        assert!(status == 201 || status == 200, "{status} {body}");
    }

    pub fn create_account(&self, group: &str, name: &str) {
        let (status, body) = self.call(
            "PUT",
            &format!(
                "{}?api-version={CS_VERSION}",
                self.account_path(group, name)
            ),
            Some(r#"{"location":"westus","kind":"TextAnalytics","sku":{"name":"S0"}}"#),
        );
        assert_eq!(status, 201, "{body}");
    }

    /// The account's keys as rekeyd has them, or the status when it has none.
    pub fn account_keys(&self, group: &str, name: &str) -> Result<Value, u16> {
        let path = format!(
            "{}/listKeys?api-version={CS_VERSION}",
            self.account_path(group, name)
        );
        match self.call("POST", &path, None) {
            (200, keys) => Ok(without_extensions(keys)),
            (status, _) => Err(status),
        }
    }

    pub fn account_exists(&self, group: &str, name: &str) -> bool {
        let path = format!(
            "{}?api-version={CS_VERSION}",
            self.account_path(group, name)
        );
        self.call("GET", &path, None).0 == 200
    }

    /// A POST to one of a resource's actions, straight to rekeyd.
    pub fn action(&self, ty: (&str, &str), group: &str, name: &str, action: &str) -> Value {
        let path = format!(
            "{}/{action}?api-version={}",
            self.resource_path(ty.0, group, name),
            ty.1
        );
        let (status, body) = self.call("POST", &path, None);
        assert_eq!(status, 200, "{action}: {body}");
        without_extensions(body)
    }
}

/// The `rekey` binary with its own config directory, so no test reads or writes the user's.
pub struct Cli {
    pub config: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// One run's outcome.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        assert_eq!(self.code, 0, "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self:?}");
        &self.stdout
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Cli {
    pub fn new() -> Self {
        Self {
            config: tempfile::tempdir().unwrap(),
            env: Vec::new(),
        }
    }

    /// A CLI whose profile points at `server`, set up by `rekey login` itself.
    pub fn logged_in(server: &Rekeyd) -> Self {
        let cli = Self::new();
        cli.run(&[
            "login",
            "--endpoint",
            &server.base,
            "--token",
            &server.token,
        ])
        .json();
        cli
    }

    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn profile_dir(&self) -> PathBuf {
        self.config.path().join("rekey-config")
    }

    /// The command, ready to run: private config, none of the caller's REKEY_* variables.
    pub fn command(&self) -> Command {
        self.command_for(env!("CARGO_BIN_EXE_rekey"))
    }

    /// Runs a bash script with `rekey` first on PATH and this CLI's environment.
    pub fn script(&self, script: &Path, env: &[(&str, &str)]) -> Run {
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_rekey")).parent().unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin_dir.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        let mut cmd = self.command_for("bash");
        cmd.arg("-e")
            .arg(script)
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .stdin(Stdio::null());
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd.output().unwrap().into()
    }

    fn command_for(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        for name in [
            "REKEY_ENDPOINT",
            "REKEY_TOKEN",
            "REKEY_CA_BUNDLE",
            "REKEYD_BIN",
        ] {
            cmd.env_remove(name);
        }
        cmd.env("REKEY_CONFIG_DIR", self.profile_dir())
            .env("HOME", self.config.path())
            .env("XDG_CONFIG_HOME", self.config.path().join("xdg"))
            .env("NO_COLOR", "1");
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        cmd
    }

    /// Runs `rekey args…` with stdin closed (no terminal).
    pub fn run(&self, args: &[&str]) -> Run {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    }
}

/// Replaces each `(value, placeholder)` in `text`, so a snapshot holds no random ids or keys.
pub fn redact(text: &str, pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .fold(text.to_string(), |t, (value, placeholder)| {
            t.replace(value, placeholder)
        })
}

/// A key-list body without rekeyd's `x-rekey-*` extension fields, which the CLI does not print.
pub fn without_extensions(mut body: Value) -> Value {
    if let Value::Object(map) = &mut body {
        map.retain(|k, _| !k.starts_with("x-rekey-"));
    }
    body
}

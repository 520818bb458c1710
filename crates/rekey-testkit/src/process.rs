//! Owns one rekeyd process: where its binary comes from, how it is started (a free port, a data
//! directory of its own, the caller's settings and none of the environment's), and when it is ready:
//! when its ready file (`--ready-file`) appears, never by reading its log. Synchronous, so blocking
//! tests (the CLI's) and async ones (the server's, through [`crate::TestServer`]) share it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long rekeyd may take to write its ready file (migrations on a busy PostgreSQL included).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings rekeyd reads from the environment that must come from the test, never from the shell
/// that runs it.
const CLEARED_ENV: [&str; 4] = [
    "REKEY_MASTER_KEY",
    "REKEY_DATABASE_URL",
    "REKEY_PUBLIC_URL",
    "REKEY_READY_FILE",
];

/// The rekeyd binary for tests that are not rekey-server's own (those get Cargo's
/// `CARGO_BIN_EXE_rekeyd`): `REKEYD_BIN` if set, else built once per test process.
///
/// Cargo gives an integration test only its own package's binaries, and a dev-dependency on
/// rekey-server builds its library, not `rekeyd`. So this runs `cargo build -p rekey-server --bin
/// rekeyd` (with the `cargo` that built the tests, on this workspace and target directory) and takes
/// the binary's path from Cargo's JSON messages. When rekeyd is up to date that costs about a
/// quarter of a second, and concurrent test processes wait on Cargo's own lock, so it works the same
/// from a clean clone, under `cargo test` and under `cargo nextest run --workspace`.
pub fn rekeyd_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("REKEYD_BIN") {
            return PathBuf::from(path);
        }
        let cargo = std::env::var("CARGO")
            .ok()
            .or_else(|| option_env!("CARGO").map(str::to_string))
            .unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        // Cargo gives the test process its package's variables (CARGO_MANIFEST_DIR, CARGO_PKG_*);
        // build scripts such as ring's watch some of them, so passing them on would make the
        // inner build differ from a plain `cargo build` and recompile half the tree each time.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let per_package = [
                "CARGO_PKG_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_MANIFEST_",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix));
            if per_package
                || matches!(
                    name.as_ref(),
                    "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
                )
            {
                build.env_remove(name.as_ref());
            }
        }
        let out = build
            .args([
                "build",
                "-p",
                "rekey-server",
                "--bin",
                "rekeyd",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .expect("running cargo to build rekeyd");
        assert!(out.status.success(), "cargo build of rekeyd failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "rekeyd")
            .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the rekeyd executable")
    })
}

/// What rekeyd's ready file says. Not Debug: it holds the owner token.
#[derive(Clone)]
pub struct Ready {
    pub url: String,
    /// Absent when this node joined a database another node bootstrapped.
    pub token: Option<String>,
    pub subscription_id: String,
    pub tenant_id: String,
    pub principal_id: String,
}

impl Ready {
    fn parse(text: &str) -> Ready {
        let v: Value = serde_json::from_str(text).expect("the ready file is JSON");
        let field = |name: &str| {
            v[name]
                .as_str()
                .unwrap_or_else(|| panic!("the ready file has no {name}"))
                .to_string()
        };
        Ready {
            url: field("url"),
            token: v["token"].as_str().map(str::to_string),
            subscription_id: field("subscriptionId"),
            tenant_id: field("tenantId"),
            principal_id: field("principalId"),
        }
    }
}

/// How to start rekeyd: its log level, environment settings, extra flags, and the umask it starts
/// under (the test process's when `None`).
#[derive(Clone)]
pub struct Options {
    pub log_level: String,
    pub env: Vec<(String, String)>,
    pub args: Vec<OsString>,
    pub umask: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            log_level: "info".into(),
            env: Vec::new(),
            args: Vec::new(),
            umask: None,
        }
    }
}

impl Options {
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }
}

/// A running rekeyd in `root` (data in `root/data`, log appended to `root/rekeyd.log`, ready file
/// `root/ready.json` unless the options name another); killed on drop.
pub struct Rekeyd {
    child: Child,
    pub ready: Ready,
    bin: PathBuf,
    root: PathBuf,
    options: Options,
}

/// A rekeyd launched but not yet known to be ready ([`Starting::wait`]).
pub struct Starting {
    child: Option<Child>,
    ready_file: PathBuf,
    log: PathBuf,
    log_start: usize,
    bin: PathBuf,
    root: PathBuf,
    options: Options,
}

impl Rekeyd {
    /// Starts rekeyd and waits until it is ready.
    pub fn start(bin: &Path, root: &Path, options: Options) -> Rekeyd {
        Self::launch(bin, root, options).wait()
    }

    /// Starts rekeyd without waiting, so several can start at the same moment.
    pub fn launch(bin: &Path, root: &Path, options: Options) -> Starting {
        let log = root.join("rekeyd.log");
        let log_start = std::fs::metadata(&log)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let named = options
            .env
            .iter()
            .find(|(name, _)| name == "REKEY_READY_FILE")
            .map(|(_, path)| PathBuf::from(path));
        let ready_file = named.clone().unwrap_or_else(|| root.join("ready.json"));
        // rekeyd removes an old ready file itself, but only once it runs: until then this waiter
        // would read the last run's.
        let _ = std::fs::remove_file(&ready_file);
        // A umask is set by a shell that then becomes rekeyd, so the test process's stays as it is.
        let mut command = match options.umask {
            Some(mask) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!(r#"umask {mask:03o}; exec "$0" "$@""#))
                    .arg(bin);
                shell
            }
            None => Command::new(bin),
        };
        command
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(root.join("data"));
        if named.is_none() {
            command.arg("--ready-file").arg(&ready_file);
        }
        for name in CLEARED_ENV {
            command.env_remove(name);
        }
        let child = command
            .args(&options.args)
            .env("RUST_LOG", &options.log_level)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        Starting {
            child: Some(child),
            ready_file,
            log,
            log_start,
            bin: bin.to_path_buf(),
            root: root.to_path_buf(),
            options,
        }
    }

    /// SIGKILL, then start again in the same directory with the same settings (on a new port).
    pub fn kill_and_restart(&mut self) {
        self.stop();
        let again = Self::start(&self.bin, &self.root, self.options.clone());
        *self = again;
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("rekeyd.log")).unwrap_or_default()
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    pub fn options(&self) -> &Options {
        &self.options
    }
}

impl Starting {
    /// Waits for the ready file; fails with the log if rekeyd exits or takes too long.
    pub fn wait(mut self) -> Rekeyd {
        let deadline = Instant::now() + START_TIMEOUT;
        let child = self.child.as_mut().expect("waited once");
        loop {
            // rekeyd renames the file into place whole: once it is there, it is complete.
            if let Ok(text) = std::fs::read_to_string(&self.ready_file) {
                let ready = Ready::parse(&text);
                return Rekeyd {
                    child: self.child.take().expect("waited once"),
                    ready,
                    bin: self.bin.clone(),
                    root: self.root.clone(),
                    options: self.options.clone(),
                };
            }
            let log = || {
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                text[self.log_start.min(text.len())..].to_string()
            };
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "rekeyd exited ({status}) before it was ready; log:\n{}",
                    log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rekeyd wrote no ready file within {START_TIMEOUT:?}; log:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Rekeyd {
    fn drop(&mut self) {
        self.stop();
    }
}

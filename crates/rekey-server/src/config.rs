//! Owns rekeyd's configuration: every flag and its environment variable, in one place. Defaults give
//! a complete embedded service: `127.0.0.1:8080`, data in `./rekey-data/`, SQLite, a generated master
//! key.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "rekeyd",
    version,
    about = "rekey: dual access keys with an ARM-compatible API"
)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port (logged at start).
    #[arg(long, env = "REKEY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory for the embedded database, the generated master key and bootstrap.json.
    #[arg(long, env = "REKEY_DATA_DIR", default_value = "rekey-data")]
    pub data_dir: PathBuf,

    /// Database URL: `sqlite://PATH` (default: rekey.db in the data directory), or
    /// `postgres://USER@HOST:PORT/DB` for several nodes on one PostgreSQL (they must share the
    /// master key).
    #[arg(long, env = "REKEY_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// With PostgreSQL: how stale (milliseconds) a node's key cache may be for a data-plane check.
    /// 0, the default: nodes hold leases in the database and every write answers only once each
    /// node's cache has applied it (or that node's lease has lapsed), so a key regenerated on any
    /// node is refused on every node once the regeneration answers, and checks ask the database
    /// nothing; a node whose lease lapsed answers 503. Above 0: writes do not wait for other nodes,
    /// a check trusts a confirmation of the cache up to that old (asking the database when the last
    /// is older), and an old key may be accepted for up to that long after another node regenerated
    /// it; a check that cannot confirm answers 503 rather than trust the cache.
    #[arg(long, env = "REKEY_MAX_STALENESS_MS", default_value_t = 0)]
    pub max_staleness_ms: u64,

    /// File holding the 32-byte master key (hex or base64). Default: master.key in the data
    /// directory, created on first start with mode 0600.
    #[arg(long, env = "REKEY_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// The master key itself (hex or base64 of 32 bytes); takes precedence over the file. Prefer the
    /// file: environment variables can leak through process listings.
    #[arg(long = "master-key", env = "REKEY_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// TLS certificate chain (PEM). With --tls-key, rekeyd serves HTTPS.
    #[arg(long, env = "REKEY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM).
    #[arg(long, env = "REKEY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Certificate authorities (PEM) trusted for `https://` upstreams besides the Mozilla roots
    /// built in, e.g. a private CA's.
    #[arg(long, env = "REKEY_UPSTREAM_CA_FILE")]
    pub upstream_ca_file: Option<PathBuf>,

    /// The base URL clients reach this node at, used in endpoints and operation URLs. Default:
    /// http(s)://LISTEN-ADDRESS.
    #[arg(long, env = "REKEY_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Once listening, write `{url, token, subscriptionId, tenantId, principalId}` here (mode 0600,
    /// atomically), for harnesses and supervisors that wait for rekeyd. `token` is there only when
    /// this node's data directory holds the owner token (see `ready.rs`).
    #[arg(long, env = "REKEY_READY_FILE")]
    pub ready_file: Option<PathBuf>,

    /// Failed data-plane key checks from one client address within the window before that address
    /// gets 429 for the rest of the window.
    #[arg(long, env = "REKEY_AUTH_FAILURE_LIMIT", default_value_t = 50)]
    pub auth_failure_limit: u32,

    /// The window for --auth-failure-limit, in seconds.
    #[arg(long, env = "REKEY_AUTH_FAILURE_WINDOW_SECONDS", default_value_t = 60)]
    pub auth_failure_window_seconds: u64,

    /// Reverse proxies in front of rekeyd, comma-separated networks or addresses (e.g.
    /// `10.0.0.0/8,127.0.0.1`). A data-plane call from one of them is throttled and logged as coming
    /// from the right-most `X-Forwarded-For` address that is not itself a trusted proxy; from any
    /// other peer, `X-Forwarded-For` is ignored. Default: none.
    #[arg(
        long,
        env = "REKEY_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = crate::dataplane::proxies::parse_network
    )]
    pub trusted_proxies: Vec<crate::dataplane::proxies::Network>,

    /// How often key last-use times are written to the store, in milliseconds.
    #[arg(long, env = "REKEY_USAGE_FLUSH_MS", default_value_t = 1000)]
    pub usage_flush_ms: u64,

    /// For how long after a regeneration a presented old key is recognised (rekey's own
    /// extension): refused with a 401 that says when the key was regenerated, counted in
    /// `listKeyUsage`, and never counted towards --auth-failure-limit. Only keyed digests of
    /// old keys are kept. Usage counts themselves cover one day whatever this says.
    #[arg(
        long,
        env = "REKEY_RETIRED_KEY_WINDOW_SECONDS",
        default_value_t = 86_400
    )]
    pub retired_key_window_seconds: u64,

    /// Lifetime of the access tokens the OAuth endpoint issues, in seconds.
    #[arg(long, env = "REKEY_ACCESS_TOKEN_TTL_SECONDS", default_value_t = 3600)]
    pub access_token_ttl_seconds: u64,

    /// Largest accepted management request body, in bytes; larger ones get 413.
    #[arg(long, env = "REKEY_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// Largest data-plane request body, in bytes; larger ones get 413. Data-plane bodies are
    /// streamed to the upstream, never held whole, so this bounds what one call may push through
    /// rather than memory.
    #[arg(long, env = "REKEY_MAX_DATA_PLANE_BODY_BYTES", default_value_t = 64 << 20)]
    pub max_data_plane_body_bytes: usize,

    /// Seconds a client has to send a request's headers (on a new connection: to start talking;
    /// on a kept-alive one: to send its next request) before the connection is closed, so
    /// slow-loris clients cannot hold connections open forever.
    #[arg(long, env = "REKEY_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 30)]
    pub header_read_timeout_seconds: u64,

    /// Seconds a client has to send a request body: on management routes the whole body, counted
    /// from the end of its headers; on the data plane, which streams bodies of any length to the
    /// upstream, each part of it, counted from the part before. A client too slow gets 408 and its
    /// connection is closed.
    #[arg(long, env = "REKEY_BODY_READ_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_read_timeout_seconds: u64,

    /// Largest request head (request line and headers), in bytes, on every path and over HTTP/1
    /// and HTTP/2; a larger one gets 431 and its connection is closed. At least 8192.
    #[arg(long, env = "REKEY_MAX_HEADER_BYTES", default_value_t = 64 * 1024,
          value_parser = max_header_bytes)]
    pub max_header_bytes: usize,

    /// The first retry delay of an event delivery, in milliseconds; each later one doubles, up to an
    /// hour (Event Grid's policy is 10 s first). Hidden: tests shorten it.
    #[arg(long, env = "REKEY_EVENT_RETRY_BASE_MS", default_value_t = 10_000, hide = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub event_retry_base_ms: u64,

    /// How often the outbox is read for deliveries that are due (retries, and events other nodes
    /// wrote), in milliseconds; this node's own events are sent as soon as they commit. Hidden.
    #[arg(long, env = "REKEY_EVENT_POLL_MS", default_value_t = 1_000, hide = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub event_poll_ms: u64,

    /// How often keys are checked against their maximum age, in milliseconds. Hidden.
    #[arg(long, env = "REKEY_KEY_AGE_SWEEP_MS", default_value_t = 60_000, hide = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub key_age_sweep_ms: u64,
    /// Who may read `GET /metrics`: `loopback-or-token` (a caller on this host without a token, any
    /// other with a bearer token whose principal may read metrics: Monitoring Reader, Reader,
    /// Contributor or Owner at a subscription), `loopback`, `token` or `off` (404).
    #[arg(long, env = "REKEY_METRICS_ACCESS", value_enum, default_value_t)]
    pub metrics_access: crate::metrics::Access,

    /// Log line format on stderr: `text` (for people) or `json` (one JSON object a line, with the
    /// request id of the request a line was logged in).
    #[arg(long, env = "REKEY_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: crate::telemetry::LogFormat,
}

fn max_header_bytes(text: &str) -> Result<usize, String> {
    let min = crate::connections::MIN_HEADER_BYTES;
    match text.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("must be a whole number of bytes, at least {min}")),
    }
}

impl Config {
    pub fn tls(&self) -> Option<(PathBuf, PathBuf)> {
        self.tls_cert.clone().zip(self.tls_key.clone())
    }
}

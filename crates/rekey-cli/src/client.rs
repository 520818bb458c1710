//! Owns the conversation with rekeyd: authenticated ARM requests, the `--debug` trace of requests and
//! replies (with every key, connection string and token replaced by `REDACTED`), turning error replies
//! into [`CliError`]s, waiting for long-running operations (`Azure-AsyncOperation` / `Location`
//! polling, with a spinner on a terminal), and sending a request that must take effect at most once
//! (a regeneration) under one `Idempotency-Key` however often it is resent.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::blocking::{Client as Http, RequestBuilder};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Method;
use serde_json::Value;

use crate::error::CliError;

const REDACTED: &str = "REDACTED";
/// Used between polls when the service sends no `Retry-After`.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// A `Retry-After` larger than this is cut, so a confused server cannot park the CLI for hours.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// How many times a request sent with [`Client::call_once`] is sent again after a lost answer or a
/// 503, and the first pause (doubled each time): 3.5 s in all, enough for a restarting or
/// overloaded rekeyd, short enough not to hang on a dead one.
const ONCE_RETRIES: u32 = 3;
const ONCE_FIRST_PAUSE: Duration = Duration::from_millis(500);
/// The longest a 503's `Retry-After` makes [`Client::call_once`] wait before sending again.
const ONCE_MAX_PAUSE: Duration = Duration::from_secs(10);
/// The header that makes rekeyd answer a repeat with its first answer instead of acting twice.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// rekeyd's mark on an answer that is a replay of an earlier one.
pub const REPLAYED: &str = "x-rekey-replayed";

/// One reply: status, headers, and the JSON body (`None` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Option<Value>,
}

pub struct Client {
    http: Http,
    endpoint: String,
    token: String,
    debug: bool,
}

impl Client {
    pub fn new(
        endpoint: &str,
        token: &str,
        ca_file: Option<&Path>,
        debug: bool,
    ) -> Result<Self, CliError> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "The endpoint '{endpoint}' must start with http:// or https://."
            )));
        }
        let mut builder = Http::builder()
            .user_agent(concat!("rekey-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                CliError::Other(format!("Cannot read the CA file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                CliError::Other(format!(
                    "The CA file {} is not a PEM bundle: {e}",
                    path.display()
                ))
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| CliError::Other(format!("Cannot set up the HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoint,
            token: token.to_string(),
            debug,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends an ARM request to `path` with `api-version`; any status is returned as a [`Reply`].
    pub fn send(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        body: Option<&Value>,
    ) -> Result<Reply, CliError> {
        let url = format!("{}{path}?api-version={api_version}", self.endpoint);
        self.exchange(method, &url, body, &[])
    }

    /// Like [`Client::send`], but an error status becomes [`CliError::Service`].
    pub fn call(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        body: Option<&Value>,
    ) -> Result<Reply, CliError> {
        let reply = self.send(method, path, api_version, body)?;
        ok_or_error(reply)
    }

    /// Like [`Client::call`] for requests with more query parameters (OData's `$filter`, whose
    /// spaces and quotes must be encoded), or with no api-version at all (rekey's own `/rekey/…`
    /// routes take none).
    pub fn call_query(
        &self,
        method: Method,
        path: &str,
        api_version: Option<&str>,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply, CliError> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.endpoint))
            .map_err(|e| CliError::Usage(format!("'{path}' does not make a URL: {e}")))?;
        if api_version.is_some() || !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            if let Some(version) = api_version {
                pairs.append_pair("api-version", version);
            }
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        ok_or_error(self.exchange(method, url.as_str(), body, &[])?)
    }

    /// POSTs a request that must take effect at most once, such as a regeneration, with `headers`
    /// and an `Idempotency-Key` made for this call. When no answer comes (the connection failed or
    /// was cut) or rekeyd answers 503, it is sent again with the same key, up to [`ONCE_RETRIES`]
    /// times with a growing pause; rekeyd answers a repeat it already acted on with its first answer
    /// (marked [`REPLAYED`]), so a lost answer never makes a second rotation. `retrying` hears why
    /// before each resend.
    pub fn call_once(
        &self,
        path: &str,
        api_version: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
        mut retrying: impl FnMut(&str),
    ) -> Result<Reply, CliError> {
        let url = format!("{}{path}?api-version={api_version}", self.endpoint);
        let token = uuid::Uuid::new_v4().to_string();
        let mut all: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        all.push((IDEMPOTENCY_KEY, &token));
        let mut pause = ONCE_FIRST_PAUSE;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (why, wait) = match self.exchange(Method::POST, &url, body, &all) {
                Ok(reply) if reply.status == 503 => {
                    let asked = reply
                        .headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|secs| Duration::from_secs(secs).min(ONCE_MAX_PAUSE));
                    if attempt > ONCE_RETRIES {
                        return ok_or_error(reply);
                    }
                    (
                        "rekeyd answered 503 Service Unavailable".to_string(),
                        asked.unwrap_or(pause),
                    )
                }
                Ok(reply) => return ok_or_error(reply),
                Err(CliError::Unreachable { reason, .. }) if attempt <= ONCE_RETRIES => {
                    (format!("no answer from rekeyd ({reason})"), pause)
                }
                Err(e) => return Err(e),
            };
            retrying(&format!(
                "{why}; sending it again in {:.1} s with the same {IDEMPOTENCY_KEY}, so it takes \
                 effect at most once (retry {attempt} of {ONCE_RETRIES}).",
                wait.as_secs_f32()
            ));
            std::thread::sleep(wait);
            pause *= 2;
        }
    }

    /// Waits for a long-running operation the reply started, if it started one: 201 or 202 with an
    /// `Azure-AsyncOperation` (preferred, as ARM says) or `Location` header. A spinner turns on stderr
    /// while waiting when `spinner` is set. True when there was an operation to wait for.
    pub fn wait(&self, reply: &Reply, spinner: bool) -> Result<bool, CliError> {
        if !matches!(reply.status, 201 | 202) {
            return Ok(false);
        }
        let (url, status_resource) = match (
            header(&reply.headers, "azure-asyncoperation"),
            header(&reply.headers, "location"),
        ) {
            (Some(url), _) => (url, true),
            (None, Some(url)) => (url, false),
            (None, None) => return Ok(false),
        };
        let url = if url.starts_with('/') {
            format!("{}{url}", self.endpoint)
        } else {
            url
        };
        let _spinner = spinner.then(Spinner::start);
        loop {
            let poll = ok_or_error(self.exchange(Method::GET, &url, None, &[])?)?;
            if status_resource {
                let body = poll.body.as_ref().unwrap_or(&Value::Null);
                match body.get("status").and_then(Value::as_str).unwrap_or("") {
                    "Succeeded" => return Ok(true),
                    "Failed" | "Canceled" | "Cancelled" => return Err(operation_failed(body)),
                    _ => {}
                }
            } else if poll.status != 202 {
                return Ok(true);
            }
            std::thread::sleep(retry_after(&poll.headers));
        }
    }

    fn exchange(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, CliError> {
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(ACCEPT, "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        if self.debug {
            self.trace_request(&method, url, body, headers);
        }
        let response = send(request).map_err(|e| CliError::Unreachable {
            endpoint: self.endpoint.clone(),
            reason: e,
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().map_err(|e| CliError::Unreachable {
            endpoint: self.endpoint.clone(),
            reason: format!("the reply was cut off ({e})"),
        })?;
        if self.debug {
            self.trace_reply(status.as_u16(), &headers, &text);
        }
        let body = if text.trim().is_empty() {
            None
        } else if status.is_success() {
            Some(serde_json::from_str(&text).map_err(|e| {
                CliError::Other(format!(
                    "The reply from {url} is not JSON ({e}); is {} a rekey endpoint?",
                    self.endpoint
                ))
            })?)
        } else {
            // Error bodies are parsed by `ok_or_error`; keep the text when it is not JSON.
            Some(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        };
        Ok(Reply {
            status: status.as_u16(),
            headers,
            body,
        })
    }

    fn trace_request(
        &self,
        method: &Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) {
        let mut out = format!(
            "DEBUG: Request URL: '{url}'\nDEBUG: Request method: '{method}'\nDEBUG: Request headers:\n\
             DEBUG:     'Authorization': '{REDACTED}'\nDEBUG:     'Accept': 'application/json'\n"
        );
        for (name, value) in headers {
            out.push_str(&format!("DEBUG:     '{name}': '{value}'\n"));
        }
        if let Some(body) = body {
            out.push_str("DEBUG:     'Content-Type': 'application/json'\n");
            out.push_str(&format!("DEBUG: Request body:\nDEBUG: {}\n", redact(body)));
        }
        self.trace(&out);
    }

    fn trace_reply(&self, status: u16, headers: &HeaderMap, text: &str) {
        let mut out = format!("DEBUG: Response status: {status}\nDEBUG: Response headers:\n");
        for (name, value) in headers {
            out.push_str(&format!(
                "DEBUG:     '{name}': '{}'\n",
                value.to_str().unwrap_or("<binary>")
            ));
        }
        let body = match serde_json::from_str::<Value>(text) {
            Ok(json) => redact(&json).to_string(),
            Err(_) => text.to_string(),
        };
        out.push_str(&format!("DEBUG: Response content:\nDEBUG: {body}\n"));
        self.trace(&out);
    }

    /// Writes a trace to stderr, with the token cut out wherever it might appear.
    fn trace(&self, text: &str) {
        let text = if self.token.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.token, REDACTED)
        };
        eprint!("{text}");
    }
}

/// Sends, and names why no reply came (the innermost cause: "Connection refused (os error 111)").
fn send(request: RequestBuilder) -> Result<reqwest::blocking::Response, String> {
    request.send().map_err(|e| {
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        if e.is_timeout() {
            "no reply in time".to_string()
        } else if cause.to_string().contains("certificate") {
            format!(
                "{cause} (if rekeyd's certificate comes from a private CA, pass the CA with \
                 `rekey login --ca-file FILE` or REKEY_CA_BUNDLE)"
            )
        } else {
            cause.to_string()
        }
    })
}

fn ok_or_error(reply: Reply) -> Result<Reply, CliError> {
    if reply.status < 400 {
        return Ok(reply);
    }
    let reason = reqwest::StatusCode::from_u16(reply.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let text = match &reply.body {
        Some(Value::String(text)) => text.clone(),
        Some(json) => json.to_string(),
        None => String::new(),
    };
    Err(CliError::from_reply(reply.status, reason, &text))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_POLL_INTERVAL))
        .unwrap_or(DEFAULT_POLL_INTERVAL)
}

fn operation_failed(status: &Value) -> CliError {
    let error = status.get("error");
    let field = |name| {
        error
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let state = status
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("Failed");
    CliError::Service {
        status: 200,
        code: field("code").unwrap_or_else(|| state.to_string()),
        message: field("message").unwrap_or_else(|| format!("The operation ended as {state}.")),
    }
}

/// True for the JSON fields that carry a secret: keys (`key1`, `key`, `primaryMasterKey`),
/// connection strings, tokens and passwords. `keyName`, `keyKind`, `apiKeyEnabled` are not secret.
fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let numbered_key = name
        .strip_prefix("key")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()));
    numbered_key
        || name.ends_with("masterkey")
        || name.ends_with("connectionstring")
        || name == "primarykey"
        || name == "secondarykey"
        || matches!(
            name.as_str(),
            "token" | "access_token" | "refresh_token" | "client_secret" | "password" | "secret"
        )
}

/// A copy of `value` with every secret field's string replaced by `REDACTED`.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_field(k) && v.is_string() {
                        Value::String(REDACTED.into())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// az's progress indicator: a turning bar on stderr, erased when dropped.
struct Spinner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut stderr = std::io::stderr();
            for frame in ['|', '/', '-', '\\'].iter().cycle() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let _ = write!(stderr, "\r{frame} Running ..");
                let _ = stderr.flush();
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = write!(stderr, "\r\x1b[K");
            let _ = stderr.flush();
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redact_hides_keys_connection_strings_and_tokens_but_not_their_names() {
        let body = json!({
            "key1": "a", "key2": "b", "keyName": "Key1", "keyKind": "primary",
            "apiKeyEnabled": true,
            "primaryKey": {"key": "c", "createdAt": "2026-01-01T00:00:00Z"},
            "primaryMasterKey": "d", "secondaryReadonlyMasterKey": "e",
            "primaryConnectionString": "ApiKey=f;",
            "connectionStrings": [{"connectionString": "AccountKey=g;", "keyKind": "Primary"}],
            "token": "h"
        });
        let text = redact(&body).to_string();
        for secret in [
            "\"a\"", "\"b\"", "\"c\"", "\"d\"", "\"e\"", "f;", "g;", "\"h\"",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        for kept in ["Key1", "primary", "\"apiKeyEnabled\":true", "2026-01-01"] {
            assert!(text.contains(kept), "{kept} lost: {text}");
        }
    }

    #[test]
    fn retry_after_is_bounded_and_defaults_to_a_second() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), DEFAULT_POLL_INTERVAL);
        headers.insert(RETRY_AFTER, "86400".parse().unwrap());
        assert_eq!(retry_after(&headers), MAX_POLL_INTERVAL);
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::from_secs(2));
    }
}

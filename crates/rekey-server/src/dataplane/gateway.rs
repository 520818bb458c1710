//! Owns forwarding of authenticated data-plane requests to the resource's upstream: method, the path
//! below the resource prefix (as [`super::path::resolve`] left it: below the upstream's base path),
//! query, headers and a streamed body go through; the key material and hop-by-hop headers are
//! removed and `x-rekey-key-name`, `x-rekey-resource-id` and `x-rekey-access` are set, replacing any
//! the client sent. Upstream connections (`http://`, or `https://` checked against the Mozilla roots
//! and `--upstream-ca-file`) are kept alive and reused across calls and clients, as a reverse
//! proxy's upstream pool.

use std::path::Path;

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Request, Response, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

/// How calls reach upstreams: bodyless calls from the fast path through
/// [`super::upstream`]'s pool, everything else through hyper's client; each keeps its connections
/// alive per upstream.
pub struct HttpClient {
    pub hyper: Client<HttpsConnector<HttpConnector>, Body>,
    pub pool: std::sync::Arc<super::upstream::Pool>,
}

/// The upstream client: one pool of kept-alive HTTP/1.1 connections per upstream host. `ca_file`
/// (PEM, `--upstream-ca-file`) adds certificate authorities for `https://` upstreams to the Mozilla
/// roots, e.g. a private CA's.
pub fn client(ca_file: Option<&Path>) -> anyhow::Result<HttpClient> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let context = || format!("reading --upstream-ca-file {}", path.display());
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).with_context(context)? {
            roots
                .add(cert.with_context(context)?)
                .with_context(context)?;
            added += 1;
        }
        anyhow::ensure!(
            added > 0,
            "--upstream-ca-file {} holds no PEM certificate",
            path.display()
        );
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the upstream TLS configuration")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    // A forwarded call is one small write each way: Nagle's delay would only add latency.
    http.set_nodelay(true);
    http.enforce_http(false);
    let tls = std::sync::Arc::new(tls);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(HttpClient {
        hyper: Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(connector),
        pool: std::sync::Arc::new(super::upstream::Pool::new(tls)),
    })
}

pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop headers: the fixed ones, and those each `Connection` line names (RFC 9110
/// §7.6.1), which are meant for this hop only.
fn remove_hop_by_hop(headers: &mut axum::http::HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|option| HeaderName::from_bytes(option.trim_ascii()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

pub struct Forward<'a> {
    pub upstream: &'a super::upstream::Upstream,
    pub rest: &'a str,
    /// Headers that carry key material for this type, removed before forwarding.
    pub strip: &'a [&'a str],
    pub key_name: &'a str,
    pub resource_id: &'a str,
    /// `readOnly` or `readWrite`: what the key may do.
    pub access: &'a str,
    /// The body is cut off past this many bytes.
    pub max_body_bytes: usize,
}

/// Why a request was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotForwarded {
    /// The streamed body grew past the limit.
    TooLarge,
    /// The upstream did not answer (or its URL is unusable).
    UpstreamFailed,
    /// The `https://` upstream's certificate is not trusted (nor valid for its name).
    UpstreamUntrusted,
}

/// `error` and every error it was caused by, in order. An `io::Error` wrapping another error
/// (as the TLS connector wraps rustls' errors, sometimes twice) leads to that error: its own
/// `source` would skip it.
fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| {
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        }
    })
}

fn body_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    causes(error).any(|e| e.is::<http_body_util::LengthLimitError>())
}

/// Whether the upstream's TLS certificate was refused (untrusted, expired, for another name).
pub(crate) fn untrusted(error: &(dyn std::error::Error + 'static)) -> bool {
    causes(error).any(|e| {
        matches!(
            e.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        )
    })
}

/// Sends the request upstream and returns its response.
pub async fn forward(
    client: &HttpClient,
    f: Forward<'_>,
    request: Request<Body>,
) -> Result<Response<Body>, NotForwarded> {
    let target = match request.uri().query() {
        Some(q) => format!("{}/{}?{q}", f.upstream.url(), f.rest),
        None => format!("{}/{}", f.upstream.url(), f.rest),
    };
    let uri: Uri = target.parse().map_err(|_| NotForwarded::UpstreamFailed)?;
    let (mut parts, body) = request.into_parts();
    let body = Body::new(http_body_util::Limited::new(body, f.max_body_bytes));
    parts.uri = uri;
    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    for name in f.strip {
        headers.remove(*name);
    }
    headers.remove(header::HOST);
    let value = |v: &str| HeaderValue::from_str(v).map_err(|_| NotForwarded::UpstreamFailed);
    headers.insert(
        HeaderName::from_static("x-rekey-key-name"),
        value(f.key_name)?,
    );
    headers.insert(
        HeaderName::from_static("x-rekey-resource-id"),
        value(f.resource_id)?,
    );
    headers.insert(HeaderName::from_static("x-rekey-access"), value(f.access)?);
    match client.hyper.request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, Body::new(body)))
        }
        Err(e) if body_too_large(&e) => Err(NotForwarded::TooLarge),
        Err(e) if untrusted(&e) => {
            tracing::warn!(error = %e, upstream = f.upstream.url(), "upstream certificate not trusted");
            Err(NotForwarded::UpstreamUntrusted)
        }
        Err(e) => {
            tracing::warn!(error = %e, upstream = f.upstream.url(), "upstream did not answer");
            Err(NotForwarded::UpstreamFailed)
        }
    }
}

//! Owns forwarding of authenticated data-plane requests to the resource's upstream: method, the path
//! below the resource prefix (as [`super::path::resolve`] left it: below the upstream's base path),
//! query, headers and a streamed body go through; the key material and hop-by-hop headers are
//! removed and `x-rekey-key-name`, `x-rekey-resource-id` and `x-rekey-access` are set, replacing any
//! the client sent.

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub type HttpClient = Client<HttpConnector, Body>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub struct Forward<'a> {
    pub upstream: &'a str,
    pub rest: &'a str,
    pub query: Option<&'a str>,
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
}

fn body_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Sends the request upstream and returns its response.
pub async fn forward(
    client: &HttpClient,
    f: Forward<'_>,
    request: Request<Body>,
) -> Result<Response<Body>, NotForwarded> {
    let target = match f.query {
        Some(q) => format!("{}/{}?{q}", f.upstream, f.rest),
        None => format!("{}/{}", f.upstream, f.rest),
    };
    let uri: Uri = target.parse().map_err(|_| NotForwarded::UpstreamFailed)?;
    let (mut parts, body) = request.into_parts();
    let body = Body::new(http_body_util::Limited::new(body, f.max_body_bytes));
    parts.uri = uri;
    let headers = &mut parts.headers;
    for name in HOP_BY_HOP.iter().chain(f.strip) {
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
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(*name);
            }
            Ok(Response::from_parts(parts, Body::new(body)))
        }
        Err(e) if body_too_large(&e) => Err(NotForwarded::TooLarge),
        Err(e) => {
            tracing::warn!(error = %e, upstream = f.upstream, "upstream did not answer");
            Err(NotForwarded::UpstreamFailed)
        }
    }
}

//! Owns forwarding of authenticated data-plane requests to the resource's upstream: method, the path
//! below the resource prefix, query, headers and a streamed body go through; the key material and
//! hop-by-hop headers are removed and `x-rekey-key-name` / `x-rekey-resource-id` are added.

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
}

/// Sends the request upstream and returns its response, or `None` if the upstream did not answer.
pub async fn forward(
    client: &HttpClient,
    f: Forward<'_>,
    request: Request<Body>,
) -> Option<Response<Body>> {
    let target = match f.query {
        Some(q) => format!("{}/{}?{q}", f.upstream, f.rest),
        None => format!("{}/{}", f.upstream, f.rest),
    };
    let uri: Uri = target.parse().ok()?;
    let (mut parts, body) = request.into_parts();
    parts.uri = uri;
    let headers = &mut parts.headers;
    for name in HOP_BY_HOP.iter().chain(f.strip) {
        headers.remove(*name);
    }
    headers.remove(header::HOST);
    headers.insert(
        HeaderName::from_static("x-rekey-key-name"),
        HeaderValue::from_str(f.key_name).ok()?,
    );
    headers.insert(
        HeaderName::from_static("x-rekey-resource-id"),
        HeaderValue::from_str(f.resource_id).ok()?,
    );
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(*name);
            }
            Some(Response::from_parts(parts, Body::new(body)))
        }
        Err(e) => {
            tracing::warn!(error = %e, upstream = f.upstream, "upstream did not answer");
            None
        }
    }
}

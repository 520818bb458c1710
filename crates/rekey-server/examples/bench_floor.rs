//! bench/verify's floor: the HTTP stack rekeyd serves with (axum-server, hyper's HTTP/1 with the
//! header-read timer, tokio's multi-threaded runtime, mimalloc), answering every request with a
//! fixed 200 JSON body and checking nothing. The gap between this and nginx is the stack's; the gap
//! between rekeyd and this is rekeyd's own work per call.
//!
//!     cargo run --release --example bench_floor -- 127.0.0.1:PORT

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ANSWER: &str = r#"{"authenticated":true,"resourceId":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/bench/providers/Microsoft.CognitiveServices/accounts/acct","keyName":"key1","access":"readWrite"}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".into())
        .parse()?;
    let listener = rekey_server::connections::listen(addr)?;
    let make = tower::service_fn(|_remote: SocketAddr| async {
        Ok::<_, Infallible>(tower::service_fn(|_request: Request<_>| async {
            let mut response = Response::new(Body::from(ANSWER));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok::<_, Infallible>(response)
        }))
    });
    let mut server = axum_server::from_tcp(listener);
    rekey_server::connections::configure_http(
        &mut server,
        std::time::Duration::from_secs(30),
        64 * 1024,
    );
    server.serve(make).await?;
    Ok(())
}

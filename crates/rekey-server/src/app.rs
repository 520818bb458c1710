//! Owns the assembled HTTP application: the table of every route, authentication on ARM routes,
//! ARM's request-id headers, request logging (method, path, status, time: never headers or bodies;
//! each request's lines in a span with its request id) and counting (by operation id and status),
//! the checks every request passes before any route sees it (one `Host`, body size and time limits:
//! [`Front`]), and ARM-shaped answers for unknown paths and methods.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody as _};
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Version};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rekey_api::RenderContext;
use rekey_store::Store;
use tower::util::MapRequestLayer;
use tower::{Layer as _, Service};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::connections::{BodyDeadline, TimedBody};
use crate::dataplane::{self, DataPlane};
use crate::error::ApiError;
use crate::route_table::{self, Op, RouteTable};
use crate::routes;
use crate::state::{
    new_request_id, request_id_header, AppState, RequestId, CLIENT_REQUEST_ID, CORRELATION_ID,
    REQUEST_ID,
};

/// Every response carries `x-ms-request-id`, echoes `x-ms-correlation-request-id` (a new one if the
/// client sent none) and `x-ms-client-request-id`. One log line per request, with no headers or
/// bodies.
async fn request_ids(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = new_request_id();
    let correlation = request
        .headers()
        .get(&CORRELATION_ID)
        .filter(|v| v.len() <= 128)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&new_request_id()).expect("a UUID is a header value")
        });
    let client_id = request
        .headers()
        .get(&CLIENT_REQUEST_ID)
        .filter(|v| v.len() <= 128)
        .cloned();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    // Every line logged while the request is handled carries its id (`telemetry`).
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = next.run(request).instrument(span.clone()).await;
    let headers = response.headers_mut();
    headers.insert(
        REQUEST_ID,
        HeaderValue::from_str(&request_id).expect("a UUID is a header value"),
    );
    headers.insert(CORRELATION_ID, correlation);
    if let Some(id) = client_id {
        headers.insert(CLIENT_REQUEST_ID, id);
    }
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let operation = response
        .extensions()
        .get::<Operation>()
        .map_or("unmatched", |op| &*op.0);
    crate::metrics::management_call(operation, status);
    let _entered = span.enter();
    // Data-plane calls are the high-volume path: logged at debug, management calls at info.
    if path.starts_with("/data/") {
        tracing::debug!(%method, path, status, elapsed_ms, "data-plane request");
    } else {
        tracing::info!(%method, path, status, elapsed_ms, "request");
    }
    response
}

/// The route table's operation id of the route that answered, for `rekey_management_requests_total`.
#[derive(Clone)]
struct Operation(Arc<str>);

/// Every documented operation's id by method and route path.
type Operations = std::collections::HashMap<(Method, String), Arc<str>>;

fn operations(openapi: &utoipa::openapi::OpenApi) -> Operations {
    let mut ids = Operations::new();
    for (path, item) in &openapi.paths.paths {
        let methods = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
            (Method::HEAD, &item.head),
        ];
        for (method, op) in methods {
            if let Some(id) = op.as_ref().and_then(|op| op.operation_id.as_deref()) {
                ids.insert((method, path.clone()), Arc::from(id));
            }
        }
    }
    ids
}

/// Names the answer with its route's operation id. A route layer, so it runs after routing (which
/// sets [`MatchedPath`]) and before authentication, whose refusals it names too.
async fn name_operation(
    State(ids): State<Arc<Operations>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let method = request.method().clone();
    let mut response = next.run(request).await;
    let id = path.and_then(|path| {
        let get = (method == Method::HEAD).then(|| (Method::GET, path.clone()));
        ids.get(&(method, path))
            .or_else(|| get.and_then(|key| ids.get(&key)))
    });
    if let Some(id) = id {
        response.extensions_mut().insert(Operation(id.clone()));
    }
    response
}

/// After any management call that may have changed keys or resources, the data plane's index catches
/// up with the change feed before the answer leaves, and, with other nodes holding leases, every one
/// of them has applied it too (or lost its lease): an acknowledged regeneration is already in force
/// everywhere.
/// The event delivery task is woken too, for the events the change wrote.
async fn sync_index_after_writes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD);
    let response = next.run(request).await;
    // A 503 means the store could not be reached: nothing to catch up with, and trying would only
    // keep the client waiting for a second timeout.
    if writes && response.status() != StatusCode::SERVICE_UNAVAILABLE {
        // The write may have committed events: the delivery task sends them now, off this request.
        state.events.wake();
        if let Err(e) = state.dataplane.index.catch_up().await {
            tracing::error!(error = %e, "the key index could not catch up after a write");
            return ApiError::Unavailable.into_response();
        }
        if let Some(membership) = &state.dataplane.membership {
            let position = match state.dataplane.index.caught_up_through().await {
                Ok(position) => position,
                Err(e) => {
                    tracing::error!(error = %e, "could not read the change feed's position");
                    return ApiError::Unavailable.into_response();
                }
            };
            if let Err(e) = membership.wait_for_acks(position).await {
                tracing::error!(error = %e, "could not learn whether every node applied a write");
                return ApiError::Unavailable.into_response();
            }
            state.dataplane.index.settle(position);
        }
    }
    response
}

async fn not_found(request: Request) -> ApiError {
    let path = request.uri().path();
    ApiError::NotFound {
        code: "NotFound",
        message: format!("No route serves {} {path}.", request.method()),
    }
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "The requested resource does not support http method '{}'.",
        request.method()
    ))
}

/// axum answers an oversize body with a plain-text 413; this gives it ARM's error shape. Answers
/// that already carry JSON (the data plane's, in its type's shape) are left alone.
async fn too_large(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return ApiError::PayloadTooLarge.into_response();
    }
    response
}

/// The route table with every route of the service.
pub fn route_table() -> RouteTable {
    let mut table = RouteTable::new();
    routes::subscriptions::register(&mut table);
    routes::resource_groups::register(&mut table);
    routes::resources::register(&mut table);
    routes::rotation::register(&mut table);
    routes::role_assignments::register(&mut table);
    routes::tokens::register(&mut table);
    routes::activity_log::register(&mut table);
    routes::event_subscriptions::register(&mut table);
    crate::oauth::register(&mut table);
    crate::web::register(&mut table);
    let verify_schemas = verify_schemas(&mut table);
    table.route(
        Method::POST,
        "/verify",
        Op::authenticated(
            "Verify",
            "Checks a key: which resource and slot it opens now, if any.",
        )
        .body(verify_schemas.0, true)
        .response(
            200,
            "{\"valid\":true,\"resourceId\",\"keyName\",\"access\"} or {\"valid\":false}",
            Some(verify_schemas.1),
        ),
        post(dataplane::verify),
    );
    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        table.document(
            method.clone(),
            "/data/{resourceId}/{path}",
            Op::public(
                format!("DataPlane_{}", method.as_str()),
                "A resource's data plane: checked with the type's key scheme, then forwarded or answered.",
            )
            .response(200, "Authenticated (or the upstream's answer)", None)
            .response(400, "The path climbs above the resource, or holds an encoded '/', '\\' or NUL", None)
            .response(401, "No valid key", None)
            .response(403, "Key authentication disabled, or a read-only key writing", None)
            .response(404, "No resource is served at this endpoint", Some("ErrorResponse".into()))
            .response(413, "The body is larger than --max-data-plane-body-bytes", None)
            .response(429, "Too many failed key checks from this address", None)
            .response(502, "The resource's upstream did not answer", None),
        );
    }
    table.route(
        Method::GET,
        "/healthz",
        Op::public("Health", "Liveness: answers 200 while the process serves.").response(
            200,
            "Alive",
            Some(route_table::TEXT.into()),
        ),
        get(|| async { "ok" }),
    );
    table.route(
        Method::GET,
        "/readyz",
        Op::public("Ready", "Readiness: answers 200 when the store answers.")
            .response(200, "Ready", Some(route_table::TEXT.into()))
            .response(503, "Store unavailable", Some(route_table::TEXT.into())),
        get(|State(state): State<AppState>| async move {
            match state.store.bootstrap().await {
                Ok(_) => (StatusCode::OK, "ready").into_response(),
                Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response(),
            }
        }),
    );
    table.route(
        Method::GET,
        "/metrics",
        Op::public(
            "Metrics",
            "This node's metrics in the OpenMetrics text format, for Prometheus. Served to callers on \
             this host without a token, and to others with a token allowed to read metrics \
             (--metrics-access).",
        )
        .response_text(200, "The metrics", "application/openmetrics-text")
        .response(401, "No token, from another host", Some("ErrorResponse".into()))
        .response(403, "The token's principal may not read metrics", Some("ErrorResponse".into()))
        .response(404, "--metrics-access off", Some("ErrorResponse".into())),
        get(crate::metrics::serve),
    );
    table.route(
        Method::GET,
        "/openapi.json",
        Op::public("OpenApi", "This OpenAPI description.").response(
            200,
            "OpenAPI 3 document",
            Some("OpenApiDocument".into()),
        ),
        get(|State(state): State<AppState>| async move { Json((*state.openapi).clone()) }),
    );
    table
}

/// Registers the bodies of `POST /verify` (request, answer) and the OpenAPI document's own schema;
/// returns the names of the first two.
fn verify_schemas(table: &mut RouteTable) -> (String, String) {
    use rekey_api::mapping::schema_of;
    use rekey_api::service::{OpenApiDocument, VerifyRequest, VerifyResult};
    let mut all = Vec::new();
    let names = (
        schema_of::<VerifyRequest>(&mut all),
        schema_of::<VerifyResult>(&mut all),
    );
    schema_of::<OpenApiDocument>(&mut all);
    table.schemas(all);
    names
}

/// The OpenAPI description of everything [`route_table`] serves.
pub fn openapi_document() -> serde_json::Value {
    serde_json::to_value(route_table().openapi).expect("the OpenAPI document serializes")
}

/// The service of one client connection: data-plane calls (`/data/…`, the hot path) go straight to
/// [`dataplane::handle`], without the router's matching, extractors or the management API's
/// middleware; everything else goes to the router, with the client's address as `ConnectInfo`.
///
/// Every request, whichever way it goes, first passes the checks no route should have to
/// remember: exactly one `Host` on HTTP/1.1 (400), an announced management body within
/// `--max-body-bytes` (413 at once, before any of it is read), and a body that arrives in time
/// (`--body-read-timeout-seconds`, see [`BodyDeadline`]: 408). The rest of a body refused with
/// 413 or 408 is never read, so those answers also close the connection.
#[derive(Clone)]
pub struct Front {
    router: Router,
    /// Behind one more `Arc`, so a data-plane call clones one reference, not each of the state's.
    state: Arc<AppState>,
    remote: SocketAddr,
    max_body_bytes: usize,
    body_read_timeout: Duration,
}

impl Front {
    /// What a data-plane call on this connection needs: the state and the client's address.
    pub fn data_plane(&self) -> (Arc<AppState>, std::net::IpAddr) {
        (self.state.clone(), self.remote.ip())
    }

    /// The same application, for a connection from `remote`.
    pub fn for_connection(&self, remote: SocketAddr) -> Front {
        Front {
            remote,
            ..self.clone()
        }
    }

    /// The same application with `--body-read-timeout-seconds` (30 s unless set).
    pub fn with_body_read_timeout(self, body_read_timeout: Duration) -> Front {
        Front {
            body_read_timeout,
            ..self
        }
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`; no request has more than one.
/// HTTP/1.0 predates `Host`, and HTTP/2's `:authority` (the URI's authority in hyper) replaces it.
fn host_refusal<B>(request: &axum::http::Request<B>) -> Option<ApiError> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let message = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => "The request has more than one Host header; send exactly one.",
        (None, _) if request.version() == Version::HTTP_11 => {
            "An HTTP/1.1 request must have a Host header."
        }
        _ => return None,
    };
    Some(ApiError::bad_request("BadRequest", message))
}

/// `error`'s answer, telling an HTTP/1 client (and hyper) that the connection ends with it: the
/// rest of the body is never read. HTTP/2 has no `Connection` header; there only the stream ends.
fn closing(error: ApiError, version: Version) -> Response {
    let mut response = error.into_response();
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
        .headers_mut()
        .insert(REQUEST_ID, request_id_header());
    response
}

/// 408 in place of `response` when the request's body timed out, whatever the body's reader made
/// of the failure (a 400 for an unreadable body, a 502 for an upload cut short), keeping the
/// request-id headers already set.
fn unless_timed_out(
    response: Response,
    timed_out: Option<Arc<AtomicBool>>,
    version: Version,
) -> Response {
    if !timed_out.is_some_and(|t| t.load(Ordering::Relaxed)) {
        return response;
    }
    tracing::info!("request body too slow: answered 408 and closed the connection");
    let mut timeout = closing(ApiError::RequestTimeout, version);
    for name in [REQUEST_ID, CORRELATION_ID, CLIENT_REQUEST_ID] {
        if let Some(value) = response.headers().get(&name) {
            timeout.headers_mut().insert(name, value.clone());
        }
    }
    timeout
}

impl<B> Service<axum::http::Request<B>> for Front
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        if let Some(refusal) = host_refusal(&request) {
            let mut response = refusal.into_response();
            response
                .headers_mut()
                .insert(REQUEST_ID, request_id_header());
            return Box::pin(std::future::ready(Ok(response)));
        }
        let data_plane = dataplane::split_path(request.uri().path()).is_some();
        let version = request.version();
        // The data plane refuses an oversize body itself, in the resource type's error shape.
        if !data_plane {
            let announced = request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if announced.is_some_and(|n| n > self.max_body_bytes as u64) {
                let response = closing(ApiError::PayloadTooLarge, version);
                return Box::pin(std::future::ready(Ok(response)));
            }
        }
        // A body that came whole with its head (or none at all) needs no timer.
        let mut timed_out = None;
        let mut request = request.map(|body| {
            let body = Body::new(body);
            if body.is_end_stream() {
                return body;
            }
            let deadline = if data_plane {
                BodyDeadline::BetweenReads
            } else {
                BodyDeadline::Whole
            };
            let timed = TimedBody::new(body, deadline, self.body_read_timeout);
            timed_out = Some(timed.timed_out());
            Body::new(timed)
        });
        if data_plane {
            let state = self.state.clone();
            let remote = self.remote.ip();
            return Box::pin(async move {
                let response = dataplane::handle(&state, remote, request).await;
                Ok(unless_timed_out(response, timed_out, version))
            });
        }
        request.extensions_mut().insert(ConnectInfo(self.remote));
        let routed = self.router.call(request);
        Box::pin(async move {
            let response = routed.await?;
            Ok(unless_timed_out(response, timed_out, version))
        })
    }
}

/// The long-lived services the application's state holds, made before it is built.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub dataplane: Arc<DataPlane>,
    pub events: Arc<crate::events::Events>,
    pub issuer: Arc<crate::oauth::TokenIssuer>,
}

/// Builds the application. `max_body_bytes` bounds every management request body.
pub fn build(
    services: Services,
    ctx: RenderContext,
    tenant_id: Uuid,
    max_body_bytes: usize,
    metrics_access: crate::metrics::Access,
) -> Front {
    let Services {
        store,
        dataplane,
        events,
        issuer,
    } = services;
    let table = route_table();
    let operations = Arc::new(operations(&table.openapi));
    let mut openapi =
        serde_json::to_value(&table.openapi).expect("the OpenAPI document serializes");
    crate::oauth::describe_this_server(&mut openapi, tenant_id, &ctx.public_url);
    let openapi = Arc::new(openapi);
    // The session cookie is Secure whenever browsers reach rekeyd over HTTPS.
    let sessions = Arc::new(crate::web::session::Sessions::new(
        ctx.public_url.starts_with("https://"),
    ));
    let state = AppState {
        store,
        sessions,
        ctx: Arc::new(ctx),
        tenant_id,
        openapi,
        dataplane,
        events,
        issuer,
        metrics_access,
    };
    let arm = table
        .arm
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            sync_index_after_writes,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_principal,
        ))
        .route_layer(middleware::from_fn_with_state(
            operations.clone(),
            name_operation,
        ));
    let public = table
        .public
        .route_layer(middleware::from_fn_with_state(operations, name_operation));
    let inner = Router::new()
        .merge(arm)
        .merge(public)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(too_large))
        .layer(middleware::from_fn(request_ids))
        .with_state(state.clone());
    // ARM's fixed path segments are case-insensitive and routing is not: paths are normalized first.
    let router = Router::new().fallback_service(MapRequestLayer::new(normalize).layer(inner));
    Front {
        router,
        state: Arc::new(state),
        remote: SocketAddr::from(([0, 0, 0, 0], 0)),
        max_body_bytes,
        body_read_timeout: Duration::from_secs(30),
    }
}

fn normalize(mut request: Request) -> Request {
    if let Some(uri) = routes::normalize_uri(request.uri()) {
        *request.uri_mut() = uri;
    }
    request
}

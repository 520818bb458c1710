//! The data plane: every call to a resource's endpoint (`/data/{internal id}/…`) is checked against
//! the resource's live keys with the type's scheme (`Ocp-Apim-Subscription-Key`,
//! `x-ms-quantum-api-key`, or Cosmos DB's signed `Authorization`), then forwarded to the resource's
//! upstream or answered by rekeyd itself; and `POST /verify` for applications that check keys
//! themselves. Every call goes through [`answer`], from the fast path and from hyper alike: its path
//! is resolved by [`path::resolve`], its client address found by [`proxies`] (used for throttling
//! and logging), and it is logged at debug, its refusal at info (within [`refusal_log`]'s budget),
//! both in a `request` span with the answer's request id; each call is counted by type and result
//! where it is decided ([`metrics`]).
//! Lookups use the in-memory [`index::KeyIndex`], and wait on the store only while it loads (each
//! call then reads its one resource, [`index::Lookup`]). With other nodes
//! writing to it, a check trusts the index only while this node's lease holds ([`membership`]), or,
//! with a positive staleness bound, first confirms the index is recent enough (see `index`).

pub mod cosmos;
pub mod gateway;
pub mod index;
pub mod membership;
pub mod parts;
pub mod path;
pub mod proxies;
pub mod refusal_log;
pub mod rotation;
#[cfg(test)]
mod test_store;
pub mod throttle;
pub mod upstream;
pub mod usage;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rekey_api::service::{Access, VerifyRequest, VerifyResult};
use rekey_core::cosmos_auth;
use rekey_core::providers::Slot;
use rekey_core::Provider;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::authz::{Caller, VERIFY_ACTION};
use crate::error::ApiError;
use crate::metrics::{self, Outcome};
use crate::state::AppState;
use index::{Entry, Lookup};
pub use parts::DataPlane;

/// Why a data-plane call was refused; rendered in the resource type's own error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    InvalidKey,
    /// A key a regeneration replaced at this time (Unix microseconds): no guess, so no throttle.
    Retired(i64),
    /// The key's slot is disabled (rekey's own control).
    SlotDisabled,
    StaleDate,
    Disabled,
    ReadOnly,
    Throttled(u64),
    UpstreamFailed,
    UpstreamUntrusted,
    TooLarge,
    /// The index is not known to be current and the store cannot be asked now.
    Unavailable,
    /// No resource is served at this id.
    UnknownResource,
    BadPath(path::BadPath),
}

impl Refusal {
    /// How `rekey_dataplane_requests_total` counts it.
    fn outcome(self) -> Outcome {
        match self {
            Refusal::InvalidKey | Refusal::StaleDate => Outcome::Unauthorized,
            Refusal::Disabled | Refusal::ReadOnly => Outcome::Forbidden,
            Refusal::Throttled(_) => Outcome::Throttled,
            Refusal::UpstreamFailed | Refusal::UpstreamUntrusted => Outcome::UpstreamFailed,
            Refusal::TooLarge | Refusal::BadPath(_) => Outcome::BadRequest,
            Refusal::Unavailable => Outcome::Unavailable,
            Refusal::UnknownResource => Outcome::NotFound,
            Refusal::Retired(_) => Outcome::Retired,
            Refusal::SlotDisabled => Outcome::Disabled,
        }
    }

    /// Whether the refusal counts towards the client's failed-key throttle: only a key that is
    /// nothing the resource ever had (a guess), not an old or disabled one.
    fn is_guess(self) -> bool {
        !matches!(self, Refusal::Retired(_) | Refusal::SlotDisabled)
    }

    /// What the refusal log says.
    fn reason(self) -> &'static str {
        match self {
            Refusal::InvalidKey => "no valid key",
            Refusal::Retired(_) => "a regenerated key",
            Refusal::SlotDisabled => "the key's slot is disabled",
            Refusal::StaleDate => "x-ms-date too far from now",
            Refusal::Disabled => "key authentication disabled",
            Refusal::ReadOnly => "read-only key writing",
            Refusal::Throttled(_) => "throttled",
            Refusal::UpstreamFailed => "upstream did not answer",
            Refusal::UpstreamUntrusted => "upstream certificate not trusted",
            Refusal::TooLarge => "body too large",
            Refusal::Unavailable => "key store unavailable",
            Refusal::UnknownResource => "no such resource",
            Refusal::BadPath(path::BadPath::ClimbsAboveResource) => {
                "path climbs above the resource"
            }
            Refusal::BadPath(path::BadPath::EncodedSeparator) => "path holds an encoded separator",
            Refusal::BadPath(path::BadPath::Backslash) => "path holds a backslash or NUL",
            Refusal::BadPath(path::BadPath::MalformedEscape) => "path holds a malformed escape",
        }
    }
}

fn refuse(provider: Option<&Provider>, refusal: Refusal) -> Answer {
    let cosmos = provider.is_some_and(|p| p.signs_requests);
    let retired_message;
    let (status, code, message) = match refusal {
        Refusal::UnknownResource => return not_served(),
        Refusal::Retired(at) => {
            let at = rotation::format_time(at);
            retired_message = if cosmos {
                format!("The input authorization token can't serve the request: this key was regenerated at {at}; use the resource's current key.")
            } else {
                format!("Access denied due to invalid subscription key: this key was regenerated at {at}; use the resource's current key.")
            };
            let code = if cosmos { "Unauthorized" } else { "401" };
            (StatusCode::UNAUTHORIZED, code, retired_message.as_str())
        }
        Refusal::SlotDisabled if cosmos => (
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The input authorization token can't serve the request: this key is disabled.",
        ),
        Refusal::SlotDisabled => (
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key: this key is disabled.",
        ),
        Refusal::BadPath(why) => (StatusCode::BAD_REQUEST, "BadRequest", why.message()),
        Refusal::InvalidKey if cosmos => (
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The input authorization token can't serve the request. The wrong key is being used or the expected payload is not built as per the protocol.",
        ),
        Refusal::InvalidKey => (
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        ),
        Refusal::StaleDate => (
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The authorization token is not valid at the current time: x-ms-date must be within 15 minutes of the server's time.",
        ),
        Refusal::Disabled => (
            StatusCode::FORBIDDEN,
            "AuthenticationTypeDisabled",
            "Key based authentication is disabled for this resource.",
        ),
        Refusal::ReadOnly => (
            StatusCode::FORBIDDEN,
            "Forbidden",
            "A read-only key can serve only reads (GET, HEAD and queries); this request writes.",
        ),
        Refusal::Throttled(_) => (
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many failed key checks from this address; retry after the time in Retry-After.",
        ),
        Refusal::UpstreamFailed => (StatusCode::BAD_GATEWAY, "BadGateway", "The resource's upstream did not answer."),
        Refusal::UpstreamUntrusted => (
            StatusCode::BAD_GATEWAY,
            "BadGateway",
            "The resource's upstream presented a TLS certificate this server does not trust; its operator can add the upstream's CA with --upstream-ca-file.",
        ),
        Refusal::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "The request body is larger than this server accepts on the data plane.",
        ),
        Refusal::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Keys cannot be checked now: the key store does not answer. Retry after the time in Retry-After.",
        ),
    };
    let body = if cosmos {
        json!({ "code": code, "message": message })
    } else {
        json!({ "error": { "code": code, "message": message } })
    };
    let retry_after = match refusal {
        Refusal::Throttled(seconds) => Some(seconds),
        Refusal::Unavailable => Some(1),
        _ => None,
    };
    Answer::Json {
        status,
        body: body.to_string().into_bytes(),
        retry_after,
    }
}

/// A data-plane answer. Nearly all are a status and a JSON body (with `retry-after` on some
/// refusals), which `fastpath` writes straight into its output without building a [`Response`];
/// an upstream's answer to a call forwarded from the fast path is passed on as read, its head
/// straight into the fast path's output too; hyper's forwarded answers and management-style errors
/// are a whole [`Response`].
pub enum Answer {
    Json {
        status: StatusCode,
        body: Vec<u8>,
        retry_after: Option<u64>,
    },
    Upstream(upstream::Answer),
    Full(Response),
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Json {
                status,
                body,
                retry_after,
            } => {
                let mut response = Response::new(Body::from(body));
                *response.status_mut() = status;
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                if let Some(seconds) = retry_after {
                    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                }
                response
            }
            Answer::Upstream(answer) => answer.into_response(),
            Answer::Full(response) => response,
        }
    }
}

impl Answer {
    pub fn status(&self) -> StatusCode {
        match self {
            Answer::Json { status, .. } => *status,
            Answer::Upstream(answer) => answer.status,
            Answer::Full(response) => response.status(),
        }
    }
}

/// The slot a key-header type's presented key opens on `entry` (a current key, or a replaced one
/// in its overlap), or why not. A replaced key within the recognition window is counted as such.
fn header_key_slot(
    state: &AppState,
    entry: &Entry,
    call: &impl Call,
    client: IpAddr,
    now: i64,
) -> Result<usize, Refusal> {
    let header = entry.provider.key_header.ok_or(Refusal::InvalidKey)?;
    let presented = call.header(header).ok_or(Refusal::InvalidKey)?;
    // A key of the wrong shape is refused before its digest is computed; its checksum is not
    // checked, as only keys rekey generated (all with a valid checksum) can match.
    entry
        .provider
        .key_format
        .check_shape(presented)
        .map_err(|_| Refusal::InvalidKey)?;
    let digest = state.store.key_digest(presented);
    if let Some(slot) = entry.slot_with_digest(&digest) {
        return Ok(slot);
    }
    let window = state.dataplane.retired_window_micros;
    match rotation::old_key(entry, &digest, now, window) {
        Some(rotation::OldKey::Grace(slot)) => Ok(slot),
        Some(rotation::OldKey::Retired(retired)) => {
            retired.presented.count(now, client);
            Err(Refusal::Retired(retired.regenerated_at))
        }
        None => Err(Refusal::InvalidKey),
    }
}

/// Whether a POST at `rest` (decoded, resolved) is a Cosmos DB query a read-only key may send. Each
/// header counts only when sent once, so the upstream cannot read another value than was checked.
fn is_cosmos_query(rest: &str, call: &impl Call) -> bool {
    let single = |name| {
        let mut lines = call.header_lines(name);
        let first = lines.next();
        lines.next().is_none().then_some(first).flatten()
    };
    cosmos_auth::is_query(
        rest,
        single("x-ms-documentdb-isquery"),
        single("content-type"),
    )
}

/// Splits a data-plane path, `/data/{id}` or `/data/{id}/{rest}`, into the id and the rest (still
/// percent-encoded); `None` for any other path.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let below = path.strip_prefix("/data/")?;
    let (id, rest) = below.split_once('/').unwrap_or((below, ""));
    (!id.is_empty()).then_some((id, rest))
}

/// `ANY /data/{id}[/{rest}]` from the client at `remote`. Called for every path [`split_path`]
/// accepts, straight from the connection's service (`app::Front`): the router's matching and
/// extractors cost more than the key check itself.
pub async fn handle(state: &AppState, remote: IpAddr, request: Request) -> Response {
    let uri = request.uri().clone();
    let request_id = crate::state::next_request_id();
    // A whole request can always be forwarded, so every call is answered; `not_served` only keeps
    // this total.
    let mut response = answer(state, remote, uri.path(), request_id, request)
        .await
        .unwrap_or_else(not_served)
        .into_response();
    let mut id = Uuid::encode_buffer();
    let id = request_id.hyphenated().encode_lower(&mut id);
    response.headers_mut().insert(
        crate::state::REQUEST_ID,
        HeaderValue::from_str(id).expect("a UUID is a header value"),
    );
    response
}

/// A call being forwarded: the upstream's answer ([`Answer::Upstream`] or [`Answer::Full`]), or why
/// there is none. Boxed: inline it would make every call's future several times larger.
pub type Forwarding<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Answer, gateway::NotForwarded>> + Send + 'a>,
>;

/// What the data plane reads of a call: its method, its headers, and for forwarding the whole
/// request. hyper's [`Request`] is one; `fastpath` checks a call straight from the parsed head,
/// without building one.
pub trait Call: Send {
    fn method(&self) -> &Method;
    /// The first value of the header `name` (lower case), if it is visible ASCII.
    fn header(&self, name: &str) -> Option<&str>;
    /// Every line of the header `name` (lower case) in order; one that is not visible ASCII reads
    /// as empty.
    fn header_lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a;
    /// Whether [`Call::forward`] can forward this call.
    fn can_forward(&self) -> bool;
    /// Forwards the call as `f` says, with `client`.
    fn forward<'a>(
        self,
        client: &'a gateway::HttpClient,
        f: gateway::Forward<'a>,
    ) -> Forwarding<'a>
    where
        Self: 'a;
}

impl Call for Request {
    fn method(&self) -> &Method {
        Request::method(self)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers().get(name).and_then(|v| v.to_str().ok())
    }

    fn header_lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or(""))
    }

    fn can_forward(&self) -> bool {
        true
    }

    fn forward<'a>(self, client: &'a gateway::HttpClient, f: gateway::Forward<'a>) -> Forwarding<'a>
    where
        Self: 'a,
    {
        Box::pin(async move { gateway::forward(client, f, self).await.map(Answer::Full) })
    }
}

/// A data-plane call at `path` (`/data/{id}[/{rest}]`, no query) from the peer `remote`, whose
/// answer will carry `request_id` as `x-ms-request-id` (the caller adds it): answered, or `None`
/// only when the resource has an upstream and `call` cannot be forwarded (decided before anything
/// else is done or counted, so the caller can give the call to something that can forward it,
/// which calls this again).
pub async fn answer(
    state: &AppState,
    remote: IpAddr,
    path: &str,
    request_id: Uuid,
    call: impl Call,
) -> Option<Answer> {
    let timer = metrics::start_call();
    let client = state
        .dataplane
        .trusted_proxies
        .client(remote, || call.header_lines("x-forwarded-for"));
    // Only read when the line will be written: the level check is a cached load.
    let method = tracing::enabled!(tracing::Level::DEBUG).then(|| call.method().clone());
    let answer = match split_path(path) {
        Some((id, raw_rest)) => serve(state, client, id, raw_rest, request_id, call).await?,
        None => not_served(),
    };
    metrics::end_call(timer);
    if let Some(method) = method {
        let _request = tracing::info_span!("request", %request_id).entered();
        // Never a header: the key travels in one.
        tracing::debug!(%method, path, status = answer.status().as_u16(), %client, "data-plane call");
    }
    Some(answer)
}

impl DataPlane {
    /// The refusal's answer, logged at info within the refusal log's budget: the resource (its
    /// resource id when it exists, else the id in the path), the slot when a key was recognised,
    /// the reason and the client. Never the key.
    fn refused(
        &self,
        client: IpAddr,
        request_id: Uuid,
        resource: &str,
        slot: Option<&str>,
        provider: Option<&Provider>,
        refusal: Refusal,
    ) -> Answer {
        metrics::data_plane_call(provider, refusal.outcome());
        let answer = refuse(provider, refusal);
        if tracing::enabled!(tracing::Level::INFO) && self.refusal_log.allow() {
            let _request = tracing::info_span!("request", %request_id).entered();
            tracing::info!(
                status = answer.status().as_u16(),
                reason = refusal.reason(),
                resource,
                slot = slot.unwrap_or("-"),
                %client,
                "data-plane call refused"
            );
        }
        answer
    }
}

fn not_served() -> Answer {
    Answer::Full(
        ApiError::NotFound {
            code: "ResourceNotFound",
            message: "No rekey resource is served at this endpoint.".into(),
        }
        .into_response(),
    )
}

/// What rekeyd answers for an authenticated call when no upstream is configured. The common case
/// is written straight into the body by [`self_answer`]; this struct is for the Cosmos account
/// document, which embeds it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Authenticated<'a> {
    authenticated: bool,
    resource_id: &'a str,
    key_name: &'a str,
    access: &'a str,
    method: &'a str,
    path: String,
}

/// The self-answer, `{"authenticated":true,"resourceId":…,"keyName":…,"access":…,"method":…,"path":…}`,
/// written straight into the body: the resource id from its scope and name, no intermediate `String`.
fn self_answer(
    entry: &index::EntryRef<'_>,
    key: &Slot,
    access: &str,
    method: &Method,
    rest: &str,
) -> Answer {
    let scope = entry.scope();
    let mut body = Vec::with_capacity(128 + scope.len() + entry.name().len() + rest.len());
    body.extend_from_slice(b"{\"authenticated\":true,\"resourceId\":");
    json_string(&mut body, &[scope, entry.name()]);
    body.extend_from_slice(b",\"keyName\":");
    json_string(&mut body, &[key.name]);
    body.extend_from_slice(b",\"access\":");
    json_string(&mut body, &[access]);
    body.extend_from_slice(b",\"method\":");
    json_string(&mut body, &[method.as_str()]);
    body.extend_from_slice(b",\"path\":");
    json_string(&mut body, &["/", rest]);
    body.push(b'}');
    Answer::Json {
        status: StatusCode::OK,
        body,
        retry_after: None,
    }
}

/// Writes `parts`, one after the other, as one JSON string. Names and paths seldom need escaping
/// (the path's percent-encoding is kept), so each part is copied whole unless it holds a byte
/// JSON escapes; only then does serde_json write it, escaped.
fn json_string(out: &mut Vec<u8>, parts: &[&str]) {
    out.push(b'"');
    for part in parts {
        // Folded without stopping early, so the compiler checks many bytes at once.
        let needs_escape = part.bytes().fold(false, |any, b| {
            any | (b < 0x20) | (b == b'"') | (b == b'\\')
        });
        if needs_escape {
            let mut escaped = Vec::with_capacity(part.len() + 8);
            // Serializing a `&str` into a `Vec` cannot fail.
            if serde_json::to_writer(&mut escaped, part).is_ok() {
                out.extend_from_slice(&escaped[1..escaped.len() - 1]);
            }
        } else {
            out.extend_from_slice(part.as_bytes());
        }
    }
    out.push(b'"');
}

async fn serve(
    state: &AppState,
    ip: IpAddr,
    id: &str,
    raw_rest: &str,
    request_id: Uuid,
    call: impl Call,
) -> Option<Answer> {
    let dp = &state.dataplane;
    if let Some(seconds) = dp.throttle.blocked(ip) {
        return Some(dp.refused(ip, request_id, id, None, None, Refusal::Throttled(seconds)));
    }
    // While the index loads, the call's resource is read from the store: always current, so it
    // needs no confirmation. Boxed, like the confirmation below: only a node that just started
    // awaits it.
    let single = if dp.index.is_loading() {
        match Box::pin(dp.index.read_resource(id)).await {
            Ok(single) => Some(single),
            Err(e) => {
                tracing::warn!(error = %e, "could not read a resource while the key index loads");
                return Some(dp.refused(ip, request_id, id, None, None, Refusal::Unavailable));
            }
        }
    } else {
        None
    };
    let lookup = Lookup::of(&dp.index, single.as_ref());
    // Fail closed: a key the index still holds may have been revoked on another node.
    // The confirmation's future is boxed: inline it would make every call's future (built and
    // moved on each request) several times larger, and on a single node it is never awaited.
    if single.is_none() && !dp.index.is_current() && Box::pin(dp.index.confirm()).await.is_err() {
        // The entry, stale or not, still says which error shape the client expects.
        let provider = Uuid::try_parse(id)
            .ok()
            .and_then(|id| dp.index.resource(&id))
            .map(|entry| entry.provider);
        return Some(dp.refused(ip, request_id, id, None, provider, Refusal::Unavailable));
    }
    // Only under a lease is anything unsettled: a single node neither parses the id here nor
    // builds the (boxed) wait.
    let resource = dp
        .membership
        .as_ref()
        .and_then(|_| Uuid::try_parse(id).ok());
    let unsettled = || resource.and_then(|id| dp.index.unsettled(&id));
    let decision = loop {
        let must_wait = dp.membership.is_some() && (single.is_some() || unsettled().is_some());
        if must_wait
            && Box::pin(settled(state, single.is_some(), unsettled))
                .await
                .is_err()
        {
            return Some(dp.refused(ip, request_id, id, None, None, Refusal::Unavailable));
        }
        let decision = decide(state, lookup, ip, id, raw_rest, request_id, &call);
        // A change applied while deciding may be unsettled: decide again once it is settled.
        if single.is_some() || unsettled().is_none() {
            break decision;
        }
    };
    if let Some(single) = single {
        dp.index.spill(single);
    }
    match decision {
        Decision::Answer(answer) => Some(answer),
        Decision::NotHere => None,
        Decision::Forward(f) => {
            let strip: &[&str] = match f.provider.key_header {
                Some(h) => &[h][..],
                None => &["authorization"],
            };
            let forward = gateway::Forward {
                upstream: &f.gateway.upstream,
                rest: &f.raw_rest,
                strip,
                key_name: f.slot_name,
                access: f.access,
                resource_id: &f.gateway.resource_id,
                max_body_bytes: dp.max_body_bytes,
            };
            let refused = |refusal| {
                dp.refused(
                    ip,
                    request_id,
                    &f.gateway.resource_id,
                    Some(f.slot_name),
                    Some(f.provider),
                    refusal,
                )
            };
            Some(match call.forward(&dp.client, forward).await {
                Ok(answer) => {
                    metrics::data_plane_call(Some(f.provider), Outcome::Ok);
                    answer
                }
                Err(gateway::NotForwarded::TooLarge) => refused(Refusal::TooLarge),
                Err(gateway::NotForwarded::UpstreamFailed) => refused(Refusal::UpstreamFailed),
                Err(gateway::NotForwarded::UpstreamUntrusted) => {
                    refused(Refusal::UpstreamUntrusted)
                }
            })
        }
    }
}

/// Under a lease, waits until every node has applied what a check is about to rely on: for a check
/// that read the store (`from_store`) whatever the store held, else the unsettled change
/// `unsettled` names ([`index::KeyIndex::unsettled`]), if any. `Err`: that could not be learned
/// (logged), and the check is refused.
async fn settled(
    state: &AppState,
    from_store: bool,
    unsettled: impl Fn() -> Option<i64>,
) -> Result<(), ()> {
    let dp = &state.dataplane;
    let Some(membership) = &dp.membership else {
        return Ok(());
    };
    let position = if from_store {
        state.store.latest_change().await.map_err(|e| {
            tracing::warn!(error = %e, "could not read the change feed's position");
        })?
    } else {
        match unsettled() {
            Some(position) => position,
            None => return Ok(()),
        }
    };
    membership.wait_for_acks(position).await.map_err(|e| {
        tracing::warn!(error = %e, "could not learn whether every node applied a change");
    })?;
    dp.index.settle(position);
    Ok(())
}

/// A checked call to forward to its resource's upstream: what forwarding needs, taken out of the
/// index entry (shared, not copied) so that its shard's lock is not held while the upstream
/// answers.
struct ToForward<'r> {
    gateway: Arc<index::Gateway>,
    /// Borrowed from the call's path unless resolving it changed it.
    raw_rest: Cow<'r, str>,
    slot_name: &'static str,
    access: &'static str,
    provider: &'static Provider,
}

/// What the synchronous part of a data-plane call decided.
enum Decision<'r> {
    Answer(Answer),
    Forward(ToForward<'r>),
    /// The resource has an upstream, and this call cannot be forwarded.
    NotHere,
}

/// Checks a call against the index (its entry read under its shard's lock, released on return).
fn decide<'r>(
    state: &AppState,
    lookup: Lookup<'_>,
    ip: IpAddr,
    id: &str,
    raw_rest: &'r str,
    request_id: Uuid,
    call: &impl Call,
) -> Decision<'r> {
    let dp = &state.dataplane;
    let Some(entry) = Uuid::try_parse(id).ok().and_then(|id| lookup.resource(&id)) else {
        dp.throttle.failed(ip);
        return Decision::Answer(dp.refused(
            ip,
            request_id,
            id,
            None,
            None,
            Refusal::UnknownResource,
        ));
    };
    let provider = entry.provider;
    // The resource id is built only when a refusal needs it: a self-answer writes it from its
    // parts, and a forwarded call takes the one its entry keeps.
    let refused = |slot, refusal| {
        Decision::Answer(dp.refused(
            ip,
            request_id,
            &entry.resource_id(),
            slot,
            Some(provider),
            refusal,
        ))
    };
    // Resolved (dot segments, unreserved escapes) and still encoded for forwarding; decoded for the
    // signature and the self-answer (as a Cosmos client signs its resource link).
    let raw_rest = match path::resolve(raw_rest) {
        Ok(resolved) => resolved,
        Err(why) => return refused(None, Refusal::BadPath(why)),
    };
    if entry.upstream().is_some() && !call.can_forward() {
        return Decision::NotHere;
    }
    // Without a `%` there is nothing to decode, and the path is already text.
    let rest: Cow<'_, str> = if raw_rest.contains('%') {
        percent_encoding::percent_decode_str(&raw_rest).decode_utf8_lossy()
    } else {
        Cow::Borrowed(raw_rest.as_ref())
    };
    let rest = rest.as_ref();
    // An announced oversize body is refused before anything is read; a streamed one is cut off
    // at the limit while it is forwarded (see `gateway::forward`).
    let announced = call
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > dp.max_body_bytes as u64) {
        return refused(None, Refusal::TooLarge);
    }
    let method = call.method().clone();

    let now = rotation::now_micros();
    let slot = if provider.signs_requests {
        cosmos::signing_slot(
            &entry,
            method.as_str(),
            rest,
            call,
            OffsetDateTime::now_utc(),
        )
        .map_err(|r| match r {
            cosmos::CosmosRefusal::BadSignature => Refusal::InvalidKey,
            cosmos::CosmosRefusal::StaleDate => Refusal::StaleDate,
        })
    } else {
        header_key_slot(state, &entry, call, ip, now)
    };
    let slot = match slot {
        Ok(slot) => slot,
        Err(refusal) => {
            if refusal.is_guess() {
                dp.throttle.failed(ip);
            }
            return refused(None, refusal);
        }
    };
    let slot_name = entry.slot(slot).name;
    if entry.disabled(slot) {
        return refused(Some(slot_name), Refusal::SlotDisabled);
    }
    if !entry.key_auth_enabled {
        return refused(Some(slot_name), Refusal::Disabled);
    }
    dp.index.record_use(&entry, slot, now);
    entry.usage(slot).count(now, ip);
    let slot = entry.slot(slot);
    if slot.read_only
        && !cosmos_auth::is_read(
            method.as_str(),
            method == Method::POST && is_cosmos_query(rest, call),
        )
    {
        return refused(Some(slot_name), Refusal::ReadOnly);
    }

    let access = if slot.read_only {
        "readOnly"
    } else {
        "readWrite"
    };
    if let Some(gateway) = entry.gateway() {
        return Decision::Forward(ToForward {
            gateway: gateway.clone(),
            raw_rest,
            slot_name,
            access,
            provider,
        });
    }
    // The key was good: what follows is this call's answer.
    metrics::data_plane_call(Some(provider), Outcome::Ok);
    if provider.signs_requests && !cosmos::serves_itself(&method, rest) {
        return Decision::Answer(cosmos::not_implemented());
    }
    if provider.signs_requests {
        let who = Authenticated {
            authenticated: true,
            resource_id: &entry.resource_id(),
            key_name: slot.name,
            access,
            method: method.as_str(),
            path: format!("/{rest}"),
        };
        let endpoint = format!(
            "{}/data/{}/",
            state.ctx.public_url,
            entry.internal_id.simple()
        );
        let who = serde_json::to_value(&who).expect("the authenticated description serializes");
        return Decision::Answer(Answer::Json {
            status: StatusCode::OK,
            body: cosmos::account_document(&entry, &endpoint, who)
                .to_string()
                .into_bytes(),
            retry_after: None,
        });
    }
    Decision::Answer(self_answer(&entry, slot, access, &method, rest))
}

/// `POST /verify` `{"key":"…"}`: whether the key opens a resource now, and which slot it is.
pub async fn verify(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Verify rights at some scope are needed to call at all; a key outside the caller's scopes is
    // answered as invalid, so the endpoint reveals nothing about resources the caller cannot see.
    if !caller.can_anywhere(VERIFY_ACTION) {
        return Err(state
            .authorize(&caller, VERIFY_ACTION, "/")
            .await
            .err()
            .unwrap_or(ApiError::Internal));
    }
    let body = crate::route_table::json_body(&body)?;
    // An object only: serde would also read `["…"]` as the struct.
    let request: VerifyRequest = body
        .is_object()
        .then(|| serde_json::from_value(body).ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::bad_request(
                "InvalidRequestContent",
                "The request content needs a string property 'key'.",
            )
        })?;
    let key = request.key.as_str();
    let dp = &state.dataplane;
    let well_formed = rekey_core::CATALOGUE
        .iter()
        .any(|p| p.key_format.check(key).is_ok());
    let digest = well_formed.then(|| state.store.key_digest(key));
    // While the index loads, the key's resource is read from the store (current, so unconfirmed).
    let single = match (&digest, dp.index.is_loading()) {
        (Some(digest), true) => Some(dp.index.read_key(digest).await.map_err(|e| {
            tracing::warn!(error = %e, "could not read a key while the key index loads");
            ApiError::Unavailable
        })?),
        _ => None,
    };
    if !dp.index.is_loading() && !dp.index.is_current() && dp.index.confirm().await.is_err() {
        return Err(ApiError::Unavailable);
    }
    let lookup = Lookup::of(&dp.index, single.as_ref());
    // Under a lease, the change a key's answer would rely on must be settled first (see `serve`):
    // that of the key's resource, or for a key no resource holds (a deleted one's), every change.
    let unsettled = || match digest.and_then(|digest| dp.index.owner(&digest)) {
        Some(id) => dp.index.unsettled(&id),
        None => dp.index.latest_unsettled(),
    };
    let answer = loop {
        settled(&state, single.is_some(), unsettled)
            .await
            .map_err(|()| ApiError::Unavailable)?;
        let answer = match digest.and_then(|digest| lookup.find(&digest)) {
            Some(found)
                if found.entry.key_auth_enabled
                    && !found.entry.disabled(found.slot)
                    && found.entry.provider.key_format.check(key).is_ok()
                    && caller.can(VERIFY_ACTION, &found.entry.resource_id()) =>
            {
                let slot = found.entry.slot(found.slot);
                dp.index
                    .record_use(&found.entry, found.slot, rotation::now_micros());
                VerifyResult {
                    valid: true,
                    resource_id: Some(found.entry.resource_id()),
                    key_name: Some(slot.name.to_string()),
                    access: Some(if slot.read_only {
                        Access::ReadOnly
                    } else {
                        Access::ReadWrite
                    }),
                }
            }
            _ => VerifyResult::invalid(),
        };
        // A change applied meanwhile may be unsettled: answer again once it is settled.
        if dp.membership.is_none() || single.is_some() || unsettled().is_none() {
            break answer;
        }
    };
    if let Some(single) = single {
        dp.index.spill(single);
    }
    Ok(Json(answer).into_response())
}

//! Owns the Keys & Endpoint web page that rekeyd serves itself: its assets (plain HTML, CSS and one
//! vanilla JavaScript file, built into the binary), the security headers on them, sign-in and
//! sign-out (`/web/session`, see [`session`]), `GET /rekey/permissions`, which tells the page
//! what its caller may do on a resource so a Reader is never offered keys or Regenerate buttons, and
//! `GET /rekey/keyActivity`, the key ages and last uses its resource list sorts by.
//!
//! The page holds no logic the API lacks: it calls the same ARM routes any client calls, with the
//! session cookie instead of a bearer token. Registered by `app::route_table`.

pub mod session;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, LOCATION, ORIGIN, REFERRER_POLICY,
    RETRY_AFTER, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Extension, Json};
use rekey_api::mapping::schema_of;
use rekey_api::service::{
    KeyActivity, Permissions, ResourceKeyActivity, SlotActivity, WebSession, WebSignIn,
};
use rekey_api::ErrorResponse;
use rekey_core::{ResourceId, SubscriptionId};
use rekey_store::crypto::token_digest;
use rekey_store::{AuditRecord, Principal, StoreError};
use time::OffsetDateTime;

use crate::authz::Caller;
use crate::error::ApiError;
use crate::route_table::{ArmQuery, Op, RouteTable};
use crate::rules;
use crate::state::{AppState, RequestId};
use session::Session;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// Only this origin's own files may run, style or be fetched; nothing inline, no frames, no plugins.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The headers every page response carries: the page shows keys, so it must not be framed
/// (clickjacking a Regenerate button), sniffed into another type, or leak its URL onward.
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> MethodRouter<AppState> {
    get(move || async move { ([(CONTENT_TYPE, content_type)], body) })
}

fn signed_out(message: &str) -> Response {
    let body = ErrorResponse::new("NotSignedIn", message);
    (
        StatusCode::UNAUTHORIZED,
        [(CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response()
}

/// What the page learns about its session: who is signed in and the CSRF token for its writes.
fn session_body(principal: &Principal, session: &Session) -> WebSession {
    let remaining = session
        .expires
        .saturating_duration_since(std::time::Instant::now());
    WebSession {
        signed_in: true,
        principal_id: Some(principal.id.to_string()),
        name: Some(principal.display_name.clone()),
        is_owner: Some(principal.is_owner),
        csrf_token: Some(session.csrf_token.clone()),
        expires_in_seconds: Some(remaining.as_secs()),
    }
}

/// The principal behind a session, checked as a bearer token is on every call: a revoked or expired
/// token ends its sessions at once. A write without the session's CSRF token is refused.
pub async fn session_principal(
    state: &AppState,
    session: &Session,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    session::check_csrf(session, method, headers)?;
    let now = OffsetDateTime::now_utc();
    match state.store.principal(&session.principal_id).await? {
        Some(principal) if principal.active(now) => Ok(principal),
        _ => {
            state.sessions.end_all_of(session.principal_id);
            Err(ApiError::Unauthenticated {
                code: "InvalidAuthenticationToken",
                message: "The session's token is no longer valid; sign in again.".into(),
                challenge: "Bearer error=\"invalid_token\"".into(),
            })
        }
    }
}

/// Sign-in arrives from this page only: a browser names the requesting site, and another site's
/// form must not sign a visitor in to an account of the attacker's choosing.
fn from_this_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return false;
    }
    match (headers.get(ORIGIN), headers.get(HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_some_and(|(_, authority)| authority.as_bytes() == host.as_bytes()),
        (Some(_), None) => false,
    }
}

fn audit(principal: &Principal, action: &str, request: &RequestMeta) -> AuditRecord {
    AuditRecord {
        at: OffsetDateTime::now_utc(),
        principal_id: principal.id.to_string(),
        action: action.to_string(),
        scope: "/web/session".into(),
        source: request.source.to_string(),
        request_id: request.request_id.clone(),
        result: "Succeeded".into(),
    }
}

/// Who sent a request, for the audit log.
struct RequestMeta {
    source: IpAddr,
    request_id: String,
}

impl RequestMeta {
    fn of(request: &Request) -> Self {
        Self {
            source: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            request_id: request
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
        }
    }
}

/// `POST /web/session`: a token (JSON `{"token"}` or a form field `token`) becomes a session cookie.
/// JSON gets the session's details; a plain form post is sent back to the page.
async fn sign_in(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    if !from_this_site(request.headers()) {
        return Err(ApiError::Forbidden {
            code: "CrossSiteSignIn",
            message: "Sign-in is accepted only from rekeyd's own page.".into(),
        });
    }
    let meta = RequestMeta::of(&request);
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    // A sign-in body is a token and a field name: a few hundred bytes.
    let body: Bytes = axum::body::to_bytes(request.into_body(), 16 * 1024)
        .await
        .map_err(|_| {
            ApiError::bad_request(
                "InvalidRequestContent",
                "The request body could not be read.",
            )
        })?;
    let parsed: Result<WebSignIn, String> = if is_form {
        serde_urlencoded::from_bytes(&body).map_err(|e| e.to_string())
    } else {
        // An object, as for every JSON body: serde would also read `["rkt_…"]` as the struct.
        let value = crate::route_table::json_body(&body)?;
        if value.is_object() {
            serde_json::from_value(value).map_err(|e| e.to_string())
        } else {
            Err("the body is not a JSON object".to_string())
        }
    };
    let token = parsed
        .map_err(|e| {
            ApiError::bad_request(
                "InvalidRequestContent",
                format!("The sign-in body must carry the token in a field named token: {e}."),
            )
        })?
        .token;
    let now = OffsetDateTime::now_utc();
    let principal = match state
        .store
        .principal_by_token(&token_digest(token.trim()))
        .await?
    {
        Some(p) if p.active(now) => p,
        _ => {
            tracing::info!(source = %meta.source, "a web sign-in was refused");
            return Ok(signed_out(
                "The token is not valid: unknown, expired or revoked.",
            ));
        }
    };
    let record = audit(&principal, "Rekey/web/session/write", &meta);
    let Some((id, session)) = state.sessions.start(principal.id) else {
        state
            .store
            .append_audit(&record.with_result("Failed"))
            .await?;
        tracing::warn!(
            limit = session::MAX_SESSIONS,
            "a web sign-in was refused: the session table is full"
        );
        let body = ErrorResponse::new(
            "TooManySessions",
            format!(
                "rekeyd holds the most web sessions it keeps ({}); sign in when some have ended, or call the API with the token as a bearer token.",
                session::MAX_SESSIONS
            ),
        );
        return Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (RETRY_AFTER, HeaderValue::from_static("60")),
            ],
            Json(body),
        )
            .into_response());
    };
    // No session without its record in the audit log.
    if let Err(e) = state.store.append_audit(&record).await {
        state.sessions.forget(&id);
        return Err(e.into());
    }
    let cookie = state.sessions.cookie(&id);
    if is_form {
        return Ok((
            StatusCode::SEE_OTHER,
            [
                (SET_COOKIE, cookie),
                (LOCATION, HeaderValue::from_static("/web/")),
            ],
        )
            .into_response());
    }
    Ok((
        [
            (SET_COOKIE, cookie),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Json(session_body(&principal, &session)),
    )
        .into_response())
}

/// `GET /web/session`: who is signed in, and the CSRF token the page sends with its writes. Being
/// signed out is an answer here, not an error: it is what the page asks on every load.
async fn current(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let no_session = || {
        (
            [(CACHE_CONTROL, "no-store")],
            Json(WebSession::signed_out()),
        )
    };
    let Some(session) = state.sessions.find(&headers) else {
        return Ok(no_session().into_response());
    };
    let principal = match session_principal(&state, &session, &Method::GET, &headers).await {
        Ok(p) => p,
        Err(ApiError::Unauthenticated { .. }) => return Ok(no_session().into_response()),
        Err(e) => return Err(e),
    };
    Ok((
        [(CACHE_CONTROL, "no-store")],
        Json(session_body(&principal, &session)),
    )
        .into_response())
}

/// `DELETE /web/session`: signs out. Needs the CSRF token, like every other write from the page.
async fn sign_out(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let meta = RequestMeta::of(&request);
    let headers = request.headers();
    if let Some(session) = state.sessions.find(headers) {
        session::check_csrf(&session, &Method::DELETE, headers)?;
        state.sessions.end(headers);
        if let Some(principal) = state.store.principal(&session.principal_id).await? {
            state
                .store
                .append_audit(&audit(&principal, "Rekey/web/session/delete", &meta))
                .await?;
        }
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(SET_COOKIE, state.sessions.clearing_cookie())],
    )
        .into_response())
}

/// `GET /rekey/permissions?scope=…&actions=a,b`: whether the caller's roles allow each action on the
/// scope. It speaks only of the caller's own rights, so it needs no right of its own, and it says
/// nothing about whether the scope exists. The rules of both parameters are in [`rules`].
async fn permissions(
    Extension(caller): Extension<Caller>,
    ArmQuery(query): ArmQuery,
) -> Result<Response, ApiError> {
    let scope = query
        .get("scope")
        .map(String::as_str)
        .filter(|s| rules::PERMISSION_SCOPE.matches(s))
        .ok_or_else(|| {
            ApiError::bad_request(
                "InvalidParameter",
                "scope must be a resource id starting with '/', up to 2048 characters.",
            )
        })?;
    let actions = query
        .get("actions")
        .filter(|a| rules::PERMISSION_ACTIONS.matches(a))
        .ok_or_else(|| {
            ApiError::bad_request(
                "InvalidParameter",
                "actions must list action names (letters, digits, '.', '_', '/', '*', '-') separated by commas, up to 8192 characters in all.",
            )
        })?;
    let allowed: serde_json::Map<String, serde_json::Value> = actions
        .split(',')
        .map(|a| (a.to_string(), caller.can(a, scope).into()))
        .collect();
    Ok(Json(Permissions {
        scope: scope.to_string(),
        actions: allowed,
    })
    .into_response())
}

/// `GET /rekey/keyActivity?scope=…`: for each resource of a subscription (or the one resource)
/// whose keys the caller may list, when each current key was made and last used, and the oldest and
/// latest of these. The page's list sorts by them and an open resource refreshes its last uses with
/// them, without fetching a single key; being no key read, it is not audited as one. Resources
/// whose keys the caller may not list are left out, as `listKeys` would refuse them.
async fn key_activity(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ArmQuery(query): ArmQuery,
) -> Result<Response, ApiError> {
    let scope = query
        .get("scope")
        .filter(|s| rules::KEY_ACTIVITY_SCOPE.matches(s))
        .ok_or_else(|| {
            ApiError::bad_request(
                "InvalidParameter",
                "scope must be a subscription, /subscriptions/{subscriptionId}, or a resource id in one.",
            )
        })?;
    let mut value = Vec::new();
    // A scope none of the caller's roles reaches gets the same empty answer as one without
    // resources: the answer must not tell which subscriptions or resources exist.
    if !caller.sees(scope) {
        return Ok(Json(KeyActivity { value }).into_response());
    }
    let mut ids = Vec::new();
    if scope.matches('/').count() > 2 {
        // An id no resource can have (an unknown type, a name outside its rules) names nothing
        // with activity: the same empty answer as a resource that does not exist.
        match ResourceId::parse(scope) {
            Ok(id) => ids.push(id),
            Err(_) => return Ok(Json(KeyActivity { value }).into_response()),
        }
    } else {
        let sub = SubscriptionId::parse(&scope["/subscriptions/".len()..])?;
        for provider in rekey_core::CATALOGUE {
            match state.store.list_resources(&sub, None, provider).await {
                Ok(resources) => ids.extend(resources.into_iter().map(|r| r.id)),
                Err(StoreError::SubscriptionNotFound(_)) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    for id in ids {
        let list_keys = format!("{}/listKeys/action", id.provider.type_name());
        let name = id.to_string();
        if !caller.can(&list_keys, &name) {
            continue;
        }
        let keys = match state.store.keys(&id).await {
            Ok((_, keys)) => keys,
            // Deleted since it was listed, or never there.
            Err(StoreError::ResourceNotFound(_) | StoreError::ResourceGroupNotFound(_)) => continue,
            Err(StoreError::SubscriptionNotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let slots = keys
            .iter()
            .map(|k| {
                let times = SlotActivity {
                    created_at: rfc3339(k.created_at),
                    last_used_at: k.last_used.map(rfc3339),
                };
                (k.slot.name.to_string(), times)
            })
            .collect();
        value.push(ResourceKeyActivity {
            id: name,
            oldest_key_created_at: keys.iter().map(|k| k.created_at).min().map(rfc3339),
            last_used_at: keys.iter().filter_map(|k| k.last_used).max().map(rfc3339),
            keys: slots,
        });
    }
    Ok(Json(KeyActivity { value }).into_response())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("an OffsetDateTime always formats as RFC 3339")
}

/// Registers the bodies of sign-in, the session, a permissions answer and key activity; returns
/// their names.
fn schemas(table: &mut RouteTable) -> [String; 4] {
    let mut all = Vec::new();
    let names = [
        schema_of::<WebSignIn>(&mut all),
        schema_of::<WebSession>(&mut all),
        schema_of::<Permissions>(&mut all),
        schema_of::<KeyActivity>(&mut all),
    ];
    table.schemas(all);
    names
}

pub fn register(table: &mut RouteTable) {
    let [sign_in_body, session_body, permissions_body, key_activity_body] = schemas(table);
    let error = || Some("ErrorResponse".to_string());
    let page = || middleware::from_fn(page_headers);
    let index = || get(|| async { ([(CONTENT_TYPE, "text/html; charset=utf-8")], INDEX_HTML) });
    table.route(
        Method::GET,
        "/web/",
        Op::public("Web_Page", "The Keys & Endpoint page.").response_text(
            200,
            "The page",
            "text/html",
        ),
        index().layer(page()),
    );
    // `/` and `/web` lead to the page, whose relative asset URLs need the trailing slash.
    for (path, id) in [("/", "Web_Root"), ("/web", "Web_PageWithoutSlash")] {
        table.route(
            Method::GET,
            path,
            Op::public(id, "Leads to the Keys & Endpoint page.")
                .response(303, "See /web/", None)
                .response_header(303, "location", "/web/"),
            get(|| async { axum::response::Redirect::to("/web/") }),
        );
    }
    for (path, id, content_type, body) in [
        (
            "/web/app.js",
            "Web_Script",
            "text/javascript; charset=utf-8",
            APP_JS,
        ),
        (
            "/web/app.css",
            "Web_Style",
            "text/css; charset=utf-8",
            APP_CSS,
        ),
        ("/web/favicon.svg", "Web_Icon", "image/svg+xml", FAVICON_SVG),
    ] {
        let media_type = content_type.split(';').next().unwrap_or(content_type);
        table.route(
            Method::GET,
            path,
            Op::public(id, "One of the page's files, built into rekeyd.")
                .response_text(200, "The file", media_type),
            asset(content_type, body).layer(page()),
        );
    }
    let session_cookie = "The session id that sign-in set (HttpOnly).";
    table.route(
        Method::POST,
        "/web/session",
        Op::public(
            "Web_SignIn",
            "Signs in with a token (JSON, or the page's form): sets an HttpOnly, SameSite=Strict session cookie.",
        )
        .body(sign_in_body.clone(), true)
        .body_as("application/x-www-form-urlencoded", sign_in_body, true)
        .response(200, "Signed in (JSON); the session and its CSRF token", Some(session_body.clone()))
        .response_header(200, "set-cookie", "The session cookie, rekey_session")
        .response(303, "Signed in (form): back to the page", None)
        .response_header(303, "set-cookie", "The session cookie, rekey_session")
        .response_header(303, "location", "/web/")
        .response(400, "The body is not a JSON object or form with a string token", error())
        .response(401, "The token is not valid: unknown, expired or revoked (NotSignedIn)", error())
        .response(403, "Sent from another site (CrossSiteSignIn)", error())
        .response(503, "The store did not answer", error()),
        axum::routing::post(sign_in)
            .get(current)
            .delete(sign_out)
            .layer(page()),
    );
    table.document(
        Method::GET,
        "/web/session",
        Op::public(
            "Web_Session",
            "Who is signed in by the session cookie, and the CSRF token for the page's writes.",
        )
        .cookie(
            session::COOKIE_NAME,
            false,
            session_cookie,
            rules::string_schema(),
        )
        .response(
            200,
            "The session, or {\"signedIn\":false}",
            Some(session_body),
        )
        .response(503, "The store did not answer", error()),
    );
    table.document(
        Method::DELETE,
        "/web/session",
        Op::public(
            "Web_SignOut",
            "Ends the session named by the cookie, if any (needs the session's x-csrf-token).",
        )
        .cookie(
            session::COOKIE_NAME,
            false,
            session_cookie,
            rules::string_schema(),
        )
        .header(
            session::CSRF_HEADER,
            false,
            "The session's CSRF token (GET /web/session)",
            rules::string_schema(),
        )
        .response(204, "Signed out", None)
        .response_header(204, "set-cookie", "Clears the session cookie")
        .response(
            403,
            "A live session without its CSRF token (CsrfTokenMissing, InvalidCsrfToken)",
            error(),
        )
        .response(503, "The store did not answer", error()),
    );
    table.route(
        Method::GET,
        "/rekey/permissions",
        Op::authenticated(
            "Permissions_Check",
            "Whether the caller may perform each of `actions` on `scope` (rekey extension).",
        )
        .query(
            "scope",
            true,
            "A resource id, or any scope above one",
            rules::PERMISSION_SCOPE.schema(),
        )
        .query(
            "actions",
            true,
            "Action names separated by commas, such as Microsoft.CognitiveServices/accounts/listKeys/action",
            rules::PERMISSION_ACTIONS.schema(),
        )
        .response(200, "Each action, allowed or not", Some(permissions_body)),
        get(permissions),
    );
    table.route(
        Method::GET,
        "/rekey/keyActivity",
        Op::authenticated(
            "KeyActivity_List",
            "Key ages and last uses of the resources in scope whose keys the caller may list (rekey extension).",
        )
        .query(
            "scope",
            true,
            "A subscription, /subscriptions/{subscriptionId}, or a resource id in one",
            rules::KEY_ACTIVITY_SCOPE.schema(),
        )
        .response(200, "One entry per resource", Some(key_activity_body))
        .response(400, "scope is not a subscription or a resource id", error())
        .response(503, "The store did not answer", error()),
        get(key_activity),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_no_inline_script_or_style_and_no_framing() {
        let policy = CONTENT_SECURITY_POLICY_VALUE;
        assert!(policy.contains("script-src 'self';"));
        assert!(policy.contains("style-src 'self';"));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(!policy.contains("unsafe"));
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = INDEX_HTML.to_ascii_lowercase();
        assert!(!html.contains("<script>") && !html.contains("<style"));
        assert!(!html.contains(" style="), "no inline styles");
        // No inline event handler: ` on<letters>=` anywhere in a tag.
        let handler = html.match_indices(" on").any(|(at, _)| {
            let rest = &html[at + 3..];
            let name_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert!(!handler, "no inline event handlers");
        assert!(html.contains(r#"<script src="app.js" defer></script>"#));
    }

    /// The page names api-versions itself (ARM requires one on every call); each must be one the
    /// catalogue serves, so a catalogue change cannot break the page unnoticed.
    #[test]
    fn the_page_uses_only_api_versions_rekey_serves() {
        let versions = |name: &str| -> &str {
            let needle = format!("'{name}': '");
            let start = APP_JS
                .find(&needle)
                .unwrap_or_else(|| panic!("app.js names the api-version for {name}"));
            let rest = &APP_JS[start + needle.len()..];
            &rest[..rest.find('\'').expect("a closing quote")]
        };
        let resources = rekey_core::providers::RESOURCES_API_VERSIONS;
        assert!(resources.contains(&versions("resources")));
        for provider in rekey_core::CATALOGUE {
            let version = versions(&provider.type_name());
            assert!(
                provider.api_versions.contains(&version),
                "{} does not serve {version}",
                provider.type_name()
            );
        }
    }

    #[test]
    fn sign_in_from_another_site_is_refused() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(from_this_site(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(from_this_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!from_this_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ])));
        assert!(!from_this_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site"),
        ])));
    }
}

//! Owns management authentication: a bearer token (a service token, or an access token rekey issued
//! itself, see `oauth`) is resolved to a principal, which
//! must be neither expired nor revoked (checked on every call, so revocation is immediate). A
//! missing or unknown token is answered 401 with ARM's codes and a `WWW-Authenticate` challenge; the
//! token itself is never logged or echoed. [`authenticate`] is the check alone, for a route that
//! admits some callers without a token (`metrics`). Without an `Authorization` header, the web page's session
//! cookie stands in for the token (`web::session`).

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rekey_store::crypto::token_digest;
use rekey_store::Principal;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::ConnectInfo;

use crate::authz::Caller;
use crate::error::ApiError;
use crate::oauth::JwtError;
use crate::state::{AppState, RequestId};

fn challenge(state: &AppState, description: &str) -> String {
    format!(
        "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{description}\"",
        state.ctx.public_url, state.tenant_id
    )
}

/// Puts the authenticated caller ([`Caller`]) into the request's extensions, or answers 401.
pub async fn require_principal(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    match authenticate(&state, &parts).await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(refusal) => refusal,
    }
}

/// The caller a request's bearer token (or the web page's session cookie) authenticates, with its
/// role assignments; or the 401 (or store failure) to answer instead.
pub async fn authenticate(state: &AppState, request: &Parts) -> Result<Caller, Response> {
    let header = request
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = match header {
        None => {
            // The web page authenticates with its session cookie instead (see `web::session`).
            if let Some(session) = state.sessions.find(&request.headers) {
                let checked = crate::web::session_principal(
                    state,
                    &session,
                    &request.method,
                    &request.headers,
                )
                .await;
                return match checked {
                    Ok(principal) => admit(state, principal, request).await,
                    Err(e) => Err(e.into_response()),
                };
            }
            return Err(ApiError::Unauthenticated {
                code: "AuthenticationFailed",
                message: "Authentication failed. The 'Authorization' header is missing.".into(),
                challenge: challenge(state, "The authentication failed because of missing 'Authorization' header."),
            }
            .into_response())
        }
        Some(value) => match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
            _ => {
                return Err(ApiError::Unauthenticated {
                    code: "AuthenticationFailed",
                    message: "Authentication failed. The 'Authorization' header is provided in an invalid format.".into(),
                    challenge: challenge(state, "The authentication failed because of an invalid 'Authorization' header format."),
                }
                .into_response())
            }
        },
    };
    let now = time::OffsetDateTime::now_utc();
    let found = if looks_like_jwt(token) {
        let verified = state
            .issuer
            .verify(
                state.store.as_ref(),
                token,
                &state.token_audience(),
                &state.token_issuer_url(),
            )
            .await;
        match verified {
            Ok(claims) => match uuid::Uuid::parse_str(&claims.oid) {
                Ok(id) => state.store.principal(&id).await,
                Err(_) => Ok(None),
            },
            Err(JwtError::Expired) => {
                return Err(ApiError::Unauthenticated {
                    code: "ExpiredAuthenticationToken",
                    message:
                        "The access token expiry UTC time is earlier than the current UTC time."
                            .into(),
                    challenge: challenge(state, "The access token has expired."),
                }
                .into_response())
            }
            Err(_) => Ok(None),
        }
    } else {
        state.store.principal_by_token(&token_digest(token)).await
    };
    match found {
        Ok(Some(principal)) if principal.active(now) => admit(state, principal, request).await,
        Ok(Some(principal)) if principal.revoked_at.is_none() => Err(ApiError::Unauthenticated {
            code: "ExpiredAuthenticationToken",
            message: "The access token expiry UTC time is earlier than the current UTC time."
                .into(),
            challenge: challenge(state, "The access token has expired."),
        }
        .into_response()),
        Ok(_) => Err(ApiError::Unauthenticated {
            code: "InvalidAuthenticationToken",
            message: "The access token is invalid.".into(),
            challenge: challenge(state, "The access token is invalid."),
        }
        .into_response()),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

/// rekey's own tokens start `rkt_`; a JWT is three base64url parts, its header starting `eyJ`.
fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.matches('.').count() == 2
}

/// An authenticated principal as the request's [`Caller`], with its role assignments.
async fn admit(
    state: &AppState,
    principal: Principal,
    request: &Parts,
) -> Result<Caller, Response> {
    let assignments = match state.store.assignments_of(&principal.id).await {
        Ok(a) => a,
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let request_id = request
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let source = request
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    Ok(Caller {
        principal,
        assignments,
        request_id,
        source,
    })
}

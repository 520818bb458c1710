//! Owns management authentication: a bearer token (a service token, or an access token rekey issued
//! itself, see `oauth`) is resolved to a principal, which
//! must be neither expired nor revoked (checked on every call, so revocation is immediate). A
//! missing or unknown token is answered 401 with ARM's codes and a `WWW-Authenticate` challenge; the
//! token itself is never logged or echoed. Without an `Authorization` header, the web page's session
//! cookie stands in for the token (`web::session`).

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
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

/// Puts the authenticated [`Principal`] into the request's extensions, or answers 401.
pub async fn require_principal(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = match header {
        None => {
            // The web page authenticates with its session cookie instead (see `web::session`).
            if let Some(session) = state.sessions.find(request.headers()) {
                let checked = crate::web::session_principal(
                    &state,
                    &session,
                    request.method(),
                    request.headers(),
                )
                .await;
                return match checked {
                    Ok(principal) => admit(&state, principal, request, next).await,
                    Err(e) => e.into_response(),
                };
            }
            return ApiError::Unauthenticated {
                code: "AuthenticationFailed",
                message: "Authentication failed. The 'Authorization' header is missing.".into(),
                challenge: challenge(&state, "The authentication failed because of missing 'Authorization' header."),
            }
            .into_response()
        }
        Some(value) => match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
            _ => {
                return ApiError::Unauthenticated {
                    code: "AuthenticationFailed",
                    message: "Authentication failed. The 'Authorization' header is provided in an invalid format.".into(),
                    challenge: challenge(&state, "The authentication failed because of an invalid 'Authorization' header format."),
                }
                .into_response()
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
                return ApiError::Unauthenticated {
                    code: "ExpiredAuthenticationToken",
                    message:
                        "The access token expiry UTC time is earlier than the current UTC time."
                            .into(),
                    challenge: challenge(&state, "The access token has expired."),
                }
                .into_response()
            }
            Err(_) => Ok(None),
        }
    } else {
        state.store.principal_by_token(&token_digest(token)).await
    };
    match found {
        Ok(Some(principal)) if principal.active(now) => {
            admit(&state, principal, request, next).await
        }
        Ok(Some(principal)) if principal.revoked_at.is_none() => ApiError::Unauthenticated {
            code: "ExpiredAuthenticationToken",
            message: "The access token expiry UTC time is earlier than the current UTC time."
                .into(),
            challenge: challenge(&state, "The access token has expired."),
        }
        .into_response(),
        Ok(_) => ApiError::Unauthenticated {
            code: "InvalidAuthenticationToken",
            message: "The access token is invalid.".into(),
            challenge: challenge(&state, "The access token is invalid."),
        }
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// rekey's own tokens start `rkt_`; a JWT is three base64url parts, its header starting `eyJ`.
fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.matches('.').count() == 2
}

/// Loads an authenticated principal's role assignments and passes the request on as its [`Caller`].
async fn admit(
    state: &AppState,
    principal: Principal,
    mut request: Request,
    next: Next,
) -> Response {
    let assignments = match state.store.assignments_of(&principal.id).await {
        Ok(a) => a,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    request.extensions_mut().insert(Caller {
        principal,
        assignments,
        request_id,
        source,
    });
    next.run(request).await
}

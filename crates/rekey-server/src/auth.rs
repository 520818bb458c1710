//! Owns management authentication: a bearer token is digested and looked up as a principal. A
//! missing or unknown token is answered 401 with ARM's codes and a `WWW-Authenticate` challenge; the
//! token itself is never logged or echoed.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rekey_store::crypto::token_digest;
use rekey_store::Principal;

use crate::app::AppState;
use crate::error::ApiError;

fn challenge(state: &AppState, description: &str) -> String {
    format!(
        "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{description}\"",
        state.ctx.public_url, state.tenant_id
    )
}

/// Puts the authenticated [`Principal`] into the request's extensions, or answers 401.
pub async fn require_principal(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = match header {
        None => {
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
    match state.store.principal_by_token(&token_digest(token)).await {
        Ok(Some(principal)) => {
            request.extensions_mut().insert::<Principal>(principal);
            next.run(request).await
        }
        Ok(None) => ApiError::Unauthenticated {
            code: "InvalidAuthenticationToken",
            message: "The access token is invalid.".into(),
            challenge: challenge(&state, "The access token is invalid."),
        }
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
